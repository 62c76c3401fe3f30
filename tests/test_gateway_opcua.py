"""Gateway against a real asyncua server and real influxd: kill -9, server restart, network cut
recovered by subscription transfer, HistoryRead backfill, OperationLimits, security, browse."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.test_gateway_support import (  # noqa: F401  (gateways is a fixture)
    gateways,
    opcua_gateway_yaml as _opcua_yaml,
    running_opcua_server,
    REPO,
    GatewayProcess,
    OpcUaServer,
    TcpProxy,
    assert_contiguous,
    buffer_samples,
    free_port,
    influx_keys,
    influx_points,
    metrics_value,
    wait_for,
    write_gateway_config,
)

PERIOD_S = 0.1


@pytest.fixture
def opcua_server(tmp_path):
    yield from running_opcua_server(tmp_path, tags=12, period_s=PERIOD_S, history=True)


@pytest.fixture
def opcua_server_without_history(tmp_path):
    yield from running_opcua_server(tmp_path, tags=6, period_s=PERIOD_S, history=False)


def _streaming(tmp_path, url: str, tags: int, influxd, influx_db, gateways, sent: int = 30):
    """A gateway (direct to InfluxDB, metrics on) reading T0..T<tags-1> from ``url``, once it has sent ``sent`` samples."""
    port = free_port()
    cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=url, tags=tags, period_ms=PERIOD_S * 1000,
                               influx_url=influxd.url, database=influx_db.database, metrics_port=port)
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_sent_total") > sent, 30, "first samples sent")
    return gw, port, cfg


def _drain(gw: GatewayProcess, port: int, timeout_s: float = 30) -> None:
    wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_sent_total") > 0
             and metrics_value(port, "plantmrv_gateway_buffer_depth_samples") == 0, timeout_s, "buffer drained")


@pytest.mark.slow
def test_gateway_kill_9_five_times_loses_no_buffered_sample(tmp_path, opcua_server, influx_db, influxd, gateways):
    """SIGKILL the streaming gateway 5 times: every sample it had buffered arrives in InfluxDB,
    with the server's value for that timestamp, and (HistoryRead from the persisted resume point)
    the data has no gap at all across the kills."""
    cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=opcua_server.url, tags=8, poll_tags=2,
                               period_ms=PERIOD_S * 1000, influx_url=influxd.url, database=influx_db.database)
    # a sink slower than the input (50 of 100 samples/s) makes the buffer hold data at kill time
    text = cfg.read_text().replace("batch_max_age_s: 0.2", "batch_max_age_s: 0.3, send_max_batches: 4, replay_max_samples_per_s: 50")
    cfg.write_text(text)
    buffered_at_kill: set = set()
    t0 = time.time()
    for i in range(5):
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        # kill once it holds data (however long a loaded machine takes to start it), at varied moments
        wait_for(lambda: buffer_samples(tmp_path / "buffer.db"), 30, "samples in the buffer")
        time.sleep(0.37 * i)
        gw.kill9()
        pending = buffer_samples(tmp_path / "buffer.db")
        buffered_at_kill |= pending
    assert buffered_at_kill, "the buffer never held data at a kill: the test would prove nothing"
    port = free_port()
    cfg.write_text(cfg.read_text().replace("metrics_port: null", f"metrics_port: {port}").replace("replay_max_samples_per_s: 50", "replay_max_samples_per_s: 100000"))
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    time.sleep(3)
    _drain(gw, port)
    assert gw.stop() == 0
    pts = influx_points(influx_db)
    stored = influx_keys(influx_db)
    lost = buffered_at_kill - stored
    assert not lost, f"{len(lost)} of {len(buffered_at_kill)} buffered samples never reached InfluxDB, e.g. {sorted(lost)[:3]}"
    start_k = int(round((t0 + 3) / PERIOD_S))  # after the first connect
    for f, d in pts.items():
        assert_contiguous(d, PERIOD_S, f, start_k=start_k, polled=f in ("t8_kw", "t9_kw"))  # t8, t9: the poll group
    log = gw.log()
    assert "event=opcua_backfill" in log
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.slow
def test_gateway_resubscribes_after_opcua_server_restart(tmp_path, opcua_server, influx_db, influxd, gateways):
    gw, port, _cfg = _streaming(tmp_path, opcua_server.url, 4, influxd, influx_db, gateways, sent=20)
    opcua_server.kill()
    time.sleep(3)
    opcua_server.start()
    restarted_ns = time.time_ns()
    wait_for(lambda: any(t > restarted_ns + 2e9 for t in influx_points(influx_db).get("t0_kw", {})), 40,
             "samples from the restarted server in InfluxDB")
    assert gw.alive()
    assert metrics_value(port, "plantmrv_gateway_reconnects_total") >= 1
    assert gw.stop() == 0
    pts = influx_points(influx_db)["t3_kw"]
    after = {t: v for t, v in pts.items() if t > restarted_ns + 1e9}
    assert_contiguous(after, PERIOD_S, "t3_kw after restart")
    assert "event=opcua_subscribed" in gw.log() and gw.log().count("event=opcua_connected") >= 2


@pytest.mark.slow
def test_gateway_recovers_a_network_outage_from_the_subscription_the_server_kept(tmp_path, opcua_server_without_history, influx_db,
                                                                                   influxd, gateways):
    """The link to a server without history is cut for 6 s: the server keeps the subscription, the
    gateway transfers it to its new session and gets what the server queued. No gap, no HistoryRead."""
    proxy = TcpProxy(opcua_server_without_history.port)
    try:
        gw, port, _cfg = _streaming(tmp_path, f"opc.tcp://127.0.0.1:{proxy.port}/", 6, influxd, influx_db, gateways)
        proxy.down()
        time.sleep(6)
        proxy.up()
        back_k = int(round(time.time() / PERIOD_S))
        wait_for(lambda: max(influx_points(influx_db).get("t5_kw", {0: 0})) > (back_k + 20) * PERIOD_S * 1e9, 30, "live data after the cut")
        _drain(gw, port)
        assert gw.stop() == 0
        for f, d in influx_points(influx_db).items():
            assert_contiguous(d, PERIOD_S, f)  # from the first sample the gateway read
        log = gw.log()
        assert "event=opcua_subscription_transferred" in log and "event=opcua_backfill" not in log
        assert metrics_value(port, "plantmrv_gateway_nodes_without_history") in (6, -1)  # -1: stopped already
    finally:
        proxy.close()


@pytest.mark.slow
def test_gateway_backfills_with_history_read_what_no_subscription_kept(tmp_path, opcua_server, influx_db, influxd, gateways):
    """Killed, and restarted 4 s later with another publishing interval (so its subscription is not
    taken over): the outage is read back with HistoryRead."""
    gw, port, cfg = _streaming(tmp_path, opcua_server.url, 6, influxd, influx_db, gateways)
    cut_k = int(round(time.time() / PERIOD_S))
    gw.kill9()
    cfg.write_text(cfg.read_text().replace("publishing_interval_ms: 100", "publishing_interval_ms: 50"))
    time.sleep(4)
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    back_k = int(round(time.time() / PERIOD_S))
    wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_backfilled_total") > 0, 40, "backfill")
    wait_for(lambda: max(influx_points(influx_db).get("t5_kw", {0: 0})) > (back_k + 20) * PERIOD_S * 1e9, 30, "live data after the restart")
    _drain(gw, port)
    assert gw.stop() == 0
    for f, d in influx_points(influx_db).items():
        assert_contiguous(d, PERIOD_S, f, start_k=cut_k - 10, end_k=back_k + 10)
    assert "event=opcua_config_changed" in gw.log()


def test_gateway_reconnects_when_the_link_goes_silent(tmp_path, opcua_server, influx_db, influxd, gateways):
    """The TCP link stays up but nothing passes (a hung NAT/switch): the watchdog reconnects."""
    proxy = TcpProxy(opcua_server.port)
    try:
        port = free_port()
        cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=f"opc.tcp://127.0.0.1:{proxy.port}/", tags=3,
                                   period_ms=PERIOD_S * 1000, influx_url=influxd.url, database=influx_db.database,
                                   metrics_port=port, history=False)
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_sent_total") > 20, 30, "first samples sent")
        proxy.freeze()
        frozen_ns = time.time_ns()
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_reconnects_total") >= 1, 30, "a reconnect after the link went silent")
        wait_for(lambda: max(influx_points(influx_db).get("t2_kw", {0: 0})) > frozen_ns + 3e9, 30, "data again after reconnecting")
        assert "event=opcua_connection_lost" in gw.log()
        assert gw.stop() == 0
    finally:
        proxy.close()


def test_gateway_respects_server_operation_limits(tmp_path, influx_db, influxd, gateways):
    """The server announces MaxNodesPerRead = MaxMonitoredItemsPerCall = 7: every call is chunked to 7."""
    srv = OpcUaServer(port=free_port(), tags=40, period_s=0.2, max_nodes_per_read=7, log_path=tmp_path / "opcua.log").start()
    try:
        port = free_port()
        cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=srv.url, tags=20, poll_tags=20, period_ms=200,
                                   influx_url=influxd.url, database=influx_db.database, metrics_port=port, history=False)
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: len(influx_points(influx_db)) == 40, 30, "all 40 tags in InfluxDB")
        assert gw.stop() == 0
        assert "max_nodes_per_read=7 max_monitored_items_per_call=7 read_chunk=7 mi_chunk=7" in gw.log()
        assert "items=20 failed=0" in gw.log()
    finally:
        srv.kill()


def _secure_source(trusted: str, policy: str = "Basic256Sha256") -> str:
    return f"""
