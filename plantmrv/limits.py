"""Bounds on decoding untrusted input: one set of limits for the wire codec and device JSON.

Every network input is untrusted, an authenticated gateway's too. A 305 kB zlib payload can
expand to 300 MB; a JSON document nested 10,000 deep exhausts the parser's recursion; a header
listing millions of empty series costs gigabytes of Python objects. :class:`DecodeLimits`
bounds each before the memory is spent (decompression stops at the limit, containers are
counted before a JSON text is parsed), and :class:`LimitError` says which limit refused an
input, with a short ``code`` that ingest uses as its dead-letter reason code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class DecodeLimits:
    """What one message may cost to decode (see ``ingest.validation.limits``)."""

    max_decompressed_bytes: int = 16 * MIB  # a compressed batch's body, inflated
    max_compression_ratio: float = 250.0  # inflated / compressed bytes (zlib reaches ~1000)
    max_header_bytes: int = 2 * MIB  # a batch's JSON header (series table + meta): ~12x in Python objects
    max_series: int = 50_000  # entries of a batch's series table
    max_tags: int = 32  # tags of one series
    max_json_depth: int = 32  # nesting of device JSON and of a batch header's meta values
    max_json_bytes: int = 1 * MIB  # a device-JSON payload
    max_name_chars: int = 256  # a measurement, tag key, tag value or field name


DEFAULT_LIMITS = DecodeLimits()


class LimitError(ValueError):
    """An input over one of the :class:`DecodeLimits`; ``code`` names the kind (a metric label)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def containers(text: str) -> int:
    """Upper bound of the JSON arrays and objects in ``text`` (brackets inside strings count too)."""
    return text.count("[") + text.count("{")


def json_depth_over(value: Any, max_depth: int) -> bool:
    """True if ``value`` (parsed JSON) nests arrays/objects deeper than ``max_depth`` (a scalar is 0)."""
    stack = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if d + 1 > max_depth:
            return True
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return False


def loads_bounded(text: str | bytes, limits: DecodeLimits, what: str) -> Any:
    """``json.loads`` of an untrusted text within ``limits`` (size, nesting); :class:`LimitError`
    (codes ``too_large``, ``too_deep``) or ``ValueError`` (not JSON) otherwise."""
    if len(text) > limits.max_json_bytes:
        raise LimitError(f"{what} of {len(text)} bytes exceeds the limit of {limits.max_json_bytes} (max_json_bytes)", "too_large")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise LimitError(f"{what} nests deeper than the limit of {limits.max_json_depth} levels (max_json_depth)", "too_deep") from None
    if json_depth_over(doc, limits.max_json_depth):
        raise LimitError(f"{what} nests deeper than the limit of {limits.max_json_depth} levels (max_json_depth)", "too_deep")
    return doc
