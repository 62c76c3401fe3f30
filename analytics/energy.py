"""Energy per interval from power samples and from cumulative meters.

Two sources of interval energy, both vectorized over whole arrays (no Python loop over
samples) and both exact under splitting: the energies of consecutive intervals add up to the
energy of their union, because a segment between two samples that straddles an interval edge
is split *at the edge* (the hour's energy includes the piece between its last sample and the
next hour's first sample).

- :func:`energy_from_power`: trapezoid over real timestamps. A segment between two samples
  longer than ``max_gap_s`` is not bridged: it contributes no energy and counts as gap time.
- :func:`energy_from_meter`: differences of a cumulative register, with rollover at a maximum
  and reset (meter replaced) handling, never negative. Increments across a gap longer than
  ``max_gap_s`` are measured energy whose position in time is unknown: they are returned
  apart (``gap_energy_kwh``) so the methodology's conservative rule decides what to credit.

Every function returns per interval: energy, covered seconds and gap seconds
(``covered_s + gap_s`` = interval length).

Tags (see ``shared/docs/methodologies.md``): trapezoid integration and meter differencing are
[form] (standard metering practice); the split-at-edge rule is the plantmrv requirement of
``shared/docs/benchmarks.md`` ("hourly energies must include the interval between the last
sample of one hour and the first of the next").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

NS_PER_S = 1_000_000_000
#: Chunk of samples processed at once, so temporaries stay in cache (not a tuning knob users need).
_CHUNK = 1 << 19
_BLOCK = 1 << 17
#: From this many samples on, the spacing check runs on two threads (see :func:`_smallest_steps`).
_SPLIT_MIN_SAMPLES = 1 << 22


@dataclass(frozen=True)
class IntervalEnergy:
    """Energy per interval ``[edges_ns[j], edges_ns[j+1])``.

    Attributes
    ----------
    energy_kwh : ndarray  Energy inside covered (bridged) time [kWh]
    covered_s : ndarray  Seconds of the interval covered by bridged segments [s]
    gap_s : ndarray  Seconds not covered: long gaps, before the first and after the last sample [s]
    gap_energy_kwh : ndarray  Meter increments measured across unbridged gaps, allocated
        linearly in time (zero for power samples, whose gaps carry no information) [kWh]
    """

    energy_kwh: np.ndarray
    covered_s: np.ndarray
    gap_s: np.ndarray
    gap_energy_kwh: np.ndarray

    @property
    def completeness(self) -> np.ndarray:
        """Covered fraction of each interval, 0..1."""
        total = self.covered_s + self.gap_s
        return np.divide(self.covered_s, total, out=np.zeros_like(total), where=total > 0)


def interval_edges_ns(start_ns: int, end_ns: int, interval_s: float) -> np.ndarray:
    """Edges of consecutive intervals of ``interval_s`` covering ``[start_ns, end_ns)``.

    ``start_ns`` should be aligned to the interval (e.g. a whole hour); the last edge is
    ``end_ns`` even when the last interval is short.
    """
    step = int(round(interval_s * NS_PER_S))
    if step <= 0:
        raise ValueError(f"interval_s must be positive, got {interval_s}")
    if end_ns <= start_ns:
        raise ValueError(f"end ({end_ns}) must be after start ({start_ns})")
    edges = np.arange(int(start_ns), int(end_ns), step, dtype=np.int64)
    return np.append(edges, np.int64(end_ns))


def _clean(ts_ns, values):
    ts = np.asarray(ts_ns, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if ts.shape != v.shape or ts.ndim != 1:
        raise ValueError(f"ts_ns and values must be 1-D of equal length, got {ts.shape} and {v.shape}")
    finite = np.isfinite(v)
    if not finite.all():  # NaN = missing sample (BAD quality is dropped before, see data-model.md)
        ts, v = ts[finite], v[finite]
    return ts, v


def _segment_cumulatives(ts, seg_amount_fn, max_gap_ns, edge_k, uniform_sum_fn=None, known_fn=None):
    """Cumulative bridged amount, covered ns and gap amount at sample indices ``edge_k``.

    Segments ``i`` join samples ``i`` and ``i+1``; the value at sample index k is the sum over
    segments ``< k``. Works in chunks so temporaries stay in cache, and sums each chunk's
    sub-ranges between edges with ``np.add.reduceat``. ``uniform_sum_fn(c0, starts, ends,
    dt)``, if given, sums segments ``[starts, ends)`` of a chunk whose spacing is uniform
    (``dt``) without building per-segment arrays (the fast path for regular sampling).
    ``known_fn(c0, c1)``, if given, marks segments whose amount is known whatever their
    length (a meter that did not move), which are bridged even when longer than the gap.
    Raises ValueError if the timestamps are not strictly increasing.
    """
    n = len(ts)
    nseg = max(n - 1, 0)
    m = len(edge_k)
    cum_amount = np.zeros(m)
    cum_cov = np.zeros(m, dtype=np.int64)  # integer ns: exact over any span
    cum_gap_amount = np.zeros(m)
    off_a = off_g = 0.0
    off_c = 0
    pos = np.searchsorted(edge_k, 0, side="right")  # edges at sample 0: cumulative 0
    chunks = [(c0, min(c0 + _CHUNK, nseg)) for c0 in range(0, nseg, _CHUNK)]
    for (c0, c1), dmin in zip(chunks, _smallest_steps(ts, chunks)):
        pos, off_a, off_c, off_g = _one_chunk(
            ts, c0, c1, dmin, edge_k, pos, off_a, off_c, off_g, cum_amount, cum_cov, cum_gap_amount,
            seg_amount_fn, max_gap_ns, uniform_sum_fn, known_fn,
        )
    cum_amount[pos:] = off_a
    cum_cov[pos:] = off_c
    cum_gap_amount[pos:] = off_g
    return cum_amount, cum_cov, cum_gap_amount


def _smallest_steps(ts, chunks):
    """Smallest sample spacing of each chunk. From ``_SPLIT_MIN_SAMPLES`` samples on, a second
    thread takes the second half of the chunks (numpy releases the GIL in both loops): on an
    idle second core the check costs half; on a busy machine the two halves just run one after
    the other. The result does not depend on it."""
    half = len(chunks) // 2
    if not chunks or chunks[-1][1] < _SPLIT_MIN_SAMPLES or half == 0:
        buf = np.empty(min(_BLOCK, max(chunks[-1][1], 1) if chunks else 1), dtype=np.int64)
        return [_smallest_step(ts, c0, c1, buf) for c0, c1 in chunks]
    out: list = [None] * len(chunks)
    failure: list = []

    def second_half():
        try:
            buf = np.empty(_BLOCK, dtype=np.int64)
            for i in range(half, len(chunks)):
                out[i] = _smallest_step(ts, *chunks[i], buf)
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    worker = threading.Thread(target=second_half, name="plantmrv-energy-check", daemon=True)
    worker.start()
    try:
        buf = np.empty(_BLOCK, dtype=np.int64)
        for i in range(half):
            out[i] = _smallest_step(ts, *chunks[i], buf)
    finally:
        worker.join()
    if failure:
        raise failure[0]
    return out


def _smallest_step(ts, c0, c1, buf):
    """Smallest ``ts[i+1] - ts[i]`` for i in ``[c0, c1)``, block by block so the differences
    stay in L2 cache."""
    return min(
        int(np.subtract(ts[b0 + 1 : min(b0 + _BLOCK, c1) + 1], ts[b0 : min(b0 + _BLOCK, c1)], out=buf[: min(b0 + _BLOCK, c1) - b0]).min())
        for b0 in range(c0, c1, _BLOCK)
    )


def _one_chunk(ts, c0, c1, dmin, edge_k, pos, off_a, off_c, off_g, cum_amount, cum_cov, cum_gap_amount,
               seg_amount_fn, max_gap_ns, uniform_sum_fn, known_fn):
    """Segments ``[c0, c1)``: fill the cumulatives at the edges inside; returns the new offsets."""
    if dmin <= 0:
        raise ValueError("ts_ns must be strictly increasing (sort and de-duplicate samples first)")
    # every step >= dmin and the steps sum to span: all equal iff span == count * dmin
    uniform_steps = int(ts[c1] - ts[c0]) == (c1 - c0) * dmin
    dt = None
    dmax = dmin
    if not uniform_steps or dmin > max_gap_ns or uniform_sum_fn is None:
        dt = ts[c0 + 1 : c1 + 1] - ts[c0:c1]
        dmax = int(dt.max())
    hi = np.searchsorted(edge_k, c1, side="right")
    local = edge_k[pos:hi] - c0  # edges inside (c0, c1]: cumulative over a_b[:local]
    starts = np.unique(np.concatenate(([0], local[local < c1 - c0])))
    ends = np.append(starts[1:], c1 - c0)
    gap_sums = None
    if uniform_steps and dmax <= max_gap_ns and uniform_sum_fn is not None:
        sums = uniform_sum_fn(c0, starts, ends, int(dmin))
        cov_sums = (ends - starts).astype(np.int64) * np.int64(dmin)
    else:
        amount = seg_amount_fn(c0, c1, dt)
        if dmax <= max_gap_ns or (known_fn is not None and bool(np.all((dt <= max_gap_ns) | known_fn(c0, c1)))):
            sums = np.add.reduceat(amount, starts)
            cov_sums = ts[c0 + ends] - ts[c0 + starts]
        else:
            bridged = dt <= max_gap_ns
            if known_fn is not None:
                bridged |= known_fn(c0, c1)
            a_b = np.where(bridged, amount, 0.0)
            sums = np.add.reduceat(a_b, starts)
            cov_sums = np.add.reduceat(np.where(bridged, dt, 0), starts)
            gap_sums = np.add.reduceat(amount - a_b, starts)
    if hi > pos:
        # cumulative at each start boundary (prefix sums of the sub-range sums)
        ca = np.concatenate(([0.0], np.cumsum(sums)))
        cc = np.concatenate(([0], np.cumsum(cov_sums))).astype(np.int64)
        j = np.searchsorted(np.append(starts, c1 - c0), local)  # local -> boundary index
        cum_amount[pos:hi] = off_a + ca[j]
        cum_cov[pos:hi] = off_c + cc[j]
        cg = np.concatenate(([0.0], np.cumsum(gap_sums))) if gap_sums is not None else None
        cum_gap_amount[pos:hi] = off_g + (cg[j] if cg is not None else 0.0)
        pos = hi
    off_a += float(np.sum(sums))
    off_c += int(np.sum(cov_sums))
    if gap_sums is not None:
        off_g += float(np.sum(gap_sums))
    return pos, off_a, off_c, off_g


def _sample_at_or_before(ts, edges):
    """``np.searchsorted(ts, edges, side="right") - 1`` for increasing ``ts``, cheaper for
    regular sampling: each edge's index is first guessed from the mean spacing and kept where
    ``ts[g] <= edge < ts[g+1]`` holds (then it is the searchsorted answer); only the other
    edges are binary-searched (a binary search over a year of 1 s samples costs a cache miss
    per level and edge)."""
    n = len(ts)
    span = int(ts[-1]) - int(ts[0])
    if n < 1024 or span <= 0:
        return np.searchsorted(ts, edges, side="right") - 1
    step = span / (n - 1)
    g = np.clip(np.floor((edges - ts[0]) / step), 0, n - 2).astype(np.int64)
    ok = (ts[g] <= edges) & (edges < ts[g + 1])
    if not ok.all():
        bad = ~ok
        g[bad] = np.searchsorted(ts, edges[bad], side="right") - 1
    return g


def _at_edges(ts, edges, max_gap_ns, seg_amount_fn, partial_fn, uniform_sum_fn=None, known_fn=None):
    """Cumulative (amount, covered ns, gap amount) at each edge time, then differenced."""
    edges = np.asarray(edges, dtype=np.int64)
    if edges.ndim != 1 or len(edges) < 2:
        raise ValueError("edges_ns needs at least two edges")
    if np.any(np.diff(edges) <= 0):
        raise ValueError("edges_ns must be strictly increasing")
    n = len(ts)
    nint = len(edges) - 1
    length_s = np.diff(edges) / NS_PER_S
    zeros = np.zeros(nint)
    if n < 2:
        return zeros, zeros.copy(), length_s.astype(float), zeros.copy()
    # k = index of the sample at or before each edge (-1 before the first sample)
    k = _sample_at_or_before(ts, edges)
    kc = np.clip(k, 0, n - 1)
    cum_a, cum_c, cum_g = _segment_cumulatives(ts, seg_amount_fn, max_gap_ns, kc, uniform_sum_fn, known_fn)
    # partial segment from sample k to the edge (only when k is a real segment start)
    inside = (k >= 0) & (k < n - 1)
    ki = np.where(inside, k, 0)
    t0 = ts[ki]
    t1 = ts[np.minimum(ki + 1, n - 1)]
    dt_seg = (t1 - t0).astype(np.int64)
    frac_ns = np.where(inside, edges - t0, 0)
    part = np.where(inside, partial_fn(ki, frac_ns, dt_seg), 0.0)
    bridged = inside & (dt_seg <= max_gap_ns)
    if known_fn is not None and n > 1:
        bridged |= inside & known_fn(ki, ki + 1, index=True)
    E = cum_a + np.where(bridged, part, 0.0)
    C = cum_c + np.where(bridged, frac_ns, 0).astype(np.int64)
    G = cum_g + np.where(inside & ~bridged, part, 0.0)
    energy = np.diff(E)
    covered = np.diff(C) / NS_PER_S
    covered = np.minimum(np.maximum(covered, 0.0), length_s)
    return energy, covered, length_s - covered, np.diff(G)


def energy_from_power(ts_ns, power_kw, edges_ns, max_gap_s: float) -> IntervalEnergy:
    """Energy per interval by the trapezoid rule over real timestamps.

    Parameters
    ----------
    ts_ns : array of int64  Sample times, strictly increasing [ns since epoch, UTC]
    power_kw : array  Active power at each sample; NaN marks a missing sample [kW]
    edges_ns : array of int64  Interval edges, strictly increasing [ns]
    max_gap_s : float  Longest spacing between two samples that is bridged [s]

    Returns
    -------
    IntervalEnergy  energy_kwh, covered_s, gap_s per interval (gap_energy_kwh is zero).

    Notes
    -----
    Power is taken as linear between two samples; a segment straddling an edge is split at
    the edge with the power interpolated there, so interval energies add up exactly to the
    energy of the whole period. Time before the first sample, after the last, and inside
    segments longer than ``max_gap_s`` is gap time and carries no energy.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    p = np.asarray(power_kw, dtype=np.float64)
    if ts.shape != p.shape or ts.ndim != 1:
        raise ValueError(f"ts_ns and power_kw must be 1-D of equal length, got {ts.shape} and {p.shape}")
    max_gap_ns = int(round(max_gap_s * NS_PER_S))
    result = _power_core(ts, p, edges_ns, max_gap_ns)
    if np.isnan(result[0]).any() or np.isnan(result[3]).any():
        # a NaN sample reached a bridged segment: drop missing samples and recompute
        ts, p = _clean(ts, p)
        result = _power_core(ts, p, edges_ns, max_gap_ns)
    energy, covered, gap, _ = result
    return IntervalEnergy(energy, covered, gap, np.zeros_like(energy))


