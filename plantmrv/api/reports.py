"""Aggregation of result intervals into rows, gaps, monitoring-period totals and hashes.

Pure functions over the numpy columns of :mod:`plantmrv.api.queries`. Sums are taken at full
precision over the stored intervals; the methodology's rounding rule (JCM: floor) is applied
once, to the period total (``methodologies.md`` s.1). Intervals with no stored result count as
zero reduction and completeness 0, and are listed as gaps: nothing is filled silently.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from datetime import datetime, timedelta, timezone

import numpy as np

from plantmrv.api.models import GapInfo, MonitoringPeriodInfo, ProjectDetail, ReductionRow
from plantmrv.api.queries import MRV_FIELDS, MrvColumns, format_value
from plantmrv.i18n import N_

NS = 1_000_000_000
MIN_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TIME = datetime(2262, 1, 1, tzinfo=timezone.utc)
SUM_FIELDS = tuple(f for f in MRV_FIELDS if f != "completeness")
NO_RESULT = N_("no result stored for this interval (not computed, or its data never arrived): counted as 0 reduction")


class RangeError(ValueError):
    """A time range or period the API refuses (rendered as HTTP 422)."""


# --------------------------------------------------------------------------- time


def to_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def to_ns(dt: datetime) -> int:
    dt = to_utc(dt)
    return (calendar.timegm(dt.utctimetuple()) * 1_000_000 + dt.microsecond) * 1000


def from_ns(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(ns) // 1000)


def iso(ns: int) -> str:
    return from_ns(ns).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_range(start: datetime, end: datetime, max_days: float, align_s: int, what: str = "time range") -> tuple[int, int]:
    """Validate ``[start, end)``: ordered, within 1970..2262, at most ``max_days``, aligned."""
    start, end = to_utc(start), to_utc(end)
    if not (MIN_TIME <= start < MAX_TIME and MIN_TIME < end <= MAX_TIME):
        raise RangeError(f"{what}: times must lie between 1970-01-01 and 2262-01-01 UTC")
    if end <= start:
        raise RangeError(f"{what}: 'to' must be after 'from'")
    if (end - start).total_seconds() > max_days * 86400:
        raise RangeError(f"{what}: longer than {max_days:g} days (the configured maximum)")
    s_ns, e_ns = to_ns(start), to_ns(end)
    step = align_s * NS
    if s_ns % step or e_ns % step:
        unit = "minute" if align_s == 60 else "hour"
        raise RangeError(f"{what}: 'from' and 'to' must be whole {unit}s (UTC), the resolution of the stored results")
    return s_ns, e_ns


def _month_start(year: int, month: int) -> datetime:
    return datetime(year, month, 1, tzinfo=timezone.utc)


def bucket_edges(interval: str, start_ns: int, end_ns: int) -> np.ndarray:
    """Edges of the reporting rows: whole UTC hours, days, calendar months, or one period."""
    if interval == "period":
        return np.array([start_ns, end_ns], dtype=np.int64)
    if interval in ("hour", "day"):
        step = (3600 if interval == "hour" else 86400) * NS
        first = (start_ns // step + 1) * step
        inner = np.arange(first, end_ns, step, dtype=np.int64)
    elif interval == "month":
        s = from_ns(start_ns)
        y, m = s.year, s.month
        inner_list = []
        while True:
            m += 1
            if m == 13:
                y, m = y + 1, 1
            ns = to_ns(_month_start(y, m))
            if ns >= end_ns:
                break
            inner_list.append(ns)
        inner = np.array(inner_list, dtype=np.int64)
    else:
        raise RangeError(f"interval {interval!r} is not one of hour, day, month, period")
    return np.concatenate([[start_ns], inner, [end_ns]]).astype(np.int64)


def export_pieces(start_ns: int, end_ns: int, max_days: float, align_s: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into consecutive ranges an export accepts (at most ``max_days``
    each, whole multiples of ``align_s``), oldest first."""
    step = max(align_s, int(max_days * 86400) // align_s * align_s) * NS
    return [(s, min(s + step, end_ns)) for s in range(start_ns, end_ns, step)]


# --------------------------------------------------------------------------- aggregation


def aggregate(mrv: MrvColumns, edges: np.ndarray, source_s: int) -> list[ReductionRow]:
    """Sum the stored intervals into rows ``[edges[j], edges[j+1])``."""
    nb = len(edges) - 1
    idx = np.searchsorted(edges, mrv.time, side="right") - 1
    ok = (idx >= 0) & (idx < nb)
    idx = idx[ok]
    found = np.bincount(idx, minlength=nb)
    sums = {}
    for f in MRV_FIELDS:
        v = mrv.fields[f][ok]
        sums[f] = np.bincount(idx, weights=np.nan_to_num(v, nan=0.0), minlength=nb)
    expected = np.ceil((edges[1:] - edges[:-1]) / (source_s * NS)).astype(np.int64)
    rows = []
    for j in range(nb):
        has = found[j] > 0
        rows.append(
            ReductionRow(
                start=from_ns(edges[j]),
                end=from_ns(edges[j + 1]),
                **{f: (float(sums[f][j]) if has else None) for f in SUM_FIELDS if f != "gap_filled_s"},
                completeness=float(sums["completeness"][j] / expected[j]) if expected[j] else 0.0,
                gap_filled_s=float(sums["gap_filled_s"][j]),
                intervals_expected=int(expected[j]),
                intervals_found=int(found[j]),
            )
        )
    return rows


def gaps(mrv: MrvColumns, start_ns: int, end_ns: int, source_s: int, filled_by: str, limit: int) -> tuple[list[GapInfo], int]:
    """Intervals with missing or filled data, and runs of intervals with no stored result.

    Returns the first ``limit`` gaps (oldest first) and the exact total count.
    """
    step = source_s * NS
    comp = np.nan_to_num(mrv.fields["completeness"], nan=0.0)
    filled = np.nan_to_num(mrv.fields["gap_filled_s"], nan=0.0)
    flagged = np.flatnonzero((comp < 1.0 - 1e-9) | (filled > 0))
    items: list[tuple[int, int, float, float, str]] = [
        (int(mrv.time[i]), int(mrv.time[i]) + step, float(comp[i]), float(filled[i]), filled_by) for i in flagged
    ]
    # runs of expected interval starts with no stored result
    expected = np.arange(start_ns, end_ns, step, dtype=np.int64)
    missing = expected[~np.isin(expected, mrv.time)]
    if len(missing):
        breaks = np.flatnonzero(np.diff(missing) != step) + 1
        for run in np.split(missing, breaks):
            items.append((int(run[0]), int(run[-1]) + step, 0.0, 0.0, NO_RESULT))
    items.sort()
    out = [GapInfo(start=from_ns(s), end=from_ns(e), completeness=c, gap_filled_s=g, filled_by=how) for s, e, c, g, how in items[:limit]]
    return out, len(items)


def apply_rounding(value_t_co2: float, scheme: str) -> float:
    """The reported ER_p of a period total under the project's rounding scheme.

    Delegates to :func:`plantmrv.analytics.reporting.round_reported_t_co2` (JCM and J-Credit:
    floor to whole tonnes, never below 0; ``none``: unchanged), so the API reports exactly what
    the analytics period report says.
    """
    from plantmrv.analytics.reporting import round_reported_t_co2

    return round_reported_t_co2(value_t_co2, scheme)


def allocate(reported_t_co2: float, japan_share: float | None) -> float | None:
    """Japan's tonnes under the Credit Allocation Form (analytics' rule: floored)."""
    from plantmrv.analytics.reporting import allocate_credits

    return allocate_credits(reported_t_co2, japan_share)[0]


# --------------------------------------------------------------------------- periods

_FY = re.compile(r"^FY(\d{4})$")
_CY = re.compile(r"^(?:CY)?(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})$")
JST = timedelta(hours=9)
PERIOD_HELP = (
    "a monitoring period id of the project ('monitoring'), FY2024 (Japanese fiscal year, 1 April - 31 March JST), "
    "2024 or CY2024 (calendar year), 2024-03 (month), or 2024-01-01/2024-07-01 (UTC dates, end exclusive)"
)


def parse_period(project: ProjectDetail, spec: str) -> MonitoringPeriodInfo:
    for mp in project.monitoring_periods:
        if spec == mp.id:
            return mp
    try:
        if m := _FY.match(spec):
            # Japanese fiscal year, defined in JST (as analytics.reporting.japanese_fiscal_year)
            y = int(m.group(1))
            return MonitoringPeriodInfo(id=spec, start=_month_start(y, 4) - JST, end=_month_start(y + 1, 4) - JST)
        if m := _CY.match(spec):
            y = int(m.group(1))
            return MonitoringPeriodInfo(id=spec, start=_month_start(y, 1), end=_month_start(y + 1, 1))
        if m := _MONTH.match(spec):
            y, mo = int(m.group(1)), int(m.group(2))
            start = _month_start(y, mo)
            end = _month_start(y + (mo == 12), 1 if mo == 12 else mo + 1)
            return MonitoringPeriodInfo(id=spec, start=start, end=end)
        if m := _RANGE.match(spec):
            s = datetime.fromisoformat(m.group(1)).replace(tzinfo=timezone.utc)
            e = datetime.fromisoformat(m.group(2)).replace(tzinfo=timezone.utc)
            return MonitoringPeriodInfo(id=spec, start=s, end=e)
    except ValueError:
        pass
    raise RangeError(f"period must be {PERIOD_HELP}")


# --------------------------------------------------------------------------- hashes


def mrv_sha256(mrv: MrvColumns) -> str:
    """SHA-256 of the interval results as exported: ``ts_ns,<MRV_FIELDS...>,params_hash`` lines."""
    h = hashlib.sha256()
    for i in range(len(mrv)):
        h.update(mrv_line(mrv, i).encode() + b"\n")
    return h.hexdigest()


def mrv_line(mrv: MrvColumns, i: int) -> str:
    vals = [format_value(None if np.isnan(mrv.fields[f][i]) else float(mrv.fields[f][i])) for f in MRV_FIELDS]
    return ",".join([str(int(mrv.time[i]))] + vals + [str(mrv.params_hash[i])])


def report_sha256(parameters_sha: str, data_sha: str, mrv_sha: str) -> str:
    return hashlib.sha256(f"{parameters_sha}\n{data_sha}\n{mrv_sha}\n".encode()).hexdigest()
