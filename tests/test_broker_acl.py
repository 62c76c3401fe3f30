"""The broker as shipped (deploy/mosquitto/mosquitto.conf: TLS, password users, the dynamic-security
authorization `plantmrv broker-acl` makes), run by Debian's mosquitto with real gateway and ingest:
a gateway publishes only its own topics and subscribes to nothing, only ingest subscribes, nobody
takes over ingest's session, and a gateway configured for another site is refused and keeps its data.
"""

from __future__ import annotations

import getpass
import json
import shutil
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml

from plantmrv.brokeracl import GatewayIdentity, IngestIdentity, document_for_files, dynsec_document, render
from plantmrv.config import load_config
from plantmrv.ingest.service import IngestService
from plantmrv.localservices import MosquittoService, ServiceError, dynsec_plugin, find_binary, free_port, write_passwords
from tests.test_gateway_support import GatewayProcess, buffer_samples, gateways  # noqa: F401  (gateways is a fixture)
from tests.test_ingest_support import pump_batch, batch_messages, now_base_ns, wait_until

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "mosquitto"
GATEWAYS = [GatewayIdentity("gw-danang", "danang", "gw-danang"), GatewayIdentity("gw-hcmc", "hcmc", "gw-hcmc")]
INGEST = IngestIdentity("ingest", group="ingest")
PASSWORDS = {"gw-danang": "pw-danang-" + uuid.uuid4().hex[:6], "gw-hcmc": "pw-hcmc-" + uuid.uuid4().hex[:6], "ingest": "pw-ingest-" + uuid.uuid4().hex[:6]}


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """CA, broker and a client certificate (CN gw-danang) made by the shipped make-certs.sh."""
    d = tmp_path_factory.mktemp("pki")
    shutil.copy(DEPLOY / "make-certs.sh", d / "make-certs.sh")
    for args in ([], ["client", "gw-danang"]):
        r = subprocess.run(["sh", str(d / "make-certs.sh"), *args], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return d / "certs"


def shipped_broker(workdir: Path, certs: Path, client_certs: bool = False) -> MosquittoService:
    """deploy/mosquitto/mosquitto.conf with its container paths pointed at ``workdir`` and a free port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    write_passwords(workdir / "passwd", PASSWORDS)
    (workdir / "dynamic-security.json").write_text(render(dynsec_document(GATEWAYS, [INGEST])))
    text = (DEPLOY / "mosquitto.conf").read_text()
    for old, new in (("listener 8883", f"listener {port} 127.0.0.1"), ("/mosquitto/certs/", f"{certs}/"),
                     ("/mosquitto/config/", f"{workdir}/"), ("/mosquitto/data/", f"{workdir}/"),
                     ("/usr/lib/mosquitto_dynamic_security.so", dynsec_plugin())):
        assert old in text, f"deploy/mosquitto/mosquitto.conf no longer holds {old!r}: update this test"
        text = text.replace(old, new)
    if client_certs:
        text = text.replace("require_certificate false", "require_certificate true").replace(
            "use_identity_as_username false", "use_identity_as_username true")
    text += f"\nuser {getpass.getuser()}\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
    (workdir / "mosquitto.conf").write_text(text)
    return MosquittoService("mosquitto", [find_binary("mosquitto"), "-c", str(workdir / "mosquitto.conf")], "127.0.0.1", port,
                            workdir, workdir / "mosquitto.log", passwords=PASSWORDS)


@pytest.fixture
def broker(tmp_path, certs):
    try:
        svc = shipped_broker(tmp_path / "broker", certs).start()
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield svc
    svc.stop()


class Client:
    """A paho MQTT 5 client over TLS that records what the broker answers."""

    def __init__(self, broker: MosquittoService, certs: Path, user: str | None, password: str | None = None,
                 client_id: str | None = None, cert: str | None = None, connack_timeout_s: float = 10):
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or f"t-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
        if user and not cert:
            self.c.username_pw_set(user, PASSWORDS.get(user) if password is None else password)
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        if cert:
            ctx.load_cert_chain(str(certs / f"{cert}.crt"), str(certs / f"{cert}.key"))
        self.c.tls_set_context(ctx)
        self.connack, self.subacks, self.pubacks, self.messages, self.disconnects = None, [], {}, [], []
        self.c.on_connect = lambda c, u, f, rc, p=None: setattr(self, "connack", str(rc))
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.subacks.append([str(r) for r in rcs])
        # a PUBACK below 0x80 accepts the message ("Success", "No matching subscribers")
        self.c.on_publish = lambda c, u, mid, rc, p=None: self.pubacks.__setitem__(mid, str(rc) if rc.is_failure else "Accepted")
        self.c.on_message = lambda c, u, m: self.messages.append(m.topic)
        self.c.on_disconnect = lambda c, u, f, rc, p=None: self.disconnects.append(str(rc))
        self.c.connect("127.0.0.1", broker.port, 30)
        self.c.loop_start()
        wait_until(lambda: self.connack is not None, connack_timeout_s, f"CONNACK for {user}", 0.02)

    def publish(self, topic: str, payload: bytes = b"x") -> str:
        info = self.c.publish(topic, payload, qos=1)
        wait_until(lambda: info.mid in self.pubacks, 10, f"PUBACK on {topic}", 0.01)
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> str:
        n = len(self.subacks)
        self.c.subscribe(topic, qos=1)
        wait_until(lambda: len(self.subacks) > n, 10, f"SUBACK on {topic}", 0.01)
        return self.subacks[n][0]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_a_gateway_publishes_only_its_own_topics_and_subscribes_to_nothing(broker, certs):
    gw = Client(broker, certs, "gw-danang")
    try:
        assert gw.connack == "Success"
        assert gw.publish("plantmrv/v1/danang/gw-danang/data") == "Accepted"
        assert gw.publish("plantmrv/v1/danang/gw-danang/state") == "Accepted"
        for forged in ("plantmrv/v1/hcmc/gw-hcmc/data", "plantmrv/v1/hcmc/gw-danang/data", "plantmrv/v1/danang/gw-x/data",
                       "plantmrv/v1/danang/gw-danang/data/x", "devices/danang/pump1"):
            assert gw.publish(forged) == "Not authorized", forged
        for stolen in ("$share/ingest/plantmrv/v1/+/+/data", "plantmrv/v1/+/+/data", "plantmrv/v1/danang/gw-danang/data", "#", "$SYS/#"):
            assert gw.subscribe(stolen) == "Not authorized", stolen
    finally:
        gw.close()
    for user, password in (("gw-danang", "wrong"), ("nobody", "x"), (None, None)):
        c = Client(broker, certs, user, password)
        assert c.connack == "Not authorized", user
        c.close()


def test_only_ingest_receives_the_data_even_when_others_join_its_group_or_take_its_client_id(broker, certs, tmp_path, influx_db):
    """Two other users try to join $share/ingest (on Mosquitto's acl_file each would silently
    take a share of the messages) and one connects with ingest's client id: ingest gets every message."""
    cfg = tmp_path / "ingest.yaml"
    cfg.write_text(yaml.safe_dump({
        "influxdb": {"url": influx_db.url, "database": influx_db.database, "max_retries": 1},
        "mqtt": {"url": f"mqtts://127.0.0.1:{broker.port}", "username": "ingest", "password": PASSWORDS["ingest"],
                 "client_id": "ingest", "tls": {"ca_file": str(certs / "ca.crt")}},
        "ingest": {"group": "ingest", "linger_s": 0.1, "dead_letters": {"path": str(tmp_path / "dead.db")}, "metrics": {"port": None}},
    }))
    svc = IngestService(load_config(cfg)).start()
    thieves = []
    try:
        assert svc.wait_subscribed(10), "ingest could not subscribe with its own identity"
        for user in ("gw-hcmc", "gw-danang"):
            t = Client(broker, certs, user)
            assert t.subscribe("$share/ingest/plantmrv/v1/+/+/data") == "Not authorized"
            thieves.append(t)
        hijack = Client(broker, certs, "gw-hcmc", client_id="ingest")  # its client id becomes its user name
        assert hijack.connack == "Success"
        thieves.append(hijack)
        gw = Client(broker, certs, "gw-danang")
        thieves.append(gw)
        batch = pump_batch("danang", 2, now_base_ns(), 15)
        msgs = batch_messages(batch, 4, "danang", gateway="gw-danang")
        assert len(msgs) == 30
        for topic, payload in msgs:
            assert gw.publish(topic, payload) == "Accepted"
        wait_until(lambda: svc.metrics.value("plantmrv_ingest_points_written_total") >= len(batch), 20, "every point written")
        assert svc.metrics.value("plantmrv_ingest_messages_acked_total") == 30
        assert not any(t.messages for t in thieves)
        assert svc.metrics.value("plantmrv_ingest_broker_connected") == 1
    finally:
        for t in thieves:
            t.close()
        svc.stop()
    res = influx_db.query("SELECT count(power_kw) FROM pump WHERE site='danang'")
    assert int(res[0].columns["count"][0]) == 30


def _gateway_yaml(path: Path, broker: MosquittoService, certs: Path, site: str, user: str) -> Path:
    """A gateway whose only data is its health measurement (its OPC UA server is absent)."""
    path.write_text(yaml.safe_dump({
        "site": {"id": site},
        "mqtt": {"url": f"mqtts://127.0.0.1:{broker.port}", "username": user, "password": PASSWORDS[user],
                 "client_id": user, "tls": {"ca_file": str(certs / "ca.crt")}},
        "gateway": {"id": "gw-danang", "sources": [{"type": "opcua", "name": "plc", "url": f"opc.tcp://127.0.0.1:{free_port()}",
                                                     "reconnect_min_s": 5, "reconnect_max_s": 10,
                                                     "groups": [{"name": "g", "measurement": "pump", "nodes": [{"field": "power_kw", "node_id": "ns=2;s=P"}]}]}],
                    "sink": {"type": "mqtt"},
                    "buffer": {"path": str(path.parent / f"{site}-buffer.db"), "batch_max_age_s": 0.2, "retry_min_s": 0.2, "retry_max_s": 1},
                    "health": {"metrics_port": None, "sample_interval_s": 0.5, "status_log_interval_s": 60}},
    }))
    return path


def test_a_gateway_configured_for_another_site_is_refused_by_the_broker_and_keeps_its_data(broker, certs, tmp_path, gateways):
    """gw-danang's credentials with a config that says site hcmc: the broker refuses every publish
    (MQTT 5 PUBACK Not authorized), the gateway logs it and keeps the batches; with its own site it delivers."""
    watcher = Client(broker, certs, "ingest")
    try:
        assert watcher.subscribe("$share/ingest/plantmrv/v1/+/+/data") == "Granted QoS 1"
        forged = GatewayProcess(_gateway_yaml(tmp_path / "forged.yaml", broker, certs, "hcmc", "gw-danang"), tmp_path / "forged.log").start()
        gateways.append(forged)
        wait_until(lambda: "event=sink_send_failed" in forged.log(), 20, "the refused send to be logged")
        time.sleep(1.0)
        assert forged.stop() == 0
        log = forged.log()
        assert "refused" in log and "Not authorized" in log and "plantmrv/v1/hcmc/gw-danang/data" in log, log[-2000:]
        assert PASSWORDS["gw-danang"] not in log
        kept = buffer_samples(tmp_path / "hcmc-buffer.db")
        assert kept and all(",site=hcmc " in key for key, _ts in kept), "the refused batches must stay in the buffer"
        assert watcher.messages == []

        honest = GatewayProcess(_gateway_yaml(tmp_path / "honest.yaml", broker, certs, "danang", "gw-danang"), tmp_path / "honest.log").start()
        gateways.append(honest)
        wait_until(lambda: watcher.messages, 20, "the gateway's own data")
        assert honest.stop() == 0
        assert set(watcher.messages) == {"plantmrv/v1/danang/gw-danang/data"}
    finally:
        watcher.close()


def test_client_certificates_authenticate_a_gateway_with_the_same_authorization(tmp_path, certs):
    """The shipped alternative to passwords: require_certificate + use_identity_as_username."""
    try:
        svc = shipped_broker(tmp_path / "broker", certs, client_certs=True).start()
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        gw = Client(svc, certs, "gw-danang", cert="gw-danang")
        assert gw.connack == "Success"
        assert gw.publish("plantmrv/v1/danang/gw-danang/data") == "Accepted"
        assert gw.publish("plantmrv/v1/hcmc/gw-hcmc/data") == "Not authorized"
        gw.close()
        with pytest.raises((ssl.SSLError, OSError, AssertionError)):
            Client(svc, certs, "gw-danang", connack_timeout_s=3)  # a password alone no longer gets in
    finally:
        svc.stop()


def test_the_shipped_authorization_is_what_broker_acl_makes_of_the_shipped_configs(monkeypatch):
    monkeypatch.setenv("INFLUX_TOKEN", "x")
    monkeypatch.setenv("MQTT_PASSWORD", "x")
    doc = document_for_files([REPO / "deploy/config/ingest.yaml", REPO / "examples/gateway-opcua.yaml"])
    assert json.loads((DEPLOY / "dynamic-security.json").read_text()) == doc, (
        "run: plantmrv broker-acl deploy/config/ingest.yaml examples/gateway-opcua.yaml -o deploy/mosquitto/dynamic-security.json")
    text = json.dumps(doc)
    assert "password" not in text and "salt" not in text, "the authorization holds no secrets"
