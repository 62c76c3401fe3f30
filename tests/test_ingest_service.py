"""Ingest on real mosquitto and influxd: exact landing, outages, crashes, scale-out, metrics."""

from __future__ import annotations

import time

import numpy as np
import pytest

from plantmrv.config import load_config
from plantmrv.ingest.service import IngestService
from tests.test_ingest_support import (
    Background,
    IngestProcess,
    Publisher,
    batch_messages,
    count_points,
    expected_values,
    now_base_ns,
    pump_batch,
    scrape,
    stored_values,
    wait_until,
    write_config,
)


@pytest.fixture
def publisher(mosquitto):
    pub = Publisher(mosquitto.host, mosquitto.port)
    yield pub
    pub.close()


def _service(path):
    svc = IngestService(load_config(path)).start()
    assert svc.wait_subscribed(10), "ingest did not subscribe"
    return svc


def test_ingest_lands_100k_points_exactly(tmp_path, influx_db, mosquitto, publisher):
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url)
    batch = pump_batch("s100k", assets=5, ts0_ns=now_base_ns(), steps=5000)  # 5 x 4 x 5000 = 100,000
    assert len(batch) == 100_000
    svc = _service(cfg)
    try:
        publisher.publish_all(batch_messages(batch, 5000, "s100k"))
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_points_written_total") >= 100_000, 60, "100k points written")
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_messages_acked_total") >= 20, 10, "all 20 messages acked")
    finally:
        svc.stop()
    assert count_points(influx_db, where="WHERE site='s100k'") == 100_000
    got, want = stored_values(influx_db, "s100k"), expected_values(batch)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key][0], want[key][0], err_msg=str(key))
        np.testing.assert_array_equal(got[key][1], want[key][1], err_msg=str(key))
    assert svc.store.path.exists()


def test_ingest_metrics_endpoint_reports_messages_points_and_rejects(tmp_path, influx_db, mosquitto, publisher):
    from plantmrv.localservices import free_port

    port = free_port()
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, metrics={"port": port})
    batch = pump_batch("smet", assets=1, ts0_ns=now_base_ns(), steps=10)
    bad = pump_batch("smet", assets=1, ts0_ns=now_base_ns(), steps=2)
    bad.value[0] = np.nan
    svc = _service(cfg)
    try:
        publisher.publish_all(batch_messages(batch, 1000, "smet") + batch_messages(bad, 1000, "smet"))
        wait_until(lambda: scrape(port).get("plantmrv_ingest_messages_acked_total", 0) >= 2, 20, "2 messages acked")
        m = scrape(port)
    finally:
        svc.stop()
    assert m['plantmrv_ingest_messages_total{kind="batch"}'] == 2
    assert m["plantmrv_ingest_points_written_total"] == 40 + 7
    assert m['plantmrv_ingest_rejected_samples_total{reason="not_finite"}'] == 1
    assert m["plantmrv_ingest_write_seconds_count"] >= 1
    assert m["plantmrv_ingest_batch_lines_sum"] == 47
    assert "plantmrv_ingest_lag_seconds" in m and "plantmrv_ingest_influx_errors_total" not in m or True


@pytest.mark.parametrize("batch_lines", [5000, 60])
def test_ingest_dead_letters_influx_refused_lines_and_writes_the_rest(tmp_path, influx_db, mosquitto, publisher, batch_lines):
    """A field type conflict (per measurement and shard in InfluxDB) makes it refuse lines without naming them: ingest isolates them.
    With batch_lines=60 the message is 7 bodies, POSTed in parallel: refusals still map back to their samples."""
    base = now_base_ns()
    influx_db.write_body(f"pump,asset=P0,site=sconf power_kw=1i {base - 10**9}\n".encode())  # power_kw is an integer now
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, batch_lines=batch_lines)
    batch = pump_batch("sconf", assets=2, ts0_ns=base, steps=50)  # 400 samples, 100 of them power_kw
    svc = _service(cfg)
    try:
        publisher.publish_all(batch_messages(batch, 400, "sconf"))
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_messages_acked_total") >= 1, 30, "message acked")
        written = svc.metrics.value("plantmrv_ingest_points_written_total")
        letters = svc.store.list(code="influx_rejected")
    finally:
        svc.stop()
    assert written == 300
    assert sum(d.samples for d in letters) == 100 and len(letters) == 1
    assert all("field type conflict" in d.reason for d in letters)
    from plantmrv.codec import decode_message

    refused = decode_message(letters[0].payload).batch
    assert {s.key() for s in refused.table} == {"pump,asset=P0,site=sconf power_kw", "pump,asset=P1,site=sconf power_kw"}
    assert count_points(influx_db, where="WHERE site='sconf'") == 300 + 1


