"""kill -9 against what the gateway promises: nothing read is lost, nothing is invented, and every
repeat is counted. Real asyncua servers *without history* (what most PLCs offer), influxd,
mosquitto and ingest; an independent OPC UA subscriber records what the server produced."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid

import httpx
import paho.mqtt.client as paho
import pytest

from plantmrv.codec import decode_message
from plantmrv.config import load_config
from plantmrv.ingest.service import IngestService
from tests.test_gateway_support import (  # noqa: F401  (gateways is a fixture)
    GatewayProcess,
    TcpProxy,
    assert_contiguous,
    free_port,
    gateways,
    influx_points,
    metrics_value,
    running_opcua_server,
    wait_for,
    write_gateway_config,
)
from tests.test_ingest_support import write_config

PERIOD_S = 0.1
TAGS = 5


@pytest.fixture
def server_without_history(tmp_path):
    yield from running_opcua_server(tmp_path, tags=TAGS, period_s=PERIOD_S, history=False)


@pytest.fixture
def asyncua_server_as_is(tmp_path):
    """Without simulators/opcua_conformance.py: asyncua 2.1's TransferSubscriptions and Republish as they come."""
    yield from running_opcua_server(tmp_path, tags=TAGS, period_s=PERIOD_S, history=False, asyncua_as_is=True)


class IndependentSubscriber:
    """An asyncua client of its own (in a thread) subscribed to T0..T<n-1>: the ticks the server produced."""

    def __init__(self, url: str, tags: int):
        self.url, self.tags = url, tags
        self.seen: dict[str, set[int]] = {f"t{i}_kw": set() for i in range(tags)}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        from asyncua import Client

        subscriber = self

        class Handler:
            def datachange_notification(self, node, val, data):
                subscriber.seen[names[node.nodeid.to_string()]].add(int(val))

        async with Client(self.url) as client:
            nodes = [client.get_node(f"ns=2;s=T{i}") for i in range(self.tags)]
            names = {n.nodeid.to_string(): f"t{i}_kw" for i, n in enumerate(nodes)}
            sub = await client.create_subscription(PERIOD_S * 1000, Handler())
            await sub.subscribe_data_change(nodes, queuesize=100)
            self._ready.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.1)

    def start(self) -> "IndependentSubscriber":
        self._thread.start()
        assert self._ready.wait(20), "the independent subscriber did not subscribe"
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _kill_while_pending(gw: GatewayProcess, port: int) -> float:
    """kill -9 ``gw`` at a moment its metrics show samples read but not yet stored; return how many."""
    wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_read_total") > 0, 30, "the gateway storing samples")
    pending = wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_pending"), 20, "samples read, not yet stored")
    gw.kill9()
    return pending


def _check_against_subscriber(points: dict[str, dict[int, float]], seen: dict[str, set[int]]) -> None:
    """0 lost (every tick the subscriber saw between the gateway's first and last is stored), 0 invented
    (every stored tick was produced), every value right (value = tick)."""
    assert set(points) >= set(seen), f"fields missing in InfluxDB: {set(seen) - set(points)}"
    for field, ticks in seen.items():
        stored = {int(round(t / 1e9 / PERIOD_S)) for t, v in points[field].items() if v != 0.0}
        lo, hi = min(stored), max(stored)
        lost = sorted(k for k in ticks if lo <= k <= hi and k not in stored)
        assert not lost, f"{field}: {len(lost)} ticks the server produced were lost, e.g. {lost[:10]}"
        invented = sorted(stored - ticks)
        assert not invented, f"{field}: {len(invented)} stored ticks the server never produced, e.g. {invented[:10]}"
        assert_contiguous(points[field], PERIOD_S, field)


