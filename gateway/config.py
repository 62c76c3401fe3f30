"""Config section ``gateway``: identity, sources (by ``type``), durable buffer, sink and health.

Each source and sink type keeps its own pydantic model beside its code
(:mod:`plantmrv.gateway.opcua_source`, :mod:`~plantmrv.gateway.mqtt_source`,
:mod:`~plantmrv.gateway.mqtt_sink`, :mod:`~plantmrv.gateway.influx_sink`, the live sink
:mod:`~plantmrv.gateway.sparkplug_sink`); this module
assembles them into a discriminated union on ``type`` so a typo in a source is reported at its
own key path (``gateway.sources[1].groups[0].nodes[3].node_id``) before anything starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag, model_validator

from plantmrv.config import ConfigSection, StrictModel
from plantmrv.timebounds import TimestampBoundsFields
from plantmrv.gateway.influx_sink import InfluxSinkConfig
from plantmrv.gateway.names import check_names
from plantmrv.gateway.mqtt_sink import MqttSinkConfig
from plantmrv.gateway.modbus_source import ModbusSourceConfig
from plantmrv.gateway.mqtt_source import MqttSourceConfig
from plantmrv.gateway.opcua_source import OpcUaSourceConfig
from plantmrv.gateway.sparkplug_sink import SparkplugSinkConfig
from plantmrv.gateway.sparkplug_source import SparkplugSourceConfig



def _type_tag(value: Any) -> str | None:
    # Tags are bracketed so the config loader drops them from error paths (``sources[0].url``,
    # not ``sources[0].opcua.url``).
    t = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"[{t}]" if isinstance(t, str) else None


SOURCE_TYPES = ("opcua", "mqtt", "modbus", "sparkplug")
SINK_TYPES = ("mqtt", "influxdb")
SourceConfig = Annotated[
    Union[Annotated[OpcUaSourceConfig, Tag("[opcua]")], Annotated[MqttSourceConfig, Tag("[mqtt]")],
          Annotated[ModbusSourceConfig, Tag("[modbus]")], Annotated[SparkplugSourceConfig, Tag("[sparkplug]")]],
    Discriminator(_type_tag, custom_error_type="source_type",
                  custom_error_message=f"`type` must be one of: {', '.join(SOURCE_TYPES)}"),
]
SinkConfig = Annotated[
    Union[Annotated[MqttSinkConfig, Tag("[mqtt]")], Annotated[InfluxSinkConfig, Tag("[influxdb]")]],
    Discriminator(_type_tag, custom_error_type="sink_type",
                  custom_error_message=f"`type` must be one of: {', '.join(SINK_TYPES)} (a Sparkplug B edge node, which "
                  "publishes at QoS 0, is a live sink: `gateway.live_sinks`)"),
]


class BufferConfig(StrictModel):
    path: Path = Field(
        Path("gateway-buffer.db"),
        description="SQLite file of the durable buffer (WAL mode, synchronous=FULL). Put it on persistent storage.",
    )
    max_mb: float = Field(512.0, gt=0, description="Size cap; past it the oldest batches are dropped (counted and logged).")
    batch_max_samples: int = Field(5000, ge=1, le=100_000, description="Samples coalesced into one stored batch (one fsync).")
    batch_max_age_s: float = Field(
        0.2, ge=0, le=60, description="The durability window: longest a sample waits in memory before it is stored (fsync'ed) and "
        "acknowledged to its source; 0 stores every notification or message as it comes. At 10,000 tags changing every second, "
        "0.2 s costs no more CPU than 1 s within the noise, 0.05 s and 0 40-80% more (bench/gateway.py --flush-ms); on an SD "
        "card every fsync is wear.")
    send_max_batches: int = Field(32, ge=1, le=1000, description="Stored batches handed to the sink per send call.")
    replay_max_samples_per_s: float = Field(
        200_000, gt=0, description="Send-rate ceiling, so a long outage's backlog does not flood the broker or InfluxDB."
    )
    retry_min_s: float = Field(0.5, gt=0, description="Shortest retry delay after a failed send (the ceiling doubles per failure, with jitter).")
    retry_max_s: float = Field(30.0, gt=0, description="Longest retry delay after repeated failed sends.")


class HealthConfig(StrictModel):
    metrics_host: str = Field("127.0.0.1", description="Address of the Prometheus /metrics endpoint.")
    metrics_port: int | None = Field(9108, ge=0, le=65535, description="Port of /metrics; null disables it, 0 picks a free port.")
    status_log_interval_s: float = Field(60.0, gt=0, description="Period of the one-line status log.")
    sample_interval_s: float | None = Field(
        10.0, gt=0, description="Period of the `gateway` health measurement sent through the sink; null disables it."
    )


class GatewayConfig(TimestampBoundsFields):
    id: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Gateway name: the `gateway` tag and MQTT topic level.")
    site: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="Site id (`site` tag); defaults to the top-level `site.id`."
    )
    sources: list[SourceConfig] = Field(..., min_length=1, description="Where samples come from (`type: opcua`, `mqtt`, `modbus` or `sparkplug`).")
    sink: SinkConfig = Field(default_factory=lambda: MqttSinkConfig(type="mqtt"), description="Where batches go (the durable "
                             "path: a batch leaves the buffer once this sink confirmed it).")
    live_sinks: list[SparkplugSinkConfig] = Field(
        default_factory=list, description="Outputs that also get every batch as it is stored, best effort, never holding up "
        "the buffer (`type: sparkplug`: the gateway as a Sparkplug B edge node for SCADA hosts).")
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)

    @model_validator(mode="after")
    def _unique_source_names(self) -> "GatewayConfig":
        seen: dict[str, int] = {}
        for i, src in enumerate(self.sources):
            if src.name in seen:
                raise ValueError(f"sources[{i}].name {src.name!r} repeats sources[{seen[src.name]}].name; source names must be unique")
            seen[src.name] = i
        return self


def _check_runnable(root, filename: str) -> None:
    """The agent's cross-section checks (sink and sources need `mqtt`, ...); its module loads only for a file with a gateway section."""
    from plantmrv.gateway.agent import check_runnable

    check_runnable(root, filename)


SECTION = ConfigSection("gateway", GatewayConfig, checks=(_check_runnable, check_names))
