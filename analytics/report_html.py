"""The monitoring report people read: one HTML page per project and period, printable to PDF.

Laid out as a JCM monitoring report: A. project, B. monitoring period, C. monitoring points,
D. parameters with their sources, E. calculation of emission reductions (RE_p, PE_p, ER_p, the
rounding rule, ex-ante and Japan's share), F. data gaps and how they were filled, G. co-benefits,
H. signatures. Every text comes from the message catalogues (``plantmrv.i18n``), so the same data
give the English or the Japanese report.

Two functions, split so the rendering can move (to the API) unchanged:

- :func:`report_data` gathers a plain, JSON-ready dict from the engine's read functions
  (``Engine.read_results``), the project config and a :class:`~.reporting.PeriodReport`;
- :func:`render_html` is a pure function of that dict and a language: no I/O, no clock.

The verifier API serves the same page from its own monitoring report (``plantmrv.api.report_page``
adapts it to this dict, adding the optional ``checks`` and ``report_sha256`` it has).

Times are shown in the site's zone (``analytics.projects[].timezone``), which the report states.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np

from plantmrv.i18n import N_, language
from plantmrv.i18n import gettext as _

NS = 1_000_000_000
MAX_GAPS_LISTED = 40
#: co-benefit fields of ``mrv`` and how the report names them
COBENEFIT_LABELS = {
    "volume_m3": N_("Water volume [m3]"),
    "operating_h": N_("Operating hours [h]"),
    "chlorine_kg": N_("Chlorine dosed [kg]"),
    "coagulant_kg": N_("Coagulant dosed [kg]"),
    "nh4_removal": N_("Ammonium removal (mean fraction)"),
    "turbidity_removal": N_("Turbidity removal (mean fraction)"),
    "waste_t": N_("Waste diverted from landfill [t]"),
    "methane_avoided_t_co2e": N_("Landfill methane avoided [tCO2e]"),
    "net_export_kwh": N_("Electricity exported [kWh]"),
    "electricity_cost_saved": N_("Electricity cost saved (tariff currency)"),
}


# --------------------------------------------------------------------------- data


def gap_ranges(ts_ns, interval_s: int, completeness, gap_filled_s) -> list[dict]:
    """Runs of consecutive intervals that were not fully covered: start, end, filled seconds, mean completeness."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    comp = np.nan_to_num(np.asarray(completeness, dtype=float), nan=0.0)
    filled = np.nan_to_num(np.asarray(gap_filled_s, dtype=float), nan=0.0)
    bad = comp < 1.0 - 1e-9
    out: list[dict] = []
    step = interval_s * NS
    for i in np.flatnonzero(bad):
        t = int(ts[i])
        if out and out[-1]["end_ns"] == t:
            g = out[-1]
            g["end_ns"] = t + step
            g["gap_filled_s"] += float(filled[i])
            g["_n"] += 1
            g["completeness"] += (float(comp[i]) - g["completeness"]) / g["_n"]
        else:
            out.append({"start_ns": t, "end_ns": t + step, "gap_filled_s": float(filled[i]), "completeness": float(comp[i]), "_n": 1})
    for g in out:
        g.pop("_n")
    return out


