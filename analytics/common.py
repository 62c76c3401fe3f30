"""Pieces every methodology shares: emissions from energy, ER, and the conservative gap rule.

- ``RE = E_ref_mwh x EF``, ``PE = E_PJ_mwh x EF``, ``ER_p = RE_p - PE_p`` [published, JCM
  common frame, ``shared/docs/methodologies.md`` sections 1-2].
- Missing or bad-quality data [plantmrv rule, methodologies.md section 1, until a methodology
  says otherwise]: never fill silently; the reference side of a missing interval counts 0
  and the project side counts high: over the missing seconds, the larger of what its meter
  measured across the gap and the project's configured maximum plausible rate (a parameter
  with unit and source, e.g. the motor's rated input power, so the fill does not depend on
  how the computation is cut into windows); filled seconds are reported.
"""

from __future__ import annotations

import numpy as np

from .parameters import Param
from .registry import Column, Formula

KWH_PER_MWH = 1000.0
FILL_METHOD = (
    "conservative: over missing time the reference side counts 0 and the project side the larger of its meter's "
    "increment across the gap and the configured maximum plausible rate x the missing time (methodologies.md s.1)"
)


def fill_power_param(what: str = "project equipment") -> Param:
    """The maximum plausible power drawn by the project side over a gap (no default: each project states it)."""
    return Param(None, "kW", f"none shipped: the rated input power of the {what}, the most the project side can draw over a gap", "A",
                 "P_fill", "Maximum plausible project power charged over missing time", (0.0, None))


#: The JCM frame every electricity methodology shares (``methodologies.md`` s.1-2).
ELECTRICITY_FORMULAS = (
    Formula("RE_i", "RE_i = E_RE,i / 1000 x EF_grid", "Reference emissions of interval i [tCO2]; E in kWh, EF in tCO2/MWh", "published"),
    Formula("PE_i", "PE_i = E_PJ,i / 1000 x EF_grid", "Project emissions of interval i [tCO2]", "published"),
)
PERIOD_FORMULAS = (
    Formula("ER_i", "ER_i = RE_i - PE_i", "Emission reductions of interval i [tCO2], negative intervals included", "published"),
    Formula("ER_p", "ER_p = max(0, floor(sum_i ER_i))", "Reported reductions of period p (JCM, J-Credit): full precision in every interval, "
            "rounded down to whole tonnes only at the period total, never below 0", "published"),
)
FILL_FORMULA = Formula(
    "E_PJ,i", "E_PJ,i = EC_PJ,i,covered + max(gap_s,i / 3600 x P_fill, EC_PJ,i,gap)",
    "Project energy: consumption over covered time plus, over missing time, the larger of the meter's increment across the gap "
    "and the maximum plausible power [kWh]", "form",
)


#: The workbook's columns of the same frame: emissions of the reference and project energies, ER.
ELECTRICITY_COLUMNS = (
    Column("E_saved", "E_saved,i", "kWh", "Energy saved", "{E_RE} - {E_PJ}", "energy_saved_kwh"),
    Column("RE", "RE_i", "tCO2", "Reference emissions", "{E_RE} / {kWh_per_MWh} * {EF_grid}", "reference_t_co2"),
    Column("PE", "PE_i", "tCO2", "Project emissions", "{E_PJ} / {kWh_per_MWh} * {EF_grid}", "project_t_co2"),
    Column("ER", "ER_i", "tCO2", "Emission reductions", "{RE} - {PE}", "reduction_t_co2"),
)


def emissions_t_co2(energy_kwh, ef_t_co2_per_mwh):
    """Emissions of electricity: ``E [MWh] x EF``.

    Parameters
    ----------
    energy_kwh : numeric  Electricity per interval [kWh]
    ef_t_co2_per_mwh : numeric  Emission factor [tCO2/MWh]

    Returns
    -------
    numeric  [tCO2]
    """
    return np.asarray(energy_kwh, dtype=float) / KWH_PER_MWH * np.asarray(ef_t_co2_per_mwh, dtype=float)


def emission_reductions_t_co2(reference_t_co2, project_t_co2):
    """``ER = RE - PE`` per interval [tCO2], at full precision (not floored: flooring to zero
    or to whole tonnes applies to the reported period total, see :mod:`.reporting`)."""
    return np.asarray(reference_t_co2, dtype=float) - np.asarray(project_t_co2, dtype=float)
