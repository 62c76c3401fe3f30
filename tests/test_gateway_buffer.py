"""Durable buffer: fsync'ed appends survive kill -9, oldest-first replay, size cap, corrupt files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from plantmrv.batch import SampleBatch, Series
from plantmrv.codec import decode_message, encode_message
from plantmrv.gateway.buffer import DurableBuffer
from tests.test_gateway_support import REPO


def _blob(k: int, n: int = 10) -> bytes:
    s = Series.of("pump", "power_kw", site="s", asset="P1")
    b = SampleBatch.from_columns({s: (np.arange(n) + k * n, np.full(n, float(k)))})
    return encode_message(b, seq=k)


def test_buffer_replays_oldest_first_and_deletes_only_confirmed(tmp_path):
    buf = DurableBuffer(tmp_path / "b.db", max_bytes=10**9)
    for k in range(5):
        buf.append(_blob(k), 10)
    assert (buf.rows, buf.depth) == (5, 50)
    first = buf.peek(2)
    assert [decode_message(r.blob).meta["seq"] for r in first] == [0, 1]
    buf.delete(first)
    assert [decode_message(r.blob).meta["seq"] for r in buf.peek(10)] == [2, 3, 4]
    buf.close()
    again = DurableBuffer(tmp_path / "b.db", max_bytes=10**9)
    assert (again.rows, again.depth) == (3, 30)
    assert again.nbytes == sum(len(r.blob) for r in again.peek(10))
    again.close()


def test_buffer_size_cap_drops_oldest_and_reports_them(tmp_path):
    one = len(_blob(0))
    buf = DurableBuffer(tmp_path / "b.db", max_bytes=3 * one)
    dropped_all = []
    for k in range(6):
        _rid, dropped = buf.append(_blob(k), 10)
        dropped_all += dropped
    assert [d[1] for d in dropped_all] == [10, 10, 10]
    assert [decode_message(r.blob).meta["seq"] for r in buf.peek(10)] == [3, 4, 5]
    assert buf.nbytes <= 3 * one
    buf.close()


def test_buffer_moves_a_corrupt_file_aside_and_starts_fresh(tmp_path):
    path = tmp_path / "b.db"
    path.write_bytes(b"this is not an sqlite database" * 100)
    buf = DurableBuffer(path, max_bytes=10**6)
    assert buf.rows == 0
    buf.append(_blob(1), 10)
    assert buf.rows == 1
    assert list(tmp_path.glob("b.db.corrupt-*"))
    buf.close()


def test_buffer_appends_acknowledged_before_kill_9_survive(tmp_path):
    """A writer prints each id only after append() returned (fsync'ed); SIGKILL it mid-stream."""
    path = tmp_path / "b.db"
    code = textwrap.dedent(
        f"""
        import sys
        from tests.test_gateway_buffer import _blob
        from plantmrv.gateway.buffer import DurableBuffer
        buf = DurableBuffer({str(path)!r}, max_bytes=10**9)
        k = 0
        while True:
            rid, _ = buf.append(_blob(k, 500), 500)
            print(rid, flush=True)
            k += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, start_new_session=True)
    acked = []
    while len(acked) < 300:
        line = proc.stdout.readline()
        assert line, "writer died before 300 appends"
        acked.append(int(line))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    acked += [int(x) for x in proc.stdout.read().split()]  # printed just before the kill
    buf = DurableBuffer(path, max_bytes=10**9)
    stored = {r.id for r in buf.peek(100_000)}
    assert set(acked) <= stored, f"acknowledged but lost: {sorted(set(acked) - stored)[:10]}"
    for r in buf.peek(100_000):
        decode_message(r.blob)  # every stored blob is whole (CRC checked)
    buf.close()
