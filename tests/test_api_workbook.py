"""The xlsx export re-derives every tonne: for every methodology of the registry, an export with
gaps and a meter replacement (and a KH_AM002 project with a grid day, an outage day and a mixed
day) is recalculated by LibreOffice Calc, with every stored formula result corrupted first, and
equals the API's interval and period figures; a verifier re-derives ER_p from the workbook alone.

Data, engine and API: :mod:`tests.workbook_support`.
"""

from __future__ import annotations

import math
import re

import openpyxl
import pytest

from plantmrv.analytics import registry
from tests import libreoffice, verify_export, verify_workbook
from tests.workbook_support import workbook_env  # noqa: F401

API_FIELDS = ("reference_energy_kwh", "project_energy_kwh", "energy_saved_kwh", "reference_t_co2", "project_t_co2", "reduction_t_co2")
FIRST = 6  # first interval row of the Calculation sheet (title, note, headers, formulas in symbols, API fields)


def close(a: float, b: float) -> bool:
    """Equal within 1e-9 relative (and 1e-9 of the interval's scale for values near 0)."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


LANGS = ("en", "ja")
EMPTY_RANGE = {"from": "2026-03-12T00:00:00Z", "to": "2026-03-13T00:00:00Z"}  # wte: a range without results


@pytest.fixture(scope="module")
def workbooks(workbook_env, tmp_path_factory):
    """Every project's xlsx (no raw rows) in English and Japanese, and an empty range's, all
    recalculated in one LibreOffice process: {lang: {id: (source, recalculated)}}."""
    out = tmp_path_factory.mktemp("workbooks")
    paths: dict[str, dict] = {lang: {} for lang in LANGS}
    for lang in LANGS:
        for pid, rng in [(c.id, c.range) for c in workbook_env.cases] + [("empty", EMPTY_RANGE)]:
            path = out / f"{pid}.{lang}.xlsx"
            project = "wte" if pid == "empty" else pid
            path.write_bytes(workbook_env.get(f"/projects/{project}/export", **rng, format="xlsx", raw="false", lang=lang).content)
            paths[lang][pid] = path
    recalculated = libreoffice.recalculate([p for by_id in paths.values() for p in by_id.values()], out)
    return {lang: {pid: (p, recalculated[p]) for pid, p in by_id.items()} for lang, by_id in paths.items()}


@pytest.fixture(scope="module")
def exported(workbook_env, workbooks):
    """The English workbooks (source, recalculated) with the API's figures of the same range."""
    exported = {}
    for case in workbook_env.cases:
        rows = workbook_env.get(f"/projects/{case.id}/reductions", **case.range, interval="hour").json()
        report = workbook_env.get(f"/projects/{case.id}/monitoring-report", period="monitoring").json()
        exported[case.id] = (*workbooks["en"][case.id], rows, report)
    exported["empty"] = (*workbooks["en"]["empty"], {"rows": [], "totals": dict.fromkeys(API_FIELDS, 0.0)},
                         {"reported_reduction_t_co2": 0, **dict.fromkeys(API_FIELDS, 0.0)})
    return exported


def test_the_cases_cover_every_methodology_with_gaps_and_a_meter_event(workbook_env, exported):
    kinds = {(c.config["plant_type"], c.config["baseline"]) for c in workbook_env.cases}
    assert kinds == {(m.plant_type, m.baseline) for m in registry.all_methodologies()}
    for pid, (_, _, rows, report) in exported.items():
        if pid == "empty":
            continue
        assert report["gap_intervals"] >= 1 and report["checks"]["status"] == "ok", pid
        assert any(r["completeness"] < 1 for r in rows["rows"]), pid
    for case in workbook_env.cases:
        events = workbook_env.influx.query(f"SELECT * FROM mrv_event WHERE project = '{case.id}'")
        assert any("meter_replacement" in str(k) for r in events for k in r.columns.get("kind", [])), case.id


