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


def _payload(header: bytes, batch: SampleBatch) -> bytes:
    """A message with a hand-written header (for headers the encoder never writes)."""
    import struct
    import zlib

    columns = b"".join([batch.series.astype("<i4").tobytes(), batch.ts_ns.astype("<i8").tobytes(),
                        batch.value.astype("<f8").tobytes(), batch.quality.astype("u1").tobytes()])
    msg = struct.pack("<4sBBI", b"PMRV", 1, 0, len(header)) + header + columns
    return msg + struct.pack("<I", zlib.crc32(msg))


def test_a_gateways_repeated_table_is_decoded_once_and_shared():
    batch = sample_batch(50)
    first = decode_message(encode_message(batch, seq=1))
    second = decode_message(encode_message(batch, seq=2))
    assert second.batch.table is first.batch.table and second.meta == {"seq": 2}
    assert np.array_equal(second.batch.value, batch.value)
    other = SampleBatch([Series.of("pump", "head_m", site="danang", asset="P2")] * 3, batch.series, batch.ts_ns, batch.value)
    third = decode_message(encode_message(other, seq=3))
    assert third.batch.table is not first.batch.table and third.batch.table[0].tag_dict["asset"] == "P2"


def test_cached_tables_never_misread_a_header_that_resembles_the_cached_text():
    tricky = [Series.of("m", "f", note='x],"n":1,"y'), Series.of("m", "g", note="plain")]
    batch = SampleBatch(tricky, [0, 1], [1, 2], [1.0, 2.0])
    for seq in range(3):  # first fills the cache, the next ones may read from it
        msg = decode_message(encode_message(batch, seq=seq))
        assert msg.batch.table == tricky and msg.meta == {"seq": seq}
    # a header that starts with a cached table's text but names "series" again: JSON's last one wins
    plain = SampleBatch([Series.of("m", "f", site="a")], [0], [1], [1.0])
    decode_message(encode_message(plain))
    cached_text = '[["m",{"site":"a"},"f"]]'
    header = ('{"series":' + cached_text + ',"n":1,"series":[["m",{"site":"b"},"f"]]}').encode()
    msg = decode_message(_payload(header, plain))
    assert msg.batch.table == [Series.of("m", "f", site="b")]


def test_table_cache_is_bounded_by_the_length_of_its_keys():
    from plantmrv.codec import _TableCache

    cache = _TableCache(max_chars=10)
    cache.put("aaaa", [])
    cache.put("bbbb", [])
    cache.put("cccc", [])  # 12 chars: the oldest goes
    assert cache.get("aaaa") is None and cache.get("bbbb") == [] and cache.get("cccc") == [] and cache.chars == 8
    cache.put("x" * 11, [])  # longer than the whole cache: not kept
    assert cache.get("x" * 11) is None


# --------------------------------------------------------------------------- bounded decoding

from plantmrv.limits import DecodeLimits  # noqa: E402
from tests.helpers import compression_bomb, craft_message  # noqa: E402


