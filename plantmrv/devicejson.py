"""Mapped device JSON: plain JSON telemetry on configured MQTT topics, turned into sample batches.

Shared by the gateway's ``type: mqtt`` source and by ingest's ``ingest.device_json``: one config
shape, one decoder. Devices that speak MQTT but not the plantmrv batch format (meters, smart
inverters, Node-RED flows) publish JSON such as ``{"ts": 1700000000000, "data": {"flow": 12.5,
"kw": 3.1}}``. One mapping per topic pattern says which JSON values are which quantities::

    - topic: "devices/+/telemetry"          # MQTT filter: + one level, # the rest
      measurement: pump
      tags: {site: danang, asset: "{topic[1]}"}   # {topic[N]}: topic level N (0-based)
      fields:                               # field (with unit): dotted JSON path ...
        flow_m3_per_h: data.flow
        power_kw: {path: data.w, unit: W}         # ... or {path, scale, offset, unit}
      timestamp: {path: ts, unit: ms}       # omitted: the time the message was received

A payload is one JSON object or a list of them (several readings). Paths are dotted keys,
with integer parts indexing lists (``readings.0.value``). Booleans count as 0/1; a value that is
missing or not a finite number is refused for that field only, with its path and the reason
(:class:`FieldReject`), and the other values of the message are still decoded. Only a payload
that is not JSON at all, or not an object or list of objects, is refused whole
(:class:`JsonDecodeError`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from dataclasses import field as _dc_field
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.config import StrictModel
from plantmrv.limits import DEFAULT_LIMITS, DecodeLimits, LimitError, loads_bounded
from plantmrv.scaling import Scaling
from plantmrv.timebounds import DEFAULT_BOUNDS, TimeBounds

_TEMPLATE = re.compile(r"\{topic\[(\d+)\]\}")
_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")
_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


# --------------------------------------------------------------------------- topics


def check_topic_filter(pattern: str) -> str:
    """Raise ValueError unless ``pattern`` is a valid MQTT topic filter (without ``$share/``)."""
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


# --------------------------------------------------------------------------- config


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


class FieldMap(Scaling):
    """A field whose raw value needs converting: ``raw * scale + offset`` in ``unit``, then to the field's unit."""

    path: str = Field(..., description="Dotted JSON path of the raw value (`ac.p_w`, `pumps.0.kw`).")


class DeviceJsonTopic(StrictModel):
    """One mapped topic pattern: which JSON values are which quantities of which series."""

    topic: str = Field(..., description="MQTT topic filter (`+` one level, `#` the rest), without `$share/`.")
    measurement: str = Field(..., description="InfluxDB measurement (asset class, e.g. `pump`).")
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags; a value may hold `{topic[N]}`, replaced by topic level N (0-based). "
        "In a gateway, `site` defaults to `site.id`.",
    )
    fields: dict[str, str | FieldMap] = Field(
        ..., min_length=1, description="Field name (with unit) -> dotted JSON path of its value, or `{path, scale, offset, unit}`."
    )
    timestamp: TimestampConfig | None = Field(None, description="Where the reading's time is; null: the time the message was received.")
    report_by_exception: bool = Field(
        False, description="The device sends a field only when it changes: a field absent from a reading is unchanged as of the "
        "reading's time (not refused), and every reading vouches for every field of the mapping (the gateway's coverage). "
        "Leave false for devices that leave out fields they cannot read.")
    status: str | None = Field(
        None, description="Dotted JSON path of an object `{field: status}` with OPC UA status names (`BadSensorFailure`, "
        "`UncertainLastUsableValue`): a Bad field becomes a BAD sample (a gap, written to sample_quality), an Uncertain one an "
        "UNCERTAIN sample.")

    @field_validator("status")
    @classmethod
    def _status_path(cls, v: str | None) -> str | None:
        if v is not None and not _PATH.match(v):
            raise ValueError(f"{v!r} is not a dotted JSON path like 'status'")
        return v

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        return check_topic_filter(v)

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: dict[str, str | FieldMap]) -> dict[str, str | FieldMap]:
        for name, spec in v.items():
            path = spec if isinstance(spec, str) else spec.path
            if not _PATH.match(path):
                raise ValueError(f"field {name!r}: {path!r} is not a dotted JSON path like 'data.flow'")
            if not isinstance(spec, str):
                spec.check_unit(name, f"field {name!r}: ")
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


