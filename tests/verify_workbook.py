#!/usr/bin/env python3
"""A verifier's own re-derivation of the period's ER_p from a plantmrv xlsx export alone.

It imports nothing from plantmrv (openpyxl only) and uses none of the workbook's formulas: it
reads the parameters and the monitored amounts per interval from the ``Input`` sheet (by their
symbols), the project's methodology from the ``Project`` sheet and, for waste-to-energy, the
crediting years and the waste stored before the export from the ``FOD`` sheet, and recomputes
every interval by the methodology's published equations (methodologies.md), then floors the
period total (JCM: whole tonnes, never below 0).

    python tests/verify_workbook.py EXPORT.xlsx     -> prints "ER_p=<t> total=<t>"
"""

from __future__ import annotations

import math
import sys
from pathlib import Path


def unneutralise(cell):
    return cell[1:] if isinstance(cell, str) and cell.startswith("'") else cell


def read(path: Path) -> dict:
    """Parameters by symbol, intervals as {symbol: value} rows, project keys, the FOD year table."""
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True)
    rows = [[unneutralise(c) for c in r] for r in wb["Input"].iter_rows(values_only=True)]
    params, intervals, header = {}, [], None
    i = next(k for k, r in enumerate(rows) if r and r[0] == "Symbol") + 1
    while rows[i] and rows[i][0]:
        params[rows[i][0]] = rows[i][2]
        i += 1
    for r in rows[i:]:
        if r and r[0] == "Interval start (UTC)":
            header = [str(h).split(":", 1)[0] if h else "" for h in r]
        elif header and r and r[0]:
            intervals.append(dict(zip(header, r)))
    project = {r[0]: unneutralise(r[1]) for r in wb["Project"].iter_rows(values_only=True) if r and r[0]}
    years = []
    if "FOD" in wb.sheetnames:
        fod = [list(r) for r in wb["FOD"].iter_rows(values_only=True)]
        h = next(k for k, r in enumerate(fod) if r and r[0] == "x" and r[1] == "Start (UTC)")
        for r in fod[h + 1 :]:
            if not r or not isinstance(r[0], int):
                break
            years.append({"x": r[0], "start_s": r[3], "end_s": r[4], "w_before": r[7] or 0.0})
    return {"params": params, "intervals": intervals, "project": project, "years": years}


def reductions_t_co2(book: dict) -> list[float]:
    """ER_i of every interval, recomputed from the workbook's inputs."""
    p, rows = book["params"], book["intervals"]
    kind = (book["project"]["plant_type"], book["project"]["baseline_model"])
    ef = p["EF_grid"]

    def v(row, key):
        x = row.get(key)
        return 0.0 if x is None or x == "" else float(x)

    def filled(row, symbol, fill):
        """Conservative fill: covered + max(missing seconds x maximum rate, meter increment across the gap)."""
        return v(row, f"{symbol},covered") + max(v(row, f"gap_s({symbol})") / 3600 * (p[fill] or 0.0), v(row, f"{symbol},gap"))

    out = []
    if kind[0] == "wte":
        return _wte(book)
    for row in rows:
        if kind[0] == "pv":
            cat = row.get("GA_d")
            ef_re = ef if cat is None else {1: ef, 0: p["EF_diesel"]}.get(int(cat), min(ef, p.get("EF_diesel") or ef))
            out.append(v(row, "EG,covered") / 1000 * ef_re)
            continue
        energy = "EC_PJ" if kind[0] == "pump" else "E_PJ"
        e_pj = filled(row, energy, "P_fill")
        if kind == ("pump", "efficiency_ratio"):
            e_re = v(row, "EC_PJ,covered") * p["eta_PJ"] / p["eta_RE"]
        elif kind == ("vsd", "constant_power_hours"):
            e_re = v(row, "t_PJ,covered") * p["P_BL"]
        else:  # specific energy: pumps, inverters, U-BCF
            e_re = v(row, "V_PJ,covered" if kind[0] != "ubcf" else "V,covered") * p["SEC_BL"]
        out.append(e_re / 1000 * ef - e_pj / 1000 * ef)
    return out


def _wte(book: dict) -> list[float]:
    """TOOL04 first-order decay (with the tail of earlier crediting years) + displaced grid
    electricity, minus fossil CO2 of plastics, purchased electricity and auxiliary fuel."""
    p, rows, years = book["params"], book["intervals"], book["years"]
    ef = p["EF_grid"]
    types = [k.split("[", 1)[1][:-1] for k in p if k.startswith("p_j[")]
    pj = [p[f"p_j[{t}]"] for t in types]
    doc = [p[f"DOC_j[{t}]"] for t in types]
    k = [p[f"k_j[{t}]"] for t in types]
    factor = p["phi"] * (1 - p["f"]) * p["GWP_CH4"] * (1 - p["OX"]) * 16 / 12 * p["F"] * p["DOC_f"] * p["MCF"]

    def decay(w, age):
        return factor * w * sum(a * b * math.exp(-kk * age) * (1 - math.exp(-kk)) for a, b, kk in zip(pj, doc, k))

    def num(row, key):
        x = row.get(key)
        return 0.0 if x is None else float(x)

    waste = {y["x"]: y["w_before"] for y in years}
    for row in rows:
        x = int(row["Crediting year x of the interval start (TOOL04 year; 0 before the crediting period) [-]"])
        if x >= 1:
            waste[x] = waste.get(x, 0.0) + num(row, "W,covered")
    tail = {y["x"]: sum(decay(waste.get(x, 0.0), y["x"] - x) for x in range(1, y["x"])) for y in years}

    def fill(row, symbol, rate):
        return num(row, f"{symbol},covered") + max(num(row, f"gap_s({symbol})") / 3600 * p[rate], num(row, f"{symbol},gap"))

    out = []
    for row in rows:
        s, e = num(row, "Interval start [s since 1970-01-01 UTC]"), num(row, "Interval end [s since 1970-01-01 UTC]")
        be_tail = sum(tail[y["x"]] * max(0.0, min(e, y["end_s"]) - max(s, y["start_s"])) / (y["end_s"] - y["start_s"]) for y in years)
        be = decay(num(row, "W,covered"), 0) + be_tail + num(row, "EG_net,covered") / 1000 * ef
        w_burned = num(row, "W,covered") + max(num(row, "gap_s(W)") / 3600 * p["W_fill"], num(row, "W,gap"))
        pe = (w_burned * p["p_plastic"] * p["FCC_j"] * p["FFC_j"] * 44 / 12 * p["OF"] + fill(row, "EC_import", "P_import,fill") / 1000 * ef
              + fill(row, "FC_aux", "FC_fill") / 1000 * p["EF_FC"])
        out.append(be - pe)
    return out


def er_p(path: Path) -> tuple[int, float]:
    """(floored ER_p, the unrounded period total) of the export at ``path``."""
    total = sum(reductions_t_co2(read(path)))
    return max(0, math.floor(total + 1e-9)), total


if __name__ == "__main__":
    reported, total = er_p(Path(sys.argv[1]))
    print(f"ER_p={reported} total={total!r}")
