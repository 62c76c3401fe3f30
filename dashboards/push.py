"""Upload the generated dashboards to a running Grafana with ``grafana-client``.

:func:`push` makes Grafana match the generated files, touching only what differs:

1. folder: ``GET /api/folders`` (matched by uid, else title); ``POST /api/folders`` when missing;
2. datasource: ``GET /api/datasources/uid/<uid>``; created with ``POST /api/datasources``
   (type ``influxdb``, InfluxQL, database, ``Authorization: Token`` header) when missing;
   an existing datasource is left as the operator configured it;
3. each dashboard: ``GET /api/dashboards/uid/<uid>``; uploaded with ``POST /api/dashboards/db``
   (``overwrite: true``, into the folder) when missing or when its content differs from the
   generated file (Grafana's own ``id`` and ``version`` are ignored in the comparison);
4. each alert rule of the alerting provisioning file (``provisioning/alerting``):
   ``GET /api/v1/provisioning/alert-rules/<uid>``; ``POST /api/v1/provisioning/alert-rules`` when
   missing, ``PUT`` when it differs (into the folder, rule group as in the file). Contact points
   and the notification policy hold site-specific addresses: push leaves them to the operator.

It returns one :class:`Change` per object (``created`` / ``updated`` / ``unchanged``), which the
CLI prints. The Grafana token and the InfluxDB token are never logged or printed.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from . import panels as P

log = logging.getLogger("plantmrv.dashboards.push")

GENERATED_DIR = Path(__file__).parent / "generated"
ALERTING_FILE = Path(__file__).parent / "provisioning" / "alerting" / "plantmrv-alerting.yaml"


class PushError(Exception):
    """Grafana refused a request; the message names the object and the API path."""


@dataclass(frozen=True)
class Change:
    kind: str  # folder | datasource | dashboard | alert-rule
    uid: str
    title: str
    action: str  # created | updated | unchanged

    def __str__(self) -> str:
        return f"{self.kind} {self.uid} ({self.title}): {self.action}"


def folder_uid(name: str) -> str:
    """A stable folder uid from its name (Grafana allows [A-Za-z0-9_-], at most 40 characters)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name.strip()).strip("-").lower()
    return (slug or "plantmrv")[:40]


def datasource_payload(influx_url: str, database: str, influx_token: str | None, uid: str = P.DEFAULT_DATASOURCE_UID, name: str = P.DEFAULT_DATASOURCE_NAME) -> dict:
    """The ``POST /api/datasources`` body: InfluxDB, InfluxQL over the v1 API, token in a header."""
    body: dict = {
        "name": name,
        "uid": uid,
        "type": P.DATASOURCE_TYPE,
        "access": "proxy",
        "url": influx_url,
        "database": database,
        "isDefault": False,
        "jsonData": {"dbName": database, "httpMode": "POST", "version": "InfluxQL"},
    }
    if influx_token:
        body["jsonData"]["httpHeaderName1"] = "Authorization"
        body["secureJsonData"] = {"httpHeaderValue1": f"Token {influx_token}"}
    return body


