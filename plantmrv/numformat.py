"""Vectorized decimal rendering of float64 and int64 arrays into byte matrices (one row a value).

What the line-protocol encoders (:mod:`plantmrv.lineprotocol`) write values and timestamps
with: every number of a block at once, as ASCII digits in a NUL-padded ``uint8`` matrix the
caller copies into its lines, without a Python object per value.

Floats are written with the *shortest* decimal that parses back to the same float64 (as
Python's ``repr``): for each value the smallest number of decimals ``k`` with
``rint(|v| * 10**k) / 10**k == |v|`` is found, which is exact because the integer is below
2**53 and IEEE division is correctly rounded. Values that need 17 significant digits or lie
outside that range fall back to numpy's own shortest repr (Dragon4). Non-finite values have no
decimal form: callers leave them out first.
"""

from __future__ import annotations

import numpy as np

_EXACT_LIMIT = float(2**53)

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
        chars = pad_to(chars, max(width, chars.shape[1]))
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


def pad_to(chars: np.ndarray, width: int) -> np.ndarray:
    """``chars`` with NUL columns added on the right up to ``width`` (unchanged if as wide already)."""
    pad = width - chars.shape[1]
    return np.pad(chars, ((0, 0), (0, pad))) if pad > 0 else chars
