"""Vectorized InfluxDB line-protocol encoder for :class:`~plantmrv.batch.SampleBatch`.

One line per sample: ``<measurement>[,<tag>=<value>...] <field>=<float> <ts_ns>``. InfluxDB
merges the fields of one series and timestamp, so nothing is gained by grouping fields,
and one line per sample keeps the encoder free of Python loops over samples: the series table
(small) is escaped once in Python; values and timestamps are rendered to digits with numpy and
the lines are assembled by masking a byte matrix.

Floats are written with the *shortest* decimal that parses back to the same float64
(:mod:`plantmrv.numformat`). NaN and infinities have no line-protocol form: they are dropped and
counted. The encoder writes the samples it is given: which measurement a non-GOOD sample goes
to is decided before, by :func:`plantmrv.qualityrouting.with_quality_series`.

Escaping follows the line-protocol reference: measurement escapes ``,`` and space; tag keys,
tag values and field keys escape ``,``, ``=`` and space. Backslashes are written as they are:
InfluxDB 1.x keeps ``\\\\`` as two characters (measured on 1.6), and 2.x/3.x read a lone
backslash literally. A backslash just before ``,``, ``=``, space or at the end of a name cannot be
written so that 1.x reads it back, nor can a newline or an empty key: such series are refused
with :class:`LineProtocolError` naming the series. Empty tag values are omitted (InfluxDB does
not store them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from plantmrv.batch import SampleBatch, Series
from plantmrv.numformat import pad_to, render_floats, render_ints

MAX_LINES_PER_BODY = 5000

_BAD_BACKSLASH = re.compile(r"\\([,= ]|$)")


class LineProtocolError(ValueError):
    """A series that line protocol cannot express (names the series and the reason)."""


def _escape(text: str, specials: str) -> str:
    out = text
    for ch in specials:
        out = out.replace(ch, "\\" + ch)
    return out


def _check_name(text: str, what: str, series: Series) -> None:
    if text == "":
        raise LineProtocolError(f"{what} is empty in series {series.key()!r}")
    if "\0" in text:
        raise LineProtocolError(f"{what} {text!r} contains a NUL character (series {series.key()!r})")
    if "\n" in text or "\r" in text:
        raise LineProtocolError(f"{what} {text!r} contains a newline, which line protocol cannot carry (series {series.key()!r})")
    if _BAD_BACKSLASH.search(text):
        raise LineProtocolError(
            f"{what} {text!r} has a backslash before ',', '=', space or at its end, which InfluxDB 1.x "
            f"cannot read back (series {series.key()!r})"
        )


def series_key(series: Series) -> str:
    """``measurement,tag=value,...`` of a series (the part before the fields), escaped and checked."""
    _check_name(series.measurement, "measurement", series)
    if any(k == "time" for k, _ in series.tags):
        raise LineProtocolError(f"'time' is reserved in InfluxDB and cannot be a tag key (series {series.key()!r})")
    if series.measurement.startswith("#"):
        raise LineProtocolError(f"measurement {series.measurement!r} starts with '#', which line protocol reads as a comment")
    parts = [_escape(series.measurement, ", ")]
    for key, value in sorted(series.tags):
        _check_name(key, "tag key", series)
        if value == "":
            continue
        _check_name(value, f"tag {key} value", series)
        parts.append(f"{_escape(key, ',= ')}={_escape(value, ',= ')}")
    return ",".join(parts)


def _field_key(series: Series) -> str:
    """The escaped field key of ``series``, checked."""
    _check_name(series.field, "field key", series)
    if series.field == "time":
        raise LineProtocolError(f"'time' is reserved in InfluxDB and cannot be a field or tag key (series {series.key()!r})")
    return _escape(series.field, ",= ")


def series_prefix(series: Series) -> bytes:
    """``measurement,tags field=`` for one series, escaped."""
    return (series_key(series) + " " + _field_key(series) + "=").encode("utf-8")


# --------------------------------------------------------------------------- encoder


@dataclass
class EncodedBodies:
    """Line-protocol bodies of at most ``max_lines`` lines each."""

    bodies: list[bytes] = field(default_factory=list)
    lines: int = 0
    dropped_nonfinite: int = 0
    line_counts: list[int] = field(default_factory=list)

    def add_lines(self, rows: np.ndarray, max_lines: int) -> None:
        """Append ``rows`` (one line each, NUL-padded) as bodies of at most ``max_lines`` lines."""
        for first in range(0, len(rows), max_lines):
            lines = rows[first : first + max_lines]
            # NUL marks "no character here" (names with NUL are refused): one C-speed pass removes them
            self.bodies.append(lines.tobytes().translate(None, b"\0"))
            self.line_counts.append(len(lines))
            self.lines += len(lines)


class LineProtocolEncoder:
    """Encode batches; caches escaped series prefixes across calls (series tables repeat)."""

    def __init__(self, max_lines: int = MAX_LINES_PER_BODY, decimals_by_field: dict[str, int] | None = None):
        if not 1 <= max_lines <= MAX_LINES_PER_BODY:
            raise ValueError(f"max_lines must be 1..{MAX_LINES_PER_BODY}")
        self.max_lines = max_lines
        # rows rendered at once: numpy's per-call overhead needs tens of thousands to amortize
        self.block_rows = max_lines * 10
        self.decimals_by_field = decimals_by_field or {}
        self._prefix_cache: dict[Series, bytes] = {}
        self._last_prefixes: tuple[list[Series], np.ndarray | None] = ([], None)

    def _prefix_table(self, table: list[Series]) -> np.ndarray:
        last_table, last_matrix = self._last_prefixes
        if table is last_table and len(table) == len(last_matrix):  # one gateway's batches share one decoded table
            return last_matrix
        prefixes = []
        for s in table:
            p = self._prefix_cache.get(s)
            if p is None:
                p = series_prefix(s)
                if len(self._prefix_cache) < 100_000:
                    self._prefix_cache[s] = p
            prefixes.append(p)
        width = max((len(p) for p in prefixes), default=1)
        arr = np.array(prefixes, dtype=f"S{width}")
        matrix = np.frombuffer(arr.tobytes(), dtype=np.uint8).reshape(len(prefixes), width)
        self._last_prefixes = (table, matrix)
        return matrix

    def encode(self, batch: SampleBatch) -> EncodedBodies:
        """Bodies of one line per sample; a sample without a finite value is dropped and counted."""
        out = EncodedBodies()
        if not len(batch):
            return out
        finite = np.isfinite(batch.value)
        out.dropped_nonfinite = int((~finite).sum())
        if out.dropped_nonfinite:
            batch = batch.take(np.flatnonzero(finite))
        if not len(batch):
            return out
        prefix_mat = self._prefix_table(batch.table)
        decimals = None
        if self.decimals_by_field:
            per_series = np.array([self.decimals_by_field.get(s.field, -1) for s in batch.table], dtype=np.int64)
            if (per_series >= 0).any():
                decimals = per_series
        block = self.block_rows
        for start in range(0, len(batch), block):
            stop = min(start + block, len(batch))
            self._encode_block(batch, start, stop, prefix_mat, decimals, out)
        return out

    def _encode_block(self, batch, start, stop, prefix_mat, decimals, out: EncodedBodies) -> None:
        sid = batch.series[start:stop]
        values = batch.value[start:stop]
        vchars = render_floats(values)
        if decimals is not None:
            k = decimals[sid]
            fixed = np.flatnonzero(k >= 0)
            if len(fixed):
                fc = render_floats(values[fixed], k[fixed])
                width = max(fc.shape[1], vchars.shape[1])
                vchars = pad_to(vchars, width)
                vchars[fixed] = pad_to(fc, width)
        tail = render_ints(batch.ts_ns[start:stop], b" ", b"\n")
        rows = stop - start
        # one record per line (prefix, value, tail as fixed-width byte fields): whole-field copies
        widths = (prefix_mat.shape[1], vchars.shape[1], tail.shape[1])
        lines = np.empty(rows, dtype=[("prefix", f"V{widths[0]}"), ("value", f"V{widths[1]}"), ("tail", f"V{widths[2]}")])
        # taking into a contiguous array, then copying, beats numpy's buffered take into a strided field
        lines["prefix"] = np.take(prefix_mat.view(f"V{widths[0]}").ravel(), sid, mode="clip")
        lines.view(np.uint8).reshape(rows, -1)[:, widths[0] : widths[0] + widths[1]] = vchars
        lines["tail"] = tail.view(f"V{widths[2]}").ravel()
        out.add_lines(lines, self.max_lines)


def _constant_rows(text: bytes, rows: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text, dtype=np.uint8), (rows, len(text)))


def encode_wide(key: str, columns: dict[str, np.ndarray], ts_ns: np.ndarray, constant_fields: str = "",
                max_lines: int = MAX_LINES_PER_BODY) -> EncodedBodies:
    """Bodies of one multi-field line per row: ``key f1=v1,f2=v2,...[,constant_fields] ts``.

    For result tables (one row per interval, many float fields). ``key`` is an escaped series
    key (:func:`series_key`), ``columns`` float arrays by (unescaped) field name, and
    ``constant_fields`` ready line-protocol fields written on every line. A non-finite value
    leaves its field out of that line; a line left with no field at all is dropped and counted.
    """
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    labels = [(_field_key(Series(key, (), name)) + "=").encode() for name in columns]
    columns = [np.broadcast_to(np.asarray(col, dtype=np.float64), ts_ns.shape) for col in columns.values()]
    out = EncodedBodies()
    block = max_lines * 10  # bounded memory: a year of 1 min rows is ~250 MB as one matrix
    for start in range(0, len(ts_ns), block):
        part = [col[start : start + block] for col in columns]
        _encode_wide_block(key, labels, part, ts_ns[start : start + block], constant_fields, max_lines, out)
    return out


def _encode_wide_block(key: str, labels: list[bytes], columns: list[np.ndarray], ts_ns: np.ndarray,
                       constant_fields: str, max_lines: int, out: EncodedBodies) -> None:
    rows, ncols = len(ts_ns), len(columns)
    values = np.stack(columns, axis=1) if columns else np.zeros((rows, 0))
    present = np.isfinite(values)
    # a field takes a comma after it when a later field or the constant fields follow on its line
    later = np.flip(np.logical_or.accumulate(np.flip(present, axis=1), axis=1), axis=1)  # this or a later field
    followed = np.concatenate([later[:, 1:], np.zeros((rows, 1), dtype=bool)], axis=1) | bool(constant_fields)
    # every field of the block in one slot layout: label (NUL-padded), value, comma; one render call
    # for all values (per-call overheads dominate the few rows of a poll or a day's chunk)
    cells = np.flatnonzero(present.ravel())
    rendered = render_floats(values.ravel()[cells]) if len(cells) else np.zeros((0, 1), np.uint8)
    label_width, value_width = max(map(len, labels), default=0), rendered.shape[1]
    label_mat = np.zeros((ncols, label_width), dtype=np.uint8)
    for j, label in enumerate(labels):
        label_mat[j, : len(label)] = np.frombuffer(label, dtype=np.uint8)
    slots = np.zeros((rows * ncols, label_width + value_width + 1), dtype=np.uint8)
    slots[cells, :label_width] = np.take(label_mat, cells % max(ncols, 1), axis=0)
    slots[cells, label_width:-1] = rendered
    slots[:, -1] = (present & followed).ravel() * np.uint8(ord(","))
    parts = [_constant_rows((key + " ").encode(), rows), slots.reshape(rows, ncols * slots.shape[1])]
    if constant_fields:
        parts.append(_constant_rows(constant_fields.encode(), rows))
    parts.append(render_ints(ts_ns, b" ", b"\n"))
    chars = np.concatenate(parts, axis=1)
    keep = present.any(axis=1) | bool(constant_fields)
    dropped = int(rows - keep.sum())
    out.dropped_nonfinite += dropped
    out.add_lines(chars[keep] if dropped else chars, max_lines)


def event_line(measurement: str, tags: dict[str, str], fields: dict[str, object], ts_ns: int) -> str:
    """One line of a sparse event point (annotations, plans): tags escaped, empty tags left out,
    string fields quoted, floats in shortest form, ints as ``<n>i``, booleans as ``true``/``false``."""
    parts = [_escape(measurement, ", ")]
    for k, v in sorted(tags.items()):
        if v is None or str(v) == "":
            continue
        for text in (k, str(v)):
            if "\n" in text or "\r" in text:
                raise LineProtocolError(f"{measurement}: tag {k}={text!r} contains a newline")
        parts.append(f"{_escape(k, ',= ')}={_escape(str(v), ',= ')}")
    cols = []
    for k, v in fields.items():
        if v is None:
            continue
        if isinstance(v, bool):
            text = "true" if v else "false"
        elif isinstance(v, int):
            text = f"{v}i"
        elif isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                continue
            text = repr(v)
        else:
            text = '"' + str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
        cols.append(f"{_escape(k, ',= ')}={text}")
    if not cols:
        raise LineProtocolError(f"{measurement}: a point needs at least one field")
    return f"{','.join(parts)} {','.join(cols)} {int(ts_ns)}"
