"""Gateway with real mosquitto and influxd: broker and InfluxDB outages, state topic / Last Will,
MQTT device source with malformed payloads."""

from __future__ import annotations

import json
import socket
import threading
import time

import paho.mqtt.client as paho
import pytest

from plantmrv.codec import decode_message
from tests.test_gateway_support import (  # noqa: F401  (gateways is a fixture)
    gateways,
    running_opcua_server,
    GatewayProcess,
    OpcUaServer,
    assert_contiguous,
    buffer_samples,
    free_port,
    influx_points,
    metrics_value,
    wait_for,
    write_gateway_config,
)

PERIOD_S = 0.1
OUTAGE_S = 60


class Collector:
    """A QoS 1 subscriber with a persistent session that decodes every gateway batch it gets."""

    def __init__(self, host: str, port: int, topic: str = "plantmrv/v1/#"):
        self.points: dict[str, dict[int, float]] = {}
        self.states: list[bytes] = []
        self.messages = 0
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"collector-{port}", clean_session=False)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.c.reconnect_delay_set(0.2, 1)
        self.c.connect(host, port, keepalive=10)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            if msg.topic.endswith("/state"):
                self.states.append(msg.payload)
                return
            self.messages += 1
            b = decode_message(msg.payload).batch
            keys = [s.field for s in b.table]
            for s, t, v in zip(b.series.tolist(), b.ts_ns.tolist(), b.value.tolist()):
                self.points.setdefault(keys[s], {})[t] = v

    def field(self, name: str) -> dict[int, float]:
        with self.lock:
            return dict(self.points.get(name, {}))

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def opcua_server(tmp_path):
    yield from running_opcua_server(tmp_path, tags=6, period_s=PERIOD_S)


@pytest.mark.slow
def test_gateway_replays_buffer_after_broker_restart(tmp_path, opcua_server, mosquitto_private, gateways):
    """Broker down 60 s: the gateway keeps reading into its buffer and replays it all, no sample lost."""
    port = free_port()
    cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=opcua_server.url, tags=6, period_ms=PERIOD_S * 1000,
                               sink="mqtt", mqtt_url=mosquitto_private.url, metrics_port=port, history=False)
    col = Collector(mosquitto_private.host, mosquitto_private.port)
    try:
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: len(col.field("t0_kw")) > 20, 30, "batches at the collector")
        mosquitto_private.stop()
        down_k = int(round(time.time() / PERIOD_S))
        time.sleep(OUTAGE_S)
        assert metrics_value(port, "plantmrv_gateway_buffer_depth_samples") >= 6 * (OUTAGE_S - 5) / PERIOD_S
        mosquitto_private.start()
        up_k = int(round(time.time() / PERIOD_S))
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_buffer_depth_samples") == 0, 60, "buffer replayed")
        wait_for(lambda: max(col.field("t5_kw") or {0: 0}) > (up_k + 10) * PERIOD_S * 1e9, 30, "live data after the outage")
        assert gw.stop() == 0
        time.sleep(1)
        for i in range(6):
            d = col.field(f"t{i}_kw")
            assert min(d) < (down_k - 5) * PERIOD_S * 1e9  # the range checked spans the outage
            assert_contiguous(d, PERIOD_S, f"t{i}_kw", end_k=up_k + 10)
        with col.lock:
            assert col.states and col.states[-1] == b"offline" and b"online" in col.states
        log = gw.log()
        assert "event=sink_send_failed" in log and "event=sink_recovered" in log
    finally:
        col.close()


@pytest.mark.slow
def test_gateway_direct_influx_loses_nothing_across_influxdb_outage(tmp_path, opcua_server, influxd_private, gateways):
    port = free_port()
    cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=opcua_server.url, tags=6, period_ms=PERIOD_S * 1000,
                               influx_url=influxd_private.url, database="gw_outage", metrics_port=port, history=False)
    client = influxd_private.client(database="gw_outage")
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_sent_total") > 50, 30, "first writes")
    influxd_private.stop()
    down_k = int(round(time.time() / PERIOD_S))
    time.sleep(OUTAGE_S / 2)
    assert metrics_value(port, "plantmrv_gateway_buffer_depth_samples") > 6 * (OUTAGE_S / 2 - 5) / PERIOD_S
    influxd_private.start()
    up_k = int(round(time.time() / PERIOD_S))
    wait_for(lambda: metrics_value(port, "plantmrv_gateway_buffer_depth_samples") == 0, 60, "buffer replayed")
    wait_for(lambda: max(influx_points(client).get("t5_kw") or {0: 0}) > (up_k + 20) * PERIOD_S * 1e9, 30, "live data after the outage")
    assert gw.stop() == 0
    pts = influx_points(client)
    for i in range(6):
        d = pts[f"t{i}_kw"]
        assert min(d) < (down_k - 5) * PERIOD_S * 1e9  # the range checked spans the outage
        assert_contiguous(d, PERIOD_S, f"t{i}_kw", end_k=up_k + 10)
    gw_health = influx_points(client, "gateway")
    assert max(gw_health["buffer_depth"].values()) > 0 and max(gw_health["samples_sent"].values()) > 0
    client.close()


