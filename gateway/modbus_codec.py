"""Modbus register arithmetic, pure and vectorized: data types, word/byte order, block plans.

No I/O here (:mod:`plantmrv.gateway.modbus_source` does the requests); everything is a function
of register arrays so it is tested exhaustively and shared by the source, the scanner, the
SunSpec reader, the simulators and the benchmark.

Data types and their register counts (:data:`REGISTERS`): ``int16``/``uint16`` 1,
``int32``/``uint32``/``float32`` 2, ``int64``/``uint64``/``float64`` 4, ``string`` n (two
characters per register), ``bool`` (a coil or discrete input, or one ``bit`` of a register).

Orders (Modbus itself defines only 16-bit registers sent high byte first):

- ``word_order: big`` (default) puts the most significant register first (``ABCD``);
  ``little`` the least significant first (``CDAB``, Schneider/Modicon "word swap").
- ``byte_order: big`` (default) keeps each register's bytes as sent; ``little`` swaps the two
  bytes inside every register (``BADC``, or ``DCBA`` with a little word order).

Block planning (:func:`plan_blocks`): points of one device and one table, sorted by address,
are merged into one read while the block stays within the device's maximum (125 registers,
2000 bits by the Modbus spec) and the hole between neighbours is at most ``max_gap``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence

import numpy as np

DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string", "bool"]
Order = Literal["big", "little"]
Kind = Literal["holding", "input", "coil", "discrete"]

REGISTERS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4, "uint64": 4, "float64": 4, "bool": 1}
_NUMPY = {"int16": ">i2", "uint16": ">u2", "int32": ">i4", "uint32": ">u4", "float32": ">f4",
          "int64": ">i8", "uint64": ">u8", "float64": ">f8"}
MAX_REGISTERS = 125  # Read Holding/Input Registers: quantity 1..125 (Modbus Application Protocol V1.1b3, 6.3/6.4)
MAX_BITS = 2000  # Read Coils/Discrete Inputs: quantity 1..2000 (6.1/6.2)
BIT_KINDS = ("coil", "discrete")


def register_count(dtype: str, length: int | None = None) -> int:
    """Registers a value of ``dtype`` takes (``length`` registers for a string)."""
    if dtype == "string":
        if not length:
            raise ValueError("a string needs `length` (registers)")
        return int(length)
    return REGISTERS[dtype]


def decode(regs: np.ndarray, dtype: str, word_order: Order = "big", byte_order: Order = "big") -> np.ndarray:
    """Decode rows of registers: ``regs`` shape (k, n) uint16 -> k values (float64).

    One call decodes every point of one type and order in a block (a gather, a byte swap, one
    ``np.frombuffer``). 64-bit integers above 2**53 lose precision as float64, like every
    sample value.
    """
    r = np.asarray(regs, dtype=np.uint16)
    if r.ndim == 1:
        r = r.reshape(-1, REGISTERS[dtype])
    if word_order == "little":
        r = r[:, ::-1]
    if byte_order == "little":
        r = r.byteswap()
    raw = np.ascontiguousarray(r).astype(">u2").tobytes()
    return np.frombuffer(raw, dtype=_NUMPY[dtype]).astype(np.float64)


def encode(values: Sequence[float], dtype: str, word_order: Order = "big", byte_order: Order = "big") -> np.ndarray:
    """The inverse of :func:`decode`: values -> registers, shape (k, n) uint16 (for simulators and tests).

    Integers are wrapped to the type's width (a counter past 2**32 rolls over, as a device's does).
    """
    n = REGISTERS[dtype]
    np_type = np.dtype(_NUMPY[dtype])
    v = np.asarray(values, dtype=np.float64).ravel()
    if np_type.kind in "iu":  # wrap in Python ints: two's complement bytes equal the unsigned ones
        size = np_type.itemsize
        raw = np.array([int(np.floor(x)) % (1 << (8 * size)) for x in v], dtype=f">u{size}").tobytes()
    else:
        raw = v.astype(np_type).tobytes()
    r = np.frombuffer(raw, dtype=">u2").astype(np.uint16).reshape(-1, n)
    if byte_order == "little":
        r = r.byteswap()
    if word_order == "little":
        r = r[:, ::-1]
    return np.ascontiguousarray(r)


def decode_string(regs: Sequence[int], byte_order: Order = "big") -> str:
    """Registers as text (two characters each, first character in the high byte); NULs and trailing spaces dropped."""
    r = np.asarray(regs, dtype=np.uint16)
    if byte_order == "little":
        r = r.byteswap()
    return r.astype(">u2").tobytes().split(b"\0", 1)[0].decode("latin-1").rstrip()


def encode_string(text: str, length: int) -> list[int]:
    """Text as ``length`` registers, NUL-padded (for simulators and tests)."""
    b = text.encode("latin-1")[: 2 * length].ljust(2 * length, b"\0")
    return np.frombuffer(b, dtype=">u2").astype(int).tolist()


# --------------------------------------------------------------------------- block plans


@dataclass
class Block:
    """One read request: ``count`` registers (or bits) from ``start``; ``members`` are point indices."""

    kind: str
    start: int
    count: int
    members: list[int] = field(default_factory=list)


def plan_blocks(spans: Iterable[tuple[int, str, int, int]], max_count: int, max_gap: int) -> list[Block]:
    """Coalesce point spans into reads.

    Parameters
    ----------
    spans : (point index, kind, start address, count)  One per point (count in registers or bits)
    max_count : int  Longest read the device accepts (<= 125 registers / 2000 bits)
    max_gap : int  Longest run of unread addresses allowed inside one read

    Returns
    -------
    list of Block, by kind then address. Points may overlap (several bits of one status word
    share it); a point longer than ``max_count`` is an error the config model refuses earlier.
    """
    by_kind: dict[str, list[tuple[int, int, int]]] = {}
    for i, kind, start, count in spans:
        by_kind.setdefault(kind, []).append((start, start + count, i))
    out: list[Block] = []
    for kind in sorted(by_kind):
        cur: Block | None = None
        cur_end = 0
        for start, end, i in sorted(by_kind[kind]):
            if cur is not None and start - cur_end <= max_gap and max(end, cur_end) - cur.start <= max_count:
                cur.members.append(i)
                cur_end = max(cur_end, end)
                cur.count = cur_end - cur.start
                continue
            cur = Block(kind, start, end - start, [i])
            cur_end = end
            out.append(cur)
    return out
