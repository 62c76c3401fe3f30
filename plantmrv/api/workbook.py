"""The xlsx export's calculation sheets: every tonne re-derived with live formulas.

Laid out like a JCM monitoring spreadsheet, from the methodology registry
(:mod:`plantmrv.analytics.registry`), so that one glance leads from a tonne to its inputs:

- ``Input``: the parameters (symbol, description, value, unit, monitoring option, data source,
  measurement method, frequency, comments), then per interval what the engine stored beside its
  results (:func:`~plantmrv.analytics.registry.input_fields`): per quantity its amount over
  covered time, and for project-side quantities the seconds without data and the meter's
  increment across them; then the stored results, for comparison only (no formula uses them).
- ``Calculation``: one column per :class:`~plantmrv.analytics.registry.Column` of the
  methodology, a live formula in every interval row over ``Input`` (and the tables below): the
  conservative fills, the reference and project energies and emissions, ER_i; then the period
  total and ER_p with its rounding rule, and the difference to what plantmrv stored.
- ``FOD`` (a :class:`~plantmrv.analytics.registry.DecayTable`, waste-to-energy): the TOOL04
  factor, the waste types, the waste of each crediting year and per year one block with the
  decay of every earlier year's waste (the tail an interval takes its share of).
- ``Days`` (a :class:`~plantmrv.analytics.registry.DayTable`, solar PV under KH_AM002): the
  category of each local day, which picks the EF of its intervals.
- ``Checks``, ``Gaps`` (with the meter events), ``Formulas`` (the registry's formulas as the
  API serves them, the parameters each uses with their source, and the Calculation columns in
  symbols) and ``Project``.

Formulas use ``+ - * /``, ``MAX``, ``MIN``, ``IF``, ``EXP``, ``SUM`` and ``SUMIFS`` only, and
evaluate the same in Excel and LibreOffice (tests recalculate every workbook in LibreOffice).

Languages: every heading, label and note comes from the message catalogues (``plantmrv.i18n``,
the language of the context: :func:`~plantmrv.i18n.language`), and so do the registry's texts
(methodology titles, column and input descriptions: :func:`catalogue_messages` lists them for
the catalogue tool) and the project document's descriptive texts the catalogue knows
(:func:`shown`); names, sources, values and symbols are shown as the project document states
them. Sheet names, symbols, formulas and the grey *key rows* under every data table's headings
(:mod:`plantmrv.api.columns`) are the same in every language, so a program reads any language.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from plantmrv.api.cells import Formula, xlsx_cells
from plantmrv.api.columns import CHECK_COLUMNS, EVENT_COLUMNS, GAP_COLUMNS, META_COLUMNS, POINT_COLUMNS
from plantmrv.api.models import GapInfo, ProjectDetail, ResultChecks
from plantmrv.api.queries import MrvColumns, events_query, mrv_sum_query
from plantmrv.api.reports import from_ns, iso, to_ns
from plantmrv.i18n import N_
from plantmrv.i18n import gettext as _

NS = 1_000_000_000
KWH_PER_MWH = 1000.0
INPUT_HEADER = [N_("Symbol"), N_("Description"), N_("Value"), N_("Unit"), N_("Monitoring option"), N_("Data source"), N_("Measurement method"), N_("Frequency"), N_("Comments")]
INPUT_KEYS = ["symbol", "description", "value", "unit", "option", "source", "measurement_method", "frequency", "comments"]
#: the stored results shown in Input for comparison: (mrv field, symbol, unit)
STORED = (
    ("reference_energy_kwh", "E_RE,i", "kWh"),
    ("project_energy_kwh", "E_PJ,i", "kWh"),
    ("energy_saved_kwh", "E_saved,i", "kWh"),
    ("reference_t_co2", "RE_i", "tCO2"),
    ("project_t_co2", "PE_i", "tCO2"),
    ("reduction_t_co2", "ER_i", "tCO2"),
)
#: the rounding rules of ER_p, as the Calculation sheet's note names them
ROUNDING_RULES = {"floor": N_("rounded down to whole tonnes"), "round": N_("rounded to whole tonnes"), "none": N_("not rounded")}
#: key row of the Days sheet (KH_AM002)
DAY_KEYS = ["local_day", "start_utc", "end_utc", "day_category", "meaning", "intervals"]
#: key row of the FOD sheet's crediting years
YEAR_KEYS = ["x", "start_utc", "end_utc", "start_s", "end_s", "length_s", "waste_in_export_t", "waste_before_t", "waste_t", "tail_t_co2e", "tail_rate_t_co2e_per_s"]
CALC_FIRST_ROW = 6  # Calculation: title, note, headers, formulas in symbols, API fields, then the intervals
FORMULA_SHEETS = ("Calculation", "FOD", "Days")  # the only sheets with formulas


# --------------------------------------------------------------------------- what an export reads


def methodology_of(project: ProjectDetail):
    """The registry's methodology of ``project`` (plant type and baseline model)."""
    from plantmrv.analytics import registry

    return registry.get(project.plant_type, project.methodology.baseline_model or None)


def export_fields(project: ProjectDetail) -> tuple[str, ...]:
    """Fields of ``mrv`` an export reads besides the results: the methodology's stored inputs and
    the water-quality co-benefits (``<kpi>_removal``) of the project's monitoring points."""
    from plantmrv.analytics import registry

    fields = [f.field for f in registry.input_fields(methodology_of(project))]
    fields += [f"{mp.symbol.split(':', 1)[0]}_removal" for mp in project.monitoring_points if ":" in mp.symbol]
    return tuple(dict.fromkeys(fields))


