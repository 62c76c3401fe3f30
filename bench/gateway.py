"""OPC UA -> MQTT gateway: plantmrv gateway vs ThingsBoard IoT Gateway, same server, same broker.

An asyncua server (``tests.test_gateway_support``) exposes N Double tags (default 10,000, in
folders of 100) updated at 1 Hz; the value of tick k is k, so delivery is counted exactly as
distinct (tag, k) pairs received. Each gateway subscribes to every tag (publishing interval
``--publishing-ms``) and publishes to a private mosquitto; a collector counts what arrives.
After a warm-up, a ``--seconds`` window is measured: CPU% (process tree, % of one core), peak
RSS, samples delivered / produced in the window (late arrivals are waited for).

ThingsBoard IoT Gateway (bench-only: ``thingsboard-gateway==3.8.5``, its own venv with
``asyncua==1.1.5`` preinstalled, since its OPC UA connector pins and reinstalls that version)
runs in the same process layout against the same server and broker; a responder answers its
``getSessionLimits`` RPC (it publishes nothing otherwise), statistics and remote configuration
are off. If it cannot be installed or started, the bench prints exactly why.

With ``--flush-ms 1000,200,50,0`` (and ``--spread 10``: the server writes each tick in ten slices
across the second, so every 100 ms publish carries changes, as a busy PLC's do) the bench measures plantmrv alone once per value of
``buffer.batch_max_age_s`` (0: every notification stored as it comes), same server, same broker,
one after the other (each run takes over the previous run's subscription): CPU, fsyncs per
second and the durability window, i.e. how long the oldest sample of each stored batch waited in
memory between receipt and fsync (from the gateway's ``durability_delay_seconds`` histogram over
the window: mean and the bucket below which 99% and all of the batches fall).

With ``--decoders ROUNDS`` the bench measures plantmrv alone with the fast PublishResponse decoder
(:mod:`plantmrv.gateway.opcua_fast`) and with asyncua's own (``opcua_fast.install`` made a no-op in
the gateway process by a bench-only launcher), alternating, same server and broker: the gateway's
CPU seconds per million samples that arrived at the collector in the window (not per tick of the
window: a saturated server writes late, and the gateway then works on earlier ticks), and their ratio.

Run: .venv/bin/python bench/gateway.py [--tags 10000] [--seconds 60] [--publishing-ms 100] [--skip-tb]
     .venv/bin/python bench/gateway.py --flush-ms 1000,200,50,0 --spread 10 [--tags 10000] [--seconds 60]
     .venv/bin/python bench/gateway.py --decoders 2 [--tags 2000] [--period-s 0.1] [--seconds 20] [--warmup 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plantmrv.codec import decode_message  # noqa: E402
from plantmrv.localservices import mosquitto_service  # noqa: E402
from tests.test_gateway_support import OpcUaServer, free_port  # noqa: E402

TB_VENV = Path(os.environ.get("PLANTMRV_TB_VENV", Path.home() / ".cache" / "plantmrv-bench" / "tb-venv"))
TB_VERSION = "3.8.5"


# --------------------------------------------------------------------------- collector


class Collector:
    """Counts distinct (tag, tick) pairs per gateway; answers ThingsBoard's session-limits RPC."""

    def __init__(self, host: str, port: int):
        self.lock = threading.Lock()
        self.seen: dict[str, set[tuple[str, int]]] = {"plantmrv": set(), "thingsboard": set()}
        self.messages = {"plantmrv": 0, "thingsboard": 0}
        self.dupes = {"plantmrv": 0, "thingsboard": 0}
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-collector")
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.connect(host, port)
        self.c.loop_start()

    def _on_connect(self, c, u, f, rc, p):
        c.subscribe([("plantmrv/v1/+/+/data", 1), ("v1/gateway/telemetry", 1), ("v1/devices/me/rpc/request/+", 1)])

    def _add(self, who: str, pairs) -> None:
        s = self.seen[who]
        for pair in pairs:
            if pair in s:
                self.dupes[who] += 1
            else:
                s.add(pair)

    def _on_message(self, c, u, msg):
        if msg.topic.startswith("v1/devices/me/rpc/request/"):
            req_id = msg.topic.rsplit("/", 1)[1]
            reply = {"maxPayloadSize": 65536, "maxInflightMessages": 100, "rateLimits": {}, "gatewayRateLimits": {}}
            c.publish(f"v1/devices/me/rpc/response/{req_id}", json.dumps(reply), qos=1)
            return
        if msg.topic == "v1/gateway/telemetry":
            doc = json.loads(msg.payload)
            pairs = [(f"{dev}/{k}", int(v)) for dev, entries in doc.items() for e in entries
                     for k, v in e.get("values", {}).items() if isinstance(v, (int, float))]
            with self.lock:
                self.messages["thingsboard"] += 1
                self._add("thingsboard", pairs)
            return
        b = decode_message(msg.payload).batch
        names = [s.field for s in b.table]
        pairs = list(zip((names[i] for i in b.series.tolist()), (int(v) for v in b.value.tolist())))
        with self.lock:
            self.messages["plantmrv"] += 1
            self._add("plantmrv", pairs)

    def tags_seen(self, who: str) -> int:
        with self.lock:
            return len({tag for tag, _k in self.seen[who]})

    def total(self, who: str) -> int:
        with self.lock:
            return len(self.seen[who])

    def count(self, who: str, ticks: list[int]) -> int:
        want = set(ticks)
        with self.lock:
            return sum(1 for _tag, k in self.seen[who] if k in want)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