def test_a_compression_bomb_is_refused_while_inflating_not_after():
    """300 MB in ~300 kB: inflated only as far as its header announces (nothing), or refused at
    once when the header announces more than the limits allow."""
    import tracemalloc

    bomb = compression_bomb(300 * 1024 * 1024)
    honest = compression_bomb(300 * 1024 * 1024, header=b'{"series":[["m",{},"f"]],"n":%d}' % (300 * 1024 * 1024 // 21))
    assert len(bomb) < 400_000
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match="longer than its header announces") as err:
            decode_message(bomb)
        assert err.value.code == "decode"
        with pytest.raises(CodecError, match="inflates past 16777216 bytes") as err:
            decode_message(honest)
        assert err.value.code == "too_large"
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"decoding the bombs held {peak} bytes"


def test_the_compression_ratio_limit_applies_below_the_size_limit():
    header = b'{"series":[["m",{},"f"]],"n":%d}' % (2 * 1024 * 1024 // 21)
    payload = compression_bomb(2 * 1024 * 1024, header=header)  # ~2 kB inflating to 2 MiB: ratio ~1000
    with pytest.raises(CodecError, match="max_compression_ratio=250") as err:
        decode_message(payload)
    assert err.value.code == "too_large"
    msg = decode_message(encode_message(sample_batch(5000), compress=True))  # a real batch is far below the ratio
    assert len(msg.batch) == 5000


def test_a_deeply_nested_header_is_refused_as_too_deep_not_a_crash():
    deep = b'{"series":[],"n":0,"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    lenient = DecodeLimits(max_compression_ratio=1000)  # 20 kB of brackets compress 300-fold
    for payload in (craft_message(deep), craft_message(deep, compress=True)):
        with pytest.raises(CodecError, match="nests deeper") as err:
            decode_message(payload, lenient)
        assert err.value.code == "too_deep"
    shallow_but_over = b'{"series":[],"n":0,"x":' + b"[" * 40 + b"]" * 40 + b"}"
    with pytest.raises(CodecError, match="limit of 32 levels"):
        decode_message(craft_message(shallow_but_over))
    # the same meta behind a cached series table is checked too
    table = b'{"series":[["pump",{"site":"s"},"power_kw"]],"n":0'
    decode_message(craft_message(table + b"}"))
    with pytest.raises(CodecError, match="nests deeper"):
        decode_message(craft_message(table + b',"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}"))


def test_series_count_and_header_size_are_bounded_before_parsing():
    limits = DecodeLimits(max_series=100, max_header_bytes=64 * 1024)
    many = b'{"series":[' + b",".join([b'["m",{},"f"]'] * 101) + b'],"n":0}'
    with pytest.raises(CodecError, match="max_series") as err:
        decode_message(craft_message(many), limits)
    assert err.value.code == "too_many_series"
    empties = b'{"series":[' + b",".join([b"[]"] * 5000) + b'],"n":0}'  # cheap text, costly objects
    with pytest.raises(CodecError, match="max_series"):
        decode_message(craft_message(empties), limits)
    big = b'{"series":[],"n":0,"pad":"' + b"x" * 70_000 + b'"}'
    with pytest.raises(CodecError, match="max_header_bytes") as err:
        decode_message(craft_message(big), limits)
    assert err.value.code == "too_large"


def test_truncated_or_padded_zlib_streams_are_refused():
    import zlib

    body = b'{"series":[],"n":0}'
    z = zlib.compress(body)
    for bad, words in ((z[:-3], "truncated"), (z + b"junk", "follow the compressed body")):
        raw = craft_message(body)  # then replace the body by hand
        import struct

        msg = struct.pack("<4sBBI", b"PMRV", 1, 1, len(body)) + bad
        with pytest.raises(CodecError, match=words):
            decode_message(msg + struct.pack("<I", zlib.crc32(msg)))
        assert raw


def test_status_codes_travel_only_when_a_batch_has_some():
    batch = sample_batch(100)
    plain = encode_message(batch)
    assert decode_message(plain).batch.status is None
    status = np.where(batch.quality == Quality.BAD, 0x808C0000, 0).astype(np.uint32)
    coded = SampleBatch(batch.table, batch.series, batch.ts_ns, batch.value, batch.quality, status)
    for compress in (False, True):
        out = decode_message(encode_message(coded, compress=compress)).batch
        assert np.array_equal(out.status, status)
    assert len(encode_message(coded)) == len(plain) + 4 * 100
    zero = SampleBatch(batch.table, batch.series, batch.ts_ns, batch.value, batch.quality, np.zeros(100, np.uint32))
    assert encode_message(zero) == plain
    with pytest.raises(CodecError, match="bits this build does not know"):
        decode_message(craft_message(b'{"series":[],"n":0}', flags=0x04))
