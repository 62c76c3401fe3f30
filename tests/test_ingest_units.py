"""Ingest pieces without the broker: config, device-JSON mapping, validation, dead-letter CLI (on real influxd)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.app.cli import app
from plantmrv.codec import decode_message, encode_message
from plantmrv.config import ConfigError, load_config
from plantmrv.ingest.config import IngestConfig
from plantmrv.ingest.deadletter import DeadLetterStore
from plantmrv.ingest.processor import Processor
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


def test_validator_checks_series_added_in_place_to_a_table_it_has_seen():
    v = Validator({"pump": ["power_kw"]}, permissive=False, max_future_skew_s=60, max_age_s=None)
    table = [Series.of("pump", "power_kw", site="s")]
    now = time.time_ns()
    valid, rejects = v.validate(SampleBatch(table, [0], [now], [1.0]), now)
    assert len(valid) == 1 and not rejects
    table.append(Series.of("pump", "torque_nm", site="s"))
    valid, rejects = v.validate(SampleBatch(table, [0, 1], [now, now], [1.0, 2.0]), now)
    assert len(valid) == 1 and [r.code for r in rejects] == ["unknown_field"]


def test_when_a_batch_is_sealed():
    """linger_s bounds waiting for data, never taking a backlog; a full batch waits only while messages stream in."""
    import math
    import queue
    from types import SimpleNamespace

    from plantmrv.ingest.service import COALESCE_S, IngestService, Job

    q = queue.Queue()
    svc = SimpleNamespace(_queue=q, cfg=SimpleNamespace(linger_s=0.5))
    deadline = lambda job, gap: IngestService._seal_deadline(svc, job, gap)  # noqa: E731
    partial = Job(first_mono=100.0)
    assert deadline(partial, 0.01) == 100.5  # not a body's worth yet: up to linger_s
    full = Job(first_mono=100.0, full_mono=100.2)
    assert deadline(full, 5.0) == 100.2  # a body's worth and nothing streaming in: at once
    assert deadline(full, 0.01) == pytest.approx(100.2 + COALESCE_S)  # streaming: a little longer
    assert deadline(Job(first_mono=100.0, full_mono=100.45), 0.01) == 100.5  # never past linger_s
    q.put(object())
    assert deadline(full, 5.0) == math.inf and deadline(partial, 5.0) == math.inf  # a backlog is taken whatever its age


def test_ingest_tune_malloc_keeps_batch_memory_unless_the_environment_sets_it():
    import os
    import platform
    import subprocess
    import sys

    code = "from plantmrv.ingest.cli import tune_malloc; print(sorted(tune_malloc().items()))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}

    def tuned(**extra) -> str:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=dict(env, **extra))
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    if platform.libc_ver()[0] != "glibc":
        assert tuned() == "[]"
        return
    assert tuned() == "[('malloc_mmap_threshold', 33554432), ('malloc_trim_threshold', 536870912)]"
    assert tuned(MALLOC_TRIM_THRESHOLD_="1000000") == "[('malloc_mmap_threshold', 33554432)]"
    assert tuned(GLIBC_TUNABLES="glibc.malloc.mmap_threshold=1048576") == "[('malloc_trim_threshold', 536870912)]"


# --------------------------------------------------------------------------- trust on the data path


def test_a_gateway_topic_admits_only_samples_of_its_own_site_and_gateway():
    """Defence in depth behind the broker ACL: a batch on plantmrv/v1/danang/gw-danang/data may not
    write hcmc's meter; series with the topic's site (and, where tagged, gateway) still pass."""
    p = Processor(IngestConfig(validation={"permissive": True}), "plantmrv/v1", None)
    table = [Series.of("pump", "energy_kwh", site="danang", asset="P1"), Series.of("vsd", "energy_kwh", site="hcmc", asset="intake1"),
             Series.of("gateway", "online", site="danang", gateway="gw-danang"), Series.of("gateway", "online", site="danang", gateway="gw-x"),
             Series.of("pump", "power_kw", asset="P1")]
    batch = SampleBatch(table, [0, 1, 2, 3, 4], [NOW - 10**9] * 5, [895_252.0, 1.0, 1.0, 1.0, 3.0])
    out = p.process("plantmrv/v1/danang/gw-danang/data", encode_message(batch, site="danang", gateway="gw-danang"), NOW, now_ns=NOW)
    assert sorted(out.batch.table[i].key() for i in out.batch.series) == [
        "gateway,gateway=gw-danang,site=danang online", "pump,asset=P1,site=danang energy_kwh"]
    assert [d.code for d in out.dead] == ["topic_mismatch"] * 3
    reasons = " ".join(d.reason for d in out.dead)
    assert "site='hcmc', but its topic is site 'danang'" in reasons and "gateway='gw-x'" in reasons and "no site tag" in reasons
    # a header that names another site or gateway than its topic: the whole message
    for meta in ({"site": "hcmc", "gateway": "gw-danang"}, {"site": "danang", "gateway": "gw-hcmc"}):
        out = p.process("plantmrv/v1/danang/gw-danang/data", encode_message(batch.take([0]), **meta), NOW, now_ns=NOW)
        assert not len(out.batch) and [(d.code, d.samples) for d in out.dead] == [("topic_mismatch", 1)]


def test_names_longer_than_the_limit_and_timestamps_outside_the_bounds_are_refused():
    v = _validator(permissive=True, max_age_s=None)
    long_tag = Series.of("pump", "power_kw", site="a", asset="A" * 300)
    ok = Series.of("pump", "power_kw", site="a", asset="P1")
    ts_1938 = -1_006_560_000 * 10**9
    batch = SampleBatch([ok, long_tag], [0, 1, 0, 0], [NOW, NOW, ts_1938, 0], [1.0, 2.0, 3.0, 4.0])
    valid, rejects = v.validate(batch, NOW)
    assert valid.value.tolist() == [1.0]
    got = {r.code: r.rows.tolist() for r in rejects}
    assert got == {"name_too_long": [1], "timestamp_range": [2, 3]}
    assert "300 characters exceeds the limit of 256" in next(r.detail for r in rejects if r.code == "name_too_long")
    assert "at 1938-02-08T00:00:00Z" in next(r.detail for r in rejects if r.code == "timestamp_range")


def test_bounds_and_limits_are_configurable_and_apply_to_device_json_alike(tmp_path):
    f = tmp_path / "i.yaml"
    f.write_text(yaml.safe_dump({"ingest": {
        "validation": {"permissive": True, "min_timestamp": "1990-01-01T00:00:00Z", "limits": {"max_name_chars": 400, "max_json_depth": 8}},
        "device_json": [{"topic": "dev/+", "measurement": "pump", "tags": {"site": "s", "asset": "{topic[1]}"},
                         "fields": {"power_kw": "kw"}, "timestamp": {"path": "ts", "unit": "s"}}]}}))
    p = Processor(load_config(f).ingest, "plantmrv/v1", None)
    t1995 = 788_918_400
    out = p.process("dev/P1", b'{"ts": %d, "kw": 1.5}' % t1995, NOW, now_ns=NOW)
    assert len(out.batch) == 1 and not out.dead
    out = p.process("dev/P1", b'{"ts": 600000000, "kw": 1.5}', NOW, now_ns=NOW)  # 1989
    assert [d.code for d in out.dead] == ["json_timestamp"] and "outside 1990-01-01T00:00:00Z..2100" in out.dead[0].reason
    out = p.process("dev/P1", b'{"ts": %d, "kw": 1.5, "x": [[[[[[[[[1]]]]]]]]]}' % t1995, NOW, now_ns=NOW)
    assert [d.code for d in out.dead] == ["too_deep"] and "limit of 8 levels" in out.dead[0].reason
    out = p.process("dev/P1", b"[" * 10_000 + b"]" * 10_000, NOW, now_ns=NOW)
    assert [d.code for d in out.dead] == ["too_deep"]
    out = p.process("dev/" + "A" * 350, b'{"ts": %d, "kw": 1.5}' % t1995, NOW, now_ns=NOW)
    assert len(out.batch) == 1  # 350 characters: within the configured 400
    batch = SampleBatch([Series.of("pump", "power_kw", site="s", asset="P1")], [0], [t1995 * 10**9], [1.0])
    assert len(p.process("plantmrv/v1/s/gw/data", encode_message(batch), NOW, now_ns=NOW).batch) == 1


def test_bad_quality_samples_without_a_value_pass_validation_to_sample_quality():
    p = Processor(IngestConfig(), "plantmrv/v1", None)
    s = Series.of("pump", "power_kw", site="a", asset="P1")
    batch = SampleBatch([s], [0, 0, 0], [NOW - 3 * 10**9, NOW - 2 * 10**9, NOW - 10**9], [np.nan, np.nan, np.nan],
                        [Quality.BAD, Quality.UNCERTAIN, Quality.GOOD], [0x808C0000, 0x40000000, 0])
    out = p.process("plantmrv/v1/a/gw/data", encode_message(batch), NOW, now_ns=NOW)
    assert [(d.code, d.samples) for d in out.dead] == [("not_finite", 1)]
    got = sorted((out.batch.table[i].field, int(t), v) for i, t, v in zip(out.batch.series, out.batch.ts_ns, out.batch.value))
    assert got == [("quality", NOW - 3 * 10**9, 2.0), ("quality", NOW - 2 * 10**9, 1.0),
                   ("status_code", NOW - 3 * 10**9, float(0x808C0000)), ("status_code", NOW - 2 * 10**9, float(0x40000000))]


def test_replay_skips_reports_and_keeps_a_row_it_cannot_process(tmp_path, influx_db, monkeypatch):
    """One row that cannot be processed (here: an internal error) never stops the rows after it."""
    from plantmrv.ingest import service
    from plantmrv.ingest.deadletter import DeadLetter

    dl = tmp_path / "dead.db"
    f = tmp_path / "ingest.yaml"
    f.write_text(yaml.safe_dump({"influxdb": {"url": influx_db.url, "database": influx_db.database},
                                 "ingest": {"dead_letters": {"path": str(dl)}, "validation": {"permissive": True}}}))
    ts = (time.time_ns() // 10**9 - 3600) * 10**9
    good = encode_message(SampleBatch([Series.of("pump", "power_kw", site="r", asset="P1")], [0], [ts], [7.5]))
    store = DeadLetterStore(dl)
    store.add_many([DeadLetter("plantmrv/v1/r/gw/data", b"poison", "raw", "internal_error", "internal_error: x", 0, ts),
                    DeadLetter("plantmrv/v1/r/gw/data", good, "batch", "unknown_field", "unknown_field: x", 1, ts)])
    store.close()
    real = service.Processor.process

    def process(self, topic, payload, *a, **kw):
        if payload == b"poison":
            raise RecursionError("maximum recursion depth exceeded")
        return real(self, topic, payload, *a, **kw)

    monkeypatch.setattr(service.Processor, "process", process)
    res = CliRunner().invoke(app, ["ingest", "dead-letters", "replay", "--all", "-c", str(f)])
    assert res.exit_code == 3, res.output
    assert "id=1 skipped (kept, not replayed): cannot process it: RecursionError" in res.output
    assert "[2/2] id=2 written=1" in res.output and "1 rows could not be processed and were kept: ids 1" in res.output
    store = DeadLetterStore(dl)
    assert [d.id for d in store.list()] == [1]  # kept, still to replay
    assert influx_db.query("SELECT power_kw FROM pump WHERE site='r'")[0].columns["power_kw"].tolist() == [7.5]
