"""Ingest throughput: broker -> plantmrv ingest -> InfluxDB, beside InfluxDB's own /write ceiling.

Usage: .venv/bin/python bench/ingest.py [--points 1000000] [--per-message 5000] [--repeat 1] [--rate 0]

Starts its own influxd and mosquitto (Debian's, as this user, on free loopback ports). For each
repetition:

1. ceiling: the same points as line-protocol bodies of 5,000 lines, built before the clock
   starts, POSTed to /write by one and by two threads (best taken): InfluxDB's ceiling here;
2. ingest: ``plantmrv ingest run`` as a child process; the points are published as plantmrv
   batches (``--per-message`` samples each, QoS 1) and the clock stops when ingest's /metrics
   says InfluxDB confirmed every point.

With ``--rate R`` the batches are published at a steady R points/s instead of all at once (a
gateway fleet streaming in, below the ceiling): not a throughput test, but ingest's CPU at a
steady load, where batches form from messages streaming in rather than from a backlog.

Prints points/s of both and their ratio (target >= 0.70), and CPU-seconds per million points
of ingest and of influxd (from /proc/<pid>/stat), which are steadier than rates on a shared box
(target: ingest <= 1.0; influxd 1.6 needs ~6.2). The broker and the publisher run on the same
machine and are shown too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import yaml

from plantmrv.batch import SampleBatch, Series
from plantmrv.codec import data_topic, encode_message
from plantmrv.lineprotocol import LineProtocolEncoder
from plantmrv.localservices import free_port, influxd_service, mosquitto_service

TICK = os.sysconf("SC_CLK_TCK")
FIELDS = ("flow_m3_per_h", "power_kw", "head_m", "energy_kwh", "efficiency")


def cpu_s(pid: int) -> float:
    """utime + stime of a process (children not included), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK


