"""Inverters / variable-speed drives on pumps and blowers: baseline energy and reductions.

- ``E_BL,p = P_BL x t_PJ,p`` (baseline ``constant_power_hours``) [form, Kitakyushu K-MRV001 /
  J-Credit 005]; or flow-normalised ``E_BL,p = SEC_BL x V_PJ,p`` when demand changes [form].
- ``ER_p = (E_BL,p - E_PJ,p) x EF_elec`` [form], i.e. ``RE_p = E_BL,p x EF``, ``PE_p = E_PJ,p x EF``.
- Published ex-ante case (Thu Duc Water intake pumps, Yokohama Water): 1,280,000 kWh/yr saved x
  Viet Nam 2015 EF 0.8154 = 1,043.712 -> 1,043 tCO2/yr after flooring [published inputs,
  derived check].

Monitor: electricity of the controlled equipment (kWh, option C), operating hours (option C),
flow where the flow-normalised form is used. P_BL is measured before the retrofit (option C,
fixed ex ante). Missing data: the conservative rule of :mod:`.common` (operating hours of a
missing interval count 0 on the reference side; project energy is filled high).

References
----------
.. [1] plantmrv, ``shared/docs/methodologies.md`` section 3, "Inverters / variable-speed drives".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .baselines import constant_power_hours, specific_energy
from .common import ELECTRICITY_COLUMNS, ELECTRICITY_FORMULAS, FILL_FORMULA, PERIOD_FORMULAS, emission_reductions_t_co2, emissions_t_co2, fill_power_param
from .parameters import Param
from .registry import Column, Formula, Inputs, Methodology, Outputs, Quantity, fill_column, register


@dataclass(frozen=True)
class VSDParameters:
    baseline_power_kw: Param = field(default_factory=lambda: Param(None, "kW", "none shipped: measured pre-retrofit power of the project's drive", "C", "P_BL", "Pre-retrofit power at constant speed", (0.0, None), True))
    sec_baseline_kwh_per_m3: Param = field(default_factory=lambda: Param(None, "kWh/m3", "none shipped: the project's pre-retrofit kWh per m3", "C", "SEC_BL", "Baseline specific energy (flow-normalised form)", (0.0, None), True))
    running_threshold: Param = field(default_factory=lambda: Param(0.5, "-", "plantmrv: a 0/1 `running` signal is on above 0.5 (data-model.md)", "C", "", "Threshold of the running flag"))
    fill_power_kw: Param = field(default_factory=lambda: fill_power_param("drive"))


def operating_hours(running_fraction, covered_s):
    """Operating hours per interval from the mean of a 0/1 running flag over covered time [h]."""
    return np.nan_to_num(np.asarray(running_fraction, dtype=float)) * np.asarray(covered_s, dtype=float) / 3600.0


def baseline_energy_kwh(operating_h, baseline_power_kw):
    """E_BL,p = P_BL x t_PJ,p [kWh]."""
    return constant_power_hours(operating_h, baseline_power_kw)


def baseline_energy_flow_normalised_kwh(volume_m3, sec_baseline_kwh_per_m3):
    """E_BL,p = SEC_BL x V_PJ,p [kWh]."""
    return specific_energy(volume_m3, sec_baseline_kwh_per_m3)


def reference_emissions_t_co2(baseline_energy_kwh, ef_t_co2_per_mwh):
    """RE_p = E_BL,p x EF_elec [tCO2]."""
    return emissions_t_co2(baseline_energy_kwh, ef_t_co2_per_mwh)


def project_emissions_t_co2(project_energy_kwh, ef_t_co2_per_mwh):
    """PE_p = E_PJ,p x EF_elec [tCO2]."""
    return emissions_t_co2(project_energy_kwh, ef_t_co2_per_mwh)


def emission_reductions(reference_t_co2, project_t_co2):
    """ER_p = RE_p - PE_p = (E_BL - E_PJ) x EF [tCO2], full precision."""
    return emission_reductions_t_co2(reference_t_co2, project_t_co2)


def ex_ante_reductions_t_co2(energy_saved_kwh, ef_t_co2_per_mwh):
    """Ex-ante estimate from energy saved: ``E_saved [MWh] x EF`` [tCO2], unrounded."""
    return emissions_t_co2(energy_saved_kwh, ef_t_co2_per_mwh)


# --------------------------------------------------------------------------- registry

PROJECT_ENERGY = Quantity("project_energy", "kWh", "energy_meter", "power", "project", "E_PJ", "Electricity of the controlled equipment", fill="fill_power_kw")
OPERATING_TIME = Quantity("operating_time", "h", "hours_meter", "running", "reference", "t_PJ", "Operating hours of the controlled equipment")
VOLUME_REFERENCE = Quantity("volume", "m3", "volume_meter", "flow", "reference", "V_PJ", "Volume delivered")
FILLED_ENERGY = fill_column(PROJECT_ENERGY, "E_PJ", "E_PJ,i", "Project energy, filled conservatively over missing time", "project_energy_kwh")


def compute_constant_power_hours(inp: Inputs) -> Outputs:
    """VSD project, baseline ``constant_power_hours``: E_BL = P_BL x covered operating hours, E_PJ filled high."""
    hours = inp.covered["operating_time"]
    e_bl = baseline_energy_kwh(hours, inp.value("baseline_power_kw"))
    e_pj = inp.amounts["project_energy"]
    ef = inp.ef_t_co2_per_mwh
    return Outputs(e_bl, e_pj, reference_emissions_t_co2(e_bl, ef), project_emissions_t_co2(e_pj, ef), {"operating_h": hours})


def compute_flow_normalised(inp: Inputs) -> Outputs:
    """VSD project, baseline ``specific_energy``: E_BL = SEC_BL x covered volume, E_PJ filled high."""
    vol = inp.covered["volume"]
    e_bl = baseline_energy_flow_normalised_kwh(vol, inp.value("sec_baseline_kwh_per_m3"))
    e_pj = inp.amounts["project_energy"]
    ef = inp.ef_t_co2_per_mwh
    return Outputs(e_bl, e_pj, reference_emissions_t_co2(e_bl, ef), project_emissions_t_co2(e_pj, ef), {"volume_m3": vol})


_SOURCE = "Kitakyushu K-MRV001 / J-Credit 005 [form], methodologies.md s.3 'Inverters / variable-speed drives'"
register(Methodology(
    plant_type="vsd", baseline="constant_power_hours", title="Inverters on pumps and blowers (constant power x hours)", credited=True,
    quantities=(PROJECT_ENERGY, OPERATING_TIME), parameters=VSDParameters,
    required_parameters=("baseline_power_kw", "fill_power_kw"),
    formulas=(
        Formula("E_BL,i", "E_BL,i = P_BL x t_PJ,i,covered", "Reference energy: pre-retrofit power times operating hours over covered time [kWh]", "form"),
        Formula("t_PJ,i", "t_PJ,i = run-hours counter increment, or the integral of the 0/1 running flag (> threshold)", "Operating hours [h]", "form"),
        FILL_FORMULA, *ELECTRICITY_FORMULAS, *PERIOD_FORMULAS,
    ),
    compute=compute_constant_power_hours, source=_SOURCE,
    columns=(
        FILLED_ENERGY,
        Column("E_RE", "E_BL,i", "kWh", "Reference energy: pre-retrofit power x covered operating hours", "{operating_time.covered} * {baseline_power_kw}", "reference_energy_kwh"),
        *ELECTRICITY_COLUMNS,
    ),
))
register(Methodology(
    plant_type="vsd", baseline="specific_energy", title="Inverters on pumps and blowers (flow-normalised)", credited=True,
    quantities=(PROJECT_ENERGY, VOLUME_REFERENCE), parameters=VSDParameters,
    required_parameters=("sec_baseline_kwh_per_m3", "fill_power_kw"),
    formulas=(
        Formula("E_BL,i", "E_BL,i = SEC_BL x V_PJ,i,covered", "Reference energy: baseline kWh per m3 times the volume measured over covered time [kWh]", "form"),
        FILL_FORMULA, *ELECTRICITY_FORMULAS, *PERIOD_FORMULAS,
    ),
    compute=compute_flow_normalised, source=_SOURCE,
    columns=(
        FILLED_ENERGY,
        Column("E_RE", "E_BL,i", "kWh", "Reference energy: baseline SEC x covered volume", "{volume.covered} * {sec_baseline_kwh_per_m3}", "reference_energy_kwh"),
        *ELECTRICITY_COLUMNS,
    ),
))
