"""Cumulative meters (registers) for the plant models: energy kWh, volume m3, mass t.

A simulated meter integrates a rate (kW, m3/h, t/h) over absolute time and presents it the way a
real register does: it starts at an initial reading at the meter's origin, only counts up,
wraps to zero at ``rollover`` and restarts from zero when the meter is replaced.

Integration rule (this *defines* the simulated meter, and :mod:`plantmrv.simulators.truth`
uses the same rule, so meters and ground truth agree exactly): the rate is evaluated at knots
on an absolute grid of ``step_s`` seconds (aligned to Unix time 0), and integrated with the
trapezoid rule, i.e. exactly the integral of the piecewise-linear interpolant of the knots.
Between knots the register is linearly interpolated. Because knots sit on absolute time and
the integral runs from a fixed origin, a register reading at a timestamp does not depend on
the grid it was computed on. Whole days before the requested range are integrated once and
cached per (plant, day).

Functions
---------
- :func:`integral` : signed integral of rates from the origin to each timestamp [rate x h].
- :func:`register` : energy -> register reading with initial value, replacements, rollover.
- :func:`meter_fields` : both, for a plant model's meters.
- :func:`parse_time_ns` : ISO-8601 / Unix-ns parser used for meter and fault times.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Hashable, Mapping

import numpy as np

from .signals import NS_PER_DAY, NS_PER_S

RateFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]

_DAY_CACHE: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_DAY_CACHE_MAX = 200_000


def parse_time_ns(value: str | int | float | datetime) -> int:
    """Unix ns from an ISO-8601 string (``Z`` or offset; naive means UTC), a datetime or an int."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float):
        return int(value)
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if text.lstrip("-").isdigit():
            return int(text)
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return _dt_ns(dt)


