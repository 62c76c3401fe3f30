"""The analytics engine: query raw data from InfluxDB, compute, write measurements ``mrv`` and ``mrv_event``.

- :meth:`Engine.compute_window`: one project, ``[start, end)`` cut into intervals; raw samples
  queried with a margin of ``max_gap_s`` on both sides, so a segment straddling an edge is
  split exactly as it would be in a longer window.
- :meth:`Engine.write_results`: one point per interval in ``mrv`` (tags ``project``,
  ``methodology``, ``interval``; timestamp = interval start), fields as in docs/data-model.md.
  Rewriting an interval overwrites the same point: idempotent.
- :meth:`Engine.backfill`: a range in chunks of whole days, with a progress callback.
- :meth:`Engine.poll` / :meth:`Engine.run`: continuous mode on **event time**. An interval is
  computed once the watermark of every asset of its project (the newest ``coverage`` point its
  gateways wrote: data delivered up to there) is ``settle_s`` past its end; an interval whose
  sources lag is computed anyway, marked ``provisional``, once the newest source of any project
  is ``lateness`` past its end, and computed again when its own sources catch up. The wall
  clock never decides which intervals exist (it only caps a source clock running ahead), so
  an accelerated or replayed plant computes exactly as a live one. Each poll also compares
  per-interval sample counts over the ``late_data_lookback`` window with the counts it computed
  from: an interval whose raw data changed (late data, a gateway replaying its buffer) is
  recomputed with its neighbours.
  Waste-to-energy: the MRV interval is computed first; late data in an earlier crediting year
  also recomputes the computed intervals of the later years, which credit the decay of that
  year's waste (TOOL04, :meth:`Engine.prior_waste_by_year`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from plantmrv.batch import Series
from plantmrv.influx import InfluxClient, quote_ident, quote_literal
from plantmrv.lineprotocol import EncodedBodies, encode_wide, series_key

from . import registry
from .config import AnalyticsConfig, ProjectConfig, duration_label, role_scale
from .methodologies import IntervalResults, compute, parameter_defaults, resolve_grid_ef  # noqa: F401 (re-export)

log = logging.getLogger("plantmrv.analytics")

NS = 1_000_000_000
DAY_NS = 86400 * NS
MRV_FIELDS = (
    "energy_saved_kwh",
    "reference_energy_kwh",
    "project_energy_kwh",
    "reference_t_co2",
    "project_t_co2",
    "reduction_t_co2",
    "completeness",
    "gap_filled_s",
)
def roles_read(project: ProjectConfig) -> set[str]:
    """The roles :func:`compute` reads for ``project``: per quantity of its methodology the meter
    when one is configured, else the rate (a power field configured beside an energy meter is
    not queried: influxd's cost is per raw value), and its state roles."""
    configured = {r for a in project.assets for r in a.fields.by_role()}
    m = project.spec
    out = {r for r in registry.quantity_sources(m, {r: True for r in configured}).values() if r}
    return out | (set(m.states) & configured)


def asset_fields(project: ProjectConfig) -> list[tuple[object, list[tuple[str, str]]]]:
    """Per asset: [(role, field)] of the roles read, and co-benefit quality fields (role ``quality:<field>``)."""
    used = roles_read(project)
    out = []
    for a in project.assets:
        pairs = [(role, f) for role, fields in a.fields.by_role().items() if role in used for f in fields]
        for fin, fout in a.fields.quality_pairs.values():
            pairs += [(f"quality:{fin}", fin), (f"quality:{fout}", fout)]
        out.append((a, pairs))
    return out


#: "No interval is final yet" (a project none of whose sources has reported).
NEVER_NS = -(2**62)


def _iso(ns: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ns / NS, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _runs(starts: list[int], step: int) -> list[tuple[int, int]]:
    """Consecutive interval starts merged into ``[a, b)`` ranges."""
    out: list[list[int]] = []
    for t in sorted(starts):
        if out and t == out[-1][1]:
            out[-1][1] = t + step
        else:
            out.append([t, t + step])
    return [(a, b) for a, b in out]


def _ranges(starts: list[int], step: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Merge interval starts (each widened by one neighbour each side) into ``[a, b)`` ranges."""
    out: list[list[int]] = []
    for t in sorted(starts):
        a, b = max(lo, t - step), min(hi, t + 2 * step)
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out if b > a]


def asset_select(project: ProjectConfig, asset, select: str, start_ns: int, end_ns: int, tail: str = "") -> str:
    """InfluxQL: ``select`` over one asset's raw samples in ``[start_ns, end_ns)``."""
    return (
        f"SELECT {select} FROM {quote_ident(asset.measurement)} "
        f"WHERE {quote_ident('site')} = {quote_literal(asset.site or project.site)} AND {quote_ident('asset')} = {quote_literal(asset.asset)} "
        f"AND time >= {int(start_ns)} AND time < {int(end_ns)}{tail}"
    )


def finite_column(cols: dict, field_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns, values) of one queried field, rows without a finite value left out."""
    v = cols.get(field_name)
    if v is None:
        return np.empty(0, np.int64), np.empty(0)
    ts = np.asarray(cols["time"], dtype=np.int64)
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v)
    return ts[ok], v[ok]


def results_bodies(project: ProjectConfig, results: IntervalResults, interval_s: int, provisional=None) -> EncodedBodies:
    """Line protocol for measurement ``mrv``: one line per interval, NaN fields left out.

    ``provisional`` (bool per interval): computed before every source had reported up to the
    interval's end (the lateness limit); recomputed, and written again as final, later."""
    key = series_key(
        Series.of(
            "mrv",
            "",
            interval=duration_label(interval_s),
            methodology=project.methodology.id,
            plant_type=project.plant_type,
            project=project.id,
            site=project.site,
        )
    )
    cols = {
        "energy_saved_kwh": results.energy_saved_kwh,
        "reference_energy_kwh": results.reference_energy_kwh,
        "project_energy_kwh": results.project_energy_kwh,
        "reference_t_co2": results.reference_t_co2,
        "project_t_co2": results.project_t_co2,
        "reduction_t_co2": results.reduction_t_co2,
        "completeness": results.completeness,
        "gap_filled_s": results.gap_filled_s,
    }
    cols.update({k: np.asarray(v, dtype=float) for k, v in results.cobenefits.items()})
    cols.update({k: np.asarray(v, dtype=float) for k, v in results.inputs.items()})  # what the verifier's workbook re-derives the results from
    cols["provisional"] = np.zeros(len(results)) if provisional is None else np.asarray(provisional, dtype=float)
    h = results.params_hash.replace('"', "")
    constant = f'params_hash="{h}",credited={"true" if results.credited else "false"}'
    return encode_wide(key, cols, results.start_ns, constant)


def event_bodies(project: ProjectConfig, results: IntervalResults) -> list[bytes]:
    """Line protocol for measurement ``mrv_event``: one point per meter event found (rollover,
    declared replacement or reset applied, undeclared drop, jump), stamped at the start of the
    segment between the two readings and keyed by the meter (tag ``source`` = asset.field), so a
    recomputation overwrites it (a drop that is later declared becomes a replacement)."""
    from plantmrv.lineprotocol import event_line

    if not results.events:
        return []
    evs = {(e.detail.split(":", 1)[0], e.start_ns): e for e in results.events}
    lines = [
        event_line("mrv_event", {"project": project.id, "site": project.site, "source": src},
                   {"kind": e.kind, "detail": e.detail, "duration_s": (e.end_ns - e.start_ns) / NS, "amount": float(e.amount), "counted": bool(e.counted)}, t)
        for (src, t), e in sorted(evs.items())
    ]
    return [("\n".join(lines) + "\n").encode()]


@dataclass
class _PollState:
    done_until_ns: int
    counts: dict[int, float] = field(default_factory=dict)  # interval start -> sample count used
    day_closed_ns: int | None = None  # KH_AM002: local midnight up to which days were recomputed closed
    provisional: set[int] = field(default_factory=set)  # starts of intervals written provisional


class Engine:
    """Runs the configured projects against one InfluxDB."""

    def __init__(self, config: AnalyticsConfig, client: InfluxClient, clock: Callable[[], float] = time.time, metrics=None):
        self.config = config
        self.client = client
        self.clock = clock
        self.metrics = metrics  # analytics metrics (watermark gauges, intervals written), optional
        self._ef = {p.id: resolve_grid_ef(p) for p in config.projects}
        for pid, ef in self._ef.items():
            if "placeholder" in ef.source.lower():
                log.warning("event=grid_ef_placeholder project=%s ef_t_co2_per_mwh=%s source=%r", pid, ef.value_t_co2_per_mwh, ef.source)
        self._state: dict[tuple[str, int], _PollState] = {}
        self._last_late_ns: int | None = None
        self._marks: dict[str, int | None] = {}
        self._params_seen: dict[str, str] = {}

    # ------------------------------------------------------------------ query + compute

    def query_signals(self, project: ProjectConfig, start_ns: int, end_ns: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
        """Raw samples of the project's asset fields in ``[start_ns, end_ns)`` by role (the roles
        :func:`compute` reads for the project, see :func:`roles_read`), converted from each
        field's unit to its role's. State roles come with their last sample before the window
        (and, where the methodology says so, over a wider span: KH_AM002's whole local days)."""
        signals: dict[str, list] = {}
        states = set(project.spec.states)
        for asset, pairs in asset_fields(project):
            if not pairs:
                continue
            fields = sorted({f for _, f in pairs})
            res = self.client.query(asset_select(project, asset, ",".join(quote_ident(f) for f in fields), start_ns, end_ns))
            cols = res[0].columns if res else {}
            for role, f in pairs:
                series = finite_column(cols, f)
                if role in states:
                    span = project.spec.state_span
                    if span is not None:
                        a, b = span(project, start_ns, end_ns)
                        res_s = self.client.query(asset_select(project, asset, quote_ident(f), a, b))
                        series = self._with_state_before(project, asset, f, a, finite_column(res_s[0].columns if res_s else {}, f))
                    else:
                        series = self._with_state_before(project, asset, f, start_ns, series)
                if not role.startswith("quality:"):
                    scale = role_scale(f, role)
                    if scale != 1.0:
                        series = (series[0], series[1] * scale)
                signals.setdefault(role, []).append(series)
        return signals

    def _with_state_before(self, project: ProjectConfig, asset, field_name: str, start_ns: int, series):
        """Prepend the last sample before ``start_ns`` (within ``state_hold_max``) to a state signal
        (its gaps, longer than ``max_gap_s``, still count as gaps)."""
        hold_from_ns = int(start_ns) - self.config.state_hold_max_s * NS
        res = self.client.query(asset_select(project, asset, f"last({quote_ident(field_name)})", hold_from_ns, start_ns))
        if not res or not len(res[0]):
            return series
        t = np.asarray(res[0].columns["time"], dtype=np.int64)[:1]
        v = np.asarray(res[0].columns["last"], dtype=float)[:1]
        if not np.isfinite(v).all():
            return series
        return np.concatenate([t, series[0]]), np.concatenate([v, series[1]])

    def compute_window(self, project: ProjectConfig, start_ns: int, end_ns: int, interval_s: int) -> IntervalResults:
        """Results of ``[start_ns, end_ns)`` in intervals of ``interval_s`` (start aligned by caller).

        Waste-to-energy, a window straddling an anniversary from a start inside an MRV interval:
        the raw query begins at that MRV interval's start instead, so the waste of its part
        before ``start_ns`` comes from the same query (:meth:`prior_waste_by_year`).
        """
        pad = int(math.ceil(self.config.max_gap_s)) * NS + NS
        raw_from_ns = self._raw_waste_from_ns(project, start_ns, end_ns)
        signals = self.query_signals(project, (start_ns if raw_from_ns is None else raw_from_ns) - pad, end_ns + pad)
        edges = np.arange(start_ns, end_ns, interval_s * NS, dtype=np.int64)
        edges = np.append(edges, np.int64(end_ns))
        prior = self.prior_waste_by_year(project, start_ns, end_ns, signals=signals)
        return compute(project, signals, edges, self.config.max_gap_s, self._ef[project.id], prior)

    def _raw_waste_from_ns(self, project: ProjectConfig, start_ns: int, end_ns: int) -> int | None:
        """Waste-to-energy: the start of the MRV interval holding ``start_ns`` when the waste of
        ``[that start, start_ns)`` belongs to a crediting year before the window's last (its
        decay is credited in the window) and must come from raw data; else None (no query)."""
        if project.plant_type != "wte":
            return None
        step = self.config.mrv_interval_s * NS
        whole_ns = (start_ns // step) * step
        if whole_ns == start_ns:
            return None
        from .wte import crediting_year_edges_ns, crediting_year_of

        ye = crediting_year_edges_ns(project.crediting_start_ns, end_ns)
        return whole_ns if max(int(crediting_year_of(whole_ns, ye)), 0) < int(crediting_year_of(end_ns - 1, ye)) else None

    def prior_waste_by_year(
        self, project: ProjectConfig, start_ns: int, end_ns: int, cache: dict | None = None, signals: dict | None = None
    ) -> list[float] | None:
        """Waste-to-energy: waste diverted in each crediting year before ``start_ns`` [t], for
        the years before the window's last.

        TOOL04 credits in year y the decay of the waste of every earlier year x; the window
        ``[start_ns, end_ns)`` brings its own waste. The waste of earlier years up to the start
        of the MRV interval holding ``start_ns`` comes from the ``waste_t`` of the project's
        ``mrv`` points at the MRV interval that end by then (one ``sum()`` per year); when
        ``start_ns`` lies inside an MRV interval of such a year, the waste of that interval's
        part before ``start_ns`` is computed from raw data: from ``signals`` (raw samples as
        :meth:`query_signals` returns them, covering that part with the ``max_gap_s`` margin, as
        :meth:`compute_window` queries them), else one query of that part. Exact for any
        ``start_ns``, aligned or not, and whether the MRV point of that interval exists or not.

        The MRV points read must exist: years are computed in order. Backfill computes its
        chunks in order (aligned to the longest interval, so no raw part when it is the MRV
        interval); :meth:`poll` computes the MRV interval first for these projects and, after
        late data in an earlier year, recomputes the later years' computed intervals once the
        earlier year's ``mrv`` points are rewritten (:meth:`_recompute_later_crediting_years`).
        ``cache`` keeps the sums of years that ended before the window (one backfill run).
        None for other plant types.
        """
        if project.plant_type != "wte":
            return None
        from .wte import crediting_year_edges_ns, crediting_year_of, waste_by_crediting_year_t

        ye = crediting_year_edges_ns(project.crediting_start_ns, end_ns)
        last = int(crediting_year_of(end_ns - 1, ye))
        step = self.config.mrv_interval_s * NS
        whole_ns = (start_ns // step) * step  # MRV points before it end by then
        out = []
        for x in range(max(last, 0)):
            a, b = int(ye[x]), min(int(ye[x + 1]), whole_ns)
            if b <= a:
                out.append(0.0)
                continue
            key = (project.id, a, b)
            if cache is not None and key in cache:
                out.append(cache[key])
                continue
            q = (
                f"SELECT sum(\"waste_t\") FROM \"mrv\" WHERE \"project\" = {quote_literal(project.id)} "
                f"AND \"interval\" = {quote_literal(duration_label(self.config.mrv_interval_s))} AND time >= {a} AND time < {b}"
            )
            res = self.client.query(q)
            v = float(np.nansum(np.asarray(res[0].columns.get("sum", []), dtype=float))) if res and len(res[0]) else 0.0
            if cache is not None and b == int(ye[x + 1]):
                cache[key] = v
            out.append(v)
        if self._raw_waste_from_ns(project, start_ns, end_ns) is not None:
            # [whole_ns, start_ns) from raw data, cut at any anniversary inside it
            edges = np.unique(np.concatenate(([whole_ns], ye[(ye > whole_ns) & (ye < start_ns)], [start_ns]))).astype(np.int64)
            if signals is None:
                pad = int(math.ceil(self.config.max_gap_s)) * NS + NS
                signals = self.query_signals(project, whole_ns - pad, start_ns + pad)
            part = compute(project, signals, edges, self.config.max_gap_s, self._ef[project.id], None)
            out = (np.asarray(out) + waste_by_crediting_year_t(edges, part.cobenefits["waste_t"], ye, last)).tolist()
        return out

    def write_results(self, project: ProjectConfig, results: IntervalResults, interval_s: int, final_until_ns: int | None = None) -> int:
        """Write the ``mrv`` points (intervals ending after ``final_until_ns`` marked provisional)
        and, for the MRV interval, the ``mrv_event`` points of the meter events found."""
        provisional = None
        if final_until_ns is not None:
            provisional = results.edges_ns[1:] > final_until_ns
        encoded = results_bodies(project, results, interval_s, provisional)
        for body in encoded.bodies:
            self.client.write_body(body)
        if interval_s == self.config.mrv_interval_s:
            for body in event_bodies(project, results):
                self.client.write_body(body)
            self._note_params(project, results)
        if self.metrics is not None and hasattr(self.metrics, "intervals_written"):
            n_prov = int(np.count_nonzero(provisional)) if provisional is not None else 0
            if encoded.lines - n_prov:
                self.metrics.intervals_written(project.id, duration_label(interval_s), False, encoded.lines - n_prov)
            if n_prov:
                self.metrics.intervals_written(project.id, duration_label(interval_s), True, n_prov)
        return encoded.lines

    def process(self, project: ProjectConfig, start_ns: int, end_ns: int, interval_s: int, final_until_ns: int | None = None) -> IntervalResults:
        """Compute and write ``[start_ns, end_ns)``; returns the results."""
        res = self.compute_window(project, start_ns, end_ns, interval_s)
        self.write_results(project, res, interval_s, final_until_ns)
        return res

    def _note_params(self, project: ProjectConfig, results: IntervalResults) -> None:
        """An ``mrv_event`` (``params_change``) where a project's results start to use a parameter
        set other than the one its stored results last used (a config or emission-factor change)."""
        from plantmrv.lineprotocol import event_line

        prev = self._params_seen.get(project.id)
        if prev is None:
            res = self.client.query(f"SELECT last(\"params_hash\") FROM \"mrv\" WHERE \"project\" = {quote_literal(project.id)} "
                                    f"AND \"interval\" = {quote_literal(duration_label(self.config.mrv_interval_s))} AND time < {int(results.edges_ns[0])}")
            prev = str(res[0].columns["last"][0]) if res and len(res[0]) else results.params_hash
        if prev != results.params_hash:
            line = event_line("mrv_event", {"project": project.id, "site": project.site, "source": "params"},
                              {"kind": "params_change", "detail": f"params_hash {prev} -> {results.params_hash}", "duration_s": 0.0}, int(results.edges_ns[0]))
            self.client.write_body((line + "\n").encode())
            log.info("event=params_change project=%s from=%s to=%s at=%s", project.id, prev, results.params_hash, _iso(int(results.edges_ns[0])))
        self._params_seen[project.id] = results.params_hash

    # ------------------------------------------------------------------ event time

    def watermarks(self) -> dict[str, int | None]:
        """Per project: the source time up to which every one of its assets has delivered its
        data (the oldest of its assets' newest ``coverage`` points), or None when an asset has
        none. An asset no gateway writes coverage for (data written by another tool) counts
        with its newest raw sample."""
        out: dict[str, int | None] = {}
        for p in self.config.projects:
            keys = [(a.measurement, a.site or p.site, a.asset) for a in p.assets]
            cond = " OR ".join(
                f"({quote_ident('measurement')} = {quote_literal(m)} AND {quote_ident('site')} = {quote_literal(site)} AND {quote_ident('asset')} = {quote_literal(asset)})"
                for m, site, asset in keys
            )
            marks: dict[tuple, int] = {}
            try:
                res = self.client.query(f"SELECT last({quote_ident('tags_total')}) FROM {quote_ident('coverage')} WHERE {cond} "
                                        f"GROUP BY {quote_ident('measurement')}, {quote_ident('site')}, {quote_ident('asset')}")
            except Exception as exc:  # noqa: BLE001 - no coverage measurement yet
                log.debug("event=watermark_query_failed project=%s error=%s", p.id, str(exc)[:200])
                res = []
            for r in res:
                t = r.columns.get("time")
                if t is not None and len(t):
                    marks[(r.tags.get("measurement"), r.tags.get("site"), r.tags.get("asset"))] = int(np.asarray(t)[0])
            for (m, site, asset), a in zip(keys, p.assets):
                if (m, site, asset) not in marks:
                    r = self.client.query(asset_select(p, a, "*", 0, 2**62, " ORDER BY time DESC LIMIT 1"))
                    if r and len(r[0]):
                        marks[(m, site, asset)] = int(np.asarray(r[0].columns["time"])[0])
            out[p.id] = min(marks[k] for k in keys) if all(k in marks for k in keys) else None
        self._marks = out
        return out

    def _engine_time_ns(self, marks: dict[str, int | None], wall_ns: int) -> int | None:
        """The newest source time of any project, never beyond this machine's clock + ``max_clock_skew_s``."""
        known = [m for m in marks.values() if m is not None]
        if not known:
            return None
        return min(max(known), wall_ns + int(self.config.max_clock_skew_s * NS))

    def intervals(self) -> list[int]:
        return sorted({self.config.process_interval_s, self.config.mrv_interval_s})

    def backfill(
        self,
        start_ns: int,
        end_ns: int,
        projects: Iterable[ProjectConfig] | None = None,
        interval_s: Iterable[int] | None = None,
        chunk_ns: int = DAY_NS,
        progress: Callable[[int], None] | None = None,
        workers: int = 2,
    ) -> int:
        """Recompute and write every interval of ``[start_ns, end_ns)``; returns points written.

        The range is aligned to whole intervals of the longest length and cut into chunks of
        ``chunk_ns``; each chunk's raw data is queried once and computed at every interval
        length. ``workers`` chunks are queried concurrently (influxd's query engine, not the
        numpy, is the bottleneck). ``progress`` is called with the nanoseconds done per chunk.
        """
        from concurrent.futures import ThreadPoolExecutor

        projects = list(projects or self.config.projects)
        ivs = sorted(set(interval_s or self.intervals()))
        step = max(ivs) * NS
        s = (start_ns // step) * step
        e = -(-end_ns // step) * step
        chunk = max(step, (chunk_ns // step) * step)
        tasks = [(p, c0, min(c0 + chunk, e)) for p in projects for c0 in range(s, e, chunk)]
        pad = int(math.ceil(self.config.max_gap_s)) * NS + NS

        def load(task):
            p, c0, c1 = task
            return task, self.query_signals(p, c0 - pad, c1 + pad)

        written = 0
        waste_cache: dict = {}
        marks = self.watermarks()
        settle = int(self.config.settle_s * NS)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for (p, c0, c1), signals in pool.map(load, tasks):
                final_until = marks[p.id] - settle if marks.get(p.id) is not None else NEVER_NS
                for iv in ivs:
                    edges = np.append(np.arange(c0, c1, iv * NS, dtype=np.int64), np.int64(c1))
                    prior = self.prior_waste_by_year(p, c0, c1, waste_cache)
                    res = compute(p, signals, edges, self.config.max_gap_s, self._ef[p.id], prior)
                    written += self.write_results(p, res, iv, final_until)
                if progress:
                    progress(c1 - c0)
        return written

    # ------------------------------------------------------------------ continuous

    def _counts(self, project: ProjectConfig, start_ns: int, end_ns: int, interval_s: int) -> dict[int, float]:
        """Raw sample counts per interval (all asset fields), to detect late data."""
        out: dict[int, float] = {}
        for asset, pairs in asset_fields(project):
            fields = sorted({f for _, f in pairs})
            if not fields:
                continue
            counts = ",".join(f"count({quote_ident(f)})" for f in fields)
            for r in self.client.query(asset_select(project, asset, counts, start_ns, end_ns, f" GROUP BY time({int(interval_s)}s)")):
                t = r.columns.get("time")
                tot = sum(np.nan_to_num(np.asarray(v, dtype=float)) for k, v in r.columns.items() if k != "time")
                for ti, ci in zip(np.asarray(t).tolist(), np.atleast_1d(tot).tolist()):
                    out[ti] = out.get(ti, 0.0) + ci
        return out

    def poll(self, now_ns: int | None = None) -> dict[str, int]:
        """One step of continuous mode; returns ``{project/interval: intervals written}``.

        Event time decides what is computed (:meth:`watermarks`): an interval is final once its
        project's watermark is ``settle_s`` past its end; it is computed earlier, marked
        provisional, once the newest source of any project (the engine's event time) is
        ``lateness`` past its end, and computed again as final when its own watermark passes.
        ``now_ns`` (default: the clock) is the wall clock, used only for the cadence of the
        late-data check and to cap a source clock running ahead.

        Every ``late_data_check_s`` the raw sample counts of the ``late_data_lookback`` window
        are queried once per project (at the shortest interval, summed up for the longer ones)
        and compared with the counts each interval was computed from; changed intervals are
        recomputed with their neighbours, consecutive ones as one range. Waste-to-energy: the
        MRV interval is computed first (its ``mrv`` points carry the waste
        :meth:`prior_waste_by_year` reads for later windows); when a recomputed range lies in an
        earlier crediting year, the later years' computed intervals are recomputed after it
        (:meth:`_recompute_later_crediting_years`).
        """
        now_ns = int(self.clock() * NS) if now_ns is None else now_ns
        marks = self.watermarks()
        engine_ns = self._engine_time_ns(marks, now_ns)
        if self.metrics is not None and hasattr(self.metrics, "watermark"):
            for pid, m in marks.items():
                if m is not None:
                    self.metrics.watermark(pid, m, (now_ns - m) / NS)
        report: dict[str, int] = {}
        if engine_ns is None:
            return report  # no source has reported yet: nothing can close
        settle = int(self.config.settle_s * NS)
        lateness = self.config.lateness_s * NS
        lookback = self.config.late_data_lookback_s * NS
        ivs = self.intervals()
        late_due = self._last_late_ns is None or now_ns - self._last_late_ns >= int(self.config.late_data_check_s * NS)
        if late_due:
            self._last_late_ns = now_ns
        for project in self.config.projects:
            mp = project.monitoring_period
            mark = marks.get(project.id)
            final_until = min(mark - settle, engine_ns) if mark is not None else NEVER_NS
            states = {}
            for iv in ivs:
                step = iv * NS
                st = self._state.get((project.id, iv))
                if st is None:
                    first = max((mp.start_ns // step) * step, ((engine_ns - lookback) // step) * step)
                    st = self._state[(project.id, iv)] = _PollState(done_until_ns=first)
                states[iv] = (st, max(st.done_until_ns - lookback, (mp.start_ns // step) * step))
            small_counts = None
            written: dict[int, int] = {}
            late_from_ns = None  # start of the earliest range recomputed for late data
            if late_due and any(st.done_until_ns > lo for st, lo in states.values()):
                lo_all = min(lo for _, lo in states.values())
                hi_all = max(st.done_until_ns for st, _ in states.values())
                small_counts = self._counts(project, lo_all, hi_all, ivs[0])
            # waste-to-energy: the MRV interval first, so that every mrv point the process
            # interval's windows read back (prior_waste_by_year) is written before it is read
            for iv in self._mrv_interval_first(ivs) if project.plant_type == "wte" else ivs:
                step = iv * NS
                st, lo = states[iv]
                period_end = -(-mp.end_ns // step) * step
                end_final = min((final_until // step) * step, period_end)
                end = max(end_final, min(((engine_ns - lateness) // step) * step, period_end))
                n = 0
                if small_counts is not None and st.done_until_ns > lo:
                    counts: dict[int, float] = {}
                    for t, c in small_counts.items():
                        b = (t // step) * step
                        if lo <= b < st.done_until_ns:
                            counts[b] = counts.get(b, 0.0) + c
                    changed = sorted(t for t in set(counts) | {t for t in st.counts if lo <= t < st.done_until_ns} if st.counts.get(t, 0.0) != counts.get(t, 0.0))
                    for a, b in _ranges(changed, step, lo, st.done_until_ns):
                        self.process(project, a, b, iv, final_until)
                        st.provisional.difference_update(t for t in range(a, b, step) if t + step <= end_final)
                        n += (b - a) // step
                        late_from_ns = a if late_from_ns is None else min(late_from_ns, a)
                    st.counts.update({t: counts.get(t, 0.0) for t in changed})
                    for t in [t for t in st.counts if t < lo]:
                        del st.counts[t]
                # provisional intervals whose sources have now reported: computed again, final
                ready = sorted(t for t in st.provisional if t + step <= end_final)
                for a, b in _runs(ready, step):
                    self.process(project, a, b, iv, final_until)
                    n += (b - a) // step
                st.provisional.difference_update(ready)
                if end > st.done_until_ns:
                    # count first: data landing between count and compute only causes a recompute
                    counts = self._counts(project, st.done_until_ns, end, iv)
                    self.process(project, st.done_until_ns, end, iv, final_until)
                    st.counts.update(counts)
                    st.provisional.update(range(max(st.done_until_ns, end_final), end, step))
                    n += (end - st.done_until_ns) // step
                    st.done_until_ns = end
                if project.day_category is not None:
                    n += self._recompute_closed_days(project, st, iv, final_until)
                written[iv] = n
            if late_from_ns is not None and project.plant_type == "wte":
                for iv, n in self._recompute_later_crediting_years(project, late_from_ns, {iv: st for iv, (st, _) in states.items()}, final_until).items():
                    written[iv] += n
            for iv, n in written.items():
                report[f"{project.id}/{duration_label(iv)}"] = n
                if n:
                    log.info("event=mrv_computed project=%s interval=%s intervals=%d provisional=%d watermark=%s", project.id, duration_label(iv), n,
                             len(states[iv][0].provisional), _iso(mark) if mark is not None else "none")
        return report

    def _mrv_interval_first(self, interval_s: Iterable[int]) -> list[int]:
        return sorted(interval_s, key=lambda iv: iv != self.config.mrv_interval_s)

    def _recompute_later_crediting_years(self, project: ProjectConfig, changed_from_ns: int, states: dict[int, _PollState],
                                         final_until_ns: int | None = None) -> dict[int, int]:
        """Waste-to-energy: late data recomputed from ``changed_from_ns`` changed the waste of
        its crediting year, whose decay every later year credits (TOOL04's tail, read back by
        :meth:`prior_waste_by_year`). The intervals of the later years computed so far (up to
        each ``done_until_ns``) are computed again, at the MRV interval first (its ``waste_t``
        is what the sums read), then the others. Call it after the earlier year's intervals
        were rewritten. No query when no later year has been computed. Returns intervals
        written per interval length [s].
        """
        from .wte import crediting_year_edges_ns, crediting_year_of

        done_until_ns = max(st.done_until_ns for st in states.values())
        year_edges_ns = crediting_year_edges_ns(project.crediting_start_ns, done_until_ns)
        year = max(int(crediting_year_of(changed_from_ns, year_edges_ns)), 0)
        next_year_ns = int(year_edges_ns[year + 1])
        out: dict[int, int] = {}
        for iv in self._mrv_interval_first(states):
            step = iv * NS
            a, b = (next_year_ns // step) * step, states[iv].done_until_ns
            if b > a:
                self.process(project, a, b, iv, final_until_ns)
                out[iv] = (b - a) // step
        return out

    def _recompute_closed_days(self, project: ProjectConfig, st: _PollState, interval_s: int, final_until_ns: int | None = None) -> int:
        """KH_AM002: an interval computed while its day was open took the conservative EF of a
        partly unknown day; once the local day has closed (all its intervals computed), its
        intervals are computed again with the day's category. Returns intervals written."""
        from .pv import local_day_edges_ns

        days = local_day_edges_ns(st.done_until_ns, st.done_until_ns, project.day_category.utc_offset_h)
        closed = int(days[0]) if int(days[0]) <= st.done_until_ns else int(days[0]) - DAY_NS
        if st.day_closed_ns is None:
            st.day_closed_ns = closed
            return 0
        if closed <= st.day_closed_ns:
            return 0
        step = interval_s * NS
        a = (max(st.day_closed_ns, closed - DAY_NS) // step) * step
        self.process(project, a, closed, interval_s, final_until_ns)
        st.day_closed_ns = closed
        return (closed - a) // step

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Poll every ``poll_s`` until ``stop()``; errors are logged and retried next poll."""
        while not stop():
            t0 = time.monotonic()
            try:
                self.poll()
            except Exception as exc:  # keep running: InfluxDB may be restarting
                log.warning("event=mrv_poll_failed error=%s", str(exc).replace("\n", " ")[:300])
                if self.metrics is not None:
                    self.metrics.poll_failed()  # /readyz: not ready while polls fail
            else:
                if self.metrics is not None:
                    self.metrics.poll_ok()
            time.sleep(max(0.0, self.config.poll_s - (time.monotonic() - t0)))

    # ------------------------------------------------------------------ reading results back

    def read_results(self, project: ProjectConfig, start_ns: int, end_ns: int, interval_s: int) -> dict[str, np.ndarray]:
        """The ``mrv`` points of a project as numpy columns (``time`` + fields)."""
        q = (
            f"SELECT * FROM \"mrv\" WHERE \"project\" = {quote_literal(project.id)} AND \"interval\" = {quote_literal(duration_label(interval_s))} "
            f"AND time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        res = self.client.query(q)
        return res[0].columns if res else {}


def period_reports(engine: Engine, by: str = "monitoring") -> list:
    """Period reports of every project from its hourly ``mrv`` points.

    ``by`` = ``monitoring`` (the project's monitoring period, with its ex-ante estimate),
    ``fiscal_year`` (Japanese, April-March) or ``calendar_year``.
    """
    from .reporting import period_report, reports_by

    iv = engine.config.mrv_interval_s
    out = []
    for p in engine.config.projects:
        mp = p.monitoring_period
        cols = engine.read_results(p, mp.start_ns, mp.end_ns, iv)
        ts = cols.get("time", np.empty(0, np.int64))
        n = len(ts)

        def col(name):
            v = cols.get(name)
            return np.nan_to_num(np.asarray(v, dtype=float)) if v is not None else np.zeros(n)

        common = dict(
            energy_saved_kwh=col("energy_saved_kwh"), completeness=col("completeness"), gap_filled_s=col("gap_filled_s"),
            japan_share=p.japan_share, rounding=p.rounding, credited=p.spec.credited, city=p.city, country=p.country,
        )
        # an interval never computed counts as missing (completeness 0) in the period's completeness
        expected = max(1, -(-(mp.end_ns - mp.start_ns) // (iv * NS)))
        if by == "monitoring":
            r = period_report(p.id, "monitoring", ts, iv, col("reference_t_co2"), col("project_t_co2"), ex_ante_t_co2=p.ex_ante_t_co2, **common)
            r.completeness = float(np.sum(common["completeness"]) / expected)
            r.start_ns, r.end_ns = mp.start_ns, mp.end_ns
            # SELECT * returns every field of `mrv`: keep the co-benefits this project has
            present = {k: np.asarray(v, dtype=float) for k, v in cols.items() if k not in ("time", "params_hash") and np.asarray(v).dtype != object}
            present = {k: v for k, v in present.items() if np.isfinite(v).any()}
            cob = {k: float(np.nansum(v)) for k, v in present.items() if k in ("waste_t", "volume_m3", "electricity_cost_saved", "chlorine_kg", "coagulant_kg", "methane_avoided_t_co2e", "operating_h")}
            cob.update({k: float(np.nanmean(v)) for k, v in present.items() if k.endswith("_removal")})
            r.cobenefits = cob
            out.append(r)
        elif n:
            from .config import check_report_alignment

            check_report_alignment(p, iv, by)
            out += reports_by(by, p.id, ts, iv, col("reference_t_co2"), col("project_t_co2"), zone=p.zone, **common)
    return out