def test_gateway_state_topic_is_online_then_last_will_offline_on_kill(tmp_path, opcua_server, mosquitto, gateways):
    cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=opcua_server.url, tags=2, period_ms=200, sink="mqtt",
                               mqtt_url=mosquitto.url, gateway_id="gwlwt")
    cfg.write_text(cfg.read_text().replace("client_id: gwlwt-pub}", "client_id: gwlwt-pub, keepalive_s: 5}"))
    col = Collector(mosquitto.host, mosquitto.port, "plantmrv/v1/testsite/gwlwt/#")
    try:
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: col.states and col.states[-1] == b"online" and col.messages > 2, 30, "online state and data")
        gw.kill9()
        wait_for(lambda: col.states[-1] == b"offline", 15, "Last Will 'offline' after kill -9")
    finally:
        col.close()


def test_gateway_mqtt_source_counts_malformed_payloads_and_keeps_running(tmp_path, mosquitto, influx_db, influxd, gateways):
    port = free_port()
    source = f"""
- type: mqtt
  name: devices
  broker: {{url: "{mosquitto.url}"}}
  mappings:
    - topic: dev/+/telemetry
      measurement: pv
      tags: {{asset: "{{topic[1]}}"}}
      timestamp: {{path: ts, unit: ms}}
      fields:
        ac_power_kw: {{path: ac.p_w, scale: 0.001}}
        export_energy_kwh: e
"""
    cfg = write_gateway_config(tmp_path / "gw.yaml", extra_source=source, influx_url=influxd.url,
                               database=influx_db.database, metrics_port=port)
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="device-sim")
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        wait_for(lambda: "event=mqtt_source_connected" in gw.log(), 30, "source connected")
        t0 = 1767225600000
        # whole payloads refused: not JSON, an empty list; values refused: ac.p_w (the payload's e is kept), ts
        bad = [b"{not json", json.dumps({"ts": t0 + 500, "ac": {"p_w": "high"}, "e": 7}).encode(), b'{"ac": {"p_w": 1}}', b"[]"]
        for k in range(50):
            good = json.dumps({"ts": t0 + k * 1000, "ac": {"p_w": 1000.0 * k}, "e": k}).encode()
            pub.publish("dev/inv01/telemetry", good, qos=1).wait_for_publish(5)
            if k % 10 == 0:
                pub.publish("dev/inv02/telemetry", bad[(k // 10) % 4], qos=1).wait_for_publish(5)
        wait_for(lambda: len(influx_points(influx_db, "pv").get("ac_power_kw", {})) == 50
                 and len(influx_points(influx_db, "pv").get("export_energy_kwh", {})) == 51, 30, "50 + 1 partial samples in InfluxDB")
        text = __import__("httpx").get(f"http://127.0.0.1:{port}/metrics").text
        assert 'plantmrv_gateway_source_errors_total{kind="malformed_payload",source="devices"} 3.0' in text
        assert 'plantmrv_gateway_source_errors_total{kind="refused_value",source="devices"} 2.0' in text
        assert gw.alive()
        assert gw.stop() == 0
        log = gw.log()
        rejected = [ln for ln in log.splitlines() if "event=payload_rejected" in ln]
        refused = [ln for ln in log.splitlines() if "event=value_refused" in ln]
        assert len(rejected) == 3 and len(refused) == 2
        assert all("topic=dev/inv02/telemetry" in ln for ln in rejected + refused)
        assert any('reason="payload is not JSON' in ln for ln in rejected)  # logfmt: a value with spaces is quoted
        assert any("path=ac.p_w code=json_type" in ln and "'high', not a number" in ln for ln in refused)
        assert any("path=ts code=json_timestamp" in ln and "ts is missing" in ln for ln in refused)
        pts = influx_points(influx_db, "pv")
        assert pts["ac_power_kw"][(t0 + 7000) * 1_000_000] == 7.0
        assert pts["export_energy_kwh"][(t0 + 500) * 1_000_000] == 7.0  # the good value of a partly bad payload
    finally:
        pub.loop_stop()
        pub.disconnect()


def test_gateway_stops_promptly_and_keeps_its_buffer_while_influxdb_hangs(tmp_path, opcua_server, gateways):
    """An InfluxDB that accepts connections and never answers must not hold up a SIGTERM (systemd
    would SIGKILL after its stop timeout); what was not confirmed stays in the buffer."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)  # the kernel accepts; nobody answers
    try:
        port = free_port()
        cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=opcua_server.url, tags=2, period_ms=200,
                                   influx_url=f"http://127.0.0.1:{silent.getsockname()[1]}", database="hang", metrics_port=port)
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_buffer_depth_samples") > 20, 30, "samples buffered while the sink hangs")
        t0 = time.monotonic()
        assert gw.stop(timeout_s=30) == 0
        assert time.monotonic() - t0 < 8, gw.log()[-2000:]
        assert len(buffer_samples(tmp_path / "buffer.db")) > 20
    finally:
        silent.close()
