"""Sparkplug B source: the wire format against the published Tahu field numbers, BIRTH aliases and
types, DEATH as BAD samples, rebirth requests, scaling; and a round trip through mosquitto."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from plantmrv.batch import Quality
from plantmrv.config import MqttConfig
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.gateway.sparkplug_pb import Payload, metric_quality, metric_value, set_quality, set_value
from plantmrv.gateway.sparkplug_source import SparkplugSource, SparkplugSourceConfig
from tests.modbus_support import Recorder

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _cfg(**kw) -> SparkplugSourceConfig:
    return SparkplugSourceConfig.model_validate({
        "type": "sparkplug", "name": "spb", "group": "G", "rebirth_min_interval_s": 0,
        "mappings": [{"edge_node": "+", "device": "+", "measurement": "pump", "tags": {"asset": "{device}"},
                      "metrics": {"power_kw": {"name": "Power", "unit": "W"}, "flow_m3_per_h": {"name": "Flow", "unit": "L/s"},
                                  "running": "Running"}},
                     {"edge_node": "+", "measurement": "node", "metrics": {"temp_c": "Cabinet/Temp"}}], **kw})


def _payload(seq, metrics, ts=T0_MS):
    p = Payload()
    p.timestamp = ts
    p.seq = seq
    for m in metrics:
        x = p.metrics.add()
        if m.get("name"):
            x.name = m["name"]
        if m.get("alias") is not None:
            x.alias = m["alias"]
        if m.get("ts"):
            x.timestamp = m["ts"]
        set_value(x, m["type"], m.get("value"))
    return p.SerializeToString()


def test_wire_format_uses_the_published_field_numbers():
    # hand-assembled from sparkplug_b.proto's numbers: Payload.timestamp=1, metrics=2, seq=3;
    # Metric.name=1, alias=2, datatype=4, int_value=10, double_value=13
    metric = bytes([0x0A, 0x01]) + b"P" + bytes([0x10, 0x07, 0x20, 0x0A, 0x69]) + np.float64(2.5).tobytes()
    metric2 = bytes([0x10, 0x08, 0x20, 0x03, 0x50]) + bytes([0xF9, 0xFF, 0xFF, 0xFF, 0x0F])  # Int32 -7, two's complement
    raw = bytes([0x08, 0x2A, 0x12, len(metric)]) + metric + bytes([0x12, len(metric2)]) + metric2 + bytes([0x18, 0x05])
    p = Payload.FromString(raw)
    assert (p.timestamp, p.seq, p.metrics[0].name, p.metrics[0].alias) == (42, 5, "P", 7)
    assert [metric_value(m) for m in p.metrics] == [2.5, -7.0]
    assert Payload.FromString(p.SerializeToString()) == p


def test_birth_aliases_types_scaling_death_and_rebirth():
    src = SparkplugSource(_cfg(), "site1", GatewayMetrics(), MqttConfig())
    rec = Recorder()
    # DATA before any BIRTH: a rebirth request, no sample
    assert src.handle("spBv1.0/G/DDATA/E1/P1", _payload(0, [{"alias": 1, "type": 10, "value": 1.0}]), rec) == ["E1"]
    assert not rec.batches
    src.handle("spBv1.0/G/NBIRTH/E1", _payload(0, [{"name": "bdSeq", "type": 8, "value": 0},
                                                  {"name": "Cabinet/Temp", "alias": 10, "type": 9, "value": 31.5}]), rec)
    src.handle("spBv1.0/G/DBIRTH/E1/P1", _payload(1, [{"name": "Power", "alias": 1, "type": 3, "value": 48000},
                                                     {"name": "Flow", "alias": 2, "type": 10, "value": 10.0},
                                                     {"name": "Running", "alias": 3, "type": 11, "value": True},
                                                     {"name": "Unmapped", "alias": 4, "type": 10, "value": 1.0}]), rec)
    last = rec.last()
    assert last["temp_c"] == (31.5, 0)
    assert last["power_kw"] == (48.0, 0) and last["running"] == (1.0, 0)
    assert last["flow_m3_per_h"][0] == pytest.approx(36.0)
    # DATA by alias only, with a metric timestamp and a null
    n = len(rec.batches)
    assert src.handle("spBv1.0/G/DDATA/E1/P1", _payload(2, [{"alias": 1, "type": 3, "value": -500, "ts": T0_MS + 500},
                                                          {"alias": 2, "type": 10, "value": None}], ts=T0_MS + 1000), rec) == []
    b = rec.batches[n]
    assert {s.field for s in b.table} == {"power_kw", "flow_m3_per_h", "running"}  # the watermark covers all of P1
    rows = {b.table[s].field: (t, v, q) for s, t, v, q in zip(b.series, b.ts_ns, b.value, b.quality)}
    assert rows["power_kw"] == ((T0_MS + 500) * 1_000_000, -0.5, 0)
    assert rows["flow_m3_per_h"][2] == Quality.BAD and math.isnan(rows["flow_m3_per_h"][1])
    assert "running" not in rows  # unchanged: report by exception
    # an unknown alias: a rebirth request
    assert src.handle("spBv1.0/G/DDATA/E1/P1", _payload(3, [{"alias": 99, "type": 10, "value": 1.0}]), rec) == ["E1"]
    # a sequence gap: a rebirth request
    assert src.handle("spBv1.0/G/DDATA/E1/P1", _payload(9, [{"alias": 1, "type": 3, "value": 1}]), rec) == ["E1"]
    # DDEATH: every metric of the device BAD at the death time
    n = len(rec.batches)
    src.handle("spBv1.0/G/DDEATH/E1/P1", _payload(10, [], ts=T0_MS + 5000), rec)
    d = rec.batches[n]
    assert len(d) == 3 and set(d.quality.tolist()) == {Quality.BAD} and set(d.ts_ns.tolist()) == {(T0_MS + 5000) * 1_000_000}
    # NDEATH: the node's own metrics and its devices', stamped on receipt (the will's timestamp is stale)
    n = len(rec.batches)
    src.handle("spBv1.0/G/NDEATH/E1", _payload(0, [{"name": "bdSeq", "type": 8, "value": 0}]), rec, received_ns=123 * 10**15)
    dead = [r for b in rec.batches[n:] for r in zip((b.table[s].field for s in b.series), b.ts_ns, b.quality)]
    assert {f for f, _t, _q in dead} == {"temp_c", "power_kw", "flow_m3_per_h", "running"}
    assert all(q == Quality.BAD and t == 123 * 10**15 for _f, t, q in dead)
    # after a death, DATA asks for a rebirth again
    assert src.handle("spBv1.0/G/NDATA/E1", _payload(1, [{"alias": 10, "type": 9, "value": 1.0}]), rec) == ["E1"]


def test_quality_property_other_than_good_makes_a_bad_sample():
    """Sparkplug 3.0 quality codes (property `Quality`, Int32): 0 BAD and 500 STALE are BAD samples
    with their value kept; 192 or no property is GOOD."""
    src = SparkplugSource(_cfg(), "s", GatewayMetrics(), MqttConfig())
    rec = Recorder()
    src.handle("spBv1.0/G/NBIRTH/E1", _payload(0, [{"name": "bdSeq", "type": 4, "value": 0}]), rec)
    p = Payload()
    p.timestamp, p.seq = T0_MS, 1
    for alias, (name, code) in enumerate([("Power", 0), ("Flow", 500), ("Running", 192)], start=1):
        m = p.metrics.add()
        m.name, m.alias, m.timestamp = name, alias, T0_MS
        set_value(m, 10, 2000.0 + alias)
        set_quality(m, code)
    src.handle("spBv1.0/G/DBIRTH/E1/P1", p.SerializeToString(), rec)
    last = rec.last()
    assert last["power_kw"] == (2.001, Quality.BAD) and last["running"] == (2003.0, Quality.GOOD)
    assert last["flow_m3_per_h"][1] == Quality.BAD
    assert [metric_quality(m) for m in Payload.FromString(p.SerializeToString()).metrics] == [0, 500, 192]
    assert metric_quality(Payload.Metric()) == 192


def test_garbage_payload_is_counted_not_fatal():
    m = GatewayMetrics()
    src = SparkplugSource(_cfg(), "s", m, MqttConfig())
    assert src.handle("spBv1.0/G/NDATA/E1", b"\xff\xff\xff", Recorder()) == []
    assert m.malformed == 1


def test_rebirth_request_round_trip_through_mosquitto(mosquitto):
    """The source subscribes; an edge node publishes DATA without a BIRTH; the source asks for a
    rebirth (NCMD) on the broker; the node answers with its BIRTH; its values arrive."""
    import paho.mqtt.client as mqtt

    host, port = "127.0.0.1", mosquitto.port
    cfg = _cfg(broker={"url": f"mqtt://{host}:{port}", "client_id": "spb-host-test"})
    rec = Recorder()
    edge = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-E7")
    got_ncmd = []

    def on_message(client, userdata, msg):
        p = Payload.FromString(msg.payload)
        got_ncmd.append([(m.name, m.boolean_value) for m in p.metrics])
        client.publish("spBv1.0/G/NBIRTH/E7", _payload(0, [{"name": "Cabinet/Temp", "alias": 1, "type": 10, "value": 22.0}]))
        client.publish("spBv1.0/G/NDATA/E7", _payload(1, [{"alias": 1, "type": 10, "value": 23.5}]))

    edge.on_message = on_message
    edge.connect(host, port)
    edge.subscribe("spBv1.0/G/NCMD/E7", qos=1)
    edge.loop_start()

    async def main():
        src = SparkplugSource(cfg, "s", GatewayMetrics(), cfg.broker)
        task = asyncio.create_task(src.run(rec))
        try:
            for _ in range(100):
                if src.connected:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            edge.publish("spBv1.0/G/NDATA/E7", _payload(5, [{"alias": 1, "type": 10, "value": 99.0}]))
            for _ in range(100):
                if rec.series("temp_c") and rec.series("temp_c")[-1][1] == 23.5:
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        edge.loop_stop()
        edge.disconnect()
    assert got_ncmd and got_ncmd[0] == [("Node Control/Rebirth", True)]
    assert [v for _t, v, _q in rec.series("temp_c")] == [22.0, 23.5]  # 99.0 came before the BIRTH: not guessed