# --------------------------------------------------------------------------- values


def get_path(doc: Any, path: str) -> tuple[bool, Any]:
    """``(found, value)`` at dotted ``path`` in ``doc``; integer parts index lists."""
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


def to_number(value: Any) -> float | None:
    """A JSON value as float (booleans 0/1, huge integers inf); None for anything else."""
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


def timestamp_ns(value: Any, unit: str, bounds: TimeBounds = DEFAULT_BOUNDS) -> int:
    """A JSON timestamp as Unix ns; ValueError (the reason) unless a ``unit`` time within ``bounds``
    (by default 2000..2100: older is a unit mistake or an unset device clock)."""
    if unit == "rfc3339":
        if not isinstance(value, str):
            raise ValueError(f"is {_short(value)}, not an RFC 3339 string")
        try:
            t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"is {_short(value)}, not an RFC 3339 time") from None
        if t.tzinfo is None:
            raise ValueError(f"is {_short(value)}, an RFC 3339 time without its UTC offset")
        delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        ns = (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"is {_short(value)}, not a {unit} timestamp")
        ns = value * _UNIT_NS[unit]  # a float: range-checked before rounding (1e300 s overflows)
    if not bounds.contains(ns):
        raise ValueError(f"is {_short(value)}, outside {bounds.describe()} as a {unit} timestamp")
    return ns if isinstance(ns, int) else round(ns)


# --------------------------------------------------------------------------- decoding


@dataclass
class FieldReject:
    """One value the mapping could not turn into a sample: where, and why."""

    code: str  # json_missing | json_type | not_finite | json_timestamp
    detail: str  # names the path (and field), e.g. "data.kw (field power_kw) is missing"
    path: str = ""  # the JSON path at fault, "[i]."-prefixed in a list of readings


@dataclass
class DecodedJson:
    batch: SampleBatch
    rejects: list[FieldReject]
    #: indices into ``batch.table`` of the fields the readings vouch for (their watermark:
    #: ``watermark_ns``): the fields carried, or every field of a report-by-exception mapping
    vouched: np.ndarray = _dc_field(default_factory=lambda: np.empty(0, np.int32))
    watermark_ns: int | None = None


class JsonDecodeError(ValueError):
    """The whole payload is unusable (not JSON, not an object or list of objects, or over a limit:
    ``code`` is then the limit's, else ``decode``)."""

    def __init__(self, message: str, code: str = "decode"):
        super().__init__(message)
        self.code = code


