"""InfluxDB client against a real influxd: writes, chunked queries, retries across a restart, partial writes, auth."""

from __future__ import annotations

import http.server
import json
import threading
import time

import httpx
import numpy as np
import pytest

import plantmrv.influx as influx_mod
from plantmrv.batch import SampleBatch, Series
from plantmrv.influx import InfluxClient, InfluxError, PartialWriteError, quote_ident, quote_literal
from plantmrv.influxwrite import write_batch
from plantmrv.localservices import influxd_service


def pump_batch(n: int, t0: int = 1_700_000_000_000_000_000, asset: str = "P1") -> SampleBatch:
    s = Series.of("pump", "power_kw", site="danang", asset=asset)
    return SampleBatch([s], np.zeros(n), t0 + np.arange(n) * 1_000_000_000, np.arange(n) * 0.5)


def count(client: InfluxClient, measurement: str = "pump") -> int:
    res = client.query(f"SELECT count(*) FROM {quote_ident(measurement)}")
    return int(next(iter(v for k, v in res[0].columns.items() if k != "time"))[0]) if res else 0


def test_ping_reports_version(influxd):
    assert influxd.client().ping().startswith("1.")


def test_chunked_query_merges_into_numpy_columns(influx_db):
    write_batch(influx_db, pump_batch(25_000))
    res = influx_db.query("SELECT power_kw FROM pump")
    assert len(res) == 1 and len(res[0]) == 25_000
    assert res[0].columns["time"].dtype == np.int64
    assert np.array_equal(res[0].columns["power_kw"], np.arange(25_000) * 0.5)


def test_group_by_tags_gives_one_result_per_series(influx_db):
    write_batch(influx_db, SampleBatch.concat([pump_batch(10, asset="P1"), pump_batch(20, asset="P2")]))
    res = influx_db.query("SELECT count(power_kw) FROM pump GROUP BY asset")
    assert {r.tags["asset"]: int(r.columns["count"][0]) for r in res} == {"P1": 10, "P2": 20}


def test_query_error_names_the_query(influx_db):
    with pytest.raises(InfluxError, match="SELEKT"):
        influx_db.query("SELEKT * FROM pump")


def test_partial_write_names_rejected_lines_and_keeps_the_rest(influx_db):
    body = b"pump,site=a power_kw=1 1\npump,site=a power_kw=oops 2\npump,site=a power_kw=3 3\n"
    with pytest.raises(PartialWriteError) as exc:
        influx_db.write_body(body)
    assert exc.value.rejected_lines == [1] and exc.value.body_lines == 3
    assert count(influx_db) == 2


def test_missing_database_is_a_clear_error(influxd):
    with influxd.client(database="does_not_exist", max_retries=0) as c:
        with pytest.raises(InfluxError, match="does_not_exist"):
            write_batch(c, pump_batch(1))


def test_retention_policy_and_gzip_writes(influx_db):
    influx_db.create_retention_policy("two_years", "104w")
    with InfluxClient(influx_db.url, influx_db.database, retention_policy="two_years", gzip=True) as c:
        write_batch(c, pump_batch(100, t0=time.time_ns() - 86_400 * 10**9))
        assert count(c) == 100
    assert count(influx_db) == 0  # the default policy holds nothing
    with pytest.raises(ValueError, match="duration"):
        influx_db.create_retention_policy("x", "1 year; DROP")


def test_writes_survive_an_influxd_restart_mid_stream(influxd_private):
    """influxd is stopped for ~3 s during a stream of writes: every point lands once, none lost."""
    client = influxd_private.client(max_retries=50, backoff_max_s=0.5)
    client.create_database()
    batches = [pump_batch(2000, t0=1_700_000_000_000_000_000 + i * 10**13) for i in range(40)]
    done = threading.Event()
    errors = []

    def writer():
        try:
            for b in batches:
                write_batch(client, b)
                time.sleep(0.05)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.5)
    influxd_private.stop()
    time.sleep(3)
    influxd_private.start()
    t.join(120)
    assert done.is_set() and not errors
    assert client.retries > 0
    assert count(client) == 40 * 2000
    client.close()


