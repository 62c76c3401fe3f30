"""Amounts per interval from rate samples and from cumulative meters, with their gaps.

Two sources of interval amounts (energy, volume, mass, hours), both vectorized over whole
arrays (no Python loop over samples) and both exact under splitting: the amounts of
consecutive intervals add up to the amount of their union, because a segment between two
samples that straddles an interval edge is split *at the edge* (the hour's energy includes the
piece between its last sample and the next hour's first sample).

- :func:`integrate_rate`: trapezoid over real timestamps. A segment between two samples
  longer than ``max_gap_s`` is not bridged: it contributes nothing and counts as gap time.
  Report-by-exception data is exact here because the gateway stores hold points and
  heartbeats (``gateway/coverage.py``): a straight line between stored samples is the signal.
- :func:`integrate_meter`: differences of a cumulative register: rollover at a maximum,
  declared meter replacements and resets applied exactly (:class:`MeterEvent`), and an
  undeclared drop or a jump beyond the meter's physical maximum rate never counted: the
  segment becomes a gap and an event is reported (:func:`meter_increments`). Increments
  across a gap longer than ``max_gap_s`` are measured amounts whose position in time is
  unknown: they are returned apart (``gap_amount``) so the methodology's conservative rule
  decides what to credit. A register that did not move is known to have counted nothing,
  however long the silence.

Every function returns per interval: amount, covered seconds and gap seconds
(``covered_s + gap_s`` = interval length), and the gap spans themselves (so gaps of several
inputs can be united exactly, :func:`union_gap_s`).

Tags (see ``shared/docs/methodologies.md``): trapezoid integration and meter differencing are
[form] (standard metering practice); the split-at-edge rule is the plantmrv requirement of
``shared/docs/benchmarks.md`` ("hourly energies must include the interval between the last
sample of one hour and the first of the next").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

NS_PER_S = 1_000_000_000
#: Chunk of samples processed at once, so temporaries stay in cache (not a tuning knob users need).
_CHUNK = 1 << 19
_BLOCK = 1 << 17
#: From this many samples on, the spacing check runs on two threads (see :func:`_smallest_steps`).
_SPLIT_MIN_SAMPLES = 1 << 22


@dataclass(frozen=True)
class IntervalAmount:
    """An amount (energy, volume, mass, hours) per interval ``[edges_ns[j], edges_ns[j+1])``.

    Attributes
    ----------
    amount : ndarray  Amount inside covered (bridged) time [the quantity's unit]
    covered_s : ndarray  Seconds of the interval covered by bridged segments [s]
    gap_s : ndarray  Seconds not covered: long gaps, broken meter segments, before the first
        and after the last sample [s]
    gap_amount : ndarray  Meter increments measured across unbridged gaps, allocated linearly
        in time (zero for rates, whose gaps carry no information) [the quantity's unit]
    gap_spans_ns : ndarray (k, 2)  The uncovered spans ``[start, end)`` within the edges [ns]
    events : list of MeterEventFound  Rollovers, declared events applied, drops and jumps
    """

    amount: np.ndarray
    covered_s: np.ndarray
    gap_s: np.ndarray
    gap_amount: np.ndarray
    gap_spans_ns: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.int64))
    events: list = field(default_factory=list)

    @property
    def completeness(self) -> np.ndarray:
        """Covered fraction of each interval, 0..1."""
        total = self.covered_s + self.gap_s
        return np.divide(self.covered_s, total, out=np.zeros_like(total), where=total > 0)

    def scaled(self, factor: float) -> "IntervalAmount":
        """The same amounts in another unit (``factor`` from :func:`plantmrv.units.conversion`)."""
        if factor == 1.0:
            return self
        return IntervalAmount(self.amount * factor, self.covered_s, self.gap_s, self.gap_amount * factor, self.gap_spans_ns, self.events)


@dataclass(frozen=True)
class MeterEvent:
    """A declared meter replacement or reset: the old register's last reading and the new one's first.

    The event applies to the segment between the readings around ``time_ns``
    (``t_i < time_ns <= t_{i+1}``: a reading taken exactly at ``time_ns`` is the new meter's).
    """

    time_ns: int
    old_final: float
    new_initial: float
    kind: str = "replacement"  # or "reset"
    source: str = ""


@dataclass(frozen=True)
class MeterEventFound:
    """Something a register did between two readings, as the report and the export list it."""

    start_ns: int
    end_ns: int
    kind: str  # meter_rollover, meter_replacement, meter_reset, meter_drop, meter_jump, meter_event_inconsistent
    detail: str
    amount: float  # the increment counted (0 for segments not counted)
    counted: bool


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


def _segment_cumulatives(ts, seg_amount_fn, max_gap_ns, edge_k, uniform_sum_fn=None, bridge_fn=None):
    """Cumulative bridged amount, covered ns and gap amount at sample indices ``edge_k``.

    Segments ``i`` join samples ``i`` and ``i+1``; the value at sample index k is the sum over
    segments ``< k``. Works in chunks so temporaries stay in cache, and sums each chunk's
    sub-ranges between edges with ``np.add.reduceat``. ``uniform_sum_fn(c0, starts, ends,
    dt)``, if given, sums segments ``[starts, ends)`` of a chunk whose spacing is uniform
    (``dt``) without building per-segment arrays (the fast path for regular sampling).
    ``bridge_fn(segments, dt)``, if given, says which segments (a slice or an index array, and
    their lengths) are bridged, instead of ``dt <= max_gap``: a meter bridges a register that
    did not move whatever the length and never bridges a segment whose increment is unknown.
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
            seg_amount_fn, max_gap_ns, uniform_sum_fn, bridge_fn,
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
               seg_amount_fn, max_gap_ns, uniform_sum_fn, bridge_fn):
    """Segments ``[c0, c1)``: fill the cumulatives at the edges inside; returns the new offsets."""
    if dmin <= 0:
        raise ValueError("ts_ns must be strictly increasing (sort and de-duplicate samples first)")
    # every step >= dmin and the steps sum to span: all equal iff span == count * dmin
    uniform_steps = int(ts[c1] - ts[c0]) == (c1 - c0) * dmin
    dt = None
    dmax = dmin
    if not uniform_steps or dmin > max_gap_ns or uniform_sum_fn is None or bridge_fn is not None:
        dt = ts[c0 + 1 : c1 + 1] - ts[c0:c1]
        dmax = int(dt.max())
    hi = np.searchsorted(edge_k, c1, side="right")
    local = edge_k[pos:hi] - c0  # edges inside (c0, c1]: cumulative over a_b[:local]
    starts = np.unique(np.concatenate(([0], local[local < c1 - c0])))
    ends = np.append(starts[1:], c1 - c0)
    gap_sums = None
    if uniform_steps and dmax <= max_gap_ns and uniform_sum_fn is not None and bridge_fn is None:
        sums = uniform_sum_fn(c0, starts, ends, int(dmin))
        cov_sums = (ends - starts).astype(np.int64) * np.int64(dmin)
    else:
        amount = seg_amount_fn(c0, c1, dt)
        if bridge_fn is not None:
            bridged = bridge_fn(slice(c0, c1), dt)
        else:
            bridged = None if dmax <= max_gap_ns else dt <= max_gap_ns
        if bridged is None or bool(bridged.all()):
            sums = np.add.reduceat(amount, starts)
            cov_sums = ts[c0 + ends] - ts[c0 + starts]
        else:
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


def _at_edges(ts, edges, max_gap_ns, seg_amount_fn, partial_fn, uniform_sum_fn=None, bridge_fn=None):
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
    cum_a, cum_c, cum_g = _segment_cumulatives(ts, seg_amount_fn, max_gap_ns, kc, uniform_sum_fn, bridge_fn)
    # partial segment from sample k to the edge (only when k is a real segment start)
    inside = (k >= 0) & (k < n - 1)
    ki = np.where(inside, k, 0)
    t0 = ts[ki]
    t1 = ts[np.minimum(ki + 1, n - 1)]
    dt_seg = (t1 - t0).astype(np.int64)
    frac_ns = np.where(inside, edges - t0, 0)
    part = np.where(inside, partial_fn(ki, frac_ns, dt_seg), 0.0)
    if bridge_fn is not None:
        bridged = inside & bridge_fn(ki, dt_seg)
    else:
        bridged = inside & (dt_seg <= max_gap_ns)
    E = cum_a + np.where(bridged, part, 0.0)
    C = cum_c + np.where(bridged, frac_ns, 0).astype(np.int64)
    G = cum_g + np.where(inside & ~bridged, part, 0.0)
    energy = np.diff(E)
    covered = np.diff(C) / NS_PER_S
    covered = np.minimum(np.maximum(covered, 0.0), length_s)
    return energy, covered, length_s - covered, np.diff(G)


def integrate_rate(ts_ns, rate_per_h, edges_ns, max_gap_s: float) -> IntervalAmount:
    """Amount per interval by the trapezoid rule over real timestamps.

    Parameters
    ----------
    ts_ns : array of int64  Sample times, strictly increasing [ns since epoch, UTC]
    rate_per_h : array  Rate at each sample (kW for kWh, m3/h for m3, 0/1 for hours); NaN
        marks a missing sample [amount unit per hour]
    edges_ns : array of int64  Interval edges, strictly increasing [ns]
    max_gap_s : float  Longest spacing between two samples that is bridged [s]

    Returns
    -------
    IntervalAmount  amount, covered_s, gap_s and gap spans per interval (gap_amount is zero).

    Notes
    -----
    The rate is taken as linear between two samples; a segment straddling an edge is split at
    the edge with the rate interpolated there, so interval amounts add up exactly to the
    amount of the whole period. Time before the first sample, after the last, and inside
    segments longer than ``max_gap_s`` is gap time and carries nothing.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    p = np.asarray(rate_per_h, dtype=np.float64)
    if ts.shape != p.shape or ts.ndim != 1:
        raise ValueError(f"ts_ns and rate_per_h must be 1-D of equal length, got {ts.shape} and {p.shape}")
    max_gap_ns = int(round(max_gap_s * NS_PER_S))
    result = _rate_core(ts, p, edges_ns, max_gap_ns)
    if np.isnan(result[0]).any() or np.isnan(result[3]).any():
        # a NaN sample reached a bridged segment: drop missing samples and recompute
        ts, p = _clean(ts, p)
        result = _rate_core(ts, p, edges_ns, max_gap_ns)
    amount, covered, gap, _ = result
    spans = _gap_spans(ts, edges_ns, gap, lambda seg, dt: dt <= max_gap_ns)
    return IntervalAmount(amount, covered, gap, np.zeros_like(amount), spans)


def _rate_core(ts, p, edges_ns, max_gap_ns):
    # rate/h * ns -> amount: / 3.6e12; the 0.5 of the trapezoid folded in
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


def _gap_spans(ts, edges_ns, gap_s, bridge) -> np.ndarray:
    """The uncovered spans within ``[edges[0], edges[-1])`` as an (k, 2) int64 array.

    Only the intervals that have gap time are scanned (runs of them at once), so a year of
    gapless data costs nothing here. ``bridge(segments, dt)`` says which segments are covered.
    """
    edges = np.asarray(edges_ns, dtype=np.int64)
    gappy = np.asarray(gap_s) > 0
    if not gappy.any():
        return np.empty((0, 2), np.int64)
    if len(ts) < 2:
        return np.array([[int(edges[0]), int(edges[-1])]], np.int64)
    # runs of consecutive intervals with gaps: [first, last]
    starts = np.flatnonzero(gappy & ~np.concatenate(([False], gappy[:-1])))
    ends = np.flatnonzero(gappy & ~np.concatenate((gappy[1:], [False])))
    out = []
    for a, b in zip(starts.tolist(), ends.tolist()):
        lo, hi = int(edges[a]), int(edges[b + 1])
        i0 = max(int(np.searchsorted(ts, lo, side="right")) - 1, 0)
        i1 = min(int(np.searchsorted(ts, hi, side="left")) + 1, len(ts))
        t = ts[i0:i1]
        if len(t) == 0:
            out.append(np.array([[lo, hi]], np.int64))
            continue
        spans = []
        if len(t) > 1:
            open_ = ~np.asarray(bridge(np.arange(i0, i1 - 1), np.diff(t)), bool)
            if open_.any():
                spans.append(np.stack([t[:-1][open_], t[1:][open_]], axis=1))
        if t[0] > lo:
            spans.insert(0, np.array([[lo, t[0]]], np.int64))
        if t[-1] < hi:
            spans.append(np.array([[t[-1], hi]], np.int64))
        if spans:
            part = np.clip(np.concatenate(spans).astype(np.int64), lo, hi)
            out.append(part[part[:, 1] > part[:, 0]])
    return np.concatenate(out) if out else np.empty((0, 2), np.int64)


def merge_spans(spans: list[np.ndarray]) -> np.ndarray:
    """The union of several (k, 2) span arrays ``[start, end)`` as sorted disjoint spans."""
    spans = [x for x in spans if len(x)]
    if not spans:
        return np.empty((0, 2), np.int64)
    allspans = np.concatenate(spans)
    allspans = allspans[np.argsort(allspans[:, 0], kind="stable")]
    # a span opens a new group when it starts after every earlier span ended
    reach = np.maximum.accumulate(allspans[:, 1])
    new = np.ones(len(allspans), bool)
    new[1:] = allspans[1:, 0] > reach[:-1]
    first = np.flatnonzero(new)
    return np.stack([allspans[first, 0], np.maximum.reduceat(allspans[:, 1], first)], axis=1)


def union_gap_s(spans: list[np.ndarray], edges_ns) -> np.ndarray:
    """Seconds of each interval inside the union of the gap spans of several inputs [s]."""
    edges = np.asarray(edges_ns, dtype=np.int64)
    merged = merge_spans(spans)
    if not len(merged):
        return np.zeros(len(edges) - 1)
    starts, ends = merged[:, 0], merged[:, 1]
    # gap ns before each edge: whole spans before it plus the part of the one it falls in
    full = np.concatenate(([0], np.cumsum(ends - starts)))
    k = np.searchsorted(starts, edges, side="right")
    j = np.maximum(k - 1, 0)
    part = np.where(k > 0, np.minimum(edges, ends[j]) - starts[j], 0)
    cum = np.where(k > 0, full[j], 0) + part
    return np.diff(cum) / NS_PER_S


def meter_increments(ts_ns, reading, rollover_at: float | None = None, rollover_fraction: float = 0.9,
                     events: list[MeterEvent] | tuple = (), max_rate_per_h: float | None = None, field_name: str = "meter"):
    """Increments between consecutive readings of a cumulative register, and what happened.

    Parameters
    ----------
    ts_ns : array of int64  Reading times, strictly increasing [ns]
    reading : array  Register readings in time order [register unit]
    rollover_at : float, optional  Register maximum after which it wraps to 0 (e.g. 999999.9)
    rollover_fraction : float  A drop counts as a rollover only when the previous reading was
        above this fraction of ``rollover_at`` (and, when ``max_rate_per_h`` is given, the
        wrapped increment is physically possible) [-]
    events : list of MeterEvent  Declared replacements / resets, applied exactly
    max_rate_per_h : float, optional  The meter's physical maximum rate [register unit per h]:
        an increment beyond it over a segment is a jump, not counted
    field_name : str  For the event details

    Returns
    -------
    (increments, broken, found)  ``increments`` (length ``len(reading) - 1``, never negative),
    ``broken`` (bool per segment: the increment is unknown, counted 0, and the segment is a
    gap) and ``found`` (list of :class:`MeterEventFound`).

    Notes
    -----
    A declared event between readings ``r_i`` and ``r_{i+1}`` counts ``(old_final - r_i) +
    (r_{i+1} - new_initial)``; a declaration that contradicts the readings (negative parts) is
    reported and the segment is a gap. A drop that is neither declared nor a rollover (a meter
    replaced or cleared without a declaration) is never guessed at: the segment is a gap and
    an event is reported, so the conservative fill applies. So is an increment beyond the
    physical maximum rate (a new meter that starts above the old reading, a swap taken for a
    rollover, a corrupted register).
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    r = np.asarray(reading, dtype=np.float64)
    n = len(r)
    if n < 2:
        return np.zeros(0), np.zeros(0, bool), []
    d = np.diff(r)
    inc = d.copy()
    broken = np.zeros(n - 1, bool)
    kind = np.zeros(n - 1, np.int8)  # 0 plain, 1 rollover, 2 declared, 3 drop, 4 jump, 5 inconsistent
    event_of = np.full(n - 1, -1)
    evs = sorted(events, key=lambda e: e.time_ns)
    if evs:
        et = np.array([e.time_ns for e in evs], np.int64)
        seg = np.searchsorted(ts, et, side="left") - 1  # t_seg < te <= t_seg+1
        ok = (seg >= 0) & (seg < n - 1)
        for j in np.flatnonzero(ok):
            i = int(seg[j])
            if event_of[i] >= 0:
                kind[i] = 5  # two declarations in one segment: ambiguous
                continue
            event_of[i] = j
            e = evs[j]
            before, after = e.old_final - r[i], r[i + 1] - e.new_initial
            if before < -1e-9 * max(1.0, abs(e.old_final)) or after < -1e-9 * max(1.0, abs(r[i + 1])):
                kind[i] = 5
            else:
                kind[i] = 2
                inc[i] = max(before, 0.0) + max(after, 0.0)
    drop = (d < 0) & (kind == 0)
    if drop.any():
        roll = np.zeros(n - 1, bool)
        if rollover_at is not None:
            wrapped = rollover_at - r[:-1] + r[1:]
            roll = drop & (r[:-1] >= rollover_fraction * rollover_at)
            if max_rate_per_h is not None:
                roll &= wrapped <= max_rate_per_h * np.diff(ts) / (3600 * NS_PER_S) * (1 + 1e-9) + 1e-9
            inc = np.where(roll, wrapped, inc)
            kind[roll] = 1
        kind[drop & ~roll] = 3
    if max_rate_per_h is not None:
        limit = max_rate_per_h * np.diff(ts) / (3600 * NS_PER_S) * (1 + 1e-9) + 1e-9
        kind[(kind <= 2) & (inc > limit)] = 4
    broken = kind >= 3
    inc_raw = inc
    inc = np.where(broken, 0.0, np.maximum(inc, 0.0))
    found = []
    names = {1: "meter_rollover", 3: "meter_drop", 4: "meter_jump", 5: "meter_event_inconsistent"}
    for i in np.flatnonzero(kind).tolist():
        k = int(kind[i])
        if k == 2:
            e = evs[int(event_of[i])]
            found.append(MeterEventFound(int(ts[i]), int(ts[i + 1]), f"meter_{e.kind}",
                                         f"{field_name}: declared {e.kind}: old meter {r[i]:.6g} -> {e.old_final:.6g}, new meter {e.new_initial:.6g} -> {r[i + 1]:.6g}" + (f" ({e.source})" if e.source else ""),
                                         float(inc[i]), True))
        else:
            what = {1: f"wrapped at {rollover_at or 0:.6g}", 3: "register fell without a declared replacement or reset: increment unknown, segment treated as a gap",
                    4: f"increment {inc_raw[i]:.6g} in {(ts[i + 1] - ts[i]) / NS_PER_S:.6g} s exceeds the meter's maximum rate {max_rate_per_h or 0:.6g}/h: not counted, segment treated as a gap",
                    5: "declared event contradicts the readings: segment treated as a gap"}[k]
            found.append(MeterEventFound(int(ts[i]), int(ts[i + 1]), names[k], f"{field_name}: {r[i]:.6g} -> {r[i + 1]:.6g}: {what}", float(inc[i]), k == 1))
    return inc, broken, found


def integrate_meter(
    ts_ns,
    reading,
    edges_ns,
    max_gap_s: float,
    rollover_at: float | None = None,
    rollover_fraction: float = 0.9,
    bridge_unchanged: bool = True,
    events: list[MeterEvent] | tuple = (),
    max_rate_per_h: float | None = None,
    field_name: str = "meter",
) -> IntervalAmount:
    """Amount per interval from a cumulative register (rollover, replacement and reset safe).

    Parameters
    ----------
    ts_ns : array of int64  Reading times, strictly increasing [ns]
    reading : array  Register readings; NaN = missing [register unit]
    edges_ns : array of int64  Interval edges [ns]
    max_gap_s : float  Longest spacing between two readings whose increment is placed in time [s]
    rollover_at, rollover_fraction, events, max_rate_per_h : see :func:`meter_increments`
    bridge_unchanged : bool  Bridge a gap of any length across which the register did not
        move: the amount there is known to be zero (report-by-exception gateways send nothing
        while a meter stands still, e.g. a PV export meter at night)

    Returns
    -------
    IntervalAmount  ``amount`` from bridged segments; ``gap_amount`` = increments measured
    across longer gaps (allocated linearly in time); both never negative; the meter events.

    Notes
    -----
    Between two readings the register is taken as linear in time, so an increment
    straddling an edge is split at the edge in proportion to time.
    """
    ts, r = _clean(ts_ns, reading)
    inc, broken, found = meter_increments(ts, r, rollover_at, rollover_fraction, events, max_rate_per_h, field_name)
    max_gap_ns = int(round(max_gap_s * NS_PER_S))

    def seg(c0, c1, dt):
        return inc[c0:c1]

    def partial(k, frac_ns, dt_seg):
        w = np.where(dt_seg > 0, frac_ns / np.maximum(dt_seg, 1), 0.0)
        return inc[np.minimum(k, len(inc) - 1)] * w if len(inc) else np.zeros(len(k))

    def bridge(segs, dt):
        if not len(inc):
            return np.zeros(len(dt), bool)
        if isinstance(segs, np.ndarray):
            segs = np.minimum(segs, len(inc) - 1)
        ok = dt <= max_gap_ns
        if bridge_unchanged:
            ok = ok | (inc[segs] == 0.0)
        return ok & ~broken[segs]

    amount, covered, gap, gap_amount = _at_edges(ts, edges_ns, max_gap_ns, seg, partial, None, bridge)
    spans = _gap_spans(ts, edges_ns, gap, bridge)
    edges = np.asarray(edges_ns, dtype=np.int64)
    found = [f for f in found if f.end_ns > edges[0] and f.start_ns < edges[-1]]
    return IntervalAmount(np.maximum(amount, 0.0), covered, gap, np.maximum(gap_amount, 0.0), spans, found)


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


def held_mean_per_interval(ts_ns, values, edges_ns, max_hold_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Time-weighted mean per interval of a sample-and-hold (state) signal.

    A state such as a 0/1 grid-supply flag keeps its value until the next sample, for at most
    ``max_hold_s`` (the hold limit: beyond it the state is unknown, as the gateway stores an
    unchanged healthy tag at least that often). Before the first sample the state is unknown.
    Unknown time counts 0 in the mean and is not in ``known_s``.

    Parameters
    ----------
    ts_ns : array of int64  Sample times, strictly increasing [ns]; prepend the last sample
        before the period so the state at its start is known
    values : array  State values; NaN samples are dropped [-]
    edges_ns : array of int64  Interval edges [ns]
    max_hold_s : float, optional  Longest a sample is held [s]; None: until the next sample

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
    hold = np.inf if max_hold_s is None else max_hold_s * NS_PER_S
    held = np.minimum(np.diff(ts).astype(float), hold)  # how long each sample holds
    # integral and known time from ts[0] to each sample: C[i] = sum_{j<i} v_j held_j
    c = np.concatenate(([0.0], np.cumsum(v[:-1] * held)))
    kn = np.concatenate(([0.0], np.cumsum(held)))
    k = np.searchsorted(ts, edges, side="right") - 1
    before = k < 0
    kk = np.maximum(k, 0)
    part = np.minimum((edges - ts[kk]).astype(float), hold)
    f = np.where(before, 0.0, c[kk] + v[kk] * part)
    known = np.where(before, 0.0, kn[kk] + part)
    mean = np.divide(np.diff(f), length_ns, out=np.zeros(len(length_ns)), where=length_ns > 0)
    return mean, np.diff(known) / NS_PER_S