@dataclass
class MeterEvent:
    time_ns: int
    source: str
    kind: str
    detail: str
    duration_s: float | None
    amount: float | None
    counted: bool | None


@dataclass
class ExportExtras:
    """What an export reads besides the range's results: the meter events of the range and, for
    a decay table, the waste of each crediting year stored before the range (index 0 = year 1)."""

    events: list[MeterEvent] = field(default_factory=list)
    waste_before_t: dict[int, float] = field(default_factory=dict)


def read_extras(client, project: ProjectDetail, start_ns: int, end_ns: int, source_interval: str, database: str | None = None) -> ExportExtras:
    """Meter events (measurement ``mrv_event``) in ``[start, end)`` and, for a decay table, the
    stored waste of the crediting years before ``start`` (the same ``sum()`` the engine reads)."""
    from plantmrv.analytics import registry

    out = ExportExtras()
    for r in client.query(events_query(project.id, start_ns, end_ns), database=database):
        c = r.columns
        for i in range(len(r)):
            get = lambda k: (c.get(k)[i] if c.get(k) is not None else None)  # noqa: E731
            out.events.append(MeterEvent(int(c["time"][i]), str(get("source") or ""), str(get("kind") or ""), str(get("detail") or ""),
                                         _float(get("duration_s")), _float(get("amount")), None if get("counted") is None else bool(get("counted"))))
    out.events.sort(key=lambda e: (e.time_ns, e.source))
    m = methodology_of(project)
    for t in m.tables:
        if isinstance(t, registry.DecayTable) and project.crediting_start is not None:
            covered = next(f.field for f in registry.input_fields(m) if f.name == f"{t.quantity}.covered")
            ye = t.year_edges(to_ns(project.crediting_start), end_ns)
            for x in range(len(ye) - 1):
                a, b = int(ye[x]), min(int(ye[x + 1]), start_ns)
                if b <= a:
                    continue
                res = client.query(mrv_sum_query(project.id, source_interval, covered, a, b), database=database)
                out.waste_before_t[x] = float(np.nansum(np.asarray(res[0].columns.get("sum", []), dtype=float))) if res and len(res[0]) else 0.0
    return out


