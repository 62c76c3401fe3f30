"""Vectorized InfluxDB line-protocol encoder for :class:`~plantmrv.batch.SampleBatch`.

One line per sample: ``<measurement>[,<tag>=<value>...] <field>=<float> <ts_ns>``. InfluxDB
merges the fields of one series and timestamp, so nothing is gained by grouping fields,
and one line per sample keeps the encoder free of Python loops over samples: the series table
(small) is escaped once in Python; values and timestamps are rendered to digits with numpy and
the lines are assembled by masking a byte matrix.

Floats are written with the *shortest* decimal that parses back to the same float64 (as
Python's ``repr``): for each value the smallest number of decimals ``k`` with
``rint(|v| * 10**k) / 10**k == |v|`` is found, which is exact because the integer is below
2**53 and IEEE division is correctly rounded. Values that need 17 significant digits or lie
outside that range fall back to numpy's own shortest repr (Dragon4). NaN and infinities have no
line-protocol form: they are dropped and counted.

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

from plantmrv.batch import Quality, SampleBatch, Series

MAX_LINES_PER_BODY = 5000
QUALITY_MEASUREMENT = "sample_quality"

_POW10 = 10.0 ** np.arange(0, 18)
_EXACT_LIMIT = float(2**53)


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


def series_prefix(series: Series) -> bytes:
    """``measurement,tags field=`` for one series, escaped."""
    _check_name(series.field, "field key", series)
    if series.field == "time":
        raise LineProtocolError(f"'time' is reserved in InfluxDB and cannot be a field or tag key (series {series.key()!r})")
    return (series_key(series) + " " + _escape(series.field, ",= ") + "=").encode("utf-8")


# --------------------------------------------------------------------------- number rendering

_FRAC_DIGITS = 18  # the 17-digit path is limited to |v| >= 0.01, so k <= 18
_VALUE_DIGITS = 19  # n < 10**17, padded so that '0.' fits in front of 18 decimals
_INT_DIGITS = 19
_INT_POW10 = np.array([10**i for i in range(19)], dtype=np.int64)


def _digit_rows(n: np.ndarray, width: int) -> np.ndarray:
    """ASCII digits of non-negative int64 ``n`` as a (width, len(n)) array: row j is the j-th digit.

    ``n`` is cut into 9-digit uint32 parts; floor division of those by a constant is what numpy
    vectorizes best (``np.divmod`` on int64 is several times slower).
    """
    out = np.empty((width, len(n)), dtype=np.uint8)
    high, low = np.divmod(n, 10**9)
    parts = [low.astype(np.uint32)]
    if width > 9:
        top, mid = np.divmod(high, 10**9)
        parts += [mid.astype(np.uint32), top.astype(np.uint32)]
    row = width - 1
    for part in parts:
        for _ in range(9):
            if row < 0:
                break
            q = part // np.uint32(10)
            out[row] = part - q * np.uint32(10)
            part = q
            row -= 1
    out += ord("0")
    return out


def _count_digits(n: np.ndarray) -> np.ndarray:
    return np.searchsorted(_INT_POW10, n, side="right").clip(min=1)


def _render_decimal(n_abs: np.ndarray, decimals: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Byte matrix of ``[-]n_abs / 10**decimals`` in positional notation, NUL where no character.

    Built column by column (each column a contiguous vector over all values), skipping columns
    no value uses, then stacked.
    """
    width = _VALUE_DIGITS
    digits = _digit_rows(n_abs, width)
    point_col = width - decimals  # output column of the '.'; digits right of it shift by one
    first = np.minimum(width - _count_digits(n_abs), point_col - 1)  # keep >= 1 digit before '.'
    last = np.where(decimals > 0, width, width - 1)
    # select with uint8 arithmetic (wraps mod 256, exact here): several times faster than np.where
    cols = []
    if negative.any():
        cols.append(negative.astype(np.uint8) * np.uint8(ord("-")))
    dot = np.uint8(ord("."))
    for col in range(int(first.min()) if len(first) else 0, (int(last.max()) + 1) if len(last) else 0):
        left = digits[col] if col < width else digits[width - 1]
        right = digits[col - 1] if col else digits[0]
        char = right + (col < point_col).astype(np.uint8) * (left - right)
        at_point = (col == point_col).astype(np.uint8)
        char = char + at_point * (dot - char)
        cols.append(char * ((first <= col) & (col <= last)).astype(np.uint8))
    if not cols:
        return np.zeros((len(n_abs), 1), dtype=np.uint8)
    return np.stack(cols, axis=1)


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker's exact product: a * b == hi + lo exactly (no FMA needed)."""
    hi = a * b
    split = 134217729.0  # 2**27 + 1
    t = split * a
    a_hi = t - (t - a)
    a_lo = a - a_hi
    t = split * b
    b_hi = t - (t - b)
    b_lo = b - b_hi
    lo = ((a_hi * b_hi - hi) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return hi, lo


def _round_exact(a: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """round-half-even(a * 10**k) as int64, exact (for a * 10**k < 2**63), and n - a * 10**k."""
    hi, lo = _two_product(a, _POW10_ALL[k])
    h_int = np.floor(hi)
    t = (hi - h_int) + lo
    t_floor = np.floor(t)
    r = t - t_floor
    n = h_int.astype(np.int64) + t_floor.astype(np.int64)
    up = (r > 0.5) | ((r == 0.5) & (n % 2 == 1))
    return n + up, np.where(up, 1.0 - r, -r)


_POW10_ALL = 10.0 ** np.arange(0, 23)  # exact powers of ten as float64


def shortest_decimals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For finite ``values``: (decimals k, integer round(|v| * 10**k), ok).

    The fewest decimals whose integer is below 2**53 and converts back exactly (binary search
    over k; IEEE division is correctly rounded, so the check is exact); failing that,
    17 significant digits rounded exactly (double-double product), which always round-trip.
    ``ok`` is False only outside 0.01 <= |v| < 1e16 without a short form (those use repr).
    """
    a = np.abs(values)
    n = len(a)
    lo = np.zeros(n, dtype=np.int64)  # every k < lo fails
    bound = np.full(n, 17, dtype=np.int64)  # no k >= bound needs testing
    best = np.full(n, 17, dtype=np.int64)  # smallest k seen to pass (17: none)
    while True:
        active = lo < bound
        if not active.any():
            break
        mid = (lo + bound) // 2
        p = _POW10[mid]
        with np.errstate(over="ignore"):
            scaled = a * p
        in_range = scaled < _EXACT_LIMIT
        passed = active & in_range & (np.rint(scaled) / p == a)
        best = np.where(passed, mid, best)
        # out of range at mid means out of range for every larger k too
        bound = np.where(active & (passed | ~in_range), mid, bound)
        lo = np.where(active & in_range & ~passed, mid + 1, lo)
    hi = best
    ok = hi < 17
    k_out = np.where(ok, hi, 0)
    int_out = np.where(ok, np.rint(a * _POW10[k_out]), 0).astype(np.int64)
    rest = np.flatnonzero(~ok & (a >= 0.01) & (a < 1e16))
    if len(rest):
        sub = a[rest]
        exp10 = np.floor(np.log10(sub)).astype(np.int64)
        # 16 significant digits, when they still identify the float: |n - a*10**k| under half the gap
        # to the neighbouring float on that side (scaled by 10**k); else 17 digits, which always do.
        k = np.clip(15 - exp10, 0, _FRAC_DIGITS)
        n16, dist = _round_exact(sub, k)
        gap = np.where(dist > 0, np.nextafter(sub, np.inf) - sub, sub - np.nextafter(sub, 0))
        fits16 = np.abs(dist) < 0.5 * gap * (10.0 ** k) * (1 - 1e-12)
        n17 = n16
        k = k.copy()
        need17 = np.flatnonzero(~fits16)
        if len(need17):
            k[need17] = np.clip(16 - exp10[need17], 0, _FRAC_DIGITS)
            n17[need17], _ = _round_exact(sub[need17], k[need17])
        for _ in range(17):
            strip = (k > 0) & (n17 % 10 == 0)
            if not strip.any():
                break
            n17 = np.where(strip, n17 // 10, n17)
            k = np.where(strip, k - 1, k)
        k_out[rest], int_out[rest], ok[rest] = k, n17, True
    return k_out, int_out, ok


def render_floats(values: np.ndarray, decimals: np.ndarray | None = None) -> np.ndarray:
    """Byte matrix of finite ``values`` in shortest round-trip form (or fixed ``decimals``), NUL-padded."""
    values = np.asarray(values, dtype=np.float64)
    negative = np.signbit(values)
    if decimals is None:
        k, n_abs, ok = shortest_decimals(values)
    else:
        k = np.clip(np.asarray(decimals, dtype=np.int64), 0, 17)
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = np.rint(np.abs(values) * _POW10[k])
        ok = scaled < _EXACT_LIMIT
        n_abs = np.where(ok, scaled, 0).astype(np.int64)
        for _ in range(17):  # 1.50 is written 1.5
            strip = ok & (k > 0) & (n_abs % 10 == 0)
            if not strip.any():
                break
            n_abs = np.where(strip, n_abs // 10, n_abs)
            k = np.where(strip, k - 1, k)
    k = np.where(ok, k, 0)
    n_abs = np.where(ok, n_abs, 0)
    chars = _render_decimal(n_abs, k, negative)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        width = 24  # '-1.2345678901234567e-308' is the longest repr of a float64
        chars = _pad_to(chars, max(width, chars.shape[1]))
        text = values[bad].astype(f"S{chars.shape[1]}")
        chars[bad] = np.frombuffer(text.tobytes(), dtype=np.uint8).reshape(len(bad), chars.shape[1])
    return chars


def render_ints(n: np.ndarray) -> np.ndarray:
    """Byte matrix of int64 ``n``, NUL-padded; runs of equal values (one scan's timestamps) render once."""
    n = np.asarray(n, dtype=np.int64)
    if len(n) > 1:
        starts = np.flatnonzero(np.concatenate([[True], n[1:] != n[:-1]]))
        if len(starts) < len(n) // 2:
            chars = render_ints(n[starts])
            run = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(n))))
            return chars[run]
    negative = n < 0
    n_abs = np.where(negative, -n, n)  # int64 min has no positive counterpart; timestamps never reach it
    ndig = _count_digits(n_abs)
    skip = _INT_DIGITS - int(ndig.max()) if len(n) else 0
    digits = _digit_rows(n_abs, _INT_DIGITS)[skip:]
    digits[np.arange(skip, _INT_DIGITS)[:, None] < (_INT_DIGITS - ndig)[None, :]] = 0
    rows = [np.where(negative, np.uint8(ord("-")), np.uint8(0))] if negative.any() else []
    return np.ascontiguousarray(np.concatenate([np.stack(rows)] + [digits], axis=0).T if rows else digits.T)


