"""MQTT device-JSON source: device JSON on mapped topics -> sample batches, via :mod:`plantmrv.devicejson`.

Registered as ``type: mqtt``. Each mapping (the same shape as ingest's ``device_json``) names a
topic pattern (``+`` / ``#`` wildcards), the measurement, the tags (fixed or ``{topic[N]}``;
``site`` defaults to ``site.id``), which JSON values (dotted paths, list indexes allowed:
``data.pumps.0.kw``) are which fields, optionally scaled, and where the timestamp is (a payload
path in s/ms/us/ns or RFC 3339, or the receipt time). A value that is missing or not a finite
number is counted and logged with topic, path and reason, and the payload's other values are
still sent; a payload that is not JSON is counted and logged whole. The source keeps running.

QoS 1 and 2 messages are acknowledged to the broker only once their samples are stored in the
gateway's buffer, on a persistent session (``clean_session`` false, client id
``plantmrv-<site>-<gateway>-<source>`` unless the source's own ``broker`` section sets one): a
message the gateway read but had not stored when it died is sent again by the broker.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Callable, Literal

from pydantic import Field

from plantmrv.batch import SampleBatch
from plantmrv.config import MqttConfig, StrictModel
from plantmrv.devicejson import DeviceJsonRouter, DeviceJsonTopic, JsonDecodeError
from plantmrv.timebounds import DEFAULT_BOUNDS, TimeBounds

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.mqtt_source")


class MqttSourceConfig(StrictModel):
    type: Literal["mqtt"]
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Source name (logs, metrics).")
    broker: MqttConfig | None = Field(None, description="Device broker; defaults to the top-level `mqtt` section.")
    qos: Literal[0, 1, 2] = Field(1, description="Subscription QoS.")
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    mappings: list[DeviceJsonTopic] = Field(..., min_length=1, description="Mapped device-JSON topics (first match wins).")
    schema_: Literal["none", "data_model"] = Field(
        "none", alias="schema",
        description="`data_model`: check-config refuses measurement and field names that are not in docs/data-model.md.",
    )

    model_config = {"populate_by_name": True}

    def series_names(self) -> list[tuple[tuple, str, str, str]]:
        """(key path of the measurement, key path of the field, measurement, field) of every mapped field."""
        return [(("mappings", mi, "measurement"), ("mappings", mi, "fields", f), m.measurement, f)
                for mi, m in enumerate(self.mappings) for f in m.fields]


# --------------------------------------------------------------------------- the source


class BrokerSubscriber:
    """What the MQTT-borne sources share (``mqtt``, ``sparkplug``): the broker check, one aiomqtt
    session at a time with reconnect (exponential backoff, full jitter) and the connection metrics.
    A subclass lists its :meth:`topics` and handles each message in :meth:`on_message`."""

    type = "mqtt"
    lost_on_disconnect = False  # call emit.lost() when the session ends (coverage closes)
    # acknowledge QoS 1/2 messages only once their samples are stored (paho's manual acks), on a
    # persistent session (clean_session false, a stable client id): what the gateway has not
    # acknowledged, the broker keeps and sends again, also after a restart
    durable_acks = False

    def __init__(self, cfg, metrics: "GatewayMetrics", broker: MqttConfig | None, client_id: str | None = None):
        if broker is None:
            raise ValueError(f"source {cfg.name}: no broker (set sources[].broker or the top-level mqtt section)")
        self.cfg = cfg
        self.name = cfg.name
        self.broker = broker
        self.metrics = metrics
        self.client_id = client_id or broker.client_id or None
        self.connected = False

    def topics(self) -> list[str]:
        raise NotImplementedError

    async def on_connected(self, client) -> None:
        """Called once subscribed (e.g. to ask edge nodes for their state)."""

    async def on_message(self, client, topic: str, payload: bytes, emit) -> None:
        raise NotImplementedError

    async def run(self, emit: Callable[..., None]) -> None:
        import aiomqtt

        from plantmrv.gateway.mqtt_sink import tls_context
        from plantmrv.retry import backoff_delay

        b = self.broker
        attempt = 0
        while True:
            try:
                client = aiomqtt.Client(
                    b.host,
                    b.port,
                    username=b.username,
                    password=b.password.get_secret_value() if b.password else None,
                    identifier=self.client_id,
                    clean_session=False if self.durable_acks else None,
                    keepalive=b.keepalive_s,
                    tls_context=tls_context(b) if b.use_tls else None,
                )
                if self.durable_acks:  # before connecting: a persistent session's queued messages come at once
                    client._client.manual_ack_set(True)  # aiomqtt 2.5 has no option for it (empicano/aiomqtt#345)
                async with client:
                    topics = self.topics()
                    for t in topics:
                        await client.subscribe(t, qos=self.cfg.qos)
                    self.connected = True
                    attempt = 0
                    self.metrics.source_connected(self.name, True)
                    log.info("event=%s_source_connected source=%s broker=%s topics=%d", self.type, self.name, b.url, len(topics))
                    await self.on_connected(client)
                    async for msg in client.messages:
                        await self.on_message(client, str(msg.topic), bytes(msg.payload or b""), emit)
                        if self.durable_acks and msg.qos > 0:  # after the message's samples (if any): sent once they are stored
                            emit(SampleBatch.empty(), ack=functools.partial(client._client.ack, msg.mid, msg.qos))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("event=%s_source_lost source=%s broker=%s error=%s: %s", self.type, self.name, b.url, type(exc).__name__, exc)
                self.metrics.source_error(self.name, "connection")
            self.connected = False
            self.metrics.source_connected(self.name, False)
            if self.lost_on_disconnect and hasattr(emit, "lost"):
                emit.lost()  # coverage ends at the last message: no hold bridges the outage
            delay = backoff_delay(attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
            attempt += 1
            self.metrics.source_reconnect(self.name)
            await asyncio.sleep(delay)


class MqttSource(BrokerSubscriber):
    lost_on_disconnect = True  # unseen while disconnected: coverage ends at the last reading
    type = "mqtt"
    durable_acks = True

    def __init__(self, cfg: MqttSourceConfig, site: str, metrics: "GatewayMetrics", broker: MqttConfig | None,
                 bounds: TimeBounds = DEFAULT_BOUNDS, client_id: str | None = None):
        super().__init__(cfg, metrics, broker, client_id)
        self.router = DeviceJsonRouter(cfg.mappings, default_tags={"site": site}, bounds=bounds)

    def topics(self) -> list[str]:
        return [m.topic for m in self.cfg.mappings]

    async def on_message(self, client, topic: str, payload: bytes, emit) -> None:
        self.handle(topic, payload, emit)

    def handle(self, topic: str, payload: bytes, emit: Callable[[SampleBatch], None], received_ns: int | None = None) -> None:
        try:
            decoded = self.router.decode(topic, payload, received_ns or time.time_ns())
        except JsonDecodeError as exc:
            self.metrics.source_error(self.name, "malformed_payload")
            log.warning("event=payload_rejected source=%s topic=%s reason=%s", self.name, topic, str(exc)[:200])
            return
        for r in decoded.rejects[:10]:
            log.warning("event=value_refused source=%s topic=%s path=%s code=%s reason=%s", self.name, topic, r.path, r.code, r.detail[:200])
        if len(decoded.rejects) > 10:
            log.warning("event=value_refused source=%s topic=%s more=%d", self.name, topic, len(decoded.rejects) - 10)
        if decoded.rejects:
            self.metrics.source_error(self.name, "refused_value", len(decoded.rejects))
        batch = decoded.batch
        if len(batch) or decoded.watermark_ns is not None:
            # the readings vouch for the fields they carry (every field of a report-by-exception
            # mapping), as of their own time: the watermark
            emit(batch, decoded.watermark_ns, decoded.vouched)
