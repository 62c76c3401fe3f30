"""Exports a verifier can re-derive the tonnes from, and prove complete: sectioned CSV
(streamed) and xlsx, both ending with a trailer (docs/verifier.md).

CSV: one file of sections, each introduced by a line ``#section,<name>`` and its header row:
``meta``, ``parameters``, ``monitoring_points``, ``formulas``, ``intervals``, ``totals``,
``checks``, ``gaps``, ``raw`` (every monitored value at native resolution, streamed a day at a
time from InfluxDB), then ``trailer``: the number of lines and the SHA-256 of every byte before
it, the raw rows' count and canonical ``data_sha256`` (:mod:`plantmrv.api.digests`), the
intervals' count and ``intervals_sha256``, ``parameters_sha256``, the checks' status, the
generation time and the software version; the file's last line is ``#end``. A file without
that trailer, or whose bytes do not hash to it, is incomplete. If anything fails while the
export streams, the connection is aborted (no clean end of the chunked body), so HTTP cannot
present a truncated export as a complete one either.

Every text cell is spreadsheet-safe (:mod:`plantmrv.api.cells`): CSV written by the csv module,
text that a spreadsheet would run as a formula neutralised.

xlsx, laid out like a JCM monitoring spreadsheet: ``Input`` (the parameters with symbol,
description, value, unit, monitoring option, data source, measurement method, frequency,
comments; then the monitored values per interval), ``Calculation`` (live Excel formulas that
reference the Input cells: reference energy, RE_i, PE_i, ER_i, the period total and ER_p with
the rounding rule), ``Checks``, ``Gaps``, ``Formulas`` (as text), ``Project``, ``Raw`` (per
monitoring point a ``#point`` row, a header, then ``ts_ns`` as text, time and value) and
``Trailer``. Opening it in a spreadsheet recomputes the same tonnes (the workbook asks for a
full recalculation on load). Built with openpyxl's write-only mode into a spooled temporary
file; the ``Raw`` and ``Trailer`` sheets' XML is then written into the zip directly (openpyxl
writes ~30k cells/s, this ~1M), and the file is streamed out in chunks.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import tempfile
import zipfile
from datetime import datetime, timezone
from itertools import repeat
from typing import Iterator

import numpy as np

import plantmrv
from plantmrv.api.cells import Formula, csv_line, csv_rows, csv_writer, neutralise, xlsx_cells, xml_text
from plantmrv.api.checks import CheckedResults
from plantmrv.api.digests import DataDigest, PointDigest, RowsDigest, distinct_points, iter_point_rows, point_key
from plantmrv.api.models import GapInfo, ProjectDetail, ResultChecks
from plantmrv.api.queries import MRV_FIELDS, MRV_INPUT_FIELDS, MrvColumns
from plantmrv.api.reports import apply_rounding, iso
from plantmrv.influx import InfluxClient

CSV_FORMAT = "plantmrv-export-csv/2"
XLSX_FORMAT = "plantmrv-export-xlsx/2"
PARAMETER_COLUMNS = ["symbol", "description", "value", "unit", "option", "kind", "source", "measurement_method", "frequency", "comments"]
INPUT_HEADER = ["Symbol", "Description", "Value", "Unit", "Monitoring option", "Data source", "Measurement method", "Frequency", "Comments"]
POINT_COLUMNS = ["symbol", "description", "measurement", "site", "asset", "field", "unit", "option", "measurement_method", "frequency", "meter"]
RAW_COLUMNS = ["measurement", "site", "asset", "field", "ts_ns", "value", "time_utc"]
INTERVAL_COLUMNS = ["start_utc", "end_utc", "ts_ns", *MRV_FIELDS, "params_hash", *MRV_INPUT_FIELDS]
CHECK_COLUMNS = ["code", "count", "first_utc", "message"]
KWH_PER_MWH = 1000.0
CHUNK_ROWS = 20_000  # raw rows formatted and sent at a time (memory stays flat whatever the range)
TRAILER_LINE = "#section,trailer\r\n"
END_LINE = "#end\r\n"


class ExportTooLarge(Exception):
    pass


def _ef(project: ProjectDetail) -> float | None:
    return project.grid_emission_factor.value_t_co2_per_mwh if project.grid_emission_factor else None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def meta_rows(project: ProjectDetail, start_ns: int, end_ns: int, source_interval: str, params_sha: str, raw: bool) -> list[tuple[str, object]]:
    return [
        ("project", project.id),
        ("name", project.name),
        ("plant_type", project.plant_type),
        ("site", project.site),
        ("country", project.country),
        ("methodology_id", project.methodology.id),
        ("methodology_version", project.methodology.version),
        ("baseline_model", project.methodology.baseline_model),
        ("rounding", project.methodology.rounding),
        ("missing_data_rule", project.methodology.missing_data_rule),
        ("from_utc", iso(start_ns)),
        ("to_utc", iso(end_ns)),
        ("result_interval", source_interval),
        ("raw", "included" if raw else "omitted"),
        ("ef_grid_t_co2_per_mwh", _ef(project)),
        ("ef_grid_source", project.grid_emission_factor.source if project.grid_emission_factor else ""),
        ("parameters_sha256", params_sha),
        ("params_hash_current", project.params_hash or ""),
        ("hash_rules", "data_sha256, intervals_sha256 and the trailer: docs/verifier.md of plantmrv"),
    ]


def totals(mrv: MrvColumns, rounding: str, checks: ResultChecks) -> dict[str, object]:
    """Sums of the stored intervals; the rounded ER_p only when the checks do not withhold it."""
    out: dict[str, object] = {f: float(np.nansum(mrv.fields[f])) for f in MRV_FIELDS if f != "completeness"}
    withheld = checks.status == "withheld"
    out["reported_reduction_t_co2"] = None if withheld else apply_rounding(out["reduction_t_co2"], rounding)
    out["credit_status"] = checks.status
    if checks.acceptance is not None:
        a = checks.acceptance
        out |= {"acceptance_id": a.id, "accepted_by": a.accepted_by, "accepted_at": a.accepted_at, "acceptance_reason": a.reason}
    return out


def check_rows(checks: ResultChecks) -> list[list]:
    return [[w.code, w.count, w.first.strftime("%Y-%m-%dT%H:%M:%SZ") if w.first else "", w.message] for w in checks.warnings]


def trailer_rows(fmt: str, digest: DataDigest, checked: CheckedResults, checks: ResultChecks, head: list[tuple[str, object]] = ()) -> list[tuple[str, object]]:
    return [
        ("format", fmt),
        *head,
        ("raw_rows", digest.rows),
        ("data_sha256", digest.sha256),
        ("intervals", len(checked.mrv)),
        ("intervals_sha256", checked.intervals_sha256),
        ("parameters_sha256", checked.parameters_sha256),
        ("params_hashes", " ".join(sorted({str(h) for h in checked.mrv.params_hash if h}))),
        ("checks", checks.status + "".join(f" {w.code}:{w.count}" for w in checks.warnings)),
        ("generated_utc", _now()),
        ("software", f"plantmrv {plantmrv.__version__}"),
    ]


def _iso_many(ts: np.ndarray) -> list[str]:
    """ISO 8601 seconds of many ns timestamps at once, with Z."""
    return [s + "Z" for s in np.datetime_as_string(np.asarray(ts, dtype=np.int64).astype("datetime64[ns]"), unit="s").tolist()]


def _raw_points(project: ProjectDetail, raw: bool):
    return distinct_points(project.monitoring_points) if raw else []


# --------------------------------------------------------------------------- CSV


def iter_csv(
    client: InfluxClient,
    project: ProjectDetail,
    checked: CheckedResults,
    checks: ResultChecks,
    gap_list: list[GapInfo],
    start_ns: int,
    end_ns: int,
    source_interval: str,
    raw: bool = True,
) -> Iterator[bytes]:
    """The CSV export, yielded in pieces and closed by its trailer; raw data is read a day at a
    time as it streams. Any failure raises out of the iterator (the server aborts the stream)."""
    content = hashlib.sha256()
    lines = 0
    digest = DataDigest()
    for text in _csv_body(client, project, checked, checks, gap_list, start_ns, end_ns, source_interval, raw, digest):
        data = text.encode()
        content.update(data)
        lines += data.count(b"\n")
        yield data
    head = [("content_lines", lines), ("content_sha256", content.hexdigest())]
    rows = trailer_rows(CSV_FORMAT, digest, checked, checks, head)
    yield (TRAILER_LINE + csv_line("key", "value") + csv_rows(rows) + END_LINE).encode()


def _csv_body(client, project, checked: CheckedResults, checks, gap_list, start_ns, end_ns, source_interval, raw, digest: DataDigest) -> Iterator[str]:
    mrv = checked.mrv
    step = {"1m": 60, "1h": 3600}[source_interval] * 1_000_000_000
    out = [csv_line("#section", "meta"), csv_line("key", "value"), csv_rows(meta_rows(project, start_ns, end_ns, source_interval, checked.parameters_sha256, raw))]
    out += [csv_line("#section", "parameters"), csv_rows([PARAMETER_COLUMNS])]
    out.append(csv_rows([[p.model_dump()[c] for c in PARAMETER_COLUMNS] for p in project.parameters]))
    if project.grid_emission_factor:
        ef = project.grid_emission_factor
        out.append(csv_line("EF_grid", "Grid emission factor", ef.value_t_co2_per_mwh, "tCO2/MWh", "A", "default", ef.source, "", "Fixed ex ante", f"{ef.country} {ef.grid} {ef.year or ''} {ef.kind}".strip()))
    out += [csv_line("#section", "monitoring_points"), csv_rows([POINT_COLUMNS])]
    out.append(csv_rows([[mp.model_dump()[c] for c in POINT_COLUMNS] for mp in project.monitoring_points]))
    out += [csv_line("#section", "formulas"), csv_line("symbol", "expression", "description", "tag")]
    out.append(csv_rows([[f.symbol, f.expression, f.description, f.tag] for f in project.methodology.formulas]))
    yield "".join(out)

    rows = []
    buf = [csv_line("#section", "intervals"), csv_rows([INTERVAL_COLUMNS])]
    for i in range(len(mrv)):
        t = int(mrv.time[i])
        rows.append([iso(t), iso(t + step), t, *(_num(mrv.fields[f][i]) for f in MRV_FIELDS), str(mrv.params_hash[i]), *(_num(mrv.fields[f][i]) for f in MRV_INPUT_FIELDS)])
        if len(rows) >= 5000:
            yield "".join(buf) + csv_rows(rows)
            buf, rows = [], []
    buf.append(csv_rows(rows))
    buf += [csv_line("#section", "totals"), csv_line("key", "value"), csv_rows(totals(mrv, project.methodology.rounding_scheme, checks).items())]
    buf += [csv_line("#section", "checks"), csv_rows([CHECK_COLUMNS]), csv_rows(check_rows(checks))]
    buf += [csv_line("#section", "gaps"), csv_line("start_utc", "end_utc", "completeness", "gap_filled_s", "filled_by")]
    buf.append(csv_rows([[g.start.strftime("%Y-%m-%dT%H:%M:%SZ"), g.end.strftime("%Y-%m-%dT%H:%M:%SZ"), g.completeness, g.gap_filled_s, g.filled_by] for g in gap_list]))
    buf += [csv_line("#section", "raw"), csv_rows([RAW_COLUMNS])]
    yield "".join(buf)

    for mp in _raw_points(project, raw):
        key = point_key(mp)
        ident = [neutralise(x) for x in key]
        d = RowsDigest()
        for ts, values in iter_point_rows(client, mp, start_ns, end_ns):
            d.update(ts, values)
            for lo in range(0, len(ts), CHUNK_ROWS):  # a day of 1 s rows is ~7 MB of text: yield it in pieces
                t, v = ts[lo : lo + CHUNK_ROWS], values[lo : lo + CHUNK_ROWS]
                text = io.StringIO()
                csv_writer(text).writerows(zip(*(repeat(x) for x in ident), t.tolist(), map(repr, v.tolist()), _iso_many(t)))
                yield text.getvalue()
        digest.points.append(PointDigest(key, d.rows, d.hexdigest()))


# --------------------------------------------------------------------------- xlsx


def build_xlsx(
    client: InfluxClient,
    project: ProjectDetail,
    checked: CheckedResults,
    checks: ResultChecks,
    gap_list: list[GapInfo],
    start_ns: int,
    end_ns: int,
    source_interval: str,
    max_raw_rows: int,
    raw: bool = True,
) -> tempfile.SpooledTemporaryFile:
    """Write the workbook; return the (rewound) spooled file holding it."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    mrv = checked.mrv
    step = {"1m": 60, "1h": 3600}[source_interval] * 1_000_000_000
    bold = Font(bold=True)
    wb = Workbook(write_only=True)

    def header(ws, values):
        ws.append(xlsx_cells(ws, values, bold))

    def append(ws, values):
        ws.append(xlsx_cells(ws, values))

    # ---- Input: parameters, then monitored values per interval
    inp = wb.create_sheet("Input")
    append(inp, [f"Monitoring input sheet: {project.id} ({project.methodology.id} {project.methodology.version}), {iso(start_ns)} to {iso(end_ns)}"])
    append(inp, ["Parameters fixed ex ante or monitored; energies in kWh, converted to MWh by the kWh_per_MWh row."])
    header(inp, INPUT_HEADER)
    row = 3
    cell_of: dict[str, str] = {}

    def param_row(symbol, description, value, unit, option, source, method, frequency, comments):
        nonlocal row
        row += 1
        append(inp, [symbol, description, value, unit, option or "", source, method, frequency, comments])
        cell_of[symbol] = f"Input!$C${row}"

    for p in project.parameters:
        param_row(p.symbol, p.description, p.value, p.unit, p.option, p.source, p.measurement_method, p.frequency, p.comments)
    ef = project.grid_emission_factor
    if ef is not None:
        param_row("EF_grid", "Grid emission factor", ef.value_t_co2_per_mwh, "tCO2/MWh", "A", ef.source, "", "Fixed ex ante", f"{ef.country} {ef.grid} {ef.year or ''} {ef.kind}".strip())
    param_row("kWh_per_MWh", "Unit conversion", KWH_PER_MWH, "kWh/MWh", None, "Definition", "", "", "Energies below are in kWh")
    inp.append([])
    append(inp, ["Monitored values per interval"])
    header(inp, ["Interval start (UTC)", "Interval end (UTC)", "E_PJ,i project energy [kWh]", "E_RE,i reference energy as stored by the engine [kWh]", "Completeness [-]", "Gap filled [s]",
                 "RE_i as stored [tCO2]", "PE_i as stored [tCO2]", "params_hash", "V_PJ,i volume [m3]", "t_PJ,i operating hours [h]"])
    row += 3
    first_data_row = row + 1
    for i in range(len(mrv)):
        t = int(mrv.time[i])
        v = {f: _num(mrv.fields[f][i]) for f in MRV_FIELDS + MRV_INPUT_FIELDS}
        append(inp, [iso(t), iso(t + step), v["project_energy_kwh"], v["reference_energy_kwh"], v["completeness"], v["gap_filled_s"],
                     v["reference_t_co2"], v["project_t_co2"], str(mrv.params_hash[i]), v["volume_m3"], v["operating_h"]])
    n = len(mrv)

    # ---- Calculation: live formulas referencing Input (the only formulas of the workbook)
    calc = wb.create_sheet("Calculation")
    append(calc, [f"Calculation: {project.methodology.baseline_model}; RE_i = E_RE,i / kWh_per_MWh x EF_grid; PE_i = E_PJ,i / kWh_per_MWh x EF_grid; ER_i = RE_i - PE_i"])
    calc.append([])
    header(calc, ["Interval start (UTC)", "E_RE,i [kWh]", "E_PJ,i [kWh]", "RE_i [tCO2]", "PE_i [tCO2]", "ER_i [tCO2]", "Note"])
    model = project.methodology.baseline_model
    has = lambda sym: sym in cell_of and project.parameter(sym) is not None and project.parameter(sym).value is not None  # noqa: E731
    vol = np.isfinite(mrv.fields["volume_m3"])
    hrs = np.isfinite(mrv.fields["operating_h"])
    ratio = model == "efficiency_ratio" and has("eta_PJ") and has("eta_RE")
    efc, conv = cell_of.get("EF_grid"), cell_of["kWh_per_MWh"]
    comp = np.nan_to_num(mrv.fields["completeness"], nan=0.0)
    filled = np.nan_to_num(mrv.fields["gap_filled_s"], nan=0.0)
    # Emissions of electricity-based models are E / kWh_per_MWh x EF_grid. Waste-to-energy adds
    # avoided landfill methane (first-order decay over the waste history) and fossil CO2 of
    # plastics, which no per-interval cell formula can hold: its RE_i / PE_i are the stored values.
    fod = project.methodology.baseline_model == "fod_methane" or efc is None
    for i in range(n):
        r_in, r = first_data_row + i, 4 + i
        complete = comp[i] >= 1.0 - 1e-9 and filled[i] <= 0
        if ratio and complete:
            e_re, note = f"=Input!C{r_in}*{cell_of['eta_PJ']}/{cell_of['eta_RE']}", ""
        elif model == "specific_energy" and has("SEC_BL") and vol[i]:
            e_re, note = f"=Input!J{r_in}*{cell_of['SEC_BL']}", "" if complete else "gap: volume over covered time only"
        elif model == "constant_power_hours" and has("P_BL") and hrs[i]:
            e_re, note = f"=Input!K{r_in}*{cell_of['P_BL']}", "" if complete else "gap: operating hours over covered time only"
        else:
            e_re = f"=Input!D{r_in}"
            note = "" if complete else "gap-filled interval: conservative values as stored (see Gaps)"
        if fod:
            re_t, pe_t = f"=Input!G{r_in}", f"=Input!H{r_in}"
            note = (note + "; " if note else "") + "RE/PE as stored: methane (FOD) and fossil CO2, see Formulas"
        else:
            re_t, pe_t = f"=B{r}/{conv}*{efc}", f"=C{r}/{conv}*{efc}"
        append(calc, [Formula(f"=Input!A{r_in}"), Formula(e_re), Formula(f"=Input!C{r_in}"), Formula(re_t), Formula(pe_t), Formula(f"=D{r}-E{r}"), note])
    last = 3 + n
    calc.append([])
    tot_row = last + 2
    if n:
        append(calc, ["Total", *(Formula(f"=SUM({c}4:{c}{last})") for c in "BCDEF")])
    else:
        append(calc, ["Total", 0, 0, 0, 0, 0])
    rule = project.methodology.rounding
    tot = totals(mrv, project.methodology.rounding_scheme, checks)
    if checks.status == "withheld":
        append(calc, ["ER_p reported [tCO2]", None, None, None, None, "withheld", "the stored results failed checks (see Checks): not rounded or credited until an operator accepts them"])
        append(calc, ["ER_p as computed by plantmrv [tCO2]", None, None, None, None, "withheld", ""])
    else:
        # floor never below 0, with the analytics' 1e-9 guard against float sums like 1042.9999999997
        er_formula = {"floor": f"=MAX(0,INT(F{tot_row}+1E-9))", "round": f"=MAX(0,ROUND(F{tot_row},0))", "none": f"=MAX(0,F{tot_row})"}[rule]
        note = f"rounding: {project.methodology.rounding_scheme} ({rule} of the period total, never of intervals)"
        if checks.status == "accepted":
            note += f"; results with warnings accepted by {checks.acceptance.accepted_by} at {checks.acceptance.accepted_at} (acceptance {checks.acceptance.id})"
        append(calc, ["ER_p reported [tCO2]", None, None, None, None, Formula(er_formula), note])
        append(calc, ["ER_p as computed by plantmrv [tCO2]", None, None, None, None, tot["reported_reduction_t_co2"], "static value, for comparison"])
        append(calc, ["Difference [tCO2]", None, None, None, None, Formula(f"=F{tot_row + 1}-F{tot_row + 2}")])

    # ---- Checks, Gaps, Formulas, Project
    cs = wb.create_sheet("Checks")
    append(cs, ["Status", checks.status, "ok: no warning; withheld: not rounded or credited; accepted: an operator accepted these results"])
    if checks.acceptance is not None:
        a = checks.acceptance
        append(cs, ["Acceptance", a.id, a.accepted_by, a.accepted_at, a.reason])
    header(cs, ["Code", "Count", "First (UTC)", "Message"])
    for r in check_rows(checks):
        append(cs, r)
    gs = wb.create_sheet("Gaps")
    header(gs, ["Start (UTC)", "End (UTC)", "Completeness [-]", "Gap filled [s]", "Filled by"])
    for g in gap_list:
        append(gs, [g.start.strftime("%Y-%m-%dT%H:%M:%SZ"), g.end.strftime("%Y-%m-%dT%H:%M:%SZ"), g.completeness, g.gap_filled_s, g.filled_by])
    fs = wb.create_sheet("Formulas")
    header(fs, ["Symbol", "Expression", "Description", "Tag"])
    for f in project.methodology.formulas:
        append(fs, [f.symbol, f.expression, f.description, f.tag])
    ps = wb.create_sheet("Project")
    header(ps, ["Key", "Value"])
    for k, v in meta_rows(project, start_ns, end_ns, source_interval, checked.parameters_sha256, raw):
        append(ps, [k, v])
    header(ps, ["Monitoring point", "Description", "Measurement", "Site", "Asset", "Field", "Unit", "Option", "Method", "Frequency", "Meter"])
    for mp in project.monitoring_points:
        d = mp.model_dump()
        append(ps, [d[c] or "" for c in POINT_COLUMNS])

    # ---- Raw and Trailer: placeholders here; their XML is written into the zip below
    wb.create_sheet("Raw").append(["raw"])
    wb.create_sheet("Trailer").append(["trailer"])
    book = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    wb.save(book)
    book.seek(0)
    out = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    try:
        _write_sheets_into(book, out, client, project, checked, checks, start_ns, end_ns, max_raw_rows, raw)
    except BaseException:
        out.close()
        raise
    finally:
        book.close()
    out.seek(0)
    return out


