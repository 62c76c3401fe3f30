"""Projects as the API sees them: read from the ``analytics`` section, with formulas as text.

The analytics section is the single place where projects are configured; this module turns
each of its projects into a :class:`~plantmrv.api.models.ProjectDetail` (plant, methodology,
parameters with sources, grid emission factor, monitoring points) and adds the formulas of the
project's baseline model as text, tagged as in ``methodologies.md``.
"""

from __future__ import annotations

import hashlib
import json
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

MISSING_DATA_RULE = (
    "Never filled silently: every missing or bad-quality interval is flagged; its reference energy is "
    "taken as 0 and its project energy at the maximum plausible rate (conservative), and the filled "
    "seconds are reported per interval (plantmrv rule, methodologies.md s.1)."
)

_COMMON = [
    FormulaInfo(symbol="RE_i", expression="RE_i = E_RE,i / 1000 x EF_grid", description="Reference emissions of interval i [tCO2]; E in kWh, EF in tCO2/MWh", tag="published"),
    FormulaInfo(symbol="PE_i", expression="PE_i = E_PJ,i / 1000 x EF_grid", description="Project emissions of interval i [tCO2]", tag="published"),
    FormulaInfo(symbol="ER_i", expression="ER_i = RE_i - PE_i", description="Emission reductions of interval i [tCO2]", tag="published"),
    FormulaInfo(symbol="ER_p", expression="ER_p = max(0, floor(sum_i ER_i))", description="Reported reductions of period p (JCM, J-Credit): full precision in every interval, rounded down to whole tonnes only at the period total, never below 0", tag="published"),
]

#: Reference-energy formula of each baseline model (``methodologies.md`` s.2).
BASELINE_FORMULAS: dict[str, list[FormulaInfo]] = {
    "efficiency_ratio": [
        FormulaInfo(symbol="E_RE,i", expression="E_RE,i = EC_PJ,i,covered x (eta_PJ / eta_RE)", description="Reference energy: metered consumption over covered time scaled by the efficiency ratio [kWh]", tag="form"),
        FormulaInfo(symbol="E_PJ,i", expression="E_PJ,i = max(EC_PJ,i,covered + gap_s,i / 3600 x P_fill, EC_PJ,i,covered + EC_PJ,i,gap)", description="Project energy: covered consumption plus the conservative fill of missing time [kWh]", tag="form"),
        FormulaInfo(symbol="EC_PJ,i,covered", expression="sum over meter readings k, k+1 no more than max_gap_s apart of (r_k+1 - r_k) x overlap with interval i / (t_k+1 - t_k)", description="Meter increments placed linearly in time, split at interval edges [kWh]", tag="form"),
    ],
    "specific_energy": [
        FormulaInfo(symbol="E_RE,i", expression="E_RE,i = SEC_BL x V_PJ,i", description="Reference energy: baseline kWh per m3 times the project's volume [kWh]", tag="form"),
        FormulaInfo(symbol="E_PJ,i", expression="E_PJ,i = EC_PJ,i", description="Project energy: metered consumption [kWh]", tag="form"),
    ],
    "constant_power_hours": [
        FormulaInfo(symbol="E_RE,i", expression="E_RE,i = P_BL x t_PJ,i", description="Reference energy: pre-retrofit power times operating hours [kWh]", tag="form"),
        FormulaInfo(symbol="E_PJ,i", expression="E_PJ,i = EC_PJ,i", description="Project energy: metered consumption [kWh]", tag="form"),
    ],
    "generation": [
        FormulaInfo(symbol="E_RE,i", expression="E_RE,i = EG_i", description="Reference energy: electricity generated or exported, displacing grid electricity [kWh]", tag="published"),
        FormulaInfo(symbol="E_PJ,i", expression="E_PJ,i = 0", description="Project emissions are zero", tag="published"),
    ],
    "fod_methane": [
        FormulaInfo(
            symbol="BE_CH4,y",
            expression="BE_CH4,y = phi x (1 - f) x GWP_CH4 x (1 - OX) x 16/12 x F x DOC_f x MCF x sum_x sum_j W_j,x x DOC_j x exp(-k_j (y - x)) x (1 - exp(-k_j))",
            description="Methane avoided from landfill, first-order decay [tCO2e]",
            tag="published",
        ),
    ],
}


def formulas_for(baseline_model: str) -> list[FormulaInfo]:
    return BASELINE_FORMULAS.get(baseline_model, []) + _COMMON


# --------------------------------------------------------------------------- analytics adapter

