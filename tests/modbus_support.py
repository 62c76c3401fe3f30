"""Helpers for Modbus tests: pymodbus' own server (a register map we load into it) and an
in-process Modbus source that records what it emits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plantmrv.batch import SampleBatch
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.gateway.modbus_source import ModbusSource, ModbusSourceConfig
from plantmrv.localservices import free_port


@dataclass
class Recorder:
    """Batches a source emitted, with helpers to read the last value/quality per field."""

    batches: list[SampleBatch] = field(default_factory=list)
    watermarks: list[int | None] = field(default_factory=list)
    losses: int = 0

    def __call__(self, batch: SampleBatch, watermark_ns: int | None = None, covers=None) -> None:
        self.batches.append(batch)
        self.watermarks.append(watermark_ns)

    def lost(self) -> None:
        self.losses += 1

    def rows(self) -> list[tuple[str, int, float, int]]:
        out = []
        for b in self.batches:
            for s, t, v, q in zip(b.series.tolist(), b.ts_ns.tolist(), b.value.tolist(), b.quality.tolist()):
                out.append((b.table[s].field, t, v, q))
        return out

    def last(self) -> dict[str, tuple[float, int]]:
        return {f: (v, q) for f, _t, v, q in self.rows()}

    def series(self, fld: str) -> list[tuple[int, float, int]]:
        return [(t, v, q) for f, t, v, q in self.rows() if f == fld]


def source_config(port: int, devices: list[dict[str, Any]], **kw) -> ModbusSourceConfig:
    return ModbusSourceConfig.model_validate({"type": "modbus", "name": "m", "host": "127.0.0.1", "port": port,
                                              "reconnect_min_s": 0.2, "reconnect_max_s": 0.5, "devices": devices, **kw})


class PymodbusServer:
    """pymodbus' own ModbusTcpServer (not this project's simulator) in the running event loop.

    ``devices``: unit id -> list of SimData. ``fail``: unit id -> callable(address, count) returning
    None, an ExcCodes member, or "silent" (no answer). ``requests`` counts the read requests received.
    """

    def __init__(self, devices: dict[int, list], fail: dict[int, Any] | None = None, framer: str = "socket"):
        self.port = free_port()
        self.framer = framer
        self.devices = devices
        self.fail = fail or {}
        self.requests = 0
        self.server = None

    async def start(self) -> "PymodbusServer":
        from pymodbus.exceptions import NoSuchIdException
        from pymodbus.framer import FramerType
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import SimDevice

        def make_action(uid):
            async def action(fc, start, address, count, regs, values):
                self.requests += 1
                f = self.fail.get(uid)
                r = f(address, count) if f else None
                if r == "silent":
                    raise NoSuchIdException("silent")
                return r
            return action

        def trace(sending, pdu):
            return pdu

        sims = [SimDevice(uid, simdata=data, action=make_action(uid)) for uid, data in self.devices.items()]
        self.server = ModbusTcpServer(sims, address=("127.0.0.1", self.port), ignore_missing_devices=True, trace_pdu=trace,
                                      framer=FramerType.RTU if self.framer == "rtu" else FramerType.SOCKET)
        await self.server.serve_forever(background=True)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None


async def run_source(cfg: ModbusSourceConfig, seconds: float, during=None) -> tuple[Recorder, ModbusSource]:
    """Run a Modbus source for ``seconds`` (``during``: coroutine run alongside, e.g. toggling faults)."""
    rec = Recorder()
    src = ModbusSource(cfg, "site1", GatewayMetrics())
    task = asyncio.create_task(src.run(rec))
    try:
        if during is not None:
            await asyncio.wait_for(during(src, rec), timeout=seconds + 30)
        else:
            await asyncio.sleep(seconds)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return rec, src


def nan_or(v: float) -> float | None:
    return None if np.isnan(v) else v
