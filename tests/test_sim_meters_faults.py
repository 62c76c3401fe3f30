"""Meter registers, fault schedules and pure fault functions, ground truth, config loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plantmrv.simulators.faults import Fault, FaultLog, apply_dropout, apply_faults, fault_schedule, with_meter_resets
from plantmrv.simulators.meters import MeterParams, parse_time_ns
from plantmrv.simulators.plants import PLANT_TYPES, generate, make_params
from plantmrv.simulators.server import build_config
from plantmrv.simulators.signals import hash_normal, value_noise
from plantmrv.simulators.truth import config_truth, truth

ROOT = Path(__file__).resolve().parents[1]
T0 = parse_time_ns("2026-07-01T00:00:00Z")
S = 10**9


def grid(hours, step_s=1.0, t0=T0):
    return t0 + (np.arange(0, hours * 3600, step_s) * S).astype(np.int64)


@pytest.mark.parametrize("plant", list(PLANT_TYPES))
def test_meters_are_monotonic_and_equal_the_integral_of_their_rate(plant):
    ts = grid(24)
    out = generate(plant, ts, 7)
    pt = PLANT_TYPES[plant]
    rates = pt.module.meter_rates(pt.module.instant(ts, 7, pt.params_cls()))
    for m in pt.meters:
        reg = out[m]
        assert (np.diff(reg) >= -1e-9).all(), m
        # register difference == trapezoid of the 1 s rate samples (to 0.05 %)
        e = np.trapezoid(rates[m], dx=1.0) / 3600
        assert reg[-1] - reg[0] == pytest.approx(e, rel=5e-4, abs=1e-6), m


@pytest.mark.parametrize("plant", list(PLANT_TYPES))
def test_truth_equals_meter_differences_exactly(plant):
    ts = np.array([T0 + 3 * 3600 * S, T0 + 27 * 3600 * S + 17 * S], dtype=np.int64)
    out = generate(plant, ts, 9)
    tr = truth(plant, int(ts[0]), int(ts[1]), rng=9)
    for m in PLANT_TYPES[plant].meters:
        assert tr.integrals[m] == pytest.approx(out[m][1] - out[m][0], rel=1e-11, abs=1e-7), m
    assert tr.inputs and all(np.isfinite(v) for v in tr.inputs.values())


def test_truth_gives_each_methodology_its_inputs():
    a, b = "2026-07-01T00:00:00Z", "2026-07-02T00:00:00Z"
    p = truth("pump", a, b).inputs
    assert {"project_energy_kwh", "volume_m3", "eta_project", "eta_reference"} <= set(p)
    assert p["eta_reference"] == 0.791 and 0.79 < p["eta_project"] < 0.82
    assert 0 < p["eta_measured"] <= p["eta_project"] + 1e-9
    v = truth("vsd", a, b).inputs
    assert v["baseline_power_kw"] * v["operating_hours_h"] == pytest.approx(v["baseline_energy_kwh"])
    assert v["energy_saved_kwh"] > 0
    w = truth("wte", a, b).inputs
    assert 40 < w["waste_fed_t"] < 70 and w["net_export_mwh"] > 0 and "aux_fuel_kg" in w
    pv = truth("pv", a, b).inputs
    assert 0 < pv["ac_energy_mwh"] < pv["dc_energy_mwh"]
    u = truth("ubcf", a, b).inputs
    assert u["energy_kwh"] == pytest.approx(u["pump_energy_kwh"] + u["blower_energy_kwh"])
    assert u["chlorine_kg"] > 0 and u["coagulant_kg"] > 0 and 4000 < u["volume_m3"] < 6000


def test_register_rolls_over_and_resets_on_meter_replacement():
    t_repl = T0 + 6 * 3600 * S
    meter = MeterParams(origin="2026-07-01T00:00:00Z", initial=99_000.0, rollover=100_000.0, replacements=(t_repl,))
    params = make_params("pump", {"meter": meter})
    ts = grid(12, 10)
    reg = generate("pump", ts, 3, params)["energy_kwh"]
    free = generate("pump", ts, 3, make_params("pump", {"meter": {"origin": "2026-07-01", "initial": 99_000.0, "rollover": 1e12}}))["energy_kwh"]
    d = np.diff(reg)
    drops = np.flatnonzero(d < 0)
    assert len(drops) >= 2  # at least one rollover and the replacement
    # apart from the declared events the register follows the free-running integral
    ok = np.ones(len(d), bool)
    ok[drops] = False
    np.testing.assert_allclose(d[ok], np.diff(free)[ok], rtol=1e-9, atol=1e-6)
    after = ts >= t_repl
    assert reg[after][0] < 200  # restarts from 0 at the replacement (10 s of energy at most)
    assert (reg < 100_000).all() and (reg >= 0).all()


def test_fault_schedule_is_reproduced_exactly_with_a_fixed_seed():
    assets = [("danang", "pump1", ["flow_m3_per_h", "power_kw"]), ("hcmc", "intake1", ["power_kw"])]
    a = fault_schedule(42, T0, T0 + 24 * 3600 * S, assets, rate_per_h=5)
    b = fault_schedule(42, T0, T0 + 24 * 3600 * S, assets, rate_per_h=5)
    c = fault_schedule(43, T0, T0 + 24 * 3600 * S, assets, rate_per_h=5)
    assert a == b and a != c
    assert 60 < len(a) < 200
    assert [f.start_ns for f in a] == sorted(f.start_ns for f in a)
    assert {f.kind for f in a} == {"dropout", "stuck", "spike", "bad_status", "uncertain", "meter_reset"}
    assert all(f.start_ns % S == 0 and T0 <= f.start_ns < T0 + 24 * 3600 * S for f in a)


def test_apply_faults_on_arrays_marks_exactly_the_fault_intervals():
    ts = grid(0.1, 1)  # 360 s
    f = generate("pump", ts, 1)
    faults = [
        Fault("dropout", T0 + 10 * S, T0 + 20 * S, "danang", "pump1", "power_kw"),
        Fault("stuck", T0 + 30 * S, T0 + 40 * S, "danang", "pump1", "head_m"),
        Fault("spike", T0 + 50 * S, T0 + 51 * S, "danang", "pump1", "flow_m3_per_h", 10.0),
        Fault("bad_status", T0 + 60 * S, T0 + 70 * S, "danang", "pump1", "efficiency"),
        Fault("uncertain", T0 + 80 * S, T0 + 90 * S, "danang", "pump1", "shaft_power_kw"),
        Fault("server_restart", T0 + 100 * S, T0 + 105 * S),
        Fault("dropout", T0 + 10 * S, T0 + 20 * S, "hcmc", "intake1"),  # another asset: ignored
    ]
    out, q = apply_faults(faults, "danang", "pump1", ts, f)
    sec = (ts - T0) // S
    assert np.isnan(out["power_kw"][(sec >= 10) & (sec < 20)]).all()
    assert not np.isnan(out["power_kw"][(sec < 10) | ((sec >= 20) & (sec < 100)) | (sec >= 105)]).any()
    assert (out["head_m"][(sec >= 30) & (sec < 40)] == f["head_m"][30]).all()
    assert out["flow_m3_per_h"][50] == 10 * f["flow_m3_per_h"][50] and out["flow_m3_per_h"][51] == f["flow_m3_per_h"][51]
    assert (q["efficiency"][(sec >= 60) & (sec < 70)] == 2).all() and q["efficiency"].sum() == 20
    assert (q["shaft_power_kw"] == 1).sum() == 10
    for name in out:
        assert np.isnan(out[name][(sec >= 100) & (sec < 105)]).all()
    np.testing.assert_array_equal(np.isnan(apply_dropout(ts, f["power_kw"], T0 + 10 * S, T0 + 20 * S)), np.isnan(out["power_kw"]) & (sec < 100))
    p = with_meter_resets(make_params("pump"), [Fault("meter_reset", T0, T0, "danang", "pump1")], "danang", "pump1")
    assert p.meter.replacements == (T0,)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**62), st.integers(-10**17, 10**17), st.integers(1, 3600))
def test_noise_at_a_timestamp_does_not_depend_on_the_grid(key, t0, offset):
    ts = np.array([t0, t0 + offset * S], dtype=np.int64)
    both = value_noise(ts, key, 1, 600.0)
    assert value_noise(ts[1:], key, 1, 600.0)[0] == both[1]
    z = hash_normal(key, 3, np.arange(1000))
    assert np.isfinite(z).all()


def test_fault_log_records_start_and_end(tmp_path):
    log = FaultLog(tmp_path / "f.jsonl")
    flt = Fault("stuck", T0, T0 + S, "danang", "pump1", "head_m")
    log.write("start", flt, T0)
    log.write("end", flt, T0 + S)
    recs = FaultLog.read(tmp_path / "f.jsonl")
    assert [r["event"] for r in recs] == ["start", "end"]
    assert recs[0]["kind"] == "stuck" and recs[0]["start_ns"] == T0 and recs[1]["sim_ns"] == T0 + S


def test_example_config_loads_with_all_plant_types_and_faults():
    cfg = build_config((), ROOT / "examples" / "simulate.yaml", start_ns=T0)
    assert sorted(a.plant for a in cfg.assets) == sorted(PLANT_TYPES)
    assert {a.site for a in cfg.assets} == {"danang", "hcmc", "haiphong", "yangon", "binhduong"}
    kinds = {f.kind for f in cfg.faults}
    assert {"stuck", "bad_status", "dropout", "meter_reset", "uncertain", "spike", "network_stall", "server_restart"} <= kinds
    vsd = next(a for a in cfg.assets if a.plant == "vsd")
    assert vsd.params.meter.replacements == (T0 + 120 * S,)
    again = build_config((), ROOT / "examples" / "simulate.yaml", start_ns=T0)
    assert again.faults == cfg.faults  # random schedule reproduced


@pytest.mark.parametrize(
    "text, message",
    [
        ("plants: [{type: pmp}]", r"sim.yaml: plants\[0\].type: 'pmp' is not a plant type"),
        ("plants: [{type: pump, params: {h_bep: 3}}]", r"sim.yaml: plants\[0\].params.h_bep: unknown parameter"),
        ("plants: [{type: pump, faults: [{kind: melt}]}]", r"sim.yaml: plants\[0\].faults\[0\].kind: 'melt' unknown"),
        ("plants: [{type: pump}, {type: pump, asset: pump1}]", r"sim.yaml: plants\[1\].asset: duplicate site/asset danang/pump1"),
        ("plants: [{type: pump}]\nfault: []", r"sim.yaml: fault: unknown key"),
        ("plants: [{type: pump, faults: [{kind: stuck, duration_s: -1}]}]", r"plants\[0\].faults\[0\].duration_s: expected a number >= 0"),
    ],
)
def test_config_errors_name_file_and_key(tmp_path, text, message):
    p = tmp_path / "sim.yaml"
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        build_config((), p, start_ns=T0)


def test_scale_multiplies_assets_with_cheap_meters():
    cfg = build_config(["pump", "pv"], scale=3, start_ns=T0)
    names = [(a.site, a.asset) for a in cfg.assets]
    assert names == [("danang", "pump1"), ("binhduong", "pv1"), ("danang", "pump1-1"), ("binhduong", "pv1-1"), ("danang", "pump1-2"), ("binhduong", "pv1-2")]
    assert len({a.seed for a in cfg.assets}) == 6
    assert cfg.assets[2].params.meter.origin_ns == T0


def test_config_truth_covers_every_served_asset():
    out = config_truth("2026-07-01T00:00:00Z", "2026-07-01T06:00:00Z", plants=["pump", "pv"], scale=2, sim_start="2026-07-01T00:00:00Z")
    assert [(t.site, t.asset) for t in out] == [("danang", "pump1"), ("binhduong", "pv1"), ("danang", "pump1-1"), ("binhduong", "pv1-1")]
    assert out[0].inputs["project_energy_kwh"] == truth("pump", "2026-07-01T00:00:00Z", "2026-07-01T06:00:00Z", rng=0).inputs["project_energy_kwh"]
    assert out[0].inputs != out[2].inputs


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
_entry = st.dictionaries(
    st.sampled_from(["type", "site", "asset", "seed", "params", "faults", "bogus"]),
    st.one_of(
        _scalar,
        st.sampled_from(list(PLANT_TYPES)),
        st.dictionaries(st.sampled_from(["h_bep_m", "meter", "cofiring", "x"]), st.one_of(_scalar, st.dictionaries(st.sampled_from(["origin", "initial", "rollover", "step_s", "replacements", "y"]), st.one_of(_scalar, st.lists(_scalar, max_size=2)), max_size=3)), max_size=3),
        st.lists(st.dictionaries(st.sampled_from(["kind", "at_s", "duration_s", "field", "start"]), st.one_of(_scalar, st.sampled_from(["dropout", "stuck", "head_m"])), max_size=4), max_size=2),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.dictionaries(st.sampled_from(["plants", "faults", "start", "random_faults", "extra"]), st.one_of(_scalar, st.lists(_entry, max_size=3)), max_size=3), st.lists(_entry, max_size=2), _scalar))
def test_config_parser_rejects_any_bad_input_with_a_located_value_error(tmp_path_factory, doc):
    import yaml

    p = tmp_path_factory.mktemp("cfg") / "sim.yaml"
    p.write_text(yaml.safe_dump(doc))
    try:
        cfg = build_config((), p, start_ns=T0)
    except ValueError as exc:
        assert str(exc).startswith(str(p)) or "no plants" in str(exc) or ".params" in str(exc), str(exc)
    else:
        assert cfg.assets


def test_simulate_batch_applies_faults_like_the_server():
    from plantmrv.batch import Quality
    from plantmrv.simulators.plants import simulate_batch

    ts = grid(0.05, 1)  # 180 s
    faults = [
        Fault("dropout", T0 + 10 * S, T0 + 20 * S, "danang", "pump1", "power_kw"),
        Fault("bad_status", T0 + 30 * S, T0 + 35 * S, "danang", "pump1", "head_m"),
        Fault("meter_reset", T0 + 60 * S, T0 + 60 * S, "danang", "pump1"),
    ]
    b = simulate_batch("pump", ts, 3, faults=faults)
    names = [s.field for s in b.table]
    n = len(ts)
    assert len(b) == 9 * n - 10
    power = b.series == names.index("power_kw")
    assert power.sum() == n - 10
    head = b.series == names.index("head_m")
    assert (b.quality[head] == Quality.BAD).sum() == 5
    energy = b.value[b.series == names.index("energy_kwh")]
    assert energy[60] < 1.0 < energy[59]  # the register restarted at the replacement
