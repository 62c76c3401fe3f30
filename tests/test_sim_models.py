"""Plant-model physics checked against the models' own equations, limits and published anchors."""

from __future__ import annotations

import numpy as np
import pytest

from plantmrv.simulators import pump, pv, ubcf, vsd, wte
from plantmrv.simulators.base import G_M_PER_S2, hydraulic_power_kw
from plantmrv.simulators.plants import PLANT_TYPES, generate, make_params, to_batch

T0 = int(np.datetime64("2026-07-01T00:00:00", "ns").astype(np.int64))
DAY = 86400 * 10**9


def grid(days=2.0, step_s=1.0, t0=T0):
    return t0 + (np.arange(0, days * 86400, step_s) * 1e9).astype(np.int64)


DATA_MODEL_FIELDS = {
    "ubcf": "flow_m3_per_h volume_m3 raw_turbidity_ntu treated_turbidity_ntu nh4_in_mg_per_l nh4_out_mg_per_l water_temp_c pump_power_kw blower_power_kw pump_energy_kwh blower_energy_kwh backwash chlorine_kg_per_h coagulant_kg_per_h",
    "pump": "flow_m3_per_h volume_m3 head_m shaft_power_kw power_kw efficiency energy_kwh running run_time_h",
    "vsd": "speed_pct frequency_hz flow_m3_per_h power_kw energy_kwh throttle_power_kw running run_time_h",
    "wte": "waste_feed_t_per_h waste_fed_t lhv_mj_per_kg steam_t_per_h gross_power_kw aux_power_kw net_export_energy_kwh incinerating aux_fuel_kg_per_h aux_fuel_kg import_energy_kwh",
    "pv": "irradiance_w_per_m2 module_temp_c dc_power_kw ac_power_kw export_energy_kwh",
}


