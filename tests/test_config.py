"""Config loading: every error path names file, key path and YAML line; secrets never printed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plantmrv.config import ConfigError, InfluxConfig, load_config


def write(tmp_path: Path, text: str, name: str = "plant.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def issues_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return [str(i) for i in exc.value.issues]


def test_valid_config_loads_with_defaults(tmp_path):
    path = write(
        tmp_path,
        """
        site: {id: danang, country: VN}
        influxdb:
          url: http://127.0.0.1:8086
          database: plantmrv
        mqtt:
          url: mqtt://broker.local:1884
        """,
    )
    cfg = load_config(path)
    assert cfg.site.id == "danang"
    assert cfg.influxdb.batch_lines == 5000
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("broker.local", 1884)


def test_unknown_key_is_located(tmp_path):
    path = write(
        tmp_path,
        """
        influxdb:
          url: http://x:8086
          databse: typo
        """,
    )
    assert issues_of(path) == [f"{path}: influxdb.databse (line 3): unknown key (check its spelling and indentation)"]


def test_wrong_type_and_range_are_located(tmp_path):
    path = write(
        tmp_path,
        """
        influxdb:
          timeout_s: fast
          batch_lines: 9000
        """,
    )
    got = issues_of(path)
    assert got[0].startswith(f"{path}: influxdb.timeout_s (line 2): ")
    assert got[1] == f"{path}: influxdb.batch_lines (line 3): Input should be less than or equal to 5000"


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "influxdb:\n  url: [unclosed\n  database: x\n")
    (issue,) = issues_of(path)
    assert issue.startswith(f"{path}: <root> (line ") and "invalid YAML" in issue


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, "influxdb:\n  database: a\n  database: b\n")
    assert issues_of(path) == [f"{path}: influxdb.database (line 3): duplicate key 'database'"]


def test_missing_environment_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("PLANTMRV_TEST_TOKEN", raising=False)
    path = write(tmp_path, "influxdb:\n  token: ${PLANTMRV_TEST_TOKEN}\n")
    assert issues_of(path) == [f"{path}: influxdb.token (line 2): environment variable PLANTMRV_TEST_TOKEN is not set"]


def test_environment_substitution_with_default_and_secret_hidden(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANTMRV_TEST_TOKEN", "s3cr3t-token")
    path = write(tmp_path, "influxdb:\n  token: ${PLANTMRV_TEST_TOKEN}\n  database: ${PLANTMRV_DB:-plants}\n")
    cfg = load_config(path)
    assert cfg.influxdb.token.get_secret_value() == "s3cr3t-token"
    assert cfg.influxdb.database == "plants"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg.model_dump())


def test_model_level_error_is_located_at_its_section(tmp_path):
    path = write(tmp_path, "influxdb:\n  username: admin\n")
    (issue,) = issues_of(path)
    assert issue == f"{path}: influxdb (line 1): Value error, username and password go together"


def test_bad_mqtt_url(tmp_path):
    path = write(tmp_path, "mqtt:\n  url: http://broker\n")
    (issue,) = issues_of(path)
    assert issue.startswith(f"{path}: mqtt.url (line 2): ") and "mqtt://host:port" in issue


def test_top_level_must_be_a_mapping_and_missing_file(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    assert issues_of(path) == [f"{path}: <root> (line 1): top level must be a mapping of sections"]
    missing = tmp_path / "nope.yaml"
    assert issues_of(missing) == [f"{missing}: <root>: file not found"]


def test_unknown_section_is_named(tmp_path):
    path = write(tmp_path, "influxdb: {}\ngatway: {}\n")
    assert issues_of(path) == [f"{path}: gatway (line 2): unknown key (check its spelling and indentation)"]


def test_an_empty_file_is_refused_naming_the_sections_it_could_hold(tmp_path):
    for text in ("", "# only a comment\n", "{}\n"):
        path = write(tmp_path, text)
        with pytest.raises(ConfigError) as exc:
            load_config(path)
        assert str(exc.value) == f"{path}: <root>: the file holds no section; expected one or more of site, influxdb, mqtt, gateway, ingest, analytics, api, dashboards"
        proc = run_cli("check-config", str(path))
        assert proc.returncode == 78 and "holds no section" in proc.stderr


def test_a_file_with_only_defaults_is_valid(tmp_path):
    path = write(tmp_path, "influxdb: {}\n")
    assert load_config(path).influxdb == InfluxConfig()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plantmrv", *args], capture_output=True, text=True, timeout=120)


def test_check_config_cli_reports_errors_and_exit_code(tmp_path, monkeypatch):
    bad = write(tmp_path, "influxdb:\n  password: hunter2-secret\n  batch_lines: 0\n", "bad.yaml")
    proc = run_cli("check-config", str(bad))
    assert proc.returncode == 78
    assert f"{bad}: influxdb.batch_lines (line 3): Input should be greater than or equal to 1" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    bad = write(tmp_path, "influxdb:\n  password: hunter2-secret\n", "bad2.yaml")
    proc = run_cli("check-config", str(bad))
    assert proc.returncode == 78
    assert f"{bad}: influxdb (line 1): Value error, username and password go together" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    good = write(tmp_path, "site: {id: hcmc}\n", "good.yaml")
    proc = run_cli("check-config", str(good))
    assert proc.returncode == 0 and proc.stdout.strip() == f"{good}: OK (sections: site, influxdb)"
    proc = run_cli("check-config", str(good), "--section", "gateway")
    assert proc.returncode == 78 and f"{good}: gateway: section 'gateway' is required" in proc.stderr


def test_union_member_names_do_not_appear_in_key_paths(tmp_path):
    path = write(
        tmp_path,
        """
        site: {id: s}
        mqtt: {url: "mqtt://127.0.0.1:1883"}
        gateway:
          id: gw
          sources:
            - type: opcua
              name: plc
              url: 42
              groups: []
          sink: {type: mqtt}
        """,
    )
    got = issues_of(path)
    assert any(i.startswith(f"{path}: gateway.sources[0].url (line 8): ") for i in got), got
    assert not any("opcua" in i.split(":")[1] for i in got), got


def test_check_config_runs_cross_section_checks(tmp_path):
    path = write(
        tmp_path,
        """
        site: {id: s}
        gateway:
          id: gw
          sources:
            - {type: opcua, name: plc, url: "opc.tcp://127.0.0.1:4840", groups: [{name: g, measurement: pump, asset: P1, nodes: [{field: power_kw, node_id: "ns=2;s=x"}]}]}
          sink: {type: mqtt}
        """,
    )
    got = issues_of(path)
    assert got == [f"{path}: mqtt: sink type mqtt needs the top-level `mqtt:` section"], got


def test_a_secret_comes_from_the_file_that_var_file_names(tmp_path, monkeypatch):
    secret = tmp_path / "influx_token"
    secret.write_text("s3cret-token\n")
    path = write(tmp_path, "influxdb:\n  token: ${PMRV_T_TOKEN}\n")
    monkeypatch.delenv("PMRV_T_TOKEN", raising=False)
    monkeypatch.setenv("PMRV_T_TOKEN_FILE", str(secret))
    assert load_config(path).influxdb.token.get_secret_value() == "s3cret-token"
    monkeypatch.setenv("PMRV_T_TOKEN", "from-env")  # the variable itself wins
    assert load_config(path).influxdb.token.get_secret_value() == "from-env"
    monkeypatch.delenv("PMRV_T_TOKEN")
    monkeypatch.setenv("PMRV_T_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: influxdb.token (line 2): environment variable PMRV_T_TOKEN_FILE: cannot read {tmp_path / 'missing'}: No such file or directory"
