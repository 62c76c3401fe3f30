"""The columnar sample batch and OPC UA status-code mapping."""

import numpy as np
import pytest

from plantmrv.batch import Quality, SampleBatch, Series, quality_from_status_code


def test_status_codes_map_to_quality_by_severity_bits():
    good, uncertain_last_usable, bad_sensor_failure, bad_comm = 0x00000000, 0x40900000, 0x808B0000, 0x80050000
    q = quality_from_status_code(np.array([good, uncertain_last_usable, bad_sensor_failure, bad_comm]))
    assert q.tolist() == [Quality.GOOD, Quality.UNCERTAIN, Quality.BAD, Quality.BAD]


def test_concat_merges_series_tables():
    a, b, c = (Series.of("pv", f, site="s", asset="x") for f in ("ac_power_kw", "dc_power_kw", "irradiance_w_per_m2"))
    b1 = SampleBatch([a, b], [0, 1], [1, 2], [1.0, 2.0])
    b2 = SampleBatch([c, a], [0, 1, 1], [3, 4, 5], [3.0, 4.0, 5.0])
    out = SampleBatch.concat([b1, b2])
    assert out.table == [a, b, c]
    assert [out.table[i] for i in out.series] == [a, b, c, a, a]
    assert out.value.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_compact_and_split():
    table = [Series.of("m", f"f{i}") for i in range(5)]
    batch = SampleBatch(table, [4, 2, 4], [1, 2, 3], [1.0, 2.0, 3.0]).compact()
    assert batch.table == [table[2], table[4]] and batch.series.tolist() == [1, 0, 1]
    assert [len(p) for p in batch.split(2)] == [2, 1]


def test_mismatched_columns_and_bad_indices_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        SampleBatch([Series.of("m", "f")], [0, 0], [1], [1.0, 2.0])
    with pytest.raises(ValueError, match="out of range"):
        SampleBatch([Series.of("m", "f")], [1], [1], [1.0])


def test_from_columns():
    s = Series.of("pump", "power_kw", site="danang", asset="P1")
    batch = SampleBatch.from_columns({s: ([1, 2], [3.0, 4.0])})
    assert batch.table == [s] and batch.ts_ns.tolist() == [1, 2] and batch.quality.tolist() == [0, 0]


def test_concat_of_batches_sharing_one_table_keeps_it():
    table = [Series.of("m", "f", a="1"), Series.of("m", "g", a="1")]
    a = SampleBatch(table, [0, 1], [1, 2], [1.0, 2.0], [0, 1])
    b = SampleBatch(table, [1], [3], [3.0], [2])
    out = SampleBatch.concat([a, b])
    assert out.table is table
    assert out.series.tolist() == [0, 1, 1] and out.ts_ns.tolist() == [1, 2, 3]
    assert out.value.tolist() == [1.0, 2.0, 3.0] and out.quality.tolist() == [0, 1, 2]
