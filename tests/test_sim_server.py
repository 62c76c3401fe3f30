"""The simulator process served to real clients: asyncua over OPC UA in every security mode,
HistoryRead, live faults and the fault log, MQTT device JSON through a real mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from plantmrv.simulators.plants import PLANT_TYPES, generate
from plantmrv.simulators.server import ensure_certificate
from plantmrv.simulators.truth import truth
from tests.sim_fixtures import SimulatorError, start_simulator

PUMP_FIELDS = list(PLANT_TYPES["pump"].fields)
CLIENT_URI = "urn:plantmrv:test:client"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class Collector:
    """Subscription handler that keeps every data change."""

    def __init__(self):
        self.items: list[tuple[str, ua.DataValue]] = []

    def datachange_notification(self, node, val, data):
        self.items.append((node.nodeid.Identifier, data.monitored_item.Value))


async def browse_and_subscribe(client: Client, seconds: float = 2.5) -> dict:
    objs = await client.nodes.objects.get_children()
    names = {(await n.read_browse_name()).Name: n for n in objs}
    assert "danang" in names
    assets = {(await n.read_browse_name()).Name: n for n in await names["danang"].get_children()}
    tags = {(await n.read_browse_name()).Name: n for n in await assets["pump1"].get_children()}
    assert sorted(tags) == sorted(PUMP_FIELDS)
    power = tags["power_kw"]
    eu = await (await power.get_child("0:EngineeringUnits")).read_value()
    desc = (await power.read_description()).Text
    coll = Collector()
    sub = await client.create_subscription(100, coll)
    await sub.subscribe_data_change([tags["power_kw"], tags["flow_m3_per_h"]])
    await asyncio.sleep(seconds)
    await sub.delete()
    return {"eu": eu, "desc": desc, "items": coll.items}


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory, mosquitto):
    """One simulator with all five plants at 2 Hz, publishing to the session mosquitto (QoS 1);
    for the tests that only read from it."""
    work = tmp_path_factory.mktemp("shared-sim")
    cfg = work / "sim.yaml"
    cfg.write_text(
        "plants:\n"
        "  - {type: pump, seed: 0}\n"
        "  - {type: wte, seed: 1, faults: [{kind: bad_status, at_s: 0, duration_s: 3600, field: lhv_mj_per_kg}]}\n"
        "  - {type: pv, seed: 2}\n"
        "  - {type: vsd, seed: 3}\n"
        "  - {type: ubcf, seed: 4, faults: [{kind: uncertain, at_s: 0, duration_s: 3600, field: nh4_out_mg_per_l}]}\n"
    )
    try:
        h = start_simulator(["--config", str(cfg), "--rate", "2", "--mqtt", mosquitto.url, "--mqtt-qos", "1"], work)
    except SimulatorError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield h
    h.stop()


def check_browse(res):
    assert res["eu"].DisplayName.Text == "kW" and res["eu"].UnitId == int.from_bytes(b"KWT", "big")
    assert "Electrical input power" in res["desc"] and "[kW]" in res["desc"]
    powers = [dv for nid, dv in res["items"] if nid == "danang/pump1/power_kw"]
    assert len(powers) >= 2, res["items"]
    assert all(dv.StatusCode.is_good() and 0 <= dv.Value.Value < 2000 for dv in powers)
    ts = [dv.SourceTimestamp for dv in powers]
    assert ts == sorted(ts) and abs((ts[-1] - datetime.now(timezone.utc)).total_seconds()) < 3


def test_simulate_help_documents_the_interface():
    out = subprocess.run([sys.executable, "-m", "plantmrv.simulators", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for needle in [
        "--plants", "--config", "--scale", "--speed", "--rate", "--mqtt", "--security", "--user", "--fault-log",
        "--port", "--host", "--history", "devices/<site>/<asset>", "{\"ts\": <simulated Unix ms>",
        "Objects/<site>/<asset>/<field>", "EngineeringUnits", "BadSensorFailure", "UncertainLastUsableValue",
        "meter_reset", "server_restart", "network_stall", "plantmrv-sim ready endpoint=",
    ]:
        assert needle in text, needle
    # the same text under the core CLI's `plantmrv simulate`
    exe = Path(sys.executable).with_name("plantmrv")
    out = subprocess.run([str(exe), "simulate", "--help"], capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    for needle in ["--plants", "--mqtt", "devices/<site>/<asset>", "UncertainLastUsableValue", "plantmrv-sim ready endpoint="]:
        assert needle in out.stdout, needle


def test_opcua_browse_and_subscribe_without_security(shared_sim):
    sim = shared_sim
    assert sim.tags == sum(len(pt.fields) for pt in PLANT_TYPES.values())

    async def go():
        async with Client(sim.endpoint, timeout=10) as c:
            return await browse_and_subscribe(c)

    check_browse(run(go()))


def test_opcua_basic256sha256_sign_and_sign_encrypt_with_generated_certificates(simulator, tmp_path):
    sim = simulator(["--plants", "pump", "--rate", "2", "--security", "sign", "--security", "encrypt", "--cert-dir", str(tmp_path / "srv")])
    assert (tmp_path / "srv" / "server_cert.der").exists()
    cert, key = ensure_certificate(tmp_path / "cli", "client", CLIENT_URI, client=True)

    async def go(mode):
        c = Client(sim.endpoint, timeout=10)
        c.application_uri = CLIENT_URI
        await c.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), mode=mode)
        async with c:
            return await browse_and_subscribe(c, 1.5)

    for mode in (ua.MessageSecurityMode.Sign, ua.MessageSecurityMode.SignAndEncrypt):
        check_browse(run(go(mode)))

    async def plain():
        async with Client(sim.endpoint, timeout=5) as c:
            await c.nodes.objects.get_children()

    with pytest.raises(Exception):  # no NoSecurity endpoint offered
        run(plain())


def test_opcua_username_password_required_and_wrong_password_refused(simulator):
    sim = simulator(["--plants", "pump", "--rate", "2", "--user", "operator"], env={"PLANTMRV_SIM_PASSWORD": "s3cret-pw"})
    host_port = sim.endpoint.removeprefix("opc.tcp://")

    async def connect(user, password):
        url = f"opc.tcp://{user}:{password}@{host_port}" if user else sim.endpoint
        async with Client(url, timeout=5) as c:
            return await browse_and_subscribe(c, 1.5)

    check_browse(run(connect("operator", "s3cret-pw")))
    for user, pw in [("operator", "wrong"), ("intruder", "s3cret-pw"), (None, None)]:
        with pytest.raises(Exception) as exc:
            run(connect(user, pw))
        assert "s3cret-pw" not in str(exc.value)
    assert "s3cret-pw" not in sim.stderr(1000) + sim.stdout()


def test_history_read_returns_the_model_values_for_a_past_period(shared_sim):
    sim = shared_sim
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start, end = now - timedelta(hours=3), now - timedelta(hours=3) + timedelta(minutes=10)

    async def go():
        async with Client(sim.endpoint, timeout=10) as c:
            node = c.get_node(sim.node_id("danang", "pump1", "energy_kwh"))
            return await node.read_raw_history(start, end)

    dvs = run(go())
    assert len(dvs) == 1201  # the 2 Hz tick grid
    ts = np.array([int(round(dv.SourceTimestamp.timestamp() * 1000)) * 10**6 for dv in dvs], dtype=np.int64)
    assert (np.diff(ts) == 5 * 10**8).all()
    expected = generate("pump", ts, 0)["energy_kwh"]
    vals = [dv.Value.Value for dv in dvs]
    np.testing.assert_allclose(vals, expected, rtol=1e-12)
    # ground truth agrees with the served register
    tr = truth("pump", int(ts[0]), int(ts[-1]), rng=0)
    assert tr.inputs["project_energy_kwh"] == pytest.approx(vals[-1] - vals[0], rel=1e-9)

    # a long backfill goes through continuation points (10,000 values per response)
    async def long():
        async with Client(sim.endpoint, timeout=30) as c:
            node = c.get_node(sim.node_id("yangon", "wte1", "waste_fed_t"))
            return await node.read_raw_history(start, start + timedelta(seconds=3 * 3600 - 10))

    dvs = run(long())
    assert len(dvs) == (3 * 3600 - 10) * 2 + 1
    ts = np.array([int(round(dv.SourceTimestamp.timestamp() * 1000)) * 10**6 for dv in dvs], dtype=np.int64)
    assert (np.diff(ts) == 5 * 10**8).all()
    np.testing.assert_allclose([dv.Value.Value for dv in dvs], generate("wte", ts, 1)["waste_fed_t"], rtol=1e-12)


def test_live_faults_are_served_and_logged_with_their_times(simulator, tmp_path):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(
        "plants:\n"
        "  - type: pump\n"
        "    seed: 2\n"
        "    faults:\n"
        "      - {kind: bad_status, at_s: 2, duration_s: 2, field: power_kw}\n"
        "      - {kind: stuck, at_s: 2, duration_s: 3, field: head_m}\n"
        "      - {kind: uncertain, at_s: 3, duration_s: 2, field: flow_m3_per_h}\n"
        "      - {kind: dropout, at_s: 2, duration_s: 3, field: efficiency}\n"
    )
    sim = simulator(["--config", str(cfg), "--start", "2026-07-01T00:00:00Z", "--rate", "2", "--speed", "1"])

    async def go():
        async with Client(sim.endpoint, timeout=10) as c:
            coll = Collector()
            sub = await c.create_subscription(50, coll)
            nodes = [c.get_node(sim.node_id("danang", "pump1", f)) for f in ("power_kw", "head_m", "flow_m3_per_h", "efficiency")]
            await sub.subscribe_data_change(nodes)
            await asyncio.sleep(7)
            # the same faults in HistoryRead (a gateway backfilling the period)
            t0 = datetime(2026, 7, 1, tzinfo=timezone.utc)
            hist = {f: await c.get_node(sim.node_id("danang", "pump1", f)).read_raw_history(t0, t0 + timedelta(seconds=6))
                    for f in ("power_kw", "efficiency", "head_m")}
            return coll.items, hist

    items, hist = run(go())
    t0 = datetime(2026, 7, 1, tzinfo=timezone.utc)

    def series(field):
        return [((dv.SourceTimestamp - t0).total_seconds(), dv) for nid, dv in items if nid.endswith(field)]

    bad = [s for s, dv in series("power_kw") if dv.StatusCode.value == ua.StatusCodes.BadSensorFailure]
    assert bad and min(bad) >= 2 and max(bad) < 4
    unc = [s for s, dv in series("flow_m3_per_h") if dv.StatusCode.value == ua.StatusCodes.UncertainLastUsableValue]
    assert unc and min(unc) >= 3 and max(unc) < 5
    head = [(s, dv.Value.Value) for s, dv in series("head_m") if 2 <= s < 5]
    assert len({v for _, v in head}) == 1  # stuck (subscriptions only report changes)
    eff_ts = [s for s, _ in series("efficiency")]
    assert not [s for s in eff_ts if 2 <= s < 5]  # dropout: no updates
    hsec = {f: [((dv.SourceTimestamp - t0).total_seconds(), dv) for dv in dvs] for f, dvs in hist.items()}
    assert [s for s, _ in hsec["efficiency"]] == [0, 0.5, 1, 1.5, 5, 5.5, 6]
    assert {s for s, dv in hsec["power_kw"] if dv.StatusCode.value == ua.StatusCodes.BadSensorFailure} == {2, 2.5, 3, 3.5}
    assert len({dv.Value.Value for s, dv in hsec["head_m"] if 2 <= s < 5}) == 1
    log = sim.faults()
    starts = {(r["kind"], r["field"]): r for r in log if r["event"] == "start"}
    ends = {(r["kind"], r["field"]): r for r in log if r["event"] == "end"}
    T0 = int(t0.timestamp()) * 10**9
    assert starts[("bad_status", "power_kw")]["start_ns"] == T0 + 2 * 10**9
    assert starts[("bad_status", "power_kw")]["end_ns"] == T0 + 4 * 10**9
    assert starts[("bad_status", "power_kw")]["status"] == "BadSensorFailure"
    assert ends[("stuck", "head_m")]["sim_ns"] == T0 + 5 * 10**9
    assert starts[("uncertain", "flow_m3_per_h")]["status"] == "UncertainLastUsableValue"
    assert starts[("dropout", "efficiency")]["sim_ns"] == T0 + 2 * 10**9


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_server_restart_fault_closes_and_reopens_the_port(simulator, tmp_path):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("plants: [{type: pv}]\nfaults:\n  - {kind: server_restart, at_s: 2, duration_s: 2}\n")
    sim = simulator(["--config", str(cfg), "--start", "2026-07-01T05:00:00Z"])
    seen = []
    t_end = time.monotonic() + 6
    while time.monotonic() < t_end:
        seen.append(_port_open(sim.port))
        time.sleep(0.1)
    assert seen[0] and not all(seen) and seen[-1]
    kinds = [(r["event"], r["kind"]) for r in sim.faults()]
    assert ("start", "server_restart") in kinds and ("end", "server_restart") in kinds


def test_mqtt_device_json_reaches_a_real_mosquitto(shared_sim, mosquitto):
    import paho.mqtt.client as mqtt

    sim = shared_sim
    got: list[tuple[str, dict]] = []
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sim-test")
    c.on_connect = lambda cl, ud, fl, rc, props=None: (cl.subscribe("devices/#", qos=1), ready.set())
    c.on_message = lambda cl, ud, msg: got.append((msg.topic, json.loads(msg.payload)))
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    try:
        assert ready.wait(10)
        t_end = time.monotonic() + 10
        while time.monotonic() < t_end and (len({t for t, _ in got}) < 5 or len(got) < 20):
            time.sleep(0.1)
    finally:
        c.loop_stop()
        c.disconnect()
    topics = {t for t, _ in got}
    assert topics == {"devices/danang/pump1", "devices/yangon/wte1", "devices/binhduong/pv1", "devices/hcmc/intake1", "devices/haiphong/ubcf1"}
    for topic, payload in got:
        plant = {"danang": "pump", "yangon": "wte", "binhduong": "pv", "hcmc": "vsd", "haiphong": "ubcf"}[topic.split("/")[1]]
        fields = set(PLANT_TYPES[plant].fields)
        if plant == "wte":  # a bad field carries no value, only its status
            assert payload["status"] == {"lhv_mj_per_kg": "BadSensorFailure"}
            assert set(payload) == {"ts", "status", *fields} - {"lhv_mj_per_kg"}
        elif plant == "ubcf":  # an uncertain field keeps its (held) value
            assert payload["status"] == {"nh4_out_mg_per_l": "UncertainLastUsableValue"}
            assert set(payload) == {"ts", "status", *fields}
        else:
            assert set(payload) == {"ts", *fields}
        assert abs(payload["ts"] / 1000 - time.time()) < 15
    held = {p["nh4_out_mg_per_l"] for t, p in got if t == "devices/haiphong/ubcf1"}
    assert len(held) == 1
    pump = [p for t, p in got if t == "devices/danang/pump1"]
    ts = np.array([p["ts"] for p in pump], dtype=np.int64) * 10**6
    np.testing.assert_allclose([p["power_kw"] for p in pump], generate("pump", ts, 0)["power_kw"], rtol=1e-12)
    wte = [p for t, p in got if t == "devices/yangon/wte1"]
    ts = np.array([p["ts"] for p in wte], dtype=np.int64) * 10**6
    np.testing.assert_allclose([p["net_export_energy_kwh"] for p in wte], generate("wte", ts, 1)["net_export_energy_kwh"], rtol=1e-12)
    assert sim.running()


def test_scale_serves_many_assets_from_one_process(simulator):
    sim = simulator(["--plants", "pump,vsd", "--scale", "60", "--speed", "60", "--start", "2026-07-01T00:00:00Z"], ready_timeout_s=90)
    assert sim.tags == 60 * (9 + 8)

    async def go():
        async with Client(sim.endpoint, timeout=10) as c:
            nodes = [c.get_node(sim.node_id("danang", f"pump1-{k}", "power_kw")) for k in range(1, 60)]
            await asyncio.sleep(1.0)
            a = await c.get_node(sim.node_id("hcmc", "intake1-59", "power_kw")).read_data_value()
            await asyncio.sleep(2.0)
            b = await c.get_node(sim.node_id("hcmc", "intake1-59", "power_kw")).read_data_value()
            return await c.read_values(nodes), a, b

    vals, a, b = run(go())
    assert len(vals) == 59 and all(v > 0 for v in vals) and len(set(vals)) > 50
    # --speed 60: one simulated minute per wall second
    assert 90 <= (b.SourceTimestamp - a.SourceTimestamp).total_seconds() <= 150


def test_network_stall_fault_freezes_the_server_and_leaves_a_gap(simulator, tmp_path):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("plants: [{type: pump}]\nfaults:\n  - {kind: network_stall, at_s: 2, duration_s: 2}\n")
    sim = simulator(["--config", str(cfg), "--start", "2026-07-01T00:00:00Z", "--rate", "2"])
    t0 = datetime(2026, 7, 1, tzinfo=timezone.utc)

    async def go():
        lat, stamps = [], []
        async with Client(sim.endpoint, timeout=10, watchdog_intervall=30) as c:
            node = c.get_node(sim.node_id("danang", "pump1", "power_kw"))
            end = time.monotonic() + 5.5
            while time.monotonic() < end:
                t = time.monotonic()
                dv = await node.read_data_value()
                lat.append(time.monotonic() - t)
                stamps.append((dv.SourceTimestamp - t0).total_seconds())
                await asyncio.sleep(0.1)
        return lat, stamps

    lat, stamps = run(go())
    assert max(lat) > 1.0  # a read hung while the process stalled
    assert not [s for s in stamps if 2 <= s < 4]  # no sample from inside the stall window
    kinds = [(r["event"], r["kind"]) for r in sim.faults()]
    assert ("start", "network_stall") in kinds


def test_mqtt_only_mode_without_an_opcua_server(simulator, mosquitto):
    import paho.mqtt.client as mqtt

    got: list[str] = []
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sim-test-mqtt-only")
    c.on_connect = lambda cl, ud, fl, rc, props=None: (cl.subscribe("devices/binhduong/#"), ready.set())
    c.on_message = lambda cl, ud, msg: got.append(msg.topic)
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    try:
        assert ready.wait(10)
        sim = simulator(["--plants", "pv", "--no-opcua", "--mqtt", mosquitto.url, "--rate", "4"])
        assert sim.endpoint == "none" and sim.tags == 5
        t_end = time.monotonic() + 8
        while time.monotonic() < t_end and len(got) < 3:
            time.sleep(0.05)
    finally:
        c.loop_stop()
        c.disconnect()
    assert len(got) >= 3 and set(got) == {"devices/binhduong/pv1"}
    assert not _port_open(sim.port)
