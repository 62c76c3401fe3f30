"""One retry policy for every client: exponential backoff with full jitter, a cap, and Retry-After.

The n-th retry (``attempt`` = 0, 1, 2, ...) waits a time drawn uniformly from
``[min_s, min(max_s, min_s * 2**attempt)]``: the ceiling doubles with each failure up to the cap,
and the jitter spreads the clients that lost the same server at the same moment, so they do not
come back in step (the "full jitter" of the AWS Architecture Blog's *Exponential Backoff And
Jitter*, with ``min_s`` as a floor so no client hammers a server that is restarting). A server
that says how long to wait (HTTP ``Retry-After``, in seconds or as an HTTP date) is obeyed, up
to the cap.

Who retries, in exactly one layer per call path:

- :class:`plantmrv.influx.InfluxClient` retries connection errors, 429 and 5xx ``max_retries``
  times per call (analytics, API, CLI tools, the gateway's direct sink with its default 0).
- ingest's :class:`~plantmrv.ingest.writer.ResilientWriter` waits out InfluxDB outages for as
  long as they last; it calls the client with ``retry=False``.
- the gateway's agent retries a sink's send while the buffer holds the data; the sinks
  themselves do not retry.
- every gateway source (OPC UA, MQTT, Modbus, Sparkplug) reconnects in its own run loop, and a
  live sink (the Sparkplug edge node) retries its own sends.
- paho's network thread (ingest, the gateway's MQTT sink) reconnects to the broker on its own
  schedule, doubling from ``min_s`` to ``max_s`` without jitter (``reconnect_delay_set``): paho
  offers no hook for the wait itself.
"""

from __future__ import annotations

import email.utils
import random
import time

__all__ = ["backoff_delay", "parse_retry_after"]

_MAX_DOUBLINGS = 60  # 2**60 * any sensible min_s is past every cap


def backoff_delay(attempt: int, min_s: float, max_s: float, retry_after: str | float | None = None,
                  *, now_s: float | None = None, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry); see the module doc."""
    if retry_after is not None:
        told = parse_retry_after(retry_after, now_s)
        if told is not None:
            return min(told, max_s)
    lo = min(min_s, max_s)
    hi = max(lo, min(max_s, min_s * 2.0 ** min(max(attempt, 0), _MAX_DOUBLINGS)))
    return (rng or random).uniform(lo, hi)


def parse_retry_after(value: str | float | None, now_s: float | None = None) -> float | None:
    """A ``Retry-After`` value as seconds from ``now_s`` (default: now); None when absent or unreadable.

    RFC 9110 section 10.2.3: either a number of seconds or an HTTP date. A date in the past
    means "now" (0 s).
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return max(float(value), 0.0)
    text = value.strip()
    if not text:
        return None
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now_s is None else now_s), 0.0)

