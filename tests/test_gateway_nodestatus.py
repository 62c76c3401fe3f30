"""The bookkeeping behind loud bad tags: one log line when a tag starts failing, one when it recovers,
metrics per status that follow every change (the gateway test on a real server: test_gateway_bad_tags.py)."""

from __future__ import annotations

import logging

import numpy as np

from plantmrv.batch import Series
from plantmrv.gateway.metrics import GatewayMetrics
from plantmrv.gateway.nodestatus import NodeHealth
from plantmrv.gateway.opcua_source import NodeRef, OpcUaGroup

GOOD, SENSOR, COMM, UNCERTAIN = 0, 0x808C0000, 0x80050000, 0x40900000


def _health():
    nodes = [NodeRef(f"f{i}", f"ns=2;s=T{i}", None, None, None) for i in range(3)]
    group = OpcUaGroup(name="g", measurement="pump", nodes=[{"field": "f0", "node_id": "ns=2;s=T0"}])
    table = [Series.of("pump", f"f{i}", site="s") for i in range(3)]
    m = GatewayMetrics()
    return NodeHealth("plc", nodes, [group] * 3, table, m), m


def _bad(m, status):
    return m.registry.get_sample_value("plantmrv_gateway_nodes_bad", {"source": "plc", "status": status}) or 0


def test_a_tag_is_reported_when_it_starts_failing_and_when_it_recovers_not_in_between(caplog):
    h, m = _health()
    with caplog.at_level(logging.INFO, logger="plantmrv.gateway.opcua"):
        h.observe(np.array([0, 1, 0, 1, 2]), np.array([GOOD, SENSOR, GOOD, COMM, UNCERTAIN], np.uint32))
        h.observe(np.array([1, 1]), np.array([SENSOR, COMM], np.uint32))  # bad, bad again: counted, not logged
        failing = caplog.text.count("event=opcua_node_failing")
        assert failing == 1 and "node=ns=2;s=T1" in caplog.text and "status=BadSensorFailure" in caplog.text
        assert (_bad(m, "BadSensorFailure"), _bad(m, "BadCommunicationError")) == (0, 1)
        h.observe(np.array([1]), np.array([GOOD], np.uint32))
    assert caplog.text.count("event=opcua_node_recovered") == 1 and "was=BadCommunicationError" in caplog.text
    assert _bad(m, "BadCommunicationError") == 0 and h.snapshot() == []
    assert m.registry.get_sample_value("plantmrv_gateway_node_failures_total", {"source": "plc", "status": "BadSensorFailure"}) == 1


def test_a_refused_subscription_is_not_hidden_by_later_phases_and_clears_when_data_flows():
    h, m = _health()
    h.fail(2, 0x80340000, "subscribe")
    h.observe(np.array([2]), np.array([SENSOR], np.uint32))  # a later phase says nothing new
    assert [(f["status"], f["phase"]) for f in h.snapshot()] == [("BadNodeIdUnknown", "subscribe")]
    h.ok(2, "browse")  # an earlier phase passing clears nothing
    assert h.snapshot()
    h.observe(np.array([2]), np.array([GOOD], np.uint32))  # good data: it works now
    assert h.snapshot() == [] and _bad(m, "BadNodeIdUnknown") == 0
