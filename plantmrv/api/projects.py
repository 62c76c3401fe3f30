"""Projects as the API sees them: read from the ``analytics`` section, with formulas as text.

The analytics section is the single place where projects are configured; this module turns
each of its projects into a :class:`~plantmrv.api.models.ProjectDetail` (plant, methodology,
parameters with sources, grid emission factor, monitoring points) and adds the formulas of the
project's baseline model as text, tagged as in ``methodologies.md``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from plantmrv.api.models import (
    EmissionFactorInfo,
    FormulaInfo,
    MethodologyInfo,
    MonitoringPeriodInfo,
    MonitoringPointInfo,
    ParameterInfo,
    ProjectDetail,
)
from plantmrv.api.reports import from_ns
from plantmrv.i18n import N_

MISSING_DATA_RULE = (
    "Never filled silently: every missing or bad-quality interval is flagged; its reference energy is "
    "taken as 0 and its project energy at the maximum plausible rate (conservative), and the filled "
    "seconds are reported per interval (plantmrv rule, methodologies.md s.1)."
)

def _formulas(p: Any) -> list[FormulaInfo]:
    """The project's methodology's formulas, as the methodology registry states them."""
    return [FormulaInfo(symbol=f.symbol, expression=f.expression, description=f.description, tag=f.tag) for f in p.spec.formulas_for(p)]


def _role_info(role: str) -> tuple[str, str, str]:
    """(symbol, description, unit) of an asset-field role, from the methodology registry."""
    from plantmrv.analytics.registry import role as registry_role

    r = registry_role(role)
    return r.symbol, r.description, "0/1" if r.unit == "1" else r.unit


ROUNDING_OF_SCHEME = {"jcm": "floor", "j-credit": "floor", "none": "none"}


def fill_rule() -> str:
    """How the engine fills missing data, as the project document states it (``missing_data_rule``)."""
    try:
        from plantmrv.analytics.common import FILL_METHOD

        return f"{FILL_METHOD}. {MISSING_DATA_RULE}"
    except ImportError:  # analytics not part of this build
        return MISSING_DATA_RULE


def project_from_analytics(p: Any, ef: EmissionFactorInfo | None = None, max_gap_s: float | None = None) -> ProjectDetail:
    """Convert one ``analytics.projects[]`` entry (:class:`plantmrv.analytics.config.ProjectConfig`)."""
    import dataclasses

    params: list[ParameterInfo] = []
    overrides = p.parameters
    for f in dataclasses.fields(p.parameter_set):
        prm = getattr(p.parameter_set, f.name)
        ov = overrides.get(f.name)
        common = dict(
            unit=prm.unit,
            option=prm.option,
            kind="default" if ov is None else ("measured" if prm.option == "C" else "datasheet"),
            source=prm.source,
            measurement_method=(ov.measurement_method if ov else None) or "",
            frequency=(ov.frequency if ov else None) or (N_("Fixed ex ante") if prm.option == "A" else ""),
            comments=(ov.comments if ov else None) or (N_("methodology default") if ov is None else N_("project value")),
        )
        symbol = prm.symbol or f.name
        if isinstance(prm.value, (tuple, list)):  # one row per value (waste types j), named <name>[<index>]
            labels = p.spec.element_labels(f.name) or tuple(str(i + 1) for i in range(len(prm.value)))
            for i, (label, v) in enumerate(zip(labels, prm.value)):
                params.append(ParameterInfo(name=f"{f.name}[{i}]", symbol=f"{symbol}[{label}]", description=f"{prm.description or ''} ({label})", value=float(v), **common))
            continue
        params.append(ParameterInfo(name=f.name, symbol=symbol, description=prm.description or "", value=prm.value if isinstance(prm.value, (int, float)) else None, **common))
    for name, symbol, desc in (("electricity_price_per_kwh", "price_elec", N_("Electricity tariff (co-benefit: cost saved)")),):
        pv = getattr(p, name, None)
        if pv is not None:
            params.append(ParameterInfo(name=name, symbol=pv.symbol or symbol, description=pv.description or desc, value=pv.value if isinstance(pv.value, (int, float)) else None,
                                        unit=pv.unit, option=pv.option, kind="other", source=pv.source, measurement_method=pv.measurement_method or "",
                                        frequency=pv.frequency or "", comments=pv.comments or ""))
    if max_gap_s is not None:
        params.append(ParameterInfo(name="max_gap_s", symbol="max_gap_s", description=N_("Longest spacing between samples that is bridged; longer is a gap"), value=float(max_gap_s),
                                    unit="s", option=None, kind="other", source="analytics.max_gap_s (plantmrv config)", frequency=N_("Fixed"), comments=N_("data-processing setting")))
    points = []
    for a in p.assets:
        for role, fields in a.fields.by_role().items():
            for field in fields:
                symbol, desc, unit = _role_info(role)
                points.append(MonitoringPointInfo(
                    symbol=symbol, description=f"{desc}: {a.asset}.{field}", measurement=a.measurement, site=a.site or p.site,
                    asset=a.asset, field=field, unit=unit, option="C", measurement_method=f"role {role} of asset {a.asset}",
                    frequency=N_("continuous (native resolution)"), meter=None,
                ))
        for kpi, (fin, fout) in a.fields.quality_pairs.items():
            for field in (fin, fout):
                points.append(MonitoringPointInfo(symbol=f"{kpi}:{field}", description=f"Co-benefit KPI {kpi}", measurement=a.measurement, site=a.site or p.site,
                                                  asset=a.asset, field=field, unit="", option="C", measurement_method=N_("online analyser"), frequency=N_("continuous")))
    mp = p.monitoring_period
    baseline = p.baseline or ""
    return ProjectDetail(
        id=p.id,
        name=p.name or "",
        plant_type=p.plant_type,
        site=p.site,
        country=p.country or "",
        methodology=MethodologyInfo(
            id=p.methodology.id, version=p.methodology.version, title=f"{p.plant_type} / {baseline}", baseline_model=baseline,
            formulas=_formulas(p),
            missing_data_rule=fill_rule(), rounding=ROUNDING_OF_SCHEME.get(p.rounding, "floor"),
            rounding_scheme=p.rounding, credited=p.spec.credited,
        ),
        parameters=params,
        grid_emission_factor=ef,
        monitoring_points=points,
        monitoring_periods=[MonitoringPeriodInfo(id="monitoring", start=mp.start, end=mp.end)],
        ex_ante_t_co2=p.ex_ante_t_co2,
        japan_share=p.japan_share,
        params_hash=engine_params_hash(p, max_gap_s) if max_gap_s is not None else None,
        crediting_start=from_ns(p.crediting_start_ns) if p.plant_type == "wte" else None,
        day_category_utc_offset_h=p.day_category.utc_offset_h if p.day_category is not None else None,
    )


def engine_params_hash(p: Any, max_gap_s: float) -> str:
    """The ``params_hash`` the analytics engine stamps on results of project ``p``."""
    from plantmrv.analytics.methodologies import project_params_hash

    return project_params_hash(p, max_gap_s=max_gap_s)


def analytics_section(cfg: Any):
    """The ``analytics`` section: this config's, else that of ``api.projects_from`` (or None)."""
    analytics = getattr(cfg, "analytics", None)
    api = getattr(cfg, "api", None)
    if analytics is None and api is not None and api.projects_from is not None:
        from plantmrv.config import ConfigError, ConfigIssue, load_config

        other = load_config(api.projects_from)
        analytics = getattr(other, "analytics", None)
        if analytics is None:
            raise ConfigError([ConfigIssue(str(api.projects_from), "analytics", None, "api.projects_from names a file without an 'analytics' section")])
    return analytics