@pytest.mark.slow
def test_ingest_keeps_data_at_broker_while_influxd_is_down_30s(tmp_path, influxd_private, mosquitto, publisher):
    db = "outage"
    cfg = write_config(tmp_path, influxd_private.url, db, mosquitto.url, retry_min_s=0.2, retry_max_s=2.0, max_inflight_messages=50)
    client = influxd_private.client(database=db)
    client.create_database()
    svc = _service(cfg)
    base = now_base_ns()
    batches = [pump_batch("sout", assets=5, ts0_ns=base + k * 10**12, steps=100, seed=k) for k in range(30)]  # 30 x 2,000
    try:
        def publish():
            for b in batches:
                publisher.publish_all(batch_messages(b, 500, "sout"))
                time.sleep(0.2)

        feeder = Background(publish)
        feeder.start()
        time.sleep(1.5)
        influxd_private.stop()
        t_down = time.monotonic()
        time.sleep(30)
        assert svc.metrics.value("plantmrv_ingest_influx_errors_total", kind="unreachable") > 0
        acked_while_down = svc.metrics.value("plantmrv_ingest_messages_acked_total")
        time.sleep(1)
        assert svc.metrics.value("plantmrv_ingest_messages_acked_total") == acked_while_down, "acked while InfluxDB was down"
        influxd_private.start()
        assert time.monotonic() - t_down >= 30
        feeder.join_checked()
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_messages_acked_total") >= 120, 90, "all 120 messages acked")
        assert svc.store.count() == 0
    finally:
        svc.stop()
    assert count_points(client, where="WHERE site='sout'") == 60_000
    got = stored_values(client, "sout")
    want = expected_values(type(batches[0]).concat(batches))
    for key in want:
        np.testing.assert_array_equal(got[key][0], want[key][0])
        np.testing.assert_array_equal(got[key][1], want[key][1])
    client.close()


def test_ingest_killed_with_sigkill_and_restarted_loses_nothing(tmp_path, influx_db, mosquitto, publisher):
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, linger_s=0.3)
    proc = IngestProcess(cfg, tmp_path / "ingest.log")
    proc.start()
    base = now_base_ns()
    batches = [pump_batch("skill", assets=5, ts0_ns=base + k * 10**12, steps=250, seed=k) for k in range(20)]  # 20 x 5,000
    try:
        def publish():
            for b in batches:
                publisher.publish_all(batch_messages(b, 1000, "skill"))
                time.sleep(0.1)

        feeder = Background(publish)
        feeder.start()
        wait_until(lambda: count_points(influx_db, where="WHERE site='skill'") > 10_000, 30, "ingest under load")
        proc.kill()
        time.sleep(2)  # the broker queues for the offline persistent session meanwhile
        proc.start()
        feeder.join_checked()
        wait_until(lambda: count_points(influx_db, where="WHERE site='skill'") >= 100_000, 60, "all points after restart")
        time.sleep(1)
    finally:
        proc.stop()
    assert proc.proc.returncode == 0, proc.log()
    assert count_points(influx_db, where="WHERE site='skill'") == 100_000
    got, want = stored_values(influx_db, "skill"), expected_values(type(batches[0]).concat(batches))
    for key in want:
        np.testing.assert_array_equal(got[key][0], want[key][0])
        np.testing.assert_array_equal(got[key][1], want[key][1])


def test_two_ingest_processes_on_one_shared_subscription_write_each_point_once(tmp_path, influx_db, mosquitto, publisher):
    from plantmrv.localservices import free_port

    group = "share" + str(free_port())
    ports = [free_port(), free_port()]
    procs = []
    for i, port in enumerate(ports):
        cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, name=f"ingest{i}.yaml", group=group,
                           metrics={"port": port}, dead_letters={"path": str(tmp_path / f"dead{i}.db")})
        procs.append(IngestProcess(cfg, tmp_path / f"ingest{i}.log", client_id=f"{group}-{i}").start())
    batch = pump_batch("sshare", assets=5, ts0_ns=now_base_ns(), steps=2000)  # 40,000 samples in 80 messages
    try:
        publisher.publish_all(batch_messages(batch, 500, "sshare"))
        wait_until(lambda: sum(scrape(p).get("plantmrv_ingest_messages_acked_total", 0) for p in ports) >= 80, 60, "80 messages acked")
        per_process = [scrape(p) for p in ports]
    finally:
        for p in procs:
            p.stop()
    points = [m["plantmrv_ingest_points_written_total"] for m in per_process]
    messages = [m['plantmrv_ingest_messages_total{kind="batch"}'] for m in per_process]
    assert sum(points) == 40_000, points  # each point written by exactly one process
    assert sum(messages) == 80 and min(messages) > 0, messages  # and both took a share
    assert count_points(influx_db, where="WHERE site='sshare'") == 40_000


