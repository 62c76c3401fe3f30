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
QUALITY_FIELDS = ("value", "quality", "status_code")

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


def _field_key(series: Series) -> str:
    """The escaped field key of ``series``, checked."""
    _check_name(series.field, "field key", series)
    if series.field == "time":
        raise LineProtocolError(f"'time' is reserved in InfluxDB and cannot be a field or tag key (series {series.key()!r})")
    return _escape(series.field, ",= ")


def series_prefix(series: Series) -> bytes:
    """``measurement,tags field=`` for one series, escaped."""
    return (series_key(series) + " " + _field_key(series) + "=").encode("utf-8")


# --------------------------------------------------------------------------- number rendering

_INT_POW10 = np.array([10**i for i in range(19)], dtype=np.int64)
_POW10_ALL = 10.0 ** np.arange(0, 23)  # exact powers of ten as float64
_NEG = 4
_LOG10_2 = 0.30102999566398120
_POW10_SIGNED = 10.0 ** np.arange(-_NEG, 18)  # index i + _NEG holds 10**i (nearest float for i < 0)


def _write_digits(rows: np.ndarray, n: np.ndarray) -> None:
    """ASCII digits of non-negative int64 ``n`` (< 10**len(rows)) into ``rows``: row j is the j-th digit.

    Each row is a contiguous vector over all values. ``n`` is cut into 9-digit uint32 parts;
    division of those by a constant is what numpy vectorizes best.
    """
    width = len(rows)
    if width <= 9:
        parts = [n.astype(np.uint32)]
    else:
        high, low = np.divmod(n, 10**9)
        parts = [low.astype(np.uint32)]
        if width > 18:
            top, mid = np.divmod(high, 10**9)
            parts += [mid.astype(np.uint32), top.astype(np.uint32)]
        else:
            parts.append(high.astype(np.uint32))
    row = width - 1
    ten = np.uint32(10)
    for part in parts:
        for _ in range(9):
            if row < 0:
                break
            q = part // ten
            rows[row] = part - q * ten
            part = q
            row -= 1
    rows += np.uint8(ord("0"))


def _count_digits(n: np.ndarray) -> tuple[np.ndarray, int]:
    """Decimal digits of every non-negative int64 in ``n`` (0 has one), and their maximum."""
    width = len(str(int(n.max()))) if len(n) else 1
    count = np.ones(len(n), dtype=np.uint8)
    for power in _INT_POW10[1:width]:
        count += n >= power
    return count, width


