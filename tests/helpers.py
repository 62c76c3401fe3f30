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


def craft_message(header: bytes, columns: bytes = b"", compress: bool = False, flags: int = 0, level: int = 9) -> bytes:
    """A plantmrv wire message built by hand (any header, any columns): for hostile-input tests."""
    import struct
    import zlib

    body = header + columns
    if compress:
        body = zlib.compress(body, level)
        flags |= 0x01
    msg = struct.pack("<4sBBI", b"PMRV", 1, flags, len(header)) + body
    return msg + struct.pack("<I", zlib.crc32(msg))


def compression_bomb(inflated_bytes: int, header: bytes = b'{"series":[],"n":0}') -> bytes:
    """A valid-looking compressed batch whose body inflates to ``inflated_bytes`` (zlib's ~1000:1)."""
    import zlib

    c = zlib.compressobj(9)
    chunk = bytes(1 << 20)
    parts = [c.compress(header)]
    left = inflated_bytes - len(header)
    while left > 0:
        parts.append(c.compress(chunk[: min(left, len(chunk))]))
        left -= len(chunk)
    parts.append(c.flush())
    import struct

    body = b"".join(parts)
    msg = struct.pack("<4sBBI", b"PMRV", 1, 0x01, len(header)) + body
    return msg + struct.pack("<I", zlib.crc32(msg))
