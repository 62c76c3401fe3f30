"""InfluxDB client over the v1-compatible HTTP API (``/ping``, ``/write``, ``/query``).

InfluxDB 1.x, 2.x (with a DBRP mapping) and 3.x all serve this API, so one code path serves
all three. Auth: none, v1 user + password, or a v2/v3 token (``Authorization: Token``).

The client takes line-protocol bodies, not samples: callers encode (:mod:`plantmrv.lineprotocol`;
:mod:`plantmrv.influxwrite` routes, encodes and writes a sample batch in one call). Writes retry
with exponential backoff and full jitter on connection errors, 429 and 5xx
(honouring ``Retry-After``); a 400 *partial write* raises :class:`PartialWriteError` naming the
rejected lines, so the caller can dead-letter exactly those. Queries are InfluxQL, read in
chunks and returned as numpy columns: as MessagePack where the server speaks it (InfluxDB >= 1.4;
rows of floats are decoded straight into numpy), else as JSON, with the same results.
"""

from __future__ import annotations

import base64
import gzip as gzip_lib
import io
import json
import logging
import re
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import httpx
import numpy as np

try:  # a declared dependency; without it queries fall back to JSON
    import msgpack
except ImportError:  # pragma: no cover
    msgpack = None

from plantmrv.retry import backoff_delay
from plantmrv.httpconn import HttpConnection

log = logging.getLogger("plantmrv.influx")


