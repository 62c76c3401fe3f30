"""Dead-letter replay: re-judge stored messages with today's config and write what now passes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from plantmrv.codec import encode_message
from plantmrv.influx import InfluxError
from plantmrv.ingest.deadletter import DeadLetter, DeadLetterStore
from plantmrv.ingest.processor import Processor
from plantmrv.ingest.retention import retention_max_age_s
from plantmrv.ingest.writer import ResilientWriter, group_rejects

log = logging.getLogger("plantmrv.ingest")


@dataclass
class ReplayResult:
    id: int
    written: int
    still_refused: int
    new_ids: list[int]
    error: str | None = None  # the row could not be processed: it stays, unreplayed, with this reason


def replay_dead_letters(cfg, store: DeadLetterStore, ids: list[int], progress=None) -> list[ReplayResult]:
    """Re-validate dead letters with the current config and write what now passes.

    Each replayed row is marked replayed; what is still refused becomes a new row with its
    current reason. A row that cannot be processed at all is skipped, reported (``error``) and
    kept as it is; the rows after it are still replayed. Raises InfluxError if InfluxDB cannot
    be reached (rows from there on stay unreplayed).
    """
    from plantmrv.config import MqttConfig

    mqtt_cfg = cfg.mqtt or MqttConfig()
    client = cfg.influxdb.client()
    try:
        max_age = cfg.ingest.validation.max_age_s
        if max_age is None:
            max_age = retention_max_age_s(client)
        processor = Processor(cfg.ingest, mqtt_cfg.topic_prefix, max_age)
        writer = ResilientWriter(client, None, 0.2, 2.0, give_up_after_s=10.0)
        results = []
        for n, id_ in enumerate(ids):
            row = store.get(id_)
            if row is None:
                raise KeyError(f"no dead letter with id {id_}")
            if row.replayed_ns is not None:
                results.append(ReplayResult(id_, 0, 0, []))
            else:
                results.append(_replay_row(row, processor, writer, store))
            if progress:
                progress(n + 1, len(ids), results[-1])
        return results
    finally:
        client.close()


def _replay_row(row: DeadLetter, processor: Processor, writer: ResilientWriter, store: DeadLetterStore) -> ReplayResult:
    try:
        p = processor.process(row.topic, row.payload, row.received_ns, kind=row.kind)
        outcome = writer.write(p.batch)
    except InfluxError:
        raise
    except Exception as exc:  # one row that cannot be processed never stops the others
        log.warning("event=replay_row_failed id=%s error=%r", row.id, exc)
        return ReplayResult(row.id, 0, 0, [], f"{type(exc).__name__}: {str(exc)[:300]}")
    dead = list(p.dead)
    for rows, reason in group_rejects(outcome.rejected):
        sub = p.batch.take(rows).compact()
        dead.append(DeadLetter(row.topic, encode_message(sub, **p.meta), "batch", "influx_rejected", reason, len(rows), row.received_ns))
    new_ids = store.add_many(dead)
    store.mark_replayed(row.id)
    return ReplayResult(row.id, outcome.lines_written, sum(d.samples for d in dead), new_ids)
