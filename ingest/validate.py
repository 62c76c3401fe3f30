"""Sample validation: what ingest writes and what it refuses, with the reason.

Checks run on the series table once (tags that match the message's topic, names of bounded
length that line protocol can carry, known measurement and field) and on the columns
vectorized (a GOOD sample's value finite, timestamp within the configured bounds, the future
skew and the retention window), so a 5,000-sample batch costs microseconds. A refusal is a
:class:`Reject`: a short code (a bounded metric label) and a sentence naming the series and
the rule, with the rows it covers.

A non-GOOD sample may lack a finite value (an OPC UA read that failed has none): it is routed to
``sample_quality`` (:func:`plantmrv.qualityrouting.with_quality_series`), not refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.limits import DEFAULT_LIMITS
from plantmrv.lineprotocol import LineProtocolError, series_prefix
from plantmrv.timebounds import DEFAULT_BOUNDS, TimeBounds, iso

#: reason codes (metric label values), in the order the checks run
REASON_CODES = (
    "too_large",
    "too_deep",
    "too_many_series",
    "too_many_tags",
    "decode",
    "topic_mismatch",
    "no_mapping",
    "json_missing",
    "json_type",
    "json_timestamp",
    "name_too_long",
    "illegal_name",
    "unknown_measurement",
    "unknown_field",
    "not_finite",
    "timestamp_range",
    "future_timestamp",
    "too_old",
    "influx_rejected",
    "internal_error",
)


@dataclass
class Reject:
    code: str
    detail: str
    rows: np.ndarray  # indices into the validated batch

    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


def topic_verdict(s: Series, topic_ids: tuple[str, str]) -> tuple[str, str] | None:
    """A gateway may send only its own site's samples: ``site`` must be the topic's site, and a
    ``gateway`` tag the topic's gateway (``topic_ids`` = (site, gateway) of the topic)."""
    site, gateway = topic_ids
    tags = dict(s.tags)
    if tags.get("site") != site:
        got = f"site={tags['site'][:64]!r}" if "site" in tags else "no site tag"
        return "topic_mismatch", f"series {s.key()[:200]!r} has {got}, but its topic is site {site!r}"
    if "gateway" in tags and tags["gateway"] != gateway:
        return "topic_mismatch", f"series {s.key()[:200]!r} has gateway={tags['gateway'][:64]!r}, but its topic is gateway {gateway!r}"
    return None


