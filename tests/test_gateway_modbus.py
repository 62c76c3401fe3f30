"""Modbus source against pymodbus' own server (register maps we load into it, so the encoding
is not ours): every data type and order, coalescing, exception codes and timeouts as BAD
quality, a device disappearing and returning, SunSpec scale factors from pysunspec2's models."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from plantmrv.batch import Quality
from tests.modbus_support import PymodbusServer, run_source, source_config
from tests.test_modbus_codec import FORMATS, struct_registers

ORDERS = [("big", "big"), ("little", "big"), ("big", "little"), ("little", "little")]
SAMPLE = {"int16": -12345, "uint16": 54321, "int32": -1234567890, "uint32": 3456789012, "int64": -(2**52) + 7,
          "uint64": 2**53 - 3, "float32": 123.5, "float64": -98765.4321}


def _typed_map():
    """Every type in every order, back to back from address 100, as registers built with struct."""
    regs, points, addr = [], [], 100
    for wo, bo in ORDERS:
        for dtype in sorted(FORMATS):
            r = struct_registers(SAMPLE[dtype], dtype, wo, bo)
            points.append({"field": f"v_{dtype}_{wo}_{bo}", "address": addr, "type": dtype, "word_order": wo, "byte_order": bo})
            regs += r
            addr += len(r)
    return regs, points


def test_every_type_and_order_in_few_reads_against_pymodbus_server():
    from pymodbus.simulator import DataType, SimData

    regs, points = _typed_map()
    holding = [SimData(100, values=regs, datatype=DataType.REGISTERS),
               SimData(300, values=-1234567, datatype=DataType.INT32),  # encoded by pymodbus itself
               SimData(302, values=0.25, datatype=DataType.FLOAT32),
               SimData(500, values="VLT AQUA", datatype=DataType.STRING)]
    coils = [SimData(10, values=[True, False, True] + [False] * 13, datatype=DataType.BITS)]
    discrete = [SimData(20, values=[False, True] + [False] * 14, datatype=DataType.BITS)]
    inputs = [SimData(0, values=[17, 0x4000], datatype=DataType.REGISTERS)]
    points += [
        {"field": "pymodbus_int32", "address": 300, "type": "int32"},
        {"field": "pymodbus_float32", "address": 302, "type": "float32"},
        {"field": "model", "address": 500, "type": "string", "length": 4, "expect": "VLT AQUA"},
        {"field": "coil_a", "kind": "coil", "address": 10}, {"field": "coil_b", "kind": "coil", "address": 11},
        {"field": "coil_c", "kind": "coil", "address": 12},
        {"field": "di_b", "kind": "discrete", "address": 21},
        {"field": "flow_m3_per_h", "kind": "input", "address": 0, "scale": 0.1, "unit": "L/s"},
        {"field": "running", "kind": "input", "address": 1, "bit": 14},
    ]

    async def main():
        srv = await PymodbusServer({1: (coils, discrete, holding, inputs)}).start()
        try:
            cfg = source_config(srv.port, [{"name": "d1", "unit_id": 1, "measurement": "test", "poll_interval_s": 30,
                                            "points": points}])
            rec, src = await run_source(cfg, 1.5)
            return rec, src, srv.requests
        finally:
            await srv.stop()

    rec, src, server_requests = asyncio.run(main())
    last = rec.last()
    for wo, bo in ORDERS:
        for dtype in FORMATS:
            v, q = last[f"v_{dtype}_{wo}_{bo}"]
            assert q == Quality.GOOD
            assert v == pytest.approx(SAMPLE[dtype], rel=1e-7), (dtype, wo, bo)
    assert last["pymodbus_int32"] == (-1234567.0, 0)
    assert last["pymodbus_float32"] == (0.25, 0)
    assert (last["coil_a"], last["coil_b"], last["coil_c"], last["di_b"]) == ((1.0, 0), (0.0, 0), (1.0, 0), (1.0, 0))
    assert last["flow_m3_per_h"][0] == pytest.approx(17 * 0.1 * 3.6)  # 1.7 L/s in m3/h
    assert last["running"] == (1.0, 0)
    assert "model" not in last  # a string is no sample
    # 44 points, one poll: coils 1, discrete 1, input 1, holding 3 (typed block, pymodbus block, string)
    assert src.requests == 6 and server_requests == 6


def test_exception_02_on_a_hole_splits_the_block_and_the_missing_register_is_bad():
    from pymodbus.simulator import DataType, SimData

    holding = [SimData(0, values=[11, 12], datatype=DataType.REGISTERS), SimData(3, values=[14], datatype=DataType.REGISTERS)]

    async def main():
        srv = await PymodbusServer({1: holding}).start()
        try:
            cfg = source_config(srv.port, [{"name": "d1", "measurement": "test", "poll_interval_s": 0.3, "points": [
                {"field": "a", "address": 0}, {"field": "b", "address": 1}, {"field": "c", "address": 3},
                {"field": "missing", "address": 2}]}])
            rec, src = await run_source(cfg, 1.2)
            return rec
        finally:
            await srv.stop()

    rec = asyncio.run(main())
    last = rec.last()
    assert (last["a"], last["b"], last["c"]) == ((11.0, 0), (12.0, 0), (14.0, 0))
    v, q = last["missing"]
    assert math.isnan(v) and q == Quality.BAD
    # the first poll already split and re-read: a, b and c never had a BAD sample
    assert all(q == 0 for f in "abc" for _t, _v, q in rec.series(f))
    # every poll's batch lists the device's 4 points and carries its poll time as the watermark
    for b, w in zip(rec.batches, rec.watermarks):
        assert len(b.table) == 4 and w is not None and (not len(b) or set(b.ts_ns.tolist()) == {w})


def test_device_failure_timeout_and_a_device_that_disappears_and_returns_are_bad_never_a_gap():
    from pymodbus.constants import ExcCodes
    from pymodbus.simulator import DataType, SimData

    phase = {"mode": None}
    dev = [SimData(0, values=[5, 6], datatype=DataType.REGISTERS)]
    other = [SimData(0, values=[7], datatype=DataType.REGISTERS)]
    marks = {}

    async def during(src, rec):
        for mode, secs in ((None, 1.0), ("silent", 1.5), (ExcCodes.DEVICE_FAILURE, 1.0), (None, 1.2)):
            phase["mode"] = mode
            marks[str(mode)] = asyncio.get_running_loop().time()
            await asyncio.sleep(secs)

    async def main():
        srv = await PymodbusServer({1: dev, 2: other}, fail={1: lambda a, c: phase["mode"]}).start()
        try:
            cfg = source_config(srv.port, [
                {"name": "flaky", "unit_id": 1, "measurement": "test", "poll_interval_s": 0.2, "timeout_s": 0.2, "retries": 1,
                 "points": [{"field": "x_kw", "address": 0}, {"field": "y_kw", "address": 1}]},
                {"name": "steady", "unit_id": 2, "measurement": "test", "poll_interval_s": 0.2, "points": [{"field": "z_kw", "address": 0}]}])
            return await run_source(cfg, 5.0, during)
        finally:
            await srv.stop()

    rec, src = asyncio.run(main())
    xs = rec.series("x_kw")
    quals = [q for _t, _v, q in xs]
    # GOOD, then BAD (timeouts, then exception 04), then GOOD again
    first_bad = quals.index(Quality.BAD)
    last_bad = len(quals) - 1 - quals[::-1].index(Quality.BAD)
    assert all(q == 0 for q in quals[:first_bad]) and all(q == 0 for q in quals[last_bad + 1:])
    assert all(q == Quality.BAD for q in quals[first_bad:last_bad + 1])
    assert quals[-1] == 0 and first_bad > 0
    assert all(math.isnan(v) for _t, v, q in xs if q == Quality.BAD)
    # never a silent gap: a sample of x at least every poll period plus the timeouts
    ts = np.array([t for t, _v, _q in xs])
    assert np.diff(ts).max() < 0.2e9 + 2 * 0.2e9 + 0.25e9
    errors = {k: v for k, v in src.metrics._errors._metrics.items()} if hasattr(src.metrics._errors, "_metrics") else {}
    kinds = {labels[1] for labels in errors}
    assert {"modbus_timeout", "modbus_exception_04"} <= kinds, kinds
    # the other unit on the same connection was never affected
    assert all(q == 0 for _t, _v, q in rec.series("z_kw"))


def test_server_gone_and_back_reconnects_with_bad_samples_between():
    from pymodbus.simulator import DataType, SimData

    holder = {}

    async def during(src, rec):
        await asyncio.sleep(1.0)
        await holder["srv"].stop()
        await asyncio.sleep(1.5)
        srv2 = PymodbusServer({1: [SimData(0, values=[9], datatype=DataType.REGISTERS)]})
        srv2.port = holder["srv"].port
        holder["srv"] = await srv2.start()
        await asyncio.sleep(2.5)

    async def main():
        holder["srv"] = await PymodbusServer({1: [SimData(0, values=[9], datatype=DataType.REGISTERS)]}).start()
        try:
            cfg = source_config(holder["srv"].port, [{"name": "d", "measurement": "test", "poll_interval_s": 0.2,
                                                       "timeout_s": 0.3, "points": [{"field": "p_kw", "address": 0}]}])
            return await run_source(cfg, 5.0, during)
        finally:
            await holder["srv"].stop()

    rec, src = asyncio.run(main())
    quals = [q for _t, _v, q in rec.series("p_kw")]
    assert quals[0] == 0 and quals[-1] == 0 and Quality.BAD in quals
    assert src.metrics.reconnects >= 1


def _sunspec_image(models) -> list[int]:
    regs = [0x5375, 0x6E53]
    for m in models:
        b = m.get_mb()
        regs += [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2)]
    return regs + [0xFFFF, 0]


def test_sunspec_scale_factors_match_pysunspec2_on_pymodbus_server():
    """Register images built by pysunspec2 (its encoder, its scale factors), served by pymodbus:
    the gateway must report what pysunspec2 computes, in the field's unit."""
    from pymodbus.simulator import DataType, SimData
    from sunspec2.device import Model

    common = Model(model_id=1)
    common.Mn.value, common.Md.value, common.SN.value = "ACME", "INV-103", "0001"
    inv = Model(model_id=103)
    inv.W.value, inv.W_SF.value = 12345, -1          # 1234.5 W
    inv.DCW.value, inv.DCW_SF.value = 1300, 1        # 13000 W
    inv.WH.value, inv.WH_SF.value = 4_000_000_000, 2  # 4e11 Wh
    inv_f = Model(model_id=113)
    inv_f.W.value, inv_f.WH.value, inv_f.DCW.value = 5432.25, 98765.5, 5600.0
    expect_int = {"ac_power_kw": inv.W.cvalue / 1000, "dc_power_kw": inv.DCW.cvalue / 1000, "export_energy_kwh": inv.WH.cvalue / 1000}
    expect_float = {"ac_power_kw": inv_f.W.cvalue / 1000, "dc_power_kw": inv_f.DCW.cvalue / 1000,
                    "export_energy_kwh": inv_f.WH.cvalue / 1000}
    img1 = _sunspec_image([common, inv])
    img2 = _sunspec_image([common, inv_f])

    async def main():
        srv = await PymodbusServer({1: [SimData(40000, values=img1, datatype=DataType.REGISTERS)],
                                    2: [SimData(0, values=img2, datatype=DataType.REGISTERS)]}).start()
        try:
            cfg = source_config(srv.port, [{"name": "inv1", "unit_id": 1, "asset": "inv1", "poll_interval_s": 0.5, "sunspec": {}},
                                           {"name": "inv2", "unit_id": 2, "asset": "inv2", "poll_interval_s": 0.5,
                                            "sunspec": {"base_address": "auto"}}])
            return await run_source(cfg, 2.0)
        finally:
            await srv.stop()

    rec, src = asyncio.run(main())
    got = {}
    for b in rec.batches:
        for s, v, q in zip(b.series, b.value, b.quality):
            got[(b.table[s].tag_dict["asset"], b.table[s].field)] = (v, q)
    for fld, v in expect_int.items():
        assert got[("inv1", fld)][0] == pytest.approx(v, rel=1e-9) and got[("inv1", fld)][1] == 0, fld
    for fld, v in expect_float.items():
        assert got[("inv2", fld)][0] == pytest.approx(v, rel=1e-6) and got[("inv2", fld)][1] == 0, fld
    assert ("inv1", "irradiance_w_per_m2") not in got  # no model 302: not in the table, not a BAD stream
    assert {b.table[0].measurement for b in rec.batches} == {"pv"}


