"""Exports a verifier can re-derive the tonnes from, and prove complete: sectioned CSV
(streamed) and xlsx, both ending with a trailer (docs/verifier.md).

CSV: one file of sections, each introduced by a line ``#section,<name>`` and its header row:
``meta``, ``parameters``, ``monitoring_points``, ``formulas``, ``intervals`` (with the inputs
each result is re-derived from), ``totals``, ``checks``, ``gaps``, ``events`` (meter events),
``raw`` (every monitored value at native resolution, streamed a day at a
time from InfluxDB), then ``trailer``: the number of lines and the SHA-256 of every byte before
it, the raw rows' count and canonical ``data_sha256`` (:mod:`plantmrv.api.digests`), the
intervals' count and ``intervals_sha256``, ``parameters_sha256``, the checks' status, the
generation time and the software version; the file's last line is ``#end``. A file without
that trailer, or whose bytes do not hash to it, is incomplete. If anything fails while the
export streams, the connection is aborted (no clean end of the chunked body), so HTTP cannot
present a truncated export as a complete one either.

Every text cell is spreadsheet-safe (:mod:`plantmrv.api.cells`): CSV written by the csv module,
text that a spreadsheet would run as a formula neutralised.

xlsx, laid out like a JCM monitoring spreadsheet: ``Input``, ``Calculation`` (live formulas
that re-derive every interval's tonnes from the stored inputs and the parameters), the
methodology's tables (``FOD``, ``Days``), ``Checks``, ``Gaps``, ``Formulas``, ``Project`` (all
written by :mod:`plantmrv.api.workbook`), ``Raw`` (per monitoring point a ``#point`` row, a
header, then ``ts_ns`` as text, time and value) and ``Trailer``. Opening it in a spreadsheet
recomputes the same tonnes. Built with openpyxl's write-only mode into a spooled temporary
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
from plantmrv.api.cells import csv_line, csv_rows, csv_writer, neutralise, xml_text
from plantmrv.api.checks import CheckedResults
from plantmrv.api.columns import CHECK_COLUMNS, EVENT_COLUMNS, GAP_COLUMNS, META_COLUMNS, PARAMETER_COLUMNS, POINT_COLUMNS, RAW_COLUMNS
from plantmrv.api.digests import DataDigest, PointDigest, RowsDigest, distinct_points, iter_point_rows, point_key
from plantmrv.api.models import GapInfo, ProjectDetail, ResultChecks
from plantmrv.api.queries import MRV_FIELDS, MRV_INPUT_FIELDS, SOURCE_INTERVAL_S, MrvColumns
from plantmrv.api.reports import apply_rounding, iso
from plantmrv.api.workbook import ExportExtras, col, described, shown, write_workbook
from plantmrv.i18n import DEFAULT_LANGUAGE, language
from plantmrv.i18n import gettext as _
from plantmrv.influx import InfluxClient

CSV_FORMAT = "plantmrv-export-csv/2"
XLSX_FORMAT = "plantmrv-export-xlsx/2"
INTERVAL_COLUMNS = ["start_utc", "end_utc", "ts_ns", *MRV_FIELDS, "params_hash", *MRV_INPUT_FIELDS]
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


def meta_rows(project: ProjectDetail, start_ns: int, end_ns: int, source_interval: str, params_sha: str, raw: bool, lang: str = DEFAULT_LANGUAGE) -> list[tuple[str, object]]:
    """The ``meta`` section (CSV) and the Project sheet's keys (xlsx): machine keys, values as
    the project states them; ``lang`` is the language of the export's human text."""
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
        ("lang", lang),
        ("time_zone", "UTC"),
        ("hash_rules", _("data_sha256, intervals_sha256 and the trailer: docs/verifier.md of plantmrv", lang)),
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
    extras: ExportExtras | None = None,
    lang: str = DEFAULT_LANGUAGE,
) -> Iterator[bytes]:
    """The CSV export, yielded in pieces and closed by its trailer; raw data is read a day at a
    time as it streams. Any failure raises out of the iterator (the server aborts the stream).
    Sections, column headings, codes and values are the same in every ``lang``; descriptive texts
    (descriptions, frequencies, comments, how gaps were filled) are in ``lang`` where the
    catalogue knows them (:func:`~plantmrv.api.workbook.shown`), as in the xlsx."""
    content = hashlib.sha256()
    lines = 0
    digest = DataDigest()
    for text in _csv_body(client, project, checked, checks, gap_list, start_ns, end_ns, source_interval, raw, digest, extras or ExportExtras(), lang):
        data = text.encode()
        content.update(data)
        lines += data.count(b"\n")
        yield data
    head = [("content_lines", lines), ("content_sha256", content.hexdigest())]
    rows = trailer_rows(CSV_FORMAT, digest, checked, checks, head)
    yield (TRAILER_LINE + csv_rows([META_COLUMNS]) + csv_rows(rows) + END_LINE).encode()


