"""Hypothesis-generated hostile traffic through real mosquitto into a running ingest and real influxd.

Invariants: the service never crashes; every message is acknowledged only once its samples are
written or dead-lettered; every refused sample is in the dead-letter store with a reason; every
valid sample in the same stream is written.
"""

from __future__ import annotations

import json
import math
import time
import uuid

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantmrv.batch import SampleBatch, Series
from plantmrv.codec import decode_message, encode_message
from plantmrv.config import load_config
from plantmrv.ingest.service import IngestService
from plantmrv.limits import DEFAULT_LIMITS
from plantmrv.lineprotocol import LineProtocolError, series_prefix
from plantmrv.timebounds import DEFAULT_BOUNDS
from tests.test_ingest_support import Publisher, now_base_ns, wait_until, write_config

SKEW_S = 300
MAX_BYTES = 100_000
names = st.one_of(
    st.text(min_size=0, max_size=12),
    st.sampled_from(["pump", "flow_m3_per_h", "Hải Phòng", "a b", "a,b=c", "x\\", "time", "#c", "x\ny", "é\u200bü", "\x00"]),
    st.just("H" * 70_000),  # a huge string: past InfluxDB's 64 KiB series-key limit
)
timestamps = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 10**12).map(lambda d: now_base_ns() - d * 1000),  # recent
    st.integers(0, 10**6).map(lambda d: time.time_ns() + (SKEW_S + 600) * 10**9 + d * 10**9),  # too far ahead
)
values = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e6, 1e6)


@st.composite
def hostile_batches(draw):
    n_series = draw(st.integers(1, 4))
    table = []
    for _ in range(n_series):
        tags = draw(st.dictionaries(names.filter(lambda k: k != "site"), names, max_size=2))
        table.append(Series(draw(names), tuple(sorted(tags.items())), draw(names)))
    table = list(dict.fromkeys(table))
    n = draw(st.integers(0, 30))
    series = draw(st.lists(st.integers(0, len(table) - 1), min_size=n, max_size=n))
    ts = draw(st.lists(timestamps, min_size=n, max_size=n, unique=True))  # unique: one point per sample
    vals = draw(st.lists(values, min_size=n, max_size=n))
    quality = draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=n, max_size=n))
    return SampleBatch(table, np.array(series, np.int32), np.array(ts, np.int64), np.array(vals, np.float64), np.array(quality, np.uint8))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=8,
)
json_docs = st.one_of(
    json_values,
    st.fixed_dictionaries({"data": st.fixed_dictionaries({"kw": json_values})}),
    st.fixed_dictionaries({"data": st.fixed_dictionaries({"kw": st.floats(-1e6, 1e6) | st.integers(-(10**400), 10**400)})}),
)


def _legal(s: Series) -> bool:
    if max(len(x) for x in (s.measurement, s.field, *(y for kv in s.tags for y in kv))) > DEFAULT_LIMITS.max_name_chars:
        return False
    try:
        series_prefix(s)
        return True
    except LineProtocolError:
        return False


