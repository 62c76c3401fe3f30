"""The analytics config section: the shipped example loads, and errors name key and line."""

import textwrap
from pathlib import Path

import pytest

from plantmrv.analytics.config import duration_label, parse_duration_s
from plantmrv.analytics.methodologies import resolve_grid_ef
from plantmrv.config import ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "analytics.yaml"


def test_example_config_has_one_project_per_plant_type_for_the_simulated_sites():
    cfg = load_config(EXAMPLE)
    a = cfg.analytics
    by_type = {p.plant_type: p for p in a.projects}
    assert set(by_type) == {"pump", "vsd", "ubcf", "wte", "pv"}
    assert {p.site for p in a.projects} == {"danang", "hcmc", "haiphong", "yangon", "binhduong"}
    assert (a.process_interval_s, a.mrv_interval_s) == (60, 3600)
    for p in a.projects:
        ef = resolve_grid_ef(p)  # every project's emission factor resolves
        assert ef.source
        p.parameter_set  # overrides apply cleanly
    assert resolve_grid_ef(by_type["vsd"]).value_t_co2_per_mwh == 0.8154
    # no published Myanmar factor was found: the example says so where it travels with results
    assert resolve_grid_ef(by_type["wte"]).source.startswith("PLACEHOLDER")


def test_engine_logs_a_placeholder_grid_ef(caplog):
    from plantmrv.analytics.engine import Engine

    cfg = load_config(EXAMPLE)
    with caplog.at_level("WARNING", logger="plantmrv.analytics"):
        Engine(cfg.analytics, client=None)
    assert any("event=grid_ef_placeholder project=yangon-wte" in r.getMessage() for r in caplog.records)


def _write(tmp_path, text):
    path = tmp_path / "a.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


BASE = """
analytics:
  projects:
    - id: p1
      site: danang
      plant_type: pump
      timezone: Asia/Ho_Chi_Minh
      assets: [{measurement: pump, asset: pump1, fields: {energy_meter: energy_kwh}}]
      methodology: {id: m}
      monitoring_period: {start: 2026-01-01, end: 2027-01-01}
      grid_ef: {country: VN, grid: national, year: 2023, kind: national}
      parameters:
        eta_project: {value: 0.81, unit: "-", source: test certificate}
        eta_reference: {value: 0.75, unit: "-", source: ex-ante default}
        fill_power_kw: {value: 900, unit: kW, source: motor rating}
"""