def _float(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


# --------------------------------------------------------------------------- cells


def col(i: int) -> str:
    """Column letter of 0-based index ``i`` (A, ..., Z, AA, ...)."""
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


class Sheet:
    """A write-only sheet that counts its rows."""

    def __init__(self, wb, name: str, fonts: dict):
        self.ws = wb.create_sheet(name)
        self.name = name
        self.row = 0
        self.fonts = fonts

    def add(self, values=(), header: bool = False) -> int:
        self.ws.append(xlsx_cells(self.ws, list(values), self.fonts["header"] if header else None))
        self.row += 1
        return self.row

    def table_head(self, headings, keys) -> int:
        """A data table's headings (in the context's language) in bold, then its key row: the
        columns' machine keys, the same in every language, in grey italics. Returns the key row."""
        assert len(headings) == len(keys), (headings, keys)
        self.add(headings, header=True)
        self.ws.append(xlsx_cells(self.ws, list(keys), self.fonts["keys"]))
        self.row += 1
        return self.row


def shown(text: str, lang: str | None = None) -> str:
    """A descriptive text of the project document or the registry in ``lang`` (default: the
    context's language): its catalogue translation when the catalogue has one, else the text as
    it is (a project's own words are never guessed at). The texts plantmrv composes from a
    catalogued text and an identifier keep the identifier: a vector parameter's ``text (label)``
    (the label as in its symbol ``p_j[label]``) and a monitoring point's ``text: asset.field``."""
    if not text:
        return text
    out = _(text, lang)
    if out != text:
        return out
    if text.endswith(")") and " (" in text:
        base, label = text[:-1].rsplit(" (", 1)
        if _(base, lang) != base:
            return f"{_(base, lang)} ({label})"
    if ": " in text:
        base, ident = text.rsplit(": ", 1)
        if _(base, lang) != base:
            return f"{_(base, lang)}: {ident}"
    return out


class Unavailable(Exception):
    """A name of a column expression that this project does not have (an input it does not
    measure, a parameter without a value): the column takes its next alternative."""


_NAME = re.compile(r"\{([^{}]+)\}")


def render(expression: str, resolve: Callable[[str], str]) -> str:
    """``expression`` with each ``{name}`` replaced by ``resolve(name)``, spaces removed."""
    return _NAME.sub(lambda m: resolve(m.group(1)), expression).replace(" ", "")


# --------------------------------------------------------------------------- the layout


@dataclass
class Layout:
    """Where everything lives: parameter cells, Input columns, table cells, Calculation columns."""

    param_cell: dict[str, str] = field(default_factory=dict)  # parameter name -> Input!$C$n
    param_symbol: dict[str, str] = field(default_factory=dict)
    input_col: dict[str, str] = field(default_factory=dict)  # input name / key -> Input column letter
    input_symbol: dict[str, str] = field(default_factory=dict)
    first_input_row: int = 0
    table_names: dict[str, Callable[[int], str]] = field(default_factory=dict)  # name -> (interval index -> reference)
    table_symbols: dict[str, str] = field(default_factory=dict)


def write_workbook(wb, project: ProjectDetail, mrv: MrvColumns, checks: ResultChecks, gap_list: list[GapInfo], start_ns: int, end_ns: int,
                   step_ns: int, extras: ExportExtras, meta: list[tuple[str, object]], tot: dict[str, object], check_rows: list[list]) -> None:
    """Write Input, Calculation, the methodology's tables, Checks, Gaps, Formulas and Project into
    the write-only workbook ``wb`` (Raw and Trailer are the caller's), in the context's language."""
    from openpyxl.styles import Font

    from plantmrv.analytics import registry

    fonts = {"header": Font(bold=True), "keys": Font(italic=True, color="FF808080")}
    m = methodology_of(project)
    tables = _tables(m, project)
    sheets = {name: Sheet(wb, name, fonts) for name in ("Input", "Calculation", *tables, "Checks", "Gaps", "Formulas", "Project")}
    lay = Layout()
    fields = _present_inputs(m, mrv)
    cal_row_of = {int(t): CALC_FIRST_ROW + i for i, t in enumerate(mrv.time)}
    gap_row_of: dict[int, int] = {}

    _write_input(sheets["Input"], project, mrv, m, fields, lay, tables, start_ns, end_ns, step_ns)
    for name, t in tables.items():
        if isinstance(t, registry.DecayTable):
            _write_decay(sheets[name], t, project, mrv, lay, step_ns, extras)
        else:
            _write_days(sheets[name], t, project, mrv, lay)
    _write_gaps(sheets["Gaps"], gap_list, extras, cal_row_of, gap_row_of)
    columns = _write_calculation(sheets["Calculation"], project, mrv, m, fields, lay, checks, tot, extras, gap_row_of, step_ns)
    _write_checks(sheets["Checks"], checks, check_rows)
    _write_formulas(sheets["Formulas"], project, columns, lay)
    _write_project(sheets["Project"], project, meta)


def _write_project(sh: Sheet, project: ProjectDetail, meta: list[tuple[str, object]]) -> None:
    # key, value pairs from the first row (docs/verifier.md): no title row here
    sh.table_head([_("Key"), _("Value")], META_COLUMNS)
    for k, v in meta:
        sh.add([k, v])
    sh.table_head([_("Monitoring point"), _("Description"), _("Measurement"), _("Site"), _("Asset"), _("Field"), _("Unit"), _("Option"), _("Method"),
                   _("Frequency"), _("Meter")], POINT_COLUMNS)
    for mp in project.monitoring_points:
        sh.add([v or "" for v in described(mp.model_dump(), POINT_COLUMNS)])


def _tables(m, project: ProjectDetail) -> dict:
    """The methodology's tables that apply to ``project``, by sheet name: the decay table with a
    crediting start, the day table with a KH_AM002 day category."""
    from plantmrv.analytics import registry

    out = {}
    for t in m.tables:
        if isinstance(t, registry.DecayTable) and project.crediting_start is not None:
            out["FOD"] = t
        elif isinstance(t, registry.DayTable) and project.day_category_utc_offset_h is not None:
            out["Days"] = t
    return out


def _present_inputs(m, mrv: MrvColumns) -> list:
    """The methodology's stored inputs this export shows: every input of a required quantity,
    and of an optional quantity (or a methodology input) when any interval stored it."""
    from plantmrv.analytics import registry

    required = {q.name for q in m.quantities if q.required}
    out = []
    for f in registry.input_fields(m):
        v = mrv.fields.get(f.field)
        if f.quantity in required or (v is not None and np.isfinite(v).any()):
            out.append(f)
    return out


# --------------------------------------------------------------------------- Input


def _write_input(sh: Sheet, project: ProjectDetail, mrv: MrvColumns, m, fields, lay: Layout, tables: dict, start_ns: int, end_ns: int, step_ns: int) -> None:
    from plantmrv.analytics import registry

    sh.add([_("Monitoring input sheet: {project} ({methodology} {version}, {title}), {start} to {end}").format(
        project=project.id, methodology=project.methodology.id, version=project.methodology.version, title=_(m.title), start=iso(start_ns), end=iso(end_ns))])
    sh.add([_("Parameters fixed ex ante or monitored, with their sources; then the monitored amounts per interval that the Calculation sheet re-derives every tonne from.")
            + " " + _("The grey row under each table's headings holds its machine keys, the same in every language.")])
    sh.table_head([_(h) for h in INPUT_HEADER], INPUT_KEYS)

    def param(name, symbol, description, value, unit, option, source, method, frequency, comments):
        r = sh.add([symbol, shown(description), value, unit, option or "", source, shown(method), shown(frequency), shown(comments)])
        lay.param_cell[name] = f"Input!$C${r}"
        lay.param_symbol[name] = symbol

    for p in project.parameters:
        param(p.name or p.symbol, p.symbol, p.description, p.value, p.unit, p.option, p.source, p.measurement_method, p.frequency, p.comments)
    ef = project.grid_emission_factor
    if ef is not None:
        param("EF_grid", "EF_grid", _("Grid emission factor"), ef.value_t_co2_per_mwh, "tCO2/MWh", "A", ef.source, "", _("Fixed ex ante"),
              f"{ef.country} {ef.grid} {ef.year or ''} {ef.kind}".strip())
    param("kWh_per_MWh", "kWh_per_MWh", _("Unit conversion"), KWH_PER_MWH, "kWh/MWh", None, _("Definition"), "", "", _("Energies are in kWh"))
    sh.add()
    sh.add([_("Monitored values per interval, as the engine stored them beside its results (measurement mrv); the Raw sheet holds the samples they integrate. "
              "Covered: over the time its samples cover (spacing up to max_gap_s); gap: seconds without data, and what a meter measured across them.")])

    cols: list[tuple[str, str, str, Callable[[int], object]]] = []  # (layout name, heading, machine key, value of interval i)
    t = mrv.time.astype(np.int64)
    cols += [("start_utc", _("Interval start (UTC)"), "start_utc", lambda i: iso(int(t[i]))),
             ("end_utc", _("Interval end (UTC)"), "end_utc", lambda i: iso(int(t[i]) + step_ns)),
             ("start_s", _("Interval start [s since 1970-01-01 UTC]"), "start_s", lambda i: int(t[i]) // NS),
             ("end_s", _("Interval end [s since 1970-01-01 UTC]"), "end_s", lambda i: (int(t[i]) + step_ns) // NS)]
    for tb in tables.values():
        if isinstance(tb, registry.DecayTable):
            ye = tb.year_edges(to_ns(project.crediting_start), int(t[-1]) + step_ns if len(t) else end_ns)
            years = np.searchsorted(ye, t, side="right")  # 1-based crediting year of the start; 0 before the crediting period
            cols.append(("x", _("Crediting year x of the interval start (TOOL04 year; 0 before the crediting period) [-]"), "crediting_year", lambda i, y=years: int(y[i])))
        else:
            labels = _local_days(tb, project, t)
            cols.append(("day", _("Local day d (UTC{offset:+g} h) [date]").format(offset=project.day_category_utc_offset_h), "local_day", lambda i, d=labels: d[i][0]))
    seen: dict[str, str] = {}
    for f in fields:
        lay.input_symbol[f.name] = f.symbol
        if f.field in seen:  # a field two quantities share (waste diverted and burned)
            lay.input_col[f.name] = seen[f.field]
            continue
        v = mrv.fields.get(f.field, np.full(len(t), np.nan))
        cols.append((f.name, f"{f.symbol}: {shown(f.description)} [{f.unit}]", f.field, lambda i, v=v: _cell(v[i])))
        seen[f.field] = col(len(cols) - 1)
    cols += [("completeness", _("Completeness, all inputs [-]"), "completeness", lambda i: _cell(mrv.fields["completeness"][i])),
             ("gap_filled_s", _("Seconds without data, any input [s]"), "gap_filled_s", lambda i: _cell(mrv.fields["gap_filled_s"][i])),
             ("params_hash", "params_hash [-]", "params_hash", lambda i: str(mrv.params_hash[i]))]
    for fname, symbol, unit in STORED:
        cols.append((f"stored:{fname}", _("{symbol} as stored by the engine, for comparison (no formula uses it) [{unit}]").format(symbol=symbol, unit=unit), fname,
                     lambda i, f=fname: _cell(mrv.fields[f][i])))
    for fname in sorted(k for k in mrv.fields if k.endswith("_removal")):
        cols.append((f"stored:{fname}", _("{kpi}: 1 - mean(C_out) / mean(C_in), stored co-benefit [-]").format(kpi=fname.replace("_", " ")), fname,
                     lambda i, f=fname: _cell(mrv.fields[f][i])))
    for i, c in enumerate(cols):
        lay.input_col.setdefault(c[0], col(i))
    sh.table_head([c[1] for c in cols], [c[2] for c in cols])
    lay.first_input_row = sh.row + 1
    for i in range(len(t)):
        sh.add([c[3](i) for c in cols])


def _cell(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _local_days(tb, project: ProjectDetail, t: np.ndarray) -> list[tuple[str, int, int]]:
    """(local date, start ns, end ns) of the local day each interval starts in."""
    if not len(t):
        return []
    off_h = project.day_category_utc_offset_h
    days = tb.day_edges(int(t[0]), int(t[-1]) + 1, off_h)
    idx = np.clip(np.searchsorted(days, t, side="right") - 1, 0, len(days) - 2)
    off_ns = int(round(off_h * 3600)) * NS
    return [(from_ns(int(days[j]) + off_ns).date().isoformat(), int(days[j]), int(days[j + 1])) for j in idx]


def _in(lay: Layout, key: str, i: int) -> str:
    return f"Input!{lay.input_col[key]}{lay.first_input_row + i}"


# --------------------------------------------------------------------------- tables


def _write_decay(sh: Sheet, tb, project: ProjectDetail, mrv: MrvColumns, lay: Layout, step_ns: int, extras: ExportExtras) -> None:
    """TOOL04 on its own sheet: factor, waste types, crediting years, one tail block per year."""
    t = mrv.time.astype(np.int64)
    nt = len(tb.types)
    sh.add([_("First-order decay of the waste diverted from landfill (CDM TOOL04): {equation}").format(
        equation="BE_CH4,y = phi x (1 - f) x GWP_CH4 x (1 - OX) x 16/12 x F x DOC_f x MCF x sum_x sum_j W_x x p_j x DOC_j x exp(-k_j (y - x)) x (1 - exp(-k_j))")])
    sh.add([_("Each interval credits the first-year decay (y = x) of its own waste, and its share, in proportion to time, of its crediting year's decay of the waste "
              "of every earlier year (the tail, one block per year below). W: waste diverted over covered time [t].")])
    sh.add()
    sh.add([_("Quantity"), _("Symbol"), _("Value"), _("Unit")], header=True)
    factor_expr = render(tb.factor, lambda name: _param(lay, name))
    r = sh.add([_("Constant factor of the model"), "phi x (1 - f) x GWP_CH4 x (1 - OX) x 16/12 x F x DOC_f x MCF", Formula("=" + factor_expr), "tCO2e/t"])
    factor = f"FOD!$C${r}"
    sh.add()
    sh.add(["j", _("Waste type"), _("p_j weight fraction [-]"), _("DOC_j degradable organic carbon [-]"), _("k_j decay rate [1/yr]"),
            _("p_j x DOC_j x (1 - exp(-k_j)) first-year decay [-]")], header=True)
    type_rows = []
    for j, label in enumerate(tb.types):
        rr = sh.row + 1
        sh.add([j + 1, shown(label), Formula("=" + _param(lay, f"{tb.share}[{j}]")), Formula("=" + _param(lay, f"{tb.doc}[{j}]")), Formula("=" + _param(lay, f"{tb.k}[{j}]")),
                Formula(f"=C{rr}*D{rr}*(1-EXP(-E{rr}))")])
        type_rows.append(rr)
    r = sh.add(["", _("Sum over j: first-year decay per tonne of waste diverted [-]"), None, None, None, Formula(f"=SUM(F{type_rows[0]}:F{type_rows[-1]})")])
    first_year = f"FOD!$F${r}"
    sh.add()

    ye = tb.year_edges(to_ns(project.crediting_start), int(t[-1]) + step_ns if len(t) else to_ns(project.crediting_start) + 1)
    ends = t + step_ns
    last_year = int(np.searchsorted(ye, ends[-1] - 1, side="right")) if len(t) else 1  # 1-based year of the last instant
    n_years = max(last_year, 1)
    # years each interval overlaps (1-based), for its share of their tails
    overlaps = [[y + 1 for y in range(n_years) if ye[y] < e and ye[y + 1] > s] for s, e in zip(t.tolist(), ends.tolist())]
    tail_years = sorted({y for ys in overlaps for y in ys})
    sh.table_head(["x", _("Start (UTC)"), _("End (UTC)"), _("Start [s since 1970-01-01 UTC]"), _("End [s since 1970-01-01 UTC]"), _("L_x length [s]"),
                   _("W_x in this export [t]"), _("W_x stored before this export [t]"), _("W_x [t]"), _("Tail: decay in year x of earlier years' waste [tCO2e]"),
                   _("Tail rate [tCO2e/s]")], YEAR_KEYS)
    year_row = {x: sh.row + 1 + (x - 1) for x in range(1, n_years + 1)}
    blocks_start = sh.row + n_years + 2  # first row of the first tail block
    block_total: dict[int, int] = {}
    rr = blocks_start
    for y in tail_years:
        if y >= 2:
            rr += 2  # title, header
            rr += y - 1  # rows x = 1 .. y - 1
            block_total[y] = rr
            rr += 2  # total row, blank
    n = len(t)
    tcols = [col(3 + j) for j in range(nt)]  # tail blocks: D.. per waste type, then their sum and the term
    sum_col, term_col = col(3 + nt), col(4 + nt)
    w_rng = f"Input!${lay.input_col[tb.quantity + '.covered']}${lay.first_input_row}:${lay.input_col[tb.quantity + '.covered']}${lay.first_input_row + n - 1}"
    x_rng = f"Input!${lay.input_col['x']}${lay.first_input_row}:${lay.input_col['x']}${lay.first_input_row + n - 1}"
    for x in range(1, n_years + 1):
        r = year_row[x]
        in_export = Formula(f"=SUMIFS({w_rng},{x_rng},{x})") if n else 0.0
        if x in tail_years:
            tail = Formula(f"={term_col}{block_total[x]}") if x >= 2 else 0.0
            rate = Formula(f"=J{r}/F{r}")
        else:
            tail = rate = None
        sh.add([x, iso(int(ye[x - 1])), iso(int(ye[x])), int(ye[x - 1]) // NS, int(ye[x]) // NS, Formula(f"=E{r}-D{r}"), in_export,
                extras.waste_before_t.get(x - 1, 0.0), Formula(f"=G{r}+H{r}"), tail, rate])
    sh.add()
    for y in tail_years:
        if y < 2:
            continue
        sh.add([_("Year y = {y}: decay in year {y} of the waste diverted in years 1 to {last}").format(y=y, last=y - 1)])
        sh.add(["x", "y - x [yr]", "W_x [t]", *[f"{shown(lab)}: W_x x p_j x DOC_j x exp(-k_j (y - x)) x (1 - exp(-k_j)) [t]" for lab in tb.types],
                _("Sum over j [t]"), _("x factor: tail term [tCO2e]")], header=True)
        first = sh.row + 1
        for x in range(1, y):
            r = sh.row + 1
            terms = [Formula(f"=C{r}*$C${type_rows[j]}*$D${type_rows[j]}*EXP(-$E${type_rows[j]}*B{r})*(1-EXP(-$E${type_rows[j]}))") for j in range(nt)]
            sh.add([x, y - x, Formula(f"=I{year_row[x]}"), *terms, Formula(f"=SUM({tcols[0]}{r}:{tcols[-1]}{r})"), Formula(f"={sum_col}{r}*{factor}")])
        r = sh.add([_("Tail of year {y} [tCO2e]").format(y=y), None, None, *([None] * nt), None, Formula(f"=SUM({term_col}{first}:{term_col}{sh.row})")])
        assert r == block_total[y], (r, block_total[y])
        sh.add()

    def tail(i: int) -> str:
        parts = [f"FOD!$K${year_row[y]}*(MIN({_in(lay, 'end_s', i)},FOD!$E${year_row[y]})-MAX({_in(lay, 'start_s', i)},FOD!$D${year_row[y]}))" for y in overlaps[i]]
        return "(" + "+".join(parts) + ")" if parts else "0"

    lay.table_names.update({f"{tb.name}.factor": lambda i: factor, f"{tb.name}.first_year": lambda i: first_year, f"{tb.name}.tail": tail})
    lay.table_symbols.update({f"{tb.name}.factor": "FOD factor", f"{tb.name}.first_year": "sum_j p_j DOC_j (1 - exp(-k_j))",
                              f"{tb.name}.tail": "sum_y tail_y x (time of i in year y) / L_y"})


def _write_days(sh: Sheet, tb, project: ProjectDetail, mrv: MrvColumns, lay: Layout) -> None:
    """KH_AM002: one row per local day (and stored category), the cell each interval's EF reads."""
    t = mrv.time.astype(np.int64)
    off = project.day_category_utc_offset_h
    sh.add([_("Categories of local days d (JCM KH_AM002), days from local midnight at UTC{offset:+g} h: the EF of each interval follows the category of its day").format(offset=off)])
    sh.add([_("As the engine determined them from the grid supply flag (monitoring point GA_d in the Raw sheet, each sample held up to max_gap_s): {categories}. "
              "A day listed twice holds intervals computed before the day closed (provisional) and after.").format(
        categories="; ".join(f"{c} = {shown(meaning)}" for c, meaning in tb.categories))])
    sh.table_head([_("Local day d [date]"), _("Start (UTC)"), _("End (UTC)"), _("GA_d category [-]"), _("Meaning"), _("Intervals [-]")], DAY_KEYS)
    days = _local_days(tb, project, t)
    cat = mrv.fields.get(tb.input, np.full(len(t), np.nan))
    meaning = dict(tb.categories)
    keys: dict[tuple, list[int]] = {}
    for i, (d, a, b) in enumerate(days):
        if math.isfinite(cat[i]):
            keys.setdefault((d, a, b, int(cat[i])), []).append(i)
    row_of: dict[int, int] = {}
    for (d, a, b, c), members in sorted(keys.items()):
        r = sh.add([d, iso(a), iso(b), c, shown(meaning[c]) if c in meaning else _("unknown code"), len(members)])
        for i in members:
            row_of[i] = r
    lay.table_names[tb.input] = lambda i: f"Days!$D${row_of[i]}" if i in row_of else _in(lay, tb.input, i)
    lay.table_symbols[tb.input] = "GA_d(day of i)"


def _param(lay: Layout, name: str) -> str:
    if name not in lay.param_cell:
        raise Unavailable(name)
    return lay.param_cell[name]


# --------------------------------------------------------------------------- Calculation


@dataclass
class Placed:
    column: object  # registry.Column
    letter: str
    expression: str  # the alternative used


def _write_calculation(sh: Sheet, project: ProjectDetail, mrv: MrvColumns, m, fields, lay: Layout, checks: ResultChecks, tot: dict, extras: ExportExtras,
                       gap_row_of: dict[int, int], step_ns: int) -> list[Placed]:
    """One row per interval, one live formula per methodology column; totals and ER_p below."""
    n = len(mrv)
    t = mrv.time.astype(np.int64)
    inputs = {f.name for f in fields}
    known_inputs = {f.name for f in _all_inputs(m)}
    param_names = {f.name for f in dataclasses.fields(m.parameters)}
    values = {p.name: p.value for p in project.parameters}
    placed: list[Placed] = []
    key_col: dict[str, str] = {}
    column_keys = {c.key for c in m.columns}

    def resolver(i: int, probe: bool = False):
        def resolve(name: str) -> str:
            if name in lay.table_names:
                return lay.table_names[name](i) if not probe else "X1"
            if name in known_inputs:
                if name not in inputs:
                    raise Unavailable(name)
                return _in(lay, name, i) if not probe else "X1"
            if name in key_col:
                return f"{key_col[name]}{CALC_FIRST_ROW + i}"
            if name in column_keys:  # an earlier column this project does not have
                raise Unavailable(name)
            if name in ("EF_grid", "kWh_per_MWh") or name in param_names or name in lay.param_cell:
                if name not in lay.param_cell or (name in values and values[name] is None):
                    raise Unavailable(name)
                return lay.param_cell[name]
            raise ValueError(f"methodology {m.key}: column expression names {name!r}, which is no input, parameter, column or table of it")
        return resolve

    for c in m.columns:
        for alt in c.alternatives:
            try:
                render(alt, resolver(0, probe=True))
            except Unavailable:
                continue
            letter = col(1 + len(placed))
            placed.append(Placed(c, letter, alt))
            key_col[c.key] = letter
            break
    er = next((p for p in placed if p.column.result == "reduction_t_co2"), None)
    check_col = col(1 + len(placed))
    tables = _tables(m, project)
    if tables:
        title = _("Calculation: {title}. Every cell below the headers is a live formula over the Input sheet and the {sheets} sheet").format(
            title=_(m.title), sheets=", ".join(tables))
    else:
        title = _("Calculation: {title}. Every cell below the headers is a live formula over the Input sheet").format(title=_(m.title))
    sh.add([title + (f". {_(m.label)}" if m.label else "")])
    sh.add([_("Row 4 states each column's formula in symbols (Formulas sheet: the methodology's equations and parameter sources); row 5 the field of the API's intervals it reproduces.")])
    sh.add([_("Interval start (UTC)"), *[f"{p.column.symbol}: {shown(p.column.description)} [{p.column.unit}]" for p in placed],
            _("ER_i as stored by plantmrv - ER_i [{unit}]").format(unit=er.column.unit if er else "tCO2"), _("Note")], header=True)
    sh.add([_("Formula"), *[f"{p.column.symbol} = {_symbols(p.expression, lay, placed)}" for p in placed], "stored ER_i - ER_i", ""])
    sh.add([_("API field"), *[p.column.result or "" for p in placed], "", ""])
    assert sh.row == CALC_FIRST_ROW - 1
    comp = np.nan_to_num(mrv.fields["completeness"], nan=0.0)
    filled = np.nan_to_num(mrv.fields["gap_filled_s"], nan=0.0)
    missing = np.zeros(n, dtype=bool)
    for f in fields:
        v = mrv.fields.get(f.field)
        if v is not None and f.quantity in {q.name for q in m.quantities if q.required}:
            missing |= ~np.isfinite(v)
    events_at: dict[int, list] = {}
    for e in extras.events:
        k = int(np.searchsorted(t, e.time_ns, side="right")) - 1
        if 0 <= k < n and e.time_ns < t[k] + step_ns:
            events_at.setdefault(k, []).append(e)
    stored_er = lay.input_col["stored:reduction_t_co2"]
    for i in range(n):
        r = CALC_FIRST_ROW + i
        cells = [iso(int(t[i]))]
        for p in placed:
            cells.append(Formula("=" + render(p.expression, resolver(i))))
        cells.append(Formula(f"=Input!{stored_er}{lay.first_input_row + i}-{er.letter}{r}") if er else None)
        notes = []
        if missing[i]:
            notes.append(_("inputs not stored for this interval (results computed before plantmrv stored them): recompute it; these formulas cannot re-derive it"))
        if comp[i] < 1.0 - 1e-9 or filled[i] > 0:
            if int(t[i]) in gap_row_of:
                gap = _("gap: {seconds:g} s without data (Gaps row {row})").format(seconds=filled[i], row=gap_row_of[int(t[i])])
            else:
                gap = _("gap: {seconds:g} s without data").format(seconds=filled[i])
            notes.append(gap + "; " + _("reference side over covered time only, project side filled at the configured rate"))
        for e in events_at.get(i, []):
            notes.append(_("meter event {kind} {source} at {time} (Gaps sheet)").format(kind=e.kind, source=e.source, time=iso(e.time_ns)))
        cells.append("; ".join(notes))
        sh.add(cells)
    sh.add()
    last = CALC_FIRST_ROW + n - 1
    total_cells: list = [_("Total")]
    for p in placed + ([Placed(None, check_col, "")] if er else []):
        summed = p.column is None or p.column.total
        total_cells.append((Formula(f"=SUM({p.letter}{CALC_FIRST_ROW}:{p.letter}{last})") if n else 0.0) if summed else None)
    tot_row = sh.add(total_cells)
    if er is None:
        return placed
    pad = [None] * (placed.index(er))
    rule = project.methodology.rounding
    if checks.status == "withheld":
        sh.add([_("ER_p reported [tCO2]"), *pad, "withheld", _("the stored results failed checks (see Checks): not rounded or credited until an operator accepts them")])
        sh.add([_("ER_p as computed by plantmrv [tCO2]"), *pad, "withheld", ""])
    else:
        # floor never below 0, with the analytics' 1e-9 guard against float sums like 1042.9999999997
        ref = f"{er.letter}{tot_row}"
        er_formula = {"floor": f"=MAX(0,INT({ref}+1E-9))", "round": f"=MAX(0,ROUND({ref},0))", "none": f"=MAX(0,{ref})"}[rule]
        note = _("rounding: {scheme}, {rule} at the period total, never per interval").format(scheme=project.methodology.rounding_scheme, rule=_(ROUNDING_RULES[rule]))
        if checks.status == "accepted":
            a = checks.acceptance
            note += "; " + _("results with warnings accepted by {by} at {at} (acceptance {id})").format(by=a.accepted_by, at=a.accepted_at, id=a.id)
        if not m.credited:
            note += "; " + (_(m.label) if m.label else _("NOT CREDITED"))
        r1 = sh.add([_("ER_p reported [tCO2]"), *pad, Formula(er_formula), note])
        r2 = sh.add([_("ER_p as computed by plantmrv [tCO2]"), *pad, tot["reported_reduction_t_co2"], _("static value, for comparison")])
        sh.add([_("Difference [tCO2]"), *pad, Formula(f"={er.letter}{r1}-{er.letter}{r2}")])
    return placed


def _all_inputs(m):
    from plantmrv.analytics import registry

    return registry.input_fields(m)


def _symbols(expression: str, lay: Layout, placed: list[Placed]) -> str:
    """A column's expression with every name replaced by its symbol."""
    by_key = {p.column.key: p.column.symbol for p in placed}

    def sym(name: str) -> str:
        return lay.table_symbols.get(name) or lay.input_symbol.get(name) or by_key.get(name) or lay.param_symbol.get(name) or name

    return _NAME.sub(lambda mm: sym(mm.group(1)), expression)


# --------------------------------------------------------------------------- Checks, Gaps, Formulas


def _write_checks(sh: Sheet, checks: ResultChecks, rows: list[list]) -> None:
    # the status first, in B1 (docs/verifier.md); then the warnings
    sh.add([_("Status"), checks.status, _("ok: no warning; withheld: not rounded or credited; accepted: an operator accepted these results")])
    if checks.acceptance is not None:
        a = checks.acceptance
        sh.add([_("Acceptance"), a.id, a.accepted_by, a.accepted_at, a.reason])
    sh.table_head([_("Code"), _("Count [-]"), _("First (UTC)"), _("Message")], CHECK_COLUMNS)
    for r in rows:
        sh.add(r)


def _write_gaps(sh: Sheet, gap_list: list[GapInfo], extras: ExportExtras, cal_row_of: dict[int, int], gap_row_of: dict[int, int]) -> None:
    sh.add([_("Data gaps: intervals not fully covered by measured data, and how they were filled")])
    sh.table_head([_("Start (UTC)"), _("End (UTC)"), _("Completeness [-]"), _("Gap filled [s]"), _("Filled by"), _("Calculation row [-]")], [*GAP_COLUMNS, "calculation_row"])
    for g in gap_list:
        start = to_ns(g.start)
        r = sh.add([g.start.strftime("%Y-%m-%dT%H:%M:%SZ"), g.end.strftime("%Y-%m-%dT%H:%M:%SZ"), g.completeness, g.gap_filled_s, shown(g.filled_by), cal_row_of.get(start)])
        gap_row_of.setdefault(start, r)
    sh.add()
    sh.add([_("Meter events (rollovers, declared replacements and resets applied; undeclared drops and jumps are gaps)")])
    sh.table_head([_("Time (UTC)"), _("Meter (asset.field)"), _("Kind"), _("Detail"), _("Segment duration [s]"), _("Amount counted [meter unit]"), _("Counted [-]")],
                  [c for c in EVENT_COLUMNS if c != "ts_ns"])
    for e in extras.events:
        sh.add([iso(e.time_ns), e.source, e.kind, e.detail, e.duration_s, e.amount, None if e.counted is None else int(e.counted)])


def parameters_used(expression: str, project: ProjectDetail) -> list[str]:
    """``symbol = value unit (source)`` of each parameter whose symbol appears in ``expression``
    (vector parameters once, with all their values), in the context's language."""
    out: dict[str, list] = {}
    params = list(project.parameters)
    ef = project.grid_emission_factor
    for p in params:
        base = p.symbol.split("[", 1)[0]
        if re.search(r"(?<![A-Za-z0-9_])" + re.escape(base) + r"(?![A-Za-z0-9_])", expression):
            out.setdefault(base, []).append(p)
    text = []
    for base, ps in out.items():
        vals = ", ".join("" if p.value is None else f"{p.value:g}" for p in ps)
        text.append(_("{symbol} = {values} {unit} (option {option}; source: {source})").format(symbol=base, values=vals, unit=ps[0].unit, option=ps[0].option or "-", source=ps[0].source))
    if ef is not None and "EF_grid" in expression:
        text.append(_("{symbol} = {values} {unit} (source: {source})").format(symbol="EF_grid", values=f"{ef.value_t_co2_per_mwh:g}", unit="tCO2/MWh", source=ef.source))
    return text


def _write_formulas(sh: Sheet, project: ProjectDetail, placed: list[Placed], lay: Layout) -> None:
    sh.add([_("The methodology's formulas as the API serves them, with the parameters each uses")])
    sh.table_head([_("Symbol"), _("Expression"), _("Description"), _("Tag"), _("Parameters used: value, unit, monitoring option and source")],
                  ["symbol", "expression", "description", "tag", "parameters_used"])
    for f in project.methodology.formulas:
        sh.add([f.symbol, f.expression, shown(f.description), f.tag, "; ".join(parameters_used(f.expression, project))])
    sh.add()
    sh.add([_("Calculation sheet: one column per formula, in symbols")])
    sh.table_head([_("Column"), _("Symbol"), _("Formula in symbols"), _("Unit"), _("Description"), _("API field")], ["column", "symbol", "formula", "unit", "description", "result"])
    for p in placed:
        sh.add([p.letter, p.column.symbol, f"{p.column.symbol} = {_symbols(p.expression, lay, placed)}", p.column.unit, shown(p.column.description), p.column.result or ""])


#: columns of the parameters and monitoring points whose text is shown in the export's language
DESCRIPTIVE = frozenset({"description", "measurement_method", "frequency", "comments"})


def described(row: dict, columns: list[str], lang: str | None = None) -> list:
    """``row``'s ``columns``, the descriptive ones (:data:`DESCRIPTIVE`) through :func:`shown`."""
    return [shown(row[c], lang) if c in DESCRIPTIVE and isinstance(row[c], str) else row[c] for c in columns]


# --------------------------------------------------------------------------- catalogue


def catalogue_messages():
    """``(message, comment)`` of every text of the methodology registry (and of the project
    document plantmrv composes) that the workbook shows through :func:`shown`: data, not
    literals, so ``python -m plantmrv.i18n update`` asks this function for them."""
    import dataclasses

    from plantmrv.analytics import registry
    from plantmrv.api.projects import fill_rule

    for m in registry.all_methodologies():
        yield m.title, "methodology title"
        if m.label:
            yield m.label, "methodology label"
        for c in m.columns:
            yield c.description, "Calculation column (xlsx)"
        for f in registry.input_fields(m):
            yield f.description, "stored input per interval (xlsx Input)"
        for f in m.formulas + tuple(f for _cond, f in m.conditional_formulas):
            yield f.description, "formula description (xlsx Formulas)"
        for f in dataclasses.fields(m.parameters):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if getattr(default, "description", ""):
                yield default.description, "parameter description (xlsx Input)"
        for t in m.tables:
            if isinstance(t, registry.DayTable):
                for _code, meaning in t.categories:
                    yield meaning, "KH_AM002 day category (xlsx Days)"
            else:
                for label in t.types:
                    yield label, "waste type (xlsx FOD, parameter labels)"
    for r in registry.ROLES.values():
        yield r.description, "monitoring point (role of an asset field)"
    yield fill_rule(), "missing-data rule (xlsx Gaps)"
