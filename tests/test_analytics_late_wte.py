"""Waste-to-energy across a crediting-year boundary on a real influxd: the later year credits the
decay of the earlier year's waste (TOOL04), read back from ``mrv``; late data in the earlier year,
a concurrent backfill, and polls whose minutes straddle the anniversary from mid-hour must all
give the results of computing the years in order."""

import numpy as np
import pytest

from plantmrv.analytics import wte
from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.engine import Engine
from plantmrv.batch import SampleBatch, Series
from plantmrv.influxwrite import write_batch

S = 1_000_000_000
H = 3600 * S
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z: start of crediting year 2 (year 1 starts 2025-01-01)
YEAR_S = 365 * 86400
WASTE_T_PER_H = 2.5
COMPARED = ("waste_t", "methane_avoided_t_co2e", "reference_t_co2", "reduction_t_co2")


def wte_engine(influx_db, **kw):
    project = {
        "id": "yangon-wte", "site": "yangon", "plant_type": "wte", "timezone": "Asia/Yangon",
        # export, import and fuel are configured but never written here: missing throughout, so
        # the reference counts no export and the project side is filled at the fill rates
        "assets": [{"measurement": "wte", "asset": "wte1", "fields": {"waste_rate": "waste_t_per_h", "export_meter": "net_export_energy_kwh",
                                                                       "import_meter": "import_energy_kwh", "aux_fuel_meter": "aux_fuel_kg"}}],
        "parameters": {"fill_waste_t_per_h": {"value": 4, "unit": "t/h", "source": "rating"},
                       "fill_aux_fuel_kg_per_h": {"value": 150, "unit": "kg/h", "source": "rating"},
                       "fill_import_power_kw": {"value": 250, "unit": "kW", "source": "rating"}},
        "methodology": {"id": "plantmrv-wte-acm0022-form"},
        "monitoring_period": {"start": "2025-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
        "grid_ef": {"country": "VN", "grid": "national", "year": 2015, "kind": "national"},
    }
    cfg = {"projects": [project], "max_gap_s": 10, "settle_s": 0, "late_data_lookback": "6h", "late_data_check_s": 1, **kw}
    return Engine(AnalyticsConfig.model_validate(cfg), influx_db)


def poll_at(eng, t_ns):
    """The gateway's watermark reaches ``t_ns`` (a ``coverage`` point), then the engine polls:
    event time, not the wall clock, decides which intervals close."""
    cov = Series.of("coverage", "tags_total", site="yangon", asset="wte1", measurement="wte", gateway="gw", source="plc")
    write_batch(eng.client, SampleBatch([cov], np.zeros(1, np.int32), np.array([t_ns], np.int64), np.array([1.0])))
    return eng.poll(now_ns=t_ns)


def waste_batch(start_ns, end_ns):
    """The weighbridge rate, one sample a second over ``[start_ns, end_ns]``."""
    ts = np.arange(start_ns, end_ns + 1, S, dtype=np.int64)
    s = Series.of("wte", "waste_t_per_h", site="yangon", asset="wte1")
    return SampleBatch([s], np.zeros(len(ts), np.int32), ts, np.full(len(ts), WASTE_T_PER_H))


def results(eng, start_ns, end_ns):
    p = eng.config.projects[0]
    return {iv: eng.read_results(p, start_ns, end_ns, iv) for iv in (60, 3600)}


def assert_same(got, want):
    for iv in want:
        np.testing.assert_array_equal(got[iv]["time"], want[iv]["time"])
        for name in COMPARED:
            np.testing.assert_allclose(got[iv][name], want[iv][name], rtol=1e-9, err_msg=f"{iv} s {name}")


def test_late_waste_in_an_earlier_crediting_year_recomputes_the_later_years_intervals(influx_db):
    """A gateway replays an hour of year 1 just after the year ends: the hours and minutes of
    year 2 already computed take the new decay tail, as a fresh backfill of the same data does."""
    replayed = waste_batch(T0 - 2 * H, T0 - H - S)  # 22:00-23:00 of the last day of year 1
    write_batch(influx_db, SampleBatch.concat([waste_batch(T0 - 3 * H, T0 - 2 * H - S), waste_batch(T0 - H, T0 + 2 * H)]))
    eng = wte_engine(influx_db)
    p = eng.config.projects[0]
    first = poll_at(eng, T0 + 2 * H + S)  # from now - lookback: 20:00 of year 1 to 02:00 of year 2
    assert first == {"yangon-wte/1m": 360, "yangon-wte/1h": 6}
    stale = results(eng, T0, T0 + 2 * H)
    assert poll_at(eng, T0 + 2 * H + 2 * S) == {"yangon-wte/1m": 0, "yangon-wte/1h": 0}

    write_batch(influx_db, replayed)
    done = poll_at(eng, T0 + 2 * H + 3 * S)
    # the changed hour with its neighbours, then both hours of year 2; minutes likewise
    assert done == {"yangon-wte/1h": 3 + 2, "yangon-wte/1m": 62 + 120}
    polled = results(eng, T0, T0 + 2 * H)

    influx_db.execute('DROP MEASUREMENT "mrv"')
    eng.backfill(T0 - 4 * H, T0 + 2 * H)
    fresh = results(eng, T0, T0 + 2 * H)
    assert_same(polled, fresh)
    # year 2's hours credit the decay of the 7.5 t of year 1; the stale ones had 5 t
    first_year_t_co2e = float(wte.methane_avoided_t_co2e(WASTE_T_PER_H, p.parameter_set))
    tail_t_co2e = float(wte.methane_avoided_by_year_t_co2e([3 * WASTE_T_PER_H, 0.0], p.parameter_set)[1])
    np.testing.assert_allclose(polled[3600]["methane_avoided_t_co2e"], first_year_t_co2e + tail_t_co2e * 3600 / YEAR_S, rtol=1e-9)
    for iv in (60, 3600):
        assert not np.allclose(stale[iv]["methane_avoided_t_co2e"], fresh[iv]["methane_avoided_t_co2e"], rtol=1e-6, atol=0)
    assert poll_at(eng, T0 + 2 * H + 5 * S) == {"yangon-wte/1m": 0, "yangon-wte/1h": 0}


def test_late_waste_in_the_latest_crediting_year_recomputes_only_its_neighbours(influx_db):
    """The common case stays cheap: late data within the current crediting year recomputes the
    changed intervals and their neighbours, nothing of the years."""
    replayed = waste_batch(T0 + H, T0 + 2 * H - S)
    write_batch(influx_db, SampleBatch.concat([waste_batch(T0 - 3 * H, T0 + H - S), waste_batch(T0 + 2 * H, T0 + 3 * H)]))
    eng = wte_engine(influx_db)
    poll_at(eng, T0 + 3 * H + S)
    write_batch(influx_db, replayed)
    processed = []
    process = eng.process
    eng.process = lambda p, a, b, iv, *rest: processed.append((a, b, iv)) or process(p, a, b, iv, *rest)
    assert poll_at(eng, T0 + 3 * H + 2 * S) == {"yangon-wte/1m": 62, "yangon-wte/1h": 3}
    # the MRV interval first; the 1 h range [00:00, 03:00) starts in year 2 itself: no later
    # year to recompute
    assert processed == [(T0, T0 + 3 * H, 3600), (T0 + H - 60 * S, T0 + 2 * H + 60 * S, 60)]
    polled = results(eng, T0, T0 + 3 * H)
    influx_db.execute('DROP MEASUREMENT "mrv"')
    eng.backfill(T0 - 3 * H, T0 + 3 * H)
    assert_same(polled, results(eng, T0, T0 + 3 * H))


def test_concurrent_backfill_across_a_crediting_year_equals_computing_hour_by_hour_in_order(influx_db):
    """Chunks are loaded concurrently but computed and written in order: a chunk straddling the
    anniversary and the chunks after it (the later ones from the year cache) see year 1's waste."""
    write_batch(influx_db, waste_batch(T0 - 3 * H, T0 + 5 * H))
    eng = wte_engine(influx_db)
    p = eng.config.projects[0]
    for h in range(T0 - 3 * H, T0 + 5 * H, H):
        for iv in (3600, 60):
            eng.process(p, h, h + H, iv)
    sequential = results(eng, T0 - 3 * H, T0 + 5 * H)
    influx_db.execute('DROP MEASUREMENT "mrv"')
    # chunks [21:00, 23:00) [23:00, 01:00) [01:00, 03:00) [03:00, 05:00), four at once
    eng.backfill(T0 - 3 * H, T0 + 5 * H, chunk_ns=2 * H, workers=4)
    concurrent = results(eng, T0 - 3 * H, T0 + 5 * H)
    assert_same(concurrent, sequential)
    tail_t_co2e = float(wte.methane_avoided_by_year_t_co2e([3 * WASTE_T_PER_H, 0.0], p.parameter_set)[1])
    first_year_t_co2e = float(wte.methane_avoided_t_co2e(WASTE_T_PER_H, p.parameter_set))
    np.testing.assert_allclose(concurrent[3600]["methane_avoided_t_co2e"][3:], first_year_t_co2e + tail_t_co2e * 3600 / YEAR_S, rtol=1e-9)



@pytest.mark.parametrize(
    "before, waste_from_ns",
    [
        ("polls_missed", T0 - 3 * H),
        ("polls_missed_hour_written", T0 - 3 * H),
        ("first_poll_hour_written", T0 - 20 * 60 * S),
    ],
    ids=["polls_missed", "polls_missed_hour_written", "first_poll_hour_written"],
)
def test_minutes_polled_across_the_anniversary_from_mid_hour_equal_a_fresh_backfill(influx_db, before, waste_from_ns):
    """One poll computes the 1 min window [23:40, 05:40) across the anniversary: year 2's minutes
    credit the decay of year 1's waste counted once, 23:00-23:40 included, whether the 23:00
    hour point (which covers 23:40-24:00 too) is not written yet or already is.

    - ``polls_missed``: the engine polled at 23:40, then not until 05:40;
    - ``polls_missed_hour_written``: likewise, and a backfill of the hours wrote 23:00 meanwhile;
    - ``first_poll_hour_written``: the plant feeds waste from 23:40 on, a previous run wrote the
      23:00 hour, and the engine's first poll starts its minutes at 23:40 (now - lookback).
    """
    write_batch(influx_db, waste_batch(waste_from_ns, T0 + 6 * H))
    eng = wte_engine(influx_db)
    p = eng.config.projects[0]
    mid = T0 - 20 * 60 * S  # 23:40 of the last day of year 1
    if before.startswith("polls_missed"):
        assert poll_at(eng, mid) == {"yangon-wte/1m": 360, "yangon-wte/1h": 6}  # [17:40, 23:40), [17:00, 23:00)
    if before.endswith("hour_written"):
        wte_engine(influx_db).backfill(T0 - H, T0, interval_s=[3600])
    # minutes [23:40, 05:40) in one window, hours [23:00, 05:00)
    assert poll_at(eng, mid + 6 * H + S) == {"yangon-wte/1m": 360, "yangon-wte/1h": 6}
    polled = results(eng, T0, T0 + 5 * H)
    assert len(polled[60]["time"]) == 5 * 60 and len(polled[3600]["time"]) == 5

    influx_db.execute('DROP MEASUREMENT "mrv"')
    eng.backfill(waste_from_ns, T0 + 6 * H)
    assert_same(polled, results(eng, T0, T0 + 5 * H))
    # TOOL04 by hand: year 2 credits the decay of year 1's waste, spread over the year
    year1_waste_t = WASTE_T_PER_H * (T0 - waste_from_ns) / H
    tail_t_co2e = float(wte.methane_avoided_by_year_t_co2e([year1_waste_t, 0.0], p.parameter_set)[1])
    for iv in (60, 3600):
        first_year_t_co2e = float(wte.methane_avoided_t_co2e(WASTE_T_PER_H * iv / 3600, p.parameter_set))
        np.testing.assert_allclose(polled[iv]["methane_avoided_t_co2e"], first_year_t_co2e + tail_t_co2e * iv / YEAR_S, rtol=1e-9, err_msg=f"{iv} s")
    assert poll_at(eng, mid + 6 * H + 2 * S) == {"yangon-wte/1m": 0, "yangon-wte/1h": 0}


def test_a_poll_failing_part_way_across_the_anniversary_leaves_no_hour_unread(influx_db):
    """A poll at 00:05 fails while writing (InfluxDB restarting): the next poll's minutes of
    year 2 still see the 23:00 hour of year 1, as a fresh backfill does (the MRV interval is
    computed first, so the minutes never run ahead of the hours they read)."""
    write_batch(influx_db, waste_batch(T0 - 3 * H, T0 + 2 * H))
    eng = wte_engine(influx_db)
    assert poll_at(eng, T0 - 20 * 60 * S) == {"yangon-wte/1m": 360, "yangon-wte/1h": 6}
    process = eng.process
    failing = {"left": 1}

    def process_once_failing(p, a, b, iv, *rest):
        if iv == 3600 and failing["left"]:
            failing["left"] -= 1
            raise ConnectionError("influxd restarting")
        return process(p, a, b, iv, *rest)

    eng.process = process_once_failing
    with pytest.raises(ConnectionError):
        poll_at(eng, T0 + 5 * 60 * S)
    poll_at(eng, T0 + H + 40 * 60 * S + S)
    polled = results(eng, T0, T0 + H)
    influx_db.execute('DROP MEASUREMENT "mrv"')
    eng.backfill(T0 - 3 * H, T0 + 2 * H)
    assert_same(polled, results(eng, T0, T0 + H))


def test_a_window_from_mid_hour_across_the_anniversary_costs_no_extra_query(influx_db):
    """The part of the hour before a mid-hour start comes from the window's own raw query,
    started at the hour instead: as many queries as a window starting on the hour."""
    write_batch(influx_db, waste_batch(T0 - 3 * H, T0 + H))
    eng = wte_engine(influx_db)
    p = eng.config.projects[0]
    queries = []
    query = eng.client.query
    eng.client.query = lambda q, *a, **kw: queries.append(q) or query(q, *a, **kw)
    aligned = eng.compute_window(p, T0 - H, T0 + H, 60)
    n_aligned = len(queries)
    mid = eng.compute_window(p, T0 - 20 * 60 * S, T0 + H, 60)
    assert len(queries) - n_aligned == n_aligned
    # no mrv points yet: both count only their own raw data of year 1, the mid-hour one 23:00-24:00
    np.testing.assert_allclose(mid.cobenefits["methane_avoided_t_co2e"][20:], aligned.cobenefits["methane_avoided_t_co2e"][60:], rtol=1e-9)
