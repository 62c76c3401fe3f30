"""Message sequence accounting per gateway: "0 lost, N repeated", measured.

A gateway numbers its messages per buffer **epoch** (``epoch`` and ``seq`` in the wire header,
:mod:`plantmrv.gateway.buffer`): 1, 2, 3, ... without reuse, across restarts. Ingest follows
each gateway (the ``<site>/<gateway>`` levels of the topic, which the broker's ACL ties to the
gateway's identity) in the order the broker delivers:

* ``seq`` above the highest seen + 1: the messages between are **missing** (counted, logged at
  WARNING and recorded in the dead-letter store, where ``plantmrv ingest dead-letters list``
  shows them); one of them arriving later is counted as **late**;
* ``seq`` at or below the highest seen, not missing: a **repeat**, by cause: ``resent`` (the
  gateway sent it again: it died or lost its broker connection before deleting it from its
  buffer) or ``redelivered`` (the broker sent it to ingest again, MQTT DUP flag);
* a new epoch (a new buffer file: first start, a corrupt file set aside, a replaced disk) starts
  over; its messages before the first one seen count as missing when ingest knew the earlier
  epoch.

The highest ``seq`` per gateway and epoch is kept in the dead-letter store, so an ingest restart
continues the count. Counting is exact when one ingest process receives all of a gateway's
messages (a shared subscription with one member); with several members each sees a share,
and ``ingest.sequence_gaps: false`` turns the missing count off (repeats are still counted when
both copies reach the same process).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger("plantmrv.ingest")

MAX_MISSING = 100_000  # missing numbers remembered per gateway (to tell a late message from a repeat)


@dataclass
class GatewaySeq:
    epoch: str
    high: int
    missing: set[int] = field(default_factory=set)
    dirty: bool = True


class SequenceTracker:
    """Used by one thread (ingest's batcher). ``store``: the :class:`DeadLetterStore` (state and gaps)."""

    def __init__(self, store, metrics, count_gaps: bool = True):
        self.store = store
        self.metrics = metrics
        self.count_gaps = count_gaps
        self.gateways: dict[tuple[str, str], GatewaySeq] = {}

    def observe(self, topic: str, meta: dict, dup: bool = False) -> None:
        """One gateway batch (its header's ``meta``) received on ``topic`` (``<prefix>/<site>/<gateway>/data``)."""
        levels = topic.split("/")
        if len(levels) < 4:
            return
        site, gateway = levels[-3], levels[-2]
        epoch, seq = meta.get("epoch"), meta.get("seq")
        if not isinstance(epoch, str) or not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            self.metrics.messages_unsequenced.labels(site=site, gateway=gateway).inc()
            return
        key = (site, gateway)
        st = self.gateways.get(key)
        if st is None:
            saved = self.store.sequence_state(site, gateway)
            if saved is not None:
                st = self.gateways[key] = GatewaySeq(saved[0], saved[1], dirty=False)
        if st is None or st.epoch != epoch:
            if st is not None:
                log.info("event=gateway_epoch site=%s gateway=%s epoch=%s previous=%s previous_high=%d first_seq=%d",
                         site, gateway, epoch, st.epoch, st.high, seq)
                if seq > 1:
                    self._gap(site, gateway, epoch, 1, seq - 1)
            else:
                log.info("event=gateway_sequence_start site=%s gateway=%s epoch=%s first_seq=%d", site, gateway, epoch, seq)
            self.gateways[key] = GatewaySeq(epoch, seq)
            self.metrics.sequence_high.labels(site=site, gateway=gateway).set(seq)
            return
        if seq > st.high:
            if seq > st.high + 1:
                self._gap(site, gateway, epoch, st.high + 1, seq - 1, st)
            st.high = seq
            st.dirty = True
            self.metrics.sequence_high.labels(site=site, gateway=gateway).set(seq)
        elif seq in st.missing:
            st.missing.discard(seq)
            self.metrics.messages_late.labels(site=site, gateway=gateway).inc()
            log.info("event=sequence_late site=%s gateway=%s epoch=%s seq=%d", site, gateway, epoch, seq)
        else:
            self.metrics.messages_repeated.labels(site=site, gateway=gateway, cause="redelivered" if dup else "resent").inc()

    def _gap(self, site: str, gateway: str, epoch: str, first: int, last: int, st: GatewaySeq | None = None) -> None:
        n = last - first + 1
        if not self.count_gaps:
            return
        if st is not None:
            st.missing.update(range(max(first, last - MAX_MISSING + 1), last + 1))
            while len(st.missing) > MAX_MISSING:
                st.missing.discard(min(st.missing))
        self.metrics.messages_missing.labels(site=site, gateway=gateway).inc(n)
        log.warning("event=sequence_gap site=%s gateway=%s epoch=%s first=%d last=%d missing=%d hint=%s",
                    site, gateway, epoch, first, last, n,
                    "messages the gateway numbered never arrived: see its buffer_full drops, or the broker's queue limits")
        self.store.add_gap(site, gateway, epoch, first, last, time.time_ns())

    def save(self) -> None:
        """Store the highest sequence number per gateway (call after each batch of messages)."""
        dirty = [(k, st) for k, st in self.gateways.items() if st.dirty]
        if not dirty:
            return
        self.store.save_sequence_states([(site, gw, st.epoch, st.high) for (site, gw), st in dirty])
        for _k, st in dirty:
            st.dirty = False

    def totals(self) -> tuple[int, int]:
        """(messages missing, messages repeated) counted by this process."""
        m = self.metrics
        return (int(sum(s.value for metric in m.messages_missing.collect() for s in metric.samples if s.name.endswith("_total"))),
                int(sum(s.value for metric in m.messages_repeated.collect() for s in metric.samples if s.name.endswith("_total"))))