def test_v1_user_password_auth(tmp_path):
    svc = influxd_service(tmp_path / "influxd", auth=True).start()
    try:
        # the first admin may be created without credentials
        httpx.post(f"{svc.url}/query", data={"q": "CREATE USER admin WITH PASSWORD 'pw' WITH ALL PRIVILEGES"}).raise_for_status()
        with InfluxClient(svc.url, "authdb", username="admin", password="pw") as c:
            c.create_database()
            write_batch(c, pump_batch(5))
            assert count(c) == 5
        with InfluxClient(svc.url, "authdb", username="admin", password="wrong", max_retries=0) as c:
            with pytest.raises(InfluxError, match="refused the credentials") as exc:
                write_batch(c, pump_batch(1))
            assert "wrong" not in str(exc.value)
    finally:
        svc.stop()


def test_token_auth_sends_the_v2_header():
    """InfluxDB 2.x/3.x cannot be installed here; a local HTTP server records what the client sends."""
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen["auth"] = self.headers.get("Authorization")
            seen["path"] = self.path
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with InfluxClient(f"http://127.0.0.1:{server.server_port}", "plants", retention_policy="autogen", token="tok-123") as c:
            write_batch(c, pump_batch(3))
        assert seen["auth"] == "Token tok-123"
        assert seen["path"].startswith("/write?") and "db=plants" in seen["path"] and "rp=autogen" in seen["path"] and "precision=ns" in seen["path"]
    finally:
        server.shutdown()


def test_quoting_keeps_user_input_out_of_influxql(influx_db):
    write_batch(influx_db, pump_batch(3))
    hostile = "danang' OR 1=1 --"
    res = influx_db.query(f"SELECT power_kw FROM {quote_ident('pump')} WHERE site = {quote_literal(hostile)}")
    assert res == []
    assert quote_ident('a"b') == '"a\\"b"'


def test_quoting_escapes_newlines_and_refuses_carriage_returns(influx_db):
    write_batch(influx_db, pump_batch(2))
    assert influx_db.query(f"SELECT power_kw FROM pump WHERE site = {quote_literal('a' + chr(10) + 'b')}") == []
    with pytest.raises(ValueError, match="carriage return"):
        quote_literal("a\rb")


def test_query_retries_while_influxd_is_down_and_fails_clearly_when_it_stays_down(influxd_private):
    client = influxd_private.client(max_retries=30, backoff_max_s=0.3)
    client.create_database()
    write_batch(client, pump_batch(10))
    influxd_private.stop()
    restart = threading.Timer(1.5, influxd_private.start)
    restart.start()
    assert count(client) == 10  # the query waited for the restart
    assert client.retries > 0
    restart.join()
    influxd_private.stop()
    with InfluxClient(influxd_private.url, "plantmrv", max_retries=1, backoff_max_s=0.1) as c:
        with pytest.raises(InfluxError, match="unreachable"):
            c.query("SELECT * FROM pump")
    client.close()


