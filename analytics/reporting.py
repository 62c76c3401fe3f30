"""Period reports: rounding rule per scheme, fiscal and calendar years, Japan's share, roll-ups.

- Keep full precision in every interval and aggregate; round the period total down to whole
  tonnes only at the reported ER_p [derived: 1,280 MWh x 0.8154 = 1,043.712 published as 1,043
  t; J-Credit floors the same way, published]. The rule is a per-scheme setting
  (:data:`ROUNDING`). A negative period total is reported as 0 (no negative credits) [form].
- Reports per monitoring period (chosen by the project), per Japanese fiscal year
  (1 April - 31 March, labelled by the year it starts) and per calendar year [published].
- Ex-ante (plan) and ex-post (monitored) values side by side, both kept [published].
- Credits are shared between Japan and the host country by the project's Credit Allocation
  Form share [published]; Japan's part is floored to whole tonnes, the host gets the rest [form].
- Portfolio roll-up across projects, cities and countries sums per-project *reported* values
  (each project's credits are issued separately) beside the unrounded sums.

References
----------
.. [1] plantmrv, ``shared/docs/methodologies.md`` section 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np

#: Rounding of the reported period total per crediting scheme.
ROUNDING = {"jcm": "floor", "j-credit": "floor", "none": "none"}
ROUNDING_SOURCE = {
    "jcm": "methodologies.md s.1: 1,043.712 published as 1,043 t [derived]",
    "j-credit": "J-Credit scheme floors to whole tonnes [published]",
    "none": "no rounding (internal KPIs)",
}
NS_PER_S = 1_000_000_000


def round_reported_t_co2(total_t_co2: float, scheme: str = "jcm") -> float:
    """The reported ER_p of a period total under ``scheme`` (JCM: floor, never below 0).

    Parameters
    ----------
    total_t_co2 : float  Full-precision sum of interval reductions [tCO2]
    scheme : str  Key of :data:`ROUNDING`

    Returns
    -------
    float  Reported reductions [tCO2] (whole tonnes for flooring schemes)
    """
    try:
        rule = ROUNDING[scheme]
    except KeyError:
        raise ValueError(f"rounding scheme {scheme!r} unknown; choose one of {', '.join(ROUNDING)}") from None
    total = float(total_t_co2)
    if not math.isfinite(total):
        raise ValueError(f"period total is not finite: {total}")
    total = max(total, 0.0)
    if rule == "floor":
        # guard against 1042.9999999997 from summing many floats that should be 1043
        return float(math.floor(total + 1e-9))
    return total


def _year_starts_ns(zone, first_year: int, last_year: int, month: int) -> np.ndarray:
    """UTC ns of local midnight on the 1st of ``month`` for each year (``zone`` a tzinfo)."""
    from datetime import datetime

    return np.array([int(datetime(y, month, 1, tzinfo=zone).timestamp()) * NS_PER_S for y in range(first_year, last_year + 1)], np.int64)


def _local_year(ts_ns, zone, month: int) -> np.ndarray:
    """The year whose local ``month``-1 midnight is the latest at or before each timestamp."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    if not len(ts):
        return np.zeros(0, np.int64)
    lo = int(ts.min() // (365 * 86400 * NS_PER_S)) + 1970 - 2
    hi = int(ts.max() // (365 * 86400 * NS_PER_S)) + 1970 + 2
    starts = _year_starts_ns(zone, lo, hi, month)
    return lo + np.searchsorted(starts, ts, side="right") - 1


def calendar_year(ts_ns, zone=None) -> np.ndarray:
    """Calendar year of each timestamp in ``zone`` (a tzinfo, e.g. ``ZoneInfo("Asia/Yangon")``; UTC by default)."""
    from datetime import timezone

    return _local_year(ts_ns, zone or timezone.utc, 1)


def japanese_fiscal_year(ts_ns) -> np.ndarray:
    """Japanese fiscal year (1 April 00:00 JST - 31 March) labelled by its starting year."""
    from datetime import timedelta, timezone

    return _local_year(ts_ns, timezone(timedelta(hours=9), "JST"), 4)


@dataclass
class PeriodReport:
    project: str
    period: str
    start_ns: int
    end_ns: int
    reference_t_co2: float
    project_t_co2: float
    reduction_t_co2: float  # full precision
    reported_t_co2: float  # after the scheme's rounding
    ex_ante_t_co2: float | None = None
    japan_share: float | None = None
    japan_t_co2: float | None = None
    host_t_co2: float | None = None
    energy_saved_kwh: float = 0.0
    completeness: float = 1.0
    gap_filled_s: float = 0.0
    rounding: str = "jcm"
    credited: bool = True
    city: str | None = None
    country: str | None = None
    cobenefits: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def allocate_credits(reported_t_co2: float, japan_share: float | None) -> tuple[float | None, float | None]:
    """(Japan, host) tonnes of a reported total by the Credit Allocation Form share.

    Japan's part is floored to whole tonnes, the host country gets the rest.
    """
    if japan_share is None:
        return None, None
    if not 0.0 <= japan_share <= 1.0:
        raise ValueError(f"japan_share must be within 0..1, got {japan_share}")
    japan = float(math.floor(reported_t_co2 * japan_share + 1e-9))
    return japan, float(reported_t_co2 - japan)


def group_sums(keys, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sum each column per distinct key (vectorized): ``(unique_keys, {name: sums})``."""
    uniq, inv = np.unique(np.asarray(keys), return_inverse=True)
    return uniq, {name: np.bincount(inv, weights=np.asarray(col, dtype=float), minlength=len(uniq)) for name, col in columns.items()}


def period_report(
    project: str,
    period: str,
    interval_start_ns,
    interval_s,
    reference_t_co2,
    project_t_co2,
    energy_saved_kwh=None,
    completeness=None,
    gap_filled_s=None,
    ex_ante_t_co2: float | None = None,
    japan_share: float | None = None,
    rounding: str = "jcm",
    credited: bool = True,
    city: str | None = None,
    country: str | None = None,
    cobenefits: dict | None = None,
) -> PeriodReport:
    """Totals of one period from its interval results (full precision until the end).

    Parameters
    ----------
    interval_start_ns : array  Start of each interval [ns]
    interval_s : float or array  Interval length(s) [s] (weights completeness)
    reference_t_co2, project_t_co2 : array  Per-interval emissions [tCO2]
    energy_saved_kwh, completeness, gap_filled_s : array, optional
    ex_ante_t_co2 : float, optional  The plan's estimate for the same period
    """
    ts = np.asarray(interval_start_ns, dtype=np.int64)
    re_ = float(np.sum(reference_t_co2))
    pe = float(np.sum(project_t_co2))
    er = re_ - pe
    reported = round_reported_t_co2(er, rounding) if credited else 0.0
    japan, host = allocate_credits(reported, japan_share) if credited else (None, None)
    length = np.broadcast_to(np.asarray(interval_s, dtype=float), ts.shape)
    comp = 1.0
    if completeness is not None and length.sum() > 0:
        comp = float(np.sum(np.asarray(completeness, dtype=float) * length) / length.sum())
    end = int(ts.max() + int(length[np.argmax(ts)] * NS_PER_S)) if len(ts) else 0
    return PeriodReport(
        project, period, int(ts.min()) if len(ts) else 0, end, re_, pe, er, reported, ex_ante_t_co2, japan_share, japan, host,
        float(np.sum(energy_saved_kwh)) if energy_saved_kwh is not None else 0.0, comp,
        float(np.sum(gap_filled_s)) if gap_filled_s is not None else 0.0, rounding, credited, city, country, dict(cobenefits or {}),
    )


def reports_by(
    kind: str,
    project: str,
    interval_start_ns,
    interval_s,
    reference_t_co2,
    project_t_co2,
    zone=None,
    **kwargs,
) -> list[PeriodReport]:
    """Period reports per ``kind`` = ``fiscal_year`` (Japanese, JST) or ``calendar_year`` (in
    ``zone``, the project's time zone). Intervals are assigned by their start, which is exact
    when they align with the boundaries (:func:`plantmrv.analytics.config.check_report_alignment`)."""
    ts = np.asarray(interval_start_ns, dtype=np.int64)
    if kind == "fiscal_year":
        labels = japanese_fiscal_year(ts)
        name = "FY{}"
    elif kind == "calendar_year":
        labels = calendar_year(ts, zone)
        name = "CY{}"
    else:
        raise ValueError(f"report kind {kind!r}: use fiscal_year or calendar_year")
    arrays = {k: v for k, v in kwargs.items() if k in ("energy_saved_kwh", "completeness", "gap_filled_s") and v is not None}
    scalars = {k: v for k, v in kwargs.items() if k not in arrays}
    scalars.pop("ex_ante_t_co2", None)  # an ex-ante estimate belongs to the monitoring period
    length = np.broadcast_to(np.asarray(interval_s, dtype=float), ts.shape)
    out = []
    for label in np.unique(labels):
        m = labels == label
        out.append(
            period_report(
                project, name.format(int(label)), ts[m], length[m], np.asarray(reference_t_co2)[m], np.asarray(project_t_co2)[m],
                **{k: np.asarray(v)[m] for k, v in arrays.items()}, **scalars,
            )
        )
    return out


def portfolio_rollup(reports: Iterable[PeriodReport], by: str = "country") -> list[dict]:
    """Sum period reports per ``by`` (``project``, ``city``, ``country`` or ``all``).

    Reported (rounded) values are summed as issued per project; the unrounded sums sit beside.
    """
    if by not in ("project", "city", "country", "all"):
        raise ValueError(f"roll-up by {by!r}: use project, city, country or all")
    groups: dict[str, dict] = {}
    for r in reports:
        key = "all" if by == "all" else (getattr(r, by) or "unknown")
        g = groups.setdefault(key, {by: key, "projects": set(), "reference_t_co2": 0.0, "project_t_co2": 0.0, "reduction_t_co2": 0.0, "reported_t_co2": 0.0, "japan_t_co2": 0.0, "ex_ante_t_co2": 0.0, "energy_saved_kwh": 0.0})
        g["projects"].add(r.project)
        for k in ("reference_t_co2", "project_t_co2", "reduction_t_co2", "energy_saved_kwh"):
            g[k] += getattr(r, k)
        if r.credited:
            g["reported_t_co2"] += r.reported_t_co2
            g["japan_t_co2"] += r.japan_t_co2 or 0.0
        g["ex_ante_t_co2"] += r.ex_ante_t_co2 or 0.0
    out = []
    for g in groups.values():
        g["projects"] = sorted(g["projects"])
        out.append(g)
    return sorted(out, key=lambda g: g[by])
