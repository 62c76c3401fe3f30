"""Waste-to-energy plant: waste feed, heating value, steam, generation, auxiliaries, export.

Measurement ``wte`` (docs/data-model.md). Equations:

- incinerating unless in the annual maintenance outage or a hashed trip (6 h)
- feed ``waste_feed_t_per_h`` = nominal x (1 + slow noise) while incinerating, else 0
- moisture ``w`` seasonal (monsoon peak), ``LHV = LHV_dry (1 - w) - 2.44 w`` MJ/kg
  (2.44 MJ/kg: latent heat of the moisture at 25 degC)
- fossil co-firing (optional): auxiliary fuel ``k (LHV_min - LHV)+ x feed`` kg/h keeps the
  furnace at temperature when the waste is wet
- thermal input ``Q_in = feed x 1000 x LHV / 3.6 + aux_fuel x LHV_fuel / 3.6`` kW
- steam ``= eta_boiler Q_in x 3.6 / dh_steam`` t/h; gross generation
  ``min(steam x specific_generation, rated)`` kW
- auxiliaries ``base + fraction x gross`` kW (idle load when stopped); net export meter
  integrates ``max(gross - aux, 0)`` (imports are metered separately, not simulated)

References
----------
.. [1] methodologies.md, "Waste-to-energy": Yangon 60 t/d, 0.7 MW (2017); ~5,200 MWh/yr.
.. [2] World Bank: Municipal Solid Waste Incineration, Technical Guidance Report, 1999
   (LHV-moisture relation, 6-7 MJ/kg minimum for self-sustaining combustion).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import assemble
from .meters import MeterParams
from .signals import daily_event, day_of_year, seasonal, value_noise

MEASUREMENT = "wte"

FIELDS = {
    "waste_feed_t_per_h": ("t/h", "Waste feed rate into the furnace"),
    "waste_fed_t": ("t", "Weighbridge register of waste fed"),
    "lhv_mj_per_kg": ("MJ/kg", "Lower heating value of the waste as fired"),
    "steam_t_per_h": ("t/h", "Boiler steam production"),
    "gross_power_kw": ("kW", "Gross generator output"),
    "aux_power_kw": ("kW", "Auxiliary (house) consumption"),
    "net_export_energy_kwh": ("kWh", "Net export meter register (export direction)"),
    "incinerating": ("1", "1 while waste is incinerated"),
    "aux_fuel_kg_per_h": ("kg/h", "Fossil auxiliary fuel (diesel) co-firing rate"),
    "aux_fuel_kg": ("kg", "Auxiliary fuel flow totaliser (register)"),
    "import_energy_kwh": ("kWh", "Import meter register: electricity purchased from the grid (aux load above generation)"),
}
METERS = {
    "waste_fed_t": "waste_feed_t_per_h",
    "net_export_energy_kwh": "gross_power_kw - aux_power_kw",
    "aux_fuel_kg": "aux_fuel_kg_per_h",
    "import_energy_kwh": "aux_power_kw - gross_power_kw",
}


@dataclass(frozen=True)
class WteParams:
    """Yangon-like plant: 60 t/d, 0.7 MW [1]; LHV model per [2]."""

    feed_nominal_t_per_h: float = 2.5  # 60 t/d [1]
    feed_noise_ratio: float = 0.06
    lhv_dry_mj_per_kg: float = 16.0  # [2]
    moisture_dry_season: float = 0.40
    moisture_wet_season: float = 0.55
    moisture_peak_doy: float = 227.0  # monsoon peaks in August
    eta_boiler: float = 0.75
    steam_enthalpy_rise_mj_per_kg: float = 2.76  # 105 degC feedwater -> 4 MPa, 400 degC
    specific_generation_kwh_per_t_steam: float = 150.0
    rated_gross_kw: float = 700.0  # [1]
    aux_base_kw: float = 60.0
    aux_fraction: float = 0.10
    aux_idle_kw: float = 25.0
    cofiring: bool = True
    lhv_min_mj_per_kg: float = 6.5  # [2]
    aux_fuel_kg_per_t_per_mj: float = 8.0  # kg fuel per t waste per MJ/kg shortfall
    lhv_fuel_mj_per_kg: float = 42.6  # diesel
    outage_start_doy: float = 100.0
    outage_days: float = 14.0
    trip_prob_per_day: float = 0.02
    trip_duration_s: float = 6 * 3600.0
    utc_offset_h: float = 6.5  # Myanmar
    meter: MeterParams = field(default_factory=MeterParams)
    source: str = "methodologies.md WtE (Yangon 60 t/d, 0.7 MW); World Bank MSW incineration guidance 1999"


def lhv_mj_per_kg(moisture, p: WteParams):
    """As-fired lower heating value from moisture fraction [MJ/kg]."""
    w = np.asarray(moisture)
    return p.lhv_dry_mj_per_kg * (1.0 - w) - 2.44 * w


def instant(ts_ns: np.ndarray, key: int, p: WteParams) -> dict[str, np.ndarray]:
    doy = day_of_year(ts_ns)
    outage = np.mod(doy - p.outage_start_doy, 365.2425) < p.outage_days
    trip = daily_event(ts_ns, key, 1, p.trip_prob_per_day, p.trip_duration_s, p.utc_offset_h)
    on = ~(outage | trip)
    feed = np.where(on, p.feed_nominal_t_per_h * (1.0 + p.feed_noise_ratio * value_noise(ts_ns, key, 2, 900.0)), 0.0)
    feed = np.maximum(feed, 0.0)
    wet = 0.5 + 0.5 * seasonal(ts_ns, p.moisture_peak_doy)
    moisture = np.clip(
        p.moisture_dry_season + (p.moisture_wet_season - p.moisture_dry_season) * wet
        + 0.03 * value_noise(ts_ns, key, 3, 4 * 3600.0),
        0.2,
        0.7,
    )
    lhv = lhv_mj_per_kg(moisture, p)
    if p.cofiring:
        aux_fuel = np.where(on, p.aux_fuel_kg_per_t_per_mj * np.maximum(p.lhv_min_mj_per_kg - lhv, 0.0) * feed, 0.0)
    else:
        aux_fuel = np.zeros_like(feed)
    q_in_kw = feed * 1000.0 * lhv / 3.6 + aux_fuel * p.lhv_fuel_mj_per_kg / 3.6
    steam = np.where(on, p.eta_boiler * q_in_kw * 3.6 / p.steam_enthalpy_rise_mj_per_kg / 1000.0, 0.0)
    gross = np.minimum(steam * p.specific_generation_kwh_per_t_steam, p.rated_gross_kw)
    aux = np.where(on, p.aux_base_kw + p.aux_fraction * gross, p.aux_idle_kw)
    return {
        "waste_feed_t_per_h": feed,
        "lhv_mj_per_kg": lhv,
        "steam_t_per_h": steam,
        "gross_power_kw": gross,
        "aux_power_kw": aux,
        "incinerating": on.astype(np.float64),
        "aux_fuel_kg_per_h": aux_fuel,
    }


def meter_rates(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "waste_fed_t": f["waste_feed_t_per_h"],
        "net_export_energy_kwh": np.maximum(f["gross_power_kw"] - f["aux_power_kw"], 0.0),
        "import_energy_kwh": np.maximum(f["aux_power_kw"] - f["gross_power_kw"], 0.0),
        # integrated for ground truth only
        "gross_energy_kwh": f["gross_power_kw"],
        "aux_energy_kwh": f["aux_power_kw"],
        "aux_fuel_kg": f["aux_fuel_kg_per_h"],
        "incineration_h": f["incinerating"],
    }


def model(ts_ns: np.ndarray, rng, params: WteParams | None = None) -> dict[str, np.ndarray]:
    """Waste-to-energy plant fields at each timestamp (equations in the module docstring).

    Parameters
    ----------
    ts_ns : array  Unix timestamps [ns]
    rng : np.random.Generator or int  Seeded generator or seed
    params : WteParams

    Returns
    -------
    dict  Field name -> float64 array, as in :data:`FIELDS`.
    """
    return assemble(MEASUREMENT, FIELDS, METERS, instant, meter_rates, ts_ns, rng, params or WteParams())
