"""Run every panel query of the dashboards against an InfluxDB, the way Grafana would send it.

Grafana's InfluxDB datasource is emulated where it touches the query text:

- ``$timeFilter`` -> ``time >= <from>ms and time <= <to>ms``; the range is the panel's relative
  time (``timeFrom``: ``now/d`` today so far, ``now/M`` this month, ``now/fy`` this fiscal year
  with the dashboard's ``fiscalYearStartMonth``, ``5m``, ``24h``) or else the dashboard's range;
- ``$__interval`` -> range / max data points (``MAX_DATA_POINTS``, about a panel's width in
  pixels), at least the panel's min interval;
- a multi-value template variable with *All* selected -> the regex group of all its values, each
  regex-escaped (``(danang|hcmc)``), which is what Grafana puts into ``=~ /^$site$/``. The values
  come from running the dashboard's own ``SHOW TAG VALUES`` variable queries, in order (a later
  variable may use an earlier one, as ``asset`` uses ``site``).

:func:`check_dashboards` returns one :class:`PanelCheck` per target: ``ok``, ``empty`` (the panel
would show *No data*, or a field would be all null) or ``error`` (InfluxDB refused the query).
``plantmrv dashboards check`` prints them and exits 1 unless all are ok.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from plantmrv.influx import InfluxClient, InfluxError

MAX_DATA_POINTS = 1000
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class PanelCheck:
    dashboard: str
    panel: str
    ref_id: str
    status: str  # ok | empty | error
    query: str  # as sent, variables substituted
    detail: str = ""
    rows: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        head = f"{self.dashboard}: {self.panel!r} {self.ref_id}: {self.status}"
        if self.status == "ok":
            return f"{head} ({self.rows} rows, {self.seconds * 1000:.0f} ms)" + (f": {self.detail}" if self.detail else "")
        return f"{head}: {self.detail} | query: {self.query}"


def regex_group(values: list[str]) -> str:
    """Grafana's InfluxDB formatting of a multi-value selection: ``(a|b)``, values regex-escaped."""
    return "(" + "|".join(re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), v) for v in values) + ")"


def substitute_variables(query: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):
        query = query.replace("${" + name + "}", values[name])
        query = re.sub(r"\$" + re.escape(name) + r"(?![A-Za-z0-9_])", lambda _m: values[name], query)
    return query


def tag_values(client: InfluxClient, query: str) -> list[str]:
    return sorted({str(v) for r in client.query(query) for v in r.columns.get("value", [])})


def resolve_variables(client: InfluxClient, dashboard: dict) -> dict[str, str]:
    """Value of each query variable with *All* selected (``()`` when it lists nothing)."""
    values: dict[str, str] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            values[var["name"]] = regex_group(tag_values(client, substitute_variables(var["query"], values)))
    return values


def _zone(dashboard: dict):
    """The dashboard's time zone (``now/d``, ``now/M``, ``now/fy`` start at its local midnight)."""
    from datetime import timezone
    from zoneinfo import ZoneInfo

    name = dashboard.get("timezone") or "utc"
    return timezone.utc if name in ("utc", "browser") else ZoneInfo(name)


