"""Durable store-and-forward buffer: SQLite in WAL mode with ``synchronous=FULL``.

A row is one encoded batch (:func:`plantmrv.codec.encode_message`, CRC-checked), appended in
one transaction that is fsync'ed before :meth:`DurableBuffer.append` returns, so a sample counts
as buffered only once it survives kill -9 and a power cut. Rows leave only through
:meth:`DurableBuffer.delete`, called after the sink confirmed them. Oldest first. A size cap
drops the oldest rows (the caller counts and logs them). A database that SQLite reports as
corrupt at open is moved aside (``.corrupt-<time>``) and a fresh one started, so a damaged SD
card never keeps the agent from starting; a row whose blob fails its CRC is dropped and
counted when read.

Each row's id is its message sequence number (``seq`` in the wire header): per buffer file
strictly increasing and never reused, even after every row was sent and deleted or the gateway
restarted, because the last one handed out is stored (``state`` key ``msg_seq``) in the same
transaction as its row. The sequence belongs to the buffer's **epoch**, a random id written
when the file is created: a new file (first start, a corrupt one moved aside, a replaced disk)
starts a new epoch at 1, so a receiver tells a fresh buffer from lost messages.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("plantmrv.gateway.buffer")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    n_samples INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Record:
    id: int
    n_samples: int
    blob: bytes


class DurableBuffer:
    """Thread-safe (one lock); call from ``asyncio.to_thread`` in async code."""

    def __init__(self, path: str | Path, max_bytes: int):
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = self._open()
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(n_samples),0), COALESCE(SUM(LENGTH(blob)),0), COALESCE(MAX(id),0) FROM batches").fetchone()
        self.rows, self.depth, self.nbytes, self._last_id = (int(x) for x in row)
        self._last_id = max(self._last_id, int(self.get_state("msg_seq") or 0))
        self.epoch = self.get_state("epoch")
        self.new_epoch = self.epoch is None
        if self.epoch is None:  # a new file (or one from before epochs): its sequence starts anew
            self.epoch = secrets.token_hex(8)
            self.set_state("epoch", self.epoch)

    def _open(self) -> sqlite3.Connection:
        try:
            db = self._connect()
            ok = db.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(ok)
            return db
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("event=buffer_corrupt path=%s error=%s moved_to=%s", self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    p.rename(Path(str(aside) + suffix))
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA wal_autocheckpoint=1000")
        db.execute("PRAGMA cache_size=-512")  # 512 KiB page cache (default 2 MiB): blobs are written once, read once
        db.executescript(_SCHEMA)
        return db

    def next_id(self) -> int:
        """The sequence number the next :meth:`append` takes (unless told another, larger one)."""
        return self._last_id + 1

    def append(self, blob: bytes, n_samples: int, record_id: int | None = None,
               state: dict[str, str] | None = None) -> tuple[int, list[tuple[int, int]]]:
        """Store one encoded batch durably (and ``state`` in the same transaction).

        Return (id, [(dropped_id, dropped_samples), ...]) for the size cap.
        """
        with self._lock:
            rid = record_id if record_id is not None and record_id > self._last_id else self._last_id + 1
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO batches (id, created_ns, n_samples, blob) VALUES (?, ?, ?, ?)",
                                 (rid, time.time_ns(), n_samples, sqlite3.Binary(blob)))
                for k, v in {**(state or {}), "msg_seq": str(rid)}.items():
                    self._db.execute("INSERT INTO state (key, value) VALUES (?, ?) "
                                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (k, v))
                dropped = []
                extra = self.nbytes + len(blob) - self.max_bytes
                if extra > 0:
                    freed = 0
                    for oid, on, olen in self._db.execute(
                        "SELECT id, n_samples, LENGTH(blob) FROM batches WHERE id != ? ORDER BY id", (rid,)
                    ):
                        if freed >= extra:
                            break
                        dropped.append((oid, on, olen))
                        freed += olen
                    self._db.executemany("DELETE FROM batches WHERE id = ?", [(d[0],) for d in dropped])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._last_id = rid
            self.rows += 1 - len(dropped)
            self.depth += n_samples - sum(d[1] for d in dropped)
            self.nbytes += len(blob) - sum(d[2] for d in dropped)
            return rid, [(d[0], d[1]) for d in dropped]

    def peek(self, max_records: int) -> list[Record]:
        """Oldest records first, without removing them."""
        with self._lock:
            rows = self._db.execute("SELECT id, n_samples, blob FROM batches ORDER BY id LIMIT ?", (max_records,)).fetchall()
        return [Record(int(i), int(n), bytes(b)) for i, n, b in rows]

    def delete(self, records: list[Record]) -> None:
        """Remove confirmed records (one fsync'ed transaction)."""
        if not records:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.executemany("DELETE FROM batches WHERE id = ?", [(r.id,) for r in records])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if cur.rowcount == len(records):
                self.rows -= len(records)
                self.depth -= sum(r.n_samples for r in records)
                self.nbytes -= sum(len(r.blob) for r in records)
            else:  # recount when something else removed rows (size cap raced a send)
                row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(n_samples),0), COALESCE(SUM(LENGTH(blob)),0) FROM batches").fetchone()
                self.rows, self.depth, self.nbytes = (int(x) for x in row)

    def get_state(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        self.set_states({key: value})

    def set_states(self, state: dict[str, str]) -> None:
        """Store ``state`` in one fsync'ed transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                     list(state.items()))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()
