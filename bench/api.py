"""Verifier API: export throughput and memory, report and reductions latency, against baselines.

A private influxd holds N days of one pump's 1 s energy meter (the simulator's model) and the
analytics engine's hourly results, plus a year of hourly results for a second project. The API
is served by uvicorn in this process and read over HTTP with streaming, as a verifier would.

Baselines in the same run:
- influxd's own CSV (``/query`` with ``Accept: application/csv``) of the same raw series: what
  a verifier gets from InfluxDB directly (no parameters, formulas, gaps or hash, not streamed).
- the chunked JSON read alone (``InfluxClient.query_chunks``): the floor any export over the
  v1 API pays.
- the MessagePack read alone, a day at a time (``InfluxClient.query``): the floor of the report,
  which hashes every raw row each time it is asked.
- text lines over the chunked JSON, hashed (the report's hash before it became the canonical
  16-byte form): what an honest hash cost that way.

Run: .venv/bin/python bench/api.py [--days 3] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

NS = 1_000_000_000
DAY0 = 1_773_100_800 * NS  # 2026-03-10T00:00:00Z
TOKEN = "pmrv_bench-operator-token-0123456789abcdefghijklmnopqrstuv"


def iso(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(ns, "ns"), unit="s") + "Z"


def setup(tmp: Path, days: int):
    import yaml

    from plantmrv.analytics.config import AnalyticsConfig
    from plantmrv.analytics.engine import Engine
    from plantmrv.api.config import ApiConfig
    from plantmrv.api.tokens import hash_token
    from plantmrv.app.config import root_model
    from plantmrv.config import InfluxConfig
    from plantmrv.influxwrite import write_batch
    from plantmrv.localservices import influxd_service
    from plantmrv.simulators import plants

    svc = influxd_service(tmp / "influxd").start()
    client = svc.client(database="bench_api")
    client.create_database()
    raw = yaml.safe_load((Path(__file__).resolve().parent.parent / "examples" / "analytics.yaml").read_text())["analytics"]
    pump = next(p for p in raw["projects"] if p["id"] == "danang-pumps")
    pump["assets"][0]["fields"] = {"energy_meter": "energy_kwh"}
    pump["monitoring_period"] = {"start": iso(DAY0), "end": iso(DAY0 + days * 86400 * NS)}
    analytics = AnalyticsConfig.model_validate({"projects": [pump], "max_gap_s": 10})

    t0 = time.perf_counter()
    ts = DAY0 + np.arange(-60, days * 86400 + 61, dtype=np.int64) * NS
    fields = plants.generate("pump", ts, 7)
    write_batch(client, plants.to_batch("danang", "pump1", "pump", ts, {"energy_kwh": fields["energy_kwh"]}))
    Engine(analytics, client).backfill(DAY0, DAY0 + days * 86400 * NS, interval_s=[3600])
    # a year of hourly results of a second project (reductions over a year)
    hours = np.arange(366 * 24, dtype=np.int64)
    lines = [
        f'mrv,interval=1h,methodology=m,project=year-project reference_energy_kwh={100.0 + h % 7!r},project_energy_kwh=90.0,energy_saved_kwh={10.0 + h % 7!r},'
        f'reference_t_co2={0.0815 + (h % 7) * 1e-3!r},project_t_co2=0.0734,reduction_t_co2={0.0081 + (h % 7) * 1e-3!r},completeness=1.0,gap_filled_s=0.0,params_hash="abc" {DAY0 - 366 * 86400 * NS + int(h) * 3600 * NS}'
        for h in hours.tolist()
    ]
    for i in range(0, len(lines), 5000):
        client.write_body(("\n".join(lines[i : i + 5000]) + "\n").encode())
    print(f"setup: {len(ts):,} raw points + engine backfill + {len(lines):,} hourly results in {time.perf_counter() - t0:.1f} s")

    year = pump | {"id": "year-project", "monitoring_period": {"start": iso(DAY0 - 366 * 86400 * NS), "end": iso(DAY0)}}
    analytics = AnalyticsConfig.model_validate({"projects": [pump, year], "max_gap_s": 10})
    api = ApiConfig(tokens=[{"name": "bench", "role": "operator", "sha256": hash_token(TOKEN)}], log={"requests": False})
    cfg = root_model()(influxdb=InfluxConfig(url=svc.url, database="bench_api"), analytics=analytics, api=api)
    return svc, client, cfg, len(ts)


def serve(cfg):
    import uvicorn

    from plantmrv.api.app import create_app
    from plantmrv.localservices import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def stream_bytes(url: str, params: dict, headers: dict, proc: psutil.Process) -> tuple[int, int]:
    """Bytes received and the peak RSS growth of this process while streaming."""
    base = proc.memory_info().rss
    peak = base
    n = 0
    with httpx.stream("GET", url, params=params, headers=headers, timeout=600) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            n += len(chunk)
            peak = max(peak, proc.memory_info().rss)
    return n, peak - base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=3, help="Days of 1 s raw data to export.")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    proc = psutil.Process(os.getpid())
    with tempfile.TemporaryDirectory() as tmp:
        svc, client, cfg, n_raw = setup(Path(tmp), args.days)
        server, thread, base = serve(cfg)
        try:
            h = {"Authorization": f"Bearer {TOKEN}"}
            start, end = iso(DAY0), iso(DAY0 + args.days * 86400 * NS)
            q = f'SELECT "energy_kwh" FROM "pump" WHERE "site" = \'danang\' AND "asset" = \'pump1\' AND time >= {DAY0} AND time < {DAY0 + args.days * 86400 * NS}'

            def influx_csv():
                r = httpx.post(f"{svc.url}/query", data={"q": q, "db": "bench_api", "epoch": "ns"}, headers={"Accept": "application/csv"}, timeout=600)
                r.raise_for_status()
                return len(r.content)

            def json_chunks():
                return sum(len(s.get("values") or []) for doc in client.query_chunks(q, chunk_size=20000) for res in doc.get("results", []) for s in res.get("series", []) or [])

            def msgpack_days():
                n = 0
                for d in range(args.days):
                    qd = q.replace(f"time >= {DAY0} AND time < {DAY0 + args.days * 86400 * NS}", f"time >= {DAY0 + d * 86400 * NS} AND time < {DAY0 + (d + 1) * 86400 * NS}")
                    n += sum(len(r) for r in client.query(qd))
                return n

            def text_hash():
                import hashlib

                h = hashlib.sha256()
                for doc in client.query_chunks(q, chunk_size=50000):
                    for res in doc.get("results", []):
                        for s in res.get("series", []) or []:
                            h.update("".join(f"pump,danang,pump1,energy_kwh,{t},{float(v)!r}\n" for t, v in s.get("values") or []).encode())
                return h.hexdigest()

            t_influx, influx_bytes = timed(influx_csv, args.repeat)
            t_json, rows = timed(json_chunks, args.repeat)
            t_msgpack, _ = timed(msgpack_days, args.repeat)
            t_text_hash, _ = timed(text_hash, args.repeat)
            t_api, (api_bytes, rss_growth) = timed(lambda: stream_bytes(f"{base}/projects/danang-pumps/export", {"from": start, "to": end, "format": "csv"}, h, proc), args.repeat)
            get_report = lambda: httpx.get(f"{base}/projects/danang-pumps/monitoring-report", params={"period": "monitoring"}, headers=h, timeout=600).json()  # noqa: E731
            t_report, report = timed(get_report, args.repeat)
            t_xlsx, _ = timed(lambda: stream_bytes(f"{base}/projects/danang-pumps/export", {"from": start, "to": iso(DAY0 + 86400 * NS), "format": "xlsx"}, h, proc), 1)
            year_params = {"from": iso(DAY0 - 366 * 86400 * NS), "to": iso(DAY0), "interval": "month"}
            t_red, red = timed(lambda: httpx.get(f"{base}/projects/year-project/reductions", params=year_params, headers=h, timeout=600).json(), args.repeat * 2)
            t_red_day, _ = timed(lambda: httpx.get(f"{base}/projects/year-project/reductions", params=year_params | {"interval": "day"}, headers=h, timeout=600).json(), args.repeat * 2)
            t_health, _ = timed(lambda: httpx.get(f"{base}/health", timeout=10).json(), 20)

            print(f"raw rows exported: {rows:,} ({args.days} days of 1 s meter readings; report hashes {report['raw_points']:,})")
            print(f"influxd CSV (/query, Accept: application/csv) : {t_influx:6.2f} s  {rows / t_influx / 1e3:7.0f} k rows/s  {influx_bytes / 1e6:6.1f} MB")
            print(f"chunked JSON read only (query_chunks)         : {t_json:6.2f} s  {rows / t_json / 1e3:7.0f} k rows/s")
            print(f"MessagePack read only, a day per query        : {t_msgpack:6.2f} s  {rows / t_msgpack / 1e3:7.0f} k rows/s")
            print(f"API CSV export, streamed over HTTP            : {t_api:6.2f} s  {rows / t_api / 1e3:7.0f} k rows/s  {api_bytes / 1e6:6.1f} MB  client RSS growth {rss_growth / 1e6:.1f} MB")
            print(f"  ratio API export / influxd CSV              : {t_api / t_influx:5.2f}x   (/ JSON read alone: {t_api / t_json:4.2f}x)")
            print(f"API monitoring report ({args.days} d, hashes every raw row, each time): {t_report:6.2f} s  {rows / t_report / 1e3:7.0f} k rows/s  ER_p={report['reported_reduction_t_co2']:.0f} t")
            print(f"  ratio / MessagePack read alone              : {t_report / t_msgpack:5.2f}x   (/ text lines over JSON, hashed: {t_report / t_text_hash:4.2f}x, that took {t_text_hash:.2f} s)")
            print(f"API xlsx export (1 day, {n_raw // args.days:,} raw rows)     : {t_xlsx:6.2f} s")
            print(f"API reductions, a year of hourly results      : month rows {t_red * 1000:6.1f} ms, day rows {t_red_day * 1000:6.1f} ms ({len(red['rows'])} months)")
            print(f"API /health                                   : {t_health * 1000:6.2f} ms")
        finally:
            server.should_exit = True
            thread.join(10)
            client.close()
            svc.stop()


if __name__ == "__main__":
    main()
