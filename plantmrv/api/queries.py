"""InfluxQL for the API, built only from whitelisted identifiers and escaped literals.

Nothing a caller sends is pasted into a query: project ids are checked against the configured
projects and then quoted with :func:`~plantmrv.influx.quote_literal`; measurements, fields and
tags come from the config and are quoted with :func:`~plantmrv.influx.quote_ident`; times are
integers (Unix ns) formatted by ``int()``; the ``interval`` tag is one of a fixed set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from plantmrv.api.models import MonitoringPointInfo
from plantmrv.influx import InfluxClient, json_series, quote_ident, quote_literal

MRV_MEASUREMENT = "mrv"
#: Numeric fields of measurement ``mrv`` (docs/data-model.md), in export order.
MRV_FIELDS = (
    "reference_energy_kwh",
    "project_energy_kwh",
    "energy_saved_kwh",
    "reference_t_co2",
    "project_t_co2",
    "reduction_t_co2",
    "completeness",
    "gap_filled_s",
)
MRV_STRING_FIELDS = ("params_hash",)
#: Per-interval inputs the engine stores beside the results (co-benefit fields of ``mrv``):
#: the monitored quantities of the specific-energy and constant-power-hours baselines.
MRV_INPUT_FIELDS = ("volume_m3", "operating_h")
SOURCE_INTERVAL_S = {"1m": 60, "1h": 3600}
NS = 1_000_000_000


def _lit(value: str) -> str:
    """A string literal; CR and LF cannot be written in an InfluxQL string (1.x answers
    BADSTRING), and no tag value holds them, so they are refused before any query."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"{value!r}: line breaks cannot appear in an InfluxQL string")
    return quote_literal(value)


def _ident(name: str) -> str:
    if "\n" in name or "\r" in name:
        raise ValueError(f"{name!r}: line breaks cannot appear in an InfluxQL identifier")
    return quote_ident(name)


def _time_range(start_ns: int, end_ns: int) -> str:
    return f"time >= {int(start_ns)} AND time < {int(end_ns)}"


def mrv_query(project_id: str, source_interval: str, start_ns: int, end_ns: int) -> str:
    """Every result interval of one project in ``[start, end)``, oldest first."""
    if source_interval not in SOURCE_INTERVAL_S:
        raise ValueError(f"source interval {source_interval!r} is not one of {sorted(SOURCE_INTERVAL_S)}")
    fields = ", ".join(_ident(f) for f in MRV_FIELDS + MRV_INPUT_FIELDS + MRV_STRING_FIELDS)
    return (
        f"SELECT {fields} FROM {_ident(MRV_MEASUREMENT)} WHERE "
        f"{_ident('project')} = {_lit(project_id)} AND {_ident('interval')} = {_lit(source_interval)} "
        f"AND {_time_range(start_ns, end_ns)}"
    )


def _raw_where(point: MonitoringPointInfo, start_ns: int, end_ns: int) -> str:
    where = [f"{_ident('site')} = {_lit(point.site)}"]
    if point.asset:
        where.append(f"{_ident('asset')} = {_lit(point.asset)}")
    where.append(_time_range(start_ns, end_ns))
    return " AND ".join(where)


def raw_query(point: MonitoringPointInfo, start_ns: int, end_ns: int, edge: str | None = None) -> str:
    """Raw values of one monitoring point at native resolution, oldest first.

    ``edge="before"``: only the last sample before ``end_ns``; ``edge="after"``: only the first
    sample at or after ``start_ns`` (the samples that bracket a range, for meter differences).
    """
    q = f"SELECT {_ident(point.field)} FROM {_ident(point.measurement)} WHERE {_raw_where(point, start_ns, end_ns)}"
    if edge == "before":
        q += " ORDER BY time DESC LIMIT 1"
    elif edge == "after":
        q += " LIMIT 1"
    return q


@dataclass
class MrvColumns:
    """Result intervals as numpy columns (``time`` int64 ns; NaN where a field is missing)."""

    time: np.ndarray
    fields: dict[str, np.ndarray]
    params_hash: np.ndarray

    def __len__(self) -> int:
        return len(self.time)


