"""Ingest's InfluxDB writer: a batch's line-protocol bodies POSTed until InfluxDB takes them.

Outages are waited out (the one retry layer of this path, :mod:`plantmrv.retry`; the messages
stay unacknowledged at the broker meanwhile); the lines InfluxDB refuses are isolated - named by
a partial write, or found by bisecting the body - and returned for the dead-letter store.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from plantmrv.batch import SampleBatch
from plantmrv.influx import InfluxClient, InfluxError, PartialWriteError
from plantmrv.ingest.metrics import IngestMetrics
from plantmrv.lineprotocol import MAX_LINES_PER_BODY, EncodedBodies, LineProtocolEncoder
from plantmrv.retry import backoff_delay

log = logging.getLogger("plantmrv.ingest")


class Stopping(Exception):
    """The service is stopping; the batch stays unacknowledged at the broker."""


@dataclass
class WriteOutcome:
    lines_written: int = 0
    rejected: list[tuple[np.ndarray, str]] = field(default_factory=list)  # (row indices, InfluxDB's reason)


class ResilientWriter:
    """Writes a batch through :class:`InfluxClient`: waits out outages, isolates refused lines."""

    def __init__(self, client: InfluxClient, metrics: IngestMetrics | None, retry_min_s: float, retry_max_s: float,
                 stop_event: threading.Event | None = None, give_up_after_s: float | None = None, max_lines: int | None = None,
                 pool: ThreadPoolExecutor | None = None):
        """``pool``: threads that POST the bodies of one batch in parallel (else one after another)."""
        self.client = client
        self.pool = pool
        self.metrics = metrics
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.stop_event = stop_event or threading.Event()
        self.give_up_after_s = give_up_after_s
        self.encoder = LineProtocolEncoder(max_lines=min(client.batch_lines, max_lines or MAX_LINES_PER_BODY))

    def encode(self, batch: SampleBatch) -> EncodedBodies:
        """Line protocol of ``batch`` (not thread-safe: one thread encodes, any thread may write)."""
        enc = self.encoder.encode(batch)  # routed by quality already (Processor)
        if enc.dropped_nonfinite:  # validation refuses these first; never silently drop one
            raise ValueError(f"{enc.dropped_nonfinite} non-finite values reached the writer")
        return enc

    def write(self, batch: SampleBatch, encoded: EncodedBodies | None = None) -> WriteOutcome:
        """Write every row of ``batch`` (``encoded``: its bodies, if already made) or report it refused.

        Raises :class:`Stopping` or InfluxError (give-up).
        """
        out = WriteOutcome()
        if not len(batch):
            return out
        enc = encoded if encoded is not None else self.encode(batch)
        rows = np.cumsum([0] + enc.line_counts[:-1]).tolist()
        if self.pool is None or len(enc.bodies) == 1:
            for body, n, row in zip(enc.bodies, enc.line_counts, rows):
                self._write_body(body, n, row, out)
            return out
        # a batch of several bodies (a backlog) keeps every connection busy, to its last body
        for part in self.pool.map(self._body_outcome, enc.bodies, enc.line_counts, rows):
            out.lines_written += part.lines_written
            out.rejected += part.rejected
        return out

    def _body_outcome(self, body: bytes, n: int, row: int) -> WriteOutcome:
        out = WriteOutcome()
        self._write_body(body, n, row, out)
        return out

    def _write_body(self, body: bytes, n: int, row: int, out: WriteOutcome) -> None:
        try:
            self._post(body, n)
            out.lines_written += n
        except PartialWriteError:
            # rare: go line by line (the body is split only now, to keep the common path cheap)
            lines = body.split(b"\n")[:-1]
            self._write_lines(lines, np.arange(row, row + n), out)

    def _post(self, body: bytes, lines: int) -> None:
        """POST one body until InfluxDB takes or refuses it: the one retry layer of ingest's writes
        (:mod:`plantmrv.retry`; the client is called without its own retries)."""
        started = time.monotonic()
        failures = 0
        while True:
            if self.stop_event.is_set():
                raise Stopping()
            t0 = time.perf_counter()
            try:
                self.client.write_body(body, retry=False)
            except PartialWriteError:
                raise
            except InfluxError as exc:
                if self.metrics:
                    self.metrics.influx_errors.labels(kind=str(exc.status or "unreachable")).inc()
                if self.give_up_after_s is not None and time.monotonic() - started > self.give_up_after_s:
                    raise
                delay = backoff_delay(failures, self.retry_min_s, self.retry_max_s, exc.retry_after)
                failures += 1
                log.warning("event=influx_write_failed status=%s retry_in_s=%.1f error=%s", exc.status, delay, str(exc)[:300])
                if self.stop_event.wait(delay):
                    raise Stopping() from None
                continue
            if failures:
                log.info("event=influx_write_resumed failed_attempts=%d down_s=%.1f", failures, time.monotonic() - started)
            if self.metrics:
                self.metrics.write_seconds.observe(time.perf_counter() - t0)
                self.metrics.batch_lines.observe(lines)
            return

    def _write_lines(self, lines: list[bytes], rows: np.ndarray, out: WriteOutcome) -> None:
        body = b"\n".join(lines) + b"\n"
        try:
            self._post(body, len(lines))
            out.lines_written += len(lines)
            return
        except PartialWriteError as exc:
            if self.metrics:
                self.metrics.influx_errors.labels(kind="partial_write").inc()
            reason = "influx_rejected: " + _influx_reason(str(exc))
            if exc.dropped is not None and exc.dropped >= len(lines):
                out.rejected.append((rows, reason))
                return
            named = [i for i in exc.rejected_lines if i < len(lines)]
            if named and (exc.dropped is None or len(named) == exc.dropped):
                mask = np.zeros(len(lines), dtype=bool)
                mask[named] = True
                out.rejected.append((rows[mask], reason))
                out.lines_written += len(lines) - len(named)
                return
            if len(lines) == 1:
                out.rejected.append((rows, reason))
                return
        # InfluxDB refused some lines without naming them: rewrite halves (idempotent) to find them
        mid = len(lines) // 2
        self._write_lines(lines[:mid], rows[:mid], out)
        self._write_lines(lines[mid:], rows[mid:], out)


def _influx_reason(text: str) -> str:
    """InfluxDB's refusal without the per-body counts, so refusals of one cause group together."""
    text = re.sub(r"^InfluxDB rejected \S+ of \d+ lines: ", "", text)
    return re.sub(r"\s*dropped=\d+\s*$", "", text)[:400]


def group_rejects(rejected: list[tuple[np.ndarray, str]]) -> list[tuple[np.ndarray, str]]:
    by_reason: dict[str, list[np.ndarray]] = {}
    for rows, reason in rejected:
        by_reason.setdefault(reason, []).append(rows)
    return [(np.concatenate(parts), reason) for reason, parts in by_reason.items()]
