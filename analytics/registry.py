"""The methodology registry: every methodology describes itself once, everyone reads it.

A methodology (one plant type with one baseline model) is registered by its module as a
:class:`Methodology`: the quantities it reads (each measured by a cumulative meter or a rate,
with its unit and the side of the ER equation it sits on), the state signals it reads, its
parameter set (each parameter with unit, source and bounds), whether it is credited, the
formula text the API and the workbook show, and the pure function that computes its
interval results. The engine, the config checks, the API, the dashboards and the
ground-truth check all read this registry; adding a methodology touches its own module.

Roles are the asset fields a project maps (``energy_meter: energy_kwh``); each has a kind
and the unit its data must be convertible to (checked with :mod:`plantmrv.units` against the
unit in the field's name).

Sides and the conservative rule (``methodologies.md`` section 1): a ``reference`` quantity
counts only what was measured over covered time (a gap adds 0, never a guess); a ``project``
quantity adds, over every gap, the larger of what its meter measured across the gap and the
methodology's configured maximum plausible rate (the parameter named by ``fill``) times the
gap; a ``kpi`` quantity (co-benefits) counts covered time only. Every gap of every quantity
and state counts in completeness and ``gap_filled_s``.

The workbook (the verifier's xlsx export) re-derives every interval from what the engine
stores beside its results: per quantity the amount over covered time, and for a project-side
quantity its gap seconds and its meter's increment across them (:func:`input_fields`). A
methodology lays out its calculation as :class:`Column` s, spreadsheet formulas over those
inputs and its parameters, and names the auxiliary tables it needs (:class:`DecayTable`,
:class:`DayTable`); no spreadsheet library is involved here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

import numpy as np

#: Modules that register methodologies (imported on first use of the registry).
METHODOLOGY_MODULES = ("pumps", "vsd", "ubcf", "wte", "pv")


@dataclass(frozen=True)
class Role:
    """A role an asset field can play in a project (the keys of ``assets[].fields``)."""

    name: str
    kind: Literal["meter", "rate", "state", "level"]
    unit: str  # unit the field's data is converted to ("1" for 0/1 flags)
    symbol: str
    description: str


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("energy_meter", "meter", "kWh", "EC_PJ", "Electricity consumed (cumulative register)"),
        Role("power", "rate", "kW", "P_PJ", "Active power consumed (when no energy meter)"),
        Role("volume_meter", "meter", "m3", "V_PJ", "Volume delivered or treated (cumulative register)"),
        Role("flow", "rate", "m3/h", "Q_PJ", "Flow (volume when no volume meter)"),
        Role("hours_meter", "meter", "h", "t_PJ", "Run-hours counter of the project equipment"),
        Role("running", "rate", "1", "t_PJ", "0/1 running flag, integrated to operating hours (when no run-hours counter)"),
        Role("export_meter", "meter", "kWh", "EG", "Electricity supplied to the grid (cumulative register)"),
        Role("export_power", "rate", "kW", "P_EG", "Power supplied to the grid (when no export meter); negative values net off"),
        Role("import_meter", "meter", "kWh", "EC_import", "Electricity purchased from the grid (cumulative register)"),
        Role("import_power", "rate", "kW", "P_import", "Power purchased from the grid (when no import meter)"),
        Role("waste_meter", "meter", "t", "W", "Waste fed (weighbridge, cumulative)"),
        Role("waste_rate", "rate", "t/h", "W_rate", "Waste feed rate (when no weighbridge register)"),
        Role("aux_fuel_meter", "meter", "kg", "FC_aux", "Auxiliary fossil fuel (totaliser register)"),
        Role("aux_fuel_rate", "rate", "kg/h", "FC_aux", "Auxiliary fossil fuel rate (when no totaliser)"),
        Role("chlorine_rate", "rate", "kg/h", "Cl", "Chlorine dose"),
        Role("coagulant_rate", "rate", "kg/h", "Coag", "Coagulant dose"),
        Role("grid_available", "state", "1", "GA_d", "0/1 grid supply flag, held until the next sample (JCM KH_AM002 day category)"),
    )
}


@dataclass(frozen=True)
class Quantity:
    """An amount per interval a methodology needs, measured by a meter role or a rate role."""

    name: str
    unit: str  # amount unit (kWh, m3, t, kg, h)
    meter: str | None
    rate: str | None
    side: Literal["reference", "project", "kpi"]
    symbol: str
    description: str
    required: bool = True
    fill: str | None = None  # project side: the parameter with the maximum plausible rate


@dataclass(frozen=True)
class Formula:
    """A formula as the methodology document states it (the API and the workbook show it)."""

    symbol: str
    expression: str
    description: str
    tag: Literal["published", "derived", "form"]


@dataclass(frozen=True)
class InputField:
    """A per-interval input the engine stores beside the results (a field of measurement ``mrv``),
    from which the workbook's formulas re-derive them."""

    field: str  # the mrv field
    name: str  # how column expressions name it: ``<quantity>.covered``, ``<quantity>.gap_s``, ``<quantity>.gap``, or its own name
    symbol: str
    unit: str
    description: str
    quantity: str | None = None  # the quantity it belongs to (None: a methodology's own input)


