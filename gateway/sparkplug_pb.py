"""Sparkplug B payloads: the published Tahu protobuf schema, built at import with the protobuf runtime.

The message layout follows ``sparkplug_b.proto`` of Eclipse Tahu (package
``org.eclipse.tahu.protobuf``, proto2), the schema the Sparkplug 3.0 specification publishes.
It is declared here field by field (numbers as published) rather than compiled with protoc, so
no generated code is pinned to one protobuf release:

- ``Payload``: ``timestamp`` 1 (uint64 ms), ``metrics`` 2, ``seq`` 3 (uint64), ``uuid`` 4, ``body`` 5;
- ``Metric``: ``name`` 1, ``alias`` 2 (uint64), ``timestamp`` 3, ``datatype`` 4, ``is_historical`` 5,
  ``is_transient`` 6, ``is_null`` 7, value oneof: ``int_value`` 10 (uint32), ``long_value`` 11
  (uint64), ``float_value`` 12, ``double_value`` 13, ``boolean_value`` 14, ``string_value`` 15,
  ``bytes_value`` 16.

- ``Metric.properties`` 9: a ``PropertySet`` (``keys`` 1, ``values`` 2), each ``PropertyValue``
  ``type`` 1, ``is_null`` 2, value oneof ``int_value`` 3 (uint32), ``long_value`` 4, ``float_value`` 5,
  ``double_value`` 6, ``boolean_value`` 7, ``string_value`` 8: where the ``Quality`` property
  travels (:func:`metric_quality`, :func:`set_quality`).

``metadata`` (8), nested property sets, data sets, templates and extensions (17-19) are not
declared: protobuf skips them as unknown fields, and they carry no numeric sample.

Data types (``Metric.datatype``): :data:`DATATYPES`. Integers travel as unsigned
``int_value``/``long_value`` and are sign-corrected by type (:func:`metric_value`).
"""

from __future__ import annotations

import math
import struct
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DATATYPES = {1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8", 6: "UInt16", 7: "UInt32", 8: "UInt64",
             9: "Float", 10: "Double", 11: "Boolean", 12: "String", 13: "DateTime", 14: "Text", 15: "UUID",
             16: "DataSet", 17: "Bytes", 18: "File", 19: "Template"}
NUMERIC = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13}
_SIGNED_BITS = {1: 8, 2: 16, 3: 32, 4: 64}
REBIRTH_METRIC = "Node Control/Rebirth"
BDSEQ_METRIC = "bdSeq"
# Sparkplug 3.0, 6.4.8 "Quality Codes": the optional property ``Quality`` (Int32) of a metric whose
# value is not GOOD; absent means GOOD (Eclipse Tahu's SparkplugUtil.getQualityCode reads it so)
QUALITY_PROPERTY = "Quality"
QUALITY_BAD, QUALITY_GOOD, QUALITY_STALE = 0, 192, 500

_F = descriptor_pb2.FieldDescriptorProto


