"""Ingest's message processor (no I/O): decode a message by its topic, check it against its topic
and the validation rules, and split it into samples to write and dead letters to keep.

Shared by the service (:mod:`plantmrv.ingest.service`) and dead-letter replay
(:mod:`plantmrv.ingest.replay`), so a replayed message is judged exactly as a live one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from plantmrv.batch import SampleBatch
from plantmrv.codec import CodecError, decode_message, encode_message
from plantmrv.ingest.config import IngestConfig
from plantmrv.ingest.deadletter import DeadLetter
from plantmrv.ingest.device_json import DeviceJsonRouter, JsonDecodeError, topic_matches
from plantmrv.ingest.validate import Validator
from plantmrv.qualityrouting import QUALITY_FIELDS, QUALITY_MEASUREMENT, with_quality_series


@dataclass
class Processed:
    """One message after decode and validation: what to write and what to dead-letter."""

    kind: str  # batch | json | raw
    batch: SampleBatch  # valid samples, quality-routed, ready to encode
    dead: list[DeadLetter] = field(default_factory=list)
    samples_in: int = 0
    meta: dict = field(default_factory=dict)


class Processor:
    """Decodes and validates messages by topic. Shared by the service and dead-letter replay."""

    def __init__(self, cfg: IngestConfig, topic_prefix: str, max_age_s: float | None):
        v = cfg.validation
        schema = dict(v.schema_)
        schema.setdefault(QUALITY_MEASUREMENT, list(QUALITY_FIELDS))  # ingest's own routing, seen again on replay
        self.limits = v.limits.limits()
        bounds = v.bounds()
        self.validator = Validator(schema, v.permissive, v.max_future_skew_s, max_age_s, bounds, self.limits.max_name_chars)
        self.router = DeviceJsonRouter(cfg.device_json, bounds=bounds, limits=self.limits)
        self.max_message_bytes = v.max_message_bytes
        self.gateway_filter = f"{topic_prefix}/+/+/data" if cfg.gateway_topics else None
        self._prefix_levels = len(topic_prefix.split("/"))

    def kind_of(self, topic: str) -> str:
        if self.gateway_filter and topic_matches(self.gateway_filter, topic):
            return "batch"
        return "json" if self.router.find(topic) else "raw"

    def process(self, topic: str, payload: bytes, received_ns: int, now_ns: int | None = None, kind: str | None = None) -> Processed:
        now_ns = now_ns or time.time_ns()
        if len(payload) > self.max_message_bytes:
            reason = f"too_large: payload of {len(payload)} bytes exceeds ingest.validation.max_message_bytes={self.max_message_bytes}"
            return Processed("raw", SampleBatch.empty(), [DeadLetter(topic, payload, "raw", "too_large", reason, 0, received_ns)])
        if kind in (None, "raw"):
            kind = self.kind_of(topic)
        if kind == "batch":
            return self._batch(topic, payload, received_ns, now_ns)
        if kind == "json":
            return self._json(topic, payload, received_ns, now_ns)
        reason = f"no_mapping: topic {topic!r} matches neither the gateway topics nor an ingest.device_json entry"
        return Processed("raw", SampleBatch.empty(), [DeadLetter(topic, payload, "raw", "no_mapping", reason, 0, received_ns)])

    def topic_ids(self, topic: str) -> tuple[str, str] | None:
        """(site, gateway) of a gateway data topic ``<prefix>/<site>/<gateway>/data``."""
        levels = topic.split("/")
        if len(levels) != self._prefix_levels + 3:
            return None
        return levels[self._prefix_levels], levels[self._prefix_levels + 1]

    def _batch(self, topic: str, payload: bytes, received_ns: int, now_ns: int) -> Processed:
        try:
            msg = decode_message(payload, self.limits)
        except CodecError as exc:
            return Processed("batch", SampleBatch.empty(), [DeadLetter(topic, payload, "batch", exc.code, f"{exc.code}: {exc}", 0, received_ns)])
        ids = self.topic_ids(topic)
        if ids is not None:
            for key, expected in zip(("site", "gateway"), ids):
                if key in msg.meta and msg.meta[key] != expected:
                    reason = (f"topic_mismatch: the batch header says {key}={str(msg.meta[key])[:64]!r}, but its topic is {key} "
                              f"{expected!r}: a gateway may publish only its own site's data")
                    return Processed("batch", SampleBatch.empty(), [DeadLetter(topic, payload, "batch", "topic_mismatch", reason, len(msg.batch), received_ns)],
                                     len(msg.batch), msg.meta)
        valid, rejects = self.validator.validate(msg.batch, now_ns, ids)
        dead = []
        for r in rejects:
            sub = msg.batch.take(r.rows).compact()
            dead.append(DeadLetter(topic, encode_message(sub, **msg.meta), "batch", r.code, r.reason(), len(r.rows), received_ns))
        return Processed("batch", with_quality_series(valid), dead, len(msg.batch), msg.meta)

    def _json(self, topic: str, payload: bytes, received_ns: int, now_ns: int) -> Processed:
        mapping = self.router.find(topic)
        if mapping is None:
            reason = f"no_mapping: topic {topic!r} matches no ingest.device_json entry"
            return Processed("raw", SampleBatch.empty(), [DeadLetter(topic, payload, "raw", "no_mapping", reason, 0, received_ns)])
        try:
            decoded = mapping.decode(topic, payload, received_ns)
        except JsonDecodeError as exc:
            return Processed("json", SampleBatch.empty(), [DeadLetter(topic, payload, "json", exc.code, f"{exc.code}: {exc}", 0, received_ns)])
        valid, rejects = self.validator.validate(decoded.batch, now_ns)
        reasons = [(r.code, r.detail) for r in decoded.rejects] + [(r.code, r.detail) for r in rejects]
        refused = len(decoded.rejects) + sum(len(r.rows) for r in rejects)
        dead = []
        if reasons:
            # the original payload, once, with every reason: replay re-reads it whole (writes are idempotent)
            text = "; ".join(f"{c}: {d}" for c, d in reasons[:20]) + (f"; and {len(reasons) - 20} more" if len(reasons) > 20 else "")
            dead.append(DeadLetter(topic, payload, "json", reasons[0][0], text, refused, received_ns))
        return Processed("json", with_quality_series(valid), dead, len(decoded.batch) + len(decoded.rejects))
