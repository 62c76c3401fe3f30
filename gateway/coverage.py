"""Report-by-exception coverage: what a silent tag means, made explicit in the samples.

OPC UA subscriptions, most PLCs and RBE devices send a value only when it changes; an absent
sample means "unchanged" while the source is healthy and "unknown" when it is not. Downstream
nobody can tell the two apart, so the gateway writes down what it knows, as historians do
(OSIsoft PI's exception reporting with a maximum time between archived values, Ignition's
"max time between samples"):

* A source hands each batch to the agent with its **watermark**: the source time up to which it
  has observed every series of the batch's table (an OPC UA publish: the newest source
  timestamp it carried; a poll: the read's time; an RBE device message: the message time).
* **Hold point**: when a series changes after a silence, its previous value is written again at
  the last instant the source observed that series before the change (its own previous
  watermark, or an earlier sample time of the same batch), so the signal is known flat until
  then and a linear interpolation of the written samples equals one of the full-rate series.
  Watermarks are kept per series: a source's groups (a subscription, a poll) observe their own
  series at their own instants, and one running ahead claims nothing for another's.
* **Heartbeat**: a series that stays unchanged is written again at the watermark once its last
  written sample is ``max_sample_interval`` old, so a healthy silent series has a sample at
  least that often (a BAD series gets none: its silence is a gap).
* **Close**: when the source loses its connection, every series is written once more at its
  last watermark and the state is forgotten, so holds never bridge an outage.
* **Coverage points**: per asset (measurement, site, asset) the newest watermark, written as
  measurement ``coverage`` (fields ``tags_total``, ``tags_bad``) once per flush: the analytics'
  event-time watermark (see docs/data-model.md).

Samples without a watermark (history read after an outage, sources that cannot claim one) and
samples older than what was already written for their series pass through unchanged.
Everything here is vectorized over the batch's rows and the source's series.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from plantmrv.batch import Quality, SampleBatch, Series

NS = 1_000_000_000
#: Default largest time between two written samples of a healthy series [s]: a minute, well
#: inside an hourly (or minute) MRV interval and far below the bandwidth of a changing tag.
DEFAULT_MAX_SAMPLE_INTERVAL_S = 60.0


class CoverageTracker:
    """Per-source state: last written sample of each series, the previous watermark, per-asset coverage.

    Parameters
    ----------
    interval_ns_for : callable Series -> int  Largest time between written samples of a series [ns]
    gateway, source : str  Tag values of the ``coverage`` points
    """

    def __init__(self, interval_ns_for: Callable[[Series], int], gateway: str, source: str):
        self.interval_ns_for = interval_ns_for
        self.gateway = gateway
        self.source = source
        self.table: list[Series] = []
        self._index: dict[Series, int] = {}
        self._remap: dict[int, tuple[list[Series], np.ndarray]] = {}
        n = 0
        self.last_ts = np.zeros(n, np.int64)
        self.last_val = np.zeros(n, np.float64)
        self.last_q = np.zeros(n, np.uint8)
        self.valid = np.zeros(n, bool)
        self.interval_ns = np.zeros(n, np.int64)
        self.asset_of = np.zeros(n, np.int32)
        self.seen_ns = np.zeros(n, np.int64)  # per series: the source time up to which it was observed
        self.assets: list[tuple[str, str, str]] = []  # (measurement, site, asset)
        self._asset_index: dict[tuple[str, str, str], int] = {}
        self.asset_watermark = np.zeros(0, np.int64)
        self.asset_dirty = np.zeros(0, bool)
        self.held = 0  # samples written by this tracker (holds and heartbeats)

    # ------------------------------------------------------------------ series table
    def _gids(self, table: list[Series]) -> np.ndarray:
        hit = self._remap.get(id(table))
        if hit is not None and hit[0] is table:
            return hit[1]
        new = [s for s in dict.fromkeys(table) if s not in self._index]
        if new:
            self._grow(new)
        gids = np.fromiter((self._index[s] for s in table), np.int32, len(table))
        if len(self._remap) > 1024:  # device sources build a table per message: keep the cache small
            self._remap.clear()
        self._remap[id(table)] = (table, gids)
        return gids

    def _grow(self, new: list[Series]) -> None:
        start = len(self.table)
        for s in new:
            self._index[s] = len(self.table)
            self.table.append(s)
        k = len(new)
        self.last_ts = np.concatenate([self.last_ts, np.zeros(k, np.int64)])
        self.last_val = np.concatenate([self.last_val, np.zeros(k)])
        self.last_q = np.concatenate([self.last_q, np.zeros(k, np.uint8)])
        self.valid = np.concatenate([self.valid, np.zeros(k, bool)])
        self.interval_ns = np.concatenate([self.interval_ns, np.array([self.interval_ns_for(s) for s in new], np.int64)])
        assets = []
        for s in new:
            tags = s.tag_dict
            key = (s.measurement, tags.get("site", ""), tags.get("asset", ""))
            if key not in self._asset_index:
                self._asset_index[key] = len(self.assets)
                self.assets.append(key)
            assets.append(self._asset_index[key])
        self.asset_of = np.concatenate([self.asset_of, np.asarray(assets, np.int32)])
        self.seen_ns = np.concatenate([self.seen_ns, np.zeros(k, np.int64)])
        grow = len(self.assets) - len(self.asset_watermark)
        if grow:
            self.asset_watermark = np.concatenate([self.asset_watermark, np.zeros(grow, np.int64)])
            self.asset_dirty = np.concatenate([self.asset_dirty, np.zeros(grow, bool)])
        assert len(self.table) == start + k

    # ------------------------------------------------------------------ intake
    def observe(self, batch: SampleBatch, watermark_ns: int | None = None, covers: np.ndarray | None = None) -> SampleBatch:
        """The samples to store for ``batch``: its own rows plus hold points and heartbeats.

        ``watermark_ns`` claims that the source observed the series ``covers`` (indices into
        ``batch.table``; default all of it) up to that time, every row of the batch among them
        (None: no claim, the rows pass through and only update the state).
        """
        gids_of_table = self._gids(batch.table)
        gid = gids_of_table[batch.series] if len(batch) else np.empty(0, np.int32)
        ts, val, q = batch.ts_ns, batch.value, batch.quality
        newer = ts > self.last_ts[gid]  # live rows; older ones (history, replays) pass through
        extra_g, extra_t, extra_v, extra_q = [], [], [], []
        if len(gid) and watermark_ns is not None and newer.any():
            g, t, v, qq = gid[newer], ts[newer], val[newer], q[newer]
            order = np.lexsort((t, g))
            g, t, v, qq = g[order], t[order], v[order], qq[order]
            first = np.ones(len(g), bool)
            first[1:] = g[1:] != g[:-1]
            prev_t = np.where(first, self.last_ts[g], np.roll(t, 1))
            prev_v = np.where(first, self.last_val[g], np.roll(v, 1))
            prev_q = np.where(first, self.last_q[g], np.roll(qq, 1))
            prev_ok = np.where(first, self.valid[g], True) & (prev_q != Quality.BAD)
            # the last instant before each row at which its series was observed unchanged: an
            # earlier instant of this batch (which observed every series it covers), or the
            # series' own watermark from earlier batches - never another group's, which may
            # run ahead of this one (a subscription beside a poll that overran)
            instants = np.unique(t)
            k = np.searchsorted(instants, t, side="left") - 1
            seen = self.seen_ns[g]
            p = np.maximum(np.where(k >= 0, instants[np.maximum(k, 0)], -1), np.where(seen < t, seen, -1))
            hold = prev_ok & (p > prev_t)
            if hold.any():
                extra_g.append(g[hold])
                extra_t.append(p[hold])
                extra_v.append(prev_v[hold])
                extra_q.append(prev_q[hold])
        if len(gid) and newer.any():
            self._remember(gid[newer], ts[newer], val[newer], q[newer])
        if watermark_ns is not None:
            covered = np.unique(gids_of_table if covers is None else gids_of_table[np.asarray(covers, np.int64)])
            w = np.maximum(self.seen_ns[covered], int(watermark_ns))
            is_due = (self.valid[covered] & (self.last_q[covered] != Quality.BAD)
                      & (w - self.last_ts[covered] >= self.interval_ns[covered]) & (self.last_ts[covered] < w))
            due = covered[is_due]
            if len(due):
                extra_g.append(due)
                extra_t.append(w[is_due])
                extra_v.append(self.last_val[due])
                extra_q.append(self.last_q[due])
                self.last_ts[due] = w[is_due]
            self.seen_ns[covered] = w
            assets = np.unique(self.asset_of[covered])
            self.asset_watermark[assets] = np.maximum(self.asset_watermark[assets], int(watermark_ns))
            self.asset_dirty[assets] = True
        return self._with(gid, ts, val, q, extra_g, extra_t, extra_v, extra_q, batch.status)

    def _remember(self, g, t, v, q) -> None:
        """Keep the newest row of each series as its last written sample."""
        order = np.lexsort((t, g))
        g, t, v, q = g[order], t[order], v[order], q[order]
        last = np.ones(len(g), bool)
        last[:-1] = g[:-1] != g[1:]
        g, t, v, q = g[last], t[last], v[last], q[last]
        self.last_ts[g] = t
        self.last_val[g] = v
        self.last_q[g] = q
        self.valid[g] = True

    def _with(self, gid, ts, val, q, eg, et, ev, eq, status=None) -> SampleBatch:
        """``status``: the rows' source status codes (None: none); holds and heartbeats carry none."""
        if eg:
            n_extra = sum(len(a) for a in eg)
            self.held += n_extra
            gid = np.concatenate([gid, *eg])
            ts = np.concatenate([ts, *et])
            val = np.concatenate([val, *ev])
            q = np.concatenate([q, *eq])
            if status is not None:
                status = np.concatenate([status, np.zeros(n_extra, np.uint32)])
        return SampleBatch(self.table, gid, ts, val, q, status)

    def close(self) -> SampleBatch:
        """The source lost its connection: every good series written at its last watermark, state forgotten."""
        due = np.flatnonzero(self.valid & (self.last_q != Quality.BAD) & (self.last_ts < self.seen_ns))
        at = self.seen_ns[due]
        out = self._with(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0), np.empty(0, np.uint8),
                         [due.astype(np.int32)] if len(due) else [], [at] if len(due) else [],
                         [self.last_val[due]] if len(due) else [], [self.last_q[due]] if len(due) else [])
        self.last_ts[due] = at
        self.valid[:] = False
        self.seen_ns[:] = 0
        return out

    # ------------------------------------------------------------------ coverage points
    def coverage_batch(self) -> SampleBatch:
        """``coverage`` points of the assets whose watermark advanced since the last call."""
        dirty = np.flatnonzero(self.asset_dirty)
        if not len(dirty):
            return SampleBatch.empty()
        self.asset_dirty[dirty] = False
        table, ts, vals = [], [], []
        bad = self.last_q == Quality.BAD
        for a in dirty.tolist():
            measurement, site, asset = self.assets[a]
            tags = {"measurement": measurement, "gateway": self.gateway, "source": self.source}
            if site:
                tags["site"] = site
            if asset:
                tags["asset"] = asset
            members = self.asset_of == a
            for field, v in (("tags_total", int(np.count_nonzero(members))), ("tags_bad", int(np.count_nonzero(members & bad)))):
                table.append(Series.of("coverage", field, **tags))
                ts.append(int(self.asset_watermark[a]))
                vals.append(float(v))
        return SampleBatch(table, np.arange(len(table), dtype=np.int32), np.asarray(ts, np.int64), np.asarray(vals))