def time_range_ms(panel: dict, dashboard: dict, now_ns: int) -> tuple[int, int]:
    """The ``[from, to]`` Grafana would query for this panel, in epoch milliseconds.

    Calendar boundaries are local midnights of the dashboard's zone (``browser`` is taken as UTC).
    """
    from datetime import datetime

    end_ms = now_ns // 1_000_000
    rel = panel.get("timeFrom") or dashboard.get("time", {}).get("from", "now-6h")
    zone = _zone(dashboard)
    t = datetime.fromtimestamp(now_ns / 1e9, zone)
    if rel == "now/d":
        start = int(t.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    elif rel == "now/M":
        start = int(t.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp())
    elif rel == "now/fy":
        first = dashboard.get("fiscalYearStartMonth", 0) + 1
        year = t.year if t.month >= first else t.year - 1
        start = int(datetime(year, first, 1, tzinfo=zone).timestamp())
    else:
        m = re.fullmatch(r"(?:now-)?(\d+)([smhdw])", rel)
        if not m:
            raise ValueError(f"{dashboard.get('uid')}: panel {panel.get('title')!r}: relative time {rel!r} not understood")
        start = end_ms // 1000 - int(m.group(1)) * _UNIT_S[m.group(2)]
    return start * 1000, end_ms


def interval(panel: dict, start_ms: int, end_ms: int) -> str:
    seconds = max(1, (end_ms - start_ms) // 1000 // MAX_DATA_POINTS)
    if panel.get("interval"):
        m = re.fullmatch(r"(\d+)([smhdw])", panel["interval"])
        if m:
            seconds = max(seconds, int(m.group(1)) * _UNIT_S[m.group(2)])
    return f"{seconds}s"


def render_query(query: str, panel: dict, dashboard: dict, values: dict[str, str], now_ns: int) -> str:
    start_ms, end_ms = time_range_ms(panel, dashboard, now_ns)
    q = query.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    q = q.replace("$__interval", interval(panel, start_ms, end_ms))
    return substitute_variables(q, values)


def select_aliases(query: str) -> list[str]:
    """The ``AS "name"`` aliases of the outermost SELECT (the fields the panel displays)."""
    return re.findall(r' AS "([^"]+)"', query.split(" FROM ", 1)[0])


def check_dashboards(client: InfluxClient, dashboards: list[dict], now_ns: int | None = None) -> list[PanelCheck]:
    now_ns = now_ns if now_ns is not None else time.time_ns()
    out: list[PanelCheck] = []
    for dash in dashboards:
        uid = dash.get("uid", "?")
        try:
            values = resolve_variables(client, dash)
        except InfluxError as exc:
            out.append(PanelCheck(uid, "(variables)", "-", "error", "", str(exc)))
            continue
        for panel in dash.get("panels", []):
            for target in panel.get("targets", []):
                out.append(check_target(client, dash, panel, target, values, now_ns))
    return out


def check_target(client, dash, panel, target, values, now_ns) -> PanelCheck:
    uid, title, ref = dash.get("uid", "?"), panel.get("title", "?"), target.get("refId", "?")
    q = render_query(target["query"], panel, dash, values, now_ns)
    left = re.search(r"\$\{?\w+", q)
    if left:
        return PanelCheck(uid, title, ref, "error", q, f"variable {left.group(0)} has no value")
    t0 = time.perf_counter()
    try:
        results = client.query(q, epoch="ms")
    except InfluxError as exc:
        return PanelCheck(uid, title, ref, "error", q, str(exc).split(" (query:")[0])
    seconds = time.perf_counter() - t0
    rows = sum(len(r) for r in results)
    if not results:
        return PanelCheck(uid, title, ref, "empty", q, "no series (the panel shows 'No data')", 0, seconds)
    for name in select_aliases(target["query"]):
        cols = [r.columns[name] for r in results if name in r.columns]
        if not cols:
            return PanelCheck(uid, title, ref, "error", q, f"field {name!r} missing from the result", rows, seconds)
        vals = np.concatenate([np.asarray(c, dtype=np.float64) for c in cols])
        if not np.isfinite(vals).any():
            return PanelCheck(uid, title, ref, "empty", q, f"field {name!r} is null everywhere", rows, seconds)
    return PanelCheck(uid, title, ref, "ok", q, "", rows, seconds)


# --------------------------------------------------------------------------- annotations


def check_annotations(client: InfluxClient, dashboards: list[dict], now_ns: int | None = None) -> list[PanelCheck]:
    """Run every InfluxQL annotation query over its dashboard's range; ``empty`` when it finds no event."""
    now_ns = now_ns if now_ns is not None else time.time_ns()
    out = []
    for dash in dashboards:
        uid = dash.get("uid", "?")
        values = resolve_variables(client, dash)
        for a in dash.get("annotations", {}).get("list", []):
            target = a.get("target") or {}
            if "query" not in target:
                continue
            q = render_query(target["query"], {}, dash, values, now_ns)
            name = f"annotation {a['name']}"
            try:
                results = client.query(q, epoch="ms")
            except InfluxError as exc:
                out.append(PanelCheck(uid, name, "Anno", "error", q, str(exc).split(" (query:")[0]))
                continue
            rows = sum(len(r) for r in results)
            missing = [c for c in (target.get("textColumn"), target.get("tagsColumn")) if c and not any(c in r.columns or c in r.tags for r in results)]
            if not rows:
                out.append(PanelCheck(uid, name, "Anno", "empty", q, "no event in the range"))
            elif missing:
                out.append(PanelCheck(uid, name, "Anno", "error", q, f"column(s) {missing} missing from the result", rows))
            else:
                out.append(PanelCheck(uid, name, "Anno", "ok", q, "", rows))
    return out


# --------------------------------------------------------------------------- alert rules

_REDUCERS = {
    "last": lambda v: v[-1],
    "mean": np.mean,
    "min": np.min,
    "max": np.max,
    "sum": np.sum,
    "count": len,
    "median": np.median,
}
_OPS = {
    "gt": lambda x, p: x > p[0],
    "lt": lambda x, p: x < p[0],
    "gte": lambda x, p: x >= p[0],
    "lte": lambda x, p: x <= p[0],
    "eq": lambda x, p: x == p[0],
    "ne": lambda x, p: x != p[0],
    "within_range": lambda x, p: p[0] < x < p[1],
    "outside_range": lambda x, p: x < p[0] or x > p[1],
}


@dataclass(frozen=True)
class AlertInstance:
    rule: str
    labels: tuple  # sorted (key, value) pairs of the series' tags
    value: float
    firing: bool


def _duration_s(text: str) -> int:
    if not text or text == "0":
        return 0
    total = 0
    for n, u in re.findall(r"(\d+)([smhdw])", text):
        total += int(n) * _UNIT_S[u]
    return total


def evaluate_once(client: InfluxClient, rule: dict, now_ns: int) -> dict[tuple, tuple[float, bool]]:
    """One evaluation of a rule as Grafana's alerting does it: data queries over their relative
    time range (``$timeFilter``, ``$__interval`` from ``intervalMs``), then the server-side
    expressions ``reduce`` (drop non-numbers) and ``threshold``; returns labels -> (value, condition)."""
    results: dict[str, dict[tuple, object]] = {}
    for q in rule["data"]:
        model, ref = q["model"], q["refId"]
        if q["datasourceUid"] != "__expr__":
            rtr = q.get("relativeTimeRange", {})
            start_ms = (now_ns // 1_000_000) - int(rtr.get("from", 600)) * 1000
            end_ms = (now_ns // 1_000_000) - int(rtr.get("to", 0)) * 1000
            iv = f"{int(model.get('intervalMs', 60000)) // 1000}s"
            text = model["query"].replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms").replace("$__interval", iv)
            series: dict[tuple, object] = {}
            for r in client.query(text, epoch="ms"):
                for name in select_aliases(model["query"]):
                    if name in r.columns:
                        key = tuple(sorted(r.tags.items())) + ((("__field", name),) if len(select_aliases(model["query"])) > 1 else ())
                        series[key] = np.asarray(r.columns[name], dtype=np.float64)
            results[ref] = series
        elif model["type"] == "reduce":
            red = _REDUCERS[model["reducer"]]
            out = {}
            for key, vals in results[model["expression"]].items():
                vals = np.asarray(vals, dtype=np.float64)
                vals = vals[np.isfinite(vals)]
                if len(vals):
                    out[key] = float(red(vals))
            results[ref] = out
        elif model["type"] == "threshold":
            ev = model["conditions"][0]["evaluator"]
            results[ref] = {key: (v, bool(_OPS[ev["type"]](v, ev["params"]))) for key, v in results[model["expression"]].items()}
        else:
            raise ValueError(f"rule {rule.get('uid')}: expression type {model['type']!r} not emulated")
    return results[rule["condition"]]


def evaluate_rule(client: InfluxClient, rule: dict, now_ns: int, interval_s: int = 60) -> list[AlertInstance]:
    """The rule's instances at ``now_ns``: firing when the condition held at every evaluation
    (every ``interval_s``) over its ``for`` duration, as Grafana's Pending -> Alerting does."""
    pending = _duration_s(rule.get("for", "0s"))
    steps = [now_ns - k * interval_s * 10**9 for k in range(pending // interval_s, -1, -1)]
    history = [evaluate_once(client, rule, t) for t in steps]
    last = history[-1]
    out = []
    for key, (value, cond) in sorted(last.items()):
        held = all(h.get(key, (None, False))[1] for h in history)
        out.append(AlertInstance(rule.get("uid", "?"), key, value, cond and held))
    return out


def check_alerts(client: InfluxClient, doc: dict, now_ns: int | None = None) -> list[PanelCheck]:
    """Run every alert rule's query; ``error`` when InfluxDB refuses it, else ``ok`` with the firing instances."""
    now_ns = now_ns if now_ns is not None else time.time_ns()
    out = []
    for g in doc.get("groups", []):
        for rule in g.get("rules", []):
            try:
                inst = evaluate_once(client, rule, now_ns)
            except InfluxError as exc:
                out.append(PanelCheck(g["name"], f"alert {rule['title']}", rule["uid"], "error", rule["data"][0]["model"]["query"], str(exc).split(" (query:")[0]))
                continue
            firing = [dict(k) for k, (_, c) in inst.items() if c]
            detail = f"{len(inst)} series, firing: {firing}" if firing else f"{len(inst)} series, none firing"
            out.append(PanelCheck(g["name"], f"alert {rule['title']}", rule["uid"], "ok", rule["data"][0]["model"]["query"], detail, len(inst)))
    return out
