"""Sparkplug B source: an MQTT host application reading edge nodes' metrics into sample batches.

Registered as ``type: sparkplug``. Subscribes to ``spBv1.0/<group>/+/<edge_node>/#`` (``+`` for
every edge node) and follows the Sparkplug 3.0 session rules for each edge node:

* **BIRTH** (NBIRTH, DBIRTH): learns every metric's name, alias and datatype; its values are
  samples. Aliases then resolve the metrics of DATA messages that carry only the alias, and the
  BIRTH's datatype types a DATA metric that omits its own (as the spec recommends).
* **DATA** (NDATA, DDATA): report by exception; each message's metrics become samples stamped
  with the metric's timestamp (else the payload's, else the receipt time). A null metric, or one
  whose ``Quality`` property says other than GOOD (192: BAD 0, STALE 500), is a BAD sample. The message's batch lists every mapped metric the BIRTH declared for that node or
  device, and its timestamp is the watermark up to which the others are known unchanged.
* **DEATH** (NDEATH: the node and all its devices; DDEATH: one device): every mapped metric
  becomes a BAD sample at the death time: the signal is known absent, not held.
* An unknown alias, DATA before any BIRTH, DATA after a DEATH, or a sequence-number gap sends a
  **rebirth request** (NCMD ``Node Control/Rebirth = true``), at most once per
  ``rebirth_min_interval_s`` per node.

Metrics map onto fields like device JSON (:class:`SparkplugMapping`): which edge node and device,
the measurement, tags (``{group}``, ``{edge_node}``, ``{device}`` templates) and metric name ->
field, each with optional ``scale``, ``offset`` and ``unit`` (:class:`plantmrv.scaling.Scaling`).
Unmapped metrics are counted, not sent.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.config import MqttConfig, StrictModel
from plantmrv.gateway.mqtt_source import BrokerSubscriber
from plantmrv.scaling import Scaling, check_field_name

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.sparkplug")
_LEVEL = re.compile(r"^[^/+#]+$")
_TEMPLATE = re.compile(r"\{(group|edge_node|device)\}")


def topic_level(v: str) -> str:
    """``v`` if it can be a Sparkplug id (group, edge node, device, host): one topic level, no '/', '+' or '#'."""
    if not _LEVEL.match(v):
        raise ValueError(f"{v!r} is not a topic level (no '/', '+' or '#')")
    return v


class SparkplugMetric(Scaling):
    name: str = Field(..., description="Sparkplug metric name as in the BIRTH (e.g. `Drive/Power`).")


class SparkplugMapping(StrictModel):
    edge_node: str = Field("+", description="Edge node id, or `+` for any.")
    device: str | None = Field(None, description="Device id, `+` for any device, or null for the node's own metrics.")
    measurement: str = Field(..., description="InfluxDB measurement (asset class).")
    tags: dict[str, str] = Field(default_factory=dict, description="Tags; values may hold `{group}`, `{edge_node}`, `{device}`.")
    metrics: dict[str, str | SparkplugMetric] = Field(
        ..., min_length=1, description="Field name (with unit) -> metric name, or `{name, scale, offset, unit}`."
    )

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v):
        for fld, spec in v.items():
            check_field_name(fld)
            if isinstance(spec, SparkplugMetric):
                spec.check_unit(fld, f"{fld}.")
        return v

    @model_validator(mode="after")
    def _levels(self) -> "SparkplugMapping":
        for name, v in (("edge_node", self.edge_node), ("device", self.device)):
            if v is not None and v != "+":
                try:
                    topic_level(v)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        return self


class SparkplugSourceConfig(StrictModel):
    type: Literal["sparkplug"]
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Source name (logs, metrics).")
    broker: MqttConfig | None = Field(None, description="The Sparkplug broker; defaults to the top-level `mqtt` section.")
    group: str = Field(..., description="Sparkplug group id.")
    edge_node: str = Field("+", description="Edge node id to follow, or `+` for all of the group's.")
    qos: Literal[0, 1] = Field(1, description="Subscription QoS (Sparkplug uses 0 for data, 1 for state).")
    rebirth_min_interval_s: float = Field(5.0, ge=0, description="Least time between two rebirth requests to one node.")
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    mappings: list[SparkplugMapping] = Field(..., min_length=1, description="Which metrics are which fields (first match wins).")

    @field_validator("group", "edge_node")
    @classmethod
    def _level(cls, v: str, info) -> str:
        return v if v == "+" and info.field_name == "edge_node" else topic_level(v)

    @property
    def topic_filter(self) -> str:
        return f"spBv1.0/{self.group}/+/{self.edge_node}/#"


# --------------------------------------------------------------------------- session state


@dataclass
class _Scope:
    """One node's own metrics or one device's: mapped metrics by name, the batch table, aliases."""

    table: list[Series] = field(default_factory=list)
    by_name: dict[str, tuple[int, float, float]] = field(default_factory=dict)  # name -> (series, a, b)
    alive: bool = False


@dataclass
class _Node:
    aliases: dict[int, tuple[str | None, str]] = field(default_factory=dict)  # alias -> (device, metric name)
    types: dict[tuple[str | None, str], int] = field(default_factory=dict)  # (device, metric name) -> BIRTH datatype
    scopes: dict[str | None, _Scope] = field(default_factory=dict)  # device (None: the node) -> scope
    seq: int | None = None
    born: bool = False
    last_rebirth: float = -1e18


class SparkplugSource(BrokerSubscriber):
    type = "sparkplug"
    lost_on_disconnect = True

    def __init__(self, cfg: SparkplugSourceConfig, site: str, metrics: "GatewayMetrics", broker: MqttConfig | None):
        super().__init__(cfg, metrics, broker)
        self.site = site
        self.nodes: dict[str, _Node] = {}
        self.last_watermark_ns = 0

    # ------------------------------------------------------------------ mapping
    def _scope(self, node: _Node, edge: str, device: str | None) -> _Scope:
        """The scope of a node or device, built from the first mapping that matches it."""
        sc = node.scopes.get(device)
        if sc is not None:
            return sc
        sc = _Scope()
        for mp in self.cfg.mappings:
            if mp.edge_node not in ("+", edge):
                continue
            if (mp.device is None) != (device is None) or (mp.device not in (None, "+", device)):
                continue
            subst = {"group": self.cfg.group, "edge_node": edge, "device": device or ""}
            tags = {"site": self.site, **{k: _TEMPLATE.sub(lambda m: subst[m.group(1)], v) for k, v in mp.tags.items()}}
            for fld, spec in mp.metrics.items():
                metric = spec if isinstance(spec, str) else spec.name
                a, b = (1.0, 0.0) if isinstance(spec, str) else spec.effective(fld)
                sc.table.append(Series.of(mp.measurement, fld, **tags))
                sc.by_name[metric] = (len(sc.table) - 1, a, b)
            break
        node.scopes[device] = sc
        return sc

    # ------------------------------------------------------------------ messages
    def handle(self, topic: str, payload: bytes, emit: Callable[..., None], received_ns: int | None = None) -> list[str]:
        """Process one message; return the edge nodes to send a rebirth request to."""
        from plantmrv.gateway.sparkplug_pb import Payload, parse_topic

        received_ns = received_ns or time.time_ns()
        parsed = parse_topic(topic)
        if parsed is None or parsed[0] != self.cfg.group:
            return []
        _group, mtype, edge, device = parsed
        if mtype in ("NCMD", "DCMD", "STATE"):
            return []
        try:
            msg = Payload.FromString(payload)
        except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
            self.metrics.source_error(self.name, "malformed_payload")
            log.warning("event=payload_rejected source=%s topic=%s reason=%s", self.name, topic, str(exc)[:200])
            return []
        node = self.nodes.setdefault(edge, _Node())
        msg_ts = int(msg.timestamp) * 1_000_000 if msg.HasField("timestamp") else received_ns
        if mtype == "NDEATH":
            # the will message: its timestamp is the connect time, so the death is stamped on receipt
            node.born = False
            for dev, sc in node.scopes.items():
                self._death(sc, received_ns, emit)
            log.info("event=sparkplug_death source=%s edge_node=%s", self.name, edge)
            return []
        if mtype == "DDEATH":
            self._death(self._scope(node, edge, device), msg_ts, emit)
            log.info("event=sparkplug_death source=%s edge_node=%s device=%s", self.name, edge, device)
            return []
        rebirth = False
        if mtype == "NBIRTH":
            node.aliases = {}
            node.types = {}
            node.born = True
            node.seq = int(msg.seq) if msg.HasField("seq") else None
            for sc in node.scopes.values():
                sc.alive = False
        elif not node.born:
            rebirth = True  # DATA or DBIRTH of a node whose NBIRTH we did not see (or after its death)
        elif msg.HasField("seq"):
            seq = int(msg.seq)
            if node.seq is not None and seq != (node.seq + 1) % 256:
                self.metrics.source_error(self.name, "sparkplug_seq_gap")
                log.warning("event=sparkplug_seq_gap source=%s edge_node=%s expected=%d got=%d", self.name, edge, (node.seq + 1) % 256, seq)
                rebirth = True
            node.seq = seq
        if rebirth and mtype != "DBIRTH":
            return self._want_rebirth(node, edge)
        sc = self._scope(node, edge, device)
        if mtype in ("NBIRTH", "DBIRTH"):
            sc.alive = True
        sid, ts, vals, qual = [], [], [], []
        unmapped = 0
        for m in msg.metrics:
            name = m.name if m.HasField("name") else None
            if mtype in ("NBIRTH", "DBIRTH") and name is not None:
                if m.HasField("alias"):
                    node.aliases[int(m.alias)] = (device, name)
                node.types[(device, name)] = m.datatype
            if name is None:
                if not m.HasField("alias") or int(m.alias) not in node.aliases:
                    self.metrics.source_error(self.name, "sparkplug_unknown_alias")
                    log.warning("event=sparkplug_unknown_alias source=%s edge_node=%s device=%s alias=%s", self.name, edge,
                                device, m.alias if m.HasField("alias") else None)
                    rebirth = True
                    continue
                _dev, name = node.aliases[int(m.alias)]
            hit = sc.by_name.get(name)
            if hit is None:
                unmapped += 1
                continue
            from plantmrv.gateway.sparkplug_pb import QUALITY_GOOD, metric_quality, metric_value

            i, a, b = hit
            if not m.HasField("datatype") and (device, name) in node.types:
                m.datatype = node.types[(device, name)]  # DATA "SHOULD NOT" repeat it: the BIRTH's holds
            v = metric_value(m)
            t = int(m.timestamp) * 1_000_000 if m.HasField("timestamp") else msg_ts
            sid.append(i)
            ts.append(t)
            if v is None:
                vals.append(np.nan)
                qual.append(Quality.BAD)
            else:
                vals.append(v * a + b)
                qual.append(Quality.GOOD if metric_quality(m) == QUALITY_GOOD else Quality.BAD)
        if unmapped:
            self.metrics.source_error(self.name, "unmapped_metric", unmapped)
        if sc.table:
            self._emit(sc, sid, ts, vals, qual, msg_ts, emit)
        return self._want_rebirth(node, edge) if rebirth else []

    def _emit(self, sc: _Scope, sid, ts, vals, qual, watermark_ns: int, emit) -> None:
        batch = SampleBatch(sc.table, np.asarray(sid, np.int32), np.asarray(ts, np.int64), np.asarray(vals, np.float64),
                            np.asarray(qual, np.uint8))
        # the watermark: every metric of sc.table is known up to the message time (report by exception)
        self.last_watermark_ns = watermark_ns
        emit(batch, watermark_ns)

    def _death(self, sc: _Scope, ts_ns: int, emit) -> None:
        sc.alive = False
        n = len(sc.table)
        if n:
            self.metrics.source_error(self.name, "bad_sample", n)
            self._emit(sc, range(n), [ts_ns] * n, [np.nan] * n, [Quality.BAD] * n, ts_ns, emit)

    def _want_rebirth(self, node: _Node, edge: str) -> list[str]:
        now = time.monotonic()
        if now - node.last_rebirth < self.cfg.rebirth_min_interval_s:
            return []
        node.last_rebirth = now
        self.metrics.source_error(self.name, "sparkplug_rebirth_request")
        log.info("event=sparkplug_rebirth_request source=%s edge_node=%s", self.name, edge)
        return [edge]

    def rebirth_message(self, edge: str) -> tuple[str, bytes]:
        """The NCMD topic and payload asking ``edge`` to publish its BIRTH certificates again."""
        from plantmrv.gateway.sparkplug_pb import REBIRTH_METRIC, Payload, set_value

        p = Payload()
        p.timestamp = time.time_ns() // 1_000_000
        m = p.metrics.add()
        m.name = REBIRTH_METRIC
        set_value(m, 11, True)
        return f"spBv1.0/{self.cfg.group}/NCMD/{edge}", p.SerializeToString()

    # ------------------------------------------------------------------ session
    def topics(self) -> list[str]:
        return [self.cfg.topic_filter]

    async def on_connected(self, client) -> None:
        # a node already online published its BIRTH before we subscribed: ask it again
        if self.cfg.edge_node != "+":
            topic, data = self.rebirth_message(self.cfg.edge_node)
            await client.publish(topic, data, qos=0)

    async def on_message(self, client, topic: str, payload: bytes, emit) -> None:
        for edge in self.handle(topic, payload, emit):
            rtopic, data = self.rebirth_message(edge)
            await client.publish(rtopic, data, qos=0)
