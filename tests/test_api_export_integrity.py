"""A truncated export never looks complete: influxd paused (SIGSTOP) or killed (SIGKILL) in the
middle of an export aborts the connection (no last chunk), and the verifier's own script
(tests/verify_export.py, no plantmrv import) says INCOMPLETE from the bytes alone; a complete
export passes it, and its hashes are the monitoring report's.

The API is served by uvicorn over a real influxd holding two days of 1 s meter readings (~13 MB
of CSV). The client reads through a socket with an 8 KiB receive buffer, so the API can only
run a little ahead of what the client has read when influxd is stopped.
"""

from __future__ import annotations

import ast
import logging
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from plantmrv.api.app import create_app
from tests import verify_export
from tests.test_api_support import END_ISO, PROJECT_ID, START_ISO, TOKENS, api_env, fresh_database, make_cfg, served, write_meter  # noqa: F401

VERIFIER = Path(__file__).with_name("verify_export.py")
EXPORT = f"/projects/{PROJECT_ID}/export?from={START_ISO}&to={END_ISO}&format=csv"


def read_http(port: int, target: str, token: str, on_first_bytes) -> tuple[bytes, bytes, bool]:
    """GET through a small-buffered socket; call ``on_first_bytes()`` once the head arrived; read to
    EOF. Returns (head, de-chunked body, whether the chunked body ended with its last chunk)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
    data = bytearray()
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    on_first_bytes()
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    body, ended = bytearray(), False
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            ended = rest.startswith(b"\r\n")
            break
        body += rest[:size]
        rest = rest[size + 2 :]
    return head, bytes(body), ended


@pytest.fixture
def meter_api(influxd_private, tmp_path):
    influx = fresh_database(influxd_private, "integrity")
    rows = write_meter(influx, step_s=1)
    cfg = make_cfg("integrity", influxd_private.url, tmp_path, limits={"influx_timeout_s": 1.5, "influx_retries": 0})
    with served(create_app(cfg)) as base:
        yield influxd_private, base, rows
    influx.close()


def _port(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def run_verifier(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", str(VERIFIER), str(path)], capture_output=True, text=True, timeout=120)


def test_export_cut_by_a_paused_influxd_is_aborted_and_detected_as_incomplete(meter_api, tmp_path, caplog):
    influxd, base, rows = meter_api
    caplog.set_level(logging.INFO, logger="plantmrv.api")
    pid = influxd.pid
    stopped = []

    def pause():
        influxd.proc.send_signal(signal.SIGSTOP)
        stopped.append(pid)

    try:
        head, body, ended = read_http(_port(base), EXPORT, TOKENS["verifier"], pause)
    finally:
        for p in stopped:
            influxd.proc.send_signal(signal.SIGCONT)
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    assert not ended, "the stream ended cleanly although influxd stopped answering half-way"
    assert b"#section,raw" in body and b"#section,trailer" not in body and 0 < body.count(b"\n") < rows
    (tmp_path / "cut.csv").write_bytes(body)
    r = run_verifier(tmp_path / "cut.csv")
    assert r.returncode == 1 and r.stdout.startswith("INCOMPLETE: the file does not end with the #end line"), r.stdout + r.stderr
    messages = [rec.getMessage() for rec in caplog.records]
    assert any("event=stream_aborted what=export danang-pumps csv" in m for m in messages), messages
    assert any("event=request who=verifier-danang" in m and "status=200" in m and "outcome=aborted" in m for m in messages), messages

    # influxd running again: the same export is complete, and holds what the report covers
    full = httpx.get(base + EXPORT, headers={"Authorization": f"Bearer {TOKENS['verifier']}"}, timeout=120)
    report = httpx.get(f"{base}/projects/{PROJECT_ID}/monitoring-report", params={"period": "monitoring"}, headers={"Authorization": f"Bearer {TOKENS['verifier']}"}, timeout=120)
    (tmp_path / "full.csv").write_bytes(full.content)
    (tmp_path / "report.json").write_text(report.text)
    r = subprocess.run([sys.executable, "-I", str(VERIFIER), str(tmp_path / "full.csv"), "--report", str(tmp_path / "report.json")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("complete "), r.stdout + r.stderr
    assert f"raw_rows={report.json()['raw_points']}" in r.stdout and f"data_sha256={report.json()['data_sha256']}" in r.stdout


def test_export_cut_by_a_killed_influxd_is_aborted_and_detected_as_incomplete(meter_api, tmp_path):
    influxd, base, rows = meter_api
    head, body, ended = read_http(_port(base), EXPORT, TOKENS["verifier"], influxd.kill)
    assert head.startswith(b"HTTP/1.1 200") and not ended
    assert b"#section,trailer" not in body
    with pytest.raises(verify_export.Incomplete):
        verify_export.check_csv(body)
    # a truncated file that happens to end on a line boundary is no better
    cut = body[: body.rfind(b"\n") + 1]
    with pytest.raises(verify_export.Incomplete):
        verify_export.check_csv(cut)


def test_any_cut_or_change_of_a_complete_export_is_detected(api_env, tmp_path):
    csv_bytes = api_env.get(f"/projects/{PROJECT_ID}/export?from={START_ISO}&to=2026-03-10T06:00:00Z").content
    assert verify_export.check_csv(csv_bytes)["raw_rows"] > 0
    for cut in (len(csv_bytes) // 2, len(csv_bytes) - len(b"#end\r\n"), len(csv_bytes) - 1):
        with pytest.raises(verify_export.Incomplete):
            verify_export.check_csv(csv_bytes[:cut])
    i = csv_bytes.index(b",danang,pump1,energy_kwh,") + 60
    tampered = csv_bytes[:i] + (b"9" if csv_bytes[i : i + 1] != b"9" else b"8") + csv_bytes[i + 1 :]
    with pytest.raises(verify_export.Incomplete, match="content_sha256"):
        verify_export.check_csv(tampered)

    xlsx = api_env.get(f"/projects/{PROJECT_ID}/export?from={START_ISO}&to=2026-03-10T06:00:00Z&format=xlsx").content
    (tmp_path / "full.xlsx").write_bytes(xlsx)
    (tmp_path / "cut.xlsx").write_bytes(xlsx[: len(xlsx) * 3 // 4])
    assert run_verifier(tmp_path / "full.xlsx").stdout.startswith("complete ")
    r = run_verifier(tmp_path / "cut.xlsx")
    assert r.returncode == 1 and r.stdout.startswith("INCOMPLETE: not a complete xlsx"), r.stdout + r.stderr


def test_verifier_script_imports_nothing_from_plantmrv():
    tree = ast.parse(VERIFIER.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"openpyxl", "__future__"}, imported


def test_xlsx_stream_is_built_before_the_response_so_a_paused_influxd_gives_503(influxd_private, tmp_path):
    influx = fresh_database(influxd_private, "xlsx_pause")
    write_meter(influx, step_s=60)
    app = create_app(make_cfg("xlsx_pause", influxd_private.url, tmp_path, limits={"influx_timeout_s": 1, "influx_retries": 0}))
    with TestClient(app) as client:
        influxd_private.proc.send_signal(signal.SIGSTOP)
        try:
            r = client.get(EXPORT.replace("format=csv", "format=xlsx"), headers={"Authorization": f"Bearer {TOKENS['verifier']}"})
        finally:
            influxd_private.proc.send_signal(signal.SIGCONT)
    assert r.status_code == 503 and r.json() == {"detail": "InfluxDB unreachable or refused the query"}
    influx.close()
