"""Hostile input against a running ingest on real mosquitto and influxd: forged sites refused even
without a broker ACL, compression bombs and hostile headers cost bounded memory, a dead letter
that cannot be decoded never blocks replay."""

from __future__ import annotations

import subprocess
import threading
import time

import numpy as np
import psutil
import pytest

from plantmrv.batch import SampleBatch, Series
from plantmrv.codec import encode_message
from plantmrv.config import load_config
from plantmrv.ingest.deadletter import DeadLetterStore
from plantmrv.ingest.service import IngestService
from plantmrv.localservices import free_port
from tests.helpers import compression_bomb, craft_message
from tests.test_ingest_support import PLANTMRV, IngestProcess, Publisher, now_base_ns, scrape, wait_until, write_config

DEEP_HEADER = b'{"series":[],"n":0,"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
# over the idle process (~66 MB). The largest table the limits admit (a 2 MiB header, 28,000 series)
# costs ~50 MB of Python objects while parsed and cached; the bombs and the deep header almost
# nothing. Before bounded decoding one 305 kB bomb took ingest from ~70 to ~700 MB.
RSS_BOUND_MB = 100


@pytest.fixture
def publisher(mosquitto):
    pub = Publisher(mosquitto.host, mosquitto.port)
    yield pub
    pub.close()


def test_ingest_refuses_samples_of_another_site_when_the_broker_lets_them_through(tmp_path, influx_db, mosquitto, publisher):
    """Defence in depth: with no ACL in the way (the harness may publish anywhere), a batch on
    gw-danang's topic carrying hcmc's meter is dead-lettered; danang's own samples are written."""
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, linger_s=0.05, validation={"permissive": True})
    svc = IngestService(load_config(cfg)).start()
    try:
        assert svc.wait_subscribed(10)
        t0 = now_base_ns()
        table = [Series.of("pump", "energy_kwh", site="danang", asset="pump1"), Series.of("vsd", "energy_kwh", site="hcmc", asset="intake1")]
        forged = SampleBatch(table, [0, 1, 0, 1], [t0, t0, t0 + 10**9, t0 + 10**9], [895_252.0, 1.0, 895_253.0, 1.0])
        topic = "plantmrv/v1/danang/gw-danang/data"
        lying_header = encode_message(forged.take([1, 3]), site="hcmc", gateway="gw-hcmc")
        publisher.publish_all([(topic, encode_message(forged, site="danang", gateway="gw-danang", seq=1)), (topic, lying_header)])
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_messages_acked_total") >= 2, 15, "both messages acknowledged")
        dead = svc.store.list()
    finally:
        svc.stop()
    assert sorted((d.code, d.samples) for d in dead) == [("topic_mismatch", 2), ("topic_mismatch", 2)]
    assert any("site='hcmc', but its topic is site 'danang'" in d.reason for d in dead)
    assert any("header says site='hcmc'" in d.reason for d in dead)
    assert not influx_db.query("SELECT * FROM vsd"), "hcmc's meter must not be written from danang's gateway"
    assert influx_db.query("SELECT energy_kwh FROM pump")[0].columns["energy_kwh"].tolist() == [895_252.0, 895_253.0]