def _build():
    fdp = descriptor_pb2.FileDescriptorProto(name="plantmrv_sparkplug_b.proto", package="org.eclipse.tahu.protobuf", syntax="proto2")
    payload = fdp.message_type.add(name="Payload")
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    for name, num, typ in (("name", 1, _F.TYPE_STRING), ("alias", 2, _F.TYPE_UINT64), ("timestamp", 3, _F.TYPE_UINT64),
                           ("datatype", 4, _F.TYPE_UINT32), ("is_historical", 5, _F.TYPE_BOOL),
                           ("is_transient", 6, _F.TYPE_BOOL), ("is_null", 7, _F.TYPE_BOOL)):
        metric.field.add(name=name, number=num, type=typ, label=opt)
    for name, num, typ in (("int_value", 10, _F.TYPE_UINT32), ("long_value", 11, _F.TYPE_UINT64),
                           ("float_value", 12, _F.TYPE_FLOAT), ("double_value", 13, _F.TYPE_DOUBLE),
                           ("boolean_value", 14, _F.TYPE_BOOL), ("string_value", 15, _F.TYPE_STRING),
                           ("bytes_value", 16, _F.TYPE_BYTES)):
        metric.field.add(name=name, number=num, type=typ, label=opt, oneof_index=0)
    payload.field.add(name="timestamp", number=1, type=_F.TYPE_UINT64, label=opt)
    payload.field.add(name="metrics", number=2, type=_F.TYPE_MESSAGE, label=rep, type_name=".org.eclipse.tahu.protobuf.Payload.Metric")
    payload.field.add(name="seq", number=3, type=_F.TYPE_UINT64, label=opt)
    payload.field.add(name="uuid", number=4, type=_F.TYPE_STRING, label=opt)
    payload.field.add(name="body", number=5, type=_F.TYPE_BYTES, label=opt)
    pvalue = payload.nested_type.add(name="PropertyValue")
    pvalue.oneof_decl.add(name="value")
    pvalue.field.add(name="type", number=1, type=_F.TYPE_UINT32, label=opt)
    pvalue.field.add(name="is_null", number=2, type=_F.TYPE_BOOL, label=opt)
    for name, num, typ in (("int_value", 3, _F.TYPE_UINT32), ("long_value", 4, _F.TYPE_UINT64), ("float_value", 5, _F.TYPE_FLOAT),
                           ("double_value", 6, _F.TYPE_DOUBLE), ("boolean_value", 7, _F.TYPE_BOOL), ("string_value", 8, _F.TYPE_STRING)):
        pvalue.field.add(name=name, number=num, type=typ, label=opt, oneof_index=0)
    pset = payload.nested_type.add(name="PropertySet")
    pset.field.add(name="keys", number=1, type=_F.TYPE_STRING, label=rep)
    pset.field.add(name="values", number=2, type=_F.TYPE_MESSAGE, label=rep, type_name=".org.eclipse.tahu.protobuf.Payload.PropertyValue")
    metric.field.add(name="properties", number=9, type=_F.TYPE_MESSAGE, label=opt, type_name=".org.eclipse.tahu.protobuf.Payload.PropertySet")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload"))


Payload = _build()


def metric_value(m) -> float | None:
    """A metric's value as float (booleans 0/1, DateTime ms); None when null or not numeric."""
    if m.is_null or m.datatype not in NUMERIC:
        return None
    which = m.WhichOneof("value")
    if which is None:
        return None
    v = getattr(m, which)
    if which in ("int_value", "long_value"):
        bits = _SIGNED_BITS.get(m.datatype)
        if bits:  # two's complement: 32-bit in int_value (Tahu), or the type's own width (some edge nodes)
            width = 64 if which == "long_value" else (bits if v < 1 << bits else 32)
            if v >= 1 << (width - 1):
                v -= 1 << width
        return float(v)
    if which in ("float_value", "double_value"):
        return float(v)
    if which == "boolean_value":
        return 1.0 if v else 0.0
    return None


def set_value(m, datatype: int, value: Any) -> None:
    """Set a metric's datatype and value (two's complement for negative integers, as Tahu does)."""
    m.datatype = datatype
    if value is None:
        m.is_null = True
    elif datatype in (1, 2, 3, 5, 6, 7):
        m.int_value = int(value) & 0xFFFFFFFF
    elif datatype in (4, 8, 13):
        m.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    elif datatype == 9:
        m.float_value = float(value)
    elif datatype == 10:
        m.double_value = float(value)
    elif datatype == 11:
        m.boolean_value = bool(value)
    elif datatype in (12, 14, 15):
        m.string_value = str(value)
    else:
        raise ValueError(f"datatype {datatype} ({DATATYPES.get(datatype, '?')}) is not supported here")


def metric_quality(m) -> int:
    """The metric's ``Quality`` property (0 bad, 192 good, 500 stale); 192 when it has none."""
    if m.HasField("properties"):
        for key, pv in zip(m.properties.keys, m.properties.values):
            if key == QUALITY_PROPERTY and pv.WhichOneof("value") in ("int_value", "long_value"):
                v = getattr(pv, pv.WhichOneof("value"))
                return v - (1 << 32) if pv.WhichOneof("value") == "int_value" and v >= 1 << 31 else int(v)
    return QUALITY_GOOD


def set_quality(m, code: int) -> None:
    """Give the metric the ``Quality`` property ``code`` (type Int32, as the specification requires)."""
    m.properties.keys.append(QUALITY_PROPERTY)
    pv = m.properties.values.add()
    pv.type = 3
    pv.int_value = code & 0xFFFFFFFF


def parse_topic(topic: str) -> tuple[str, str, str, str | None] | None:
    """``spBv1.0/<group>/<type>/<edge>[/<device>]`` -> (group, type, edge, device); None otherwise."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != "spBv1.0":
        return None
    return parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else None


def float32(x: float) -> float:
    """``x`` rounded to float32 (what a Float metric carries)."""
    return struct.unpack("<f", struct.pack("<f", x))[0] if math.isfinite(x) else x