def _power_core(ts, p, edges_ns, max_gap_ns):
    # kW * ns -> kWh: / 3.6e12; the 0.5 of the trapezoid folded in
    scale = 0.5 / (3600.0 * NS_PER_S)

    def seg(c0, c1, dt):
        return (p[c0:c1] + p[c0 + 1 : c1 + 1]) * (dt * scale)

    def uniform(c0, starts, ends, dt):
        # sum_{i in [a,b)} (p_i + p_{i+1}) = 2 sum_{[a,b)} p - p_a + p_b
        sp = np.add.reduceat(p[c0 : c0 + ends[-1]], starts)
        return (2.0 * sp - p[c0 + starts] + p[c0 + ends]) * (dt * scale)

    def partial(k, frac_ns, dt_seg):
        w = np.where(dt_seg > 0, frac_ns / np.maximum(dt_seg, 1), 0.0)
        p0 = p[k]
        pb = p0 + (p[np.minimum(k + 1, len(p) - 1)] - p0) * w
        return (p0 + pb) * (frac_ns * scale)

    with np.errstate(invalid="ignore"):
        return _at_edges(ts, edges_ns, max_gap_ns, seg, partial, uniform)


def meter_increments(reading, rollover_at: float | None = None, rollover_fraction: float = 0.9) -> np.ndarray:
    """Increments between consecutive readings of a cumulative register, never negative.

    Parameters
    ----------
    reading : array  Register readings in time order [kWh, m3, t]
    rollover_at : float, optional  Register maximum after which it wraps to 0 (e.g. 999999.9);
        None when the register never wraps [same unit]
    rollover_fraction : float  A drop counts as a rollover only when the previous reading was
        above this fraction of ``rollover_at``; otherwise it is a reset (meter replaced) [-]

    Returns
    -------
    ndarray of length ``len(reading) - 1``  [same unit]

    Notes
    -----
    Rollover: increment = ``rollover_at - previous + current``. Reset (a drop that is not a
    rollover: meter replaced or cleared): the new register counts from zero, increment =
    ``current`` (conservative for consumption, which is then counted high; the engine flags
    the interval). Any remaining negative value is clipped to zero.
    """
    r = np.asarray(reading, dtype=np.float64)
    d = np.diff(r)
    drop = d < 0
    if not drop.any():
        return d
    prev = r[:-1]
    cur = r[1:]
    if rollover_at is not None:
        roll = drop & (prev >= rollover_fraction * rollover_at)
        inc = np.where(roll, rollover_at - prev + cur, np.where(drop, cur, d))
    else:
        inc = np.where(drop, cur, d)
    return np.maximum(inc, 0.0)


