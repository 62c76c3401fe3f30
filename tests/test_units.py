"""plantmrv.units: parsing, conversion with a dimensional check, field-name units, scaling."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantmrv.scaling import compose
from plantmrv.units import conversion, field_conversion, field_unit, parse_unit


@pytest.mark.parametrize("name, unit", [
    ("power_kw", "kW"), ("energy_kwh", "kWh"), ("flow_m3_per_h", "m3/h"), ("temp_c", "degC"), ("module_temp_c", "degC"),
    ("waste_t", "t"), ("aux_fuel_kg_per_h", "kg/h"), ("irradiance_w_per_m2", "W/m2"), ("ef_t_co2_per_mwh", "t/MWh"),
    ("speed_pct", "percent"), ("frequency_hz", "Hz"), ("head_m", "m"), ("lhv_mj_per_kg", "MJ/kg"), ("volume_m3", "m3"),
    ("raw_turbidity_ntu", "NTU"), ("nh4_in_mg_per_l", "mg/L"), ("reduction_t_co2", "t"), ("waste_feed_t_per_h", "t/h"),
    ("running", None), ("efficiency", None), ("backwash", None), ("credited", None),
])
def test_field_unit_reads_the_naming_convention(name, unit):
    assert field_unit(name) == unit
    if unit:
        parse_unit(unit)  # every stated unit is one pint knows


def test_conversion_factors_are_exact_for_plant_units():
    assert conversion("W", "kW") == (0.001, 0.0)
    assert conversion("Wh", "kWh") == (0.001, 0.0)
    assert conversion("MWh", "kWh") == (1000.0, 0.0)
    s, o = conversion("L/s", "m3/h")
    assert math.isclose(s, 3.6) and o == 0.0
    s, o = conversion("degF", "degC")
    assert math.isclose(s, 5 / 9) and math.isclose(o, -160 / 9)
    assert conversion("K", "degC") == (1.0, -273.15)
    assert conversion("%", "1") == (0.01, 0.0)


def test_dimension_mismatch_names_both_units_and_kinds():
    with pytest.raises(ValueError, match=r"'MW' cannot be converted to 'm3/h' \(power vs volume flow\)"):
        conversion("MW", "m3/h")
    with pytest.raises(ValueError, match="'furlongz' is not a unit"):
        parse_unit("furlongz")
    with pytest.raises(ValueError, match="field 'running' states no unit"):
        field_conversion("running", "kW")
    with pytest.raises(ValueError, match="field 'flow_m3_per_h' is in m3/h"):
        field_conversion("flow_m3_per_h", "MW")


def test_scaling_composes_raw_scale_then_unit():
    # a register in 0.1 W mapped to ac_power_kw: raw 12345 -> 1.2345 kW
    a, b = compose(0.1, 0.0, "ac_power_kw", "W")
    assert math.isclose(12345 * a + b, 1.2345)
    # a transmitter in degF with an offset calibration, to temp_c
    a, b = compose(1.0, -2.0, "water_temp_c", "degF")
    assert math.isclose(70.0 * a + b, (68.0 - 32) * 5 / 9)


UNITS = {"power": ["W", "kW", "MW"], "energy": ["Wh", "kWh", "MWh", "MJ"], "flow": ["m3/h", "L/s", "m3/s"],
         "temperature": ["degC", "K", "degF"], "mass": ["t", "kg", "g"]}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(UNITS)).flatmap(lambda k: st.tuples(st.sampled_from(UNITS[k]), st.sampled_from(UNITS[k]))),
       st.floats(-1e6, 1e6, allow_nan=False))
def test_conversion_round_trips(pair, x):
    a, b = pair
    s1, o1 = conversion(a, b)
    s2, o2 = conversion(b, a)
    y = x * s1 + o1
    assert math.isclose(y * s2 + o2, x, rel_tol=1e-9, abs_tol=1e-6)
