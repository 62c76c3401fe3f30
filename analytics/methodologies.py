"""From a project's raw signals to interval results: the per-plant-type glue, still pure numpy.

:func:`compute` takes a :class:`~plantmrv.analytics.config.ProjectConfig`, the raw samples of
its assets by role (``energy_meter``, ``power``, ``volume_meter``, ...), interval edges and the
grid emission factor, and returns :class:`IntervalResults`: reference / project energy and
emissions, reductions, completeness and gap-filled seconds per interval, plus co-benefits.
No I/O: the engine (:mod:`.engine`) queries InfluxDB and writes the results.

Missing and bad-quality data follow the conservative rule of :mod:`.common`
(``methodologies.md`` section 1): the reference side counts only covered time; the project side
counts its covered energy plus, over missing time, the larger of what a meter measured across
the gap and the highest observed rate (or the project's configured maximum plausible rate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from . import baselines, pumps, pv, ubcf, vsd, wte
from .common import FILL_METHOD, conservative_fill, emissions_t_co2, highest_rate_kw
from .emission_factors import EmissionFactor, default_table
from .energy import IntervalEnergy, energy_from_meter, energy_from_power, held_mean_per_interval, mean_per_interval
from .parameters import params_hash, values

Series = tuple[np.ndarray, np.ndarray]  # (ts_ns, values)

_DEFAULTS = {
    "pump": pumps.PumpParameters,
    "vsd": vsd.VSDParameters,
    "wte": wte.WtEParameters,
    "ubcf": ubcf.UBCFParameters,
    "pv": pv.PVParameters,
}


def parameter_defaults(plant_type: str):
    """The methodology's default parameter set for a plant type."""
    try:
        return _DEFAULTS[plant_type]()
    except KeyError:
        raise ValueError(f"plant_type {plant_type!r} unknown; choose one of {', '.join(_DEFAULTS)}") from None


@dataclass
class IntervalResults:
    """Per-interval results of one project (arrays aligned with ``edges_ns[:-1]``)."""

    edges_ns: np.ndarray
    reference_energy_kwh: np.ndarray
    project_energy_kwh: np.ndarray
    reference_t_co2: np.ndarray
    project_t_co2: np.ndarray
    completeness: np.ndarray
    gap_filled_s: np.ndarray
    params_hash: str
    credited: bool = True
    fill_method: str = FILL_METHOD
    cobenefits: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def energy_saved_kwh(self) -> np.ndarray:
        return self.reference_energy_kwh - self.project_energy_kwh

    @property
    def reduction_t_co2(self) -> np.ndarray:
        return self.reference_t_co2 - self.project_t_co2

    @property
    def start_ns(self) -> np.ndarray:
        return self.edges_ns[:-1]

    def __len__(self) -> int:
        return len(self.edges_ns) - 1


def resolve_grid_ef(project) -> EmissionFactor:
    """The project's grid emission factor (explicit value or a row of the shipped table)."""
    g = project.grid_ef
    if g.value is not None:
        return EmissionFactor(g.country or "", g.grid or "", g.year or 0, g.kind or "explicit", g.value, g.source)
    return default_table().lookup(g.country, g.grid, g.year, g.kind, g.generation_type)


def _sum_energy(parts: Sequence[IntervalEnergy], nint: int) -> IntervalEnergy:
    if not parts:
        z = np.zeros(nint)
        return IntervalEnergy(z, z.copy(), z.copy(), z.copy())
    return IntervalEnergy(
        np.sum([p.energy_kwh for p in parts], axis=0),
        np.min([p.covered_s for p in parts], axis=0),
        np.max([p.gap_s for p in parts], axis=0),
        np.sum([p.gap_energy_kwh for p in parts], axis=0),
    )


def _integrate(signals, meter_role, rate_role, edges, max_gap_s, rollover_at=None, required=True, what="") -> IntervalEnergy | None:
    """Interval amounts from a cumulative register role, else by integrating a rate role."""
    nint = len(edges) - 1
    if signals.get(meter_role):
        parts = [energy_from_meter(ts, v, edges, max_gap_s, rollover_at) for ts, v in signals[meter_role]]
        return _sum_energy(parts, nint)
    if rate_role and signals.get(rate_role):
        parts = [energy_from_power(ts, v, edges, max_gap_s) for ts, v in signals[rate_role]]
        return _sum_energy(parts, nint)
    if required:
        # configured but no data at all: everything is a gap
        z = np.zeros(nint)
        return IntervalEnergy(z, z.copy(), np.diff(edges) / 1e9, z.copy())
    return None