class InfluxError(Exception):
    """A request InfluxDB refused or could not serve (after retries)."""

    def __init__(self, message: str, status: int | None = None, retry_after: str | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # the server's Retry-After header, if it sent one


class PartialWriteError(InfluxError):
    """InfluxDB accepted some lines of a body and rejected others (HTTP 400)."""

    def __init__(self, message: str, rejected_lines: list[int], body_lines: int, dropped: int | None):
        super().__init__(message, 400)
        self.rejected_lines = rejected_lines  # 0-based indices into the body's lines
        self.body_lines = body_lines
        self.dropped = dropped


@dataclass
class WriteStats:
    bodies: int = 0
    lines: int = 0
    bytes: int = 0
    retries: int = 0
    seconds: float = 0.0


@dataclass
class QueryResult:
    """One series of an InfluxQL result: name, tags and numpy columns (``time`` as int64 ns)."""

    name: str
    tags: dict[str, str]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def _influxql_escape(text: str, quote: str) -> str:
    if "\r" in text:
        raise ValueError(f"{text!r}: InfluxQL has no escape for a carriage return")
    return text.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n")


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted and escaped (user input never reaches a query raw)."""
    return '"' + _influxql_escape(name, '"') + '"'


def quote_literal(value: str) -> str:
    """An InfluxQL string literal, single-quoted and escaped."""
    return "'" + _influxql_escape(value, "'") + "'"


_UNABLE = re.compile(r"unable to parse '((?:[^'\\]|\\.)*)'")
_DROPPED = re.compile(r"dropped=(\d+)")


class InfluxClient:
    """Synchronous client with a keep-alive connection pool. Thread-safe for concurrent writes."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8086",
        database: str = "plantmrv",
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout_s: float = 10.0,
        gzip: bool = False,
        max_retries: int = 5,
        batch_lines: int = 5000,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        ca_file: str | None = None,
    ):
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.gzip = gzip
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self.retries = 0  # total retries made, for metrics
        self.batch_lines = batch_lines  # lines per /write body callers encode for this server (influxdb.batch_lines)
        headers = {"User-Agent": "plantmrv"}
        auth = None
        if token:
            headers["Authorization"] = f"Token {token}"
        elif username:
            auth = httpx.BasicAuth(username, password or "")
        self.timeout_s = timeout_s
        self._url = urllib.parse.urlsplit(self.url)
        self._ssl = _ssl_context(ca_file) if ca_file else None
        self._write_headers = dict(headers)
        if auth is not None:
            self._write_headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        self._local = threading.local()
        self._write_targets: dict[str, str] = {}  # precision -> /write?db=...
        self._conns: list[HttpConnection] = []
        self._conns_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_keepalive_connections=8, max_connections=16),
            verify=self._ssl or True,
        )

    @classmethod
    def from_config(cls, cfg) -> "InfluxClient":
        return cls(
            url=cfg.url,
            database=cfg.database,
            retention_policy=cfg.retention_policy,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            token=cfg.token.get_secret_value() if cfg.token else None,
            timeout_s=cfg.timeout_s,
            gzip=cfg.gzip,
            max_retries=cfg.max_retries,
            batch_lines=cfg.batch_lines,
            ca_file=str(cfg.tls.ca_file) if cfg.tls and cfg.tls.ca_file else None,
        )

    def close(self) -> None:
        self._http.close()
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def __enter__(self) -> "InfluxClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _backoff(self, attempt: int, retry_after: str | None = None) -> float:
        return backoff_delay(attempt, self.backoff_base_s, self.backoff_max_s, retry_after)

    def _request(self, method: str, path: str, *, retry: bool = True, send=None, **kwargs):
        """Send with retries on connection errors, 429 and 5xx; ``send`` overrides the transport."""
        send = send or (lambda: self._http.request(method, path, **kwargs))
        attempt = 0
        while True:
            try:
                resp = send()
            except (httpx.TransportError, OSError) as exc:
                if not retry or attempt >= self.max_retries:
                    raise InfluxError(f"InfluxDB at {self.url} unreachable: {exc.__class__.__name__}: {exc}") from None
                delay = self._backoff(attempt)
                log.warning("event=influx_retry reason=%s attempt=%d delay_s=%.2f", exc.__class__.__name__, attempt + 1, delay)
            else:
                if resp.status_code == 429 or resp.status_code >= 500:
                    if not retry or attempt >= self.max_retries:
                        raise InfluxError(f"InfluxDB {path} answered {resp.status_code}: {_error_text(resp)}", resp.status_code,
                                          resp.headers.get("Retry-After"))
                    delay = self._backoff(attempt, resp.headers.get("Retry-After"))
                    log.warning("event=influx_retry status=%d attempt=%d delay_s=%.2f", resp.status_code, attempt + 1, delay)
                else:
                    return resp
            attempt += 1
            self.retries += 1
            self._sleep(delay)

    def _connection(self) -> HttpConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            tls = self._url.scheme == "https"
            conn = HttpConnection(self._url.hostname, self._url.port or (443 if tls else 80), tls=tls, timeout_s=self.timeout_s, ssl_context=self._ssl)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _post(self, path: str, content: bytes, headers: dict[str, str]) -> "_Response":
        """POST on this thread's keep-alive connection; a gzip answer is unpacked.

        For the hot paths, writes (ingest, gateway) and raw-data queries (analytics):
        :class:`~plantmrv.httpconn.HttpConnection` costs less CPU per request than ``http.client``,
        and httpx more still (bench/README.md, httpconn).
        """
        status, answer_headers, body = self._connection().request(
            "POST", f"{self._url.path.rstrip('/')}{path}", {**self._write_headers, **headers}, content
        )
        out = _Response(status, answer_headers, body)
        if out.headers.get("Content-Encoding", "").lower() == "gzip":
            out.content = gzip_lib.decompress(out.content)
        return out

    def _params(self, **extra) -> dict[str, str]:
        params = {"db": self.database}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        params.update({k: v for k, v in extra.items() if v is not None})
        return params

    # ------------------------------------------------------------------ API

    def ping(self, retry: bool = False) -> str:
        """Return the server version; raise :class:`InfluxError` if it does not answer."""
        resp = self._request("GET", "/ping", retry=retry)
        if resp.status_code not in (200, 204):
            raise InfluxError(f"InfluxDB /ping answered {resp.status_code}", resp.status_code)
        return resp.headers.get("X-Influxdb-Version", "unknown")

    def write_body(self, body: bytes, precision: str = "ns", *, retry: bool = True) -> None:
        """POST one line-protocol body; retries transient failures (``retry``: up to ``max_retries``
        times; False for a caller that retries itself); raises on refusal."""
        content = gzip_lib.compress(body, compresslevel=1) if self.gzip else body
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            headers["Content-Encoding"] = "gzip"
        target = self._write_targets.get(precision)
        if target is None:
            target = self._write_targets[precision] = "/write?" + urllib.parse.urlencode(self._params(precision=precision))
        resp = self._request("POST", "/write", retry=retry, send=lambda: self._post(target, content, headers))
        if resp.status_code == 204:
            return
        text = _error_text(resp)
        if resp.status_code == 400 and ("partial write" in text or "unable to parse" in text):
            raise _partial_write(text, body)
        if resp.status_code in (401, 403):
            raise InfluxError(f"InfluxDB refused the credentials for /write on database {self.database!r}: {text}", resp.status_code)
        if resp.status_code == 404:
            raise InfluxError(f"InfluxDB /write: {text} (database {self.database!r})", 404)
        raise InfluxError(f"InfluxDB /write answered {resp.status_code}: {text}", resp.status_code)

    def write_bodies(self, bodies: Iterable[bytes]) -> WriteStats:
        """POST each body in turn (:meth:`write_body`); count bodies, lines, bytes and retries."""
        stats = WriteStats()
        t0 = time.perf_counter()
        before = self.retries
        for body in bodies:
            self.write_body(body)
            stats.bodies += 1
            stats.lines += body.count(b"\n")
            stats.bytes += len(body)
        stats.retries = self.retries - before
        stats.seconds = time.perf_counter() - t0
        return stats

    def query_chunks(self, q: str, epoch: str = "ns", chunk_size: int = 10000, database: str | None = None) -> Iterator[dict]:
        """Yield the JSON documents of a chunked InfluxQL query (one per chunk).

        Connection errors before the first chunk are retried like writes; after it (a stream cut
        mid-way) they raise :class:`InfluxError`, since the caller already holds part of the answer.
        """
        params = self._query_params(q, epoch, chunk_size, database)
        attempt = 0
        while True:
            started = False
            try:
                with self._http.stream("POST", "/query", data=params, headers=self._query_headers()) as resp:
                    if resp.status_code != 200:
                        resp.read()
                        if (resp.status_code == 429 or resp.status_code >= 500) and attempt < self.max_retries:
                            raise _Retry(resp.headers.get("Retry-After"))
                        raise InfluxError(f"InfluxDB /query answered {resp.status_code}: {_error_text(resp)} (query: {q})", resp.status_code)
                    for line in resp.iter_lines():
                        if line.strip():
                            started = True
                            yield json.loads(line)
                return
            except _Retry as retry:
                delay = self._backoff(attempt, retry.retry_after)
            except httpx.TransportError as exc:
                if started or attempt >= self.max_retries:
                    raise InfluxError(f"InfluxDB at {self.url} unreachable during a query: {exc.__class__.__name__}: {exc}") from None
                delay = self._backoff(attempt)
            log.warning("event=influx_query_retry attempt=%d delay_s=%.2f", attempt + 1, delay)
            attempt += 1
            self.retries += 1
            self._sleep(delay)

    def _query_params(self, q: str, epoch: str, chunk_size: int, database: str | None) -> dict[str, str]:
        params = {"q": q, "db": database or self.database, "epoch": epoch, "chunked": "true", "chunk_size": str(chunk_size)}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        return params

    def _query_headers(self, accept: str | None = None) -> dict[str, str]:
        """Query answers uncompressed unless ``gzip`` is set: influxd 1.x spends a large share of
        a raw-data query's CPU compressing it (bench/README.md, backfill), which loopback and LAN
        do not need."""
        headers = {"Accept-Encoding": "gzip" if self.gzip else "identity"}
        if accept:
            headers["Accept"] = accept
        return headers

    def query(self, q: str, epoch: str = "ns", database: str | None = None, fmt: str = "msgpack", chunk_size: int = 100_000) -> list[QueryResult]:
        """Run InfluxQL; return one :class:`QueryResult` per (statement, series), chunks merged.

        ``fmt="msgpack"`` asks for MessagePack (``Accept: application/x-msgpack``, InfluxDB >= 1.4),
        which costs influxd less CPU than JSON (bench/README.md, backfill); rows whose cells are all float64 / int64 are
        decoded into numpy without a Python object per value. A server that answers JSON anyway
        (InfluxDB 3's v1 API) is read as JSON. ``fmt="json"``, no ``epoch`` (RFC 3339 times) or
        no ``msgpack`` package: chunked JSON. Results are identical either way.
        """
        if fmt == "json" or not epoch or msgpack is None:
            return _merge_series(_json_series(self.query_chunks(q, epoch=epoch, database=database), q), epoch)
        if fmt != "msgpack":
            raise ValueError(f"fmt={fmt!r}: use msgpack or json")
        params = self._query_params(q, epoch, chunk_size, database)
        # the whole answer is read before decoding, so a connection cut mid-answer is retried too
        form = urllib.parse.urlencode(params).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self._query_headers(_MSGPACK)}
        resp = self._request("POST", "/query", send=lambda: self._post("/query", form, headers))
        if resp.status_code != 200:
            raise InfluxError(f"InfluxDB /query answered {resp.status_code}: {_query_error_text(resp)} (query: {q})", resp.status_code)
        if resp.headers.get("Content-Type", "").startswith(_MSGPACK):
            return _merge_series(_msgpack_series(resp.content, q, epoch), epoch)
        docs = (json.loads(line) for line in resp.content.splitlines() if line.strip())
        return _merge_series(_json_series(docs, q), epoch)

    def execute(self, q: str) -> dict:
        """Run a management statement (CREATE, DROP, ...) with POST; raise on error."""
        resp = self._request("POST", "/query", data={"q": q, "db": self.database})
        if resp.status_code != 200:
            raise InfluxError(f"InfluxDB /query answered {resp.status_code}: {_error_text(resp)} (statement: {q})", resp.status_code)
        doc = resp.json()
        for result in doc.get("results", []):
            if "error" in result:
                raise InfluxError(f"InfluxDB: {result['error']} (statement: {q})")
        return doc

    def create_database(self, name: str | None = None) -> None:
        self.execute(f"CREATE DATABASE {quote_ident(name or self.database)}")

    def create_retention_policy(
        self, name: str, duration: str, replication: int = 1, default: bool = False, database: str | None = None
    ) -> None:
        if not re.fullmatch(r"(INF|\d+[smhdw](\d+[smhdw])*)", duration):
            raise ValueError(f"retention policy duration {duration!r} is not like 30d, 52w or INF")
        stmt = f"CREATE RETENTION POLICY {quote_ident(name)} ON {quote_ident(database or self.database)} DURATION {duration} REPLICATION {int(replication)}"
        if default:
            stmt += " DEFAULT"
        self.execute(stmt)