# --------------------------------------------------------------------------- measuring


def durability_histogram(port: int) -> dict[str, float]:
    """The gateway's ``plantmrv_gateway_durability_delay_seconds`` series: {le or 'sum'/'count': value}."""
    import httpx

    out = {}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("plantmrv_gateway_durability_delay_seconds"):
            name, value = line.rsplit(" ", 1)
            if "_bucket" in name:
                out[name.split('le="')[1].split('"')[0]] = float(value)
            elif name.endswith("_sum"):
                out["sum"] = float(value)
            elif name.endswith("_count"):
                out["count"] = float(value)
    return out


def window_stats(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    """Flushes per second, mean wait, and the bucket bounds under which 99% and 100% of the window's batches fall."""
    n = after.get("count", 0) - before.get("count", 0)
    mean = (after.get("sum", 0) - before.get("sum", 0)) / n if n else float("nan")
    bounds = sorted((float(k), after[k] - before.get(k, 0)) for k in after if k not in ("sum", "count") and k != "+Inf")
    p99 = next((b for b, c in bounds if c >= 0.99 * n), float("inf"))
    top = next((b for b, c in bounds if c >= n), float("inf"))
    return {"flushes_per_s": n / seconds, "wait_mean_ms": mean * 1000, "wait_p99_ms": p99 * 1000, "wait_max_ms": top * 1000}


def measure(proc: subprocess.Popen, collector: Collector, who: str, tags: int, warmup_s: float, seconds: float,
            grace_s: float, server_pid: int, tick_log: Path, warmup_max_s: float = 300.0, probe=None, period_s: float = 1.0) -> dict:
    p = psutil.Process(proc.pid)
    srv = psutil.Process(server_pid)
    # warm-up: at least warmup_s, and until every tag has arrived once (fully subscribed), at most warmup_max_s
    t_start = time.time()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{who} exited with code {proc.returncode} during warm-up")
        time.sleep(1)
        n_tags = collector.tags_seen(who)
        waited = time.time() - t_start
        if waited >= warmup_s and (n_tags >= tags or waited >= warmup_max_s):
            break
        if int(waited) % 10 == 0:
            print(f"  {who}: warm-up {waited:.0f} s, {collector.messages[who]} messages, {n_tags}/{tags} tags seen", flush=True)
    print(f"  {who}: warm-up done after {time.time() - t_start:.0f} s, {collector.tags_seen(who)}/{tags} tags seen", flush=True)

    def tree_cpu() -> float:
        total = 0.0
        for q in [p] + p.children(recursive=True):
            try:
                t = q.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def tree_rss() -> int:
        total = 0
        for q in [p] + p.children(recursive=True):
            try:
                total += q.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    k_lo = int(time.time() / period_s) + 1  # the server's tick k is written at k * period_s
    while time.time() < k_lo * period_s:
        time.sleep(0.01)
    cpu0, t0, arrived0 = tree_cpu(), time.monotonic(), collector.total(who)
    s0 = sum(srv.cpu_times()[:2])
    probe0 = probe() if probe else None
    peak = 0
    while time.monotonic() - t0 < seconds:
        peak = max(peak, tree_rss())
        if proc.poll() is not None:
            raise RuntimeError(f"{who} exited with code {proc.returncode} during the window")
        time.sleep(0.5)
        n = int(2 * (time.monotonic() - t0))
        if n % 20 == 0:
            print(f"  {who}: window {time.monotonic() - t0:4.0f}/{seconds:.0f} s, peak rss {peak / 2**20:.0f} MB", flush=True)
    cpu1, t1, arrived1 = tree_cpu(), time.monotonic(), collector.total(who)
    s1 = sum(srv.cpu_times()[:2])
    durability = window_stats(probe0, probe(), t1 - t0) if probe else {}
    k_hi = k_lo + int(round(seconds / period_s))
    time.sleep(grace_s)
    # produced = what the server actually wrote: an asyncua server with thousands of monitored
    # items falls behind its 1 Hz schedule, and a tick it never wrote is no gateway's loss
    written = {}
    for line in tick_log.read_text().split("\n"):
        if line.strip():
            k, t_done = line.split()
            written[int(k)] = float(t_done)
    done = [k for k in range(k_lo, k_hi) if k in written]
    produced = tags * len(done)
    lag = max((written[k] - k * period_s for k in done), default=float("nan"))
    deadline = time.monotonic() + grace_s
    delivered = collector.count(who, done)
    while time.monotonic() < deadline and delivered < produced:
        time.sleep(1)
        delivered = collector.count(who, done)
    return {"window_s": t1 - t0, "ticks_written": len(done), "ticks_scheduled": k_hi - k_lo, "server_lag_s": lag,
            "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "server_cpu_pct": 100 * (s1 - s0) / (t1 - t0), "rss_mb": peak / 2**20, "produced": produced,
            "delivered": delivered, "arrived": arrived1 - arrived0, "dupes": collector.dupes[who], "messages": collector.messages[who], **durability}


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# --------------------------------------------------------------------------- the gateways


def plantmrv_config(d: Path, opcua_url: str, mqtt_url: str, tags: int, publishing_ms: float, flush_s: float = 1.0,
                    metrics_port: int | None = None) -> Path:
    lines = [
        "site: {id: bench}",
        f"mqtt: {{url: \"{mqtt_url}\", client_id: bench-gw}}",
        "gateway:",
        "  id: gw1",
        "  sources:",
        "    - type: opcua",
        "      name: plc",
        f"      url: {opcua_url}",
        "      history_backfill: false",
        "      groups:",
    ]
    for a in range(0, tags, 100):
        lines += [f"        - name: a{a // 100}", "          measurement: bench", f"          asset: Asset{a // 100}",
                  f"          publishing_interval_ms: {publishing_ms}", "          queue_size: 10", "          nodes:"]
        lines += [f"            - {{field: T{i}, node_id: \"ns=2;s=T{i}\"}}" for i in range(a, min(a + 100, tags))]
    lines += ["  sink: {type: mqtt, max_inflight: 64}", f"  buffer: {{path: buffer.db, batch_max_age_s: {flush_s}}}",
              f"  health: {{metrics_port: {'null' if metrics_port is None else metrics_port}, sample_interval_s: 10}}"]
    p = d / "gw.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


# ``python -m plantmrv`` with plantmrv.gateway.opcua_fast.install made a no-op: asyncua's own
# decoder makes every DataChangeNotification (the bench's baseline; no config switch exists)
PLAIN_ASYNCUA_MARK = "bench: opcua_fast not installed, asyncua decodes"
PLAIN_ASYNCUA = f"""
import runpy, sys
import plantmrv.gateway.opcua_fast as fast
def install(session):
    print({PLAIN_ASYNCUA_MARK!r}, file=sys.stderr, flush=True)
fast.install = install
runpy.run_module("plantmrv", run_name="__main__", alter_sys=True)
"""


def start_plantmrv(d: Path, cfg: Path, plain_asyncua: bool = False) -> subprocess.Popen:
    log = open(d / "plantmrv-gateway.log", "ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # as deploy/systemd runs it
    cmd = [sys.executable, "-c", PLAIN_ASYNCUA] if plain_asyncua else [sys.executable, "-m", "plantmrv"]
    return subprocess.Popen([*cmd, "gateway", "run", "-c", str(cfg)], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def tb_problem() -> str | None:
    py = TB_VENV / "bin" / "python"
    if not py.exists():
        return (f"no ThingsBoard venv at {TB_VENV}: create it with `python3 -m venv {TB_VENV} && "
                f"{TB_VENV}/bin/pip install asyncua==1.1.5 thingsboard-gateway=={TB_VERSION}` (or set PLANTMRV_TB_VENV)")
    r = subprocess.run([str(py), "-c", "import asyncua, thingsboard_gateway, importlib.metadata as m;"
                        "print(asyncua.__version__, m.version('thingsboard-gateway'))"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"ThingsBoard venv {TB_VENV} is broken: {r.stderr.strip()[-500:]}"
    asyncua_v, tb_v = r.stdout.split()
    if asyncua_v != "1.1.5":
        return f"ThingsBoard venv has asyncua {asyncua_v}; its OPC UA connector needs exactly 1.1.5 (it would reinstall it at start)"
    return None


def tb_config(d: Path, opcua_url: str, host: str, port: int, tags: int, publishing_ms: float) -> Path:
    cfgdir = d / "tb-config"
    cfgdir.mkdir(parents=True, exist_ok=True)
    src = TB_VENV / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "thingsboard_gateway" / "config"
    if not src.exists():
        src = next(TB_VENV.glob("lib/python3*/site-packages/thingsboard_gateway/config"))
    logs = json.loads((src / "logs.json").read_text())
    for h in logs.get("handlers", {}).values():
        if "filename" in h:
            h["filename"] = str(d / "tb-logs" / Path(h["filename"]).name)
    (d / "tb-logs").mkdir(exist_ok=True)
    for lg in logs.get("loggers", {}).values():
        lg["level"] = "WARNING"
    (cfgdir / "logs.json").write_text(json.dumps(logs))
    gw = {
        "thingsboard": {
            "host": host, "port": port, "remoteShell": False, "remoteConfiguration": False, "latencyDebugMode": False,
            "statistics": {"enable": False, "statsSendPeriodInSeconds": 3600, "customStatsSendPeriodInSeconds": 3600},
            "deviceFiltering": {"enable": False, "filterFile": "list.json"},
            "maxPayloadSizeBytes": 65536, "minPackSendDelayMS": 50, "minPackSizeToSend": 500,
            "checkConnectorsConfigurationInSeconds": 3600, "handleDeviceRenaming": False,
            "security": {"type": "accessToken", "accessToken": "bench-token"},
            "qos": 1, "reportStrategy": {"type": "ON_RECEIVED"},
            "checkingDeviceActivity": {"checkDeviceInactivity": False},
        },
        "storage": {"type": "memory", "read_records_count": 100, "max_records_count": 1_000_000},
        "grpc": {"enabled": False},
        "connectors": [{"type": "opcua", "name": "bench", "configuration": "opcua.json"}],
    }
    (cfgdir / "tb_gateway.json").write_text(json.dumps(gw, indent=1))
    mapping = []
    for a in range(0, tags, 100):
        mapping.append({
            "deviceNodeSource": "path",
            "deviceNodePattern": f"Root\\.Objects\\.Plant\\.Asset{a // 100}",
            "deviceInfo": {"deviceNameExpression": f"Asset{a // 100}", "deviceNameExpressionSource": "constant",
                           "deviceProfileExpression": "default", "deviceProfileExpressionSource": "constant"},
            "attributes": [],
            "timeseries": [{"key": f"T{i}", "type": "path", "value": f"${{ns=2;s=T{i}}}"} for i in range(a, min(a + 100, tags))],
            "rpc_methods": [], "attributes_updates": [],
        })
    opc = {
        "server": {"url": opcua_url, "timeoutInMillis": 5000, "scanPeriodInMillis": 3_600_000, "pollPeriodInMillis": 1000,
                   "enableSubscriptions": True, "subCheckPeriodInMillis": int(publishing_ms), "subDataMaxBatchSize": 1000,
                   "subDataMinBatchCreationTimeMs": 200, "subscriptionProcessBatchSize": 2000,
                   "sessionTimeoutInMillis": 120000, "showMap": False, "security": "None", "identity": {"type": "anonymous"}},
        "mapping": mapping,
    }
    (cfgdir / "opcua.json").write_text(json.dumps(opc))
    return cfgdir


def start_tb(d: Path, cfgdir: Path) -> subprocess.Popen:
    log = open(d / "thingsboard-gateway.log", "ab")
    env = dict(os.environ, TB_GW_CONFIG_DIR=str(cfgdir) + "/")
    return subprocess.Popen([str(TB_VENV / "bin" / "thingsboard-gateway")], cwd=d, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tags", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=30.0, help="Seconds before the window (subscriptions set up).")
    ap.add_argument("--warmup-max", type=float, default=300.0, help="Longest warm-up waiting for every tag to arrive once.")
    ap.add_argument("--grace", type=float, default=20.0, help="Seconds to wait for late arrivals after the window.")
    ap.add_argument("--publishing-ms", type=float, default=100.0)
    ap.add_argument("--skip-tb", action="store_true")
    ap.add_argument("--spread", type=int, default=1, help="The server writes each tick in N slices across the second "
                    "(changes arrive in every publish, not in one burst).")
    ap.add_argument("--flush-ms", help="Comma-separated buffer.batch_max_age_s values in ms (0: per notification): "
                    "measure plantmrv's CPU and durability window at each (no ThingsBoard).")
    ap.add_argument("--decoders", type=int, metavar="ROUNDS", help="plantmrv alone, with opcua_fast's PublishResponse "
                    "decoder and with asyncua's own, alternating for ROUNDS rounds: CPU per delivered sample (no ThingsBoard).")
    ap.add_argument("--period-s", type=float, default=1.0, help="The server's tick period (every tag changes once per tick).")
    ap.add_argument("--keep", action="store_true", help="Keep the work directory (logs, configs).")
    args = ap.parse_args()

    d = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    print(f"bench/gateway.py: {args.tags} tags changing every {args.period_s:g} s, {args.seconds:.0f} s window, "
          f"publishing {args.publishing_ms:g} ms, work dir {d}")
    broker = mosquitto_service(d / "mosquitto").start()
    t = time.monotonic()
    server = OpcUaServer(port=free_port(), tags=args.tags, period_s=args.period_s, log_path=d / "opcua-server.log",
                         tick_log=d / "ticks.log", spread=args.spread).start(timeout_s=900)
    print(f"asyncua server with {args.tags} tags up in {time.monotonic() - t:.0f} s")
    collector = Collector(broker.host, broker.port)
    results: dict[str, dict] = {}
    tb_reason = None
    if args.flush_ms or args.decoders:
        try:
            (decoder_runs if args.decoders else flush_runs)(d, args, server, broker, collector)
        finally:
            collector.close()
            server.kill()
            broker.stop()
            if not args.keep:
                shutil.rmtree(d, ignore_errors=True)
        return
    try:
        cfg = plantmrv_config(d, server.url, broker.url, args.tags, args.publishing_ms)
        proc = start_plantmrv(d, cfg)
        try:
            results["plantmrv"] = measure(proc, collector, "plantmrv", args.tags, args.warmup, args.seconds, args.grace, server.proc.pid,
                                          d / "ticks.log", args.warmup_max, period_s=args.period_s)
        finally:
            stop(proc)
        if args.skip_tb:
            tb_reason = "skipped (--skip-tb)"
        else:
            tb_reason = tb_problem()
        if tb_reason is None:
            cfgdir = tb_config(d, server.url, broker.host, broker.port, args.tags, args.publishing_ms)
            proc = start_tb(d, cfgdir)
            try:
                results["thingsboard"] = measure(proc, collector, "thingsboard", args.tags, args.warmup, args.seconds, args.grace,
                                                 server.proc.pid, d / "ticks.log", args.warmup_max, period_s=args.period_s)
            except RuntimeError as exc:
                tb_reason = f"ThingsBoard gateway failed: {exc}; log {d / 'thingsboard-gateway.log'}"
            finally:
                stop(proc)
            if "thingsboard" in results and results["thingsboard"]["messages"] == 0:
                tb_reason = f"ThingsBoard gateway published nothing; log {d / 'thingsboard-gateway.log'}"
                results.pop("thingsboard")
    finally:
        collector.close()
        server.kill()
        broker.stop()

    print(f"\n{'gateway':<14}{'CPU % core':>11}{'peak RSS MB':>13}{'produced':>11}{'delivered':>11}{'ratio':>8}"
          f"{'dupes':>8}{'msgs':>8}{'CPU us/sample':>15}{'server CPU %':>14}{'ticks written':>15}{'server lag s':>14}")
    for who, r in results.items():
        print(f"{who:<14}{r['cpu_pct']:>11.1f}{r['rss_mb']:>13.0f}{r['produced']:>11}{r['delivered']:>11}"
              f"{r['delivered'] / max(r['produced'], 1):>8.3f}{r['dupes']:>8}{r['messages']:>8}"
              f"{r['cpu_pct'] / 100 * r['window_s'] / max(r['delivered'], 1) * 1e6:>15.0f}{r['server_cpu_pct']:>14.0f}"
              f"{r['ticks_written']:>9}/{r['ticks_scheduled']:<5}{r['server_lag_s']:>14.1f}")
    if "thingsboard" in results:
        p, tb = results["plantmrv"], results["thingsboard"]
        print(f"\nratios plantmrv / ThingsBoard {TB_VERSION}: CPU {p['cpu_pct'] / tb['cpu_pct']:.2f} (target <= 0.33), "
              f"RSS {p['rss_mb'] / tb['rss_mb']:.2f} (target <= 0.5), "
              f"CPU per delivered sample {(p['cpu_pct'] * p['window_s'] / max(p['delivered'], 1)) / (tb['cpu_pct'] * tb['window_s'] / max(tb['delivered'], 1)):.2f}, "
              f"delivered/produced {p['delivered'] / max(p['produced'], 1):.3f} vs {tb['delivered'] / max(tb['produced'], 1):.3f} (target 1.000)")
    else:
        print(f"\nThingsBoard IoT Gateway not measured: {tb_reason}")
    if args.keep:
        print(f"work dir kept: {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


def flush_runs(d: Path, args, server: OpcUaServer, broker, collector: Collector) -> None:
    """plantmrv alone at each ``--flush-ms``: CPU and the durability window."""
    rows = []
    for ms in (float(x) for x in args.flush_ms.split(",")):
        port = free_port()
        cfg = plantmrv_config(d, server.url, broker.url, args.tags, args.publishing_ms, ms / 1000, port)
        collector.seen["plantmrv"].clear()
        proc = start_plantmrv(d, cfg)
        try:
            r = measure(proc, collector, "plantmrv", args.tags, args.warmup, args.seconds, args.grace, server.proc.pid,
                        d / "ticks.log", args.warmup_max, probe=lambda: durability_histogram(port), period_s=args.period_s)
        finally:
            stop(proc)
        rows.append((ms, r))
        print(f"  flush {ms:g} ms: CPU {r['cpu_pct']:.1f}% of a core, window mean {r['wait_mean_ms']:.0f} ms", flush=True)
    base = rows[0][1]["cpu_pct"]
    print(f"\n{'batch_max_age':>14}{'CPU % core':>11}{'vs first':>9}{'CPU us/sample':>15}{'fsyncs/s':>9}"
          f"{'window mean ms':>15}{'p99 <= ms':>10}{'max <= ms':>10}{'delivered':>11}{'ratio':>7}")
    for ms, r in rows:
        label = "per notif." if ms == 0 else f"{ms:g} ms"
        print(f"{label:>14}{r['cpu_pct']:>11.1f}{r['cpu_pct'] / base:>9.2f}"
              f"{r['cpu_pct'] / 100 * r['window_s'] / max(r['delivered'], 1) * 1e6:>15.1f}{r['flushes_per_s']:>9.1f}"
              f"{r['wait_mean_ms']:>15.0f}{r['wait_p99_ms']:>10.0f}{r['wait_max_ms']:>10.0f}{r['delivered']:>11}"
              f"{r['delivered'] / max(r['produced'], 1):>7.3f}")
    print("\nThe window is how long read samples sit in memory before the fsync: what a kill -9 or a power cut "
          "leaves to the source to send again (OPC UA: the server's retransmission queue, taken over after a restart "
          "within the session timeout; MQTT: the broker's persistent session) and what is lost for good only where "
          "neither holds it (polled tags of a server without history).")


def decoder_runs(d: Path, args, server: OpcUaServer, broker, collector: Collector) -> None:
    """plantmrv alone with opcua_fast's decoder and with asyncua's, alternating: CPU per delivered sample."""
    rows = []
    for rnd in range(args.decoders):
        for decoder in ("opcua_fast", "asyncua"):
            cfg = plantmrv_config(d, server.url, broker.url, args.tags, args.publishing_ms)
            collector.seen["plantmrv"].clear()
            log = d / "plantmrv-gateway.log"
            log.unlink(missing_ok=True)
            proc = start_plantmrv(d, cfg, plain_asyncua=decoder == "asyncua")
            try:
                r = measure(proc, collector, "plantmrv", args.tags, args.warmup, args.seconds, args.grace, server.proc.pid,
                            d / "ticks.log", args.warmup_max, period_s=args.period_s)
            finally:
                stop(proc)
            if (PLAIN_ASYNCUA_MARK in log.read_text(errors="replace")) != (decoder == "asyncua"):
                raise RuntimeError(f"the {decoder} run did not decode as it should; log {log}")
            r["cpu_s_per_m"] = r["cpu_pct"] / 100 * r["window_s"] / max(r["arrived"], 1) * 1e6  # what it did in the window
            rows.append((rnd, decoder, r))
            print(f"  round {rnd + 1} {decoder}: CPU {r['cpu_pct']:.1f}% of a core, {r['cpu_s_per_m']:.2f} CPU-s per 1M samples "
                  f"arrived in the window, delivered {r['delivered']}/{r['produced']} of the window's ticks", flush=True)
    print(f"\n{'round':>6}{'decoder':>12}{'CPU % core':>11}{'samples/s':>10}{'CPU-s per 1M':>13}{'delivered':>11}{'produced':>10}"
          f"{'ratio':>7}{'server CPU %':>14}{'server lag s':>14}")
    for rnd, decoder, r in rows:
        print(f"{rnd + 1:>6}{decoder:>12}{r['cpu_pct']:>11.1f}{r['arrived'] / r['window_s']:>10.0f}{r['cpu_s_per_m']:>13.2f}"
              f"{r['delivered']:>11}{r['produced']:>10}{r['delivered'] / max(r['produced'], 1):>7.3f}{r['server_cpu_pct']:>14.0f}"
              f"{r['server_lag_s']:>14.1f}")
    ratios = [b["cpu_s_per_m"] / a["cpu_s_per_m"] for (_, _, a), (_, _, b) in zip(rows[0::2], rows[1::2])]
    print(f"\nCPU per sample, asyncua's decoder / opcua_fast, per round: {', '.join(f'{x:.2f}' for x in ratios)} "
          f"(median {statistics.median(ratios):.2f}); load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
