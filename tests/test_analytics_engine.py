"""Engine on a real influxd: backfill, idempotence, gaps filled conservatively, late data, report."""

import numpy as np
import pytest

from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.engine import Engine, period_reports
from plantmrv.batch import SampleBatch, Series
from plantmrv.influxwrite import write_batch

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def pump_project(**extra):
    p = {
        "id": "danang-pumps",
        "site": "danang",
        "city": "Da Nang",
        "country": "VN",
        "plant_type": "pump",
        "timezone": "Asia/Ho_Chi_Minh",
        "assets": [{"measurement": "pump", "asset": "pump1", "fields": {"energy_meter": "energy_kwh"}, "rollover_at": 1e6}],
        "methodology": {"id": "plantmrv-pump", "version": "1.0"},
        "baseline": "efficiency_ratio",
        "parameters": {
            "eta_project": {"value": 0.808, "unit": "-", "source": "certificate"},
            "eta_reference": {"value": 0.791, "unit": "-", "source": "ex-ante default"},
            "fill_power_kw": {"value": 900.0, "unit": "kW", "source": "motor rating"},
        },
        "monitoring_period": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
        "ex_ante_t_co2": 1.0,
        "japan_share": 0.5,
        "grid_ef": {"country": "VN", "grid": "national", "year": 2015, "kind": "national"},
    }
    p.update(extra)
    return p


def config(**kw):
    return AnalyticsConfig.model_validate({"projects": [pump_project()], "max_gap_s": 10, "late_data_lookback": "6h", "settle_s": 0, **kw})


def meter_batch(ts, power_kw, start_reading=999_000.0, rollover=1e6):
    # register of a constant-ish power: trapezoid integral, wrapping at rollover
    e = np.concatenate(([0.0], np.cumsum((power_kw[1:] + power_kw[:-1]) / 2 * np.diff(ts) / S / 3600)))
    reading = (start_reading + e) % rollover
    s = Series.of("pump", "energy_kwh", site="danang", asset="pump1")
    return SampleBatch([s], np.zeros(len(ts), np.int32), ts, reading), e


def test_backfill_matches_meter_truth_across_rollover_and_is_idempotent(influx_db):
    ts = T0 + np.arange(0, 6 * 3600 + 1, 1, dtype=np.int64) * S
    power = 600.0 + 50.0 * np.sin(np.arange(len(ts)) / 900.0)
    batch, e = meter_batch(ts, power)
    write_batch(influx_db, batch)
    eng = Engine(config(), influx_db)
    n = eng.backfill(T0, T0 + 6 * 3600 * S, interval_s=[3600])
    assert n == 6
    cols = eng.read_results(eng.config.projects[0], T0, T0 + 6 * 3600 * S, 3600)
    assert len(cols["time"]) == 6
    np.testing.assert_allclose(cols["project_energy_kwh"].sum(), e[-1], rtol=1e-9)  # register wrapped at 1e6 on the way
    np.testing.assert_allclose(cols["reference_energy_kwh"], cols["project_energy_kwh"] * 0.808 / 0.791, rtol=1e-12)
    np.testing.assert_allclose(cols["reduction_t_co2"], (cols["reference_energy_kwh"] - cols["project_energy_kwh"]) / 1000 * 0.8154, rtol=1e-9)
    np.testing.assert_allclose(cols["completeness"], 1.0)
    assert set(cols["params_hash"]) == {eng.compute_window(eng.config.projects[0], T0, T0 + 3600 * S, 3600).params_hash}
    # recomputing overwrites the same points
    eng.backfill(T0, T0 + 6 * 3600 * S, interval_s=[3600])
    again = eng.read_results(eng.config.projects[0], T0, T0 + 6 * 3600 * S, 3600)
    assert len(again["time"]) == 6
    np.testing.assert_allclose(again["reduction_t_co2"], cols["reduction_t_co2"])