def _csv_body(client, project, checked: CheckedResults, checks, gap_list, start_ns, end_ns, source_interval, raw, digest: DataDigest, extras: ExportExtras,
              lang: str) -> Iterator[str]:
    mrv = checked.mrv
    step = SOURCE_INTERVAL_S[source_interval] * 1_000_000_000
    inputs = [f for f in mrv.fields if f not in MRV_FIELDS + MRV_INPUT_FIELDS]  # the stored inputs the results are re-derived from
    out = [csv_line("#section", "meta"), csv_rows([META_COLUMNS]), csv_rows(meta_rows(project, start_ns, end_ns, source_interval, checked.parameters_sha256, raw, lang))]
    out += [csv_line("#section", "parameters"), csv_rows([PARAMETER_COLUMNS])]
    out.append(csv_rows([described(p.model_dump(), PARAMETER_COLUMNS, lang) for p in project.parameters]))
    if project.grid_emission_factor:
        ef = project.grid_emission_factor
        out.append(csv_line("EF_grid", _("Grid emission factor", lang), ef.value_t_co2_per_mwh, "tCO2/MWh", "A", "default", ef.source, "", _("Fixed ex ante", lang),
                            f"{ef.country} {ef.grid} {ef.year or ''} {ef.kind}".strip()))
    out += [csv_line("#section", "monitoring_points"), csv_rows([POINT_COLUMNS])]
    out.append(csv_rows([described(mp.model_dump(), POINT_COLUMNS, lang) for mp in project.monitoring_points]))
    out += [csv_line("#section", "formulas"), csv_line("symbol", "expression", "description", "tag")]
    out.append(csv_rows([[f.symbol, f.expression, shown(f.description, lang), f.tag] for f in project.methodology.formulas]))
    yield "".join(out)

    rows = []
    buf = [csv_line("#section", "intervals"), csv_rows([INTERVAL_COLUMNS + inputs])]
    for i in range(len(mrv)):
        t = int(mrv.time[i])
        rows.append([iso(t), iso(t + step), t, *(_num(mrv.fields[f][i]) for f in MRV_FIELDS), str(mrv.params_hash[i]),
                     *(_num(mrv.fields[f][i]) for f in MRV_INPUT_FIELDS + tuple(inputs))])
        if len(rows) >= 5000:
            yield "".join(buf) + csv_rows(rows)
            buf, rows = [], []
    buf.append(csv_rows(rows))
    buf += [csv_line("#section", "totals"), csv_rows([META_COLUMNS]), csv_rows(totals(mrv, project.methodology.rounding_scheme, checks).items())]
    buf += [csv_line("#section", "checks"), csv_rows([CHECK_COLUMNS]), csv_rows(check_rows(checks))]
    buf += [csv_line("#section", "gaps"), csv_rows([GAP_COLUMNS])]
    buf.append(csv_rows([[g.start.strftime("%Y-%m-%dT%H:%M:%SZ"), g.end.strftime("%Y-%m-%dT%H:%M:%SZ"), g.completeness, g.gap_filled_s, shown(g.filled_by, lang)] for g in gap_list]))
    buf += [csv_line("#section", "events"), csv_rows([EVENT_COLUMNS])]
    buf.append(csv_rows([[iso(e.time_ns), e.time_ns, e.source, e.kind, e.detail, e.duration_s, e.amount, None if e.counted is None else int(e.counted)] for e in extras.events]))
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
    extras: ExportExtras | None = None,
    lang: str = DEFAULT_LANGUAGE,
) -> tempfile.SpooledTemporaryFile:
    """Write the workbook (calculation sheets: :mod:`plantmrv.api.workbook`), its headings and
    labels in ``lang``; return the (rewound) spooled file holding it."""
    from openpyxl import Workbook

    mrv = checked.mrv
    step = SOURCE_INTERVAL_S[source_interval] * 1_000_000_000
    wb = Workbook(write_only=True)
    with language(lang):
        write_workbook(wb, project, mrv, checks, gap_list, start_ns, end_ns, step, extras or ExportExtras(),
                       meta_rows(project, start_ns, end_ns, source_interval, checked.parameters_sha256, raw, lang),
                       totals(mrv, project.methodology.rounding_scheme, checks), check_rows(checks))
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


def _row_xml(r: int, texts: list[str]) -> bytes:
    """A row of inline-string cells (text, never a formula; neutralised)."""
    from xml.sax.saxutils import escape

    cells = "".join(f'<c r="{col(i)}{r}" t="inlineStr"><is><t xml:space="preserve">{escape(xml_text(t))}</t></is></c>' for i, t in enumerate(texts))
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
