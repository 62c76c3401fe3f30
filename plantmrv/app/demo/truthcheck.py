"""What a project's reductions should be, from the simulator's ground truth.

The bridge between :mod:`plantmrv.simulators.truth` (integrals of the simulated plant, in the
simulator's vocabulary) and the methodology registry of :mod:`plantmrv.analytics`: the very
compute function of the project's methodology (the one that computes the credited tonnes and
is tested against the published cases), fed with exact integrals instead of monitored
samples. End-to-end tests and ``plantmrv demo`` compare the pipeline's tonnes with these.
"""

from __future__ import annotations

import numpy as np

from plantmrv.analytics.registry import Inputs

#: Methodology quantity -> (truth input, factor to the quantity's unit)
TRUTH_OF_QUANTITY = {
    ("pump", "project_energy"): ("project_energy_kwh", 1.0),
    ("vsd", "project_energy"): ("project_energy_kwh", 1.0),
    ("ubcf", "project_energy"): ("energy_kwh", 1.0),
    ("pump", "volume"): ("volume_m3", 1.0),
    ("vsd", "volume"): ("volume_m3", 1.0),
    ("ubcf", "volume"): ("volume_m3", 1.0),
    ("pump", "operating_time"): ("operating_hours_h", 1.0),
    ("vsd", "operating_time"): ("operating_hours_h", 1.0),
    ("ubcf", "chlorine"): ("chlorine_kg", 1.0),
    ("ubcf", "coagulant"): ("coagulant_kg", 1.0),
    ("pv", "generation"): ("export_mwh", 1000.0),
    ("wte", "waste"): ("waste_fed_t", 1.0),
    ("wte", "waste_burned"): ("waste_fed_t", 1.0),
    ("wte", "export"): ("net_export_mwh", 1000.0),
    ("wte", "import"): ("import_mwh", 1000.0),
    ("wte", "aux_fuel"): ("aux_fuel_kg", 1.0),
}


def expected_intervals(project, inputs: list[dict[str, float]], edges_ns, ef_t_co2_per_mwh: float, prior_waste_t_by_year=None):
    """The methodology's outputs for truth ``inputs`` given per interval ``[edges[k], edges[k+1])``."""
    m = project.spec
    edges = np.asarray(edges_ns, dtype=np.int64)
    amounts = {}
    for q in m.quantities:
        key = TRUTH_OF_QUANTITY.get((project.plant_type, q.name))
        if key is not None and key[0] in inputs[0]:
            amounts[q.name] = np.array([i[key[0]] * key[1] for i in inputs], dtype=float)
    inp = Inputs(project, edges, amounts, dict(amounts), {}, project.parameter_set, ef_t_co2_per_mwh, prior_waste_t_by_year, {})
    return m.compute(inp)


def expected_from_truth(project, inputs: dict[str, float], ef_t_co2_per_mwh: float, start_ns: int | None = None, end_ns: int | None = None) -> dict[str, float]:
    """``{"reference_energy_kwh", "energy_saved_kwh", "reduction_t_co2"}`` of ``project`` for truth ``inputs`` of one period."""
    mp = project.monitoring_period
    edges = np.array([start_ns if start_ns is not None else mp.start_ns, end_ns if end_ns is not None else mp.end_ns], np.int64)
    out = expected_intervals(project, [inputs], edges, ef_t_co2_per_mwh)
    ref = float(np.sum(out.reference_energy_kwh))
    return {"reference_energy_kwh": ref, "energy_saved_kwh": ref - float(np.sum(out.project_energy_kwh)),
            "reduction_t_co2": float(np.sum(out.reference_t_co2) - np.sum(out.project_t_co2))}
