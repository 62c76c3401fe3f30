"""End to end on real services: simulator -> InfluxDB -> engine, against the simulator's truth.

Each project of ``examples/analytics.yaml`` runs on a simulated day of its default plant (1 s
samples written to a real influxd); its reductions must be within 0.5% of the same methodology
applied to the simulator's ground truth (``plantmrv.simulators.truth``). A dropout from the
simulator's fault model must be flagged in exactly the intervals it touches and filled by the
conservative rule (reference 0, project at the plausible maximum).
"""

from pathlib import Path

import numpy as np
import pytest
import yaml

from plantmrv.analytics import pv
from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.engine import Engine, asset_fields
from plantmrv.analytics.methodologies import resolve_grid_ef
from plantmrv.simulators import faults, plants
from plantmrv.simulators.truth import truth
from plantmrv.app.demo.truthcheck import expected_from_truth
from plantmrv.influxwrite import write_batch

S = 1_000_000_000
DAY0 = 1_773_100_800 * S  # 2026-03-10T00:00:00Z
SEED = 7
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "analytics.yaml"


def example_projects():
    return yaml.safe_load(EXAMPLE.read_text())["analytics"]["projects"]


def write_plant(client, project, day0, seed=SEED, fault_list=()):
    """Simulate the project's plant for the day (plus a margin) and write the fields it uses."""
    ts = day0 + np.arange(-30, 86400 + 30, dtype=np.int64) * S
    (asset, pairs), = asset_fields(project)
    fields = plants.generate(project.plant_type, ts, seed)
    used = {f: fields[f] for _, f in pairs}
    if fault_list:
        used, quality = faults.apply_faults(fault_list, project.site, asset.asset, ts, used)
    write_batch(client, plants.to_batch(project.site, asset.asset, project.plant_type, ts, used))


def truth_reduction_t_co2(project, ef):
    """The project's methodology applied to the simulator's exact integrals for the day."""
    inputs = truth(project.plant_type, DAY0, DAY0 + 86400 * S, rng=SEED).inputs
    return expected_from_truth(project, inputs, ef)["reduction_t_co2"]


def test_each_project_within_half_a_percent_of_simulator_truth_for_a_day(influx_db):
    raw = example_projects()
    # the methodology inputs a real project fixes from its own documents, taken from the simulated plant
    day_truth = truth("vsd", DAY0, DAY0 + 86400 * S, rng=SEED).inputs
    pump_params = plants.make_params("pump")
    for p in raw:
        p["monitoring_period"] = {"start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z"}
        if p["plant_type"] == "vsd":
            p["parameters"]["baseline_power_kw"]["value"] = day_truth["baseline_power_kw"]
        if p["plant_type"] == "pump":
            p["parameters"]["eta_project"]["value"] = float(pump_params.eta_project)
    cfg = AnalyticsConfig.model_validate({"projects": raw, "max_gap_s": 10})
    for project in cfg.projects:
        write_plant(influx_db, project, DAY0)
    eng = Engine(cfg, influx_db)
    eng.backfill(DAY0, DAY0 + 86400 * S, interval_s=[3600])
    for project in cfg.projects:
        cols = eng.read_results(project, DAY0, DAY0 + 86400 * S, 3600)
        assert len(cols["time"]) == 24, project.id
        got = float(np.sum(cols["reduction_t_co2"]))
        want = truth_reduction_t_co2(project, resolve_grid_ef(project).value_t_co2_per_mwh)
        assert want != 0, project.id
        print(f"{project.id}: engine {got:.4f} t, truth {want:.4f} t, rel {got / want - 1:+.2e}")
        assert got == pytest.approx(want, rel=0.005), (project.id, got, want)
        np.testing.assert_allclose(cols["completeness"], 1.0, err_msg=project.id)
        assert np.all(cols["gap_filled_s"] == 0), project.id


