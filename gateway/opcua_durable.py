"""OPC UA subscriptions that lose nothing the server still holds.

What the protocol offers (OPC UA Part 4, 5.13 Subscription services):

* every NotificationMessage that carries data has a SequenceNumber, one more than the
  subscription's previous one; a keep-alive carries the number the next message will get;
* the server keeps every NotificationMessage it sent in the subscription's *retransmission
  queue* until the client acknowledges it (a SubscriptionAcknowledgement in a later
  PublishRequest), lists the ones it keeps in ``AvailableSequenceNumbers`` and sends one again on
  ``Republish``; a server keeps at least a few per subscription (asyncua: 500);
* a subscription outlives the connection and the client: the server keeps it ``LifetimeCount``
  publishing intervals without a PublishRequest (this gateway asks for the session timeout, 120
  s by default), its monitored items keep sampling into their queues (``queue_size`` values per
  item, the oldest discarded first), and ``TransferSubscriptions`` moves it to a new session,
  answering its ``AvailableSequenceNumbers``.

So the gateway (:class:`SubscriptionLedger`, one per OPC UA source):

1. acknowledges a NotificationMessage only once its samples are fsync'ed (the agent calls the
   ``ack`` passed with the batch), and only up to the newest message below which every one is
   stored: the server keeps everything else;
2. notices a gap in the sequence numbers and Republishes the missing messages; a message the
   server no longer holds is a counted, logged loss;
3. stores, with every batch, the subscription ids and the number up to which every message is
   in the buffer (the source's ``state``), and the ids themselves before any message can arrive;
   after a reconnect or a restart it transfers the subscriptions to its new session, Republishes
   every available message above that number and acknowledges the ones at or below it, which
   were stored already but not yet acknowledged when the gateway died.

What is left: a restart after the subscription's lifetime (the session timeout), a server that
does not transfer subscriptions (then new ones are created and HistoryRead backfills, where
the server keeps history), a monitored-item queue that overflows during the restart
(``queue_size`` x sampling interval must exceed the restart time), a retransmission queue that
overflows, a changed source configuration (its subscriptions are not taken over), and polled
groups (a Read has no queue on the server). The README lists them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

log = logging.getLogger("plantmrv.gateway.opcua")


@dataclass
class SubSeq:
    """Sequence bookkeeping of one subscription."""

    sub_id: int
    interval_ms: float
    through: int = 0  # every message <= this is in an emitted batch (or lost for good): stored with the batches
    next_seq: int = 0  # the number the next new message will carry (0: not known yet)
    done: set[int] = field(default_factory=set)  # emitted or lost, above ``through``
    unacked: set[int] = field(default_factory=set)  # emitted, not yet acknowledged
    missing: set[int] = field(default_factory=set)  # known missing, a Republish pending
    transferred: bool = False  # taken over from an earlier session in this connection
    delivered: bool = False  # a publish response arrived on this connection

    def advance(self) -> None:
        while self.through + 1 in self.done:
            self.through += 1
            self.done.discard(self.through)


class SubscriptionLedger:
    """The sequence numbers of one OPC UA source's subscriptions, from receipt to durable to acknowledged.

    Single-threaded (the event loop). ``metrics``: the gateway's :class:`GatewayMetrics`.
    """

    def __init__(self, source: str, fingerprint: str, metrics) -> None:
        self.source = source
        self.fingerprint = fingerprint
        self.metrics = metrics
        self.subs: dict[int, SubSeq] = {}
        self.transfer_ok = True  # the server moved subscriptions to a new session the last time we asked
        self._acks: list[tuple[int, int]] = []

    # ---------------------------------------------------------------- state
    @property
    def state_key(self) -> str:
        return f"opcua_subscriptions:{self.source}"

    def state(self) -> dict[str, str]:
        """What the agent stores with the next batch (and :meth:`load` reads after a restart)."""
        subs = [{"id": s.sub_id, "interval_ms": s.interval_ms, "through": s.through} for s in self.subs.values()]
        return {self.state_key: json.dumps({"fingerprint": self.fingerprint, "transfer": self.transfer_ok, "subs": subs},
                                           separators=(",", ":"))}

    def load(self, text: str | None) -> None:
        """Adopt what an earlier run stored, if it was made from the same configuration."""
        if not text:
            return
        try:
            doc = json.loads(text)
            subs = [SubSeq(int(s["id"]), float(s["interval_ms"]), int(s["through"])) for s in doc["subs"]]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("event=opcua_state_unreadable source=%s error=%s", self.source, exc)
            return
        self.transfer_ok = bool(doc.get("transfer", True))
        if doc.get("fingerprint") != self.fingerprint:
            log.info("event=opcua_config_changed source=%s subscriptions=%d action=created_anew", self.source, len(subs))
            return
        self.subs = {s.sub_id: s for s in subs}

    # ---------------------------------------------------------------- messages
    def received(self, sub_id: int, seq: int, live: bool = True) -> tuple[bool, list[int]]:
        """A NotificationMessage with data (``live``: in a PublishResponse, not a Republish):
        (emit it?, sequence numbers found missing before it)."""
        s = self.subs[sub_id]
        s.delivered |= live
        if seq <= s.through or seq in s.done:
            return False, []  # already emitted (a Republish answered twice, or a message at or below the stored point)
        gaps = self._gap(s, seq)
        s.missing.discard(seq)
        s.done.add(seq)
        s.unacked.add(seq)
        s.next_seq = max(s.next_seq, seq + 1)
        s.advance()
        return True, gaps

    def keepalive(self, sub_id: int, next_seq: int) -> list[int]:
        """A keep-alive announcing ``next_seq``: the sequence numbers it shows missing."""
        s = self.subs[sub_id]
        s.delivered = True
        gaps = self._gap(s, next_seq)
        s.next_seq = max(s.next_seq, next_seq)
        return gaps

    def _gap(self, s: SubSeq, seq: int) -> list[int]:
        start = max(s.next_seq, s.through + 1)  # a new subscription's first message is number 1
        gaps = [k for k in range(start, seq) if k not in s.done and k not in s.missing]
        s.missing.update(gaps)
        return gaps

    def available(self, sub_id: int, seqs: list[int]) -> list[int]:
        """The server's ``AvailableSequenceNumbers`` after a transfer: acknowledge the stored ones,
        return the ones to Republish (with every number between that the server no longer has)."""
        s = self.subs[sub_id]
        stored = [k for k in seqs if k <= s.through]
        self._acks += [(sub_id, k) for k in stored]
        above = sorted(k for k in seqs if k > s.through)
        if above:
            s.next_seq = max(s.next_seq, above[-1] + 1)
            wanted = [k for k in range(s.through + 1, above[-1] + 1) if k not in s.done]
            s.missing.update(wanted)
            return wanted
        return []

    def lost(self, sub_id: int, seq: int) -> None:
        """The server no longer holds message ``seq``: its samples are gone (unless HistoryRead has them)."""
        s = self.subs.get(sub_id)
        if s is None:
            return
        s.missing.discard(seq)
        s.done.add(seq)
        s.advance()
        self.metrics.source_error(self.source, "notification_lost")

    def acker(self, sub_id: int) -> Callable[[], None]:
        """The ``ack`` for the batch just emitted: once it is durable, acknowledge every emitted
        message up to the subscription's current contiguous point."""
        s = self.subs[sub_id]
        through = s.through

        def ack() -> None:
            done = sorted(k for k in s.unacked if k <= through)
            s.unacked.difference_update(done)
            self._acks += [(sub_id, k) for k in done]

        return ack

    # ---------------------------------------------------------------- acknowledgements
    def take_acks(self) -> list:
        """SubscriptionAcknowledgements for the next PublishRequest."""
        if not self._acks:
            return []
        from asyncua import ua

        acks, self._acks = self._acks, []
        return [ua.SubscriptionAcknowledgement(SubscriptionId=sid, SequenceNumber=seq) for sid, seq in acks if sid in self.subs]

    def give_back(self, acks: list) -> None:
        """Acknowledgements whose PublishRequest failed: send them with the next one."""
        self._acks = [(a.SubscriptionId, a.SequenceNumber) for a in acks] + self._acks

    def forget(self, keep: set[int]) -> None:
        """Drop the subscriptions not in ``keep`` (deleted, expired or not transferred)."""
        self.subs = {k: v for k, v in self.subs.items() if k in keep}
        self._acks = [a for a in self._acks if a[0] in keep]


