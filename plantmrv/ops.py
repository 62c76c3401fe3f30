"""What every long-running service serves to its operators: /metrics, /healthz and /readyz.

- ``/metrics``: Prometheus text (OpenMetrics when asked) from the service's registry, which
  :func:`new_registry` fills with the process collector (``process_cpu_seconds_total``,
  ``process_resident_memory_bytes``, ...), the Python platform and GC collectors and
  ``plantmrv_build_info{version,python,service}``. No ``*_created`` series.
- ``/healthz`` (liveness): 200 while the service's main loop beats (:meth:`Health.beat`), 503
  once it has not for ``stall_after_s``. A restart is the cure for a 503 here.
- ``/readyz`` (readiness): 200 when every check passes (the broker connected, InfluxDB
  answering, the buffer below its limit: each service registers its own), else 503; the body
  lists each check as ``ok|fail name: detail``.

Anything else is 404. The same heartbeat pings systemd's watchdog (:mod:`plantmrv.sdnotify`).
"""

from __future__ import annotations

import platform
import threading
import time
from socketserver import ThreadingMixIn
from typing import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Gauge, GCCollector, PlatformCollector, ProcessCollector, disable_created_metrics, make_wsgi_app

import plantmrv
from plantmrv.sdnotify import Watchdog

Check = Callable[[], tuple[bool, str]]


def new_registry(service: str) -> CollectorRegistry:
    """A private registry (tests run several services in one process) with the standard collectors."""
    disable_created_metrics()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    info = Gauge("plantmrv_build_info", "plantmrv version, Python version and service; always 1",
                 ["version", "python", "service"], registry=registry)
    info.labels(plantmrv.__version__, platform.python_version(), service).set(1)
    return registry


class Health:
    """Liveness (a heartbeat from the service's main loop) and readiness (named checks)."""

    def __init__(self, stall_after_s: float | None = None) -> None:
        self.stall_after_s = stall_after_s
        self.checks: dict[str, Check] = {}
        self.watchdog = Watchdog()
        self._beat = time.monotonic()

    def beat(self) -> None:
        """The main loop is alive: call it every loop (cheap); also pings systemd's watchdog."""
        self._beat = time.monotonic()
        self.watchdog.ping()

    def add_check(self, name: str, check: Check) -> None:
        self.checks[name] = check

    def live(self) -> tuple[bool, str]:
        if self.stall_after_s is None:
            return True, "ok"
        age = time.monotonic() - self._beat
        if age > self.stall_after_s:
            return False, f"main loop stalled: no heartbeat for {age:.0f} s (limit {self.stall_after_s:g} s)"
        return True, "ok"

    def ready(self) -> tuple[bool, list[str]]:
        lines, all_ok = [], True
        for name, check in self.checks.items():
            try:
                ok, detail = check()
            except Exception as exc:  # noqa: BLE001 - a failing check is a failed check
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            all_ok &= ok
            lines.append(f"{'ok' if ok else 'fail'} {name}: {detail}")
        return all_ok, lines


class CachedProbe:
    """A check that calls ``probe`` (which raises on failure) at most every ``ttl_s``.

    For readiness against a server the service does not otherwise watch (InfluxDB for the API
    and analytics): a scrape every few seconds must not become a query every few seconds.
    """

    def __init__(self, probe: Callable[[], object], ok_detail: str, ttl_s: float = 5.0) -> None:
        self.probe, self.ok_detail, self.ttl_s = probe, ok_detail, ttl_s
        self._at = float("-inf")
        self._result: tuple[bool, str] = (False, "not probed yet")
        self._lock = threading.Lock()

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            if time.monotonic() - self._at >= self.ttl_s:
                try:
                    self.probe()
                    self._result = (True, self.ok_detail)
                except Exception as exc:  # noqa: BLE001 - reported as not ready
                    self._result = (False, f"{type(exc).__name__}: {str(exc)[:200]}")
                self._at = time.monotonic()
            return self._result


def influx_probe(influx_cfg, ttl_s: float = 5.0) -> CachedProbe:
    """Readiness check: InfluxDB answers ``/ping`` (one try, a short timeout, no retries)."""
    from plantmrv.influx import InfluxClient

    client = InfluxClient.from_config(influx_cfg.model_copy(update={"max_retries": 0, "timeout_s": min(influx_cfg.timeout_s, 3.0)}))
    return CachedProbe(client.ping, f"{influx_cfg.url} answers", ttl_s)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - scrapes are not events
        pass


class OpsServer:
    """The /metrics, /healthz and /readyz endpoints of one service, in a daemon thread."""

    def __init__(self, registry: CollectorRegistry, health: Health) -> None:
        self.registry, self.health = registry, health
        self._metrics = make_wsgi_app(registry)
        self._server: WSGIServer | None = None
        self.port: int | None = None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/healthz":
            ok, detail = self.health.live()
            return self._text(start_response, ok, detail)
        if path == "/readyz":
            ok, lines = self.health.ready()
            return self._text(start_response, ok, "\n".join(lines) or "ok")
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics, /healthz or /readyz\n"]

    @staticmethod
    def _text(start_response, ok: bool, body: str):
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
        return [(body + "\n").encode("utf-8")]

    def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: a free port); return the bound port."""
        self._server = make_server(host, port, self, _ThreadingServer, handler_class=_QuietHandler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True).start()
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def run_uvicorn(asgi_app, health: Health, **config) -> None:
    """``uvicorn.run`` that tells systemd when it listens and beats ``health`` from its event loop.

    Logging stays with :mod:`plantmrv.logs` (uvicorn's own config is not applied); ``config``
    goes to ``uvicorn.Config`` (host, port, ssl_certfile, ...).
    """
    import asyncio

    import uvicorn

    from plantmrv import sdnotify

    async def heartbeat() -> None:
        while True:
            health.beat()
            await asyncio.sleep(1.0)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                self._heartbeat = asyncio.create_task(heartbeat())
                sdnotify.ready(f"listening on {config.get('host')}:{config.get('port')}")

    try:
        Server(uvicorn.Config(asgi_app, log_config=None, **config)).run()
    finally:
        sdnotify.stopping()