def fetch_mrv(client: InfluxClient, project_id: str, source_interval: str, start_ns: int, end_ns: int) -> MrvColumns:
    results = client.query(mrv_query(project_id, source_interval, start_ns, end_ns))
    names = MRV_FIELDS + MRV_INPUT_FIELDS
    times, cols, hashes = [], {f: [] for f in names}, []
    for r in results:
        n = len(r)
        times.append(r.columns["time"])
        for f in names:
            col = r.columns.get(f)
            cols[f].append(_as_float(col, n))
        h = r.columns.get("params_hash")
        hashes.append(np.full(n, "", dtype=object) if h is None else np.array(["" if v is None else str(v) for v in h], dtype=object))
    if not times:
        return MrvColumns(np.zeros(0, np.int64), {f: np.zeros(0) for f in names}, np.zeros(0, dtype=object))
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    return MrvColumns(t[order], {f: np.concatenate(cols[f])[order] for f in names}, np.concatenate(hashes)[order])


def _as_float(col: np.ndarray | None, n: int) -> np.ndarray:
    if col is None:
        return np.full(n, np.nan)
    if col.dtype == object:
        return np.array([float(v) if isinstance(v, (int, float)) else np.nan for v in col], dtype=np.float64)
    return col.astype(np.float64)


BRACKET_NS = 86400 * NS  # how far outside a range the bracketing samples are looked for


def iter_raw(client: InfluxClient, point: MonitoringPointInfo, start_ns: int, end_ns: int, chunk_size: int = 20000) -> Iterator[tuple[list[int], list]]:
    """Stream ``(ts_ns list, value list)`` chunks of one monitoring point's raw values.

    The rows are the samples in ``[start, end)`` plus the two that bracket the range: the last
    sample before ``start`` and the first at or after ``end`` (each within one day), so every
    interval's meter difference can be re-derived from the export alone.
    """
    yield from _iter_query(client, raw_query(point, start_ns - BRACKET_NS, start_ns, edge="before"), chunk_size)
    yield from _iter_query(client, raw_query(point, start_ns, end_ns), chunk_size)
    yield from _iter_query(client, raw_query(point, end_ns, end_ns + BRACKET_NS, edge="after"), chunk_size)


def raw_fingerprint(client: InfluxClient, point: MonitoringPointInfo, start_ns: int, end_ns: int) -> tuple:
    """Cheap identity of the rows :func:`iter_raw` yields: count and sum computed by influxd
    over the range, plus the two bracketing samples. Any added, removed or rewritten sample
    changes it (barring changes that keep both count and sum), so a report can reuse its hash."""
    f = _ident(point.field)
    res = client.query(f"SELECT count({f}) AS n, sum({f}) AS s FROM {_ident(point.measurement)} WHERE {_raw_where(point, start_ns, end_ns)}")
    agg = (int(res[0].columns["n"][0]), float(res[0].columns["s"][0])) if res else (0, 0.0)
    edges = []
    for q in (raw_query(point, start_ns - BRACKET_NS, start_ns, edge="before"), raw_query(point, end_ns, end_ns + BRACKET_NS, edge="after")):
        edges.append(tuple((t[0], repr(v[0])) for t, v in _iter_query(client, q, 10)))
    return (point.measurement, point.site, point.asset, point.field, agg, tuple(edges))


def _iter_query(client: InfluxClient, q: str, chunk_size: int) -> Iterator[tuple[list[int], list]]:
    for _statement, s in json_series(client.query_chunks(q, epoch="ns", chunk_size=chunk_size), q):
        values = s.get("values") or []
        if values:
            yield [v[0] for v in values], [v[1] for v in values]


def raw_line(point: MonitoringPointInfo, ts_ns: int, value) -> str:
    """One raw row as hashed and exported: ``measurement,site,asset,field,ts_ns,value``."""
    return f"{point.measurement},{point.site},{point.asset or ''},{point.field},{int(ts_ns)},{format_value(value)}"


def format_value(value) -> str:
    """Shortest round-trip text of a float (``repr``); empty for null; booleans as 0/1."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1.0" if value else "0.0"
    if isinstance(value, (int, float)):
        return repr(float(value))
    return str(value)
