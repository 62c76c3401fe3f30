"""Variable-speed drive (inverter) on a pump, with the throttle-control counterfactual.

Measurement ``vsd`` (docs/data-model.md). Demand sets the flow; the drive runs the pump at the
speed where the pump curve meets the system curve, and the counterfactual runs the same pump at
full speed with a throttle valve taking up the difference:

- pump at speed ratio s (affinity laws): ``H_p(Q, s) = s^2 H0 - k_p Q^2``,
  ``eta_p(Q, s) = eta_p(Q/s, 1)``, so ``P_shaft(Q, s) = s^3 P_shaft(Q/s, 1)``
- system curve with static head: ``H_sys(Q) = H_st + k_sys Q^2``
- VSD speed for flow Q: ``s = sqrt((H_st + (k_sys + k_p) Q^2) / H0)``; head = H_sys(Q)
- ``P_el = rho g Q H_sys / (eta_p eta_motor eta_vsd)``
- throttle: ``s = 1``, head = H_p(Q, 1) (the valve burns ``H_p - H_sys``),
  ``P_throttle = rho g Q H_p(Q, 1) / (eta_p(Q, 1) eta_motor)``
- ``frequency_hz = s f_rated``, ``speed_pct = 100 s``

References
----------
.. [1] methodologies.md, "Inverters / variable-speed drives": Thu Duc Water intake pumps,
   1,280 MWh/yr saved ex ante; baseline = constant pre-retrofit (throttled) power x hours.
.. [2] Europump & Hydraulic Institute: Variable Speed Pumping, a guide to successful
   applications, Elsevier 2004 (affinity laws with static head).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import assemble, hydraulic_power_kw
from .meters import MeterParams
from .pump import demand_shape
from .signals import daily_event, local_hour, value_noise

MEASUREMENT = "vsd"

FIELDS = {
    "speed_pct": ("%", "Pump speed, percent of rated"),
    "frequency_hz": ("Hz", "Drive output frequency"),
    "flow_m3_per_h": ("m3/h", "Pump discharge flow"),
    "power_kw": ("kW", "Electrical input power of the drive"),
    "energy_kwh": ("kWh", "Electricity meter register of the drive"),
    "throttle_power_kw": ("kW", "Counterfactual: power of the same pump at full speed, throttled to the same flow"),
    "running": ("1", "1 when the pump runs, 0 when stopped"),
    "run_time_h": ("h", "Run-hours counter of the drive (register)"),
}
METERS = {"energy_kwh": "power_kw", "run_time_h": "running"}


@dataclass(frozen=True)
class VsdParams:
    """Intake pump on an inverter. Defaults sized so the saving is of the order of the
    published Thu Duc ex-ante 1,280 MWh/yr [1]; curve shapes per [2]."""

    q_bep_m3_per_h: float = 7200.0
    h_bep_m: float = 30.0
    h_shutoff_m: float = 36.0
    h_static_m: float = 12.0
    eta_pump_bep: float = 0.85
    eta_motor: float = 0.95
    eta_vsd: float = 0.97  # IEC 61800-9-2 IE2 drive at high load
    f_rated_hz: float = 50.0
    demand_mean_ratio: float = 0.80
    demand_diurnal_amp: float = 0.15
    demand_noise_ratio: float = 0.05
    q_min_ratio: float = 0.35
    q_max_ratio: float = 1.0
    stop_prob_per_day: float = 0.03
    stop_duration_s: float = 3 * 3600.0
    utc_offset_h: float = 7.0
    meter: MeterParams = field(default_factory=MeterParams)
    source: str = "methodologies.md VSD section (Thu Duc ex-ante saving); affinity laws per Europump/HI 2004"

    @property
    def k_pump(self) -> float:
        return (self.h_shutoff_m - self.h_bep_m) / self.q_bep_m3_per_h**2

    @property
    def k_system(self) -> float:
        return (self.h_bep_m - self.h_static_m) / self.q_bep_m3_per_h**2


def pump_head_m(flow_m3_per_h, speed_ratio, p: VsdParams):
    """Pump curve at speed ratio s: ``s^2 H0 - k_p Q^2`` [m]."""
    q = np.asarray(flow_m3_per_h)
    return np.asarray(speed_ratio) ** 2 * p.h_shutoff_m - p.k_pump * q * q


def pump_efficiency(flow_m3_per_h, speed_ratio, p: VsdParams):
    """Pump efficiency at speed ratio s, ``eta_bep (2 q' - q'^2)`` with ``q' = Q / (s Q_bep)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        qe = np.asarray(flow_m3_per_h) / (np.asarray(speed_ratio) * p.q_bep_m3_per_h)
    qe = np.nan_to_num(qe)
    return np.maximum(p.eta_pump_bep * (2 * qe - qe * qe), 0.05)


