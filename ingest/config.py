"""Config section ``ingest``: subscription, validation rules, batching, backpressure, dead letters, metrics.

The broker connection itself is the shared ``mqtt`` section (URL, credentials, TLS, a stable
``client_id`` for the persistent session, ``topic_prefix``); InfluxDB is the ``influxdb`` section.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from plantmrv.config import ConfigSection, StrictModel
from plantmrv.datamodel import DATA_MODEL
from plantmrv.ingest.device_json import DeviceJsonTopic
from plantmrv.limits import DEFAULT_LIMITS, DecodeLimits
from plantmrv.timebounds import TimestampBoundsFields

#: The measurements and fields of docs/data-model.md that gateways publish (one list for every
#: service: :data:`plantmrv.datamodel.DATA_MODEL`).
DEFAULT_SCHEMA = DATA_MODEL


class LimitsConfig(StrictModel):
    """What one message may cost to decode; past a limit it is dead-lettered with the limit's name."""

    max_decompressed_bytes: int = Field(
        DEFAULT_LIMITS.max_decompressed_bytes, ge=1024, description="A compressed batch inflates to at most this many bytes."
    )
    max_compression_ratio: float = Field(
        DEFAULT_LIMITS.max_compression_ratio, ge=1, description="...and to at most this many times its compressed size (plantmrv batches: under 100)."
    )
    max_header_bytes: int = Field(DEFAULT_LIMITS.max_header_bytes, ge=1024, description="A batch's JSON header (series table and meta).")
    max_series: int = Field(DEFAULT_LIMITS.max_series, ge=1, description="Series in one batch's table.")
    max_tags: int = Field(DEFAULT_LIMITS.max_tags, ge=2, le=1000, description="Tags of one series.")
    max_json_depth: int = Field(DEFAULT_LIMITS.max_json_depth, ge=4, le=500, description="Nesting of device JSON and of batch header values.")
    max_json_bytes: int = Field(DEFAULT_LIMITS.max_json_bytes, ge=1024, description="A device-JSON payload.")
    max_name_chars: int = Field(
        DEFAULT_LIMITS.max_name_chars, ge=16, le=16_384, description="A measurement, tag key, tag value or field name; longer series are refused (`name_too_long`)."
    )

    def limits(self) -> DecodeLimits:
        return DecodeLimits(**self.model_dump())


class ValidationConfig(TimestampBoundsFields):
    schema_: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_SCHEMA.items()},
        alias="schema",
        description="Known measurements and their fields (default: docs/data-model.md). Others are dead-lettered.",
    )
    permissive: bool = Field(False, description="Accept any measurement and field whose names line protocol can carry.")
    max_future_skew_s: float = Field(300.0, ge=0, description="Refuse samples stamped more than this ahead of ingest's clock.")
    max_age_s: float | None = Field(
        None,
        gt=0,
        description="Refuse samples older than this. Null: the retention policy's duration, read from InfluxDB at start (none if INF).",
    )
    max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="Larger payloads are dead-lettered unread.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Bounds on decoding (size, inflation, nesting, series, names).")

    model_config = {"populate_by_name": True}


class DeadLetterConfig(StrictModel):
    path: Path = Field(Path("ingest-deadletters.db"), description="SQLite file of refused messages (topic, payload, reason, time).")


class MetricsConfig(StrictModel):
    host: str = Field("127.0.0.1", description="Address of the Prometheus /metrics endpoint.")
    port: int | None = Field(9109, ge=0, le=65535, description="Port of /metrics; null disables it, 0 picks a free port (logged).")


class IngestConfig(StrictModel):
    group: str | None = Field(
        "ingest",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Shared-subscription group (`$share/<group>/...`): processes of one group split the load. Null: plain subscriptions.",
    )
    protocol: str = Field("5", pattern=r"^(5|3\.1\.1)$", description="MQTT protocol version: `5` or `3.1.1`.")
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=60, description="How long the broker keeps the session (and queues messages) while ingest is away (MQTT 5)."
    )
    gateway_topics: bool = Field(True, description="Subscribe to gateway batches on `<mqtt.topic_prefix>/+/+/data`.")
    device_json: list[DeviceJsonTopic] = Field(default_factory=list, description="Mapped device-JSON topics.")
    batch_lines: int = Field(5000, ge=1, le=5000, description="Lines per InfluxDB write: a batch is written when it holds this many (up to 8 times as many, written as several bodies, while more messages wait or stream in, for at most 0.1 s more)...")
    linger_s: float = Field(0.5, gt=0, le=60, description="...or when its oldest message has waited this long.")
    write_concurrency: int = Field(2, ge=1, le=16, description="Writes (bodies POSTed) to InfluxDB at once.")
    max_inflight_messages: int = Field(
        1000, ge=1, le=65535, description="Unacknowledged messages the broker may send before waiting (MQTT 5 Receive Maximum)."
    )
    max_inflight_mb: float = Field(
        256.0, gt=0, description="Payload bytes held in memory awaiting write; past it ingest stops reading from the broker."
    )
    retry_min_s: float = Field(0.5, gt=0, description="Shortest delay before rewriting a batch InfluxDB did not take (the ceiling doubles per failure, with jitter; a Retry-After is obeyed).")
    retry_max_s: float = Field(15.0, gt=0, description="Longest delay between rewrites; data stays at the broker meanwhile.")
    sequence_gaps: bool = Field(
        True, description="Count gaps in each gateway's message sequence as missing messages (logged, metric, listed with the "
        "dead letters). Exact when this process receives all of a gateway's messages; turn off when several processes share the group.")
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    dead_letters: DeadLetterConfig = Field(default_factory=DeadLetterConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @field_validator("device_json")
    @classmethod
    def _unique_topics(cls, v: list[DeviceJsonTopic]) -> list[DeviceJsonTopic]:
        seen: set[str] = set()
        for item in v:
            if item.topic in seen:
                raise ValueError(f"topic {item.topic!r} is mapped twice")
            seen.add(item.topic)
        return v


SECTION = ConfigSection("ingest", IngestConfig)