def _render_decimal(n_abs: np.ndarray, decimals: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Byte matrix of ``[-]n_abs / 10**decimals`` in positional notation, NUL where no character.

    Laid out as sign, integer digits (right-aligned), point and fraction digits (left-aligned),
    built row by row in a transposed matrix so that every vector operation is contiguous;
    the transposed view is returned (the caller copies it once into the line matrix).
    """
    rows = len(n_abs)
    if rows == 0:
        return np.zeros((0, 1), dtype=np.uint8)
    int_part = n_abs // np.take(_INT_POW10, decimals)
    frac_part = n_abs - int_part * np.take(_INT_POW10, decimals)
    int_digits, int_width = _count_digits(int_part)
    frac_width = int(decimals.max())
    sign_width = int(negative.any())
    out = np.empty((sign_width + int_width + (frac_width > 0) + frac_width, rows), dtype=np.uint8)
    if sign_width:
        np.multiply(negative, ord("-"), out=out[0], casting="unsafe")
    ints = out[sign_width : sign_width + int_width]
    _write_digits(ints, int_part)
    if int_width > 1:  # leading zeros are no characters; the last integer digit always stays
        for j in range(int_width - 1):
            ints[j] *= int_digits >= int_width - j
    if frac_width:
        point = sign_width + int_width
        k8 = decimals.astype(np.uint8)
        np.multiply(k8 > 0, ord("."), out=out[point], casting="unsafe")
        fracs = out[point + 1 :]
        _write_digits(fracs, frac_part * np.take(_INT_POW10, frac_width - decimals))
        for j in range(frac_width):  # decimals beyond k are no characters
            fracs[j] *= k8 > j
    return out.T


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp split: x == hi + lo with both halves of 26 bits, so their products are exact."""
    t = 134217729.0 * x  # 2**27 + 1
    hi = t - (t - x)
    return hi, x - hi


_POW10_HI, _POW10_LO = _split(_POW10_ALL)


def _round_exact(a: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """round-half-even(a * 10**k) as int64, exact (for a * 10**k < 2**63), and n - a * 10**k.

    a * 10**k is formed exactly as hi + lo (Dekker's product; no FMA needed). Selections are
    arithmetic, not np.where: with unpredictable masks that is several times faster. Arrays
    are updated in place where they can be: fewer live temporaries, fewer fresh pages.
    """
    b_hi, b_lo = np.take(_POW10_HI, k), np.take(_POW10_LO, k)
    hi = a * np.take(_POW10_ALL, k)
    a_hi, a_lo = _split(a)
    # lo = ((a_hi * b_hi - hi) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo, in this order
    lo = a_hi * b_hi
    lo -= hi
    lo += np.multiply(a_hi, b_lo, out=a_hi)
    lo += np.multiply(a_lo, b_hi, out=b_hi)
    lo += np.multiply(a_lo, b_lo, out=a_lo)
    h_int = np.floor(hi)
    t = np.subtract(hi, h_int, out=hi)
    t += lo  # the rest of the product, |t| < 2
    m = np.rint(t, out=lo)
    n = h_int.astype(np.int64)
    n += m.astype(np.int64)
    dist = np.subtract(m, t, out=t)
    ties = np.flatnonzero(np.abs(dist, out=m) == 0.5)
    if len(ties):  # rint made m even; half-even is about n
        odd = ties[(n[ties] & 1) == 1]
        step = np.sign(dist[odd])
        n[odd] -= step.astype(np.int64)
        dist[odd] -= step
    return n, dist


def _fewest_decimals(a: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Smallest k <= ``upper`` with ``rint(a * 10**k) / 10**k == a`` (``upper`` is known to pass).

    Binary search over k, all values at once (or every k at once for a few values); passing is
    monotone in k while ``a * 10**k`` stays below 2**53, where IEEE division being correctly
    rounded makes the check exact.
    """
    if len(a) * 17 <= 65_536:  # few values: test every k at once (fewer numpy calls than the search)
        p = _POW10_ALL[:17]
        passed = (np.rint(a[:, None] * p) / p == a[:, None]) & (np.arange(17) <= upper[:, None])
        return np.argmax(passed, axis=1).astype(np.int64)
    lo = np.zeros(len(a), dtype=np.int64)  # every k < lo fails
    hi = upper.astype(np.int64)  # hi passes
    while True:
        active = np.flatnonzero(lo < hi)
        if not len(active):
            return hi
        mid = (lo[active] + hi[active]) // 2
        p = np.take(_POW10_ALL, mid)
        sub = a[active]
        passed = np.rint(sub * p) / p == sub
        hi[active] = np.where(passed, mid, hi[active])
        lo[active] = np.where(passed, lo[active], mid + 1)


_EXPONENT_BITS = np.int64(0x7FF0000000000000)
_MANTISSA_BITS = np.int64(0x000FFFFFFFFFFFFF)


def _float_gap(a: np.ndarray, upward: np.ndarray) -> np.ndarray:
    """Distance from normal positive ``a`` to the next float up (``upward``) or down, from its bits.

    Down from a power of two the gap is half as wide. (np.spacing and np.nextafter are several
    times slower.)
    """
    bits = a.view(np.int64)
    ulp = ((bits & _EXPONENT_BITS) - np.int64(52 << 52)).view(np.float64)
    at_power_of_two = (bits & _MANTISSA_BITS) == 0
    return ulp * (1.0 - 0.5 * (at_power_of_two & ~upward))


def _sixteen_or_seventeen(a: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(decimals, integer) of the shortest 16- or 17-significant-digit form of ``a`` (10**e <= a < 10**(e+1)).

    17 digits always round-trip; they are rounded exactly (double-double product) with their
    remainder, from which the 16-digit rounding and its distance follow without a second
    product. 16 digits are used when they lie within half the gap to the neighbouring float.
    """
    k17 = 16 - e
    n17, d17 = _round_exact(a, k17)  # d17 = n17 - a * 10**k17
    q = n17 // 10
    f = (n17 - q * 10) - d17  # 10 * (a * 10**(k17-1) - q), in [-0.5, 9.5]
    up = (f > 5) | ((f == 5) & (q & 1).astype(bool))
    dist16 = up - f / 10  # n16 - a * 10**(k17-1)
    fits16 = np.abs(dist16) < 0.5 * _float_gap(a, dist16 > 0) * np.take(_POW10_ALL, k17 - 1) * (1 - 1e-12)
    k = k17 - fits16
    n = n17 + fits16 * (q + up - n17)
    _strip_trailing_zeros(n, k)
    return k, n


def _strip_trailing_zeros(n: np.ndarray, k: np.ndarray) -> None:
    """In place: ``n / 10**k`` without trailing zero decimals (1.50 is written 1.5)."""
    for _ in range(17):
        strip = np.flatnonzero((n - n // 10 * 10 == 0) & (k > 0))
        if not len(strip):
            return
        n[strip] //= 10
        k[strip] -= 1


def _exp10_estimate(a: np.ndarray) -> np.ndarray:
    """floor(log10(a)) from the binary exponent, at most one too low (np.log10 is many times slower)."""
    return np.floor((((a.view(np.int64) >> 52) & 0x7FF) - 1023) * _LOG10_2)


def _decimal_exponent(a: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """e with 10**e <= a < 10**(e+1) for 0.01 <= a < 1e16, from an estimate at most one too low."""
    e = estimate.astype(np.int64)
    e += a >= np.take(_POW10_SIGNED, e + 1 + _NEG)
    return e


def shortest_decimals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For finite ``values``: (decimals k, integer round(|v| * 10**k), ok).

    First the 15-significant-digit form is tried (its integer is below 10**15 < 2**53, so the
    round trip check by division is exact); values that pass (clean decimals: PLC scalings,
    rounded set points) get the fewest decimals (:func:`_fewest_decimals`). The others need 16 or 17
    digits (:func:`_sixteen_or_seventeen`).
    ``ok`` is False only outside 0.01 <= |v| < 1e16 without a short form (those use repr).
    """
    a = np.abs(values)
    n = len(a)
    exp10 = _exp10_estimate(a)
    k15 = np.clip(14 - exp10, 0, 16).astype(np.int64)
    p15 = np.take(_POW10_ALL, k15)
    with np.errstate(over="ignore"):
        scaled = a * p15
    short = (scaled < _EXACT_LIMIT) & (np.rint(scaled) / p15 == a)
    rest_mask = ~short & (a >= 0.01) & (a < 1e16)
    ok = short | rest_mask
    rest_count = int(np.count_nonzero(rest_mask))
    if rest_count > n // 2:  # mostly full-precision data: compute for all, then correct the others
        others = np.flatnonzero(~rest_mask)
        safe = a.copy()
        safe[others] = 1 / 3  # a stand-in with no trailing zeros to strip
        k_out, int_out = _sixteen_or_seventeen(safe, _decimal_exponent(safe, _exp10_estimate(safe)))
        k_out[others] = 0
        int_out[others] = 0
    else:
        k_out = np.zeros(n, dtype=np.int64)
        int_out = np.zeros(n, dtype=np.int64)
        rest = np.flatnonzero(rest_mask)
        if len(rest):
            sub = a[rest]
            k_out[rest], int_out[rest] = _sixteen_or_seventeen(sub, _decimal_exponent(sub, exp10[rest]))
    idx = np.flatnonzero(short)
    if len(idx):
        sub = a[idx]
        k = _fewest_decimals(sub, k15[idx])
        k_out[idx] = k
        int_out[idx] = np.rint(sub * np.take(_POW10_ALL, k)).astype(np.int64)
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
            scaled = np.rint(np.abs(values) * np.take(_POW10_ALL, k))
        ok = scaled < _EXACT_LIMIT
        n_abs = np.where(ok, scaled, 0).astype(np.int64)
        _strip_trailing_zeros(n_abs, k)
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


_FEW = 256  # below this many values, per-call overheads of numpy outweigh vectorization


def _runs(n: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(first index of each run of equal values, run number of every element), or None when runs are short."""
    if len(n) < 2:
        return None
    starts = np.flatnonzero(np.concatenate([[True], n[1:] != n[:-1]]))
    if len(starts) >= len(n) // 2:
        return None
    return starts, np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(n))))


def render_ints(n: np.ndarray, before: bytes = b"", after: bytes = b"") -> np.ndarray:
    """Byte matrix of ``before + str(n) + after`` for int64 ``n``, NUL-padded.

    Runs of equal values (one scan's timestamps) render once.
    """
    n = np.asarray(n, dtype=np.int64)
    runs = _runs(n)
    if runs is not None:
        starts, run = runs
        return np.take(render_ints(n[starts], before, after), run, axis=0)
    if len(n) <= _FEW:  # a few values (one block's distinct timestamps): Python formats them faster
        texts = [b"%s%d%s" % (before, v, after) for v in n.tolist()]
        width = max(map(len, texts))
        return np.frombuffer(np.array(texts, dtype=f"S{width}").tobytes(), dtype=np.uint8).reshape(len(n), width)
    negative = n < 0
    n_abs = np.where(negative, -n, n)  # int64 min has no positive counterpart; timestamps never reach it
    digits = _render_decimal(n_abs, np.zeros(len(n), dtype=np.int64), negative)
    if not before and not after:
        return np.ascontiguousarray(digits)
    out = np.empty((len(n), len(before) + digits.shape[1] + len(after)), dtype=np.uint8)
    out[:, : len(before)] = np.frombuffer(before, dtype=np.uint8)
    out[:, len(before) : len(before) + digits.shape[1]] = digits
    out[:, len(before) + digits.shape[1] :] = np.frombuffer(after, dtype=np.uint8)
    return out


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

    def add_lines(self, rows: np.ndarray, max_lines: int) -> None:
        """Append ``rows`` (one line each, NUL-padded) as bodies of at most ``max_lines`` lines."""
        for first in range(0, len(rows), max_lines):
            lines = rows[first : first + max_lines]
            # NUL marks "no character here" (names with NUL are refused): one C-speed pass removes them
            self.bodies.append(lines.tobytes().translate(None, b"\0"))
            self.line_counts.append(len(lines))
            self.lines += len(lines)


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
                vchars = _pad_to(vchars, width)
                vchars[fixed] = _pad_to(fc, width)
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


def encode_batch(batch: SampleBatch, max_lines: int = MAX_LINES_PER_BODY) -> EncodedBodies:
    """Encode ``batch`` into ``/write`` bodies of at most ``max_lines`` lines."""
    return LineProtocolEncoder(max_lines).encode(batch)


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