_SHEET_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
_SHEET_TAIL = b"</sheetData></worksheet>"


def _write_sheets_into(book, out, client, project, checked, checks, start_ns, end_ns, max_raw_rows, raw) -> None:
    """Copy the workbook ``book`` into ``out``, writing the Raw sheet's rows as they are read and
    the Trailer sheet after them."""
    with zipfile.ZipFile(book) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        raw_path, trailer_path = _sheet_path(zin, "Raw"), _sheet_path(zin, "Trailer")
        for item in zin.infolist():
            if item.filename not in (raw_path, trailer_path):
                zout.writestr(item, zin.read(item.filename))
        with zout.open(raw_path, "w", force_zip64=True) as f:
            f.write(_SHEET_HEAD)
            digest = _write_raw_rows(f, client, project, start_ns, end_ns, max_raw_rows, raw)
            f.write(_SHEET_TAIL)
        with zout.open(trailer_path, "w") as f:
            f.write(_SHEET_HEAD)
            rows = [("#section", "trailer"), *trailer_rows(XLSX_FORMAT, digest, checked, checks), ("#end", "")]
            for r, (k, v) in enumerate(rows, start=1):
                f.write(_row_xml(r, [k, str(v)]))
            f.write(_SHEET_TAIL)


def _sheet_path(z: zipfile.ZipFile, name: str) -> str:
    """Path inside the xlsx of the sheet called ``name`` (workbook.xml -> relationships)."""
    wbxml = z.read("xl/workbook.xml").decode()
    rid = re.search(r'<sheet name="%s"[^>]*r:id="([^"]+)"' % re.escape(name), wbxml).group(1)
    rels = z.read("xl/_rels/workbook.xml.rels").decode()
    target = re.search(r'<Relationship[^>]*Target="([^"]+)"[^>]*Id="%s"' % re.escape(rid), rels) or re.search(r'<Relationship[^>]*Id="%s"[^>]*Target="([^"]+)"' % re.escape(rid), rels)
    path = target.group(1)
    return path.lstrip("/") if path.startswith("/") else "xl/" + path


