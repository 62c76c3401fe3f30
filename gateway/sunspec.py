"""SunSpec over Modbus: find the ``SunS`` marker, walk the model chain, map points onto ``pv`` fields.

Model definitions (point names, types, sizes, offsets, scale-factor names, units) come from
pysunspec2's JSON model files (``sunspec2/models/json/model_<id>.json``, the SunSpec Alliance's
published information models): they fit, so nothing is retyped here. pysunspec2's own Modbus
client is not used: it is synchronous and would be a second Modbus stack; reads go through the
gateway's pymodbus connection like every other point.

Discovery (:func:`discover`): the two registers ``0x5375 0x6E53`` ("SunS") at 40000, 0 or 50000
(or a configured base), then models as ``ID, L, <L registers>`` until ``ID = 0xFFFF``.

Mapping onto the ``pv`` measurement of ``docs/data-model.md`` (:data:`FIELD_POINTS`):

==================== ============================================ ===================================
field                point (model)                                notes
==================== ============================================ ===================================
ac_power_kw          ``W`` (111-113 float, 101-103 with W_SF, 701) W -> kW
dc_power_kw          ``DCW`` (111-113, 101-103 with DCW_SF)        W -> kW
export_energy_kwh    ``WH`` (111-113, 101-103 acc32 with WH_SF),  Wh -> kWh; a register, rolls over
                     ``TotWhInj`` (701, uint64 with TotWh_SF)
irradiance_w_per_m2  ``POAI`` (302, first sensor)                  plane-of-array irradiance
module_temp_c        ``TmpBOM`` (303, first sensor, fixed SF -1)  back-of-module temperature
==================== ============================================ ===================================

For each field the first model in :data:`MODEL_PREFERENCE` that the device has wins. A point
whose register holds SunSpec's "not implemented" value (``0x8000`` int16, ``0xFFFF`` uint16,
``0`` acc32/acc64, NaN float32, ...) is a BAD sample; a field whose point is not implemented at
discovery is left out (logged), so the device's table lists only what it measures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Awaitable, Callable

SUNS = (0x5375, 0x6E53)
BASE_ADDRESSES = (40000, 0, 50000)  # SunSpec Modbus spec: 40000 first, then 0 and 50000
END_ID = 0xFFFF
MODEL_PREFERENCE = (113, 112, 111, 103, 102, 101, 701, 302, 303)
INVERTER_MODELS = (101, 102, 103, 111, 112, 113, 701)

# field -> [(model ids, point name, unit)]
FIELD_POINTS: dict[str, list[tuple[tuple[int, ...], str, str]]] = {
    "ac_power_kw": [((111, 112, 113), "W", "W"), ((101, 102, 103), "W", "W"), ((701,), "W", "W")],
    "dc_power_kw": [((111, 112, 113), "DCW", "W"), ((101, 102, 103), "DCW", "W")],
    "export_energy_kwh": [((111, 112, 113), "WH", "Wh"), ((101, 102, 103), "WH", "Wh"), ((701,), "TotWhInj", "Wh")],
    "irradiance_w_per_m2": [((302,), "POAI", "W/m2")],
    "module_temp_c": [((303,), "TmpBOM", "degC")],
}
# SunSpec type -> (codec type, registers, "not implemented" raw value; None: NaN for floats)
TYPES = {
    "int16": ("int16", 1, -0x8000), "uint16": ("uint16", 1, 0xFFFF), "sunssf": ("int16", 1, -0x8000),
    "acc16": ("uint16", 1, 0), "enum16": ("uint16", 1, 0xFFFF), "bitfield16": ("uint16", 1, 0xFFFF),
    "int32": ("int32", 2, -0x80000000), "uint32": ("uint32", 2, 0xFFFFFFFF), "acc32": ("uint32", 2, 0),
    "enum32": ("uint32", 2, 0xFFFFFFFF), "bitfield32": ("uint32", 2, 0xFFFFFFFF),
    "int64": ("int64", 4, -0x8000000000000000), "uint64": ("uint64", 4, 0xFFFFFFFFFFFFFFFF), "acc64": ("uint64", 4, 0),
    "float32": ("float32", 2, None), "float64": ("float64", 4, None),
}


@dataclass(frozen=True)
class ModelInstance:
    """One model found on the device: its id, the address of its ID register and its length L."""

    id: int
    address: int
    length: int


@dataclass(frozen=True)
class SunSpecPoint:
    """A point to poll: ``value = raw * 10**sf`` in ``unit``, sf from a register or a fixed number."""

    field: str
    model: int
    name: str
    address: int
    dtype: str  # codec type
    registers: int
    unit: str
    invalid: float | None  # raw "not implemented" value (None: NaN)
    sf_address: int | None = None
    sf_fixed: int = 0


@lru_cache(maxsize=64)
def model_definition(model_id: int) -> dict | None:
    """pysunspec2's JSON definition of a model (None if pysunspec2 has none)."""
    try:
        text = resources.files("sunspec2").joinpath("models", "json", f"model_{model_id}.json").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return None
    return json.loads(text)


