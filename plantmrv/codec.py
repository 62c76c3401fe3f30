"""The batch wire format between gateways and ingest (one codec, used by both ends).

A message is a self-describing, versioned, checksummed columnar batch::

    b"PMRV" | version u8 | flags u8 | header_len u32le | header | columns | crc32 u32le

``header`` is UTF-8 JSON: ``{"series": [[measurement, {tag: value}, field], ...], "n": N,
"site": ..., "gateway": ..., "seq": ...}``; ``columns`` are little-endian arrays: ``series``
int32[N], ``ts_ns`` int64[N], ``value`` float64[N], ``quality`` uint8[N] and, with flag bit 1,
``status`` uint32[N] (the sources' status codes, e.g. OPC UA StatusCodes; written only when a
batch carries codes). With flag bit 0 the header and columns are zlib-compressed. The CRC-32
covers every byte before it. Decoding is ``np.frombuffer`` on the columns, so a 10,000-sample
message decodes in microseconds; every malformed message raises :class:`CodecError` saying what
is wrong.

Decoding is bounded (:class:`~plantmrv.limits.DecodeLimits`): inflation stops at the
decompressed-size and ratio limits, the header's size and series count are checked before it is
parsed, and its nesting is bounded; a refusal is a :class:`CodecError` whose ``code`` names the
limit (``too_large``, ``too_deep``, ``too_many_series``, ``too_many_tags``) or is ``decode``.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plantmrv.batch import SampleBatch, Series
from plantmrv.limits import DEFAULT_LIMITS, DecodeLimits, LimitError, containers, json_depth_over

MAGIC = b"PMRV"
VERSION = 1
FLAG_ZLIB = 0x01
FLAG_STATUS = 0x02
_KNOWN_FLAGS = FLAG_ZLIB | FLAG_STATUS
_PREFIX = struct.Struct("<4sBBI")
_CRC = struct.Struct("<I")


class CodecError(ValueError):
    """A message that is not a valid plantmrv batch; the text says why, ``code`` what kind of fault
    (``decode``, or the limit that refused it: ``too_large``, ``too_deep``, ``too_many_series``,
    ``too_many_tags``)."""

    def __init__(self, message: str, code: str = "decode"):
        super().__init__(message)
        self.code = code


@dataclass
class WireMessage:
    batch: SampleBatch
    meta: dict[str, Any] = field(default_factory=dict)


def encode_message(batch: SampleBatch, compress: bool = False, **meta: Any) -> bytes:
    batch = batch.compact() if len(batch.table) > 2 * max(len(batch), 1) else batch
    header = {"series": [[s.measurement, dict(s.tags), s.field] for s in batch.table], "n": len(batch)}
    header.update(meta)
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    columns = [
        header_bytes,
        batch.series.astype("<i4").tobytes(),
        batch.ts_ns.astype("<i8").tobytes(),
        batch.value.astype("<f8").tobytes(),
        batch.quality.astype("u1").tobytes(),
    ]
    flags = 0
    if batch.status is not None and batch.status.any():
        columns.append(batch.status.astype("<u4").tobytes())
        flags |= FLAG_STATUS
    body = b"".join(columns)
    if compress:
        body = zlib.compress(body, 1)
        flags |= FLAG_ZLIB
    msg = _PREFIX.pack(MAGIC, VERSION, flags, len(header_bytes)) + body
    return msg + _CRC.pack(zlib.crc32(msg))


def decode_message(payload: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> WireMessage:
    if len(payload) < _PREFIX.size + _CRC.size:
        raise CodecError(f"message too short ({len(payload)} bytes) to be a plantmrv batch")
    magic, version, flags, header_len = _PREFIX.unpack_from(payload)
    if magic != MAGIC:
        raise CodecError(f"not a plantmrv batch (starts with {payload[:4]!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise CodecError(f"batch format version {version} is not supported (this build reads version {VERSION})")
    if flags & ~_KNOWN_FLAGS:
        raise CodecError(f"flags 0x{flags:02x} hold bits this build does not know (0x{flags & ~_KNOWN_FLAGS:02x})")
    (crc,) = _CRC.unpack_from(payload, len(payload) - _CRC.size)
    view = memoryview(payload)  # slices of a view copy nothing
    if zlib.crc32(view[: -_CRC.size]) != crc:
        raise CodecError("checksum mismatch: the message is corrupt or truncated")
    if header_len > limits.max_header_bytes:
        raise CodecError(f"header of {header_len} bytes exceeds the limit of {limits.max_header_bytes} (max_header_bytes)", "too_large")
    body = view[_PREFIX.size : -_CRC.size]
    row_bytes = 4 + 8 + 8 + 1 + (4 if flags & FLAG_STATUS else 0)
    inflater = _Inflater(body, limits) if flags & FLAG_ZLIB else None
    head = inflater.read(header_len) if inflater else body[:header_len]
    if len(head) < header_len:
        raise CodecError(f"header length {header_len} exceeds the message body ({len(head)} bytes)")
    try:
        header, table = _decode_header(str(head, "utf-8"), limits)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"header is not UTF-8 JSON: {exc}") from None
    except LimitError as exc:
        raise CodecError(str(exc), exc.code) from None
    n = header["n"]
    if n < 0:
        raise CodecError(f"n={n} is negative")
    if inflater:  # the header says how much follows: never inflate more than that
        body, off = inflater.read_all(n * row_bytes), 0
    else:
        off = header_len
        if len(body) - header_len != n * row_bytes:
            raise CodecError(f"columns hold {len(body) - header_len} bytes, not the {n * row_bytes} that n={n} samples need")
    series = _column(body, "<i4", n, off)
    off += 4 * n
    ts_ns = _column(body, "<i8", n, off)
    off += 8 * n
    value = _column(body, "<f8", n, off)
    off += 8 * n
    quality = np.frombuffer(body, "u1", n, off)
    off += n
    status = _column(body, "<u4", n, off) if flags & FLAG_STATUS else None
    if n and (series.min() < 0 or series.max() >= len(table)):
        raise CodecError(f"series index outside the header's table of {len(table)}")
    if n and quality.max() > 2:
        raise CodecError(f"quality code {int(quality.max())} is not 0 (good), 1 (uncertain) or 2 (bad)")
    meta = {k: v for k, v in header.items() if k not in ("series", "n")}
    return WireMessage(SampleBatch(table, series, ts_ns, value, quality, status), meta)


class _Inflater:
    """Inflates a zlib body piece by piece, never past the size and ratio limits."""

    def __init__(self, body: memoryview, limits: DecodeLimits):
        self.cap = min(limits.max_decompressed_bytes, int(limits.max_compression_ratio * len(body)))
        self.limits = limits
        self.compressed = len(body)
        self.out = 0
        self._d = zlib.decompressobj()
        self._tail: bytes | memoryview = body

    def _over(self, size: int) -> CodecError:
        return CodecError(
            f"compressed body of {self.compressed} bytes inflates past {self.cap} bytes ({size} announced; limits: "
            f"max_decompressed_bytes={self.limits.max_decompressed_bytes}, max_compression_ratio={self.limits.max_compression_ratio:g})",
            "too_large")

    def read(self, size: int) -> bytes:
        """Up to ``size`` more bytes (fewer only at the end of the stream)."""
        if self.out + size > self.cap:
            raise self._over(self.out + size)
        if size == 0:
            return b""
        try:
            chunk = self._d.decompress(self._tail, size)
        except zlib.error as exc:
            raise CodecError(f"compressed body does not decompress: {exc}") from None
        self._tail = self._d.unconsumed_tail
        self.out += len(chunk)
        return chunk

    def read_all(self, size: int) -> bytes:
        """Exactly the ``size`` bytes that end the stream; CodecError if it holds more or fewer."""
        rest = self.read(size)
        if len(rest) < size:
            raise CodecError(f"compressed body is truncated: {len(rest)} bytes of columns where {size} are announced")
        extra = self._d.decompress(self._tail, 1) if self._tail else b""
        if extra or not self._d.eof:
            raise CodecError(f"compressed body is longer than its header announces ({size} bytes of columns)"
                             if extra else "compressed body is truncated (incomplete zlib stream)")
        if self._d.unused_data:
            raise CodecError(f"{len(self._d.unused_data)} bytes follow the compressed body")
        return rest


def _column(body, dtype: str, n: int, offset: int) -> np.ndarray:
    """A column read in place, or copied where it does not start on its item size (numpy works
    on misaligned arrays through buffered copies, op after op)."""
    column = np.frombuffer(body, dtype, n, offset)
    return column if column.ctypes.data % column.itemsize == 0 else column.copy()


_SERIES_START = '{"series":'
_SERIES_END = '],"n":'
_TABLE_CACHE_CHARS = 8_000_000


class _TableCache:
    """Series tables by the JSON text of their header list, so that a gateway's table (the same
    in every message it sends) is checked and built once, not per message. The text of a cached key is a complete JSON array, and an array ends where it ends:
    a header whose text starts with ``{"series":`` + that key holds that very table.
    Bounded by the keys' total length; the oldest keys go first."""

    def __init__(self, max_chars: int = _TABLE_CACHE_CHARS):
        self.max_chars = max_chars
        self.tables: dict[str, list[Series]] = {}
        self.chars = 0

    def get(self, key: str) -> list[Series] | None:
        return self.tables.get(key)

    def put(self, key: str, table: list[Series]) -> None:
        if len(key) > self.max_chars or key in self.tables:
            return
        while self.chars + len(key) > self.max_chars:
            oldest = next(iter(self.tables))
            self.chars -= len(oldest)
            del self.tables[oldest]
        self.tables[key] = table
        self.chars += len(key)


_tables = _TableCache()


def _loads(text: str, limits: DecodeLimits) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise LimitError(f"header nests deeper than the limit of {limits.max_json_depth} levels (max_json_depth)", "too_deep") from None


def _check_meta(header: dict, limits: DecodeLimits) -> None:
    if json_depth_over({k: v for k, v in header.items() if k != "series"}, limits.max_json_depth):
        raise LimitError(f"header nests deeper than the limit of {limits.max_json_depth} levels (max_json_depth)", "too_deep")


def _decode_header(text: str, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[dict[str, Any], list[Series]]:
    """The header's fields and its series table (from the cache when the table was seen before)."""
    if text.startswith(_SERIES_START):
        end = text.find(_SERIES_END, len(_SERIES_START))
        if end > 0:
            table = _tables.get(text[len(_SERIES_START) : end + 1])
            if table is not None:
                rest = _loads("{" + text[end + 2 :], limits)
                if isinstance(rest, dict) and "series" not in rest and isinstance(rest.get("n"), int):
                    _check_meta(rest, limits)
                    return rest, table
    # every series is one array and one object: count containers before the parser builds them
    if containers(text) > 2 * limits.max_series + 2 + limits.max_json_depth:
        raise LimitError(f"header holds more containers than a table of {limits.max_series} series (max_series)", "too_many_series")
    header = _loads(text, limits)
    if not isinstance(header, dict) or not isinstance(header.get("series"), list) or not isinstance(header.get("n"), int):
        raise CodecError("header lacks 'series' (list) or 'n' (integer)")
    if len(header["series"]) > limits.max_series:
        raise LimitError(f"header lists {len(header['series'])} series, over the limit of {limits.max_series} (max_series)", "too_many_series")
    _check_meta(header, limits)
    table = _series_table(header["series"], limits.max_tags)
    if text.startswith(_SERIES_START):
        try:
            _, end = json.JSONDecoder().raw_decode(text, len(_SERIES_START))
        except json.JSONDecodeError:
            end = 0
        if end and text.startswith(_SERIES_END, end - 1):
            _tables.put(text[len(_SERIES_START) : end], table)
    return header, table


def _series_table(entries: list, max_tags: int) -> list[Series]:
    table = []
    for i, entry in enumerate(entries):
        if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[1], dict) and len(entry[1]) > max_tags:
            raise LimitError(f"header series[{i}] has {len(entry[1])} tags, over the limit of {max_tags} (max_tags)", "too_many_tags")
        if (
            not isinstance(entry, list)
            or len(entry) != 3
            or not isinstance(entry[0], str)
            or not isinstance(entry[1], dict)
            or not isinstance(entry[2], str)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in entry[1].items())
        ):
            raise CodecError(f"header series[{i}] is not [measurement, {{tag: value}}, field] of strings")
        table.append(Series(entry[0], tuple(sorted(entry[1].items())), entry[2]))
    return table


def data_topic(prefix: str, site: str, gateway: str) -> str:
    return f"{prefix}/{site}/{gateway}/data"


def state_topic(prefix: str, site: str, gateway: str) -> str:
    return f"{prefix}/{site}/{gateway}/state"