def energy_from_meter(
    ts_ns,
    reading_kwh,
    edges_ns,
    max_gap_s: float,
    rollover_at: float | None = None,
    rollover_fraction: float = 0.9,
    bridge_unchanged: bool = True,
) -> IntervalEnergy:
    """Energy per interval from a cumulative meter (rollover and reset safe).

    Parameters
    ----------
    ts_ns : array of int64  Reading times, strictly increasing [ns]
    reading_kwh : array  Register readings; NaN = missing [kWh] (any cumulative unit works)
    edges_ns : array of int64  Interval edges [ns]
    max_gap_s : float  Longest spacing between two readings whose increment is placed in time [s]
    rollover_at, rollover_fraction : see :func:`meter_increments`
    bridge_unchanged : bool  Bridge a gap of any length across which the register did not
        move: the energy there is known to be zero (report-by-exception gateways send nothing
        while a meter stands still, e.g. a PV export meter at night)

    Returns
    -------
    IntervalEnergy  ``energy_kwh`` from bridged segments; ``gap_energy_kwh`` = increments
    measured across longer gaps (allocated linearly in time); both never negative.

    Notes
    -----
    Between two readings the register is taken as linear in time, so an increment
    straddling an edge is split at the edge in proportion to time.
    """
    ts, r = _clean(ts_ns, reading_kwh)
    inc = meter_increments(r, rollover_at, rollover_fraction)
    max_gap_ns = int(round(max_gap_s * NS_PER_S))

    def seg(c0, c1, dt):
        return inc[c0:c1]

    def partial(k, frac_ns, dt_seg):
        w = np.where(dt_seg > 0, frac_ns / np.maximum(dt_seg, 1), 0.0)
        return inc[np.minimum(k, len(inc) - 1)] * w if len(inc) else np.zeros(len(k))

    def known(c0, c1, index=False):
        # a register that did not move across a gap proves zero energy there
        if index:
            return inc[np.minimum(c0, len(inc) - 1)] == 0.0 if len(inc) else np.zeros(len(c0), bool)
        return inc[c0:c1] == 0.0

    energy, covered, gap, gap_energy = _at_edges(ts, edges_ns, max_gap_ns, seg, partial, None, known if bridge_unchanged else None)
    return IntervalEnergy(np.maximum(energy, 0.0), covered, gap, np.maximum(gap_energy, 0.0))