def make_points(n: int, ts0_ns: int, seed: int) -> SampleBatch:
    """20 pumps x 5 fields, 1 s apart, full-precision values (the encoder's worst case)."""
    table = [Series.of("pump", f, site="bench", asset=f"P{a:02d}") for a in range(20) for f in FIELDS]
    steps = -(-n // len(table))
    series = np.tile(np.arange(len(table), dtype=np.int32), steps)[:n]
    ts = np.repeat(ts0_ns + np.arange(steps, dtype=np.int64) * 1_000_000_000, len(table))[:n]
    value = np.random.default_rng(seed).normal(100, 30, n)
    return SampleBatch(table, series, ts, value)


def ceiling(influx_url: str, database: str, bodies: list[bytes], lines: int, threads: int, influxd_pid: int) -> tuple[float, float]:
    client = httpx.Client(base_url=influx_url, timeout=60)
    client.post("/query", data={"q": f'DROP DATABASE "{database}"'})
    client.post("/query", data={"q": f'CREATE DATABASE "{database}"'})
    queue = list(enumerate(bodies))
    lock = threading.Lock()

    def worker():
        with httpx.Client(base_url=influx_url, timeout=60) as c:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                r = c.post("/write", params={"db": database, "precision": "ns"}, content=body)
                if r.status_code != 204:
                    raise RuntimeError(f"/write answered {r.status_code}: {r.text[:200]}")

    c0 = cpu_s(influxd_pid)
    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    dt = time.perf_counter() - t0
    c1 = cpu_s(influxd_pid)
    client.close()
    return lines / dt, (c1 - c0) / (lines / 1e6)


_HTTP = httpx.Client(timeout=2)


def scrape(port: int, name: str) -> float:
    try:
        text = _HTTP.get(f"http://127.0.0.1:{port}/metrics").text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def run_ingest(workdir: Path, influxd, mosq, database: str, batch: SampleBatch, per_message: int, rep: int, ingest_opts: dict,
               rate: float = 0.0) -> dict:
    metrics_port = free_port()
    cfg = {
        "influxdb": {"url": influxd.url, "database": database},
        "mqtt": {"url": mosq.url, "client_id": f"bench-ingest-{rep}"},
        "ingest": {
            "group": f"bench{rep}",
            "dead_letters": {"path": str(workdir / f"dead{rep}.db")},
            "metrics": {"port": metrics_port},
            **ingest_opts,
        },
    }
    cfg_path = workdir / f"ingest{rep}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    httpx.post(f"{influxd.url}/query", data={"q": f'DROP DATABASE "{database}"'})
    log_path = workdir / f"ingest{rep}.log"
    exe = str(Path(sys.executable).with_name("plantmrv"))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([exe, "ingest", "run", "-c", str(cfg_path), "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while scrape(metrics_port, "plantmrv_ingest_broker_connected") < 1:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        time.sleep(0.5)  # subscription registered
        topic = data_topic("plantmrv/v1", "bench", "gw1")
        payloads = [encode_message(part, site="bench", gateway="gw1", seq=i) for i, part in enumerate(batch.split(per_message))]
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{rep}", protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(50)
        pub.connect(mosq.host, mosq.port, 30)
        pub.loop_start()
        n = len(batch)
        ci0, cf0, cm0, cp0 = cpu_s(proc.pid), cpu_s(influxd.pid), cpu_s(mosq.pid), cpu_s(os.getpid())
        t0 = time.perf_counter()
        if rate:  # a steady stream: message i leaves at t0 + i * per_message / rate
            infos = []
            for i, p in enumerate(payloads):
                delay = t0 + i * per_message / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                infos.append(pub.publish(topic, p, qos=1))
        else:
            infos = [pub.publish(topic, p, qos=1) for p in payloads]
        last_print = t0
        written = 0.0
        while (written := scrape(metrics_port, "plantmrv_ingest_points_written_total")) < n:
            if proc.poll() is not None:
                raise RuntimeError(f"ingest exited:\n{log_path.read_text()[-3000:]}")
            # every scrape costs ingest CPU (a Prometheus server scrapes every 15 s or so): poll
            # rarely while far from done, often near the end so that the end time stays exact
            elapsed = time.perf_counter() - t0
            remaining_s = (n - written) * elapsed / written if written else 1.0
            time.sleep(min(1.0, max(0.02, remaining_s / 3)))
            if time.perf_counter() - last_print > 5:
                last_print = time.perf_counter()
                print(f"    ... {scrape(metrics_port, 'plantmrv_ingest_points_written_total'):,.0f} of {n:,} points written", flush=True)
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("ingest did not write every point within 600 s")
        dt = time.perf_counter() - t0
        ci1, cf1, cm1, cp1 = cpu_s(proc.pid), cpu_s(influxd.pid), cpu_s(mosq.pid), cpu_s(os.getpid())
        for info in infos:
            info.wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        count = 0
        r = httpx.post(f"{influxd.url}/query", data={"q": "SELECT count(*) FROM pump", "db": database}, timeout=60).json()
        for s in r["results"][0].get("series", []):
            count += sum(v for v in s["values"][0][1:] if v)
        rejected = scrape(metrics_port, "plantmrv_ingest_rejected_samples_total")
        m = n / 1e6
        return {
            "rate": n / dt, "seconds": dt, "ingest_cpu": (ci1 - ci0) / m, "influxd_cpu": (cf1 - cf0) / m,
            "mosquitto_cpu": (cm1 - cm0) / m, "publisher_cpu": (cp1 - cp0) / m, "stored": count, "rejected": rejected,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000, help="points per run (default 1,000,000)")
    ap.add_argument("--per-message", type=int, default=5000, help="samples per published batch (default 5,000: the gateway's default)")
    ap.add_argument("--write-concurrency", type=int, default=2, help="ingest.write_concurrency (default 2)")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions; medians are printed (default 1)")
    ap.add_argument("--rate", type=float, default=0.0, help="publish at this many points/s (default 0: all at once, a throughput test)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    influxd = influxd_service(work / "influxd")
    mosq = mosquitto_service(work / "mosquitto")
    influxd.start()
    mosq.start()
    print(f"ingest bench: {args.points:,} points per run, {args.per_message:,} samples per message, {args.repeat} repetition(s); "
          f"influxd pid {influxd.pid}, mosquitto pid {mosq.pid}, {os.cpu_count()} CPUs", flush=True)
    base_ns = (time.time_ns() // 1_000_000_000 - 86400 * 2) * 1_000_000_000
    results = []
    try:
        for rep in range(args.repeat):
            batch = make_points(args.points, base_ns + rep * 10**13, seed=rep)
            enc = LineProtocolEncoder().encode(batch)
            bodies = enc.bodies
            c1, cpu1 = ceiling(influxd.url, f"ceiling{rep}a", bodies, enc.lines, 1, influxd.pid)
            c2, cpu2 = ceiling(influxd.url, f"ceiling{rep}b", bodies, enc.lines, 2, influxd.pid)
            ceil_rate, ceil_cpu = max((c1, cpu1), (c2, cpu2))
            print(f"  [{rep + 1}] /write ceiling (pre-built 5,000-line bodies): 1 writer {c1:,.0f} pts/s, 2 writers {c2:,.0f} pts/s; "
                  f"influxd {ceil_cpu:.2f} CPU-s per 1M", flush=True)
            r = run_ingest(work, influxd, mosq, f"ingest{rep}", batch, args.per_message, rep, {"write_concurrency": args.write_concurrency},
                           args.rate)
            r["ceiling"] = ceil_rate
            r["ceiling_influxd_cpu"] = ceil_cpu
            results.append(r)
            print(f"  [{rep + 1}] ingest: {r['rate']:,.0f} pts/s ({r['seconds']:.1f} s), ratio {r['rate'] / ceil_rate:.2f}; CPU-s per 1M points: "
                  f"ingest {r['ingest_cpu']:.2f}, influxd {r['influxd_cpu']:.2f}, mosquitto {r['mosquitto_cpu']:.2f}, publisher {r['publisher_cpu']:.2f}; "
                  f"stored {r['stored']:,} of {args.points:,}, rejected {r['rejected']:.0f}", flush=True)
    finally:
        mosq.stop()
        influxd.stop()
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print()
    print(f"InfluxDB /write ceiling (same run):   {med['ceiling']:>12,.0f} points/s   influxd {med['ceiling_influxd_cpu']:.2f} CPU-s per 1M points")
    if args.rate:
        print(f"broker -> ingest -> InfluxDB:         {med['rate']:>12,.0f} points/s   published at a steady {args.rate:,.0f} points/s (not a throughput test)")
    else:
        print(f"broker -> ingest -> InfluxDB:         {med['rate']:>12,.0f} points/s   ratio {med['rate'] / med['ceiling']:.2f} of the ceiling (target >= 0.70)")
    print(f"ingest CPU-s per 1M points:           {med['ingest_cpu']:>12.2f}              (target <= 1.0; influxd here: {med['influxd_cpu']:.2f})")
    print(f"mosquitto / publisher CPU-s per 1M:   {med['mosquitto_cpu']:>12.2f} / {med['publisher_cpu']:.2f}")
    print(f"exactness: stored {min(r['stored'] for r in results):,} of {args.points:,} points in every run" if all(r["stored"] == args.points for r in results)
          else f"exactness: MISMATCH {[r['stored'] for r in results]} of {args.points:,}")


if __name__ == "__main__":
    main()
