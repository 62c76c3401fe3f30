"""Canonical digests of raw data that a verifier recomputes without plantmrv (docs/verifier.md).

``data_sha256`` of a range ``[from, to)`` covers, for each distinct monitoring point of the
project (measurement, site, asset, field; in the order of ``monitoring_points``), every raw row
the exports hold: the last sample before ``from`` (within a day), every sample in the range, the
first sample at or after ``to`` (within a day). It is computed from the rows themselves every
time it is reported, never cached and never inferred from counts or sums:

- rows of one point, in ascending ``ts_ns`` (ties by the value's bits), are packed as 16 bytes
  each: ``ts_ns`` as a signed 64-bit big-endian integer, the value as an IEEE 754 binary64
  big-endian float (NaN as ``7ff8000000000000``); ``rows_sha256`` is the SHA-256 of that byte
  string (of nothing, for a point without rows);
- each point contributes one line, the JSON array ``[measurement, site, asset, field, rows,
  rows_sha256]`` (``json.dumps`` with ``separators=(",", ":")`` and ``ensure_ascii=True``;
  ``asset`` is ``""`` when the point has none) followed by ``\\n``;
- ``data_sha256`` is the SHA-256 of those lines, concatenated.

Packing is one numpy pass, cheap beside reading the rows from InfluxDB (MessagePack), so the
cost of an honest hash is that read (bench/README.md, api).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from plantmrv.api.models import MonitoringPointInfo
from plantmrv.api.queries import BRACKET_NS, NS, read_raw

WINDOW_NS = 86400 * NS  # raw rows are read a day at a time: bounded memory, one query each
_ROW = np.dtype([("t", ">i8"), ("v", ">f8")])

PointKey = tuple[str, str, str, str]


def point_key(point: MonitoringPointInfo) -> PointKey:
    return (point.measurement, point.site, point.asset or "", point.field)


def distinct_points(points: Iterable[MonitoringPointInfo]) -> list[MonitoringPointInfo]:
    """Monitoring points with a distinct (measurement, site, asset, field), first appearance kept."""
    seen: dict[PointKey, MonitoringPointInfo] = {}
    for p in points:
        seen.setdefault(point_key(p), p)
    return list(seen.values())


def pack_rows(ts: np.ndarray, values: np.ndarray) -> bytes:
    rows = np.empty(len(ts), dtype=_ROW)
    rows["t"] = ts
    rows["v"] = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
    return rows.tobytes()


class RowsDigest:
    """Running SHA-256 and count of one point's packed rows."""

    def __init__(self) -> None:
        self.rows = 0
        self._h = hashlib.sha256()

    def update(self, ts: np.ndarray, values: np.ndarray) -> None:
        self.rows += len(ts)
        self._h.update(pack_rows(ts, values))

    def hexdigest(self) -> str:
        return self._h.hexdigest()


@dataclass
class PointDigest:
    key: PointKey
    rows: int
    rows_sha256: str

    def line(self) -> str:
        return json.dumps([*self.key, self.rows, self.rows_sha256], separators=(",", ":"), ensure_ascii=True) + "\n"


@dataclass
class DataDigest:
    """``data_sha256`` of a range, with its parts."""

    points: list[PointDigest] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.points)

    @property
    def sha256(self) -> str:
        return hashlib.sha256("".join(p.line() for p in self.points).encode()).hexdigest()


def windows(start_ns: int, end_ns: int, window_ns: int = WINDOW_NS) -> Iterator[tuple[int, int]]:
    for s in range(start_ns, end_ns, window_ns):
        yield s, min(s + window_ns, end_ns)


def before(client, point: MonitoringPointInfo, t_ns: int):
    """The last sample in the day before ``t_ns`` (0 or 1 row)."""
    return read_raw(client, point, t_ns - BRACKET_NS, t_ns, edge="before")


def after(client, point: MonitoringPointInfo, t_ns: int):
    """The first sample at or after ``t_ns``, within a day (0 or 1 row)."""
    return read_raw(client, point, t_ns, t_ns + BRACKET_NS, edge="after")


def iter_point_rows(client, point: MonitoringPointInfo, start_ns: int, end_ns: int, check: Callable[[], None] = lambda: None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every raw row of one point for ``[start, end)`` with its brackets, canonical order, in
    pieces of at most a day; ``check()`` runs before each query (a deadline may raise there)."""
    check()
    yield before(client, point, start_ns)
    for s, e in windows(start_ns, end_ns):
        check()
        yield read_raw(client, point, s, e)
    check()
    yield after(client, point, end_ns)


def range_digests(
    client, points: Sequence[MonitoringPointInfo], pieces: Sequence[tuple[int, int]], check: Callable[[], None] = lambda: None
) -> tuple[DataDigest, list[DataDigest]]:
    """``data_sha256`` of the whole of ``pieces`` (consecutive ranges) and of each piece, every
    raw row read once: a piece's digest is exactly that of an export of the piece."""
    whole, parts = DataDigest(), [DataDigest() for _ in pieces]
    for point in distinct_points(points):
        total, each = RowsDigest(), [RowsDigest() for _ in pieces]
        for k, (s, e) in enumerate(pieces):
            check()
            rows = before(client, point, s)
            each[k].update(*rows)
            if k == 0:
                total.update(*rows)
            for ws, we in windows(s, e):
                check()
                rows = read_raw(client, point, ws, we)
                each[k].update(*rows)
                total.update(*rows)
            check()
            rows = after(client, point, e)
            each[k].update(*rows)
            if k == len(pieces) - 1:
                total.update(*rows)
        key = point_key(point)
        whole.points.append(PointDigest(key, total.rows, total.hexdigest()))
        for part, d in zip(parts, each):
            part.points.append(PointDigest(key, d.rows, d.hexdigest()))
    return whole, parts
