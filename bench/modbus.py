"""Modbus polling: plantmrv's block reads vs a naive one-request-per-tag pymodbus loop, same server, same run.

A pymodbus ``ModbusTcpServer`` (pymodbus' own server, in a subprocess so its CPU is not counted)
holds ``--tags`` tags back to back from address 0: half ``float32`` (2 registers), half
``uint16``. Two clients read every tag as fast as they can for ``--seconds`` each, alternating
for ``--rounds`` rounds:

* **plantmrv**: :meth:`ModbusSource.poll_once` of a device with those points: coalesced reads of
  up to 125 registers, vectorized decoding, scaling, deadband check, one batch per poll;
* **naive**: for each tag ``read_holding_registers(address, count)`` then
  ``client.convert_from_registers`` (what a loop over a register list written against pymodbus'
  API does, as in its examples).

Printed per client: registers/s, requests per poll, CPU seconds (this process) per 1,000
registers; then the ratios (median over rounds). Targets: >= 10x fewer requests, >= 5x less
CPU per register.

Run: .venv/bin/python bench/modbus.py [--tags 500] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from plantmrv.localservices import free_port  # noqa: E402

SERVER = r"""
import asyncio, sys
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
n, port = int(sys.argv[1]), int(sys.argv[2])
async def main():
    data = [SimData(0, count=n, values=0x1234, datatype=DataType.REGISTERS)]
    srv = ModbusTcpServer([SimDevice(1, simdata=data)], address=("127.0.0.1", port))
    await srv.serve_forever(background=True)
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def layout(tags: int) -> tuple[list[dict], int]:
    points, addr = [], 0
    for i in range(tags):
        dtype = "float32" if i % 2 == 0 else "uint16"
        points.append({"field": f"t{i}_kw", "address": addr, "type": dtype})
        addr += 2 if dtype == "float32" else 1
    return points, addr


async def run_plantmrv(port: int, points: list[dict], seconds: float) -> dict:
    from plantmrv.gateway.metrics import GatewayMetrics
    from plantmrv.gateway.modbus_source import ModbusSource, ModbusSourceConfig

    cfg = ModbusSourceConfig.model_validate({"type": "modbus", "name": "bench", "host": "127.0.0.1", "port": port,
                                             "devices": [{"name": "d", "measurement": "bench", "points": points}]})
    src = ModbusSource(cfg, "s", GatewayMetrics())
    src._emit = lambda batch: None
    src._lock = asyncio.Lock()
    client = src.make_client()
    await client.connect()
    dev = src.devices[0]
    regs = sum(p.registers for p in dev.points)
    await src.poll_once(client, dev)  # warm up
    src.requests = 0
    polls = 0
    c0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        await src.poll_once(client, dev)
        polls += 1
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    client.close()
    return {"registers_per_s": polls * regs / wall, "requests_per_poll": src.requests / polls,
            "cpu_s_per_1000_registers": cpu / (polls * regs) * 1000, "polls": polls}


async def run_naive(port: int, points: list[dict], seconds: float) -> dict:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0, reconnect_delay=0)
    await client.connect()
    dt = {"float32": client.DATATYPE.FLOAT32, "uint16": client.DATATYPE.UINT16}
    tags = [(p["address"], 2 if p["type"] == "float32" else 1, dt[p["type"]]) for p in points]
    regs = sum(n for _a, n, _t in tags)

    async def poll():
        out = []
        for address, n, t in tags:
            r = await client.read_holding_registers(address, count=n, device_id=1)
            out.append(client.convert_from_registers(r.registers, t))
        return out

    await poll()
    polls = 0
    c0, t0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        await poll()
        polls += 1
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    client.close()
    return {"registers_per_s": polls * regs / wall, "requests_per_poll": float(len(tags)),
            "cpu_s_per_1000_registers": cpu / (polls * regs) * 1000, "polls": polls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tags", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import logging

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    points, nregs = layout(args.tags)
    port = free_port()
    srv = subprocess.Popen([sys.executable, "-c", SERVER, str(nregs + 10), str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready", "server did not start"
        print(f"{args.tags} tags ({nregs} registers: half float32, half uint16), pymodbus server in a subprocess, "
              f"{args.seconds:g} s per client per round, {args.rounds} rounds")
        print(f"{'round':>5} {'client':>9} {'registers/s':>12} {'requests/poll':>14} {'CPU s/1000 regs':>16}")
        req_ratio, cpu_ratio, rate_ratio = [], [], []
        for r in range(args.rounds):
            ours = asyncio.run(run_plantmrv(port, points, args.seconds))
            naive = asyncio.run(run_naive(port, points, args.seconds))
            for name, res in (("plantmrv", ours), ("naive", naive)):
                print(f"{r:>5} {name:>9} {res['registers_per_s']:>12,.0f} {res['requests_per_poll']:>14.1f} "
                      f"{res['cpu_s_per_1000_registers']:>16.5f}")
            req_ratio.append(naive["requests_per_poll"] / ours["requests_per_poll"])
            cpu_ratio.append(naive["cpu_s_per_1000_registers"] / ours["cpu_s_per_1000_registers"])
            rate_ratio.append(ours["registers_per_s"] / naive["registers_per_s"])
        print(f"ratios (median of rounds): requests naive/plantmrv {statistics.median(req_ratio):.1f}x (target >= 10x), "
              f"CPU per register naive/plantmrv {statistics.median(cpu_ratio):.1f}x (target >= 5x), "
              f"registers/s plantmrv/naive {statistics.median(rate_ratio):.1f}x")
    finally:
        srv.kill()
        srv.wait()


if __name__ == "__main__":
    main()
