"""Stored results checked before they are summed.

The API sums what the analytics engine stored in measurement ``mrv``; anything else that wrote
there (a second engine, a replay with other tags, a hand-written point) would be summed too.
So every range is checked first, and each finding is a warning in ``/reductions``, the
monitoring report and the exports:

- ``duplicate_interval``: an interval start stored more than once (another tag set, e.g. a
  second methodology tag): its tonnes would count twice;
- ``misaligned_interval``: a start off the interval grid: it overlaps two intervals;
- ``completeness_above_1`` and ``completeness_invalid`` (negative or missing): a fraction of
  time covered outside 0..1 is not a measurement;
- ``params_hash_stale``: computed with parameters other than the project's current ones
  (``ProjectDetail.params_hash``).

A monitoring period with warnings is *withheld*: its total is reported as stored, but it is
neither floored nor credited (``reported_reduction_t_co2`` null) until an operator accepts
exactly these results (:mod:`plantmrv.api.acceptances`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantmrv.api.models import AcceptanceInfo, ProjectDetail, ResultChecks, ResultWarning
from plantmrv.api.projects import parameters_sha256
from plantmrv.api.queries import SOURCE_INTERVAL_S, MrvColumns, fetch_mrv
from plantmrv.api.reports import from_ns, iso, mrv_sha256

NS = 1_000_000_000


def _warning(code: str, mask: np.ndarray, times: np.ndarray, message: str) -> ResultWarning | None:
    n = int(mask.sum())
    if not n:
        return None
    first = int(times[mask][0])
    return ResultWarning(code=code, count=n, first=from_ns(first), message=message.format(n=n, first=iso(first)))


def check_results(mrv: MrvColumns, source_s: int, current_params_hash: str | None) -> list[ResultWarning]:
    """Warnings about the stored intervals ``mrv`` (sorted by time, as :func:`fetch_mrv` returns)."""
    t = mrv.time
    step = source_s * NS
    dup = np.zeros(len(t), dtype=bool)
    dup[1:] = t[1:] == t[:-1]
    comp = mrv.fields["completeness"]
    with np.errstate(invalid="ignore"):
        above = comp > 1.0 + 1e-9
        invalid = np.isnan(comp) | (comp < 0)
    found = [
        _warning("duplicate_interval", dup, t, "{n} result interval(s) stored more than once with the same start (first {first}): the sums count each copy"),
        _warning("misaligned_interval", t % step != 0, t, f"{{n}} result interval(s) start off the {source_s} s grid (first {{first}}): each overlaps two intervals"),
        _warning("completeness_above_1", above, t, f"{{n}} result interval(s) claim completeness above 1 (up to {float(np.nanmax(comp)) if above.any() else 0:g}; first {{first}})"),
        _warning("completeness_invalid", invalid, t, "{n} result interval(s) have a negative or missing completeness (first {first})"),
    ]
    if current_params_hash is not None:
        stale = mrv.params_hash != current_params_hash
        others = sorted({str(h) or "(none)" for h in mrv.params_hash[stale]})
        found.append(_warning(
            "params_hash_stale", stale, t,
            f"{{n}} result interval(s) were computed with params_hash {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}, "
            f"not the project's current {current_params_hash} (first {{first}}): recompute them or accept them",
        ))
    return [w for w in found if w is not None]


@dataclass
class CheckedResults:
    """A range's stored results with their checks and hashes."""

    mrv: MrvColumns
    warnings: list[ResultWarning]
    intervals_sha256: str
    parameters_sha256: str
    current_params_hash: str | None

    def checks(self, acceptance: AcceptanceInfo | None) -> ResultChecks:
        status = "ok" if not self.warnings else ("accepted" if acceptance is not None else "withheld")
        return ResultChecks(status=status, warnings=self.warnings, current_params_hash=self.current_params_hash, acceptance=acceptance if self.warnings else None)


def checked_results(client, project: ProjectDetail, source_interval: str, start_ns: int, end_ns: int, database: str | None = None,
                    extra: tuple[str, ...] = ()) -> CheckedResults:
    """The stored results of ``[start, end)`` (from ``database``: ``api.results_database``), checked;
    ``extra``: further numeric fields of ``mrv`` to read (an export's inputs)."""
    mrv = fetch_mrv(client, project.id, source_interval, start_ns, end_ns, database, extra)
    return CheckedResults(
        mrv=mrv,
        warnings=check_results(mrv, SOURCE_INTERVAL_S[source_interval], project.params_hash),
        intervals_sha256=mrv_sha256(mrv),
        parameters_sha256=parameters_sha256(project),
        current_params_hash=project.params_hash,
    )


def find_acceptance(store, project: ProjectDetail, start_ns: int, end_ns: int, checked: CheckedResults) -> AcceptanceInfo | None:
    if store is None or not checked.warnings:
        return None
    return store.find(project.id, from_ns(start_ns), from_ns(end_ns), checked.intervals_sha256, checked.parameters_sha256)
