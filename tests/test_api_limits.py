"""Fair limits on a real influxd: a paused influxd (SIGSTOP) and one busy token never delay
another token's /projects; a token past its concurrency limit gets 429 with Retry-After; sizes
are counted before work starts (413); a long report stops at its deadline (504); streamed
exports hold their slot until the stream ends, and give it back when the client goes away."""

from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from plantmrv.api.app import create_app
from tests.test_api_support import END_ISO, PROJECT_ID, START_ISO, TOKENS, fresh_database, make_cfg, served, write_meter

REDUCTIONS = f"/projects/{PROJECT_ID}/reductions?from={START_ISO}&to={END_ISO}&interval=day"
REPORT = f"/projects/{PROJECT_ID}/monitoring-report?period=monitoring"
LIMITS = {"per_token_concurrency": 2, "workers": 3, "influx_timeout_s": 60, "influx_retries": 0, "health_timeout_s": 0.5, "retry_after_s": 7}


def auth(role: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture
def limited(influxd_private, tmp_path):
    influx = fresh_database(influxd_private, "limits")
    write_meter(influx, step_s=60)
    app = create_app(make_cfg("limits", influxd_private.url, tmp_path, limits=LIMITS))
    yield influxd_private, app
    influx.close()


def test_a_paused_influxd_and_a_busy_token_never_delay_another_tokens_projects(limited):
    influxd, app = limited
    with served(app) as base, ThreadPoolExecutor(max_workers=16) as pool:
        get = lambda url, role, timeout=120: httpx.get(base + url, headers=auth(role), timeout=timeout)  # noqa: E731
        light = lambda url, role: get(url, role, timeout=10)  # noqa: E731  (a regression shows as a timeout, not a hang)
        influxd.proc.send_signal(signal.SIGSTOP)
        try:
            busy = [pool.submit(get, REDUCTIONS, "verifier") for _ in range(6)]
            busy += [pool.submit(get, REPORT, "operator") for _ in range(2)] + [pool.submit(get, REDUCTIONS, "admin")]
            deadline = time.monotonic() + 30
            while sum(f.done() for f in busy) < 4:  # the verifier's 4 requests past its limit answer at once
                assert time.monotonic() < deadline, [f.done() for f in busy]
                time.sleep(0.05)
            refused = [f.result() for f in busy if f.done()]
            assert [r.status_code for r in refused] == [429] * 4
            assert refused[0].headers["retry-after"] == "7" and "per_token_concurrency" in refused[0].json()["detail"]
            # 5 requests wait on a stopped influxd (3 workers busy, 2 queued); nobody else waits for them
            assert sum(not f.done() for f in busy) == 5
            assert [p["id"] for p in light("/projects", "verifier_other").json()] == ["hcmc-vsd"]
            assert light("/projects", "verifier").status_code == 200  # the busy token itself still lists its projects
            assert light(f"/projects/{PROJECT_ID}", "operator").json()["id"] == PROJECT_ID
            assert light("/admin/tokens", "admin").status_code == 200
            assert httpx.get(f"{base}/health", timeout=10).json()["influxdb"] == "unreachable"
            assert sum(not f.done() for f in busy) == 5  # all of the above answered while those still wait
        finally:
            influxd.proc.send_signal(signal.SIGCONT)
        # influxd back: the waiting requests complete normally
        assert sorted(f.result().status_code for f in busy) == [200] * 5 + [429] * 4
        assert get(REDUCTIONS, "verifier").status_code == 200  # slots were given back


def test_xlsx_over_the_row_limit_is_refused_with_the_count_before_any_work(limited):
    _, app = limited
    app.state.config.max_xlsx_raw_rows = 100
    with TestClient(app) as client:
        r = client.get(f"/projects/{PROJECT_ID}/export?from={START_ISO}&to={END_ISO}&format=xlsx", headers=auth("verifier"))
        assert r.status_code == 413
        assert r.json()["detail"] == "up to 2,882 raw rows, more than the 100 the xlsx export allows: shorten the range or use format=csv"
        app.state.config.limits.max_export_raw_rows = 2_881
        r = client.get(f"/projects/{PROJECT_ID}/export?from={START_ISO}&to={END_ISO}", headers=auth("verifier"))
        assert r.status_code == 413 and "2,882 raw rows" in r.json()["detail"]
        app.state.config.limits.max_export_raw_rows = 2_882
        assert client.get(f"/projects/{PROJECT_ID}/export?from={START_ISO}&to={END_ISO}", headers=auth("verifier")).status_code == 200


def test_a_report_past_its_deadline_answers_504(limited):
    _, app = limited
    app.state.config.limits.request_timeout_s = 1e-9
    with TestClient(app) as client:
        r = client.get(REPORT, headers=auth("verifier"))
    assert r.status_code == 504 and "request_timeout_s" in r.json()["detail"]


def test_a_streamed_export_holds_its_slot_until_the_client_leaves(influxd_private, tmp_path):
    influx = fresh_database(influxd_private, "limits_stream")
    write_meter(influx, step_s=1)  # ~13 MB of CSV: far more than the socket buffers between the API and a stalled reader
    influx.close()
    app = create_app(make_cfg("limits_stream", influxd_private.url, tmp_path, limits=LIMITS | {"per_token_concurrency": 1}))
    export = f"{PROJECT_ID}/export?from={START_ISO}&to={END_ISO}"
    with served(app) as base:
        sock = socket.socket()  # a slow reader: small receive buffer, reads the head and stops
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        sock.sendall(f"GET /projects/{export} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKENS['verifier']}\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        r = httpx.get(base + REDUCTIONS, headers=auth("verifier"), timeout=60)
        assert r.status_code == 429
        assert httpx.get(base + REDUCTIONS, headers=auth("operator"), timeout=60).status_code == 200  # other tokens unaffected
        sock.close()
        deadline = time.monotonic() + 30
        while (status := httpx.get(base + REDUCTIONS, headers=auth("verifier"), timeout=60).status_code) == 429:
            assert time.monotonic() < deadline, "the slot of an abandoned export was never given back"
            time.sleep(0.1)
        assert status == 200
        for _ in range(3):  # complete exports give their slot back as they end
            assert httpx.get(f"{base}/projects/{export}", headers=auth("verifier"), timeout=60).status_code == 200
        assert app.state.limits._in_flight == {}