@dataclass(frozen=True)
class Column:
    """One column of the workbook's Calculation sheet: a spreadsheet formula per interval.

    ``expression`` is spreadsheet syntax (``+ - * / ( )``, ``MAX``, ``MIN``, ``IF``, ``EXP``)
    over names in braces that the workbook resolves to cells: the interval's stored inputs by
    their :attr:`InputField.name` (``{project_energy.covered}``), the methodology's parameters
    by name (``{eta_project}``, the Input sheet), ``{EF_grid}``, ``{kWh_per_MWh}``, the ``key``
    of an earlier column, and the names a table provides (``{fod.factor}``). A tuple holds
    alternatives: the first whose names all resolve (inputs measured, parameters with a value)
    is used; a column none of whose alternatives resolves is left out (an optional quantity the
    project does not measure). ``result``: the field of ``mrv`` (and of the API's intervals)
    the column reproduces.
    """

    key: str
    symbol: str
    unit: str
    description: str
    expression: str | tuple[str, ...]
    result: str | None = None
    total: bool = True  # summed in the period's total row

    @property
    def alternatives(self) -> tuple[str, ...]:
        return (self.expression,) if isinstance(self.expression, str) else tuple(self.expression)


@dataclass(frozen=True)
class DecayTable:
    """First-order decay laid out in the workbook (CDM TOOL04): the constant factor, the waste
    types, the waste of each crediting year, and per year y one block with the decay in y of
    each earlier year's waste (the tail). Columns name ``{<name>.factor}``,
    ``{<name>.first_year}`` (first-year decay per tonne, summed over types) and
    ``{<name>.tail}`` (the interval's share of its year's tail)."""

    name: str
    quantity: str  # the waste diverted (reference side, covered time)
    factor: str  # expression over scalar parameters [tCO2e per t of decaying DOC]
    types: tuple[str, ...]
    share: str  # vector parameters, one value per type
    doc: str
    k: str
    year_edges: Callable[[int, int], np.ndarray]  # (crediting start ns, until ns) -> year starts ns


@dataclass(frozen=True)
class DayTable:
    """Categories of local days d (JCM KH_AM002) laid out in the workbook: one row per day and
    stored category; the interval's ``{<input>}`` names its day's category cell."""

    input: str  # the methodology input holding the category of the interval's day
    categories: tuple[tuple[int, str], ...]  # (code, meaning)
    day_edges: Callable[[int, int, float], np.ndarray]  # (start ns, end ns, UTC offset h) -> local midnights ns


@dataclass
class Inputs:
    """What a methodology's ``compute`` gets: conservative amounts per quantity, states, parameters."""

    project: Any  # ProjectConfig
    edges_ns: np.ndarray
    amounts: dict[str, np.ndarray]  # quantity name -> amount per interval, conservative fill applied
    covered: dict[str, np.ndarray]  # quantity name -> amount over covered time only (no fill)
    states: dict[str, list[tuple[np.ndarray, np.ndarray]]]  # state role -> held signals
    params: Any  # the methodology's parameter dataclass (project overrides applied, canonical units)
    ef_t_co2_per_mwh: float
    prior_waste_t_by_year: Any = None
    extra_signals: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)  # co-benefit levels
    max_gap_s: float | None = None  # the hold limit of state signals

    @property
    def length_s(self) -> np.ndarray:
        return np.diff(self.edges_ns) / 1e9

    def value(self, name: str):
        """The value of parameter ``name`` (in the methodology's unit)."""
        return getattr(self.params, name).value


@dataclass
class Outputs:
    """A methodology's interval results (arrays aligned with the intervals)."""

    reference_energy_kwh: np.ndarray
    project_energy_kwh: np.ndarray
    reference_t_co2: np.ndarray
    project_t_co2: np.ndarray
    cobenefits: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # the methodology's own stored inputs (:attr:`Methodology.inputs`)


