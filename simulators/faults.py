"""Fault injection: a deterministic schedule, pure functions on arrays, and a JSONL fault log.

Fault kinds (``Fault.kind``):

============== ============================================================================
dropout        no updates for the tag(s) in ``[start, end)`` (arrays: values become NaN)
stuck          the tag keeps the value it had at ``start``
spike          value multiplied by ``value`` (default 10) for ``[start, end)``
bad_status     status ``BadSensorFailure`` (or ``status``); OPC UA nulls the value (quality 2)
uncertain      status ``UncertainLastUsableValue``, value held at start (quality 1)
meter_reset    the asset's meters are replaced at ``start`` (registers restart at 0)
server_restart the OPC UA listener closes (clients dropped) at ``start`` and reopens at
               ``end``; no samples on either path in between (all tags)
network_stall  the whole process freezes for ``[start, end)``: no OPC UA replies, no MQTT
               publishes; ticks inside the window are skipped (all tags)
============== ============================================================================

Times are simulated time (Unix ns). ``site``/``asset``/``field`` select the target (``None``
means all). The same :class:`Fault` objects drive the server and the array functions, so a test
can apply a schedule to generated data and compare with what the pipeline stored.

- :func:`fault_schedule` ``(seed, start_ns, end_ns, assets, kinds=..., rate_per_h=...)`` -> list
- :func:`apply_faults` ``(faults, site, asset, ts_ns, fields)`` -> (fields, quality)
- :func:`apply_dropout` ``(ts_ns, values, start_ns, end_ns)`` -> values with NaN
- :func:`with_meter_resets` ``(params, faults, site, asset)`` -> params with meter replacements
- :class:`FaultLog` : append-only JSONL log, one object per fault start / end
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .meters import parse_time_ns
from .signals import NS_PER_S

FAULT_KINDS = (
    "dropout",
    "stuck",
    "spike",
    "bad_status",
    "uncertain",
    "meter_reset",
    "server_restart",
    "network_stall",
)
ASSET_KINDS = ("dropout", "stuck", "spike", "bad_status", "uncertain", "meter_reset")
SERVER_KINDS = ("server_restart", "network_stall")
DEFAULT_STATUS = {"bad_status": "BadSensorFailure", "uncertain": "UncertainLastUsableValue"}
QUALITY_OF_STATUS = {"BadSensorFailure": 2, "UncertainLastUsableValue": 1}


@dataclass(frozen=True)
class Fault:
    """One fault on one tag, one asset (``field`` None) or the whole server (``asset`` None)."""

    kind: str
    start_ns: int
    end_ns: int
    site: str | None = None
    asset: str | None = None
    field: str | None = None
    value: float | None = None
    status: str | None = None

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r} unknown; known: {', '.join(FAULT_KINDS)}")
        if self.end_ns < self.start_ns:
            raise ValueError(f"fault {self.kind}: end before start")

    @property
    def status_name(self) -> str | None:
        return self.status or DEFAULT_STATUS.get(self.kind)

    def targets(self, site: str, asset: str) -> bool:
        return (self.site in (None, site)) and (self.asset in (None, asset))

    def active(self, t_ns: int) -> bool:
        return self.start_ns <= t_ns < self.end_ns

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status_name
        return d

    @classmethod
    def from_config(cls, item: Mapping[str, Any], sim_start_ns: int, where: str = "faults") -> "Fault":
        """From a config mapping: ``kind``, ``start`` (ISO) or ``at_s`` (seconds after the
        simulation start), ``duration_s`` (default 10), ``site``, ``asset``, ``field``,
        ``value``, ``status``. Errors name ``where.<key>``."""
        known = {"kind", "start", "at_s", "duration_s", "site", "asset", "field", "value", "status"}
        for k in item:
            if k not in known:
                raise ValueError(f"{where}.{k}: unknown fault key; known: {', '.join(sorted(known))}")
        if "kind" not in item:
            raise ValueError(f"{where}.kind: required (one of {', '.join(FAULT_KINDS)})")
        if item["kind"] not in FAULT_KINDS:
            raise ValueError(f"{where}.kind: {item['kind']!r} unknown; known: {', '.join(FAULT_KINDS)}")
        try:
            if "start" in item:
                start = parse_time_ns(item["start"])
            else:
                start = sim_start_ns + int(round(float(item.get("at_s", 0.0)) * NS_PER_S))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}.start: {exc}") from None
        dur = item.get("duration_s", 10.0)
        if isinstance(dur, bool) or not isinstance(dur, (int, float)) or dur < 0:
            raise ValueError(f"{where}.duration_s: expected a number >= 0, got {dur!r}")
        return cls(
            kind=item["kind"],
            start_ns=start,
            end_ns=start + int(round(dur * NS_PER_S)),
            site=item.get("site"),
            asset=item.get("asset"),
            field=item.get("field"),
            value=None if item.get("value") is None else float(item["value"]),
            status=item.get("status"),
        )


def fault_schedule(
    seed: int,
    start_ns: int,
    end_ns: int,
    assets: Sequence[tuple[str, str, Sequence[str]]],
    kinds: Sequence[str] = ASSET_KINDS,
    rate_per_h: float = 6.0,
    duration_s: tuple[float, float] = (5.0, 60.0),
) -> list[Fault]:
    """A random but reproducible fault schedule.

    Parameters
    ----------
    seed : int  Same seed and arguments give the same list
    start_ns, end_ns : int  Period [Unix ns]
    assets : sequence of (site, asset, fields)  Targets; a fault picks one asset and, for
        tag-level kinds, one of its fields
    kinds : sequence of str  Kinds to draw from (uniformly)
    rate_per_h : float  Mean number of faults per hour of simulated time, over all assets
    duration_s : (float, float)  Uniform range of fault durations [s]

    Returns
    -------
    list of Fault, sorted by start time; whole seconds, so 1 Hz samples fall cleanly in or out.
    """
    rng = np.random.default_rng(seed)
    hours = (end_ns - start_ns) / (3600 * NS_PER_S)
    n = int(rng.poisson(rate_per_h * hours))
    span_s = max(int((end_ns - start_ns) // NS_PER_S), 1)
    starts = np.sort(rng.integers(0, span_s, size=n))
    out = []
    for s in starts.tolist():
        kind = str(kinds[int(rng.integers(len(kinds)))])
        dur = int(rng.integers(int(duration_s[0]), int(duration_s[1]) + 1))
        site, asset, fields = assets[int(rng.integers(len(assets)))]
        t0 = start_ns + s * NS_PER_S
        if kind in SERVER_KINDS:
            out.append(Fault(kind, t0, t0 + dur * NS_PER_S))
            continue
        field = None
        if kind in ("stuck", "spike", "bad_status", "uncertain", "dropout"):
            field = str(fields[int(rng.integers(len(fields)))])
        if kind == "meter_reset":
            dur = 0
        value = 10.0 if kind == "spike" else None
        out.append(Fault(kind, t0, t0 + dur * NS_PER_S, site, asset, field, value))
    return out


def apply_dropout(ts_ns: np.ndarray, values: np.ndarray, start_ns: int, end_ns: int) -> np.ndarray:
    """Copy of ``values`` with NaN where ``start_ns <= ts < end_ns`` (samples that never came)."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    out = np.array(values, dtype=np.float64, copy=True)
    out[(ts >= start_ns) & (ts < end_ns)] = np.nan
    return out