def test_gap_is_flagged_in_exactly_its_intervals_and_filled_conservatively(influx_db):
    ts = T0 + np.arange(0, 4 * 3600 + 1, 1, dtype=np.int64) * S
    gap = (ts >= T0 + 5400 * S) & (ts < T0 + 7200 * S + 600 * S)  # 01:30 - 02:10 missing
    power = np.full(len(ts), 600.0)
    batch, _ = meter_batch(ts, power, start_reading=0.0)
    write_batch(influx_db, batch.take(np.flatnonzero(~gap)))
    eng = Engine(config(), influx_db)
    eng.backfill(T0, T0 + 4 * 3600 * S, interval_s=[60, 3600])
    p = eng.config.projects[0]
    hourly = eng.read_results(p, T0, T0 + 4 * 3600 * S, 3600)
    # the gap runs from the last sample before (01:29:59) to the first after (02:10:00)
    np.testing.assert_allclose(hourly["gap_filled_s"], [0.0, 1801.0, 600.0, 0.0])
    np.testing.assert_allclose(hourly["completeness"], [1.0, 1799 / 3600, 3000 / 3600, 1.0])
    # reference only over covered time; project at the 900 kW plausible maximum over the gap
    covered_kwh = 600.0 * np.array([3600, 1799, 3000, 3600]) / 3600
    np.testing.assert_allclose(hourly["reference_energy_kwh"], covered_kwh * 0.808 / 0.791, rtol=1e-9)
    np.testing.assert_allclose(hourly["project_energy_kwh"], covered_kwh + 900.0 * np.array([0, 1801, 600, 0]) / 3600, rtol=1e-9)
    minute = eng.read_results(p, T0, T0 + 4 * 3600 * S, 60)
    flagged = minute["time"][minute["gap_filled_s"] > 0]
    assert flagged.min() == T0 + 89 * 60 * S and flagged.max() == T0 + 129 * 60 * S
    assert len(flagged) == 41


def test_continuous_poll_recomputes_intervals_that_receive_late_data(influx_db):
    ts = T0 + np.arange(0, 4 * 3600 + 1, 1, dtype=np.int64) * S
    batch, _ = meter_batch(ts, np.full(len(ts), 360.0), start_reading=0.0)
    late = (ts >= T0 + 2 * 3600 * S) & (ts < T0 + 3 * 3600 * S)
    write_batch(influx_db, batch.take(np.flatnonzero(~late)))
    eng = Engine(config(mrv_interval="1h", process_interval="1m", late_data_check_s=1), influx_db)
    p = eng.config.projects[0]
    assert eng.poll(now_ns=T0 + 4 * 3600 * S + S)["danang-pumps/1m"] == 240
    before = eng.read_results(p, T0, T0 + 4 * 3600 * S, 3600)
    assert before["completeness"][2] < 0.01
    assert eng.poll(now_ns=T0 + 4 * 3600 * S + 2 * S)["danang-pumps/1h"] == 0  # nothing changed
    write_batch(influx_db, batch.take(np.flatnonzero(late)))  # the gateway replays its buffer
    done = eng.poll(now_ns=T0 + 4 * 3600 * S + 3 * S)
    assert done["danang-pumps/1h"] == 3  # hour 2 and its neighbours, as one range
    assert done["danang-pumps/1m"] == 62  # the 60 minutes and one neighbour each side
    after = eng.read_results(p, T0, T0 + 4 * 3600 * S, 3600)
    np.testing.assert_allclose(after["completeness"], 1.0)
    np.testing.assert_allclose(after["project_energy_kwh"], 360.0, rtol=1e-9)
    minutes = eng.read_results(p, T0, T0 + 4 * 3600 * S, 60)
    np.testing.assert_allclose(minutes["project_energy_kwh"], 6.0, rtol=1e-9)
    assert eng.poll(now_ns=T0 + 4 * 3600 * S + 5 * S) == {"danang-pumps/1m": 0, "danang-pumps/1h": 0}