def test_wrong_baseline_is_located(tmp_path):
    path = _write(tmp_path, BASE + "      baseline: generation\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (issue,) = exc.value.issues
    assert str(issue).startswith(f"{path}: analytics.projects[0].baseline (line 15): ")
    assert "choose one of efficiency_ratio, specific_energy" in str(issue)


def test_parameter_without_source_and_unknown_key_are_located(tmp_path):
    text = BASE.replace("eta_project: {value: 0.81, unit: \"-\", source: test certificate}", "eta_project: {value: 0.8, unit: '-'}")
    path = _write(tmp_path, text + "      japan_shar: 0.5\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    got = [str(i) for i in exc.value.issues]
    assert f"{path}: analytics.projects[0].parameters.eta_project.source (line 12): required key is missing" in got
    assert f"{path}: analytics.projects[0].japan_shar (line 15): unknown key (check its spelling and indentation)" in got


def test_grid_ef_needs_a_table_row_or_value_with_source(tmp_path):
    path = _write(tmp_path, BASE.replace("{country: VN, grid: national, year: 2023, kind: national}", "{value: 0.5}"))
    with pytest.raises(ConfigError, match=r"analytics.projects\[0\].grid_ef \(line 10\): .*needs a source"):
        load_config(path)


def test_durations():
    assert parse_duration_s("1m") == 60 and parse_duration_s("1h") == 3600 and parse_duration_s(30) == 30
    assert duration_label(3600) == "1h" and duration_label(60) == "1m" and duration_label(90) == "90s"
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_s("1 hour")


def test_missing_emission_factor_is_a_config_error_naming_what_exists(tmp_path):
    path = _write(tmp_path, BASE.replace("year: 2023", "year: 2031"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (issue,) = exc.value.issues
    assert str(issue).startswith(f"{path}: analytics.projects[0].grid_ef (line 10): ")
    assert "year=2031" in str(issue) and "years for VN/national: 2014, 2015" in str(issue)


def _cfg(**project_changes):
    """The BASE project as a dict, changed, validated as an analytics section."""
    import yaml

    from plantmrv.analytics.config import AnalyticsConfig

    doc = yaml.safe_load(textwrap.dedent(BASE))["analytics"]
    p = doc["projects"][0]
    for k, v in project_changes.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    return AnalyticsConfig.model_validate(doc)


def _err(**changes) -> str:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as exc:
        _cfg(**changes)
    return str(exc.value)


def test_an_explicit_grid_ef_needs_a_unit_is_converted_and_must_be_plausible():
    g = {"value": 815.4, "unit": "g/kWh", "source": "PDD", "kind": "national"}
    assert resolve_grid_ef(_cfg(grid_ef=g).projects[0]).value_t_co2_per_mwh == pytest.approx(0.8154)
    assert "needs a unit" in _err(grid_ef={"value": 0.8, "source": "PDD", "kind": "national"})
    # g/kWh typed as t/MWh: 815.4 t/MWh is no grid's factor
    assert "815.4 tCO2/MWh = 815.4 tCO2/MWh is not a plausible grid emission factor" in _err(grid_ef=dict(g, unit="tCO2/MWh"))
    assert "'kW' cannot be converted to 'tCO2/MWh'" in _err(grid_ef=dict(g, unit="kW"))


def test_a_field_of_the_wrong_dimension_is_refused_and_other_units_converted():
    from plantmrv.analytics.config import role_scale

    msg = _err(assets=[{"measurement": "pump", "asset": "p1", "fields": {"energy_meter": "energy_kwh", "volume_meter": "power_kw"}}])
    assert "volume_meter: field 'power_kw': 'kW' cannot be converted to 'm3' (power vs volume)" in msg
    msg = _err(assets=[{"measurement": "pump", "asset": "p1", "fields": {"energy_meter": "energy"}}])
    assert "energy_meter: field 'energy' names no unit" in msg
    assert role_scale("flow_m3_per_min", "flow") == pytest.approx(60.0)
    assert role_scale("energy_mwh", "energy_meter") == pytest.approx(1000.0)
    assert role_scale("ac_power_w", "export_power") == pytest.approx(0.001)


def test_parameters_are_unit_checked_bounded_and_never_defaulted_from_one_plant():
    assert "parameters.eta_project: required by pump/efficiency_ratio" in _err(parameters={
        "eta_reference": {"value": 0.75, "unit": "-", "source": "x"}, "fill_power_kw": {"value": 900, "unit": "kW", "source": "x"}})
    # 0.9 MW is 900 kW, never 0.9 kW
    p = _cfg(parameters={"eta_project": {"value": 0.81, "unit": "-", "source": "x"}, "eta_reference": {"value": 0.75, "unit": "-", "source": "x"},
                         "fill_power_kw": {"value": 0.9, "unit": "MW", "source": "x"}}).projects[0]
    assert p.parameter_set.fill_power_kw.value == pytest.approx(900.0)
    assert "eta_reference: 1.2 - is not plausible" in _err(parameters={
        "eta_project": {"value": 0.81, "unit": "-", "source": "x"}, "eta_reference": {"value": 1.2, "unit": "-", "source": "x"},
        "fill_power_kw": {"value": 900, "unit": "kW", "source": "x"}})
    assert "project_fill_rate_kw moved to parameters.fill_power_kw" in _err(project_fill_rate_kw={"value": 900, "unit": "kW", "source": "x"})


def test_solar_projects_take_solar_weights_and_unknown_generation_types_are_refused():
    from plantmrv.analytics.config import AnalyticsConfig

    pv = {"id": "pv", "site": "davao", "plant_type": "pv", "timezone": "Asia/Manila", "methodology": {"id": "PH_AM00X"},
          "assets": [{"measurement": "pv", "asset": "pv1", "fields": {"export_meter": "export_energy_kwh"}}],
          "monitoring_period": {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
          "grid_ef": {"country": "PH", "grid": "mindanao", "year": 2016, "kind": "CM"}}
    p = AnalyticsConfig.model_validate({"projects": [pv]}).projects[0]
    assert p.generation_type == "solar" and round(resolve_grid_ef(p).value_t_co2_per_mwh, 4) == 0.7859
    with pytest.raises(Exception, match="generation_type"):
        AnalyticsConfig.model_validate({"projects": [dict(pv, grid_ef=dict(pv["grid_ef"], generation_type="photovoltaic"))]})


def test_unused_roles_missing_quantities_zones_and_misaligned_periods_are_located():
    assert "running, volume_meter" not in _err(assets=[{"measurement": "pump", "asset": "p1", "fields": {"export_meter": "export_energy_kwh"}}])
    assert "export_meter not used by pump/efficiency_ratio" in _err(
        assets=[{"measurement": "pump", "asset": "p1", "fields": {"energy_meter": "energy_kwh", "export_meter": "export_energy_kwh"}}])
    assert "pump/efficiency_ratio needs electricity of the project pumps" in _err(
        assets=[{"measurement": "pump", "asset": "p1", "fields": {"volume_meter": "volume_m3"}}])
    assert "'Asia/Danang' is not an IANA time zone" in _err(timezone="Asia/Danang")
    assert "monitoring_period.start 2026-01-01T00:30:00+00:00 is not on a 1h interval edge" in _err(
        monitoring_period={"start": "2026-01-01T00:30:00Z", "end": "2027-01-01T00:00:00Z"})


def test_meter_events_name_a_meter_of_the_asset():
    ev = {"field": "volume_m3", "time": "2026-06-01T03:00:00Z", "old_final": 10.0, "new_initial": 0.0, "source": "work order 7"}
    msg = _err(assets=[{"measurement": "pump", "asset": "p1", "fields": {"energy_meter": "energy_kwh"}, "meter_events": [ev]}])
    assert "meter_events[0].field: 'volume_m3' is not a field of this asset's roles" in msg
    ok = _cfg(assets=[{"measurement": "pump", "asset": "p1", "fields": {"energy_meter": "energy_kwh"}, "meter_events": [dict(ev, field="energy_kwh")]}])
    (e,) = ok.projects[0].assets[0].events_of("energy_kwh")
    assert e.time_ns == 1780282800 * 10**9 and e.old_final == 10.0 and e.source == "work order 7"


@pytest.mark.parametrize("zone,interval,kind,ok", [
    ("Asia/Yangon", 3600, "fiscal_year", True),   # intervals are UTC-aligned: 00:00 JST = 15:00Z is an hour edge
    ("Asia/Yangon", 3600, "calendar_year", False),  # local midnight 17:30Z
    ("Asia/Yangon", 1800, "calendar_year", True),
    ("Asia/Yangon", 1800, "fiscal_year", True),
    ("Asia/Ho_Chi_Minh", 3600, "calendar_year", True),
    ("Asia/Ho_Chi_Minh", 86400, "fiscal_year", False),  # a UTC day straddles 15:00Z
    ("Asia/Kathmandu", 1800, "calendar_year", False),  # UTC+5:45
])
def test_a_report_that_would_cut_an_interval_is_refused(zone, interval, kind, ok):
    from plantmrv.analytics.config import check_report_alignment

    p = _cfg(timezone=zone).projects[0]
    if ok:
        check_report_alignment(p, interval, kind)
    else:
        with pytest.raises(ValueError, match="do not align with .*: an interval would straddle the boundary"):
            check_report_alignment(p, interval, kind)
