"""The plausible time range of a sample: one bound for every input path, configurable.

A timestamp before 2000 (a PLC clock never set, 1938 from a signed overflow, 1970 from a zero)
or after 2100 is a fault of the source, not a reading to store. Ingest refuses such samples
(``ingest.validation``: dead letters with code ``timestamp_range``), device JSON refuses such
readings (``json_timestamp``) and the gateway drops them where sources emit, counted and logged
(``gateway``: dropped with reason ``timestamp_range``); each takes ``min_timestamp`` and
``max_timestamp`` from :class:`TimestampBoundsFields` with the same defaults.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator

from plantmrv.config import StrictModel

_UTC = dt.timezone.utc
DEFAULT_MIN_TIMESTAMP = dt.datetime(2000, 1, 1, tzinfo=_UTC)
DEFAULT_MAX_TIMESTAMP = dt.datetime(2100, 1, 1, tzinfo=_UTC)


def _ns(t: dt.datetime) -> int:
    t = t if t.tzinfo else t.replace(tzinfo=_UTC)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=_UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def iso(ts_ns: int) -> str:
    """``2000-01-01T00:00:00Z`` (fractions only when present); the raw number when out of range."""
    try:
        t = dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, _UTC).replace(microsecond=(ts_ns % 1_000_000_000) // 1000)
    except (OverflowError, OSError, ValueError):
        return f"{ts_ns} ns"
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if t.microsecond else "%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TimeBounds:
    """``min_ns <= ts_ns < max_ns`` (Unix ns, UTC)."""

    min_ns: int = _ns(DEFAULT_MIN_TIMESTAMP)
    max_ns: int = _ns(DEFAULT_MAX_TIMESTAMP)

    def outside(self, ts_ns: np.ndarray) -> np.ndarray:
        """Mask of the timestamps outside the bounds."""
        return (ts_ns < self.min_ns) | (ts_ns >= self.max_ns)

    def contains(self, ts_ns: int | float) -> bool:
        return self.min_ns <= ts_ns < self.max_ns

    def describe(self) -> str:
        return f"{iso(self.min_ns)}..{iso(self.max_ns)}"


DEFAULT_BOUNDS = TimeBounds()


class TimestampBoundsFields(StrictModel):
    """``min_timestamp`` / ``max_timestamp``, shared by every section that takes samples in."""

    min_timestamp: dt.datetime = Field(
        DEFAULT_MIN_TIMESTAMP, description="Samples stamped before this (UTC unless an offset is given) are refused as a source fault."
    )
    max_timestamp: dt.datetime = Field(DEFAULT_MAX_TIMESTAMP, description="Samples stamped at or after this are refused as a source fault.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.bounds().min_ns >= self.bounds().max_ns:
            raise ValueError("min_timestamp must be before max_timestamp")
        return self

    def bounds(self) -> TimeBounds:
        return TimeBounds(_ns(self.min_timestamp), _ns(self.max_timestamp))