def load_projects(cfg: Any) -> list[ProjectDetail]:
    """Projects of the ``analytics`` section (see :func:`analytics_section`); none when absent."""
    analytics = analytics_section(cfg)
    out = []
    for p in getattr(analytics, "projects", None) or []:
        out.append(project_from_analytics(p, emission_factor(p), analytics.max_gap_s))
    return out


@dataclass(frozen=True)
class Site:
    """Where a project's plant is, as its pages show it: the time zone its report states times
    in, and its city. Presentation only: not part of the project document (nor of its hash)."""

    timezone: str = "UTC"
    city: str | None = None


def load_sites(cfg: Any) -> dict[str, Site]:
    """:class:`Site` of each project of the ``analytics`` section (see :func:`analytics_section`)."""
    analytics = analytics_section(cfg)
    return {p.id: Site(timezone=p.timezone, city=p.city) for p in getattr(analytics, "projects", None) or []}


def emission_factor(p: Any) -> EmissionFactorInfo | None:
    from plantmrv.analytics.methodologies import resolve_grid_ef

    ef = resolve_grid_ef(p)
    return EmissionFactorInfo(value_t_co2_per_mwh=ef.value_t_co2_per_mwh, country=ef.country, grid=ef.grid, year=ef.year or None, kind=ef.kind, source=ef.source)


def parameters_sha256(project: ProjectDetail) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of the project definition."""
    doc = project.model_dump(mode="json")
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
