"""Small helpers shared by the integration tests."""

from __future__ import annotations

import time


def wait_for(pred, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll ``pred`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")
