"""Projects as the API sees them: read from the ``analytics`` section, with formulas as text.

The analytics section is the single place where projects are configured; this module turns
each of its projects into a :class:`~plantmrv.api.models.ProjectDetail` (plant, methodology,
parameters with sources, grid emission factor, monitoring points) and adds the formulas of the
project's baseline model as text, tagged as in ``methodologies.md``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Iterable

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
    FormulaInfo(symbol="ER_p", expression="ER_p = floor(sum_i ER_i)", description="Reported reductions of period p: full precision in every interval, rounded down to whole tonnes only at the period total", tag="published"),
]

#: Reference-energy formula of each baseline model (``methodologies.md`` s.2).
BASELINE_FORMULAS: dict[str, list[FormulaInfo]] = {
    "efficiency_ratio": [
        FormulaInfo(symbol="E_RE,i", expression="E_RE,i = EC_PJ,i x (eta_PJ / eta_RE)", description="Reference energy: project consumption scaled by the efficiency ratio [kWh]", tag="form"),
        FormulaInfo(symbol="E_PJ,i", expression="E_PJ,i = EC_PJ,i", description="Project energy: metered consumption [kWh]", tag="form"),
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


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if obj is None:
            return default
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return default


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def _parameters(p: Any) -> list[ParameterInfo]:
    raw = _get(p, "parameters", default=[]) or []
    items: Iterable[tuple[str | None, Any]]
    if isinstance(raw, dict):
        items = raw.items()
    elif hasattr(raw, "model_dump") and not isinstance(raw, list):
        items = ((k, getattr(raw, k)) for k in type(raw).model_fields)
    else:
        items = ((None, v) for v in raw)
    out = []
    for key, v in items:
        if v is None:
            continue
        if isinstance(v, (int, float)):
            out.append(ParameterInfo(symbol=str(key), value=float(v)))
            continue
        symbol = _get(v, "symbol", "name", default=key)
        option = _get(v, "option", "monitoring_option")
        kind = _get(v, "kind", "source_kind", default="other")
        value = _get(v, "value")
        out.append(
            ParameterInfo(
                symbol=str(symbol),
                description=str(_get(v, "description", default="")),
                value=float(value) if isinstance(value, (int, float)) else None,
                unit=str(_get(v, "unit", default="")),
                option=option if option in ("A", "B", "C") else None,
                kind=kind if kind in ("datasheet", "default", "measured", "ex_ante", "other") else "other",
                source=str(_get(v, "source", default="")),
                measurement_method=str(_get(v, "measurement_method", "method", default="")),
                frequency=str(_get(v, "frequency", default="")),
                comments=str(_get(v, "comments", "comment", default="")),
            )
        )
    return out


def _dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if hasattr(value, "year") and not isinstance(value, datetime):  # a date
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def project_from_analytics(p: Any, ef: EmissionFactorInfo | None = None) -> ProjectDetail:
    """Convert one ``analytics.projects[]`` entry (model or mapping) into a ProjectDetail."""
    meth = _get(p, "methodology")
    baseline = _get(p, "baseline_model", "baseline", default=None) or _get(meth, "baseline_model", default="")
    baseline = str(_get(baseline, "model", "kind", "type", default=baseline))
    periods = []
    for i, mp in enumerate(_get(p, "monitoring_periods", default=None) or ([_get(p, "monitoring_period")] if _get(p, "monitoring_period") else [])):
        periods.append(MonitoringPeriodInfo(id=str(_get(mp, "id", "name", default=f"MP{i + 1}")), start=_dt(_get(mp, "start")), end=_dt(_get(mp, "end"))))
    points = []
    for mp in _get(p, "monitoring_points", "points", default=[]) or []:
        points.append(MonitoringPointInfo.model_validate({k: v for k, v in (_plain(mp) or {}).items() if k in MonitoringPointInfo.model_fields}))
    ex_ante = _get(p, "ex_ante_t_co2_per_year", "ex_ante")
    ex_ante = _get(ex_ante, "reduction_t_co2_per_year", default=ex_ante)
    return ProjectDetail(
        id=str(_get(p, "id")),
        name=str(_get(p, "name", default="")),
        plant_type=str(_get(p, "plant_type", "type", default="")),
        site=str(_get(p, "site")),
        country=str(_get(p, "country", default="")),
        methodology=MethodologyInfo(
            id=str(_get(meth, "id", default=meth if isinstance(meth, str) else "")),
            version=str(_get(meth, "version", default=_get(p, "methodology_version", default=""))),
            title=str(_get(meth, "title", default="")),
            baseline_model=baseline,
            formulas=formulas_for(baseline),
            missing_data_rule=MISSING_DATA_RULE,
            rounding=_get(p, "rounding", default=None) or _get(meth, "rounding", default="floor"),
        ),
        parameters=_parameters(p),
        grid_emission_factor=ef,
        monitoring_points=points,
        monitoring_periods=periods,
        ex_ante_t_co2_per_year=float(ex_ante) if isinstance(ex_ante, (int, float)) else None,
        japan_share=_get(p, "japan_share", "credit_share_japan"),
    )


def load_projects(cfg: Any) -> list[ProjectDetail]:
    """Projects of the config's ``analytics`` section (none when the section is absent)."""
    analytics = getattr(cfg, "analytics", None)
    out = []
    for p in getattr(analytics, "projects", None) or []:
        out.append(project_from_analytics(p, _emission_factor(p)))
    return out


def _emission_factor(p: Any) -> EmissionFactorInfo | None:
    ref = _get(p, "grid_ef", "grid_emission_factor", "emission_factor")
    if ref is None:
        return None
    value = _get(ref, "value_t_co2_per_mwh", "value")
    if value is None:
        try:
            from plantmrv.analytics import emission_factors as efmod

            found = efmod.lookup(**{k: v for k, v in (_plain(ref) or {}).items() if k in ("country", "grid", "year", "kind")})
            return EmissionFactorInfo(value_t_co2_per_mwh=found.value_t_co2_per_mwh, country=found.country, grid=found.grid, year=found.year, kind=found.kind, source=found.source)
        except Exception:
            return None
    return EmissionFactorInfo.model_validate({k: v for k, v in (_plain(ref) or {}).items() if k in EmissionFactorInfo.model_fields} | {"value_t_co2_per_mwh": value})


def parameters_sha256(project: ProjectDetail) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of the project definition."""
    doc = project.model_dump(mode="json")
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