def test_late_data_check_runs_at_its_own_cadence(influx_db):
    ts = T0 + np.arange(0, 3600 + 1, 1, dtype=np.int64) * S
    write_batch(influx_db, meter_batch(ts, np.full(len(ts), 500.0), start_reading=0.0)[0])
    eng = Engine(config(late_data_check_s=60), influx_db)
    calls = []
    eng._counts = lambda *a: calls.append(a[1:]) or {}
    eng.poll(now_ns=T0 + 3600 * S)
    n0 = len(calls)
    eng.poll(now_ns=T0 + 3600 * S + 5 * S)  # within 60 s: no lookback scan
    assert len(calls) == n0
    eng.poll(now_ns=T0 + 3600 * S + 61 * S)
    scans = [c for c in calls[n0:] if c[0] == T0]  # over the lookback window (from the start)
    assert scans == [(T0, T0 + 3600 * S, 60)]  # one count query per project, for both interval lengths


def test_period_report_floors_the_period_total_and_shares_credits(influx_db):
    ts = T0 + np.arange(0, 24 * 3600 + 1, 1, dtype=np.int64) * S
    batch, _ = meter_batch(ts, np.full(len(ts), 800.0), start_reading=0.0)
    write_batch(influx_db, batch)
    eng = Engine(config(), influx_db)
    eng.backfill(T0, T0 + 24 * 3600 * S, interval_s=[3600])
    (r,) = period_reports(eng, "monitoring")
    expected = 800 * 24 * (0.808 / 0.791 - 1) / 1000 * 0.8154
    assert r.reduction_t_co2 == pytest.approx(expected, rel=1e-9)
    assert r.reported_t_co2 == np.floor(expected) and r.ex_ante_t_co2 == 1.0
    (fy,) = period_reports(eng, "fiscal_year")
    assert fy.period == "FY2025"


def test_unknown_baseline_and_parameter_errors_name_the_key():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as exc:
        AnalyticsConfig.model_validate({"projects": [pump_project(baseline="generation")]})
    assert "projects.0.baseline" in str(exc.value).replace("\n", " ").replace(" ", ".") or "baseline" in str(exc.value)
    with pytest.raises(ValidationError, match="parameters.eta_ref: unknown parameter"):
        AnalyticsConfig.model_validate({"projects": [pump_project(parameters={"eta_ref": {"value": 1, "unit": "-", "source": "x"}})]})


def test_cli_backfill_then_report(influx_db, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from plantmrv.analytics.cli import app

    ts = T0 + np.arange(0, 3 * 3600 + 1, 1, dtype=np.int64) * S
    batch, _ = meter_batch(ts, np.full(len(ts), 700.0), start_reading=0.0)
    write_batch(influx_db, batch)
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({"influxdb": {"url": influx_db.url, "database": influx_db.database}, "analytics": {"projects": [pump_project()]}}))
    runner = CliRunner()
    res = runner.invoke(app, ["backfill", "-c", str(path), "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T03:00:00Z", "-q"])
    assert res.exit_code == 0, res.output
    assert "wrote 183 mrv point(s)" in res.output  # 180 minutes + 3 hours
    res = runner.invoke(app, ["report", "-c", str(path), "--json"])
    assert res.exit_code == 0, res.output
    import json

    doc = json.loads(res.stdout)
    (r,) = doc["reports"]
    assert r["reduction_t_co2"] == pytest.approx(700 * 3 * (0.808 / 0.791 - 1) / 1000 * 0.8154, rel=1e-9)
    res = runner.invoke(app, ["backfill", "-c", str(path), "--from", "2026-01-02", "--to", "2026-01-01"])
    assert res.exit_code != 0 and "--to must be after --from" in res.output