@dataclass(frozen=True)
class Methodology:
    """One methodology: a plant type with one baseline model."""

    plant_type: str
    baseline: str
    title: str
    credited: bool
    quantities: tuple[Quantity, ...]
    parameters: type
    required_parameters: tuple[str, ...]
    formulas: tuple[Formula, ...]
    compute: Callable[[Inputs], Outputs]
    source: str
    states: tuple[str, ...] = ()
    label: str = ""
    #: (project -> (start, end)): where a window's state signals must be read (KH_AM002: whole local days)
    state_span: Callable[[Any, int, int], tuple[int, int]] | None = None
    #: (condition on the project, formula) pairs shown only where they apply
    conditional_formulas: tuple[tuple[Callable[[Any], bool], Formula], ...] = ()
    #: the workbook's Calculation columns, the methodology's own stored inputs, its tables
    columns: tuple[Column, ...] = ()
    inputs: tuple[InputField, ...] = ()
    tables: tuple[DecayTable | DayTable, ...] = ()

    def formulas_for(self, project) -> tuple[Formula, ...]:
        return self.formulas + tuple(f for cond, f in self.conditional_formulas if cond(project))

    @property
    def key(self) -> str:
        return f"{self.plant_type}/{self.baseline}"

    def roles(self) -> tuple[str, ...]:
        out = []
        for q in self.quantities:
            out += [r for r in (q.meter, q.rate) if r]
        return tuple(dict.fromkeys(out + list(self.states)))

    def element_labels(self, parameter: str) -> tuple[str, ...] | None:
        """Labels of the values of a vector parameter (the waste types of a decay table)."""
        for t in self.tables:
            if isinstance(t, DecayTable) and parameter in (t.share, t.doc, t.k):
                return t.types
        return None


_REGISTRY: dict[tuple[str, str], Methodology] = {}
_ORDER: dict[str, list[str]] = {}
_loaded = False


def register(m: Methodology) -> Methodology:
    """Add a methodology (called by its module at import); the first baseline of a plant type is its default."""
    _REGISTRY[(m.plant_type, m.baseline)] = m
    _ORDER.setdefault(m.plant_type, [])
    if m.baseline not in _ORDER[m.plant_type]:
        _ORDER[m.plant_type].append(m.baseline)
    return m


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in METHODOLOGY_MODULES:
            importlib.import_module(f"{__package__}.{name}")


def plant_types() -> tuple[str, ...]:
    _load()
    return tuple(_ORDER)


def baselines(plant_type: str) -> tuple[str, ...]:
    """Baseline models of a plant type, the default first."""
    _load()
    if plant_type not in _ORDER:
        raise ValueError(f"plant_type {plant_type!r} unknown; choose one of {', '.join(_ORDER)}")
    return tuple(_ORDER[plant_type])


def get(plant_type: str, baseline: str | None = None) -> Methodology:
    """The methodology of ``plant_type`` with ``baseline`` (default: the plant type's first)."""
    names = baselines(plant_type)
    b = baseline or names[0]
    if b not in names:
        raise ValueError(f"baseline {b!r} does not apply to plant_type {plant_type!r}; choose one of {', '.join(names)}")
    return _REGISTRY[(plant_type, b)]


def all_methodologies() -> list[Methodology]:
    """Every registered methodology, by name: the same order whichever module was imported first."""
    _load()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise ValueError(f"role {name!r} unknown; choose one of {', '.join(ROLES)}") from None


def quantity_sources(m: Methodology, configured: Mapping[str, Any]) -> dict[str, str | None]:
    """For each quantity: the role that measures it in this project (its meter when configured,
    else its rate), or None."""
    out = {}
    for q in m.quantities:
        src = None
        for r in (q.meter, q.rate):
            if r and configured.get(r):
                src = r
                break
        out[q.name] = src
    return out


def _unit_suffix(unit: str) -> str:
    return unit.lower().replace("/", "_per_")


def input_fields(m: Methodology) -> tuple[InputField, ...]:
    """The per-interval inputs the engine stores for methodology ``m`` (fields of ``mrv``).

    Per quantity its amount over covered time (``<quantity>_covered_<unit>``; quantities read
    from the same roles share the field of the first); per project-side quantity also its gap
    seconds (``<quantity>_gap_s``) and its meter's increment across those gaps
    (``<quantity>_gap_<unit>``); then the methodology's own inputs."""
    out: list[InputField] = []
    first: dict[tuple, str] = {}
    for q in m.quantities:
        u = _unit_suffix(q.unit)
        covered = first.setdefault((q.meter, q.rate), f"{q.name}_covered_{u}")
        out.append(InputField(covered, f"{q.name}.covered", f"{q.symbol},covered", q.unit, f"{q.description}, over covered time", q.name))
        if q.side == "project":
            out.append(InputField(f"{q.name}_gap_s", f"{q.name}.gap_s", f"gap_s({q.symbol})", "s", f"Seconds without data of {q.symbol}", q.name))
            out.append(InputField(f"{q.name}_gap_{u}", f"{q.name}.gap", f"{q.symbol},gap", q.unit, f"{q.symbol} its meter measured across those seconds", q.name))
    return tuple(out) + m.inputs


def fill_column(q: Quantity, key: str, symbol: str, description: str, result: str | None = None) -> Column:
    """The conservative fill of a project-side quantity as a workbook column:
    covered amount + max(gap seconds / 3600 x the configured fill rate, the meter's increment across the gap)."""
    n = q.name
    return Column(key, symbol, q.unit, description, f"{{{n}.covered}} + MAX({{{n}.gap_s}} / 3600 * {{{q.fill}}}, {{{n}.gap}})", result)
