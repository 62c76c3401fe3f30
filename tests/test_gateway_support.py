"""Helpers for the gateway tests and bench (no tests here): a real asyncua server in a
subprocess, a TCP proxy that can cut the network, and a gateway subprocess runner.

The server exposes ``n`` Double variables ``ns=2;s=T<i>`` (folders of 100) whose value at tick
``k`` is ``k`` (``k = round(unix_time / period)``) with source timestamp ``k * period``, so a
test can tell from Influx/MQTT data alone whether a sample is missing or wrong (with
``--distinct`` the value is ``k + 1e6 * i``, so a sample read from the wrong node shows). Run it as
``python -m tests.test_gateway_support --port P --tags N --period-s S [--history] [--secure DIR]``.

``--eurange LOW:HIGH --eurange-tags M`` gives T0..T<M-1> an ``EURange`` property, and the server
then applies data-change deadbands as OPC UA specifies (Part 4 7.22.2, Part 8 6.2): against the
last *reported* value, the percent deadband as a share of the EURange, refused with
Bad_DeadbandFilterInvalid on a node without EURange. asyncua 2.1's own server compares with the
previous sample and passes every value for a percent deadband ("not implemented"), so a test of
the gateway's deadband settings against it could not fail. ``--mixed`` adds variables of other
types and qualities (Int32, Boolean, Float, String, Uncertain, Bad without value, no source
timestamp) under ``Objects/Plant/Mixed`` for the PublishResponse decoder tests. ``--bad`` adds
tags that cannot be read under ``Objects/Plant/Bad``: ``B_not_readable`` (BadNotReadable),
``B_denied`` (BadUserAccessDenied), ``B_waiting`` (BadWaitingForInitialData) and ``B_flaky``
(tick k, but BadCommunicationError without a value while ``k % 40`` is 10..19), and variables a
gateway cannot carry: ``B_array`` (Double[3]), ``B_range`` (a Range structure), ``B_text`` (String).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from plantmrv.localservices import free_port  # noqa: F401  (re-exported for the gateway tests)
from tests.helpers import wait_for  # noqa: F401  (re-exported for the gateway tests)

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable




# --------------------------------------------------------------------------- server process

MIXED = ("M_int32", "M_bool", "M_float", "M_string", "M_uncertain", "M_bad", "M_no_source_ts")
BAD_TAGS = {"B_not_readable": "BadNotReadable", "B_denied": "BadUserAccessDenied", "B_waiting": "BadWaitingForInitialData"}


def _install_spec_deadband() -> None:
    """Deadbands as OPC UA specifies them, in this server process (see the module docstring)."""
    from asyncua import ua

    from plantmrv.gateway.asyncua_compat import check_new_data_change_items, decide_data_change_reports

    reported: dict[tuple[int, int], ua.DataValue] = {}
    spans: dict = {}  # NodeId -> EURange high - low

    def eurange_span(aspace, nodeid) -> float | None:
        nd = aspace.get(nodeid)
        for ref in nd.references if nd else []:
            if ref.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasProperty) and ref.BrowseName.Name == "EURange":
                rng = aspace.read_attribute_value(ref.NodeId, ua.AttributeIds.Value).Value.Value
                return float(rng.High - rng.Low)
        return None

    def check(aspace, params):
        flt = params.RequestedParameters.Filter
        if getattr(flt, "DeadbandType", None) == ua.DeadbandType.Percent:  # decoded as uaprotocol_auto's class, not ua's
            span = eurange_span(aspace, params.ItemToMonitor.NodeId)
            if span is None or not 0.0 <= flt.DeadbandValue <= 100.0:
                result = ua.MonitoredItemCreateResult()
                result.StatusCode = ua.StatusCode(ua.StatusCodes.BadDeadbandFilterInvalid)
                return result
            spans[params.ItemToMonitor.NodeId] = span
        return None

    def decide(key, item, value) -> bool | None:
        flt = item.filter if hasattr(item.filter, "DeadbandType") else None
        if flt is None or flt.DeadbandType == ua.DeadbandType.None_:
            return None
        last = reported.get(key)
        report = last is None or last.StatusCode != value.StatusCode or last.Value.Value is None or value.Value.Value is None
        if not report:
            limit = flt.DeadbandValue if flt.DeadbandType == ua.DeadbandType.Absolute else flt.DeadbandValue / 100.0 * spans[item.read_value_id.NodeId]
            report = abs(value.Value.Value - last.Value.Value) > limit
        if report:
            reported[key] = value
        return report

    check_new_data_change_items(check)
    decide_data_change_reports(decide)


async def _serve(args) -> None:
    from asyncua import Server, ua
    from asyncua.server.user_managers import UserManager
    from asyncua.crypto.permission_rules import User, UserRole

    class _Users(UserManager):
        def get_user(self, iserver, username=None, password=None, certificate=None):
            if args.user is None:
                return User(role=UserRole.User)
            if username == args.user and password == args.password:
                return User(role=UserRole.User)
            return None

    from plantmrv.simulators import opcua_conformance

    if not args.asyncua_as_is:
        opcua_conformance.install()  # TransferSubscriptions and Republish as Part 4 says
    server = Server(user_manager=_Users())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/")
    server.set_server_name("plantmrv test server")
    if args.secure:
        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        d = Path(args.secure)
        d.mkdir(parents=True, exist_ok=True)
        await setup_self_signed_certificate(d / "server_key.pem", d / "server_cert.der", "urn:plantmrv:testserver",
                                            socket.gethostname(), [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], {})
        await server.set_application_uri("urn:plantmrv:testserver")
        await server.load_certificate(str(d / "server_cert.der"))
        await server.load_private_key(str(d / "server_key.pem"))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                                    ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt])
        if args.user:
            server.set_identity_tokens([ua.UserNameIdentityToken])
    ns = await server.register_namespace("urn:plantmrv:test")
    plant = await server.nodes.objects.add_folder(ua.NodeId("Plant", ns), ua.QualifiedName("Plant", ns))
    variables = []
    folder = plant
    for i in range(args.tags):
        if i % 100 == 0:
            folder = await plant.add_object(ua.NodeId(f"Asset{i // 100}", ns), ua.QualifiedName(f"Asset{i // 100}", ns))
        v = await folder.add_variable(ua.NodeId(f"T{i}", ns), ua.QualifiedName(f"T{i}", ns), 0.0, ua.VariantType.Double)
        variables.append(v)
    if args.eurange:
        lo, hi = (float(x) for x in args.eurange.split(":"))
        for v in variables[: args.eurange_tags]:
            await v.add_property(0, "EURange", ua.Range(Low=lo, High=hi))
        _install_spec_deadband()
    mixed = {}
    if args.mixed:
        mfolder = await plant.add_object(ua.NodeId("Mixed", ns), ua.QualifiedName("Mixed", ns))
        types = {"M_int32": (0, ua.VariantType.Int32), "M_bool": (False, ua.VariantType.Boolean), "M_float": (0.0, ua.VariantType.Float),
                 "M_string": ("", ua.VariantType.String)}
        for name in MIXED:
            init, vt = types.get(name, (0.0, ua.VariantType.Double))
            mixed[name] = (await mfolder.add_variable(ua.NodeId(name, ns), ua.QualifiedName(name, ns), init, vt)).nodeid
    bad = {}
    if args.bad:
        bfolder = await plant.add_object(ua.NodeId("Bad", ns), ua.QualifiedName("Bad", ns))
        for name in (*BAD_TAGS, "B_flaky"):
            bad[name] = (await bfolder.add_variable(ua.NodeId(name, ns), ua.QualifiedName(name, ns), 0.0, ua.VariantType.Double)).nodeid
        for name, status in BAD_TAGS.items():
            await server.write_attribute_value(bad[name], ua.DataValue(None, ua.StatusCode(getattr(ua.StatusCodes, status))))
        await bfolder.add_variable(ua.NodeId("B_array", ns), ua.QualifiedName("B_array", ns), [1.0, 2.0, 3.0], ua.VariantType.Double)
        await bfolder.add_variable(ua.NodeId("B_range", ns), ua.QualifiedName("B_range", ns), ua.Range(Low=0.0, High=1.0),
                                   datatype=ua.NodeId(ua.ObjectIds.Range))
        await bfolder.add_variable(ua.NodeId("B_text", ns), ua.QualifiedName("B_text", ns), "ok", ua.VariantType.String)
    if args.units:
        eu = ua.EUInformation(DisplayName=ua.LocalizedText("kW"), Description=ua.LocalizedText("kilowatt"))
        for v in variables[:10]:
            await v.add_property(0, "EngineeringUnits", eu)
    if args.max_nodes_per_read:
        for name in ("MaxNodesPerRead", "MaxMonitoredItemsPerCall"):
            nid = getattr(ua.ObjectIds, f"Server_ServerCapabilities_OperationLimits_{name}")
            await server.write_attribute_value(ua.NodeId(nid), ua.DataValue(ua.Variant(args.max_nodes_per_read, ua.VariantType.UInt32)))
    if args.history:
        await server.historize_node_data_change(variables, count=100_000)
    await server.start()
    print(f"READY {args.port}", flush=True)
    period = args.period_s
    ids = [v.nodeid for v in variables]
    k = int(round(time.time() / period))
    tick_log = open(args.tick_log, "a", buffering=1) if args.tick_log else None
    while True:  # every tick k is written, late or not: the ground truth has no holes even under load
        k += 1
        delay = k * period - time.time()
        await asyncio.sleep(max(delay, 0.0))
        ts = datetime.fromtimestamp(k * period, timezone.utc)
        slices = max(1, args.spread)
        for j in range(slices):  # --spread N: the tick's writes in N slices across the period, as a busy PLC changes
            if j:
                await asyncio.sleep(max(0.0, k * period + j * period / slices - time.time()))
            for i in range(j * len(ids) // slices, (j + 1) * len(ids) // slices):
                value = float(k) + (1e6 * i if args.distinct else 0.0)
                await server.write_attribute_value(
                    ids[i], ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=ts, ServerTimestamp=ts)
                )
        if mixed:
            w = server.write_attribute_value
            await w(mixed["M_int32"], ua.DataValue(ua.Variant(k % 100_000, ua.VariantType.Int32), SourceTimestamp=ts, ServerTimestamp=ts))
            await w(mixed["M_bool"], ua.DataValue(ua.Variant(bool(k % 2), ua.VariantType.Boolean), SourceTimestamp=ts, ServerTimestamp=ts))
            await w(mixed["M_float"], ua.DataValue(ua.Variant(k % 1000 + 0.5, ua.VariantType.Float), SourceTimestamp=ts, ServerTimestamp=ts))
            await w(mixed["M_string"], ua.DataValue(ua.Variant(f"k{k}", ua.VariantType.String), SourceTimestamp=ts, ServerTimestamp=ts))
            await w(mixed["M_uncertain"], ua.DataValue(ua.Variant(float(k), ua.VariantType.Double), ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
                                                       SourceTimestamp=ts, ServerTimestamp=ts))
            await w(mixed["M_bad"], ua.DataValue(None, ua.StatusCode(ua.StatusCodes.BadSensorFailure) if k % 2 else ua.StatusCode(ua.StatusCodes.BadCommunicationError),
                                                 ServerTimestamp=ts))
            await w(mixed["M_no_source_ts"], ua.DataValue(ua.Variant(float(k), ua.VariantType.Double), ServerTimestamp=ts))
        if bad:
            flaky = ua.DataValue(None, ua.StatusCode(ua.StatusCodes.BadCommunicationError), ServerTimestamp=ts) if 10 <= k % 40 < 20 else \
                ua.DataValue(ua.Variant(float(k), ua.VariantType.Double), SourceTimestamp=ts, ServerTimestamp=ts)
            await server.write_attribute_value(bad["B_flaky"], flaky)
        if tick_log:
            tick_log.write(f"{k} {time.time():.3f}\n")  # tick k fully written (the bench's ground truth)


@dataclass
class OpcUaServer:
    port: int
    tags: int = 20
    period_s: float = 0.1
    history: bool = False
    secure_dir: Path | None = None
    user: str | None = None
    password: str | None = None
    units: bool = False
    eurange: str | None = None
    eurange_tags: int = 0
    mixed: bool = False
    bad: bool = False
    distinct: bool = False
    max_nodes_per_read: int | None = None
    spread: int = 1
    asyncua_as_is: bool = False  # without simulators/opcua_conformance.py: transferred subscriptions fall silent
    tick_log: Path | None = None
    log_path: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/"

    def argv(self) -> list[str]:
        a = [PY, "-m", "tests.test_gateway_support", "--port", str(self.port), "--tags", str(self.tags), "--period-s", str(self.period_s)]
        if self.history:
            a.append("--history")
        if self.secure_dir:
            a += ["--secure", str(self.secure_dir)]
        if self.user:
            a += ["--user", self.user, "--password", self.password or ""]
        if self.units:
            a.append("--units")
        if self.eurange:
            a += ["--eurange", self.eurange, "--eurange-tags", str(self.eurange_tags)]
        if self.mixed:
            a.append("--mixed")
        if self.bad:
            a.append("--bad")
        if self.distinct:
            a.append("--distinct")
        if self.max_nodes_per_read:
            a += ["--max-nodes-per-read", str(self.max_nodes_per_read)]
        if self.tick_log:
            a += ["--tick-log", str(self.tick_log)]
        if self.spread > 1:
            a += ["--spread", str(self.spread)]
        if self.asyncua_as_is:
            a.append("--asyncua-as-is")
        return a

    def start(self, timeout_s: float = 60) -> "OpcUaServer":
        log = open(self.log_path or os.devnull, "ab")
        self.proc = subprocess.Popen(self.argv(), cwd=REPO, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(b"READY") or not line:
                break
        if not line.startswith(b"READY"):
            self.kill()
            tail = Path(self.log_path).read_text()[-3000:] if self.log_path and Path(self.log_path).exists() else ""
            raise RuntimeError(f"asyncua test server did not start on port {self.port}: {tail}")
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


# --------------------------------------------------------------------------- network cut


class TcpProxy:
    """A loopback TCP forwarder whose link can be cut (all connections reset, new ones refused)."""

    def __init__(self, target_port: int, port: int | None = None):
        self.target_port = target_port
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._writers: set = set()
        self._gen = 0
        self._frozen: set[int] = set()
        self._muted: set[int] = set()  # connections whose server-to-client direction is swallowed
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.up()

    async def _pipe(self, reader, writer, gen: int, reply: bool = False):
        try:
            while data := await reader.read(65536):
                if gen in self._frozen or (reply and gen in self._muted):
                    continue  # a silent link: the TCP connection stays up, nothing gets through
                writer.write(data)
                await writer.drain()
        except Exception:  # noqa: BLE001
            pass
        finally:
            writer.close()

    async def _handle(self, reader, writer):
        try:
            r2, w2 = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, w2}
        gen = self._gen
        await asyncio.gather(self._pipe(reader, w2, gen), self._pipe(r2, writer, gen, reply=True))

    async def _up(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _down(self):
        if self._server:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def up(self) -> None:
        asyncio.run_coroutine_threadsafe(self._up(), self._loop).result(10)

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._down(), self._loop).result(10)

    def freeze(self) -> None:
        """Existing connections go silent (no FIN, no RST); new connections work."""
        def _f():
            self._frozen.add(self._gen)
            self._gen += 1
        self._loop.call_soon_threadsafe(_f)

    def mute_replies(self) -> None:
        """Existing connections pass the client's bytes on but none of the server's (e.g. an MQTT
        broker gets PUBLISHes and its PUBACKs never arrive); new connections work."""
        def _m():
            self._muted.add(self._gen)
            self._gen += 1
        self._loop.call_soon_threadsafe(_m)

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)


# --------------------------------------------------------------------------- gateway process


class GatewayProcess:
    def __init__(self, config: Path, log_path: Path):
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "GatewayProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PY, "-m", "plantmrv", "gateway", "run", "-c", str(self.config)], cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout_s: float = 30) -> int:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise AssertionError(f"gateway did not stop within {timeout_s}s on SIGTERM; log:\n{self.log()[-3000:]}")
        return self.proc.returncode if self.proc else 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def running_opcua_server(tmp_path: Path, **kwargs):
    """Generator for a fixture: an OpcUaServer subprocess on a free port, killed at teardown."""
    srv = OpcUaServer(port=free_port(), log_path=tmp_path / "opcua.log", **kwargs)
    try:
        srv.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield srv
    srv.kill()


@pytest.fixture
def gateways():
    """Gateway processes a test started; any still alive is killed (-9) at teardown."""
    started: list[GatewayProcess] = []
    yield started
    for g in started:
        if g.alive():
            g.kill9()


def metrics_value(port: int, name: str) -> float:
    import httpx

    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return -1.0  # not up (yet)
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def buffer_samples(path: Path, good_only: bool = False) -> set[tuple[str, int]]:
    """(series key, ts_ns) of every sample (``good_only``: every GOOD one) pending in a gateway buffer file
    (opened after the gateway died)."""
    import sqlite3

    from plantmrv.codec import decode_message

    out: set[tuple[str, int]] = set()
    if not path.exists():
        return out
    db = sqlite3.connect(path)
    try:
        for (blob,) in db.execute("SELECT blob FROM batches"):
            b = decode_message(blob).batch
            keys = [s.key() for s in b.table]
            out |= {(keys[s], int(t)) for s, t, q in zip(b.series.tolist(), b.ts_ns.tolist(), b.quality.tolist())
                    if q == 0 or not good_only}
    finally:
        db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tags", type=int, default=20)
    ap.add_argument("--period-s", type=float, default=0.1)
    ap.add_argument("--history", action="store_true")
    ap.add_argument("--secure")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--units", action="store_true")
    ap.add_argument("--eurange", help="LOW:HIGH, an EURange property on the first --eurange-tags variables")
    ap.add_argument("--eurange-tags", type=int, default=0)
    ap.add_argument("--mixed", action="store_true")
    ap.add_argument("--bad", action="store_true")
    ap.add_argument("--distinct", action="store_true")
    ap.add_argument("--max-nodes-per-read", type=int)
    ap.add_argument("--tick-log")
    ap.add_argument("--spread", type=int, default=1, help="Write each tick in N slices spread over the period.")
    ap.add_argument("--asyncua-as-is", action="store_true", help="Leave asyncua's TransferSubscriptions and Republish as they are.")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()


def write_gateway_config(path: Path, *, opcua_url: str | None = None, tags: int = 10, period_ms: float = 100,
                         sink: str = "influxdb", influx_url: str = "", database: str = "", mqtt_url: str = "",
                         metrics_port: int | None = None, extra_source: str = "", security: str = "",
                         poll_tags: int = 0, history: bool = True, gateway_id: str = "gw1") -> Path:
    """A gateway YAML reading T0..T<tags-1> by subscription (and the next poll_tags by polling)."""
    lines = ["site: {id: testsite}"]
    if influx_url:
        lines.append(f"influxdb: {{url: \"{influx_url}\", database: {database}}}")
    if mqtt_url:
        lines.append(f"mqtt: {{url: \"{mqtt_url}\", client_id: {gateway_id}-pub}}")
    lines += ["gateway:", f"  id: {gateway_id}", "  sources:"]
    if opcua_url:
        lines += [
            "    - type: opcua",
            "      name: plc",
            f"      url: {opcua_url}",
            "      reconnect_min_s: 0.5",
            "      reconnect_max_s: 2",
            "      watchdog_interval_s: 2",
            "      stale_after_s: 5",
            "      keepalive_s: 1",
            f"      history_backfill: {'true' if history else 'false'}",
        ]
        if security:
            lines += ["      " + ln for ln in security.strip().splitlines()]
        lines += ["      groups:", "        - name: sub", "          measurement: pump", "          asset: P1",
                  f"          publishing_interval_ms: {period_ms}", "          queue_size: 100", "          nodes:"]
        lines += [f"            - {{field: t{i}_kw, node_id: \"ns=2;s=T{i}\"}}" for i in range(tags)]
        if poll_tags:
            lines += ["        - name: poll", "          mode: poll", f"          poll_interval_ms: {period_ms}",
                      "          measurement: pump", "          asset: P2", "          nodes:"]
            lines += [f"            - {{field: t{i}_kw, node_id: \"ns=2;s=T{i}\"}}" for i in range(tags, tags + poll_tags)]
    if extra_source:
        lines += ["    " + ln for ln in extra_source.strip("\n").splitlines()]
    lines += [f"  sink: {{type: {sink}}}",
              "  buffer: {path: buffer.db, batch_max_age_s: 0.2, retry_min_s: 0.2, retry_max_s: 2}",
              f"  health: {{metrics_port: {metrics_port if metrics_port is not None else 'null'}, status_log_interval_s: 5, sample_interval_s: 2}}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def opcua_gateway_yaml(tmp_path: Path, url: str, groups: str, influxd, influx_db, port: int, extra_sources: str = "") -> Path:
    """gw.yaml: one OPC UA source `plc` with the given ``groups`` (YAML text), direct to influx_db, metrics on ``port``."""
    text = f"""site: {{id: testsite}}
