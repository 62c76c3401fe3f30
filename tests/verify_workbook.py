#!/usr/bin/env python3
"""A verifier's own re-derivation of the period's ER_p from a plantmrv xlsx export alone.

It imports nothing from plantmrv (openpyxl only) and uses none of the workbook's formulas: it
reads the parameters (by their symbols) and the monitored amounts per interval (by the CSV's
field names) from the ``Input`` sheet, the project's methodology from the ``Project`` sheet and,
for waste-to-energy, the crediting years and the waste stored before the export from the ``FOD``
sheet, and recomputes every interval by the methodology's published equations
(methodologies.md), then floors the period total (JCM: whole tonnes, never below 0). It finds
every table by its key row (the grey row of machine keys under the headings), so it reads a
workbook in any language.

    python tests/verify_workbook.py EXPORT.xlsx     -> prints "ER_p=<t> total=<t>"
"""

from __future__ import annotations

import math
import sys
from pathlib import Path


def unneutralise(cell):
    return cell[1:] if isinstance(cell, str) and cell.startswith("'") else cell


def table(rows: list[list], first_key: str, second_key: str) -> list[dict]:
    """The rows under the key row that starts with ``first_key, second_key``, as {key: value},
    up to the first empty row."""
    at = next(k for k, r in enumerate(rows) if len(r) > 1 and r[0] == first_key and r[1] == second_key)
    keys, out = rows[at], []
    for r in rows[at + 1 :]:
        if not r or r[0] is None or r[0] == "":
            break
        out.append(dict(zip(keys, r)))
    return out


def read(path: Path) -> dict:
    """Parameters by symbol, intervals as {field: value} rows, project keys, the FOD year table."""
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True)
    sheet = lambda name: [[unneutralise(c) for c in r] for r in wb[name].iter_rows(values_only=True)]  # noqa: E731
    inp = sheet("Input")
    params = {r["symbol"]: r["value"] for r in table(inp, "symbol", "description")}
    intervals = table(inp, "start_utc", "end_utc")
    project = {r[0]: r[1] for r in sheet("Project") if len(r) > 1 and r[0]}
    years = []
    if "FOD" in wb.sheetnames:
        years = [{"x": r["x"], "start_s": r["start_s"], "end_s": r["end_s"], "w_before": r["waste_before_t"] or 0.0} for r in table(sheet("FOD"), "x", "start_utc")]
    return {"params": params, "intervals": intervals, "project": project, "years": years}


def reductions_t_co2(book: dict) -> list[float]:
    """ER_i of every interval, recomputed from the workbook's inputs."""
    p, rows = book["params"], book["intervals"]
    kind = (book["project"]["plant_type"], book["project"]["baseline_model"])
    ef = p["EF_grid"]

    out = []
    if kind[0] == "wte":
        return _wte(book)
    for row in rows:
        if kind[0] == "pv":
            cat = row.get("day_category")
            ef_re = ef if cat is None else {1: ef, 0: p["EF_diesel"]}.get(int(cat), min(ef, p.get("EF_diesel") or ef))
            out.append(v(row, "generation_covered_kwh") / 1000 * ef_re)
            continue
        e_pj = filled(row, "project_energy", "kwh", p["P_fill"])
        if kind == ("pump", "efficiency_ratio"):
            e_re = v(row, "project_energy_covered_kwh") * p["eta_PJ"] / p["eta_RE"]
        elif kind == ("vsd", "constant_power_hours"):
            e_re = v(row, "operating_time_covered_h") * p["P_BL"]
        else:  # specific energy: pumps, inverters, U-BCF
            e_re = v(row, "volume_covered_m3") * p["SEC_BL"]
        out.append(e_re / 1000 * ef - e_pj / 1000 * ef)
    return out


def v(row: dict, key: str) -> float:
    x = row.get(key)
    return 0.0 if x is None or x == "" else float(x)


def filled(row: dict, quantity: str, unit: str, rate_per_h: float | None) -> float:
    """Conservative fill: covered + max(missing seconds x maximum rate, meter increment across the gap)."""
    return v(row, f"{quantity}_covered_{unit}") + max(v(row, f"{quantity}_gap_s") / 3600 * (rate_per_h or 0.0), v(row, f"{quantity}_gap_{unit}"))


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

    waste = {y["x"]: y["w_before"] for y in years}
    for row in rows:
        x = int(row["crediting_year"])
        if x >= 1:
            waste[x] = waste.get(x, 0.0) + v(row, "waste_covered_t")
    tail = {y["x"]: sum(decay(waste.get(x, 0.0), y["x"] - x) for x in range(1, y["x"])) for y in years}

    out = []
    for row in rows:
        s, e = v(row, "start_s"), v(row, "end_s")
        be_tail = sum(tail[y["x"]] * max(0.0, min(e, y["end_s"]) - max(s, y["start_s"])) / (y["end_s"] - y["start_s"]) for y in years)
        be = decay(v(row, "waste_covered_t"), 0) + be_tail + v(row, "export_covered_kwh") / 1000 * ef
        # waste burned shares the waste meter's covered amount; its gaps are its own
        w_burned = v(row, "waste_covered_t") + max(v(row, "waste_burned_gap_s") / 3600 * p["W_fill"], v(row, "waste_burned_gap_t"))
        pe = (w_burned * p["p_plastic"] * p["FCC_j"] * p["FFC_j"] * 44 / 12 * p["OF"] + filled(row, "import", "kwh", p["P_import,fill"]) / 1000 * ef
              + filled(row, "aux_fuel", "kg", p["FC_fill"]) / 1000 * p["EF_FC"])
        out.append(be - pe)
    return out


def er_p(path: Path) -> tuple[int, float]:
    """(floored ER_p, the unrounded period total) of the export at ``path``."""
    total = sum(reductions_t_co2(read(path)))
    return max(0, math.floor(total + 1e-9)), total


if __name__ == "__main__":
    reported, total = er_p(Path(sys.argv[1]))
    print(f"ER_p={reported} total={total!r}")
