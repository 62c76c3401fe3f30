"""The monitoring report people read, served by the API: the JSON monitoring report, as the page
of :func:`plantmrv.analytics.report_html.render_html` (JCM monitoring-report layout, printable).

One adapter, :func:`page_data`, turns what the API computed for ``/monitoring-report`` (the
:class:`~plantmrv.api.models.MonitoringReport`, its stored intervals and the project document)
into the renderer's input (:func:`plantmrv.analytics.report_html.report_data` makes the same
shape from the engine); the renderer itself is shared, so the API's page and the CLI's
``analytics report --html`` are one layout. Every figure on the page is the JSON report's.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from plantmrv.api.models import MonitoringReport, ProjectDetail
from plantmrv.api.projects import Site
from plantmrv.api.queries import MrvColumns
from plantmrv.api.reports import to_ns
from plantmrv.api.workbook import shown
from plantmrv.i18n import language

NS = 1_000_000_000


def interval_gaps(mrv: MrvColumns, start_ns: int, end_ns: int, source_s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ts_ns, completeness, gap_filled_s)`` on every interval of ``[start, end)``: the stored
    intervals where they are (on the grid), completeness 0 where no result is stored, so a
    missing interval is a gap on the page as in the JSON report (never dropped)."""
    step = source_s * NS
    ts = np.arange(start_ns, end_ns, step, dtype=np.int64)
    comp = np.zeros(len(ts))
    filled = np.zeros(len(ts))
    t = np.asarray(mrv.time, dtype=np.int64)
    on_grid = (t >= start_ns) & (t < end_ns) & ((t - start_ns) % step == 0)
    idx = (t[on_grid] - start_ns) // step
    comp[idx] = np.nan_to_num(np.asarray(mrv.fields["completeness"], dtype=float)[on_grid], nan=0.0)
    filled[idx] = np.nan_to_num(np.asarray(mrv.fields["gap_filled_s"], dtype=float)[on_grid], nan=0.0)
    return ts, comp, filled


def page_data(project: ProjectDetail, report: MonitoringReport, mrv: MrvColumns, source_s: int, site: Site, prepared_at: datetime, lang: str) -> dict:
    """The renderer's input (the shape of ``report_html.report_data``) from the API's report.

    Parameters
    ----------
    project : ProjectDetail  The project document the report was computed with
    report : MonitoringReport  What ``GET /projects/{id}/monitoring-report`` answers
    mrv : MrvColumns  The stored intervals the report summed (for the list of gaps)
    source_s : int  Length of a stored interval [s]
    site : Site  The plant's time zone and city (the page states times in its zone)
    prepared_at : datetime  When the page was prepared (the API's clock)
    lang : str  Language of the texts the catalogue knows (parameter descriptions)
    """
    from plantmrv.analytics.report_html import MAX_GAPS_LISTED, gap_ranges
    from plantmrv.analytics.reporting import allocate_credits

    start_ns, end_ns = to_ns(report.period.start), to_ns(report.period.end)
    ts, comp, filled = interval_gaps(mrv, start_ns, end_ns, source_s)
    gaps = gap_ranges(ts, source_s, comp, filled)
    points: dict[tuple, dict] = {}
    for mp in project.monitoring_points:
        point = points.setdefault((mp.measurement, mp.asset or "", mp.site), {"measurement": mp.measurement, "asset": mp.asset or "", "site": mp.site, "fields": {}})
        point["fields"][mp.symbol] = ", ".join(x for x in (point["fields"].get(mp.symbol), mp.field) if x)
    reported = report.reported_reduction_t_co2
    japan, host = allocate_credits(reported, report.japan_share) if reported is not None else (None, None)
    ef = project.grid_emission_factor
    with language(lang):
        parameters = [{"name": p.name, "symbol": p.symbol, "description": shown(p.description), "value": p.value, "unit": p.unit, "option": p.option, "source": p.source}
                      for p in project.parameters]
    return {
        "project": {
            "id": project.id, "name": project.name or project.id, "site": project.site, "city": site.city, "country": project.country,
            "plant_type": project.plant_type, "timezone": site.timezone, "baseline": project.methodology.baseline_model,
            "methodology": {"id": project.methodology.id, "version": project.methodology.version},
        },
        "period": {"label": report.period.id, "start_ns": start_ns, "end_ns": end_ns},
        "monitoring_points": list(points.values()),
        "parameters": parameters,
        "grid_ef": {"value_t_co2_per_mwh": ef.value_t_co2_per_mwh, "source": ef.source} if ef is not None else None,
        "totals": {
            "project": project.id, "period": report.period.id, "start_ns": start_ns, "end_ns": end_ns,
            "reference_t_co2": report.reference_t_co2, "project_t_co2": report.project_t_co2, "reduction_t_co2": report.reduction_t_co2,
            "reported_t_co2": reported, "ex_ante_t_co2": report.ex_ante_t_co2, "japan_share": report.japan_share, "japan_t_co2": japan, "host_t_co2": host,
            "energy_saved_kwh": report.energy_saved_kwh, "completeness": report.completeness, "gap_filled_s": report.gap_filled_s,
            "rounding": project.methodology.rounding_scheme, "credited": report.credited, "city": site.city, "country": project.country, "cobenefits": {},
        },
        "intervals": {"computed": report.mrv_intervals, "expected": len(ts), "interval_s": source_s},
        "gaps": gaps[:MAX_GAPS_LISTED],
        "gaps_total": len(gaps),
        "prepared_at_ns": to_ns(prepared_at),
        "checks": {"status": report.checks.status, "warnings": [f"{w.code}:{w.count}" for w in report.checks.warnings],
                   "accepted_by": report.checks.acceptance.accepted_by if report.checks.acceptance else None},
        "report_sha256": report.report_sha256,
    }