def test_sunspec_701_der_measurement_and_rtu_framing_through_a_serial_server():
    """Model 701 (DER AC measurement: W with W_SF, TotWhInj uint64 with TotWh_SF) encoded by
    pysunspec2, served with RTU framing over TCP (a transparent serial server), read by unit 7."""
    from pymodbus.simulator import DataType, SimData
    from sunspec2.device import Model

    common = Model(model_id=1)
    der = Model(model_id=701)
    der.W.value, der.W_SF.value = -1500, 1               # -15000 W (absorbing)
    der.TotWhInj.value, der.TotWh_SF.value = 2**40 + 5, 0  # beyond 32 bits: no rollover in a 64-bit register
    img = _sunspec_image([common, der])

    async def main():
        srv = await PymodbusServer({7: [SimData(50000, values=img, datatype=DataType.REGISTERS)]}, framer="rtu").start()
        try:
            cfg = source_config(srv.port, [{"name": "der", "unit_id": 7, "asset": "pv9", "poll_interval_s": 0.5,
                                            "sunspec": {"fields": ["ac_power_kw", "export_energy_kwh"]}}], transport="rtu_over_tcp")
            return await run_source(cfg, 2.0)
        finally:
            await srv.stop()

    rec, _src = asyncio.run(main())
    last = rec.last()
    assert last["ac_power_kw"] == (der.W.cvalue / 1000, 0) == (-15.0, 0)
    assert last["export_energy_kwh"] == (pytest.approx((2**40 + 5) / 1000), 0)
