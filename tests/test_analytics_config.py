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
      assets: [{measurement: pump, asset: pump1, fields: {energy_meter: energy_kwh}}]
      methodology: {id: m}
      monitoring_period: {start: 2026-01-01, end: 2027-01-01}
      grid_ef: {country: VN, grid: national, year: 2023, kind: national}
"""


def test_wrong_baseline_is_located(tmp_path):
    path = _write(tmp_path, BASE + "      baseline: generation\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    (issue,) = exc.value.issues
    assert str(issue).startswith(f"{path}: analytics.projects[0].baseline (line 10): ")
    assert "choose one of efficiency_ratio, specific_energy" in str(issue)


def test_parameter_without_source_and_unknown_key_are_located(tmp_path):
    path = _write(tmp_path, BASE + "      parameters:\n        eta_project: {value: 0.8, unit: '-'}\n      japan_shar: 0.5\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    got = [str(i) for i in exc.value.issues]
    assert f"{path}: analytics.projects[0].parameters.eta_project.source (line 11): required key is missing" in got
    assert f"{path}: analytics.projects[0].japan_shar (line 12): unknown key (check its spelling and indentation)" in got


def test_grid_ef_needs_a_table_row_or_value_with_source(tmp_path):
    path = _write(tmp_path, BASE.replace("{country: VN, grid: national, year: 2023, kind: national}", "{value: 0.5}"))
    with pytest.raises(ConfigError, match=r"analytics.projects\[0\].grid_ef \(line 9\): .*needs a source"):
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
    assert str(issue).startswith(f"{path}: analytics.projects[0].grid_ef (line 9): ")
    assert "year=2031" in str(issue) and "years for VN/national: 2014, 2015" in str(issue)
