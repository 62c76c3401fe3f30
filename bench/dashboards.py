"""Dashboard load cost on influxd: every panel query of every generated dashboard, as Grafana sends it.

Data (written once into a private influxd): ``--hours`` of plant samples every ``--step-s``
seconds for the five plant types x 2 assets (all fields of docs/data-model.md), gateway health
and ``mrv`` rows every minute, ``mrv`` hour rows. Then, for each dashboard at its default time
range (plant types: 24 h; portfolio: fiscal year to date), the time to run all its panel queries
once (a cold dashboard load, sequential; Grafana runs them in parallel, so this is the total
server work, not the latency a user sees) and the slowest panel.

Baselines measured in the same run:
- period sums over the ``1m`` mrv rows instead of the ``1h`` rows the dashboards use
  (portfolio "monitoring period" stats and the by-project table);
- a plant process panel (pump flow, 24 h) pulling raw samples for Grafana to draw instead of
  ``GROUP BY time($__interval)`` aggregated in InfluxDB.

Run: .venv/bin/python bench/dashboards.py [--hours 24] [--step-s 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plantmrv.dashboards import build, check  # noqa: E402
from plantmrv.localservices import influxd_service  # noqa: E402
from tests.test_dashboards_queries import write_dashboard_data  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--step-s", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        svc = influxd_service(Path(tmp) / "influxd")
        svc.start()
        try:
            client = svc.client(database="bench_dashboards")
            client.create_database()
            end_ns = time.time_ns() // 10**9 * 10**9
            t0 = time.perf_counter()
            info = write_dashboard_data(client, end_ns=end_ns, hours=args.hours, step_s=args.step_s)
            print(f"data: {info.lines:,} points ({args.hours} h, plant samples every {args.step_s} s), written in {time.perf_counter() - t0:.1f} s")

            dashboards = build.build_all()
            print(f"\n{'dashboard':22s} {'range':>8s} {'queries':>7s} {'load s':>8s} {'rows':>8s}  slowest panel")
            for uid, dash in dashboards.items():
                secs, results = timed(lambda: check.check_dashboards(client, [dash], end_ns), args.repeat)
                bad = [r for r in results if r.status != "ok"]
                slow = max(results, key=lambda r: r.seconds)
                print(
                    f"{uid:22s} {dash['time']['from']:>8s} {len(results):7d} {secs:8.3f} {sum(r.rows for r in results):8d}  "
                    f"{slow.panel} ({slow.seconds * 1000:.0f} ms){'  NOT OK: ' + str(len(bad)) if bad else ''}"
                )

            # baseline 1: period sums on 1m rows instead of 1h rows
            port = dashboards["plantmrv-portfolio"]
            values = check.resolve_variables(client, port)
            period_panels = [p for p in port["panels"] if p["title"] in ("tCO2 reduced, monitoring period", "Energy saved, monitoring period", "Projects, monitoring period")]
            queries_1h = [check.render_query(t["query"], p, port, values, end_ns) for p in period_panels for t in p["targets"]]
            queries_1m = [q.replace("\"interval\" = '1h'", "\"interval\" = '1m'") for q in queries_1h]
            t_1h, _ = timed(lambda: [client.query(q) for q in queries_1h], args.repeat)
            t_1m, _ = timed(lambda: [client.query(q) for q in queries_1m], args.repeat)
            print(f"\nperiod sums ({len(queries_1h)} queries): 1h rows {t_1h * 1000:.1f} ms, 1m rows (baseline) {t_1m * 1000:.1f} ms: {t_1m / t_1h:.1f}x faster on 1h rows")

            # baseline 2: aggregated process panel vs raw samples
            pump = dashboards["plantmrv-pump"]
            pvals = check.resolve_variables(client, pump)
            flow = next(p for p in pump["panels"] if p["title"] == "Flow")
            q_agg = check.render_query(flow["targets"][0]["query"], flow, pump, pvals, end_ns)
            start_ms, end_ms = check.time_range_ms(flow, pump, end_ns)
            q_raw = check.substitute_variables(
                f'SELECT "flow_m3_per_h" FROM "pump" WHERE "site" =~ /^$site$/ AND "asset" =~ /^$asset$/ AND time >= {start_ms}ms and time <= {end_ms}ms GROUP BY "asset"',
                pvals,
            )
            t_agg, r_agg = timed(lambda: client.query(q_agg), args.repeat)
            t_raw, r_raw = timed(lambda: client.query(q_raw), args.repeat)
            n_agg, n_raw = sum(len(r) for r in r_agg), sum(len(r) for r in r_raw)
            print(
                f"pump flow panel, 24 h: GROUP BY time($__interval) {t_agg * 1000:.1f} ms / {n_agg:,} points, "
                f"raw samples (baseline) {t_raw * 1000:.1f} ms / {n_raw:,} points: {t_raw / t_agg:.1f}x time, {n_raw / max(n_agg, 1):.0f}x points"
            )
            client.close()
        finally:
            svc.stop()


if __name__ == "__main__":
    main()
