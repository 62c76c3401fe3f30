"""Ground truth: what an ideal pipeline should compute from a simulated plant for a period.

``truth(plant_type, start, end, rng=seed, params=None)`` integrates the model's rates over
``[start, end)`` with exactly the rule the simulated meters use (:mod:`.meters`: trapezoid on
the absolute ``meter.step_s`` knot grid), so

    truth energy == register(end) - register(start)        (no reset / rollover inside)

to floating-point precision, and it agrees with an integral of the served 1 s power samples to
well under 0.1 % (the knot rule and the 1 s samples see the same smooth signal). Quantities
are physical: meter replacements and faults do not change them.

The result is a :class:`Truth`: ``integrals`` (every integrated rate, in kWh / m3 / t / kg / h)
and ``inputs`` (the methodology inputs of ``docs/methodologies.md`` for the plant type):

=====  ====================================================================================
pump   ``project_energy_kwh``, ``volume_m3``, ``eta_project``, ``eta_reference``,
       ``operating_hours_h``, ``eta_measured`` (hydraulic / electric energy),
       ``specific_energy_kwh_per_m3``
vsd    ``project_energy_kwh``, ``operating_hours_h``, ``baseline_power_kw`` (throttle
       counterfactual energy / operating hours), ``baseline_energy_kwh``, ``energy_saved_kwh``,
       ``volume_m3``
wte    ``waste_fed_t``, ``net_export_mwh``, ``gross_generation_mwh``, ``aux_consumption_mwh``,
       ``aux_fuel_kg``, ``import_mwh``, ``incineration_hours_h``
pv     ``ac_energy_mwh``, ``export_mwh``, ``dc_energy_mwh``
ubcf   ``energy_kwh`` (pump + blower), ``pump_energy_kwh``, ``blower_energy_kwh``,
       ``volume_m3``, ``energy_kwh_per_m3``, ``chlorine_kg``, ``coagulant_kg``
=====  ====================================================================================

Pass the same ``rng`` (an int seed, or an equal fresh Generator) and params as the served plant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .meters import integral, parse_time_ns
from .plants import make_params, plant_type
from .signals import key_from


@dataclass
class Truth:
    """Ground truth for one asset and period ``[start_ns, end_ns)``."""

    plant_type: str
    site: str
    asset: str
    start_ns: int
    end_ns: int
    integrals: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "plant_type": self.plant_type,
            "site": self.site,
            "asset": self.asset,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "integrals": dict(self.integrals),
            "inputs": dict(self.inputs),
        }


def period_integrals(plant: str, start_ns: int, end_ns: int, rng=0, params=None) -> dict[str, float]:
    """Integral of every rate of ``meter_rates`` over ``[start_ns, end_ns)`` [rate x h]."""
    pt = plant_type(plant)
    params = params if params is not None else make_params(plant)
    key = key_from(rng)
    mod = pt.module

    def rate_fn(knots):
        return mod.meter_rates(mod.instant(knots, key, params))

    probe = rate_fn(np.array([start_ns], dtype=np.int64))
    names = tuple(probe)
    e = integral(rate_fn, names, np.array([start_ns, end_ns], dtype=np.int64), params.meter.origin_ns,
                 params.meter.step_ns, cache_key=(pt.measurement, key, params))
    return {n: float(e[n][1] - e[n][0]) for n in names}


def truth(
    plant: str,
    start: str | int,
    end: str | int,
    rng=0,
    params=None,
    site: str | None = None,
    asset: str | None = None,
) -> Truth:
    """Ground truth for one simulated asset over ``[start, end)`` (ISO-8601 or Unix ns).

    Parameters
    ----------
    plant : str  Plant type
    start, end : str or int  Period bounds
    rng : int or np.random.Generator  The plant's seed (as given to :func:`plants.generate`)
    params : params dataclass, optional  The plant's params (defaults when None)
    site, asset : str, optional  Labels (defaults of the plant type)

    Returns
    -------
    Truth
    """
    pt = plant_type(plant)
    params = params if params is not None else make_params(plant)
    t0, t1 = parse_time_ns(start), parse_time_ns(end)
    if t1 < t0:
        raise ValueError(f"truth: end {end!r} is before start {start!r}")
    I = period_integrals(plant, t0, t1, rng, params)
    inp: dict[str, float] = {}
    if plant == "pump":
        e, v, h = I["energy_kwh"], I["volume_m3"], I["run_time_h"]
        inp = {
            "project_energy_kwh": e,
            "volume_m3": v,
            "eta_project": float(params.eta_project),
            "eta_reference": float(params.eta_reference),
            "operating_hours_h": h,
            "eta_measured": I["hydraulic_energy_kwh"] / e if e > 0 else 0.0,
            "specific_energy_kwh_per_m3": e / v if v > 0 else 0.0,
        }
    elif plant == "vsd":
        e, h, b = I["energy_kwh"], I["run_time_h"], I["throttle_energy_kwh"]
        inp = {
            "project_energy_kwh": e,
            "operating_hours_h": h,
            "baseline_power_kw": b / h if h > 0 else 0.0,
            "baseline_energy_kwh": b,
            "energy_saved_kwh": b - e,
            "volume_m3": I["volume_m3"],
        }
    elif plant == "wte":
        inp = {
            "waste_fed_t": I["waste_fed_t"],
            "net_export_mwh": I["net_export_energy_kwh"] / 1000.0,
            "gross_generation_mwh": I["gross_energy_kwh"] / 1000.0,
            "aux_consumption_mwh": I["aux_energy_kwh"] / 1000.0,
            "aux_fuel_kg": I["aux_fuel_kg"],
            "import_mwh": I["import_energy_kwh"] / 1000.0,
            "incineration_hours_h": I["incineration_h"],
        }
    elif plant == "pv":
        inp = {
            "ac_energy_mwh": I["export_energy_kwh"] / 1000.0,
            "export_mwh": I["export_energy_kwh"] / 1000.0,
            "dc_energy_mwh": I["dc_energy_kwh"] / 1000.0,
        }
    elif plant == "ubcf":
        e = I["pump_energy_kwh"] + I["blower_energy_kwh"]
        v = I["volume_m3"]
        inp = {
            "energy_kwh": e,
            "pump_energy_kwh": I["pump_energy_kwh"],
            "blower_energy_kwh": I["blower_energy_kwh"],
            "volume_m3": v,
            "energy_kwh_per_m3": e / v if v > 0 else 0.0,
            "chlorine_kg": I["chlorine_kg"],
            "coagulant_kg": I["coagulant_kg"],
        }
    return Truth(plant, site or pt.default_site, asset or pt.default_asset, t0, t1, I, inp)


def config_truth(
    start: str | int,
    end: str | int,
    plants: tuple[str, ...] | list[str] = (),
    config_file: str | None = None,
    scale: int = 1,
    seed: int = 0,
    sim_start: str | int | None = None,
) -> list[Truth]:
    """Ground truth for every asset a ``plantmrv simulate`` run serves.

    Takes the same inputs as the command (``--plants``, ``--config``, ``--scale``, ``--seed``,
    ``--start``), so a test that started the simulator can ask what the pipeline should have
    computed over ``[start, end)``. ``sim_start`` matters only for scaled clones (their meters
    start on the simulated start day) and for faults given as ``at_s``.
    """
    from .server import build_config

    cfg = build_config(
        list(plants), config_file, scale=scale, seed=seed,
        start_ns=None if sim_start is None else parse_time_ns(sim_start),
    )
    return [truth(a.plant, start, end, rng=a.seed, params=a.params, site=a.site, asset=a.asset) for a in cfg.assets]
