"""Amounts from rate samples and cumulative meters: exactness, gaps, rollover, meter events, splitting."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantmrv.analytics.amounts import (
    MeterEvent,
    integrate_meter,
    integrate_rate,
    interval_edges_ns,
    max_per_interval,
    mean_per_interval,
    meter_increments,
    union_gap_s,
)

S = 1_000_000_000


def test_constant_power_hourly_energy_adds_up_across_hour_boundaries():
    # samples every 7 s never land on the hour: the segment straddling it is split there
    ts = np.arange(0, 3 * 3600 + 7, 7, dtype=np.int64) * S
    p = np.full(len(ts), 60.0)
    edges = interval_edges_ns(0, 3 * 3600 * S, 3600)
    e = integrate_rate(ts, p, edges, max_gap_s=10)
    np.testing.assert_allclose(e.amount, [60.0, 60.0, 60.0])
    np.testing.assert_allclose(e.covered_s, [3600.0] * 3)
    np.testing.assert_allclose(e.gap_s, [0.0] * 3)


def test_trapezoid_matches_numpy_with_real_timestamps():
    rng = np.random.default_rng(1)
    ts = np.cumsum(rng.integers(1 * S, 3 * S, 5000)).astype(np.int64)
    p = rng.uniform(0, 100, 5000)
    edges = np.array([ts[0], ts[-1]], dtype=np.int64)
    e = integrate_rate(ts, p, edges, max_gap_s=5)
    assert e.amount[0] == pytest.approx(np.trapezoid(p, ts / S) / 3600, rel=1e-12)


def test_long_gap_is_not_bridged_and_reported():
    ts = np.array([0, 10, 20, 100, 110], dtype=np.int64) * S
    p = np.full(5, 36.0)
    e = integrate_rate(ts, p, np.array([0, 60, 120]) * S, max_gap_s=15)
    np.testing.assert_allclose(e.covered_s, [20.0, 10.0])
    np.testing.assert_allclose(e.gap_s, [40.0, 50.0])  # 20..60, 60..100 and after 110
    np.testing.assert_allclose(e.amount, [0.2, 0.1])
    np.testing.assert_allclose(e.completeness, [20 / 60, 10 / 60])


def test_nan_sample_is_treated_as_missing():
    ts = np.arange(0, 61, 1, dtype=np.int64) * S
    p = np.full(61, 3600.0)
    p[30] = np.nan
    e = integrate_rate(ts, p, np.array([0, 60]) * S, max_gap_s=5)
    assert e.amount[0] == pytest.approx(60.0)  # 29..31 bridged over 2 s
    p[20:40] = np.nan
    e = integrate_rate(ts, p, np.array([0, 60]) * S, max_gap_s=5)
    assert e.gap_s[0] == pytest.approx(21.0)


def test_unsorted_timestamps_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        integrate_rate(np.array([0, 2, 1]) * S, np.ones(3), np.array([0, 5]) * S, 10)


def test_meter_rollover_counts_and_an_undeclared_drop_is_a_gap_never_counted():
    ts = np.arange(6, dtype=np.int64) * 10 * S
    inc, broken, found = meter_increments(ts, [999990.0, 999999.0, 5.0, 10.0, 3.0, 4.0], rollover_at=1_000_000.0)
    np.testing.assert_allclose(inc, [9.0, 6.0, 5.0, 0.0, 1.0])  # rollover counted; the drop 10 -> 3 not
    assert broken.tolist() == [False, False, False, True, False]
    assert [f.kind for f in found] == ["meter_rollover", "meter_drop"]
    e = integrate_meter(ts, [999990.0, 999999.0, 5.0, 10.0, 3.0, 4.0], np.array([0, 60]) * S, 60, rollover_at=1_000_000.0)
    assert e.amount[0] == pytest.approx(21.0) and e.gap_s[0] == pytest.approx(20.0) and e.gap_amount[0] == 0.0  # the drop and after the last reading
    assert e.gap_spans_ns.tolist() == [[30 * S, 40 * S], [50 * S, 60 * S]]


def test_declared_replacement_is_applied_exactly():
    # the old meter read 1500 at the swap, the new one started at 20
    ts = np.array([0, 60, 120, 180], dtype=np.int64) * S
    r = [1000.0, 1400.0, 120.0, 400.0]
    ev = MeterEvent(90 * S, old_final=1500.0, new_initial=20.0, kind="replacement", source="work order 7")
    e = integrate_meter(ts, r, np.array([0, 180]) * S, 60, events=[ev], field_name="energy_kwh")
    assert e.amount[0] == pytest.approx(400.0 + (100.0 + 100.0) + 280.0)
    assert e.gap_s[0] == 0.0
    assert [(f.kind, f.counted) for f in e.events] == [("meter_replacement", True)]
    assert "work order 7" in e.events[0].detail


def test_new_meter_above_the_old_and_a_swap_near_rollover_are_jumps_not_credited():
    ts = np.array([0, 60, 120], dtype=np.int64) * S
    # 900 kW at most: 15 kWh per minute; the new register starts at 50,000
    inc, broken, found = meter_increments(ts, [1000.0, 1010.0, 50_000.0], max_rate_per_h=900.0)
    assert broken.tolist() == [False, True] and inc.tolist() == [10.0, 0.0] and found[0].kind == "meter_jump"
    # a swap at 990,000 on a 1e6 register taken for a rollover would add a phantom 50,000 kWh
    inc, broken, found = meter_increments(ts, [989_990.0, 990_000.0, 40_000.0], rollover_at=1e6, max_rate_per_h=900.0)
    assert broken.tolist() == [False, True] and inc.sum() == 10.0 and found[0].kind == "meter_drop"


def test_a_declaration_that_contradicts_the_readings_is_a_gap():
    ts = np.array([0, 60, 120], dtype=np.int64) * S
    ev = MeterEvent(90 * S, old_final=500.0, new_initial=0.0)  # but the old meter already read 1010
    inc, broken, found = meter_increments(ts, [1000.0, 1010.0, 30.0], events=[ev])
    assert broken.tolist() == [False, True] and found[0].kind == "meter_event_inconsistent"


def test_gap_spans_of_several_inputs_are_united_exactly():
    spans_a = np.array([[10, 20], [50, 70]], np.int64) * S
    spans_b = np.array([[15, 30]], np.int64) * S
    np.testing.assert_allclose(union_gap_s([spans_a, spans_b], np.array([0, 25, 60, 100]) * S), [15.0, 15.0, 10.0])


def test_meter_energy_split_at_edges_and_gap_energy_separate():
    ts = np.array([0, 30, 90, 400, 430], dtype=np.int64) * S
    r = np.array([0.0, 3.0, 9.0, 40.0, 43.0])
    e = integrate_meter(ts, r, np.array([0, 60, 600]) * S, max_gap_s=100)
    np.testing.assert_allclose(e.amount, [6.0, 6.0])
    np.testing.assert_allclose(e.gap_amount, [0.0, 31.0])
    assert float(e.amount.sum() + e.gap_amount.sum()) == pytest.approx(43.0)


def test_mean_and_max_per_interval():
    ts = np.array([0, 1, 2, 10, 11], dtype=np.int64) * S
    v = np.array([1.0, 2.0, 3.0, 5.0, np.nan])
    mean, cnt = mean_per_interval(ts, v, np.array([0, 5, 10, 20]) * S)
    np.testing.assert_allclose(mean, [2.0, np.nan, 5.0])
    np.testing.assert_allclose(cnt, [3, 0, 1])
    np.testing.assert_allclose(max_per_interval(ts, v, np.array([0, 5, 10, 20]) * S), [3.0, np.nan, 5.0])


steps = st.lists(st.integers(1, 30), min_size=2, max_size=200)


@settings(max_examples=150, deadline=None)
@given(steps=steps, seed=st.integers(0, 2**31), cuts=st.lists(st.integers(0, 6000), max_size=8), max_gap=st.integers(1, 30))
def test_splitting_a_period_into_intervals_sums_to_the_whole(steps, seed, cuts, max_gap):
    ts = np.cumsum(np.array(steps, dtype=np.int64)) * S
    p = np.random.default_rng(seed).uniform(0, 500, len(ts))
    lo, hi = int(ts[0]) - 5 * S, int(ts[-1]) + 5 * S
    inner = sorted({lo + c * S for c in cuts if lo < lo + c * S < hi})
    edges = np.array([lo, *inner, hi], dtype=np.int64)
    whole = integrate_rate(ts, p, np.array([lo, hi]), max_gap)
    parts = integrate_rate(ts, p, edges, max_gap)
    assert parts.amount.sum() == pytest.approx(whole.amount[0], rel=1e-9, abs=1e-9)
    assert parts.covered_s.sum() == pytest.approx(whole.covered_s[0], abs=1e-6)
    assert np.all(parts.amount >= -1e-12)
    np.testing.assert_allclose(parts.covered_s + parts.gap_s, np.diff(edges) / S)
    rm = np.cumsum(p)
    mwhole = integrate_meter(ts, rm, np.array([lo, hi]), max_gap)
    mparts = integrate_meter(ts, rm, edges, max_gap)
    assert mparts.amount.sum() == pytest.approx(mwhole.amount[0], rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(readings=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=100), rollover=st.one_of(st.none(), st.just(1e6)))
def test_meter_rollover_and_reset_never_give_negative_energy(readings, rollover):
    ts = np.arange(len(readings), dtype=np.int64) * 10 * S
    inc, broken, _ = meter_increments(ts, readings, rollover_at=rollover)
    assert np.all(inc >= 0) and not np.any(inc[broken])
    e = integrate_meter(ts, readings, np.array([0, 5 * S, len(readings) * 10 * S]), 60, rollover_at=rollover)
    assert np.all(e.amount >= 0) and np.all(e.gap_amount >= 0)


def test_year_of_1s_data_gives_exact_hourly_sum():
    n = 2 * 86400
    ts = np.arange(n, dtype=np.int64) * S + 1_700_000_000 * S
    p = np.random.default_rng(3).uniform(0, 10, n)
    edges = interval_edges_ns(ts[0], ts[-1] + S, 3600)
    e = integrate_rate(ts, p, edges, 5)
    assert e.amount.sum() == pytest.approx(np.trapezoid(p, dx=1.0) / 3600, rel=1e-12)


def test_meter_standing_still_across_a_long_gap_is_covered_with_zero_energy():
    # report-by-exception: a PV export meter sends nothing overnight, then moves again
    ts = np.array([0, 10, 20, 3600, 3610], dtype=np.int64) * S
    r = np.array([5.0, 6.0, 7.0, 7.0, 8.0])
    e = integrate_meter(ts, r, np.array([0, 1800, 3610]) * S, max_gap_s=60)
    np.testing.assert_allclose(e.gap_s, [0.0, 0.0])
    np.testing.assert_allclose(e.amount, [2.0, 1.0])
    strict = integrate_meter(ts, r, np.array([0, 1800, 3610]) * S, max_gap_s=60, bridge_unchanged=False)
    np.testing.assert_allclose(strict.gap_s, [1780.0, 1800.0])


def test_state_flag_holds_its_last_value():
    from plantmrv.analytics.amounts import held_mean_per_interval

    ts = np.array([-100, 1800, 2700], dtype=np.int64) * S  # 1 from before the period, off at 0:30, on at 0:45
    mean, known = held_mean_per_interval(ts, [1.0, 0.0, 1.0], np.array([0, 3600, 7200]) * S)
    np.testing.assert_allclose(mean, [0.75, 1.0])
    np.testing.assert_allclose(known, [3600.0, 3600.0])
    mean, known = held_mean_per_interval(ts[1:], [0.0, 1.0], np.array([0, 3600]) * S)
    np.testing.assert_allclose(mean, [0.25])  # unknown before the first sample counts 0
    np.testing.assert_allclose(known, [1800.0])


@pytest.mark.parametrize("where", ["uniform", "jitter", "long_gap", "duplicate"])
def test_long_series_in_chunks_equal_one_pass(where, monkeypatch):
    """Long series are summed chunk by chunk (regular-spacing fast path, edge index guessed
    from the mean spacing): the same as one pass over the whole series, with the same errors."""
    from plantmrv.analytics import amounts as energy

    n = 6 * energy._CHUNK + 12345
    ts = np.arange(n, dtype=np.int64) * S
    k = 3 * energy._CHUNK + 77  # a sample inside the fourth chunk
    if where == "jitter":
        ts[k] += S // 3
    elif where == "long_gap":
        ts[k:] += 60 * S
    elif where == "duplicate":
        ts[k] = ts[k - 1]
    p = np.random.default_rng(3).uniform(100, 900, n)
    edges = interval_edges_ns(0, int(ts[-1]) + S, 3600)
    results = []
    for chunk in (energy._CHUNK, 1 << 30):
        monkeypatch.setattr(energy, "_CHUNK", chunk)
        if where == "duplicate":
            with pytest.raises(ValueError, match="strictly increasing"):
                integrate_rate(ts, p, edges, max_gap_s=10)
            continue
        results.append(integrate_rate(ts, p, edges, max_gap_s=10))
    if where == "duplicate":
        return
    chunked, whole = results
    np.testing.assert_allclose(chunked.amount, whole.amount, rtol=1e-12)
    np.testing.assert_array_equal(chunked.covered_s, whole.covered_s)
    np.testing.assert_array_equal(chunked.gap_s, whole.gap_s)
    # the plain trapezoid over real timestamps agrees
    bridged = np.diff(ts) <= 10 * S
    seg_kwh = (p[1:] + p[:-1]) / 2 * np.diff(ts) / S / 3600
    assert chunked.amount.sum() == pytest.approx(seg_kwh[bridged].sum(), rel=1e-12)
    if where == "long_gap":
        assert chunked.gap_s.sum() == pytest.approx(61.0 + (edges[-1] - ts[-1]) / S)