def _ssl_context(ca_file: str) -> ssl.SSLContext:
    """Verify InfluxDB's certificate against this CA (instead of the system's trust store)."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls.ca_file {ca_file}: cannot load a CA certificate from it: {getattr(exc, 'strerror', None) or exc}") from None


@dataclass
class _Response:
    """The parts of an HTTP answer the client reads."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


class _Retry(Exception):
    def __init__(self, retry_after: str | None):
        self.retry_after = retry_after


def _error_text(resp) -> str:
    try:
        doc = resp.json()
        if isinstance(doc, dict) and "error" in doc:
            return str(doc["error"])
        if isinstance(doc, dict) and "message" in doc:
            return str(doc["message"])
    except Exception:
        pass
    return resp.text[:500]


def _partial_write(text: str, body: bytes) -> PartialWriteError:
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    rejected: list[int] = []
    for m in _UNABLE.finditer(text):
        snippet = m.group(1).encode("utf-8", "surrogateescape")
        for i, line in enumerate(lines):
            if i not in rejected and line.startswith(snippet[:200]):
                rejected.append(i)
                break
    dropped = _DROPPED.search(text)
    return PartialWriteError(
        f"InfluxDB rejected {len(rejected) or (dropped.group(1) if dropped else 'some')} of {len(lines)} lines: {text[:500]}",
        sorted(rejected),
        len(lines),
        int(dropped.group(1)) if dropped else None,
    )


