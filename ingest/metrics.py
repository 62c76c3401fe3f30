"""Prometheus metrics of the ingest service (one registry per service instance).

:meth:`IngestMetrics.serve` serves ``/metrics``, ``/healthz`` and ``/readyz`` (:mod:`plantmrv.ops`);
the service registers its readiness checks (broker, InfluxDB, in-flight memory) on ``health``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from plantmrv.ops import Health, OpsServer, new_registry


class IngestMetrics:
    def __init__(self) -> None:
        r = self.registry = new_registry("ingest")
        self.health = Health(stall_after_s=60.0)
        p = "plantmrv_ingest_"
        self.messages_in = Counter(p + "messages", "MQTT messages received", ["kind"], registry=r)
        self.bytes_in = Counter(p + "received_bytes", "Payload bytes received", registry=r)
        self.points_written = Counter(p + "points_written", "Lines InfluxDB confirmed", registry=r)
        self.samples_rejected = Counter(p + "rejected_samples", "Samples dead-lettered, by reason code", ["reason"], registry=r)
        self.messages_rejected = Counter(
            p + "rejected_messages", "Dead-letter rows written (whole or partial messages), by reason code", ["reason"], registry=r
        )
        self.messages_acked = Counter(p + "messages_acked", "MQTT messages acknowledged after their points were stored", registry=r)
        self.write_seconds = Histogram(
            p + "write_seconds", "Latency of one InfluxDB /write body, retries included",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )
        self.batch_lines = Histogram(
            p + "batch_lines", "Lines per InfluxDB write", buckets=(1, 10, 100, 500, 1000, 2500, 5000), registry=r
        )
        self.influx_errors = Counter(p + "influx_errors", "Failed InfluxDB writes (batch kept, retried)", ["kind"], registry=r)
        self.lag_seconds = Gauge(p + "lag_seconds", "Receipt-to-acknowledge time of the last written batch's oldest message", registry=r)
        self.data_age_seconds = Gauge(p + "data_age_seconds", "Age of the newest sample in the last written batch", registry=r)
        self.inflight_messages = Gauge(p + "inflight_messages", "Messages received but not yet acknowledged", registry=r)
        self.inflight_bytes = Gauge(p + "inflight_bytes", "Payload bytes received but not yet acknowledged", registry=r)
        self.connected = Gauge(p + "broker_connected", "1 while connected to the broker", registry=r)
        gw = ["site", "gateway"]
        self.messages_missing = Counter(p + "messages_missing", "Gateway messages never received: gaps in the gateway's sequence",
                                        gw, registry=r)
        self.messages_late = Counter(p + "messages_late", "Gateway messages received after a gap counted them missing", gw, registry=r)
        self.messages_repeated = Counter(p + "messages_repeated", "Gateway messages received again (resent: by the gateway; "
                                         "redelivered: by the broker, MQTT DUP)", gw + ["cause"], registry=r)
        self.messages_unsequenced = Counter(p + "messages_unsequenced", "Gateway messages without epoch and seq (older gateways)",
                                            gw, registry=r)
        self.sequence_high = Gauge(p + "sequence_high", "Highest message sequence number received per gateway (this epoch)", gw, registry=r)
        self.server: OpsServer | None = None
        self.port: int | None = None

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics, /healthz and /readyz in a thread; returns the bound port."""
        self.server = OpsServer(self.registry, self.health)
        self.port = self.server.start(host, port)
        return self.port

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def value(self, name: str, **labels) -> float:
        """Current value of a sample (for tests and the status log)."""
        v = self.registry.get_sample_value(name, labels or None)
        return v or 0.0
