"""The fast PublishResponse decoder (plantmrv.gateway.opcua_fast) against asyncua's own decoder.

The contract: for any PublishResponse, the samples the OPC UA source makes from the fast
decoding are exactly those it makes from asyncua's generic decoding (same series, timestamps,
values, status codes, same non-numeric count), and a response the fast path does not fully
understand is decoded by asyncua. Checked on real bytes from a real asyncua server (uniform
Doubles, and mixed types / qualities / missing timestamps) and on generated responses.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncua import Client, ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from plantmrv.gateway.asyncua_compat import decode_publish_responses, session_of
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.gateway.opcua_fast import STATS, DataChangeColumns, decode_publish_response
from plantmrv.gateway.opcua_source import OpcUaSource, OpcUaSourceConfig
from tests.test_gateway_support import MIXED, running_opcua_server

N_TAGS = 20


@pytest.fixture
def mixed_server(tmp_path):
    yield from running_opcua_server(tmp_path, tags=N_TAGS, period_s=0.1, mixed=True)


def _source(n: int) -> OpcUaSource:
    cfg = OpcUaSourceConfig.model_validate({
        "type": "opcua", "name": "plc", "url": "opc.tcp://127.0.0.1:4840/",
        "groups": [{"name": "g", "measurement": "m", "nodes": [{"field": f"f{i}", "node_id": f"ns=2;i={i + 1}"} for i in range(n)]}],
    })
    return OpcUaSource(cfg, "site", GatewayMetrics())


def _rows(src: OpcUaSource, response, now_ns: int = 123) -> tuple[list[tuple], float]:
    """Rows (series index, ts_ns, value, status, server ts_ns) the source makes from a decoded response, and its non-numeric count."""
    before = src.metrics._errors.labels("plc", "non_numeric")._value.get()
    rows: list[tuple] = []
    for notif in response.Parameters.NotificationMessage.NotificationData:
        if isinstance(notif, DataChangeColumns):
            cols = src._rows_from_columns(notif, now_ns)
        elif isinstance(notif, ua.DataChangeNotification):
            pairs = [(it.ClientHandle - 1, it.Value) for it in notif.MonitoredItems if 0 <= it.ClientHandle - 1 < len(src.nodes)]
            cols = src._rows_from_datavalues(pairs, now_ns)
        else:
            continue
        for i, t, v, c, srv in zip(*(np.asarray(x).tolist() for x in cols)):
            rows.append((int(i), int(t), "nan" if math.isnan(v) else float(v), int(c), int(srv)))
    return rows, src.metrics._errors.labels("plc", "non_numeric")._value.get() - before


def _assert_same(raw: bytes, n_tags: int = N_TAGS) -> str:
    """Decode ``raw`` both ways, compare everything; return which path the fast decoder took."""
    generic = struct_from_binary(ua.PublishResponse, Buffer(raw))
    before = dict(STATS)
    fast = decode_publish_response(Buffer(raw))
    g, f = generic.Parameters, fast.Parameters
    assert (f.SubscriptionId, f.AvailableSequenceNumbers, f.MoreNotifications, f.Results) == \
           (g.SubscriptionId, g.AvailableSequenceNumbers, g.MoreNotifications, g.Results)
    assert (f.NotificationMessage.SequenceNumber, f.NotificationMessage.PublishTime) == \
           (g.NotificationMessage.SequenceNumber, g.NotificationMessage.PublishTime)
    assert fast.ResponseHeader == generic.ResponseHeader
    assert len(f.NotificationMessage.NotificationData) == len(g.NotificationMessage.NotificationData)
    for a, b in zip(f.NotificationMessage.NotificationData, g.NotificationMessage.NotificationData):
        if isinstance(a, (DataChangeColumns, ua.DataChangeNotification)):
            assert isinstance(b, ua.DataChangeNotification)  # compared below as the rows they make (NaN != NaN)
        else:
            assert a == b
    rows_fast, skipped_fast = _rows(_source(n_tags), fast)
    rows_generic, skipped_generic = _rows(_source(n_tags), generic)
    assert rows_fast == rows_generic
    assert skipped_fast == skipped_generic
    if STATS["generic_responses"] > before["generic_responses"]:
        return "generic"
    return "fast" if STATS["generic_notifications"] == before["generic_notifications"] else "mixed"


async def _capture(url: str, node_ids: list[str], n: int) -> list[bytes]:
    """Subscribe to ``node_ids`` and return the raw bytes of the first ``n`` PublishResponses with data."""
    client = Client(url)
    await client.connect()
    captured: list[bytes] = []
    try:
        def decode(data):  # the same hook as opcua_fast.install: asyncua's publish loop calls it
            captured.append(bytes(data))
            return struct_from_binary(ua.PublishResponse, data)

        decode_publish_responses(session_of(client), decode)

        class Handler:
            def datachange_notification(self, node, val, data):
                pass

        sub = await client.create_subscription(100, Handler())
        await sub.subscribe_data_change([client.get_node(x) for x in node_ids], queuesize=10)
        for _ in range(200):
            with_data = [b for b in captured if len(b) > 100]
            if len(with_data) >= n:
                return with_data[:n]
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {len(captured)} PublishResponses from {url}")
    finally:
        await client.disconnect()


def test_fast_decoder_matches_asyncua_on_a_real_servers_doubles(mixed_server):
    raws = asyncio.run(_capture(mixed_server.url, [f"ns=2;s=T{i}" for i in range(N_TAGS)], 8))
    paths = [_assert_same(r) for r in raws]
    assert paths.count("fast") == len(raws), paths  # uniform Doubles: every item on the fast path


def test_fast_decoder_matches_asyncua_on_mixed_types_status_codes_and_missing_timestamps(mixed_server):
    """Int32, Boolean, Float, String, Uncertain, Bad without value, no source timestamp in one
    subscription: those notifications go to asyncua's decoder, the samples are the same; a
    subscription of only one odd kind is uniform again and decodes fast with the same result."""
    names = [f"ns=2;s={m}" for m in MIXED] + ["ns=2;s=T0", "ns=2;s=T1"]
    raws = asyncio.run(_capture(mixed_server.url, names, 8))
    paths = [_assert_same(r, len(names)) for r in raws]
    assert "mixed" in paths, paths
    for odd in ("M_int32", "M_bool", "M_float", "M_bad", "M_no_source_ts", "M_uncertain"):
        raws = asyncio.run(_capture(mixed_server.url, [f"ns=2;s={odd}"], 4))
        paths = [_assert_same(r, 1) for r in raws]
        assert set(paths) == {"fast"}, (odd, paths)


def test_fast_decoder_leaves_a_truncated_response_to_asyncua():
    items = [ua.MonitoredItemNotification(ClientHandle=1, Value=ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))]
    resp = ua.PublishResponse()
    resp.Parameters.NotificationMessage.NotificationData = [ua.DataChangeNotification(MonitoredItems=items)]
    raw = struct_to_binary(resp)
    before = STATS["generic_responses"]
    with pytest.raises(Exception) as fast_exc:
        decode_publish_response(Buffer(raw[:-7]))
    with pytest.raises(Exception) as generic_exc:
        struct_from_binary(ua.PublishResponse, Buffer(raw[:-7]))
    assert type(fast_exc.value) is type(generic_exc.value)
    assert STATS["generic_responses"] == before + 1


_T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
_VARIANTS = {
    "double": st.floats(allow_nan=True, width=64).map(lambda x: ua.Variant(x, ua.VariantType.Double)),
    "float": st.floats(width=32, allow_nan=False).map(lambda x: ua.Variant(x, ua.VariantType.Float)),
    "int32": st.integers(-2**31, 2**31 - 1).map(lambda x: ua.Variant(x, ua.VariantType.Int32)),
    "uint64": st.integers(0, 2**64 - 1).map(lambda x: ua.Variant(x, ua.VariantType.UInt64)),
    "bool": st.booleans().map(lambda x: ua.Variant(x, ua.VariantType.Boolean)),
    "string": st.text(max_size=5).map(lambda x: ua.Variant(x, ua.VariantType.String)),
    "none": st.just(None),
}
_CODES = st.sampled_from([0, ua.StatusCodes.UncertainLastUsableValue, ua.StatusCodes.BadSensorFailure, ua.StatusCodes.GoodClamped])
_TS = st.one_of(st.none(), st.integers(0, 10**9).map(lambda us: _T0 + timedelta(microseconds=us * 7)))


@st.composite
def _data_values(draw, kind: str):
    v = draw(_VARIANTS[kind])
    code = draw(st.one_of(st.none(), _CODES))
    dv = ua.DataValue(v, ua.StatusCode(code) if code is not None else None, SourceTimestamp=draw(_TS), ServerTimestamp=draw(_TS))
    return dv


@st.composite
def _responses(draw):
    """Notifications that are uniform (one kind, one field layout) or not, with handles in and out of range."""
    notifs = []
    for _ in range(draw(st.integers(1, 3))):
        uniform = draw(st.booleans())
        kind = draw(st.sampled_from(sorted(_VARIANTS)))
        n = draw(st.integers(1, 12))
        if uniform:
            proto = draw(_data_values(kind))
            dvs = [ua.DataValue(draw(_VARIANTS[kind]) if kind != "none" else None, proto.StatusCode,
                                SourceTimestamp=proto.SourceTimestamp, ServerTimestamp=proto.ServerTimestamp) for _ in range(n)]
        else:
            dvs = [draw(_data_values(draw(st.sampled_from(sorted(_VARIANTS))))) for _ in range(n)]
        handles = draw(st.lists(st.integers(0, N_TAGS + 2), min_size=n, max_size=n))
        notifs.append(ua.DataChangeNotification(MonitoredItems=[ua.MonitoredItemNotification(ClientHandle=h, Value=dv)
                                                                for h, dv in zip(handles, dvs)]))
    if draw(st.booleans()):
        notifs.insert(draw(st.integers(0, len(notifs))), ua.StatusChangeNotification(Status=ua.StatusCode(ua.StatusCodes.BadTimeout)))
    resp = ua.PublishResponse()
    resp.Parameters.SubscriptionId = draw(st.integers(1, 2**32 - 1))
    resp.Parameters.AvailableSequenceNumbers = draw(st.lists(st.integers(0, 2**32 - 1), max_size=3))
    resp.Parameters.MoreNotifications = draw(st.booleans())
    resp.Parameters.NotificationMessage.SequenceNumber = draw(st.integers(0, 2**32 - 1))
    resp.Parameters.NotificationMessage.PublishTime = _T0
    resp.Parameters.NotificationMessage.NotificationData = notifs
    resp.Parameters.Results = [ua.StatusCode(c) for c in draw(st.lists(_CODES, max_size=2))]
    return resp


@settings(max_examples=300, deadline=None)
@given(_responses())
def test_fast_decoder_matches_asyncua_on_generated_responses(resp):
    _assert_same(struct_to_binary(resp))


def test_opcua_node_scale_offset_unit_apply_before_buffering():
    from plantmrv.gateway.metrics import GatewayMetrics
    from plantmrv.gateway.opcua_source import OpcUaSource, OpcUaSourceConfig

    cfg = OpcUaSourceConfig.model_validate({"type": "opcua", "name": "p", "url": "opc.tcp://127.0.0.1:4840", "groups": [
        {"name": "g", "measurement": "pump", "nodes": [
            {"field": "power_kw", "node_id": "ns=2;s=P", "unit": "W"},
            {"field": "temp_c", "node_id": "ns=2;s=T", "scale": 0.1, "offset": -40},
            {"field": "head_m", "node_id": "ns=2;s=H"}]}]})
    src = OpcUaSource(cfg, "s", GatewayMetrics())
    got = []
    src._emit = lambda batch, watermark_ns=None, covers=None: got.append(batch)
    src._emit_rows([0, 1, 2], [1, 1, 1], [48210.0, 655.0, 31.5], [0, 0, 0])
    assert got[0].value.tolist() == pytest.approx([48.21, 25.5, 31.5])


def test_opcua_node_unit_mismatch_is_located():
    from pydantic import ValidationError

    from plantmrv.gateway.opcua_source import OpcUaNode

    with pytest.raises(ValidationError, match=r"unit: 'm3/h' cannot be converted to 'kW' \(volume flow vs power\)"):
        OpcUaNode.model_validate({"field": "power_kw", "node_id": "ns=2;s=P", "unit": "m3/h"})