_MSGPACK = "application/x-msgpack"

#: one series of one chunk: ((statement_id, name, sorted tags), columns, rows as lists or numpy columns)
_Piece = tuple[tuple, list[str], "list[list] | dict[str, np.ndarray]"]


def _query_error_text(resp) -> str:
    """The error of a refused query, also when the body is MessagePack."""
    if resp.headers.get("X-Influxdb-Error"):
        return resp.headers["X-Influxdb-Error"]
    if msgpack is not None and resp.headers.get("Content-Type", "").startswith(_MSGPACK):
        try:
            doc = msgpack.unpackb(resp.content, raw=False)
            if isinstance(doc, dict) and "error" in doc:
                return str(doc["error"])
        except Exception:
            pass
    return _error_text(resp)


def json_series(docs: Iterable[dict], q: str) -> Iterator[tuple[int, dict]]:
    """(statement id, series) of every series in JSON ``/query`` documents; an error raises, naming the query."""
    for doc in docs:
        if "error" in doc:
            raise InfluxError(f"InfluxDB query error: {doc['error']} (query: {q})")
        for result in doc.get("results", []):
            if "error" in result:
                raise InfluxError(f"InfluxDB query error: {result['error']} (query: {q})")
            for s in result.get("series", []) or []:
                yield result.get("statement_id", 0), s


def _json_series(docs: Iterable[dict], q: str) -> Iterator[_Piece]:
    for statement_id, s in json_series(docs, q):
        key = (statement_id, s.get("name", ""), tuple(sorted((s.get("tags") or {}).items())))
        yield key, s["columns"], s.get("values", []) or []