def _project_side(e: IntervalEnergy, fill_rate_kw: float | None):
    """Covered energy plus the conservative fill of missing time; returns (energy, filled_s)."""
    rate = fill_rate_kw if fill_rate_kw is not None else highest_rate_kw(e.energy_kwh, e.covered_s)
    _, filled, gap = conservative_fill(e.energy_kwh, e.energy_kwh, e.gap_s, rate)
    # a meter that measured across the gap may say more: take the higher (project side high)
    filled = np.maximum(filled, e.energy_kwh + e.gap_energy_kwh)
    return filled, gap


def compute(
    project,
    signals: Mapping[str, list[Series]],
    edges_ns,
    max_gap_s: float,
    ef: EmissionFactor | None = None,
    prior_waste_t_by_year: Sequence[float] | None = None,
) -> IntervalResults:
    """Interval results of one project from its raw signals.

    Parameters
    ----------
    project : ProjectConfig
    signals : mapping role -> list of (ts_ns, values)  One entry per configured asset field
        (roles as in :class:`~plantmrv.analytics.config.AssetFields`); BAD samples already removed
    edges_ns : array of int64  Interval edges [ns]
    max_gap_s : float  Longest spacing bridged [s]
    ef : EmissionFactor, optional  Grid factor; resolved from the project's config if omitted
    prior_waste_t_by_year : sequence of float, optional  Waste-to-energy: waste diverted in
        each crediting year (0 = the first) *outside* ``edges_ns`` [t], whose decay in later
        years (TOOL04's y > x terms) is credited; the window's own waste is added here. None:
        no waste outside the window

    Returns
    -------
    IntervalResults
    """
    edges = np.asarray(edges_ns, dtype=np.int64)
    ef = ef or resolve_grid_ef(project)
    ef_v = ef.value_t_co2_per_mwh
    params = project.parameter_set
    pv_ = values(params)
    rollover = next((a.rollover_at for a in project.assets if a.rollover_at), None)
    fill_rate = project.project_fill_rate_kw.value if project.project_fill_rate_kw else None
    h = params_hash(project.plant_type, project.baseline, project.methodology, params, ef.value_t_co2_per_mwh, ef.source, max_gap_s, fill_rate, *([project.day_category] if project.day_category is not None else []))
    cob: dict[str, np.ndarray] = {}
    length_s = np.diff(edges) / 1e9
    credited = True
    t = project.plant_type
    base = project.baseline

    if t in ("pump", "vsd", "ubcf"):
        e = _integrate(signals, "energy_meter", "power", edges, max_gap_s, rollover)
        proj_kwh, gap = _project_side(e, fill_rate)
        coverage = e.covered_s
        if base == "efficiency_ratio":
            ref_kwh = baselines.efficiency_ratio(e.energy_kwh, pv_["eta_project"], pv_["eta_reference"])
        elif base == "specific_energy":
            vol = _integrate(signals, "volume_meter", "flow", edges, max_gap_s, rollover)
            sec = pv_["sec_baseline_kwh_per_m3"]
            if sec is None:
                raise ValueError(f"projects[{project.id}].parameters.sec_baseline_kwh_per_m3: required by baseline specific_energy")
            ref_kwh = baselines.specific_energy(vol.energy_kwh, sec)
            coverage = np.minimum(coverage, vol.covered_s)
            cob["volume_m3"] = vol.energy_kwh
        elif base == "constant_power_hours":
            p_bl = pv_["baseline_power_kw"]
            if p_bl is None:
                raise ValueError(f"projects[{project.id}].parameters.baseline_power_kw: required by baseline constant_power_hours")
            if signals.get("running") and any(len(ts) for ts, _ in signals["running"]):
                # a state flag holds its last value (report by exception); counted only over
                # time the energy data cover (reference low over missing time)
                fracs = [held_mean_per_interval(ts, (v > pv_["running_threshold"]).astype(float), edges)[0] for ts, v in signals["running"]]
                hours = np.mean(fracs, axis=0) * e.covered_s / 3600.0
            else:
                hours = e.covered_s / 3600.0
            ref_kwh = baselines.constant_power_hours(hours, p_bl)
            cob["operating_h"] = np.asarray(hours, dtype=float)
        else:
            raise ValueError(f"projects[{project.id}].baseline: {base!r} does not apply to {t}")
        if t == "ubcf":
            credited = ubcf.CREDITED
            for role, name in (("chlorine_rate", "chlorine_kg"), ("coagulant_rate", "coagulant_kg")):
                c = _integrate(signals, "", role, edges, max_gap_s, required=False)
                if c is not None:
                    cob[name] = c.energy_kwh
            for kpi, (fin, fout) in _quality_pairs(project).items():
                cin = signals.get(f"quality:{fin}")
                cout = signals.get(f"quality:{fout}")
                if cin and cout:
                    mi, _ = mean_per_interval(*cin[0], edges)
                    mo, _ = mean_per_interval(*cout[0], edges)
                    cob[f"{kpi}_removal"] = ubcf.removal_fraction(mi, mo)
        ref_t = emissions_t_co2(ref_kwh, ef_v)
        proj_t = emissions_t_co2(proj_kwh, ef_v)
    elif t == "pv":
        g = _integrate(signals, "export_meter", "export_power", edges, max_gap_s, rollover)
        ref_kwh = baselines.generation(g.energy_kwh)  # a missing interval generates 0 (reference low)
        proj_kwh = np.zeros_like(ref_kwh)
        ef_interval = ef_v
        if project.day_category is not None:
            # KH_AM002: the EF of the local day d of each interval by the day's category
            days = pv.local_day_edges_ns(int(edges[0]), int(edges[-1]), project.day_category.utc_offset_h)
            flags = signals.get("grid_available") or []
            if flags:
                per_flag = np.array([pv.day_categories(ts, v, days) for ts, v in flags])
                cats = np.where(np.all(per_flag == per_flag[0], axis=0), per_flag[0], pv.MIXED_DAY)
            else:
                cats = np.full(len(days) - 1, pv.MIXED_DAY)
            day_of = np.clip(np.searchsorted(days, edges[:-1], side="right") - 1, 0, len(days) - 2)
            ef_interval = pv.ef_by_day_category(cats[day_of], ef_v, pv_["ef_diesel_t_co2_per_mwh"])
        ref_t = pv.reference_emissions_t_co2(ref_kwh, ef_interval)
        proj_t = pv.project_emissions_t_co2(ref_kwh)
        coverage, gap = g.covered_s, g.gap_s
    elif t == "wte":
        w = _integrate(signals, "waste_meter", "waste_rate", edges, max_gap_s, rollover)
        g = _integrate(signals, "export_meter", "export_power", edges, max_gap_s, rollover)
        fuel = _integrate(signals, "", "aux_fuel_rate", edges, max_gap_s, required=False)
        ref_kwh = np.maximum(g.energy_kwh, 0.0)
        proj_kwh = np.zeros_like(ref_kwh)
        waste_t = w.energy_kwh  # covered only: waste of a missing interval is not credited
        # plastics burned in missing time still count in PE (project side high)
        waste_burned_t = np.maximum(w.energy_kwh + w.gap_energy_kwh, conservative_fill(0, w.energy_kwh, w.gap_s, highest_rate_kw(w.energy_kwh, w.covered_s))[1])
        fuel_t = np.zeros_like(ref_kwh)
        if fuel is not None:
            fuel_kg, _ = _project_side(fuel, None)
            fuel_t = fuel_kg / 1000.0
        # TOOL04: the first-year decay of the interval's own waste, plus the decay in this
        # crediting year of the waste diverted in earlier years (the tail)
        year_edges = wte.crediting_year_edges_ns(project.crediting_start_ns, int(edges[-1]))
        n_years = len(year_edges) - 1
        waste_by_year = wte.waste_by_crediting_year_t(edges, waste_t, year_edges, n_years)
        if prior_waste_t_by_year is not None:
            given = np.asarray(prior_waste_t_by_year, dtype=float)[:n_years]
            waste_by_year[: len(given)] += given
        tail_t = wte.methane_tail_t_co2e(edges, year_edges, waste_by_year, params)
        ch4_t = wte.methane_avoided_t_co2e(waste_t, params) + tail_t
        ref_t = ch4_t + wte.electricity_displaced_t_co2(ref_kwh, ef_v)
        proj_t = wte.project_emissions_t_co2(waste_burned_t, fuel_t, 0.0, ef_v, params)
        coverage = np.minimum(w.covered_s, g.covered_s)
        gap = length_s - coverage
        cob.update(waste_t=waste_t, methane_avoided_t_co2e=ch4_t, net_export_kwh=ref_kwh)
    else:  # pragma: no cover - config validation prevents it
        raise ValueError(f"plant_type {t!r} unknown")

    if project.electricity_price_per_kwh is not None and t != "wte":
        cob["electricity_cost_saved"] = (ref_kwh - proj_kwh) * project.electricity_price_per_kwh.value
    completeness = np.divide(coverage, length_s, out=np.zeros_like(length_s), where=length_s > 0)
    return IntervalResults(
        edges, np.asarray(ref_kwh, float), np.asarray(proj_kwh, float), np.asarray(ref_t, float), np.asarray(proj_t, float),
        np.clip(completeness, 0.0, 1.0), np.asarray(gap, float), h, credited, FILL_METHOD, cob,
    )


def _quality_pairs(project) -> dict[str, tuple[str, str]]:
    out = {}
    for a in project.assets:
        out.update(a.fields.quality_pairs)
    return out
