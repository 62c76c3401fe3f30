"""Exports a verifier can re-derive the tonnes from: sectioned CSV (streamed) and xlsx.

CSV: one file of sections, each introduced by a line ``#section,<name>`` and its header row:
``meta``, ``parameters``, ``monitoring_points``, ``formulas``, ``intervals``, ``totals``,
``gaps``, then ``raw`` (every monitored value at native resolution, streamed in chunks from
InfluxDB). Raw rows are ``measurement,site,asset,field,ts_ns,value,time_utc``; the first six
columns joined by commas, one line each, are exactly what ``data_sha256`` of the monitoring
report hashes.

xlsx, laid out like a JCM monitoring spreadsheet: ``Input`` (the parameters with symbol,
description, value, unit, monitoring option, data source, measurement method, frequency,
comments; then the monitored values per interval), ``Calculation`` (live Excel formulas that
reference the Input cells: reference energy, RE_i, PE_i, ER_i, the period total and ER_p with
the rounding rule), ``Gaps``, ``Formulas`` (as text), ``Project`` and ``Raw``. Opening it in a
spreadsheet recomputes the same tonnes (the workbook asks for a full recalculation on load).
Built with openpyxl's write-only mode into a spooled temporary file; the ``Raw`` sheet's XML is
then streamed into the zip directly (openpyxl writes ~30k cells/s, this ~1M), and the file is
streamed out in chunks.
"""

from __future__ import annotations

import csv
import io
import math
import re
import tempfile
import zipfile
from xml.sax.saxutils import escape as xml_escape
from datetime import datetime, timezone
from typing import Iterator

import numpy as np

from plantmrv.api.models import GapInfo, ProjectDetail
from plantmrv.api.queries import MRV_FIELDS, MRV_INPUT_FIELDS, MrvColumns, format_value, iter_raw
from plantmrv.api.reports import apply_rounding, iso
from plantmrv.influx import InfluxClient

PARAMETER_COLUMNS = ["symbol", "description", "value", "unit", "option", "kind", "source", "measurement_method", "frequency", "comments"]
INPUT_HEADER = ["Symbol", "Description", "Value", "Unit", "Monitoring option", "Data source", "Measurement method", "Frequency", "Comments"]
POINT_COLUMNS = ["symbol", "description", "measurement", "site", "asset", "field", "unit", "option", "measurement_method", "frequency", "meter"]
RAW_COLUMNS = ["measurement", "site", "asset", "field", "ts_ns", "value", "time_utc"]
INTERVAL_COLUMNS = ["start_utc", "end_utc", "ts_ns", *MRV_FIELDS, "params_hash", *MRV_INPUT_FIELDS]
KWH_PER_MWH = 1000.0


class ExportTooLarge(Exception):
    pass


def _csv_line(values) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _ef(project: ProjectDetail) -> float | None:
    return project.grid_emission_factor.value_t_co2_per_mwh if project.grid_emission_factor else None


def meta_rows(project: ProjectDetail, start_ns: int, end_ns: int, source_interval: str, params_sha: str) -> list[tuple[str, str]]:
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
        ("ef_grid_t_co2_per_mwh", format_value(_ef(project))),
        ("ef_grid_source", project.grid_emission_factor.source if project.grid_emission_factor else ""),
        ("parameters_sha256", params_sha),
        ("generated_utc", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("raw_hash_rule", "data_sha256 = sha256 of the raw rows' first six columns joined by ',' one per line with '\\n', in file order"),
    ]


def totals(mrv: MrvColumns, rounding: str) -> dict[str, float]:
    out = {f: float(np.nansum(mrv.fields[f])) for f in MRV_FIELDS if f != "completeness"}
    out["reported_reduction_t_co2"] = apply_rounding(out["reduction_t_co2"], rounding)  # rounding = the project's scheme
    return out


# --------------------------------------------------------------------------- CSV


