"""The columnar sample batch: everything between a source and InfluxDB moves as one of these.

A batch is a small *series table* (measurement + tags + field, one row per distinct series)
and four equal-length columns: ``series`` (int32 index into the table), ``ts_ns`` (int64 Unix
nanoseconds, UTC), ``value`` (float64) and ``quality`` (uint8, see :class:`Quality`), plus an
optional fifth, ``status`` (uint32: the source's own status code, e.g. the OPC UA StatusCode
``0x808C0000`` BadSensorFailure), present when a source had codes to keep; ``None`` means "no
codes" (every status implied by its quality).
Columns, not per-sample objects, so the buffer, the wire format and the line-protocol encoder
are all vectorized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterable, Mapping, Sequence

import numpy as np


class Quality(IntEnum):
    """Sample quality, mapped from OPC UA status codes (the top two bits of the code)."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


def quality_from_status_code(code: int | np.ndarray) -> np.ndarray:
    """Map OPC UA StatusCode values to :class:`Quality` (OPC UA Part 4, 7.39: severity bits 30-31)."""
    severity = (np.asarray(code, dtype=np.uint64) >> np.uint64(30)) & np.uint64(0b11)
    return np.where(severity == 0, Quality.GOOD, np.where(severity == 1, Quality.UNCERTAIN, Quality.BAD)).astype(
        np.uint8
    )


@dataclass(frozen=True, order=True)
class Series:
    """One time series: InfluxDB measurement, tag set (sorted key/value pairs) and field key."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    field: str

    @classmethod
    def of(cls, measurement: str, field: str, /, **tags: str) -> "Series":
        return cls(measurement, tuple(sorted((k, str(v)) for k, v in tags.items())), field)

    @property
    def tag_dict(self) -> dict[str, str]:
        return dict(self.tags)

    def key(self) -> str:
        """A readable identity, e.g. ``pump,asset=P1,site=danang flow_m3_per_h``."""
        tags = ",".join(f"{k}={v}" for k, v in self.tags)
        return f"{self.measurement}{',' if tags else ''}{tags} {self.field}"


@dataclass
class SampleBatch:
    """A columnar batch of samples. ``series[i]`` indexes ``table``."""

    table: list[Series]
    series: np.ndarray  # int32
    ts_ns: np.ndarray  # int64
    value: np.ndarray  # float64
    quality: np.ndarray = field(default=None)  # uint8
    status: np.ndarray | None = field(default=None)  # uint32, or None: no source status codes

    def __post_init__(self) -> None:
        self.series = np.ascontiguousarray(self.series, dtype=np.int32)
        self.ts_ns = np.ascontiguousarray(self.ts_ns, dtype=np.int64)
        self.value = np.ascontiguousarray(self.value, dtype=np.float64)
        if self.quality is None:
            self.quality = np.zeros(len(self.series), dtype=np.uint8)
        self.quality = np.ascontiguousarray(self.quality, dtype=np.uint8)
        if self.status is not None:
            self.status = np.ascontiguousarray(self.status, dtype=np.uint32)
        n = len(self.series)
        if not (len(self.ts_ns) == len(self.value) == len(self.quality) == n) or (
            self.status is not None and len(self.status) != n
        ):
            raise ValueError(
                f"batch columns differ in length: series={n} ts_ns={len(self.ts_ns)} "
                f"value={len(self.value)} quality={len(self.quality)}"
                + (f" status={len(self.status)}" if self.status is not None else "")
            )
        if n and (self.series.min() < 0 or self.series.max() >= len(self.table)):
            raise ValueError(f"batch series index out of range 0..{len(self.table) - 1}")

    def __len__(self) -> int:
        return len(self.series)

    @classmethod
    def empty(cls) -> "SampleBatch":
        return cls([], np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64))

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[Series, tuple[Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]],
    ) -> "SampleBatch":
        """Build a batch from ``{series: (ts_ns, values)}`` (all quality GOOD)."""
        table = list(columns)
        parts_s, parts_t, parts_v = [], [], []
        for i, s in enumerate(table):
            ts, vals = columns[s]
            ts = np.asarray(ts, dtype=np.int64)
            parts_s.append(np.full(len(ts), i, dtype=np.int32))
            parts_t.append(ts)
            parts_v.append(np.asarray(vals, dtype=np.float64))
        if not table:
            return cls.empty()
        return cls(table, np.concatenate(parts_s), np.concatenate(parts_t), np.concatenate(parts_v))

    @classmethod
    def concat(cls, batches: Iterable["SampleBatch"]) -> "SampleBatch":
        """Concatenate batches, merging their series tables."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return cls.empty()
        if len(batches) == 1:
            return batches[0]
        columns = [np.concatenate([getattr(b, name) for b in batches]) for name in ("ts_ns", "value", "quality")]
        columns.append(concat_status(batches))
        table = batches[0].table
        if all(b.table is table for b in batches):  # one gateway's messages share their decoded table
            return cls(table, np.concatenate([b.series for b in batches]), *columns)
        index: dict[Series, int] = {}
        series_parts = []
        for b in batches:
            remap = np.array([index.setdefault(s, len(index)) for s in b.table], dtype=np.int32)
            series_parts.append(remap[b.series])
        return cls(list(index), np.concatenate(series_parts), *columns)

    def take(self, idx: np.ndarray | slice) -> "SampleBatch":
        """Rows ``idx`` of this batch (series table shared, not compacted)."""
        return SampleBatch(self.table, self.series[idx], self.ts_ns[idx], self.value[idx], self.quality[idx],
                           None if self.status is None else self.status[idx])

    def compact(self) -> "SampleBatch":
        """Drop series-table rows that no sample references."""
        used, inverse = np.unique(self.series, return_inverse=True)
        return SampleBatch([self.table[i] for i in used], inverse.astype(np.int32), self.ts_ns, self.value, self.quality, self.status)

    def split(self, max_rows: int) -> list["SampleBatch"]:
        return [self.take(slice(i, i + max_rows)) for i in range(0, len(self), max_rows)]


def concat_status(batches: Iterable[SampleBatch]) -> np.ndarray | None:
    """The ``status`` column of ``batches`` concatenated: None when none has codes, else zeros
    (no code) for the batches without."""
    batches = list(batches)
    if all(b.status is None for b in batches):
        return None
    return np.concatenate([b.status if b.status is not None else np.zeros(len(b), np.uint32) for b in batches])