class DeviceJsonMapping:
    """The compiled mapping of one topic pattern. ``default_tags`` apply unless the mapping sets them."""

    def __init__(self, cfg: DeviceJsonTopic, default_tags: dict[str, str] | None = None,
                 bounds: TimeBounds = DEFAULT_BOUNDS, limits: DecodeLimits = DEFAULT_LIMITS):
        self.cfg = cfg
        self.bounds = bounds
        self.limits = limits
        tags = {**(default_tags or {}), **cfg.tags}
        self._fixed_tags = {k: v for k, v in tags.items() if not _TEMPLATE.search(v)}
        self._templated = {k: v for k, v in tags.items() if _TEMPLATE.search(v)}
        self._fields = [
            (name, spec, 1.0, 0.0) if isinstance(spec, str) else (name, spec.path, *spec.effective(name))
            for name, spec in cfg.fields.items()
        ]

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
            doc = loads_bounded(payload, self.limits, "payload")
        except LimitError as exc:
            raise JsonDecodeError(str(exc), exc.code) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise JsonDecodeError(f"payload is not JSON: {str(exc)[:200]}") from None
        records = doc if isinstance(doc, list) else [doc]
        if not records or not all(isinstance(r, dict) for r in records):
            raise JsonDecodeError(f"payload is not a JSON object or a non-empty list of objects (got {type(doc).__name__})")
        tags = self.tags_for(topic)
        table = [Series(self.cfg.measurement, tuple(sorted(tags.items())), name) for name, *_ in self._fields]
        sid, ts, vals, qual, rejects = [], [], [], [], []
        ts_cfg = self.cfg.timestamp
        rbe = self.cfg.report_by_exception
        watermark = None
        for r_i, record in enumerate(records):
            where = f"[{r_i}]." if isinstance(doc, list) else ""
            t_ns = received_ns
            if ts_cfg is not None:
                found, raw = get_path(record, ts_cfg.path)
                try:
                    if not found:
                        raise ValueError("is missing")
                    t_ns = timestamp_ns(raw, ts_cfg.unit, self.bounds)
                except ValueError as exc:
                    detail = f"{where}{ts_cfg.path} {exc}; {len(table)} fields of this reading refused"
                    rejects.append(FieldReject("json_timestamp", detail, where + ts_cfg.path))
                    continue
            statuses = self._statuses(record, where, rejects)
            watermark = t_ns if watermark is None else max(watermark, t_ns)
            for i, (name, path, scale, offset) in enumerate(self._fields):
                q = _quality_of(statuses.get(name))
                found, raw = get_path(record, path)
                if q == Quality.BAD:  # known bad: a BAD sample (its value, if any, goes to sample_quality only)
                    value = to_number(raw) if found else None
                    sid.append(i)
                    ts.append(t_ns)
                    vals.append(value * scale + offset if value is not None else math.nan)
                    qual.append(q)
                    continue
                if not found:
                    if not rbe:
                        rejects.append(FieldReject("json_missing", f"{where}{path} (field {name}) is missing", where + path))
                    continue
                value = to_number(raw)
                if value is None:
                    rejects.append(FieldReject("json_type", f"{where}{path} (field {name}) is {_short(raw)}, not a number", where + path))
                    continue
                value = value * scale + offset
                if not math.isfinite(value):
                    rejects.append(FieldReject("not_finite", f"{where}{path} (field {name}) is {_short(raw)}, not a finite number", where + path))
                    continue
                sid.append(i)
                ts.append(t_ns)
                vals.append(value)
                qual.append(q)
        batch = SampleBatch(table, np.array(sid, np.int32), np.array(ts, np.int64), np.array(vals, np.float64), np.array(qual, np.uint8))
        if rbe:  # every field vouched for as of the newest reading, the table kept whole
            return DecodedJson(batch, rejects, np.arange(len(table), dtype=np.int32), watermark)
        if rejects:
            batch = batch.compact()
        return DecodedJson(batch, rejects, np.unique(batch.series).astype(np.int32), int(batch.ts_ns.max()) if len(batch) else None)

    def _statuses(self, record: dict, where: str, rejects: list) -> dict[str, str]:
        """``{field: status name}`` of a reading (``status`` path), ``{}`` without one."""
        if self.cfg.status is None:
            return {}
        found, raw = get_path(record, self.cfg.status)
        if not found:
            return {}
        if not isinstance(raw, dict):
            rejects.append(FieldReject("json_type", f"{where}{self.cfg.status} is {_short(raw)}, not an object of field statuses", where + self.cfg.status))
            return {}
        return {str(k): str(v) for k, v in raw.items()}


def _quality_of(status: str | None) -> int:
    """Quality of an OPC UA status name: Good* (or none) GOOD, Uncertain* UNCERTAIN, anything else BAD."""
    if status is None or status.startswith("Good"):
        return Quality.GOOD
    return Quality.UNCERTAIN if status.startswith("Uncertain") else Quality.BAD


class DeviceJsonRouter:
    """Finds the mapping of a topic (first configured pattern that matches)."""

    def __init__(self, topics: list[DeviceJsonTopic], default_tags: dict[str, str] | None = None,
                 bounds: TimeBounds = DEFAULT_BOUNDS, limits: DecodeLimits = DEFAULT_LIMITS):
        self.mappings = [DeviceJsonMapping(t, default_tags, bounds, limits) for t in topics]
        self._cache: dict[str, DeviceJsonMapping | None] = {}

    def find(self, topic: str) -> DeviceJsonMapping | None:
        if topic in self._cache:
            return self._cache[topic]
        found = next((m for m in self.mappings if m.matches(topic)), None)
        if len(self._cache) < 10_000:
            self._cache[topic] = found
        return found

    def decode(self, topic: str, payload: bytes, received_ns: int) -> DecodedJson:
        """Decode with the topic's mapping; :class:`JsonDecodeError` if none matches or the payload is unusable."""
        mapping = self.find(topic)
        if mapping is None:
            raise JsonDecodeError(f"topic {topic!r} matches no mapping")
        return mapping.decode(topic, payload, received_ns)