def load_generated(directory: Path = GENERATED_DIR) -> list[dict]:
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        raise PushError(f"{directory}: no dashboard JSON files (run `plantmrv dashboards build` first)")
    out = []
    for f in files:
        try:
            out.append(json.loads(f.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise PushError(f"{f}: line {exc.lineno}: {exc.msg}") from None
    return out


def load_alert_rules(path: Path | None, folder_uid: str) -> list[dict]:
    """The rules of an alerting provisioning file in Grafana's API shape (folder, group, org set)."""
    import yaml

    if path is None or not Path(path).exists():
        return []
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PushError(f"{path}: not YAML: {exc}") from None
    return [{**r, "folderUID": folder_uid, "ruleGroup": g["name"], "orgID": g.get("orgId", 1)} for g in doc.get("groups", []) for r in g.get("rules", [])]


_RULE_KEYS = ("title", "condition", "data", "for", "noDataState", "execErrState", "labels", "annotations", "ruleGroup", "folderUID", "isPaused")


def _comparable(dashboard: dict) -> dict:
    return {k: v for k, v in dashboard.items() if k not in ("id", "version")}


def _is_not_found(exc: Exception) -> bool:
    return getattr(exc, "status_code", None) == 404


def push(
    url: str,
    token: str,
    folder: str = "plantmrv",
    directory: Path = GENERATED_DIR,
    influx_url: str = "http://influxdb:8086",
    database: str = "plantmrv",
    influx_token: str | None = None,
    timeout_s: float = 10.0,
    alerting_file: Path | None = ALERTING_FILE,
) -> list[Change]:
    """Create the folder and datasource if missing, upload changed dashboards; return the changes."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException

    dashboards = load_generated(directory)
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    changes: list[Change] = []

    def call(what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GrafanaException as exc:
            if _is_not_found(exc):
                raise
            raise PushError(f"Grafana {url}: {what}: {exc.message if hasattr(exc, 'message') else exc}") from None
        except Exception as exc:  # connection refused, TLS, timeouts (niquests' own types)
            raise PushError(f"Grafana {url}: {what}: {exc.__class__.__name__}: {exc}") from None

    # folder: matched by uid, else by title (Grafana refuses a second folder of the same title)
    fuid = folder_uid(folder)
    folders = call("GET /api/folders", api.folder.get_all_folders) or []
    found = next((f for f in folders if f.get("uid") == fuid), None) or next((f for f in folders if f.get("title") == folder), None)
    if found is not None:
        fuid = found["uid"]
        changes.append(Change("folder", fuid, folder, "unchanged"))
    else:
        created = call("POST /api/folders", api.folder.create_folder, folder, uid=fuid)
        fuid = (created or {}).get("uid", fuid)
        changes.append(Change("folder", fuid, folder, "created"))

    # datasource
    ds = datasource_payload(influx_url, database, influx_token)
    try:
        call(f"GET /api/datasources/uid/{ds['uid']}", api.datasource.get_datasource_by_uid, ds["uid"])
        changes.append(Change("datasource", ds["uid"], ds["name"], "unchanged"))
    except GrafanaException:
        call("POST /api/datasources", api.datasource.create_datasource, ds)
        changes.append(Change("datasource", ds["uid"], ds["name"], "created"))

    # dashboards
    for dash in dashboards:
        uid = dash.get("uid")
        if not uid:
            raise PushError(f"dashboard {dash.get('title')!r} has no uid")
        try:
            current = call(f"GET /api/dashboards/uid/{uid}", api.dashboard.get_dashboard, uid)
        except GrafanaException:
            current = None
        if current is not None:
            in_folder = (current.get("meta") or {}).get("folderUid") == fuid
            if in_folder and _comparable(current.get("dashboard") or {}) == _comparable(dash):
                changes.append(Change("dashboard", uid, dash.get("title", ""), "unchanged"))
                continue
        body = {"dashboard": {**dash, "id": None}, "folderUid": fuid, "overwrite": True, "message": "plantmrv dashboards push"}
        call("POST /api/dashboards/db", api.dashboard.update_dashboard, body)
        changes.append(Change("dashboard", uid, dash.get("title", ""), "created" if current is None else "updated"))

    # alert rules
    for rule in load_alert_rules(alerting_file, fuid):
        uid = rule["uid"]
        try:
            current = call(f"GET /api/v1/provisioning/alert-rules/{uid}", api.alertingprovisioning.get_alertrule, uid)
        except GrafanaException:
            current = None
        if current is None:
            call("POST /api/v1/provisioning/alert-rules", api.alertingprovisioning.create_alertrule, rule)
            changes.append(Change("alert-rule", uid, rule["title"], "created"))
        elif {k: current.get(k) for k in _RULE_KEYS} != {k: rule.get(k) for k in _RULE_KEYS}:
            call(f"PUT /api/v1/provisioning/alert-rules/{uid}", api.alertingprovisioning.update_alertrule, uid, rule)
            changes.append(Change("alert-rule", uid, rule["title"], "updated"))
        else:
            changes.append(Change("alert-rule", uid, rule["title"], "unchanged"))
    for c in changes:
        log.info("event=grafana_push kind=%s uid=%s action=%s", c.kind, c.uid, c.action)
    return changes
