"""Line-protocol encoding speed: plantmrv's vectorized encoder vs influxdb-client and an f-string join.

1,000,000 points (100 series x 4 float fields, ns timestamps), one line per point, the same
lines from every encoder. Baselines are measured in the same run; the figures that matter are
the ratios. Run: .venv/bin/python bench/lp_encode.py [--points N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from plantmrv.batch import SampleBatch, Series
from plantmrv.lineprotocol import LineProtocolEncoder

FIELDS = ("flow_m3_per_h", "head_m", "power_kw", "efficiency")


def make_batch(points: int, kind: str) -> SampleBatch:
    table = [Series.of("pump", f, site="danang", asset=f"P{a:03d}") for a in range(100) for f in FIELDS]
    rng = np.random.default_rng(42)
    rows = points // len(table)
    series = np.tile(np.arange(len(table)), rows)
    ts = np.repeat(1_700_000_000_000_000_000 + np.arange(rows, dtype=np.int64) * 1_000_000_000, len(table))
    if kind == "float64":  # full-precision doubles: the worst case (16-17 significant digits)
        values = rng.normal(500, 150, len(series))
    else:  # what PLCs send: float32 registers widened to float64
        values = rng.normal(500, 150, len(series)).astype(np.float32).astype(np.float64)
    return SampleBatch(table, series, ts, values)


def plantmrv_encode(batch: SampleBatch) -> int:
    out = LineProtocolEncoder().encode(batch)
    return out.lines


def fstring_encode(batch: SampleBatch) -> int:
    """What a Python user writes by hand: one f-string per point, tags joined per line."""
    table = batch.table
    lines = 0
    n = len(batch)
    for start in range(0, n, 5000):
        sl = slice(start, min(start + 5000, n))
        out = []
        for s, v, t in zip(batch.series[sl].tolist(), batch.value[sl].tolist(), batch.ts_ns[sl].tolist()):
            ser = table[s]
            tags = ",".join(f"{k}={tv}" for k, tv in ser.tags)
            out.append(f"{ser.measurement},{tags} {ser.field}={v!r} {t}")
        body = "\n".join(out).encode()
        lines += len(out)
    return lines


def tuned_fstring_encode(batch: SampleBatch) -> int:
    """The same with escaped prefixes precomputed per series: the best a plain-Python encoder does."""
    prefixes = [f"{s.measurement},asset={s.tag_dict['asset']},site={s.tag_dict['site']} {s.field}=" for s in batch.table]
    lines = 0
    n = len(batch)
    for start in range(0, n, 5000):
        sl = slice(start, min(start + 5000, n))
        body = "\n".join(
            f"{prefixes[s]}{v!r} {t}" for s, v, t in zip(batch.series[sl].tolist(), batch.value[sl].tolist(), batch.ts_ns[sl].tolist())
        ).encode()
        lines += body.count(b"\n") + 1
    return lines


def point_encode(batch: SampleBatch) -> int:
    from influxdb_client import Point, WritePrecision

    tags = [(s.measurement, s.tag_dict["asset"], s.tag_dict["site"], s.field) for s in batch.table]
    lines = 0
    for s, v, t in zip(batch.series.tolist(), batch.value.tolist(), batch.ts_ns.tolist()):
        m, asset, site, f = tags[s]
        Point(m).tag("asset", asset).tag("site", site).field(f, v).time(t, WritePrecision.NS).to_line_protocol()
        lines += 1
    return lines


def timed(fn, batch: SampleBatch) -> float:
    t0 = time.perf_counter()
    lines = fn(batch)
    elapsed = time.perf_counter() - t0
    assert lines == len(batch)
    return len(batch) / elapsed


ENCODERS = {
    "plantmrv": plantmrv_encode,
    "fstring": fstring_encode,
    "tuned": tuned_fstring_encode,
    "point": point_encode,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each round times every encoder once, back to back")
    args = ap.parse_args()
    print(f"line protocol, {args.points:,} points (100 series x 4 fields); {args.repeat} rounds, medians")
    print("each round times every encoder back to back and ratios are taken within the round, so load from")
    print("other processes shifts both sides of a ratio alike")
    for kind in ("float64", "float32-widened"):
        batch = make_batch(args.points, kind)
        small = batch.take(slice(0, min(len(batch), 100_000)))
        rates: dict[str, list[float]] = {name: [] for name in ENCODERS}
        for _ in range(args.repeat):
            for name, fn in ENCODERS.items():
                rates[name].append(timed(fn, small if name == "point" else batch))
        med = {name: statistics.median(r) for name, r in rates.items()}
        ratio = {name: statistics.median(o / b for o, b in zip(rates["plantmrv"], rates[name])) for name in ENCODERS}
        print(f"values: {kind}")
        print(f"  plantmrv vectorized      {med['plantmrv']:12,.0f} lines/s")
        print(f"  f-string per point       {med['fstring']:12,.0f} lines/s   plantmrv = {ratio['fstring']:5.1f}x   (target >= 5x)")
        print(f"  tuned f-string (prefix)  {med['tuned']:12,.0f} lines/s   plantmrv = {ratio['tuned']:5.1f}x")
        print(f"  influxdb-client Point    {med['point']:12,.0f} lines/s   plantmrv = {ratio['point']:5.1f}x   (target >= 30x; Point timed on 100k)")


if __name__ == "__main__":
    main()
