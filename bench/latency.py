"""End-to-end latency on event time: source timestamp -> queryable in InfluxDB, interval end -> mrv point.

An asyncua server (``tests.test_gateway_support``) serves N Double tags (default 10,000, in
folders of 100) that change every second; each is a register counting up one unit a second
(field ``t<i>_kwh``: a meter at 3,600 kW), stamped with the server's clock. The plantmrv
gateway subscribes to every tag and publishes through mosquitto; ingest writes to influxd; the
analytics engine closes 1-minute intervals of a project on the first asset on event time (the
gateway's ``coverage`` watermark ``--settle-s`` past the interval's end).

Measured over ``--seconds`` after a warm-up:

- sample latency: a probe polls InfluxDB every 50 ms for the newest sample of a few tags spread
  over the address space; the first time a new source timestamp is seen, ``now - timestamp`` is
  one latency (so each figure is high by up to the 50 ms of the poll);
- interval latency: the first time a 1-minute ``mrv`` point is seen, ``now - interval end``.

Targets (issue 16): sample p99 < 2 s; interval p99 < settle time + 5 s. Every process runs on
this machine's clock (speed 1), so source time and wall time are the same clock.

Run: .venv/bin/python bench/latency.py [--tags 10000] [--seconds 180] [--settle-s 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plantmrv.localservices import free_port, influxd_service, mosquitto_service  # noqa: E402
from tests.test_gateway_support import OpcUaServer  # noqa: E402

S = 1_000_000_000


def gateway_config(d: Path, opcua_url: str, mqtt_url: str, tags: int, publishing_ms: float) -> Path:
    groups = []
    for a in range(0, tags, 100):
        groups.append({"name": f"a{a // 100}", "measurement": "pump", "asset": f"Asset{a // 100}", "publishing_interval_ms": publishing_ms,
                       "queue_size": 10, "nodes": [{"field": f"t{i}_kwh", "node_id": f"ns=2;s=T{i}"} for i in range(a, min(a + 100, tags))]})
    doc = {"site": {"id": "bench"}, "mqtt": {"url": mqtt_url, "client_id": "bench-gw"},
           "gateway": {"id": "gw1", "sources": [{"type": "opcua", "name": "plc", "url": opcua_url, "history_backfill": False, "groups": groups}],
                       "sink": {"type": "mqtt", "max_inflight": 64}, "buffer": {"path": str(d / "buffer.db"), "batch_max_age_s": 0.2},
                       "health": {"metrics_port": None, "sample_interval_s": 10}}}
    p = d / "gw.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def services_config(d: Path, influx_url: str, mqtt_url: str, settle_s: float) -> tuple[Path, Path]:
    core = {"influxdb": {"url": influx_url, "database": "bench_latency"}}
    ingest = d / "ingest.yaml"
    ingest.write_text(yaml.safe_dump({**core, "mqtt": {"url": mqtt_url, "client_id": "bench-ingest"},
                                      "ingest": {"validation": {"permissive": True}, "dead_letters": {"path": str(d / "dl.db")}, "metrics": {"port": None}}}))
    project = {
        "id": "bench-pump", "site": "bench", "plant_type": "pump", "timezone": "UTC",
        "assets": [{"measurement": "pump", "asset": "Asset0", "fields": {"energy_meter": "t0_kwh"}}],
        "methodology": {"id": "bench"}, "monitoring_period": {"start": "2020-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"},
        "grid_ef": {"country": "VN", "grid": "national", "year": 2023, "kind": "national"},
        "parameters": {"eta_project": {"value": 0.8, "unit": "-", "source": "bench"}, "eta_reference": {"value": 0.75, "unit": "-", "source": "bench"},
                       "fill_power_kw": {"value": 5000, "unit": "kW", "source": "bench"}},
    }
    analytics = d / "analytics.yaml"
    analytics.write_text(yaml.safe_dump({**core, "analytics": {"projects": [project], "mrv_interval": "1m", "process_interval": "1m",
                                                               "poll_s": 0.25, "settle_s": settle_s, "late_data_lookback": "10m"}}))
    return ingest, analytics


def spawn(d: Path, name: str, args: list[str]) -> subprocess.Popen:
    log = open(d / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "plantmrv", *args], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


class Probe(threading.Thread):
    """Polls InfluxDB: first sight of each new sample timestamp of a few tags, and of each mrv interval."""

    def __init__(self, client, tags: int):
        super().__init__(daemon=True)
        self.client = client
        self.probes = [(f"Asset{i // 100}", f"t{i}_kwh") for i in sorted({0, tags // 3, 2 * tags // 3, tags - 1})]
        self.sample_latency: list[float] = []
        self.interval_latency: list[float] = []
        self.recording = False
        self.stop_flag = False
        self._last: dict[tuple, int] = {}
        self._seen_intervals: set[int] = set()

    def run(self) -> None:
        while not self.stop_flag:
            now = time.time_ns()
            for asset, field in self.probes:
                try:
                    r = self.client.query(f"SELECT last(\"{field}\") FROM \"pump\" WHERE \"asset\" = '{asset}'")
                except Exception:  # noqa: BLE001 - not there yet
                    continue
                if r and len(r[0]):
                    t = int(r[0].columns["time"][0])
                    if self._last.get((asset, field)) not in (None, t) and self.recording:
                        self.sample_latency.append((now - t) / S)
                    self._last[(asset, field)] = t
            try:
                r = self.client.query("SELECT reduction_t_co2 FROM mrv WHERE \"interval\" = '1m' ORDER BY time DESC LIMIT 5")
            except Exception:  # noqa: BLE001
                r = []
            for t in (r[0].columns["time"] if r and len(r[0]) else []):
                t = int(t)
                if t not in self._seen_intervals:
                    self._seen_intervals.add(t)
                    if self.recording:
                        self.interval_latency.append((now - (t + 60 * S)) / S)
            time.sleep(0.05)


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))] if v else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=180.0, help="Measured window (at least 3 minutes gives a few 1-minute intervals).")
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--settle-s", type=float, default=2.0, help="analytics.settle_s: how far the watermark must pass an interval's end")
    ap.add_argument("--publishing-ms", type=float, default=200.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        influx = influxd_service(d / "influxd").start()
        mosq = mosquitto_service(d / "mosquitto").start()
        srv = OpcUaServer(port=free_port(), tags=args.tags, period_s=1.0, log_path=d / "opcua.log").start()
        client = influx.client(database="bench_latency")
        client.create_database()
        ingest_cfg, analytics_cfg = services_config(d, influx.url, mosq.url, args.settle_s)
        procs = [spawn(d, "ingest", ["ingest", "run", "-c", str(ingest_cfg)]),
                 spawn(d, "analytics", ["analytics", "run", "-c", str(analytics_cfg)]),
                 spawn(d, "gateway", ["gateway", "run", "-c", str(gateway_config(d, srv.url, mosq.url, args.tags, args.publishing_ms))])]
        probe = Probe(client, args.tags)
        probe.start()
        try:
            print(f"{args.tags} tags changing every second; warm-up {args.warmup:.0f} s, measuring {args.seconds:.0f} s ...", flush=True)
            time.sleep(args.warmup)
            probe.recording = True
            time.sleep(args.seconds)
            probe.recording = False
        finally:
            probe.stop_flag = True
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            srv.kill()
            mosq.stop()
            influx.stop()
        s, iv = probe.sample_latency, probe.interval_latency
        print(f"sample latency (source timestamp -> queryable), {len(s)} samples: p50 {pct(s, 0.5):.2f} s, p99 {pct(s, 0.99):.2f} s "
              f"(target p99 < 2 s: {'met' if s and pct(s, 0.99) < 2 else 'NOT met'})")
        target = args.settle_s + 5
        print(f"interval latency (interval end -> mrv point written), {len(iv)} intervals, settle_s {args.settle_s:g}: "
              f"p50 {pct(iv, 0.5):.2f} s, p99 {pct(iv, 0.99):.2f} s (target p99 < settle + 5 = {target:g} s: "
              f"{'met' if iv and pct(iv, 0.99) < target else 'NOT met'})")
        if s:
            print(f"  sample latency mean {statistics.mean(s):.2f} s, max {max(s):.2f} s")


if __name__ == "__main__":
    main()