def mean_per_interval(ts_ns, values, edges_ns) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and sample count per interval (for rates, levels and flags; NaN = missing).

    Returns
    -------
    (mean, count) ; mean is NaN where an interval has no sample.
    """
    ts, v = _clean(ts_ns, values)
    edges = np.asarray(edges_ns, dtype=np.int64)
    idx = np.searchsorted(edges, ts, side="right") - 1
    ok = (idx >= 0) & (idx < len(edges) - 1)
    nint = len(edges) - 1
    cnt = np.bincount(idx[ok], minlength=nint).astype(float)
    tot = np.bincount(idx[ok], weights=v[ok], minlength=nint)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    return mean, cnt


def max_per_interval(ts_ns, values, edges_ns) -> np.ndarray:
    """Largest sample per interval (NaN where an interval has no sample)."""
    ts, v = _clean(ts_ns, values)
    edges = np.asarray(edges_ns, dtype=np.int64)
    nint = len(edges) - 1
    idx = np.searchsorted(edges, ts, side="right") - 1
    ok = (idx >= 0) & (idx < nint)
    out = np.full(nint, -np.inf)
    np.maximum.at(out, idx[ok], v[ok])
    return np.where(np.isfinite(out), out, np.nan)


def held_mean_per_interval(ts_ns, values, edges_ns) -> tuple[np.ndarray, np.ndarray]:
    """Time-weighted mean per interval of a sample-and-hold (state) signal.

    A state such as a 0/1 ``running`` flag reported by exception (OPC UA subscriptions send
    only changes) keeps its last value until the next sample. Before the first sample the
    state is unknown and counts 0.

    Parameters
    ----------
    ts_ns : array of int64  Sample times, strictly increasing [ns]; prepend the last sample
        before the period so the state at its start is known
    values : array  State values; NaN samples are dropped [-]
    edges_ns : array of int64  Interval edges [ns]

    Returns
    -------
    (mean, known_s)  Mean of the held value over each interval (unknown time counts 0) [-],
    and the seconds of each interval whose state was known [s].
    """
    ts, v = _clean(ts_ns, values)
    edges = np.asarray(edges_ns, dtype=np.int64)
    length_ns = np.diff(edges).astype(float)
    if len(ts) == 0:
        z = np.zeros(len(edges) - 1)
        return z, z.copy()
    if len(ts) > 1 and np.any(ts[1:] <= ts[:-1]):
        raise ValueError("ts_ns must be strictly increasing (sort and de-duplicate samples first)")
    # integral of the held signal from ts[0] to each sample: C[i] = sum_{j<i} v_j (t_{j+1} - t_j)
    c = np.concatenate(([0.0], np.cumsum(v[:-1] * np.diff(ts).astype(float))))
    k = np.searchsorted(ts, edges, side="right") - 1
    before = k < 0
    kk = np.maximum(k, 0)
    f = np.where(before, 0.0, c[kk] + v[kk] * (edges - ts[kk]).astype(float))
    known = np.where(before, 0.0, (edges - ts[0]).astype(float))
    mean = np.divide(np.diff(f), length_ns, out=np.zeros(len(length_ns)), where=length_ns > 0)
    return mean, np.diff(known) / NS_PER_S