def _col(i: int) -> str:
    return chr(65 + i)


def _row_xml(r: int, texts: list[str]) -> bytes:
    """A row of inline-string cells (text, never a formula; neutralised)."""
    from xml.sax.saxutils import escape

    cells = "".join(f'<c r="{_col(i)}{r}" t="inlineStr"><is><t xml:space="preserve">{escape(xml_text(t))}</t></is></c>' for i, t in enumerate(texts))
    return f'<row r="{r}">{cells}</row>'.encode()


def _write_raw_rows(f, client, project: ProjectDetail, start_ns: int, end_ns: int, max_raw_rows: int, raw: bool) -> DataDigest:
    """Rows of the Raw sheet: per monitoring point a ``#point`` row (measurement, site, asset,
    field, unit, symbol), a header row, then ``ts_ns`` (text: Excel numbers hold 15 digits),
    time (UTC) and value rows. Returns the digest of the rows written."""
    r = 0
    count = 0
    digest = DataDigest()
    for mp in _raw_points(project, raw):
        key = point_key(mp)
        f.write(_row_xml(r + 1, ["#point", *key, mp.unit, mp.symbol]))
        f.write(_row_xml(r + 2, ["ts_ns", "time_utc", "value"]))
        r += 2
        d = RowsDigest()
        for ts, values in iter_point_rows(client, mp, start_ns, end_ns):
            count += len(ts)
            if count > max_raw_rows:
                raise ExportTooLarge(f"more than {max_raw_rows} raw rows: shorten the range or use format=csv")
            d.update(ts, values)
            for lo in range(0, len(ts), CHUNK_ROWS):
                parts = []
                for t, tt, v in zip(ts[lo : lo + CHUNK_ROWS].tolist(), _iso_many(ts[lo : lo + CHUNK_ROWS]), values[lo : lo + CHUNK_ROWS].tolist()):
                    r += 1
                    val = f'<c r="C{r}"><v>{v!r}</v></c>' if math.isfinite(v) else ""
                    parts.append(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{t}</t></is></c><c r="B{r}" t="inlineStr"><is><t>{tt}</t></is></c>{val}</row>')
                f.write("".join(parts).encode())
        digest.points.append(PointDigest(key, d.rows, d.hexdigest()))
    return digest


def iter_file(f, chunk: int = 256 * 1024) -> Iterator[bytes]:
    try:
        while data := f.read(chunk):
            yield data
    finally:
        f.close()