def _pad_to(chars: np.ndarray, width: int) -> np.ndarray:
    pad = width - chars.shape[1]
    return np.pad(chars, ((0, 0), (0, pad))) if pad > 0 else chars


# --------------------------------------------------------------------------- encoder


@dataclass
class EncodedBodies:
    """Line-protocol bodies of at most ``max_lines`` lines each."""

    bodies: list[bytes] = field(default_factory=list)
    lines: int = 0
    dropped_nonfinite: int = 0
    line_counts: list[int] = field(default_factory=list)


def with_quality_series(batch: SampleBatch) -> SampleBatch:
    """Route samples per docs/data-model.md: BAD leaves the raw measurement, non-GOOD also go to ``sample_quality``."""
    q = batch.quality
    if not q.any():
        return batch
    raw = batch.take(np.flatnonzero(q < Quality.BAD))
    flagged = np.flatnonzero(q != Quality.GOOD)
    used = np.unique(batch.series[flagged])
    qtable: list[Series] = []
    value_id = {}
    quality_id = {}
    for sid in used:
        s = batch.table[sid]
        tags = dict(s.tags)
        tags["source"] = s.measurement
        tags["field"] = s.field
        value_id[sid] = len(qtable)
        qtable.append(Series.of(QUALITY_MEASUREMENT, "value", **tags))
        quality_id[sid] = len(qtable)
        qtable.append(Series.of(QUALITY_MEASUREMENT, "quality", **tags))
    lut_v = np.zeros(len(batch.table), dtype=np.int32)
    lut_q = np.zeros(len(batch.table), dtype=np.int32)
    lut_v[list(value_id)] = list(value_id.values())
    lut_q[list(quality_id)] = list(quality_id.values())
    s = batch.series[flagged]
    qbatch_values = SampleBatch(qtable, lut_v[s], batch.ts_ns[flagged], batch.value[flagged])
    qbatch_codes = SampleBatch(qtable, lut_q[s], batch.ts_ns[flagged], batch.quality[flagged].astype(np.float64))
    return SampleBatch.concat([raw, qbatch_values, qbatch_codes])