username: operator
password: s3cret-pw
security:
  mode: SignAndEncrypt
  policy: {policy}
  certificate: pki/own/cert.der
  private_key: pki/own/key.pem
  trusted_server_certs: [{trusted}]
"""


@pytest.mark.parametrize("policy", ["Basic256Sha256", "Aes256_Sha256_RsaPss"])
def test_gateway_connects_with_sign_and_encrypt_and_user_auth(policy, tmp_path, influx_db, influxd, gateways):
    srv = OpcUaServer(port=free_port(), tags=4, period_s=0.2, secure_dir=tmp_path / "server-pki", user="operator",
                      password="s3cret-pw", log_path=tmp_path / "opcua.log").start()
    try:
        cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=srv.url, tags=4, period_ms=200, influx_url=influxd.url,
                                   database=influx_db.database, security=_secure_source(str(tmp_path / "server-pki" / "server_cert.der"), policy))
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: len(influx_points(influx_db)) == 4, 40, "4 tags over SignAndEncrypt in InfluxDB")
        assert gw.stop() == 0
        log = gw.log()
        assert "generated application certificate" in log and str(tmp_path / "pki" / "own" / "cert.der") in log
        assert "security=SignAndEncrypt" in log
        assert "s3cret-pw" not in log
    finally:
        srv.kill()


def test_gateway_refuses_an_untrusted_server_certificate(tmp_path, influx_db, influxd, gateways):
    srv = OpcUaServer(port=free_port(), tags=2, period_s=0.2, secure_dir=tmp_path / "server-pki", user="operator",
                      password="s3cret-pw", log_path=tmp_path / "opcua.log").start()
    try:
        other = tmp_path / "other"
        other.mkdir()
        import asyncio  # a certificate that is not the server's

        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        asyncio.run(setup_self_signed_certificate(tmp_path / "other.key", other / "cert.der", "urn:someone:else",
                                                  "localhost", [ExtendedKeyUsageOID.SERVER_AUTH], {}))
        cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=srv.url, tags=2, period_ms=200, influx_url=influxd.url,
                                   database=influx_db.database, security=_secure_source(str(other)))
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: "event=opcua_untrusted_server" in gw.log(), 30, "untrusted-server error in the log")
        time.sleep(1)
        assert gw.alive()
        assert gw.stop() == 0
        log = gw.log()
        line = next(ln for ln in log.splitlines() if "event=opcua_untrusted_server" in ln)
        assert "is not in security.trusted_server_certs" in line and "pki/rejected/" in line
        assert list((tmp_path / "pki" / "rejected").glob("*.der"))
        assert not influx_points(influx_db)
    finally:
        srv.kill()


def test_gateway_browse_prints_a_pasteable_source_that_check_config_holds_to_the_data_model(tmp_path):
    """Scalars become nodes with the unit in the field name; an array, a structure and a string are
    comments saying why; the measurement is left to fill in (the pasted config does not load until
    it is) and, with schema: data_model, names outside docs/data-model.md are located errors."""
    import yaml

    from plantmrv.config import ConfigError, load_config

    srv = OpcUaServer(port=free_port(), tags=15, period_s=1.0, units=True, bad=True, log_path=tmp_path / "opcua2.log").start()
    try:
        r = subprocess.run([sys.executable, "-m", "plantmrv", "gateway", "browse", srv.url], capture_output=True,
                           text=True, cwd=REPO, timeout=60)
        with_m = subprocess.run([sys.executable, "-m", "plantmrv", "gateway", "browse", srv.url, "--measurement", "pump"],
                                capture_output=True, text=True, cwd=REPO, timeout=60)
    finally:
        srv.kill()
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert '{field: t0_kw, node_id: "ns=2;s=T0"}   # kW' in out
    assert '{field: t14, node_id: "ns=2;s=T14"}' in out
    assert "# skipped B_array (ns=2;s=B_array): an array (ValueRank" in out
    assert "# skipped B_range (ns=2;s=B_range): data type i=884 is a structure" in out
    assert "# skipped B_text (ns=2;s=B_text): data type i=12 is text" in out
    assert "CHANGE_ME" not in out and "schema: data_model" in out
    assert "3 left out (see the comments)" in r.stderr

    def pasted(src, name):
        cfg = {"site": {"id": "s"}, "influxdb": {}, "gateway": {"id": "g", "sink": {"type": "influxdb"}, "sources": src}}
        p = tmp_path / name
        p.write_text(yaml.safe_dump(cfg))
        return p

    src = yaml.safe_load(out)
    with pytest.raises(ConfigError) as err:
        load_config(pasted(src, "as-is.yaml"))
    assert "gateway.sources[0].groups[0].measurement" in str(err.value) and "required key is missing" in str(err.value)
    for g in src[0]["groups"]:
        g["measurement"] = "pump"
    with pytest.raises(ConfigError) as err:
        load_config(pasted(src, "pump.yaml"))
    text = str(err.value)
    gi = [g["asset"] for g in src[0]["groups"]].index("Asset0")
    assert f"gateway.sources[0].groups[{gi}].nodes[0].field (line" in text and "'t0_kw' is not a field of 'pump' in docs/data-model.md" in text
    src[0]["schema"] = "none"
    assert len(load_config(pasted(src, "custom.yaml")).gateway.sources[0].groups[gi].nodes) == 15
    assert with_m.returncode == 0 and "      measurement: pump" in with_m.stdout
    assert "# kW; not a field of pump in docs/data-model.md: rename it" in with_m.stdout


def _steps(points: dict[int, float]) -> list[float]:
    """Differences between consecutive delivered values (the server's initial 0.0 and the gateway's
    hold points, which repeat the previous value, left out)."""
    vals = [v for _t, v in sorted(points.items()) if v != 0.0]
    vals = [v for i, v in enumerate(vals) if i == 0 or v != vals[i - 1]]
    return [b - a for a, b in zip(vals, vals[1:])]


def _holds_one_tick_before_each_change(points: dict[int, float], period_s: float) -> bool:
    """Report by exception: before each change the gateway stored the previous value again at the
    last instant the server was seen (here the previous tick), so the series reads flat until then."""
    pts = [(t, v) for t, v in sorted(points.items()) if v != 0.0]
    changes = [i for i in range(1, len(pts)) if pts[i][1] != pts[i - 1][1]]
    return bool(changes) and all(
        pts[i - 1][1] == pts[i - 2][1] and pts[i][0] - pts[i - 1][0] == round(period_s * 1e9) for i in changes if i >= 2
    )


def test_gateway_percent_deadband_is_a_share_of_the_eurange(tmp_path, influx_db, influxd, gateways):
    """Values rise by 1 per tick. A 0.5 % deadband on an EURange of 0..1000 (5 units) reports every
    6th tick, an absolute deadband of 2.5 every 3rd, no deadband every tick; a percent deadband on a
    node without EURange is refused by the server (Bad_DeadbandFilterInvalid) and logged by node."""
    srv = OpcUaServer(port=free_port(), tags=5, period_s=PERIOD_S, eurange="0:1000", eurange_tags=3,
                      log_path=tmp_path / "opcua.log").start()
    try:
        def group(name: str, deadband: str, nodes: list[int]) -> str:
            lines = [f"        - name: {name}", "          measurement: pump", "          asset: P1",
                     f"          publishing_interval_ms: {PERIOD_S * 1000}", "          queue_size: 50"]
            lines += [f"          {ln}" for ln in deadband.splitlines()] + ["          nodes:"]
            lines += [f"            - {{field: t{i}_kw, node_id: \"ns=2;s=T{i}\"}}" for i in nodes]
            return "\n".join(lines) + "\n"

        groups = (group("pct", "deadband_type: percent\ndeadband_value: 0.5", [0, 1])
                  + group("abs", "deadband_type: absolute\ndeadband_value: 2.5", [2])
                  + group("plain", "deadband_type: none", [3])
                  + group("pct_no_range", "deadband_type: percent\ndeadband_value: 0.5", [4]))
        port = free_port()
        cfg = _opcua_yaml(tmp_path, srv.url, groups.rstrip("\n"), influxd, influx_db, port)
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: len({v for v in influx_points(influx_db).get("t0_kw", {}).values() if v}) >= 6, 40,
                 "6 deadband-filtered values of t0_kw")
        assert gw.stop() == 0
        pts = influx_points(influx_db)
        for f in ("t0_kw", "t1_kw"):
            steps = _steps(pts[f])
            assert len(steps) >= 4 and set(steps) == {6.0}, f"{f}: steps {steps}, expected 6 (change > 0.5 % of 1000)"
            assert _holds_one_tick_before_each_change(pts[f], PERIOD_S), sorted(pts[f].items())
        steps = _steps(pts["t2_kw"])
        assert len(steps) >= 10 and set(steps) == {3.0}, f"t2_kw: steps {steps}, expected 3 (change > 2.5)"
        assert_contiguous(pts["t3_kw"], PERIOD_S, "t3_kw (no deadband)")
        assert "t4_kw" not in pts
        log = gw.log()
        assert ("event=opcua_node_failing source=plc node=\"ns=2;s=T4\" browse_path=None group=pct_no_range "
                "series=\"pump,asset=P1,site=testsite t4_kw\" status=BadDeadbandFilterInvalid") in log, log[-3000:]
        assert "items=4 failed=1" in log
    finally:
        srv.kill()


def test_gateway_reads_tags_by_browse_path(tmp_path, influx_db, influxd, gateways):
    """Tags given by browse path (subscribed and polled) read exactly the node the path names:
    every node serves its own values (k + 1e6 * index), so a wrong resolution shows. A path that
    does not exist fails only its own tag, logged with the path, group and status; its source stays up."""
    srv = OpcUaServer(port=free_port(), tags=6, period_s=PERIOD_S, distinct=True, log_path=tmp_path / "opcua.log").start()
    try:
        def path(i: int) -> str:
            return f"0:Objects/2:Plant/2:Asset0/2:T{i}"

        groups = f"""        - name: sub
          measurement: pump
          asset: P1
          publishing_interval_ms: {PERIOD_S * 1000}
          queue_size: 50
          nodes:
            - {{field: t0_kw, node_id: "ns=2;s=T0"}}
            - {{field: t1_kw, browse_path: "{path(1)}"}}
            - {{field: t4_kw, browse_path: "/{path(4)}"}}
        - name: poll
          mode: poll
          poll_interval_ms: {PERIOD_S * 1000}
          measurement: pump
          asset: P2
          nodes:
            - {{field: t5_kw, browse_path: "{path(5)}"}}
            - {{field: t3_kw, browse_path: "{path(3)}"}}"""
        bad = f"""
    - type: opcua
      name: plc_typo
      url: {srv.url}
      history_backfill: false
      reconnect_min_s: 5
      groups:
        - name: typo
          measurement: pump
          asset: P3
          nodes:
            - {{field: t2_kw, browse_path: "0:Objects/2:Plant/2:Asset0/2:T2x"}}"""
        port = free_port()
        cfg = _opcua_yaml(tmp_path, srv.url, groups, influxd, influx_db, port, extra_sources=bad)
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: all(len(influx_points(influx_db).get(f"t{i}_kw", {})) >= 20 for i in (0, 1, 3, 4, 5)), 40,
                 "20 samples of every tag")
        assert gw.stop() == 0
        pts = influx_points(influx_db)
        assert sorted(pts) == ["t0_kw", "t1_kw", "t3_kw", "t4_kw", "t5_kw"]
        for i in (0, 1, 4):  # subscribed: every change arrives
            own = {t: v - 1e6 * i for t, v in pts[f"t{i}_kw"].items() if v != 0.0}
            assert_contiguous(own, PERIOD_S, f"t{i}_kw (node T{i})")
        for i in (3, 5):  # polled at the update rate: a late poll may skip a tick, never read another node
            own = {t: v - 1e6 * i for t, v in pts[f"t{i}_kw"].items() if v != 0.0}
            ticks = {int(round(t / 1e9 / PERIOD_S)): v for t, v in own.items()}
            wrong = sorted((k, v) for k, v in ticks.items() if v != k)
            assert not wrong, f"t{i}_kw: values not node T{i}'s ticks (tick, value): {wrong[:5]} of {len(ticks)}; raw {sorted(own.items())[:3]}"
            assert len(ticks) >= 0.8 * (max(ticks) - min(ticks) + 1), f"t{i}_kw: {len(ticks)} polls over {max(ticks) - min(ticks) + 1} ticks"
        log = gw.log()
        assert ("event=opcua_node_failing source=plc_typo node=0:Objects/2:Plant/2:Asset0/2:T2x "
                "browse_path=0:Objects/2:Plant/2:Asset0/2:T2x group=typo") in log and "status=BadNoMatch" in log, log[-3000:]
        assert "event=opcua_connection_lost" not in log
    finally:
        srv.kill()