def report_data(engine, project, report, prepared_at_ns: int | None = None, max_gaps: int = MAX_GAPS_LISTED) -> dict:
    """The monitoring report of ``project`` for ``report``'s period, as a JSON-ready dict.

    Parameters
    ----------
    engine : Engine  Reads the hourly results (``read_results``)
    project : ProjectConfig  The analytics project
    report : PeriodReport  Totals of the period (``period_reports``)
    prepared_at_ns : int, optional  Time the report states it was prepared [ns] (the caller's clock)
    """
    from .methodologies import resolve_grid_ef
    from .parameters import table

    iv = engine.config.mrv_interval_s
    cols = engine.read_results(project, report.start_ns, report.end_ns, iv)
    ts = cols.get("time", np.empty(0, np.int64))
    n = len(ts)
    gaps = gap_ranges(ts, iv, cols.get("completeness", np.zeros(n)), cols.get("gap_filled_s", np.zeros(n)))
    expected = max(1, -(-(report.end_ns - report.start_ns) // (iv * NS)))
    ef = resolve_grid_ef(project)
    return {
        "project": {
            "id": project.id, "name": project.name or project.id, "site": project.site, "city": project.city, "country": project.country,
            "plant_type": project.plant_type, "timezone": project.timezone, "baseline": project.baseline,
            "methodology": {"id": project.methodology.id, "version": project.methodology.version},
        },
        "period": {"label": report.period, "start_ns": int(report.start_ns), "end_ns": int(report.end_ns)},
        "monitoring_points": [
            {"measurement": a.measurement, "asset": a.asset, "site": a.site or project.site,
             "fields": {role: (", ".join(v) if isinstance(v, list) else v) for role, v in a.fields.model_dump(exclude_none=True).items() if v and role != "quality_pairs"}}
            for a in project.assets
        ],
        "parameters": [{k: (v if not isinstance(v, list) else ", ".join(map(str, v))) for k, v in row.items()} for row in table(project.parameter_set)],
        "grid_ef": {"value_t_co2_per_mwh": ef.value_t_co2_per_mwh, "source": ef.source},
        "totals": report.as_dict(),
        "intervals": {"computed": int(n), "expected": int(expected), "interval_s": int(iv)},
        "gaps": gaps[:max_gaps],
        "gaps_total": len(gaps),
        "prepared_at_ns": prepared_at_ns,
    }


# --------------------------------------------------------------------------- rendering


def _zone(name: str):
    return timezone.utc if name in ("utc", "UTC") else ZoneInfo(name)


def _time(ns: int, zone) -> str:
    return datetime.fromtimestamp(ns / NS, zone).strftime("%Y-%m-%d %H:%M")


def _zone_label(name: str, at_ns: int) -> str:
    z = _zone(name)
    off = datetime.fromtimestamp(at_ns / NS, z).strftime("%z")
    return f"{'UTC' if name in ('utc', 'UTC') else name} (UTC{off[:3]}:{off[3:]})"


def _num(x, digits: int = 3) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _table(head: list[str], rows: list[list[str]], widths: list[int] | None = None, numeric: set[int] = frozenset()) -> str:
    cols = "".join(f'<col style="width:{w}%">' for w in widths) if widths else ""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><colgroup>{cols}</colgroup><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
html { font-size: 10pt; }
body { margin: 0 auto; max-width: 186mm; font-family: "Noto Sans CJK JP", "Noto Sans JP", "Noto Sans", "DejaVu Sans", sans-serif; color: #111; line-height: 1.35; }
h1 { font-size: 15pt; margin: 0 0 2mm; }
h2 { font-size: 11.5pt; margin: 5mm 0 1.5mm; border-bottom: 0.4mm solid #333; padding-bottom: 0.5mm; break-after: avoid; }
p.sub { margin: 0 0 3mm; color: #333; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; margin: 1mm 0 2mm; break-inside: auto; }
th, td { border: 0.25mm solid #777; padding: 0.8mm 1.2mm; vertical-align: top; text-align: left; overflow-wrap: anywhere; word-break: break-word; }
th { background: #eee; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr { break-inside: avoid; }
dl.kv { display: grid; grid-template-columns: 42mm 1fr; gap: 0.6mm 3mm; margin: 0; }
dl.kv dt { font-weight: 600; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.note { color: #444; font-size: 8.5pt; }
.warn { color: #8a1c00; font-weight: 600; }
.sign { display: grid; grid-template-columns: 1fr 1fr; gap: 6mm; margin-top: 3mm; break-inside: avoid; }
.sign div { border: 0.25mm solid #777; padding: 2mm; min-height: 34mm; }
.sign p { margin: 0 0 5mm; }
"""


def render_html(data: dict, lang: str = "en") -> str:
    """The monitoring report as a self-contained HTML page (A4 print CSS), in ``lang``.

    A pure function of ``data`` (see :func:`report_data`) and the catalogue of ``lang``.
    """
    with language(lang):
        return _render(data, lang)


def _h2(letter: str, title: str) -> str:
    return f"<h2>{letter}. {_e(title)}</h2>"


def _kv(rows: list[tuple[str, str]]) -> str:
    return "<dl class=kv>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def _render(d: dict, lang: str) -> str:
    # every message is looked up outside f-strings, where the catalogue extractor finds it
    p, per, t = d["project"], d["period"], d["totals"]
    zone = _zone(p["timezone"])
    zlabel = _zone_label(p["timezone"], per["start_ns"])
    credited = t.get("credited", True)
    title = _("Monitoring report")
    period_label = _("the project's monitoring period") if per["label"] == "monitoring" else per["label"]
    out = [f'<!DOCTYPE html><html lang="{_e(lang)}"><head><meta charset="utf-8"><title>{_e(title)}: {_e(p["name"])}</title><style>{CSS}</style></head><body>']
    out.append(f"<h1>{_e(title)}</h1>")
    sub = _("{name} ({id}), {period}.").format(name=p["name"], id=p["id"], period=period_label) + " " + _("Times in {zone}.").format(zone=zlabel)
    out.append(f'<p class="sub">{_e(sub)}</p>')

    out.append(_h2("A", _("Project")))
    out.append(_kv([
        (_("Project"), f"{p['name']} ({p['id']})"),
        (_("Site"), ", ".join(x for x in (p["site"], p.get("city"), p.get("country")) if x)),
        (_("Plant type"), p["plant_type"]),
        (_("Methodology"), _("{id} version {version}").format(**p["methodology"])),
        (_("Baseline"), p.get("baseline") or "-"),
        (_("Time zone"), zlabel),
    ]))

    out.append(_h2("B", _("Monitoring period")))
    iv = d["intervals"]
    rows = [
        (_("Period"), period_label),
        (_("Start"), _time(per["start_ns"], zone)),
        (_("End (exclusive)"), _time(per["end_ns"], zone)),
        (_("Intervals computed"), _("{computed:,} of {expected:,} ({seconds} s each)").format(computed=iv["computed"], expected=iv["expected"], seconds=iv["interval_s"])),
    ]
    if d.get("prepared_at_ns"):
        rows.append((_("Prepared"), _time(d["prepared_at_ns"], zone)))
    if d.get("report_sha256"):
        rows.append((_("Report hash (report_sha256)"), d["report_sha256"]))
    out.append(_kv(rows))

    out.append(_h2("C", _("Monitoring points")))
    out.append(_table(
        [_("Measurement"), _("Asset"), _("Site"), _("Fields by role")],
        [[_e(m["measurement"]), _e(m["asset"]), _e(m["site"]), "<br>".join(f"{_e(k)}: <code>{_e(v)}</code>" for k, v in m["fields"].items())] for m in d["monitoring_points"]],
        [16, 16, 16, 52],
    ))

    out.append(_h2("D", _("Parameters")))
    ef_name = _("Grid emission factor")
    out.append(_table(
        [_("Parameter"), _("Value"), _("Unit"), _("Option"), _("Source")],
        [[f"{_e(r.get('symbol') or r['name'])}<br><span class=note>{_e(r.get('description') or r['name'])}</span>", _e(r["value"]), _e(r["unit"]), _e(r["option"]), _e(r["source"])] for r in d["parameters"]]
        + ([[f"EF<sub>grid</sub><br><span class=note>{_e(ef_name)}</span>", _e(f"{d['grid_ef']['value_t_co2_per_mwh']:g}"), "tCO2/MWh", "A", _e(d["grid_ef"]["source"])]] if d.get("grid_ef") else []),
        [22, 12, 11, 8, 47],
        {1},
    ))
    out.append('<p class="note">' + _e(_("Option: JCM monitoring option (A public data, B invoices or revenue meters, C own measurement).")) + "</p>")

    out.append(_h2("E", _("Calculation of emission reductions")))
    rounding = {"jcm": _("JCM: rounded down to whole tonnes"), "j-credit": _("J-Credit: rounded down to whole tonnes"), "none": _("not rounded")}.get(t.get("rounding", "jcm"), t.get("rounding"))
    share = f" ({t['japan_share']:.0%})" if t.get("japan_share") is not None else ""
    calc = [
        [_e(_("Reference emissions")), "RE<sub>p</sub>", _num(t["reference_t_co2"])],
        [_e(_("Project emissions")), "PE<sub>p</sub>", _num(t["project_t_co2"])],
        [_e(_("Emission reductions, full precision")), "ER<sub>p</sub> = RE<sub>p</sub> - PE<sub>p</sub>", _num(t["reduction_t_co2"])],
        [_e(_("Emission reductions, reported")) + f"<br><span class=note>{_e(rounding)}</span>", "ER<sub>p</sub>", _num(t["reported_t_co2"], 0) if credited else _e(_("not credited"))],
        [_e(_("Ex-ante estimate")), "", _num(t.get("ex_ante_t_co2"), 0)],
        [_e(_("Japan's share")) + share, "", _num(t.get("japan_t_co2"), 0)],
        [_e(_("Host country's share")), "", _num(t.get("host_t_co2"), 0)],
        [_e(_("Energy saved")) + " [kWh]", "", _num(t.get("energy_saved_kwh"), 0)],
        [_e(_("Data completeness")), "", f"{t.get('completeness', 0):.1%}"],
        [_e(_("Gap-filled time")) + " [h]", "", _num(t.get("gap_filled_s", 0) / 3600, 2)],
    ]
    out.append(_table([_("Item"), _("Symbol"), _("tCO2")], calc, [46, 30, 24], {2}))
    if not credited:
        out.append('<p class="warn">' + _e(_("U-BCF results are KPIs: no methodology credits them.")) + "</p>")
    checks = d.get("checks") or {}
    warnings = ", ".join(checks.get("warnings") or ())
    if checks.get("status") == "withheld":
        text = _("Withheld: the stored results failed checks ({warnings}); they are neither rounded nor credited until an operator accepts them.").format(warnings=warnings)
        out.append(f'<p class="warn">{_e(text)}</p>')
    elif checks.get("status") == "accepted":
        text = _("The stored results failed checks ({warnings}); an operator ({by}) accepted them as they are.").format(warnings=warnings, by=checks.get("accepted_by") or "-")
        out.append(f'<p class="note">{_e(text)}</p>')

    out.append(_h2("F", _("Data gaps and how they were filled")))
    if not d["gaps"]:
        out.append("<p>" + _e(_("Every interval of the period was fully covered by measured data.")) + "</p>")
    else:
        out.append(_table(
            [_("From"), _("To"), _("Gap-filled time") + " [h]", _("Completeness")],
            [[_e(_time(g["start_ns"], zone)), _e(_time(g["end_ns"], zone)), _num(g["gap_filled_s"] / 3600, 2), f"{g['completeness']:.1%}"] for g in d["gaps"]],
            [30, 30, 20, 20],
            {2, 3},
        ))
        if d["gaps_total"] > len(d["gaps"]):
            more = _("{shown} of {total} gaps listed; the verifier export lists all.").format(shown=len(d["gaps"]), total=d["gaps_total"])
            out.append(f'<p class="note">{_e(more)}</p>')
        out.append('<p class="note">' + _e(_("Missing data are filled conservatively: a fill never raises the credited reductions.")) + "</p>")

    cob = t.get("cobenefits") or {}
    if cob:
        out.append(_h2("G", _("Co-benefits")))
        out.append(_table([_("Indicator"), _("Value")], [[_e(_(COBENEFIT_LABELS.get(k, k))), _num(v, 3 if k.endswith("_removal") else 1)] for k, v in sorted(cob.items())], [60, 40], {1}))

    out.append(_h2("H", _("Signatures")) + "<div class=sign>")
    lines = [_("Name"), _("Title"), _("Signature"), _("Date")]
    for role in (_("Project participant"), _("Verifier (third-party entity)")):
        out.append(f"<div><p><b>{_e(role)}</b></p>" + "".join(f"<p>{_e(x)}:</p>" for x in lines) + "</div>")
    out.append("</div></body></html>")
    return "\n".join(out)
