"""Line-protocol encoder: escaping, float round trip, chunking, and a real influxd round trip."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantmrv.batch import Quality, SampleBatch, Series
from plantmrv.influxwrite import encode_batch, write_batch
from plantmrv.lineprotocol import (
    MAX_LINES_PER_BODY,
    LineProtocolEncoder,
    LineProtocolError,
    encode_wide,
    series_prefix,
)
from plantmrv.numformat import render_floats


def _render_one(v: float) -> str:
    return render_floats(np.array([v]))[0].tobytes().replace(b"\0", b"").decode()


def _sig_digits(text: str) -> int:
    mantissa = text.lower().split("e")[0].lstrip("-").replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) or 1


# A deliberately plain reader of one line, written from the line-protocol reference, to check the encoder.
def parse_line(line: str) -> tuple[str, dict[str, str], str, str, int]:
    def split_unescaped(text: str, sep: str, maxsplit: int = -1) -> list[str]:
        parts, cur, i = [], "", 0
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text) and text[i + 1] in ",= ":
                cur += ch + text[i + 1]
                i += 2
                continue
            if ch == sep and (maxsplit < 0 or len(parts) < maxsplit):
                parts.append(cur)
                cur = ""
            else:
                cur += ch
            i += 1
        parts.append(cur)
        return parts

    def unescape(text: str) -> str:
        return re.sub(r"\\([,= ])", r"\1", text)

    key, fields, ts = split_unescaped(line, " ")
    m_and_tags = split_unescaped(key, ",")
    tags = dict(tuple(unescape(x) for x in split_unescaped(t, "=", 1)) for t in m_and_tags[1:])
    fkey, fval = split_unescaped(fields, "=", 1)
    return unescape(m_and_tags[0]), tags, unescape(fkey), fval, int(ts)


def test_shortest_repr_for_common_values():
    cases = {0.0: "0", 1.0: "1", -1.5: "-1.5", 0.1: "0.1", 103.7719066328018: "103.7719066328018", 1e20: "1e+20"}
    for value, text in cases.items():
        assert _render_one(value) == text
    assert _render_one(-0.0) == "-0"
    assert float(_render_one(0.1 + 0.2)) == 0.1 + 0.2


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_float_round_trips_exactly(value):
    text = _render_one(value)
    back = float(text)
    assert back == value and math.copysign(1, back) == math.copysign(1, value), (value, text)
    # as short as Python's repr (shortest round-trip) in significant digits
    assert _sig_digits(text) <= _sig_digits(repr(value)), (value, text, repr(value))


def test_vectorized_round_trip_on_a_million_mixed_values():
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.normal(100, 30, 300_000),
            rng.normal(0, 1, 300_000) * 10.0 ** rng.integers(-12, 18, 300_000),
            rng.random(200_000).astype(np.float32).astype(np.float64),
            np.round(rng.normal(0, 1000, 200_000), 3),
        ]
    )
    chars = render_floats(values)
    lengths = np.count_nonzero(chars, axis=1)
    flat = chars.tobytes().replace(b"\0", b"").decode()
    ends = np.cumsum(lengths)
    starts = ends - lengths
    parsed = np.array([float(flat[a:b]) for a, b in zip(starts, ends)])
    assert np.array_equal(parsed, values)


def test_nan_and_inf_are_dropped_and_counted():
    s = Series.of("pump", "power_kw", site="danang", asset="P1")
    batch = SampleBatch([s], [0, 0, 0, 0], [1, 2, 3, 4], [1.0, np.nan, np.inf, -np.inf])
    out = encode_batch(batch)
    assert out.dropped_nonfinite == 3
    assert out.lines == 1
    assert out.bodies == [b"pump,asset=P1,site=danang power_kw=1 1\n"]


def test_bodies_hold_at_most_5000_lines_and_split_on_line_boundaries():
    s = [Series.of("pv", f"f{i}", site="s", asset="a") for i in range(3)]
    n = 12_345
    batch = SampleBatch(s, np.arange(n) % 3, np.arange(n) * 1_000_000_000, np.arange(n) / 7)
    out = encode_batch(batch)
    assert out.lines == n
    assert [b.count(b"\n") for b in out.bodies] == [5000, 5000, 2345]
    assert all(b.endswith(b"\n") for b in out.bodies)
    lines = b"".join(out.bodies).decode().splitlines()
    assert len(lines) == n
    assert float(parse_line(lines[-1])[3]) == (n - 1) / 7
    assert len(LineProtocolEncoder(max_lines=100).encode(batch).bodies) == math.ceil(n / 100)
    with pytest.raises(ValueError):
        LineProtocolEncoder(max_lines=MAX_LINES_PER_BODY + 1)


def test_fixed_precision_per_field():
    s1 = Series.of("pump", "head_m", site="s", asset="a")
    s2 = Series.of("pump", "power_kw", site="s", asset="a")
    batch = SampleBatch([s1, s2], [0, 1], [1, 1], [12.345678, 1.0 / 3])
    out = LineProtocolEncoder(decimals_by_field={"head_m": 2}).encode(batch)
    assert out.bodies[0].decode().splitlines() == [
        "pump,asset=a,site=s head_m=12.35 1",
        f"pump,asset=a,site=s power_kw={1.0 / 3!r} 1",
    ]


def test_negative_and_pre_1970_timestamps():
    s = Series.of("m", "v", site="s")
    batch = SampleBatch([s, s], [0, 0], [-1_000_000_000, 0], [-2.5, 3.0])
    assert encode_batch(batch).bodies[0] == b"m,site=s v=-2.5 -1000000000\nm,site=s v=3 0\n"


def test_escaping_of_measurement_tags_and_field_keys():
    s = Series.of("my meas,x=y", "flow m3,h=1", **{"site id": "Hai Phong, VN", "k=v": "a=b"})
    prefix = series_prefix(s).decode()
    assert prefix == r"my\ meas\,x=y,k\=v=a\=b,site\ id=Hai\ Phong\,\ VN flow\ m3\,h\=1="
    line = prefix + "1 5"
    assert parse_line(line)[:3] == ("my meas,x=y", {"k=v": "a=b", "site id": "Hai Phong, VN"}, "flow m3,h=1")


@pytest.mark.parametrize(
    "series, fragment",
    [
        (Series.of("", "v", site="s"), "measurement is empty"),
        (Series.of("m", "", site="s"), "field key is empty"),
        (Series.of("m", "v", site="a\nb"), "newline"),
        (Series.of("m", "v", site="ends\\"), "backslash"),
        (Series.of("m", "v", site="a\\,b"), "backslash"),
        (Series.of("m", "time", site="s"), "'time' is reserved"),
        (Series.of("#m", "v", site="s"), "comment"),
        (Series.of("m", "v", site="a\0b"), "NUL"),
    ],
)
def test_series_that_line_protocol_cannot_carry_are_refused_by_name(series, fragment):
    with pytest.raises(LineProtocolError, match=re.escape(fragment)):
        series_prefix(series)


def test_empty_tag_values_are_omitted():
    assert series_prefix(Series.of("m", "v", site="s", asset="")) == b"m,site=s v="


def test_quality_routing_bad_leaves_raw_and_non_good_go_to_sample_quality():
    s = Series.of("pump", "flow_m3_per_h", site="danang", asset="P1")
    batch = SampleBatch([s], [0, 0, 0], [1, 2, 3], [10.0, 11.0, 12.0], [Quality.GOOD, Quality.UNCERTAIN, Quality.BAD])
    lines = encode_batch(batch).bodies[0].decode().splitlines()
    raw = [l for l in lines if l.startswith("pump,")]
    flagged = [parse_line(l) for l in lines if l.startswith("sample_quality,")]
    assert raw == ["pump,asset=P1,site=danang flow_m3_per_h=10 1", "pump,asset=P1,site=danang flow_m3_per_h=11 2"]
    tags = {"asset": "P1", "field": "flow_m3_per_h", "site": "danang", "source": "pump"}
    assert sorted((f[2], f[3], f[4]) for f in flagged) == [("quality", "1", 2), ("quality", "2", 3), ("value", "11", 2), ("value", "12", 3)]
    assert all(f[1] == tags for f in flagged)


tag_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\"), min_size=1, max_size=20
)


@settings(max_examples=300)
@given(measurement=tag_text.filter(lambda t: not t.startswith("#")), tag_value=tag_text, field=tag_text.filter(lambda t: t != "time"))
def test_escaping_round_trips_through_a_plain_parser(measurement, tag_value, field):
    s = Series.of(measurement, field, site=tag_value)
    line = encode_batch(SampleBatch([s], [0], [42], [1.25])).bodies[0].decode().rstrip("\n")
    assert parse_line(line) == (measurement, {"site": tag_value}, field, "1.25", 42)


HOSTILE_TAGS = ["a b", "a,b", "a=b", 'a"b', "a\\b", "日本語 ダナン", "x'y", " lead", "trail ", "=", ",", "tab\there", "emoji 💧", "a\\\\b"]


def test_hostile_names_round_trip_through_real_influxd(influx_db):
    table = [Series.of("plant meas,1", f"power kw,{i}=x", site=tag, asset=f"A{i}") for i, tag in enumerate(HOSTILE_TAGS)]
    n = len(table)
    batch = SampleBatch(table, np.arange(n), 1_700_000_000_000_000_000 + np.arange(n), np.arange(n) * 0.1 + 0.3)
    stats = write_batch(influx_db, batch)
    assert stats.lines == n
    results = influx_db.query('SELECT * FROM "plant meas,1" GROUP BY *')
    got = {}
    for r in results:
        cols = r.columns
        for j, t in enumerate(cols["time"]):
            for name, col in cols.items():
                if name != "time" and not (isinstance(col[j], float) and np.isnan(col[j])):
                    got[(r.tags["site"], name)] = (int(t), float(col[j]))
    expected = {(tag, f"power kw,{i}=x"): (1_700_000_000_000_000_000 + i, i * 0.1 + 0.3) for i, tag in enumerate(HOSTILE_TAGS)}
    assert got == expected


def test_encoder_round_trip_through_real_influxd_values_timestamps_tags(influx_db):
    rng = np.random.default_rng(3)
    table = [Series.of("pump", f, site="danang", asset=f"P{a}") for a in range(5) for f in ("flow_m3_per_h", "power_kw")]
    n = 20_000
    ts = 1_700_000_000_000_000_000 + (np.arange(n) // len(table)) * 1_000_000_000 + 123
    values = rng.normal(500, 200, n) * 10.0 ** rng.integers(-3, 6, n)
    batch = SampleBatch(table, np.arange(n) % len(table), ts, values)
    write_batch(influx_db, batch)
    for sid, s in enumerate(table):
        res = influx_db.query(f'SELECT "{s.field}" FROM pump WHERE asset=\'{s.tag_dict["asset"]}\'')
        sel = batch.series == sid
        assert np.array_equal(res[0].columns["time"], ts[sel])
        assert np.array_equal(res[0].columns[s.field], values[sel])


def test_digits_equal_numpys_shortest_positional_form():
    """Not only round-trip and as short: the very digits of the shortest form (Dragon4, as repr)."""
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [
            rng.normal(500, 150, 60_000),
            rng.normal(0, 1, 60_000) * 10.0 ** rng.integers(-2, 16, 60_000),
            rng.random(60_000).astype(np.float32).astype(np.float64) * 1000,
            np.round(rng.normal(0, 1000, 20_000), 2),
            np.nextafter(10.0 ** np.arange(-2, 16), 0),
            10.0 ** np.arange(-2, 16),
            2.0 ** np.arange(-6, 53),
        ]
    )
    values = values[(np.abs(values) >= 0.01) & (np.abs(values) < 1e16)]
    chars = np.ascontiguousarray(render_floats(values))
    ours = [bytes(row).replace(b"\0", b"").decode() for row in chars]
    expected = [np.format_float_positional(v, unique=True, trim="-") for v in values]
    mismatches = [(v, o, e) for v, o, e in zip(values, ours, expected) if o != e]
    assert not mismatches, mismatches[:5]


def test_wide_rows_leave_out_missing_fields_and_keep_constant_ones():
    cols = {"a": [1.5, np.nan, 3.0, np.nan], "b c": [np.nan, np.nan, 0.25, 2e-7]}
    out = encode_wide("mrv,project=p", cols, [1, 2, 3, 4])
    assert out.bodies == [b"mrv,project=p a=1.5 1\nmrv,project=p a=3,b\\ c=0.25 3\nmrv,project=p b\\ c=0.0000002 4\n"]
    assert out.dropped_nonfinite == 1 and out.lines == 3
    out = encode_wide("mrv,project=p", cols, [1, 2, 3, 4], 'h="x",ok=true')
    assert b"".join(out.bodies).decode().splitlines() == [
        'mrv,project=p a=1.5,h="x",ok=true 1', 'mrv,project=p h="x",ok=true 2',
        'mrv,project=p a=3,b\\ c=0.25,h="x",ok=true 3', 'mrv,project=p b\\ c=0.0000002,h="x",ok=true 4',
    ]
    assert [b.count(b"\n") for b in encode_wide("m", {"a": np.arange(12.0)}, np.arange(12), max_lines=5).bodies] == [5, 5, 2]


def test_wide_rows_round_trip_through_real_influxd(influx_db):
    rng = np.random.default_rng(5)
    n = 3_000
    cols = {f"f{j}": rng.normal(0, 1, n) * 10.0 ** rng.integers(-9, 12, n) for j in range(4)}
    cols["f0"][::7] = np.nan
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000
    out = encode_wide("wide,site=a\\ b", cols, ts, 'tag_like="x"')
    for body in out.bodies:
        influx_db.write_body(body)
    res = influx_db.query('SELECT * FROM wide')[0].columns
    assert np.array_equal(res["time"], ts)
    for name, values in cols.items():
        assert np.array_equal(np.asarray(res[name], dtype=float), values, equal_nan=True), name


def test_a_table_grown_in_place_between_encodes_gets_its_new_prefixes():
    """The encoder reuses the prefixes of the table it saw last; a table that grew since must not reuse them."""
    table = [Series.of("m", "a", site="s")]
    enc = LineProtocolEncoder()
    first = b"".join(enc.encode(SampleBatch(table, [0], [1], [1.0])).bodies)
    table.append(Series.of("m", "b", site="s"))  # as a gateway source does when a node appears
    second = b"".join(enc.encode(SampleBatch(table, [0, 1], [2, 2], [2.0, 3.0])).bodies)
    assert first == b"m,site=s a=1 1\n"
    assert second == b"m,site=s a=2 2\nm,site=s b=3 2\n"


def test_quality_routing_keeps_status_codes_and_bad_samples_without_a_value():
    """A failed OPC UA read (BAD, no value) and an UNCERTAIN one without a value reach sample_quality
    with their quality and status code; only finite values are written, nothing is dropped."""
    s = Series.of("pump", "power_kw", site="danang", asset="P1")
    status = [0, 0x40920000, 0x808C0000, 0x80310000, 0x40000000]
    batch = SampleBatch([s], [0] * 5, [1, 2, 3, 4, 5], [10.0, 11.0, 12.0, np.nan, np.nan],
                        [Quality.GOOD, Quality.UNCERTAIN, Quality.BAD, Quality.BAD, Quality.UNCERTAIN], status)
    enc = encode_batch(batch)
    assert enc.dropped_nonfinite == 0
    lines = enc.bodies[0].decode().splitlines()
    raw = sorted(parse_line(l)[3:] for l in lines if l.startswith("pump,"))
    assert raw == [("10", 1), ("11", 2)]
    flagged = sorted((f[4], f[2], f[3]) for f in map(parse_line, lines) if f[0] == "sample_quality")
    assert flagged == [
        (2, "quality", "1"), (2, "status_code", str(0x40920000)), (2, "value", "11"),
        (3, "quality", "2"), (3, "status_code", str(0x808C0000)), (3, "value", "12"),
        (4, "quality", "2"), (4, "status_code", str(0x80310000)),
        (5, "quality", "1"), (5, "status_code", str(0x40000000)),
    ]
    good_nan = SampleBatch([s], [0], [1], [np.nan])
    assert encode_batch(good_nan).dropped_nonfinite == 1  # a GOOD NaN: the caller refuses it, the encoder counts it