def iter_csv(
    client: InfluxClient,
    project: ProjectDetail,
    mrv: MrvColumns,
    gap_list: list[GapInfo],
    start_ns: int,
    end_ns: int,
    source_interval: str,
    params_sha: str,
    raw: bool = True,
) -> Iterator[bytes]:
    """The CSV export, yielded in pieces; raw data is queried chunk by chunk as it streams."""
    step = {"1m": 60, "1h": 3600}[source_interval] * 1_000_000_000
    out = [_csv_line(["#section", "meta"]), _csv_line(["key", "value"])]
    out += [_csv_line(r) for r in meta_rows(project, start_ns, end_ns, source_interval, params_sha)]
    out += [_csv_line(["#section", "parameters"]), _csv_line(PARAMETER_COLUMNS)]
    for p in project.parameters:
        d = p.model_dump()
        out.append(_csv_line([format_value(d[c]) if c == "value" else (d[c] or "") for c in PARAMETER_COLUMNS]))
    if project.grid_emission_factor:
        ef = project.grid_emission_factor
        out.append(_csv_line(["EF_grid", "Grid emission factor", format_value(ef.value_t_co2_per_mwh), "tCO2/MWh", "A", "default", ef.source, "", "Fixed ex ante", f"{ef.country} {ef.grid} {ef.year or ''} {ef.kind}".strip()]))
    out += [_csv_line(["#section", "monitoring_points"]), _csv_line(POINT_COLUMNS)]
    for mp in project.monitoring_points:
        d = mp.model_dump()
        out.append(_csv_line([d[c] or "" for c in POINT_COLUMNS]))
    out += [_csv_line(["#section", "formulas"]), _csv_line(["symbol", "expression", "description", "tag"])]
    for f in project.methodology.formulas:
        out.append(_csv_line([f.symbol, f.expression, f.description, f.tag]))
    yield "".join(out).encode()

    buf = [_csv_line(["#section", "intervals"]), _csv_line(INTERVAL_COLUMNS)]
    for i in range(len(mrv)):
        t = int(mrv.time[i])
        vals = [format_value(None if np.isnan(mrv.fields[f][i]) else float(mrv.fields[f][i])) for f in MRV_FIELDS]
        extra = [format_value(None if np.isnan(mrv.fields[f][i]) else float(mrv.fields[f][i])) for f in MRV_INPUT_FIELDS]
        buf.append(_csv_line([iso(t), iso(t + step), t, *vals, mrv.params_hash[i], *extra]))
        if len(buf) >= 5000:
            yield "".join(buf).encode()
            buf = []
    tot = totals(mrv, project.methodology.rounding_scheme)
    buf += [_csv_line(["#section", "totals"]), _csv_line(["key", "value"])]
    buf += [_csv_line([k, format_value(v)]) for k, v in tot.items()]
    buf += [_csv_line(["#section", "gaps"]), _csv_line(["start_utc", "end_utc", "completeness", "gap_filled_s", "filled_by"])]
    for g in gap_list:
        buf.append(_csv_line([g.start.strftime("%Y-%m-%dT%H:%M:%SZ"), g.end.strftime("%Y-%m-%dT%H:%M:%SZ"), format_value(g.completeness), format_value(g.gap_filled_s), g.filled_by]))
    buf += [_csv_line(["#section", "raw"]), _csv_line(RAW_COLUMNS)]
    yield "".join(buf).encode()

    for mp in project.monitoring_points if raw else ():
        prefix = f"{mp.measurement},{mp.site},{mp.asset or ''},{mp.field},"
        for ts, values in iter_raw(client, mp, start_ns, end_ns):
            times = _iso_many(ts)
            lines = [f"{prefix}{t},{format_value(v)},{tt}Z\n" for t, v, tt in zip(ts, values, times)]
            yield "".join(lines).encode()


def _iso_many(ts: list[int]) -> list[str]:
    """ISO 8601 seconds of many ns timestamps at once (no trailing Z)."""
    return np.datetime_as_string(np.asarray(ts, dtype=np.int64).astype("datetime64[ns]"), unit="s").tolist()


# --------------------------------------------------------------------------- xlsx


