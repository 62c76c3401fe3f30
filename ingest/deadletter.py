"""The dead-letter store: every message (or part of one) ingest refused, with the reason.

An SQLite file (WAL) beside the service. A row holds the topic, the payload bytes, the kind
(``batch`` for the plantmrv wire format, ``json`` for mapped device JSON, ``raw`` for payloads
that were not read), the reason (``code: sentence``), the number of samples it holds, when the
message was received (so a device-JSON reading stamped on receipt keeps its time when
replayed) and when it was dead-lettered. For a gateway batch whose other samples were written,
the payload is a new wire message holding only the refused samples. Rows are committed
before the MQTT message is acknowledged, so a crash cannot lose a refusal.

Beside them it keeps each gateway's message sequence (highest number per buffer epoch) and the
gaps found in it (:mod:`plantmrv.ingest.sequence`): messages a gateway numbered that never came.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    topic TEXT NOT NULL,
    kind TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    samples INTEGER NOT NULL,
    payload BLOB NOT NULL,
    replayed_ns INTEGER
);
CREATE INDEX IF NOT EXISTS dead_letters_code ON dead_letters(code);
CREATE TABLE IF NOT EXISTS sequence_state (
    site TEXT NOT NULL,
    gateway TEXT NOT NULL,
    epoch TEXT NOT NULL,
    high INTEGER NOT NULL,
    PRIMARY KEY (site, gateway)
);
CREATE TABLE IF NOT EXISTS sequence_gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    detected_ns INTEGER NOT NULL,
    site TEXT NOT NULL,
    gateway TEXT NOT NULL,
    epoch TEXT NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL
);
"""


@dataclass
class SequenceGap:
    id: int
    detected_ns: int
    site: str
    gateway: str
    epoch: str
    first: int
    last: int


@dataclass
class DeadLetter:
    topic: str
    payload: bytes
    kind: str
    code: str
    reason: str
    samples: int
    received_ns: int
    id: int | None = None
    created_ns: int | None = None
    replayed_ns: int | None = None


class DeadLetterStore:
    """Thread-safe append/list/read/mark-replayed over one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_many(self, letters: list[DeadLetter]) -> list[int]:
        """Store letters in one transaction (committed on return)."""
        if not letters:
            return []
        now = time.time_ns()
        ids = []
        with self._lock:
            with self._db:
                for d in letters:
                    cur = self._db.execute(
                        "INSERT INTO dead_letters (created_ns, received_ns, topic, kind, code, reason, samples, payload) VALUES (?,?,?,?,?,?,?,?)",
                        (now, d.received_ns, d.topic, d.kind, d.code, d.reason, d.samples, bytes(d.payload)),
                    )
                    d.id, d.created_ns = cur.lastrowid, now
                    ids.append(cur.lastrowid)
        return ids

    def _rows(self, sql: str, args: tuple) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            DeadLetter(
                id=r[0], created_ns=r[1], received_ns=r[2], topic=r[3], kind=r[4], code=r[5], reason=r[6],
                samples=r[7], payload=bytes(r[8]), replayed_ns=r[9],
            )
            for r in rows
        ]

    _COLS = "id, created_ns, received_ns, topic, kind, code, reason, samples, payload, replayed_ns"

    def get(self, id_: int) -> DeadLetter | None:
        rows = self._rows(f"SELECT {self._COLS} FROM dead_letters WHERE id = ?", (id_,))
        return rows[0] if rows else None

    def list(self, code: str | None = None, include_replayed: bool = False, limit: int | None = None, after_id: int = 0) -> list[DeadLetter]:
        where = ["id > ?"]
        args: list = [after_id]
        if code:
            where.append("code = ?")
            args.append(code)
        if not include_replayed:
            where.append("replayed_ns IS NULL")
        sql = f"SELECT {self._COLS} FROM dead_letters WHERE {' AND '.join(where)} ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._rows(sql, tuple(args))

    def count(self, include_replayed: bool = False) -> int:
        sql = "SELECT COUNT(*) FROM dead_letters" + ("" if include_replayed else " WHERE replayed_ns IS NULL")
        with self._lock:
            return int(self._db.execute(sql).fetchone()[0])

    def sequence_state(self, site: str, gateway: str) -> tuple[str, int] | None:
        with self._lock:
            row = self._db.execute("SELECT epoch, high FROM sequence_state WHERE site = ? AND gateway = ?", (site, gateway)).fetchone()
        return (row[0], int(row[1])) if row else None

    def save_sequence_states(self, rows: list[tuple[str, str, str, int]]) -> None:
        """(site, gateway, epoch, highest seq) per gateway, in one transaction."""
        with self._lock:
            with self._db:
                self._db.executemany("INSERT INTO sequence_state (site, gateway, epoch, high) VALUES (?,?,?,?) "
                                     "ON CONFLICT(site, gateway) DO UPDATE SET epoch = excluded.epoch, high = excluded.high", rows)

    def add_gap(self, site: str, gateway: str, epoch: str, first: int, last: int, detected_ns: int) -> None:
        with self._lock:
            with self._db:
                self._db.execute("INSERT INTO sequence_gaps (detected_ns, site, gateway, epoch, first, last) VALUES (?,?,?,?,?,?)",
                                 (detected_ns, site, gateway, epoch, first, last))

    def gaps(self, limit: int | None = None) -> list[SequenceGap]:
        sql = "SELECT id, detected_ns, site, gateway, epoch, first, last FROM sequence_gaps ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql).fetchall()
        return [SequenceGap(*r) for r in rows]

    def mark_replayed(self, id_: int) -> None:
        with self._lock:
            with self._db:
                self._db.execute("UPDATE dead_letters SET replayed_ns = ? WHERE id = ?", (time.time_ns(), id_))
