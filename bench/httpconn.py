"""InfluxDB /write client CPU per request: plantmrv's HttpConnection vs http.client and httpx, same run.

A private influxd (Debian's, :mod:`plantmrv.localservices`); ``--points`` points of 20 pumps x 5
fields are encoded once into bodies of 5,000 lines, then each client POSTs all of them, one
after another on one keep-alive connection, in alternating rounds (a fresh database each time,
so influxd does the same work for every client). Timed with ``time.thread_time()`` of the
posting thread: the client's own CPU (request head, sending, reading and parsing the answer),
not influxd's and not the wait. Printed per client: ms of CPU per request (median over rounds)
and the ratio to HttpConnection's.

Run: .venv/bin/python bench/httpconn.py [--points 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from plantmrv.batch import SampleBatch, Series  # noqa: E402
from plantmrv.httpconn import HttpConnection  # noqa: E402
from plantmrv.lineprotocol import LineProtocolEncoder  # noqa: E402
from plantmrv.localservices import influxd_service  # noqa: E402

HEADERS = {"Content-Type": "text/plain; charset=utf-8"}


def make_bodies(points: int) -> list[bytes]:
    table = [Series.of("pump", f, site="danang", asset=f"P{a:02d}") for a in range(20) for f in ("flow_m3_per_h", "head_m", "power_kw", "energy_kwh", "efficiency")]
    rows = points // len(table)
    series = np.tile(np.arange(len(table)), rows)
    ts = np.repeat(1_700_000_000_000_000_000 + np.arange(rows, dtype=np.int64) * 1_000_000_000, len(table))
    values = np.random.default_rng(1).normal(500, 150, len(series))
    return LineProtocolEncoder(max_lines=5000).encode(SampleBatch(table, series, ts, values)).bodies


def post_httpconn(host: str, port: int, target: str, bodies: list[bytes]) -> float:
    conn = HttpConnection(host, port, timeout_s=60)
    t0 = time.thread_time()
    for body in bodies:
        status, _, answer = conn.request("POST", target, HEADERS, body)
        assert status == 204, answer[:200]
    cpu = time.thread_time() - t0
    conn.close()
    return cpu


def post_http_client(host: str, port: int, target: str, bodies: list[bytes]) -> float:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    t0 = time.thread_time()
    for body in bodies:
        conn.request("POST", target, body, HEADERS)
        resp = conn.getresponse()
        answer = resp.read()
        assert resp.status == 204, answer[:200]
    cpu = time.thread_time() - t0
    conn.close()
    return cpu


def post_httpx(host: str, port: int, target: str, bodies: list[bytes]) -> float:
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=60) as client:
        t0 = time.thread_time()
        for body in bodies:
            resp = client.post(target, content=body, headers=HEADERS)
            assert resp.status_code == 204, resp.text[:200]
        return time.thread_time() - t0


CLIENTS = {"plantmrv HttpConnection": post_httpconn, "http.client": post_http_client, "httpx": post_httpx}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    bodies = make_bodies(args.points)
    svc = influxd_service(Path(tempfile.mkdtemp(prefix="bench-httpconn-")) / "influxd").start()
    try:
        admin = svc.client()
        print(f"{len(bodies)} bodies of <= 5,000 lines ({sum(map(len, bodies)) / len(bodies) / 1e3:.0f} kB each), "
              f"{args.rounds} rounds, one thread and one keep-alive connection per client; CPU of the posting thread")
        per_request: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for r in range(args.rounds):
            for i, (name, post) in enumerate(CLIENTS.items()):
                db = f"bench_{r}_{i}"
                admin.execute(f'CREATE DATABASE "{db}"')
                per_request[name].append(post("127.0.0.1", svc.port, f"/write?db={db}&precision=ns", bodies) / len(bodies))
                admin.execute(f'DROP DATABASE "{db}"')
        ours = statistics.median(per_request["plantmrv HttpConnection"])
        for name, cpu in per_request.items():
            med = statistics.median(cpu)
            print(f"  {name:25s} {med * 1e3:6.3f} ms CPU per request (rounds {min(cpu) * 1e3:.3f}-{max(cpu) * 1e3:.3f})"
                  + ("" if name.startswith("plantmrv") else f"   = {med / ours:4.1f}x HttpConnection's"))
        admin.close()
    finally:
        svc.stop()


if __name__ == "__main__":
    main()
