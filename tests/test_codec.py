"""Wire codec shared by gateway and ingest: exact round trip; every malformed message is a CodecError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.codec import CodecError, decode_message, encode_message


def sample_batch(n: int = 1000) -> SampleBatch:
    table = [Series.of("pump", f, site="danang", asset="P1") for f in ("flow_m3_per_h", "power_kw", "head_m")]
    rng = np.random.default_rng(1)
    return SampleBatch(table, rng.integers(0, 3, n), 1_700_000_000_000_000_000 + np.arange(n), rng.normal(size=n), rng.integers(0, 3, n))


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_is_exact(compress):
    batch = sample_batch()
    msg = decode_message(encode_message(batch, compress=compress, site="danang", gateway="gw1", seq=7))
    assert msg.meta == {"site": "danang", "gateway": "gw1", "seq": 7}
    assert msg.batch.table == batch.table
    for col in ("series", "ts_ns", "value", "quality"):
        assert np.array_equal(getattr(msg.batch, col), getattr(batch, col), equal_nan=True)


def test_nan_and_unicode_tags_survive():
    table = [Series.of("ubcf", "flow_m3_per_h", site="Hải Phòng", asset="Vĩnh Bảo")]
    batch = SampleBatch(table, [0, 0], [1, 2], [np.nan, 1.0], [Quality.BAD, Quality.GOOD])
    out = decode_message(encode_message(batch)).batch
    assert out.table == table and np.isnan(out.value[0]) and out.quality.tolist() == [2, 0]


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "too short"),
        (b"XXXX" + bytes(20), "not a plantmrv batch"),
        (b"PMRV\x09" + bytes(20), "version 9"),
    ],
)
def test_malformed_headers_are_named(payload, reason):
    with pytest.raises(CodecError, match=reason):
        decode_message(payload)


def test_corruption_is_detected_by_checksum():
    good = bytearray(encode_message(sample_batch(10)))
    good[20] ^= 0xFF
    with pytest.raises(CodecError, match="checksum"):
        decode_message(bytes(good))


@settings(max_examples=500)
@given(st.binary(max_size=400), st.integers(0, 300))
def test_arbitrary_bytes_never_raise_anything_but_codec_error(noise, cut):
    good = encode_message(sample_batch(5))
    for payload in (noise, good[:cut], b"PMRV\x01\x00" + noise, good[:cut] + noise):
        try:
            decode_message(payload)
        except CodecError:
            pass


def test_decode_10k_samples_is_vectorized_and_fast():
    import time

    payload = encode_message(sample_batch(10_000))
    t0 = time.perf_counter()
    for _ in range(100):
        decode_message(payload)
    # generous bound: a per-sample Python decoder needs ~10 ms per message
    assert (time.perf_counter() - t0) / 100 < 0.005
