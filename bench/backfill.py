"""Analytics backfill: N days of one project's 1 s raw data in influxd -> `mrv`, and where the time goes.

A private influxd (Debian's 1.6, :mod:`plantmrv.localservices`) holds N days of the simulator's
inverter-driven pump (``hcmc-vsd`` of ``examples/analytics.yaml``: energy meter, running flag and
flow, every field at 1 s), fully compacted as data a year old would be. Then, all in one run:

1. **influxd alone**: ``count()`` of the project's fields per day (the scan, no rows sent), and
   the raw rows of each day read as bytes and not parsed, as JSON with httpx's default
   ``Accept-Encoding: gzip`` (what the client asked for before), JSON uncompressed, CSV and
   MessagePack: the scan + encoding cost on influxd's side.
2. **the client's query of one day at a time**: the former path (chunked JSON, gzip, one
   ``json.loads`` per chunk, rows merged then converted: the baseline) beside
   ``InfluxClient.query`` as JSON and as MessagePack.
3. **Engine.backfill** (what ``plantmrv analytics backfill`` runs: query per day, compute 1 min
   and 1 h intervals, write ``mrv``), with the former query path and with the current one; the
   ``mrv`` points written by both must be identical.
4. ``plantmrv analytics backfill -c FILE --from --to`` as a subprocess (progress bar included).

Every line prints wall seconds, influxd CPU-s, this process's CPU-s and raw values per second;
the backfill lines add the extrapolation to a year.

Run: .venv/bin/python bench/backfill.py [--days 30] [--skip-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

NS = 1_000_000_000
DAY = 86400 * NS
T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("energy_kwh", "run_time_h", "flow_m3_per_h")


def iso(ns: int) -> str:
    return np.datetime_as_string(np.datetime64(ns, "ns"), unit="s") + "Z"


def start_influxd(workdir: Path):
    from plantmrv.localservices import influxd_service

    svc = influxd_service(workdir)
    conf = svc.workdir / "influxdb.conf"
    # snapshot and fully compact soon after the load, as shards of past weeks are
    conf.write_text(conf.read_text().replace('  wal-fsync-delay = "0s"\n', '  wal-fsync-delay = "0s"\n  cache-snapshot-write-cold-duration = "2s"\n  compact-full-write-cold-duration = "5s"\n'))
    return svc.start()


def project_config(days: int) -> dict:
    import yaml

    raw = yaml.safe_load((ROOT / "examples" / "analytics.yaml").read_text())["analytics"]
    p = next(p for p in raw["projects"] if p["id"] == "hcmc-vsd")
    p["monitoring_period"] = {"start": iso(T0), "end": iso(T0 + days * DAY)}
    return {"projects": [p], "max_gap_s": raw.get("max_gap_s", 10)}


def load(client, days: int) -> None:
    from plantmrv.influxwrite import write_batch
    from plantmrv.simulators import plants

    t0 = time.perf_counter()
    for d0 in range(0, days, 5):
        ts = T0 + np.arange(d0 * 86400, min(days, d0 + 5) * 86400 + (60 if d0 + 5 >= days else 0), dtype=np.int64) * NS
        f = plants.generate("vsd", ts, 7)
        write_batch(client, plants.to_batch("hcmc", "intake1", "vsd", ts, {k: f[k] for k in FIELDS}))
    print(f"load: {days} days x {len(FIELDS)} fields at 1 s ({days * 86400 * len(FIELDS):,} values) in {time.perf_counter() - t0:.1f} s")


def wait_compacted(svc, proc: psutil.Process, timeout_s: float = 300.0) -> None:
    """Until the WAL is snapshotted and influxd has been idle for 3 s."""
    t0 = time.perf_counter()
    idle = 0
    proc.cpu_percent(None)
    while time.perf_counter() - t0 < timeout_s and idle < 3:
        time.sleep(1.0)
        wal = sum(f.stat().st_size for f in (svc.workdir / "wal").rglob("*.wal"))
        idle = idle + 1 if proc.cpu_percent(None) < 5.0 and wal < 1_000_000 else 0
    tsm = list((svc.workdir / "data").rglob("*.tsm"))
    print(f"compaction: waited {time.perf_counter() - t0:.0f} s; {len(tsm)} TSM files, {sum(f.stat().st_size for f in tsm) / 1e6:.0f} MB")


class Meter:
    """Wall, influxd CPU and own CPU of a step."""

    def __init__(self, server: psutil.Process):
        self.server = server
        self.me = psutil.Process()

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    def run(self, label: str, fn, values: int, days: int | None = None):
        s0, c0, t0 = self._cpu(self.server), self._cpu(self.me), time.perf_counter()
        out = fn()
        wall = time.perf_counter() - t0
        srv, cli = self._cpu(self.server) - s0, self._cpu(self.me) - c0
        year = f"  -> a year ~{wall * 365 / days:5.0f} s" if days else ""
        print(f"  {label:50s} {wall:7.2f} s  influxd {srv:6.2f} CPU-s  client {cli:6.2f} CPU-s  {values / wall / 1e3:7.0f}k values/s{year}", flush=True)
        return wall, out


def raw_query(asset_fields: str, a: int, b: int) -> str:
    return f"SELECT {asset_fields} FROM \"vsd\" WHERE \"site\" = 'hcmc' AND \"asset\" = 'intake1' AND time >= {a} AND time < {b}"


def legacy_query(client):
    """``InfluxClient.query`` as it was: chunked JSON (10,000 rows a chunk) with httpx's default
    ``Accept-Encoding`` (so influxd gzips the answer), one ``json.loads`` per chunk, rows of all
    chunks merged, then converted to numpy columns."""
    from plantmrv.influx import _json_series, _merge_series

    def query(q, epoch="ns", database=None, **_):
        params = {"q": q, "db": database or client.database, "epoch": epoch, "chunked": "true", "chunk_size": "10000"}
        with client._http.stream("POST", "/query", data=params) as resp:
            resp.raise_for_status()
            docs = [json.loads(line) for line in resp.iter_lines() if line.strip()]
        return _merge_series(_json_series(docs, q), epoch)

    return query


def read_bytes(http: httpx.Client, db: str, q: str, accept: str | None, encoding: str | None) -> int:
    headers = {}
    if accept:
        headers["Accept"] = accept
    if encoding:
        headers["Accept-Encoding"] = encoding
    n = 0
    with http.stream("POST", "/query", data={"q": q, "db": db, "epoch": "ns", "chunked": "true", "chunk_size": "10000"}, headers=headers) as r:
        r.raise_for_status()
        for chunk in r.iter_raw():
            n += len(chunk)
    return n


def mrv_snapshot(client) -> dict:
    out = {}
    for r in client.query('SELECT * FROM "mrv" GROUP BY "interval"'):
        out[r.tags["interval"]] = {k: v for k, v in r.columns.items()}
    return out


def same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for iv in a:
        if a[iv].keys() != b[iv].keys():
            return False
        for k in a[iv]:
            x, y = a[iv][k], b[iv][k]
            if x.dtype == object:
                if x.tolist() != y.tolist():
                    return False
            elif not np.array_equal(x, y, equal_nan=True):
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30, help="Days of 1 s data (365 for a year; ~15 min of loading and legacy runs).")
    ap.add_argument("--skip-cli", action="store_true", help="Do not time the CLI subprocess.")
    ap.add_argument("--skip-legacy", action="store_true", help="Do not time the former query path in the backfill.")
    args = ap.parse_args()
    days = args.days

    from plantmrv.analytics.config import AnalyticsConfig
    from plantmrv.analytics.engine import Engine, asset_fields, roles_read

    with tempfile.TemporaryDirectory() as tmp:
        svc = start_influxd(Path(tmp) / "influxd")
        try:
            server = psutil.Process(svc.pid)
            client = svc.client(database="bench_backfill")
            client.create_database()
            load(client, days)
            wait_compacted(svc, server)
            meter = Meter(server)
            cfg = AnalyticsConfig.model_validate(project_config(days))
            project = cfg.projects[0]
            configured = sorted({f for _, pairs in asset_fields(project) for _, f in pairs})
            sel = ",".join(f'"{f}"' for f in configured)
            nval = days * 86400 * len(configured)
            per_day = [raw_query(sel, T0 + d * DAY, T0 + (d + 1) * DAY) for d in range(days)]
            http = httpx.Client(base_url=svc.url, timeout=600)

            print(f"\n1. influxd alone, one query per day, {len(configured)} fields ({', '.join(configured)}), {nval:,} values:")
            counts = [raw_query(",".join(f'count("{f}")' for f in configured), T0 + d * DAY, T0 + (d + 1) * DAY) for d in range(days)]
            meter.run("count() per day (scan, no rows sent)", lambda: [client.query(q) for q in counts], nval)
            for label, accept, enc in (
                ("JSON, gzip (httpx default; the former client)", None, None),
                ("JSON, uncompressed", None, "identity"),
                ("CSV, uncompressed", "application/csv", "identity"),
                ("MessagePack, uncompressed", "application/x-msgpack", "identity"),
            ):
                meter.run(f"rows as bytes: {label}", lambda: [read_bytes(http, client.database, q, accept, enc) for q in per_day], nval)

            print("\n2. InfluxClient.query of one day at a time (bytes -> numpy columns):")
            legacy = legacy_query(client)
            meter.run("former: JSON, gzip, json.loads, rows merged", lambda: [legacy(q) for q in per_day], nval)
            meter.run("query(fmt='json'): JSON uncompressed", lambda: [client.query(q, fmt="json") for q in per_day], nval)
            meter.run("query(): MessagePack, float rows into numpy", lambda: [client.query(q) for q in per_day], nval)

            print(f"\n3. Engine.backfill of {days} days (1 min and 1 h intervals, 2 query workers):")
            engine = Engine(cfg, client)
            used = sorted({f for _, pairs in asset_fields(project) for role, f in pairs if role in roles_read(project)})
            nused = days * 86400 * len(used)
            snap_old = None
            if not args.skip_legacy:
                client.query, saved = legacy, client.query
                engine._roles[project.id], roles = {r for _, pairs in asset_fields(project) for r, _ in pairs}, engine._roles[project.id]
                try:
                    meter.run(f"former: query path, all {len(configured)} configured fields", lambda: engine.backfill(T0, T0 + days * DAY), nval, days)
                finally:
                    client.query, engine._roles[project.id] = saved, roles
                snap_old = mrv_snapshot(client)
                client.execute('DROP MEASUREMENT "mrv"')
            meter.run(f"current: MessagePack, the {len(used)} fields read ({', '.join(used)})", lambda: engine.backfill(T0, T0 + days * DAY), nused, days)
            meter.run("current, 1 query worker", lambda: engine.backfill(T0, T0 + days * DAY, workers=1), nused, days)
            snap_new = mrv_snapshot(client)
            if snap_old is not None:
                print(f"  mrv points identical (former vs current): {same(snap_old, snap_new)}")

            if not args.skip_cli:
                import yaml

                cfg_path = Path(tmp) / "plantmrv.yaml"
                cfg_path.write_text(yaml.safe_dump({"influxdb": {"url": svc.url, "database": client.database}, "analytics": project_config(days)}))
                cli = [str(Path(sys.executable).with_name("plantmrv")), "analytics", "backfill", "-c", str(cfg_path), "--from", iso(T0), "--to", iso(T0 + days * DAY)]
                print(f"\n4. plantmrv analytics backfill -c FILE --from {iso(T0)} --to {iso(T0 + days * DAY)} (a subprocess, progress bar on stderr):")

                def run_cli():
                    p = subprocess.run(cli, capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"})
                    if p.returncode:
                        raise SystemExit(p.stderr)
                    return p

                s0 = Meter._cpu(server)
                t0 = time.perf_counter()
                p = run_cli()
                wall = time.perf_counter() - t0
                usage = os.times()
                print(f"  {'plantmrv analytics backfill':50s} {wall:7.2f} s  influxd {Meter._cpu(server) - s0:6.2f} CPU-s  cli    {usage.children_user + usage.children_system:6.2f} CPU-s  {nused / wall / 1e3:7.0f}k values/s  -> a year ~{wall * 365 / days:5.0f} s")
                print(f"  stdout: {p.stdout.strip()}; progress bar seen: {'backfill' in p.stderr}")
                print(f"  mrv points identical to Engine.backfill: {same(snap_new, mrv_snapshot(client))}")
            http.close()
            client.close()
        finally:
            svc.stop()


if __name__ == "__main__":
    main()
