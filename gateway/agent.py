"""The gateway agent: sources -> coalescer -> durable buffer -> sink, plus health.

Sources are picked by name from :data:`SOURCE_TYPES` (``type: opcua`` / ``type: mqtt``) and
sinks from :data:`SINK_TYPES`; a source only emits :class:`SampleBatch` objects and a sink
only sends encoded batches or raises. The agent owns everything in between:

* **coalescing**: samples wait in memory at most ``buffer.batch_max_age_s`` (or until
  ``batch_max_samples``) and are then encoded (:func:`plantmrv.codec.encode_message`, with the
  buffer's epoch and the message's sequence number) and appended to the SQLite buffer in one
  fsync'ed transaction;
* **acknowledging only what is durable**: a sample counts as read, and the source hears that
  it may acknowledge it upstream (the ``ack`` it passed with the batch: an OPC UA
  SubscriptionAcknowledgement, an MQTT PUBACK), only after that transaction;
* **forwarding**: the oldest stored batches go to the sink; they are deleted only after the
  sink confirmed them; failures back off exponentially with jitter; the send rate is capped so
  a long outage's backlog does not flood the broker;
* **live sinks** (``live_sinks``, :data:`LIVE_SINK_TYPES`: a Sparkplug B edge node): each stored
  batch is also offered to them as it is stored, best effort (:mod:`plantmrv.gateway.live`); they
  never hold up the buffer, and one that fails costs only its own output;
* **health**: Prometheus ``/metrics``, a one-line status log, and a ``gateway`` measurement
  sent through the same buffer and sink.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from plantmrv.batch import SampleBatch, Series, concat_status
from plantmrv.codec import encode_message
from plantmrv.config import ConfigError, ConfigIssue, relative_base
from plantmrv.gateway.buffer import DurableBuffer
from plantmrv.gateway.coverage import DEFAULT_MAX_SAMPLE_INTERVAL_S, CoverageTracker
from plantmrv.gateway.live import LiveFeed
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.retry import backoff_delay
from plantmrv.timebounds import iso

log = logging.getLogger("plantmrv.gateway")


def _opcua(cfg, agent: "GatewayAgent"):
    from plantmrv.gateway.opcua_source import OpcUaSource

    return OpcUaSource(cfg, agent.site, agent.metrics, agent.config_dir)


def _mqtt(cfg, agent: "GatewayAgent"):
    from plantmrv.gateway.mqtt_source import MqttSource

    own = cfg.broker.client_id if cfg.broker is not None else None  # else a stable id of its own: the broker keeps its session
    return MqttSource(cfg, agent.site, agent.metrics, cfg.broker or agent.root.mqtt, agent.cfg.bounds(),
                      own or f"plantmrv-{agent.site}-{agent.gateway_id}-{cfg.name}")


def _modbus(cfg, agent: "GatewayAgent"):
    from plantmrv.gateway.modbus_source import ModbusSource

    return ModbusSource(cfg, agent.site, agent.metrics)


def _sparkplug(cfg, agent: "GatewayAgent"):
    from plantmrv.gateway.sparkplug_source import SparkplugSource

    return SparkplugSource(cfg, agent.site, agent.metrics, cfg.broker or agent.root.mqtt)


def _mqtt_sink(cfg, agent: "GatewayAgent"):
    from plantmrv.gateway.mqtt_sink import MqttSink

    return MqttSink(cfg, agent.root.mqtt, agent.site, agent.gateway_id, agent.metrics)


def _influx_sink(cfg, agent: "GatewayAgent"):
    from plantmrv.gateway.influx_sink import InfluxSink

    return InfluxSink(cfg, agent.root.influxdb, agent.metrics)


def _sparkplug_sink(cfg, agent: "GatewayAgent"):
    from plantmrv.gateway.sparkplug_sink import SparkplugSink

    own = cfg.broker.client_id if cfg.broker is not None else None  # else one of its own: the mqtt sink's is taken
    return SparkplugSink(cfg, cfg.broker or agent.root.mqtt, agent.site, agent.gateway_id, agent.metrics, agent.buffer, own)


SOURCE_TYPES: dict[str, Callable[[Any, "GatewayAgent"], Any]] = {"opcua": _opcua, "mqtt": _mqtt, "modbus": _modbus, "sparkplug": _sparkplug}
SINK_TYPES: dict[str, Callable[[Any, "GatewayAgent"], Any]] = {"mqtt": _mqtt_sink, "influxdb": _influx_sink}
LIVE_SINK_TYPES: dict[str, Callable[[Any, "GatewayAgent"], Any]] = {"sparkplug": _sparkplug_sink}


def check_runnable(root, filename: str) -> None:
    """Cross-section checks the per-section models cannot make; raise located ConfigErrors."""
    issues = []
    gw = root.gateway
    if gw is None:
        raise ConfigError([ConfigIssue(filename, "gateway", None, "section 'gateway' is required for this command")])
    if gw.site is None and root.site is None:
        issues.append(ConfigIssue(filename, "gateway.site", None, "no site id: set gateway.site or the top-level site.id"))
    if gw.sink.type == "mqtt" and root.mqtt is None:
        issues.append(ConfigIssue(filename, "mqtt", None, "sink type mqtt needs the top-level `mqtt:` section"))
    for i, s in enumerate(gw.sources):
        if s.type in ("mqtt", "sparkplug") and s.broker is None and root.mqtt is None:
            issues.append(ConfigIssue(filename, f"gateway.sources[{i}].broker", None, "no broker: set it or the top-level `mqtt:` section"))
    for i, s in enumerate(gw.live_sinks):
        if s.broker is None and root.mqtt is None:
            issues.append(ConfigIssue(filename, f"gateway.live_sinks[{i}].broker", None, "no broker: set it or the top-level `mqtt:` section"))
    if issues:
        raise ConfigError(issues)


def merge_batches(batches: list[SampleBatch]) -> SampleBatch:
    """Concatenate; batches that share one series table (one source) skip the table merge."""
    if len(batches) == 1:
        return batches[0]
    table = batches[0].table
    if all(b.table is table for b in batches):
        return SampleBatch(
            table,
            np.concatenate([b.series for b in batches]),
            np.concatenate([b.ts_ns for b in batches]),
            np.concatenate([b.value for b in batches]),
            np.concatenate([b.quality for b in batches]),
            concat_status(batches),
        )
    by_table: dict[int, list[SampleBatch]] = {}
    for b in batches:
        by_table.setdefault(id(b.table), []).append(b)
    return SampleBatch.concat(merge_batches(g) if len(g) > 1 else g[0] for g in by_table.values())


def _call_acks(acks: list[Callable[[], None]]) -> None:
    for ack in acks:
        try:
            ack()
        except Exception:  # noqa: BLE001 - one source's failing ack must not hold up the others
            log.exception("event=source_ack_failed")


class SourceEmitter:
    """What a source calls with its samples: ``emit(batch, watermark_ns=None, covers=None, ack=None, state=None)``;
    ``emit.lost()`` on disconnect.

    ``ack`` is called (in the event loop) once every sample emitted so far, this batch's too, is
    fsync'ed in the buffer: the moment a source may acknowledge them upstream. ``state``
    (``{key: text}``) is stored in the same transaction as the batch, so what a source records
    about its samples (e.g. the OPC UA notifications they came in) is durable exactly when they
    are; :meth:`saved` reads it back after a restart and :meth:`persist` stores state at once.

    ``watermark_ns`` is the source time up to which the source observed the series ``covers``
    (indices into ``batch.table``; default: all of it): unchanged ones are known unchanged until
    then, and a series that failed is in the batch as a non-GOOD sample. The agent's :class:`~plantmrv.gateway.coverage.CoverageTracker`
    adds hold points and heartbeats from it, and ``coverage`` points per asset at the next flush.
    ``lost()`` writes every series once more at the last watermark and forgets the state, so no
    hold bridges the outage. The newest timestamp is tracked per source and stored with the
    batch, so a restarted gateway backfills (HistoryRead) from exactly what it durably buffered.
    """

    def __init__(self, agent: "GatewayAgent", source_name: str, tracker: CoverageTracker):
        self.agent = agent
        self.source_name = source_name
        self.tracker = tracker

    def __call__(self, batch: SampleBatch, watermark_ns: int | None = None, covers: np.ndarray | None = None,
                 ack: Callable[[], None] | None = None, state: dict[str, str] | None = None) -> None:
        agent = self.agent
        batch = agent._in_bounds(batch)  # before coverage and the resume point see a 1938 or 2150 stamp
        if len(batch):
            newest = int(batch.ts_ns.max())
            if newest > agent._pending_ts.get(self.source_name, 0):
                agent._pending_ts[self.source_name] = newest
            agent._pending_read[self.source_name] = agent._pending_read.get(self.source_name, 0) + len(batch)
            agent.metrics.pending(sum(agent._pending_read.values()))
        if len(batch) or watermark_ns is not None:
            agent.emit(self.tracker.observe(batch, watermark_ns, covers))
        if state:
            agent._pending_state.update(state)
        if ack is not None:
            agent.on_durable(ack)

    def lost(self) -> None:
        self.agent.emit(self.tracker.close())

    def saved(self, key: str) -> str | None:
        """State stored by an earlier ``emit(..., state=)`` or :meth:`persist` (this run or a previous one)."""
        return self.agent.buffer.get_state(key)

    async def persist(self, state: dict[str, str]) -> None:
        """Store ``state`` durably now (fsync'ed), e.g. what a source must know after a restart before any data depends on it."""
        await asyncio.to_thread(self.agent.buffer.set_states, state)


class GatewayAgent:
    def __init__(self, root, config_path: str | Path = "gateway.yaml"):
        check_runnable(root, str(config_path))
        self.root = root
        self.cfg = gw = root.gateway
        self.config_dir = relative_base(config_path)  # relative buffer and PKI paths resolve here
        self.site = gw.site or root.site.id
        self.gateway_id = gw.id
        self.metrics = GatewayMetrics(int(gw.buffer.max_mb * 1024 * 1024))
        self._bounds = gw.bounds()
        bpath = gw.buffer.path if gw.buffer.path.is_absolute() else self.config_dir / gw.buffer.path
        self.buffer = DurableBuffer(bpath, int(gw.buffer.max_mb * 1024 * 1024))
        self.metrics.buffer_state(self.buffer.depth, self.buffer.nbytes)
        self.sources = [SOURCE_TYPES[s.type](s, self) for s in gw.sources]
        for s in self.sources:
            if hasattr(s, "last_ts_ns"):
                s.last_ts_ns = self.resume_ts_ns(s.name)  # backfill from here on the first connect
        self.sink = SINK_TYPES[gw.sink.type](gw.sink, self)
        self.live = [LiveFeed(LIVE_SINK_TYPES[c.type](c, self), c.backlog_max_samples, self.metrics, gw.buffer.retry_min_s,
                              gw.buffer.retry_max_s) for c in gw.live_sinks]
        self.trackers: dict[str, CoverageTracker] = {}
        self._pending: list[SampleBatch] = []
        self._pending_n = 0
        self._pending_ts: dict[str, int] = {}
        self._pending_read: dict[str, int] = {}  # samples each source emitted that are not yet durable
        self._pending_state: dict[str, str] = {}
        self._acks: list[Callable[[], None]] = []  # called in order once what was emitted before them is durable
        self._flush_lock = asyncio.Lock()
        self._pending_since = 0.0
        self._flush_now: asyncio.Event | None = None
        self._send_now: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self.metrics_port: int | None = None
        self._health_table = [
            Series.of("gateway", f, site=self.site, gateway=self.gateway_id)
            for f in ("buffer_depth", "buffer_bytes", "samples_read", "samples_sent", "samples_dropped", "online", "buffer_max_bytes",
                      "nodes_without_history")
        ]

    # ------------------------------------------------------------------ intake
    def emitter(self, source_name: str) -> "SourceEmitter":
        """The ``emit`` a source gets (see :class:`SourceEmitter`)."""
        source = next((s for s in self.sources if s.name == source_name), None)
        per_series = getattr(source, "max_sample_interval_ns", None)
        default_ns = int(DEFAULT_MAX_SAMPLE_INTERVAL_S * 1e9)
        tracker = self.trackers[source_name] = CoverageTracker(
            per_series if per_series is not None else (lambda _s: default_ns), self.gateway_id, source_name
        )
        return SourceEmitter(self, source_name, tracker)

    def resume_ts_ns(self, source_name: str) -> int:
        v = self.buffer.get_state(f"last_ts_ns:{source_name}")
        return int(v) if v else 0

    def emit(self, batch: SampleBatch) -> None:
        """Called in the event loop: queue samples for the next buffered batch."""
        batch = self._in_bounds(batch)
        if not len(batch):
            return
        if not self._pending and not self._acks:
            self._pending_since = time.monotonic()
        self._pending.append(batch)
        self._pending_n += len(batch)
        if self._flush_now is not None and (self._pending_n >= self.cfg.buffer.batch_max_samples
                                            or self.cfg.buffer.batch_max_age_s == 0):
            self._flush_now.set()

    def on_durable(self, ack: Callable[[], None]) -> None:
        """Call ``ack`` once everything emitted before it is durable (at once if that is so already)."""
        if not self._pending and not self._acks and not self._flush_lock.locked():
            _call_acks([ack])
            return
        if not self._pending and not self._acks:
            self._pending_since = time.monotonic()
        self._acks.append(ack)
        if self.cfg.buffer.batch_max_age_s == 0 and self._flush_now is not None:
            self._flush_now.set()

    def _in_bounds(self, batch: SampleBatch) -> SampleBatch:
        """``batch`` without samples stamped outside gateway.min_timestamp..max_timestamp (dropped, counted, logged)."""
        out = self._bounds.outside(batch.ts_ns)
        if not out.any():
            return batch
        n = int(out.sum())
        first = int(np.flatnonzero(out)[0])
        self.metrics.dropped("timestamp_range", n)
        log.warning("event=samples_dropped reason=timestamp_range samples=%d bounds=%s first_series=%r first_ts=%s",
                    n, self._bounds.describe(), batch.table[batch.series[first]].key(), iso(int(batch.ts_ns[first])))
        return batch.take(np.flatnonzero(~out))

    async def flush(self) -> int:
        """Encode pending samples and store them durably; return the number stored. Then count
        them as read and call the acknowledgements that waited for them."""
        async with self._flush_lock:  # one flush at a time: sequence numbers and acks stay in order
            return await self._flush()

    async def _flush(self) -> int:
        since = self._pending_since if self._pending else time.monotonic()
        for tracker in self.trackers.values():  # the assets' watermarks, with the samples they cover
            cov = tracker.coverage_batch()
            if len(cov):
                self._pending.append(cov)
                self._pending_n += len(cov)
        acks, self._acks = self._acks, []
        extra_state, self._pending_state = self._pending_state, {}
        if not self._pending:
            if extra_state:
                await asyncio.to_thread(self.buffer.set_states, extra_state)
            _call_acks(acks)
            return 0
        batches, self._pending, self._pending_n = self._pending, [], 0
        reads, self._pending_read = self._pending_read, {}
        floors = {s.name: getattr(s, "resume_floor_ns", None) for s in self.sources}
        state = {f"last_ts_ns:{k}": str(min(v, floors.get(k) or v)) for k, v in self._pending_ts.items()}
        state.update(extra_state)
        self._pending_ts = {}
        merged = merge_batches(batches)
        stored = 0
        parts = merged.split(self.cfg.buffer.batch_max_samples)
        for i, part in enumerate(parts):
            if len(part.table) > len(part):  # the header lists only the series this part uses, not the source's table
                part = part.compact()
            seq = self.buffer.next_id()
            blob = encode_message(part, compress=getattr(self.cfg.sink, "compress", False),
                                  site=self.site, gateway=self.gateway_id, epoch=self.buffer.epoch, seq=seq)
            _rid, dropped = await asyncio.to_thread(self.buffer.append, blob, len(part), seq,
                                                    state if i == len(parts) - 1 else None)
            stored += len(part)
            for feed in self.live:  # best effort, never waited for: see plantmrv.gateway.live
                feed.offer(blob, len(part))
            if dropped:
                n = sum(d[1] for d in dropped)
                self.metrics.dropped("buffer_full", n)
                log.warning("event=buffer_full_drop_oldest batches=%d samples=%d cap_mb=%g ids=%d..%d", len(dropped), n,
                            self.cfg.buffer.max_mb, dropped[0][0], dropped[-1][0])
        self.metrics.buffered(stored)
        self.metrics.durable_after(time.monotonic() - since)
        for source, n in reads.items():
            self.metrics.source_read(source, n)
        self.metrics.pending(sum(self._pending_read.values()))
        self.metrics.buffer_state(self.buffer.depth, self.buffer.nbytes)
        _call_acks(acks)
        if self._send_now is not None:
            self._send_now.set()
        return stored

    async def _flusher(self) -> None:
        age = self.cfg.buffer.batch_max_age_s
        while True:
            idle = not self._pending and not self._acks
            wait = (age or 1.0) if idle else max(0.0, self._pending_since + age - time.monotonic())
            try:
                await asyncio.wait_for(self._flush_now.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
            self._flush_now.clear()
            if (self._pending or self._acks) and (self._pending_n >= self.cfg.buffer.batch_max_samples
                                                  or time.monotonic() - self._pending_since >= age):
                await self.flush()

    # ------------------------------------------------------------------ forwarding
    async def _sender(self) -> None:
        bcfg = self.cfg.buffer
        attempt = 0
        rate = bcfg.replay_max_samples_per_s
        allowance = rate
        last = time.monotonic()
        last_error_log = 0.0
        while True:
            records = await asyncio.to_thread(self.buffer.peek, bcfg.send_max_batches)
            if not records:
                self._send_now.clear()
                try:
                    await asyncio.wait_for(self._send_now.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
                continue
            n = sum(r.n_samples for r in records)
            now = time.monotonic()
            allowance = min(rate, allowance + (now - last) * rate)
            last = now
            if allowance < n:  # token bucket on samples: bounded replay rate
                await asyncio.sleep(min(5.0, (n - allowance) / rate))
                allowance = n
            allowance -= n
            try:
                await self.sink.send([r.blob for r in records])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep in buffer, retry
                self.metrics.sink_failed(self.sink.name)
                delay = backoff_delay(attempt, bcfg.retry_min_s, bcfg.retry_max_s)
                attempt += 1
                if time.monotonic() - last_error_log > 30 or attempt == 1:
                    last_error_log = time.monotonic()
                    log.warning("event=sink_send_failed sink=%s attempt=%d retry_in_s=%.1f buffer_depth=%d error=%s: %s",
                                self.sink.name, attempt, delay, self.buffer.depth, type(exc).__name__, str(exc)[:300])
                await asyncio.sleep(delay)
                continue
            if attempt:
                log.info("event=sink_recovered sink=%s failed_attempts=%d buffer_depth=%d", self.sink.name, attempt, self.buffer.depth)
            attempt = 0
            await asyncio.to_thread(self.buffer.delete, records)
            self.metrics.sent(self.sink.name, n)
            self.metrics.buffer_state(self.buffer.depth, self.buffer.nbytes)

    # ------------------------------------------------------------------ health
    def health_batch(self, ts_ns: int | None = None) -> SampleBatch:
        m = self.metrics
        vals = [self.buffer.depth, self.buffer.nbytes, m.samples_read, m.samples_sent, m.samples_dropped, 1.0, self.buffer.max_bytes,
                m.nodes_without_history_total]
        n = len(vals)
        return SampleBatch(self._health_table, np.arange(n, dtype=np.int32), np.full(n, ts_ns or time.time_ns(), np.int64),
                           np.asarray(vals, np.float64))

    async def _health(self) -> None:
        period = self.cfg.health.sample_interval_s
        while True:
            await asyncio.sleep(period)
            self.emit(self.health_batch())

    def status_line(self) -> str:
        m = self.metrics
        comps = ",".join(f"{k}:{'up' if v else 'down'}" for k, v in sorted(m.connected.items()))
        return (f"event=status read={m.samples_read} buffered={m.samples_buffered} sent={m.samples_sent} "
                f"dropped={m.samples_dropped} pending={sum(self._pending_read.values())} buffer_depth={self.buffer.depth} "
                f"buffer_bytes={self.buffer.nbytes} nodes_without_history={m.nodes_without_history_total} "
                f"malformed={m.malformed} reconnects={m.reconnects} send_failures={m.sink_failures} components={comps}")

    async def _status_log(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.health.status_log_interval_s)
            log.info(self.status_line())

    # ------------------------------------------------------------------ run
    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def run(self, install_signal_handlers: bool = False) -> None:
        self._flush_now = asyncio.Event()
        self._send_now = asyncio.Event()
        self._stop = asyncio.Event()
        if install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        h = self.cfg.health
        if h.metrics_port is not None:
            self.metrics_port = self.metrics.serve(h.metrics_host, h.metrics_port)
        log.info("event=gateway_start gateway=%s site=%s sources=%s sink=%s buffer=%s buffer_depth=%d metrics=%s",
                 self.gateway_id, self.site, ",".join(f"{s.type}:{s.name}" for s in self.sources), self.sink.name,
                 self.buffer.path, self.buffer.depth,
                 f"http://{h.metrics_host}:{self.metrics_port}/metrics" if self.metrics_port is not None else "off")
        await self.sink.start()
        for feed in self.live:
            await feed.sink.start()
        core = [asyncio.create_task(self._flusher(), name="flusher"), asyncio.create_task(self._sender(), name="sender"),
                asyncio.create_task(self._status_log(), name="status")]
        core += [asyncio.create_task(feed.run(), name=f"live:{feed.name}") for feed in self.live]
        if h.sample_interval_s:
            core.append(asyncio.create_task(self._health(), name="health"))
        srcs = [asyncio.create_task(s.run(self.emitter(s.name)), name=f"source:{s.name}") for s in self.sources]
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([stop_wait, *core, *srcs], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not stop_wait and t.exception():
                    log.error("event=gateway_task_failed task=%s error=%r", t.get_name(), t.exception())
                    raise t.exception()
        finally:
            for t in srcs:
                t.cancel()
            await asyncio.gather(*srcs, return_exceptions=True)
            core[0].cancel()
            await asyncio.gather(core[0], return_exceptions=True)
            await self.flush()  # nothing read is left in memory
            try:  # give the sender a moment to drain, then stop
                deadline = time.monotonic() + 5
                while self.buffer.depth and time.monotonic() < deadline and not core[1].done():
                    await asyncio.sleep(0.1)
            finally:
                for t in core:
                    t.cancel()
                stop_wait.cancel()
                await asyncio.gather(*core, stop_wait, return_exceptions=True)
                await self.sink.close()
                for feed in self.live:
                    await feed.sink.close()
                log.info("event=gateway_stop " + self.status_line().removeprefix("event=status "))
                await asyncio.to_thread(self.buffer.close)
