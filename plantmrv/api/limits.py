"""Fair use of the API: a per-token concurrency limit, a bounded pool of threads for InfluxDB
work, and deadlines.

Endpoints that read InfluxDB take a slot of their token first (``429 Too Many Requests`` with
``Retry-After`` when the token has ``per_token_concurrency`` in flight) and then do their
blocking work on a pool of ``workers`` threads of their own. Everything else (token checks,
project lists, health) runs on the event loop or on a separate small pool, so a stalled
InfluxDB or one busy token never delays another caller's ``/projects``. A streamed export keeps
its slot until its last byte, and reads InfluxDB on the same pool one piece at a time, so a slow
reader holds no thread while it reads.
"""

from __future__ import annotations

import logging
import time
from typing import AsyncIterator, Callable, Iterator, TypeVar

import anyio
import anyio.to_thread
from fastapi import HTTPException

from plantmrv.api.accesslog import StreamAborted
from plantmrv.api.config import ApiLimits
from plantmrv.api.tokens import Principal

log = logging.getLogger("plantmrv.api")
T = TypeVar("T")
_END = object()


class RequestTimeout(Exception):
    """A request spent longer than ``request_timeout_s`` reading InfluxDB (HTTP 504)."""


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise RequestTimeout(f"the request read InfluxDB for longer than {self.seconds:g} s (api.limits.request_timeout_s): ask for a shorter range")


class Slot:
    def __init__(self, limits: "Limits", key: tuple):
        self._limits, self._key, self._held = limits, key, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limits._release(self._key)


class Limits:
    """Slots per token and the worker pools; used from the event loop only."""

    def __init__(self, cfg: ApiLimits):
        self.cfg = cfg
        self._in_flight: dict[tuple, int] = {}
        self._workers: anyio.CapacityLimiter | None = None
        self._aux: anyio.CapacityLimiter | None = None

    def in_flight(self, who: Principal) -> int:
        return self._in_flight.get(who.key, 0)

    def acquire(self, who: Principal) -> Slot:
        n = self._in_flight.get(who.key, 0)
        if n >= self.cfg.per_token_concurrency:
            raise HTTPException(
                status_code=429,
                detail=f"this token already has {n} requests in flight (api.limits.per_token_concurrency): retry later",
                headers={"Retry-After": str(self.cfg.retry_after_s)},
            )
        self._in_flight[who.key] = n + 1
        return Slot(self, who.key)

    def _release(self, key: tuple) -> None:
        n = self._in_flight.get(key, 1) - 1
        if n:
            self._in_flight[key] = n
        else:
            self._in_flight.pop(key, None)

    def _pool(self) -> anyio.CapacityLimiter:
        if self._workers is None:
            self._workers = anyio.CapacityLimiter(self.cfg.workers)
        return self._workers

    def _aux_pool(self) -> anyio.CapacityLimiter:
        if self._aux is None:
            self._aux = anyio.CapacityLimiter(4)
        return self._aux

    async def run(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` on a worker thread (InfluxDB work)."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._pool())

    async def run_aux(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` on the small pool of the token store and the health ping."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._aux_pool())

    async def stream(self, chunks: Iterator[bytes], slot: Slot, what: str) -> AsyncIterator[bytes]:
        """Yield ``chunks`` (a blocking iterator), each piece read on a worker thread; release
        ``slot`` at the end. A failure becomes :class:`StreamAborted`, logged in one line."""
        sent = 0
        try:
            while True:
                chunk = await anyio.to_thread.run_sync(next, chunks, _END, limiter=self._pool())
                if chunk is _END:
                    return
                sent += len(chunk)
                yield chunk
        except Exception as exc:
            log.error("event=stream_aborted what=%s bytes=%d error=%s", what, sent, f"{exc.__class__.__name__}: {exc}"[:300].replace("\n", " "))
            raise StreamAborted(f"{what}: {exc.__class__.__name__}") from exc
        finally:
            slot.release()
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