def _dt_ns(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


@dataclass(frozen=True)
class MeterParams:
    """How a plant's registers behave. One set per plant, shared by its meters.

    Attributes
    ----------
    origin : str  Time at which every register of the plant reads ``initial`` (ISO-8601, truncated
        to UTC midnight). Source: simulator convention; pick a date near your test period to keep
        the first computation short.
    initial : float  Register reading at ``origin`` [register units].
    rollover : float  Registers wrap to 0 when they reach this value [register units]. Real
        revenue meters have 6-9 digits; the default 1e9 never wraps in practice.
    step_s : float  Integration knot spacing [s]; must divide 86,400.
    replacements : tuple[str, ...]  Times at which the meter is replaced: the register restarts
        at 0 (ISO-8601 or Unix ns). Faults of kind ``meter_reset`` are added here.
    """

    origin: str = "2026-01-01T00:00:00Z"
    initial: float = 100_000.0
    rollover: float = 1e9
    step_s: float = 60.0
    replacements: tuple = ()

    @property
    def origin_ns(self) -> int:
        t = parse_time_ns(self.origin)
        return t - t % NS_PER_DAY

    @property
    def step_ns(self) -> int:
        step = int(round(self.step_s * NS_PER_S))
        if step <= 0 or NS_PER_DAY % step:
            raise ValueError(f"meter.step_s: {self.step_s} must be > 0 and divide 86400")
        return step

    @property
    def replacements_ns(self) -> np.ndarray:
        return np.sort(np.array([parse_time_ns(r) for r in self.replacements], dtype=np.int64))


def _trapezoid_cumsum(rates: np.ndarray, step_ns: int) -> np.ndarray:
    """Cumulative trapezoid integral of knot rates [per h] -> [rate x h], first element 0."""
    out = np.empty_like(rates)
    out[..., 0] = 0.0
    np.cumsum(0.5 * (rates[..., 1:] + rates[..., :-1]), axis=-1, out=out[..., 1:])
    return out * (step_ns / (3600 * NS_PER_S))


def _day_totals(rate_fn: RateFn, names: tuple[str, ...], days: np.ndarray, step_ns: int, cache_key) -> np.ndarray:
    """Integral of each rate over each whole UTC day, shape (len(days), len(names)); cached."""
    out = np.empty((len(days), len(names)))
    missing = []
    for i, d in enumerate(days.tolist()):
        hit = _DAY_CACHE.get((cache_key, names, step_ns, d)) if cache_key is not None else None
        if hit is None:
            missing.append(i)
        else:
            out[i] = hit
    if missing:
        per_day = NS_PER_DAY // step_ns + 1
        miss = np.asarray(missing)
        # at most ~2M knots per model call to bound memory
        chunk = max(1, 2_000_000 // per_day)
        for c in range(0, len(miss), chunk):
            idx = miss[c : c + chunk]
            knots = (days[idx][:, None] * NS_PER_DAY + np.arange(per_day, dtype=np.int64)[None, :] * step_ns).ravel()
            rates = rate_fn(knots)
            for j, name in enumerate(names):
                r = np.asarray(rates[name], dtype=np.float64).reshape(len(idx), per_day)
                out[idx, j] = _trapezoid_cumsum(r, step_ns)[:, -1]
        if cache_key is not None:
            for i in missing:
                _DAY_CACHE[(cache_key, names, step_ns, int(days[i]))] = out[i].copy()
            while len(_DAY_CACHE) > _DAY_CACHE_MAX:
                _DAY_CACHE.popitem(last=False)
    return out


def integral(
    rate_fn: RateFn,
    names: tuple[str, ...],
    ts_ns: np.ndarray,
    origin_ns: int,
    step_ns: int,
    cache_key: Hashable | None = None,
) -> dict[str, np.ndarray]:
    """Signed integral of each named rate from ``origin_ns`` to every timestamp.

    Parameters
    ----------
    rate_fn : callable  ``rate_fn(knot_ts_ns) -> {name: rate array}``; rates per hour
        (kW, m3/h, t/h), so the result is in kWh, m3, t.
    names : tuple of str  Which rates to integrate.
    ts_ns : array  Timestamps [Unix ns], any order.
    origin_ns : int  Start of integration, a UTC midnight [Unix ns].
    step_ns : int  Knot spacing, dividing one day [ns].
    cache_key : hashable, optional  Identity of ``rate_fn`` for caching whole-day totals.

    Returns
    -------
    dict of name -> float64 array  Integral [rate x h]; negative before the origin.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    if ts.size == 0:
        return {n: np.empty(0) for n in names}
    if origin_ns % NS_PER_DAY:
        raise ValueError(f"meter origin {origin_ns} is not a UTC midnight")
    day_a = int(ts.min() // NS_PER_DAY)  # detailed range starts at this day
    a_ns = day_a * NS_PER_DAY
    origin_day = origin_ns // NS_PER_DAY
    # integral origin -> a over whole days
    if day_a >= origin_day:
        days = np.arange(origin_day, day_a, dtype=np.int64)
        sign = 1.0
    else:
        days = np.arange(day_a, origin_day, dtype=np.int64)
        sign = -1.0
    base = sign * _day_totals(rate_fn, names, days, step_ns, cache_key).sum(axis=0) if len(days) else np.zeros(len(names))
    # detailed knots a .. ceil(max)
    k_hi = -(-(int(ts.max()) - a_ns) // step_ns)
    knots = a_ns + np.arange(k_hi + 2, dtype=np.int64) * step_ns
    rates = rate_fn(knots)
    pos = (ts - a_ns).astype(np.float64) / step_ns
    k = np.floor(pos).astype(np.int64)
    frac = pos - k
    out = {}
    for j, name in enumerate(names):
        r = np.asarray(rates[name], dtype=np.float64)
        cum = _trapezoid_cumsum(r, step_ns)
        # exact integral of the linear interpolant up to the fractional position
        seg = (r[k] + 0.5 * (r[k + 1] - r[k]) * frac) * frac * (step_ns / (3600 * NS_PER_S))
        out[name] = base[j] + cum[k] + seg
    return out


def register(
    energy: np.ndarray,
    ts_ns: np.ndarray,
    meter: MeterParams,
    energy_at_replacements: np.ndarray,
) -> np.ndarray:
    """Register reading from the signed integral since the origin.

    ``reading = (initial + E(t)) mod rollover`` before the first replacement and
    ``(E(t) - E(r)) mod rollover`` after the latest replacement ``r <= t``.
    """
    repl = meter.replacements_ns
    e = np.asarray(energy, dtype=np.float64)
    if len(repl):
        idx = np.searchsorted(repl, np.asarray(ts_ns, dtype=np.int64), side="right") - 1
        base = np.where(idx >= 0, np.asarray(energy_at_replacements)[np.maximum(idx, 0)], -meter.initial)
    else:
        base = -meter.initial
    return np.mod(e - base, meter.rollover)


def meter_fields(
    rate_fn: RateFn,
    meters: Mapping[str, str],
    ts_ns: np.ndarray,
    meter: MeterParams,
    cache_key: Hashable | None = None,
) -> dict[str, np.ndarray]:
    """Register readings for a plant's meters.

    Parameters
    ----------
    rate_fn : callable  ``rate_fn(knot_ts_ns) -> {meter_field: rate}`` (rate per hour).
    meters : mapping  Meter field names (keys) to integrate; values are descriptions (unused).
    ts_ns : array  Timestamps [Unix ns].
    meter : MeterParams  Origin, initial reading, rollover, replacements.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    names = tuple(meters)
    repl = meter.replacements_ns
    allts = np.concatenate([ts, repl]) if len(repl) else ts
    e = integral(rate_fn, names, allts, meter.origin_ns, meter.step_ns, cache_key)
    n = len(ts)
    return {name: register(e[name][:n], ts, meter, e[name][n:]) for name in names}