def _data_model_fields() -> dict[str, list[str]]:
    """Field lists per measurement, parsed from the table in docs/data-model.md."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "data-model.md").read_text()
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 4 and cells[1].startswith("`") and cells[1].strip("`") in PLANT_TYPES:
            out[cells[1].strip("`")] = re.findall(r"`([a-z0-9_]+)`", cells[3])
    return out


def test_field_lists_are_those_of_docs_data_model():
    doc = _data_model_fields()
    assert set(doc) == set(PLANT_TYPES)
    for plant, fields in doc.items():
        assert fields == DATA_MODEL_FIELDS[plant].split(), plant
        assert list(PLANT_TYPES[plant].fields) == fields, plant


@pytest.mark.parametrize("plant", list(PLANT_TYPES))
def test_model_fields_match_the_data_model_exactly(plant):
    out = generate(plant, grid(0.1, 10), 3)
    assert list(out) == DATA_MODEL_FIELDS[plant].split()
    assert PLANT_TYPES[plant].measurement == plant
    for name, v in out.items():
        assert v.dtype == np.float64 and v.shape == (864,), name
        assert np.isfinite(v).all(), name


@pytest.mark.parametrize("plant", list(PLANT_TYPES))
def test_same_seed_same_output_and_values_do_not_depend_on_grid_start(plant):
    ts = grid(1.0, 7)
    a = generate(plant, ts, 11)
    b = generate(plant, ts, 11)
    c = generate(plant, ts, 12)
    sub = ts[5000:5100]  # a grid starting elsewhere, computed on its own
    d = generate(plant, sub, 11)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_allclose(d[k], a[k][5000:5100], rtol=1e-12, atol=1e-9, err_msg=k)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    # a Generator works too and is deterministic for the same seed
    e1 = generate(plant, sub, np.random.default_rng(5))
    e2 = generate(plant, sub, np.random.default_rng(5))
    for k in e1:
        np.testing.assert_array_equal(e1[k], e2[k])


def test_pump_wire_to_water_efficiency_is_rho_g_q_h_over_p_and_below_one():
    p = pump.PumpParams()
    out = generate("pump", grid(3, 5), 1)
    run = out["running"] == 1
    assert run.mean() > 0.8
    eta = 1000 * G_M_PER_S2 * out["flow_m3_per_h"] / 3600 * out["head_m"] / (out["power_kw"] * 1000)
    np.testing.assert_allclose(out["efficiency"][run], eta[run], rtol=1e-12)
    assert (out["efficiency"] <= 1).all() and (out["efficiency"][run] > 0.5).all()
    assert (out["shaft_power_kw"][run] < out["power_kw"][run]).all()  # motor losses
    # head on the H-Q curve, efficiency peaks at BEP on the eta-Q curve
    np.testing.assert_allclose(out["head_m"][run], pump.head_m(out["flow_m3_per_h"][run], p), rtol=1e-12)
    assert pump.pump_efficiency(p.q_bep_m3_per_h, p) == pytest.approx(p.eta_pump_bep)
    assert (pump.pump_efficiency(np.linspace(1000, 8000, 50), p) <= p.eta_pump_bep + 1e-12).all()
    # stopped: everything zero
    assert (out["power_kw"][~run] == 0).all() and (out["flow_m3_per_h"][~run] == 0).all()


def test_pump_defaults_echo_the_published_tan_hiep_case():
    p = pump.PumpParams()
    # new pump at BEP: 105 m3/min, 40 m, ~850 kW -> eta 0.808 (methodologies.md)
    shaft = p.bep_shaft_kw
    p_el = shaft / pump.motor_efficiency(shaft, p)
    assert p_el == pytest.approx(850, rel=0.01)
    assert round(p.eta_project, 3) == 0.807 or round(p.eta_project, 3) == 0.808
    assert p.eta_reference == 0.791
    # old pump published check with the same formula
    assert round(float(hydraulic_power_kw(105 * 60, 65) / 1411), 3) == 0.791


def test_vsd_affinity_laws_and_throttle_counterfactual():
    p = vsd.VsdParams()
    q = np.linspace(1000, 7000, 40)
    for s in (0.6, 0.8, 0.95):
        # H(sQ, s) = s^2 H(Q, 1); P(sQ, s) = s^3 P(Q, 1)
        np.testing.assert_allclose(vsd.pump_head_m(s * q, s, p), s**2 * vsd.pump_head_m(q, 1.0, p), rtol=1e-12)
        np.testing.assert_allclose(vsd.shaft_power_kw(s * q, s, p), s**3 * vsd.shaft_power_kw(q, 1.0, p), rtol=1e-12)
    out = generate("vsd", grid(3, 5), 2)
    run = out["running"] == 1
    s = out["speed_pct"][run] / 100
    qq = out["flow_m3_per_h"][run]
    # operating point on both curves (static head term)
    np.testing.assert_allclose(vsd.pump_head_m(qq, s, p), p.h_static_m + p.k_system * qq**2, rtol=1e-9)
    np.testing.assert_allclose(out["frequency_hz"][run], p.f_rated_hz * s, rtol=1e-12)
    assert (s <= 1 + 1e-12).all() and (s > np.sqrt(p.h_static_m / p.h_shutoff_m)).all()
    # the throttle counterfactual needs more power at part load, the VSD wins on average
    part = qq < 0.9 * p.q_bep_m3_per_h
    assert (out["throttle_power_kw"][run][part] > out["power_kw"][run][part]).all()
    # at full flow and full speed the drive only adds its own losses
    q1 = np.array([p.q_bep_m3_per_h])
    p_vsd = hydraulic_power_kw(q1, p.h_bep_m) / (p.eta_pump_bep * p.eta_motor * p.eta_vsd)
    p_thr = hydraulic_power_kw(q1, vsd.pump_head_m(q1, 1.0, p)) / (vsd.pump_efficiency(q1, 1.0, p) * p.eta_motor)
    assert p_vsd[0] == pytest.approx(p_thr[0] / p.eta_vsd, rel=1e-9)


def test_ubcf_ammonium_removal_follows_temperature_within_published_range():
    p = ubcf.UbcfParams()
    ts = np.concatenate([grid(1, 10, T0 - 180 * DAY), grid(1, 10, T0)])  # January and July
    out = generate("ubcf", ts, 4)
    r = 1 - out["nh4_out_mg_per_l"] / out["nh4_in_mg_per_l"]
    np.testing.assert_allclose(r, ubcf.nh4_removal(out["water_temp_c"], p), rtol=1e-9)
    assert (r >= 0.6 - 1e-12).all() and (r <= 0.9 + 1e-12).all()
    winter, summer = r[: len(r) // 2], r[len(r) // 2 :]
    assert out["water_temp_c"][: len(r) // 2].mean() < out["water_temp_c"][len(r) // 2 :].mean() - 5
    assert winter.mean() < summer.mean()
    assert (out["treated_turbidity_ntu"] < out["raw_turbidity_ntu"]).all()
    # breakpoint chlorination and coagulant dose equations
    q = out["flow_m3_per_h"]
    np.testing.assert_allclose(out["chlorine_kg_per_h"], (p.chlorine_base_mg_per_l + 7.6 * out["nh4_out_mg_per_l"]) * q / 1000, rtol=1e-12)
    # two backwashes a day of 20 minutes, with the backwash pump and air scour on
    bw = out["backwash"] == 1
    assert bw.mean() == pytest.approx(2 * 1200 / 86400, rel=0.02)
    assert out["pump_power_kw"][bw].mean() > out["pump_power_kw"][~bw].mean() + 10
    assert out["flow_m3_per_h"].mean() * 24 == pytest.approx(5000, rel=0.05)


def test_wte_heating_value_steam_generation_and_net_export():
    p = wte.WteParams()
    ts = grid(365, 600, int(np.datetime64("2026-01-01", "ns").astype(np.int64)))
    out = generate("wte", ts, 5)
    on = out["incinerating"] == 1
    assert 0.85 < on.mean() < 0.98  # outage + trips
    lhv = out["lhv_mj_per_kg"]
    assert lhv[on].min() > 3.5 and lhv[on].max() < 11  # Asian MSW, World Bank 1999
    # wet season (Aug) lower LHV than dry season (Feb)
    doy = ((ts - ts[0]) / DAY).astype(int)
    assert lhv[(doy > 210) & (doy < 240)].mean() < lhv[(doy > 30) & (doy < 60)].mean() - 1
    assert (out["gross_power_kw"] <= p.rated_gross_kw + 1e-9).all()
    assert (out["gross_power_kw"][~on] == 0).all() and (out["waste_feed_t_per_h"][~on] == 0).all()
    # co-firing only when the waste is below the minimum LHV
    fuel = out["aux_fuel_kg_per_h"] > 0
    assert (lhv[fuel] < p.lhv_min_mj_per_kg).all()
    # energy balance: electric out < thermal in
    q_in = out["waste_feed_t_per_h"] * 1000 * lhv / 3.6 + out["aux_fuel_kg_per_h"] * p.lhv_fuel_mj_per_kg / 3.6
    assert (out["gross_power_kw"][on] < q_in[on]).all()
    # a year's net export in the published order of magnitude (Yangon ~5,200 MWh/yr)
    net = out["net_export_energy_kwh"]
    assert 3000 < (net[-1] - net[0]) / 1000 < 6000


def test_pv_clear_sky_clipping_and_night():
    p = pv.PvParams()
    out = generate("pv", grid(30, 60), 6)
    g, dc, ac = out["irradiance_w_per_m2"], out["dc_power_kw"], out["ac_power_kw"]
    night = g == 0
    assert 0.4 < night.mean() < 0.6
    assert (ac[night] == 0).all() and (dc[night] == 0).all()
    assert g.max() < 1100
    assert (ac <= p.pac0_kw + 1e-9).all() and (ac <= dc + 1e-9).all()
    assert (ac == p.pac0_kw).any(), "a clear noon with DC/AC 1.35 clips"
    unclipped = (dc > 100) & (ac < p.pac0_kw)
    eff = ac[unclipped] / dc[unclipped]
    assert (eff > 0.9).all() and (eff <= 0.97).all()
    assert (out["module_temp_c"][g > 800] > 45).all()
    # the inverter model is PVWatts (pvlib.inverter.pvwatts) at the nominal point
    pdc0_inv = p.pac0_kw / p.eta_inv_nom
    assert pv.pvwatts_ac_kw(np.array([pdc0_inv]), p)[0] == pytest.approx(p.pac0_kw, rel=1e-3)


def test_year_at_one_second_generates_in_seconds():
    import time

    ts = grid(7, 1)  # a week at 1 s; the bench runs the full year
    t = time.perf_counter()
    out = generate("pump", ts, 1)
    dt = time.perf_counter() - t
    assert len(out["power_kw"]) == 7 * 86400
    assert dt * 365 / 7 < 120, f"{dt:.2f}s for a week would be {dt * 365 / 7:.0f}s for a year"


def test_to_batch_builds_series_with_site_and_asset_tags():
    ts = grid(0.01, 1)
    f = generate("pv", ts, 1)
    f["ac_power_kw"][3] = np.nan  # a missing sample is left out
    b = to_batch("binhduong", "pv1", "pv", ts, f)
    assert len(b.table) == 5 and len(b) == 5 * len(ts) - 1
    s = b.table[0]
    assert s.measurement == "pv" and s.tag_dict == {"site": "binhduong", "asset": "pv1"}


def test_make_params_names_the_bad_key():
    with pytest.raises(ValueError, match=r"sim.yaml: plants\[0\].params.q_bep: unknown parameter"):
        make_params("pump", {"q_bep": 1}, where="sim.yaml: plants[0].params")
    with pytest.raises(ValueError, match=r"params.h_bep_m: expected a number"):
        make_params("pump", {"h_bep_m": "forty"})
    with pytest.raises(ValueError, match=r"params.meter.rolover: unknown meter parameter"):
        make_params("pump", {"meter": {"rolover": 5}})
    assert make_params("pump", {"h_bep_m": 38, "meter": {"rollover": 1e6}}).meter.rollover == 1e6