def test_simulated_dropout_flagged_in_exactly_its_intervals_and_filled_conservatively(influx_db):
    raw = [p for p in example_projects() if p["plant_type"] == "pump"]
    raw[0]["monitoring_period"] = {"start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z"}
    cfg = AnalyticsConfig.model_validate({"projects": raw, "max_gap_s": 10})
    project = cfg.projects[0]
    start = DAY0 + (10 * 3600 + 15 * 60 + 30) * S  # 10:15:30, 20 min 10 s without samples
    drop = faults.Fault("dropout", start, start + 1210 * S, site="danang", asset="pump1")
    write_plant(influx_db, project, DAY0, fault_list=[drop])
    eng = Engine(cfg, influx_db)
    eng.backfill(DAY0 + 9 * 3600 * S, DAY0 + 12 * 3600 * S, interval_s=[60, 3600])
    minute = eng.read_results(project, DAY0 + 9 * 3600 * S, DAY0 + 12 * 3600 * S, 60)
    # the unknown stretch runs from the last sample before (10:15:29) to the first after (10:35:40)
    lo, hi = start - S, drop.end_ns
    touched = (minute["time"] < hi) & (minute["time"] + 60 * S > lo)
    np.testing.assert_array_equal(minute["gap_filled_s"] > 0, touched)
    assert minute["gap_filled_s"].sum() == pytest.approx((hi - lo) / S)
    np.testing.assert_allclose(minute["completeness"], 1.0 - minute["gap_filled_s"] / 60.0)
    # conservative fill: the reference counts only covered time, the project the plausible maximum
    rate_kw = project.parameter_set.fill_power_kw.value
    full = minute["time"][touched & (minute["gap_filled_s"] == 60)]
    assert len(full) == 19
    sel = np.isin(minute["time"], full)
    np.testing.assert_allclose(minute["reference_energy_kwh"][sel], 0.0, atol=1e-9)
    np.testing.assert_allclose(minute["project_energy_kwh"][sel], rate_kw / 60.0, rtol=1e-9)
    assert np.all(minute["reduction_t_co2"][sel] < 0)
    hourly = eng.read_results(project, DAY0 + 9 * 3600 * S, DAY0 + 12 * 3600 * S, 3600)
    np.testing.assert_array_equal(hourly["gap_filled_s"] > 0, [False, True, False])


def test_meter_replacement_is_a_gap_until_declared_then_exact_and_bad_quality_samples_are_gaps(influx_db):
    """A meter replaced mid-day without a declaration is never counted as generation: its segment
    is a gap (reference low) and an event; declared (old final and new initial readings), it
    loses no energy. BAD samples (only in sample_quality) are gaps."""
    raw = [p for p in example_projects() if p["plant_type"] == "pv"]
    raw[0]["monitoring_period"] = {"start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z"}
    reset_at = DAY0 + (5 * 3600 + 17) * S  # 12:00 local, mid-generation
    bad_at = DAY0 + (7 * 3600 + 10 * 60) * S
    fl = [
        faults.Fault("meter_reset", reset_at, reset_at, site="binhduong", asset="pv1"),
        faults.Fault("bad_status", bad_at, bad_at + 300 * S, site="binhduong", asset="pv1", field="export_energy_kwh"),
    ]
    ts = DAY0 + np.arange(-30, 86400 + 30, dtype=np.int64) * S
    params = faults.with_meter_resets(plants.make_params("pv"), fl, "binhduong", "pv1")
    fields = plants.generate("pv", ts, SEED, params=params)
    used, quality = faults.apply_faults(fl, "binhduong", "pv1", ts, {"export_energy_kwh": fields["export_energy_kwh"]})
    write_batch(influx_db, plants.to_batch("binhduong", "pv1", "pv", ts, used, quality))
    ef = None
    t = truth("pv", DAY0, DAY0 + 86400 * S, rng=SEED).inputs
    lost_bad = truth("pv", bad_at - S, bad_at + 300 * S, rng=SEED).inputs["export_mwh"]
    # the old register's last reading: the meter as if never replaced, at the replacement time
    old_final = float(plants.generate("pv", np.array([reset_at]), SEED)["export_energy_kwh"][0])
    for declared in (False, True):
        p = dict(raw[0])
        if declared:
            p["assets"] = [dict(raw[0]["assets"][0], meter_events=[{
                "field": "export_energy_kwh", "time": "2026-03-10T05:00:17Z", "kind": "replacement",
                "old_final": old_final, "new_initial": 0.0, "source": "test: work order of the meter swap"}])]
        cfg = AnalyticsConfig.model_validate({"projects": [p], "max_gap_s": 10})
        project = cfg.projects[0]
        ef = resolve_grid_ef(project).value_t_co2_per_mwh
        eng = Engine(cfg, influx_db)
        eng.backfill(DAY0, DAY0 + 86400 * S, interval_s=[3600])
        cols = eng.read_results(project, DAY0, DAY0 + 86400 * S, 3600)
        flagged = cols["time"][cols["gap_filled_s"] > 0]
        got = float(np.sum(cols["reduction_t_co2"]))
        want = float(pv.reference_emissions_t_co2(t["export_mwh"] * 1000, ef))
        lost = lost_bad
        if declared:
            np.testing.assert_array_equal(flagged, [DAY0 + 7 * 3600 * S])  # only the hour with BAD samples
            assert cols["gap_filled_s"].sum() == pytest.approx(301.0)
        else:
            # the second across the swap is unknown, a gap, never the new register's reading
            np.testing.assert_array_equal(flagged, [DAY0 + 5 * 3600 * S, DAY0 + 7 * 3600 * S])
            assert cols["gap_filled_s"].sum() == pytest.approx(302.0)
            lost += truth("pv", reset_at - S, reset_at, rng=SEED).inputs["export_mwh"]
        events = eng.client.query(f"SELECT * FROM mrv_event WHERE project = '{project.id}'")
        kinds = list(events[0].columns["kind"]) if events else []
        assert kinds == (["meter_replacement"] if declared else ["meter_drop"]), kinds
        # the BAD stretch (last good sample before to first after) is not credited: reference low
        assert lost > 0
        assert got == pytest.approx(want - float(pv.reference_emissions_t_co2(lost * 1000, ef)), rel=1e-3)
        assert got < want
        assert np.all(cols["reduction_t_co2"] >= 0)


