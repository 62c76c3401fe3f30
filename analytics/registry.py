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
    _load()
    return list(_REGISTRY.values())


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
