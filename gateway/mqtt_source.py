"""MQTT device-JSON source: topic patterns with wildcards, JSON fields (dotted paths) to tags.

Registered as ``type: mqtt``. Each mapping names a topic pattern (``+`` / ``#`` wildcards), the
measurement, where the asset comes from (a fixed name or a topic level), which JSON fields
(dotted paths, list indexes allowed: ``data.pumps.0.kw``) are which quantities, and where the
timestamp is (a payload path in s/ms/us/ns or ISO 8601, or the receipt time). A payload that
does not parse or lacks what its mapping needs is counted, logged with topic and reason, and
skipped: the source keeps running.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from plantmrv.batch import SampleBatch, Series
from plantmrv.config import MqttConfig, StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.mqtt_source")


class MqttField(StrictModel):
    path: str = Field(..., description="Dotted path into the JSON payload (`data.power`, `pumps.0.kw`).")
    field: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Field name with unit (`power_kw`).")
    scale: float = Field(1.0, description="Multiplier applied to the raw value (e.g. 0.001 for W -> kW).")
    offset: float = Field(0.0, description="Added after scaling.")


class MqttMapping(StrictModel):
    topic: str = Field(..., description="Topic pattern with MQTT wildcards, e.g. `site1/+/telemetry`.")
    measurement: str = Field(..., description="InfluxDB measurement (asset class).")
    asset: str | None = Field(None, description="Fixed `asset` tag.")
    asset_topic_level: int | None = Field(None, ge=0, description="Take `asset` from this topic level (0-based).")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra fixed tags.")
    fields: list[MqttField] = Field(..., min_length=1)
    timestamp_path: str | None = Field(None, description="Dotted path of the timestamp; absent: receipt time.")
    timestamp_format: Literal["s", "ms", "us", "ns", "iso8601"] = Field("ms", description="Unit or format of the timestamp.")

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        levels = v.split("/")
        for i, lv in enumerate(levels):
            if ("#" in lv and (lv != "#" or i != len(levels) - 1)) or ("+" in lv and lv != "+"):
                raise ValueError(f"{v!r}: '#' must be a whole last level and '+' a whole level")
        return v

    @model_validator(mode="after")
    def _asset(self) -> "MqttMapping":
        if self.asset is not None and self.asset_topic_level is not None:
            raise ValueError("set asset or asset_topic_level, not both")
        if self.asset_topic_level is not None:
            levels = self.topic.split("/")
            if self.asset_topic_level >= len(levels) or levels[self.asset_topic_level] == "#":
                raise ValueError(f"asset_topic_level {self.asset_topic_level} is past the topic pattern {self.topic!r}")
        names = [f.field for f in self.fields]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"field {sorted(dup)[0]!r} is mapped twice")
        return self


class MqttSourceConfig(StrictModel):
    type: Literal["mqtt"]
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Source name (logs, metrics).")
    broker: MqttConfig | None = Field(None, description="Device broker; defaults to the top-level `mqtt` section.")
    qos: Literal[0, 1, 2] = Field(1, description="Subscription QoS.")
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    mappings: list[MqttMapping] = Field(..., min_length=1)


# --------------------------------------------------------------------------- parsing


class PayloadError(ValueError):
    """A device payload its mapping cannot use; the text says why."""


def topic_matches(pattern: str, topic: str) -> bool:
    p, t = pattern.split("/"), topic.split("/")
    for i, lv in enumerate(p):
        if lv == "#":
            return True
        if i >= len(t) or (lv != "+" and lv != t[i]):
            return False
    return len(p) == len(t)


def get_path(doc: Any, path: str) -> Any:
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                raise PayloadError(f"path {path!r}: key {part!r} missing")
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit():
            if int(part) >= len(cur):
                raise PayloadError(f"path {path!r}: index {part} out of range")
            cur = cur[int(part)]
        else:
            raise PayloadError(f"path {path!r}: {part!r} is not inside an object")
    return cur


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def parse_timestamp(raw: Any, fmt: str) -> int:
    if fmt == "iso8601":
        if not isinstance(raw, str):
            raise PayloadError(f"timestamp {raw!r} is not an ISO 8601 string")
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"timestamp {raw!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1e6) * 1000
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        raise PayloadError(f"timestamp {raw!r} is not a number of {fmt}")
    ns = int(raw * _UNIT_NS[fmt]) if isinstance(raw, float) else raw * _UNIT_NS[fmt]
    if not (0 < ns < 2**63 - 1) or not (946_684_800 * 10**9 <= ns <= 4_102_444_800 * 10**9):
        raise PayloadError(f"timestamp {raw!r} ({fmt}) is outside 2000..2100")
    return int(ns)


class PayloadParser:
    """Turns (topic, payload bytes) into a batch per the mappings; raises :class:`PayloadError`."""

    def __init__(self, mappings: list[MqttMapping], site: str):
        self.mappings = mappings
        self.site = site
        self._series: dict[tuple, Series] = {}

    def _series_for(self, m: MqttMapping, asset: str | None, f: MqttField) -> Series:
        key = (id(m), asset, f.field)
        s = self._series.get(key)
        if s is None:
            tags = dict(m.tags, site=self.site)
            if asset:
                tags["asset"] = asset
            s = self._series[key] = Series.of(m.measurement, f.field, **tags)
        return s

    def parse(self, topic: str, payload: bytes, now_ns: int | None = None) -> SampleBatch:
        mapping = next((m for m in self.mappings if topic_matches(m.topic, topic)), None)
        if mapping is None:
            raise PayloadError("no mapping matches the topic")
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PayloadError(f"payload is a JSON {type(doc).__name__}, not an object")
        asset = mapping.asset
        if mapping.asset_topic_level is not None:
            asset = topic.split("/")[mapping.asset_topic_level]
            if not asset:
                raise PayloadError(f"topic level {mapping.asset_topic_level} (asset) is empty")
        if mapping.timestamp_path:
            ts = parse_timestamp(get_path(doc, mapping.timestamp_path), mapping.timestamp_format)
        else:
            ts = now_ns or time.time_ns()
        table, vals = [], []
        missing = []
        for f in mapping.fields:
            try:
                raw = get_path(doc, f.path)
            except PayloadError as exc:
                missing.append(str(exc))
                continue
            if isinstance(raw, bool):
                raw = float(raw)
            if not isinstance(raw, (int, float)) or not math.isfinite(raw):
                raise PayloadError(f"field {f.path!r} is {raw!r}, not a finite number")
            table.append(self._series_for(mapping, asset, f))
            vals.append(raw * f.scale + f.offset)
        if not table:
            raise PayloadError("no mapped field present (" + "; ".join(missing) + ")")
        n = len(table)
        return SampleBatch(table, np.arange(n, dtype=np.int32), np.full(n, ts, np.int64), np.asarray(vals, np.float64))


# --------------------------------------------------------------------------- the source


class MqttSource:
    type = "mqtt"

    def __init__(self, cfg: MqttSourceConfig, site: str, metrics: "GatewayMetrics", broker: MqttConfig | None):
        if broker is None:
            raise ValueError(f"source {cfg.name}: no broker (set sources[].broker or the top-level mqtt section)")
        self.cfg = cfg
        self.name = cfg.name
        self.broker = broker
        self.metrics = metrics
        self.parser = PayloadParser(cfg.mappings, site)
        self.connected = False

    def handle(self, topic: str, payload: bytes, emit: Callable[[SampleBatch], None]) -> None:
        try:
            batch = self.parser.parse(topic, payload)
        except PayloadError as exc:
            self.metrics.source_error(self.name, "malformed_payload")
            log.warning("event=payload_rejected source=%s topic=%s reason=%s", self.name, topic, str(exc)[:200])
            return
        self.metrics.source_read(self.name, len(batch))
        emit(batch)

    async def run(self, emit: Callable[[SampleBatch], None]) -> None:
        import aiomqtt

        from plantmrv.gateway.opcua_source import backoff_delay
        from plantmrv.gateway.mqtt_sink import tls_context

        b = self.broker
        attempt = 0
        while True:
            try:
                async with aiomqtt.Client(
                    b.host,
                    b.port,
                    username=b.username,
                    password=b.password.get_secret_value() if b.password else None,
                    identifier=(b.client_id or None),
                    keepalive=b.keepalive_s,
                    tls_context=tls_context(b) if b.use_tls else None,
                ) as client:
                    for m in self.cfg.mappings:
                        await client.subscribe(m.topic, qos=self.cfg.qos)
                    self.connected = True
                    attempt = 0
                    self.metrics.source_connected(self.name, True)
                    log.info("event=mqtt_source_connected source=%s broker=%s topics=%d", self.name, b.url, len(self.cfg.mappings))
                    async for msg in client.messages:
                        self.handle(str(msg.topic), bytes(msg.payload or b""), emit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("event=mqtt_source_lost source=%s broker=%s error=%s: %s", self.name, b.url, type(exc).__name__, exc)
                self.metrics.source_error(self.name, "connection")
            self.connected = False
            self.metrics.source_connected(self.name, False)
            delay = backoff_delay(attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
            attempt += 1
            self.metrics.source_reconnect(self.name)
            await asyncio.sleep(delay)
