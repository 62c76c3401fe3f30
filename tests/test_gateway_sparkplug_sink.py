"""The gateway as a Sparkplug B edge node (``live_sinks: [{type: sparkplug}]``), against mosquitto.

An independent paho subscriber decodes what the edge node publishes with the Tahu schema
(:mod:`plantmrv.gateway.sparkplug_pb`) and checks it against the Sparkplug 3.0 rules: NBIRTH
(bdSeq, ``Node Control/Rebirth``, unique aliases, datatypes, seq 0), DBIRTH/DDATA values and
timestamps equal to the source's, seq one more per message mod 256, NCMD rebirth answered, a new
metric answered with a new NBIRTH, NDEATH with the NBIRTH's bdSeq when the gateway is killed (-9),
and plantmrv's own Sparkplug source reading it all back to the same samples.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.codec import encode_message
from plantmrv.config import MqttConfig
from plantmrv.gateway.buffer import DurableBuffer
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.gateway.sparkplug_pb import Payload, metric_quality, metric_value, parse_topic, set_value
from plantmrv.gateway.sparkplug_sink import SparkplugSink, SparkplugSinkConfig
from plantmrv.gateway.sparkplug_source import SparkplugSource, SparkplugSourceConfig
from tests.helpers import wait_for
from tests.modbus_support import Recorder
from tests.test_gateway_support import GatewayProcess, gateways  # noqa: F401 - the fixture

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DOUBLE, INT64, BOOLEAN = 10, 4, 11


class Observer:
    """A Sparkplug host stand-in: every message under ``spBv1.0/<group>/#`` (and STATE), decoded, in arrival order."""

    def __init__(self, port: int, group: str, client_id: str):
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, str | None, object]] = []  # (verb, device, Payload)
        self.lock = threading.Lock()
        self.group = group
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
        c.on_message = self._on_message
        subscribed = threading.Event()
        c.on_subscribe = lambda *a: subscribed.set()
        c.connect("127.0.0.1", port)
        c.subscribe(f"spBv1.0/{group}/#", qos=1)
        c.loop_start()
        assert subscribed.wait(5), "observer: no SUBACK"
        self.client = c

    def _on_message(self, client, userdata, msg) -> None:
        parsed = parse_topic(msg.topic)
        if parsed is None:
            return
        with self.lock:
            self.messages.append((parsed[1], parsed[3], Payload.FromString(msg.payload)))

    def of(self, verb: str, device: str | None = None) -> list:
        with self.lock:
            return [p for v, d, p in self.messages if v == verb and (device is None or d == device)]

    def since(self, n: int) -> list[tuple[str, str | None, object]]:
        with self.lock:
            return self.messages[n:]

    def last_index(self, verb: str) -> int:
        with self.lock:
            return max(i for i, m in enumerate(self.messages) if m[0] == verb)

    def rebirth(self, edge: str) -> None:
        p = Payload()
        p.timestamp = T0_MS
        m = p.metrics.add()
        m.name = "Node Control/Rebirth"
        set_value(m, BOOLEAN, True)
        self.client.publish(f"spBv1.0/{self.group}/NCMD/{edge}", p.SerializeToString(), qos=0)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def typed(m, datatype: int):
    """A DATA metric's value, typed by its BIRTH's datatype (DATA omits it)."""
    c = Payload.Metric()
    c.CopyFrom(m)
    c.datatype = datatype
    return metric_value(c)


def metrics_by_name(p) -> dict:
    return {m.name: m for m in p.metrics}


def check_seq(messages) -> None:
    """seq: 0 on NBIRTH, then one more per BIRTH/DATA/DDEATH message, mod 256; NDEATH has none."""
    last = None
    for verb, device, p in messages:
        if verb == "NDEATH":
            assert not p.HasField("seq"), "NDEATH MUST NOT carry a seq"
            continue
        if verb in ("NCMD", "DCMD"):
            continue
        assert p.HasField("seq") and 0 <= p.seq <= 255, (verb, device)
        if verb == "NBIRTH":
            assert p.seq == 0
        elif last is not None:
            assert p.seq == (last + 1) % 256, f"{verb}/{device}: seq {p.seq} after {last}"
        last = p.seq


