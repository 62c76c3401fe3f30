"""Registry of plant types and the helpers other packages use to generate plant data.

``PLANT_TYPES[type]`` is a :class:`PlantType`: InfluxDB measurement, model function, params
class, field table (field -> (unit, description)), meter fields, default site and asset.

- :func:`generate` ``(plant_type, ts_ns, rng_or_seed, params=None, **overrides)`` -> fields
- :func:`to_batch` ``(site, asset, plant_type, ts_ns, fields, quality=None)`` -> SampleBatch
- :func:`make_params` ``(plant_type, overrides)`` -> params dataclass (nested ``meter`` dict ok)
- :func:`simulate_batch` ``(plant_type, ts_ns, rng=0, params=None, site=None, asset=None,
  faults=())`` -> SampleBatch as a pipeline would receive it (faults applied, quality set)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from plantmrv.batch import SampleBatch, Series

from . import pump, pv, ubcf, vsd, wte
from .meters import MeterParams


@dataclass(frozen=True)
class PlantType:
    """One plant type: what it is called in InfluxDB and how to simulate it."""

    name: str
    measurement: str
    model: Callable[..., dict[str, np.ndarray]]
    params_cls: type
    fields: Mapping[str, tuple[str, str]]
    meters: tuple[str, ...]
    default_site: str
    default_asset: str
    module: Any

    @property
    def units(self) -> dict[str, str]:
        """Field -> unit."""
        return {k: v[0] for k, v in self.fields.items()}

    def __iter__(self):  # (measurement, model, params class, field->unit) as the brief describes
        return iter((self.measurement, self.model, self.params_cls, self.units))


def _pt(name, module, params_cls, site, asset) -> PlantType:
    return PlantType(name, module.MEASUREMENT, module.model, params_cls, module.FIELDS, tuple(module.METERS), site, asset, module)


PLANT_TYPES: dict[str, PlantType] = {
    "ubcf": _pt("ubcf", ubcf, ubcf.UbcfParams, "haiphong", "ubcf1"),
    "pump": _pt("pump", pump, pump.PumpParams, "danang", "pump1"),
    "vsd": _pt("vsd", vsd, vsd.VsdParams, "hcmc", "intake1"),
    "wte": _pt("wte", wte, wte.WteParams, "yangon", "wte1"),
    "pv": _pt("pv", pv, pv.PvParams, "binhduong", "pv1"),
}


def plant_type(name: str) -> PlantType:
    try:
        return PLANT_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown plant type {name!r}; known: {', '.join(PLANT_TYPES)}") from None


def make_params(plant: str, overrides: Mapping[str, Any] | None = None, where: str = "params"):
    """Params dataclass for a plant type with ``overrides`` applied (``meter`` may be a dict).

    Raises ValueError naming ``where.<key>`` for an unknown key or a value of the wrong type.
    """
    pt = plant_type(plant)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"{where}: expected a mapping of parameter names to values, got {overrides!r}")
    overrides = dict(overrides or {})
    names = {f.name: f for f in dataclasses.fields(pt.params_cls)}
    kwargs = {}
    for k, v in overrides.items():
        if k not in names:
            raise ValueError(f"{where}.{k}: unknown parameter for plant type {plant!r}; known: {', '.join(names)}")
        if k == "meter":
            if isinstance(v, MeterParams):
                kwargs[k] = v
                continue
            if not isinstance(v, Mapping):
                raise ValueError(f"{where}.meter: expected a mapping, got {type(v).__name__}")
            mnames = {f.name for f in dataclasses.fields(MeterParams)}
            for mk in v:
                if mk not in mnames:
                    raise ValueError(f"{where}.meter.{mk}: unknown meter parameter; known: {', '.join(sorted(mnames))}")
            mv = dict(v)
            for num in ("initial", "rollover", "step_s"):
                if num in mv and (isinstance(mv[num], bool) or not isinstance(mv[num], (int, float))):
                    raise ValueError(f"{where}.meter.{num}: expected a number, got {mv[num]!r}")
            if "replacements" in mv:
                if not isinstance(mv["replacements"], (list, tuple)):
                    raise ValueError(f"{where}.meter.replacements: expected a list of times")
                mv["replacements"] = tuple(str(x) if not isinstance(x, int) else x for x in mv["replacements"])
            meter = MeterParams(**mv)
            try:
                meter.origin_ns, meter.step_ns, meter.replacements_ns
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}.meter: {exc}") from None
            if meter.rollover <= 0:
                raise ValueError(f"{where}.meter.rollover: must be > 0")
            kwargs[k] = meter
            continue
        default = getattr(pt.params_cls(), k)
        if isinstance(default, tuple):
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"{where}.{k}: expected a list, got {v!r}")
            v = tuple(v)
        elif isinstance(default, bool):
            if not isinstance(v, bool):
                raise ValueError(f"{where}.{k}: expected true/false, got {v!r}")
        elif isinstance(default, (int, float)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{where}.{k}: expected a number, got {v!r}")
            v = float(v)
        kwargs[k] = v
    return pt.params_cls(**kwargs)


def generate(
    plant: str,
    ts_ns: np.ndarray,
    rng: np.random.Generator | int | None = 0,
    params: Any = None,
    **overrides: Any,
) -> dict[str, np.ndarray]:
    """Simulate one plant on a time grid.

    Parameters
    ----------
    plant : str  Plant type, a key of :data:`PLANT_TYPES`
    ts_ns : array  Unix timestamps [ns] (int64)
    rng : np.random.Generator or int  Seeded generator or integer seed. Same seed and same
        timestamps give identical output; the value at a timestamp does not depend on the grid.
    params : params dataclass, optional  Defaults of the plant type when None
    **overrides : parameter overrides applied on top of ``params`` / defaults

    Returns
    -------
    dict  Field name -> float64 array (names and units per docs/data-model.md).
    """
    pt = plant_type(plant)
    if params is None:
        params = make_params(plant, overrides)
    elif overrides:
        params = dataclasses.replace(params, **overrides)
    return pt.model(np.asarray(ts_ns, dtype=np.int64), rng, params)


def to_batch(
    site: str,
    asset: str,
    plant: str,
    ts_ns: np.ndarray,
    fields: Mapping[str, np.ndarray],
    quality: Mapping[str, np.ndarray] | None = None,
) -> SampleBatch:
    """Columnar batch of a plant's fields: measurement = plant type's, tags site and asset.

    ``quality`` optionally maps field -> uint8 quality array (see :class:`plantmrv.batch.Quality`).
    Samples whose value is NaN (e.g. after :func:`faults.apply_dropout`) are left out.
    """
    pt = plant_type(plant)
    ts = np.asarray(ts_ns, dtype=np.int64)
    table, s_parts, t_parts, v_parts, q_parts = [], [], [], [], []
    for name, vals in fields.items():
        v = np.asarray(vals, dtype=np.float64)
        if v.shape != ts.shape:
            raise ValueError(f"to_batch: field {name!r} has {v.shape[0]} values for {ts.shape[0]} timestamps")
        keep = ~np.isnan(v)
        i = len(table)
        table.append(Series.of(pt.measurement, name, site=site, asset=asset))
        n = int(keep.sum())
        s_parts.append(np.full(n, i, dtype=np.int32))
        t_parts.append(ts[keep])
        v_parts.append(v[keep])
        q = quality.get(name) if quality else None
        q_parts.append(np.zeros(n, np.uint8) if q is None else np.asarray(q, np.uint8)[keep])
    if not table:
        return SampleBatch.empty()
    return SampleBatch(table, np.concatenate(s_parts), np.concatenate(t_parts), np.concatenate(v_parts), np.concatenate(q_parts))


def simulate_batch(
    plant: str,
    ts_ns: np.ndarray,
    rng: np.random.Generator | int | None = 0,
    params: Any = None,
    site: str | None = None,
    asset: str | None = None,
    faults: Any = (),
) -> SampleBatch:
    """Generate one asset's data as a pipeline would receive it, as a :class:`SampleBatch`.

    ``faults`` (:class:`plantmrv.simulators.faults.Fault` list) are applied the way the server
    applies them: meter resets change the registers, dropouts / restarts / stalls leave no
    sample, stuck and spike change values, bad / uncertain statuses set the quality column.
    Site and asset default to the plant type's defaults.
    """
    from .faults import apply_faults, with_meter_resets

    pt = plant_type(plant)
    site = site or pt.default_site
    asset = asset or pt.default_asset
    params = params if params is not None else make_params(plant)
    faults = list(faults)
    params = with_meter_resets(params, faults, site, asset)
    fields = generate(plant, ts_ns, rng, params)
    if faults:
        fields, quality = apply_faults(faults, site, asset, ts_ns, fields)
    else:
        quality = None
    return to_batch(site, asset, plant, ts_ns, fields, quality)
