"""``plantmrv gateway scan modbus://host:502 --unit 1``: what a Modbus device answers, as a source.

For commissioning without a register map at hand (or to check one): probes the holding and input
register tables in reads of 125 over the given address ranges; a read the device refuses is
re-probed in slices of 8, so the answering ranges are reported to 8 registers. Then looks for
the SunSpec marker (40000, 0, 50000) and lists the models found with their names (pysunspec2's
definitions) and the common model's manufacturer, model and serial number.

:func:`render_yaml` prints a ready-to-paste ``type: modbus`` source, like ``gateway browse`` does
for OPC UA: a SunSpec device becomes ``sunspec: {}``; other answering registers become commented
``uint16`` point stubs to name, type and scale from the device's manual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from plantmrv.gateway.modbus_codec import MAX_REGISTERS, decode_string

PROBE_SLICE = 8


@dataclass
class ScanResult:
    host: str
    port: int
    unit: int
    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # table -> [(start, end exclusive)]
    sunspec_base: int | None = None
    models: list[tuple[int, int, int, str]] = field(default_factory=list)  # (id, address, length, name)
    identity: dict[str, str] = field(default_factory=dict)
    requests: int = 0


def parse_url(url: str) -> tuple[str, int]:
    u = urlparse(url)
    if u.scheme != "modbus" or not u.hostname:
        raise ValueError(f"{url!r} is not modbus://host[:port]")
    return u.hostname, u.port or 502


def parse_ranges(text: str) -> list[tuple[int, int]]:
    """``"0-9999,40000-40200"`` -> [(0, 10000), (40000, 40201)] (inclusive bounds in, exclusive out)."""
    out = []
    for part in text.split(","):
        m = re.match(r"^\s*(\d+)\s*-\s*(\d+)\s*$", part)
        if not m or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) > 65535:
            raise ValueError(f"{part.strip()!r} is not a range like 0-9999 (addresses 0..65535)")
        out.append((int(m.group(1)), int(m.group(2)) + 1))
    return out


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


async def scan(url: str, unit: int, ranges: list[tuple[int, int]], timeout_s: float = 1.0) -> ScanResult:
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusIOException

    from plantmrv.gateway import sunspec

    host, port = parse_url(url)
    res = ScanResult(host, port, unit)
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0)
    client.set_max_no_responses(1 << 30)
    if not await client.connect():
        raise ConnectionError(f"cannot connect to {host}:{port}")
    try:
        async def read(table: str, address: int, count: int) -> list[int] | None:
            fn = client.read_holding_registers if table == "holding" else client.read_input_registers
            res.requests += 1
            try:
                r = await fn(address, count=count, device_id=unit)
            except ModbusIOException:
                return None
            return None if r.isError() else list(r.registers)

        for table in ("holding", "input"):
            found: list[tuple[int, int]] = []
            for lo, hi in ranges:
                for a in range(lo, hi, MAX_REGISTERS):
                    n = min(MAX_REGISTERS, hi - a)
                    if await read(table, a, n) is not None:
                        found.append((a, a + n))
                        continue
                    for s in range(a, a + n, PROBE_SLICE):
                        k = min(PROBE_SLICE, a + n - s)
                        if await read(table, s, k) is not None:
                            found.append((s, s + k))
            res.ranges[table] = _merge(found)

        async def read_holding(address: int, count: int):
            return await read("holding", address, count)

        try:
            res.sunspec_base, models = await sunspec.discover(read_holding)
        except LookupError:
            return res
        for m in models:
            res.models.append((m.id, m.address, m.length, sunspec.model_name(m.id)))
            if m.id == 1:
                regs = await read_holding(m.address, 2 + m.length)
                if regs:
                    for name, off, n in (("manufacturer", 2, 16), ("model", 18, 16), ("serial", 50, 16)):
                        res.identity[name] = decode_string(regs[off:off + n])
        return res
    finally:
        client.close()


def render_text(r: ScanResult) -> str:
    lines = [f"# modbus://{r.host}:{r.port} unit {r.unit}: {r.requests} requests"]
    for table, spans in r.ranges.items():
        text = ", ".join(f"{a}-{b - 1}" for a, b in spans) or "none in the probed ranges"
        lines.append(f"# {table} registers answering: {text}")
    if r.sunspec_base is None:
        lines.append("# SunSpec: no 'SunS' marker at 40000, 0 or 50000")
    else:
        ident = " ".join(f"{k}={v!r}" for k, v in r.identity.items())
        lines.append(f"# SunSpec: base {r.sunspec_base}; {ident}")
        for mid, addr, length, name in r.models:
            lines.append(f"#   model {mid} at {addr} (L={length}): {name}")
    return "\n".join(lines) + "\n"


def render_yaml(r: ScanResult, max_points: int = 64) -> str:
    """A pasteable ``type: modbus`` source for the scanned device."""
    from plantmrv.gateway.sunspec import INVERTER_MODELS, points_for, ModelInstance

    lines = [render_text(r).rstrip("\n"),
             "# generated by `plantmrv gateway scan`: paste under gateway.sources, then review names, types and scales",
             "- type: modbus", f"  name: {re.sub(r'[^A-Za-z0-9_.-]', '-', r.host)}", "  transport: tcp",
             f"  host: {r.host}", f"  port: {r.port}", "  devices:", f"    - name: unit{r.unit}", f"      unit_id: {r.unit}"]
    if r.models and any(m[0] in INVERTER_MODELS for m in r.models):
        pts, _notes = points_for([ModelInstance(m, a, n) for m, a, n, _ in r.models])
        lines += ["      asset: CHANGE_ME", "      poll_interval_s: 5", "      sunspec:",
                  f"        base_address: {r.sunspec_base}", f"      # pv fields: {', '.join(p.field for p in pts)}"]
        return "\n".join(lines) + "\n"
    lines += ["      measurement: CHANGE_ME        # asset class: pump, vsd, ubcf, wte, pv", "      asset: CHANGE_ME",
              "      points:                       # one uint16 per answering register: name, type and scale them"]
    n = 0
    for table, spans in r.ranges.items():
        for a, b in spans:
            for addr in range(a, b):
                if n >= max_points:
                    lines.append(f"        # ... more {table} registers up to {b - 1}")
                    break
                lines.append(f"        # - {{field: reg_{addr}, kind: {table}, address: {addr}, type: uint16}}")
                n += 1
    return "\n".join(lines) + "\n"