@pytest.mark.slow
def test_kill_9_while_samples_are_read_but_not_stored_loses_nothing_from_a_server_without_history(
        tmp_path, server_without_history, influx_db, influxd, gateways):
    """Five times: kill -9 the gateway the moment it holds samples it read but has not fsync'ed yet.
    The server keeps no history, so what was acknowledged to it but not stored would be gone."""
    subscriber = IndependentSubscriber(server_without_history.url, TAGS).start()
    port = free_port()
    cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=server_without_history.url, tags=TAGS, period_ms=PERIOD_S * 1000,
                               influx_url=influxd.url, database=influx_db.database, metrics_port=port)
    cfg.write_text(cfg.read_text().replace("batch_max_age_s: 0.2", "batch_max_age_s: 1.0"))  # a wide window to land in
    pending = []
    try:
        for _ in range(5):
            gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
            gateways.append(gw)
            pending.append(_kill_while_pending(gw, port))
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_sent_total") > 100, 30, "the last run sending")
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).text
        assert f"history: plc: {TAGS} tags without history (ns=2;s=T0," in ready, ready
        time.sleep(1)
        assert gw.stop() == 0
    finally:
        subscriber.stop()
    assert all(p > 0 for p in pending), pending
    _check_against_subscriber(influx_points(influx_db), subscriber.seen)
    log = gw.log()
    assert log.count("event=opcua_subscription_transferred") == 5, "each restart took the subscription over"
    assert "event=opcua_notification_lost" not in log and "Traceback" not in log, log[-3000:]
    assert "event=opcua_nodes_without_history" in log


class Tap:
    """A QoS 1 subscriber of its own on a gateway's data topic: (epoch, seq) of every message the broker passed on."""

    def __init__(self, host: str, port: int, topic: str):
        self.messages: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="tap-" + uuid.uuid4().hex[:8], clean_session=False)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.c.on_message = self._on_message
        self.c.connect(host, port, keepalive=10)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        if msg.dup:
            return  # the broker's redelivery to this tap, not something the gateway sent twice
        meta = decode_message(msg.payload).meta
        with self.lock:
            self.messages.append((meta["epoch"], meta["seq"]))

    def repeats(self) -> int:
        with self.lock:
            return len(self.messages) - len(set(self.messages))

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["direct", "broker"])
def test_restart_storm_loses_nothing_invents_nothing_and_counts_every_repeat(mode, tmp_path, server_without_history, influx_db,
                                                                              influxd, mosquitto, gateways):
    """20 kill -9s in about a minute, at random moments after the gateway read something. Broker
    mode: ingest's repeat count equals what a tap on the broker saw, and it counts no missing message;
    before every fifth kill the broker's PUBACKs stop reaching the gateway (the broker has the
    messages, the gateway does not know it), so the restarted gateway sends them again."""
    rng = random.Random(25)
    subscriber = IndependentSubscriber(server_without_history.url, TAGS).start()
    port = free_port()
    gw_id = f"storm-{mode}"
    proxy = TcpProxy(mosquitto.port)
    kw = dict(sink="influxdb", influx_url=influxd.url, database=influx_db.database) if mode == "direct" else \
        dict(sink="mqtt", mqtt_url=f"mqtt://127.0.0.1:{proxy.port}")
    cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=server_without_history.url, tags=TAGS, period_ms=PERIOD_S * 1000,
                               metrics_port=port, gateway_id=gw_id, **kw)
    ingest = tap = None
    if mode == "broker":
        tap = Tap(mosquitto.host, mosquitto.port, f"plantmrv/v1/testsite/{gw_id}/data")
        icfg = write_config(tmp_path, influxd.url, influx_db.database, mosquitto.url, validation={"permissive": True})
        ingest = IngestService(load_config(icfg)).start()
        assert ingest.wait_subscribed(20)
    try:
        t0 = time.monotonic()
        for i in range(20):
            gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
            gateways.append(gw)
            wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_read_total") > 0, 30, "the gateway storing samples")
            time.sleep(rng.uniform(0.0, 1.0))
            if mode == "broker" and i % 5 == 4:
                proxy.mute_replies()
                time.sleep(0.5)
            gw.kill9()
        storm_s = time.monotonic() - t0
        gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
        gateways.append(gw)
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_sent_total") > 100, 30, "the last run sending")
        time.sleep(1)
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_buffer_depth_samples") == 0, 30, "buffer drained")
        assert gw.stop() == 0
        if ingest is not None:
            tap_messages = len(tap.messages)
            wait_for(lambda: ingest.metrics.value("plantmrv_ingest_messages_acked_total") >= tap_messages, 30, "ingest caught up")
    finally:
        subscriber.stop()
        proxy.close()
        if ingest is not None:
            ingest.stop()
            tap.close()
    assert storm_s < 120, f"20 kills took {storm_s:.0f} s"
    _check_against_subscriber(influx_points(influx_db), subscriber.seen)
    log = gw.log()
    assert "event=opcua_notification_lost" not in log and "Traceback" not in log, log[-3000:]
    if mode == "broker":
        g = {"site": "testsite", "gateway": gw_id}
        m = ingest.metrics
        assert m.value("plantmrv_ingest_messages_missing_total", **g) == 0
        assert m.value("plantmrv_ingest_messages_repeated_total", **g, cause="redelivered") == 0
        assert m.value("plantmrv_ingest_messages_repeated_total", **g, cause="resent") == tap.repeats(), \
            "ingest counts exactly the repeats the broker passed on"
        assert tap.repeats() > 0, "the muted PUBACKs made the gateway send messages again"


