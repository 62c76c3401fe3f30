"""``plantmrv dashboards push`` against a recording HTTP server that speaks the Grafana HTTP API.

No live Grafana can be installed here (no package, no container runtime, no network), so these
tests run a small threaded ``http.server`` on 127.0.0.1 that implements the endpoints push uses,
with Grafana's paths, status codes and payload shapes (``GET/POST /api/folders``,
``GET /api/datasources/uid/<uid>``, ``POST /api/datasources``, ``GET /api/dashboards/uid/<uid>``,
``POST /api/dashboards/db``, ``GET/POST/PUT /api/v1/provisioning/alert-rules[/<uid>]``), keeps their state, records every request, and checks each payload
the way Grafana validates it (required keys, types, the folder of a dashboard existing). The real
``grafana-client`` library does the HTTP.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from plantmrv.app.cli import app as cli_app
from plantmrv.dashboards import push as push_mod
from plantmrv.dashboards.push import PushError, push

TOKEN = "glsa_test_token_ABC123"
INFLUX_TOKEN = "influx-secret-XYZ"
GENERATED = Path(__file__).resolve().parents[1] / "dashboards" / "generated"


class FakeGrafana:
    """State and request log of the fake Grafana; ``fail`` maps (method, path regex) to a status."""

    def __init__(self):
        self.folders: dict[str, dict] = {}
        self.datasources: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.rules: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None, dict]] = []
        self.fail: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, body, headers) -> tuple[int, object]:
        self.requests.append((method, path, body, headers))
        for (m, pattern), status in self.fail.items():
            if m == method and re.fullmatch(pattern, path):
                return status, {"message": "injected failure"}
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "Unauthorized"}
        if method == "GET" and path == "/api/folders":
            return 200, [{"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in self.folders.values()]
        if method == "POST" and path == "/api/folders":
            assert set(body) <= {"title", "uid", "parentUid"} and isinstance(body["title"], str) and body["title"]
            if any(f["title"] == body["title"] for f in self.folders.values()):
                return 409, {"message": "a folder with the same name already exists"}
            uid = body.get("uid") or "generated-uid"
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid)
            self.folders[uid] = {"id": len(self.folders) + 1, "uid": uid, "title": body["title"], "version": 1}
            return 200, self.folders[uid]
        m = re.fullmatch(r"/api/datasources/uid/([^/]+)", path)
        if method == "GET" and m:
            ds = self.datasources.get(m.group(1))
            return (200, ds) if ds else (404, {"message": "Data source not found"})
        if method == "POST" and path == "/api/datasources":
            for key in ("name", "type", "access", "url"):
                assert isinstance(body.get(key), str) and body[key], key
            assert body["access"] in ("proxy", "direct")
            assert isinstance(body.get("jsonData", {}), dict) and isinstance(body.get("secureJsonData", {}), dict)
            if any(d["name"] == body["name"] for d in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            ds = {**body, "id": len(self.datasources) + 1}
            ds.pop("secureJsonData", None)
            self.datasources[body["uid"]] = ds
            return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource added", "name": ds["name"]}
        m = re.fullmatch(r"/api/dashboards/uid/([^/]+)", path)
        if method == "GET" and m:
            d = self.dashboards.get(m.group(1))
            if not d:
                return 404, {"message": "Dashboard not found"}
            return 200, {"dashboard": d["dashboard"], "meta": {"folderUid": d["folderUid"], "slug": d["dashboard"]["uid"]}}
        if method == "POST" and path == "/api/dashboards/db":
            assert set(body) <= {"dashboard", "folderUid", "folderId", "overwrite", "message"}
            dash = body["dashboard"]
            assert isinstance(dash, dict) and dash.get("title") and dash.get("uid")
            assert dash.get("id") is None, "a new upload must not carry another instance's numeric id"
            assert isinstance(dash.get("panels"), list) and "templating" in dash and "schemaVersion" in dash
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            old = self.dashboards.get(dash["uid"])
            if old and not body.get("overwrite"):
                return 412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
            version = (old["dashboard"]["version"] + 1) if old else 1
            stored = {**dash, "id": 100 + len(self.dashboards), "version": version}
            self.dashboards[dash["uid"]] = {"dashboard": stored, "folderUid": body["folderUid"]}
            return 200, {"id": stored["id"], "uid": dash["uid"], "status": "success", "version": version, "url": f"/d/{dash['uid']}"}
        m = re.fullmatch(r"/api/v1/provisioning/alert-rules(?:/([^/]+))?", path)
        if m:
            uid = m.group(1)
            if method == "GET" and uid:
                return (200, self.rules[uid]) if uid in self.rules else (404, {"message": "rule not found"})
            if method in ("POST", "PUT"):
                # the provisioning API's validation: required keys, a known folder, a condition among the queries
                for key in ("title", "condition", "data", "folderUID", "ruleGroup", "for", "noDataState", "execErrState"):
                    assert key in body, key
                assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", body["uid"]) and body["folderUID"] in self.folders
                assert body["condition"] in [q["refId"] for q in body["data"]]
                assert all("datasourceUid" in q and "model" in q and "relativeTimeRange" in q for q in body["data"])
                if method == "POST":
                    if body["uid"] in self.rules:
                        return 409, {"message": "rule exists"}
                elif uid not in self.rules:
                    return 404, {"message": "rule not found"}
                self.rules[body["uid"]] = {**body, "id": len(self.rules) + 1, "provenance": "api", "updated": "2026-11-20T12:30:00Z"}
                return (201 if method == "POST" else 200), self.rules[body["uid"]]
        return 404, {"message": f"no route {method} {path}"}

    def posts(self, path: str | None = None):
        return [r for r in self.requests if r[0] == "POST" and (path is None or r[1] == path)]


@pytest.fixture
def grafana():
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            path = self.path.split("?", 1)[0]
            with state.lock:
                try:
                    status, payload = state.handle(self.command, path, body, dict(self.headers))
                except AssertionError as exc:
                    status, payload = 422, {"message": f"payload shape rejected: {exc}"}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def _uids():
    return sorted(p.stem for p in GENERATED.glob("*.json"))


def _rule_uids():
    import yaml

    doc = yaml.safe_load(push_mod.ALERTING_FILE.read_text())
    return sorted(r["uid"] for g in doc["groups"] for r in g["rules"])


def test_push_creates_folder_datasource_and_all_dashboards_on_an_empty_grafana(grafana):
    changes = push(grafana.url, TOKEN, folder="plantmrv", influx_url="http://influxdb:8086", database="plantmrv", influx_token=INFLUX_TOKEN)
    assert [(c.kind, c.action) for c in changes[:2]] == [("folder", "created"), ("datasource", "created")]
    assert sorted(c.uid for c in changes if c.kind == "dashboard" and c.action == "created") == _uids()
    assert [r[1] for r in grafana.requests[:2]] == ["/api/folders", "/api/folders"]
    (folder_post,) = grafana.posts("/api/folders")
    assert folder_post[2] == {"title": "plantmrv", "uid": "plantmrv"}
    (ds_post,) = grafana.posts("/api/datasources")
    ds = ds_post[2]
    assert ds["type"] == "influxdb" and ds["url"] == "http://influxdb:8086" and ds["uid"] == "plantmrv-influxdb"
    assert ds["jsonData"] == {"dbName": "plantmrv", "httpMode": "POST", "version": "InfluxQL", "httpHeaderName1": "Authorization"}
    assert ds["secureJsonData"] == {"httpHeaderValue1": f"Token {INFLUX_TOKEN}"}
    dash_posts = grafana.posts("/api/dashboards/db")
    assert len(dash_posts) == len(_uids())
    for _, _, body, _ in dash_posts:
        assert body["overwrite"] is True and body["folderUid"] == "plantmrv"
        committed = json.loads((GENERATED / f"{body['dashboard']['uid']}.json").read_text())
        assert {k: v for k, v in body["dashboard"].items() if k != "id"} == {k: v for k, v in committed.items() if k != "id"}
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for *_, h in grafana.requests)
    assert sorted(c.uid for c in changes if c.kind == "alert-rule" and c.action == "created") == _rule_uids()
    assert {r["folderUID"] for r in grafana.rules.values()} == {"plantmrv"}
    assert grafana.rules["plantmrv-gateway-offline"]["ruleGroup"] == "plantmrv platform"


def test_second_push_changes_nothing_and_uploads_nothing(grafana):
    push(grafana.url, TOKEN)
    before = len(grafana.posts())
    changes = push(grafana.url, TOKEN)
    assert {c.action for c in changes} == {"unchanged"}
    assert len(grafana.posts()) == before


def test_push_uploads_only_the_changed_dashboard_with_overwrite(grafana, tmp_path):
    for p in GENERATED.glob("*.json"):
        (tmp_path / p.name).write_text(p.read_text())
    push(grafana.url, TOKEN, directory=tmp_path)
    pump = json.loads((tmp_path / "plantmrv-pump.json").read_text())
    pump["title"] = "plantmrv / Pump station (edited)"
    (tmp_path / "plantmrv-pump.json").write_text(json.dumps(pump))
    n_before = len(grafana.posts("/api/dashboards/db"))
    changes = push(grafana.url, TOKEN, directory=tmp_path)
    changed = [(c.uid, c.action) for c in changes if c.action != "unchanged"]
    assert changed == [("plantmrv-pump", "updated")]
    assert len(grafana.posts("/api/dashboards/db")) == n_before + 1
    assert grafana.dashboards["plantmrv-pump"]["dashboard"]["version"] == 2
    assert grafana.dashboards["plantmrv-pump"]["dashboard"]["title"].endswith("(edited)")


def test_push_reuses_an_existing_folder_of_the_same_title_and_keeps_an_existing_datasource(grafana):
    grafana.folders["abc123"] = {"id": 7, "uid": "abc123", "title": "Plants", "version": 3}
    grafana.datasources["plantmrv-influxdb"] = {"id": 1, "uid": "plantmrv-influxdb", "name": "plantmrv InfluxDB", "type": "influxdb", "url": "http://custom:8086"}
    changes = push(grafana.url, TOKEN, folder="Plants")
    assert changes[0].action == "unchanged" and changes[0].uid == "abc123"
    assert changes[1].action == "unchanged"
    assert not grafana.posts("/api/folders") and not grafana.posts("/api/datasources")
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {"abc123"}
    assert grafana.datasources["plantmrv-influxdb"]["url"] == "http://custom:8086"


def test_push_updates_only_the_alert_rule_that_changed(grafana, tmp_path):
    import yaml

    push(grafana.url, TOKEN)
    doc = yaml.safe_load(push_mod.ALERTING_FILE.read_text())
    rule = next(r for g in doc["groups"] for r in g["rules"] if r["uid"] == "plantmrv-gateway-buffer")
    rule["data"][2]["model"]["conditions"][0]["evaluator"]["params"] = [0.9]
    edited = tmp_path / "alerting.yaml"
    edited.write_text(yaml.safe_dump(doc, allow_unicode=True))
    changes = push(grafana.url, TOKEN, alerting_file=edited)
    assert [(c.kind, c.uid, c.action) for c in changes if c.action != "unchanged"] == [("alert-rule", "plantmrv-gateway-buffer", "updated")]
    assert grafana.rules["plantmrv-gateway-buffer"]["data"][2]["model"]["conditions"][0]["evaluator"]["params"] == [0.9]
    assert [r[1] for r in grafana.requests if r[0] == "PUT"] == ["/api/v1/provisioning/alert-rules/plantmrv-gateway-buffer"]


def test_push_names_the_api_path_when_grafana_refuses(grafana):
    grafana.fail[("POST", "/api/dashboards/db")] = 403
    with pytest.raises(PushError, match=r"POST /api/dashboards/db.*403"):
        push(grafana.url, TOKEN)


def test_push_reports_a_wrong_token_without_printing_it(grafana):
    runner = CliRunner()
    r = runner.invoke(cli_app, ["dashboards", "push", "--url", grafana.url, "--token", "wrong-token-987"])
    assert r.exit_code == 1
    assert "GET /api/folders" in r.output and "wrong-token-987" not in r.output


def test_push_to_an_unreachable_grafana_fails_with_the_url():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(PushError, match=rf"127.0.0.1:{port}.*GET /api/folders"):
        push(f"http://127.0.0.1:{port}", TOKEN, timeout_s=2)


def test_cli_push_prints_what_changed_and_never_the_tokens(grafana):
    runner = CliRunner()
    args = ["dashboards", "push", "--url", grafana.url, "--token", TOKEN, "--folder", "plantmrv", "--influx-token", INFLUX_TOKEN]
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    assert "folder plantmrv (plantmrv): created" in r.output
    assert "datasource plantmrv-influxdb (plantmrv InfluxDB): created" in r.output
    assert f"{2 + len(_uids()) + len(_rule_uids())} change(s) pushed" in r.output
    assert TOKEN not in r.output and INFLUX_TOKEN not in r.output
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 0 and "0 change(s) pushed" in r.output


def test_folder_uid_is_a_valid_grafana_uid():
    assert push_mod.folder_uid("plantmrv") == "plantmrv"
    assert push_mod.folder_uid("JCM Plants / Viet Nam") == "jcm-plants-viet-nam"
    assert re.fullmatch(r"[a-z0-9_-]{1,40}", push_mod.folder_uid("x" * 80 + "!!"))
