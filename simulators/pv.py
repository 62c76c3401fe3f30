"""Solar PV plant with inverters: clear-sky irradiance with clouds, module temperature,
DC power, AC power with inverter efficiency and clipping, export meter.

Measurement ``pv`` (docs/data-model.md). Equations:

- solar geometry: declination ``23.45 sin(2 pi (284 + n) / 365)`` deg, hour angle from local
  solar time (longitude, equation of time), ``cos Z = sin(lat) sin(dec) + cos(lat) cos(dec) cos(h)``
- clear-sky GHI (Haurwitz): ``1098 cos Z exp(-0.057 / cos Z)`` W/m2
- clouds: clear fraction from slow + fast smooth noise, more clouds in the rainy season;
  ``G = GHI_cs (0.2 + 0.8 f)``
- module temperature (NOCT model): ``T_amb + G (NOCT - 20) / 800``
- DC: ``P_dc0 G / 1000 (1 + gamma (T_mod - 25)) (1 - losses)``
- AC (PVWatts inverter, as ``pvlib.inverter.pvwatts``):
  ``eta = eta_nom / eta_ref (-0.0162 z - 0.0059 / z + 0.9858)``, ``z = P_dc / P_dc0,inv``,
  ``P_ac = min(eta P_dc, P_ac0)`` (clipping), 0 at night
- export meter integrates ``P_ac``

References
----------
.. [1] Haurwitz, B.: Insolation in relation to cloud type, J. Meteorology 3, 1946.
.. [2] Dobos, A. P.: PVWatts Version 5 Manual, NREL/TP-6A20-62641, 2014.
.. [3] Holmgren et al.: pvlib python, JOSS 3(29), 884, 2018 (``pvlib.inverter.pvwatts``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import assemble
from .meters import MeterParams
from .signals import day_of_year, local_hour, seasonal, value_noise

MEASUREMENT = "pv"

FIELDS = {
    "irradiance_w_per_m2": ("W/m2", "Global irradiance in the array plane"),
    "module_temp_c": ("degC", "Module back-surface temperature"),
    "dc_power_kw": ("kW", "DC power into the inverters"),
    "ac_power_kw": ("kW", "AC power out of the inverters"),
    "export_energy_kwh": ("kWh", "Export meter register"),
}
METERS = {"export_energy_kwh": "ac_power_kw"}


@dataclass(frozen=True)
class PvParams:
    """Binh Duong plant, DC/AC ratio 1.35 (common in Viet Nam) so clear noons clip."""

    latitude_deg: float = 11.0
    longitude_deg: float = 106.65
    utc_offset_h: float = 7.0
    pdc0_kw: float = 1150.0
    pac0_kw: float = 850.0
    eta_inv_nom: float = 0.96  # [2]
    eta_inv_ref: float = 0.9637  # [2]
    gamma_pdc_per_c: float = -0.0037  # crystalline Si
    noct_c: float = 45.0
    dc_losses: float = 0.03
    t_amb_mean_c: float = 28.0
    t_amb_diurnal_amp_c: float = 3.5
    clear_fraction_mean: float = 0.65
    rainy_cloud_extra: float = 0.25
    rainy_peak_doy: float = 227.0
    meter: MeterParams = field(default_factory=MeterParams)
    source: str = "Haurwitz 1946 clear sky; PVWatts v5 (Dobos 2014) inverter; pvlib"


def clear_sky_ghi_w_per_m2(ts_ns: np.ndarray, p: PvParams) -> np.ndarray:
    """Haurwitz clear-sky GHI at the site [W/m2] [1]."""
    n = day_of_year(ts_ns) + 1.0
    dec = np.deg2rad(23.45) * np.sin(2 * np.pi * (284.0 + n) / 365.0)
    b = 2 * np.pi * (n - 81.0) / 364.0
    eot_min = 9.87 * np.sin(2 * b) - 7.53 * np.cos(b) - 1.5 * np.sin(b)
    utc_h = local_hour(ts_ns, 0.0)
    solar_h = utc_h + p.longitude_deg / 15.0 + eot_min / 60.0
    omega = np.deg2rad(15.0 * (solar_h - 12.0))
    lat = np.deg2rad(p.latitude_deg)
    cosz = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(omega)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ghi = np.where(cosz > 0.01, 1098.0 * cosz * np.exp(-0.057 / np.maximum(cosz, 0.01)), 0.0)
    return ghi


def pvwatts_ac_kw(pdc_kw, p: PvParams):
    """PVWatts inverter model with clipping [kW] [2][3]; 0 for non-positive DC."""
    pdc = np.asarray(pdc_kw, dtype=np.float64)
    pdc0_inv = p.pac0_kw / p.eta_inv_nom
    z = np.maximum(pdc / pdc0_inv, 1e-6)
    eta = p.eta_inv_nom / p.eta_inv_ref * (-0.0162 * z - 0.0059 / z + 0.9858)
    return np.where(pdc > 0, np.clip(eta * pdc, 0.0, p.pac0_kw), 0.0)


def instant(ts_ns: np.ndarray, key: int, p: PvParams) -> dict[str, np.ndarray]:
    ghi_cs = clear_sky_ghi_w_per_m2(ts_ns, p)
    rainy = np.clip(seasonal(ts_ns, p.rainy_peak_doy), 0.0, 1.0)
    clear = np.clip(
        p.clear_fraction_mean - p.rainy_cloud_extra * rainy
        + 0.35 * value_noise(ts_ns, key, 1, 3 * 3600.0)
        + 0.25 * value_noise(ts_ns, key, 2, 900.0),
        0.0,
        1.0,
    )
    g = ghi_cs * (0.2 + 0.8 * clear)
    hour = local_hour(ts_ns, p.utc_offset_h)
    t_amb = p.t_amb_mean_c + p.t_amb_diurnal_amp_c * np.cos(2 * np.pi * (hour - 14.5) / 24.0)
    t_mod = t_amb + g * (p.noct_c - 20.0) / 800.0
    pdc = np.maximum(p.pdc0_kw * g / 1000.0 * (1.0 + p.gamma_pdc_per_c * (t_mod - 25.0)) * (1.0 - p.dc_losses), 0.0)
    pac = pvwatts_ac_kw(pdc, p)
    return {"irradiance_w_per_m2": g, "module_temp_c": t_mod, "dc_power_kw": pdc, "ac_power_kw": pac}


def meter_rates(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"export_energy_kwh": f["ac_power_kw"], "dc_energy_kwh": f["dc_power_kw"]}


def model(ts_ns: np.ndarray, rng, params: PvParams | None = None) -> dict[str, np.ndarray]:
    """PV plant fields at each timestamp (equations in the module docstring).

    Parameters
    ----------
    ts_ns : array  Unix timestamps [ns]
    rng : np.random.Generator or int  Seeded generator or seed
    params : PvParams

    Returns
    -------
    dict  Field name -> float64 array, as in :data:`FIELDS`.
    """
    return assemble(MEASUREMENT, FIELDS, METERS, instant, meter_rates, ts_ns, rng, params or PvParams())
