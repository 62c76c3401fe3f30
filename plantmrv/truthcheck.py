"""What a project's reductions should be, from the simulator's ground truth.

The bridge between :mod:`plantmrv.simulators.truth` (integrals of the simulated plant, in the
simulator's vocabulary) and the methodology modules of :mod:`plantmrv.analytics`: the same
formulas the engine applies, fed with exact integrals instead of monitored samples. End-to-end
tests and ``plantmrv demo`` compare the pipeline's tonnes with these.
"""

from __future__ import annotations

from plantmrv.analytics import baselines, pumps, pv, vsd, wte


def expected_from_truth(project, inputs: dict[str, float], ef_t_co2_per_mwh: float) -> dict[str, float]:
    """``{"reference_energy_kwh", "energy_saved_kwh", "reduction_t_co2"}`` of ``project`` for truth ``inputs``."""
    p = project.parameter_set
    t = project.plant_type
    ef = ef_t_co2_per_mwh
    if t in ("pump", "vsd", "ubcf"):
        e = inputs["project_energy_kwh"] if t != "ubcf" else inputs["energy_kwh"]
        if project.baseline == "efficiency_ratio":
            ref = float(baselines.efficiency_ratio(e, p.eta_project.value, p.eta_reference.value))
        elif project.baseline == "specific_energy":
            ref = float(baselines.specific_energy(inputs["volume_m3"], p.sec_baseline_kwh_per_m3.value))
        elif project.baseline == "constant_power_hours":
            ref = float(vsd.baseline_energy_kwh(inputs["operating_hours_h"], p.baseline_power_kw.value))
        else:
            raise ValueError(f"baseline {project.baseline!r} does not apply to {t}")
        reduction = float(pumps.emission_reductions(pumps.project_emissions_t_co2(ref, ef), pumps.project_emissions_t_co2(e, ef)))
        return {"reference_energy_kwh": ref, "energy_saved_kwh": ref - e, "reduction_t_co2": reduction}
    if t == "pv":
        g = inputs["export_mwh"] * 1000.0
        return {"reference_energy_kwh": g, "energy_saved_kwh": g, "reduction_t_co2": float(pv.emission_reductions(pv.reference_emissions_t_co2(g, ef)))}
    if t == "wte":
        export_kwh = inputs["net_export_mwh"] * 1000.0
        re_ = wte.reference_emissions_t_co2(inputs["waste_fed_t"], export_kwh, ef, p)
        pe = wte.project_emissions_t_co2(inputs["waste_fed_t"], inputs["aux_fuel_kg"] / 1000.0, 0.0, ef, p)
        return {"reference_energy_kwh": export_kwh, "energy_saved_kwh": export_kwh, "reduction_t_co2": float(wte.emission_reductions(re_, pe))}
    raise ValueError(f"plant type {t!r} unknown")