#: Symbol, description and unit of each asset-field role of ``analytics.projects[].assets[].fields``.
ROLE_INFO = {
    "energy_meter": ("EC_PJ", "Electricity consumed (cumulative register)", "kWh"),
    "power": ("P_PJ", "Active power consumed", "kW"),
    "flow": ("Q_PJ", "Flow", "m3/h"),
    "volume_meter": ("V_PJ", "Volume delivered (cumulative register)", "m3"),
    "running": ("t_PJ", "Running flag (operating hours)", "0/1"),
    "export_meter": ("EG", "Electricity exported to the grid (cumulative register)", "kWh"),
    "export_power": ("P_EG", "Power exported / generated", "kW"),
    "waste_meter": ("W", "Waste fed (weighbridge, cumulative)", "t"),
    "waste_rate": ("W_rate", "Waste feed rate", "t/h"),
    "aux_fuel_rate": ("FC_aux", "Auxiliary fuel", "kg/h"),
    "chlorine_rate": ("Cl", "Chlorine dose", "kg/h"),
    "coagulant_rate": ("Coag", "Coagulant dose", "kg/h"),
    "grid_available": ("GA_d", "Grid supply flag (day category, JCM KH_AM002)", "0/1"),
}

#: Reference EF by category of day (JCM KH_AM002), for projects with ``day_category``.
DAY_CATEGORY_FORMULA = FormulaInfo(
    symbol="EF_RE,d",
    expression="EF_RE,d = EF_grid if GA_d = 1 all day d; EF_diesel if GA_d = 0 all day d; min(EF_grid, EF_diesel) otherwise",
    description="Reference emission factor of local day d by its category; a day not yet closed takes the lower factor and is recomputed when it closes",
    tag="form",
)
ROUNDING_OF_SCHEME = {"jcm": "floor", "j-credit": "floor", "none": "none"}


def _fill_rule() -> str:
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
        params.append(
            ParameterInfo(
                name=f.name,
                symbol=prm.symbol or f.name,
                description=prm.description or "",
                value=prm.value if isinstance(prm.value, (int, float)) else None,
                unit=prm.unit,
                option=prm.option,
                kind="default" if ov is None else ("measured" if prm.option == "C" else "datasheet"),
                source=prm.source,
                measurement_method=(ov.measurement_method if ov else None) or "",
                frequency=(ov.frequency if ov else None) or ("Fixed ex ante" if prm.option == "A" else ""),
                comments=(ov.comments if ov else None) or ("methodology default" if ov is None else "project value"),
            )
        )
    for name, symbol, desc in (("project_fill_rate_kw", "P_fill", "Maximum plausible project rate charged over missing time"),
                               ("electricity_price_per_kwh", "price_elec", "Electricity tariff (co-benefit: cost saved)")):
        pv = getattr(p, name, None)
        if pv is not None:
            params.append(ParameterInfo(name=name, symbol=pv.symbol or symbol, description=pv.description or desc, value=pv.value if isinstance(pv.value, (int, float)) else None,
                                        unit=pv.unit, option=pv.option, kind="other", source=pv.source, measurement_method=pv.measurement_method or "",
                                        frequency=pv.frequency or "", comments=pv.comments or ""))
    if max_gap_s is not None:
        params.append(ParameterInfo(name="max_gap_s", symbol="max_gap_s", description="Longest spacing between samples that is bridged; longer is a gap", value=float(max_gap_s),
                                    unit="s", option=None, kind="other", source="analytics.max_gap_s (plantmrv config)", frequency="Fixed", comments="data-processing setting"))
    points = []
    for a in p.assets:
        for role, info in ROLE_INFO.items():
            v = getattr(a.fields, role)
            for field in ([v] if isinstance(v, str) else (v or [])):
                symbol, desc, unit = info
                points.append(MonitoringPointInfo(
                    symbol=symbol, description=f"{desc}: {a.asset}.{field}", measurement=a.measurement, site=a.site or p.site,
                    asset=a.asset, field=field, unit=unit, option="C", measurement_method=f"role {role} of asset {a.asset}",
                    frequency="continuous (native resolution)", meter=None,
                ))
        for kpi, (fin, fout) in a.fields.quality_pairs.items():
            for field in (fin, fout):
                points.append(MonitoringPointInfo(symbol=f"{kpi}:{field}", description=f"Co-benefit KPI {kpi}", measurement=a.measurement, site=a.site or p.site,
                                                  asset=a.asset, field=field, unit="", option="C", measurement_method="online analyser", frequency="continuous"))
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
            formulas=formulas_for(baseline) + ([DAY_CATEGORY_FORMULA] if getattr(p, "day_category", None) is not None else []),
            missing_data_rule=_fill_rule(), rounding=ROUNDING_OF_SCHEME.get(p.rounding, "floor"),
            rounding_scheme=p.rounding, credited=p.plant_type != "ubcf",
        ),
        parameters=params,
        grid_emission_factor=ef,
        monitoring_points=points,
        monitoring_periods=[MonitoringPeriodInfo(id="monitoring", start=mp.start, end=mp.end)],
        ex_ante_t_co2=p.ex_ante_t_co2,
        japan_share=p.japan_share,
    )


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


def emission_factor(p: Any) -> EmissionFactorInfo | None:
    from plantmrv.analytics.methodologies import resolve_grid_ef

    ef = resolve_grid_ef(p)
    return EmissionFactorInfo(value_t_co2_per_mwh=ef.value_t_co2_per_mwh, country=ef.country, grid=ef.grid, year=ef.year or None, kind=ef.kind, source=ef.source)


def parameters_sha256(project: ProjectDetail) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of the project definition."""
    doc = project.model_dump(mode="json")
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
