"""Mapped device JSON (plantmrv.devicejson), shared by the gateway's mqtt source and ingest's device_json."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from plantmrv.config import ConfigError, MqttConfig, load_config
from plantmrv.devicejson import (
    DeviceJsonMapping,
    DeviceJsonRouter,
    DeviceJsonTopic,
    JsonDecodeError,
    check_topic_filter,
    get_path,
    timestamp_ns,
    topic_matches,
)
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.gateway.mqtt_source import MqttSource

NOW = 1_800_000_000 * 10**9


# --------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    "pattern, topic, expected",
    [("a/+/c", "a/b/c", True), ("a/+/c", "a/b/d", False), ("a/#", "a/b/c", True), ("a/#", "a", True), ("+/b", "$SYS/b", False),
     ("a/+", "a/b/c", False), ("a/b", "a/b", True)],
)
def test_topic_filter_matching_follows_mqtt(pattern, topic, expected):
    assert topic_matches(pattern, topic) is expected


@given(st.lists(st.sampled_from(["a", "b", "+", "c", ""]), min_size=1, max_size=4), st.booleans(),
       st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=1, max_size=5))
def test_topic_wildcards_agree_with_paho(pattern, hash_tail, topic):
    from paho.mqtt.client import topic_matches_sub

    p, t = "/".join(pattern + (["#"] if hash_tail else [])), "/".join(topic)
    assert topic_matches(p, t) == topic_matches_sub(p, t), (p, t)


@pytest.mark.parametrize("pattern, words", [("a/#/b", "'#' must be"), ("a/b+", "'+' must be a whole level"), ("", "empty"),
                                            ("$share/g/a", "$share")])
def test_bad_topic_filters_are_refused_with_the_level_at_fault(pattern, words):
    with pytest.raises(ValueError, match=words.replace("$", r"\$").replace("+", r"\+")):
        check_topic_filter(pattern)


# --------------------------------------------------------------------------- paths and timestamps


def test_dotted_paths_index_objects_and_lists():
    doc = {"data": {"pumps": [{"kw": 3}, {"kw": 4}]}}
    assert get_path(doc, "data.pumps.1.kw") == (True, 4)
    assert get_path(doc, "data.pumps.2.kw") == (False, None)
    assert get_path(doc, "data.x") == (False, None)
    assert get_path(doc, "data.pumps.kw") == (False, None)


def test_timestamp_units_and_rfc3339():
    assert timestamp_ns(1767225600, "s") == 1767225600 * 10**9
    assert timestamp_ns(1767225600.5, "s") == 1767225600_500_000_000
    assert timestamp_ns(1767225600123, "ms") == 1767225600123_000_000
    assert timestamp_ns("2026-01-01T00:00:00Z", "rfc3339") == 1767225600 * 10**9
    assert timestamp_ns("2026-01-01T07:00:00+07:00", "rfc3339") == 1767225600 * 10**9


@pytest.mark.parametrize(
    "value, unit, words",
    [(True, "ms", "not a ms timestamp"), ("1767225600", "s", "not a s timestamp"), (float("nan"), "s", "not a s timestamp"),
     (5, "ms", "outside 2000-01-01T00:00:00Z..2100-01-01"), (1767225600, "ns", "outside 2000-01-01T00:00:00Z..2100-01-01"), ("2026-01-01T00:00:00", "rfc3339", "without its UTC offset"),
     ("yesterday", "rfc3339", "not an RFC 3339 time"), (1767225600, "rfc3339", "not an RFC 3339 string")],
)
def test_bad_timestamps_are_refused_with_the_reason(value, unit, words):
    with pytest.raises(ValueError, match=words):
        timestamp_ns(value, unit)


@settings(max_examples=300, deadline=None)
@given(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30), st.sampled_from(["s", "ms", "us", "ns", "rfc3339"]))
def test_timestamp_parser_returns_a_time_in_range_or_a_reason(value, unit):
    try:
        ns = timestamp_ns(value, unit)
    except ValueError as exc:
        assert str(exc).startswith("is ")
        return
    assert 946_684_800 * 10**9 <= ns <= 4_102_444_800 * 10**9


# --------------------------------------------------------------------------- decoding


def _mapping(**kw) -> DeviceJsonMapping:
    base = {"topic": "devices/+/telemetry", "measurement": "pump", "tags": {"site": "danang", "asset": "{topic[1]}"},
            "fields": {"flow_m3_per_h": "data.flow", "power_kw": "data.kw", "running": "on"}}
    base.update(kw)
    return DeviceJsonMapping(DeviceJsonTopic(**base))


def test_device_json_maps_paths_tags_and_millisecond_timestamps():
    m = _mapping(timestamp={"path": "ts", "unit": "ms"})
    out = m.decode("devices/P7/telemetry", json.dumps({"ts": 1_700_000_000_123, "data": {"flow": 12.5, "kw": 3}, "on": True}).encode(), NOW)
    assert not out.rejects
    b = out.batch
    assert {b.table[i].key() for i in b.series} == {
        "pump,asset=P7,site=danang flow_m3_per_h", "pump,asset=P7,site=danang power_kw", "pump,asset=P7,site=danang running"}
    assert b.ts_ns.tolist() == [1_700_000_000_123_000_000] * 3
    assert b.value.tolist() == [12.5, 3.0, 1.0]


def test_device_json_scales_and_offsets_and_takes_default_tags_the_mapping_does_not_set():
    cfg = DeviceJsonTopic(topic="pv/+/telemetry", measurement="pv", tags={"asset": "{topic[1]}"}, timestamp={"path": "ts", "unit": "ms"},
                          fields={"ac_power_kw": {"path": "ac.p_w", "scale": 0.001}, "export_energy_kwh": "e",
                                  "module_temp_c": {"path": "t_k", "offset": -273.15}})
    out = DeviceJsonMapping(cfg, default_tags={"site": "bd"}).decode(
        "pv/inv07/telemetry", b'{"ts": 1767225600123, "ac": {"p_w": 48210.5}, "e": 12, "t_k": 300}', NOW)
    assert not out.rejects
    assert [s.key() for s in out.batch.table] == ["pv,asset=inv07,site=bd ac_power_kw", "pv,asset=inv07,site=bd export_energy_kwh",
                                                  "pv,asset=inv07,site=bd module_temp_c"]
    assert out.batch.value.tolist() == pytest.approx([48.2105, 12.0, 26.85])
    assert out.batch.ts_ns.tolist() == [1767225600123_000_000] * 3
    own_site = DeviceJsonMapping(cfg.model_copy(update={"tags": {"site": "x", "asset": "A"}}), default_tags={"site": "bd"})
    assert own_site.tags_for("pv/inv07/telemetry") == {"site": "x", "asset": "A"}


def test_device_json_list_of_readings_with_rfc3339_and_receipt_time():
    m = _mapping(timestamp={"path": "t", "unit": "rfc3339"})
    docs = [{"t": "2026-01-02T03:04:05.5Z", "data": {"flow": 1, "kw": 2}, "on": 0}, {"t": "2026-01-02T03:04:06+00:00", "data": {"flow": 3, "kw": 4}, "on": 1}]
    out = m.decode("devices/P1/telemetry", json.dumps(docs).encode(), NOW)
    assert len(out.batch) == 6 and not out.rejects
    assert sorted(set(out.batch.ts_ns.tolist())) == [1767323045_500_000_000, 1767323046_000_000_000]
    receipt = _mapping().decode("devices/P1/telemetry", json.dumps(docs[0]).encode(), NOW)
    assert set(receipt.batch.ts_ns.tolist()) == {NOW}


def test_device_json_refuses_only_the_bad_values_and_names_their_paths():
    m = _mapping(timestamp={"path": "ts", "unit": "ms"})
    out = m.decode("devices/P1/telemetry", b'{"ts": 1700000000000, "data": {"flow": "12.5"}, "on": 1}', NOW)
    assert len(out.batch) == 1 and out.batch.value.tolist() == [1.0]
    reasons = sorted((r.code, r.path, r.detail) for r in out.rejects)
    assert reasons == [("json_missing", "data.kw", "data.kw (field power_kw) is missing"),
                       ("json_type", "data.flow", "data.flow (field flow_m3_per_h) is '12.5', not a number")]
    bad_ts = m.decode("devices/P1/telemetry", b'{"ts": "yesterday", "data": {"flow": 1, "kw": 1}, "on": 1}', NOW)
    assert len(bad_ts.batch) == 0 and bad_ts.rejects[0].code == "json_timestamp" and "ts is 'yesterday'" in bad_ts.rejects[0].detail
    listed = m.decode("devices/P1/telemetry", b'[{"ts": 1700000000000, "data": {"flow": 1, "kw": NaN}, "on": 1}]', NOW)
    assert len(listed.batch) == 2
    assert [(r.code, r.path, r.detail) for r in listed.rejects] == [
        ("not_finite", "[0].data.kw", "[0].data.kw (field power_kw) is nan, not a finite number")]


@pytest.mark.parametrize("payload, words", [(b"{not json", "not JSON"), (b"[]", "non-empty list"), (b"[1, 2]", "list"), (b"3", "int")])
def test_device_json_refuses_a_payload_that_is_not_objects_whole(payload, words):
    with pytest.raises(JsonDecodeError, match=words):
        _mapping().decode("devices/P1/telemetry", payload, NOW)


def test_router_finds_the_first_matching_mapping_and_names_an_unmapped_topic():
    a = DeviceJsonTopic(topic="devices/+/telemetry", measurement="pump", fields={"power_kw": "kw"})
    b = DeviceJsonTopic(topic="devices/#", measurement="meter", fields={"energy_kwh": "e"})
    router = DeviceJsonRouter([a, b])
    assert router.find("devices/P1/telemetry").cfg is a and router.find("devices/M1/state").cfg is b
    assert router.decode("devices/M1/state", b'{"e": 5}', NOW).batch.table[0].measurement == "meter"
    with pytest.raises(JsonDecodeError, match="'other/x' matches no mapping"):
        router.decode("other/x", b"{}", NOW)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
       lambda k: st.lists(k, max_size=4) | st.dictionaries(st.sampled_from(["ts", "data", "flow", "kw", "on", "x"]), k, max_size=4)).map(
       lambda d: json.dumps(d).encode()))
def test_device_json_decoder_accounts_for_every_value_of_any_payload(payload):
    m = _mapping(timestamp={"path": "ts", "unit": "s"}, fields={"flow_m3_per_h": "data.flow", "power_kw": {"path": "data.kw", "scale": 1e300},
                                                                "running": "on"})
    try:
        out = m.decode("devices/P1/telemetry", payload, NOW)
    except JsonDecodeError as exc:
        assert str(exc)
        return
    records = json.loads(payload)
    n_records = len(records) if isinstance(records, list) else 1
    ts_rejects = sum(1 for r in out.rejects if r.code == "json_timestamp")
    assert len(out.batch) + len(out.rejects) - ts_rejects + 3 * ts_rejects == 3 * n_records
    assert all(v == v and abs(v) != float("inf") for v in out.batch.value.tolist())
    assert all(r.path and r.path.split(".")[-1] in r.detail for r in out.rejects)


# --------------------------------------------------------------------------- one config shape for gateway and ingest

SHARED = {"topic": "pv/+/telemetry", "measurement": "pv", "tags": {"site": "bd", "asset": "{topic[1]}"},
          "fields": {"ac_power_kw": {"path": "ac.p_w", "scale": 0.001}, "export_energy_kwh": "e"}, "timestamp": {"path": "ts", "unit": "ms"}}


def test_one_mapping_shape_loads_in_gateway_and_ingest_and_decodes_alike(tmp_path):
    f = tmp_path / "both.yaml"
    f.write_text(yaml.safe_dump({
        "site": {"id": "bd"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "gateway": {"id": "g1", "sources": [{"type": "mqtt", "name": "d", "mappings": [SHARED]}]},
        "ingest": {"device_json": [SHARED]},
    }))
    cfg = load_config(f)
    gw = DeviceJsonRouter(cfg.gateway.sources[0].mappings, default_tags={"site": "bd"})
    ing = DeviceJsonRouter(cfg.ingest.device_json)
    payload = b'{"ts": 1767225600123, "ac": {"p_w": 48210.5}, "e": "n/a"}'
    a, b = gw.decode("pv/inv07/telemetry", payload, NOW), ing.decode("pv/inv07/telemetry", payload, NOW)
    assert a.batch.table == b.batch.table and a.batch.value.tolist() == b.batch.value.tolist() == [48.2105]
    assert a.rejects == b.rejects and a.rejects[0].path == "e"


@pytest.mark.parametrize(
    "change, path, words",
    [({"topic": "pv/#/x"}, "mappings[0].topic", "'#' must be"),
     ({"fields": {"power_kw": "ac..p_w"}}, "mappings[0].fields", "field 'power_kw': 'ac..p_w' is not a dotted JSON path"),
     ({"tags": {"asset": "{topic[9]}"}}, "mappings[0]", "beyond the levels"),
     ({"fields": {"power_kw": {"path": "p", "scal": 2}}}, "mappings[0].fields.power_kw", "scal"),
     ({"timestamp": {"path": "ts", "unit": "iso"}}, "mappings[0].timestamp.unit", "")],
)
def test_bad_gateway_mapping_is_refused_at_its_key_path(tmp_path, change, path, words):
    f = tmp_path / "gw.yaml"
    f.write_text(yaml.safe_dump({"site": {"id": "bd"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
                                 "gateway": {"id": "g1", "sources": [{"type": "mqtt", "name": "d", "mappings": [{**SHARED, **change}]}]}}))
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    text = str(exc.value)
    assert f"{f}: gateway.sources[0].{path}" in text and words in text and "(line " in text


# --------------------------------------------------------------------------- the gateway source


def test_gateway_mqtt_source_sends_the_good_values_and_counts_and_logs_the_bad_ones(caplog):
    cfg = load_config_source(SHARED)
    metrics = GatewayMetrics()
    src = MqttSource(cfg, "bd", metrics, MqttConfig(url="mqtt://127.0.0.1:1883"))
    sent, marks = [], []

    def emit(batch, watermark_ns=None, covers=None):
        sent.append(batch)
        marks.append((watermark_ns, [batch.table[i].field for i in covers]))

    with caplog.at_level(logging.WARNING, logger="plantmrv.gateway.mqtt_source"):
        src.handle("pv/inv07/telemetry", b'{"ts": 1767225600123, "ac": {"p_w": "high"}, "e": 12}', emit, NOW)
        src.handle("pv/inv07/telemetry", b"{not json", emit, NOW)
        src.handle("pv/inv07/telemetry", b'{"ts": 1767225600123}', emit, NOW)
    assert len(sent) == 1 and sent[0].value.tolist() == [12.0] and sent[0].table[0].key() == "pv,asset=inv07,site=bd export_energy_kwh"
    # the reading vouches for the field it carried, as of its own time, not for the refused one
    assert marks == [(1767225600123 * 1_000_000, ["export_energy_kwh"])]
    assert metrics.malformed == 1  # samples are counted as read by the agent, once stored
    assert metrics.registry.get_sample_value("plantmrv_gateway_source_errors_total", {"source": "d", "kind": "refused_value"}) == 3
    lines = [r.getMessage() for r in caplog.records]
    assert any("event=value_refused source=d topic=pv/inv07/telemetry path=ac.p_w code=json_type" in ln and "'high'" in ln for ln in lines)
    assert any("event=payload_rejected source=d topic=pv/inv07/telemetry reason=payload is not JSON" in ln for ln in lines)
    assert sum("event=value_refused" in ln and "is missing" in ln for ln in lines) == 2  # the last payload: both fields


def load_config_source(mapping: dict):
    from plantmrv.gateway.mqtt_source import MqttSourceConfig

    return MqttSourceConfig(type="mqtt", name="d", mappings=[mapping])


def test_field_unit_converts_to_the_unit_the_field_name_states():
    from plantmrv.devicejson import DeviceJsonMapping, DeviceJsonTopic

    m = DeviceJsonMapping(DeviceJsonTopic.model_validate({
        "topic": "pv/+", "measurement": "pv",
        "fields": {"ac_power_kw": {"path": "ac.p_w", "unit": "W"}, "module_temp_c": {"path": "t", "unit": "degF"},
                   "flow_m3_per_h": {"path": "q", "scale": 0.1, "unit": "L/s"}}}))
    d = m.decode("pv/inv1", b'{"ac": {"p_w": 48210.5}, "t": 212, "q": 100}', 1_767_225_600 * 10**9)
    vals = {d.batch.table[s].field: v for s, v in zip(d.batch.series, d.batch.value)}
    assert vals["ac_power_kw"] == pytest.approx(48.2105)
    assert vals["module_temp_c"] == pytest.approx(100.0)
    assert vals["flow_m3_per_h"] == pytest.approx(36.0)


def test_field_unit_mismatch_is_a_located_error():
    from pydantic import ValidationError

    from plantmrv.devicejson import DeviceJsonTopic

    with pytest.raises(ValidationError, match=r"field 'flow_m3_per_h': unit: 'MW' cannot be converted to 'm3/h' \(power vs volume flow\)"):
        DeviceJsonTopic.model_validate({"topic": "a", "measurement": "pump", "fields": {"flow_m3_per_h": {"path": "q", "unit": "MW"}}})


def test_a_report_by_exception_device_vouches_for_every_field_and_its_statuses_are_qualities():
    """A device that sends only what changed: a reading without a field says the field is
    unchanged as of the reading's time; a Bad status makes a BAD sample (a gap downstream); the
    gateway's coverage then stores the unchanged fields again every minute."""
    from plantmrv.batch import Quality, SampleBatch
    from plantmrv.gateway.coverage import CoverageTracker
    from plantmrv.gateway.metrics import GatewayMetrics
    from plantmrv.gateway.mqtt_source import MqttSource

    cfg = load_config_source(dict(SHARED, report_by_exception=True, status="status"))
    src = MqttSource(cfg, "bd", GatewayMetrics(), MqttConfig(url="mqtt://127.0.0.1:1883"))
    tracker = CoverageTracker(lambda _s: 60 * 10**9, "gw", "d")  # what the agent does with each emit
    stored = []

    def emit(batch, watermark_ns=None, covers=None):
        stored.append(tracker.observe(batch, watermark_ns, covers))

    t0 = 1767225600000  # ms
    for dt_s, body in [(0, {"ac": {"p_w": 5000}, "e": 10}), (30, {}), (61, {}), (90, {"ac": {"p_w": 6000}}),
                       (100, {"status": {"export_energy_kwh": "BadSensorFailure"}}), (200, {})]:
        src.handle("pv/inv07/telemetry", json.dumps({"ts": t0 + dt_s * 1000, **body}).encode(), emit, NOW)
    got = SampleBatch.concat(stored)
    rows = sorted((got.table[s].field, int((t - t0 * 10**6) // 10**9), float(v) if q != Quality.BAD else "BAD")
                  for s, t, v, q in zip(got.series, got.ts_ns, got.value, got.quality))
    fields = {f: [(t, v) for ff, t, v in rows if ff == f] for f in ("ac_power_kw", "export_energy_kwh")}
    # power: its reading, a heartbeat after a minute of silence, the hold before its change, the
    # change, a heartbeat at the last reading
    assert fields["ac_power_kw"] == [(0, 5.0), (61, 5.0), (90, 6.0), (200, 6.0)]
    # energy: held until the last reading before it went bad, then BAD and no heartbeat after:
    # its silence is a gap
    assert fields["export_energy_kwh"] == [(0, 10.0), (61, 10.0), (90, 10.0), (100, "BAD")]
    # without report_by_exception an absent field is refused and vouched for by nothing
    plain = MqttSource(load_config_source(SHARED), "bd", GatewayMetrics(), MqttConfig(url="mqtt://127.0.0.1:1883"))
    marks = []
    plain.handle("pv/inv07/telemetry", json.dumps({"ts": t0, "e": 3}).encode(), lambda b, w=None, c=None: marks.append([b.table[i].field for i in c]), NOW)
    assert marks == [["export_energy_kwh"]]
