"""Which tags of a source cannot be read or subscribed: reported once when they start failing, once when they recover.

A tag fails in one of three phases: ``browse`` (its browse path does not resolve), ``subscribe``
(the server refused its monitored item: BadNodeIdUnknown for a mistyped NodeId,
BadNotReadable, BadUserAccessDenied, ...) or ``data`` (its values arrive with a BAD status:
BadWaitingForInitialData, BadNotReadable on a read, BadCommunicationError from the device...).
Each start is one WARNING log line with the NodeId, the browse path, the series it feeds and the
status; each recovery one INFO line. The metrics (``plantmrv_gateway_nodes_bad{source,status}``,
``plantmrv_gateway_node_bad{source,node,series,status,phase}``,
``plantmrv_gateway_node_failures_total{source,status}``) show what fails now, which
``plantmrv gateway status`` prints. Checking a publish's status codes is one vectorized
comparison with the last codes seen; only rows whose code changed are looked at one by one.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.opcua")

_BAD = np.uint32(2)
PHASES = ("browse", "subscribe", "data")  # a failure of an earlier phase hides the later ones


def status_name(code: int) -> str:
    """``BadNodeIdUnknown`` for 0x80340000 (the name from asyncua's table; hex when unknown)."""
    try:
        from asyncua.ua.status_codes import code_to_name_doc

        return code_to_name_doc[code & 0xFFFF0000][0]
    except (ImportError, KeyError):  # a code asyncua does not name
        return f"0x{code & 0xFFFF0000:08X}"


class NodeHealth:
    """Failing tags of one source. ``nodes[i]`` / ``groups[i]`` / ``table[i]``: tag i's config, group and series."""

    def __init__(self, source: str, nodes: list, groups: list, table: list, metrics: "GatewayMetrics"):
        self.source = source
        self.nodes = nodes
        self.groups = groups
        self.table = table
        self.metrics = metrics
        self.failing: dict[int, tuple[str, int, str, float]] = {}  # tag -> (status name, code, phase, since)
        self._last = np.zeros(len(nodes), dtype=np.uint32)  # last status code seen in data, per tag

    def _node(self, i: int) -> str:
        n = self.nodes[i]
        return n.node_id or n.browse_path

    def _fields(self, i: int) -> tuple:
        """(node, browse path, group, series) of tag ``i``, for the ``node= browse_path= group= series=`` keys."""
        n = self.nodes[i]
        return self._node(i), n.browse_path, self.groups[i].name, self.table[i].key()

    def fail(self, i: int, code: int, phase: str) -> None:
        """Tag ``i`` fails with status ``code`` in ``phase`` (logged when it starts failing, or fails in another phase)."""
        name = status_name(code)
        prev = self.failing.get(i)
        if prev is not None and (PHASES.index(prev[2]) < PHASES.index(phase) or (prev[0], prev[2]) == (name, phase)):
            return  # failing already, at an earlier phase or the same way
        self.metrics.node_failing(self.source, self._node(i), self.table[i].key(), name, phase, prev and (prev[0], prev[2]))
        self.failing[i] = (name, code, phase, prev[3] if prev else time.monotonic())
        if prev is None or prev[2] != phase:  # a BAD code that changes to another is counted, not logged again
            log.warning("event=opcua_node_failing source=%s node=%s browse_path=%s group=%s series=%s status=%s code=0x%08X phase=%s",
                        self.source, *self._fields(i), name, code, phase)

    def ok(self, i: int, phase: str) -> None:
        """Tag ``i`` passed ``phase``: a failure in that phase or an earlier one is over (good data
        proves the subscription works; a new monitored item says nothing of the data to come)."""
        prev = self.failing.get(i)
        if prev is None or PHASES.index(prev[2]) > PHASES.index(phase):
            return
        del self.failing[i]
        self.metrics.node_recovered(self.source, self._node(i), self.table[i].key(), prev[0], prev[2])
        log.info("event=opcua_node_recovered source=%s node=%s browse_path=%s group=%s series=%s was=%s phase=%s failed_for_s=%.1f",
                 self.source, *self._fields(i), prev[0], prev[2], time.monotonic() - prev[3])

    def observe(self, idx: np.ndarray, codes: np.ndarray) -> None:
        """The status codes of a batch's rows (tag ``idx[k]`` had ``codes[k]``), in arrival order."""
        if not len(idx):
            return
        idx = np.asarray(idx, dtype=np.int64)
        codes = np.asarray(codes, dtype=np.uint32)
        changed = codes != self._last[idx]
        if not changed.any():
            return
        # rows of the tags whose code changed, in order (a tag may change more than once per batch)
        for k in np.flatnonzero(np.isin(idx, idx[changed])).tolist():
            i, code = int(idx[k]), int(codes[k])
            if code == self._last[i]:
                continue
            self._last[i] = code
            if (code >> 30) == _BAD:
                self.fail(i, code, "data")
            else:
                self.ok(i, "data")

    def snapshot(self) -> list[dict[str, Any]]:
        """The failing tags now (for status views and tests)."""
        return [{"node": self._node(i), "series": self.table[i].key(), "status": name, "code": code, "phase": phase}
                for i, (name, code, phase, _since) in sorted(self.failing.items())]
