"""A verifier re-derives the tonnes from the export alone, and the xlsx recomputes them live.

The data come from the simulator's pump model through a real influxd and the real analytics
engine (see ``test_api_support``). The re-derivation below is deliberately plain (lists, loops,
the csv module) and shares no code with plantmrv: it walks the meter readings, places each
increment linearly in time, splits at the hour edges, treats spacings above ``max_gap_s`` as
gaps and fills them by the conservative rule the export states.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import time

from plantmrv.influxwrite import write_batch
from tests import verify_export
from tests.test_api_support import END_ISO, GAP_HOUR_ISO, PROJECT_ID, START_ISO, api_env  # noqa: F401

RANGE = f"from={START_ISO}&to={END_ISO}"
HOUR = 3600 * 10**9


def parse_sections(text: str) -> dict[str, list[dict]]:
    sections: dict[str, list[dict]] = {}
    name, header = None, None
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] == "#section":
            name, header = row[1], None
            sections[name] = []
        elif header is None:
            header = row
        else:
            sections[name].append(dict(zip(header, row)))
    return sections


def hour_energy(samples, a, b, max_gap_ns):
    """(covered kWh, kWh measured across gaps, covered seconds) of the meter in [a, b)."""
    covered_kwh = gap_kwh = covered_ns = 0.0
    for (t0, v0), (t1, v1) in zip(samples, samples[1:]):
        lo, hi = max(t0, a), min(t1, b)
        if hi <= lo:
            continue
        share = (v1 - v0) * (hi - lo) / (t1 - t0)
        if t1 - t0 <= max_gap_ns:
            covered_kwh += share
            covered_ns += hi - lo
        else:
            gap_kwh += share
    return covered_kwh, gap_kwh, covered_ns / 1e9


def test_verifier_rederives_monitoring_report_from_csv_export_alone(api_env):
    report = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "monitoring"}).json()
    resp = api_env.get(f"/projects/{PROJECT_ID}/export?{RANGE}&format=csv")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    sec = parse_sections(resp.text)

    p = {row["symbol"]: float(row["value"]) for row in sec["parameters"] if row["value"]}
    meta = {m["key"]: m["value"] for m in sec["meta"]}
    assert meta["baseline_model"] == "efficiency_ratio" and meta["rounding"] == "floor"
    assert {f["symbol"] for f in sec["formulas"]} >= {"E_RE,i", "E_PJ,i", "RE_i", "PE_i", "ER_i", "ER_p"}

    samples = sorted((int(r["ts_ns"]), float(r["value"])) for r in sec["raw"] if r["field"] == "energy_kwh")
    intervals = sec["intervals"]
    assert len(intervals) == 48
    assert [g["start_utc"] for g in sec["gaps"]] == [GAP_HOUR_ISO]

    total_t = 0.0
    for row in intervals:
        a = int(row["ts_ns"])
        covered_kwh, gap_kwh, covered_s = hour_energy(samples, a, a + HOUR, p["max_gap_s"] * 1e9)
        gap_s = 3600 - covered_s
        e_re = covered_kwh * p["eta_PJ"] / p["eta_RE"]  # reference: covered time only (low)
        e_pj = max(covered_kwh + gap_s / 3600 * p["P_fill"], covered_kwh + gap_kwh)  # project: filled high
        assert math.isclose(e_re, float(row["reference_energy_kwh"]), rel_tol=1e-9), row["start_utc"]
        assert math.isclose(e_pj, float(row["project_energy_kwh"]), rel_tol=1e-9), row["start_utc"]
        assert math.isclose(gap_s, float(row["gap_filled_s"]), abs_tol=1e-6)
        total_t += e_re / 1000 * p["EF_grid"] - e_pj / 1000 * p["EF_grid"]

    assert math.isclose(total_t, report["reduction_t_co2"], rel_tol=1e-9)
    assert math.floor(total_t) == report["reported_reduction_t_co2"] > 0
    assert report["gap_intervals"] == 1 and report["gap_filled_s"] > 15 * 60 - 1
    assert report["japan_share_t_co2"] == math.floor(report["reported_reduction_t_co2"] * 0.5)

    # both parties can check they looked at the same raw data, results and parameters: the export
    # is complete (trailer) and holds what the report covers, recomputed by the verifier's own script
    found = verify_export.check_csv(resp.content, report)
    assert (found["data_sha256"], found["raw_rows"]) == (report["data_sha256"], report["raw_points"])
    assert found["intervals_sha256"] == report["intervals_sha256"] and found["parameters_sha256"] == report["parameters_sha256"]
    assert report["exports"] == [{"start": START_ISO, "end": END_ISO, "url": f"/projects/{PROJECT_ID}/export?from={START_ISO}&to={END_ISO}",
                                  "raw_rows": report["raw_points"], "data_sha256": report["data_sha256"], "intervals": 48, "intervals_sha256": report["intervals_sha256"]}]
    combined = f"{report['parameters_sha256']}\n{report['data_sha256']}\n{report['intervals_sha256']}\n"
    assert hashlib.sha256(combined.encode()).hexdigest() == report["report_sha256"]
    assert report["checks"] == {"status": "ok", "warnings": [], "current_params_hash": report["params_hashes"][0], "acceptance": None}


def test_xlsx_export_recomputes_the_reported_tonnes_with_live_formulas(api_env, tmp_path):
    import formulas
    import openpyxl

    # the first day (it holds the gap); a day keeps the formula engine's work small
    report = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "2026-03-10/2026-03-11"}).json()
    t0 = time.perf_counter()
    resp = api_env.get(f"/projects/{PROJECT_ID}/export?from=2026-03-10T00:00:00Z&to=2026-03-11T00:00:00Z&format=xlsx")
    build_s = time.perf_counter() - t0
    assert resp.status_code == 200
    path = tmp_path / "export.xlsx"
    path.write_bytes(resp.content)

    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[:2] == ["Input", "Calculation"]
    inp, calc = wb["Input"], wb["Calculation"]
    assert [c.value for c in inp[3]][:9] == ["Symbol", "Description", "Value", "Unit", "Monitoring option", "Data source", "Measurement method", "Frequency", "Comments"]
    symbols = {inp.cell(r, 1).value: r for r in range(4, 20) if inp.cell(r, 1).value}
    assert inp.cell(symbols["EF_grid"], 3).value == report_ef(api_env)
    col = {calc.cell(5, j).value: calc.cell(5, j).column_letter for j in range(2, calc.max_column + 1) if calc.cell(5, j).value}
    # the reference energy of every interval is a formula over the monitored input and the parameters
    e_re = calc[f"{col['reference_energy_kwh']}6"].value
    assert e_re.startswith("=Input!") and f"Input!$C${symbols['eta_PJ']}" in e_re and f"Input!$C${symbols['eta_RE']}" in e_re
    assert f"Input!$C${symbols['EF_grid']}" in calc[f"{col['reference_t_co2']}6"].value
    assert calc[f"{col['reduction_t_co2']}6"].value == f"={col['reference_t_co2']}6-{col['project_t_co2']}6"
    last = 5 + 24
    total_row = last + 2
    er = col["reduction_t_co2"]
    assert calc[f"{er}{total_row}"].value == f"=SUM({er}6:{er}{last})"
    assert calc[f"{er}{total_row + 1}"].value == f"=MAX(0,INT({er}{total_row}+1E-9))"
    gap_row = 6 + 5  # 05:00 on day 1: the project energy filled by a formula over the gap cells and P_fill
    fill = calc[f"{col['project_energy_kwh']}{gap_row}"].value
    assert fill.startswith("=Input!") and f"/3600*Input!$C${symbols['P_fill']}" in fill and "gap:" in calc.cell(gap_row, calc.max_column).value

    # raw values at native resolution: a block per monitoring point, ts_ns as text (15-digit Excel numbers)
    raw = wb["Raw"]
    assert [c.value for c in raw[1]][:5] == ["#point", "pump", "danang", "pump1", "energy_kwh"] and [c.value for c in raw[2]][:3] == ["ts_ns", "time_utc", "value"]
    rows = [(int(r[0]), r[2]) for r in raw.iter_rows(min_row=3, values_only=True) if r[0]]
    assert rows[0][0] < 1_773_100_800 * 10**9 <= rows[1][0]  # the bracketing sample before the range comes first
    assert all(isinstance(v, float) for _, v in rows) and all(b[0] > a[0] for a, b in zip(rows, rows[1:]))
    assert len(rows) == report["raw_points"] == 86400 // 5 - 180 + 2  # 5 s samples minus the 15-min dropout, plus 2 brackets

    # evaluate with a formula engine (the Raw sheet holds data only; drop it to keep this fast)
    del wb["Raw"]
    slim = tmp_path / "calc.xlsx"
    wb.save(slim)
    t0 = time.perf_counter()
    solution = formulas.ExcelModel().loads(str(slim)).finish().calculate()
    elapsed = time.perf_counter() - t0

    def value(cell: str) -> float:
        key = next(k for k in solution if k.upper().endswith(f"CALCULATION'!{cell}"))
        v = solution[key].value
        return float(v[0][0] if hasattr(v, "__getitem__") else v)

    assert math.isclose(value(f"{er}{total_row}"), report["reduction_t_co2"], rel_tol=1e-9)
    assert value(f"{er}{total_row + 1}") == report["reported_reduction_t_co2"] > 0
    assert value(f"{er}{total_row + 3}") == 0.0
    assert elapsed < 60, elapsed
    print(f"xlsx build {build_s:.2f}s, formula evaluation {elapsed:.2f}s")


def report_ef(api_env) -> float:
    return api_env.get(f"/projects/{PROJECT_ID}").json()["grid_emission_factor"]["value_t_co2_per_mwh"]


def test_fiscal_and_calendar_year_reports_hold_the_same_tonnes_as_the_monitoring_period(api_env):
    mon = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "monitoring"}).json()
    fy = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "FY2025"}).json()
    cy = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "2026"}).json()
    # the Japanese fiscal year runs 1 April - 31 March in JST
    assert (fy["period"]["start"], fy["period"]["end"]) == ("2025-03-31T15:00:00Z", "2026-03-31T15:00:00Z")
    assert (cy["period"]["start"], cy["period"]["end"]) == ("2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z")
    for other in (fy, cy):
        assert math.isclose(other["reduction_t_co2"], mon["reduction_t_co2"], rel_tol=1e-12)
        assert other["reported_reduction_t_co2"] == mon["reported_reduction_t_co2"]
        assert other["data_sha256"] != mon["data_sha256"]  # the hash covers the period's own raw rows (here the margins too)
        assert other["completeness"] < 0.01  # a year with two days of results is mostly gap, and says so


def test_reductions_rows_add_up_to_the_period_total_at_every_interval(api_env):
    sums = {}
    for interval in ("hour", "day", "month", "period"):
        body = api_env.get(f"/projects/{PROJECT_ID}/reductions", params={"from": START_ISO, "to": END_ISO, "interval": interval}).json()
        sums[interval] = sum(r["reduction_t_co2"] for r in body["rows"])
        assert math.isclose(sums[interval], body["totals"]["reduction_t_co2"], rel_tol=1e-12)
        assert [g["start"] for g in body["gaps"]] == [GAP_HOUR_ISO] and body["gaps"][0]["filled_by"].startswith("conservative")
    assert len(api_env.get(f"/projects/{PROJECT_ID}/reductions", params={"from": START_ISO, "to": END_ISO, "interval": "hour"}).json()["rows"]) == 48
    assert max(sums.values()) - min(sums.values()) < 1e-9


def test_time_ranges_are_bounded_and_aligned(api_env):
    bad = [
        {"from": END_ISO, "to": START_ISO},  # reversed
        {"from": "2026-03-10T00:30:00Z", "to": END_ISO},  # not a whole hour
        {"from": "1900-01-01T00:00:00Z", "to": END_ISO},  # before 1970
        {"from": "2020-01-01T00:00:00Z", "to": END_ISO},  # longer than max_span_days
    ]
    for params in bad:
        r = api_env.get(f"/projects/{PROJECT_ID}/reductions", params=params | {"interval": "day"})
        assert r.status_code == 422, params
    r = api_env.get(f"/projects/{PROJECT_ID}/export", params={"from": "2025-11-01T00:00:00Z", "to": END_ISO})
    assert r.status_code == 422 and "92 days" in r.text  # raw exports have a shorter bound
    r = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "2026-13"})
    assert r.status_code == 422 and "FY2024" in r.text


def test_report_hash_changes_when_two_raw_samples_swap_values(api_env):
    """Same count, same sum, other data: the hash is computed from the rows, never from aggregates."""
    from plantmrv.batch import SampleBatch, Series

    url, params = f"/projects/{PROJECT_ID}/monitoring-report", {"period": "2026-03-11/2026-03-12"}
    first = api_env.get(url, params=params).json()
    assert api_env.get(url, params=params).json()["data_sha256"] == first["data_sha256"]  # stable while nothing changes
    a, b = 1_773_187_200 * 10**9 + 3600 * 10**9, 1_773_187_200 * 10**9 + 7200 * 10**9  # 01:00 and 02:00 on 2026-03-11, 5 s grid points
    series = Series.of("pump", "energy_kwh", site="danang", asset="pump1")
    va, vb = (api_env.influx.query(f'SELECT "energy_kwh" FROM "pump" WHERE time = {t}')[0].columns["energy_kwh"][0] for t in (a, b))
    write_batch(api_env.influx, SampleBatch.from_columns({series: ([a, b], [vb, va])}))
    try:
        swapped = api_env.get(url, params=params).json()
        assert swapped["raw_points"] == first["raw_points"] and swapped["data_sha256"] != first["data_sha256"]
        export = api_env.get(f"/projects/{PROJECT_ID}/export", params={"from": "2026-03-11T00:00:00Z", "to": "2026-03-12T00:00:00Z"})
        assert verify_export.check_csv(export.content, swapped)["data_sha256"] == swapped["data_sha256"]
    finally:
        write_batch(api_env.influx, SampleBatch.from_columns({series: ([a, b], [va, vb])}))
    assert api_env.get(url, params=params).json()["data_sha256"] == first["data_sha256"]


def test_a_report_longer_than_one_export_lists_the_exports_that_make_it_up(api_env, tmp_path):
    """Exports are capped (max_export_span_days); the report lists consecutive pieces, each export's
    trailer carries exactly its piece's hashes, and the verifier recomputes the report's own
    data_sha256 from the pieces' rows (brackets shared between pieces counted once)."""
    cfg = api_env.app.state.config
    old = cfg.max_export_span_days
    cfg.max_export_span_days = 1
    try:
        report = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "monitoring"}).json()
        assert [(p["start"], p["end"]) for p in report["exports"]] == [(START_ISO, "2026-03-11T00:00:00Z"), ("2026-03-11T00:00:00Z", END_ISO)]
        rows: dict[tuple, set] = {}
        for piece in report["exports"]:
            body = api_env.get(piece["url"]).content
            found = verify_export.check_csv(body, report)  # matched against this piece of the report
            assert found["intervals"] == piece["intervals"] == 24
            for r in verify_export.records(verify_export.sections(body.decode())["raw"]):
                rows.setdefault((r["measurement"], r["site"], r["asset"], r["field"]), set()).add((int(r["ts_ns"]), float(r["value"])))
        n, whole = verify_export.data_sha256(list(rows), {k: sorted(v) for k, v in rows.items()})
        assert (n, whole) == (report["raw_points"], report["data_sha256"])
        assert sum(p["raw_rows"] for p in report["exports"]) == n + 2  # the inner brackets, once in each piece
    finally:
        cfg.max_export_span_days = old


