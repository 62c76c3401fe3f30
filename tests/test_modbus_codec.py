"""Modbus register arithmetic: every data type in every word/byte order against Python's struct,
block coalescing limits, strings."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantmrv.gateway.modbus_codec import (
    decode, decode_string, encode, encode_string, plan_blocks, register_count,
)

FORMATS = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q", "float32": "f", "float64": "d"}
RANGES = {"int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1),
          "int64": (-2**53, 2**53), "uint64": (0, 2**53)}


def struct_registers(value, dtype: str, word_order: str, byte_order: str) -> list[int]:
    """What a device sends, built with struct (independent of the codec): big-endian bytes,
    words reversed for a little word order, bytes swapped in each word for a little byte order."""
    raw = struct.pack(">" + FORMATS[dtype], value)
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if word_order == "little":
        words = words[::-1]
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def values_for(dtype):
    if dtype.startswith("float"):
        width = 32 if dtype == "float32" else 64
        return st.floats(allow_nan=False, allow_infinity=False, width=width)
    lo, hi = RANGES[dtype]
    return st.integers(lo, hi)


@pytest.mark.parametrize("dtype", sorted(FORMATS))
@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize("byte_order", ["big", "little"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_decode_matches_struct_for_every_type_and_order(dtype, word_order, byte_order, data):
    vals = data.draw(st.lists(values_for(dtype), min_size=1, max_size=5))
    regs = np.array([struct_registers(v, dtype, word_order, byte_order) for v in vals], dtype=np.uint16)
    got = decode(regs, dtype, word_order, byte_order)
    assert got.tolist() == [float(v) for v in vals]
    assert encode(vals, dtype, word_order, byte_order).tolist() == regs.tolist()


def test_known_word_orders_of_one_float32():
    # 123.456 as float32 is 0x42F6E979: ABCD big/big, CDAB word swap, BADC byte swap, DCBA both
    assert decode([[0x42F6, 0xE979]], "float32")[0] == pytest.approx(123.456, rel=1e-6)
    assert decode([[0xE979, 0x42F6]], "float32", "little")[0] == pytest.approx(123.456, rel=1e-6)
    assert decode([[0xF642, 0x79E9]], "float32", "big", "little")[0] == pytest.approx(123.456, rel=1e-6)
    assert decode([[0x79E9, 0xF642]], "float32", "little", "little")[0] == pytest.approx(123.456, rel=1e-6)


def test_integer_encoding_wraps_like_a_device_counter():
    assert encode([2**32 + 5], "uint32").tolist() == [[0, 5]]
    assert decode(encode([-1], "uint16"), "uint16")[0] == 65535


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=16))
def test_strings_round_trip(text):
    assert decode_string(encode_string(text, 8)) == text.rstrip()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.sampled_from([1, 2, 4])), min_size=1, max_size=60),
       st.integers(1, 125), st.integers(0, 40))
def test_blocks_cover_every_point_within_limits(points, max_count, max_gap):
    spans = [(i, "holding", a, n) for i, (a, n) in enumerate(points) if n <= max_count]
    blocks = plan_blocks(spans, max_count, max_gap)
    seen = sorted(i for b in blocks for i in b.members)
    assert seen == sorted(s[0] for s in spans)
    by_index = {s[0]: s for s in spans}
    for b in blocks:
        assert 1 <= b.count <= max_count
        for i in b.members:
            _, _, a, n = by_index[i]
            assert b.start <= a and a + n <= b.start + b.count
    # adjacent blocks could not have been merged
    for b1, b2 in zip(blocks, blocks[1:]):
        assert b2.start - (b1.start + b1.count) > max_gap or (b2.start + b2.count) - b1.start > max_count or b2.start < b1.start + b1.count


def test_adjacent_registers_coalesce_into_one_read_of_at_most_125():
    spans = [(i, "holding", i * 2, 2) for i in range(100)]  # 100 float32 back to back = 200 registers
    blocks = plan_blocks(spans, 125, 0)
    assert [b.count for b in blocks] == [124, 76]
    assert register_count("string", 8) == 8
