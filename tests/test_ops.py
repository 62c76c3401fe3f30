"""What operators scrape and what systemd hears: /metrics, /healthz, /readyz, sd_notify, exit codes."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import generate_latest

from plantmrv import exitcodes, sdnotify
from plantmrv.analytics.metrics import AnalyticsMetrics
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.ingest.metrics import IngestMetrics
from plantmrv.localservices import free_port
from plantmrv.ops import CachedProbe, Health, OpsServer, new_registry
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
PLANTMRV = str(Path(sys.executable).with_name("plantmrv"))


def _populated_registries():
    g = GatewayMetrics(buffer_cap_bytes=1000)
    g.source_read("plc1", 3)
    g.buffered(3)
    g.sent("mqtt", 3)
    g.dropped("buffer_full", 1)
    g.source_error("plc1", "connection")
    g.source_reconnect("plc1")
    g.source_connected("plc1", True)
    g.source_backfilled("plc1", 2)
    g.sink_failed("mqtt")
    g.sink_connected("mqtt", True)
    g.sink_reconnect("mqtt")
    g.buffer_state(3, 100)
    i = IngestMetrics()
    i.messages_in.labels(kind="batch").inc()
    i.samples_rejected.labels(reason="unknown_field").inc()
    i.messages_rejected.labels(reason="unknown_field").inc()
    i.influx_errors.labels(kind="500").inc()
    i.write_seconds.observe(0.1)
    i.batch_lines.observe(10)
    a = AnalyticsMetrics()
    a.watermark("danang-pumps", 1_790_000_000 * 10**9, 12.5)
    a.intervals_written("danang-pumps", "1h", True, 2)
    a.poll_ok()
    return {"gateway": g.registry, "ingest": i.registry, "analytics": a.registry, "api": new_registry("api")}


@pytest.mark.parametrize("service", ["gateway", "ingest", "analytics", "api"])
def test_every_service_exposes_build_info_process_metrics_and_no_created_series(service):
    text = generate_latest(_populated_registries()[service]).decode()
    assert f'service="{service}"' in text and "plantmrv_build_info{" in text
    assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text and "python_info" in text
    assert "_created" not in text


@pytest.mark.parametrize("service", ["gateway", "ingest", "analytics", "api"])
def test_metric_names_pass_promtool(service, tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (scripts/ensure-services.sh does)"
    page = generate_latest(_populated_registries()[service])
    proc = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (proc.stdout + proc.stderr).decode()


def test_healthz_readyz_and_metrics_are_separate_endpoints():
    health = Health(stall_after_s=30)
    state = {"up": False}
    health.add_check("broker", lambda: (state["up"], "connected" if state["up"] else "127.0.0.1:1 not connected"))
    server = OpsServer(new_registry("test"), health)
    port = server.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        live = httpx.get(f"{base}/healthz")
        assert live.status_code == 200 and live.text == "ok\n"
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 503 and ready.text == "fail broker: 127.0.0.1:1 not connected\n"
        state["up"] = True
        assert httpx.get(f"{base}/readyz").text == "ok broker: connected\n"
        metrics = httpx.get(f"{base}/metrics")
        assert metrics.status_code == 200 and "plantmrv_build_info" in metrics.text
        assert httpx.get(f"{base}/").status_code == 404 and httpx.get(f"{base}/metricsx").status_code == 404
        health._beat -= 31  # the main loop has not beaten for 31 s
        stalled = httpx.get(f"{base}/healthz")
        assert stalled.status_code == 503 and "no heartbeat for 31 s" in stalled.text
    finally:
        server.close()


def test_a_gateway_is_not_ready_without_its_sink_or_with_a_nearly_full_buffer():
    g = GatewayMetrics(buffer_cap_bytes=1000)
    history = "ok history: every tag's server keeps history (or none was checked yet)"
    assert g.health.ready() == (False, ["fail sink: sink not connected yet", "ok buffer: 0 of 1000 bytes (0%)", history])
    g.sink_connected("mqtt", True)
    g.buffer_state(5, 950)
    assert g.health.ready() == (False, ["ok sink: connected", "fail buffer: 950 of 1000 bytes (95%)", history])
    g.buffer_state(5, 100)
    assert g.health.ready()[0]
    g.nodes_without_history("plc", {"ns=2;s=T0": "pump,asset=P1 t0_kw"})  # named, and no reason not to be ready
    assert g.health.ready() == (True, ["ok sink: connected", "ok buffer: 100 of 1000 bytes (10%)", "ok history: plc: 1 tags "
                                       "without history (ns=2;s=T0): an outage beyond the server's queues is a permanent gap there"])


def test_a_cached_probe_asks_the_server_at_most_once_per_ttl():
    calls = []

    def probe():
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("refused")

    check = CachedProbe(probe, "answers", ttl_s=60)
    assert check() == (True, "answers") and check() == (True, "answers") and len(calls) == 1
    check.ttl_s = 0
    assert check() == (False, "ConnectionError: refused")


def _notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    return sock


def _received(sock: socket.socket, until: str, timeout_s: float) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
        if any(until in m for m in got):
            break
    return got


def test_sd_notify_speaks_systemd_s_datagram_protocol(tmp_path, monkeypatch):
    sock = _notify_socket(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.ready("listening") and sock.recv(4096) == b"READY=1\nSTATUS=listening"
    dog = sdnotify.Watchdog()
    assert dog.interval_s == 4.0
    dog.ping()
    dog.ping()  # within a quarter of the period: not sent again
    assert sock.recv(4096) == b"WATCHDOG=1"
    with pytest.raises(TimeoutError):
        sock.recv(4096)
    monkeypatch.setenv("WATCHDOG_PID", "1")  # the watchdog belongs to another process
    assert sdnotify.Watchdog().interval_s is None
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sdnotify.ready() is False  # outside systemd: a no-op


def _analytics_config(tmp_path: Path, influx_url: str, database: str, metrics_port: int) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "analytics.yaml").read_text())
    doc["influxdb"] = {"url": influx_url, "database": database}
    doc["analytics"]["metrics"] = {"host": "127.0.0.1", "port": metrics_port}
    doc["analytics"]["poll_s"] = 0.5
    path = tmp_path / "analytics.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_analytics_run_serves_metrics_health_and_readiness_and_tells_systemd(tmp_path, influx_db):
    port = free_port()
    cfg = _analytics_config(tmp_path, influx_db.url, influx_db.database, port)
    sock = _notify_socket(tmp_path)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen([PLANTMRV, "analytics", "run", "-c", str(cfg), "--log-format", "json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        messages = _received(sock, "WATCHDOG=1", 30)
        assert any(m.startswith("READY=1") for m in messages) and "WATCHDOG=1" in messages, messages
        base = f"http://127.0.0.1:{port}"
        ready = wait_for(lambda: _get(f"{base}/readyz"), 15, "analytics /readyz")
        assert ready.status_code == 200 and "ok influxdb:" in ready.text, ready.text
        assert _get(f"{base}/healthz").status_code == 200
        polls = wait_for(lambda: re.search(r'^plantmrv_analytics_polls_total\{result="ok"\} ([1-9][0-9.]*)$', _get(f"{base}/metrics").text, re.M),
                         20, "a poll that worked, counted")
        assert float(polls.group(1)) >= 1
        metrics = _get(f"{base}/metrics").text
        assert 'plantmrv_build_info{python=' in metrics and 'service="analytics"' in metrics and "process_cpu_seconds_total" in metrics
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    import json

    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert any(r.get("event") == "metrics_listening" and r.get("port") == port for r in lines), err


def _get(url: str):
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


def test_ingest_logs_an_unreachable_broker_once_and_is_not_ready(tmp_path, influx_db):
    port, dead_broker = free_port(), free_port()
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(yaml.safe_dump({
        "influxdb": {"url": influx_db.url, "database": influx_db.database},
        "mqtt": {"url": f"mqtt://127.0.0.1:{dead_broker}", "client_id": "ops-test"},
        "ingest": {"dead_letters": {"path": str(tmp_path / "dl.db")}, "metrics": {"host": "127.0.0.1", "port": port}},
    }))
    proc = subprocess.Popen([PLANTMRV, "ingest", "run", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        ready = wait_for(lambda: _get(f"{base}/readyz"), 15, "ingest /readyz")
        time.sleep(3)  # paho retries the connection meanwhile
        ready = _get(f"{base}/readyz")
        assert ready.status_code == 503 and f"fail broker: 127.0.0.1:{dead_broker} not connected" in ready.text, ready.text
        assert "ok influxdb:" in ready.text and "ok inflight:" in ready.text
        assert _get(f"{base}/healthz").status_code == 200
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    unreachable = [line for line in err.splitlines() if "event=broker_unreachable" in line]
    assert len(unreachable) == 1 and "level=warning" in unreachable[0] and f"broker=127.0.0.1:{dead_broker}" in unreachable[0], err


def test_exit_codes_are_the_documented_ones():
    doc = (ROOT / "docs" / "operations.md").read_text()
    for name, code in (("OK", 0), ("RUNTIME", 1), ("USAGE", 2), ("UNAVAILABLE", 69), ("CONFIG", 78)):
        assert getattr(exitcodes, name) == code
        assert f"| {code} |" in doc, f"docs/operations.md lists no exit code {code}"
    for unit in (ROOT / "deploy" / "systemd").glob("plantmrv-*.service"):
        assert "RestartPreventExitStatus=69 78" in unit.read_text(), unit


def test_healthcheck_command_follows_readyz(tmp_path):
    health = Health()
    state = {"up": True}
    health.add_check("influxdb", lambda: (state["up"], "http://influxdb:8086 answers" if state["up"] else "refused"))
    server = OpsServer(new_registry("test"), health)
    port = server.start("127.0.0.1", 0)
    try:
        ok = subprocess.run([PLANTMRV, "healthcheck", f"http://127.0.0.1:{port}/readyz"], capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and ok.stdout == "ok influxdb: http://influxdb:8086 answers\n"
        state["up"] = False
        bad = subprocess.run([PLANTMRV, "healthcheck", f"http://127.0.0.1:{port}/readyz"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and bad.stderr == f"http://127.0.0.1:{port}/readyz: HTTP 503: fail influxdb: refused\n"
    finally:
        server.close()
    gone = subprocess.run([PLANTMRV, "healthcheck", f"http://127.0.0.1:{port}/readyz"], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 1 and "Connection refused" in gone.stderr


def test_simulate_tells_a_config_error_from_a_usage_error(tmp_path):
    bad = tmp_path / "sim.yaml"
    bad.write_text("plants:\n  - {type: pump, bogus: 1}\n")
    proc = subprocess.run([PLANTMRV, "simulate", "--config", str(bad), "--duration", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.CONFIG and f"{bad}: plants[0].bogus" in proc.stderr, proc.stderr
    proc = subprocess.run([PLANTMRV, "simulate", "--plants", "pump,nope", "--duration", "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == exitcodes.USAGE and "unknown plant type 'nope'" in proc.stderr, proc.stderr
    check = subprocess.run([PLANTMRV, "check-config", str(bad)], capture_output=True, text=True, timeout=60)
    assert check.returncode == exitcodes.CONFIG and f"{bad}: plants[0].bogus" in check.stderr


def test_version_option_and_shell_completion():
    import plantmrv

    proc = subprocess.run([PLANTMRV, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == f"plantmrv {plantmrv.__version__}\n"
    proc = subprocess.run([PLANTMRV, "--show-completion", "bash"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "_plantmrv_completion" in proc.stdout and "complete " in proc.stdout, (proc.returncode, proc.stdout[-500:], proc.stderr[-1500:])


def test_a_gateway_whose_broker_is_unreachable_says_so_once_and_is_not_ready(tmp_path):
    metrics_port, dead = free_port(), free_port()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(f"""
site: {{id: s1}}
mqtt: {{url: "mqtt://127.0.0.1:{dead}", client_id: ops-gw}}
gateway:
  id: g1
  sources:
    - type: mqtt
      name: devices
      broker: {{url: "mqtt://127.0.0.1:{dead}", client_id: ops-gw-src}}
      mappings: [{{topic: d/+, measurement: pv, tags: {{asset: "{{topic[1]}}"}}, fields: {{ac_power_kw: p}}}}]
  buffer: {{path: buffer.db}}
  health: {{metrics_port: {metrics_port}, sample_interval_s: null}}
""")
    proc = subprocess.Popen([PLANTMRV, "gateway", "run", "-c", str(cfg)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{metrics_port}"
        ready = wait_for(lambda: (r := _get(f"{base}/readyz")) is not None and "disconnected" in r.text and r, 20, "gateway /readyz")
        assert ready.status_code == 503 and "fail sink: sink:mqtt disconnected" in ready.text, ready.text
        time.sleep(2.5)  # paho retries meanwhile
        assert _get(f"{base}/healthz").status_code == 200
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    unreachable = [line for line in err.splitlines() if "event=mqtt_sink_unreachable" in line]
    assert len(unreachable) == 1 and "level=warning" in unreachable[0], err
