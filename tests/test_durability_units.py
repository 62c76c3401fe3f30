"""The durability mechanisms without servers: the buffer's epoch and sequence, the agent's
acknowledge-after-fsync, the OPC UA subscription ledger and ingest's sequence accounting."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import yaml

from plantmrv.batch import SampleBatch, Series
from plantmrv.codec import decode_message, encode_message
from plantmrv.config import load_config
from plantmrv.gateway.agent import GatewayAgent
from plantmrv.gateway.buffer import DurableBuffer
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.gateway.opcua_durable import SubscriptionLedger
from plantmrv.ingest.deadletter import DeadLetterStore
from plantmrv.ingest.metrics import IngestMetrics
from plantmrv.ingest.sequence import SequenceTracker

SERIES = Series.of("pump", "power_kw", site="s", asset="P1")


def _batch(n: int = 3, t0: int = 1_800_000_000_000_000_000) -> SampleBatch:
    return SampleBatch.from_columns({SERIES: (t0 + np.arange(n), np.arange(n, dtype=float))})


# --------------------------------------------------------------------------- buffer


def test_buffer_sequence_never_restarts_while_the_file_lives_and_a_new_file_is_a_new_epoch(tmp_path):
    buf = DurableBuffer(tmp_path / "b.db", 10**9)
    epoch = buf.epoch
    for _ in range(3):
        seq = buf.next_id()
        buf.append(encode_message(_batch(), epoch=buf.epoch, seq=seq), 3, seq)
    buf.delete(buf.peek(10))  # everything sent: the buffer is empty
    buf.close()
    again = DurableBuffer(tmp_path / "b.db", 10**9)
    assert (again.epoch, again.rows, again.next_id()) == (epoch, 0, 4), "an emptied, reopened buffer continues its sequence"
    again.close()
    other = DurableBuffer(tmp_path / "other.db", 10**9)
    assert other.epoch != epoch and other.next_id() == 1 and other.new_epoch
    other.close()


# --------------------------------------------------------------------------- agent


def _agent(tmp_path, age_s: float = 60.0) -> GatewayAgent:
    doc = {"site": {"id": "s"}, "influxdb": {"url": "http://127.0.0.1:9", "database": "d"},
           "gateway": {"id": "gw", "sources": [{"type": "mqtt", "name": "dev", "broker": {"url": "mqtt://127.0.0.1:9"},
                                                 "mappings": [{"topic": "t/#", "measurement": "pump", "fields": {"power_kw": "p"}}]}],
                       "sink": {"type": "influxdb"}, "buffer": {"path": str(tmp_path / "b.db"), "batch_max_age_s": age_s},
                       "health": {"metrics_port": None}}}
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(doc))
    return GatewayAgent(load_config(path), path)


def test_agent_counts_samples_as_read_and_calls_acks_only_after_the_fsync(tmp_path):
    agent = _agent(tmp_path)
    emit = agent.emitter("dev")
    events = []
    emit(_batch(3), ack=lambda: events.append(("ack", agent.buffer.depth)), state={"k": "v1"})
    emit(SampleBatch.empty(), ack=lambda: events.append(("ack-empty", agent.buffer.depth)))
    assert events == [] and agent.metrics.samples_read == 0
    assert agent.metrics.registry.get_sample_value("plantmrv_gateway_samples_pending") == 3
    asyncio.run(agent.flush())
    assert events == [("ack", 3), ("ack-empty", 3)], "acks come after the samples before them are stored, in order"
    assert agent.metrics.samples_read == 3 and agent.buffer.get_state("k") == "v1"
    assert agent.metrics.registry.get_sample_value("plantmrv_gateway_samples_pending") == 0
    msg = decode_message(agent.buffer.peek(1)[0].blob)
    assert msg.meta["epoch"] == agent.buffer.epoch and msg.meta["seq"] == 1
    emit(SampleBatch.empty(), ack=lambda: events.append(("idle", 0)))
    assert events[-1] == ("idle", 0), "with nothing pending an ack is due at once"
    agent.buffer.close()


# --------------------------------------------------------------------------- OPC UA ledger


def test_ledger_acknowledges_only_up_to_the_stored_contiguous_point_and_asks_for_gaps():
    led = SubscriptionLedger("plc", "fp", GatewayMetrics())
    from plantmrv.gateway.opcua_durable import SubSeq

    led.subs[7] = SubSeq(7, 100.0)
    assert led.received(7, 1) == (True, [])
    ack1 = led.acker(7)
    assert led.received(7, 4) == (True, [2, 3]), "2 and 3 never came: Republish them"
    ack4 = led.acker(7)
    ack1()
    ack4()  # message 4 is stored, but 2 and 3 are not: the server keeps 4 until they are
    assert [(a.SubscriptionId, a.SequenceNumber) for a in led.take_acks()] == [(7, 1)]
    assert led.received(7, 2) == (True, [])
    led.lost(7, 3)  # the server no longer has 3
    led.acker(7)()
    assert [a.SequenceNumber for a in led.take_acks()] == [2, 4]
    assert led.received(7, 4) == (False, []), "a message already emitted is not emitted twice"
    assert led.keepalive(7, 7) == [5, 6]


def test_ledger_after_a_restart_acknowledges_what_was_stored_and_republishes_the_rest():
    before = SubscriptionLedger("plc", "fp", GatewayMetrics())
    from plantmrv.gateway.opcua_durable import SubSeq

    before.subs[9] = SubSeq(9, 100.0)
    for k in (1, 2, 3):
        before.received(9, k)
    state = before.state()  # stored with the batch holding message 3, which was not yet acknowledged
    after = SubscriptionLedger("plc", "fp", GatewayMetrics())
    after.load(state[after.state_key])
    assert after.subs[9].through == 3
    assert after.available(9, [3, 4, 6]) == [4, 5, 6], "5 is asked for too: the server may say it is gone"
    assert [a.SequenceNumber for a in after.take_acks()] == [3]
    changed = SubscriptionLedger("plc", "another config", GatewayMetrics())
    changed.load(state[changed.state_key])
    assert changed.subs == {}, "a subscription made for another configuration is not taken over"


# --------------------------------------------------------------------------- ingest


def test_ingest_counts_gaps_repeats_late_messages_and_epochs_per_gateway_and_remembers_them(tmp_path, caplog):
    store = DeadLetterStore(tmp_path / "dl.db")
    m = IngestMetrics()
    tr = SequenceTracker(store, m)
    topic = "plantmrv/v1/s1/gw1/data"
    with caplog.at_level(logging.WARNING, logger="plantmrv.ingest"):
        for seq in (5, 6, 9, 6, 7):
            tr.observe(topic, {"epoch": "e1", "seq": seq})
        tr.observe(topic, {"epoch": "e1", "seq": 9}, dup=True)
    g = {"site": "s1", "gateway": "gw1"}
    assert m.value("plantmrv_ingest_messages_missing_total", **g) == 2  # 7 and 8, when 9 came
    assert m.value("plantmrv_ingest_messages_late_total", **g) == 1  # 7
    assert m.value("plantmrv_ingest_messages_repeated_total", **g, cause="resent") == 1
    assert m.value("plantmrv_ingest_messages_repeated_total", **g, cause="redelivered") == 1
    assert "event=sequence_gap site=s1 gateway=gw1 epoch=e1 first=7 last=8 missing=2" in caplog.text
    tr.save()
    again = SequenceTracker(store, IngestMetrics())  # an ingest restart continues the count
    again.observe(topic, {"epoch": "e1", "seq": 9})
    again.observe(topic, {"epoch": "e2", "seq": 3})  # a new buffer file: its messages 1 and 2 never came
    assert again.metrics.value("plantmrv_ingest_messages_repeated_total", **g, cause="resent") == 1
    assert again.metrics.value("plantmrv_ingest_messages_missing_total", **g) == 2
    assert [(x.epoch, x.first, x.last) for x in store.gaps()] == [("e1", 7, 8), ("e2", 1, 2)]
    tr.observe(topic, {"seq": 3})  # an older gateway: no epoch
    assert m.value("plantmrv_ingest_messages_unsequenced_total", **g) == 1
    store.close()


def test_dead_letters_list_shows_each_gap_in_a_gateways_sequence(tmp_path):
    from typer.testing import CliRunner

    from plantmrv.ingest.cli import app
    from tests.test_ingest_support import write_config

    cfg = write_config(tmp_path, "http://127.0.0.1:9", "d", "mqtt://127.0.0.1:9")
    store = DeadLetterStore(tmp_path / "dead.db")
    SequenceTracker(store, IngestMetrics()).observe("plantmrv/v1/s1/gw1/data", {"epoch": "e1", "seq": 1})
    tr = SequenceTracker(store, IngestMetrics())
    tr.observe("plantmrv/v1/s1/gw1/data", {"epoch": "e1", "seq": 1})
    tr.observe("plantmrv/v1/s1/gw1/data", {"epoch": "e1", "seq": 5})
    store.close()
    res = CliRunner().invoke(app, ["dead-letters", "list", "-c", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "s1/gw1  messages 2..4 of epoch e1 never arrived (3 messages)" in res.output
    assert "1 sequence gaps (3 messages)" in res.output


def test_a_value_the_server_flags_as_after_a_queue_overflow_is_counted_and_logged(caplog):
    """OPC UA marks the value after discarded ones (a monitored item's queue was full) with the
    Overflow info bit: the gateway says so, and the message's samples still go out with its ack."""
    from datetime import datetime, timezone

    from asyncua import ua

    from plantmrv.gateway.opcua_durable import SubSeq
    from plantmrv.gateway.opcua_source import OpcUaSource, OpcUaSourceConfig

    cfg = OpcUaSourceConfig.model_validate({
        "type": "opcua", "name": "plc", "url": "opc.tcp://127.0.0.1:4840/",
        "groups": [{"name": "g", "measurement": "pump", "nodes": [{"field": f"t{i}_kw", "node_id": f"ns=2;s=T{i}"} for i in range(2)]}],
    })
    src = OpcUaSource(cfg, "site", GatewayMetrics())
    got = []
    src._emit = lambda batch, watermark_ns=None, covers=None, **durable: got.append((batch, durable))
    sub = src._sub_object(100.0, [(cfg.groups[0], [0, 1])], 10)
    sub.sub_id = 3
    src.ledger.subs[3] = SubSeq(3, 100.0)
    ts = datetime(2026, 12, 4, tzinfo=timezone.utc)
    items = [ua.MonitoredItemNotification(ClientHandle=1, Value=ua.DataValue(ua.Variant(5.0, ua.VariantType.Double),
                                                                             ua.StatusCode(0x00000480), SourceTimestamp=ts)),
             ua.MonitoredItemNotification(ClientHandle=2, Value=ua.DataValue(ua.Variant(6.0, ua.VariantType.Double), SourceTimestamp=ts))]
    msg = ua.NotificationMessage(SequenceNumber=1, PublishTime=ts, NotificationData=[ua.DataChangeNotification(MonitoredItems=items)])
    with caplog.at_level(logging.WARNING, logger="plantmrv.gateway.opcua"):
        asyncio.run(sub.publish_callback(ua.PublishResult(SubscriptionId=3, NotificationMessage=msg)))
    assert "event=opcua_queue_overflow source=plc tags=1 nodes=ns=2;s=T0" in caplog.text
    assert src.metrics.registry.get_sample_value("plantmrv_gateway_source_errors_total", {"source": "plc", "kind": "queue_overflow"}) == 1
    (batch, durable), = got
    assert batch.value.tolist() == [5.0, 6.0] and set(durable) == {"ack", "state"}
