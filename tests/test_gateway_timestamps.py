"""A gateway drops samples stamped outside gateway.min_timestamp..max_timestamp where sources emit:
counted and logged, never sent (in direct mode nothing else would stop them)."""

from __future__ import annotations

import logging

import numpy as np
import yaml

from plantmrv.batch import SampleBatch, Series
from plantmrv.config import load_config
from plantmrv.gateway.agent import GatewayAgent


def _agent(tmp_path, **gateway) -> GatewayAgent:
    p = tmp_path / "gw.yaml"
    p.write_text(yaml.safe_dump({"site": {"id": "s"}, "influxdb": {}, "gateway": {
        "id": "g", "sink": {"type": "influxdb"}, "buffer": {"path": "buffer.db"}, **gateway,
        "sources": [{"type": "opcua", "name": "plc", "url": "opc.tcp://127.0.0.1:4840",
                     "groups": [{"name": "g", "measurement": "pump", "nodes": [{"field": "power_kw", "node_id": "ns=2;s=P"}]}]}]}}))
    return GatewayAgent(load_config(p), p)


def test_samples_from_1938_1970_or_2150_are_dropped_counted_and_logged(tmp_path, caplog):
    agent = _agent(tmp_path)
    s = Series.of("pump", "power_kw", site="s", asset="P1")
    ts = np.array([-1_006_560_000, 0, 1_767_225_600, 5_680_281_600], dtype=np.int64) * 10**9  # 1938, 1970, 2026, 2150
    with caplog.at_level(logging.WARNING, logger="plantmrv.gateway"):
        agent.emit(SampleBatch([s], np.zeros(4, np.int32), ts, np.arange(4.0)))
    assert [int(t) for b in agent._pending for t in b.ts_ns] == [1_767_225_600 * 10**9]
    assert agent.metrics.samples_dropped == 3
    assert "event=samples_dropped reason=timestamp_range samples=3 bounds=2000-01-01T00:00:00Z..2100-01-01T00:00:00Z" in caplog.text
    assert "first_ts=1938-02-08T00:00:00Z" in caplog.text
    agent.buffer.close()


def test_the_bounds_are_configurable(tmp_path):
    agent = _agent(tmp_path, min_timestamp="1930-01-01T00:00:00Z")
    s = Series.of("pump", "power_kw", site="s", asset="P1")
    agent.emit(SampleBatch([s], [0], [-1_006_560_000 * 10**9], [1.0]))
    assert agent._pending and agent.metrics.samples_dropped == 0
    agent.buffer.close()