def test_libreoffice_recalculates_every_workbook_to_the_api_figures(exported):
    for pid, (source, path, rows, report) in exported.items():
        formulas = openpyxl.load_workbook(source)
        values = openpyxl.load_workbook(path, data_only=True)
        n_formulas = 0
        for ws in formulas.worksheets:  # every formula cell recalculated, none an error
            for row in ws.iter_rows():
                for c in row:
                    got = values[ws.title][c.coordinate].value
                    assert not (isinstance(got, str) and got.startswith(libreoffice.ERRORS)), (pid, ws.title, c.coordinate, c.value, got)
                    if c.data_type == "f":
                        n_formulas += 1
                        assert got != libreoffice.CORRUPT and got is not None, (pid, ws.title, c.coordinate, c.value)
        calc = values["Calculation"]
        assert n_formulas > 24 * 6 or pid == "empty", pid
        fields = {calc.cell(5, j).value: j for j in range(2, calc.max_column + 1) if calc.cell(5, j).value}
        assert set(fields) == set(API_FIELDS), (pid, fields)
        hours = rows["rows"]
        for i, r in enumerate(hours):
            assert calc.cell(FIRST + i, 1).value == r["start"].replace("+00:00", "Z"), (pid, i)
            for f, j in fields.items():
                assert close(calc.cell(FIRST + i, j).value, r[f]), (pid, r["start"], f, calc.cell(FIRST + i, j).value, r[f])
        total = next(k for k in range(FIRST, calc.max_row + 1) if calc.cell(k, 1).value == "Total")
        assert total == FIRST + len(hours) + 1, pid
        for f, j in fields.items():
            assert close(calc.cell(total, j).value, rows["totals"][f]) and close(rows["totals"][f], report[f]), (pid, f, calc.cell(total, j).value, report[f])
        er = fields["reduction_t_co2"]
        assert calc.cell(total + 1, 1).value == "ER_p reported [tCO2]"
        assert calc.cell(total + 1, er).value == report["reported_reduction_t_co2"], pid
        assert calc.cell(total + 3, er).value == 0, pid
        check = next(j for j in range(2, calc.max_column + 1) if calc.cell(4, j).value == "stored ER_i - ER_i")
        assert all(abs(calc.cell(FIRST + i, check).value) <= 1e-9 * max(1.0, abs(hours[i]["reduction_t_co2"])) for i in range(len(hours))), pid


def test_every_conservative_fill_is_a_formula_over_the_gap_cells_and_the_fill_value(exported):
    for pid, (source, _, rows, _) in exported.items():
        if pid == "empty":
            continue
        wb = openpyxl.load_workbook(source)
        calc, inp = wb["Calculation"], wb["Input"]
        fill_cols = [j for j in range(2, calc.max_column + 1) if "+ MAX(gap_s(" in str(calc.cell(4, j).value)]
        if pid.startswith("pv"):
            assert not fill_cols, pid  # solar PV: no project side
            continue
        assert fill_cols, pid
        params = {inp.cell(r, 1).value: r for r in range(4, 60) if inp.cell(r, 1).value}
        fill_rows = [params[s] for s in ("P_fill", "W_fill", "FC_fill", "P_import,fill") if s in params]
        for j in fill_cols:
            for i in range(len(rows["rows"])):
                f = calc.cell(FIRST + i, j).value
                assert f.startswith("=Input!") and "+MAX(Input!" in f and "/3600*Input!$C$" in f, (pid, f)
                assert any(f"Input!$C${r}" in f for r in fill_rows), (pid, f)
        notes = [calc.cell(FIRST + i, calc.max_column).value or "" for i in range(len(rows["rows"]))]
        assert sum("gap:" in n and "Gaps row" in n for n in notes) >= 2, (pid, notes)
        assert any("meter event meter_replacement" in n for n in notes), pid


def test_kh_am002_days_table_picks_the_ef_of_every_interval(exported):
    source, path, rows, _ = exported["pv-kh"]
    wb = openpyxl.load_workbook(source)
    assert [c.value for c in wb["Days"][4]] == ["local_day", "start_utc", "end_utc", "day_category", "meaning", "intervals"]  # the key row
    days = [r for r in wb["Days"].iter_rows(min_row=5, values_only=True) if r[0]]
    assert [(d[3], d[5]) for d in days] == [(1, 24), (0, 24), (-1, 24)]  # grid day, outage day, mixed day
    calc = wb["Calculation"]
    ef_col = next(j for j in range(2, calc.max_column + 1) if str(calc.cell(3, j).value).startswith("EF_RE,i"))
    assert calc.cell(FIRST, ef_col).value.startswith("=IF(Days!$D$5=1,")
    assert "Days!$D$6" in calc.cell(FIRST + 24, ef_col).value and "Days!$D$7" in calc.cell(FIRST + 48, ef_col).value
    values = openpyxl.load_workbook(path, data_only=True)["Calculation"]
    efs = [values.cell(FIRST + i, ef_col).value for i in range(72)]
    assert efs == [0.7] * 24 + [0.6] * 48  # grid EF; diesel; the lower of the two on the mixed day
    assert sum(r["reduction_t_co2"] for r in rows["rows"][24:48]) > 0


