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
from .common import emission_reductions_t_co2, emissions_t_co2
from .parameters import Param


@dataclass(frozen=True)
class VSDParameters:
    baseline_power_kw: Param = field(default_factory=lambda: Param(None, "kW", "none shipped: measured pre-retrofit power of the project's drive", "C", "P_BL", "Pre-retrofit power at constant speed"))
    sec_baseline_kwh_per_m3: Param = field(default_factory=lambda: Param(None, "kWh/m3", "none shipped: the project's pre-retrofit kWh per m3", "C", "SEC_BL", "Baseline specific energy (flow-normalised form)"))
    running_threshold: Param = field(default_factory=lambda: Param(0.5, "-", "plantmrv: a 0/1 `running` signal is on above 0.5 (data-model.md)", "C", "", "Threshold of the running flag"))


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
