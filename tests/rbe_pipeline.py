"""The offline pipeline: simulator -> report-by-exception server -> gateway coverage -> analytics.

No services: a simulated plant's samples on a tick grid, sent only on change as an OPC UA
server's subscription sends them, through the gateway's :class:`CoverageTracker` in publishes of
a few ticks (the watermark is the publish's newest source time), then the engine's signal
assembly (roles, unit conversion) and the methodology registry's compute. What this returns
is what the live pipeline stores and computes, minus the transport.
"""

from __future__ import annotations

import numpy as np

from plantmrv.analytics.config import role_scale
from plantmrv.analytics.engine import asset_fields
from plantmrv.batch import SampleBatch, Series
from plantmrv.gateway.coverage import CoverageTracker
from plantmrv.simulators import plants

S = 1_000_000_000


def sent_on_change(values: np.ndarray) -> np.ndarray:
    """Mask of the samples a report-by-exception server sends: the first and every change."""
    changed = np.ones(values.shape, bool)
    changed[..., 1:] = values[..., 1:] != values[..., :-1]
    return changed


def gateway_store(table: list[Series], ts: np.ndarray, values: np.ndarray, publish_ticks: int, interval_s: float = 60.0,
                  full_rate: bool = False) -> SampleBatch:
    """What the gateway stores for ``values`` (series x ticks) sent on change (or at full rate).

    Every publish, data or keep-alive, carries the server's clock (its PublishTime: here the
    last tick of the publish), which is the watermark of every series when nothing changed."""
    send = np.ones(values.shape, bool) if full_rate else sent_on_change(values)
    tracker = CoverageTracker(lambda _s: int(interval_s * S), "gw", "sim")
    out = []
    for a in range(0, len(ts), publish_ticks):
        b = min(a + publish_ticks, len(ts))
        s_idx, t_idx = np.nonzero(send[:, a:b])
        t_idx = t_idx + a
        batch = SampleBatch(table, s_idx.astype(np.int32), ts[t_idx], values[s_idx, t_idx])
        out.append(tracker.observe(batch, int(ts[b - 1])))
    return SampleBatch.concat(out)


def plant_samples(project, start_ns: int, end_ns: int, seed: int, tick_s: int = 10, params=None):
    """(table, ts, values) of every field of the project's plant on the tick grid over ``[start, end]``."""
    asset = project.assets[0]
    ts = np.arange(start_ns, end_ns + 1, tick_s * S, dtype=np.int64)
    fields = plants.generate(project.plant_type, ts, seed, params=params)
    names = list(fields)
    table = [Series.of(asset.measurement, f, site=asset.site or project.site, asset=asset.asset) for f in names]
    return table, ts, np.vstack([np.asarray(fields[f], float) for f in names])


def signals_from_stored(project, stored: SampleBatch) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """The engine's signals (roles read, in role units) from stored samples, as ``query_signals`` builds them."""
    by_series = {}
    for i, s in enumerate(stored.table):
        m = stored.series == i
        order = np.argsort(stored.ts_ns[m], kind="stable")
        by_series[(s.measurement, s.tag_dict.get("asset"), s.field)] = (stored.ts_ns[m][order], stored.value[m][order])
    signals: dict[str, list] = {}
    for asset, pairs in asset_fields(project):
        for role, f in pairs:
            ts, v = by_series.get((asset.measurement, asset.asset, f), (np.empty(0, np.int64), np.empty(0)))
            if not role.startswith("quality:"):
                v = v * role_scale(f, role)
            signals.setdefault(role, []).append((ts, v))
    return signals
