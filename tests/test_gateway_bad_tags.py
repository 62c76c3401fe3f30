"""Tags that cannot be read are never silent: a real asyncua server with a mistyped NodeId, a browse
path that does not resolve, BadNotReadable, BadUserAccessDenied, BadWaitingForInitialData and a tag
that fails and recovers, read by a real gateway process writing to real influxd."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.test_gateway_support import (  # noqa: F401  (gateways is a fixture)
    REPO, GatewayProcess, OpcUaServer, free_port, gateways, metrics_value, opcua_gateway_yaml, wait_for,
)

NODES = {  # field -> (address key, address, status the gateway must report, phase)
    "t0_kw": ("node_id", "ns=2;s=T0", None, None),
    "typo_kw": ("node_id", "ns=2;s=T_typo", "BadNodeIdUnknown", "subscribe"),
    "lost_kw": ("browse_path", "0:Objects/2:Plant/2:Nowhere", "BadNoMatch", "browse"),
    "not_readable_kw": ("node_id", "ns=2;s=B_not_readable", "BadNotReadable", "data"),
    "denied_kw": ("node_id", "ns=2;s=B_denied", "BadUserAccessDenied", "data"),
    "waiting_kw": ("node_id", "ns=2;s=B_waiting", "BadWaitingForInitialData", "data"),
    "flaky_kw": ("node_id", "ns=2;s=B_flaky", "BadCommunicationError", "data"),
}


GROUPS = """        - name: sub
          measurement: pump
          asset: P1
          publishing_interval_ms: 100
          nodes:
""" + "\n".join(f"            - {{field: {f}, {key}: \"{addr}\"}}" for f, (key, addr, _s, _p) in NODES.items()) + """
        - name: poll
          mode: poll
          poll_interval_ms: 200
          measurement: pump
          asset: P2
          nodes:
            - {field: typo_kw, node_id: "ns=2;s=T_typo"}"""


def test_every_tag_that_cannot_be_read_is_logged_once_counted_and_shown(tmp_path, influxd, influx_db, gateways):
    srv = OpcUaServer(port=free_port(), tags=1, period_s=0.1, bad=True, log_path=tmp_path / "opcua.log").start()
    try:
        port = free_port()
        cfg = opcua_gateway_yaml(tmp_path, srv.url, GROUPS, influxd, influx_db, port)
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        # B_flaky is bad while tick % 40 is 10..19 (1 s in every 4 s): wait for a failure and a recovery
        wait_for(lambda: "event=opcua_node_recovered" in gw.log() and "flaky_kw" in gw.log(), 30, "the flaky tag to fail and recover")
        status = subprocess.run([sys.executable, "-m", "plantmrv", "gateway", "status", "-c", str(cfg)],
                                capture_output=True, text=True, cwd=REPO, timeout=60)
        failures = {s: metrics_value(port, f'plantmrv_gateway_node_failures_total{{source="plc",status="{s}"}}')
                    for s in ("BadNodeIdUnknown", "BadNoMatch", "BadNotReadable", "BadUserAccessDenied", "BadWaitingForInitialData")}
        assert gw.stop() == 0
    finally:
        srv.kill()
    log = gw.log()
    # logfmt: a value is quoted when it holds a space, '=' or a quote (a NodeId does, a browse path not)
    failing = re.findall(r'event=opcua_node_failing source=plc node=(?:"([^"]+)"|(\S+)) .*?series="([^"]+)" status=(\w+) code=0x[0-9A-F]{8} phase=(\w+)', log)
    seen = {}
    for quoted, bare, series, st, phase in failing:
        node = quoted or bare
        seen.setdefault((node, series.rsplit(" ", 1)[1], st, phase), 0)
        seen[(node, series.rsplit(" ", 1)[1], st, phase)] += 1
    for f, (_key, addr, st, phase) in NODES.items():
        if st is None:
            assert not any(k[0] == addr for k in seen), f"{f} is readable but was reported: {seen}"
            continue
        count = seen.get((addr, f, st, phase), 0)
        assert count >= 1, f"{f} ({addr}) was not reported as {st} in phase {phase}; reported: {seen}"
        if f != "flaky_kw":
            assert count == 1, f"{f} was reported {count} times, not once"
    assert seen[("ns=2;s=T_typo", "typo_kw", "BadNodeIdUnknown", "data")] == 1  # the polled one: a read returns the status
    assert "event=opcua_subscribed source=plc groups=1 items=5 failed=2" in log  # the typo and the unresolved path
    assert re.search(r'event=opcua_node_recovered source=plc node="ns=2;s=B_flaky" .* was=BadCommunicationError phase=data', log)
    assert failures == {"BadNodeIdUnknown": 2, "BadNoMatch": 1, "BadNotReadable": 1, "BadUserAccessDenied": 1, "BadWaitingForInitialData": 1}

    assert status.returncode == 2, status.stdout + status.stderr
    out = status.stdout
    assert "tags that cannot be read or subscribed: 6" in out or "tags that cannot be read or subscribed: 7" in out, out
    # the server keeps no history: the tags it answers an access level for are listed as such (issue 25)
    assert re.search(r"tags whose server keeps no history \(an outage beyond its queues is a permanent gap\): \d+: ns=2;s=", out), out
    for f, (_key, addr, st, phase) in NODES.items():
        if st and f != "flaky_kw":
            assert re.search(rf"plc\s+{st}\s+{phase}\s+{re.escape(addr)}\s+pump,asset=P1,site=testsite {f}", out), out

    # BAD reads are samples too: in sample_quality, with their status code
    res = influx_db.query("SELECT quality, status_code FROM sample_quality WHERE \"field\"='not_readable_kw'")
    assert res and set(res[0].columns["quality"].tolist()) == {2.0}
    assert set(res[0].columns["status_code"].tolist()) == {float(0x803A0000)}  # BadNotReadable
    good = influx_db.query("SELECT count(t0_kw) FROM pump")
    assert int(good[0].columns["count"][0]) > 10, "the readable tag goes on delivering"
