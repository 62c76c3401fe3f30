"""MQTT sink (default): batches to ``<prefix>/<site>/<gateway>/data`` at QoS 1.

The retained ``.../state`` topic says ``online`` (birth, on every connect) and the broker
publishes the Last Will ``offline`` when the gateway vanishes; a clean stop publishes
``offline`` itself. TLS (CA, client certificate) and username/password come from the shared
``mqtt:`` section. :meth:`MqttSink.send` returns only when every message got a PUBACK that
accepts it and raises otherwise, so the agent deletes from the buffer only what the broker
holds. MQTT 5 by default: a broker whose ACL refuses a publish says so in the PUBACK (reason
code 0x87 Not authorized; MQTT 3.1.1 acknowledges it like any other and drops it), and the
gateway keeps the batch and logs the refusal instead of losing it.
paho-mqtt 2.x runs its network loop in a thread and reconnects on its own.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from plantmrv.codec import data_topic, state_topic
from plantmrv.config import MqttConfig, StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.mqtt_sink")


class MqttSinkConfig(StrictModel):
    type: Literal["mqtt"]
    max_inflight: int = Field(64, ge=1, le=65535, description="QoS 1 messages awaiting PUBACK at once.")
    publish_timeout_s: float = Field(30.0, gt=0, description="A send fails (and is retried from the buffer) past this.")
    compress: bool = Field(False, description="zlib-compress batches (saves bandwidth on cellular links).")
    protocol: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT version. With 3.1.1 a broker acknowledges a publish its ACL refuses like any other: the batch would be lost."
    )


class SinkError(Exception):
    """A send that did not complete; the batches stay in the buffer."""


def tls_context(cfg: MqttConfig) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cfg.tls.ca_file) if cfg.tls and cfg.tls.ca_file else None)
    if cfg.tls and cfg.tls.cert_file:
        ctx.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file) if cfg.tls.key_file else None)
    if cfg.tls and cfg.tls.insecure:
        ctx.check_hostname = False
    return ctx


_CALLBACKS = ("on_pre_connect", "on_connect", "on_connect_fail", "on_disconnect", "on_message", "on_publish")


def paho_client(mqtt: MqttConfig, client_id: str, v5: bool = False, handler=None):
    """A paho client (callback API 2) for ``mqtt``'s broker: credentials and TLS set, a clean session,
    reconnecting within 1-30 s, and ``handler``'s ``_on_connect``, ``_on_message``, ... as its callbacks."""
    import paho.mqtt.client as paho

    if v5:
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    else:
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if mqtt.username:
        c.username_pw_set(mqtt.username, mqtt.password.get_secret_value() if mqtt.password else None)
    if mqtt.use_tls:
        c.tls_set_context(tls_context(mqtt))
        if mqtt.tls and mqtt.tls.insecure:
            c.tls_insecure_set(True)
    c.reconnect_delay_set(1, 30)
    for name in _CALLBACKS:
        if hasattr(handler, "_" + name):
            setattr(c, name, getattr(handler, "_" + name))
    return c


class MqttSink:
    name = "mqtt"

    def __init__(self, cfg: MqttSinkConfig, mqtt: MqttConfig | None, site: str, gateway: str, metrics: "GatewayMetrics"):
        if mqtt is None:
            raise ValueError("sink type mqtt needs the top-level `mqtt:` section (broker URL, credentials)")
        self.cfg = cfg
        self.mqtt = mqtt
        self.metrics = metrics
        self.topic = data_topic(mqtt.topic_prefix, site, gateway)
        self.state = state_topic(mqtt.topic_prefix, site, gateway)
        self.compress = cfg.compress
        self._connected = threading.Event()
        self._last_error = "not connected yet"
        self._refused: dict[int, str] = {}  # mid -> the broker's reason (MQTT 5 PUBACK >= 0x80)
        self._v5 = cfg.protocol == "5"
        c = paho_client(mqtt, mqtt.client_id or f"plantmrv-gw-{site}-{gateway}", self._v5, handler=self)
        c.will_set(self.state, b"offline", qos=1, retain=True)
        c.max_inflight_messages_set(cfg.max_inflight)
        self.client = c
        self._unreachable = False  # a (re)connect failed since the last connection: logged once

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if getattr(reason_code, "is_failure", False):  # called before the message counts as published
            self._refused[mid] = str(reason_code)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._last_error = f"broker refused the connection: {reason_code}"
            log.error("event=mqtt_sink_refused broker=%s reason=%s", self.mqtt.url, reason_code)
            return
        client.publish(self.state, b"online", qos=1, retain=True)
        self._unreachable = False
        self._connected.set()
        self.metrics.sink_connected(self.name, True)
        log.info("event=mqtt_sink_connected broker=%s topic=%s", self.mqtt.url, self.topic)

    def _on_connect_fail(self, client, userdata) -> None:
        """paho could not reach the broker (it retries with backoff): a warning once per outage, then DEBUG."""
        (log.debug if self._unreachable else log.warning)("event=mqtt_sink_unreachable broker=%s retry_max_s=30", self.mqtt.url)
        self._unreachable = True
        self._last_error = "broker unreachable"
        self.metrics.sink_connected(self.name, False)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("event=mqtt_sink_disconnected broker=%s reason=%s", self.mqtt.url, reason_code)
            self.metrics.sink_reconnect(self.name)
        self._connected.clear()
        self._last_error = f"disconnected: {reason_code}"
        self.metrics.sink_connected(self.name, False)

    async def start(self) -> None:
        extra = {"clean_start": True} if self._v5 else {}
        self.client.connect_async(self.mqtt.host, self.mqtt.port, keepalive=self.mqtt.keepalive_s, **extra)
        self.client.loop_start()

    def _send_blocking(self, blobs: list[bytes]) -> None:
        import paho.mqtt.client as paho

        if not self._connected.is_set():
            raise SinkError(f"broker {self.mqtt.url} not connected ({self._last_error})")
        self._refused.clear()
        infos = []
        for b in blobs:
            info = self.client.publish(self.topic, b, qos=1)
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_QUEUE_SIZE) and info.rc != paho.MQTT_ERR_NO_CONN:
                raise SinkError(f"publish to {self.topic} failed: {paho.error_string(info.rc)}")
            infos.append(info)
        deadline = time.monotonic() + self.cfg.publish_timeout_s
        for info in infos:
            while not info.is_published():
                if time.monotonic() > deadline:
                    raise SinkError(f"no PUBACK from {self.mqtt.url} on {self.topic} within {self.cfg.publish_timeout_s}s")
                if not self._connected.is_set():
                    raise SinkError(f"broker {self.mqtt.url} disconnected before PUBACK ({self._last_error})")
                info.wait_for_publish(0.2)
        refused = [self._refused.pop(info.mid) for info in infos if info.mid in self._refused]
        if refused:
            self.metrics.sink_refused(self.name, len(refused))
            raise SinkError(
                f"broker {self.mqtt.url} refused {len(refused)} of {len(infos)} publishes on {self.topic} ({refused[0]}): "
                f"its ACL lets this gateway's user ({self.mqtt.username or 'anonymous'}) publish only its own site's and "
                f"gateway's topics; the batches stay in the buffer"
            )

    async def send(self, blobs: list[bytes]) -> None:
        await asyncio.to_thread(self._send_blocking, blobs)

    async def close(self) -> None:
        try:
            if self._connected.is_set():
                info = self.client.publish(self.state, b"offline", qos=1, retain=True)
                await asyncio.to_thread(info.wait_for_publish, 2.0)
        except Exception:  # noqa: BLE001
            pass
        self.client.disconnect()
        self.client.loop_stop()
