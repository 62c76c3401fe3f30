"""Ingest pieces without the broker: config, device-JSON mapping, validation, dead-letter CLI (on real influxd)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.cli import app
from plantmrv.codec import decode_message, encode_message
from plantmrv.config import ConfigError, load_config
from plantmrv.ingest.config import IngestConfig
from plantmrv.ingest.deadletter import DeadLetterStore
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