def _held(ts: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Value at the first sample of the window (held through it)."""
    idx = np.flatnonzero(mask)
    return v[idx[0]] if len(idx) else np.nan


def apply_faults(
    faults: Iterable[Fault],
    site: str,
    asset: str,
    ts_ns: np.ndarray,
    fields: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Apply faults to generated data of one asset, as a pipeline would have received it.

    Returns ``(fields, quality)``: copies of the arrays with dropout / restart / stall windows
    as NaN (no sample), stuck and uncertain windows held at the value at the window start,
    spikes multiplied, and quality (uint8: 0 good, 1 uncertain, 2 bad) per field. ``meter_reset``
    changes the model itself: use :func:`with_meter_resets` before generating.
    """
    ts = np.asarray(ts_ns, dtype=np.int64)
    out = {k: np.array(v, dtype=np.float64, copy=True) for k, v in fields.items()}
    qual = {k: np.zeros(len(ts), np.uint8) for k in fields}
    for f in faults:
        if f.kind == "meter_reset" or not f.targets(site, asset):
            continue
        mask = (ts >= f.start_ns) & (ts < f.end_ns)
        if not mask.any():
            continue
        names = [f.field] if f.field else list(out)
        for name in names:
            if name not in out:
                continue
            v = out[name]
            if f.kind in ("dropout", "server_restart", "network_stall"):
                v[mask] = np.nan
            elif f.kind == "stuck":
                v[mask] = _held(ts, v, mask)
            elif f.kind == "spike":
                v[mask] = v[mask] * (10.0 if f.value is None else f.value)
            elif f.kind in ("bad_status", "uncertain"):
                q = QUALITY_OF_STATUS.get(f.status_name, 2 if f.status_name.startswith("Bad") else 1)
                qual[name][mask] = np.maximum(qual[name][mask], q)
                if q == 1:
                    v[mask] = _held(ts, v, mask)
    return out, qual


def with_meter_resets(params, faults: Iterable[Fault], site: str, asset: str):
    """``params`` with the ``meter_reset`` faults of this asset added to ``meter.replacements``."""
    times = tuple(f.start_ns for f in faults if f.kind == "meter_reset" and f.targets(site, asset))
    if not times:
        return params
    meter = dataclasses.replace(params.meter, replacements=tuple(params.meter.replacements) + times)
    return dataclasses.replace(params, meter=meter)


class FaultLog:
    """Append-only JSONL fault log: one line per fault ``start`` and ``end`` event.

    Each line: ``{"event": "start"|"end", "kind", "site", "asset", "field", "start_ns",
    "end_ns", "value", "status", "sim_ns", "wall_ns"}`` where ``start_ns``/``end_ns`` is the
    planned interval in simulated time, ``sim_ns`` the simulated time the event was applied and
    ``wall_ns`` the wall clock. A disabled log (path None) accepts and drops events.
    """

    def __init__(self, path: str | Path | None, sink=None):
        self.path = Path(path) if path else None
        self.sink = sink  # optional callable(line): each fault start as a `sim_fault` point (fault_lines)
        self._lock = threading.Lock()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()

    def write(self, event: str, fault: Fault, sim_ns: int) -> None:
        if self.sink is not None and event == "start":
            for line in fault_lines([fault]):
                self.sink(line)
        if not self.path:
            return
        rec = {"event": event, **fault.to_json(), "sim_ns": int(sim_ns), "wall_ns": time.time_ns()}
        line = json.dumps(rec, separators=(",", ":")) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()

    @staticmethod
    def read(path: str | Path) -> list[dict[str, Any]]:
        """All records of a fault log file."""
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]


def fault_lines(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Line protocol of measurement ``sim_fault`` (tags site, asset, kind; fields field, detail,
    duration_s) from fault-log records (``start`` events) or :class:`Fault` objects, so dashboards
    can show injected faults as annotations. Server-level faults carry no site or asset tag."""
    from plantmrv.lineprotocol import event_line

    out = []
    for r in records:
        d = r.to_json() if isinstance(r, Fault) else dict(r)
        if d.get("event", "start") != "start":
            continue
        dur = (int(d["end_ns"]) - int(d["start_ns"])) / NS_PER_S
        detail = f"{d['kind']} {d.get('site') or '*'}/{d.get('asset') or '*'}" + (f" {d['field']}" if d.get("field") else "") + f" for {dur:g} s"
        if d.get("value") is not None:
            detail += f" (x{d['value']:g})"
        out.append(event_line("sim_fault", {"site": d.get("site"), "asset": d.get("asset"), "kind": d["kind"]},
                              {"field": d.get("field"), "detail": detail, "duration_s": float(dur)}, int(d["start_ns"])))
    return out
