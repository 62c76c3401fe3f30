"""Access tokens: generated once, shown once, stored only as SHA-256 in the API's SQLite store.

A token is ``pmrv_`` + 43 URL-safe characters (256 random bits), so a plain SHA-256 is a safe
verifier (no password stretching needed: nothing to brute-force). Lookups go by hash; the
clear token exists only in the output of ``plantmrv api token create``. A token may carry an
expiry (refused from then on, like a revoked one); each store token records when it was last
used (to the minute: one write per token per minute at most). The store file itself is
checked like ssh's ``StrictModes`` before every use (:mod:`plantmrv.api.store`).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from plantmrv.api.store import SqliteStore, StoreError

ROLES = ("verifier", "operator", "admin")
TOKEN_PREFIX = "pmrv_"
TOKEN_NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
LAST_USED_RESOLUTION = timedelta(minutes=1)
TokenStoreError = StoreError  # the name callers have used


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso_seconds(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    if not re.match(TOKEN_NAME_PATTERN, name):
        raise StoreError(f"token name {name!r}: use 1-64 of A-Z a-z 0-9 _ . @ - (it appears in logs as who=)")
    return name


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, role and (for verifiers) the projects it may read."""

    name: str
    role: str
    projects: frozenset[str] = field(default_factory=frozenset)
    source: str = "config"  # config | store
    token_id: int | None = None

    def may_read(self, project_id: str) -> bool:
        return self.role in ("operator", "admin") or project_id in self.projects

    @property
    def key(self) -> tuple:
        """Identity of the token (for per-token limits)."""
        return (self.source, self.token_id if self.token_id is not None else self.name)


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    role: str
    projects: tuple[str, ...]
    created_at: str
    revoked_at: str | None
    expires_at: str | None = None
    last_used_at: str | None = None

    def as_dict(self) -> dict:
        return {
            "id": self.id, "name": self.name, "role": self.role, "projects": list(self.projects), "created_at": self.created_at,
            "revoked_at": self.revoked_at, "expires_at": self.expires_at, "last_used_at": self.last_used_at,
        }


class TokenStore(SqliteStore):
    """Hashed tokens in the API's SQLite store."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS tokens (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('verifier', 'operator', 'admin')),
        projects TEXT NOT NULL DEFAULT '[]',
        sha256 TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """
    COLUMNS = {"tokens": {"expires_at": "TEXT", "last_used_at": "TEXT"}}
    _FIELDS = "id, name, role, projects, created_at, revoked_at, expires_at, last_used_at"

    def __init__(self, path: str | Path, clock: Callable[[], datetime] = utc_now):
        self.clock = clock
        super().__init__(path)

    def create(self, name: str, role: str, projects: list[str] | tuple[str, ...] = (), expires_at: datetime | None = None) -> tuple[TokenRecord, str]:
        """Create a token; return its record and the clear token (shown once, never stored)."""
        check_name(name)
        if role not in ROLES:
            raise StoreError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if role == "verifier" and not projects:
            raise StoreError("a verifier token needs at least one --project")
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            raise StoreError(f"expiry {iso_seconds(expires_at)} is not in the future")
        token = generate_token()
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO tokens (name, role, projects, sha256, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (name, role, json.dumps(sorted(set(projects))), hash_token(token), iso_seconds(now), iso_seconds(expires_at) if expires_at else None),
            )
            token_id = cur.lastrowid
        return self.get(token_id), token

    @staticmethod
    def _record(r) -> TokenRecord:
        return TokenRecord(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5], r[6], r[7])

    def get(self, token_id: int) -> TokenRecord:
        with self._connect() as db:
            row = db.execute(f"SELECT {self._FIELDS} FROM tokens WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no token with id {token_id}")
        return self._record(row)

    def list(self, include_revoked: bool = True) -> list[TokenRecord]:
        q = f"SELECT {self._FIELDS} FROM tokens"
        if not include_revoked:
            q += " WHERE revoked_at IS NULL"
        with self._connect() as db:
            rows = db.execute(q + " ORDER BY id").fetchall()
        return [self._record(r) for r in rows]

    def revoke(self, token_id: int) -> TokenRecord:
        with self._connect() as db:
            cur = db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (iso_seconds(self.clock()), token_id))
            if cur.rowcount == 0:
                exists = db.execute("SELECT revoked_at FROM tokens WHERE id = ?", (token_id,)).fetchone()
                if exists is None:
                    raise StoreError(f"{self.path}: no token with id {token_id}")
                raise StoreError(f"{self.path}: token {token_id} was already revoked at {exists[0]}")
        return self.get(token_id)

    def lookup(self, token: str) -> Principal | None:
        """The principal of a valid token (not revoked, not expired), or None; records its use."""
        now = self.clock()
        with self._connect() as db:
            row = db.execute(
                "SELECT id, name, role, projects, expires_at, last_used_at FROM tokens WHERE sha256 = ? AND revoked_at IS NULL", (hash_token(token),)
            ).fetchone()
            if row is None or (row[4] is not None and datetime.fromisoformat(row[4]) <= now):
                return None
            if row[5] is None or datetime.fromisoformat(row[5]) <= now - LAST_USED_RESOLUTION:
                db.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (iso_seconds(now), row[0]))
        return Principal(name=row[1], role=row[2], projects=frozenset(json.loads(row[3])), source="store", token_id=row[0])
