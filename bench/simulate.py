"""Simulator benchmarks: model generation speed and OPC UA serving rate at --scale.

Usage::

    .venv/bin/python bench/simulate.py [--tags 1000,5000,10000] [--window 20] [--subscribe 1000]
                                       [--year-days 365] [--skip-serve] [--skip-models]

1. Models: a year of 1 s samples (31.5M timestamps) per plant type, generated in 30-day chunks;
   seconds per year and values/s, beside ``np.sum`` over the same number of float64 values
   (one memory pass: the floor of any generator).
2. Serving: ``plantmrv simulate --plants pump --scale N/8`` (8 tags per pump) at 1 Hz, one
   asyncua client subscribed to ``--subscribe`` tags at 100 ms. Printed: start-up time,
   tags/s written, ticks on time, notifications/s received, process CPU % (of one core) and RSS.
   Baseline in the same run: a naive asyncua server (variables created with ``add_variable``
   in one folder, one ``await var.write_value(v)`` per tag per tick) at the smallest N.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAIVE_SERVER = r'''
import asyncio, sys, time, math
from asyncua import Server, ua
async def main(port, n):
    s = Server(); await s.init(); s.set_endpoint(f"opc.tcp://127.0.0.1:{port}")
    idx = await s.register_namespace("urn:naive")
    folder = await s.nodes.objects.add_folder(idx, "plant")
    vs = [await folder.add_variable(ua.NodeId(f"t{i}", idx), f"t{i}", 0.0) for i in range(n)]
    async with s:
        print("naive ready", flush=True)
        k = 0
        while True:
            t = time.time()
            for i, v in enumerate(vs):
                await v.write_value(math.sin(k + i))
            k += 1
            await asyncio.sleep(max(0.0, 1.0 - (time.time() - t)))
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
'''


def bench_models(days: int) -> None:
    from plantmrv.simulators.plants import PLANT_TYPES, generate

    print(f"## models: {days} days at 1 s per plant type (30-day chunks)")
    t0 = int(np.datetime64("2026-01-01", "ns").astype(np.int64))
    n_total = days * 86400
    chunk = 30 * 86400
    for name, pt in PLANT_TYPES.items():
        nfields = len(pt.fields)
        t = time.perf_counter()
        done = 0
        while done < n_total:
            n = min(chunk, n_total - done)
            ts = t0 + (np.arange(done, done + n, dtype=np.int64) * 10**9)
            generate(name, ts, 1)
            done += n
        dt = time.perf_counter() - t
        # baseline: one memory pass over the same number of output values
        x = np.ones(chunk * nfields)
        tb = time.perf_counter()
        for _ in range(-(-n_total // chunk)):
            x.sum()
        db = time.perf_counter() - tb
        vals = n_total * nfields
        print(f"{name:5s} fields={nfields:2d} time_s={dt:6.2f} values_per_s={vals / dt / 1e6:6.1f}M  np.sum_same_values_s={db:5.2f}  ratio_vs_sum={dt / db:5.1f}x")


def _cpu_rss(pid: int):
    import psutil

    p = psutil.Process(pid)
    return p, p.cpu_times(), p.memory_info().rss


async def _subscribe(endpoint: str, node_ids: list[str], window: float) -> int:
    from asyncua import Client

    class H:
        n = 0

        def datachange_notification(self, node, val, data):
            H.n += 1

        def status_change_notification(self, status):
            pass

    c = Client(endpoint, timeout=30, watchdog_intervall=30)
    c.session_timeout = 120_000
    async with c:
        sub = await c.create_subscription(100, H())
        nodes = [c.get_node(n) for n in node_ids]
        for i in range(0, len(nodes), 500):
            await sub.subscribe_data_change(nodes[i : i + 500])
        await asyncio.sleep(1.5)
        H.n = 0
        await asyncio.sleep(window)
        return H.n


def serve_once(tags: int, window: float, subscribe: int, naive: bool = False) -> dict:
    import psutil

    from plantmrv.localservices import free_port

    port = free_port()
    assets = max(1, tags // 8)
    with tempfile.TemporaryDirectory() as td:
        out_p = Path(td) / "out"
        if naive:
            cmd = [sys.executable, "-c", NAIVE_SERVER, str(port), str(tags)]
            ready = "naive ready"
        else:
            cmd = [sys.executable, "-m", "plantmrv.simulators", "--plants", "pump", "--scale", str(assets), "--port", str(port), "--rate", "1", "--no-history"]
            ready = "plantmrv-sim ready"
        t = time.monotonic()
        with open(out_p, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        try:
            while ready not in out_p.read_text():
                if proc.poll() is not None or time.monotonic() - t > 600:
                    raise RuntimeError(f"server did not start: {cmd}")
                time.sleep(0.1)
            startup = time.monotonic() - t
            if naive:
                ids = [f"ns=2;s=t{i}" for i in range(min(subscribe, tags))]
            else:
                ids = [f"ns=2;s=danang/pump1{'' if k == 0 else f'-{k}'}/{f}" for k in range(assets) for f in ("power_kw", "flow_m3_per_h", "head_m", "efficiency", "shaft_power_kw", "energy_kwh", "volume_m3", "running")][: min(subscribe, tags)]
            p = psutil.Process(proc.pid)
            c0, w0 = p.cpu_times(), time.monotonic()
            n_notif = asyncio.run(_subscribe(f"opc.tcp://127.0.0.1:{port}", ids, window))
            c1, w1 = p.cpu_times(), time.monotonic()
            rss = p.memory_info().rss
            cpu = (c1.user + c1.system - c0.user - c0.system) / (w1 - w0) * 100
        finally:
            os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        text = out_p.read_text()
    res = {"tags": tags, "startup_s": startup, "cpu_pct": cpu, "rss_mb": rss / 2**20, "notif_per_s": n_notif / window, "subscribed": len(ids)}
    m = re.search(r"event=stats ticks=(\d+) values=(\d+) late_ticks=(\d+)", text)
    if m:
        ticks, values, late = map(int, m.groups())
        res.update(tags_per_s=values / max(ticks, 1), ticks=ticks, late_ticks=late)
    return res


def bench_serve(tag_list: list[int], window: float, subscribe: int) -> None:
    print(f"\n## serving: pump assets x8 tags at 1 Hz, window {window:.0f} s, client subscribed to {subscribe} tags at 100 ms")
    base = serve_once(tag_list[0], window, subscribe, naive=True)
    print(f"naive asyncua server  tags={base['tags']:6d} startup_s={base['startup_s']:6.1f} cpu_pct={base['cpu_pct']:5.1f} rss_mb={base['rss_mb']:6.0f} notif_per_s={base['notif_per_s']:7.0f}")
    for n in tag_list:
        r = serve_once(n, window, subscribe)
        line = (f"plantmrv simulate     tags={r['tags']:6d} startup_s={r['startup_s']:6.1f} cpu_pct={r['cpu_pct']:5.1f} rss_mb={r['rss_mb']:6.0f} "
                f"notif_per_s={r['notif_per_s']:7.0f} tags_per_s={r.get('tags_per_s', float('nan')):7.0f} late_ticks={r.get('late_ticks', -1)}/{r.get('ticks', -1)}")
        if n == tag_list[0]:
            line += f"  cpu_ratio_naive/ours={base['cpu_pct'] / max(r['cpu_pct'], 1e-9):4.1f}x"
        print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tags", default="1000,5000,10000")
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--subscribe", type=int, default=1000)
    ap.add_argument("--year-days", type=int, default=365)
    ap.add_argument("--skip-serve", action="store_true")
    ap.add_argument("--skip-models", action="store_true")
    a = ap.parse_args()
    if not a.skip_models:
        bench_models(a.year_days)
    if not a.skip_serve:
        bench_serve([int(x) for x in a.tags.split(",")], a.window, a.subscribe)


if __name__ == "__main__":
    main()