def build_xlsx(
    client: InfluxClient,
    project: ProjectDetail,
    mrv: MrvColumns,
    gap_list: list[GapInfo],
    start_ns: int,
    end_ns: int,
    source_interval: str,
    params_sha: str,
    max_raw_rows: int,
    raw: bool = True,
) -> tempfile.SpooledTemporaryFile:
    """Write the workbook; return the (rewound) spooled file holding it."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    step = {"1m": 60, "1h": 3600}[source_interval] * 1_000_000_000
    bold = Font(bold=True)
    wb = Workbook(write_only=True)

    def header(ws, values):
        cells = []
        for v in values:
            c = WriteOnlyCell(ws, value=v)
            c.font = bold
            cells.append(c)
        ws.append(cells)

    # ---- Input: parameters, then monitored values per interval
    inp = wb.create_sheet("Input")
    inp.append([f"Monitoring input sheet: {project.id} ({project.methodology.id} {project.methodology.version}), {iso(start_ns)} to {iso(end_ns)}"])
    inp.append(["Parameters fixed ex ante or monitored; energies in kWh, converted to MWh by the kWh_per_MWh row."])
    header(inp, INPUT_HEADER)
    row = 3
    cell_of: dict[str, str] = {}

    def param_row(symbol, description, value, unit, option, source, method, frequency, comments):
        nonlocal row
        row += 1
        inp.append([symbol, description, value, unit, option or "", source, method, frequency, comments])
        cell_of[symbol] = f"Input!$C${row}"

    for p in project.parameters:
        param_row(p.symbol, p.description, p.value, p.unit, p.option, p.source, p.measurement_method, p.frequency, p.comments)
    ef = project.grid_emission_factor
    if ef is not None:
        param_row("EF_grid", "Grid emission factor", ef.value_t_co2_per_mwh, "tCO2/MWh", "A", ef.source, "", "Fixed ex ante", f"{ef.country} {ef.grid} {ef.year or ''} {ef.kind}".strip())
    param_row("kWh_per_MWh", "Unit conversion", KWH_PER_MWH, "kWh/MWh", None, "Definition", "", "", "Energies below are in kWh")
    inp.append([])
    inp.append(["Monitored values per interval"])
    header(inp, ["Interval start (UTC)", "Interval end (UTC)", "E_PJ,i project energy [kWh]", "E_RE,i reference energy as stored by the engine [kWh]", "Completeness [-]", "Gap filled [s]",
                 "RE_i as stored [tCO2]", "PE_i as stored [tCO2]", "params_hash", "V_PJ,i volume [m3]", "t_PJ,i operating hours [h]"])
    row += 3
    first_data_row = row + 1
    for i in range(len(mrv)):
        t = int(mrv.time[i])
        v = {f: (None if np.isnan(mrv.fields[f][i]) else float(mrv.fields[f][i])) for f in MRV_FIELDS + MRV_INPUT_FIELDS}
        inp.append([iso(t), iso(t + step), v["project_energy_kwh"], v["reference_energy_kwh"], v["completeness"], v["gap_filled_s"],
                    v["reference_t_co2"], v["project_t_co2"], mrv.params_hash[i], v["volume_m3"], v["operating_h"]])
    n = len(mrv)

    # ---- Calculation: live formulas referencing Input
    calc = wb.create_sheet("Calculation")
    calc.append([f"Calculation: {project.methodology.baseline_model}; RE_i = E_RE,i / kWh_per_MWh x EF_grid; PE_i = E_PJ,i / kWh_per_MWh x EF_grid; ER_i = RE_i - PE_i"])
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
        calc.append([f"=Input!A{r_in}", e_re, f"=Input!C{r_in}", re_t, pe_t, f"=D{r}-E{r}", note])
    last = 3 + n
    calc.append([])
    tot_row = last + 2
    if n:
        calc.append(["Total", f"=SUM(B4:B{last})", f"=SUM(C4:C{last})", f"=SUM(D4:D{last})", f"=SUM(E4:E{last})", f"=SUM(F4:F{last})"])
    else:
        calc.append(["Total", 0, 0, 0, 0, 0])
    rule = project.methodology.rounding
    # floor never below 0, with the analytics' 1e-9 guard against float sums like 1042.9999999997
    er_formula = {"floor": f"=MAX(0,INT(F{tot_row}+1E-9))", "round": f"=MAX(0,ROUND(F{tot_row},0))", "none": f"=MAX(0,F{tot_row})"}[rule]
    calc.append(["ER_p reported [tCO2]", None, None, None, None, er_formula, f"rounding: {project.methodology.rounding_scheme} ({rule} of the period total, never of intervals)"])
    tot = totals(mrv, project.methodology.rounding_scheme)
    calc.append(["ER_p as computed by plantmrv [tCO2]", None, None, None, None, tot["reported_reduction_t_co2"], "static value, for comparison"])
    calc.append(["Difference [tCO2]", None, None, None, None, f"=F{tot_row + 1}-F{tot_row + 2}"])

    # ---- Gaps, Formulas, Project
    gs = wb.create_sheet("Gaps")
    header(gs, ["Start (UTC)", "End (UTC)", "Completeness [-]", "Gap filled [s]", "Filled by"])
    for g in gap_list:
        gs.append([g.start.strftime("%Y-%m-%dT%H:%M:%SZ"), g.end.strftime("%Y-%m-%dT%H:%M:%SZ"), g.completeness, g.gap_filled_s, g.filled_by])
    fs = wb.create_sheet("Formulas")
    header(fs, ["Symbol", "Expression", "Description", "Tag"])
    for f in project.methodology.formulas:
        fs.append([f.symbol, f.expression, f.description, f.tag])
    ps = wb.create_sheet("Project")
    header(ps, ["Key", "Value"])
    for k, v in meta_rows(project, start_ns, end_ns, source_interval, params_sha):
        ps.append([k, v])
    header(ps, ["Monitoring point", "Description", "Measurement", "Site", "Asset", "Field", "Unit", "Option", "Method", "Frequency", "Meter"])
    for mp in project.monitoring_points:
        d = mp.model_dump()
        ps.append([d[c] or "" for c in POINT_COLUMNS])

    # ---- Raw: a placeholder here; its XML is streamed in below (openpyxl writes ~30k cells/s)
    wb.create_sheet("Raw").append(["raw"])
    book = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    wb.save(book)
    book.seek(0)
    out = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    try:
        _stream_raw_into(book, out, client, project, start_ns, end_ns, max_raw_rows, raw)
    except BaseException:
        out.close()
        raise
    finally:
        book.close()
    out.seek(0)
    return out


def _stream_raw_into(book, out, client, project, start_ns, end_ns, max_raw_rows, raw) -> None:
    """Copy the workbook ``book`` into ``out``, writing the Raw sheet's rows as they are read."""
    with zipfile.ZipFile(book) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zout:
        raw_path = _sheet_path(zin, "Raw")
        for item in zin.infolist():
            if item.filename != raw_path:
                zout.writestr(item, zin.read(item.filename))
        with zout.open(raw_path, "w", force_zip64=True) as f:
            f.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            if raw:
                _write_raw_rows(f, client, project, start_ns, end_ns, max_raw_rows)
            f.write(b"</sheetData></worksheet>")


