"""systemd's notify protocol in plain Python: readiness, stopping, status and the watchdog.

A unit with ``Type=notify`` waits for ``READY=1`` on the datagram socket named by
``$NOTIFY_SOCKET``; with ``WatchdogSec=`` systemd sets ``$WATCHDOG_USEC`` and kills the service
(then restarts it) when ``WATCHDOG=1`` stops arriving, so a hung event loop does not go
unnoticed. Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op. No dependency: the
protocol is one ``sendto`` of ``KEY=value`` lines (sd_notify(3)).
"""

from __future__ import annotations

import os
import socket
import time


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``STATUS=...``, ...) to systemd; False when not under systemd."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or addr[0] not in "/@":
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
    except OSError:
        return False
    return True


def ready(status: str | None = None) -> bool:
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog_interval_s() -> float | None:
    """systemd's watchdog period for this process (``WatchdogSec=``), or None when there is none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Watchdog:
    """Pings systemd's watchdog from a loop that proves the service works; cheap to call often.

    ``ping()`` sends ``WATCHDOG=1`` at most every quarter of the period (systemd's advice is
    more often than half); with no watchdog configured it only returns.
    """

    def __init__(self) -> None:
        self.interval_s = watchdog_interval_s()
        self._last = float("-inf")

    def ping(self) -> None:
        if self.interval_s is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s / 4:
            self._last = now
            notify("WATCHDOG=1")
