"""The one retry policy (plantmrv.retry) and that every client uses it, in exactly one layer."""

from __future__ import annotations

import ast
import random
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path

import pytest

from plantmrv.retry import backoff_delay, parse_retry_after

ROOT = Path(__file__).resolve().parents[1]
NOW_S = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc).timestamp()


def test_ceiling_doubles_to_the_cap_with_jitter_above_the_floor():
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (200, 30.0)]:
        draws = [backoff_delay(attempt, 0.5, 30.0, rng=rng) for _ in range(2000)]
        assert min(draws) >= 0.5 and max(draws) <= ceiling, (attempt, min(draws), max(draws))
        if ceiling > 0.5:  # jitter: the draws spread over the window, not one value
            assert max(draws) - min(draws) > 0.8 * (ceiling - 0.5), (attempt, min(draws), max(draws))


def test_floor_above_cap_and_negative_attempt_stay_in_bounds():
    assert backoff_delay(0, 5.0, 1.0) == 1.0
    assert 0.2 <= backoff_delay(-3, 0.2, 10.0) <= 0.2


def test_retry_after_seconds_and_http_date_are_obeyed_up_to_the_cap():
    assert backoff_delay(5, 0.5, 30.0, "7") == 7.0
    assert backoff_delay(0, 0.5, 30.0, "120") == 30.0
    date = format_datetime(datetime.fromtimestamp(NOW_S + 12, timezone.utc), usegmt=True)
    assert backoff_delay(0, 0.5, 30.0, date, now_s=NOW_S) == pytest.approx(12.0)
    assert parse_retry_after(format_datetime(datetime.fromtimestamp(NOW_S - 60, timezone.utc), usegmt=True), NOW_S) == 0.0
    assert parse_retry_after(" 2.5 ") == 2.5 and parse_retry_after(3) == 3.0 and parse_retry_after("-4") == 0.0
    for unreadable in (None, "", "soon", "Mon, 99 Foo 2026"):
        assert parse_retry_after(unreadable, NOW_S) is None
    rng = random.Random(1)
    assert 0.5 <= backoff_delay(0, 0.5, 30.0, "soon", rng=rng) <= 0.5  # unreadable: the policy's own delay


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return names


def test_every_retrying_client_uses_the_one_policy():
    """No module keeps a backoff of its own: random waits live in plantmrv/retry.py only."""
    users = {"plantmrv/influx.py", "ingest/writer.py", "gateway/agent.py", "gateway/opcua_source.py", "gateway/mqtt_source.py",
             "gateway/modbus_source.py", "gateway/live.py"}
    for rel in users:
        assert "backoff_delay" in _calls(ROOT / rel), f"{rel} does not retry through plantmrv.retry.backoff_delay"
    for folder in ("plantmrv", "gateway", "ingest", "analytics", "dashboards", "simulators", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and any(a.name == "backoff_delay" for a in node.names):
                    assert node.module == "plantmrv.retry", f"{path}:{node.lineno}: import backoff_delay from plantmrv.retry, not {node.module}"
    own = []
    for folder in ("plantmrv", "gateway", "ingest", "analytics", "dashboards"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "plantmrv/retry.py":
                continue
            text = path.read_text()
            if "def backoff" in text or ("random.uniform" in text and "retry" in text.lower()):
                own.append(rel)
    assert not own, f"retry delays computed outside plantmrv/retry.py: {own}"


def test_ingest_writer_is_the_only_retry_layer_on_its_path():
    """ingest's writer waits out outages itself, so it must call the client without the client's retries."""
    tree = ast.parse((ROOT / "ingest/writer.py").read_text())
    writes = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "write_body"]
    assert writes, "ingest/writer.py no longer calls write_body"
    for call in writes:
        kw = {k.arg: k.value for k in call.keywords}
        assert isinstance(kw.get("retry"), ast.Constant) and kw["retry"].value is False, \
            f"ingest/writer.py:{call.lineno}: write_body without retry=False stacks the client's retries on the writer's"


def test_ingest_writer_obeys_retry_after_and_posts_once_per_attempt(caplog):
    """A server answering 503 + Retry-After twice, then 204: the writer waits what the server says
    (logged), and the server sees exactly three POSTs (the client adds no retries of its own)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from plantmrv.influx import InfluxClient
    from plantmrv.ingest.writer import ResilientWriter

    posts = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            posts.append(self.path)
            if len(posts) <= 2:
                self.send_response(503)
                self.send_header("Retry-After", "0.3")
                self.send_header("Content-Length", "0")
            else:
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = InfluxClient(f"http://127.0.0.1:{server.server_port}", "db", max_retries=5)
        writer = ResilientWriter(client, None, retry_min_s=0.01, retry_max_s=5.0)
        with caplog.at_level("WARNING", logger="plantmrv.ingest"):
            writer._post(b"m f=1 1\n", 1)
        client.close()
    finally:
        server.shutdown()
    assert len(posts) == 3 and all(p.startswith("/write?") for p in posts), posts
    waits = [r.getMessage() for r in caplog.records if "influx_write_failed" in r.getMessage()]
    assert len(waits) == 2 and all("status=503 retry_in_s=0.3" in w for w in waits), waits
