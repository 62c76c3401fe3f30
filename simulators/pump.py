"""High-efficiency pump station (water supply): pump curve, motor, wire-to-water efficiency.

Measurement ``pump`` (docs/data-model.md). The flow follows the city's daily demand; the head
follows the project pump's H-Q curve at that flow, the pump efficiency its eta-Q curve, the
motor efficiency its part-load curve:

- ``H(Q) = H0 - k Q^2`` with ``H0 = h_shutoff_ratio x H_bep`` and ``k = (H0 - H_bep) / Q_bep^2``
- ``eta_p(Q) = eta_bep (2 q - q^2)``, ``q = Q / Q_bep`` (parabola through 0 with its top at BEP)
- ``P_shaft = rho g Q H / eta_p``; ``eta_m = eta_m,rated (1 - 0.08 (1 - P_shaft/P_rated)^2)``
- ``P_el = P_shaft / eta_m``; wire-to-water ``efficiency = rho g Q H / P_el = eta_p eta_m``

When the pump is stopped (hashed maintenance stops) flow, head, powers and efficiency are 0.

References
----------
.. [1] methodologies.md, "High-efficiency pumps": HCMC Tan Hiep 1 published data, new pump
   105 m3/min at 40 m and 850 kW (eta 0.808); old pump 0.791.
.. [2] Gulich, J. F.: Centrifugal Pumps, 3rd ed., Springer 2014, ch. 3 (characteristics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .base import assemble, hydraulic_power_kw
from .meters import MeterParams
from .signals import daily_event, local_hour, value_noise

MEASUREMENT = "pump"

FIELDS = {
    "flow_m3_per_h": ("m3/h", "Pump discharge flow"),
    "volume_m3": ("m3", "Flow meter register (totaliser)"),
    "head_m": ("m", "Pump total head"),
    "shaft_power_kw": ("kW", "Mechanical power at the pump shaft"),
    "power_kw": ("kW", "Electrical input power of the motor"),
    "efficiency": ("1", "Wire-to-water efficiency rho g Q H / P_el (0 when stopped)"),
    "energy_kwh": ("kWh", "Electricity meter register of the pump motor"),
    "running": ("1", "1 when the pump runs, 0 when stopped"),
    "run_time_h": ("h", "Run-hours counter of the pump motor (register)"),
}
METERS = {"volume_m3": "flow_m3_per_h", "energy_kwh": "power_kw", "run_time_h": "running"}


@dataclass(frozen=True)
class PumpParams:
    """Project pump and duty. Defaults: Da Nang Cau Do class pump sized like the published
    HCMC Tan Hiep 1 replacement (1.75 m3/s, 40 m, 850 kW, eta 0.808) [1]."""

    q_bep_m3_per_h: float = 6300.0  # 105 m3/min [1]
    h_bep_m: float = 40.0  # [1]
    h_shutoff_ratio: float = 1.25  # typical radial pump, Gulich [2]
    eta_pump_bep: float = 0.8505  # with eta_motor 0.95 gives wire-to-water 0.808 at BEP [1]
    eta_motor_rated: float = 0.95  # IE3 motor of this size, IEC 60034-30-1
    motor_rated_kw: float = 900.0
    eta_reference: float = 0.791  # replaced pump, rated wire-to-water efficiency [1]
    demand_mean_ratio: float = 0.9  # mean flow / Q_bep
    demand_diurnal_amp: float = 0.12
    demand_noise_ratio: float = 0.04
    q_min_ratio: float = 0.55
    q_max_ratio: float = 1.15
    stop_prob_per_day: float = 0.04
    stop_duration_s: float = 4 * 3600.0
    utc_offset_h: float = 7.0  # Viet Nam
    meter: MeterParams = field(default_factory=MeterParams)
    source: str = "methodologies.md pump section (Tan Hiep 1 published figures); curve shapes per Gulich 2014"

    @property
    def eta_project(self) -> float:
        """Rated wire-to-water efficiency of the project pump at BEP (test-certificate value)."""
        return self.eta_pump_bep * self.eta_motor_rated * (1 - 0.08 * (1 - self.bep_shaft_kw / self.motor_rated_kw) ** 2)

    @property
    def bep_shaft_kw(self) -> float:
        return float(hydraulic_power_kw(self.q_bep_m3_per_h, self.h_bep_m) / self.eta_pump_bep)


def demand_shape(hour: np.ndarray) -> np.ndarray:
    """Normalised daily water demand (morning and evening peaks), mean 0, in about [-1, 1]."""
    return 0.65 * np.cos(2 * np.pi * (hour - 8.0) / 24.0) + 0.35 * np.cos(4 * np.pi * (hour - 7.5) / 24.0)


def head_m(flow_m3_per_h, p: PumpParams):
    """Pump H-Q curve ``H0 - k Q^2`` [m]."""
    h0 = p.h_shutoff_ratio * p.h_bep_m
    k = (h0 - p.h_bep_m) / p.q_bep_m3_per_h**2
    return h0 - k * np.asarray(flow_m3_per_h) ** 2


def pump_efficiency(flow_m3_per_h, p: PumpParams):
    """Pump eta-Q curve ``eta_bep (2q - q^2)`` [ratio], floored at 0.05."""
    q = np.asarray(flow_m3_per_h) / p.q_bep_m3_per_h
    return np.maximum(p.eta_pump_bep * (2 * q - q * q), 0.05)


def motor_efficiency(shaft_kw, p: PumpParams):
    """Motor part-load efficiency [ratio]."""
    load = np.clip(np.asarray(shaft_kw) / p.motor_rated_kw, 0.0, 1.5)
    return p.eta_motor_rated * (1 - 0.08 * (1 - load) ** 2)


def instant(ts_ns: np.ndarray, key: int, p: PumpParams) -> dict[str, np.ndarray]:
    hour = local_hour(ts_ns, p.utc_offset_h)
    q_ratio = (
        p.demand_mean_ratio
        + p.demand_diurnal_amp * demand_shape(hour)
        + p.demand_noise_ratio * value_noise(ts_ns, key, 1, 1800.0)
        + 0.25 * p.demand_noise_ratio * value_noise(ts_ns, key, 2, 120.0)
    )
    running = ~daily_event(ts_ns, key, 3, p.stop_prob_per_day, p.stop_duration_s, p.utc_offset_h)
    q = np.where(running, np.clip(q_ratio, p.q_min_ratio, p.q_max_ratio) * p.q_bep_m3_per_h, 0.0)
    h = np.where(running, head_m(q, p), 0.0)
    p_hyd = hydraulic_power_kw(q, h)
    shaft = np.where(running, p_hyd / pump_efficiency(q, p), 0.0)
    p_el = np.where(running, shaft / motor_efficiency(shaft, p), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        eff = np.where(running, p_hyd / np.where(running, p_el, 1.0), 0.0)
    return {
        "flow_m3_per_h": q,
        "head_m": h,
        "shaft_power_kw": shaft,
        "power_kw": p_el,
        "efficiency": eff,
        "running": running.astype(np.float64),
    }


def meter_rates(f: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        "volume_m3": f["flow_m3_per_h"],
        "energy_kwh": f["power_kw"],
        # integrated for ground truth only
        "hydraulic_energy_kwh": hydraulic_power_kw(f["flow_m3_per_h"], f["head_m"]),
        "run_time_h": f["running"],
    }


def model(ts_ns: np.ndarray, rng, params: PumpParams | None = None) -> dict[str, np.ndarray]:
    """Pump station fields at each timestamp.

    Parameters
    ----------
    ts_ns : array  Unix timestamps [ns]
    rng : np.random.Generator or int  Seeded generator (one draw makes the noise key) or seed
    params : PumpParams  Pump curve, motor, duty; defaults in :class:`PumpParams`

    Returns
    -------
    dict  Field name -> float64 array, names and units as in :data:`FIELDS`.
    """
    return assemble(MEASUREMENT, FIELDS, METERS, instant, meter_rates, ts_ns, rng, params or PumpParams())
