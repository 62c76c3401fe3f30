"""Report-by-exception coverage in the gateway (gateway/coverage.py): what is stored for a
series that is sent only when it changes, against the full-rate series it stands for."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.gateway.coverage import CoverageTracker

S = 1_000_000_000
T0 = 1_800_000_000 * S
TABLE = [Series.of("wte", f, site="yangon", asset="wte1") for f in ("steam_t_per_h", "aux_fuel_kg_per_h", "incinerating")]


def tracker(interval_s=60):
    return CoverageTracker(lambda _s: int(interval_s * S), "gw-yangon", "sim")


def on_change(values):
    """Rows a report-by-exception server sends: a tick where the value differs from the previous one."""
    changed = np.ones(values.shape, bool)
    changed[:, 1:] = values[:, 1:] != values[:, :-1]
    return changed


def run_stream(values, tick_s, publish_ticks, interval_s):
    """Feed the changes tick by tick in publishes of ``publish_ticks`` ticks; return the stored rows per series."""
    n_series, n_ticks = values.shape
    ts = T0 + np.arange(n_ticks, dtype=np.int64) * int(tick_s * S)
    changed = on_change(values)
    tr = tracker(interval_s)
    out = []
    for a in range(0, n_ticks, publish_ticks):
        b = min(a + publish_ticks, n_ticks)
        s_idx, t_idx = np.nonzero(changed[:, a:b])
        t_idx = t_idx + a
        batch = SampleBatch(TABLE[:n_series], s_idx.astype(np.int32), ts[t_idx], values[s_idx, t_idx])
        if len(batch):
            out.append(tr.observe(batch, int(ts[t_idx].max())))
    got = SampleBatch.concat(out)
    per = {}
    for i, s in enumerate(got.table):
        m = got.series == i
        order = np.argsort(got.ts_ns[m], kind="stable")
        per[TABLE.index(s)] = (got.ts_ns[m][order], got.value[m][order])
    return ts, per


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 400), st.sampled_from([0.0, 0.0, 11.0, 11.5, 3.0])), min_size=1, max_size=12),
    publish_ticks=st.integers(1, 9),
    interval_s=st.sampled_from([5, 30, 60]),
)
def test_sent_on_change_plus_holds_and_heartbeats_interpolate_to_the_full_rate_series(steps, publish_ticks, interval_s):
    # series 0 changes every tick (as a noisy flow does), series 1 is a rate that sits at a value for
    # a while (auxiliary fuel off for hours), series 2 a 0/1 state derived from it
    fuel = np.concatenate([np.full(n, v) for n, v in steps])
    n = len(fuel)
    noisy = 50.0 + np.sin(np.arange(n) * 0.7) + np.arange(n) * 1e-3
    values = np.vstack([noisy, fuel, (fuel > 0).astype(float)])
    ts, per = run_stream(values, 1.0, publish_ticks, interval_s)
    for i in range(3):
        t, v = per[i]
        assert np.all(np.diff(t) > 0), "one stored sample per series and time"
        covered = ts <= t[-1]
        np.testing.assert_array_equal(np.interp(ts[covered], t, v), values[i][covered])
        # a healthy series is stored at least every interval (+ one publish of jitter)
        assert np.diff(t).max(initial=0) <= (interval_s + publish_ticks) * S
        # and the newest stored sample is never more than an interval behind the stream
        assert ts[-1] - t[-1] <= (interval_s + publish_ticks) * S


def test_a_bad_series_gets_no_heartbeat_and_its_last_good_value_is_held_only_until_the_bad_sample():
    tr = tracker(30)
    a = SampleBatch(TABLE, np.array([0, 1], np.int32), np.array([T0, T0]), np.array([1.0, 5.0]))
    tr.observe(a, T0)
    tr.observe(SampleBatch(TABLE, np.array([0], np.int32), np.array([T0 + 10 * S]), np.array([1.2])), T0 + 10 * S)
    bad = SampleBatch(TABLE, np.array([0, 1], np.int32), np.array([T0 + 20 * S, T0 + 20 * S]), np.array([1.5, np.nan]),
                      np.array([Quality.GOOD, Quality.BAD], np.uint8))
    out = tr.observe(bad, T0 + 20 * S)
    rows = sorted(zip(out.series.tolist(), (out.ts_ns - T0).tolist(), np.nan_to_num(out.value, nan=-1).tolist(), out.quality.tolist()))
    # series 1 is known at 5.0 until the last instant the server was seen before it went bad
    # (T0 + 10 s), then BAD from T0 + 20 s
    assert rows == [(0, 20 * S, 1.5, 0), (1, 10 * S, 5.0, 0), (1, 20 * S, -1.0, Quality.BAD)]
    later = SampleBatch(TABLE, np.array([0], np.int32), np.array([T0 + 60 * S]), np.array([2.0]))
    out = tr.observe(later, T0 + 60 * S)
    assert 1 not in out.series.tolist(), "a BAD series is not heartbeated: its silence is a gap"
    assert 2 not in out.series.tolist(), "a series never seen is not heartbeated"


def test_lost_connection_closes_coverage_at_the_last_watermark_and_forgets_the_values():
    tr = tracker(60)
    tr.observe(SampleBatch(TABLE, np.array([0, 1], np.int32), np.array([T0, T0]), np.array([1.0, 5.0])), T0)
    tr.observe(SampleBatch(TABLE, np.array([0], np.int32), np.array([T0 + 30 * S]), np.array([2.0])), T0 + 30 * S)
    closed = tr.close()
    assert sorted(zip(closed.series.tolist(), (closed.ts_ns - T0).tolist(), closed.value.tolist())) == [(1, 30 * S, 5.0)]
    # after the reconnect a change of series 1 holds nothing across the outage
    out = tr.observe(SampleBatch(TABLE, np.array([0, 1], np.int32), np.array([T0 + 600 * S] * 2), np.array([3.0, 6.0])), T0 + 600 * S)
    assert sorted(zip(out.series.tolist(), (out.ts_ns - T0).tolist())) == [(0, 600 * S), (1, 600 * S)]


def test_the_watermark_covers_only_the_series_named():
    tr = tracker(5)
    tr.observe(SampleBatch(TABLE, np.array([0, 1], np.int32), np.array([T0, T0]), np.array([1.0, 5.0])), T0)
    # a poll of series 0 alone says nothing about series 1
    out = tr.observe(SampleBatch(TABLE, np.array([0], np.int32), np.array([T0 + 30 * S]), np.array([1.0])), T0 + 30 * S, covers=[0])
    assert out.series.tolist() == [0]


def test_rows_older_than_the_stored_ones_pass_through_untouched():
    tr = tracker(5)
    tr.observe(SampleBatch(TABLE, np.array([0], np.int32), np.array([T0 + 100 * S]), np.array([1.0])), T0 + 100 * S)
    hist = SampleBatch(TABLE, np.array([0, 0], np.int32), np.array([T0, T0 + 50 * S]), np.array([7.0, 8.0]))
    out = tr.observe(hist)
    assert out.ts_ns.tolist() == hist.ts_ns.tolist() and out.value.tolist() == [7.0, 8.0]


def test_coverage_points_per_asset_at_its_newest_watermark():
    tr = tracker(60)
    table = TABLE + [Series.of("pump", "power_kw", site="danang", asset="p1")]
    tr.observe(SampleBatch(table, np.array([0, 3], np.int32), np.array([T0, T0 + S]), np.array([1.0, 2.0]),
                           np.array([0, 2], np.uint8)), T0 + S)
    cov = tr.coverage_batch()
    points = {(s.tag_dict["asset"], s.field): (int(t), v) for s, t, v in zip([cov.table[i] for i in cov.series], cov.ts_ns, cov.value)}
    assert points == {("wte1", "tags_total"): (T0 + S, 3.0), ("wte1", "tags_bad"): (T0 + S, 0.0),
                      ("p1", "tags_total"): (T0 + S, 1.0), ("p1", "tags_bad"): (T0 + S, 1.0)}
    assert {cov.table[0].tag_dict["gateway"], cov.table[0].tag_dict["source"], cov.table[0].measurement} == {"gw-yangon", "sim", "coverage"}
    assert len(tr.coverage_batch()) == 0, "only assets whose watermark moved"


def test_a_group_running_ahead_never_makes_another_groups_series_held():
    """One source, two groups: a subscription (series 0) whose watermark runs ahead, and a poll
    (series 1) that overran and missed a tick. When the polled series changes, nothing may claim
    it was unchanged at the subscription's instants: it was not observed then (a hold there
    would write its old value at a time it already had another, as a CI run once showed)."""
    tr = tracker(interval_s=60)
    poll = np.array([1], np.int32)
    sub = np.array([0], np.int32)
    first = tr.observe(SampleBatch(TABLE, np.array([1], np.int32), np.array([T0]), np.array([100.0])), T0, poll)
    assert first.ts_ns.tolist() == [T0]
    ahead = tr.observe(SampleBatch(TABLE, np.array([0, 0], np.int32), T0 + np.array([1, 2]) * S, np.array([7.0, 8.0])), T0 + 2 * S, sub)
    assert sorted(ahead.series.tolist()) == [0, 0]
    later = tr.observe(SampleBatch(TABLE, np.array([1], np.int32), np.array([T0 + 3 * S]), np.array([103.0])), T0 + 3 * S, poll)
    assert list(zip(later.ts_ns.tolist(), later.value.tolist())) == [(T0 + 3 * S, 103.0)], "polled series held at another group's instant"
    # its own watermark still makes holds: observed unchanged at T0 + 3 s, changed at T0 + 5 s
    none = np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0)
    tr.observe(SampleBatch(TABLE, *none), T0 + 4 * S, poll)
    held = tr.observe(SampleBatch(TABLE, np.array([1], np.int32), np.array([T0 + 5 * S]), np.array([105.0])), T0 + 5 * S, poll)
    assert sorted(zip(held.ts_ns.tolist(), held.value.tolist())) == [(T0 + 4 * S, 103.0), (T0 + 5 * S, 105.0)]
    # a lost connection writes each series at its own watermark, not the source's newest
    tr.observe(SampleBatch(TABLE, *none), T0 + 6 * S, sub)
    closed = tr.close()
    assert list(zip(closed.series.tolist(), closed.ts_ns.tolist(), closed.value.tolist())) == [(0, T0 + 6 * S, 8.0)]
