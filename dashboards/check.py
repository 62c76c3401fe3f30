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

import calendar
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
            return f"{head} ({self.rows} rows, {self.seconds * 1000:.0f} ms)"
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


def _utc(y: int, mo: int, d: int) -> int:
    return calendar.timegm((y, mo, d, 0, 0, 0, 0, 0, 0))


def time_range_ms(panel: dict, dashboard: dict, now_ns: int) -> tuple[int, int]:
    """The ``[from, to]`` Grafana would query for this panel, in epoch milliseconds."""
    end_ms = now_ns // 1_000_000
    rel = panel.get("timeFrom") or dashboard.get("time", {}).get("from", "now-6h")
    t = time.gmtime(now_ns / 1e9)
    if rel == "now/d":
        start = _utc(t.tm_year, t.tm_mon, t.tm_mday)
    elif rel == "now/M":
        start = _utc(t.tm_year, t.tm_mon, 1)
    elif rel == "now/fy":
        first = dashboard.get("fiscalYearStartMonth", 0) + 1
        start = _utc(t.tm_year if t.tm_mon >= first else t.tm_year - 1, first, 1)
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
