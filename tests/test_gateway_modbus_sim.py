"""Modbus source against the project's simulator (``plantmrv simulate --modbus``): the example
config's Danfoss VSD map and the SunSpec inverter return the plant model's values; faults
(dropout = timeout, bad_status = exception 04, stuck, server restart) become BAD samples or held
values; kill -9 of a polling gateway loses no buffered sample."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import yaml

from plantmrv.localservices import free_port
from plantmrv.simulators.meters import parse_time_ns
from plantmrv.simulators.plants import generate, make_params
from tests.modbus_support import run_source, source_config
from tests.test_gateway_support import (  # noqa: F401  (gateways is a fixture)
    REPO, GatewayProcess, buffer_samples, gateways, influx_keys, metrics_value, wait_for,
)

START = "2026-03-10T05:00:00Z"  # noon at the pv site: the inverter produces


def _example_devices(port: int) -> list[dict]:
    doc = yaml.safe_load((REPO / "examples" / "gateway-modbus.yaml").read_text())
    return doc["gateway"]["sources"][0]["devices"]


def _sim(simulator, tmp_path, faults=(), extra=()):
    port = free_port()
    cfg = {"start": START, "plants": [{"type": "vsd", "faults": [f for f in faults if f["asset"] == "intake1"]},
                                      {"type": "pv", "faults": [f for f in faults if f["asset"] == "pv1"]}],
           "faults": [f for f in faults if f["asset"] is None]}
    for f in cfg["plants"][0]["faults"] + cfg["plants"][1]["faults"] + cfg["faults"]:
        f.pop("asset")
    p = tmp_path / "sim.yaml"
    p.write_text(yaml.safe_dump(cfg))
    sim = simulator(["--config", str(p), "--no-opcua", "--modbus", str(port), *extra])
    t_ready = time.time()
    return sim, port, t_ready


def _model(plant: str, n: int):
    t0 = parse_time_ns(START)
    ts = t0 + np.arange(n, dtype=np.int64) * 1_000_000_000
    return generate(plant, ts, 0 if plant == "vsd" else 1, make_params(plant))


def _matches(values, model, k_est: int, tol: float) -> bool:
    return any(abs(values - model[k]) <= tol for k in range(max(0, k_est - 2), min(len(model), k_est + 3)))


def test_example_vsd_map_and_sunspec_inverter_read_the_plant_models(simulator, tmp_path):
    faults = [
        {"kind": "stuck", "at_s": 2, "duration_s": 3, "asset": "intake1", "field": "flow_m3_per_h"},
        {"kind": "dropout", "at_s": 4, "duration_s": 2, "asset": "intake1", "field": "power_kw"},
        {"kind": "bad_status", "at_s": 5, "duration_s": 2, "asset": "pv1", "field": "ac_power_kw"},
        {"kind": "server_restart", "at_s": 8, "duration_s": 2, "asset": None},
    ]
    sim, port, t_ready = _sim(simulator, tmp_path, faults)
    assert "event=modbus unit=1 site=hcmc asset=intake1 plant=vsd map=danfoss-fc" in sim.stdout()
    devices = _example_devices(port)
    for d in devices:
        d.update(poll_interval_s=0.5, timeout_s=0.3, retries=0)
    cfg = source_config(port, devices)
    rec, src = asyncio.run(run_source(cfg, 12.0))
    vsd, pv = _model("vsd", 40), _model("pv", 40)
    checked = 0
    for fld, model, tol in (("power_kw", vsd["power_kw"], 0.011), ("frequency_hz", vsd["frequency_hz"], 0.051),
                            ("energy_kwh", vsd["energy_kwh"], 1.0), ("ac_power_kw", pv["ac_power_kw"], 0.051),
                            ("export_energy_kwh", pv["export_energy_kwh"], 0.011), ("module_temp_c", pv["module_temp_c"], 0.051)):
        for t, v, q in rec.series(fld):
            if q:
                continue
            k_est = int(round(t / 1e9 - t_ready))
            assert _matches(v, model, k_est, tol), (fld, t, v, k_est, model[max(0, k_est - 2):k_est + 3])
            checked += 1
    assert checked > 50
    # energy in the export register matches ground truth for the span it covers (10 Wh register steps)
    rows = [(t, v) for t, v, q in rec.series("export_energy_kwh") if q == 0]
    assert rows[-1][1] > rows[0][1]

    def phase(fld, lo, hi):
        return [q for t, _v, q in rec.series(fld) if lo <= t / 1e9 - t_ready < hi]

    assert 2 in phase("power_kw", 4.6, 5.6), "dropout must time out into BAD samples"
    assert 2 in phase("ac_power_kw", 5.6, 6.6), "bad_status must answer exception 04 -> BAD"
    assert set(phase("power_kw", 8.6, 9.6)) == {2}, "server restart: every point BAD"
    assert phase("power_kw", 11.0, 12.5) and set(phase("power_kw", 11.0, 12.5)) == {0}, "back after the restart"
    stuck = [v for t, v, q in rec.series("flow_m3_per_h") if 2.6 <= t / 1e9 - t_ready < 4.6 and q == 0]
    assert len(set(stuck)) <= 1, "a stuck value is held (and, with its 0.5 deadband, sent at most once)"
    assert len({v for _t, v, q in rec.series("flow_m3_per_h") if q == 0}) >= 3, "flow moves outside the fault"
    assert src.metrics.reconnects >= 1
    assert "Traceback" not in sim.stderr(200)


@pytest.mark.slow
def test_kill_9_while_polling_loses_no_buffered_sample(simulator, tmp_path, influx_db, influxd, gateways):
    sim, port, _ = _sim(simulator, tmp_path)
    devices = _example_devices(port)
    for d in devices:
        d["poll_interval_s"] = 0.2
    mport = free_port()
    cfg = {"site": {"id": "hcmc"}, "influxdb": {"url": influxd.url, "database": influx_db.database},
           "gateway": {"id": "gw1", "sink": {"type": "influxdb"},
                       "sources": [{"type": "modbus", "name": "bus", "host": "127.0.0.1", "port": port, "devices": devices}],
                       "buffer": {"path": str(tmp_path / "buffer.db"), "batch_max_age_s": 0.3, "send_max_batches": 2,
                                  "replay_max_samples_per_s": 8},
                       "health": {"metrics_port": None, "sample_interval_s": None}}}
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(cfg))
    buffered: set = set()
    for i in range(3):
        log = tmp_path / f"gw{i}.log"
        gw = GatewayProcess(path, log).start()
        gateways.append(gw)
        wait_for(lambda: "event=modbus_connected" in log.read_text(errors="replace"), 60, "gateway polling")
        time.sleep(1.5 + 0.4 * i)  # polling at 5 Hz into a buffer drained at 8 samples/s
        gw.kill9()
        buffered |= buffer_samples(tmp_path / "buffer.db", good_only=True)
    assert buffered, "the buffer never held data at a kill: the test would prove nothing"
    cfg["gateway"]["buffer"]["replay_max_samples_per_s"] = 100_000
    cfg["gateway"]["health"]["metrics_port"] = mport
    path.write_text(yaml.safe_dump(cfg))
    gw = GatewayProcess(path, tmp_path / "gw.log").start()
    gateways.append(gw)
    wait_for(lambda: metrics_value(mport, "plantmrv_gateway_samples_sent_total") > 0
             and metrics_value(mport, "plantmrv_gateway_buffer_depth_samples") == 0, 40, "buffer drained")
    assert gw.stop() == 0
    lost = buffered - influx_keys(influx_db)
    assert not lost, f"{len(lost)} of {len(buffered)} buffered samples never reached InfluxDB, e.g. {sorted(lost)[:3]}"
    log = gw.log()
    assert "event=modbus_connected" in log and "Traceback" not in log, log[-3000:]


def test_scan_lists_answering_ranges_and_sunspec_models_and_writes_a_loadable_source(simulator, tmp_path):
    import subprocess
    import sys

    from plantmrv.gateway.modbus_source import ModbusSourceConfig

    sim, port, _ = _sim(simulator, tmp_path)
    out = tmp_path / "scan.yaml"
    r = subprocess.run([sys.executable, "-m", "plantmrv", "gateway", "scan", f"modbus://127.0.0.1:{port}", "--unit", "2",
                        "--range", "40000-40100", "--timeout", "0.3", "-o", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "model 103 at 40070 (L=50): Inverter (Three Phase)" in r.stdout
    assert "holding registers answering: 40000-40100" in r.stdout
    assert "manufacturer='plantmrv' model='sim-pv'" in r.stdout
    src = yaml.safe_load(out.read_text())[0]
    cfg = ModbusSourceConfig.model_validate({**src, "devices": [{**src["devices"][0], "asset": "pv1"}]})
    assert cfg.devices[0].sunspec.base_address == 40000
    r = subprocess.run([sys.executable, "-m", "plantmrv", "gateway", "scan", f"modbus://127.0.0.1:{port}", "--unit", "1",
                        "--range", "16020-16140", "--timeout", "0.3"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "holding registers answering: 16020-16140" in r.stdout and "no 'SunS' marker" in r.stdout
    r = subprocess.run([sys.executable, "-m", "plantmrv", "gateway", "scan", "tcp://x", "--range", "9-1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--range: '9-1' is not a range" in r.stderr and "Traceback" not in r.stderr