def test_msgpack_and_json_queries_give_identical_columns(influx_db, monkeypatch):
    """Dense float rows (numpy fast path), rows with nulls, strings, booleans, ints, several
    statements and series, across chunk boundaries: MessagePack and JSON answers decode alike."""
    t0 = 1_700_000_000_000_000_000
    lines = [f"pump,site=a,asset=P{i % 2} power_kw={i * 0.1!r},energy_kwh={1e6 + i / 3!r} {t0 + i * 10**9}" for i in range(25_000)]
    lines += [f"pump,site=a,asset=P0 running={i % 3},state=\"s{i}\",ok={'true' if i % 2 else 'false'},big={2**40 + i}i {t0 + i * 10**9}" for i in range(0, 25_000, 7)]
    lines += [f"pump,site=a,asset=P1 late={i * 0.25!r} {t0 + i * 10**9}" for i in range(20_001, 25_000, 2)]
    for i in range(0, len(lines), 5000):
        influx_db.write_body(("\n".join(lines[i : i + 5000]) + "\n").encode())
    queries = [
        "SELECT power_kw, energy_kwh FROM pump WHERE asset = 'P1'",  # every cell a float64
        "SELECT power_kw, energy_kwh, running FROM pump",  # nulls where running is absent
        "SELECT power_kw, late FROM pump WHERE asset = 'P1'",  # chunks with nulls, then chunks without
        "SELECT * FROM pump WHERE asset = 'P0' GROUP BY asset",  # strings, booleans, int64
        "SELECT count(power_kw) FROM pump GROUP BY asset; SELECT last(energy_kwh) FROM pump",
        "SELECT mean(power_kw) FROM pump WHERE time >= 1700000000000000000 AND time < 1700000100000000000 GROUP BY time(7s) fill(null)",
        "SHOW TAG VALUES FROM pump WITH KEY = asset",
    ]
    for q in queries:
        for epoch in ("ns", "ms", "s"):
            for chunk_size in (100_000, 3_000):
                got = influx_db.query(q, epoch=epoch, chunk_size=chunk_size)
                want = influx_db.query(q, epoch=epoch, fmt="json")
                assert [(r.name, r.tags, list(r.columns)) for r in got] == [(r.name, r.tags, list(r.columns)) for r in want], q
                for g, w in zip(got, want):
                    for name in w.columns:
                        assert g.columns[name].dtype == w.columns[name].dtype, (q, name)
                        if w.columns[name].dtype == object:
                            assert g.columns[name].tolist() == w.columns[name].tolist(), (q, name)
                        else:
                            assert np.array_equal(g.columns[name], w.columns[name], equal_nan=True), (q, name)
    fast = []
    decode = influx_mod._fixed_rows
    monkeypatch.setattr(influx_mod, "_fixed_rows", lambda *a: fast.append(decode(*a)) or fast[-1])
    dense = influx_db.query(queries[0], chunk_size=3_000)[0]
    assert len(dense) == 12_500 and dense.columns["time"].dtype == np.int64
    assert len(fast) == 5 and all(f is not None for f in fast)  # numpy, no Python object per value
    fast.clear()
    influx_db.query(queries[2], chunk_size=3_000)
    assert any(f is None for f in fast) and any(f is not None for f in fast)  # both decoders, one series
    assert np.array_equal(dense.columns["power_kw"], np.arange(1, 25_000, 2) * 0.1)


def test_query_errors_read_the_same_in_msgpack_and_json(influx_db):
    for fmt in ("msgpack", "json"):
        with pytest.raises(InfluxError, match="400: error parsing query: found SELEKT"):
            influx_db.query("SELEKT * FROM pump", fmt=fmt)
        with pytest.raises(InfluxError, match="fill\\(none\\) must be used with a function"):
            influx_db.query("SELECT power_kw FROM pump GROUP BY time(1h) fill(none)", fmt=fmt)
        with InfluxClient(influx_db.url, "does_not_exist") as c:
            with pytest.raises(InfluxError, match="database not found: does_not_exist"):
                c.query("SELECT * FROM pump", fmt=fmt)


def test_query_asks_for_uncompressed_msgpack_and_reads_a_json_answer():
    """A server that ignores ``Accept`` (InfluxDB 3's v1 API answers JSON) is read as JSON; the
    answer is asked uncompressed unless ``gzip`` is set (gzip costs influxd 1.x ~2x CPU)."""
    seen = []
    doc = {"results": [{"statement_id": 0, "series": [{"name": "pump", "columns": ["time", "power_kw"], "values": [[1, 0.5], [2, None]]}]}]}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.headers.get("Accept"), self.headers.get("Accept-Encoding")))
            body = json.dumps(doc).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for gzip in (False, True):
            with InfluxClient(f"http://127.0.0.1:{server.server_port}", "plants", gzip=gzip) as c:
                (res,) = c.query("SELECT power_kw FROM pump")
            assert res.columns["time"].tolist() == [1, 2]
            assert np.array_equal(res.columns["power_kw"], [0.5, np.nan], equal_nan=True)
        assert seen == [("application/x-msgpack", "identity"), ("application/x-msgpack", "gzip")]
    finally:
        server.shutdown()
