"""Modbus source (pymodbus): TCP, RTU over serial (pyserial) or RTU framed over TCP; SunSpec.

Registered as ``type: modbus``. One connection serves several devices (unit ids): VSDs behind
an RS-485 gateway, a PV inverter, a meter. Per device:

* **points**: holding/input registers, coils and discrete inputs; ``int16`` .. ``float64`` with
  the device's (or the point's) word and byte order, ``string`` (read, logged, optionally
  checked against ``expect`` so a swapped unit id is caught), one ``bit`` of a register; per
  point ``scale``, ``offset``, ``unit`` (converted to the unit the field name states, checked
  when the config loads) and ``deadband``, applied before buffering;
* **block reads**: points are coalesced into reads of up to ``max_registers_per_read`` (125) or
  ``max_bits_per_read`` (2000) with holes of at most ``max_gap_registers`` / ``max_gap_bits``
  (:func:`~plantmrv.gateway.modbus_codec.plan_blocks`); a block the device refuses with
  exception 02 (illegal data address: a hole it does not implement) is split into per-point
  reads at once, and stays split;
* **timing**: ``poll_interval_s``, ``timeout_s``, ``retries`` and ``inter_request_delay_ms``
  (slow serial gateways need a pause between requests);
* **quality**: a point whose read failed (exception response, timeout, connection down) is a
  BAD sample (NaN) stamped with the poll time: never a silent gap. Every poll's batch has the
  device's table (all its points) and its poll time is the watermark (``emit(batch,
  watermark_ns)``) up to which every point was observed: a point left out by its deadband is
  known unchanged until then (the agent's coverage tracker writes holds and heartbeats);
* **SunSpec** (``sunspec:``): the model chain is discovered at connect (:mod:`.sunspec`) and the
  ``pv`` fields are polled with their scale-factor registers.

The connection is re-made with exponential backoff and full jitter when it drops, or (TCP) when
every device stopped answering; while it is down every point is reported BAD once per attempt.
pymodbus is imported inside the functions that use it so ``plantmrv --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.config import StrictModel
from plantmrv.gateway.modbus_codec import (
    BIT_KINDS,
    MAX_BITS,
    MAX_REGISTERS,
    Block,
    DataType,
    Kind,
    Order,
    decode,
    decode_string,
    plan_blocks,
    register_count,
)
from plantmrv.scaling import ScaledTag, check_unique_series, compose

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.modbus")
GATEWAY_EXCEPTIONS = (0x0A, 0x0B)  # gateway path unavailable / target failed to respond: the device is absent

# --------------------------------------------------------------------------- config


class ModbusPoint(ScaledTag):
    """A register, coil or input (``field``: with its unit; for a ``string``, a label for logs)."""

    kind: Kind = Field("holding", description="Table: `holding` (FC 3), `input` (FC 4), `coil` (FC 1), `discrete` (FC 2).")
    address: int = Field(..., ge=0, le=65535, description="Protocol address, 0-based: a manual's register 40001 (or 30001) is 0.")
    type: DataType | None = Field(
        None, description="int16, uint16, int32, uint32, int64, uint64, float32, float64, string, bool "
        "(default: uint16 for registers, bool for coils and discrete inputs).",
    )
    length: int | None = Field(None, ge=1, le=MAX_REGISTERS, description="Registers of a `string` (two characters each).")
    bit: int | None = Field(None, ge=0, le=15, description="Read one bit (0 = least significant) of a 16-bit register as 0/1.")
    word_order: Order | None = Field(None, description="`big` (most significant register first) or `little`; default: the device's.")
    byte_order: Order | None = Field(None, description="`big` (as sent) or `little` (bytes swapped in each register); default: the device's.")
    deadband: float = Field(0.0, ge=0, description="Send a value only when it moved this much (field units) since the last one sent.")
    expect: str | None = Field(None, description="`string` only: the text the device must report (else all its samples are BAD).")

    @model_validator(mode="after")
    def _check(self) -> "ModbusPoint":
        bits = self.kind in BIT_KINDS
        if self.type is None:
            self.type = "bool" if bits else "uint16"
        if bits and self.type != "bool":
            raise ValueError(f"a {self.kind} is one bit: type must be bool, not {self.type}")
        if not bits and self.type == "bool" and self.bit is None:
            raise ValueError("type bool on a register needs `bit` (0..15)")
        if self.bit is not None and (bits or self.type not in ("int16", "uint16", "bool")):
            raise ValueError("`bit` picks a bit of one 16-bit register (type int16, uint16 or bool)")
        if self.type == "string":
            if not self.length:
                raise ValueError("a string needs `length` (registers)")
            if (self.scale, self.offset, self.unit, self.deadband) != (1.0, 0.0, None, 0.0):
                raise ValueError("a string takes no scale, offset, unit or deadband")
        elif self.length is not None:
            raise ValueError("`length` is for strings only")
        if self.expect is not None and self.type != "string":
            raise ValueError("`expect` is for strings only")
        if self.type != "string":
            self.check_unit(self.field)
        return self

    @property
    def registers(self) -> int:
        return 1 if self.kind in BIT_KINDS or self.bit is not None else register_count(self.type, self.length)


class SunSpecConfig(StrictModel):
    base_address: int | Literal["auto"] = Field(
        "auto", description="Address of the `SunS` marker; `auto` tries 40000, 0 and 50000 (SunSpec's order)."
    )
    fields: list[str] | None = Field(
        None, description="Only these pv fields (ac_power_kw, dc_power_kw, export_energy_kwh, irradiance_w_per_m2, "
        "module_temp_c); default: every one the device's models offer.",
    )

    @field_validator("fields")
    @classmethod
    def _fields(cls, v):
        from plantmrv.gateway.sunspec import FIELD_POINTS

        for f in v or []:
            if f not in FIELD_POINTS:
                raise ValueError(f"{f!r} is not a SunSpec-mapped field; known: {', '.join(FIELD_POINTS)}")
        return v


class ModbusDevice(StrictModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Device name (logs, metrics).")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit id (slave address); 255 or 1 for most TCP devices.")
    measurement: str | None = Field(None, description="InfluxDB measurement (asset class); `pv` by default with `sunspec`.")
    asset: str | None = Field(None, description="`asset` tag of the device's points.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags (bounded cardinality only).")
    poll_interval_s: float = Field(1.0, ge=0.01, description="Poll period.")
    timeout_s: float = Field(1.0, gt=0, le=60, description="Answer timeout of each request.")
    retries: int = Field(1, ge=0, le=10, description="Re-sends of a request that timed out before its points are BAD.")
    inter_request_delay_ms: float = Field(0.0, ge=0, le=10_000, description="Pause after each request (slow serial gateways).")
    max_registers_per_read: int = Field(MAX_REGISTERS, ge=1, le=MAX_REGISTERS, description="Longest register read the device accepts.")
    max_bits_per_read: int = Field(MAX_BITS, ge=1, le=MAX_BITS, description="Longest coil/discrete-input read the device accepts.")
    max_gap_registers: int = Field(16, ge=0, le=MAX_REGISTERS, description="Unused registers a read may span to join two points.")
    max_gap_bits: int = Field(64, ge=0, le=MAX_BITS, description="Unused bits a read may span to join two points.")
    word_order: Order = Field("big", description="Default register order of 32/64-bit values (`little`: least significant first).")
    byte_order: Order = Field("big", description="Default byte order inside registers (`little`: swapped).")
    points: list[ModbusPoint] = Field(default_factory=list, description="Registers, coils and inputs to poll.")
    sunspec: SunSpecConfig | None = Field(None, description="Read a SunSpec inverter's pv fields (models 1, 101-103, 111-113, 701, 302, 303).")

    @model_validator(mode="after")
    def _check(self) -> "ModbusDevice":
        if not self.points and self.sunspec is None:
            raise ValueError("a device needs `points` or `sunspec`")
        if self.measurement is None:
            if self.sunspec is None:
                raise ValueError("`measurement` is required (asset class: pump, vsd, pv...)")
            self.measurement = "pv"
        for i, p in enumerate(self.points):
            limit = self.max_bits_per_read if p.kind in BIT_KINDS else self.max_registers_per_read
            if p.registers > limit:
                raise ValueError(f"points[{i}]: {p.registers} registers exceed max_registers_per_read {limit}")
        return self


class ModbusSourceConfig(StrictModel):
    type: Literal["modbus"]
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Source name (logs, metrics).")
    transport: Literal["tcp", "rtu", "rtu_over_tcp"] = Field(
        "tcp", description="`tcp` (Modbus TCP), `rtu` (serial line via pyserial) or `rtu_over_tcp` (RTU frames through a transparent serial server)."
    )
    host: str | None = Field(None, description="Device or gateway address (tcp, rtu_over_tcp).")
    port: int = Field(502, ge=1, le=65535, description="TCP port.")
    serial_port: str | None = Field(None, description="Serial device (rtu), e.g. `/dev/ttyUSB0`.")
    baudrate: int = Field(19200, description="Serial speed (rtu).")
    parity: Literal["N", "E", "O"] = Field("E", description="Serial parity (rtu); the Modbus serial-line default is even.")
    stopbits: Literal[1, 2] = Field(1, description="Serial stop bits (rtu).")
    bytesize: Literal[7, 8] = Field(8, description="Serial data bits (rtu).")
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay (doubles per failure, full jitter).")
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest reconnect delay.")
    devices: list[ModbusDevice] = Field(..., min_length=1, description="Devices (unit ids) on this connection.")

    @model_validator(mode="after")
    def _check(self) -> "ModbusSourceConfig":
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("transport rtu needs `serial_port` (e.g. /dev/ttyUSB0)")
        if self.transport != "rtu" and not self.host:
            raise ValueError(f"transport {self.transport} needs `host`")
        seen_unit: dict[int, int] = {}
        for di, d in enumerate(self.devices):
            if d.unit_id in seen_unit:
                raise ValueError(f"devices[{di}].unit_id {d.unit_id} repeats devices[{seen_unit[d.unit_id]}].unit_id")
            seen_unit[d.unit_id] = di
        check_unique_series((f"devices[{di}].points[{pi}]", p, d.measurement, d.asset, d.tags)
                            for di, d in enumerate(self.devices) for pi, p in enumerate(d.points) if p.type != "string")
        return self

    @property
    def endpoint(self) -> str:
        return self.serial_port if self.transport == "rtu" else f"{self.host}:{self.port}"


# --------------------------------------------------------------------------- compiled device


@dataclass
class _Point:
    """A point as the poller keeps it. ``series`` -1: a helper (SunSpec scale factor, string)."""

    series: int
    label: str
    kind: str
    address: int
    registers: int
    dtype: str
    word_order: str
    byte_order: str
    bit: int | None = None
    a: float = 1.0
    b: float = 0.0
    deadband: float = 0.0
    invalid: float | None = None  # raw value meaning "not implemented" (SunSpec)
    sf_point: int = -1
    sf_fixed: int = 0
    expect: str | None = None


@dataclass
class _Group:
    """Points of one block sharing a type and orders: decoded with one gather."""

    dtype: str
    word_order: str
    byte_order: str
    idx: np.ndarray  # point indices
    rows: np.ndarray  # (k, n) register offsets within the block


@dataclass
class _PlannedBlock:
    block: Block
    groups: list[_Group] = field(default_factory=list)
    bits: list[tuple[int, int, int | None]] = field(default_factory=list)  # (point, offset, register bit)
    strings: list[tuple[int, int]] = field(default_factory=list)  # (point, offset)


class DeviceError(Exception):
    """A request failed: ``reason`` is ``timeout``, ``exception_<code>`` or ``connection``."""

    def __init__(self, reason: str, code: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.code = code


def compile_blocks(points: list[_Point], max_registers: int, max_bits: int, gap_registers: int, gap_bits: int,
                   split: bool = False) -> list[_PlannedBlock]:
    """Block plan of a device's points, with the per-block decode groups precomputed."""
    spans = [(i, p.kind, p.address, p.registers) for i, p in enumerate(points)]
    if split:
        blocks = [Block(p.kind, p.address, p.registers, [i]) for i, p in enumerate(points)]
    else:
        blocks = plan_blocks([s for s in spans if s[1] in BIT_KINDS], max_bits, gap_bits)
        blocks += plan_blocks([s for s in spans if s[1] not in BIT_KINDS], max_registers, gap_registers)
    return [_plan(b, points) for b in blocks]


