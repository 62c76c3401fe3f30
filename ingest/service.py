"""The ingest service: broker -> decode -> validate -> batch -> InfluxDB, acknowledging only what is stored.

Threads and the path of a message:

1. paho's network thread receives a QoS 1 PUBLISH (persistent session, shared subscription)
   and queues it; it is *not* acknowledged (``manual_ack``). The broker sends at most
   ``max_inflight_messages`` unacknowledged messages (MQTT 5 Receive Maximum), and past
   ``max_inflight_mb`` of queued payload the callback waits, so memory stays bounded and a slow
   InfluxDB holds the data at the broker.
2. The batcher thread decodes (:func:`plantmrv.codec.decode_message` or a device-JSON mapping),
   validates (:mod:`plantmrv.ingest.validate`) and gathers messages until a batch holds
   ``batch_lines`` lines (up to 8 times as many from a backlog or a stream of messages) or its
   oldest message waited ``linger_s`` (see :meth:`IngestService._seal_deadline`).
3. A writer thread (``write_concurrency`` of them) commits the batch's refusals to the
   dead-letter store, writes the valid samples to InfluxDB (bodies of <= ``batch_lines`` lines,
   POSTed in parallel by ``write_concurrency`` threads), retrying outages until InfluxDB takes
   them, dead-letters the lines InfluxDB refuses (a partial write that does not name its lines
   is bisected), and only then acknowledges the messages.

Writes are idempotent (a point is identified by series and timestamp), so a message delivered
twice - after a crash, or a reconnect before its PUBACK - is stored once. Acknowledgements are
only sent on the connection that received the message; earlier ones are redelivered by the
broker and written again, harmlessly.
"""

from __future__ import annotations

import logging
import math
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from plantmrv.batch import SampleBatch
from plantmrv.codec import encode_message
from plantmrv.influx import InfluxError
from plantmrv.ingest.config import IngestConfig
from plantmrv.ingest.deadletter import DeadLetter, DeadLetterStore
from plantmrv.ingest.metrics import IngestMetrics
from plantmrv.ingest.processor import Processed, Processor
from plantmrv.ingest.retention import retention_max_age_s
from plantmrv.ingest.sequence import SequenceTracker
from plantmrv.ingest.writer import ResilientWriter, Stopping, group_rejects
from plantmrv.lineprotocol import EncodedBodies

log = logging.getLogger("plantmrv.ingest")
BACKLOG_JOB_BODIES = 8  # see IngestService._seal_deadline
COALESCE_S = 0.1


@dataclass
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    gen: int
    received_ns: int
    received_mono: float
    dup: bool = False  # the broker's redelivery flag


@dataclass
class Job:
    msgs: list[Inbound] = field(default_factory=list)
    processed: list[Processed] = field(default_factory=list)
    lines: int = 0
    first_mono: float = 0.0
    full_mono: float = 0.0  # when it first held a body's worth of lines
    batch: SampleBatch | None = None  # the valid samples of all messages, set by seal()
    origin: np.ndarray | None = None  # message index of every row of batch
    encoded: EncodedBodies | None = None
    error: Exception | None = None  # sealing failed (a bug): the write job dead-letters the messages whole

    def seal(self, writer: "ResilientWriter") -> None:
        """Join the messages' samples and encode them (CPU work, done on the batcher thread)."""
        parts, origins = [], []
        for i, p in enumerate(self.processed):
            if len(p.batch):
                parts.append(p.batch)
                origins.append(np.full(len(p.batch), i, dtype=np.int32))
        if not parts:
            return
        self.batch = SampleBatch.concat(parts)
        self.origin = np.concatenate(origins)
        self.encoded = writer.encode(self.batch)


