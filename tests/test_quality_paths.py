"""Quality travels: the same OPC UA tags read by a gateway writing straight to InfluxDB and by one
publishing through the ACL'd broker (its own broker user) to ingest (its own) end up identical in
`sample_quality`, each BAD and UNCERTAIN sample with its OPC UA status code."""

from __future__ import annotations

import uuid

import pytest

from plantmrv.config import load_config
from plantmrv.ingest.service import IngestService
from tests.test_gateway_support import GatewayProcess, OpcUaServer, free_port, gateways, wait_for  # noqa: F401
from tests.test_ingest_support import write_config


def _gateway(path, opcua_url: str, sink: str) -> str:
    return f"""site: {{id: danang}}
gateway:
  id: gw-danang
  sources:
    - type: opcua
      name: plc
      url: {opcua_url}
      history_backfill: false
      groups:
        - name: mixed
          measurement: pump
          asset: P1
          publishing_interval_ms: 100
          nodes:
            - {{field: uncertain_kw, node_id: "ns=2;s=M_uncertain"}}
            - {{field: bad_kw, node_id: "ns=2;s=M_bad"}}
            - {{field: good_kw, node_id: "ns=2;s=M_float"}}
  sink: {sink}
  buffer: {{path: {path}, batch_max_age_s: 0.2}}
  health: {{metrics_port: null, sample_interval_s: null}}
"""


def _points(client) -> dict[tuple, tuple]:
    """{(measurement, field, asset, ts): (value, quality, status_code)} of sample_quality and the raw fields."""
    out = {}
    for r in client.query('SELECT * FROM sample_quality GROUP BY "field", "source", asset'):
        cols = r.columns
        for k, t in enumerate(cols["time"].tolist()):
            out[("sample_quality", r.tags["field"], r.tags["asset"], t)] = tuple(
                None if v != v else v for v in (cols[c][k] if c in cols else float("nan") for c in ("value", "quality", "status_code")))
    for r in client.query("SELECT uncertain_kw, good_kw FROM pump GROUP BY asset"):
        for f in ("uncertain_kw", "good_kw"):
            for t, v in zip(r.columns["time"].tolist(), r.columns[f].tolist()):
                if v == v:
                    out[("pump", f, r.tags["asset"], t)] = (v,)
    return out


def test_non_good_samples_reach_sample_quality_identically_in_direct_and_broker_mode(tmp_path, influxd, mosquitto, gateways):
    srv = OpcUaServer(port=free_port(), tags=1, period_s=0.1, mixed=True, log_path=tmp_path / "opcua.log").start()
    direct_db, broker_db = influxd.client(database="q_direct_" + uuid.uuid4().hex[:6]), influxd.client(database="q_broker_" + uuid.uuid4().hex[:6])
    direct_db.create_database()
    broker_db.create_database()
    icfg = write_config(tmp_path, influxd.url, broker_db.database, mosquitto.url, linger_s=0.1, validation={"permissive": True})
    doc = icfg.read_text().replace("mqtt:\n", f"mqtt:\n  username: ingest\n  password: {mosquitto.passwords['ingest']}\n", 1)
    icfg.write_text(doc)
    svc = IngestService(load_config(icfg)).start()
    try:
        assert svc.wait_subscribed(10), "ingest could not subscribe with its broker user"
        a = tmp_path / "direct.yaml"
        a.write_text(f'influxdb: {{url: "{influxd.url}", database: {direct_db.database}}}\n'
                     + _gateway(tmp_path / "direct.db", srv.url, "{type: influxdb}"))
        b = tmp_path / "broker.yaml"
        b.write_text(f'mqtt: {{url: "{mosquitto.url}", username: gw-danang, password: "{mosquitto.passwords["gw-danang"]}", client_id: gw-danang}}\n'
                     + _gateway(tmp_path / "broker.db", srv.url, "{type: mqtt}"))
        gws = [GatewayProcess(a, tmp_path / "direct.log").start(), GatewayProcess(b, tmp_path / "broker.log").start()]
        gateways.extend(gws)

        def both_have(n):
            got = [sum(1 for k in _points(c) if k[0] == "sample_quality" and k[1] == "bad_kw") for c in (direct_db, broker_db)]
            return min(got) >= n and got

        wait_for(lambda: both_have(20), 40, "20 BAD samples through each path")
        for g in gws:
            assert g.stop() == 0
        wait_for(lambda: svc.metrics.value("plantmrv_ingest_inflight_messages") == 0, 10, "ingest to write what it holds")
        dead = svc.store.list()
    finally:
        svc.stop()
        srv.kill()
    assert not dead, [d.reason for d in dead]
    # what the server produced sits on its 100 ms tick grid; a point between ticks is a hold point a
    # gateway wrote at its own watermark (PublishTime less the sampling interval), whose instant
    # depends on that gateway's publish phase: the two gateways need not share those
    on_grid = lambda pts: {k: v for k, v in pts.items() if k[3] % 100_000_000 == 0}  # noqa: E731
    direct, broker = on_grid(_points(direct_db)), on_grid(_points(broker_db))
    common = sorted({k[3] for k in direct} & {k[3] for k in broker})
    assert len(common) >= 20
    window = (common[0], common[-1])
    pick = lambda pts: {k: v for k, v in pts.items() if window[0] <= k[3] <= window[1]}  # noqa: E731
    d, m = pick(direct), pick(broker)
    assert d == m, f"direct and broker mode differ: only direct {sorted(set(d) - set(m))[:5]}, only broker {sorted(set(m) - set(d))[:5]}"
    bad = {v for k, v in d.items() if k[:2] == ("sample_quality", "bad_kw")}
    assert bad == {(None, 2.0, float(0x808C0000)), (None, 2.0, float(0x80050000))}  # BadSensorFailure, BadCommunicationError: no value
    unc = {v[1:] for k, v in d.items() if k[:2] == ("sample_quality", "uncertain_kw")}
    assert unc == {(1.0, float(0x40900000))}  # UncertainLastUsableValue, with its value in pump as well
    assert any(k[:2] == ("pump", "uncertain_kw") for k in d) and not any(k[:2] == ("pump", "bad_kw") for k in d)
    for db in (direct_db, broker_db):
        db.execute(f'DROP DATABASE "{db.database}"')
        db.close()