def _plan(b: Block, points: list[_Point]) -> _PlannedBlock:
    pb = _PlannedBlock(b)
    groups: dict[tuple, list[int]] = {}
    for i in b.members:
        p = points[i]
        off = p.address - b.start
        if p.kind in BIT_KINDS or p.bit is not None:
            pb.bits.append((i, off, p.bit))
        elif p.dtype == "string":
            pb.strings.append((i, off))
        else:
            groups.setdefault((p.dtype, p.word_order, p.byte_order), []).append(i)
    for (dtype, wo, bo), members in groups.items():
        n = points[members[0]].registers
        offs = np.array([points[i].address - b.start for i in members], dtype=np.int64)
        pb.groups.append(_Group(dtype, wo, bo, np.array(members, dtype=np.int64), offs[:, None] + np.arange(n)[None, :]))
    return pb


class _Device:
    """A device's compiled points, series table, block plan and last sent values (deadband)."""

    def __init__(self, cfg: ModbusDevice, site: str):
        self.cfg = cfg
        self.site = site
        self.table: list[Series] = []
        self.points: list[_Point] = []
        self.split = False
        self.blocks: list[_PlannedBlock] = []
        self.identity_ok = True
        self.strings: dict[int, str] = {}
        self.sunspec_ready = cfg.sunspec is None
        for p in cfg.points:
            if p.type == "string":
                self.points.append(_Point(-1, p.field, p.kind, p.address, p.registers, "string", p.word_order or cfg.word_order,
                                          p.byte_order or cfg.byte_order, expect=p.expect))
                continue
            a, b = p.effective(p.field)
            self.points.append(_Point(self._series(p.measurement or cfg.measurement, p.asset or cfg.asset, p.field), p.field,
                                      p.kind, p.address, p.registers, p.type, p.word_order or cfg.word_order,
                                      p.byte_order or cfg.byte_order, p.bit, a, b, p.deadband))
        self._finish()

    def _series(self, measurement: str, asset: str | None, fld: str) -> int:
        tags = dict(self.cfg.tags, site=self.site)
        if asset:
            tags["asset"] = asset
        self.table.append(Series.of(measurement, fld, **tags))
        return len(self.table) - 1

    def _finish(self) -> None:
        c = self.cfg
        self.blocks = compile_blocks(self.points, c.max_registers_per_read, c.max_bits_per_read, c.max_gap_registers,
                                     c.max_gap_bits, self.split)
        n = len(self.points)
        self.last_sent = np.full(n, np.nan)
        self.last_quality = np.full(n, 255, np.uint8)
        sel = np.array([p.series for p in self.points], dtype=np.int64)
        self.numeric = np.flatnonzero(sel >= 0)
        self.series_idx = sel[self.numeric].astype(np.int32)
        self.a = np.array([p.a for p in self.points])
        self.b = np.array([p.b for p in self.points])
        self.deadband = np.array([p.deadband for p in self.points])

    def add_sunspec(self, sp_points, unit_of) -> None:
        """Add the discovered SunSpec points (and their scale-factor registers) to the plan."""
        from plantmrv.gateway.sunspec import TYPES

        wanted = self.cfg.sunspec.fields
        sf_index: dict[int, int] = {}
        for sp in sp_points:
            if wanted is not None and sp.field not in wanted:
                continue
            sf_i = -1
            if sp.sf_address is not None:
                if sp.sf_address not in sf_index:
                    sf_index[sp.sf_address] = len(self.points)
                    self.points.append(_Point(-1, f"{sp.name}_SF", "holding", sp.sf_address, 1, "int16", "big", "big",
                                              invalid=TYPES["sunssf"][2]))
                sf_i = sf_index[sp.sf_address]
            a, b = compose(1.0, 0.0, sp.field, unit_of(sp))
            self.points.append(_Point(self._series(self.cfg.measurement, self.cfg.asset, sp.field), f"{sp.model}.{sp.name}",
                                      "holding", sp.address, sp.registers, sp.dtype, "big", "big", None, a, b, 0.0,
                                      invalid=sp.invalid, sf_point=sf_i, sf_fixed=sp.sf_fixed))
        self.sunspec_ready = True
        self._finish()

    def resplit(self) -> None:
        self.split = True
        self._finish()

    # ------------------------------------------------------------------ decoding
    def decode_block(self, pb: _PlannedBlock, data: np.ndarray, raw: np.ndarray, ok: np.ndarray) -> None:
        """Fill ``raw``/``ok`` for a block's points from its registers (uint16) or bits (bool)."""
        for g in pb.groups:
            raw[g.idx] = decode(data[g.rows], g.dtype, g.word_order, g.byte_order)
            ok[g.idx] = True
        for i, off, bit in pb.bits:
            v = data[off]
            raw[i] = float((int(v) >> bit) & 1) if bit is not None else float(bool(v))
            ok[i] = True
        for i, off in pb.strings:
            p = self.points[i]
            self.strings[i] = decode_string(data[off:off + p.registers], p.byte_order)
            ok[i] = True

    def values(self, raw: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Engineering values and per-point validity after scale factors, sentinels and scaling."""
        v = raw.copy()
        good = ok.copy()
        for i, p in enumerate(self.points):  # SunSpec points only (few): sentinels and scale factors
            if p.invalid is not None and good[i] and raw[i] == p.invalid:
                good[i] = False
            if p.sf_point >= 0 or p.sf_fixed:
                sf = p.sf_fixed
                if p.sf_point >= 0:
                    if not good[p.sf_point]:
                        good[i] = False
                        continue
                    sf = int(raw[p.sf_point])
                v[i] = raw[i] * 10.0 ** sf
        good &= ~np.isnan(v)  # a float register holding NaN is no reading
        v = v * self.a + self.b
        return v, good


# --------------------------------------------------------------------------- the source


def _set_timeout(client, timeout_s: float) -> None:
    """pymodbus reads its answer timeout from the transaction manager's CommParams at each request;
    set it per device (the connection lock keeps another device's request from interleaving)."""
    client.ctx.comm_params.timeout_connect = timeout_s


class ModbusSource:
    """Runs forever: connect, discover SunSpec models, poll every device; reconnect on loss."""

    type = "modbus"

    def __init__(self, cfg: ModbusSourceConfig, site: str, metrics: "GatewayMetrics"):
        self.cfg = cfg
        self.name = cfg.name
        self.metrics = metrics
        self.devices = [_Device(d, site) for d in cfg.devices]
        self.connected = False
        self.requests = 0  # requests sent (the benchmark reads it)
        self.last_watermark_ns: dict[str, int] = {}
        self._emit: Callable[..., None] | None = None
        self._lock: asyncio.Lock | None = None
        self._reasons: dict[tuple[str, int], str] = {}

    # ------------------------------------------------------------------ client
    def make_client(self):
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        from pymodbus.framer import FramerType

        c = self.cfg
        timeout = max(d.timeout_s for d in c.devices)
        if c.transport == "rtu":
            client = AsyncModbusSerialClient(c.serial_port, framer=FramerType.RTU, baudrate=c.baudrate, bytesize=c.bytesize,
                                             parity=c.parity, stopbits=c.stopbits, timeout=timeout, retries=0, reconnect_delay=0)
        else:
            framer = FramerType.RTU if c.transport == "rtu_over_tcp" else FramerType.SOCKET
            client = AsyncModbusTcpClient(c.host, port=c.port, framer=framer, timeout=timeout, retries=0, reconnect_delay=0)
        client.set_max_no_responses(1 << 30)  # we decide when silence means reconnect, not pymodbus
        return client

    async def request(self, client, dev: ModbusDevice, kind: str, address: int, count: int) -> np.ndarray:
        """One read with the device's timeout and retries; raises :class:`DeviceError`."""
        from pymodbus.exceptions import ConnectionException, ModbusIOException

        fn = {"holding": client.read_holding_registers, "input": client.read_input_registers,
              "coil": client.read_coils, "discrete": client.read_discrete_inputs}[kind]
        attempts = dev.retries + 1
        for attempt in range(attempts):
            async with self._lock:
                _set_timeout(client, dev.timeout_s)
                self.requests += 1
                try:
                    resp = await fn(address, count=count, device_id=dev.unit_id)
                except ModbusIOException:
                    resp = None
                except ConnectionException as exc:
                    raise DeviceError("connection") from exc
                finally:
                    if dev.inter_request_delay_ms:
                        await asyncio.sleep(dev.inter_request_delay_ms / 1000)
            if resp is None:
                if not client.connected:
                    raise DeviceError("connection")
                if attempt + 1 < attempts:
                    self.metrics.source_error(self.name, "modbus_retry")
                continue
            if resp.isError():
                code = int(getattr(resp, "exception_code", 0) or 0)
                if code in GATEWAY_EXCEPTIONS:
                    raise DeviceError("timeout", code)
                raise DeviceError(f"exception_{code:02x}", code)
            if kind in BIT_KINDS:
                return np.asarray(resp.bits[:count], dtype=bool)
            return np.asarray(resp.registers, dtype=np.uint16)
        raise DeviceError("timeout")

    # ------------------------------------------------------------------ emit
    def _emit_device(self, d: _Device, ts_ns: int, v: np.ndarray, good: np.ndarray) -> None:
        n = d.numeric
        vals, ok = v[n], good[n]
        q = np.where(ok, np.uint8(Quality.GOOD), np.uint8(Quality.BAD)).astype(np.uint8)
        vals = np.where(ok, vals, np.nan)
        if not d.identity_ok:
            q[:] = Quality.BAD
            vals[:] = np.nan
        send = (q != Quality.GOOD) | (d.last_quality[n] != q) | ~(np.abs(vals - d.last_sent[n]) < d.deadband[n])
        # deadband 0: every value is sent (|x - x| < 0 is false)
        d.last_quality[n] = q
        d.last_sent[n] = np.where(send, vals, d.last_sent[n])
        sel = np.flatnonzero(send)
        batch = SampleBatch(d.table, d.series_idx[sel], np.full(len(sel), ts_ns, np.int64), vals[sel], q[sel])
        bad = int(np.count_nonzero(q[sel] != Quality.GOOD))
        if bad:
            self.metrics.source_error(self.name, "bad_sample", bad)
        self.last_watermark_ns[d.cfg.name] = ts_ns
        # the watermark: every point of d.table was observed at ts_ns (GOOD, BAD, or unchanged within
        # its deadband and so left out of the batch: the agent's coverage tracker holds it)
        self._emit(batch, ts_ns)

    def emit_all_bad(self, ts_ns: int, reason: str) -> None:
        for d in self.devices:
            if len(d.points):
                self._note(d, -1, reason)
                self._emit_device(d, ts_ns, np.full(len(d.points), np.nan), np.zeros(len(d.points), bool))

    def _note(self, d: _Device, block_start: int, reason: str) -> None:
        """Log a block's failure reason when it changes (not every poll)."""
        key = (d.cfg.name, block_start)
        if self._reasons.get(key) != reason:
            self._reasons[key] = reason
            if reason == "ok":
                log.info("event=modbus_recovered source=%s device=%s unit=%d block=%d", self.name, d.cfg.name, d.cfg.unit_id, block_start)
            else:
                log.warning("event=modbus_read_failed source=%s device=%s unit=%d block=%d reason=%s", self.name, d.cfg.name,
                            d.cfg.unit_id, block_start, reason)

    # ------------------------------------------------------------------ polling
    async def poll_once(self, client, d: _Device) -> str:
        """Read every block of a device once and emit; returns ``ok``, ``timeout`` or another failure reason."""
        ts = time.time_ns()
        n = len(d.points)
        raw = np.full(n, np.nan)
        ok = np.zeros(n, bool)
        failures: list[str] = []
        blocks = list(d.blocks)
        k = 0
        while k < len(blocks):
            pb = blocks[k]
            k += 1
            b = pb.block
            try:
                data = await self.request(client, d.cfg, b.kind, b.start, b.count)
            except DeviceError as exc:
                if exc.reason == "connection":
                    raise
                if exc.code == 0x02 and len(b.members) > 1 and not d.split:
                    log.warning("event=modbus_block_split source=%s device=%s block=%d count=%d: the device refuses a "
                                "hole inside it (exception 02); reading point by point", self.name, d.cfg.name, b.start, b.count)
                    d.resplit()
                    blocks = list(d.blocks)
                    k = 0
                    ok[:] = False
                    failures.clear()
                    continue
                self.metrics.source_error(self.name, f"modbus_{exc.reason}")
                self._note(d, b.start, exc.reason)
                failures.append(exc.reason)
                continue
            self._note(d, b.start, "ok")
            d.decode_block(pb, data, raw, ok)
        for i, text in d.strings.items():
            p = d.points[i]
            if p.expect is not None:
                was = d.identity_ok
                d.identity_ok = text == p.expect
                if was != d.identity_ok:
                    (log.error if not d.identity_ok else log.info)(
                        "event=modbus_identity source=%s device=%s unit=%d point=%s expected=%r got=%r", self.name, d.cfg.name,
                        d.cfg.unit_id, p.label, p.expect, text)
        v, good = d.values(raw, ok)
        self._emit_device(d, ts, v, good)
        if not failures:
            return "ok"
        return "timeout" if all(f == "timeout" for f in failures) and len(failures) == len(d.blocks) else failures[0]

    async def _discover(self, client, d: _Device) -> None:
        from plantmrv.gateway import sunspec

        dev = d.cfg

        async def read(address: int, count: int):
            try:
                return (await self.request(client, dev, "holding", address, count)).tolist()
            except DeviceError as exc:
                if exc.reason == "connection":
                    raise
                return None

        base = None if dev.sunspec.base_address == "auto" else dev.sunspec.base_address
        base, models = await sunspec.discover(read, base)
        pts, notes = sunspec.points_for(models)
        # a point "not implemented" now is left out of the table (the device does not measure it)
        keep = []
        for p in pts:
            regs = await read(p.address, p.registers)
            if regs is None:
                notes.append(f"{p.field}: {p.model}.{p.name} unreadable")
                continue
            raw = float(decode(np.asarray(regs, np.uint16).reshape(1, -1), p.dtype)[0])
            if (p.invalid is None and math.isnan(raw)) or (p.invalid is not None and raw == p.invalid):
                notes.append(f"{p.field}: {p.model}.{p.name} not implemented")
                continue
            keep.append(p)
        d.add_sunspec(keep, lambda sp: sp.unit)
        log.info("event=sunspec_discovered source=%s device=%s unit=%d base=%d models=%s fields=%s%s", self.name, dev.name,
                 dev.unit_id, base, ",".join(str(m.id) for m in models), ",".join(p.field for p in keep),
                 "".join(f" note={n!r}" for n in notes))

    async def _poll_device(self, client, d: _Device, state: dict[str, str]) -> None:
        if not d.sunspec_ready:
            try:
                await self._discover(client, d)
            except LookupError as exc:
                log.error("event=sunspec_not_found source=%s device=%s unit=%d error=%s", self.name, d.cfg.name, d.cfg.unit_id, exc)
                state[d.cfg.name] = "timeout"
                raise
        period = d.cfg.poll_interval_s
        next_t = time.monotonic()
        while True:
            state[d.cfg.name] = await self.poll_once(client, d)
            next_t += period
            now = time.monotonic()
            if next_t < now:  # overran: skip missed ticks instead of bursting
                missed = math.ceil((now - next_t) / period)
                self.metrics.source_error(self.name, "poll_overrun", missed)
                next_t += missed * period
            await asyncio.sleep(next_t - time.monotonic())

    async def run(self, emit: Callable[..., None]) -> None:
        from plantmrv.retry import backoff_delay

        self._emit = emit
        self._lock = asyncio.Lock()
        attempt = 0
        while True:
            client = self.make_client()
            try:
                if not await client.connect():
                    raise ConnectionError(f"cannot connect to {self.cfg.endpoint}")
                self.connected = True
                self.metrics.source_connected(self.name, True)
                log.info("event=modbus_connected source=%s transport=%s endpoint=%s devices=%d", self.name, self.cfg.transport,
                         self.cfg.endpoint, len(self.devices))
                attempt = 0
                await self._serve(client)
            except asyncio.CancelledError:
                client.close()
                raise
            except Exception as exc:  # noqa: BLE001 - every failure ends in a reconnect
                log.warning("event=modbus_connection_lost source=%s endpoint=%s error=%s: %s", self.name, self.cfg.endpoint,
                            type(exc).__name__, str(exc)[:300])
                self.metrics.source_error(self.name, "connection")
            client.close()
            self.connected = False
            self.metrics.source_connected(self.name, False)
            if hasattr(emit, "lost"):
                emit.lost()  # coverage ends at the last poll: no hold bridges the outage
            self.emit_all_bad(time.time_ns(), "connection")
            delay = backoff_delay(attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
            attempt += 1
            self.metrics.source_reconnect(self.name)
            await asyncio.sleep(delay)

    async def _serve(self, client) -> None:
        state: dict[str, str] = {}
        tasks = [asyncio.create_task(self._poll_device(client, d, state), name=f"modbus:{d.cfg.name}") for d in self.devices]
        try:
            while True:
                done, _ = await asyncio.wait(tasks, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    exc = t.exception()
                    raise exc if exc else ConnectionError("poll task ended")
                if not client.connected:
                    raise ConnectionError("connection closed")
                # TCP: when every device stops answering, the link (or the server) is gone: reconnect
                if (self.cfg.transport != "rtu" and len(state) == len(self.devices)
                        and all(s == "timeout" for s in state.values())):
                    raise ConnectionError("no device answers")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
