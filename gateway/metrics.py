"""Gateway self-metrics: Prometheus counters/gauges on a private registry plus plain totals.

The plain totals feed the one-line status log and the ``gateway`` health measurement
(``buffer_depth``, ``buffer_bytes``, ``samples_read``, ``samples_sent``, ``samples_dropped``,
``online``, ``buffer_max_bytes``, ``nodes_without_history``) sent through the sink like any other batch. :meth:`GatewayMetrics.serve` serves
``/metrics``, ``/healthz`` and ``/readyz`` (:mod:`plantmrv.ops`): ready while the sink is
connected and the durable buffer is below 90% of its cap; ``/readyz`` also names the tags whose
server keeps no history.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

from plantmrv.ops import Health, OpsServer, new_registry

BUFFER_READY_FRACTION = 0.9  # past this share of buffer.max_mb the gateway is about to drop data: not ready


class GatewayMetrics:
    def __init__(self, buffer_cap_bytes: int | None = None) -> None:
        self.registry = r = new_registry("gateway")
        self.health = Health(stall_after_s=60.0)
        self.health.add_check("sink", self._sink_ready)
        self.health.add_check("buffer", self._buffer_ready)
        self.health.add_check("history", self._history_detail)
        self.buffer_cap_bytes = buffer_cap_bytes
        self.server: OpsServer | None = None
        p = "plantmrv_gateway_"
        self._read = Counter(p + "samples_read", "Samples read from sources and stored durably (counted once fsync'ed)", ["source"], registry=r)
        self._buffered = Counter(p + "samples_buffered", "Samples stored (fsync'ed) in the durable buffer", registry=r)
        self._sent = Counter(p + "samples_sent", "Samples confirmed by the sink (PUBACK / HTTP 204)", ["sink"], registry=r)
        self._dropped = Counter(p + "samples_dropped", "Samples dropped (buffer full, rejected by InfluxDB)", ["reason"], registry=r)
        self._errors = Counter(p + "source_errors", "Source errors by kind (connection, malformed_payload, ...)", ["source", "kind"], registry=r)
        self._reconnects = Counter(p + "reconnects", "Reconnect attempts", ["component"], registry=r)
        self._sink_errors = Counter(p + "sink_errors", "Failed sends (kept in the buffer, retried)", ["sink"], registry=r)
        self._backfilled = Counter(p + "samples_backfilled", "Samples read with HistoryRead after an outage", ["source"], registry=r)
        self._republished = Counter(p + "notifications_republished", "OPC UA NotificationMessages asked for again (Republish) "
                                    "after a gap or a restart and stored", ["source"], registry=r)
        self._no_history = Gauge(p + "nodes_without_history", "Tags whose server keeps no history (no HistoryRead): an outage "
                                 "leaves a permanent gap there", ["source"], registry=r)
        self._node_no_history = Gauge(p + "node_without_history", "1 for each tag whose server keeps no history (NodeId or browse "
                                      "path, series)", ["source", "node", "series"], registry=r)
        self.without_history: dict[str, dict[str, str]] = {}  # source -> {node: series}
        self._pending = Gauge(p + "samples_pending", "Samples received from sources and not yet durable (in memory, "
                              "unacknowledged upstream: what a kill -9 would leave to the source to send again)", registry=r)
        self._durable_delay = Histogram(p + "durability_delay_seconds", "Per stored batch, how long its oldest sample waited in "
                                        "memory from receipt to fsync (the durability window)",
                                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5), registry=r)
        self.depth = Gauge(p + "buffer_depth_samples", "Samples waiting in the durable buffer", registry=r)
        self.bytes = Gauge(p + "buffer_bytes", "Bytes of encoded batches in the durable buffer", registry=r)
        self._connected = Gauge(p + "connected", "1 when the component is connected", ["component"], registry=r)
        self._last_ok = Gauge(p + "last_success_timestamp_seconds", "Unix time of the last successful read/send", ["component"], registry=r)
        self._refused = Counter(p + "sink_refused", "Messages the broker refused (MQTT 5 PUBACK >= 0x80, e.g. its ACL), kept in the buffer",
                                ["sink"], registry=r)
        self._nodes_bad = Gauge(p + "nodes_bad", "Tags that cannot be read or subscribed now, by status", ["source", "status"], registry=r)
        self._node_bad = Gauge(p + "node_bad", "1 for each tag that cannot be read or subscribed now (NodeId or browse path, series, status, phase: browse, subscribe, data)",
                               ["source", "node", "series", "status", "phase"], registry=r)
        self._live_sent = Counter(p + "live_samples_published", "Samples a live sink (e.g. Sparkplug) published, best effort",
                                  ["sink"], registry=r)
        self._live_dropped = Counter(p + "live_samples_dropped", "Samples a live sink did not publish (backlog full while it was "
                                     "offline, a value its datatype cannot carry, a series without a name); the durable sink "
                                     "still has them", ["sink", "reason"], registry=r)
        self._node_failures = Counter(p + "node_failures", "Times a tag started failing, by status", ["source", "status"], registry=r)
        self.samples_read = 0
        self.samples_sent = 0
        self.samples_dropped = 0
        self.samples_buffered = 0
        self.malformed = 0
        self.reconnects = 0
        self.sink_failures = 0
        self.connected: dict[str, bool] = {}
        self.buffer_bytes = 0

    # sources
    def source_read(self, source: str, n: int) -> None:
        self.samples_read += n
        self._read.labels(source).inc(n)
        self._last_ok.labels(f"source:{source}").set(time.time())

    def source_error(self, source: str, kind: str, n: int = 1) -> None:
        if kind == "malformed_payload":
            self.malformed += n
        self._errors.labels(source, kind).inc(n)

    def source_reconnect(self, source: str) -> None:
        self.reconnects += 1
        self._reconnects.labels(f"source:{source}").inc()

    def source_connected(self, source: str, up: bool) -> None:
        self.connected[f"source:{source}"] = up
        self._connected.labels(f"source:{source}").set(1 if up else 0)

    def source_backfilled(self, source: str, n: int) -> None:
        self._backfilled.labels(source).inc(n)

    def node_failing(self, source: str, node: str, series: str, status: str, phase: str, previous: tuple[str, str] | None) -> None:
        """A tag fails with ``status`` (``previous``: the (status, phase) it failed with until now, if any)."""
        if previous is not None:
            self.node_recovered(source, node, series, *previous)
        else:
            self._node_failures.labels(source, status).inc()
        self._nodes_bad.labels(source, status).inc()
        self._node_bad.labels(source, node, series, status, phase).set(1)

    def node_recovered(self, source: str, node: str, series: str, status: str, phase: str) -> None:
        self._nodes_bad.labels(source, status).dec()
        try:
            self._node_bad.remove(source, node, series, status, phase)
        except KeyError:
            pass

    def source_republished(self, source: str, n: int) -> None:
        self._republished.labels(source).inc(n)

    @property
    def nodes_without_history_total(self) -> int:
        return sum(len(v) for v in self.without_history.values())

    def nodes_without_history(self, source: str, nodes: dict[str, str]) -> None:
        """The tags of ``source`` whose server keeps no history, now: {node: series}."""
        for node, series in self.without_history.get(source, {}).items():
            if node not in nodes:
                self._node_no_history.remove(source, node, series)
        for node, series in nodes.items():
            self._node_no_history.labels(source, node, series).set(1)
        self._no_history.labels(source).set(len(nodes))
        self.without_history[source] = dict(nodes)

    # buffer
    def pending(self, n: int) -> None:
        self._pending.set(n)

    def durable_after(self, seconds: float) -> None:
        self._durable_delay.observe(seconds)

    def buffered(self, n: int) -> None:
        self.samples_buffered += n
        self._buffered.inc(n)

    def dropped(self, reason: str, n: int) -> None:
        self.samples_dropped += n
        self._dropped.labels(reason).inc(n)

    def buffer_state(self, depth: int, nbytes: int) -> None:
        self.depth.set(depth)
        self.bytes.set(nbytes)
        self.buffer_bytes = nbytes

    # sink
    def sent(self, sink: str, n: int) -> None:
        self.samples_sent += n
        self._sent.labels(sink).inc(n)
        self._last_ok.labels(f"sink:{sink}").set(time.time())

    def sink_failed(self, sink: str) -> None:
        self.sink_failures += 1
        self._sink_errors.labels(sink).inc()

    def sink_connected(self, sink: str, up: bool) -> None:
        self.connected[f"sink:{sink}"] = up
        self._connected.labels(f"sink:{sink}").set(1 if up else 0)

    def sink_refused(self, sink: str, n: int) -> None:
        self._refused.labels(sink).inc(n)

    def sink_reconnect(self, sink: str) -> None:
        self.reconnects += 1
        self._reconnects.labels(f"sink:{sink}").inc()

    # live sinks (best effort beside the durable sink: not part of readiness)
    def live_connected(self, sink: str, up: bool) -> None:
        self.connected[f"live:{sink}"] = up
        self._connected.labels(f"live:{sink}").set(1 if up else 0)

    def live_sent(self, sink: str, n: int) -> None:
        self._live_sent.labels(sink).inc(n)
        self._last_ok.labels(f"live:{sink}").set(time.time())

    def live_dropped(self, sink: str, reason: str, n: int) -> None:
        self._live_dropped.labels(sink, reason).inc(n)

    # readiness
    def _sink_ready(self) -> tuple[bool, str]:
        sinks = {k: v for k, v in self.connected.items() if k.startswith("sink:")}
        if not sinks:
            return False, "sink not connected yet"
        down = [k for k, up in sinks.items() if not up]
        return (False, f"{', '.join(down)} disconnected") if down else (True, "connected")

    def _history_detail(self) -> tuple[bool, str]:
        """Always ready: names the tags whose server keeps no history (a gateway outage is a permanent gap there)."""
        if not self.nodes_without_history_total:
            return True, "every tag's server keeps history (or none was checked yet)"
        parts = []
        for source, nodes in sorted(self.without_history.items()):
            if nodes:
                names = list(nodes)
                parts.append(f"{source}: {len(names)} tags without history ({', '.join(names[:10])}"
                             + (f", and {len(names) - 10} more" if len(names) > 10 else "") + ")")
        return True, "; ".join(parts) + ": an outage beyond the server's queues is a permanent gap there"

    def _buffer_ready(self) -> tuple[bool, str]:
        if not self.buffer_cap_bytes:
            return True, f"{self.buffer_bytes} bytes"
        share = self.buffer_bytes / self.buffer_cap_bytes
        detail = f"{self.buffer_bytes} of {self.buffer_cap_bytes} bytes ({share:.0%})"
        return share < BUFFER_READY_FRACTION, detail

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics, /healthz and /readyz in a thread; return the bound port."""
        self.server = OpsServer(self.registry, self.health)
        return self.server.start(host, port)
