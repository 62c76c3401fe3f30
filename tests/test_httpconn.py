"""HttpConnection against a real scripted TCP server on loopback (no socket mocks).

The server (``ScriptedServer``) accepts connections one after another on 127.0.0.1, reads each
request completely (head up to CRLFCRLF, then Content-Length bytes of body), records it, and
answers with the next scripted ``Reply``: raw bytes (optionally written piece by piece with
pauses), then keeps the connection, closes it, or hangs without answering.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest

from plantmrv.httpconn import HttpConnection, HttpProtocolError

KEEP, CLOSE, HANG = "keep", "close", "hang"


@dataclass
class Reply:
    """What the server does after reading one request.

    ``data``: the raw answer (``None``: no answer at all); ``pieces``: write it in pieces of this
    many bytes with ``pause`` seconds between them; ``then``: ``keep`` the connection for the next
    request, ``close`` it, or ``hang`` (no answer, hold the connection open until teardown).
    """

    data: bytes | None = b"HTTP/1.1 204 No Content\r\n\r\n"
    then: str = KEEP
    pieces: int = 0
    pause: float = 0.0


@dataclass
class Request:
    conn_no: int
    head: bytes
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) == 1, (name, self.headers)
        return values[0]


@dataclass
class ScriptedServer:
    script: list[Reply] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    accepts: int = 0
    closed: int = 0  # connections the server has closed (or seen closed)
    errors: list[BaseException] = field(default_factory=list)

    def __post_init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="scripted-http", daemon=True)
        self._thread.start()

    # -- test side

    def wait_closed(self, n: int, timeout: float = 5.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: self.closed >= n, timeout), f"server closed {self.closed} < {n} connections"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "server thread did not stop"
        self._listener.close()

    # -- server thread

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.accepts += 1
                conn_no = self.accepts
            try:
                conn.settimeout(0.05)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._handle(conn, conn_no)
            except BaseException as exc:  # recorded; tests that expect none assert on it
                self.errors.append(exc)
            finally:
                conn.close()
                with self._cond:
                    self.closed += 1
                    self._cond.notify_all()

    def _recv(self, conn: socket.socket) -> bytes | None:
        """Bytes from the client; b"" at EOF; None if stopping."""
        while not self._stop.is_set():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                return b""  # the client closed with our answer unread: as good as EOF
        return None

    def _handle(self, conn: socket.socket, conn_no: int) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = self._recv(conn)
                if not data:
                    return  # EOF (client closed) or stopping
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
            length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            while len(buf) < length:
                data = self._recv(conn)
                if not data:
                    raise AssertionError(f"client closed after {len(buf)} of {length} body bytes")
                buf += data
            body, buf = buf[:length], buf[length:]
            with self._cond:
                self.requests.append(Request(conn_no, head, method, target, version, headers, body))
                reply = self.script.pop(0) if self.script else Reply(None, CLOSE)
            if reply.then == HANG:
                self._stop.wait()
                return
            try:
                if reply.data is not None and reply.pieces:
                    for i in range(0, len(reply.data), reply.pieces):
                        conn.sendall(reply.data[i : i + reply.pieces])
                        time.sleep(reply.pause)
                elif reply.data is not None:
                    conn.sendall(reply.data)
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up on the answer (e.g. an oversized head) and closed
            if reply.then == CLOSE:
                return


@pytest.fixture
def server():
    srv = ScriptedServer()
    yield srv
    srv.stop()
    assert not srv.errors, srv.errors


@pytest.fixture
def connect(server):
    conns: list[HttpConnection] = []

    def make(timeout_s: float = 5.0) -> HttpConnection:
        conn = HttpConnection("127.0.0.1", server.port, timeout_s=timeout_s)
        conns.append(conn)
        return conn

    yield make
    for conn in conns:
        conn.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


# ------------------------------------------------------------------ requests as sent


@pytest.mark.parametrize("size", [0, 100, 16384, 16385, 1 << 20], ids=["empty", "small", "16KiB", "16KiB+1", "1MiB"])
def test_post_sends_exact_request_and_reads_204(server, connect, size):
    body = bytes(i % 251 for i in range(size))
    server.script = [Reply(b"HTTP/1.1 204 No Content\r\nx-influxdb-version: 1.8.10\r\nrequest-id: abc\r\n\r\n")]
    conn = connect()
    headers = {"Authorization": "Token t0k", "Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}

    status, answer_headers, content = conn.request("POST", "/write?db=plant&precision=ns", headers, body)

    assert (status, content) == (204, b"")
    assert answer_headers == {"X-Influxdb-Version": "1.8.10", "Request-Id": "abc"}
    (req,) = server.requests
    assert (req.method, req.target, req.version) == ("POST", "/write?db=plant&precision=ns", "HTTP/1.1")
    assert req.header("Host") == f"127.0.0.1:{server.port}"
    assert req.header("Content-Length") == str(size)
    for name, value in headers.items():
        assert req.header(name) == value
    assert len(req.headers) == 2 + len(headers)
    assert req.body == body
    assert conn.sock is not None  # kept alive


def test_host_header_omits_default_port():
    assert HttpConnection("influx.example", 80)._host_header == "influx.example"
    assert HttpConnection("influx.example", 443, tls=True)._host_header == "influx.example"
    assert HttpConnection("influx.example", 443)._host_header == "influx.example:443"
    assert HttpConnection("influx.example", 8086)._host_header == "influx.example:8086"


def test_get_without_body_sends_content_length_zero(server, connect):
    server.script = [Reply(ok(b"pong"))]
    assert connect().request("GET", "/ping", {}) == (200, {"Content-Type": "text/plain", "Content-Length": "4"}, b"pong")
    (req,) = server.requests
    assert (req.method, req.target, req.header("Content-Length"), req.body) == ("GET", "/ping", "0", b"")


# ------------------------------------------------------------------ answer bodies


def test_content_length_body_and_repeated_headers(server, connect):
    server.script = [Reply(ok(b'{"results":[{"statement_id":0}]}', "Vary: Accept-Encoding\r\nvary:  Origin \r\n"))]
    status, headers, body = connect().request("POST", "/query", {})
    assert (status, body) == (200, b'{"results":[{"statement_id":0}]}')
    assert headers["Vary"] == "Accept-Encoding, Origin"
    assert headers["Content-Length"] == "32"


def test_large_content_length_body(server, connect):
    payload = bytes(i % 253 for i in range(3 * 1024 * 1024 + 7))
    server.script = [Reply(ok(payload)), Reply(ok(b"next"))]
    conn = connect()
    assert conn.request("POST", "/query", {})[2] == payload
    assert conn.request("POST", "/query", {})[2] == b"next"  # nothing of the big body left over
    assert server.accepts == 1


def test_chunked_body_with_extension_and_trailers(server, connect):
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n"
        b"1\r\n \r\n"
        b"A\r\n0123456789\r\n"
        b"1a \r\nabcdefghijklmnopqrstuvwxyz\r\n"
        b"0\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n"
    )
    server.script = [Reply(answer), Reply(ok(b"after"))]
    conn = connect()
    status, headers, body = conn.request("POST", "/query", {})
    assert (status, body) == (200, b"hello 0123456789abcdefghijklmnopqrstuvwxyz")
    assert headers["Transfer-Encoding"] == "chunked"
    # the trailers were consumed: the next answer on the same connection parses
    assert conn.request("POST", "/query", {}) == (200, {"Content-Type": "text/plain", "Content-Length": "5"}, b"after")
    assert server.accepts == 1


def test_chunked_body_with_large_chunks(server, connect):
    chunks = [bytes([65 + i]) * n for i, n in enumerate([70000, 1, 300000, 65536])]
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n"
    answer += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    server.script = [Reply(answer), Reply()]
    conn = connect()
    assert conn.request("POST", "/query", {})[2] == b"".join(chunks)
    assert conn.request("POST", "/write", {}, b"x")[0] == 204
    assert server.accepts == 1


def test_answer_in_many_small_writes_with_pauses(server, connect):
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Long: " + b"v" * 40 + b"\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: t\r\n\r\n"
    )
    server.script = [Reply(chunked, pieces=3, pause=0.002), Reply(ok(b"split body!"), pieces=1, pause=0.002)]
    conn = connect()
    status, headers, body = conn.request("POST", "/query", {})
    assert (status, body, headers["X-Long"]) == (200, b"hello, world", "v" * 40)
    assert conn.request("POST", "/query", {})[::2] == (200, b"split body!")
    assert server.accepts == 1


@pytest.mark.parametrize(
    "method,answer",
    [
        ("POST", b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"),
        ("GET", b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
    ],
    ids=["204", "304", "HEAD"],
)
def test_no_body_answers_leave_connection_usable(server, connect, method, answer):
    server.script = [Reply(answer), Reply(ok(b"second"))]
    conn = connect()
    status, _, body = conn.request(method, "/x", {})
    assert (status, body) == (int(answer[9:12]), b"")
    assert conn.request("GET", "/y", {})[::2] == (200, b"second")
    assert server.accepts == 1


def test_interim_100_continue_is_skipped(server, connect):
    server.script = [Reply(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"real", "X-Real: yes\r\n"))]
    status, headers, body = connect().request("POST", "/write", {}, b"data")
    assert (status, body, headers["X-Real"]) == (200, b"real", "yes")


def test_several_interim_answers_in_separate_writes(server, connect):
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-A: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    server.script = [Reply(data, pieces=20, pause=0.005)]
    assert connect().request("POST", "/write", {}, b"data") == (204, {}, b"")


# ------------------------------------------------------------------ keep-alive and closing


def test_keep_alive_uses_one_connection(server, connect):
    server.script = [Reply(ok(b"one")), Reply(ok(b"two")), Reply()]
    conn = connect()
    assert conn.request("POST", "/a", {}, b"1")[2] == b"one"
    sock = conn.sock
    assert conn.request("POST", "/b", {}, b"2" * 50000)[2] == b"two"
    assert conn.request("POST", "/c", {}, b"3")[0] == 204
    assert conn.sock is sock
    assert server.accepts == 1
    assert [(r.conn_no, r.target, len(r.body)) for r in server.requests] == [(1, "/a", 1), (1, "/b", 50000), (1, "/c", 1)]


def test_connection_close_answer_opens_new_connection(server, connect):
    server.script = [Reply(ok(b"bye", "Connection: close\r\n")), Reply(ok(b"hello again"))]
    conn = connect()
    assert conn.request("POST", "/a", {})[2] == b"bye"
    assert conn.sock is None  # closed by the client on "Connection: close"
    assert conn.request("POST", "/b", {})[2] == b"hello again"
    assert server.accepts == 2
    assert [r.conn_no for r in server.requests] == [1, 2]


@pytest.mark.parametrize(
    "extra,kept", [("", False), ("Connection: keep-alive\r\n", True), ("Connection: Keep-Alive, close\r\n", False)]
)
def test_http10_answer_keeps_only_with_keep_alive(server, connect, extra, kept):
    answer = f"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n{extra}\r\nok".encode()
    server.script = [Reply(answer), Reply(ok(b"again"))]  # the server keeps the socket open either way
    conn = connect()
    assert conn.request("POST", "/a", {}) == (200, {"Content-Length": "2", **({"Connection": extra[12:-2]} if extra else {})}, b"ok")
    assert (conn.sock is not None) is kept
    assert conn.request("POST", "/b", {})[2] == b"again"
    assert server.accepts == (1 if kept else 2)


def test_answer_without_length_is_read_to_eof(server, connect):
    payload = b"no length here\r\n\r\n" + b"z" * 200000
    server.script = [Reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + payload, then=CLOSE), Reply(ok(b"fresh"))]
    conn = connect()
    assert conn.request("POST", "/a", {}) == (200, {"Content-Type": "text/plain"}, payload)
    assert conn.sock is None
    assert conn.request("POST", "/b", {})[2] == b"fresh"
    assert server.accepts == 2


def test_idle_connection_closed_by_server_is_retried_once_on_a_fresh_one(server, connect):
    server.script = [Reply(ok(b"first"), then=CLOSE), Reply(ok(b"second"))]
    conn = connect()
    assert conn.request("POST", "/a", {}, b"1")[2] == b"first"
    assert conn.sock is not None  # the answer did not say close
    server.wait_closed(1)  # the server closed the now idle connection
    time.sleep(0.05)
    assert conn.request("POST", "/b", {}, b"2" * 1000)[2] == b"second"
    assert server.accepts == 2
    assert [(r.conn_no, r.target) for r in server.requests] == [(1, "/a"), (2, "/b")]


def test_reused_connection_closed_without_answer_is_retried_only_once(server, connect):
    # the server reads each request of /b and closes without answering: one retry, then the error
    server.script = [Reply(ok(b"first")), Reply(None, then=CLOSE), Reply(None, then=CLOSE), Reply(ok(b"never"))]
    conn = connect()
    assert conn.request("POST", "/a", {})[2] == b"first"
    with pytest.raises(ConnectionError):
        conn.request("POST", "/b", {}, b"payload")
    assert conn.sock is None
    assert server.accepts == 2
    assert [(r.conn_no, r.target, r.body) for r in server.requests] == [(1, "/a", b""), (1, "/b", b"payload"), (2, "/b", b"payload")]


def test_fresh_connection_closed_without_answer_raises(server, connect):
    server.script = [Reply(None, then=CLOSE), Reply(ok(b"late"))]
    conn = connect()
    with pytest.raises(ConnectionError) as info:
        conn.request("POST", "/write", {}, b"x")
    assert not isinstance(info.value, HttpProtocolError)
    assert "without answering" in str(info.value)
    assert conn.sock is None
    assert server.accepts == 1  # no retry on a fresh connection
    assert len(server.requests) == 1
    assert conn.request("POST", "/write", {}, b"x")[2] == b"late"  # usable afterwards


def test_refused_connection_raises_connection_error():
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionRefusedError):
        HttpConnection("127.0.0.1", port, timeout_s=2).request("GET", "/ping", {})


# ------------------------------------------------------------------ malformed answers


@pytest.mark.parametrize(
    "answer,message",
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP/1.x status line: b'SSH-2.0-OpenSSH_9.6'"),
        (b"HTTP/2 200\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 OK\r\n\r\n", "not an HTTP/1.x status line: b'HTTP/1.1 OK'"),
        (b"HTTP/1.1\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nno colon here\r\n\r\nok", "malformed header line: b'no colon here'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok", "bad Content-Length 'two'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", "bad Content-Length '-1'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nok", "bad Content-Length '\xb2'"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nab\r\n0\r\n\r\n", "bad chunk size b'-3'"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", "bad chunk size b'zz'"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", "bad chunk size b''"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", "a chunk is not followed by CRLF"),
    ],
    ids=["ssh", "http2", "no-status-code", "status-only-version", "header-no-colon", "length-text", "length-negative", "length-superscript", "chunk-size-negative",
         "chunk-size-hex", "chunk-size-empty", "chunk-no-crlf"],
)
def test_malformed_answer_raises_protocol_error_then_connection_recovers(server, connect, answer, message):
    server.script = [Reply(answer), Reply(ok(b"recovered"))]  # the server keeps the bad connection open
    conn = connect()
    with pytest.raises(HttpProtocolError, match="^" + re.escape(message)) as info:
        conn.request("POST", "/query", {})
    assert isinstance(info.value, ConnectionError)
    assert conn.sock is None
    assert conn._buf == b""
    assert conn.request("POST", "/query", {})[2] == b"recovered"
    assert server.accepts == 2  # the bad connection was dropped, not reused


@pytest.mark.parametrize(
    "answer,message",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40, "the server closed the connection after 40 of 100 body bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "the server closed the connection after 0 of 100 body bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "the server closed the connection in the middle of its answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "the server closed the connection after 3 of 5 body bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", "the server closed the connection in the middle of its answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTrailer: x\r\n", "the server closed the connection in the middle of its answer"),
    ],
    ids=["mid-body", "before-body", "mid-head", "mid-chunk", "before-last-chunk", "mid-trailers"],
)
def test_connection_closed_mid_answer_raises_protocol_error(server, connect, answer, message):
    server.script = [Reply(answer, then=CLOSE), Reply(ok(b"recovered"))]
    conn = connect()
    with pytest.raises(HttpProtocolError, match="^" + re.escape(message)):
        conn.request("POST", "/query", {})
    assert conn.sock is None
    assert conn.request("POST", "/query", {})[2] == b"recovered"
    assert server.accepts == 2


def test_closed_mid_answer_on_reused_connection_is_not_retried(server, connect):
    server.script = [Reply(ok(b"first")), Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart", then=CLOSE), Reply(ok(b"x"))]
    conn = connect()
    assert conn.request("POST", "/a", {})[2] == b"first"
    with pytest.raises(HttpProtocolError, match="after 4 of 9 body bytes"):
        conn.request("POST", "/b", {})
    assert server.accepts == 1  # an answer had started: no silent resend


def test_oversized_answer_head_raises(server, connect):
    server.script = [Reply(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200000)]  # no end of head in sight
    conn = connect()
    with pytest.raises(HttpProtocolError, match="exceeds 64 KiB"):
        conn.request("GET", "/", {})
    assert conn.sock is None


# ------------------------------------------------------------------ timeouts


def test_read_timeout_when_server_never_answers(server, connect):
    server.script = [Reply(None, then=HANG)]
    conn = connect(timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(OSError) as info:
        conn.request("POST", "/write", {}, b"x" * 100)
    elapsed = time.monotonic() - started
    assert isinstance(info.value, TimeoutError)  # socket.timeout is TimeoutError since 3.10
    assert 0.25 <= elapsed < 3.0
    assert conn.sock is None
    assert server.accepts == 1  # a timeout is not retried
    assert len(server.requests) == 1


def test_read_timeout_mid_body(server, connect):
    server.script = [Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", then=HANG)]
    conn = connect(timeout_s=0.3)
    with pytest.raises(TimeoutError):
        conn.request("POST", "/query", {})
    assert conn.sock is None


# ------------------------------------------------------------------ a large body on a connection the server closed while idle


def test_idle_connection_closed_by_server_is_retried_with_large_body(server, connect):
    server.script = [Reply(ok(b"first"), then=CLOSE), Reply(ok(b"second"))]
    conn = connect()
    assert conn.request("POST", "/a", {}, b"1")[2] == b"first"
    server.wait_closed(1)
    time.sleep(0.05)
    assert conn.request("POST", "/b", {}, b"2" * (1 << 20))[2] == b"second"
    assert server.accepts == 2