@pytest.mark.slow
def test_kill_9_loses_no_device_message_the_gateway_had_read_but_not_stored(tmp_path, mosquitto, influx_db, influxd, gateways):
    """Device JSON over MQTT QoS 1: the gateway acknowledges a message to the broker only once its
    sample is stored. Killed three times while holding messages read but not stored, on restart
    it gets them again (persistent session): every message published arrives, each once."""
    port = free_port()
    source = """
- type: mqtt
  name: meters
  broker: {url: "%s"}
  mappings:
    - topic: durable/+/telemetry
      measurement: pv
      tags: {asset: "{topic[1]}"}
      timestamp: {path: ts, unit: ms}
      fields: {export_energy_kwh: e}
""" % mosquitto.url
    cfg = write_gateway_config(tmp_path / "gw.yaml", extra_source=source, influx_url=influxd.url, database=influx_db.database,
                               metrics_port=port, gateway_id="gw-durable-mqtt")
    cfg.write_text(cfg.read_text().replace("batch_max_age_s: 0.2", "batch_max_age_s: 1.0"))
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    wait_for(lambda: "event=mqtt_source_connected" in gw.log(), 30, "source connected")
    pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="meter-" + uuid.uuid4().hex[:8])
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    t0 = 1767225600000
    sent = [0]
    stop = threading.Event()

    def publish() -> None:  # a meter reading every 10 ms until the kills are over
        while not stop.is_set():
            k = sent[0]
            pub.publish("durable/m1/telemetry", f'{{"ts": {t0 + k * 1000}, "e": {k}}}', qos=1).wait_for_publish(5)
            sent[0] = k + 1
            time.sleep(0.01)

    sender = threading.Thread(target=publish, daemon=True)
    sender.start()
    try:
        pending = []
        for _ in range(3):
            pending.append(_kill_while_pending(gw, port))
            gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
            gateways.append(gw)
        wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_read_total") > 0, 30, "the last run storing samples")
        stop.set()
        sender.join(10)
        n = sent[0]
        wait_for(lambda: len(influx_points(influx_db, "pv").get("export_energy_kwh", {})) >= n, 30, f"{n} samples in InfluxDB")
        assert gw.stop() == 0
    finally:
        pub.loop_stop()
        pub.disconnect()
    assert all(p > 0 for p in pending), pending
    got = influx_points(influx_db, "pv")["export_energy_kwh"]
    assert got == {(t0 + k * 1000) * 1_000_000: float(k) for k in range(n)}


@pytest.mark.slow
def test_a_server_that_does_not_serve_transferred_subscriptions_gets_new_ones_once_and_for_all(tmp_path, asyncua_server_as_is,
                                                                                              influx_db, influxd, gateways):
    """asyncua 2.1's own server moves a subscription but keeps feeding it from the dead connection:
    the gateway notices the silence, says so, creates new subscriptions, and does not try again."""
    port = free_port()
    cfg = write_gateway_config(tmp_path / "gw.yaml", opcua_url=asyncua_server_as_is.url, tags=TAGS, period_ms=PERIOD_S * 1000,
                               influx_url=influxd.url, database=influx_db.database, metrics_port=port)
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_read_total") > 0, 40, "the gateway storing samples")
    gw.kill9()
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    wait_for(lambda: "event=opcua_transfer_unusable" in gw.log(), 40, "the silent transferred subscription noticed")
    wait_for(lambda: gw.log().count("event=opcua_subscribed") == 2, 40, "a new subscription")
    gw.kill9()
    gw = GatewayProcess(cfg, tmp_path / "gw.log").start()
    gateways.append(gw)
    wait_for(lambda: gw.log().count("event=opcua_subscribed") == 3, 40, "the next run subscribing anew")
    wait_for(lambda: metrics_value(port, "plantmrv_gateway_samples_read_total") > 100, 40, "the last run reading")
    assert gw.stop() == 0
    log = gw.log()
    assert log.count("event=opcua_subscription_transferred") == 1 and log.count("event=opcua_transfer_unusable") == 1