def check_birth(p, verb: str) -> dict[int, str]:
    """Every BIRTH metric has name, datatype, timestamp; aliases (except bdSeq/Rebirth) unique; returns alias -> name."""
    aliases = {}
    for m in p.metrics:
        assert m.name and m.HasField("datatype") and m.HasField("timestamp"), m
        if m.name in ("bdSeq", "Node Control/Rebirth"):
            assert verb == "NBIRTH" and not m.HasField("alias")
            continue
        assert m.HasField("alias") and m.alias not in aliases
        aliases[m.alias] = m.name
    return aliases


# --------------------------------------------------------------------------- the gateway as an edge node


def _gateway_yaml(tmp_path, port: int, gateway: str = "spbgw", live: str = "", metrics_port: int | None = None) -> object:
    text = f"""site: {{id: testsite}}
mqtt: {{url: "mqtt://127.0.0.1:{port}", client_id: {gateway}-pub}}
gateway:
  id: {gateway}
  sources:
    - type: mqtt
      name: devices
      mappings:
        - topic: spbtest/+/telemetry
          measurement: pump
          tags: {{asset: "{{topic[1]}}"}}
          timestamp: {{path: ts, unit: ms}}
          fields: {{power_kw: p, running: run, flow_m3_per_h: q}}
  sink: {{type: mqtt}}
  live_sinks:
    - type: sparkplug
      group_id: PlantA
{live}  buffer: {{path: buffer.db, batch_max_age_s: 0.05}}
  health: {{metrics_port: {metrics_port if metrics_port is not None else "null"}, sample_interval_s: 1}}
"""
    p = tmp_path / "gw.yaml"
    p.write_text(text)
    return p


class LiveHost:
    """plantmrv's own Sparkplug source, subscribed to the group, running in a thread of its own."""

    def __init__(self, port: int, group: str):
        self.rec = Recorder()
        cfg = SparkplugSourceConfig.model_validate({
            "type": "sparkplug", "name": "host", "group": group, "broker": {"url": f"mqtt://127.0.0.1:{port}", "client_id": "spb-live-host"},
            "mappings": [{"device": "+", "measurement": "pump", "tags": {"asset": "{device}"},
                          "metrics": {"power_kw": "pump/power_kw", "running": "pump/running", "flow_m3_per_h": "pump/flow_m3_per_h"}}]})
        self.src = SparkplugSource(cfg, "testsite", GatewayMetrics(), cfg.broker)
        self.loop = asyncio.new_event_loop()
        self.task = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.src.connected, 10, "the Sparkplug source's connection")

    def _run(self) -> None:
        self.task = self.loop.create_task(self.src.run(self.rec))
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