async def publish_loop(session, ledger: SubscriptionLedger, callbacks: dict[int, Callable[[Any], Awaitable[None]]]) -> None:
    """Send PublishRequests carrying the ledger's acknowledgements; hand each response to its subscription.

    Replaces asyncua's ``UaSession._publish_loop``, which acknowledges a message as soon as its
    callback returned. Raises (ending the task, which the source takes for a lost connection) on
    anything but a PublishRequest timeout.
    """
    from asyncua.ua.uaerrors import BadNoSubscription, BadTimeout, BadTooManyPublishRequests

    while True:
        acks = ledger.take_acks()
        try:
            response = await session.publish(acks)
        except (BadTimeout, BadTooManyPublishRequests):
            ledger.give_back(acks)
            continue
        except BadNoSubscription:
            ledger.give_back(acks)
            await asyncio.sleep(0.5)
            continue
        except BaseException:
            ledger.give_back(acks)
            raise
        bad = [(a, r) for a, r in zip(acks, response.Parameters.Results or []) if not r.is_good()]
        for a, r in bad[:5]:  # an ack for a message the server dropped (e.g. its retransmission queue overflowed)
            log.info("event=opcua_ack_refused subscription=%d seq=%d status=%s", a.SubscriptionId, a.SequenceNumber, r.name)
        callback = callbacks.get(response.Parameters.SubscriptionId)
        if callback is None:
            log.warning("event=opcua_publish_unknown_subscription subscription=%d", response.Parameters.SubscriptionId)
            continue
        await callback(response.Parameters)


async def transfer(session, ledger: SubscriptionLedger) -> dict[int, list[int]]:
    """TransferSubscriptions of the ledger's subscriptions to ``session`` (SendInitialValues false).

    Return {subscription id: AvailableSequenceNumbers} of those the server moved; forget the rest.
    """
    from asyncua import ua

    ids = list(ledger.subs)
    if not ids or not ledger.transfer_ok:
        ledger.forget(set())
        return {}
    params = ua.TransferSubscriptionsParameters()
    params.SubscriptionIds = ids
    params.SendInitialValues = False
    try:
        results = await session.transfer_subscriptions(params)
    except Exception as exc:  # noqa: BLE001 - a server without the service (BadServiceUnsupported) or a refusal
        log.warning("event=opcua_transfer_failed source=%s subscriptions=%s error=%s: %s", ledger.source, ids, type(exc).__name__, exc)
        ledger.forget(set())
        return {}
    moved: dict[int, list[int]] = {}
    for sid, res in zip(ids, results):
        if res.StatusCode.is_good():
            moved[sid] = list(res.AvailableSequenceNumbers or [])
        else:
            log.warning("event=opcua_subscription_not_transferred source=%s subscription=%d status=%s through=%d consequence=%s",
                        ledger.source, sid, res.StatusCode.name, ledger.subs[sid].through,
                        "messages the server sent after the stored ones are lost unless HistoryRead backfills them")
    ledger.forget(set(moved))
    for sid in moved:
        ledger.subs[sid].transferred = True
    return moved
