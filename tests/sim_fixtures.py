"""Start the plant simulator (``python -m plantmrv.simulators``) as a subprocess for tests.

Usage from any test (this module is loaded as a pytest plugin by ``tests/conftest.py``)::

    def test_something(simulator):
        sim = simulator(["--plants", "pump,pv", "--speed", "60"])
        sim.endpoint        # "opc.tcp://127.0.0.1:<free port>"
        sim.node_id("danang", "pump1", "power_kw")   # "ns=2;s=danang/pump1/power_kw"
        sim.fault_log       # Path of the JSONL fault log (read with sim.faults())
        sim.stop()          # optional: the fixture stops it at teardown anyway

Or without pytest: ``handle = start_simulator(args, tmp_path)`` ... ``handle.stop()``.

The simulator listens on a free loopback port; the helper waits for the
``plantmrv-sim ready endpoint=... tags=N`` line on stdout. If the process exits or does not
become ready in time, :class:`SimulatorError` carries its stderr. Processes are stopped by PID
(SIGINT, then SIGKILL after a timeout), never by name.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pytest

from plantmrv.localservices import free_port

READY_RE = re.compile(r"plantmrv-sim ready endpoint=(\S+) tags=(\d+)")


class SimulatorError(RuntimeError):
    """The simulator did not start (message includes its stderr tail)."""


@dataclass
class SimHandle:
    """A running simulator subprocess."""

    proc: subprocess.Popen
    endpoint: str
    host: str
    port: int
    tags: int
    workdir: Path
    fault_log: Path
    stdout_path: Path
    stderr_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def node_id(self, site: str, asset: str, field_name: str, ns: int = 2) -> str:
        """NodeId string of a served tag."""
        return f"ns={ns};s={site}/{asset}/{field_name}"

    def faults(self) -> list[dict]:
        """Records of the JSONL fault log so far."""
        if not self.fault_log.exists():
            return []
        return [json.loads(x) for x in self.fault_log.read_text().splitlines() if x.strip()]

    def stderr(self, n: int = 40) -> str:
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stdout(self) -> str:
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Stop by PID: SIGINT (clean shutdown), SIGKILL after ``timeout_s``. Returns exit code."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        return self.proc.returncode


def start_simulator(
    args: Sequence[str],
    tmp_path: str | os.PathLike,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 60.0,
) -> SimHandle:
    """Start ``python -m plantmrv.simulators --host HOST --port PORT --fault-log ... *args``.

    Parameters
    ----------
    args : list of str  Extra simulator options (``--plants``, ``--config``, ``--mqtt`` ...)
    tmp_path : path  Working directory for logs, the fault log and certificates
    port : int, optional  Port (default: a free loopback port)
    env : dict, optional  Extra environment (e.g. ``PLANTMRV_SIM_PASSWORD``)
    ready_timeout_s : float  How long to wait for the ready line

    Returns
    -------
    SimHandle
    """
    work = Path(tmp_path)
    work.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    n = len(list(work.glob("sim-*.stdout")))
    out_p, err_p = work / f"sim-{n}.stdout", work / f"sim-{n}.stderr"
    fault_log = work / f"sim-{n}-faults.jsonl"
    args = list(args)
    if "--fault-log" not in args:
        args += ["--fault-log", str(fault_log)]
    else:
        fault_log = Path(args[args.index("--fault-log") + 1])
    cmd = [sys.executable, "-m", "plantmrv.simulators", "--host", host, "--port", str(port), *args]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(out_p, "wb") as out, open(err_p, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=full_env, cwd=work)
    deadline = time.monotonic() + ready_timeout_s
    handle = None
    while time.monotonic() < deadline:
        m = READY_RE.search(out_p.read_text(errors="replace"))
        if m:
            handle = SimHandle(proc, m.group(1), host, port, int(m.group(2)), work, fault_log, out_p, err_p, args)
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if handle is None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        tail = "\n".join(err_p.read_text(errors="replace").splitlines()[-30:])
        raise SimulatorError(
            f"simulator not ready (exit code {proc.returncode}) after {ready_timeout_s}s: {' '.join(cmd)}\n{tail}"
        )
    return handle


@pytest.fixture
def simulator(tmp_path):
    """Factory fixture: ``simulator(args, **kw) -> SimHandle``; all stopped at teardown.

    A simulator that cannot start fails the test with its stderr (never a skip).
    """
    handles: list[SimHandle] = []

    def _start(args: Sequence[str] = ("--plants", "pump"), **kw) -> SimHandle:
        try:
            h = start_simulator(args, tmp_path / f"sim{len(handles)}", **kw)
        except SimulatorError as exc:
            pytest.fail(str(exc), pytrace=False)
        handles.append(h)
        return h

    yield _start
    for h in handles:
        h.stop()
