"""Operators' acceptances of results that failed a check, kept in the API's SQLite store.

A period whose stored results carry warnings (:mod:`plantmrv.api.checks`) is neither floored
nor credited until an operator accepts it, through ``POST /projects/{id}/acceptances`` or
``plantmrv api acceptance add``. An acceptance records who, when and why, and binds exactly the
results reviewed: the project, the period's bounds, ``intervals_sha256`` and
``parameters_sha256``. Any later change to the results or the parameters voids it (the report
is withheld again); an acceptance can be withdrawn, never edited or deleted.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Callable

from plantmrv.api.models import AcceptanceInfo, ResultWarning
from plantmrv.api.store import SqliteStore, StoreError
from plantmrv.api.tokens import iso_seconds, utc_now

_FIELDS = "id, project, period, start_utc, end_utc, intervals_sha256, parameters_sha256, warnings, reason, accepted_by, accepted_via, accepted_at, withdrawn_at, withdrawn_by"


class AcceptanceRefused(StoreError):
    """An acceptance the API refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


class AcceptanceStore(SqliteStore):
    SCHEMA = """
    CREATE TABLE IF NOT EXISTS acceptances (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        period TEXT NOT NULL,
        start_utc TEXT NOT NULL,
        end_utc TEXT NOT NULL,
        intervals_sha256 TEXT NOT NULL,
        parameters_sha256 TEXT NOT NULL,
        warnings TEXT NOT NULL,
        reason TEXT NOT NULL,
        accepted_by TEXT NOT NULL,
        accepted_via TEXT NOT NULL CHECK (accepted_via IN ('api', 'cli')),
        accepted_at TEXT NOT NULL,
        withdrawn_at TEXT,
        withdrawn_by TEXT
    );
    CREATE INDEX IF NOT EXISTS acceptances_project ON acceptances (project, start_utc, end_utc);
    """

    def __init__(self, path: str | Path, clock: Callable[[], datetime] = utc_now):
        self.clock = clock
        super().__init__(path)

    @staticmethod
    def _info(r) -> AcceptanceInfo:
        return AcceptanceInfo(
            id=r[0], project=r[1], period=r[2], start=r[3], end=r[4], intervals_sha256=r[5], parameters_sha256=r[6], warnings=json.loads(r[7]),
            reason=r[8], accepted_by=r[9], accepted_via=r[10], accepted_at=r[11], withdrawn_at=r[12], withdrawn_by=r[13],
        )

    def add(
        self, project: str, period: str, start: datetime, end: datetime, intervals_sha256: str, parameters_sha256: str,
        warnings: list[ResultWarning], reason: str, accepted_by: str, via: str,
    ) -> AcceptanceInfo:
        reason = reason.strip()
        if len(reason) < 10:
            raise AcceptanceRefused("an acceptance needs a reason of at least 10 characters", 422)
        if not warnings:
            raise AcceptanceRefused(f"{project} {period}: the results have no warning, nothing to accept")
        codes = json.dumps([f"{w.code}:{w.count}" for w in warnings])
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO acceptances (project, period, start_utc, end_utc, intervals_sha256, parameters_sha256, warnings, reason, accepted_by, accepted_via, accepted_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (project, period, iso_seconds(start), iso_seconds(end), intervals_sha256, parameters_sha256, codes, reason, accepted_by, via, iso_seconds(self.clock())),
            )
            return self.get(cur.lastrowid, db)

    def get(self, acceptance_id: int, db=None) -> AcceptanceInfo:
        if db is None:
            with self._connect() as db:
                return self.get(acceptance_id, db)
        row = db.execute(f"SELECT {_FIELDS} FROM acceptances WHERE id = ?", (acceptance_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no acceptance with id {acceptance_id}")
        return self._info(row)

    def list(self, project: str | None = None) -> list[AcceptanceInfo]:
        q, args = f"SELECT {_FIELDS} FROM acceptances", ()
        if project is not None:
            q, args = q + " WHERE project = ?", (project,)
        with self._connect() as db:
            return [self._info(r) for r in db.execute(q + " ORDER BY id", args).fetchall()]

    def find(self, project: str, start: datetime, end: datetime, intervals_sha256: str, parameters_sha256: str) -> AcceptanceInfo | None:
        """The latest acceptance in force for exactly these results, or None."""
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_FIELDS} FROM acceptances WHERE project = ? AND start_utc = ? AND end_utc = ? AND intervals_sha256 = ? "
                "AND parameters_sha256 = ? AND withdrawn_at IS NULL ORDER BY id DESC LIMIT 1",
                (project, iso_seconds(start), iso_seconds(end), intervals_sha256, parameters_sha256),
            ).fetchone()
        return self._info(row) if row else None

    def withdraw(self, acceptance_id: int, by: str) -> AcceptanceInfo:
        with self._connect() as db:
            cur = db.execute("UPDATE acceptances SET withdrawn_at = ?, withdrawn_by = ? WHERE id = ? AND withdrawn_at IS NULL", (iso_seconds(self.clock()), by, acceptance_id))
            if cur.rowcount == 0:
                info = self.get(acceptance_id, db)
                raise StoreError(f"{self.path}: acceptance {acceptance_id} was already withdrawn at {info.withdrawn_at}")
            return self.get(acceptance_id, db)


def accept_results(
    client, store: AcceptanceStore, project, period: str, intervals_sha256: str, reason: str, by: str, via: str,
    source_interval: str, max_span_days: float, database: str | None = None,
) -> AcceptanceInfo:
    """Record an acceptance of the period's *current* results, which must carry warnings and
    hash to ``intervals_sha256`` (what the operator reviewed)."""
    from plantmrv.api.checks import checked_results
    from plantmrv.api.queries import SOURCE_INTERVAL_S
    from plantmrv.api.reports import check_range, from_ns, parse_period

    mp = parse_period(project, period)
    s_ns, e_ns = check_range(mp.start, mp.end, max_span_days, SOURCE_INTERVAL_S[source_interval], what=f"period {period}")
    checked = checked_results(client, project, source_interval, s_ns, e_ns, database)
    if not checked.warnings:
        raise AcceptanceRefused(f"{project.id} {period}: the stored results pass every check; there is nothing to accept")
    if intervals_sha256 != checked.intervals_sha256:
        raise AcceptanceRefused(
            f"{project.id} {period}: the results changed since they were reviewed (intervals_sha256 is now {checked.intervals_sha256}); read the report again"
        )
    found = store.find(project.id, from_ns(s_ns), from_ns(e_ns), checked.intervals_sha256, checked.parameters_sha256)
    if found is not None:
        raise AcceptanceRefused(f"{project.id} {period}: these results were already accepted (acceptance {found.id} by {found.accepted_by} at {found.accepted_at})")
    return store.add(project.id, mp.id, from_ns(s_ns), from_ns(e_ns), checked.intervals_sha256, checked.parameters_sha256, checked.warnings, reason, by, via)
