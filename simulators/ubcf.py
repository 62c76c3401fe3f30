"""U-BCF (up-flow biological contact filtration) drinking-water pre-treatment plant.

Measurement ``ubcf`` (docs/data-model.md). Raw water is pumped up through a biologically
active filter bed with aeration; nitrifying biofilm removes ammonium, the bed retains
turbidity; filters are backwashed on a fixed daily schedule. Equations:

- flow: design flow x (1 + a x daily demand shape + slow noise), m3/h
- water temperature: seasonal (+ small diurnal) cosine, degC
- NH4 removal ``r = clip(r20 theta^(T - 20), r_min, r_max)`` (Arrhenius-type temperature
  dependence of nitrification); ``nh4_out = nh4_in (1 - r)``
- turbidity removal falls linearly through a filter run and recovers after backwash
- pump power ``rho g Q H / eta_pump`` plus the backwash pump during backwash; blower power
  scales with flow (aeration air per m3) plus air scour during backwash
- chlorine dose ``c0 + 7.6 x nh4_out`` mg/L (breakpoint chlorination, 7.6 mg Cl2 per mg
  NH4-N), coagulant dose ``a0 + a1 x treated turbidity`` mg/L; kg/h = mg/L x m3/h / 1000

References
----------
.. [1] methodologies.md, "U-BCF": Vinh Bao plant (Hai Phong) 5,000 m3/d; U-BCF removes 60-90%
   of ammonium-N and dissolved manganese and 30-40% of organics.
.. [2] White, G. C.: Handbook of Chlorination, 5th ed., Wiley 2010 (breakpoint ratio 7.6:1).
.. [3] Metcalf & Eddy: Wastewater Engineering, 5th ed., 2014 (nitrification theta ~1.04-1.07).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import assemble, hydraulic_power_kw
from .meters import MeterParams
from .pump import demand_shape
from .signals import NS_PER_S, local_hour, seasonal, value_noise, white_noise

MEASUREMENT = "ubcf"

FIELDS = {
    "flow_m3_per_h": ("m3/h", "Raw-water flow into the U-BCF"),
    "volume_m3": ("m3", "Raw-water flow meter register"),
    "raw_turbidity_ntu": ("NTU", "Raw-water turbidity"),
    "treated_turbidity_ntu": ("NTU", "Turbidity after U-BCF"),
    "nh4_in_mg_per_l": ("mg/L", "Ammonium-N in raw water"),
    "nh4_out_mg_per_l": ("mg/L", "Ammonium-N after U-BCF"),
    "water_temp_c": ("degC", "Raw-water temperature"),
    "pump_power_kw": ("kW", "Raw-water and backwash pump power"),
    "blower_power_kw": ("kW", "Aeration / air-scour blower power"),
    "pump_energy_kwh": ("kWh", "Pump electricity meter register"),
    "blower_energy_kwh": ("kWh", "Blower electricity meter register"),
    "backwash": ("1", "1 while a filter is backwashed"),
    "chlorine_kg_per_h": ("kg/h", "Chlorine dosing rate"),
    "coagulant_kg_per_h": ("kg/h", "Coagulant (PAC) dosing rate"),
}
METERS = {"volume_m3": "flow_m3_per_h", "pump_energy_kwh": "pump_power_kw", "blower_energy_kwh": "blower_power_kw"}


@dataclass(frozen=True)
class UbcfParams:
    """Vinh Bao-like U-BCF. Design flow published [1]; removal range [1]; doses per [2]."""

    design_flow_m3_per_d: float = 5000.0  # [1]
    flow_diurnal_amp: float = 0.25
    flow_noise_ratio: float = 0.04
    water_temp_mean_c: float = 25.0  # Red River delta raw water
    water_temp_amp_c: float = 5.5
    water_temp_peak_doy: float = 196.0  # mid July
    raw_turbidity_ntu: float = 30.0
    raw_turbidity_rainy_factor: float = 0.6  # +60% at the rainy-season peak
    nh4_in_mg_per_l: float = 2.5
    nh4_removal_at_20c: float = 0.70
    nh4_theta: float = 1.035  # [3]
    nh4_removal_min: float = 0.60  # [1]
    nh4_removal_max: float = 0.90  # [1]
    turbidity_removal_clean: float = 0.65
    turbidity_removal_loss: float = 0.15  # lost by the end of a filter run
    pump_head_m: float = 12.0
    pump_eta: float = 0.68  # wire-to-water
    backwash_pump_kw: float = 18.0
    blower_kw_per_m3_per_h: float = 0.025  # aeration air ~ 1 Nm3 per m3 water
    air_scour_kw: float = 15.0
    backwash_hours_local: tuple = (3.0, 15.0)  # one filter cell each, local time
    backwash_duration_s: float = 1200.0
    chlorine_base_mg_per_l: float = 1.0
    chlorine_per_nh4: float = 7.6  # [2]
    coagulant_base_mg_per_l: float = 8.0
    coagulant_per_ntu: float = 0.4
    utc_offset_h: float = 7.0
    meter: MeterParams = field(default_factory=MeterParams)
    source: str = "methodologies.md U-BCF (Vinh Bao 5,000 m3/d, 60-90% NH4 removal); White 2010; Metcalf & Eddy 2014"


def nh4_removal(water_temp_c, p: UbcfParams):
    """Fraction of ammonium-N removed at a water temperature [ratio]."""
    return np.clip(p.nh4_removal_at_20c * p.nh4_theta ** (np.asarray(water_temp_c) - 20.0), p.nh4_removal_min, p.nh4_removal_max)


def _hours_since_backwash(hour: np.ndarray, p: UbcfParams) -> tuple[np.ndarray, np.ndarray]:
    times = np.sort(np.asarray(p.backwash_hours_local, dtype=np.float64))
    dur_h = p.backwash_duration_s / 3600.0
    since = np.full(hour.shape, 24.0)
    washing = np.zeros(hour.shape, dtype=bool)
    for t in times:  # a handful of scheduled slots, not samples
        d = np.mod(hour - t, 24.0)
        washing |= d < dur_h
        since = np.minimum(since, d)
    return since, washing


def instant(ts_ns: np.ndarray, key: int, p: UbcfParams) -> dict[str, np.ndarray]:
    hour = local_hour(ts_ns, p.utc_offset_h)
    q = (p.design_flow_m3_per_d / 24.0) * (
        1.0
        + p.flow_diurnal_amp * demand_shape(hour)
        + p.flow_noise_ratio * value_noise(ts_ns, key, 1, 1800.0)
    )
    q = np.maximum(q, 0.0)
    temp = (
        p.water_temp_mean_c
        + p.water_temp_amp_c * seasonal(ts_ns, p.water_temp_peak_doy)
        + 0.4 * np.cos(2 * np.pi * (hour - 15.0) / 24.0)
        + 0.3 * value_noise(ts_ns, key, 2, 6 * 3600.0)
        + 0.02 * white_noise(ts_ns, key, 3)
    )
    rainy = np.clip(seasonal(ts_ns, 227.0), 0.0, 1.0)  # rainy season peaks mid August
    raw_turb = p.raw_turbidity_ntu * (1.0 + p.raw_turbidity_rainy_factor * rainy) * np.exp(
        0.35 * value_noise(ts_ns, key, 4, 8 * 3600.0) + 0.05 * value_noise(ts_ns, key, 5, 600.0)
    ) * (1.0 + 0.01 * white_noise(ts_ns, key, 6))
    since, washing = _hours_since_backwash(hour, p)
    run_len = 24.0 / max(len(p.backwash_hours_local), 1)
    turb_removal = p.turbidity_removal_clean - p.turbidity_removal_loss * np.clip(since / run_len, 0.0, 1.0)
    treated_turb = raw_turb * (1.0 - turb_removal)
    nh4_in = np.maximum(
        p.nh4_in_mg_per_l * (1.0 - 0.3 * seasonal(ts_ns, 200.0)) * np.exp(0.2 * value_noise(ts_ns, key, 7, 12 * 3600.0))
        * (1.0 + 0.01 * white_noise(ts_ns, key, 8)),
        0.0,
    )
    nh4_out = nh4_in * (1.0 - nh4_removal(temp, p))
    pump_kw = hydraulic_power_kw(q, p.pump_head_m) / p.pump_eta + np.where(washing, p.backwash_pump_kw, 0.0)
    blower_kw = p.blower_kw_per_m3_per_h * q * (1.0 + 0.003 * (temp - 20.0)) + np.where(washing, p.air_scour_kw, 0.0)
    chlorine = (p.chlorine_base_mg_per_l + p.chlorine_per_nh4 * nh4_out) * q / 1000.0
    coagulant = (p.coagulant_base_mg_per_l + p.coagulant_per_ntu * treated_turb) * q / 1000.0
    return {
        "flow_m3_per_h": q,
        "raw_turbidity_ntu": raw_turb,
        "treated_turbidity_ntu": treated_turb,
        "nh4_in_mg_per_l": nh4_in,
        "nh4_out_mg_per_l": nh4_out,
        "water_temp_c": temp,
        "pump_power_kw": pump_kw,
        "blower_power_kw": blower_kw,
        "backwash": washing.astype(np.float64),
        "chlorine_kg_per_h": chlorine,
        "coagulant_kg_per_h": coagulant,
    }


def meter_rates(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "volume_m3": f["flow_m3_per_h"],
        "pump_energy_kwh": f["pump_power_kw"],
        "blower_energy_kwh": f["blower_power_kw"],
        # not registers, integrated for ground truth (kg of chemicals)
        "chlorine_kg": f["chlorine_kg_per_h"],
        "coagulant_kg": f["coagulant_kg_per_h"],
    }


def model(ts_ns: np.ndarray, rng, params: UbcfParams | None = None) -> dict[str, np.ndarray]:
    """U-BCF plant fields at each timestamp (equations in the module docstring).

    Parameters
    ----------
    ts_ns : array  Unix timestamps [ns]
    rng : np.random.Generator or int  Seeded generator or seed
    params : UbcfParams

    Returns
    -------
    dict  Field name -> float64 array, as in :data:`FIELDS`.
    """
    return assemble(MEASUREMENT, FIELDS, METERS, instant, meter_rates, ts_ns, rng, params or UbcfParams())
