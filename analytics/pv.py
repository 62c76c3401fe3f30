"""Grid-connected solar PV: reference emissions of the displaced grid electricity.

- ``RE_p = sum_i EG_i,p x EF_RE``; ``PE_p = 0``; ``ER_p = RE_p`` [published, JCM VN_AM007,
  TH_AM001, KH_AM002, MN_AM003 and others]. EG = AC output or export meter [MWh].
- KH_AM002 variant [published structure]: the emission factor by day category, the grid EF on
  days with grid supply and the diesel EF on outage days (:func:`day_category_ef`). The diesel
  EF shipped is a placeholder with its source; the project sets its own.
- The grid EF is the combined margin with solar weights 0.75/0.25 where OM/BM are published
  [published, CDM TOOL07], see :mod:`.emission_factors`.

EG from the export meter (option B) or inverter output (option C). Missing data: generation
of a missing interval counts 0 (reference low); PE stays 0.

References
----------
.. [1] JCM VN_AM007, TH_AM001, KH_AM002, MN_AM003 ("Installation of Solar PV System" family).
.. [2] plantmrv, ``shared/docs/methodologies.md`` section 3, "Solar PV".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .baselines import generation
from .common import emission_reductions_t_co2, emissions_t_co2
from .parameters import Param


@dataclass(frozen=True)
class PVParameters:
    ef_diesel_t_co2_per_mwh: Param = field(default_factory=lambda: Param(0.8, "tCO2/MWh", "placeholder: CDM AMS-I.F diesel mini-grid default as recalled; KH_AM002 projects set the methodology's value", "A", "EF_diesel", "Emission factor of diesel generation on outage days (KH_AM002)"))


def day_category_ef(grid_available, ef_grid_t_co2_per_mwh, ef_diesel_t_co2_per_mwh):
    """KH_AM002: EF per interval by day category [tCO2/MWh].

    Parameters
    ----------
    grid_available : array of bool  True on days (intervals) with grid supply
    ef_grid_t_co2_per_mwh, ef_diesel_t_co2_per_mwh : float
    """
    return np.where(np.asarray(grid_available, dtype=bool), ef_grid_t_co2_per_mwh, ef_diesel_t_co2_per_mwh)


def reference_emissions_t_co2(generation_kwh, ef_t_co2_per_mwh):
    """RE_p = EG_p x EF_RE [tCO2]; ``ef`` may be an array (KH_AM002 day categories)."""
    return emissions_t_co2(generation(generation_kwh), ef_t_co2_per_mwh)


def project_emissions_t_co2(generation_kwh):
    """PE_p = 0 [tCO2] (same shape as the generation)."""
    return np.zeros_like(np.asarray(generation_kwh, dtype=float))


def emission_reductions(reference_t_co2, project_t_co2=0.0):
    """ER_p = RE_p - PE_p = RE_p [tCO2]."""
    return emission_reductions_t_co2(reference_t_co2, project_t_co2)