def test_cli_run_once_computes_closed_intervals(influx_db, tmp_path):
    import time as _time

    import yaml
    from typer.testing import CliRunner

    from plantmrv.analytics.cli import app

    now_s = int(_time.time())
    hour0 = (now_s // 3600 - 2) * 3600 * S  # two closed hours before the current one
    ts = hour0 + np.arange(0, 2 * 3600 + 1, 1, dtype=np.int64) * S
    batch, _ = meter_batch(ts, np.full(len(ts), 500.0), start_reading=0.0)
    write_batch(influx_db, batch)
    project = pump_project(monitoring_period={"start": "2020-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"})
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({"influxdb": {"url": influx_db.url, "database": influx_db.database}, "analytics": {"projects": [project], "late_data_lookback": "3h", "settle_s": 0}}))
    res = CliRunner().invoke(app, ["run", "-c", str(path), "--once"])
    assert res.exit_code == 0, res.output
    assert "danang-pumps/1h:" in res.output
    cfg = AnalyticsConfig.model_validate({"projects": [project]})
    eng = Engine(cfg, influx_db)
    cols = eng.read_results(cfg.projects[0], hour0, hour0 + 2 * 3600 * S, 3600)
    np.testing.assert_allclose(cols["project_energy_kwh"], 500.0, rtol=1e-9)


def test_running_flag_sent_only_on_change_is_held_through_the_gateways_coverage(influx_db):
    """OPC UA subscriptions report by exception: a pump running for hours sends `running` only
    when it changes. The gateway's coverage (hold points, a heartbeat every minute) makes the
    stored flag exact, so the hours are exact; without it, the silence would be a gap."""
    from plantmrv.gateway.coverage import CoverageTracker

    ts = T0 + np.arange(-600, 3 * 3600 + 1, 1, dtype=np.int64) * S
    batch, _ = meter_batch(ts, np.full(len(ts), 500.0), start_reading=0.0)
    run = Series.of("pump", "running", site="danang", asset="pump1")
    flag = np.where((ts >= T0 + 5400 * S) & (ts < T0 + 7200 * S), 0.0, 1.0)  # off 01:30-02:00
    changed = np.ones(len(ts), bool)
    changed[1:] = flag[1:] != flag[:-1]
    tracker = CoverageTracker(lambda _s: 60 * S, "gw", "plc")
    stored = []
    for k in range(len(ts)):  # one publish a second; the meter moves every second (the watermark)
        rows = SampleBatch([run, batch.table[0]], np.array([0, 1] if changed[k] else [1], np.int32), ts[k:k + 1].repeat(2 if changed[k] else 1),
                           np.array([flag[k], batch.value[k]] if changed[k] else [batch.value[k]]))
        stored.append(tracker.observe(rows, int(ts[k])))
    stored = SampleBatch.concat(stored)
    assert (stored.series == stored.table.index(run)).sum() < 250  # vs 11,401 samples at full rate
    write_batch(influx_db, stored)
    vsd = pump_project(
        plant_type="vsd", baseline="constant_power_hours",
        assets=[{"measurement": "pump", "asset": "pump1", "fields": {"energy_meter": "energy_kwh", "running": "running"}}],
        parameters={"baseline_power_kw": {"value": 700.0, "unit": "kW", "source": "pre-retrofit measurement"},
                    "fill_power_kw": {"value": 900.0, "unit": "kW", "source": "motor rating"}},
    )
    eng = Engine(AnalyticsConfig.model_validate({"projects": [vsd]}), influx_db)
    eng.backfill(T0, T0 + 3 * 3600 * S, interval_s=[3600])
    cols = eng.read_results(eng.config.projects[0], T0, T0 + 3 * 3600 * S, 3600)
    # the flag ramps over the one second of each change, as the full-rate series does: the two ramps add to one second
    np.testing.assert_allclose(cols["reference_energy_kwh"], [700.0, 350.0, 700.0], rtol=1e-9)
    np.testing.assert_allclose(cols["completeness"], 1.0)


