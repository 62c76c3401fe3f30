"""Access tokens: generated once, shown once, stored only as SHA-256 in a small SQLite file.

A token is ``pmrv_`` + 43 URL-safe characters (256 random bits), so a plain SHA-256 is a safe
verifier (no password stretching needed: nothing to brute-force). Lookups go by hash; the
clear token exists only in the output of ``plantmrv api token create``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

ROLES = ("verifier", "operator", "admin")
TOKEN_PREFIX = "pmrv_"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


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


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    role: str
    projects: tuple[str, ...]
    created_at: str
    revoked_at: str | None

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role, "projects": list(self.projects), "created_at": self.created_at, "revoked_at": self.revoked_at}


_SCHEMA = """
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


class TokenStoreError(Exception):
    pass


class TokenStore:
    """SQLite token store (WAL). One connection per call: safe from any thread or process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise TokenStoreError(f"token_store {self.path}: cannot create or open: {exc}") from None
        try:
            self.path.chmod(0o600)
        except OSError:
            pass

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one call: committed on success, rolled back on error, always closed."""
        try:
            db = sqlite3.connect(self.path, timeout=10)
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise TokenStoreError(f"token_store {self.path}: cannot open: {exc}") from None
        try:
            with db:
                yield db
        finally:
            db.close()

    def create(self, name: str, role: str, projects: list[str] | tuple[str, ...] = ()) -> tuple[TokenRecord, str]:
        """Create a token; return its record and the clear token (shown once, never stored)."""
        if role not in ROLES:
            raise TokenStoreError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if role == "verifier" and not projects:
            raise TokenStoreError("a verifier token needs at least one --project")
        token = generate_token()
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._connect() as db:
            cur = db.execute(
                "INSERT INTO tokens (name, role, projects, sha256, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, role, json.dumps(sorted(set(projects))), hash_token(token), now),
            )
            token_id = cur.lastrowid
        return TokenRecord(token_id, name, role, tuple(sorted(set(projects))), now, None), token

    def list(self, include_revoked: bool = True) -> list[TokenRecord]:
        q = "SELECT id, name, role, projects, created_at, revoked_at FROM tokens"
        if not include_revoked:
            q += " WHERE revoked_at IS NULL"
        with self._connect() as db:
            rows = db.execute(q + " ORDER BY id").fetchall()
        return [TokenRecord(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows]

    def revoke(self, token_id: int) -> TokenRecord:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._connect() as db:
            cur = db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id))
            if cur.rowcount == 0:
                exists = db.execute("SELECT revoked_at FROM tokens WHERE id = ?", (token_id,)).fetchone()
                if exists is None:
                    raise TokenStoreError(f"{self.path}: no token with id {token_id}")
                raise TokenStoreError(f"{self.path}: token {token_id} was already revoked at {exists[0]}")
        return next(r for r in self.list() if r.id == token_id)

    def lookup(self, token: str) -> Principal | None:
        """The principal of a valid (not revoked) token, or None."""
        try:
            with self._connect() as db:
                row = db.execute("SELECT id, name, role, projects FROM tokens WHERE sha256 = ? AND revoked_at IS NULL", (hash_token(token),)).fetchone()
        except sqlite3.Error as exc:
            raise TokenStoreError(f"token_store {self.path}: {exc}") from None
        if row is None:
            return None
        return Principal(name=row[1], role=row[2], projects=frozenset(json.loads(row[3])), source="store", token_id=row[0])
