"""The five baseline (reference) models of plantmrv, selectable per project by name.

| model | reference in interval | tag |
|---|---|---|
| ``efficiency_ratio`` | ``EC_PJ x (eta_PJ / eta_RE)`` | [published pattern, JCM energy-efficiency family] |
| ``specific_energy`` | ``SEC_BL x V_PJ`` | [form, J-Credit EN-S-020] |
| ``constant_power_hours`` | ``P_BL x t_PJ`` | [form, Kitakyushu K-MRV001 / J-Credit 005] |
| ``generation`` | ``EG`` (PE = 0) | [published, JCM "Installation of Solar PV System" family] |
| ``fod_methane`` | first-order-decay methane avoided | [published equation, CDM TOOL04] |

The first four return reference *energy* [kWh] per interval, to be multiplied by the grid
emission factor; ``fod_methane`` returns avoided methane as tCO2e directly. One plant type can
need different models (a pump project whose head changed needs ``specific_energy``), so a
project names its model in config and :func:`get` finds it.

References
----------
.. [1] plantmrv, ``shared/docs/methodologies.md`` section 2.
.. [2] UNFCCC CDM, "Emissions from solid waste disposal sites" (TOOL04).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

GWP_UNITS = 16.0 / 12.0  # C -> CH4 molecular mass ratio [published, TOOL04]


def efficiency_ratio(project_energy_kwh, eta_project, eta_reference):
    """Reference energy of equipment replaced by a more efficient one at the same duty.

    ``E_RE = EC_PJ x (eta_PJ / eta_RE)``

    Parameters
    ----------
    project_energy_kwh : numeric  Electricity used by the project equipment per interval [kWh]
    eta_project : numeric  Efficiency of the project equipment (pump wire-to-water, COP, lm/W) [-]
    eta_reference : numeric  Conservative reference efficiency, fixed ex ante [-]

    Returns
    -------
    numeric  Reference energy per interval [kWh]; NaN where eta_reference <= 0.
    """
    e = np.asarray(project_energy_kwh, dtype=float)
    eta_re = np.asarray(eta_reference, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(eta_re > 0, e * (np.asarray(eta_project, dtype=float) / np.where(eta_re > 0, eta_re, 1.0)), np.nan)


def specific_energy(volume_m3, sec_baseline_kwh_per_m3):
    """Reference energy from the baseline specific energy consumption.

    ``E_RE = SEC_BL x V_PJ``

    Parameters
    ----------
    volume_m3 : numeric  Volume delivered or treated per interval [m3]
    sec_baseline_kwh_per_m3 : numeric  Baseline kWh per m3 from at least one pre-project year [kWh/m3]

    Returns
    -------
    numeric  Reference energy per interval [kWh]
    """
    return np.asarray(volume_m3, dtype=float) * np.asarray(sec_baseline_kwh_per_m3, dtype=float)


def sec_from_history(energy_kwh, volume_m3):
    """Baseline specific energy from a pre-project history: ``sum E / sum V`` [kWh/m3]."""
    v = float(np.nansum(volume_m3))
    if v <= 0:
        raise ValueError("baseline volume is zero: SEC_BL undefined")
    return float(np.nansum(energy_kwh)) / v


def constant_power_hours(operating_h, baseline_power_kw):
    """Reference energy of a drive before retrofit at constant power.

    ``E_BL = P_BL x t_PJ``

    Parameters
    ----------
    operating_h : numeric  Monitored operating hours of the project equipment per interval [h]
    baseline_power_kw : numeric  Measured pre-retrofit power [kW]

    Returns
    -------
    numeric  Reference energy per interval [kWh]
    """
    return np.asarray(operating_h, dtype=float) * np.asarray(baseline_power_kw, dtype=float)


def generation(generation_kwh):
    """Reference energy displaced by generation: ``E_RE = EG`` (project emissions 0).

    Parameters
    ----------
    generation_kwh : numeric  Electricity supplied to the grid per interval [kWh]

    Returns
    -------
    numeric  Reference (displaced grid) energy per interval [kWh]. A negative interval (the
    plant drew more than it supplied, e.g. inverters' standby at night on a net meter) is kept:
    the methodology nets over the period, never per interval.
    """
    return np.asarray(generation_kwh, dtype=float)


def fod_methane(
    waste_t,
    doc_fraction,
    k_per_year,
    years_since_deposit=0,
    phi=0.85,
    f=0.0,
    gwp_ch4=25.0,
    ox=0.0,
    F=0.5,
    doc_f=0.5,
    mcf=1.0,
):
    """Methane avoided from landfill by first-order decay, CDM TOOL04, as tCO2e.

    ``BE_CH4,y = phi (1-f) GWP_CH4 (1-OX) 16/12 F DOC_f MCF sum_x sum_j W_j,x DOC_j
    exp(-k_j (y-x)) (1 - exp(-k_j))``

    Parameters
    ----------
    waste_t : array (..., j)  Waste of each type j diverted from the landfill [t]; leading
        axes (intervals or deposit years x) broadcast with ``years_since_deposit``
    doc_fraction : array (j,)  Degradable organic carbon of type j, wet basis [-]
    k_per_year : array (j,)  Decay rate of type j [1/yr]
    years_since_deposit : numeric  y - x: 0 for the year the waste is diverted [yr]
    phi, f, gwp_ch4, ox, F, doc_f, mcf : float  Model correction factor, fraction of methane
        captured and flared, GWP of CH4 [tCO2e/tCH4], oxidation, CH4 fraction of landfill gas,
        fraction of DOC decomposing, methane correction factor [-]. The defaults here are only
        placeholders for direct calls; projects take them from a parameter set with sources
        (see :class:`plantmrv.analytics.wte.WtEParameters`).

    Returns
    -------
    ndarray (...)  Avoided methane per leading index, summed over j [tCO2e]

    Notes
    -----
    Summing the result over deposit years x gives BE_CH4,y. Every factor is linear in W, so
    the sum over intervals of a year equals the value for the year's total [derived].
    """
    w = np.asarray(waste_t, dtype=float)
    doc = np.asarray(doc_fraction, dtype=float)
    k = np.asarray(k_per_year, dtype=float)
    age = np.asarray(years_since_deposit, dtype=float)[..., None]
    decay = np.exp(-k * age) * (1.0 - np.exp(-k))
    factor = phi * (1.0 - f) * gwp_ch4 * (1.0 - ox) * GWP_UNITS * F * doc_f * mcf
    return factor * np.sum(w * doc * decay, axis=-1)


@dataclass(frozen=True)
class BaselineModel:
    name: str
    function: Callable
    inputs: tuple[str, ...]
    output: str
    source: str


REGISTRY: dict[str, BaselineModel] = {
    m.name: m
    for m in (
        BaselineModel("efficiency_ratio", efficiency_ratio, ("project_energy_kwh", "eta_project", "eta_reference"), "reference_energy_kwh", "JCM energy-efficiency family [published pattern]"),
        BaselineModel("specific_energy", specific_energy, ("volume_m3", "sec_baseline_kwh_per_m3"), "reference_energy_kwh", "J-Credit EN-S-020 [form]"),
        BaselineModel("constant_power_hours", constant_power_hours, ("operating_h", "baseline_power_kw"), "reference_energy_kwh", "Kitakyushu K-MRV001 / J-Credit 005 [form]"),
        BaselineModel("generation", generation, ("generation_kwh",), "reference_energy_kwh", "JCM Installation of Solar PV System family [published]"),
        BaselineModel("fod_methane", fod_methane, ("waste_t", "doc_fraction", "k_per_year"), "reference_t_co2e", "CDM TOOL04 [published equation]"),
    )
}


def get(name: str, where: str = "baseline") -> BaselineModel:
    """The baseline model called ``name``; ``ValueError`` naming ``where`` and the choices."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"{where}: unknown baseline model {name!r}; choose one of {', '.join(REGISTRY)}") from None