def test_wte_hours_of_a_later_crediting_year_credit_the_decay_of_earlier_waste(influx_db):
    """TOOL04's tail on real influxd: the engine reads the earlier year's waste back from its own
    hourly ``mrv`` points and spreads that year's decay over the later year's hours."""
    from plantmrv.analytics import wte

    t_prev = T0 - 365 * 86400 * S  # 2025-01-01: crediting year 1
    s = Series.of("wte", "waste_t_per_h", site="yangon", asset="wte1")
    ts = np.concatenate([t_prev + np.arange(0, 6 * 3600 + 1, dtype=np.int64) * S, T0 + np.arange(0, 2 * 3600 + 1, dtype=np.int64) * S])
    write_batch(influx_db, SampleBatch([s], np.zeros(len(ts), np.int32), ts, np.full(len(ts), 2.5)))
    from tests.test_analytics_late_wte import wte_engine

    eng = wte_engine(influx_db)
    p = eng.config.projects[0]
    eng.backfill(t_prev, t_prev + 6 * 3600 * S, interval_s=[3600])
    eng.backfill(T0, T0 + 2 * 3600 * S, interval_s=[60, 3600])
    prev = eng.read_results(p, t_prev, t_prev + 6 * 3600 * S, 3600)
    now = eng.read_results(p, T0, T0 + 2 * 3600 * S, 3600)
    np.testing.assert_allclose(prev["waste_t"], 2.5, rtol=1e-9)
    first_year_t_co2e = float(wte.methane_avoided_t_co2e(2.5, p.parameter_set))
    np.testing.assert_allclose(prev["methane_avoided_t_co2e"], first_year_t_co2e, rtol=1e-9)  # year 1: no earlier waste
    tail_year2 = float(wte.methane_avoided_by_year_t_co2e([15.0, 0.0], p.parameter_set)[1])
    assert tail_year2 > 0
    expected = first_year_t_co2e + tail_year2 * 3600 / (365 * 86400)
    np.testing.assert_allclose(now["methane_avoided_t_co2e"], expected, rtol=1e-9)
    np.testing.assert_allclose(now["reference_t_co2"], expected, rtol=1e-9)
    minutes = eng.read_results(p, T0, T0 + 2 * 3600 * S, 60)
    assert minutes["methane_avoided_t_co2e"].sum() == pytest.approx(now["methane_avoided_t_co2e"].sum(), rel=1e-9)
    (report,) = period_reports(eng, "monitoring")
    # export, import and fuel were never written: the project side carries their fills (8 h)
    pe = float(wte.project_emissions_t_co2(20.0, 150.0 * 8 / 1000, 250.0 * 8, 0.8154, p.parameter_set))
    assert report.reference_t_co2 == pytest.approx(8 * first_year_t_co2e + 2 * 3600 / (365 * 86400) * tail_year2, rel=1e-9)
    assert report.project_t_co2 == pytest.approx(pe, rel=1e-9)
    assert report.reduction_t_co2 == pytest.approx(report.reference_t_co2 - pe, rel=1e-9)


