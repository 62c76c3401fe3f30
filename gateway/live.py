"""Live sinks: outputs fed with every batch as it is stored, best effort, beside the durable sink.

``gateway.sink`` is the durable path: a stored batch leaves the buffer only once that sink
confirmed it (PUBACK, HTTP 204). Some outputs cannot confirm anything: a Sparkplug B edge node
publishes its DATA at QoS 0, as the specification requires. Such an output is a *live sink*
(``gateway.live_sinks``): the agent hands it the very blobs it has just stored, through a
:class:`LiveFeed`, and the durable path never waits for it.

A :class:`LiveFeed` keeps the blobs the sink has not taken yet in memory, at most
``backlog_max_samples`` samples (the oldest go first, counted as
``plantmrv_gateway_live_samples_dropped_total{reason="backlog_full"}`` and logged once per
outage); it offers them only while the sink says it is ``ready()`` (connected, and for Sparkplug
its primary host online), retries a failed send with backoff, and never raises: a live sink that
fails costs its own output and nothing else.

A live sink has the shape of a sink: ``name``, ``start()``, ``ready()``, ``send(blobs)`` (return,
or raise and get the same blobs again), ``close()``; it counts what it published itself
(``GatewayMetrics.live_sent``): what goes out is its own choice (report by exception).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from plantmrv.retry import backoff_delay

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.live")

SEND_MAX_BLOBS = 16  # blobs per send call: a backlog goes out in pieces the sink can publish quickly
READY_POLL_S = 0.2


class LiveFeed:
    def __init__(self, sink: Any, backlog_max_samples: int, metrics: "GatewayMetrics", retry_min_s: float, retry_max_s: float):
        self.sink = sink
        self.name = sink.name
        self.max_samples = backlog_max_samples
        self.metrics = metrics
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._queue: deque[tuple[bytes, int]] = deque()
        self._samples = 0
        self._dropping = False
        self._wake = asyncio.Event()

    @property
    def backlog(self) -> int:
        """Samples waiting for the sink."""
        return self._samples

    def offer(self, blob: bytes, n_samples: int) -> None:
        """Called in the event loop with each blob the agent stored."""
        self._queue.append((blob, n_samples))
        self._samples += n_samples
        self._trim()
        self._wake.set()

    def _trim(self) -> None:
        dropped = 0
        while self._samples > self.max_samples and len(self._queue) > 1:
            _blob, n = self._queue.popleft()
            self._samples -= n
            dropped += n
        if dropped:
            self.metrics.live_dropped(self.name, "backlog_full", dropped)
            if not self._dropping:
                log.warning("event=live_sink_backlog_full sink=%s dropped_samples=%d backlog_max_samples=%d (the durable sink "
                            "still has them; this output resumes with what is newest)", self.name, dropped, self.max_samples)
            self._dropping = True

    async def run(self) -> None:
        attempt = 0
        last_error_log = 0.0
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not self.sink.ready():
                await asyncio.sleep(READY_POLL_S)
                continue
            take = [self._queue.popleft() for _ in range(min(SEND_MAX_BLOBS, len(self._queue)))]
            n = sum(k for _b, k in take)
            self._samples -= n
            try:
                await self.sink.send([b for b, _k in take])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - this output only: keep the blobs, retry
                self._queue.extendleft(reversed(take))
                self._samples += n
                self._trim()
                delay = backoff_delay(attempt, self.retry_min_s, self.retry_max_s)
                attempt += 1
                if time.monotonic() - last_error_log > 30 or attempt == 1:
                    last_error_log = time.monotonic()
                    log.warning("event=live_sink_send_failed sink=%s attempt=%d retry_in_s=%.1f backlog=%d error=%s: %s",
                                self.name, attempt, delay, self._samples, type(exc).__name__, str(exc)[:300])
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._dropping = False
