"""Deterministic, grid-independent random signals and calendar helpers for the plant models.

Every random quantity is a pure function of ``(key, stream, absolute time)``: a 64-bit key drawn
once from the caller's seeded ``np.random.Generator``, a stream number per physical driver, and
the Unix timestamp. Noise is a counter-based hash (SplitMix64 finaliser) of the time index, so
the value at a timestamp does not depend on where the grid starts or how dense it is: a live
server that computes one second at a time and a backfill that computes a month at once agree
bit for bit.

- :func:`white_noise`: independent zero-mean unit-variance noise per time step (default 1 s).
- :func:`value_noise`: smooth N(0, 1)-like noise, random values at knots every ``period_s``
  seconds, smoothstep-interpolated between knots (so it has no kinks at knots).
- :func:`daily_event`: at most one event per day with a hashed probability and start time.
- :func:`local_hour`, :func:`day_of_year`: calendar from Unix ns (UTC) and a fixed UTC offset.

References
----------
.. [1] Steele, Lea, Flood: "Fast splittable pseudorandom number generators" (SplitMix64),
   OOPSLA 2014.
.. [2] Perlin, K.: "An image synthesizer" (value / gradient noise), SIGGRAPH 1985.
"""

from __future__ import annotations

import numpy as np

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO53 = float(2**53)