def _json_ok(doc) -> bool:
    """One mapped field `data.kw`, stamped on receipt: written iff a finite number (or bool); a list: every reading."""
    if isinstance(doc, list):
        return bool(doc) and all(_json_ok(d) for d in doc)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict) or "kw" not in doc["data"]:
        return False
    v = doc["data"]["kw"]
    if isinstance(v, bool):
        return True
    if not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def test_hostile_payloads_never_crash_ingest_and_every_reject_is_dead_lettered(tmp_path, influx_db, mosquitto):
    cfg_path = write_config(
        tmp_path, influx_db.url, influx_db.database, mosquitto.url, linger_s=0.05,
        validation={"permissive": True, "max_future_skew_s": SKEW_S, "max_message_bytes": MAX_BYTES},
        device_json=[{"topic": "dev/+/json", "measurement": "pump", "tags": {"site": "hyp", "asset": "{topic[1]}"}, "fields": {"power_kw": "data.kw"}}],
    )
    svc = IngestService(load_config(cfg_path)).start()
    assert svc.wait_subscribed(10)
    pub = Publisher(mosquitto.host, mosquitto.port)
    counter = iter(range(10**9))

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        batches=st.lists(hostile_batches(), min_size=1, max_size=3),
        garbage=st.lists(st.binary(max_size=300), max_size=2),
        docs=st.lists(json_docs, max_size=3),
        raw_json=st.lists(st.binary(max_size=100), max_size=2),
        huge=st.booleans(),
    )
    def check(batches, garbage, docs, raw_json, huge):
        k = next(counter)
        site = f"h{k}-{uuid.uuid4().hex[:6]}"
        gw_topic = f"plantmrv/v1/{site}/gw/data"
        json_topic = f"dev/a{k}-{uuid.uuid4().hex[:6]}/json"
        now = time.time_ns()
        good = SampleBatch([Series.of("pump", "power_kw", site=site, asset="OK")], np.zeros(5, np.int32), now_base_ns() + np.arange(5) * 10**9, np.arange(5.0))
        msgs = [(gw_topic, encode_message(good))]
        expect_written = 5
        expect_refused = 0
        dead_payloads = []
        for b in batches:
            b = SampleBatch([Series(s.measurement, tuple(sorted(s.tags + (("site", site),))), s.field) for s in b.table], b.series, b.ts_ns, b.value, b.quality)
            legal = np.array([_legal(s) for s in b.table], dtype=bool)
            ok = legal[b.series] if len(b) else np.zeros(0, bool)
            # a non-GOOD sample needs no finite value (it goes to sample_quality); every one needs a plausible time
            ok &= (np.isfinite(b.value) | (b.quality != 0)) & (b.ts_ns <= now + SKEW_S * 10**9) & ~DEFAULT_BOUNDS.outside(b.ts_ns)
            payload = encode_message(b, compress=bool(len(b) % 2))
            msgs.append((gw_topic, payload))
            if len(payload) > MAX_BYTES:
                dead_payloads.append(payload)  # refused unread, whole
            else:
                expect_refused += int((~ok).sum())
        for g in garbage:
            msgs.append((gw_topic, g))
            dead_payloads.append(g)
        if huge:
            blob = b"PMRV" + b"\xff" * 150_000
            msgs.append((gw_topic, blob))
            dead_payloads.append(blob)
        json_ok = 0
        for d in docs:
            payload = json.dumps(d, allow_nan=True).encode()
            msgs.append((json_topic, payload))
            if _json_ok(d):
                json_ok += 1
            else:
                dead_payloads.append(payload)
        for r in raw_json:
            msgs.append((json_topic, r))
            try:
                d = json.loads(r)
                ok = _json_ok(d)
            except (ValueError, RecursionError):
                ok = False
            if ok:
                json_ok += 1
            else:
                dead_payloads.append(r)

        acked0 = svc.metrics.value("plantmrv_ingest_messages_acked_total")
        written0 = svc.metrics.value("plantmrv_ingest_points_written_total")
        last_id = max([d.id for d in svc.store.list(include_replayed=True)] or [0])
        pub.publish_all(msgs)
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_messages_acked_total") - acked0 >= len(msgs), 15, f"{len(msgs)} acks")
        assert svc.fatal is None and svc._batcher.is_alive()

        rows = svc.store.list(after_id=last_id)
        assert all(r.reason and ":" in r.reason for r in rows)
        stored = {r.payload for r in rows}
        for p in dead_payloads:
            assert p in stored, f"refused payload {p[:80]!r} is not in the dead-letter store"
        gw_rows = [r for r in rows if r.topic == gw_topic and r.kind == "batch" and r.code not in ("decode", "too_large")]
        refused_in_store = sum(len(decode_message(r.payload).batch) for r in gw_rows)
        written = svc.metrics.value("plantmrv_ingest_points_written_total") - written0
        # quality routing writes non-GOOD samples twice (raw + sample_quality), BAD ones only there: count samples, not lines
        assert refused_in_store >= expect_refused
        influx_refused = sum(len(decode_message(r.payload).batch) for r in gw_rows if r.code == "influx_rejected")
        assert refused_in_store - influx_refused == expect_refused
        assert written >= expect_written + json_ok - 0
        res = influx_db.query(f"SELECT count(power_kw) FROM pump WHERE site='{site}' AND asset='OK'")
        assert int(res[0].columns["count"][0]) == 5, "valid messages in the hostile stream must all be written"

    try:
        check()
    finally:
        pub.close()
        svc.stop()