def test_waste_to_energy_lays_out_the_decay_tail_per_crediting_year(exported):
    source, path, rows, _ = exported["wte"]
    wb = openpyxl.load_workbook(source)
    fod = wb["FOD"]
    text = [[c for c in r] for r in fod.iter_rows(values_only=True)]
    assert any(r[0] == "Year y = 2: decay in year 2 of the waste diverted in years 1 to 1" for r in text)
    calc = wb["Calculation"]
    tail = next(j for j in range(2, calc.max_column + 1) if str(calc.cell(3, j).value).startswith("BE_CH4,tail,i"))
    noon = FIRST + 12  # 12:00-13:00 straddles the anniversary at 12:30: its share of years 1 and 2
    assert calc.cell(noon, tail).value.count("FOD!$K$") == 2 and calc.cell(noon + 1, tail).value.count("FOD!$K$") == 1
    values = openpyxl.load_workbook(path, data_only=True)
    v = values["Calculation"]
    tails = [v.cell(FIRST + i, tail).value for i in range(24)]
    assert tails[:12] == [0] * 12 and 0 < tails[12] < tails[13] and math.isclose(tails[12] * 2, tails[13], rel_tol=1e-9)
    years = [r for r in values["FOD"].iter_rows(values_only=True) if isinstance(r[0], int) and isinstance(r[1], str) and r[1].startswith("20")]
    assert [y[0] for y in years] == [1, 2] and years[0][7] > 0  # year 1's waste stored before the export
    assert years[0][6] > 0  # and the export's own first half day, summed live from Input


def test_csv_carries_the_same_inputs_and_the_meter_events(workbook_env):
    case = workbook_env.cases[0]
    text = workbook_env.get(f"/projects/{case.id}/export", **case.range, raw="false").text
    sec = verify_export.sections(text)
    assert {"project_energy_covered_kwh", "project_energy_gap_s", "project_energy_gap_kwh", "volume_covered_m3"} <= set(sec["intervals"][0])
    gap = next(r for r in verify_export.records(sec["intervals"]) if r["start_utc"] == "2026-03-10T05:00:00Z")
    assert float(gap["project_energy_gap_s"]) > 900 - 20
    events = verify_export.records(sec["events"])
    assert [(e["source"], e["kind"], e["counted"]) for e in events] == [(f"{case.id}.energy_kwh", "meter_replacement", "1")]
    assert verify_export.check_csv(text.encode())["intervals"] == 24


def test_verifier_rederives_the_floored_er_p_from_the_workbook_alone(exported):
    for pid, (source, _, rows, report) in exported.items():
        reported, total = verify_workbook.er_p(source)
        assert close(total, report["reduction_t_co2"]), (pid, total, report["reduction_t_co2"])
        assert reported == report["reported_reduction_t_co2"], pid
    assert any(report["reported_reduction_t_co2"] > 0 for _, _, _, report in exported.values())


def test_every_methodology_column_names_only_its_inputs_parameters_columns_and_tables():
    import dataclasses

    from plantmrv.api.workbook import _NAME

    special = {"EF_grid", "kWh_per_MWh"}
    for m in registry.all_methodologies():
        known = {f.name for f in registry.input_fields(m)} | {f.name for f in dataclasses.fields(m.parameters)} | special
        for t in m.tables:
            known |= {f"{t.name}.factor", f"{t.name}.first_year", f"{t.name}.tail"} if isinstance(t, registry.DecayTable) else {t.input}
        results = set()
        for c in m.columns:
            for alt in c.alternatives:
                unknown = set(_NAME.findall(alt)) - known
                assert not unknown, (m.key, c.key, unknown)
            known.add(c.key)
            results.add(c.result)
        assert set(API_FIELDS) <= results, (m.key, results)


JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
#: an English word left in a heading (symbols, keys and units have digits, underscores or commas, or are short)
ENGLISH_WORD = re.compile(r"(?<![\w,.(\[])[A-Za-z]{4,}(?![\w,(\[])")


