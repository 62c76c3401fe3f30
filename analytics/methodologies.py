"""From a project's raw signals to interval results, through the methodology registry (pure numpy).

:func:`compute` takes a :class:`~plantmrv.analytics.config.ProjectConfig`, the raw samples of
its assets by role (``energy_meter``, ``power``, ``volume_meter``, ...; in each role's unit,
in the order of :func:`role_fields`), interval edges and the grid emission factor, and returns
:class:`IntervalResults`: reference / project energy and emissions, reductions, completeness,
gap seconds and co-benefits per interval, the meter events and the gap spans. No I/O: the
engine (:mod:`.engine`) queries InfluxDB and writes the results.

What is plant-type specific lives in the methodology's module and reaches this driver through
the registry (:mod:`.registry`): the quantities it needs and on which side of ER they sit, its
parameters, its compute function. The driver integrates every quantity from its meter (or
rate), applies declared meter events, refuses undeclared drops and jumps (they become gaps),
and applies the conservative rule of ``methodologies.md`` section 1 the same way for every
methodology: a reference quantity counts covered time only; a project quantity adds, over its
gaps, the larger of its meter's increment across the gap and the configured maximum plausible
rate. Neither depends on how the computation is cut into windows. Completeness and
``gap_filled_s`` count the union of the gaps of every input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from . import registry
from .amounts import IntervalAmount, _gap_spans, integrate_meter, integrate_rate, merge_spans, union_gap_s
from .common import FILL_METHOD
from .emission_factors import EmissionFactor, default_table
from .parameters import params_hash

Series = tuple[np.ndarray, np.ndarray]  # (ts_ns, values)
NS = 1_000_000_000


def parameter_defaults(plant_type: str, baseline: str | None = None):
    """The methodology's default parameter set for a plant type."""
    return registry.get(plant_type, baseline).parameters()


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
    events: list = field(default_factory=list)  # MeterEventFound of every meter
    gap_spans_ns: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.int64))  # union of every input's gaps
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # registry.input_fields: what the workbook re-derives the results from

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
        return EmissionFactor(g.country or "", g.grid or "", g.year or 0, g.kind or "explicit", g.value_t_co2_per_mwh, g.source)
    return default_table().lookup(g.country, g.grid, g.year, g.kind, project.generation_type)


def project_params_hash(project, ef: EmissionFactor | None = None, max_gap_s: float = 120.0, params=None) -> str:
    """The ``params_hash`` stamped on every result of ``project``: its methodology, parameters,
    emission factor (value and source), hold limit, meter setup (rollover, maximum rates,
    declared events) and KH_AM002 day category. Results carrying another hash were computed
    with other inputs."""
    ef = ef or resolve_grid_ef(project)
    params = params if params is not None else project.parameter_set
    meters = [(a.asset, a.rollover_at, sorted(a.max_rate), [e.model_dump(mode="json") for e in a.meter_events]) for a in project.assets]
    extra = [project.day_category] if project.day_category is not None else []
    return params_hash(project.spec.key, project.methodology, params, ef.value_t_co2_per_mwh, ef.source, max_gap_s, meters, *extra)


def role_fields(project) -> dict[str, list[tuple[object, str]]]:
    """``{role: [(asset, field), ...]}`` in the order the engine lists a role's signals."""
    out: dict[str, list] = {}
    for a in project.assets:
        for role, fields in a.fields.by_role().items():
            out.setdefault(role, []).extend((a, f) for f in fields)
    return out


