"""One log line per request, and the end of a broken stream made visible.

A pure ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which ends a stream cleanly
when the app fails half-way): it passes every message through, measures the whole response
(streamed exports included), and when the app raises after the response started it logs the
request with ``outcome=aborted`` and lets the exception reach the server, which closes the
connection without the chunked body's last chunk. A client then sees a broken transfer
(curl: exit 18), never a short file that looks complete.

Everything a caller controls is percent-encoded (no newline or ``key=value`` forging); query
parameters whose name looks like a credential (``token``, ``api_token``, ``key``, ``password``,
``secret``, ``auth``, ...) are logged as ``***``, and anything shaped like a plantmrv token is
masked wherever it appears (path, query, token name).
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import parse_qsl, quote

access_log = logging.getLogger("plantmrv.api.access")

CREDENTIAL_NAME = re.compile(r"(?i)(token|key|pass|pwd|secret|auth|credential|session|signature|^sig$|jwt|bearer|cookie)")
TOKEN_SHAPE = re.compile(r"pmrv_[A-Za-z0-9_\-]{4,}")


class StreamAborted(Exception):
    """A streamed response failed after it started; the server aborts the connection."""


def safe_text(text: str, limit: int = 120) -> str:
    """Caller-supplied text for a log line: token-shaped parts masked, percent-encoded."""
    return quote(TOKEN_SHAPE.sub("pmrv_***", str(text)[:limit]), safe="/:,._-+*@")


def safe_query(query_string: bytes | str) -> str:
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    parts = []
    for k, v in parse_qsl(query_string, keep_blank_values=True, errors="replace"):
        parts.append(f"{safe_text(k, 40)}={'***' if CREDENTIAL_NAME.search(k) else safe_text(v, 80)}")
    return "&".join(parts)


class AccessLog:
    """ASGI middleware writing ``event=request`` lines (see the module docstring)."""

    def __init__(self, app, enabled: bool = True):
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.enabled:
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status, sent, outcome = 500, 0, "ok"
        started = finished = False

        async def send_logged(message):
            nonlocal status, sent, started, finished
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
                finished = not message.get("more_body", False)
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except BaseException:
            outcome = "aborted" if started else "error"
            raise
        finally:
            if outcome == "ok" and not finished:
                outcome = "incomplete"
            who = (scope.get("state") or {}).get("principal")
            client = scope.get("client")
            access_log.info(
                "event=request who=%s role=%s method=%s path=%s query=%s status=%d bytes=%d duration_ms=%.1f outcome=%s client=%s",
                safe_text(who.name, 64) if who else "-", who.role if who else "-", safe_text(scope.get("method", ""), 10),
                safe_text(scope.get("path", ""), 200), safe_query(scope.get("query_string", b"")) or "-", status, sent,
                (time.perf_counter() - t0) * 1000, outcome, client[0] if client else "-",
            )


class QuietAbort(logging.Filter):
    """For uvicorn's error logger: an aborted stream is already logged in one line; drop the
    traceback uvicorn would add for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamAborted)