def test_fault_schedule_dropouts_flagged_exactly_and_filled(influx_db):
    raw = [p for p in example_projects() if p["plant_type"] == "pump"]
    raw[0]["monitoring_period"] = {"start": "2026-03-10T00:00:00Z", "end": "2026-03-11T00:00:00Z"}
    cfg = AnalyticsConfig.model_validate({"projects": raw, "max_gap_s": 10})
    project = cfg.projects[0]
    t0, t1 = DAY0 + 8 * 3600 * S, DAY0 + 11 * 3600 * S
    sched = faults.fault_schedule(11, t0, t1, [("danang", "pump1", ["energy_kwh"])], kinds=("dropout",), rate_per_h=4, duration_s=(5, 150))
    assert len(sched) >= 4
    write_plant(influx_db, project, DAY0, fault_list=sched)
    eng = Engine(cfg, influx_db)
    eng.backfill(t0, t1, interval_s=[60])
    minute = eng.read_results(project, t0, t1, 60)
    # expected, independently: stretches between consecutive received samples longer than max_gap_s
    ts = DAY0 + np.arange(-30, 86400 + 30, dtype=np.int64) * S
    missing = np.zeros(len(ts), bool)
    for f in sched:
        missing |= (ts >= f.start_ns) & (ts < f.end_ns)
    got_ts = ts[~missing]
    d = np.diff(got_ts)
    windows = [(int(a), int(a + g)) for a, g in zip(got_ts[:-1][d > 10 * S], d[d > 10 * S])]
    assert windows, "the schedule should contain dropouts longer than max_gap_s"
    expected = np.zeros(len(minute["time"]))
    for a, b in windows:
        lo = np.clip(a, minute["time"], minute["time"] + 60 * S)
        hi = np.clip(b, minute["time"], minute["time"] + 60 * S)
        expected += (hi - lo) / S
    np.testing.assert_allclose(minute["gap_filled_s"], expected, atol=1e-6)
    sel = expected > 0
    rate = project.parameter_set.fill_power_kw.value
    # project side charged the plausible maximum over missing time; reference only over covered time
    covered_kwh = minute["project_energy_kwh"][sel] - rate * expected[sel] / 3600
    np.testing.assert_allclose(minute["reference_energy_kwh"][sel], covered_kwh * 0.808 / 0.791, rtol=1e-6)