influxdb: {{url: "{influxd.url}", database: {influx_db.database}}}
gateway:
  id: gw1
  sources:
    - type: opcua
      name: plc
      url: {url}
      history_backfill: false
      reconnect_min_s: 0.5
      reconnect_max_s: 2
      groups:
{groups}{extra_sources}
  sink: {{type: influxdb}}
  buffer: {{path: buffer.db, batch_max_age_s: 0.2}}
  health: {{metrics_port: {port}, status_log_interval_s: 5}}
"""
    p = tmp_path / "gw.yaml"
    p.write_text(text)
    return p


def influx_points(client, measurement: str = "pump") -> dict[str, dict[int, float]]:
    """{field: {ts_ns: value}} of every point in the measurement."""
    out: dict[str, dict[int, float]] = {}
    for res in client.query(f'SELECT * FROM "{measurement}"'):
        cols = res.columns
        ts = cols["time"]
        for name, values in cols.items():
            if name in ("time", "asset", "site", "gateway"):
                continue
            d = out.setdefault(name, {})
            for t, v in zip(ts.tolist(), values.tolist()):
                if v is not None and v == v:
                    d[int(t)] = float(v)
    return out


def assert_contiguous(points: dict[int, float], period_s: float, what: str, start_k: int | None = None, end_k: int | None = None,
                      polled: bool = False) -> None:
    """Values are the server's tick numbers k, each the value from ts = k * period until the next
    tick: every k from first to last must be there, and every stored point must hold the tick of
    its time (a hold point the gateway writes at a watermark between two ticks holds the earlier)."""
    period_ns = int(round(period_s * 1e9))
    ks = {}
    for t, v in points.items():
        if v == 0.0:
            continue  # the variable's initial value, before the server's first tick
        k = int(t) // period_ns
        assert v == k, f"{what}: value {v} at ts {t} is not tick {k}, the tick of that time"
        ks[k] = v
    lo = start_k if start_k is not None else min(ks)
    hi = end_k if end_k is not None else max(ks)
    missing = [k for k in range(lo, hi + 1) if k not in ks]
    if polled:  # a poll at the update rate that runs late reads the next tick: it may skip one, never invent one
        assert len(missing) <= 0.2 * (hi - lo + 1), f"{what}: {len(missing)} of {hi - lo + 1} polled ticks missing, e.g. {missing[:10]}"
        return
    assert not missing, f"{what}: {len(missing)} of {hi - lo + 1} ticks missing, e.g. {missing[:10]} (range {lo}..{hi})"


def influx_keys(client) -> set[tuple[str, int]]:
    """(series key as Series.key(), ts_ns) of every non-null field value in the database."""
    out: set[tuple[str, int]] = set()
    for res in client.query("SELECT * FROM /.*/ GROUP BY *"):
        tags = ",".join(f"{k}={v}" for k, v in sorted(res.tags.items()) if v != "")
        ts = res.columns["time"].tolist()
        for name, values in res.columns.items():
            if name == "time":
                continue
            for t, v in zip(ts, values.tolist()):
                if v is not None and v == v:
                    out.add((f"{res.name}{',' if tags else ''}{tags} {name}", int(t)))
    return out