def model_name(model_id: int) -> str:
    d = model_definition(model_id)
    return d["group"].get("label") or d["group"]["name"] if d else f"model {model_id}"


def _offsets(group: dict) -> dict[str, tuple[int, dict]]:
    """Point name -> (register offset from the group's start, point definition); first repeat of nested groups."""
    out: dict[str, tuple[int, dict]] = {}
    off = 0
    for p in group.get("points", []):
        out[p["name"]] = (off, p)
        off += int(p.get("size", 1))
    for sub in group.get("groups", []):
        for name, (o, p) in _offsets(sub).items():
            out.setdefault(name, (off + o, p))
        # only the first instance of a repeating group is read
    return out


def points_for(models: list[ModelInstance]) -> tuple[list[SunSpecPoint], list[str]]:
    """The ``pv`` points a device's model chain offers, and notes on fields it does not."""
    by_id = {}
    for m in models:
        by_id.setdefault(m.id, m)
    points: list[SunSpecPoint] = []
    notes: list[str] = []
    for fld, choices in FIELD_POINTS.items():
        chosen = None
        for ids, name, unit in sorted(choices, key=lambda c: min(MODEL_PREFERENCE.index(i) for i in c[0])):
            inst = next((by_id[i] for i in ids if i in by_id), None)
            if inst is None:
                continue
            d = model_definition(inst.id)
            if d is None:
                continue
            offs = _offsets(d["group"])
            if name not in offs:
                continue
            off, pdef = offs[name]
            dtype, nregs, invalid = TYPES[pdef["type"]]
            sf = pdef.get("sf")
            sf_address, sf_fixed = None, 0
            if isinstance(sf, str):
                sf_address = inst.address + offs[sf][0]
            elif isinstance(sf, int):
                sf_fixed = sf
            chosen = SunSpecPoint(fld, inst.id, name, inst.address + off, dtype, nregs, unit, invalid, sf_address, sf_fixed)
            break
        if chosen is None:
            notes.append(f"{fld}: no model of {sorted({i for c in choices for i in c[0]})} on the device")
        else:
            points.append(chosen)
    return points, notes


ReadFn = Callable[[int, int], Awaitable[list[int] | None]]  # (address, count) -> registers, None on error


async def discover(read: ReadFn, base_address: int | None = None, max_models: int = 64) -> tuple[int, list[ModelInstance]]:
    """Find ``SunS`` (at ``base_address``, else 40000, 0, 50000) and walk the model chain.

    ``read(address, count)`` returns the registers, or None when the device answers with an
    exception or not at all. Returns ``(base, models)``; LookupError when no marker is found.
    """
    for base in ((base_address,) if base_address is not None else BASE_ADDRESSES):
        regs = await read(base, 2)
        if regs is None or tuple(regs[:2]) != SUNS:
            continue
        models = []
        addr = base + 2
        for _ in range(max_models):
            hdr = await read(addr, 2)
            if hdr is None or hdr[0] == END_ID or addr + 2 + hdr[1] > 0x10000:
                break
            models.append(ModelInstance(int(hdr[0]), addr, int(hdr[1])))
            addr += 2 + int(hdr[1])
        return base, models
    where = base_address if base_address is not None else "40000, 0 or 50000"
    raise LookupError(f"no SunSpec marker 'SunS' at {where}")