def test_kh_am002_pv_credits_each_local_day_at_its_category_ef(influx_db):
    """JCM KH_AM002 end to end: export meter + grid flag sent on change -> influxd -> engine."""
    d0 = T0 - 7 * 3600 * S  # local midnight in Cambodia (UTC+7)
    ts = d0 + np.arange(0, 2 * 86400 + 1, 10, dtype=np.int64) * S
    meter = Series.of("pv", "export_energy_kwh", site="phnompenh", asset="pv1")
    flag = Series.of("pv", "grid_ok", site="phnompenh", asset="pv1")
    # grid all of day 1, outage all of day 2 (the gateway stores the unchanged flag every 10 s here)
    flag_ts = np.concatenate(([d0 - 10 * S], ts))
    write_batch(influx_db, SampleBatch.concat([
        SampleBatch([meter], np.zeros(len(ts), np.int32), ts, np.arange(len(ts)) * (36.0 * 10 / 3600)),  # 36 kW
        SampleBatch([flag], np.zeros(len(flag_ts), np.int32), flag_ts, (flag_ts < d0 + 86400 * S).astype(float)),
    ]))
    project = {
        "id": "phnompenh-pv", "site": "phnompenh", "country": "KH", "plant_type": "pv", "timezone": "Asia/Phnom_Penh",
        "assets": [{"measurement": "pv", "asset": "pv1", "fields": {"export_meter": "export_energy_kwh", "grid_available": "grid_ok"}}],
        "methodology": {"id": "KH_AM002", "version": "1.0"},
        "day_category": {"utc_offset_h": 7},
        "parameters": {"ef_diesel_t_co2_per_mwh": {"value": 0.8, "unit": "tCO2/MWh", "source": "test: the methodology's diesel EF"}},
        "monitoring_period": {"start": "2025-12-31T17:00:00Z", "end": "2026-01-02T17:00:00Z"},
        "grid_ef": {"value": 0.6, "unit": "tCO2/MWh", "source": "test: the methodology's grid EF", "kind": "national"},
    }
    eng = Engine(AnalyticsConfig.model_validate({"projects": [project], "max_gap_s": 15}), influx_db)
    p = eng.config.projects[0]
    eng.backfill(d0, d0 + 2 * 86400 * S, interval_s=[3600])
    cols = eng.read_results(p, d0, d0 + 2 * 86400 * S, 3600)
    np.testing.assert_allclose(cols["reference_energy_kwh"], 36.0, rtol=1e-9)
    np.testing.assert_allclose(cols["reduction_t_co2"], 0.036 * np.repeat([0.6, 0.8], 24), rtol=1e-9)
    (r,) = period_reports(eng, "monitoring")
    assert r.reduction_t_co2 == pytest.approx(0.036 * 24 * (0.6 + 0.8), rel=1e-9)


