"""Quality routing: which measurement each sample is written to, by its quality (docs/data-model.md).

One explicit step before encoding, the same for the gateway's direct InfluxDB sink and for
ingest (which routes right after validation), so a sample lands in the same place whichever
path it took.
"""

from __future__ import annotations

import numpy as np

from plantmrv.batch import Quality, SampleBatch, Series

QUALITY_MEASUREMENT = "sample_quality"
QUALITY_FIELDS = ("value", "quality", "status_code")


def with_quality_series(batch: SampleBatch) -> SampleBatch:
    """Route samples per docs/data-model.md; the one routing of the direct (gateway) and broker (ingest) paths.

    GOOD samples go to their measurement; UNCERTAIN ones to their measurement and to
    ``sample_quality``; BAD ones only to ``sample_quality``. A non-GOOD sample without a finite
    value (a BAD read has none) goes to ``sample_quality`` only, without its ``value`` field. Each
    ``sample_quality`` point holds ``quality`` (1 uncertain, 2 bad), ``value`` when finite and
    ``status_code`` when the source gave one (the OPC UA StatusCode as a number). A GOOD sample
    that is not finite stays as it is: the caller refuses it (ingest's validation) or the encoder
    drops and counts it.
    """
    q = batch.quality
    if not q.any():
        return batch
    finite = np.isfinite(batch.value)
    raw = batch.take(np.flatnonzero((q == Quality.GOOD) | ((q == Quality.UNCERTAIN) & finite)))
    flagged = np.flatnonzero(q != Quality.GOOD)
    used = np.unique(batch.series[flagged])
    fields = QUALITY_FIELDS
    qtable: list[Series] = []
    luts = {name: np.zeros(len(batch.table), dtype=np.int32) for name in fields}
    for sid in used:
        s = batch.table[sid]
        tags = dict(s.tags)
        tags["source"] = s.measurement
        tags["field"] = s.field
        for name in fields:
            luts[name][sid] = len(qtable)
            qtable.append(Series.of(QUALITY_MEASUREMENT, name, **tags))
    s = batch.series[flagged]
    ts = batch.ts_ns[flagged]
    with_value = finite[flagged]
    parts = [
        raw,
        SampleBatch(qtable, luts["value"][s[with_value]], ts[with_value], batch.value[flagged][with_value]),
        SampleBatch(qtable, luts["quality"][s], ts, batch.quality[flagged].astype(np.float64)),
    ]
    if batch.status is not None:
        coded = batch.status[flagged] != 0
        parts.append(SampleBatch(qtable, luts["status_code"][s[coded]], ts[coded], batch.status[flagged][coded].astype(np.float64)))
    return SampleBatch.concat([raw, SampleBatch.concat(parts[1:]).compact()])