def _sheet_path(z: zipfile.ZipFile, name: str) -> str:
    """Path inside the xlsx of the sheet called ``name`` (workbook.xml -> relationships)."""
    wbxml = z.read("xl/workbook.xml").decode()
    rid = re.search(r'<sheet name="%s"[^>]*r:id="([^"]+)"' % re.escape(name), wbxml).group(1)
    rels = z.read("xl/_rels/workbook.xml.rels").decode()
    target = re.search(r'<Relationship[^>]*Target="([^"]+)"[^>]*Id="%s"' % re.escape(rid), rels) or re.search(r'<Relationship[^>]*Id="%s"[^>]*Target="([^"]+)"' % re.escape(rid), rels)
    path = target.group(1)
    return path.lstrip("/") if path.startswith("/") else "xl/" + path


def _s(value: str) -> str:
    return xml_escape(value)


def _write_raw_rows(f, client, project: ProjectDetail, start_ns: int, end_ns: int, max_raw_rows: int) -> None:
    """Rows of the Raw sheet: per monitoring point a title row, a header row, then
    ``ts_ns`` (text: Excel numbers hold 15 digits), time (UTC) and value rows."""
    r = 0
    count = 0

    def text_row(*cells: str) -> bytes:
        nonlocal r
        r += 1
        cols = "".join(f'<c r="{chr(65 + i)}{r}" t="inlineStr"><is><t>{_s(c)}</t></is></c>' for i, c in enumerate(cells))
        return f'<row r="{r}">{cols}</row>'.encode()

    for mp in project.monitoring_points:
        f.write(text_row(f"{mp.symbol}: {mp.measurement}, site={mp.site}, asset={mp.asset or ''}, field={mp.field} [{mp.unit}]"))
        f.write(text_row("ts_ns", "Time (UTC)", "Value"))
        for ts, values in iter_raw(client, mp, start_ns, end_ns):
            count += len(ts)
            if count > max_raw_rows:
                raise ExportTooLarge(f"more than {max_raw_rows} raw rows: shorten the range or use format=csv")
            parts = []
            for t, tt, v in zip(ts, _iso_many(ts), values):
                r += 1
                val = f'<c r="C{r}"><v>{format_value(v)}</v></c>' if isinstance(v, (int, float)) and math.isfinite(v) else ""
                parts.append(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{t}</t></is></c><c r="B{r}" t="inlineStr"><is><t>{tt}Z</t></is></c>{val}</row>')
            f.write("".join(parts).encode())
        r += 1  # a blank row between points


def iter_file(f, chunk: int = 256 * 1024) -> Iterator[bytes]:
    try:
        while data := f.read(chunk):
            yield data
    finally:
        f.close()
