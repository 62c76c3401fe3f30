"""Mapped device JSON: plain JSON telemetry on configured topics, turned into sample batches.

Devices that speak MQTT but not the plantmrv batch format (meters, smart inverters, Node-RED
flows) publish JSON such as ``{"ts": 1700000000000, "data": {"flow": 12.5, "kw": 3.1}}``.
One config entry per topic pattern says which JSON values are which quantities::

    - topic: "devices/+/telemetry"          # MQTT filter: + one level, # the rest
      measurement: pump
      tags: {site: danang, asset: "{topic[1]}"}   # {topic[N]}: topic level N (0-based)
      fields: {flow_m3_per_h: data.flow, power_kw: data.kw}   # field: dotted JSON path
      timestamp: {path: ts, unit: ms}       # omitted: the time ingest received the message

A payload is one JSON object or a list of them (several readings). Paths are dotted keys,
with integer parts indexing lists (``readings.0.value``). Booleans count as 0/1; anything else
that is not a finite number is refused for that field only, with the path and the reason, and
the other fields of the message are still written.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from plantmrv.batch import SampleBatch, Series
from plantmrv.config import StrictModel

_TEMPLATE = re.compile(r"\{topic\[(\d+)\]\}")
_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def check_topic_filter(pattern: str) -> str:
    """Raise ValueError unless ``pattern`` is a valid MQTT topic filter."""
    if not pattern or len(pattern.encode("utf-8")) > 65535:
        raise ValueError("topic filter is empty or longer than 65535 bytes")
    if pattern.startswith("$share/"):
        raise ValueError("write the plain topic; ingest adds the $share/<group>/ prefix itself")
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"'#' must be a whole level and the last one (level {i}: {level!r})")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level (level {i}: {level!r})")
        if "\0" in level:
            raise ValueError("topic filter contains a NUL character")
    return pattern


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest, ``$`` topics only by literal filters)."""
    p = pattern.split("/")
    t = topic.split("/")
    if t and t[0].startswith("$") and p[0] in ("+", "#"):
        return False
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t):
            return False
        if level != "+" and level != t[i]:
            return False
    return len(p) == len(t)


class TimestampConfig(StrictModel):
    path: str = Field(..., description="Dotted JSON path of the timestamp in each reading (e.g. `ts`).")
    unit: Literal["s", "ms", "us", "ns", "rfc3339"] = Field(
        "ms", description="Numeric epoch unit, or `rfc3339` for strings like `2026-01-02T03:04:05.123Z`."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not _PATH.match(v):
            raise ValueError(f"{v!r} is not a dotted JSON path like 'ts' or 'meta.time'")
        return v


class DeviceJsonTopic(StrictModel):
    """One mapped topic pattern: which JSON values are which quantities of which series."""

    topic: str = Field(..., description="MQTT topic filter (`+` one level, `#` the rest), without `$share/`.")
    measurement: str = Field(..., description="InfluxDB measurement (asset class, e.g. `pump`).")
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags; a value may hold `{topic[N]}`, replaced by topic level N (0-based)."
    )
    fields: dict[str, str] = Field(..., min_length=1, description="Field name (with unit) -> dotted JSON path of its value.")
    timestamp: TimestampConfig | None = Field(None, description="Where the reading's time is; null: the time ingest received it.")

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        return check_topic_filter(v)

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not _PATH.match(path):
                raise ValueError(f"field {name!r}: {path!r} is not a dotted JSON path like 'data.flow'")
        return v

    @model_validator(mode="after")
    def _templates(self) -> "DeviceJsonTopic":
        levels = self.topic.split("/")
        for key, value in self.tags.items():
            for m in _TEMPLATE.finditer(value):
                n = int(m.group(1))
                if n >= len(levels) or levels[n] == "#":
                    raise ValueError(f"tags.{key}: {{topic[{n}]}} is beyond the levels of topic {self.topic!r}")
            if "{" in _TEMPLATE.sub("", value):
                raise ValueError(f"tags.{key}: {value!r} has a '{{' that is not a {{topic[N]}} template")
        return self


@dataclass
class FieldReject:
    """One value the mapping could not turn into a sample: where, and why."""

    code: str  # json_missing | json_type | json_timestamp
    detail: str


