"""Shared pieces of the plant models: physical constants, the field table type, model assembly.

A plant module defines ``FIELDS`` (field -> (unit, description), in the order of
``docs/data-model.md``), ``METERS`` (meter field -> the rate it integrates), a frozen params
dataclass, ``instant(ts_ns, key, params)`` (every non-meter field at each timestamp) and
``meter_rates(fields)`` (rate per hour for each meter). :func:`assemble` turns those into the
public ``model(ts_ns, rng, params)``.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from .meters import meter_fields
from .signals import key_from

RHO_WATER_KG_PER_M3 = 1000.0  # methodologies.md, pump section
G_M_PER_S2 = 9.80665  # standard gravity (CGPM 1901)

FieldTable = Mapping[str, tuple[str, str]]
CHUNK = 86_400  # samples per piece when a long grid is evaluated


def hydraulic_power_kw(flow_m3_per_h, head_m):
    """P_hyd = rho g Q H [kW], Q in m3/h converted to m3/s."""
    return RHO_WATER_KG_PER_M3 * G_M_PER_S2 * (np.asarray(flow_m3_per_h) / 3600.0) * np.asarray(head_m) / 1000.0


def assemble(
    tag: str,
    fields: FieldTable,
    meters: Mapping[str, str],
    instant: Callable,
    meter_rates: Callable,
    ts_ns,
    rng,
    params,
) -> dict[str, np.ndarray]:
    """Evaluate a plant: instantaneous fields plus meter registers, ordered as ``fields``."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    key = key_from(rng)
    if ts.ndim == 1 and len(ts) > 2 * CHUNK:
        # long grids in day-sized pieces: temporaries stay small, not 100s of MB (bench/README.md, simulate);
        # values do not depend on the split (grid-independent noise, absolute meter knots)
        out = {name: np.empty(len(ts)) for name in fields}
        for i in range(0, len(ts), CHUNK):
            part = assemble(tag, fields, meters, instant, meter_rates, ts[i : i + CHUNK], key, params)
            for name in fields:
                out[name][i : i + CHUNK] = part[name]
        return out
    inst = instant(ts, key, params)

    def rate_fn(knots):
        return meter_rates(instant(knots, key, params))

    regs = meter_fields(rate_fn, meters, ts, params.meter, cache_key=(tag, key, params))
    out = {}
    for name in fields:
        v = regs[name] if name in regs else inst[name]
        v = np.asarray(v, dtype=np.float64)
        out[name] = v if v.shape == ts.shape else np.full(ts.shape, v)
    return out