class LineProtocolEncoder:
    """Encode batches; caches escaped series prefixes across calls (series tables repeat)."""

    def __init__(self, max_lines: int = MAX_LINES_PER_BODY, decimals_by_field: dict[str, int] | None = None):
        if not 1 <= max_lines <= MAX_LINES_PER_BODY:
            raise ValueError(f"max_lines must be 1..{MAX_LINES_PER_BODY}")
        self.max_lines = max_lines
        self.decimals_by_field = decimals_by_field or {}
        self._prefix_cache: dict[Series, bytes] = {}

    def _prefix_table(self, table: list[Series]) -> np.ndarray:
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
        return np.frombuffer(arr.tobytes(), dtype=np.uint8).reshape(len(prefixes), width)

    def encode(self, batch: SampleBatch, route_quality: bool = True) -> EncodedBodies:
        if route_quality:
            batch = with_quality_series(batch)
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
        block = self.max_lines * 10
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
                vchars = _pad_to(vchars, width)
                vchars[fixed] = _pad_to(fc, width)
        tchars = render_ints(batch.ts_ns[start:stop])
        rows = stop - start
        space = np.full((rows, 1), ord(" "), dtype=np.uint8)
        newline = np.full((rows, 1), ord("\n"), dtype=np.uint8)
        chars = np.concatenate([np.take(prefix_mat, sid, axis=0), vchars, space, tchars, newline], axis=1)
        # NUL marks "no character here" (names with NUL are refused): one C-speed pass removes them
        data = chars.tobytes().translate(None, b"\0")
        if rows <= self.max_lines:
            ends = [len(data)]
        else:
            newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
            ends = [int(newlines[i]) + 1 for i in range(self.max_lines - 1, rows, self.max_lines)]
            if ends[-1] != len(data):
                ends.append(len(data))
        begin = 0
        for first, end in zip(range(0, rows, self.max_lines), ends):
            out.bodies.append(data[begin:end])
            out.line_counts.append(min(self.max_lines, rows - first))
            out.lines += out.line_counts[-1]
            begin = end


def encode_batch(batch: SampleBatch, max_lines: int = MAX_LINES_PER_BODY) -> EncodedBodies:
    """Encode ``batch`` into ``/write`` bodies of at most ``max_lines`` lines."""
    return LineProtocolEncoder(max_lines).encode(batch)
