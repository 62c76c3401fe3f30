"""InfluxDB direct sink (``type: influxdb``), for plants without a broker.

Decodes the stored batches and writes them with the core client (:class:`plantmrv.influx.InfluxClient`,
v1 ``/write``) in three explicit steps: routed to ``sample_quality`` by
:func:`plantmrv.qualityrouting.with_quality_series` (the very routing ingest applies in broker
mode), encoded (:class:`plantmrv.lineprotocol.LineProtocolEncoder`, bodies of
``influxdb.batch_lines`` lines at most), written body by body. ``send`` returns only after InfluxDB
answered 204 for every body; a connection error or 5xx raises and the batches stay in the
buffer. A *partial write* (InfluxDB refused some lines for good, e.g. a field type conflict)
is not retried forever: the refused samples are counted as dropped and logged, as are GOOD
samples whose value is not a finite number (ingest dead-letters those as ``not_finite``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from plantmrv.batch import SampleBatch
from plantmrv.codec import CodecError, decode_message
from plantmrv.config import InfluxConfig, StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics

log = logging.getLogger("plantmrv.gateway.influx_sink")


async def in_daemon_thread(fn, *args):
    """``await fn(*args)`` run on a daemon thread.

    Unlike ``asyncio.to_thread``, a call stuck on an InfluxDB that accepts connections and never
    answers does not hold up shutdown: ``asyncio.run`` joins its executor's threads, and
    interpreter exit joins every executor thread. Abandoning the call loses nothing: its
    batches leave the buffer only after it returns.
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle(result, error) -> None:
        if not done.cancelled():
            done.set_exception(error) if error is not None else done.set_result(result)

    def run() -> None:
        try:
            outcome = (fn(*args), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is gone (shutdown): nobody waits for this call any more
            pass

    threading.Thread(target=run, name="influx-sink-send", daemon=True).start()
    return await done


class InfluxSinkConfig(StrictModel):
    type: Literal["influxdb"]
    max_retries: int = Field(0, ge=0, le=10, description="In-call retries; the agent's buffer retries forever after these.")


class InfluxSink:
    name = "influxdb"

    def __init__(self, cfg: InfluxSinkConfig, influx: InfluxConfig, metrics: "GatewayMetrics"):
        from plantmrv.influx import InfluxClient
        from plantmrv.lineprotocol import LineProtocolEncoder

        self.cfg = cfg
        self.influx = influx
        self.metrics = metrics
        self.client = InfluxClient.from_config(influx.model_copy(update={"max_retries": cfg.max_retries}))
        self.encoder = LineProtocolEncoder(max_lines=influx.batch_lines)
        self._db_ready = not influx.create_database

    async def start(self) -> None:
        pass

    def _send_blocking(self, blobs: list[bytes]) -> None:
        from plantmrv.influx import PartialWriteError
        from plantmrv.qualityrouting import with_quality_series

        if not self._db_ready:
            self.client.create_database()
            self._db_ready = True
        batches = []
        for b in blobs:
            try:
                batches.append(decode_message(b).batch)
            except CodecError as exc:  # a damaged stored blob: drop it (counted), never block the buffer
                self.metrics.dropped("corrupt", 1)
                log.error("event=buffer_blob_corrupt error=%s", exc)
        batch = SampleBatch.concat(batches)
        if not len(batch):
            return
        encoded = self.encoder.encode(with_quality_series(batch))
        if encoded.dropped_nonfinite:
            self.metrics.dropped("not_finite", encoded.dropped_nonfinite)
            log.error("event=samples_dropped reason=not_finite samples=%d (GOOD samples whose value is NaN or infinite)",
                      encoded.dropped_nonfinite)
        for body in encoded.bodies:
            try:
                self.client.write_body(body)  # 204 or raise; a raise keeps every blob in the buffer
            except PartialWriteError as exc:  # refused for good: later bodies still go out
                n = exc.dropped or len(exc.rejected_lines) or 1
                self.metrics.dropped("influx_rejected", n)
                log.error("event=influx_partial_write database=%s rejected=%d error=%s", self.influx.database, n, str(exc)[:300])

    async def send(self, blobs: list[bytes]) -> None:
        try:
            await in_daemon_thread(self._send_blocking, blobs)
        except Exception:
            self.metrics.sink_connected(self.name, False)
            raise
        self.metrics.sink_connected(self.name, True)

    async def close(self) -> None:
        self.client.close()
