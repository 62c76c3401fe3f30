"""Deployment kit: Docker cannot run here, so the compose file's syntax and references are checked."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
# created by the operator before `docker compose up`, each by the step the README names
OPERATOR_CREATED = {"mosquitto/passwd": "mosquitto_passwd", "mosquitto/certs": "make-certs.sh", "mosquitto/certs/ca.crt": "make-certs.sh"}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_services_and_dependencies_are_consistent():
    doc = compose()
    services = doc["services"]
    assert {"influxdb", "mosquitto", "grafana", "ingest", "analytics", "api"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith((".", "/")):
                continue
            assert source in doc["volumes"], f"{name}: named volume {source} is not declared"
    assert services["influxdb"]["image"].startswith("influxdb:2"), "the stack runs InfluxDB 2.x"


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

    from plantmrv.cli import app

    cli = get_command(app)
    for name, svc in compose()["services"].items():
        command = svc.get("command")
        if not command:
            continue
        group = cli.commands.get(command[0])
        assert group is not None, f"{name}: plantmrv has no command {command[0]!r}"
        if len(command) > 1 and not command[1].startswith("-"):
            assert command[1] in getattr(group, "commands", {}), f"{name}: plantmrv {command[0]} has no {command[1]!r}"


def test_systemd_units_run_real_commands_as_their_own_user():
    units = sorted((DEPLOY / "systemd").glob("plantmrv-*.service"))
    assert {u.stem for u in units} >= {"plantmrv-analytics"}
    for unit in units:
        text = unit.read_text()
        assert re.search(r"^User=plantmrv$", text, re.M), unit
        assert re.search(r"^Restart=always$", text, re.M), unit
        assert re.search(r"^ExecStart=\S*plantmrv \w+", text, re.M), unit


def test_mosquitto_config_requires_auth_and_tls():
    text = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in text and "password_file" in text and "certfile" in text


def test_the_stack_config_is_valid(monkeypatch):
    from plantmrv.config import load_config

    monkeypatch.setenv("INFLUX_TOKEN", "t")
    monkeypatch.setenv("MQTT_PASSWORD", "p")
    cfg = load_config(DEPLOY / "config" / "plantmrv.yaml")
    assert cfg.api.host == "0.0.0.0" and cfg.influxdb.url == "http://influxdb:8086"
    assert {p.id for p in cfg.analytics.projects} >= {"danang-pumps", "hcmc-vsd", "haiphong-ubcf", "yangon-wte", "binhduong-pv"}
