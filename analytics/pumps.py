"""High-efficiency pumps for water supply: reference, project and emission reductions.

Symbols follow the JCM energy-efficiency family (RE_p, PE_p, ER_p, EC_PJ, eta_PJ, eta_RE):

- ``RE_p = sum_i EC_PJ,i,p x (eta_PJ,i / eta_RE,i) x EF_elec`` [form]
- ``PE_p = sum_i EC_PJ,i,p x EF_elec`` [form]
- ``ER_p = RE_p - PE_p`` [published, JCM common frame]
- Where head or duty changed, the reference is ``SEC_BL x V_PJ`` (baseline ``specific_energy``)
  [form, J-Credit EN-S-020]: most of the HCMC Tan Hiep 1 saving comes from a lower head, which
  an efficiency ratio would not credit [derived].
- Wire-to-water efficiency ``eta = rho g Q H / P_el`` [published physics]; Tan Hiep 1 old
  pumps 1.75 m3/s, 65 m, 1,411 kW -> 0.791; new 1.75 m3/s, 40 m, 850 kW -> 0.808 [derived].

EC from the pump's own meter (option C, continuous); eta_PJ from the test certificate
(option A); eta_RE a conservative default fixed ex ante (option A). Missing data: the
conservative rule of :mod:`.common`.

References
----------
.. [1] plantmrv, ``shared/docs/methodologies.md`` section 3, "High-efficiency pumps".
.. [2] Da Nang Cau Do water plant (9 pumps, 2017); HCMC Tan Hiep 1 published pump data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .baselines import efficiency_ratio, specific_energy
from .common import ELECTRICITY_COLUMNS, ELECTRICITY_FORMULAS, FILL_FORMULA, PERIOD_FORMULAS, emission_reductions_t_co2, emissions_t_co2, fill_power_param
from .parameters import Param
from .registry import Column, Formula, Inputs, Methodology, Outputs, Quantity, fill_column, register

RHO_WATER_KG_PER_M3 = 1000.0  # methodologies.md s.3 [published]
G_M_PER_S2 = 9.80665  # standard gravity [published]


@dataclass(frozen=True)
class PumpParameters:
    """Parameters of the pump methodology. None of them has a default copied from one plant:
    every project states its own, with a source."""

    eta_project: Param = field(default_factory=lambda: Param(None, "-", "none shipped: the project pump's test certificate", "A", "eta_PJ", "Wire-to-water efficiency of the project pump", (0.0, 1.0), True))
    eta_reference: Param = field(default_factory=lambda: Param(None, "-", "none shipped: the project's conservative ex-ante reference efficiency", "A", "eta_RE", "Reference pump efficiency (conservative, ex ante)", (0.0, 1.0), True))
    sec_baseline_kwh_per_m3: Param = field(default_factory=lambda: Param(None, "kWh/m3", "none shipped: a project using specific_energy declares its pre-project SEC", "B", "SEC_BL", "Baseline specific energy", (0.0, None), True))
    fill_power_kw: Param = field(default_factory=lambda: fill_power_param("project pump motors"))


def wire_to_water_efficiency(flow_m3_per_s, head_m, power_kw, rho_kg_per_m3=RHO_WATER_KG_PER_M3, g_m_per_s2=G_M_PER_S2):
    """Wire-to-water efficiency ``eta = rho g Q H / P_el``.

    Parameters
    ----------
    flow_m3_per_s : numeric  Flow [m3/s]
    head_m : numeric  Total head [m]
    power_kw : numeric  Electrical input power [kW]

    Returns
    -------
    numeric  Efficiency [-]; NaN where power <= 0.

    Raises
    ------
    ValueError  where an efficiency above 1 comes out: physics forbids it, so an input is in
        the wrong unit (flow in m3/min or m3/h, power in W or MW).
    """
    p_w = np.asarray(power_kw, dtype=float) * 1000.0
    hyd_w = rho_kg_per_m3 * g_m_per_s2 * np.asarray(flow_m3_per_s, dtype=float) * np.asarray(head_m, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(p_w > 0, hyd_w / np.where(p_w > 0, p_w, 1.0), np.nan)
    if np.any(eta > 1.0 + 1e-9):
        raise ValueError(f"wire-to-water efficiency {np.nanmax(eta):.3g} > 1 is impossible: check units "
                         "(flow in m3/s, head in m, power in kW)")
    return eta


def reference_energy_kwh(project_energy_kwh, eta_project, eta_reference):
    """``EC_PJ x eta_PJ / eta_RE`` [kWh] (baseline ``efficiency_ratio``)."""
    return efficiency_ratio(project_energy_kwh, eta_project, eta_reference)


def reference_emissions_t_co2(project_energy_kwh, eta_project, eta_reference, ef_t_co2_per_mwh):
    """RE_p = EC_PJ,p x (eta_PJ / eta_RE) x EF_elec [tCO2] (sum over pumps i by summing arrays).

    Parameters
    ----------
    project_energy_kwh : array  Electricity of the project pump per interval [kWh]
    eta_project : numeric  Project pump efficiency [-]
    eta_reference : numeric  Reference efficiency [-]
    ef_t_co2_per_mwh : numeric  Grid emission factor [tCO2/MWh]
    """
    return emissions_t_co2(reference_energy_kwh(project_energy_kwh, eta_project, eta_reference), ef_t_co2_per_mwh)


def reference_emissions_specific_energy_t_co2(volume_m3, sec_baseline_kwh_per_m3, ef_t_co2_per_mwh):
    """RE_p = SEC_BL x V_PJ,p x EF_elec [tCO2], for projects whose head or duty changed."""
    return emissions_t_co2(specific_energy(volume_m3, sec_baseline_kwh_per_m3), ef_t_co2_per_mwh)


def project_emissions_t_co2(project_energy_kwh, ef_t_co2_per_mwh):
    """PE_p = EC_PJ,p x EF_elec [tCO2]."""
    return emissions_t_co2(project_energy_kwh, ef_t_co2_per_mwh)


def emission_reductions(reference_t_co2, project_t_co2):
    """ER_p = RE_p - PE_p [tCO2], full precision per interval."""
    return emission_reductions_t_co2(reference_t_co2, project_t_co2)


# --------------------------------------------------------------------------- registry

PROJECT_ENERGY = Quantity("project_energy", "kWh", "energy_meter", "power", "project", "EC_PJ", "Electricity of the project pumps", fill="fill_power_kw")
VOLUME_KPI = Quantity("volume", "m3", "volume_meter", "flow", "kpi", "V_PJ", "Volume pumped (co-benefit)", required=False)
HOURS_KPI = Quantity("operating_time", "h", "hours_meter", "running", "kpi", "t_PJ", "Operating hours (co-benefit)", required=False)
VOLUME_REFERENCE = Quantity("volume", "m3", "volume_meter", "flow", "reference", "V_PJ", "Volume pumped")
FILLED_ENERGY = fill_column(PROJECT_ENERGY, "E_PJ", "E_PJ,i", "Project energy, filled conservatively over missing time", "project_energy_kwh")
SEC_KPI = Column("SEC_PJ", "SEC_PJ,i", "kWh/m3", "Energy per m3 pumped (co-benefit)", 'IF({volume.covered} > 0, {project_energy.covered} / {volume.covered}, "")', total=False)


def compute_efficiency_ratio(inp: Inputs) -> Outputs:
    """Pump project, baseline ``efficiency_ratio``: RE from the covered consumption, PE from the filled one."""
    ref_kwh = reference_energy_kwh(inp.covered["project_energy"], inp.value("eta_project"), inp.value("eta_reference"))
    proj_kwh = inp.amounts["project_energy"]
    ef = inp.ef_t_co2_per_mwh
    cob = {k: inp.covered[q] for k, q in (("volume_m3", "volume"), ("operating_h", "operating_time")) if q in inp.covered}
    return Outputs(ref_kwh, proj_kwh, reference_emissions_t_co2(inp.covered["project_energy"], inp.value("eta_project"), inp.value("eta_reference"), ef),
                   project_emissions_t_co2(proj_kwh, ef), cob)


def compute_specific_energy(inp: Inputs) -> Outputs:
    """Pump project, baseline ``specific_energy``: RE = SEC_BL x covered volume, PE from the filled consumption."""
    vol = inp.covered["volume"]
    proj_kwh = inp.amounts["project_energy"]
    ef = inp.ef_t_co2_per_mwh
    cob = {"volume_m3": vol}
    if "operating_time" in inp.covered:
        cob["operating_h"] = inp.covered["operating_time"]
    return Outputs(specific_energy(vol, inp.value("sec_baseline_kwh_per_m3")), proj_kwh,
                   reference_emissions_specific_energy_t_co2(vol, inp.value("sec_baseline_kwh_per_m3"), ef), project_emissions_t_co2(proj_kwh, ef), cob)


_SOURCE = "JCM energy-efficiency family [form], methodologies.md s.3 'High-efficiency pumps'; J-Credit EN-S-020 for specific_energy [form]"
register(Methodology(
    plant_type="pump", baseline="efficiency_ratio", title="High-efficiency pumps (efficiency ratio)", credited=True,
    quantities=(PROJECT_ENERGY, VOLUME_KPI, HOURS_KPI), parameters=PumpParameters,
    required_parameters=("eta_project", "eta_reference", "fill_power_kw"),
    formulas=(
        Formula("E_RE,i", "E_RE,i = EC_PJ,i,covered x (eta_PJ / eta_RE)", "Reference energy: metered consumption over covered time scaled by the efficiency ratio [kWh]", "form"),
        FILL_FORMULA, *ELECTRICITY_FORMULAS, *PERIOD_FORMULAS,
    ),
    compute=compute_efficiency_ratio, source=_SOURCE,
    columns=(
        FILLED_ENERGY,
        Column("E_RE", "E_RE,i", "kWh", "Reference energy: covered consumption x efficiency ratio", "{project_energy.covered} * {eta_project} / {eta_reference}", "reference_energy_kwh"),
        *ELECTRICITY_COLUMNS, SEC_KPI,
    ),
))
register(Methodology(
    plant_type="pump", baseline="specific_energy", title="High-efficiency pumps (specific energy, head or duty changed)", credited=True,
    quantities=(PROJECT_ENERGY, VOLUME_REFERENCE, HOURS_KPI), parameters=PumpParameters,
    required_parameters=("sec_baseline_kwh_per_m3", "fill_power_kw"),
    formulas=(
        Formula("E_RE,i", "E_RE,i = SEC_BL x V_PJ,i,covered", "Reference energy: baseline kWh per m3 times the volume measured over covered time [kWh]", "form"),
        FILL_FORMULA, *ELECTRICITY_FORMULAS, *PERIOD_FORMULAS,
    ),
    compute=compute_specific_energy, source=_SOURCE,
    columns=(
        FILLED_ENERGY,
        Column("E_RE", "E_RE,i", "kWh", "Reference energy: baseline SEC x covered volume", "{volume.covered} * {sec_baseline_kwh_per_m3}", "reference_energy_kwh"),
        *ELECTRICITY_COLUMNS, SEC_KPI,
    ),
))
