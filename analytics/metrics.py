"""Prometheus metrics, liveness and readiness of ``plantmrv analytics run``.

The engine reports what it does through :class:`AnalyticsMetrics`; ``plantmrv analytics run``
serves them with ``/healthz`` and ``/readyz`` (:mod:`plantmrv.ops`) on ``analytics.metrics``.
Calls the engine makes:

- ``watermark(project_id, watermark_ns, lag_s)`` after each poll, per project: how far event
  time has closed, and how far that is behind the wall clock;
- ``intervals_written(project_id, interval_label, provisional, n)`` for every write of results;
- ``poll_ok()`` / ``poll_failed()`` once per poll: readiness (the last poll worked) and the
  heartbeat that ``/healthz`` and systemd's watchdog watch.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge

from plantmrv.ops import Health, OpsServer, new_registry

NS = 1_000_000_000


class AnalyticsMetrics:
    def __init__(self, stall_after_s: float = 600.0) -> None:
        r = self.registry = new_registry("analytics")
        self.health = Health(stall_after_s=stall_after_s)
        self.health.add_check("poll", self._poll_ready)
        p = "plantmrv_analytics_"
        self._watermark = Gauge(p + "watermark_seconds", "Event time up to which the project's intervals are closed (Unix time)",
                                ["project"], registry=r)
        self._lag = Gauge(p + "watermark_lag_seconds", "Wall-clock time minus the project's watermark", ["project"], registry=r)
        self._intervals = Counter(p + "intervals_written", "MRV result intervals written to InfluxDB",
                                  ["project", "interval", "provisional"], registry=r)
        self._polls = Counter(p + "polls", "Engine polls, by result", ["result"], registry=r)
        self._last_ok = Gauge(p + "last_poll_success_timestamp_seconds", "Unix time of the last poll that worked", registry=r)
        for result in ("ok", "failed"):
            self._polls.labels(result)
        self.last_poll_ok: bool | None = None  # None: no poll finished yet
        self.server: OpsServer | None = None

    # ---------------------------------------------------------------- what the engine calls
    def watermark(self, project_id: str, watermark_ns: int, lag_s: float) -> None:
        self._watermark.labels(project_id).set(watermark_ns / NS)
        self._lag.labels(project_id).set(lag_s)

    def intervals_written(self, project_id: str, interval_label: str, provisional: bool, n: int) -> None:
        self._intervals.labels(project_id, interval_label, "true" if provisional else "false").inc(n)

    def poll_ok(self) -> None:
        self.last_poll_ok = True
        self._polls.labels("ok").inc()
        self._last_ok.set(time.time())
        self.health.beat()

    def poll_failed(self) -> None:
        self.last_poll_ok = False
        self._polls.labels("failed").inc()
        self.health.beat()  # the loop runs; readiness says the poll did not work

    # ---------------------------------------------------------------- serving
    def _poll_ready(self) -> tuple[bool, str]:
        if self.last_poll_ok is None:
            return True, "no poll finished yet"
        return (True, "last poll worked") if self.last_poll_ok else (False, "last poll failed (see the log's event=mrv_poll_failed)")

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics, /healthz and /readyz in a thread; return the bound port."""
        self.server = OpsServer(self.registry, self.health)
        return self.server.start(host, port)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