def _msgpack_series(content: bytes, q: str, epoch: str) -> Iterator[_Piece]:
    """Walk a stream of MessagePack answers (one per chunk), laid out like the JSON ones."""
    u = msgpack.Unpacker(io.BytesIO(content), raw=False)
    while u.tell() < len(content):
        for _ in range(u.read_map_header()):
            key = u.unpack()
            if key == "error":
                raise InfluxError(f"InfluxDB query error: {u.unpack()} (query: {q})")
            if key != "results":
                u.skip()
                continue
            for _ in range(u.read_array_header()):
                statement_id, found = 0, []
                for _ in range(u.read_map_header()):
                    rkey = u.unpack()
                    if rkey == "statement_id":
                        statement_id = u.unpack()
                    elif rkey == "error":
                        raise InfluxError(f"InfluxDB query error: {u.unpack()} (query: {q})")
                    elif rkey == "series":
                        found += [_msgpack_one_series(u, content, epoch) for _ in range(u.read_array_header())]
                    else:
                        u.skip()
                for name, tags, columns, data in found:
                    yield (statement_id, name, tuple(sorted(tags.items()))), columns, data


def _msgpack_one_series(u, content: bytes, epoch: str):
    name, tags, columns, data = "", {}, [], []
    for _ in range(u.read_map_header()):
        key = u.unpack()
        if key == "name":
            name = u.unpack()
        elif key == "tags":
            tags = u.unpack() or {}
        elif key == "columns":
            columns = u.unpack()
        elif key == "values":
            n = u.read_array_header()
            fixed = _fixed_rows(content, u.tell(), n, columns, epoch)
            if fixed is not None:
                data, nbytes = fixed
                u.read_bytes(nbytes)
            else:
                data = [u.unpack() for _ in range(n)]
        else:
            u.skip()
    return name, tags, columns, data


def _fixed_rows(content: bytes, start: int, n: int, columns: list[str], epoch: str):
    """Decode ``n`` rows at ``start`` into numpy columns when every cell is a MessagePack float64
    (0xcb) or int64 (0xd3), one type per column; None otherwise (nulls, strings, small ints).

    influxd writes each row as an array header and one value per column, so with these two
    types every row has the same length and the layout is checked row by row, cell by cell,
    before any value is read. ``time`` stays int64 (epoch), other columns become float64, as
    the JSON path makes them.
    """
    k = len(columns)
    if n == 0 or not 0 < k < 16:
        return None
    width = 1 + 9 * k
    nbytes = n * width
    if start + nbytes > len(content):
        return None
    raw = np.frombuffer(content, np.uint8, nbytes, start).reshape(n, width)
    if not (raw[:, 0] == 0x90 | k).all():
        return None
    out = {}
    for j, name in enumerate(columns):
        kind = raw[:, 1 + 9 * j]
        first = int(kind[0])
        is_time = name == "time" and bool(epoch)
        if first not in (0xCB, 0xD3) or (is_time and first != 0xD3) or not (kind == first).all():
            return None
        cells = np.ascontiguousarray(raw[:, 2 + 9 * j : 10 + 9 * j]).view(">f8" if first == 0xCB else ">i8").ravel()
        out[name] = cells.astype(np.int64 if is_time else np.float64)
    return out, nbytes


def _merge_series(pieces: Iterable[_Piece], epoch: str | None) -> list[QueryResult]:
    """One :class:`QueryResult` per (statement, series), in order of first appearance."""
    merged: dict[tuple, tuple[list[str], list]] = {}
    for key, columns, data in pieces:
        if key not in merged:
            merged[key] = (columns, [])
        merged[key][1].append(data)
    return [QueryResult(key[1], dict(key[2]), _merge_parts(columns, parts, epoch)) for key, (columns, parts) in merged.items()]


def _merge_parts(columns: list[str], parts: list, epoch: str | None) -> dict[str, np.ndarray]:
    if all(isinstance(p, list) for p in parts):
        return _columns(columns, [row for p in parts for row in p], epoch)
    arrays = [p if isinstance(p, dict) else _columns(columns, p, epoch) for p in parts]
    if all(a[c].dtype != object for a in arrays for c in a):
        # every part numeric: concatenating equals converting the merged rows
        return {c: np.concatenate([a[c] for a in arrays]) for c in arrays[0]}
    rows = [row for p in parts for row in (p if isinstance(p, list) else zip(*(p[c].tolist() for c in columns)))]
    return _columns(columns, rows, epoch)


def _columns(columns: list[str], rows: list[list], epoch: str | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    transposed = list(zip(*rows)) if rows else [() for _ in columns]
    for name, col in zip(columns, transposed):
        if name == "time" and epoch:
            out[name] = np.array(col, dtype=np.int64)
            continue
        try:
            out[name] = np.array(col, dtype=np.float64)  # fast path: all numbers
            continue
        except (TypeError, ValueError):
            pass
        if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in col):
            out[name] = np.array([np.nan if v is None else v for v in col], dtype=np.float64)
        else:
            out[name] = np.array(col, dtype=object)
    return out
