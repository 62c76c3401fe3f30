"""InfluxQL for the API, built only from whitelisted identifiers and escaped literals.

Nothing a caller sends is pasted into a query: project ids are checked against the configured
projects and then quoted with :func:`~plantmrv.influx.quote_literal`; measurements, fields and
tags come from the config and are quoted with :func:`~plantmrv.influx.quote_ident`; times are
integers (Unix ns) formatted by ``int()``; the ``interval`` tag is one of a fixed set.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from plantmrv.api.models import MonitoringPointInfo
from plantmrv.influx import InfluxClient, quote_ident, quote_literal

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


def mrv_query(project_id: str, source_interval: str, start_ns: int, end_ns: int, extra: tuple[str, ...] = ()) -> str:
    """Every result interval of one project in ``[start, end)``, oldest first (with the numeric
    fields ``extra`` too: the inputs an export re-derives the results from)."""
    if source_interval not in SOURCE_INTERVAL_S:
        raise ValueError(f"source interval {source_interval!r} is not one of {sorted(SOURCE_INTERVAL_S)}")
    fields = ", ".join(_ident(f) for f in _numeric_fields(extra) + MRV_STRING_FIELDS)
    return (
        f"SELECT {fields} FROM {_ident(MRV_MEASUREMENT)} WHERE "
        f"{_ident('project')} = {_lit(project_id)} AND {_ident('interval')} = {_lit(source_interval)} "
        f"AND {_time_range(start_ns, end_ns)}"
    )


def events_query(project_id: str, start_ns: int, end_ns: int) -> str:
    """The meter events the engine found for one project in ``[start, end)`` (measurement ``mrv_event``)."""
    return f"SELECT * FROM {_ident('mrv_event')} WHERE {_ident('project')} = {_lit(project_id)} AND {_time_range(start_ns, end_ns)}"


def mrv_sum_query(project_id: str, source_interval: str, field: str, start_ns: int, end_ns: int) -> str:
    """The sum of one numeric field of ``mrv`` over the intervals starting in ``[start, end)``."""
    if source_interval not in SOURCE_INTERVAL_S:
        raise ValueError(f"source interval {source_interval!r} is not one of {sorted(SOURCE_INTERVAL_S)}")
    return (f"SELECT sum({_ident(field)}) FROM {_ident(MRV_MEASUREMENT)} WHERE {_ident('project')} = {_lit(project_id)} "
            f"AND {_ident('interval')} = {_lit(source_interval)} AND {_time_range(start_ns, end_ns)}")


def _numeric_fields(extra: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(MRV_FIELDS + MRV_INPUT_FIELDS + tuple(extra)))


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

    def between(self, start_ns: int, end_ns: int) -> "MrvColumns":
        """The intervals stamped in ``[start, end)``."""
        lo, hi = np.searchsorted(self.time, [start_ns, end_ns], side="left")
        return MrvColumns(self.time[lo:hi], {f: v[lo:hi] for f, v in self.fields.items()}, self.params_hash[lo:hi])


def fetch_mrv(client: InfluxClient, project_id: str, source_interval: str, start_ns: int, end_ns: int, database: str | None = None,
              extra: tuple[str, ...] = ()) -> MrvColumns:
    """Stored results of one project (from ``database``, default the client's), sorted by time;
    the numeric fields ``extra`` as further columns (NaN where not stored)."""
    results = client.query(mrv_query(project_id, source_interval, start_ns, end_ns, extra), database=database)
    names = _numeric_fields(extra)
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


class RawDataError(ValueError):
    """Raw values that cannot be exported or hashed as numbers (rendered as HTTP 422)."""


def canonical_order(ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows in ascending time, ties (several series merged) by the value's bits: the order
    :mod:`plantmrv.api.digests` hashes them in."""
    if len(ts) < 2 or bool(np.all(np.diff(ts) > 0)):
        return ts, values
    bits = np.where(np.isnan(values), np.nan, values).astype(">f8").view(">u8")
    order = np.lexsort((bits, ts))
    return ts[order], values[order]


def read_raw(client: InfluxClient, point: MonitoringPointInfo, start_ns: int, end_ns: int, edge: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One point's raw rows in ``[start, end)`` as ``(ts_ns int64, value float64)`` in canonical
    order (:func:`canonical_order`), read as MessagePack in one answer.

    Integer and boolean fields become float64 (exact to 2**53; true = 1.0); text values are
    refused with :class:`RawDataError`: a monitored quantity is a number.
    """
    ts_parts, value_parts = [], []
    for r in client.query(raw_query(point, start_ns, end_ns, edge)):
        col = r.columns.get(point.field)
        if col is None:
            continue
        if col.dtype == object:
            bad = next((v for v in col if v is not None and not isinstance(v, (int, float))), None)
            if bad is not None:
                raise RawDataError(f"monitoring point {point.measurement}.{point.field} (site {point.site}, asset {point.asset or '-'}) holds a non-numeric value {str(bad)[:40]!r}")
            col = np.array([np.nan if v is None else float(v) for v in col], dtype=np.float64)
        keep = ~np.isnan(col)  # a null cell is no sample
        ts_parts.append(r.columns["time"][keep])
        value_parts.append(col.astype(np.float64)[keep])
    if not ts_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    return canonical_order(np.concatenate(ts_parts), np.concatenate(value_parts))


def count_raw(client: InfluxClient, point: MonitoringPointInfo, start_ns: int, end_ns: int) -> int:
    """influxd's count of one point's samples in ``[start, end)`` (a size check before any export)."""
    f = _ident(point.field)
    res = client.query(f"SELECT count({f}) AS n FROM {_ident(point.measurement)} WHERE {_raw_where(point, start_ns, end_ns)}")
    return int(sum(float(np.nansum(r.columns.get("n", np.zeros(0)))) for r in res))


def format_value(value) -> str:
    """Shortest round-trip text of a float (``repr``); empty for null; booleans as 0/1."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1.0" if value else "0.0"
    if isinstance(value, (int, float)):
        return repr(float(value))
    return str(value)
