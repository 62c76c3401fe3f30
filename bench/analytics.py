"""MRV analytics speed: a year of 1 s power data -> hourly energy saved and tCO2, against np.sum.

One asset (an inverter-driven pump), 31,536,000 float64 power samples with int64 ns
timestamps. plantmrv computes hourly energy by the trapezoid over real timestamps (segments
straddling an hour split at the hour, gaps over ``max_gap_s`` not bridged), then the
``constant_power_hours`` baseline, energy saved and tCO2 per hour. The baseline ``np.sum`` over
the same power array is measured in the same run; the figure that matters is the ratio
(target: within 3x). Also ``np.trapezoid`` with real timestamps, what a Python user would write.

With ``--influx URL`` (a running influxd) it also measures the continuous engine's cost per
project per interval: query one hour of 1 s raw data, compute, write the ``mrv`` point.

Run: .venv/bin/python bench/analytics.py [--repeat 5] [--influx http://127.0.0.1:8086]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from plantmrv.analytics import vsd
from plantmrv.analytics.amounts import integrate_rate, interval_edges_ns

S = 1_000_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
EF = 0.8154  # Viet Nam 2015, tCO2/MWh (methodologies.md s.4)
P_BL_KW = 700.0


def make_year(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(n, dtype=np.int64) * S
    power = 450.0 + 80.0 * np.sin(np.arange(n) * (2 * np.pi / 86400)) + rng.normal(0, 5, n)
    return ts, power


def plantmrv_hourly(ts, power, edges):
    e = integrate_rate(ts, power, edges, max_gap_s=10)
    e_bl = vsd.baseline_energy_kwh(e.covered_s / 3600.0, P_BL_KW)
    saved_kwh = e_bl - e.amount
    t_co2 = vsd.emission_reductions(vsd.reference_emissions_t_co2(e_bl, EF), vsd.project_emissions_t_co2(e.amount, EF))
    return saved_kwh, t_co2


def timed(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def engine_cost(url: str, repeat: int) -> None:
    from plantmrv.analytics.config import AnalyticsConfig
    from plantmrv.analytics.engine import Engine
    from plantmrv.batch import SampleBatch, Series
    from plantmrv.influx import InfluxClient
    from plantmrv.influxwrite import write_batch

    client = InfluxClient(url, "bench_analytics")
    client.execute('DROP DATABASE "bench_analytics"')
    client.create_database()
    hours = 6
    ts = T0 + np.arange(hours * 3600 + 1, dtype=np.int64) * S
    power = np.full(len(ts), 500.0)
    reading = np.concatenate(([0.0], np.cumsum(np.full(len(ts) - 1, 500.0 / 3600))))
    table = [Series.of("vsd", "energy_kwh", site="hcmc", asset="intake1"), Series.of("vsd", "running", site="hcmc", asset="intake1")]
    write_batch(client, SampleBatch(table, np.repeat([0, 1], len(ts)), np.concatenate([ts, ts]), np.concatenate([reading, np.ones(len(ts))])))
    cfg = AnalyticsConfig.model_validate(
        {
            "projects": [
                {
                    "id": "hcmc-vsd", "site": "hcmc", "plant_type": "vsd", "timezone": "Asia/Ho_Chi_Minh",
                    "assets": [{"measurement": "vsd", "asset": "intake1", "fields": {"energy_meter": "energy_kwh", "running": "running"}}],
                    "methodology": {"id": "plantmrv-vsd"},
                    "parameters": {"baseline_power_kw": {"value": P_BL_KW, "unit": "kW", "source": "bench"},
                                   "fill_power_kw": {"value": 800.0, "unit": "kW", "source": "bench"}},
                    "monitoring_period": {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"},
                    "grid_ef": {"country": "VN", "grid": "national", "year": 2015, "kind": "national"},
                }
            ]
        }
    )
    eng = Engine(cfg, client)
    p = cfg.projects[0]
    hour = [0]

    def one_hour():
        h = hour[0] % hours
        hour[0] += 1
        eng.process(p, T0 + h * 3600 * S, T0 + (h + 1) * 3600 * S, 3600)

    def one_minute():
        m = hour[0] % (hours * 60)
        hour[0] += 1
        eng.process(p, T0 + m * 60 * S, T0 + (m + 1) * 60 * S, 60)

    t_h, _ = timed(one_hour, max(repeat, 5))
    t_m, _ = timed(one_minute, max(repeat, 20))
    print("continuous engine, one project (vsd, 2 fields at 1 s), query + compute + write of one interval:")
    print(f"  1 h interval (7,200 raw samples)  {t_h * 1e3:8.1f} ms")
    print(f"  1 min interval (120 raw samples)  {t_m * 1e3:8.1f} ms")
    q = (
        'SELECT "energy_kwh","running" FROM "vsd" WHERE "site" = \'hcmc\' AND "asset" = \'intake1\' '
        f"AND time >= {T0} AND time < {T0 + hours * 3600 * S}"
    )
    t_q, _ = timed(lambda: client.query(q), 3)
    t_b, _ = timed(lambda: eng.backfill(T0, T0 + hours * 3600 * S), 3)
    per_day = t_b * 24 / hours
    print(f"backfill, {hours} h of 1 s data (both interval lengths): {t_b:.2f} s = {per_day:.2f} s per day -> a year ~{per_day * 365:.0f} s")
    print(f"  of which the raw InfluxQL query of the {hours} h alone: {t_q:.2f} s ({2 * hours * 3600 / t_q:,.0f} values/s from influxd)")
    client.execute('DROP DATABASE "bench_analytics"')
    client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=365 * 86400)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--influx", default=None, help="URL of a running influxd for the engine cost")
    args = ap.parse_args()
    ts, power = make_year(args.samples)
    edges = interval_edges_ns(int(ts[0]), int(ts[-1]) + S, 3600)
    # interleaved, best of N: on a shared 2-core box the minimum is the steadiest figure
    sums, ours = [], []
    for _ in range(args.repeat):
        ts_, _r = timed(lambda: np.sum(power), 1)
        to_, (saved, t_co2) = timed(lambda: plantmrv_hourly(ts, power, edges), 1)
        sums.append(ts_)
        ours.append(to_)
    t_sum, t_ours = min(sums), min(ours)
    t_trap, trap = timed(lambda: np.trapezoid(power, ts / S) / 3600.0, max(1, args.repeat // 2))
    e_hourly = integrate_rate(ts, power, edges, 10).amount
    assert abs(e_hourly.sum() - trap) < 1e-6 * trap, (e_hourly.sum(), trap)
    print(f"a year of 1 s power data ({args.samples:,} samples) -> {len(edges) - 1:,} hourly values, best of {args.repeat} interleaved")
    print(f"  np.sum over the power array            {t_sum * 1e3:8.1f} ms")
    print(f"  plantmrv hourly energy saved + tCO2    {t_ours * 1e3:8.1f} ms   = {t_ours / t_sum:4.1f}x np.sum   (target <= 3x)")
    print(f"  np.trapezoid, real timestamps (total)  {t_trap * 1e3:8.1f} ms   = {t_trap / t_sum:4.1f}x np.sum")
    print(f"  check: sum of hours = trapezoid of the year ({trap:,.1f} kWh); saved {saved.sum():,.0f} kWh, {t_co2.sum():,.1f} tCO2")
    if args.influx:
        engine_cost(args.influx, args.repeat)


if __name__ == "__main__":
    main()
