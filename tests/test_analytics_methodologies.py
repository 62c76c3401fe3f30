"""Published cases of shared/docs/methodologies.md section 5, and the methodology modules' rules."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantmrv.analytics import baselines, emission_factors, pumps, pv, ubcf, vsd, wte
from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.emission_factors import EmissionFactorError, combined_margin, grid_emission_factor
from plantmrv.analytics.methodologies import compute
from plantmrv.analytics.parameters import Param, override, params_hash, values
from plantmrv.analytics.reporting import round_reported_t_co2


def test_inverter_ex_ante_case_floors_1043_712_to_1043_t():
    ef = grid_emission_factor("VN", "national", 2015, "national").value_t_co2_per_mwh
    assert ef == 0.8154
    unrounded = float(vsd.ex_ante_reductions_t_co2(1_280_000.0, ef))
    assert unrounded == pytest.approx(1043.712, abs=1e-9)
    assert round_reported_t_co2(unrounded, "jcm") == 1043


def test_inverter_case_by_reference_minus_project_with_floor():
    # the same case through RE - PE: 1,280 MWh saved as baseline minus project energy
    e_bl = vsd.baseline_energy_kwh(np.full(8760, 1.0), 500.0)  # 4,380 MWh
    e_pj = np.full(8760, 500.0 - 1_280_000.0 / 8760)
    re_ = vsd.reference_emissions_t_co2(e_bl, 0.8154)
    pe = vsd.project_emissions_t_co2(e_pj, 0.8154)
    total = float(np.sum(vsd.emission_reductions(re_, pe)))
    assert total == pytest.approx(1043.712, abs=1e-6)
    assert round_reported_t_co2(total) == 1043


@pytest.mark.parametrize("w_om,w_bm,gen,expected", [(0.75, 0.25, "solar", 0.7859), (0.5, 0.5, "other", 0.7921)])
def test_mindanao_combined_margin_matches_doe(w_om, w_bm, gen, expected):
    assert round(float(combined_margin(0.7797, 0.8045, w_om, w_bm)), 4) == expected
    ef = grid_emission_factor("PH", "mindanao", 2016, "CM", generation_type=gen)
    assert round(ef.value_t_co2_per_mwh, 4) == expected
    assert "TOOL07" in ef.source and "DOE" in ef.source


@pytest.mark.parametrize("head_m,power_kw,expected", [(65.0, 1411.0, 0.791), (40.0, 850.0, 0.808)])
def test_tan_hiep_pump_efficiency(head_m, power_kw, expected):
    q = 105.0 / 60.0  # 105 m3/min = 1.75 m3/s
    assert q == 1.75
    assert round(float(pumps.wire_to_water_efficiency(q, head_m, power_kw)), 3) == expected


def test_efficiency_is_nan_at_zero_power():
    assert np.isnan(pumps.wire_to_water_efficiency(1.0, 10.0, 0.0))


def test_viet_nam_factors_shipped_for_every_year():
    published = {2014: 0.6612, 2015: 0.8154, 2016: 0.9185, 2017: 0.8649, 2018: 0.9130, 2019: 0.8458, 2020: 0.8041, 2021: 0.7221, 2022: 0.6766, 2023: 0.6592}
    for year, value in published.items():
        ef = grid_emission_factor("VN", "national", year, "national")
        assert ef.value_t_co2_per_mwh == value and "MONRE" in ef.source


def test_luzon_visayas_factors_shipped():
    assert grid_emission_factor("PH", "luzon-visayas", 2015, "OM").value_t_co2_per_mwh == 0.7122
    assert grid_emission_factor("PH", "luzon-visayas", 2017, "BM").value_t_co2_per_mwh == 0.5979


@pytest.mark.parametrize(
    "args,needle",
    [
        (("MM", "national", 2019, "CM"), "countries available"),
        (("VN", "south", 2019, "national"), "grids for VN"),
        (("VN", "national", 2030, "national"), "years for VN/national"),
        (("VN", "national", 2019, "CM"), "kinds for VN/national/2019: national"),
    ],
)
def test_missing_emission_factor_names_what_is_missing(args, needle):
    with pytest.raises(EmissionFactorError, match=needle):
        grid_emission_factor(*args)


def test_combined_margin_weights_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        combined_margin(0.7, 0.8, 0.6, 0.6)


def test_pump_reference_is_efficiency_ratio_times_ef():
    e = np.array([100.0, 200.0])
    re_ = pumps.reference_emissions_t_co2(e, 0.808, 0.791, 0.8)
    np.testing.assert_allclose(re_, e * 0.808 / 0.791 / 1000 * 0.8)
    pe = pumps.project_emissions_t_co2(e, 0.8)
    np.testing.assert_allclose(pumps.emission_reductions(re_, pe), re_ - pe)


def test_pump_specific_energy_reference_credits_head_reduction():
    # Tan Hiep 1: same flow, head 65 -> 40 m: SEC baseline from old pump, project at new power
    v_m3 = 105.0 * 60  # an hour
    sec_bl = 1411.0 / v_m3  # kWh per m3 of the old pumps
    re_ = pumps.reference_emissions_specific_energy_t_co2(v_m3, sec_bl, 1.0)
    pe = pumps.project_emissions_t_co2(850.0, 1.0)
    assert float(re_ - pe) == pytest.approx((1411 - 850) / 1000)
    # the efficiency ratio credits only 0.808/0.791 of the project energy: far less
    assert float(pumps.reference_emissions_t_co2(850.0, 0.808, 0.791, 1.0) - pe) < 0.02


def test_pv_project_emissions_zero_and_kh_am002_day_category():
    eg = np.array([10.0, 20.0, 30.0])
    ef = pv.day_category_ef([True, False, True], 0.6, 0.8)
    np.testing.assert_allclose(ef, [0.6, 0.8, 0.6])
    re_ = pv.reference_emissions_t_co2(eg, ef)
    np.testing.assert_allclose(re_, [0.006, 0.016, 0.018])
    assert np.all(pv.project_emissions_t_co2(eg) == 0)
    np.testing.assert_allclose(pv.emission_reductions(re_), re_)


def test_fod_methane_matches_tool04_equation_by_hand():
    p = wte.WtEParameters()
    w = 100.0
    got = float(wte.methane_avoided_t_co2e(w, p))
    v = values(p)
    expected = v["phi"] * (1 - v["f"]) * v["gwp_ch4"] * (1 - v["ox"]) * 16 / 12 * v["F"] * v["doc_f"] * v["mcf"] * sum(
        w * pj * dj * (1 - math.exp(-kj)) for pj, dj, kj in zip(v["composition"], v["doc_j"], v["k_j_per_year"])
    )
    assert got == pytest.approx(expected, rel=1e-12)


def _tool04_by_hand(waste_by_year, v):
    """BE_CH4,y of CDM TOOL04 written out with loops over y, x and j (methodologies.md s.3)."""
    factor = v["phi"] * (1 - v["f"]) * v["gwp_ch4"] * (1 - v["ox"]) * 16 / 12 * v["F"] * v["doc_f"] * v["mcf"]
    return [
        factor * sum(
            waste_by_year[x] * pj * dj * math.exp(-kj * (y - x)) * (1 - math.exp(-kj))
            for x in range(y + 1)
            for pj, dj, kj in zip(v["composition"], v["doc_j"], v["k_j_per_year"])
        )
        for y in range(len(waste_by_year))
    ]


def test_fod_methane_by_year_is_tool04_sum_over_earlier_years():
    p = wte.WtEParameters()
    waste = [1000.0, 2000.0, 0.0, 500.0, 0.0, 0.0]
    got = wte.methane_avoided_by_year_t_co2e(waste, p)
    np.testing.assert_allclose(got, _tool04_by_hand(waste, values(p)), rtol=1e-12)
    first = float(wte.methane_avoided_t_co2e(1000.0, p))
    assert got[0] == pytest.approx(first)  # year 1: only its own waste's first-year decay
    assert got[2] > 0 and got[4] > got[5] > 0  # years without waste still credit the tail


@settings(max_examples=40, deadline=None)
@given(waste=st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=8))
def test_fod_total_over_a_long_horizon_approaches_the_decayable_methane(waste):
    """Summed over y, exp(-k (y-x)) (1 - exp(-k)) telescopes to 1: in the long run every tonne
    of decomposable carbon is credited once, never more."""
    p = wte.WtEParameters()
    v = values(p)
    horizon = np.concatenate([waste, np.zeros(700)])  # wood (k = 0.035) keeps < 1e-10 after 700 yr
    by_year = wte.methane_avoided_by_year_t_co2e(horizon, p)
    factor = v["phi"] * (1 - v["f"]) * v["gwp_ch4"] * (1 - v["ox"]) * 16 / 12 * v["F"] * v["doc_f"] * v["mcf"]
    decayable = factor * sum(waste) * float(np.dot(v["composition"], v["doc_j"]))
    running = np.cumsum(by_year)
    assert np.all(np.diff(running) >= -1e-9)
    assert running[-1] <= decayable * (1 + 1e-9) + 1e-9
    assert running[-1] == pytest.approx(decayable, rel=1e-8, abs=1e-9)
    # ten years in, the tail still matters: the first-year terms alone fall short
    if sum(waste) > 1e-6:  # subnormal tonnes round both sides to 0.0
        first_year_only = float(np.sum(wte.methane_avoided_t_co2e(np.asarray(waste), p)))
        assert first_year_only < running[len(waste) + 9]


def test_fod_decay_fractions_sum_to_one():
    k = np.array([0.4, 0.07, 0.035])
    total = sum(wte.fod_decay_fraction(k, age) for age in range(2000))
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)
    assert np.all(wte.fod_decay_fraction(k, -1) == 0)


def _wte_project(**kw):
    return _project(
        "wte", fields={"waste_rate": "waste_t_per_h", "export_meter": "net_export_energy_kwh", "import_meter": "import_energy_kwh",
                       "aux_fuel_meter": "aux_fuel_kg"},
        crediting_start=kw.pop("crediting_start", "2025-01-01T00:00:00Z"),
        monitoring_period={"start": "2025-01-01T00:00:00Z", "end": "2029-01-01T00:00:00Z"}, **kw,
    )


def test_wte_interval_credits_add_up_to_tool04_crediting_years():
    """Hourly intervals over three crediting years: each year's intervals sum to BE_CH4,y, and
    computing day by day with the earlier waste passed in (as the engine does) equals computing
    the whole span at once."""
    project = _wte_project()
    t0 = project.crediting_start_ns
    step = 600 * S
    n = int(3 * 365.25 * 86400 * S // step) + 10
    ts = t0 + np.arange(n, dtype=np.int64) * step
    rate = 2.5 + 1.5 * np.sin(np.arange(n) / 500.0)  # t/h, changing year to year
    rate[(ts >= t0 + 400 * 86400 * S) & (ts < t0 + 500 * 86400 * S)] = 0.0  # a plant stop
    signals = {"waste_rate": [(ts, rate)]}
    year_edges = wte.crediting_year_edges_ns(t0, t0 + 3 * 366 * 86400 * S)[:4]
    edges = t0 + np.arange((int(year_edges[3]) - t0) // (3600 * S) + 1, dtype=np.int64) * 3600 * S
    res = compute(project, signals, edges, 700)
    ch4 = res.cobenefits["methane_avoided_t_co2e"]
    w = res.cobenefits["waste_t"]
    year = wte.crediting_year_of(edges[:-1], year_edges)
    w_by_year = np.bincount(year, weights=w, minlength=3)[:3]
    ch4_by_year = np.bincount(year, weights=ch4, minlength=3)[:3]
    np.testing.assert_allclose(ch4_by_year, wte.methane_avoided_by_year_t_co2e(w_by_year, project.parameter_set), rtol=1e-9)
    np.testing.assert_allclose(res.reference_t_co2, ch4, rtol=1e-12)  # no export data: counted 0 (reference low)
    assert np.all(res.completeness == 0.0)  # and export, import and fuel are missing throughout
    assert np.all(res.project_t_co2 > 0)  # so they are charged at their fill rates
    # the same in windows of 30 days, each told the waste of the windows before
    got = []
    for a in range(0, len(edges) - 1, 24 * 30):
        win = edges[a : a + 24 * 30 + 1]
        prior = wte.waste_by_crediting_year_t(edges[: a + 1], w[:a], year_edges, 3) if a else None
        got.append(compute(project, signals, win, 700, prior_waste_t_by_year=prior).cobenefits["methane_avoided_t_co2e"])
    np.testing.assert_allclose(np.concatenate(got), ch4, rtol=1e-9, atol=1e-12)


def test_crediting_years_are_12_month_periods_from_the_crediting_start():
    t = int(np.datetime64("2024-02-29T06:00", "ns").astype(np.int64))
    ye = wte.crediting_year_edges_ns(t, t + 3 * 365 * 86400 * S)
    got = [str(np.datetime64(int(v), "ns"))[:16] for v in ye[:4]]
    assert got == ["2024-02-29T06:00", "2025-02-28T06:00", "2026-02-28T06:00", "2027-02-28T06:00"]
    assert list(wte.crediting_year_of([t - 1, t, int(ye[1]), int(ye[2]) - 1], ye)) == [-1, 0, 1, 1]


def test_crediting_start_after_monitoring_start_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="crediting_start .* is after monitoring_period.start"):
        _wte_project(crediting_start="2026-01-01T00:00:00Z")


def test_wte_project_emissions_fossil_carbon_form():
    p = wte.WtEParameters()
    pe = float(wte.combustion_emissions_t_co2(100.0, p))
    assert pe == pytest.approx(100 * 0.10 * 0.75 * 1.0 * 44 / 12 * 1.0)
    total = wte.project_emissions_t_co2(100.0, 1.0, 1000.0, 0.5, p)
    assert float(total) == pytest.approx(pe + 0.5 + 3.186)


def test_ubcf_is_labelled_not_credited_and_kpis():
    assert ubcf.CREDITED is False and "NOT CREDITED" in ubcf.LABEL
    np.testing.assert_allclose(ubcf.specific_energy_kwh_per_m3([10.0, 5.0], [100.0, 0.0]), [0.1, np.nan])
    np.testing.assert_allclose(ubcf.removal_fraction([2.0], [0.5]), [0.75])
    assert float(ubcf.chemical_emissions_t_co2(1000.0, None)) == 0.0


def test_baseline_registry_has_the_five_models_and_rejects_unknown():
    assert set(baselines.REGISTRY) == {"efficiency_ratio", "specific_energy", "constant_power_hours", "generation", "fod_methane"}
    with pytest.raises(ValueError, match=r"projects\[0\].baseline: unknown baseline model 'ratio'"):
        baselines.get("ratio", "projects[0].baseline")


def test_every_default_parameter_has_a_source():
    for cls in (pumps.PumpParameters, vsd.VSDParameters, wte.WtEParameters, ubcf.UBCFParameters, pv.PVParameters):
        for row in __import__("plantmrv.analytics.parameters", fromlist=["table"]).table(cls()):
            assert row["source"], (cls.__name__, row["name"])


def test_parameter_override_needs_source_unit_of_the_right_dimension_and_a_plausible_value():
    p = pumps.PumpParameters()
    q = override(p, {"eta_reference": {"value": 0.7, "unit": "-", "source": "ex-ante default of the PDD"}})
    assert q.eta_reference.value == 0.7 and params_hash(p) != params_hash(q)
    assert override(p, {"eta_reference": {"value": 70, "unit": "%", "source": "x"}}).eta_reference.value == pytest.approx(0.7)
    assert override(p, {"fill_power_kw": {"value": 0.9, "unit": "MW", "source": "x"}}).fill_power_kw.value == pytest.approx(900.0)
    with pytest.raises(ValueError, match="eta_reference: an override needs a source"):
        override(p, {"eta_reference": {"value": 0.7, "unit": "-"}})
    with pytest.raises(ValueError, match="eta_reference: a unit is required"):
        override(p, {"eta_reference": {"value": 0.7, "source": "x"}})
    with pytest.raises(ValueError, match=r"fill_power_kw: 'm3/h' cannot be converted to 'kW' \(volume flow vs power\)"):
        override(p, {"fill_power_kw": {"value": 900, "unit": "m3/h", "source": "x"}})
    with pytest.raises(ValueError, match="eta_project: 1.2 - is not plausible: must be at most 1.0"):
        override(p, {"eta_project": {"value": 1.2, "unit": "-", "source": "x"}})
    with pytest.raises(ValueError, match="params.eta: unknown parameter"):
        override(p, {"eta": {"value": 1, "unit": "-", "source": "x"}}, "params")
    with pytest.raises(ValueError, match="a source is required"):
        Param(1.0, "-", "")


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    gaps=st.lists(st.tuples(st.integers(0, 7100), st.integers(40, 1500)), min_size=1, max_size=4),
    plant=st.sampled_from(["pump", "vsd", "wte", "pv"]),
    by_meter=st.booleans(),
)
def test_a_fill_never_increases_reductions(seed, gaps, plant, by_meter):
    """Any data missing (a dropout of every input, or of one) never raises the tonnes above
    those of the complete data, as long as the fill rates bound the real rates.

    An outage is a silence longer than the hold limit (30 s here): a shorter one is, by the
    report-by-exception contract, an unchanged signal the gateway vouched for (it stores a
    healthy tag at least every ``max_sample_interval_s``), bridged by a straight line."""
    rng = np.random.default_rng(seed)
    t0 = 1_772_323_200 * S  # 2026-03-01, inside the monitoring period
    ts = t0 + np.arange(0, 7201, 5, dtype=np.int64) * S
    power = rng.uniform(0, 800, len(ts))  # below every fill rate
    meter = np.concatenate(([1000.0], 1000.0 + np.cumsum((power[1:] + power[:-1]) / 2 * 5 / 3600)))
    flag = (power > 200).astype(float)
    role_data = {
        "energy_meter": meter, "power": power, "running": flag, "export_meter": meter, "export_power": power,
        "waste_meter": meter / 500.0, "waste_rate": power / 500.0, "import_meter": meter / 10.0, "import_power": power / 10.0,
        "aux_fuel_meter": meter / 8.0, "aux_fuel_rate": power / 8.0,
    }
    fields = {
        "pump": {"energy_meter": "energy_kwh"} if by_meter else {"power": "power_kw"},
        "vsd": {("energy_meter" if by_meter else "power"): "energy_kwh" if by_meter else "power_kw", "running": "running"},
        "pv": {"export_meter": "export_energy_kwh"} if by_meter else {"export_power": "ac_power_kw"},
        "wte": ({"waste_meter": "waste_fed_t", "export_meter": "net_export_energy_kwh", "import_meter": "import_energy_kwh", "aux_fuel_meter": "aux_fuel_kg"}
                if by_meter else {"waste_rate": "waste_feed_t_per_h", "export_power": "net_export_power_kw", "import_power": "import_power_kw",
                                  "aux_fuel_rate": "aux_fuel_kg_per_h"}),
    }[plant]
    project = _project(plant, fields=fields)
    full = {r: [(ts, role_data[r])] for r in fields}
    keep = np.ones(len(ts), bool)
    for start, length in gaps:
        keep &= ~((ts >= t0 + start * S) & (ts < t0 + (start + length) * S))
    only = rng.choice(sorted(fields))  # sometimes one input drops out, sometimes all
    gappy = {r: [(ts[keep], role_data[r][keep])] if (rng.random() < 0.5 or r == only) else [(ts, role_data[r])] for r in fields}
    edges = t0 + np.arange(0, 7201, 3600, dtype=np.int64) * S
    whole = compute(project, full, edges, 30)
    holed = compute(project, gappy, edges, 30)
    assert holed.reduction_t_co2.sum() <= whole.reduction_t_co2.sum() + 1e-9
    assert np.all(holed.completeness <= whole.completeness + 1e-12)
    assert holed.gap_filled_s.sum() >= whole.gap_filled_s.sum()


S = 1_000_000_000


#: Parameters a test project states unless it sets its own (no methodology ships them).
TEST_PARAMETERS = {
    "pump": {"eta_project": {"value": 0.81, "unit": "-", "source": "t"}, "eta_reference": {"value": 0.75, "unit": "-", "source": "t"},
             "fill_power_kw": {"value": 900, "unit": "kW", "source": "rating"}},
    "vsd": {"baseline_power_kw": {"value": 800, "unit": "kW", "source": "t"}, "fill_power_kw": {"value": 900, "unit": "kW", "source": "rating"}},
    "ubcf": {"sec_baseline_kwh_per_m3": {"value": 0.12, "unit": "kWh/m3", "source": "t"}, "fill_power_kw": {"value": 60, "unit": "kW", "source": "rating"}},
    "wte": {"fill_waste_t_per_h": {"value": 4, "unit": "t/h", "source": "rating"}, "fill_aux_fuel_kg_per_h": {"value": 150, "unit": "kg/h", "source": "rating"},
            "fill_import_power_kw": {"value": 250, "unit": "kW", "source": "rating"}},
    "pv": {},
}


def _project(plant_type, **kw):
    params = {**TEST_PARAMETERS[plant_type], **kw.pop("parameters", {})}
    base = {
        "id": "p", "site": "s", "plant_type": plant_type, "timezone": "Asia/Ho_Chi_Minh",
        "assets": [{"measurement": plant_type, "asset": "a", "fields": kw.pop("fields")}],
        "methodology": {"id": "m"},
        "monitoring_period": {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
        "grid_ef": {"country": "VN", "grid": "national", "year": 2020, "kind": "national"},
        "parameters": params,
        **kw,
    }
    return AnalyticsConfig.model_validate({"projects": [base]}).projects[0]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    cuts=st.lists(st.integers(1, 7199), max_size=6, unique=True),
    drop=st.tuples(st.integers(0, 7000), st.integers(0, 600)),
)
def test_splitting_a_period_into_intervals_sums_to_computing_it_whole(seed, cuts, drop):
    rng = np.random.default_rng(seed)
    ts = np.arange(0, 7201, 1, dtype=np.int64) * S
    keep = ~((ts >= drop[0] * S) & (ts < (drop[0] + drop[1]) * S))
    power = rng.uniform(100, 900, len(ts))
    meter = np.concatenate(([0.0], np.cumsum((power[1:] + power[:-1]) / 2 / 3600)))
    projects = [
        _project("pump", fields={"energy_meter": "energy_kwh"}),
        _project("vsd", fields={"power": "power_kw", "running": "running"}),
        _project("pv", fields={"export_meter": "export_energy_kwh"}),
    ]
    signals = [
        {"energy_meter": [(ts[keep], meter[keep])]},
        {"power": [(ts[keep], power[keep])], "running": [(ts[keep], (power[keep] > 300).astype(float))]},
        {"export_meter": [(ts[keep], meter[keep])]},
    ]
    whole_edges = np.array([0, 7200 * S])
    edges = np.array([0, *sorted(c * S for c in cuts), 7200 * S])
    for project, sig in zip(projects, signals):
        whole = compute(project, sig, whole_edges, 10)
        parts = compute(project, sig, edges, 10)
        for name in ("reference_t_co2", "project_t_co2", "reduction_t_co2", "gap_filled_s", "energy_saved_kwh"):
            assert getattr(parts, name).sum() == pytest.approx(getattr(whole, name).sum(), rel=1e-9, abs=1e-9), (project.plant_type, name)
        if project.plant_type == "pv":
            assert np.all(parts.reduction_t_co2 >= 0)  # PV: PE = 0, never negative


def _kh_project(**kw):
    return _project(
        "pv", fields={"export_meter": "export_energy_kwh", "grid_available": "grid_ok"},
        methodology={"id": "KH_AM002", "version": "1.0"}, day_category={"utc_offset_h": 7},
        grid_ef={"value": 0.6, "unit": "tCO2/MWh", "source": "test grid EF", "kind": "national"},
        parameters={"ef_diesel_t_co2_per_mwh": {"value": 0.8, "unit": "tCO2/MWh", "source": "test diesel EF"}}, **kw,
    )


def test_kh_am002_day_categories_and_ef_per_local_day():
    day = 86400 * S
    d0 = int(np.datetime64("2026-03-01T00:00", "ns").astype(np.int64)) - 7 * 3600 * S  # local midnight, UTC+7
    days = pv.local_day_edges_ns(d0 + 5 * S, d0 + 3 * day - 5 * S, 7)
    assert list(days) == [d0, d0 + day, d0 + 2 * day, d0 + 3 * day]
    # day 0: grid all day; day 1: outage 10:00-12:00; day 2: outage all day
    ts = np.array([d0 - 60 * S, d0 + day + 10 * 3600 * S, d0 + day + 12 * 3600 * S, d0 + 2 * day], dtype=np.int64)
    flag = np.array([1.0, 0.0, 1.0, 0.0])
    cats = pv.day_categories(ts, flag, days)
    assert list(cats) == [pv.GRID_DAY, pv.MIXED_DAY, pv.OUTAGE_DAY]
    np.testing.assert_allclose(pv.ef_by_day_category(cats, 0.6, 0.8), [0.6, 0.6, 0.8])
    # before the first flag sample the state is unknown: not an outage day
    assert list(pv.day_categories(ts[2:], flag[2:], days)) == [pv.MIXED_DAY, pv.MIXED_DAY, pv.OUTAGE_DAY]
    # with a hold limit, a flag silent longer than it is unknown: no day is known all day
    assert list(pv.day_categories(ts, flag, days, max_hold_s=120)) == [pv.MIXED_DAY] * 3
    # through compute: hourly intervals take their local day's EF (the flag as the gateway stores
    # it: the changes, and the unchanged value again every minute)
    project = _kh_project()
    t = d0 + np.arange(0, 3 * 86400 + 1, 60, dtype=np.int64) * S
    meter = np.arange(len(t), dtype=float) * 0.5  # 30 kW
    edges = d0 + np.arange(0, 3 * 24 + 1, dtype=np.int64) * 3600 * S
    dense_ts = np.unique(np.concatenate([ts, t]))
    dense_flag = flag[np.searchsorted(ts, dense_ts, side="right") - 1]
    res = compute(project, {"export_meter": [(t, meter)], "grid_available": [(dense_ts, dense_flag)]}, edges, 120)
    np.testing.assert_allclose(res.reference_energy_kwh, 30.0)
    np.testing.assert_allclose(res.reference_t_co2, 0.030 * np.repeat([0.6, 0.6, 0.8], 24))
    assert np.all(res.project_t_co2 == 0)


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"day_category": None}, "methodology KH_AM002 credits by category of day: add day_category"),
        ({"fields": {"export_meter": "export_energy_kwh"}}, "day_category needs a 0/1 grid supply flag: set assets\\[\\].fields.grid_available"),
        ({"day_category": {"utc_offset_h": 30}}, "utc_offset_h"),
    ],
)
def test_kh_am002_config_errors_name_the_key(change, needle):
    from pydantic import ValidationError

    kw = {"fields": {"export_meter": "export_energy_kwh", "grid_available": "grid_ok"}, "methodology": {"id": "KH_AM002"}, "day_category": {"utc_offset_h": 7}}
    kw.update(change)
    if kw["day_category"] is None:
        del kw["day_category"]
    with pytest.raises(ValidationError, match=needle):
        _project("pv", grid_ef={"value": 0.6, "unit": "tCO2/MWh", "source": "x", "kind": "national"}, parameters={"ef_diesel_t_co2_per_mwh": {"value": 0.8, "unit": "tCO2/MWh", "source": "x"}}, **kw)
    with pytest.raises(ValidationError, match="day_category \\(JCM KH_AM002\\) applies to plant_type pv, not 'pump'"):
        _project("pump", fields={"energy_meter": "energy_kwh", "grid_available": "grid_ok"}, day_category={}, grid_ef={"value": 0.6, "unit": "tCO2/MWh", "source": "x", "kind": "national"})
