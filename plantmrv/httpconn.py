"""A lean keep-alive HTTP/1.1 client connection for InfluxDB's hot paths: writes and raw-data queries.

``http.client`` spends much of a write's client CPU in Python around the request (a buffered
reader per answer, the answer's headers parsed by the ``email`` package), and ingest makes a
write per 5,000 lines. This connection sends the request head and body together and reads the
answer with a few ``recv`` calls, for a fraction of ``http.client``'s CPU per request
(``bench/httpconn.py``; figures in bench/README.md).

It speaks what InfluxDB answers with: ``Content-Length`` or chunked bodies, keep-alive or
``Connection: close``, and no body for 204/304 or 1xx. A connection reused after being idle may
have been closed by the server; a request that gets no answer byte on a reused connection is
sent once more on a fresh one (InfluxDB's writes and queries are idempotent).
"""

from __future__ import annotations

import re
import socket
import ssl


class HttpProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.x as this client reads it."""


class _NoAnswer(ConnectionError):
    """The connection closed before the first byte of the answer."""


_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_RECV = 65536  # below glibc's mmap threshold: a bigger read buffer is mapped and unmapped per call


class HttpConnection:
    """One keep-alive connection (not thread-safe: one per thread)."""

    def __init__(self, host: str, port: int, tls: bool = False, timeout_s: float = 10.0, ssl_context: ssl.SSLContext | None = None):
        self.host = host
        self.port = port
        self.tls = tls
        self.timeout_s = timeout_s
        self.ssl_context = ssl_context  # TLS: verify with this context (a private CA); default: the system's
        name = f"[{host}]" if ":" in host and not host.startswith("[") else host  # an IPv6 literal is bracketed
        self._host_header = name if port == (443 if tls else 80) else f"{name}:{port}"
        self.sock: socket.socket | None = None
        self._buf = bytearray()

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self._buf.clear()

    def _connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock = (self.ssl_context or ssl.create_default_context()).wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def request(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        """Send one request; return (status, headers with title-cased names, body)."""
        head = [f"{method} {target} HTTP/1.1\r\nHost: {self._host_header}\r\nContent-Length: {len(body)}\r\n"]
        head += [f"{name}: {value}\r\n" for name, value in headers.items()]
        head.append("\r\n")
        head_bytes = "".join(head).encode("latin-1")
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                self._connect()
            try:
                try:
                    self._send(head_bytes, body)
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
                    raise _NoAnswer(f"the connection broke while sending: {exc}") from exc
                status, answer_headers, content, keep = self._read_answer(method)
            except _NoAnswer:
                self.close()
                if reused and attempt == 0:
                    continue  # the server closed the idle connection: once more on a fresh one
                raise
            except BaseException:
                self.close()
                raise
            if not keep:
                self.close()
            return status, answer_headers, content
        raise AssertionError("unreachable")

    def _send(self, head: bytes, body: bytes) -> None:
        sock = self.sock
        if len(body) <= 16384:
            sock.sendall(head + body)  # small: one copy costs less than a second system call
        elif self.tls:
            sock.sendall(head)  # SSL sockets have no sendmsg
            sock.sendall(body)
        else:
            sent = sock.sendmsg([head, body])  # one system call for the head and (most of) the body
            if sent < len(head):
                sock.sendall(head[sent:])
                sent = len(head)
            if sent < len(head) + len(body):
                sock.sendall(memoryview(body)[sent - len(head) :])

    # ---------------------------------------------------------------- reading

    def _recv_more(self, started: bool) -> None:
        try:
            chunk = self.sock.recv(_RECV)
        except (ConnectionResetError, ConnectionAbortedError) as exc:
            if not started:
                raise _NoAnswer(f"the connection broke before the answer: {exc}") from exc
            raise
        if not chunk:
            if not started:
                raise _NoAnswer("the server closed the connection without answering")
            raise HttpProtocolError("the server closed the connection in the middle of its answer")
        self._buf += chunk

    def _read_until(self, sep: bytes, what: str, started: bool = True) -> bytes:
        """The bytes before ``sep`` (both consumed); ``what`` names them if they exceed 64 KiB."""
        buf = self._buf
        while True:
            end = buf.find(sep)
            if end >= 0:
                out = bytes(buf[:end])
                del buf[: end + len(sep)]
                return out
            if len(buf) > 65536:
                raise HttpProtocolError(f"{what} exceeds 64 KiB")
            self._recv_more(started)
            started = True

    def _read_answer(self, method: str) -> tuple[int, dict[str, str], bytes, bool]:
        while True:
            lines = self._read_until(b"\r\n\r\n", "the answer's header", started=bool(self._buf)).split(b"\r\n")
            parts = lines[0].split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise HttpProtocolError(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
            status = int(parts[1])
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    raise HttpProtocolError(f"malformed header line: {line[:100]!r}")
                key = name.strip().decode("latin-1").title()
                value_text = value.strip().decode("latin-1")
                headers[key] = f"{headers[key]}, {value_text}" if key in headers else value_text
            if 100 <= status < 200:
                continue  # an interim answer; the real one follows
            break
        connection = headers.get("Connection", "").lower()
        keep = "close" not in connection and (parts[0] != b"HTTP/1.0" or "keep-alive" in connection)
        if method == "HEAD" or status in (204, 304):
            return status, headers, b"", keep
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            return status, headers, self._read_chunked(), keep
        length = headers.get("Content-Length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                raise HttpProtocolError(f"bad Content-Length {length!r}")
            return status, headers, self._read_exactly(int(length)), keep
        return status, headers, self._read_to_close(), False

    def _read_exactly(self, n: int) -> bytes:
        buf = self._buf
        if len(buf) >= n:
            out = bytes(buf[:n])
            del buf[:n]
            return out
        out = bytearray(n)
        have = len(buf)
        out[:have] = buf
        buf.clear()
        view = memoryview(out)
        while have < n:
            got = self.sock.recv_into(view[have:], min(n - have, 1 << 22))
            if not got:
                raise HttpProtocolError(f"the server closed the connection after {have} of {n} body bytes")
            have += got
        return bytes(out)

    def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size_text = self._read_until(b"\r\n", "a chunk-size line").split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise HttpProtocolError(f"bad chunk size {size_text[:40]!r}")
            size = int(size_text, 16)
            if size == 0:
                while self._read_until(b"\r\n", "a trailer line"):  # trailer fields, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._read_exactly(size))
            if self._read_until(b"\r\n", "the line after a chunk"):
                raise HttpProtocolError("a chunk is not followed by CRLF")

    def _read_to_close(self) -> bytes:
        parts = [bytes(self._buf)]
        self._buf.clear()
        while chunk := self.sock.recv(_RECV):
            parts.append(chunk)
        return b"".join(parts)
