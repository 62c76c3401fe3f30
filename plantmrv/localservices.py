"""Run Debian's ``influxd`` and ``mosquitto`` as the current user's own processes.

Used by the test fixtures and by ``make demo``: each service gets a free loopback port, its own
config and data directory, is waited for until it answers, and is stopped by PID. Nothing
touches the system-wide services or ``/var/lib``.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "install it with: sudo apt-get install -y mosquitto influxdb   (or run `make test`, which does it as root)"


class ServiceError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_binary(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if not path:
        raise ServiceError(f"`{name}` not found on PATH or in /usr/sbin; {INSTALL_HINT}")
    return path


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class Service:
    """A server process we started; ``start()`` again after ``stop()`` reuses port and data."""

    name: str
    argv: list[str]
    host: str
    port: int
    workdir: Path
    log_path: Path
    ready_timeout_s: float = 30.0
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "Service":
        if self.running():
            return self
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited with code {self.proc.returncode} at start; log {self.log_path}:\n{self.tail()}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"{self.name} did not answer on {self.host}:{self.port} within {self.ready_timeout_s}s; log {self.log_path}:\n{self.tail()}")

    def _ready(self) -> bool:
        return _port_open(self.host, self.port)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; waits until the process is gone."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._wait_port_free()

    def kill(self) -> None:
        """SIGKILL: a crash or power cut, as far as the service is concerned."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
            self._wait_port_free()

    def restart(self) -> "Service":
        self.stop()
        return self.start()

    def _wait_port_free(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _port_open(self.host, self.port):
            time.sleep(0.05)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@dataclass
class InfluxService(Service):
    database: str = "plantmrv"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _ready(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False

    def client(self, **kwargs):
        from plantmrv.influx import InfluxClient

        kwargs.setdefault("database", self.database)
        return InfluxClient(self.url, **kwargs)


@dataclass
class MosquittoService(Service):
    passwords: dict[str, str] = field(default_factory=dict)  # broker users this instance knows

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def dynsec_plugin() -> str:
    """Path of Mosquitto's dynamic-security plugin (Debian: /usr/lib/<arch>/mosquitto_dynamic_security.so)."""
    import glob

    for pattern in ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
                    "/usr/lib/*/mosquitto/mosquitto_dynamic_security.so", "/usr/local/lib/mosquitto_dynamic_security.so"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise ServiceError(f"Mosquitto's dynamic-security plugin (mosquitto_dynamic_security.so) not found; {INSTALL_HINT}")


def write_passwords(path: Path, passwords: dict[str, str]) -> None:
    """A Mosquitto password_file for ``passwords`` (made by ``mosquitto_passwd``, readable by us only)."""
    path.write_text("")
    path.chmod(0o600)
    binary = find_binary("mosquitto_passwd")
    for user, password in passwords.items():
        subprocess.run([binary, "-b", str(path), user, password], check=True, capture_output=True)


def influxd_service(workdir: str | os.PathLike, port: int | None = None, host: str = "127.0.0.1", database: str = "plantmrv", auth: bool = False) -> InfluxService:
    binary = find_binary("influxd")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    rpc_port = free_port(host)
    conf = workdir / "influxdb.conf"
    conf.write_text(
        f"""reporting-disabled = true
bind-address = "{host}:{rpc_port}"
[meta]
  dir = "{workdir / 'meta'}"
[data]
  dir = "{workdir / 'data'}"
  wal-dir = "{workdir / 'wal'}"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[monitor]
  store-enabled = false
[http]
  bind-address = "{host}:{port}"
  auth-enabled = {'true' if auth else 'false'}
  log-enabled = false
  pprof-enabled = false
  max-body-size = 0
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""
    )
    return InfluxService("influxd", [binary, "-config", str(conf)], host, port, workdir, workdir / "influxd.log", database=database)


def mosquitto_service(workdir: str | os.PathLike, port: int | None = None, host: str = "127.0.0.1", extra_config: str = "",
                      acl: dict | None = None, passwords: dict[str, str] | None = None, anonymous: bool = True,
                      username_as_clientid: bool = False) -> MosquittoService:
    """A mosquitto on ``host:port``. ``acl``: a dynamic-security document (:mod:`plantmrv.brokeracl`) to
    authorize every client by; ``passwords``: the broker users; ``anonymous``: whether clients may connect
    without a user (with an ``acl``, what they may do is the document's anonymous group);
    ``username_as_clientid``: a client's id is its user name (no session takeover by client id)."""
    import json

    binary = find_binary("mosquitto")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    security = ""
    if passwords:
        write_passwords(workdir / "passwd", passwords)
        security += f"password_file {workdir / 'passwd'}\n"
    if acl is not None:
        dynsec = workdir / "dynamic-security.json"
        dynsec.write_text(json.dumps(acl, indent=1))
        dynsec.chmod(0o600)
        security += f"plugin {dynsec_plugin()}\nplugin_opt_config_file {dynsec}\n"
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"""listener {port} {host}
{'use_username_as_clientid true' if username_as_clientid else ''}
# run as this user: as root, mosquitto would otherwise switch to user `mosquitto`, which cannot
# write the persistence file into our private data directory
user {getpass.getuser()}
allow_anonymous {'true' if anonymous else 'false'}
{security}persistence true
persistence_location {workdir}/
autosave_interval 5
max_queued_messages 0
max_queued_bytes 0
max_inflight_messages 1000
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
{extra_config}
"""
    )
    return MosquittoService("mosquitto", [binary, "-c", str(conf)], host, port, workdir, workdir / "mosquitto.log",
                            passwords=dict(passwords or {}))