def test_a_japanese_workbook_recalculates_to_exactly_the_english_figures(workbooks):
    """Same sheets, same formulas in the same cells, the same numbers after LibreOffice recalculated
    both (with every stored result corrupted first); only the text people read differs."""
    for pid, (en_source, en_path) in workbooks["en"].items():
        ja_source, ja_path = workbooks["ja"][pid]
        en, ja = openpyxl.load_workbook(en_source), openpyxl.load_workbook(ja_source)
        en_values, ja_values = openpyxl.load_workbook(en_path, data_only=True), openpyxl.load_workbook(ja_path, data_only=True)
        assert ja.sheetnames == en.sheetnames, pid
        formulas = translated = 0
        for ws in en.worksheets:
            if ws.title == "Trailer":  # generated_utc differs by the second the export ran
                continue
            other = ja[ws.title]
            assert (other.max_row, other.max_column) == (ws.max_row, ws.max_column), (pid, ws.title)
            for row in ws.iter_rows():
                for c in row:
                    j = other[c.coordinate]
                    if c.data_type == "f" or isinstance(c.value, (int, float)):
                        assert j.value == c.value, (pid, ws.title, c.coordinate, c.value, j.value)
                        got, want = ja_values[ws.title][c.coordinate].value, en_values[ws.title][c.coordinate].value
                        assert got == want and got != libreoffice.CORRUPT, (pid, ws.title, c.coordinate, want, got)
                        formulas += c.data_type == "f"
                    elif j.value != c.value and (c.value, j.value) != ("en", "ja"):  # the meta key lang
                        assert isinstance(j.value, str) and JAPANESE.search(j.value), (pid, ws.title, c.coordinate, c.value, j.value)
                        translated += 1
                    if j.font.b and isinstance(j.value, str):  # headings: Japanese, or symbols and units only
                        assert JAPANESE.search(j.value) or not ENGLISH_WORD.search(j.value), (pid, ws.title, c.coordinate, j.value)
        assert formulas > 0 and translated > 40, (pid, formulas, translated)
        calc = ja["Calculation"]
        assert JAPANESE.search(calc["A1"].value) and calc["A3"].value == "区間の開始（UTC）" and "合計" in [c.value for c in calc["A"]], pid


def test_the_verifier_scripts_read_a_japanese_workbook_as_an_english_one(workbooks):
    for pid, (en_source, _) in workbooks["en"].items():
        ja_source = workbooks["ja"][pid][0]
        assert verify_workbook.er_p(ja_source) == verify_workbook.er_p(en_source), pid
        assert verify_export.check_xlsx(ja_source) == verify_export.check_xlsx(en_source), pid
        project = {r[0]: r[1] for r in openpyxl.load_workbook(ja_source, read_only=True)["Project"].iter_rows(values_only=True) if len(r) > 1 and r[0]}
        assert project["lang"] == "ja" and project["time_zone"] == "UTC", pid


def test_a_japanese_csv_has_the_english_keys_and_hashes(workbook_env):
    """Sections, column headings, codes and every hash are the same in both languages; the
    descriptive texts the catalogue knows are Japanese; the trailer proves either complete."""
    case = workbook_env.cases[0]
    text = {lang: workbook_env.get(f"/projects/{case.id}/export", **case.range, lang=lang).text for lang in LANGS}  # with the raw rows
    found = {lang: verify_export.check_csv(t.encode()) for lang, t in text.items()}
    assert found["en"]["raw_rows"] > 20_000
    assert {k: v for k, v in found["ja"].items() if k != "content_sha256"} == {k: v for k, v in found["en"].items() if k != "content_sha256"}
    sec = {lang: verify_export.sections(t) for lang, t in text.items()}
    assert list(sec["ja"]) == list(sec["en"]) and all(sec["ja"][name][0] == sec["en"][name][0] for name in sec["en"])  # names and headings
    assert sec["ja"]["raw"] == sec["en"]["raw"] and sec["ja"]["intervals"] == sec["en"]["intervals"]
    meta = {lang: dict(r[:2] for r in s["meta"][1:]) for lang, s in sec.items()}
    assert (meta["en"]["lang"], meta["ja"]["lang"]) == ("en", "ja")
    params = {lang: verify_export.records(s["parameters"]) for lang, s in sec.items()}
    eta = [next(r for r in params[lang] if r["symbol"] == "eta_PJ") for lang in LANGS]
    assert eta[0]["description"] == "Wire-to-water efficiency of the project pump" and JAPANESE.search(eta[1]["description"])
    assert {k: v for k, v in eta[0].items() if k not in ("description", "frequency", "comments")} == {k: v for k, v in eta[1].items() if k not in ("description", "frequency", "comments")}
    assert "filename=" in (h := workbook_env.get(f"/projects/{case.id}/export", **case.range, raw="false", lang="ja").headers["content-disposition"]) and h.endswith('_ja.csv"')