def _integrate_role(project, role: str, series: Sequence[Series], edges, max_gap_s: float, params, max_rate_default: float | None):
    """One role's signals integrated and summed over its fields: (amount, covered, gap spans, gap amount, events)."""
    fields = role_fields(project).get(role, [])
    kind = registry.role(role).kind
    parts: list[IntervalAmount] = []
    for i, (ts, v) in enumerate(series):
        asset, fname = fields[i] if i < len(fields) else (None, role)
        if kind == "meter":
            max_rate = (asset.max_rate_per_h(fname, role) if asset is not None else None) or max_rate_default
            parts.append(integrate_meter(ts, v, edges, max_gap_s, getattr(asset, "rollover_at", None), events=asset.events_of(fname) if asset is not None else (),
                                         max_rate_per_h=max_rate, field_name=f"{getattr(asset, 'asset', '?')}.{fname}"))
        else:
            if role == "running":  # a flag counts as running above the methodology's threshold
                thr = getattr(params, "running_threshold", None)
                v = np.where(np.isfinite(v), (np.asarray(v, float) > (thr.value if thr is not None else 0.5)).astype(float), np.nan)
            parts.append(integrate_rate(ts, v, edges, max_gap_s))
    nint = len(edges) - 1
    if not parts:  # configured but no data at all: everything is a gap
        return np.zeros(nint), np.array([[int(edges[0]), int(edges[-1])]], np.int64), np.zeros(nint), []
    spans = merge_spans([p.gap_spans_ns for p in parts])
    return (np.sum([p.amount for p in parts], axis=0), spans, np.sum([p.gap_amount for p in parts], axis=0),
            [e for p in parts for e in p.events])


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
    signals : mapping role -> list of (ts_ns, values)  One entry per configured asset field, in
        the order of :func:`role_fields`, values in the role's unit (the engine converts from the
        field's unit); BAD samples already removed; state roles with their last sample before
        the window; quality-pair fields under ``quality:<field>``
    edges_ns : array of int64  Interval edges [ns]
    max_gap_s : float  Longest spacing bridged [s]
    ef : EmissionFactor, optional  Grid factor; resolved from the project's config if omitted
    prior_waste_t_by_year : sequence of float, optional  Waste-to-energy: waste diverted in
        each crediting year (0 = the first) *outside* ``edges_ns`` [t], whose decay in later
        years (TOOL04's y > x terms) is credited. None: no waste outside the window

    Returns
    -------
    IntervalResults
    """
    edges = np.asarray(edges_ns, dtype=np.int64)
    ef = ef or resolve_grid_ef(project)
    m = project.spec
    params = project.parameter_set
    length_s = np.diff(edges) / 1e9
    amounts: dict[str, np.ndarray] = {}
    covered: dict[str, np.ndarray] = {}
    all_spans: list[np.ndarray] = []
    events: list = []
    cache: dict[str, tuple] = {}
    configured = {r: True for a in project.assets for r in a.fields.by_role()}
    sources = registry.quantity_sources(m, configured)
    stored: dict[str, np.ndarray] = {}  # the inputs stored beside the results (registry.input_fields)
    fields_of = {(f.quantity, f.name.rsplit(".", 1)[-1]): f.field for f in registry.input_fields(m) if f.quantity}
    for q in m.quantities:
        role = sources[q.name]
        if role is None:  # an optional quantity the project does not measure
            continue
        fill_rate = getattr(params, q.fill).value if q.fill else None
        if role not in cache:  # configured without any sample: the whole window is a gap
            cache[role] = _integrate_role(project, role, signals.get(role) or [], edges, max_gap_s, params,
                                          fill_rate if q.side == "project" else None)
            events += cache[role][3]
        amount, spans, gap_amount, _ = cache[role]
        gap_s = union_gap_s([spans], edges)
        all_spans.append(spans)
        covered[q.name] = amount
        stored[fields_of[(q.name, "covered")]] = amount
        if q.side == "project":
            amounts[q.name] = amount + np.maximum(gap_s / 3600.0 * (fill_rate or 0.0), gap_amount)
            stored[fields_of[(q.name, "gap_s")]] = gap_s
            stored[fields_of[(q.name, "gap")]] = gap_amount
        else:
            amounts[q.name] = amount
    states = {r: list(signals.get(r) or []) for r in m.states if signals.get(r)}
    for r, series in states.items():  # a state's own gaps count too (its samples held up to the hold limit)
        max_gap_ns = int(round(max_gap_s * NS))
        for ts, v in series:
            ts = np.asarray(ts, np.int64)[np.isfinite(np.asarray(v, float))]
            all_spans.append(_gap_spans(ts, edges, np.ones(1), lambda seg, dt: dt <= max_gap_ns))
    extra = {k: v for k, v in signals.items() if k.startswith("quality:")}
    inp = registry.Inputs(project, edges, amounts, covered, states, params, ef.value_t_co2_per_mwh, prior_waste_t_by_year, extra, max_gap_s)
    out = m.compute(inp)
    union = merge_spans(all_spans)
    gap = union_gap_s([union], edges)
    cob = dict(out.cobenefits)
    if project.electricity_price_per_kwh is not None and m.plant_type != "wte":
        cob["electricity_cost_saved"] = (np.asarray(out.reference_energy_kwh) - np.asarray(out.project_energy_kwh)) * project.electricity_price_per_kwh.value
    completeness = np.divide(length_s - gap, length_s, out=np.zeros_like(length_s), where=length_s > 0)
    h = project_params_hash(project, ef, max_gap_s, params)
    return IntervalResults(
        edges, np.asarray(out.reference_energy_kwh, float), np.asarray(out.project_energy_kwh, float), np.asarray(out.reference_t_co2, float),
        np.asarray(out.project_t_co2, float), np.clip(completeness, 0.0, 1.0), np.asarray(gap, float), h, m.credited, FILL_METHOD, cob,
        events, union, {**stored, **{k: np.asarray(v, float) for k, v in out.inputs.items()}},
    )