def key_from(rng_or_seed: np.random.Generator | int | None) -> int:
    """A 64-bit noise key from a seeded generator (one draw) or an integer seed (used as is)."""
    if isinstance(rng_or_seed, np.random.Generator):
        return int(rng_or_seed.integers(0, 2**63 - 1, dtype=np.int64))
    if rng_or_seed is None:
        return 0
    return int(rng_or_seed) & 0x7FFFFFFFFFFFFFFF


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic) [1]; works in place on a
    copy (one temporary), which matters for long arrays."""
    x = np.array(x, dtype=np.uint64, copy=True)
    t = np.right_shift(x, np.uint64(30))
    x ^= t
    x *= _M1
    np.right_shift(x, np.uint64(27), out=t)
    x ^= t
    x *= _M2
    np.right_shift(x, np.uint64(31), out=t)
    x ^= t
    return x


def hash_uniform(key: int, stream: int, idx: np.ndarray) -> np.ndarray:
    """Uniform (0, 1) float64 per integer index, a pure function of (key, stream, idx)."""
    with np.errstate(over="ignore"):
        seed = np.uint64((key * 0x632BE59BD9B4E019 + stream * 0x8CB92BA72F3D8DD7 + 1) & 0xFFFFFFFFFFFFFFFF)
        x = np.asarray(idx, dtype=np.int64).view(np.uint64) * _GOLDEN + seed
        x = _mix(_mix(x))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / _TWO53


def hash_normal(key: int, stream: int, idx: np.ndarray) -> np.ndarray:
    """Standard normal float64 per integer index (Box-Muller on two hashed uniforms)."""
    u1 = hash_uniform(key, 2 * stream + 1, idx)
    u2 = hash_uniform(key, 2 * stream + 2, idx)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def hash_irwin_hall(key: int, stream: int, idx: np.ndarray) -> np.ndarray:
    """Approximately standard normal per index, cheaply: the sum of the four 16-bit lanes of
    one hash (Irwin-Hall, n=4), centred and scaled to unit variance; bounded at +-3.46."""
    with np.errstate(over="ignore"):
        seed = np.uint64((key * 0x632BE59BD9B4E019 + stream * 0x8CB92BA72F3D8DD7 + 7) & 0xFFFFFFFFFFFFFFFF)
        x = _mix(np.asarray(idx, dtype=np.int64).view(np.uint64) * _GOLDEN + seed)
    m = np.uint64(0xFFFF)
    lanes = ((x & m) + ((x >> np.uint64(16)) & m) + ((x >> np.uint64(32)) & m) + (x >> np.uint64(48))).astype(np.float64)
    # each lane uniform on {0..65535}: mean 32767.5, var (65536^2 - 1) / 12
    return ((lanes - 4 * 32767.5) / np.sqrt(4 * (65536.0**2 - 1) / 12.0)).reshape(np.shape(idx))


def white_noise(ts_ns: np.ndarray, key: int, stream: int, step_s: float = 1.0) -> np.ndarray:
    """Zero-mean, unit-variance noise (Irwin-Hall n=4, near normal), constant within each
    ``step_s`` interval of absolute time.

    Parameters
    ----------
    ts_ns : array  Unix timestamps [ns]
    key, stream : int  Noise key and stream number
    step_s : float  Length of one independent draw [s]
    """
    step_ns = int(round(step_s * NS_PER_S))
    return hash_irwin_hall(key, stream, np.floor_divide(np.asarray(ts_ns, dtype=np.int64), step_ns))


def value_noise(ts_ns: np.ndarray, key: int, stream: int, period_s: float) -> np.ndarray:
    """Smooth noise: N(0, 1) values at knots every ``period_s`` seconds, smoothstep-interpolated
    (``w = f^2 (3 - 2 f)``: continuous slope, zero at the knots).

    Knot values are computed once per distinct knot in range, so a long dense grid costs one
    hash per knot plus an interpolation per sample. Variance between knots dips to ~0.5
    (the interpolation averages two independent values).
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    if ts.size == 0:
        return np.empty(0)
    period_ns = int(round(period_s * NS_PER_S))
    tmin, tmax = int(ts.min()), int(ts.max())
    k0 = tmin // period_ns
    n_knots = (tmax // period_ns) - k0 + 2
    knots = hash_normal(key, stream, np.arange(k0, k0 + n_knots, dtype=np.int64))
    # exact integer knot index and remainder: the fraction, hence the value, does not depend
    # on k0 (i.e. on where the grid starts)
    i, r = np.divmod(ts - k0 * period_ns, period_ns)
    frac = r.astype(np.float64)
    frac *= 1.0 / period_ns
    w = np.multiply(frac, -2.0)  # smoothstep f^2 (3 - 2f), in place
    w += 3.0
    w *= frac
    w *= frac
    d = np.take(np.diff(knots), i)
    d *= w
    d += np.take(knots, i)
    return d


def local_hour(ts_ns: np.ndarray, utc_offset_h: float) -> np.ndarray:
    """Local clock hour in [0, 24) for a fixed UTC offset [h]."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    off = int(round(utc_offset_h * 3600 * NS_PER_S))
    return np.mod(ts + off, NS_PER_DAY).astype(np.float64) / (3600 * NS_PER_S)


def day_index(ts_ns: np.ndarray, utc_offset_h: float = 0.0) -> np.ndarray:
    """Integer local day number since 1970-01-01."""
    off = int(round(utc_offset_h * 3600 * NS_PER_S))
    return np.floor_divide(np.asarray(ts_ns, dtype=np.int64) + off, NS_PER_DAY)


def day_of_year(ts_ns: np.ndarray) -> np.ndarray:
    """Fractional day of the (mean, 365.2425-day) year in [0, 365.2425); 0 near 1 January."""
    days = np.asarray(ts_ns, dtype=np.int64).astype(np.float64) / NS_PER_DAY
    return np.mod(days, 365.2425)


def seasonal(ts_ns: np.ndarray, peak_doy: float) -> np.ndarray:
    """Annual cosine in [-1, 1], +1 on day-of-year ``peak_doy``."""
    return np.cos(2.0 * np.pi * (day_of_year(ts_ns) - peak_doy) / 365.2425)


def daily_event(
    ts_ns: np.ndarray,
    key: int,
    stream: int,
    prob_per_day: float,
    duration_s: float,
    utc_offset_h: float = 0.0,
) -> np.ndarray:
    """Boolean mask of hashed daily events (e.g. trips, maintenance stops).

    Each local day has an event with probability ``prob_per_day``; it starts at a hashed time
    within the day so that it ends before midnight, and lasts ``duration_s`` seconds.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    if ts.size == 0 or prob_per_day <= 0:
        return np.zeros(ts.shape, dtype=bool)
    d = day_index(ts, utc_offset_h)
    d0 = int(d.min())
    days = np.arange(d0, int(d.max()) + 1, dtype=np.int64)
    happens = hash_uniform(key, stream, days) < prob_per_day
    dur_ns = int(duration_s * NS_PER_S)
    start_in_day = (hash_uniform(key, stream + 1000, days) * max(NS_PER_DAY - dur_ns, 0)).astype(np.int64)
    off = int(round(utc_offset_h * 3600 * NS_PER_S))
    t_in_day = ts + off - d * NS_PER_DAY
    i = d - d0
    return happens[i] & (t_in_day >= start_in_day[i]) & (t_in_day < start_in_day[i] + dur_ns)
