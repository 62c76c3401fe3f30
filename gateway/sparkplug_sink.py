"""Sparkplug B edge-node output (``gateway.live_sinks: [{type: sparkplug, ...}]``): SCADA hosts read the gateway.

The gateway publishes what it stores as an Eclipse Sparkplug 3.0 edge node [1], so a Sparkplug host
application (Ignition's MQTT Engine, any Eclipse Tahu host) browses the plant's assets and trends
their values with no plantmrv component on its side.

**Devices = assets.** The edge node is the gateway (``edge_node_id``, default the gateway id) in
``group_id``. Each asset is a Sparkplug *device* (DBIRTH, DDATA, DDEATH on
``spBv1.0/<group>/<verb>/<edge_node>/<asset>``) whose metrics are named ``<measurement>/<field>``
(``pump/power_kw``); series without an asset (the gateway's own ``gateway`` health measurement) are
*node* metrics (NBIRTH, NDATA: ``gateway/buffer_depth``). A SCADA host shows an edge node's devices
as folders of tags and marks one device offline (DDEATH) while the rest of the node stays live,
which is what a plant is: one gateway reading pumps, drives and inverters over separate links, any
of which can fail alone. ``device: null`` publishes node metrics only
(``<asset>/<measurement>/<field>``), for hosts that know no devices.

**A live sink, beside ``gateway.sink``, never instead of it.** NBIRTH, DBIRTH, NDATA and DDATA MUST
be published at QoS 0 (tck-id-payloads-nbirth-qos, -dbirth-qos, -ndata-qos, -ddata-qos): no broker
acknowledges them, so nothing could be deleted from the buffer after them. The durable path stays
with the MQTT or InfluxDB sink (delete after PUBACK / HTTP 204); this output gets each batch as it
is stored (:mod:`plantmrv.gateway.live`), best effort. What it cannot publish is still in the
durable path, and a SCADA host sees an outage for what it is: an NDEATH, then a new NBIRTH with the
current values.

**Session** (spec chapter 5, Edge Node Session Establishment):

* MQTT 3.1.1 with a clean session; the Will is the NDEATH (QoS 1, not retained) carrying ``bdSeq``
  (Int64), one more at every CONNECT (0..255, wrapping), kept in the buffer's state across
  restarts. A clean stop publishes the NDEATH itself, then disconnects.
* After CONNACK it subscribes to ``spBv1.0/<group>/NCMD/<edge_node>`` (QoS 1) and, with
  ``primary_host_id``, to ``spBv1.0/STATE/<host>`` (QoS 1), then publishes the NBIRTH (``seq`` 0,
  ``bdSeq``, ``Node Control/Rebirth`` = false, every node metric with name, alias, datatype, current
  value and timestamp) and a DBIRTH per device. With a primary host the births wait for its STATE
  ``{"online": true, "timestamp": ms}`` (a STATE older than the last one seen is ignored); an
  offline STATE makes the node publish its NDEATH, disconnect and start over.
* DATA: metrics by alias only, each stamped with its sample's source timestamp (ms), in
  chronological order; the payload stamped with the publish time; ``seq`` one more per message,
  mod 256. Report by exception: a sample equal in value and quality to what its metric last
  published is left out (DATA "SHOULD only be published when metrics change"), so the gateway's
  hold points and heartbeats are not repeated. A sample older than what its metric last published
  (a replay, a backfill) goes out with ``is_historical`` so the host's live value does not step
  back.
* A series the node has not declared: a new asset gets its DBIRTH; a new metric of a node or device
  already born makes a full rebirth (NBIRTH and every DBIRTH), since a session's BIRTH certificates
  must hold every metric it publishes. At most one rebirth per send.
* NCMD ``Node Control/Rebirth`` = true: the whole BIRTH sequence again (same bdSeq). Other NCMD
  metrics are ignored and logged: the gateway writes nothing to the plant.
* A device silent for ``device_stale_s`` (neither a sample nor a coverage point: the gateway's
  sources move their assets' watermarks at every keep-alive, poll or message) gets a DDEATH; its
  next sample brings a DBIRTH.

**Datatypes.** Double, except the data model's 0/1 states (``running``, ``backwash``,
``incinerating``, ``gateway/online``: Boolean) and counts (``gateway`` and ``coverage`` fields:
Int64), from :data:`plantmrv.datamodel.STATE_FIELDS` and :data:`~plantmrv.datamodel.COUNT_FIELDS`;
``datatypes`` overrides them by ``<measurement>/<field>`` pattern. A value its datatype cannot carry
(2.5 in a Boolean) goes out null with Quality BAD, counted and logged.

**Quality** (spec 6.4.8, Quality Codes: property ``Quality``, Int32, 0 BAD, 192 GOOD, 500 STALE;
absent means GOOD, as Eclipse Tahu's ``SparkplugUtil.getQualityCode`` reads it): a GOOD sample
carries no property, except ``Quality`` 192 when the metric's previous value was not GOOD (so a
host that keeps the last property sees it recover); a BAD sample goes out ``is_null`` with
``Quality`` 0 (the durable path keeps its value in ``sample_quality``); an UNCERTAIN sample goes out
with its value and ``Quality`` 0: Sparkplug has no uncertain code, and a host must not show it as
good. plantmrv's own Sparkplug source reads a non-192 ``Quality`` as BAD.

References: [1] Eclipse Sparkplug Specification 3.0.0 (github.com/eclipse-sparkplug/sparkplug,
``specification/``), chapters 4 (topics), 5 (operational behaviour), 6 (payloads); the payload
schema is Eclipse Tahu's ``sparkplug_b.proto`` (:mod:`plantmrv.gateway.sparkplug_pb`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import math
import string
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, field_validator

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.codec import CodecError, decode_message
from plantmrv.config import MqttConfig, StrictModel
from plantmrv.datamodel import COUNT_FIELDS, STATE_FIELDS
from plantmrv.gateway.mqtt_sink import SinkError, paho_client
from plantmrv.gateway.sparkplug_source import topic_level

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.sparkplug_sink")

DATATYPES = {"Double": 10, "Int64": 4, "Boolean": 11}
TICK_S = 0.5


def _placeholders(template: str) -> list[str]:
    """The ``{name}`` placeholders of ``template``; ValueError for anything else (``{0}``, ``{a.b}``, ``{a:>3}``)."""
    names = []
    for _text, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise ValueError(f"{template!r}: placeholders are {{measurement}}, {{field}} or a tag name, not {{{name}}}")
        names.append(name)
    return names


class SparkplugSinkConfig(StrictModel):
    type: Literal["sparkplug"]
    broker: MqttConfig | None = Field(
        None, description="The Sparkplug broker (URL, credentials, TLS, client_id); defaults to the top-level `mqtt` section, "
        "with a client id of its own (`plantmrv-spb-<site>-<gateway>`).")
    group_id: str = Field(..., description="Sparkplug group id (`spBv1.0/<group_id>/...`).")
    edge_node_id: str | None = Field(None, description="Sparkplug edge node id; defaults to the gateway id.")
    primary_host_id: str | None = Field(
        None, description="Host id of the primary host application (e.g. Ignition's): births and data wait until its "
        "`spBv1.0/STATE/<id>` says online; null: publish whenever connected.")
    device: str | None = Field(
        "{asset}", description="Sparkplug device id of a series, from its tags (`{asset}`, `{site}`, any tag); a series "
        "without those tags (the gateway's health) is a node metric. null: node metrics only.")
    metric: str | None = Field(
        None, description="Metric name: `{measurement}`, `{field}` and tags, `/` between folders; a folder whose tag a "
        "series lacks is left out. Default `{measurement}/{field}`, with `device: null` `{asset}/{measurement}/{field}`.")
    exclude_measurements: list[str] = Field(
        ["coverage"], description="Measurements not published (their samples still tell that an asset is alive).")
    datatypes: dict[str, Literal["Double", "Int64", "Boolean"]] = Field(
        default_factory=dict, description="Datatype by `<measurement>/<field>` glob (first match wins), over the defaults: "
        "Boolean for the data model's 0/1 states, Int64 for its counts, else Double.")
    device_stale_s: float | None = Field(
        300.0, gt=0, description="A device (asset) with neither a sample nor a coverage point for this long gets a DDEATH; "
        "null: never. Keep it above the slowest source's keep-alive, poll or message period.")
    backlog_max_samples: int = Field(
        100_000, ge=1, description="Samples held in memory while the broker or the primary host is away; past it the "
        "oldest go (counted); the durable sink still has them.")
    publish_timeout_s: float = Field(10.0, gt=0, description="A send that has not reached the socket by then is retried.")

    @field_validator("group_id", "edge_node_id", "primary_host_id", "device", "metric")
    @classmethod
    def _ids(cls, v: str | None, info) -> str | None:
        if v is not None and info.field_name in ("device", "metric"):
            _placeholders(v)
        return v if v is None or info.field_name == "metric" else topic_level(v)

    @property
    def metric_template(self) -> str:
        return self.metric or ("{measurement}/{field}" if self.device else "{asset}/{measurement}/{field}")


@dataclass(eq=False)
class _Metric:
    """One published metric and what it last published (its current value, for the BIRTH certificates)."""

    scope: str | None  # the device id; None: a node metric
    name: str
    alias: int
    datatype: int
    key: str  # the series, for logs
    ts_ms: int = -1  # -1: no value yet
    value: float = math.nan
    null: bool = True
    quality: int = 192
    born: int = -1  # the birth generation that declared it


def _render_levels(template: str, ctx: dict[str, str]) -> str | None:
    """``template`` filled from ``ctx``, leaving out each ``/`` level whose placeholder ``ctx`` lacks."""
    levels = []
    for level in template.split("/"):
        try:
            levels.append(level.format_map(ctx))
        except KeyError:
            continue
    name = "/".join(x for x in levels if x)
    return name or None


class SparkplugSink:
    """The edge node. paho's network thread runs the session (births, NCMD, STATE); :meth:`send`
    publishes DATA from a worker thread; one lock keeps ``seq`` and the births in order."""

    name = "sparkplug"

    def __init__(self, cfg: SparkplugSinkConfig, broker: MqttConfig | None, site: str, gateway: str, metrics: "GatewayMetrics",
                 store: Any = None, client_id: str | None = None):
        if broker is None:
            raise ValueError("live sink sparkplug: no broker (set live_sinks[].broker or the top-level mqtt section)")
        from plantmrv.gateway.sparkplug_pb import QUALITY_GOOD

        self.cfg = cfg
        self.broker = broker
        self.metrics = metrics
        self.store = store  # get_state/set_state (the durable buffer): bdSeq survives a restart
        self.group = cfg.group_id
        self.edge = cfg.edge_node_id or gateway
        self._state_key = f"sparkplug_bdseq:{self.group}/{self.edge}"
        stored = store.get_state(self._state_key) if store is not None else None
        self.bdseq = int(stored) if stored is not None else 255  # the first CONNECT carries one more: 0
        self._ncmd = self._topic("NCMD")
        self._state = f"spBv1.0/STATE/{cfg.primary_host_id}" if cfg.primary_host_id else None
        self._lock = threading.RLock()
        self._routes: dict[Series, tuple[str | None, _Metric | None, str | None]] = {}  # series -> (device, metric, why not)
        self._scopes: dict[str | None, dict[str, _Metric]] = {None: {}}
        self._next_alias = 1
        self._gen = 0  # birth generation: one more at every NBIRTH
        self._born: set[str | None] = set()  # scopes whose BIRTH went out in this generation (None: the node)
        self._dead: set[str] = set()  # devices given a DDEATH for silence: no DBIRTH until they speak again
        self._seen: dict[str, float] = {}  # device -> monotonic time of its last sample or coverage point
        self._seq = 0
        self._connected = False
        self._host_online = self._state is None
        self._host_ts = -1
        self._restart = False
        self._unreachable = False
        self._warned: set[tuple[str, str]] = set()
        self._good = QUALITY_GOOD
        self._ticker: asyncio.Task | None = None
        self.client = paho_client(broker, client_id or f"plantmrv-spb-{site}-{gateway}", handler=self)

    # ------------------------------------------------------------------ topics and payloads
    def _topic(self, verb: str, device: str | None = None) -> str:
        return f"spBv1.0/{self.group}/{verb}/{self.edge}" + (f"/{device}" if device is not None else "")

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _payload(self, seq: bool = True):
        from plantmrv.gateway.sparkplug_pb import Payload

        p = Payload()
        p.timestamp = time.time_ns() // 1_000_000
        if seq:
            p.seq = self._next_seq()
        return p

    def death_payload(self) -> bytes:
        """The NDEATH: a timestamp and ``bdSeq`` (Int64), no ``seq``."""
        from plantmrv.gateway.sparkplug_pb import BDSEQ_METRIC, set_value

        p = self._payload(seq=False)
        m = p.metrics.add()
        m.name, m.timestamp = BDSEQ_METRIC, p.timestamp
        set_value(m, DATATYPES["Int64"], self.bdseq)
        return p.SerializeToString()

    def _publish(self, topic: str, payload, qos: int = 0):
        import paho.mqtt.client as paho

        info = self.client.publish(topic, payload if isinstance(payload, bytes) else payload.SerializeToString(), qos=qos, retain=False)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise SinkError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        return info

    # ------------------------------------------------------------------ series -> metrics
    def _route(self, s: Series) -> tuple[str | None, _Metric | None, str | None]:
        hit = self._routes.get(s)
        if hit is None:
            hit = self._routes[s] = self._new_route(s)
        return hit

    def _new_route(self, s: Series) -> tuple[str | None, _Metric | None, str | None]:
        from plantmrv.gateway.sparkplug_pb import BDSEQ_METRIC

        ctx = {**dict(s.tags), "measurement": s.measurement, "field": s.field}
        device = None
        if self.cfg.device is not None:
            try:
                device = self.cfg.device.format_map(ctx) or None
            except KeyError:
                device = None  # a series without the device's tags: a node metric
            try:
                device = device if device is None else topic_level(device)
            except ValueError as exc:
                return None, None, self._refuse(s, "bad_device_id", f"device id: {exc}")
        if s.measurement in self.cfg.exclude_measurements:
            return device, None, None
        name = _render_levels(self.cfg.metric_template, ctx)
        if name is None:
            return device, None, self._refuse(s, "unnamed", f"the metric template {self.cfg.metric_template!r} gives no name")
        if device is None and (name == BDSEQ_METRIC or name.startswith("Node Control/")):
            return device, None, self._refuse(s, "name_taken", f"metric name {name!r} is reserved by Sparkplug")
        scope = self._scopes.setdefault(device, {})
        if name in scope:
            return device, None, self._refuse(s, "name_taken", f"metric name {name!r} of device {device!r} is already "
                                              f"{scope[name].key!r}: give the metric template a tag that tells them apart")
        m = _Metric(device, name, self._next_alias, self._datatype(s), s.key())
        self._next_alias += 1
        scope[name] = m
        return device, m, None

    def _refuse(self, s: Series, reason: str, why: str) -> str:
        log.warning("event=sparkplug_series_unpublished series=%r reason=%s detail=%r", s.key(), reason, why)
        return reason

    def _datatype(self, s: Series) -> int:
        path = f"{s.measurement}/{s.field}"
        for pattern, dt in self.cfg.datatypes.items():
            if fnmatch.fnmatchcase(path, pattern):
                return DATATYPES[dt]
        if (s.measurement, s.field) in STATE_FIELDS:
            return DATATYPES["Boolean"]
        if (s.measurement, s.field) in COUNT_FIELDS:
            return DATATYPES["Int64"]
        return DATATYPES["Double"]

    def _encode(self, m: _Metric, v: float, q: int) -> tuple[float, bool, int]:
        """(value, is_null, Quality code) of a sample for metric ``m``."""
        from plantmrv.gateway.sparkplug_pb import QUALITY_BAD

        if q == Quality.BAD or not math.isfinite(v):
            return math.nan, True, QUALITY_BAD
        fits = (m.datatype == DATATYPES["Double"] or (m.datatype == DATATYPES["Boolean"] and v in (0.0, 1.0))
                or (m.datatype == DATATYPES["Int64"] and v.is_integer() and abs(v) < 2.0 ** 63))
        if not fits:
            self.metrics.live_dropped(self.name, "datatype", 1)
            if (m.key, "datatype") not in self._warned:
                self._warned.add((m.key, "datatype"))
                log.warning("event=sparkplug_value_unfit series=%r metric=%r value=%r datatype=%s (published null, Quality BAD)",
                            m.key, m.name, v, next(k for k, d in DATATYPES.items() if d == m.datatype))
            return math.nan, True, QUALITY_BAD
        return v, False, (self._good if q == Quality.GOOD else QUALITY_BAD)

    # ------------------------------------------------------------------ births and deaths (lock held)
    def _declare(self, p, m: _Metric, now_ms: int) -> None:
        from plantmrv.gateway.sparkplug_pb import set_quality, set_value

        x = p.metrics.add()
        x.name, x.alias = m.name, m.alias
        x.timestamp = m.ts_ms if m.ts_ms >= 0 else now_ms
        set_value(x, m.datatype, None if m.null else m.value)
        if m.quality != self._good:
            set_quality(x, m.quality)
        m.born = self._gen

    def _birth(self) -> None:
        """The complete BIRTH sequence: NBIRTH (seq 0) and a DBIRTH per device that is not dead."""
        from plantmrv.gateway.sparkplug_pb import BDSEQ_METRIC, REBIRTH_METRIC, set_value

        self._gen += 1
        self._born.clear()
        self._seq = 0
        p = self._payload()
        for name, dt, value in ((BDSEQ_METRIC, DATATYPES["Int64"], self.bdseq), (REBIRTH_METRIC, DATATYPES["Boolean"], False)):
            x = p.metrics.add()
            x.name, x.timestamp = name, p.timestamp
            set_value(x, dt, value)
        for m in self._scopes[None].values():
            self._declare(p, m, p.timestamp)
        self._publish(self._topic("NBIRTH"), p)
        self._born.add(None)
        log.info("event=sparkplug_nbirth group=%s edge_node=%s bdseq=%d node_metrics=%d devices=%d", self.group, self.edge,
                 self.bdseq, len(self._scopes[None]), sum(1 for d, ms in self._scopes.items() if d is not None and ms and d not in self._dead))
        for device, members in self._scopes.items():
            if device is not None and members and device not in self._dead:
                self._dbirth(device)

    def _dbirth(self, device: str) -> None:
        p = self._payload()
        for m in self._scopes[device].values():
            self._declare(p, m, p.timestamp)
        self._publish(self._topic("DBIRTH", device), p)
        self._born.add(device)
        self._dead.discard(device)
        self._seen[device] = time.monotonic()

    def _bury_silent(self) -> None:
        """DDEATH for every born device silent for ``device_stale_s``."""
        with self._lock:
            if not self.ready():
                return
            now = time.monotonic()
            for device in [d for d in self._born if d is not None and now - self._seen.get(d, now) > self.cfg.device_stale_s]:
                self._publish(self._topic("DDEATH", device), self._payload())
                self._born.discard(device)
                self._dead.add(device)
                log.warning("event=sparkplug_ddeath group=%s edge_node=%s device=%s silent_s=%.0f", self.group, self.edge, device,
                            now - self._seen[device])

    # ------------------------------------------------------------------ data
    def ready(self) -> bool:
        """In a Sparkplug session: connected, primary host online (if one is configured), NBIRTH out."""
        return self._connected and None in self._born

    async def send(self, blobs: list[bytes]) -> None:
        info = await asyncio.to_thread(self._send_blocking, blobs)
        if info is not None:  # QoS 0: "published" once written to the socket; this paces us to the link
            try:
                await asyncio.to_thread(info.wait_for_publish, self.cfg.publish_timeout_s)
            except (RuntimeError, ValueError) as exc:
                raise SinkError(f"connection to {self.broker.url} lost while publishing: {exc}") from None
            if not info.is_published():
                raise SinkError(f"Sparkplug DATA not written to {self.broker.url} within {self.cfg.publish_timeout_s}s")

    def _decode(self, blobs: list[bytes]) -> SampleBatch:
        batches = []
        for b in blobs:
            try:
                batches.append(decode_message(b).batch)
            except CodecError as exc:  # the durable sink counts it too
                self.metrics.live_dropped(self.name, "corrupt", 1)
                log.error("event=buffer_blob_corrupt sink=%s error=%s", self.name, exc)
        return SampleBatch.concat(batches)

    def _send_blocking(self, blobs: list[bytes]):
        batch = self._decode(blobs)
        if not len(batch):
            return None
        order = np.argsort(batch.ts_ns, kind="stable")
        with self._lock:
            if not self.ready():
                raise SinkError(f"no Sparkplug session on {self.broker.url} (" + (
                    "not connected" if not self._connected else f"waiting for primary host {self.cfg.primary_host_id}") + ")")
            routes = [self._route(s) for s in batch.table]
            now = time.monotonic()
            for device in {r[0] for r in routes if r[0] is not None}:
                self._seen[device] = now
            rows, unpublished = [], {}
            for s, t, v, q in zip(batch.series[order].tolist(), (batch.ts_ns[order] // 1_000_000).tolist(),
                                  batch.value[order].tolist(), batch.quality[order].tolist()):
                _device, m, why = routes[s]
                if m is not None:
                    rows.append((m, t, v, q))
                elif why is not None:
                    unpublished[why] = unpublished.get(why, 0) + 1
            for why, n in unpublished.items():
                self.metrics.live_dropped(self.name, why, n)
            taken = self._births_for(rows)
            published, info = self._data(rows, taken)
        self.metrics.live_sent(self.name, published + len(taken))
        return info

    def _births_for(self, rows: list[tuple[_Metric, int, float, int]]) -> set[int]:
        """Declare what ``rows`` need declared; return the rows a BIRTH published (a new metric's first value)."""
        taken: dict[_Metric, int] = {}
        for i, (m, t, v, q) in enumerate(rows):
            if m.ts_ms < 0 and m not in taken:
                taken[m] = i
                m.ts_ms = t
                m.value, m.null, m.quality = self._encode(m, v, q)
        if any(m.born != self._gen and m.scope in self._born for m, *_ in rows):
            self._birth()  # a new metric of a node or device already born: the whole BIRTH sequence again
        for device in sorted({m.scope for m, *_ in rows if m.scope not in self._born}):
            self._dbirth(device)  # a new device, or one back from a DDEATH
        return set(taken.values())

    def _data(self, rows: list[tuple[_Metric, int, float, int]], taken: set[int]):
        """NDATA/DDATA for ``rows`` (chronological), report by exception; (metrics published, last message info)."""
        from plantmrv.gateway.sparkplug_pb import set_quality, set_value

        out: dict[str | None, Any] = {}
        n = 0
        for i, (m, t, v, q) in enumerate(rows):
            if i in taken:
                continue
            value, null, code = self._encode(m, v, q)
            historical = t < m.ts_ms
            if not historical and null == m.null and code == m.quality and (null or value == m.value):
                continue  # unchanged: report by exception
            p = out.get(m.scope)
            if p is None:
                from plantmrv.gateway.sparkplug_pb import Payload

                p = out[m.scope] = Payload()
            x = p.metrics.add()
            x.alias, x.timestamp = m.alias, t
            set_value(x, m.datatype, None if null else value)
            x.ClearField("datatype")  # DATA "SHOULD NOT" repeat the datatype: the BIRTH gave it
            if historical:
                x.is_historical = True
            if code != self._good or (not historical and m.quality != self._good):
                set_quality(x, code)
            if not historical:
                m.ts_ms, m.value, m.null, m.quality = t, value, null, code
            n += 1
        info = None
        for scope, p in out.items():
            p.timestamp = time.time_ns() // 1_000_000
            p.seq = self._next_seq()
            info = self._publish(self._topic("NDATA") if scope is None else self._topic("DDATA", scope), p)
        return n, info

    # ------------------------------------------------------------------ session (paho's thread)
    def _on_pre_connect(self, client, userdata) -> None:
        self.bdseq = (self.bdseq + 1) % 256
        if self.store is not None:
            self.store.set_state(self._state_key, str(self.bdseq))
        client.will_set(self._topic("NDEATH"), self.death_payload(), qos=1, retain=False)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("event=sparkplug_refused broker=%s reason=%s", self.broker.url, reason_code)
            return
        with self._lock:
            self._connected = True
            self._unreachable = False
            self._born.clear()
            self._host_online = self._state is None
            client.subscribe([(self._ncmd, 1)] + ([(self._state, 1)] if self._state else []))
            self.metrics.live_connected(self.name, True)
            log.info("event=sparkplug_connected broker=%s group=%s edge_node=%s bdseq=%d primary_host=%s", self.broker.url,
                     self.group, self.edge, self.bdseq, self.cfg.primary_host_id or "-")
            if self._host_online:
                self._birth_quietly()

    def _birth_quietly(self) -> None:
        try:
            self._birth()
        except SinkError as exc:  # the connection went while publishing: the next CONNECT births again
            log.warning("event=sparkplug_birth_failed error=%s", exc)

    def _on_connect_fail(self, client, userdata) -> None:
        (log.debug if self._unreachable else log.warning)("event=sparkplug_unreachable broker=%s retry_max_s=30", self.broker.url)
        self._unreachable = True
        self.metrics.live_connected(self.name, False)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was, self._connected = self._connected, False
            self._born.clear()
        if was:
            log.warning("event=sparkplug_disconnected broker=%s reason=%s", self.broker.url, reason_code)
        self.metrics.live_connected(self.name, False)

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == self._ncmd:
            self._on_ncmd(msg.payload)
        elif msg.topic == self._state:
            self._on_state(msg.payload)

    def _on_ncmd(self, payload: bytes) -> None:
        from plantmrv.gateway.sparkplug_pb import REBIRTH_METRIC, Payload

        try:
            p = Payload.FromString(payload)
        except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends
            log.warning("event=sparkplug_ncmd_rejected reason=%s", str(exc)[:200])
            return
        for m in p.metrics:
            if m.name == REBIRTH_METRIC and m.WhichOneof("value") == "boolean_value" and m.boolean_value:
                log.info("event=sparkplug_rebirth_requested group=%s edge_node=%s", self.group, self.edge)
                with self._lock:
                    if self._connected and self._host_online:
                        self._birth_quietly()
            else:
                log.warning("event=sparkplug_ncmd_ignored metric=%r (this edge node writes nothing to the plant)", m.name or m.alias)

    def _on_state(self, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
            online, ts = doc["online"], doc["timestamp"]
            if not isinstance(online, bool) or not isinstance(ts, int):
                raise ValueError("online must be a boolean and timestamp an integer (ms)")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("event=sparkplug_state_rejected topic=%s reason=%r", self._state, str(exc)[:200])
            return
        if ts < self._host_ts:  # an older session's STATE arriving late: not the host's current state
            log.info("event=sparkplug_state_stale topic=%s online=%s timestamp=%d last=%d", self._state, online, ts, self._host_ts)
            return
        self._host_ts = ts
        log.info("event=sparkplug_primary_host host=%s online=%s", self.cfg.primary_host_id, online)
        with self._lock:
            self._host_online = online
            if online and self._connected and None not in self._born:
                self._birth_quietly()
            elif not online and None in self._born:
                # the primary host is gone: NDEATH, disconnect, start over (spec: phid-offline)
                self._born.clear()
                self._restart = True
                try:
                    self._publish(self._topic("NDEATH"), self.death_payload(), qos=1)
                except SinkError:
                    pass
                self.client.disconnect()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._connect()
        self._ticker = asyncio.create_task(self._tick(), name="sparkplug-tick")

    def _connect(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        self.client.loop_start()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            if self._restart:  # after an offline STATE: a new connection, a new bdSeq
                self._restart = False
                await asyncio.to_thread(self.client.loop_stop)
                self._connect()
            if self.cfg.device_stale_s:
                try:
                    await asyncio.to_thread(self._bury_silent)
                except SinkError as exc:
                    log.debug("event=sparkplug_ddeath_failed error=%s", exc)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        info = None
        with self._lock:
            if self._connected:
                self._born.clear()
                try:  # an intentional disconnect MUST publish the NDEATH first (the Will is not sent then)
                    info = self._publish(self._topic("NDEATH"), self.death_payload(), qos=1)
                except SinkError:
                    info = None
        if info is not None:
            await asyncio.to_thread(info.wait_for_publish, 2.0)
        with self._lock:
            self._connected = False  # a clean stop: no disconnect warning
        self.client.disconnect()
        self.client.loop_stop()
