"""Deployment kit: Docker cannot run here, so the compose file's syntax and references are checked."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# created by the operator before `docker compose up`, each by the step the README names
OPERATOR_CREATED = {"mosquitto/passwd": "mosquitto_passwd", "mosquitto/certs": "make-certs.sh", "mosquitto/certs/ca.crt": "make-certs.sh"}
SECRETS_DIR = "secrets"  # deploy/make-secrets.sh


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_services_and_dependencies_are_consistent():
    doc = compose()
    services = doc["services"]
    assert {"influxdb", "influxdb-tokens", "mosquitto", "grafana", "ingest", "analytics", "api"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith((".", "/")):
                continue
            assert source in doc["volumes"], f"{name}: named volume {source} is not declared"
        for secret in svc.get("secrets", []):
            assert secret in doc["secrets"], f"{name}: secret {secret} is not declared"
    assert services["influxdb"]["image"].startswith("influxdb:2"), "the stack runs InfluxDB 2.x"


def test_every_image_is_pinned_to_an_exact_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, svc in compose()["services"].items():
        image = svc["image"]
        repo, _, tag = image.partition(":")
        assert tag and "@sha256:" not in repo, f"{name}: {image} has no tag"
        if repo == "plantmrv":
            assert tag == version, f"{name}: the plantmrv image is tagged {tag}, pyproject says {version}"
        else:  # major.minor.patch, never latest or a floating major/minor
            assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not an exact version"
    base = re.search(r"^FROM (\S+)", (DEPLOY / "Dockerfile").read_text(), re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base


def test_every_service_has_a_healthcheck_and_starts_after_what_it_needs_is_healthy():
    services = compose()["services"]
    one_shot = {n for n, s in services.items() if s.get("restart") == "no"}
    assert one_shot == {"influxdb-tokens"}
    for name, svc in services.items():
        if name not in one_shot:
            test = svc.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must name a condition per service"
        for dep, cond in deps.items():
            want = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert cond == {"condition": want}, f"{name} -> {dep}: {cond}"
    for name in ("ingest", "analytics", "api"):
        assert services[name]["healthcheck"]["test"][:2] == ["CMD", "plantmrv"]  # the image has no curl
        assert "influxdb" in services[name]["depends_on"]
    assert "mosquitto" in services["ingest"]["depends_on"]


def test_secrets_are_files_and_no_secret_is_in_the_environment():
    doc = compose()
    for name, spec in doc["secrets"].items():
        assert spec == {"file": f"./secrets/{name}"}, name
        assert name in (DEPLOY / "make-secrets.sh").read_text(), f"make-secrets.sh does not make {name}"
    for name, svc in doc["services"].items():
        env = svc.get("environment", {})
        for key, value in env.items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert key.endswith("_FILE") and str(value).startswith("/run/"), f"{name}: {key}={value} is a secret in the environment"
    env_example = (DEPLOY / ".env.example").read_text()
    assert not re.search(r"^\w*(PASSWORD|TOKEN)\w*=", env_example, re.M)
    ignored = (ROOT / ".gitignore").read_text() + (ROOT / ".dockerignore").read_text()
    assert "deploy/secrets" in ignored


def test_services_use_least_privilege_influxdb_tokens():
    services = compose()["services"]
    token = {n: s.get("environment", {}).get("INFLUX_TOKEN_FILE") for n, s in services.items()}
    assert token["ingest"] == token["analytics"] == "/run/influx-tokens/writer.token"
    assert token["api"] == "/run/influx-tokens/reader.token"
    datasource = (ROOT / "dashboards" / "provisioning" / "datasources" / "plantmrv-influxdb.yaml").read_text()
    assert "$__file{/run/influx-tokens/reader.token}" in datasource
    script = (DEPLOY / "influxdb" / "make-tokens.sh").read_text()
    assert re.search(r"make_token writer\.token .* --read-bucket \S+ --write-bucket \S+$", script, re.M)
    assert re.search(r"make_token reader\.token .* --read-bucket \S+$", script, re.M)
    admin = {n for n, s in services.items() if "influx_admin_token" in s.get("secrets", [])}
    assert admin == {"influxdb", "influxdb-tokens"}, "only InfluxDB's setup sees the operator token"
    for name in ("ingest", "analytics", "api", "grafana"):
        assert "influx-tokens:/run/influx-tokens:ro" in services[name]["volumes"], name


def test_only_the_broker_listens_beyond_this_host():
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            if name == "mosquitto":
                assert port == "8883:8883"  # TLS with a password per client
            else:
                assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_dockerignore_keeps_the_venv_and_secrets_out_of_the_build_context():
    lines = set((ROOT / ".dockerignore").read_text().split())
    assert {"**/.venv", ".git", "deploy/secrets", "deploy/mosquitto/certs"} <= lines


def test_every_file_the_compose_file_mounts_exists_or_is_made_by_a_documented_step():
    readme = (ROOT / "README.md").read_text()
    for svc in compose()["services"].values():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if not source.startswith("."):
                continue
            rel = (DEPLOY / source).resolve().relative_to(DEPLOY.resolve().parent)
            rel_to_deploy = str((DEPLOY / source).resolve()).replace(str(DEPLOY.resolve()) + "/", "")
            if rel_to_deploy in OPERATOR_CREATED:
                assert OPERATOR_CREATED[rel_to_deploy] in readme, f"README must say how to create deploy/{rel_to_deploy}"
                continue
            assert (ROOT / rel).exists(), f"compose mounts {source}, which does not exist"
    build = compose()["services"]["ingest"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).exists()


def test_dockerfile_copies_every_package_folder():
    text = (DEPLOY / "Dockerfile").read_text()
    for folder in ("plantmrv", "gateway", "ingest", "analytics", "dashboards", "simulators"):
        assert re.search(rf"^COPY {folder} ", text, re.M), folder


def test_compose_commands_are_real_cli_commands():
    from typer.main import get_command

    from plantmrv.app.cli import app

    cli = get_command(app)
    for name, svc in compose()["services"].items():
        command = svc.get("command")
        if not command:
            continue
        group = cli.commands.get(command[0])
        assert group is not None, f"{name}: plantmrv has no command {command[0]!r}"
        if len(command) > 1 and not command[1].startswith("-"):
            assert command[1] in getattr(group, "commands", {}), f"{name}: plantmrv {command[0]} has no {command[1]!r}"


UNITS = sorted((DEPLOY / "systemd").glob("plantmrv-*.service"))
HARDENING = DEPLOY / "systemd" / "plantmrv-.service.d" / "hardening.conf"


def test_systemd_units_are_notify_daemons_that_stop_on_config_errors():
    assert {u.stem for u in UNITS} == {"plantmrv-gateway", "plantmrv-ingest", "plantmrv-analytics", "plantmrv-api"}
    for unit in UNITS:
        text = unit.read_text()
        for line in ("Type=notify", "NotifyAccess=main", "User=plantmrv", "StateDirectory=plantmrv", "ConfigurationDirectory=plantmrv",
                     "WorkingDirectory=/var/lib/plantmrv", "Restart=on-failure", "RestartPreventExitStatus=69 78"):
            assert re.search(rf"^{re.escape(line)}$", text, re.M), f"{unit.name}: no {line}"
        assert re.search(r"^WatchdogSec=\d+$", text, re.M), unit.name
        assert re.search(r"^ExecStart=/opt/plantmrv/venv/bin/plantmrv \w+", text, re.M), unit.name
        assert "ExecStartPre" not in text  # a failing ExecStartPre would restart forever: the service exits 78 itself


def test_systemd_units_score_2_or_better_in_systemd_analyze_security(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian package systemd)"
    system = tmp_path / "etc" / "systemd" / "system"
    (system / HARDENING.parent.name).mkdir(parents=True)
    shutil.copy(HARDENING, system / HARDENING.parent.name)
    for unit in UNITS:
        shutil.copy(unit, system)
    for unit in UNITS:
        proc = subprocess.run([analyze, "security", "--offline=yes", f"--root={tmp_path}", "--no-pager", "--threshold=20", unit.name],
                              capture_output=True, text=True, timeout=60)
        score = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
        assert score, proc.stdout + proc.stderr
        assert proc.returncode == 0 and float(score.group(1)) <= 2.0, f"{unit.name}: {score.group(0)}\n{proc.stdout}"


def test_mosquitto_config_requires_auth_and_tls():
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in text and "password_file" in text and "certfile" in text


def test_the_stack_configs_are_valid_with_secrets_from_files(monkeypatch, tmp_path):
    from plantmrv.config import load_config

    (tmp_path / "token").write_text("t\n")
    (tmp_path / "password").write_text("p\n")
    monkeypatch.delenv("INFLUX_TOKEN", raising=False)
    monkeypatch.delenv("MQTT_PASSWORD", raising=False)
    monkeypatch.setenv("INFLUX_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("MQTT_PASSWORD_FILE", str(tmp_path / "password"))
    ingest = load_config(DEPLOY / "config" / "ingest.yaml")
    assert ingest.mqtt.password.get_secret_value() == "p" and ingest.influxdb.token.get_secret_value() == "t"
    assert ingest.ingest.metrics.port == 9109
    cfg = load_config(DEPLOY / "config" / "plantmrv.yaml")
    assert cfg.mqtt is None  # analytics and the API never hold the broker's password
    assert cfg.api.host == "0.0.0.0" and cfg.influxdb.url == "http://influxdb:8086"
    assert (cfg.analytics.metrics.port, cfg.api.metrics.port) == (9110, 9111)
    services = compose()["services"]
    for name, port in (("ingest", 9109), ("analytics", 9110), ("api", 9111)):
        assert f"http://127.0.0.1:{port}/readyz" in services[name]["healthcheck"]["test"]
    assert {p.id for p in cfg.analytics.projects} >= {"danang-pumps", "hcmc-vsd", "haiphong-ubcf", "yangon-wte", "binhduong-pv"}