@dataclass
class DecodedJson:
    batch: SampleBatch
    rejects: list[FieldReject]


class JsonDecodeError(ValueError):
    """The whole payload is unusable (not JSON, not an object or list of objects)."""


def _get(doc: Any, path: str) -> tuple[bool, Any]:
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                return False, None
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit():
            i = int(part)
            if i >= len(cur):
                return False, None
            cur = cur[i]
        else:
            return False, None
    return True, cur


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _timestamp_ns(value: Any, unit: str) -> int | None:
    if unit == "rfc3339":
        if not isinstance(value, str):
            return None
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if t.tzinfo is None:
            return None
        delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    ns = value * _UNIT_NS[unit] if isinstance(value, int) else round(value * _UNIT_NS[unit])
    if not -(2**63) < ns < 2**63:
        return None
    return int(ns)


class DeviceJsonMapping:
    """The compiled mapping of one topic pattern."""

    def __init__(self, cfg: DeviceJsonTopic):
        self.cfg = cfg
        self._fixed_tags = {k: v for k, v in cfg.tags.items() if not _TEMPLATE.search(v)}
        self._templated = {k: v for k, v in cfg.tags.items() if _TEMPLATE.search(v)}

    def matches(self, topic: str) -> bool:
        return topic_matches(self.cfg.topic, topic)

    def tags_for(self, topic: str) -> dict[str, str]:
        levels = topic.split("/")
        tags = dict(self._fixed_tags)
        for key, value in self._templated.items():
            tags[key] = _TEMPLATE.sub(lambda m: levels[int(m.group(1))] if int(m.group(1)) < len(levels) else "", value)
        return tags

    def decode(self, topic: str, payload: bytes, received_ns: int) -> DecodedJson:
        """Turn a payload into samples; refuse only the values that cannot be samples."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise JsonDecodeError(f"payload is not JSON: {str(exc)[:200]}") from None
        records = doc if isinstance(doc, list) else [doc]
        if not records or not all(isinstance(r, dict) for r in records):
            raise JsonDecodeError(f"payload is not a JSON object or a non-empty list of objects (got {type(doc).__name__})")
        tags = self.tags_for(topic)
        table = [Series(self.cfg.measurement, tuple(sorted(tags.items())), name) for name in self.cfg.fields]
        sid, ts, vals, rejects = [], [], [], []
        ts_cfg = self.cfg.timestamp
        for r_i, record in enumerate(records):
            where = f"[{r_i}]." if isinstance(doc, list) else ""
            t_ns = received_ns
            if ts_cfg is not None:
                found, raw = _get(record, ts_cfg.path)
                t_ns = _timestamp_ns(raw, ts_cfg.unit) if found else None
                if t_ns is None:
                    why = "is missing" if not found else f"is {_short(raw)}, not a {ts_cfg.unit} timestamp"
                    rejects.append(FieldReject("json_timestamp", f"{where}{ts_cfg.path} {why}; {len(table)} fields of this reading refused"))
                    continue
            for i, (name, path) in enumerate(self.cfg.fields.items()):
                found, raw = _get(record, path)
                if not found:
                    rejects.append(FieldReject("json_missing", f"{where}{path} (field {name}) is missing"))
                    continue
                value = _number(raw)
                if value is None:
                    rejects.append(FieldReject("json_type", f"{where}{path} (field {name}) is {_short(raw)}, not a number"))
                    continue
                sid.append(i)
                ts.append(t_ns)
                vals.append(value)
        batch = SampleBatch(table, np.array(sid, np.int32), np.array(ts, np.int64), np.array(vals, np.float64))
        return DecodedJson(batch, rejects)


class DeviceJsonRouter:
    """Finds the mapping of a topic (first configured pattern that matches)."""

    def __init__(self, topics: list[DeviceJsonTopic]):
        self.mappings = [DeviceJsonMapping(t) for t in topics]
        self._cache: dict[str, DeviceJsonMapping | None] = {}

    def find(self, topic: str) -> DeviceJsonMapping | None:
        if topic in self._cache:
            return self._cache[topic]
        found = next((m for m in self.mappings if m.matches(topic)), None)
        if len(self._cache) < 10_000:
            self._cache[topic] = found
        return found
