"""Ingest pieces without the broker: config, device-JSON mapping, validation, dead-letter CLI (on real influxd)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.cli import app
from plantmrv.codec import decode_message, encode_message
from plantmrv.config import ConfigError, load_config
from plantmrv.ingest.config import IngestConfig
from plantmrv.ingest.deadletter import DeadLetterStore
from plantmrv.ingest.device_json import DeviceJsonMapping, DeviceJsonTopic, JsonDecodeError, topic_matches
from plantmrv.ingest.service import Processor
from plantmrv.ingest.validate import Validator, parse_go_duration_s

REPO = Path(__file__).resolve().parents[1]
NOW = 1_800_000_000 * 10**9


def test_example_ingest_config_loads_with_its_device_json_mappings():
    cfg = load_config(REPO / "examples" / "ingest.yaml")
    assert cfg.ingest.group == "ingest" and cfg.mqtt.client_id
    assert [m.topic for m in cfg.ingest.device_json] == ["devices/+/telemetry", "pv/+/+/state"]
    assert cfg.ingest.validation.schema_["pump"]  # default: the data model


@pytest.mark.parametrize(
    "entry, path, words",
    [
        ({"topic": "devices/#/x", "measurement": "pump", "fields": {"power_kw": "kw"}}, "ingest.device_json[0].topic", "'#' must be"),
        ({"topic": "$share/g/a", "measurement": "pump", "fields": {"power_kw": "kw"}}, "ingest.device_json[0].topic", "$share"),
        ({"topic": "a/+", "measurement": "pump", "tags": {"asset": "{topic[5]}"}, "fields": {"power_kw": "kw"}}, "ingest.device_json[0]", "beyond"),
        ({"topic": "a/+", "measurement": "pump", "fields": {"power_kw": "data..kw"}}, "ingest.device_json[0].fields", "dotted JSON path"),
        ({"topic": "a/+", "measurement": "pump", "fields": {}}, "ingest.device_json[0].fields", ""),
    ],
)
def test_bad_device_json_mapping_is_refused_at_its_key_path(tmp_path, entry, path, words):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"ingest": {"device_json": [entry]}}))
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    text = str(exc.value)
    assert f"{f}: {path}" in text and words in text and "(line " in text


def test_unknown_ingest_key_is_named_with_its_line(tmp_path):
    f = tmp_path / "typo.yaml"
    f.write_text("ingest:\n  linger_s: 1\n  batch_line: 10\n")
    with pytest.raises(ConfigError, match=r"ingest.batch_line \(line 3\): unknown key"):
        load_config(f)


@pytest.mark.parametrize(
    "pattern, topic, expected",
    [("a/+/c", "a/b/c", True), ("a/+/c", "a/b/d", False), ("a/#", "a/b/c", True), ("a/#", "a", True), ("+/b", "$SYS/b", False),
     ("a/+", "a/b/c", False), ("a/b", "a/b", True)],
)
def test_topic_filter_matching_follows_mqtt(pattern, topic, expected):
    assert topic_matches(pattern, topic) is expected


def _mapping(**kw):
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
    reasons = sorted((r.code, r.detail) for r in out.rejects)
    assert reasons == [("json_missing", "data.kw (field power_kw) is missing"), ("json_type", "data.flow (field flow_m3_per_h) is '12.5', not a number")]
    bad_ts = m.decode("devices/P1/telemetry", b'{"ts": "yesterday", "data": {"flow": 1, "kw": 1}, "on": 1}', NOW)
    assert len(bad_ts.batch) == 0 and bad_ts.rejects[0].code == "json_timestamp" and "ts is 'yesterday'" in bad_ts.rejects[0].detail


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
       lambda k: st.lists(k, max_size=4) | st.dictionaries(st.sampled_from(["ts", "data", "flow", "kw", "on", "x"]), k, max_size=4)).map(
       lambda d: json.dumps(d).encode()))
def test_device_json_decoder_accounts_for_every_value_of_any_payload(payload):
    m = _mapping(timestamp={"path": "ts", "unit": "s"})
    try:
        out = m.decode("devices/P1/telemetry", payload, NOW)
    except JsonDecodeError as exc:
        assert str(exc)
        return
    records = json.loads(payload)
    n_records = len(records) if isinstance(records, list) else 1
    ts_rejects = sum(1 for r in out.rejects if r.code == "json_timestamp")
    assert len(out.batch) + len(out.rejects) - ts_rejects + 3 * ts_rejects == 3 * n_records


def _validator(**kw):
    args = dict(schema={"pump": ["power_kw"]}, permissive=False, max_future_skew_s=60, max_age_s=86400)
    args.update(kw)
    return Validator(**args)


def test_validator_refuses_unknown_names_nonfinite_future_and_expired_samples_with_reasons():
    table = [Series.of("pump", "power_kw", site="a"), Series.of("pump", "foo_kw", site="a"), Series.of("boiler", "power_kw", site="a"),
             Series.of("pump", "power_kw", site="bad\nsite")]
    series = [0, 0, 0, 0, 1, 2, 3]
    ts = [NOW, NOW + 120 * 10**9, NOW - 2 * 86400 * 10**9, NOW, NOW, NOW, NOW]
    vals = [1.0, 2.0, 3.0, np.nan, 5.0, 6.0, 7.0]
    valid, rejects = _validator().validate(SampleBatch(table, series, ts, vals), NOW)
    assert valid.value.tolist() == [1.0] and valid.table == [table[0]]
    got = {r.code: r.rows.tolist() for r in rejects}
    assert got == {"unknown_field": [4], "unknown_measurement": [5], "illegal_name": [6], "not_finite": [3], "future_timestamp": [1], "too_old": [2]}
    assert all(r.reason().startswith(r.code + ": ") for r in rejects)
    assert "foo_kw" in next(r.detail for r in rejects if r.code == "unknown_field")


def test_permissive_validation_accepts_any_writable_name_but_not_illegal_ones():
    table = [Series.of("anything", "x_kw", site="a"), Series.of("", "x", site="a")]
    valid, rejects = _validator(permissive=True).validate(SampleBatch(table, [0, 1], [NOW, NOW], [1.0, 2.0]), NOW)
    assert len(valid) == 1 and [r.code for r in rejects] == ["illegal_name"]


def test_retention_durations_parse_as_influxdb_writes_them():
    assert parse_go_duration_s("168h0m0s") == 168 * 3600
    assert parse_go_duration_s("1h30m") == 5400
    assert parse_go_duration_s("0s") is None


def test_processor_keeps_refused_samples_of_a_batch_as_a_replayable_message():
    p = Processor(IngestConfig(), "plantmrv/v1", None)
    table = [Series.of("pump", "power_kw", site="a", asset="P1"), Series.of("pump", "foo_kw", site="a", asset="P1")]
    batch = SampleBatch(table, [0, 1, 0, 1], [NOW - 10**9] * 4, [1.0, 2.0, 3.0, 4.0], [Quality.GOOD, Quality.GOOD, Quality.BAD, Quality.GOOD])
    out = p.process("plantmrv/v1/a/gw/data", encode_message(batch, site="a", seq=3), NOW, now_ns=NOW)
    assert out.kind == "batch" and out.samples_in == 4
    assert [d.code for d in out.dead] == ["unknown_field"] and out.dead[0].samples == 2
    refused = decode_message(out.dead[0].payload)
    assert refused.meta == {"site": "a", "seq": 3} and refused.batch.value.tolist() == [2.0, 4.0]
    # the BAD sample goes to sample_quality only (docs/data-model.md)
    keys = sorted(out.batch.table[i].measurement for i in out.batch.series)
    assert keys == ["pump", "sample_quality", "sample_quality"]


def test_dead_letters_cli_lists_shows_and_replays_after_the_config_is_fixed(tmp_path, influx_db):
    dl = tmp_path / "dead.db"

    def config(schema):
        f = tmp_path / "ingest.yaml"
        f.write_text(yaml.safe_dump({"influxdb": {"url": influx_db.url, "database": influx_db.database},
                                     "ingest": {"dead_letters": {"path": str(dl)}, "validation": {"schema": schema}}}))
        return f

    strict = config({"pump": ["power_kw"]})
    p = Processor(load_config(strict).ingest, "plantmrv/v1", None)
    now = time.time_ns()
    ts = (now // 10**9 - 3600) * 10**9
    batch = SampleBatch([Series.of("pump", "power_kw", site="cli"), Series.of("pump", "pressure_bar", site="cli")], [0, 1, 1], [ts, ts, ts + 10**9], [1.0, 2.5, 3.5])
    out = p.process("plantmrv/v1/cli/gw/data", encode_message(batch), now)
    store = DeadLetterStore(dl)
    store.add_many(out.dead)
    store.close()

    runner = CliRunner()
    res = runner.invoke(app, ["ingest", "dead-letters", "list", "-c", str(strict)])
    assert res.exit_code == 0, res.output
    assert "unknown_field" in res.output and "pressure_bar" in res.output and "1 not replayed" in res.output
    res = runner.invoke(app, ["ingest", "dead-letters", "show", "1", "-c", str(strict)])
    assert res.exit_code == 0 and "pump,site=cli pressure_bar" in res.output and "value=2.5" in res.output
    res = runner.invoke(app, ["ingest", "dead-letters", "replay", "--all", "-c", str(strict)])
    assert res.exit_code == 3 and "still_refused=2" in res.output  # same config: still refused, kept as a new row

    fixed = config({"pump": ["power_kw", "pressure_bar"]})
    res = runner.invoke(app, ["ingest", "dead-letters", "replay", "--all", "-c", str(fixed)])
    assert res.exit_code == 0, res.output
    assert "2 points written, 0 samples still refused" in res.output
    got = influx_db.query("SELECT pressure_bar FROM pump WHERE site='cli'")
    assert got[0].columns["pressure_bar"].tolist() == [2.5, 3.5]
    res = runner.invoke(app, ["ingest", "dead-letters", "list", "-c", str(fixed)])
    assert "0 not replayed" in res.output
    res = runner.invoke(app, ["ingest", "dead-letters", "replay", "--id", "99", "-c", str(fixed)])
    assert res.exit_code == 1 and "no dead letter with id 99" in res.output