def shaft_power_kw(flow_m3_per_h, speed_ratio, p: VsdParams):
    """Shaft power on the pump curve at (Q, s): ``rho g Q H_p(Q, s) / eta_p(Q, s)`` [kW]."""
    return hydraulic_power_kw(flow_m3_per_h, pump_head_m(flow_m3_per_h, speed_ratio, p)) / pump_efficiency(
        flow_m3_per_h, speed_ratio, p
    )


def speed_for_flow(flow_m3_per_h, p: VsdParams):
    """Speed ratio where pump and system curves cross at flow Q."""
    q = np.asarray(flow_m3_per_h)
    return np.sqrt((p.h_static_m + (p.k_system + p.k_pump) * q * q) / p.h_shutoff_m)


def instant(ts_ns: np.ndarray, key: int, p: VsdParams) -> dict[str, np.ndarray]:
    hour = local_hour(ts_ns, p.utc_offset_h)
    q_ratio = (
        p.demand_mean_ratio
        + p.demand_diurnal_amp * demand_shape(hour)
        + p.demand_noise_ratio * value_noise(ts_ns, key, 1, 2400.0)
        + 0.2 * p.demand_noise_ratio * value_noise(ts_ns, key, 2, 180.0)
    )
    running = ~daily_event(ts_ns, key, 3, p.stop_prob_per_day, p.stop_duration_s, p.utc_offset_h)
    q = np.where(running, np.clip(q_ratio, p.q_min_ratio, p.q_max_ratio) * p.q_bep_m3_per_h, 0.0)
    s = np.where(running, speed_for_flow(q, p), 0.0)
    h_sys = p.h_static_m + p.k_system * q * q
    eta_p = pump_efficiency(q, np.where(running, s, 1.0), p)
    p_el = np.where(running, hydraulic_power_kw(q, h_sys) / (eta_p * p.eta_motor * p.eta_vsd), 0.0)
    h_thr = pump_head_m(q, 1.0, p)
    p_thr = np.where(running, hydraulic_power_kw(q, h_thr) / (pump_efficiency(q, 1.0, p) * p.eta_motor), 0.0)
    return {
        "speed_pct": 100.0 * s,
        "frequency_hz": p.f_rated_hz * s,
        "flow_m3_per_h": q,
        "power_kw": p_el,
        "throttle_power_kw": p_thr,
        "running": running.astype(np.float64),
    }


def meter_rates(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "energy_kwh": f["power_kw"],
        # integrated for ground truth only
        "throttle_energy_kwh": f["throttle_power_kw"],
        "run_time_h": f["running"],
        "volume_m3": f["flow_m3_per_h"],
    }


def model(ts_ns: np.ndarray, rng, params: VsdParams | None = None) -> dict[str, np.ndarray]:
    """VSD-driven pump fields at each timestamp (see module docstring for the equations).

    Parameters
    ----------
    ts_ns : array  Unix timestamps [ns]
    rng : np.random.Generator or int  Seeded generator or seed
    params : VsdParams

    Returns
    -------
    dict  Field name -> float64 array, as in :data:`FIELDS`.
    """
    return assemble(MEASUREMENT, FIELDS, METERS, instant, meter_rates, ts_ns, rng, params or VsdParams())
