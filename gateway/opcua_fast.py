"""Fast decoding of OPC UA PublishResponses: a DataChangeNotification's items as numpy columns.

asyncua decodes every PublishResponse with its generic ``struct_from_binary``: per monitored
item a ``MonitoredItemNotification``, a ``DataValue``, a ``Variant`` and two ``datetime``
objects. At 10,000 items per second that is most of the gateway's CPU. Here the response is
walked by hand; a ``DataChangeNotification`` whose items all share one DataValue encoding
mask and one fixed-size scalar Variant type (the normal case: a PLC's Doubles with status
and timestamps) is a run of fixed-stride records (OPC UA Part 6, 5.2.2.17: ClientHandle
UInt32, EncodingMask Byte, [Variant type Byte + value], [StatusCode UInt32], [SourceTimestamp
Int64], [ServerTimestamp Int64]), so one ``np.frombuffer`` with a structured dtype decodes
all of them at once into a :class:`DataChangeColumns`.

Everything else is decoded by asyncua itself: the response header, other notification types
(status changes, events), items with mixed masks or types, arrays, strings, picoseconds (whose
position asyncua 2.1 reads differently from the specification), diagnostics. If the hand walk
meets anything it does not expect, the whole response is decoded by asyncua's generic decoder
(counted in :data:`STATS`), so the fast path can only be faster, never different.

Timestamps are truncated to microseconds, as asyncua's ``datetime`` does, so a sample read
live (fast path) and read again by HistoryRead (generic path) carries the same timestamp.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import numpy as np

from plantmrv.gateway.asyncua_compat import binary_codec, decode_publish_responses

log = logging.getLogger("plantmrv.gateway.opcua")

# Variant built-in type id -> numpy dtype of its value (fixed-size numeric scalars only)
_VARIANT_DTYPES = {
    1: "u1",  # Boolean
    2: "i1",  # SByte
    3: "u1",  # Byte
    4: "<i2",  # Int16
    5: "<u2",  # UInt16
    6: "<i4",  # Int32
    7: "<u4",  # UInt32
    8: "<i8",  # Int64
    9: "<u8",  # UInt64
    10: "<f4",  # Float
    11: "<f8",  # Double
}
_FILETIME_UNIX_US = 11_644_473_600_000_000  # 1601-01-01 -> 1970-01-01 in microseconds
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")

STATS = {"fast_items": 0, "generic_notifications": 0, "generic_responses": 0}


class DataChangeColumns:
    """The items of one DataChangeNotification as columns (length n each).

    ``client_handle`` uint32; ``value`` float64 (NaN where the DataValue had no value);
    ``has_value`` bool; ``status`` uint32 (0 = Good where absent); ``source_ts_ns`` and
    ``server_ts_ns`` int64 Unix ns, 0 where absent.
    """

    __slots__ = ("client_handle", "value", "has_value", "status", "source_ts_ns", "server_ts_ns")

    def __init__(self, client_handle, value, has_value, status, source_ts_ns, server_ts_ns):
        self.client_handle = client_handle
        self.value = value
        self.has_value = has_value
        self.status = status
        self.source_ts_ns = source_ts_ns
        self.server_ts_ns = server_ts_ns

    def __len__(self) -> int:
        return len(self.client_handle)


def _filetime_to_ns(t: np.ndarray) -> np.ndarray:
    t = t.astype(np.int64)
    return np.where(t > 0, (t // 10 - _FILETIME_UNIX_US) * 1000, 0)


def decode_data_change_body(body: bytes | memoryview) -> DataChangeColumns | None:
    """Decode a DataChangeNotification's binary body, or return None if it is not uniform."""
    mv = memoryview(body)
    size = len(mv)
    if size < 8:
        return None
    (n,) = _I32.unpack_from(mv, 0)
    if n <= 0:
        return None
    if size < 4 + 5:
        return None
    mask = mv[8]
    if mask & 0xF0:  # picoseconds (0x10, 0x20) or undefined bits: the generic decoder
        return None
    names, formats, offsets = ["handle", "mask"], ["<u4", "u1"], [0, 4]
    off = 5
    vdtype = None
    vbyte = None
    if mask & 0x01:
        if size < 4 + off + 1:
            return None
        vbyte = mv[4 + off]
        vdtype = _VARIANT_DTYPES.get(vbyte)  # also refuses array / dimension flags (0x80, 0x40)
        if vdtype is None:
            if vbyte != 0:  # 0 = null Variant: no value, no bytes
                return None
        names.append("vtype")
        formats.append("u1")
        offsets.append(off)
        off += 1
        if vdtype is not None:
            names.append("value")
            formats.append(vdtype)
            offsets.append(off)
            off += np.dtype(vdtype).itemsize
    if mask & 0x02:
        names.append("status")
        formats.append("<u4")
        offsets.append(off)
        off += 4
    if mask & 0x04:
        names.append("src")
        formats.append("<i8")
        offsets.append(off)
        off += 8
    if mask & 0x08:
        names.append("srv")
        formats.append("<i8")
        offsets.append(off)
        off += 8
    stride = off
    end = 4 + n * stride
    if end + 4 != size:  # after the items: DiagnosticInfos, expected empty (length -1 or 0)
        return None
    (ndiag,) = _I32.unpack_from(mv, end)
    if ndiag not in (-1, 0):
        return None
    rec = np.frombuffer(mv, np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": stride}), n, 4)
    if not (rec["mask"] == mask).all():
        return None
    if vbyte is not None and not (rec["vtype"] == vbyte).all():
        return None
    if vdtype is not None:
        value = rec["value"].astype(np.float64)
        has_value = np.ones(n, bool)
    else:
        value = np.full(n, np.nan)
        has_value = np.zeros(n, bool)
    status = rec["status"].astype(np.uint32) if mask & 0x02 else np.zeros(n, np.uint32)
    src = _filetime_to_ns(rec["src"]) if mask & 0x04 else np.zeros(n, np.int64)
    srv = _filetime_to_ns(rec["srv"]) if mask & 0x08 else np.zeros(n, np.int64)
    return DataChangeColumns(rec["handle"].astype(np.uint32), value, has_value, status, src, srv)


def decode_publish_response(data) -> Any:
    """A ``ua.PublishResponse`` from an asyncua ``Buffer`` (positioned at the TypeId).

    DataChangeNotifications that decode fast appear in ``NotificationData`` as
    :class:`DataChangeColumns`; everything else as asyncua objects. Falls back to asyncua's
    generic decoder for the whole response on any surprise.
    """
    try:
        return _decode(data.copy())
    except Exception as exc:  # noqa: BLE001 - whatever it is, asyncua's decoder decides
        STATS["generic_responses"] += 1
        if STATS["generic_responses"] <= 3:
            log.info("event=opcua_fast_decode_fallback error=%s: %s", type(exc).__name__, str(exc)[:200])
        from asyncua import ua

        return binary_codec().struct_from_binary(ua.PublishResponse, data)


class _NotFast(Exception):
    pass


def _decode(buf) -> Any:
    from asyncua import ua

    c = binary_codec()
    Primitives, from_binary, nodeid_from_binary, struct_from_binary = c.Primitives, c.from_binary, c.nodeid_from_binary, c.struct_from_binary
    typeid = nodeid_from_binary(buf)
    if typeid != ua.FourByteNodeId(ua.ObjectIds.PublishResponse_Encoding_DefaultBinary):
        raise _NotFast(f"not a PublishResponse: {typeid}")
    header = struct_from_binary(ua.ResponseHeader, buf)
    res = ua.PublishResult()
    res.SubscriptionId = Primitives.UInt32.unpack(buf)
    res.AvailableSequenceNumbers = from_binary(list[ua.UInt32], buf)
    res.MoreNotifications = Primitives.Boolean.unpack(buf)
    msg = ua.NotificationMessage()
    msg.SequenceNumber = Primitives.UInt32.unpack(buf)
    msg.PublishTime = Primitives.DateTime.unpack(buf)
    count = Primitives.Int32.unpack(buf)
    items: list = []
    dcn_typeid = ua.FourByteNodeId(ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary)
    for _ in range(max(count, 0)):
        peek = buf.copy()
        tid = nodeid_from_binary(peek)
        enc = Primitives.Byte.unpack(peek)
        if tid == dcn_typeid and enc == 1:
            length = Primitives.Int32.unpack(peek)
            if length < 0:
                raise _NotFast("DataChangeNotification without a length")
            body = peek.read(length)
            cols = decode_data_change_body(body)
            if cols is None:
                STATS["generic_notifications"] += 1
                items.append(struct_from_binary(ua.DataChangeNotification, c.Buffer(bytes(body))))
            else:
                STATS["fast_items"] += len(cols)
                items.append(cols)
            buf.skip(peek.cur_pos - buf.cur_pos)
        else:
            items.append(c.extensionobject_from_binary(buf))
    msg.NotificationData = items
    res.NotificationMessage = msg
    res.Results = from_binary(list[ua.StatusCode], buf)
    res.DiagnosticInfos = from_binary(list[ua.DiagnosticInfo], buf)
    if len(buf):
        raise _NotFast(f"{len(buf)} bytes left after the PublishResponse")
    resp = ua.PublishResponse()
    resp.ResponseHeader = header
    resp.Parameters = res
    return resp


def install(session) -> None:
    """Make this asyncua client session decode its PublishResponses with :func:`decode_publish_response`
    (asyncua's publish loops and opcua_durable's call ``session.publish``)."""
    decode_publish_responses(session, decode_publish_response)