def test_ingest_holds_at_most_max_inflight_messages_while_influxd_is_down(tmp_path, influxd_private, mosquitto, publisher):
    """Backpressure: the broker keeps the backlog (MQTT 5 Receive Maximum); ingest's memory stays bounded."""
    db = "bounded"
    client = influxd_private.client(database=db)
    client.create_database()
    cfg = write_config(tmp_path, influxd_private.url, db, mosquitto.url, retry_min_s=0.2, retry_max_s=0.5, max_inflight_messages=5, linger_s=0.05)
    svc = _service(cfg)
    try:
        influxd_private.stop()
        batch = pump_batch("sbound", assets=1, ts0_ns=now_base_ns(), steps=100)  # 400 samples in 40 messages
        publisher.publish_all(batch_messages(batch, 10, "sbound"))
        peak = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            peak = max(peak, svc._inflight_msgs)
            time.sleep(0.02)
        assert 0 < peak <= 5
        assert svc.metrics.value("plantmrv_ingest_messages_acked_total") == 0
        influxd_private.start()
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_messages_acked_total") >= 40, 30, "the backlog acked after restart")
    finally:
        svc.stop()
    assert count_points(client, where="WHERE site='sbound'") == 400
    client.close()


def test_ingest_refuses_samples_older_than_the_retention_policy(tmp_path, influx_db, mosquitto, publisher):
    influx_db.create_retention_policy("two_hours", "2h", default=True)
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url)
    old = pump_batch("sret", assets=1, ts0_ns=time.time_ns() - 3 * 3600 * 10**9, steps=2)
    new = pump_batch("sret", assets=1, ts0_ns=time.time_ns() - 600 * 10**9, steps=2)
    svc = _service(cfg)
    try:
        assert svc.processor.validator.max_age_ns == 7200 * 10**9
        publisher.publish_all(batch_messages(old, 100, "sret") + batch_messages(new, 100, "sret"))
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_messages_acked_total") >= 2, 20, "2 messages acked")
        letters = svc.store.list(code="too_old")
    finally:
        svc.stop()
    assert len(letters) == 1 and letters[0].samples == 8 and "retention window of 7200 s" in letters[0].reason
    assert count_points(influx_db, where="WHERE site='sret'") == 8


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_ingest_session_keeps_messages_published_while_it_was_stopped(tmp_path, influx_db, mosquitto, publisher, protocol):
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, protocol=protocol)
    site = "ssess" + protocol.replace(".", "")
    first = _service(cfg)
    first.stop()  # clean stop: the broker keeps the persistent session and queues for it
    batch = pump_batch(site, assets=2, ts0_ns=now_base_ns(), steps=50)
    publisher.publish_all(batch_messages(batch, 40, site))
    again = _service(cfg)
    try:
        wait_until(lambda: again.metrics.value("plantmrv_ingest_points_written_total") >= 400, 20, "queued messages after restart")
    finally:
        again.stop()
    assert count_points(influx_db, where=f"WHERE site='{site}'") == 400


@pytest.mark.parametrize("linger_s", [5.0, 0.001])
def test_ingest_encodes_a_backlog_in_bigger_jobs_with_bodies_of_at_most_batch_lines(tmp_path, influx_db, mosquitto, publisher, monkeypatch, linger_s):
    """Messages waiting at the broker are joined into jobs of several bodies (one encode call for
    tens of thousands of lines costs less CPU per line); each body still holds <= batch_lines lines.
    Also when they waited longer than linger_s (after an outage, a burst): taking a backlog costs no waiting."""
    from plantmrv.ingest.processor import Processor
    from plantmrv.ingest.service import BACKLOG_JOB_BODIES
    from plantmrv.ingest.writer import ResilientWriter

    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, batch_lines=2000, linger_s=linger_s)
    _service(cfg).stop()  # the persistent session queues what is published next
    batch = pump_batch("sbacklog", assets=5, ts0_ns=now_base_ns(), steps=2000)  # 40,000 points
    publisher.publish_all(batch_messages(batch, 1000, "sbacklog"))  # 40 messages
    encoded: list[int] = []
    encode = ResilientWriter.encode
    monkeypatch.setattr(ResilientWriter, "encode", lambda self, b: (encoded.append(len(b)), encode(self, b))[1])
    process = Processor.process
    first = []

    def slow_first(self, *args, **kwargs):  # the backlog piles up in ingest's queue, older than linger_s
        if not first:
            first.append(time.sleep(1.0))
        return process(self, *args, **kwargs)

    monkeypatch.setattr(Processor, "process", slow_first)
    svc = _service(cfg)
    try:
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_points_written_total") >= 40_000, 60, "backlog written")
        bodies = svc.metrics.value("plantmrv_ingest_batch_lines_count")
        full_or_less = svc.metrics.value("plantmrv_ingest_batch_lines_bucket", le="5000.0")
        at_most_2000 = svc.metrics.value("plantmrv_ingest_batch_lines_bucket", le="2500.0")
    finally:
        svc.stop()
    assert sum(encoded) == 40_000
    assert max(encoded) > 2000 and max(encoded) <= 2000 * BACKLOG_JOB_BODIES
    assert len(encoded) <= 40_000 // 2000 // 2  # at least two bodies' worth per encode on average
    assert bodies >= 20 and full_or_less == bodies and at_most_2000 == bodies
    assert count_points(influx_db, where="WHERE site='sbacklog'") == 40_000
