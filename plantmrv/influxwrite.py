"""A sample batch to InfluxDB in its three explicit steps: route by quality, encode, write.

:func:`plantmrv.qualityrouting.with_quality_series` decides where each sample goes, a
:class:`~plantmrv.lineprotocol.LineProtocolEncoder` makes the bodies and
:meth:`InfluxClient.write_bodies <plantmrv.influx.InfluxClient.write_bodies>` POSTs them. The
services chain the same steps where their own bookkeeping sits between them (the gateway's
direct sink counts what it drops, ingest dead-letters refused lines); these helpers are the
steps for everything else (tools, tests, benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

from plantmrv.batch import SampleBatch
from plantmrv.influx import InfluxClient, WriteStats
from plantmrv.lineprotocol import MAX_LINES_PER_BODY, EncodedBodies, LineProtocolEncoder
from plantmrv.qualityrouting import with_quality_series


@dataclass
class BatchWriteStats(WriteStats):
    dropped_nonfinite: int = 0  # GOOD samples whose value is NaN or infinite: line protocol cannot carry them


def encode_batch(batch: SampleBatch, max_lines: int = MAX_LINES_PER_BODY) -> EncodedBodies:
    """Route ``batch`` by quality and encode it into ``/write`` bodies of at most ``max_lines`` lines."""
    return LineProtocolEncoder(max_lines).encode(with_quality_series(batch))


def write_batch(client: InfluxClient, batch: SampleBatch) -> BatchWriteStats:
    """Route, encode (bodies of ``client.batch_lines`` lines at most) and write ``batch``."""
    encoded = encode_batch(batch, client.batch_lines)
    stats = client.write_bodies(encoded.bodies)
    return BatchWriteStats(**vars(stats), dropped_nonfinite=encoded.dropped_nonfinite)
