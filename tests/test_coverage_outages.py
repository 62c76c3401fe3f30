"""Real outages stay gaps: report-by-exception coverage never bridges what was not observed.

A simulated pump station served over OPC UA without history (every outage is a permanent gap),
a real gateway writing straight to a real influxd, and the analytics engine. Three outages in
one run: the gateway stopped for five plant minutes (longer than the server's monitored-item
queues hold: a shorter stop loses nothing, the restarted gateway takes its subscription over,
see tests/test_durability.py), the OPC UA server down for five, and the energy meter's tag BAD
for five. Each must come out as a gap of its own length (within the
gateway's heartbeat interval), filled conservatively, with completeness below 1; the silence
in between, when tags are unchanged but healthy, must not.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.engine import Engine
from plantmrv.localservices import free_port
from plantmrv.simulators.meters import parse_time_ns
from tests.helpers import wait_for
from tests.test_gateway_support import GatewayProcess

S = 1_000_000_000
START = "2026-12-04T00:00:00Z"
SPEED = 20.0  # plant seconds per wall second; a tick (5 Hz) is 4 plant seconds
HEARTBEAT_S = 60.0


def _gateway_yaml(tmp_path, url: str, influxd, db) -> "Path":
    doc = {
        "site": {"id": "danang"},
        "influxdb": {"url": influxd.url, "database": db.database},
        "gateway": {
            "id": "gw-danang",
            "sources": [{
                "type": "opcua", "name": "plc", "url": url, "history_backfill": False, "reconnect_min_s": 0.2, "reconnect_max_s": 0.5,
                "stale_after_s": 2, "keepalive_s": 0.5, "max_sample_interval_s": HEARTBEAT_S,
                "groups": [{"name": "pump1", "measurement": "pump", "asset": "pump1", "publishing_interval_ms": 200, "sampling_interval_ms": 100,
                            # queue_size 5: 1 s of a 5 Hz plant, so the server cannot hold the gateway's 15 s stop
                            "queue_size": 5, "nodes": [{"field": f, "node_id": f"ns=2;s=danang/pump1/{f}"} for f in ("energy_kwh", "power_kw", "running", "volume_m3")]}],
            }],
            "sink": {"type": "influxdb"},
            "buffer": {"path": str(tmp_path / "buffer.db"), "batch_max_age_s": 0.2},
            "health": {"metrics_port": free_port(), "sample_interval_s": None},
        },
    }
    p = tmp_path / "gw.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def _project() -> dict:
    raw = yaml.safe_load(open("examples/analytics.yaml"))["analytics"]["projects"]
    p = next(x for x in raw if x["id"] == "danang-pumps")
    p["assets"][0]["fields"] = {"energy_meter": "energy_kwh", "volume_meter": "volume_m3"}
    p["monitoring_period"] = {"start": "2026-12-04T00:00:00Z", "end": "2026-12-05T00:00:00Z"}
    return p


@pytest.mark.slow
def test_gateway_stop_server_outage_and_a_bad_tag_are_gaps_of_their_own_length(tmp_path, simulator, influxd, influx_db):
    faults = tmp_path / "faults.yaml"
    t0 = parse_time_ns(START)
    # the server down 1500..1800 s, the energy meter BAD 2100..2400 s (plant time from START)
    faults.write_text(yaml.safe_dump({"start": START, "plants": [{"type": "pump", "site": "danang", "asset": "pump1", "seed": 11,
                                                                  "faults": [{"kind": "bad_status", "at_s": 2100, "duration_s": 300, "field": "energy_kwh"}]}],
                                      "faults": [{"kind": "server_restart", "at_s": 1500, "duration_s": 300}]}))
    sim = simulator(["--config", str(faults), "--speed", str(SPEED), "--rate", "5", "--no-history", "--start", START])
    gw = GatewayProcess(_gateway_yaml(tmp_path, sim.endpoint, influxd, influx_db), tmp_path / "gw.log").start()
    try:
        plant_ns = lambda: t0 + int((time.monotonic() - wall0) * SPEED * S)  # noqa: E731
        wall0 = time.monotonic()
        # the gateway runs, is stopped for five plant minutes (15 s), runs again
        wait_for(lambda: plant_ns() > t0 + 600 * S, 60, "plant time 600 s")
        assert gw.stop() == 0
        stopped_wall = time.monotonic()
        time.sleep(300 / SPEED)
        gw.start()
        outage_s = (time.monotonic() - stopped_wall) * SPEED
        wait_for(lambda: any(f["event"] == "end" and f["kind"] == "bad_status" for f in sim.faults()), 120, "the bad tag's end")
        time.sleep(120 / SPEED)
    finally:
        gw.stop()
    recs = sim.faults()
    span = {(f["kind"], f["event"]): f["sim_ns"] for f in recs}
    server = (span[("server_restart", "start")], span[("server_restart", "end")])
    bad = (span[("bad_status", "start")], span[("bad_status", "end")])

    cfg = AnalyticsConfig.model_validate({"projects": [_project()], "max_gap_s": 120, "mrv_interval": "1h", "process_interval": "1m"})
    eng = Engine(cfg, influx_db)
    end = (bad[1] + 60 * S) // (60 * S) * 60 * S  # the stream ran 120 plant seconds past the bad tag's end
    eng.backfill(t0 + 300 * S, end, interval_s=[60])
    p = cfg.projects[0]
    cols = eng.read_results(p, t0 + 300 * S, end, 60)
    gap = np.asarray(cols["gap_filled_s"], float)
    ts = np.asarray(cols["time"], np.int64)

    def gap_in(a_ns, b_ns):
        sel = (ts >= a_ns - 120 * S) & (ts < b_ns + 120 * S)
        return float(gap[sel].sum()), float(np.min(np.asarray(cols["completeness"], float)[sel]))

    # the gateway's own outage: from its last stored sample to its first after the restart
    g, c = gap_in(t0 + 600 * S, t0 + 600 * S + int(outage_s * S))
    assert outage_s - HEARTBEAT_S <= g <= outage_s + HEARTBEAT_S, (g, outage_s)
    assert c < 1.0
    # the server down: unobserved from the fault's start to the reconnection after it
    g, c = gap_in(*server)
    assert (server[1] - server[0]) / S - HEARTBEAT_S <= g <= (server[1] - server[0]) / S + HEARTBEAT_S, (g, server)
    assert c < 1.0
    # the BAD meter: exactly its span, to a tick (the gateway stores the value held until the bad sample)
    g, c = gap_in(*bad)
    assert abs(g - (bad[1] - bad[0]) / S) <= 2 * 4.0, (g, bad)
    assert c < 1.0
    # nothing else is a gap: healthy silence (a stopped pump's unchanged tags) is covered
    outside = np.ones(len(ts), bool)
    for a, b in ((t0 + 600 * S, t0 + 600 * S + int(outage_s * S)), server, bad):
        outside &= ~((ts >= a - 120 * S) & (ts < b + 120 * S))
    assert outside.sum() >= 6 and np.all(gap[outside] == 0), gap[outside]
    # and the gaps are filled conservatively: the project side at the configured 1,000 kW
    sel = gap > 0
    covered_kwh = np.asarray(cols["project_energy_kwh"], float)[sel] - 1000.0 * gap[sel] / 3600
    np.testing.assert_allclose(np.asarray(cols["reference_energy_kwh"], float)[sel], covered_kwh * 0.808 / 0.791, rtol=1e-6)
