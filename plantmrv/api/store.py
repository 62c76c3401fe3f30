"""The API's own state: one small SQLite file (``api.token_store``) holding hashed tokens and
operators' acceptances of results that failed a check.

Whoever can write this file can mint tokens, so it is opened only when nobody else can have
written it, the way ssh's ``StrictModes`` treats ``authorized_keys``:

- the file (and SQLite's ``-wal`` / ``-shm`` beside it) is a regular file, not a symlink, owned
  by the user running the API, and writable by nobody else; if group or others may read it, it
  is made mode 0600, and a chmod that fails is an error;
- its directory is owned by that user or root and writable by nobody else (a sticky
  world-writable directory such as ``/tmp`` is refused too: another user could plant the
  ``-wal`` file beside the store);
- every directory above is owned by that user or root and not writable by group or others,
  unless it has the sticky bit (then nobody else can rename what lies in it).

A directory the store creates itself is made mode 0700.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Iterator


class StoreError(Exception):
    """The store is unsafe, unusable or refused an operation (message names the path)."""


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_file(path: Path, uid: int, fix_mode: bool = True) -> None:
    """Refuse a store file that another user could have written; tighten a readable one to 0600."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise StoreError(f"{path}: is a symbolic link; the token store must be a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path}: is not a regular file")
    if st.st_uid != uid:
        raise StoreError(f"{path}: owned by {_owner(st.st_uid)}, not by {_owner(uid)} who runs the API; refusing a store another user could have written")
    if st.st_mode & 0o022:
        raise StoreError(f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets other users write it; refusing it (check its tokens, then chmod 600)")
    if st.st_mode & 0o077 and fix_mode:
        try:
            os.chmod(path, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets other users read it and chmod 600 failed: {exc.strerror}") from None


def check_dirs(directory: Path, uid: int) -> None:
    """The store's directory and every directory above it, as described in the module docstring."""
    directory = directory.absolute()
    for i, d in enumerate([directory, *directory.parents]):
        try:
            st = os.stat(d)
        except OSError as exc:
            raise StoreError(f"{d}: cannot inspect: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise StoreError(f"cannot create or open: {d} is not a directory")
        if st.st_uid not in (uid, 0):
            raise StoreError(f"{d}: owned by {_owner(st.st_uid)}; the token store's directories must belong to {_owner(uid)} or root")
        writable_by_others = st.st_mode & 0o022
        if writable_by_others and (i == 0 or not st.st_mode & stat.S_ISVTX):
            where = "the token store's directory" if i == 0 else "a directory above the token store"
            raise StoreError(f"{d}: mode {stat.S_IMODE(st.st_mode):04o} lets other users write {where}; use a directory only {_owner(uid)} can write (e.g. /var/lib/plantmrv, mode 0700)")


class SqliteStore:
    """One SQLite file, checked as above before every open. One connection per call, so it is
    safe from any thread or process; WAL journal."""

    SCHEMA = ""  # subclasses: CREATE TABLE IF NOT EXISTS ...
    COLUMNS: dict[str, dict[str, str]] = {}  # table -> column -> type, added to older files

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.uid = os.geteuid()
        parent = self.path.absolute().parent
        try:
            if not parent.exists():
                parent.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise StoreError(f"token_store {self.path}: cannot create or open: {exc}") from None
        try:
            self._check()
        except StoreError as exc:
            raise StoreError(f"token_store {self.path}: {exc}") from None
        if not self.path.exists():
            try:  # made 0600 before SQLite opens it; SQLite gives -wal and -shm the database's mode
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(f"token_store {self.path}: cannot create or open: {exc}") from None
        try:
            with self._connect() as db:
                db.executescript(self.SCHEMA)
                for table, cols in self.COLUMNS.items():
                    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
                    for name, sql_type in cols.items():
                        if name not in have:
                            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
        except StoreError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"token_store {self.path}: cannot create or open: {exc}") from None

    def _siblings(self) -> list[Path]:
        return [self.path.with_name(self.path.name + s) for s in ("-wal", "-shm")]

    def _check(self) -> None:
        check_dirs(self.path.absolute().parent, self.uid)
        for p in (self.path, *self._siblings()):
            check_file(p, self.uid)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection for one call: committed on success, rolled back on error, always closed."""
        self._check()
        try:
            db = sqlite3.connect(self.path, timeout=5)
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise StoreError(f"token_store {self.path}: cannot open: {exc}") from None
        try:
            with db:
                yield db
        except sqlite3.Error as exc:
            raise StoreError(f"token_store {self.path}: {exc}") from None
        finally:
            db.close()