class Validator:
    """Validates batches against the configured schema, name length and time window."""

    def __init__(self, schema: dict[str, list[str]] | None, permissive: bool, max_future_skew_s: float, max_age_s: float | None,
                 bounds: TimeBounds = DEFAULT_BOUNDS, max_name_chars: int = DEFAULT_LIMITS.max_name_chars):
        self.schema = {m: frozenset(f) for m, f in (schema or {}).items()}
        self.permissive = permissive
        self.max_future_skew_ns = int(max_future_skew_s * 1e9)
        self.max_age_ns = int(max_age_s * 1e9) if max_age_s else None
        self.bounds = bounds
        self.max_name_chars = max_name_chars
        self._series_cache: dict[Series, tuple[str, str] | None] = {}
        # a gateway sends one table again and again: (table, topic ids, verdicts) of the last one
        self._last_table: tuple[list[Series], tuple | None, list] = ([], None, [])

    def _check_series(self, s: Series) -> tuple[str, str] | None:
        try:
            return self._series_cache[s]
        except KeyError:
            pass
        verdict = None
        longest = max([s.measurement, s.field, *(x for kv in s.tags for x in kv)], key=len)
        if len(longest) > self.max_name_chars:
            verdict = ("name_too_long", f"{longest[:40]!r}... of {len(longest)} characters exceeds the limit of {self.max_name_chars} "
                                        f"(ingest.validation.limits.max_name_chars) in series {s.key()[:120]!r}...")
        if verdict is None:
            try:
                series_prefix(s)
            except LineProtocolError as exc:
                verdict = ("illegal_name", str(exc))
        if verdict is None and not self.permissive:
            fields = self.schema.get(s.measurement)
            if fields is None:
                verdict = ("unknown_measurement", f"measurement {s.measurement!r} is not in ingest.validation.schema (series {s.key()!r})")
            elif s.field not in fields:
                verdict = ("unknown_field", f"field {s.field!r} is not a field of {s.measurement!r} in ingest.validation.schema (series {s.key()!r})")
        if len(self._series_cache) < 100_000:
            self._series_cache[s] = verdict
        return verdict

    def _verdicts(self, table: list[Series], topic_ids: tuple[str, str] | None) -> list[tuple[str, str] | None]:
        last_table, last_ids, last_verdicts = self._last_table
        if table is last_table and topic_ids == last_ids and len(table) == len(last_verdicts):
            return last_verdicts
        if topic_ids is None:
            verdicts = [self._check_series(s) for s in table]
        else:
            verdicts = [topic_verdict(s, topic_ids) or self._check_series(s) for s in table]
        self._last_table = (table, topic_ids, verdicts)
        return verdicts

    def validate(self, batch: SampleBatch, now_ns: int, topic_ids: tuple[str, str] | None = None) -> tuple[SampleBatch, list[Reject]]:
        """Split ``batch`` into its valid rows and the refused ones (grouped by reason).

        ``topic_ids``: (site, gateway) of the gateway topic the batch came on; its series must
        carry that site (and that gateway, where they have a ``gateway`` tag).
        """
        n = len(batch)
        if n == 0:
            return batch, []
        rejects: list[Reject] = []
        bad = np.zeros(n, dtype=bool)
        verdicts = self._verdicts(batch.table, topic_ids)
        table_bad = any(v is not None for v in verdicts)  # also unreferenced rows of the table: they must not reach the encoder
        if table_bad:
            bad_series = np.array([v is not None for v in verdicts])
            row_bad = bad_series[batch.series]
            for sid in np.unique(batch.series[row_bad]):
                rows = np.flatnonzero(batch.series == sid)
                code, detail = verdicts[sid]
                rejects.append(Reject(code, f"{detail}; {len(rows)} samples", rows))
            bad |= row_bad
        checks = [
            ("not_finite", ~np.isfinite(batch.value) & (batch.quality == Quality.GOOD), "value of a GOOD sample is NaN or infinite"),
            ("timestamp_range", self.bounds.outside(batch.ts_ns),
             f"timestamp outside {self.bounds.describe()} (ingest.validation.min_timestamp, max_timestamp)"),
            (
                "future_timestamp",
                batch.ts_ns > now_ns + self.max_future_skew_ns,
                f"timestamp more than {self.max_future_skew_ns / 1e9:g} s ahead of ingest's clock",
            ),
        ]
        if self.max_age_ns is not None:
            checks.append(
                ("too_old", batch.ts_ns < now_ns - self.max_age_ns, f"timestamp older than the retention window of {self.max_age_ns / 1e9:g} s")
            )
        for code, mask, what in checks:
            mask = mask & ~bad
            if mask.any():
                rows = np.flatnonzero(mask)
                first = int(rows[0])
                rejects.append(
                    Reject(
                        code,
                        f"{what}: {len(rows)} samples (first: series {batch.table[batch.series[first]].key()!r} "
                        f"at {iso(int(batch.ts_ns[first]))} value {float(batch.value[first])!r})",
                        rows,
                    )
                )
                bad |= mask
        if not bad.any():
            return (batch.compact() if table_bad else batch), []
        return batch.take(np.flatnonzero(~bad)).compact(), rejects  # compact: refused series leave the table too


def parse_go_duration_s(text: str) -> float | None:
    """InfluxDB's retention duration (``168h0m0s``; ``0s`` is INF) in seconds; None for INF."""
    import re

    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    return total or None
