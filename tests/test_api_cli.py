"""`plantmrv api`: the served process (uvicorn, real influxd), token management from the CLI,
the example config and the systemd unit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner

from plantmrv.app.cli import app as cli
from plantmrv.config import load_config
from plantmrv.localservices import free_port

ROOT = Path(__file__).resolve().parent.parent
PLANTMRV = str(Path(sys.executable).with_name("plantmrv"))


def write_config(tmp_path: Path, influx_url: str, database: str, port: int) -> Path:
    cfg = {
        "influxdb": {"url": influx_url, "database": database},
        "api": {
            "host": "127.0.0.1",
            "port": port,
            "projects_from": str(ROOT / "examples" / "analytics.yaml"),
            "token_store": str(tmp_path / "tokens.sqlite"),
            "log": {"level": "INFO"},
            "metrics": {"port": 0},
        },
    }
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_example_config_loads_and_reads_projects_from_the_analytics_example(monkeypatch):
    from plantmrv.api.projects import load_projects

    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("PLANTMRV_STATE", raising=False)
    cfg = load_config(ROOT / "examples" / "api.yaml")
    ids = [p.id for p in load_projects(cfg)]
    assert {"danang-pumps", "hcmc-vsd", "haiphong-ubcf"} <= set(ids)
    assert [t.role for t in cfg.api.tokens] == ["operator", "verifier"]
    assert cfg.api.token_store.parent == Path("state")  # a private directory, never /tmp (the planted token)


def test_config_errors_name_the_key_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("api:\n  port: 8000\n  tokens:\n    - name: v1\n      role: verifier\n      sha256: \"abc\"\n")
    r = CliRunner().invoke(cli, ["check-config", str(bad)])
    assert r.exit_code == 78
    assert "api.tokens[0].sha256 (line 6): String should match pattern" in r.output
    bad.write_text("api:\n  port: 8000\n  tokens:\n    - name: v1\n      role: verifier\n      sha256: \"" + "a" * 64 + "\"\n")
    r = CliRunner().invoke(cli, ["check-config", str(bad)])
    assert r.exit_code == 78
    assert "api.tokens[0] (line 4): Value error, a verifier token must list the projects it may read" in r.output


def test_api_without_config_explains_and_exits_2():
    r = CliRunner().invoke(cli, ["api"])
    assert r.exit_code == 2 and "-c/--config FILE is required" in r.output


def test_token_cli_create_list_revoke_and_the_served_api_honours_them(influx_db, tmp_path):
    port = free_port()
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, port)
    runner = CliRunner()
    r = runner.invoke(cli, ["api", "token", "create", "-c", str(cfg), "--role", "verifier", "--project", "danang-pumps", "--name", "tpe-1"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("pmrv_") and len(token) > 40
    r = runner.invoke(cli, ["api", "token", "create", "-c", str(cfg), "--role", "verifier"])
    assert r.exit_code == 1 and "needs at least one --project" in r.output
    r = runner.invoke(cli, ["api", "token", "list", "-c", str(cfg)])
    assert "tpe-1" in r.output and "danang-pumps" in r.output and token not in r.output

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([PLANTMRV, "api", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "API did not answer within 30 s"
                time.sleep(0.2)
        assert health.json()["status"] == "ok" and health.json()["projects"] >= 5
        h = {"Authorization": f"Bearer {token}"}
        assert [p["id"] for p in httpx.get(f"{base}/projects", headers=h).json()] == ["danang-pumps"]
        # no results computed in this database: every hour is a flagged gap, nothing is invented
        red = httpx.get(f"{base}/projects/danang-pumps/reductions", params={"from": "2026-03-10T00:00:00Z", "to": "2026-03-11T00:00:00Z", "interval": "period"}, headers=h).json()
        assert red["totals"]["reduction_t_co2"] is None and red["totals"]["completeness"] == 0.0 and red["gaps_total"] == 1
        assert httpx.get(f"{base}/projects/hcmc-vsd", headers=h).status_code == 403
        assert httpx.get(f"{base}/docs").status_code == 200

        r = runner.invoke(cli, ["api", "token", "revoke", "-c", str(cfg), "1"])
        assert r.exit_code == 0 and "revoked token id=1" in r.output
        assert httpx.get(f"{base}/projects", headers=h).status_code == 401  # at once, no restart
        r = runner.invoke(cli, ["api", "token", "revoke", "-c", str(cfg), "1"])
        assert r.exit_code == 1 and "already revoked" in r.output
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    logs = proc.stderr.read()
    assert "who=tpe-1 role=verifier method=GET path=/projects status=200" in logs.replace(" query=-", "")
    assert "status=401" in logs and token not in logs


def test_systemd_unit_serves_the_api_and_stops_on_config_errors():
    text = (ROOT / "deploy" / "systemd" / "plantmrv-api.service").read_text()
    assert "ExecStart=/opt/plantmrv/venv/bin/plantmrv api -c /etc/plantmrv/plantmrv.yaml" in text
    assert "User=plantmrv" in text and "Restart=on-failure" in text and "RestartPreventExitStatus=69 78" in text


def test_unusable_token_store_is_reported_with_its_path(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    cfg = tmp_path / "api.yaml"
    cfg.write_text(yaml.safe_dump({"api": {"token_store": str(blocker / "tokens.sqlite")}}))
    r = CliRunner().invoke(cli, ["api", "-c", str(cfg)])
    assert r.exit_code == 78
    assert f"token_store {blocker / 'tokens.sqlite'}: cannot create or open" in r.output