def test_compression_bombs_and_hostile_headers_leave_ingest_memory_bounded(tmp_path, influx_db, mosquitto, publisher):
    """A real `plantmrv ingest run`: 300 MB bombs of ~300 kB (one lying about its size, one announcing
    it), a header nested 10,000 deep, a series with 1,000 tags, a table of 28,000 series (2 MiB, the
    header limit), then ordinary data. Ingest keeps
    running, dead-letters each with its reason, writes the data, and its RSS stays within
    RSS_BOUND_MB of its idle size."""
    port = free_port()
    cfg = write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, linger_s=0.05, metrics={"port": port},
                       validation={"permissive": True})
    ing = IngestProcess(cfg, tmp_path / "ingest.log").start()
    proc = psutil.Process(ing.proc.pid)
    stop = threading.Event()
    try:
        time.sleep(0.5)
        idle = proc.memory_info().rss
        peak = [idle]

        def sample():
            while not stop.is_set():
                try:
                    peak[0] = max(peak[0], proc.memory_info().rss)
                except psutil.NoSuchProcess:
                    return
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        inflated = 300 * 1024 * 1024
        lying = compression_bomb(inflated)
        announced = compression_bomb(inflated, header=b'{"series":[["pump",{"site":"s"},"power_kw"]],"n":%d}' % (inflated // 21))
        wide = craft_message(b'{"series":[["pump",{' + b",".join(b'"k%d":"v"' % i for i in range(1000)) + b'},"power_kw"]],"n":0}')
        table = ",".join(f'["pump",{{"site":"s","asset":"A{i:06d}","x":"{i}"}},"power_kw"]' for i in range(28_000))
        heavy = craft_message(f'{{"series":[{table}],"n":0}}'.encode())  # a real-looking table at the size limit
        assert len(lying) < 400_000 and len(heavy) < 2 * 1024 * 1024
        ts = now_base_ns()
        good = encode_message(SampleBatch([Series.of("pump", "power_kw", site="s", asset="P1")], np.zeros(5, np.int32),
                                          ts + np.arange(5) * 10**9, np.arange(5.0)), site="s", gateway="gw")
        topic = "plantmrv/v1/s/gw/data"
        msgs = [(topic, lying), (topic, announced), (topic, craft_message(DEEP_HEADER)), (topic, wide), (topic, heavy)] * 3 + [(topic, good)]
        publisher.publish_all(msgs)
        wait_until(lambda: scrape(port).get("plantmrv_ingest_messages_acked_total", 0) >= len(msgs), 30, "every message acknowledged")
        stop.set()
        assert ing.proc.poll() is None, ing.log()
    finally:
        stop.set()
        ing.stop()
    grown_mb = (peak[0] - idle) / 2**20
    print(f"ingest RSS: idle {idle / 2**20:.1f} MB, peak {peak[0] / 2**20:.1f} MB (+{grown_mb:.1f} MB)")
    assert grown_mb < RSS_BOUND_MB, f"ingest grew by {grown_mb:.0f} MB (idle {idle / 2**20:.0f} MB)"
    store = DeadLetterStore(tmp_path / "dead.db")
    codes = sorted(d.code for d in store.list())
    assert codes == ["decode"] * 3 + ["too_deep"] * 3 + ["too_large"] * 3 + ["too_many_tags"] * 3, codes
    reasons = {d.code: d.reason for d in store.list()}
    assert "longer than its header announces" in reasons["decode"] and "inflates past 16777216 bytes" in reasons["too_large"]
    res = influx_db.query("SELECT count(power_kw) FROM pump WHERE site='s' AND asset='P1'")
    assert int(res[0].columns["count"][0]) == 5
    assert "Traceback" not in ing.log()


def test_a_dead_letter_ingest_cannot_decode_never_blocks_replay(tmp_path, influx_db, mosquitto, publisher):
    """The header nested 10,000 deep is dead-lettered as too_deep (not an internal RecursionError);
    `dead-letters replay --all` refuses it again, reports it, and replays the rows after it."""
    def config(schema):
        return write_config(tmp_path, influx_db.url, influx_db.database, mosquitto.url, linger_s=0.05, group="replay",
                            validation={"schema": schema})

    strict = config({"pump": ["power_kw"]})
    svc = IngestService(load_config(strict)).start()
    try:
        assert svc.wait_subscribed(10)
        ts = now_base_ns()
        later = encode_message(SampleBatch([Series.of("pump", "torque_nm", site="s", asset="P1")], [0, 0], [ts, ts + 10**9], [4.5, 5.5]))
        publisher.publish_all([("plantmrv/v1/s/gw/data", craft_message(DEEP_HEADER)), ("plantmrv/v1/s/gw/data", later)])
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_messages_acked_total") >= 2, 15, "both acknowledged")
        codes = [d.code for d in svc.store.list()]
    finally:
        svc.stop()
    assert codes == ["too_deep", "unknown_field"]
    fixed = config({"pump": ["power_kw", "torque_nm"]})
    r = subprocess.run([PLANTMRV, "ingest", "dead-letters", "replay", "--all", "-c", str(fixed)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr  # the deep one stays refused
    assert "Traceback" not in r.stdout + r.stderr
    assert "[1/2] id=1 written=0 still_refused=0 new_ids=3" in r.stdout and "[2/2] id=2 written=2" in r.stdout, r.stdout
    assert influx_db.query("SELECT torque_nm FROM pump")[0].columns["torque_nm"].tolist() == [4.5, 5.5]
    store = DeadLetterStore(tmp_path / "dead.db")
    assert [(d.id, d.code) for d in store.list()] == [(3, "too_deep")]