def test_gateway_publishes_as_sparkplug_edge_node(tmp_path, mosquitto, gateways):
    import paho.mqtt.client as paho

    obs = Observer(mosquitto.port, "PlantA", "spb-observer-gw")
    host = LiveHost(mosquitto.port, "PlantA")
    dev = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="spb-test-device")
    dev.connect("127.0.0.1", mosquitto.port)
    dev.loop_start()

    def device(i: int, **fields) -> None:
        dev.publish("spbtest/P1/telemetry", json.dumps({"ts": T0_MS + i * 1000, **fields}), qos=1).wait_for_publish(5)

    try:
        gw = GatewayProcess(_gateway_yaml(tmp_path, mosquitto.port), tmp_path / "gw.log").start()
        gateways.append(gw)
        nbirth = wait_for(lambda: obs.of("NBIRTH"), 20, "the NBIRTH")[0]
        named = metrics_by_name(nbirth)
        assert named["bdSeq"].datatype == INT64 and named["Node Control/Rebirth"].datatype == BOOLEAN
        assert named["Node Control/Rebirth"].boolean_value is False and nbirth.seq == 0 and nbirth.timestamp > 0
        bdseq = metric_value(named["bdSeq"])
        check_birth(nbirth, "NBIRTH")

        sent = [(10.0 + i, i % 2) for i in range(6)]
        for i, (p, run) in enumerate(sent):
            device(i, p=p, run=run)
        wait_for(lambda: len([m for d in obs.of("DDATA", "P1") for m in d.metrics]) >= 2 * len(sent) - 2, 20, "P1's DDATA")
        dbirth = obs.of("DBIRTH", "P1")[0]
        aliases = check_birth(dbirth, "DBIRTH")
        types = {m.name: m.datatype for m in dbirth.metrics}
        assert types == {"pump/power_kw": DOUBLE, "pump/running": BOOLEAN}
        # the DBIRTH holds the first sample, the DDATA (aliases only, no names) the rest, at the source's times
        got = [(aliases[m.alias], m.timestamp, metric_value(m)) for m in dbirth.metrics]
        for d in obs.of("DDATA", "P1"):
            assert d.timestamp > 0
            for m in d.metrics:
                assert not m.HasField("name") and not m.HasField("datatype") and not m.is_historical
                got.append((aliases[m.alias], m.timestamp, typed(m, types[aliases[m.alias]])))
        want = [(f, T0_MS + i * 1000, float(v)) for i, (p, run) in enumerate(sent) for f, v in (("pump/power_kw", p), ("pump/running", run))]
        assert sorted(got) == sorted(want)
        ts_order = [t for _n, t, _v in got[2:]]
        assert ts_order == sorted(ts_order), "DATA metrics in chronological order"

        # a new field of a born device: a whole new BIRTH sequence (same bdSeq), then its data
        n_births = len(obs.of("NBIRTH"))
        device(6, p=16.0, run=0, q=42.5)
        wait_for(lambda: len(obs.of("NBIRTH")) > n_births and any("pump/flow_m3_per_h" in metrics_by_name(b)
                                                                 for b in obs.of("DBIRTH", "P1")), 20, "a rebirth declaring flow")
        assert metric_value(metrics_by_name(obs.of("NBIRTH")[-1])["bdSeq"]) == bdseq
        reborn = metrics_by_name(obs.of("DBIRTH", "P1")[-1])
        assert metric_value(reborn["pump/flow_m3_per_h"]) == 42.5 and reborn["pump/flow_m3_per_h"].timestamp == T0_MS + 6000
        assert metric_value(reborn["pump/power_kw"]) == 15.0  # its current value; 16.0 follows as data
        wait_for(lambda: any(typed(m, DOUBLE) == 16.0 for d in obs.of("DDATA", "P1") for m in d.metrics), 20, "16.0 after the rebirth")
        check_birth(obs.of("DBIRTH", "P1")[-1], "DBIRTH")

        # the gateway's health (sample_interval_s: 1) is the node's own metrics: they too came with a rebirth
        wait_for(lambda: any("gateway/buffer_depth" in metrics_by_name(b) for b in obs.of("NBIRTH")), 20, "node metrics")
        # a host's rebirth request (NCMD Node Control/Rebirth = true): NBIRTH and DBIRTH again
        n_births = len(obs.of("NBIRTH"))
        obs.rebirth("spbgw")
        wait_for(lambda: len(obs.of("NBIRTH")) > n_births and ("DBIRTH", "P1") in [m[:2] for m in obs.since(obs.last_index("NBIRTH"))],
                 20, "the rebirth")
        nb = metrics_by_name(obs.of("NBIRTH")[-1])
        assert metric_value(nb["bdSeq"]) == bdseq
        assert nb["gateway/buffer_depth"].datatype == INT64 and nb["gateway/online"].datatype == BOOLEAN  # node metrics: health
        device(7, p=17.0, run=1, q=43.0)
        wait_for(lambda: any(typed(m, DOUBLE) == 43.0 for d in obs.of("DDATA", "P1") for m in d.metrics), 20, "data after the rebirth")

        gw.kill9()
        death = wait_for(lambda: obs.of("NDEATH"), 20, "the NDEATH (the MQTT Will)")[0]
        assert metric_value(metrics_by_name(death)["bdSeq"]) == bdseq
        check_seq(obs.since(0))

        # plantmrv's own Sparkplug source, reading the edge node all along, stored the device's samples
        rec = host.rec
        wait_for(lambda: rec.series("power_kw") and rec.series("power_kw")[-1][2] == Quality.BAD, 10, "the source's NDEATH")
        power = {(t // 1_000_000, v) for t, v, q in rec.series("power_kw") if q == Quality.GOOD}
        assert {(T0_MS + i * 1000, 10.0 + i) for i in range(8)} <= power
        assert {(T0_MS + i * 1000, float(i % 2)) for i in range(8)} <= {(t // 1_000_000, v) for t, v, q in rec.series("running")
                                                                         if q == Quality.GOOD}
        assert rec.series("power_kw")[-1][2] == Quality.BAD  # the NDEATH: known absent, not held
    finally:
        dev.loop_stop()
        dev.disconnect()
        obs.close()
        host.close()


def test_a_sparkplug_broker_that_is_down_costs_the_durable_path_nothing(tmp_path, mosquitto, gateways):
    """The live sink's broker does not answer: the durable sink still delivers every sample, /readyz
    stays ready, the unreachable broker is logged once and what the live sink cannot hold is counted."""
    import httpx
    import paho.mqtt.client as paho

    from plantmrv.codec import decode_message
    from plantmrv.localservices import free_port
    from tests.test_gateway_support import metrics_value

    got: list[int] = []
    tap = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="spb-durable-tap")
    tap.on_message = lambda c, u, m: got.extend(
        int(t) for b in [decode_message(m.payload).batch] for t, s in zip(b.ts_ns.tolist(), b.series.tolist()) if b.table[s].field == "power_kw")
    tap.connect("127.0.0.1", mosquitto.port)
    tap.subscribe("plantmrv/v1/testsite/spbdown/data", qos=1)
    tap.loop_start()
    dev = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="spb-test-device-2")
    dev.connect("127.0.0.1", mosquitto.port)
    dev.loop_start()
    port = free_port()
    live = f"""      broker: {{url: "mqtt://127.0.0.1:{free_port()}", client_id: spbdown-spb}}
      backlog_max_samples: 3
"""
    try:
        gw = GatewayProcess(_gateway_yaml(tmp_path, mosquitto.port, "spbdown", live, port), tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_connected") >= 0, 20, "the gateway's /metrics")
        time.sleep(1.0)  # the device source subscribes
        for i in range(10):
            dev.publish("spbtest/P9/telemetry", json.dumps({"ts": T0_MS + i * 1000, "p": float(i)}), qos=1).wait_for_publish(5)
        wait_for(lambda: {T0_MS * 1_000_000 + i * 1_000_000_000 for i in range(10)} <= set(got), 20, "every sample on the durable path")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        wait_for(lambda: metrics_value(port, 'plantmrv_gateway_live_samples_dropped_total{reason="backlog_full",sink="sparkplug"}') > 0,
                 10, "the live sink's backlog drops, counted")
        assert gw.log().count("event=sparkplug_unreachable") == 1, gw.log()[-3000:]
    finally:
        dev.loop_stop()
        dev.disconnect()
        tap.loop_stop()
        tap.disconnect()


# --------------------------------------------------------------------------- the sink in process


def _sink(port: int, tmp_path, **kw) -> tuple[SparkplugSink, DurableBuffer]:
    store = DurableBuffer(tmp_path / "state.db", 1 << 20)
    cfg = SparkplugSinkConfig.model_validate({"type": "sparkplug", "group_id": kw.pop("group", "PlantB"), **kw})
    return SparkplugSink(cfg, MqttConfig(url=f"mqtt://127.0.0.1:{port}"), "s", "gwb", GatewayMetrics(), store,
                         client_id=f"spb-sink-{tmp_path.name}"), store


def _blob(rows) -> bytes:
    """rows: (measurement, asset or None, field, ts_ms, value, quality)."""
    table, idx = [], {}
    for meas, asset, fld, *_ in rows:
        s = Series.of(meas, fld, site="s", **({"asset": asset} if asset else {"gateway": "gwb"}))
        if s not in idx:
            idx[s] = len(table)
            table.append(s)
    return encode_message(SampleBatch(
        table, np.array([idx[Series.of(m, f, site="s", **({"asset": a} if a else {"gateway": "gwb"}))] for m, a, f, *_ in rows]),
        np.array([r[3] * 1_000_000 for r in rows], np.int64), np.array([r[4] for r in rows], float),
        np.array([r[5] for r in rows], np.uint8)))


async def _until(pred, what: str, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_sink_quality_datatypes_report_by_exception_history_seq_wrap_and_stale_devices(tmp_path, mosquitto):
    obs = Observer(mosquitto.port, "PlantB", "spb-observer-b")
    G, U, B = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD

    async def main():
        sink, store = _sink(mosquitto.port, tmp_path, device_stale_s=1.0)
        await sink.start()
        try:
            await _until(sink.ready, "the session")
            await sink.send([_blob([("pump", "P1", "power_kw", T0_MS, 5.0, G), ("pump", "P1", "running", T0_MS, 1.0, G),
                                    ("pump", "P2", "power_kw", T0_MS, 7.0, B), ("gateway", None, "buffer_depth", T0_MS, 12.0, G)])])
            await sink.send([_blob([("pump", "P1", "power_kw", T0_MS + 1000, 6.0, U), ("pump", "P1", "running", T0_MS + 1000, 0.5, G),
                                    ("pump", "P2", "power_kw", T0_MS + 1000, 8.0, G),
                                    ("pump", "P1", "power_kw", T0_MS + 2000, 6.0, U),  # unchanged: left out
                                    ("pump", "P2", "power_kw", T0_MS + 500, 7.5, G)])])  # sorted: before the 8.0
            await sink.send([_blob([("pump", "P2", "power_kw", T0_MS + 700, 7.7, G)])])  # older than P2's last: historical
            await _until(lambda: len(obs.of("DDATA")) >= 3, "DDATA of P1 and P2")
            nodes = metrics_by_name(obs.of("NBIRTH")[-1])
            assert nodes["gateway/buffer_depth"].datatype == INT64 and metric_value(nodes["gateway/buffer_depth"]) == 12.0
            p1 = obs.of("DBIRTH", "P1")[0]
            a1 = check_birth(p1, "DBIRTH")
            assert {m.name: (m.datatype, metric_value(m), metric_quality(m)) for m in p1.metrics} == {
                "pump/power_kw": (DOUBLE, 5.0, 192), "pump/running": (BOOLEAN, 1.0, 192)}
            p2 = metrics_by_name(obs.of("DBIRTH", "P2")[0])["pump/power_kw"]
            assert p2.is_null and metric_quality(p2) == 0  # BAD: null, Quality 0
            assert set(a1).isdisjoint(check_birth(obs.of("DBIRTH", "P2")[0], "DBIRTH"))  # aliases unique across the node
            d1 = {a1[m.alias]: m for m in obs.of("DDATA", "P1")[0].metrics}
            assert typed(d1["pump/power_kw"], DOUBLE) == 6.0 and metric_quality(d1["pump/power_kw"]) == 0  # UNCERTAIN: value, Quality 0
            assert d1["pump/running"].is_null and metric_quality(d1["pump/running"]) == 0  # 0.5 is no Boolean
            assert len(obs.of("DDATA", "P1")[0].metrics) == 2  # the unchanged sample at +2 s left out
            d2 = [m for d in obs.of("DDATA", "P2") for m in d.metrics]
            assert [(m.timestamp, typed(m, DOUBLE), m.is_historical, m.HasField("properties")) for m in d2] == [
                (T0_MS + 500, 7.5, False, True), (T0_MS + 1000, 8.0, False, False), (T0_MS + 700, 7.7, True, False)]
            assert metric_quality(d2[0]) == 192  # GOOD after BAD: Quality 192 said once

            # seq wraps 255 -> 0 over more than 256 messages
            for k in range(260):
                await sink.send([_blob([("pump", "P1", "power_kw", T0_MS + 10_000 + k, float(k), G)])])
            await _until(lambda: len(obs.of("DDATA", "P1")) >= 261, "260 more DDATA")
            check_seq(obs.since(0))
            assert {p.seq for p in obs.of("DDATA", "P1")} >= {255, 0}

            # a device silent for device_stale_s gets a DDEATH; its next sample a DBIRTH
            await _until(lambda: obs.of("DDEATH", "P1") and obs.of("DDEATH", "P2"), "the DDEATHs", 5)
            n = len(obs.of("DBIRTH", "P1"))
            await sink.send([_blob([("pump", "P1", "power_kw", T0_MS + 20_000, 1.5, G)])])
            reborn = await _until(lambda: obs.of("DBIRTH", "P1")[n:], "P1's DBIRTH after its DDEATH")
            assert metric_value(metrics_by_name(reborn[0])["pump/power_kw"]) == 259.0  # current value, then DATA
            await _until(lambda: any(typed(m, DOUBLE) == 1.5 for m in obs.of("DDATA", "P1")[-1].metrics), "the new value")
            assert not obs.of("DBIRTH", "P2")[1:]
            check_seq(obs.since(0))
            first_bdseq = sink.bdseq
        finally:
            await sink.close()
        death = await _until(lambda: obs.of("NDEATH"), "the NDEATH of a clean stop")
        assert metric_value(metrics_by_name(death[0])["bdSeq"]) == first_bdseq
        store.close()
        again, store = _sink(mosquitto.port, tmp_path)  # bdSeq survives the restart: one more
        assert again.bdseq == first_bdseq
        store.close()

    try:
        asyncio.run(main())
    finally:
        obs.close()


def test_sink_waits_for_its_primary_host(tmp_path, mosquitto):
    """With primary_host_id: no BIRTH until spBv1.0/STATE/<host> says online; a late (older) offline
    STATE is ignored; a current offline STATE makes it publish its NDEATH and start over (new bdSeq)."""
    import paho.mqtt.client as paho

    host = f"scada-{tmp_path.name}"[:60]
    state = f"spBv1.0/STATE/{host}"
    obs = Observer(mosquitto.port, "PlantC", "spb-observer-c")
    ctl = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="spb-host-ctl")
    ctl.connect("127.0.0.1", mosquitto.port)
    ctl.loop_start()

    def say(online: bool, ts: int) -> None:
        ctl.publish(state, json.dumps({"online": online, "timestamp": ts}), qos=1, retain=True).wait_for_publish(5)

    async def main():
        say(False, 100)
        sink, store = _sink(mosquitto.port, tmp_path, group="PlantC", primary_host_id=host)
        await sink.start()
        try:
            await _until(lambda: sink._connected, "the connection")
            await asyncio.sleep(0.5)
            assert not obs.of("NBIRTH") and not sink.ready()
            say(True, 200)
            nb = await _until(lambda: obs.of("NBIRTH"), "the NBIRTH once the host is online")
            bdseq = metric_value(metrics_by_name(nb[0])["bdSeq"])
            say(False, 150)  # an older session's death: ignored
            await asyncio.sleep(0.5)
            assert sink.ready() and not obs.of("NDEATH")
            say(False, 300)
            death = await _until(lambda: obs.of("NDEATH"), "the NDEATH when the host goes offline")
            assert metric_value(metrics_by_name(death[0])["bdSeq"]) == bdseq
            await _until(lambda: sink._connected and sink.bdseq == (bdseq + 1) % 256, "a new session")
            await asyncio.sleep(0.3)
            assert len(obs.of("NBIRTH")) == 1  # the retained STATE still says offline
            say(True, 400)
            nb = await _until(lambda: obs.of("NBIRTH")[1:], "the NBIRTH of the new session")
            assert metric_value(metrics_by_name(nb[0])["bdSeq"]) == (bdseq + 1) % 256
        finally:
            await sink.close()
            store.close()

    try:
        asyncio.run(main())
    finally:
        ctl.publish(state, b"", qos=1, retain=True).wait_for_publish(5)  # clear the retained STATE
        ctl.loop_stop()
        ctl.disconnect()
        obs.close()


def test_config_errors_are_located_and_sparkplug_is_no_durable_sink(tmp_path):
    from plantmrv.config import ConfigError, load_config
    from plantmrv.gateway.agent import check_runnable

    p = tmp_path / "gw.yaml"
    p.write_text("""site: {id: s}
gateway:
  id: g1
  sources:
    - type: sparkplug
      name: spb
      broker: {url: "mqtt://127.0.0.1:1883"}
      group: G
      mappings: [{measurement: pump, metrics: {power_kw: P}}]
  sink: {type: sparkplug}
  live_sinks:
    - type: sparkplug
      group_id: "a/b"
      metric: "{0}/{field}"
""")
    with pytest.raises(ConfigError) as exc:
        check_runnable(load_config(p), str(p))
    errs = "\n".join(str(i) for i in exc.value.issues)
    assert "gateway.sink" in errs and "gateway.live_sinks" in errs and "(line 10)" in errs, errs
    assert "gateway.live_sinks[0].group_id" in errs and "not a topic level" in errs, errs
    assert "gateway.live_sinks[0].metric" in errs and "placeholders" in errs, errs
    p.write_text(p.read_text().replace("  sink: {type: sparkplug}\n", "").replace('group_id: "a/b"', "group_id: G")
                 .replace('      metric: "{0}/{field}"\n', ""))
    with pytest.raises(ConfigError) as exc:
        check_runnable(load_config(p), str(p))
    assert f"{p}: gateway.live_sinks[0].broker (line 11): no broker: set it or the top-level `mqtt:` section" in [
        str(i) for i in exc.value.issues]