def test_verifier_recomputes_parameters_sha256_from_the_project_document(api_env):
    """docs/verifier.md: SHA-256 of GET /projects/{id} as canonical JSON (sorted keys, no spaces, ASCII)."""
    import json

    project = api_env.get(f"/projects/{PROJECT_ID}").json()
    report = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "2026-03-10/2026-03-11"}).json()
    text = json.dumps(project, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert hashlib.sha256(text.encode()).hexdigest() == report["parameters_sha256"]


def test_the_documented_data_sha256_snippet_recomputes_the_report(api_env):
    """The Python of docs/verifier.md, run as written, over an export's raw rows."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "verifier.md").read_text()
    (snippet,) = re.findall(r"```python\n(.*?)```", doc, re.S)
    namespace: dict = {}
    exec(snippet, namespace)
    report = api_env.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "2026-03-10/2026-03-11"}).json()
    text = api_env.get(f"/projects/{PROJECT_ID}/export", params={"from": START_ISO, "to": "2026-03-11T00:00:00Z"}).text
    points: dict[tuple, list] = {}
    for r in verify_export.records(verify_export.sections(text)["raw"]):
        points.setdefault((r["measurement"], r["site"], r["asset"], r["field"]), []).append((int(r["ts_ns"]), float(r["value"])))
    assert namespace["data_sha256"](list(points.items())) == report["data_sha256"]
