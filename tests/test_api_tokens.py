"""Tokens as mature services treat them: a store another user could have written is refused (as
ssh's StrictModes), a failed chmod is an error, tokens expire, their last use is recorded, and
names or credentials never forge or leak into log lines."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from plantmrv.api.app import create_app
from plantmrv.api.cli import parse_expiry
from plantmrv.api.store import StoreError
from plantmrv.api.tokens import TokenStore, hash_token
from plantmrv.app.cli import app as cli
from tests.test_api_support import PROJECT_ID, TOKENS, api_env, make_cfg  # noqa: F401

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def private_dir(tmp_path: Path, name: str = "state") -> Path:
    d = tmp_path / name
    d.mkdir(mode=0o700)
    return d


# --------------------------------------------------------------------------- the store file


def test_new_store_is_private_and_its_directory_is_created_0700(tmp_path):
    store = TokenStore(tmp_path / "new" / "deeper" / "tokens.sqlite")
    with sqlite3.connect(store.path) as reader:  # an open reader keeps SQLite's -wal and -shm in place
        reader.execute("SELECT count(*) FROM tokens").fetchone()
        store.create("ops", "operator")
        files = sorted(p.name for p in store.path.parent.iterdir())
        modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in store.path.parent.iterdir()}
    assert files == ["tokens.sqlite", "tokens.sqlite-shm", "tokens.sqlite-wal"]
    assert set(modes.values()) == {0o600}, modes
    assert stat.S_IMODE(os.stat(tmp_path / "new" / "deeper").st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_store_in_a_directory_others_can_write_is_refused(tmp_path, mode):
    d = private_dir(tmp_path)
    os.chmod(d, mode)  # 1777 like /tmp: another user could plant tokens.sqlite-wal beside the store
    with pytest.raises(StoreError, match=rf"{d}: mode {mode:04o} lets other users write the token store's directory"):
        TokenStore(d / "tokens.sqlite")


def test_store_below_a_sticky_world_writable_directory_is_fine_but_not_below_an_open_one(tmp_path):
    top = private_dir(tmp_path, "top")
    os.chmod(top, 0o1777)
    TokenStore(private_dir(top) / "tokens.sqlite").create("ok", "operator")
    open_dir = private_dir(tmp_path, "open")
    os.chmod(open_dir, 0o777)
    with pytest.raises(StoreError, match="lets other users write a directory above the token store"):
        TokenStore(private_dir(open_dir) / "tokens.sqlite")


def test_store_file_others_can_write_is_refused_and_a_readable_one_is_tightened(tmp_path):
    path = private_dir(tmp_path) / "tokens.sqlite"
    TokenStore(path).create("ops", "operator")
    os.chmod(path, 0o666)
    with pytest.raises(StoreError, match="mode 0666 lets other users write it"):
        TokenStore(path)
    os.chmod(path, 0o644)
    TokenStore(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_store_owned_by_another_user_is_refused_with_the_token_planted_in_it(tmp_path):
    if os.geteuid() == 0:
        path = private_dir(tmp_path) / "tokens.sqlite"
        _, planted = TokenStore(path).create("planted", "admin")
        os.chown(path, 65534, 65534)
    else:  # a file of root's, the other user a non-root test run can find
        path, planted = Path("/etc/hostname"), "x"
        assert os.stat(path).st_uid == 0
    with pytest.raises(StoreError, match=r"owned by .*uid (65534|0).*refusing a store another user could have written"):
        TokenStore(path)
    r = CliRunner().invoke(cli, ["api", "token", "list", "-c", str(_config(tmp_path, path))])
    assert r.exit_code == 1 and "refusing a store another user could have written" in r.output and planted not in r.output


def test_store_that_is_a_symlink_is_refused(tmp_path):
    d = private_dir(tmp_path)
    TokenStore(d / "real.sqlite")
    (d / "tokens.sqlite").symlink_to(d / "real.sqlite")
    with pytest.raises(StoreError, match="is a symbolic link"):
        TokenStore(d / "tokens.sqlite")


def test_a_failed_chmod_is_an_error(tmp_path, monkeypatch):
    path = private_dir(tmp_path) / "tokens.sqlite"
    TokenStore(path)
    os.chmod(path, 0o640)

    def refuse(p, mode, *a, **kw):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    with pytest.raises(StoreError, match="mode 0640 lets other users read it and chmod 600 failed: Operation not permitted"):
        TokenStore(path)


def _config(tmp_path: Path, store: Path) -> Path:
    cfg = tmp_path / "api.yaml"
    cfg.write_text(yaml.safe_dump({"api": {"token_store": str(store)}}))
    return cfg


def test_the_api_refuses_to_start_on_an_unsafe_store(tmp_path):
    d = private_dir(tmp_path)
    os.chmod(d, 0o777)
    r = CliRunner().invoke(cli, ["api", "-c", str(_config(tmp_path, d / "tokens.sqlite"))])
    assert r.exit_code == 78 and "lets other users write the token store's directory" in r.output


# --------------------------------------------------------------------------- expiry, last use, names


def test_store_tokens_expire_and_record_their_last_use_to_the_minute(tmp_path):
    clock = Clock()
    store = TokenStore(private_dir(tmp_path) / "tokens.sqlite", clock=clock)
    rec, token = store.create("auditor", "verifier", [PROJECT_ID], expires_at=T0 + timedelta(days=30))
    assert rec.expires_at == "2026-04-09T09:00:00+00:00" and rec.last_used_at is None
    assert store.lookup(token).name == "auditor"
    assert store.get(rec.id).last_used_at == "2026-03-10T09:00:00+00:00"
    clock.now = T0 + timedelta(seconds=50)
    store.lookup(token)
    assert store.get(rec.id).last_used_at == "2026-03-10T09:00:00+00:00"  # at most one write a minute
    clock.now = T0 + timedelta(minutes=2)
    store.lookup(token)
    assert store.get(rec.id).last_used_at == "2026-03-10T09:02:00+00:00"
    clock.now = T0 + timedelta(days=30)
    assert store.lookup(token) is None  # expired: refused like a revoked token
    with pytest.raises(StoreError, match="is not in the future"):
        store.create("late", "operator", expires_at=T0)


def test_expired_tokens_get_401_from_config_and_store(tmp_path):
    clock = Clock()
    cfg = make_cfg("unused", "http://127.0.0.1:9", private_dir(tmp_path))
    cfg.api.tokens[0].expires = T0 + timedelta(hours=1)
    app = create_app(cfg, clock=clock)
    _, store_token = app.state.authenticator.store.create("temp", "operator", expires_at=T0 + timedelta(hours=2))
    with TestClient(app) as client:
        verifier, temp = {"Authorization": f"Bearer {TOKENS['verifier']}"}, {"Authorization": f"Bearer {store_token}"}
        assert client.get("/projects", headers=verifier).status_code == 200
        assert client.get("/projects", headers=temp).status_code == 200
        clock.now = T0 + timedelta(hours=1)
        assert client.get("/projects", headers=verifier).status_code == 401
        assert client.get("/projects", headers=temp).status_code == 200
        clock.now = T0 + timedelta(hours=2)
        assert client.get("/projects", headers=temp).json() == {"detail": "missing or invalid bearer token"}
        tokens = {t["name"]: t for t in client.get("/admin/tokens", headers={"Authorization": f"Bearer {TOKENS['admin']}"}).json()}
    assert tokens["temp"]["expires_at"] == "2026-03-10T11:00:00+00:00" and tokens["temp"]["last_used_at"] == "2026-03-10T10:00:00+00:00"
    assert tokens["verifier-danang"]["expires_at"].startswith("2026-03-10T10:00:00")


def test_expiry_option_accepts_durations_and_dates():
    assert parse_expiry("90d", T0) == T0 + timedelta(days=90)
    assert parse_expiry("12h", T0) == T0 + timedelta(hours=12)
    assert parse_expiry("2026-12-31", T0) == datetime(2026, 12, 31, tzinfo=timezone.utc)
    assert parse_expiry("2026-12-31T18:00:00+09:00", T0) == datetime(2026, 12, 31, 9, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="is not like 90d"):
        parse_expiry("soon", T0)


def test_token_cli_sets_and_lists_expiry(tmp_path):
    cfg = _config(tmp_path, private_dir(tmp_path) / "tokens.sqlite")
    r = CliRunner().invoke(cli, ["api", "token", "create", "-c", str(cfg), "--role", "operator", "--name", "night-shift", "--expires", "2099-01-01"])
    assert r.exit_code == 0 and "expires=2099-01-01T00:00:00+00:00" in r.output
    r = CliRunner().invoke(cli, ["api", "token", "create", "-c", str(cfg), "--role", "operator", "--expires", "tomorrow"])
    assert r.exit_code == 2 and "--expires: 'tomorrow' is not like 90d" in r.output
    r = CliRunner().invoke(cli, ["api", "token", "create", "-c", str(cfg), "--role", "operator", "--name", "evil\nevent=forged"])
    assert r.exit_code == 1 and "token name 'evil\\nevent=forged'" in r.output
    listed = CliRunner().invoke(cli, ["api", "token", "list", "-c", str(cfg)]).output
    assert "night-shift" in listed and "2099-01-01T00:00:00+00:00" in listed and "last used" in listed


def test_a_token_name_with_a_newline_cannot_forge_a_log_line(api_env, caplog):
    """Names are checked at creation; one already in a store (written by an older version) is still encoded."""
    store = api_env.app.state.authenticator.store
    _, token = store.create("placeholder", "operator")
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE tokens SET name = ? WHERE sha256 = ?", ("ops\nevent=request who=admin-1 role=admin status=200", hash_token(token)))
    caplog.set_level(logging.INFO, logger="plantmrv.api.access")
    assert api_env.client.get("/projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "plantmrv.api.access"]
    assert any("who=ops%0Aevent%3Drequest%20who%3Dadmin-1" in line for line in lines), lines
    assert all("\n" not in line for line in lines) and not any(" who=admin-1" in line for line in lines)


@pytest.mark.parametrize("name", ["api_token", "key", "apikey", "X-Api-Key", "password", "passwd", "access_token", "secret", "auth", "client_secret", "session_id", "sig"])
def test_credential_like_query_parameters_are_redacted_in_logs(api_env, caplog, name):
    caplog.set_level(logging.INFO, logger="plantmrv.api.access")
    api_env.get("/projects", params={name: "hunter2-secret-value", "interval": "day"})
    (line,) = [r.getMessage() for r in caplog.records if r.name == "plantmrv.api.access"]
    assert f"{name}=***" in line and "interval=day" in line and "hunter2" not in line


def test_token_shaped_text_is_masked_anywhere_in_a_log_line(api_env, caplog):
    caplog.set_level(logging.INFO, logger="plantmrv.api.access")
    secret = TOKENS["admin"]
    api_env.client.get(f"/projects/{secret}", params={"note": secret})
    api_env.client.get("/projects", headers={"Authorization": f"Bearer {secret}x"})
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in text and secret[5:] not in text and "path=/projects/pmrv_***" in text and "note=pmrv_***" in text