class IngestService:
    """Runs the ingest pipeline; ``start()`` returns once threads run, ``stop()`` drains and disconnects."""

    def __init__(self, cfg, client_id: str | None = None):
        """``cfg``: the root config (sections ``ingest``, ``influxdb``, ``mqtt``)."""
        from plantmrv.config import MqttConfig

        self.root = cfg
        self.cfg: IngestConfig = cfg.ingest
        self.mqtt_cfg = cfg.mqtt or MqttConfig()
        self.influx_cfg = cfg.influxdb
        self.client_id = client_id or self.mqtt_cfg.client_id or f"plantmrv-ingest-{socket.gethostname()}"
        self.metrics = IngestMetrics()
        self.store = DeadLetterStore(self.cfg.dead_letters.path)
        self.sequence = SequenceTracker(self.store, self.metrics, self.cfg.sequence_gaps)
        self.influx = self.influx_cfg.client()
        self._stop = threading.Event()
        self._queue: "queue.Queue[Inbound]" = queue.Queue()
        self._inflight_bytes = 0
        self._inflight_msgs = 0
        self._cond = threading.Condition()
        self._gen = 0
        self._gen_lock = threading.Lock()
        self._subscribed = threading.Event()
        self._slots = threading.Semaphore(self.cfg.write_concurrency)
        self._pool = ThreadPoolExecutor(self.cfg.write_concurrency, thread_name_prefix="ingest-write")
        self._post_pool = ThreadPoolExecutor(self.cfg.write_concurrency, thread_name_prefix="ingest-post")
        self._batcher: threading.Thread | None = None
        self._mqtt = None
        self.processor: Processor | None = None
        self.writer: ResilientWriter | None = None
        self.fatal: BaseException | None = None
        self._closing = False
        self._run_stop = threading.Event()
        self._broker_down_since: float | None = None  # monotonic time of the first failed (re)connect
        self._add_readiness_checks()

    def _add_readiness_checks(self) -> None:
        from plantmrv.ops import influx_probe

        broker = f"{self.mqtt_cfg.host}:{self.mqtt_cfg.port}"
        limit = int(self.cfg.max_inflight_mb * 1024 * 1024)
        health = self.metrics.health
        health.add_check("broker", lambda: (True, f"{broker} connected") if self.metrics.value("plantmrv_ingest_broker_connected")
                         else (False, f"{broker} not connected"))
        health.add_check("influxdb", influx_probe(self.influx_cfg))
        health.add_check("inflight", lambda: (self._inflight_bytes < limit, f"{self._inflight_bytes} of {limit} bytes in flight"))

    # ---------------------------------------------------------------- lifecycle

    def topics(self) -> list[str]:
        plain = []
        if self.cfg.gateway_topics:
            plain.append(f"{self.mqtt_cfg.topic_prefix}/+/+/data")
        plain += [t.topic for t in self.cfg.device_json]
        return [f"$share/{self.cfg.group}/{t}" if self.cfg.group else t for t in plain]

    def _prepare_influx(self) -> float | None:
        if self.influx_cfg.create_database:
            try:
                self.influx.create_database()
            except InfluxError as exc:
                log.warning("event=create_database_failed database=%s error=%r", self.influx.database, str(exc)[:200])
        max_age = self.cfg.validation.max_age_s
        if max_age is None:
            try:
                max_age = retention_max_age_s(self.influx)
                log.info("event=retention database=%s max_age_s=%s", self.influx.database, max_age or "INF")
            except InfluxError as exc:
                log.warning("event=retention_unknown error=%r (no age check until restart)", str(exc)[:200])
        return max_age

    def start(self) -> "IngestService":
        max_age = self._prepare_influx()
        self.processor = Processor(self.cfg, self.mqtt_cfg.topic_prefix, max_age)
        self.writer = ResilientWriter(self.influx, self.metrics, self.cfg.retry_min_s, self.cfg.retry_max_s, self._stop,
                                      max_lines=self.cfg.batch_lines, pool=self._post_pool)
        if self.cfg.metrics.port is not None:
            port = self.metrics.serve(self.cfg.metrics.host, self.cfg.metrics.port)
            log.info("event=metrics_listening host=%s port=%d", self.cfg.metrics.host, port)
        self._batcher = threading.Thread(target=self._batch_loop, name="ingest-batcher", daemon=True)
        self._batcher.start()
        self._mqtt = self._make_client()
        self._mqtt.connect_async(self.mqtt_cfg.host, self.mqtt_cfg.port, self.mqtt_cfg.keepalive_s, **self._connect_kwargs())
        self._mqtt.loop_start()
        return self

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        return self._subscribed.wait(timeout_s)

    def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop taking messages, write what is queued (if InfluxDB answers within the timeout), disconnect.

        Messages that arrive meanwhile are left unacknowledged: the broker keeps them in the
        persistent session and sends them again on the next connection.
        """
        self._closing = True
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and self._inflight_msgs > 0 and self.fatal is None:
            time.sleep(0.05)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._batcher:
            self._batcher.join(10)
        self._pool.shutdown(wait=True)
        self._post_pool.shutdown(wait=True)
        if self._mqtt is not None:
            self._mqtt.disconnect()
            self._mqtt.loop_stop()
        self.metrics.close()
        self.influx.close()
        self.store.close()
        log.info("event=stopped client_id=%s", self.client_id)

    def status_line(self) -> str:
        m = self.metrics
        rejected = sum(s.value for metric in m.samples_rejected.collect() for s in metric.samples if s.name.endswith("_total"))
        return (
            f"event=status connected={int(m.value('plantmrv_ingest_broker_connected'))} "
            f"messages={m.value('plantmrv_ingest_messages_acked_total'):.0f} points_written={m.value('plantmrv_ingest_points_written_total'):.0f} "
            f"samples_rejected={rejected:.0f} inflight_messages={self._inflight_msgs} inflight_bytes={self._inflight_bytes} "
            f"lag_s={m.value('plantmrv_ingest_lag_seconds'):.2f} messages_missing={self.sequence.totals()[0]} "
            f"messages_repeated={self.sequence.totals()[1]}"
        )

    def run_forever(self, status_interval_s: float = 60.0) -> None:
        """Run until :meth:`request_stop` (SIGTERM in the CLI), logging a status line every ``status_interval_s``."""
        from plantmrv import sdnotify

        self.start()
        sdnotify.ready(f"ingest {self.client_id} running")
        next_status = time.monotonic() + status_interval_s
        try:
            while not self._run_stop.is_set():
                self._run_stop.wait(1)
                if self.fatal is not None:
                    raise self.fatal
                if self._batcher is not None and self._batcher.is_alive():
                    self.metrics.health.beat()  # /healthz and systemd's watchdog
                if time.monotonic() >= next_status:
                    log.info(self.status_line())
                    next_status += status_interval_s
        finally:
            sdnotify.stopping()
            self.stop()

    def request_stop(self) -> None:
        """Ask :meth:`run_forever` to stop (safe from a signal handler); it then drains and disconnects."""
        self._run_stop.set()

    # ---------------------------------------------------------------- MQTT

    def _make_client(self):
        import paho.mqtt.client as mqtt

        v5 = self.cfg.protocol == "5"
        kwargs = dict(client_id=self.client_id, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, manual_ack=True)
        if not v5:
            kwargs["clean_session"] = False
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        c.suppress_exceptions = True
        if self.mqtt_cfg.username:
            pw = self.mqtt_cfg.password.get_secret_value() if self.mqtt_cfg.password else None
            c.username_pw_set(self.mqtt_cfg.username, pw)
        if self.mqtt_cfg.use_tls:
            tls = self.mqtt_cfg.tls
            c.tls_set(
                ca_certs=str(tls.ca_file) if tls and tls.ca_file else None,
                certfile=str(tls.cert_file) if tls and tls.cert_file else None,
                keyfile=str(tls.key_file) if tls and tls.key_file else None,
            )
            if tls and tls.insecure:
                c.tls_insecure_set(True)
        c.reconnect_delay_set(1, 30)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        return c

    def _connect_kwargs(self) -> dict:
        if self.cfg.protocol != "5":
            return {}
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        props.ReceiveMaximum = self.cfg.max_inflight_messages
        return {"clean_start": False, "properties": props}

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.error("event=broker_refused broker=%s:%d reason=%r", self.mqtt_cfg.host, self.mqtt_cfg.port, str(reason_code))
            return
        with self._gen_lock:
            self._gen += 1
        self.metrics.connected.set(1)
        down_s = time.monotonic() - self._broker_down_since if self._broker_down_since is not None else 0.0
        self._broker_down_since = None
        log.info(
            "event=connected broker=%s:%d client_id=%s session_present=%s down_s=%.1f",
            self.mqtt_cfg.host, self.mqtt_cfg.port, self.client_id, bool(getattr(flags, "session_present", False)), down_s,
        )
        if self.cfg.protocol == "5":
            from paho.mqtt.subscribeoptions import SubscribeOptions

            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics()])
        else:
            client.subscribe([(t, 1) for t in self.topics()])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties=None) -> None:
        codes = [int(getattr(rc, "value", rc)) for rc in reason_codes]
        bad = [t for t, rc in zip(self.topics(), codes) if rc >= 0x80]
        if bad:
            log.error("event=subscribe_refused topics=%s codes=%s", bad, codes)
        else:
            log.info("event=subscribed topics=%s", ",".join(self.topics()))
            self._subscribed.set()

    def _on_connect_fail(self, client, userdata) -> None:
        """A (re)connect attempt failed (paho retries with backoff): logged once per outage, then at DEBUG."""
        first = self._broker_down_since is None
        if first:
            self._broker_down_since = time.monotonic()
        (log.warning if first else log.debug)(
            "event=broker_unreachable broker=%s:%d client_id=%s retry_max_s=30", self.mqtt_cfg.host, self.mqtt_cfg.port, self.client_id)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self.metrics.connected.set(0)
        self._subscribed.clear()
        if not self._stop.is_set():
            self._broker_down_since = time.monotonic()
            log.warning("event=disconnected broker=%s:%d reason=%s next=reconnecting (unacknowledged messages will be redelivered)",
                        self.mqtt_cfg.host, self.mqtt_cfg.port, str(reason_code))

    def _on_message(self, client, userdata, msg) -> None:
        try:
            if self._closing:
                return  # not acknowledged: redelivered on the next connection
            size = len(msg.payload)
            limit = int(self.cfg.max_inflight_mb * 1024 * 1024)
            with self._cond:
                # backpressure: stop reading from the socket until writes free memory
                while self._inflight_bytes > 0 and self._inflight_bytes + size > limit and not self._stop.is_set():
                    self._cond.wait(0.5)
                self._inflight_bytes += size
                self._inflight_msgs += 1
            try:
                topic = msg.topic
            except UnicodeDecodeError:
                topic = msg._topic.decode("utf-8", "replace")
            self._queue.put(Inbound(topic, msg.payload, msg.mid, msg.qos, self._gen, time.time_ns(), time.monotonic(), bool(msg.dup)))
            self.metrics.bytes_in.inc(size)
        except Exception:  # the network thread must survive anything
            log.exception("event=on_message_failed")

    # ---------------------------------------------------------------- batching

    def _batch_loop(self) -> None:
        job = Job()
        prev_mono = -1e9  # when the message before the last one arrived
        last_mono = -1e9
        while not self._stop.is_set():
            timeout = 0.2 if not job.msgs else min(0.2, max(0.0, self._seal_deadline(job, last_mono - prev_mono) - time.monotonic()))
            try:
                m = self._queue.get(timeout=timeout)
            except queue.Empty:
                m = None
            if m is not None:
                try:
                    p = self.processor.process(m.topic, m.payload, m.received_ns)
                except Exception as exc:  # a bug must not lose the message: keep it with the reason
                    log.exception("event=process_failed topic=%r", m.topic)
                    p = Processed("raw", SampleBatch.empty(), [DeadLetter(m.topic, m.payload, "raw", "decode", f"decode: internal error {exc!r}", 0, m.received_ns)])
                self.metrics.messages_in.labels(kind=p.kind).inc()
                if p.kind == "batch" and p.meta:
                    self.sequence.observe(m.topic, p.meta, m.dup)
                if not job.msgs:
                    job.first_mono = m.received_mono
                job.msgs.append(m)
                job.processed.append(p)
                job.lines += len(p.batch)
                if job.lines >= self.cfg.batch_lines and not job.full_mono:
                    job.full_mono = time.monotonic()
                prev_mono, last_mono = last_mono, m.received_mono
            if job.msgs and (job.lines >= self.cfg.batch_lines * BACKLOG_JOB_BODIES
                             or time.monotonic() >= self._seal_deadline(job, last_mono - prev_mono)):
                self.sequence.save()
                self._submit(job)
                job = Job()
        self.sequence.save()
        self._release(job.msgs)

    def _seal_deadline(self, job: Job, last_gap_s: float) -> float:
        """When ``job`` is written, unless it reaches ``BACKLOG_JOB_BODIES`` bodies first.

        Never while more messages wait in the queue: taking them costs no waiting, however long
        they waited (after an outage or a burst, all of them have waited longer than ``linger_s``).
        Otherwise at ``linger_s`` after its first message, or, once it holds a body's worth of
        lines, at once - unless messages are streaming in (the last two arrived within
        ``COALESCE_S``): then it waits for them, at most ``COALESCE_S`` more. Encoding tens of
        thousands of lines at once costs less CPU per line than 5,000 at a time (bench/README.md,
        ingest); at low rates nothing waits.
        """
        if self._queue.qsize():
            return math.inf  # a backlog: taking it costs no waiting, whatever its age
        linger_deadline = job.first_mono + self.cfg.linger_s
        if not job.full_mono:
            return linger_deadline
        if last_gap_s < COALESCE_S:
            return min(linger_deadline, job.full_mono + COALESCE_S)
        return job.full_mono

    def _submit(self, job: Job) -> None:
        # encoding here, on the one batcher thread, keeps CPU work off the writer threads: they only
        # wait on InfluxDB, and threads contending for the GIL cost more CPU than the work itself
        try:
            job.seal(self.writer)
        except Exception as exc:
            job.error = exc
        while not self._slots.acquire(timeout=0.2):
            if self._stop.is_set():
                self._release(job.msgs)
                return
        fut = self._pool.submit(self._write_job, job)
        fut.add_done_callback(lambda f: self._slots.release())

    def _release(self, msgs: list[Inbound]) -> None:
        with self._cond:
            for m in msgs:
                self._inflight_bytes -= len(m.payload)
                self._inflight_msgs -= 1
            self._cond.notify_all()
        self.metrics.inflight_bytes.set(self._inflight_bytes)
        self.metrics.inflight_messages.set(self._inflight_msgs)

    def _write_job(self, job: Job) -> None:
        try:
            if job.error is not None:
                raise job.error
            self._store_dead(job.processed)
            if job.batch is not None:
                batch, origin = job.batch, job.origin
                outcome = self.writer.write(batch, job.encoded)
                self.metrics.points_written.inc(outcome.lines_written)
                if outcome.rejected:
                    self._store_influx_rejects(job, batch, origin, outcome.rejected)
                newest = int(batch.ts_ns.max())
                self.metrics.data_age_seconds.set(max(0.0, (time.time_ns() - newest) / 1e9))
            self._ack(job.msgs)
            self.metrics.lag_seconds.set(time.monotonic() - job.first_mono)
        except Stopping:
            log.info("event=batch_left_at_broker messages=%d reason=stopping", len(job.msgs))
        except Exception as exc:  # a bug: keep the messages whole, with the error, rather than crash-loop on them
            log.exception("event=write_job_failed messages=%d (dead-lettered whole, replayable after a fix)", len(job.msgs))
            try:
                letters = [
                    DeadLetter(m.topic, m.payload, "raw", "internal_error", f"internal_error: {exc!r}"[:500], len(p.batch), m.received_ns)
                    for m, p in zip(job.msgs, job.processed)
                ]
                self._store_dead([Processed("raw", SampleBatch.empty(), letters)])
                self._ack(job.msgs)
            except Exception as exc2:
                log.exception("event=dead_letter_failed (messages left unacknowledged at the broker)")
                self.fatal = exc2
        finally:
            self._release(job.msgs)

    def _store_dead(self, processed: list[Processed]) -> None:
        letters = [d for p in processed for d in p.dead]
        if not letters:
            return
        self.store.add_many(letters)
        for d in letters:
            self.metrics.messages_rejected.labels(reason=d.code).inc()
            self.metrics.samples_rejected.labels(reason=d.code).inc(d.samples)
            log.warning("event=dead_letter id=%s topic=%r samples=%d reason=%r", d.id, d.topic, d.samples, d.reason[:300])

    def _store_influx_rejects(self, job: Job, batch: SampleBatch, origin: np.ndarray, rejected) -> None:
        letters = []
        for rows, reason in group_rejects(rejected):
            for i in np.unique(origin[rows]):
                sel = rows[origin[rows] == i]
                m, p = job.msgs[i], job.processed[i]
                sub = batch.take(sel).compact()
                letters.append(DeadLetter(m.topic, encode_message(sub, **p.meta), "batch", "influx_rejected", reason, len(sel), m.received_ns))
        self._store_dead([Processed("batch", SampleBatch.empty(), letters)])

    def _ack(self, msgs: list[Inbound]) -> None:
        gen = self._gen
        acked = 0
        for m in msgs:
            if m.qos == 1 and m.gen == gen:
                self._mqtt.ack(m.mid, m.qos)
                acked += 1
        self.metrics.messages_acked.inc(acked)
