"""The plants over Modbus TCP (pymodbus server): a Danfoss-FC-style VSD and a SunSpec PV inverter.

``plantmrv simulate --modbus PORT`` serves every ``vsd`` and ``pv`` asset as one unit id (1, 2,
... in config order) on one Modbus TCP listener; values come from the same plant models, faults
and ground truth as the OPC UA and MQTT paths (:class:`~.server.Simulator`).

VSD: Danfoss VLT FC-series register map
---------------------------------------
Danfoss FC drives (VLT AQUA Drive FC 202, HVAC Drive FC 102) expose every parameter as holding
registers at ``parameter number x 10 - 1`` (0-based protocol address), 32-bit values most
significant register first, integers scaled by the parameter's conversion index [1]_ [2]_:

========= ========================= ====== ======= ==================== ====================
address   parameter                 type   scale   field                notes
========= ========================= ====== ======= ==================== ====================
15019     15-02 kWh Counter         uint32 1 kWh   energy_kwh           rolls over at 2**32
16029     16-03 Status Word         uint16 bits    running              bit 11 "running" (FC profile)
16049     16-05 Main Actual Value   int16  0x4000  speed_pct            16384 = 100 % (FC profile)
16099     16-10 Power [kW]          int32  0.01 kW power_kw             conversion index -2
16129     16-13 Frequency           uint16 0.1 Hz  frequency_hz         conversion index -1
16519     16-52 Feedback [Unit]     int32  0.001   flow_m3_per_h        feedback unit m3/h
========= ========================= ====== ======= ==================== ====================

PV: SunSpec inverter
--------------------
``SunS`` at 40000, then model 1 (common: Mn ``plantmrv``, Md ``sim-pv``, SN the asset name),
model 103 (three-phase inverter, integer + scale factors: ``W`` with ``W_SF`` = 2, ``DCW`` with
``DCW_SF`` = 2, ``WH`` acc32 with ``WH_SF`` = 1, so the register counts 10 Wh and rolls over
at 2**32), model 302 (irradiance: ``POAI``) and 303 (back-of-module temperature ``TmpBOM``,
0.1 degC), then the end marker. Offsets come from pysunspec2's model definitions [3]_.

Faults
------
``dropout`` of a field: a request that covers its registers gets no answer (the client times
out); ``bad_status``: exception 04 (server device failure); ``stuck`` / ``uncertain`` hold the
value, ``spike`` multiplies it, ``meter_reset`` restarts the counter, ``server_restart`` closes
the listener (every connection drops) until its end, ``network_stall`` freezes the process.

References
----------
.. [1] Danfoss: VLT AQUA Drive FC 202 Design Guide, MG20N, chapter "RS-485 Installation and
   Set-up": Modbus RTU holding registers (parameter number x 10) and the FC control profile.
.. [2] Danfoss: VLT AQUA Drive FC 202 Programming Guide, "Parameter Lists" (conversion index and
   data type of parameters 15-02, 16-03, 16-05, 16-10, 16-13, 16-52).
.. [3] SunSpec Alliance: SunSpec Information Model Specification and models 1, 103, 302, 303
   (as shipped in pysunspec2 ``sunspec2/models/json``); SunSpec Modbus specification (base
   address 40000, ``SunS`` marker, end model 0xFFFF).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plantmrv.gateway.modbus_codec import encode, encode_string

if TYPE_CHECKING:  # pragma: no cover
    from .server import Simulator, _AssetRuntime

log = logging.getLogger("plantmrv.simulators.modbus")

MODBUS_PLANTS = ("vsd", "pv")
SUNSPEC_BASE = 40000


@dataclass(frozen=True)
class Reg:
    """A served value: field, holding-register address, codec type and raw units per field unit."""

    field: str
    address: int
    dtype: str
    per_unit: float  # raw = value * per_unit
    bit: int | None = None


VSD_MAP = (
    Reg("energy_kwh", 15019, "uint32", 1.0),
    Reg("running", 16029, "uint16", 1.0, bit=11),
    Reg("speed_pct", 16049, "int16", 16384 / 100.0),
    Reg("power_kw", 16099, "int32", 100.0),
    Reg("frequency_hz", 16129, "uint16", 10.0),
    Reg("flow_m3_per_h", 16519, "int32", 1000.0),
)
VSD_SPAN = (15000, 16530)  # served register range (the holes between parameters read as 0)
VSD_STATUS_ALWAYS = (1 << 0) | (1 << 1) | (1 << 3)  # control ready, drive ready, no error


def _sunspec_layout() -> tuple[dict[str, tuple[int, str, float]], list[tuple[int, list[int]]], int]:
    """PV map: field -> (address, codec type, raw per unit); fixed registers; end address."""
    from plantmrv.gateway.sunspec import _offsets, model_definition

    fixed: list[tuple[int, list[int]]] = [(SUNSPEC_BASE, [0x5375, 0x6E53])]
    addr = SUNSPEC_BASE + 2
    fields: dict[str, tuple[int, str, float]] = {}
    models = {1: 66, 103: 50, 302: 7, 303: 3}
    for mid, length in models.items():
        offs = _offsets(model_definition(mid)["group"])
        regs = [0] * (2 + length)
        regs[0], regs[1] = mid, length
        for name, (off, p) in offs.items():  # "not implemented" everywhere first
            if off < 2:
                continue
            t = p["type"]
            if t in ("int16", "sunssf"):
                regs[off] = 0x8000
            elif t in ("uint16", "enum16", "bitfield16"):
                regs[off] = 0xFFFF
            elif t in ("uint32", "enum32", "bitfield32"):
                regs[off:off + 2] = [0xFFFF, 0xFFFF]
            elif t == "int32":
                regs[off:off + 2] = [0x8000, 0]
            elif t == "float32":
                regs[off:off + 2] = [0x7FC0, 0]
        if mid == 1:
            for name, text in (("Mn", "plantmrv"), ("Md", "sim-pv"), ("Opt", ""), ("Vr", "1.0"), ("SN", "")):
                off, p = offs[name]
                regs[off:off + int(p["size"])] = encode_string(text, int(p["size"]))
            regs[offs["DA"][0]] = 1
        if mid == 103:
            for sf, val in (("W_SF", 2), ("DCW_SF", 2), ("WH_SF", 1)):
                regs[offs[sf][0]] = val & 0xFFFF
            fields["ac_power_kw"] = (addr + offs["W"][0], "int16", 1000.0 / 100)
            fields["dc_power_kw"] = (addr + offs["DCW"][0], "int16", 1000.0 / 100)
            fields["export_energy_kwh"] = (addr + offs["WH"][0], "uint32", 1000.0 / 10)
            fields["_state"] = (addr + offs["St"][0], "uint16", 1.0)
        if mid == 302:
            fields["irradiance_w_per_m2"] = (addr + offs["POAI"][0], "uint16", 1.0)
        if mid == 303:
            fields["module_temp_c"] = (addr + offs["TmpBOM"][0], "int16", 10.0)
        fixed.append((addr, regs))
        addr += 2 + length
    fixed.append((addr, [0xFFFF, 0]))
    return fields, fixed, addr + 2


class _Unit:
    """One served asset: its registers are refreshed from the plant model on each request."""

    def __init__(self, sim: "Simulator", rt: "_AssetRuntime", unit_id: int):
        self.sim = sim
        self.rt = rt
        self.unit_id = unit_id
        self.plant = rt.spec.plant
        self.cache_k = -1
        if self.plant == "vsd":
            self.start = VSD_SPAN[0]
            self.size = VSD_SPAN[1] - VSD_SPAN[0]
            self.regs_of = {r.field: (r.address, r.dtype, r.per_unit, r.bit) for r in VSD_MAP}
            self.fixed: list[tuple[int, list[int]]] = []
        else:
            layout, self.fixed, end = _sunspec_layout()
            self.start = SUNSPEC_BASE
            self.size = end - SUNSPEC_BASE
            self.regs_of = {f: (a, t, u, None) for f, (a, t, u) in layout.items()}
        # field -> (first register, count) for the fault lookup
        self.span = {f: (a, 2 if t in ("int32", "uint32") else 1) for f, (a, t, _u, _b) in self.regs_of.items()}

    def simdevice(self):
        from pymodbus.simulator import DataType, SimData, SimDevice

        return SimDevice(self.unit_id, simdata=[SimData(self.start, count=self.size, values=0, datatype=DataType.REGISTERS)],
                         action=self.action)

    def refresh(self, registers: list[int]) -> dict[str, tuple[float | None, str | None]]:
        """Write the current tick's values into ``registers`` (the device's block); return field states."""
        k = self.sim.k
        vals = {self.rt.fields[i]: (v, s) for i, v, s in self.sim.asset_values(self.rt, k)}
        for a, regs in self.fixed:
            registers[a - self.start:a - self.start + len(regs)] = regs
        status = VSD_STATUS_ALWAYS
        for fld, (addr, dtype, per_unit, bit) in self.regs_of.items():
            if fld == "_state":
                p = vals.get("ac_power_kw", (None, None))[0]
                registers[addr - self.start] = 4 if p and p > 0 else 2  # MPPT / sleeping
                continue
            v, _s = vals.get(fld, (None, None))
            if v is None or not np.isfinite(v):
                continue
            if bit is not None:
                status |= (1 << bit) if v >= 0.5 else 0
                registers[addr - self.start] = status
                continue
            raw = np.round(v * per_unit) if dtype not in ("uint32",) or fld != "energy_kwh" else np.floor(v * per_unit)
            r = encode([raw], dtype)[0]
            registers[addr - self.start:addr - self.start + len(r)] = [int(x) for x in r]
        self.cache_k = k
        return vals

    async def action(self, function_code: int, start_address: int, address: int, count: int,
                     current_registers: list[int], set_values: Any) -> Any:
        from pymodbus.constants import ExcCodes
        from pymodbus.exceptions import NoSuchIdException

        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # read-only device
        states = self.refresh(current_registers)
        end = address + count
        for fld, (a, n) in self.span.items():
            if a >= end or a + n <= address or fld.startswith("_"):
                continue
            v, status = states.get(fld, (None, None))
            if status and status.startswith("Bad"):
                return ExcCodes.DEVICE_FAILURE
            if v is None:  # dropout / server down: the device stays silent, the client times out
                raise NoSuchIdException(f"unit {self.unit_id}: {fld} in dropout")
        return None


class ModbusPlantServer:
    """The Modbus TCP listener of a :class:`~.server.Simulator` (``--modbus PORT``)."""

    def __init__(self, sim: "Simulator", host: str, port: int):
        self.sim = sim
        self.host = host
        self.port = port
        self.units = [_Unit(sim, rt, i + 1) for i, rt in enumerate(r for r in sim.assets if r.spec.plant in MODBUS_PLANTS)]
        self.server = None

    def describe(self) -> list[str]:
        return [f"unit={u.unit_id} site={u.rt.spec.site} asset={u.rt.spec.asset} plant={u.plant} "
                f"map={'danfoss-fc' if u.plant == 'vsd' else 'sunspec-103'}" for u in self.units]

    async def start(self) -> None:
        from pymodbus.server import ModbusTcpServer

        if not self.units:
            raise ValueError("--modbus: no vsd or pv plant to serve (Modbus serves the vsd and pv plant types)")
        self.server = ModbusTcpServer([u.simdevice() for u in self.units], address=(self.host, self.port),
                                      ignore_missing_devices=True)
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def restart(self, down_s: float) -> None:
        await self.stop()
        await asyncio.sleep(down_s)
        await self.start()