def test_fields_the_methodology_does_not_read_are_not_queried_and_results_are_unchanged():
    """A rate configured beside its meter is not queried (influxd's cost is per raw value): per
    quantity the meter is read, and results from the roles read equal results from all."""
    from pathlib import Path

    import yaml

    from plantmrv.analytics.engine import asset_fields, roles_read
    from plantmrv.analytics.methodologies import compute, resolve_grid_ef

    raw = yaml.safe_load((Path(__file__).resolve().parent.parent / "examples" / "analytics.yaml").read_text())["analytics"]
    raw["projects"].append(pump_project(id="both", baseline="specific_energy", assets=[{"measurement": "pump", "asset": "p1", "fields": {
        "energy_meter": "energy_kwh", "power": "power_kw", "volume_meter": "volume_m3", "flow": "flow_m3_per_h", "hours_meter": "run_time_h", "running": "running"}}],
        parameters={"sec_baseline_kwh_per_m3": {"value": 0.3, "unit": "kWh/m3", "source": "test"}, "fill_power_kw": {"value": 900, "unit": "kW", "source": "t"}}))
    cfg = AnalyticsConfig.model_validate({"projects": raw["projects"], "max_gap_s": 10})
    rng = np.random.default_rng(3)
    ts = T0 + np.arange(-20, 2 * 3600 + 20, dtype=np.int64) * S
    ts = np.delete(ts, np.arange(3000, 3100))  # a gap
    edges = T0 + np.arange(0, 2 * 3600 + 1, 600, dtype=np.int64) * S
    p = cfg.projects[-1]
    assert roles_read(p) == {"energy_meter", "volume_meter", "hours_meter"}
    assert [r for _, pairs in asset_fields(p) for r, _ in pairs] == ["energy_meter", "volume_meter", "hours_meter"]
    signals = {}
    for role in ("energy_meter", "power", "volume_meter", "flow", "hours_meter", "running"):
        v = rng.uniform(0.5, 2.0, len(ts))
        signals[role] = [(ts, np.cumsum(v) if role.endswith("meter") else (v > 1.0).astype(float) if role == "running" else v)]
    ef = resolve_grid_ef(p)
    want = compute(p, signals, edges, 10.0, ef)
    got = compute(p, {r: x for r, x in signals.items() if r in roles_read(p)}, edges, 10.0, ef)
    for name in ("reference_energy_kwh", "project_energy_kwh", "reference_t_co2", "project_t_co2", "completeness", "gap_filled_s"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert got.params_hash == want.params_hash
    by_id = {q.id: roles_read(q) for q in cfg.projects}
    assert by_id["hcmc-vsd"] == {"energy_meter", "hours_meter"} and by_id["danang-pumps"] == {"energy_meter", "volume_meter", "running"}


def test_intervals_close_on_the_sources_watermark_provisional_after_lateness_then_final(influx_db):
    """Event time, not the wall clock: project A's gateway has reported to 03:00, project B's only
    to 01:00. B's later hours are computed provisionally once A (the engine's event time) is the
    lateness past them, and computed again, final, when B's watermark passes; the watermark and
    its lag are metrics. Nothing depends on the wall clock (it is set a month later here)."""
    from plantmrv.analytics.metrics import AnalyticsMetrics

    def cover(site, asset, t_ns):
        s = Series.of("coverage", "tags_total", site=site, asset=asset, measurement="pump", gateway="gw", source="plc")
        write_batch(influx_db, SampleBatch([s], np.zeros(1, np.int32), np.array([t_ns], np.int64), np.array([1.0])))

    ts = T0 + np.arange(0, 3 * 3600 + 1, 1, dtype=np.int64) * S
    a_batch, _ = meter_batch(ts, np.full(len(ts), 500.0), start_reading=0.0)
    b_series = Series.of("pump", "energy_kwh", site="danang", asset="pump2")
    b_batch = SampleBatch([b_series], a_batch.series, a_batch.ts_ns, a_batch.value)
    early = b_batch.ts_ns <= T0 + 3600 * S
    write_batch(influx_db, a_batch)
    write_batch(influx_db, b_batch.take(np.flatnonzero(early)))
    cover("danang", "pump1", T0 + 3 * 3600 * S)
    cover("danang", "pump2", T0 + 3600 * S)
    b = pump_project(id="pump-b", assets=[{"measurement": "pump", "asset": "pump2", "fields": {"energy_meter": "energy_kwh"}}])
    cfg = AnalyticsConfig.model_validate({"projects": [pump_project(), b], "max_gap_s": 10, "settle_s": 0, "lateness": "30m",
                                          "mrv_interval": "1h", "process_interval": "1m", "late_data_lookback": "6h"})
    metrics = AnalyticsMetrics()
    eng = Engine(cfg, influx_db, metrics=metrics)
    wall = T0 + 30 * 86400 * S
    done = eng.poll(now_ns=wall)
    assert done["danang-pumps/1h"] == 3
    assert done["pump-b/1h"] == 2  # 00:00 final, 01:00 provisional; 02:00-03:00 ends less than 30 min before A's 03:00
    pb = cfg.projects[1]
    cols = eng.read_results(pb, T0, T0 + 3 * 3600 * S, 3600)
    assert list(cols["provisional"]) == [0.0, 1.0]
    assert cols["completeness"][1] == 0.0  # B's data for 01:00-02:00 has not arrived: filled conservatively
    reg = metrics.registry
    assert reg.get_sample_value("plantmrv_analytics_watermark_seconds", {"project": "pump-b"}) == (T0 + 3600 * S) / S
    assert reg.get_sample_value("plantmrv_analytics_watermark_lag_seconds", {"project": "danang-pumps"}) == (wall - T0 - 3 * 3600 * S) / S
    assert reg.get_sample_value("plantmrv_analytics_intervals_written_total", {"project": "pump-b", "interval": "1h", "provisional": "true"}) == 1
    # B's gateway catches up: its hours are computed again, final, from the data that arrived
    write_batch(influx_db, b_batch.take(np.flatnonzero(~early)))
    cover("danang", "pump2", T0 + 3 * 3600 * S)
    eng.poll(now_ns=wall + 5 * S)
    cols = eng.read_results(pb, T0, T0 + 3 * 3600 * S, 3600)
    assert list(cols["provisional"]) == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(cols["completeness"], 1.0)
    np.testing.assert_allclose(cols["project_energy_kwh"], 500.0, rtol=1e-9)


def test_results_do_not_depend_on_how_the_work_is_cut(influx_db):
    """Polled hour by hour as the data arrives, backfilled in day chunks, backfilled whole, and
    recomputed after late data: the same mrv points (within 1e-9), gaps, fills and a meter
    rollover included."""
    rng = np.random.default_rng(5)
    ts = T0 + np.arange(0, 2 * 86400 + 1, 10, dtype=np.int64) * S
    power = 600.0 + 150.0 * rng.random(len(ts))
    batch, _ = meter_batch(ts, power, start_reading=990_000.0)  # wraps at 1e6 on day one
    gaps = ((ts >= T0 + 7 * 3600 * S) & (ts < T0 + 7 * 3600 * S + 2700 * S)) | ((ts >= T0 + 30 * 3600 * S) & (ts < T0 + 30 * 3600 * S + 400 * S))
    late = (ts >= T0 + 20 * 3600 * S) & (ts < T0 + 22 * 3600 * S)
    keep = np.flatnonzero(~gaps)
    cov = Series.of("coverage", "tags_total", site="danang", asset="pump1", measurement="pump", gateway="gw", source="plc")
    two_days = pump_project(monitoring_period={"start": "2026-01-01T00:00:00Z", "end": "2026-01-03T00:00:00Z"})
    cfg = AnalyticsConfig.model_validate({"projects": [two_days], "max_gap_s": 30, "settle_s": 0, "mrv_interval": "1h", "process_interval": "1m",
                                          "late_data_check_s": 1, "lateness": "15m", "late_data_lookback": "2d"})
    fields = ("reference_t_co2", "project_t_co2", "reduction_t_co2", "completeness", "gap_filled_s", "energy_saved_kwh")

    def results(eng):
        p = eng.config.projects[0]
        return {iv: eng.read_results(p, T0, T0 + 2 * 86400 * S, iv) for iv in (60, 3600)}

    # 1. polled hour by hour, the gateway's watermark advancing with the data; two hours late
    eng = Engine(cfg, influx_db)
    on_time = np.flatnonzero(~gaps & ~late)
    for h in range(1, 49):
        # as the gateway delivers: every sample up to and including its watermark (the coverage point)
        t = batch.ts_ns[on_time]
        write_batch(influx_db, batch.take(on_time[(t <= T0 + h * 3600 * S) & ((t > T0 + (h - 1) * 3600 * S) | (h == 1))]))
        write_batch(influx_db, SampleBatch([cov], np.zeros(1, np.int32), np.array([T0 + h * 3600 * S]), np.array([1.0])))
        eng.poll(now_ns=T0 + h * 3600 * S + 2 * S)
        if h == 30:  # the two late hours arrive (a gateway replaying its buffer)
            write_batch(influx_db, batch.take(np.flatnonzero(late & ~gaps)))
    eng.poll(now_ns=T0 + 49 * 3600 * S)
    polled = results(eng)
    for iv, n in ((60, 2 * 1440), (3600, 48)):
        assert len(polled[iv]["time"]) == n and not np.any(polled[iv]["provisional"])
    assert polled[3600]["gap_filled_s"].sum() > 2700  # the gaps are there, filled
    # 2. backfilled in day chunks, 3. whole, on the same data
    for chunk in (86400 * S, 2 * 86400 * S):
        influx_db.execute('DROP MEASUREMENT "mrv"')
        Engine(cfg, influx_db).backfill(T0, T0 + 2 * 86400 * S, chunk_ns=chunk)
        again = results(Engine(cfg, influx_db))
        for iv in (60, 3600):
            np.testing.assert_array_equal(again[iv]["time"], polled[iv]["time"])
            for f in fields:
                np.testing.assert_allclose(again[iv][f], polled[iv][f], rtol=1e-9, atol=1e-12, err_msg=f"{chunk // S} s chunks, {iv} s {f}")
    assert len(keep) < len(ts)
