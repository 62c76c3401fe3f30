"""Units: parse a unit, convert between units with a dimensional check, read a field's unit.

One shared pint ``UnitRegistry`` (created on first use, so importing this module stays cheap),
with the spellings plant documents use: ``m3``, ``m2`` (exponents without ``**``), ``%``,
``NTU`` (turbidity, its own dimension) and ``degC``.

- :func:`parse_unit` ``(text) -> pint.Unit``: ValueError naming the text when pint does not know it.
- :func:`conversion` ``(from_unit, to_unit) -> (scale, offset)``: ``to = from * scale + offset``;
  ValueError naming both units and their kinds when the dimensions differ
  (``'MW' cannot be converted to 'm3/h' (power vs volume flow)``).
- :func:`field_unit` ``(field_name) -> str | None``: the unit our field-name convention states
  (``power_kw`` -> ``kW``, ``flow_m3_per_h`` -> ``m3/h``, ``temp_c`` -> ``degC``,
  ``ef_t_co2_per_mwh`` -> ``t/MWh``); None for names without one (``running``, ``efficiency``).

Conversions are affine (temperatures in degC/degF carry an offset), so two samples of a unit
convert exactly as ``value * scale + offset`` in numpy, without pint in the hot path.

Besides pint's own units: ``tCO2``, ``tCO2e``, ``tCH4`` (tonnes of the gas), ``-`` and ``1``
(dimensionless) and any three-letter currency code (``VND/kWh``: each currency is its own
dimension, so no exchange rate is ever assumed).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pint

_REGISTRY = None

# exponent without '**' after a unit symbol: m3 -> m**3, W/m2 -> W/m**2 (not inside words like 'co2e')
_EXPONENT = re.compile(r"(?<=\b[A-Za-z])([23])\b|(?<=\bkm|\bcm|\bmm|\bdm)([23])\b")

# field-name unit tokens -> unit text (pint-parseable with the registry's preprocessors)
_TOKENS = {
    "kw": "kW", "mw": "MW", "w": "W", "gw": "GW",
    "kwh": "kWh", "mwh": "MWh", "wh": "Wh", "gwh": "GWh",
    "kvar": "kvar", "kva": "kVA", "v": "V", "kv": "kV", "a": "A",
    "mj": "MJ", "kj": "kJ", "gj": "GJ", "j": "J",
    "m3": "m3", "m2": "m2", "m": "m", "mm": "mm", "km": "km", "l": "L",
    "t": "t", "kg": "kg", "g": "g", "mg": "mg",
    "h": "h", "s": "s", "min": "min", "ms": "ms",
    "hz": "Hz", "rpm": "rpm", "pct": "percent",
    "c": "degC", "k": "K",
    "bar": "bar", "pa": "Pa", "kpa": "kPa", "mpa": "MPa",
    "ntu": "NTU",
}
_QUALIFIERS = {"co2", "co2e", "ch4", "n2o"}  # t_co2: tonnes (of CO2)

_KINDS = {
    "[mass] * [length] ** 2 / [time] ** 3": "power",
    "[mass] * [length] ** 2 / [time] ** 2": "energy",
    "[length] ** 3 / [time]": "volume flow",
    "[length] ** 3": "volume",
    "[length] ** 2": "area",
    "[length]": "length",
    "[mass]": "mass",
    "[mass] / [time]": "mass flow",
    "[time]": "time",
    "1 / [time]": "frequency",
    "[temperature]": "temperature",
    "dimensionless": "dimensionless",
    "[mass] / [time] ** 3": "irradiance",
    "[time] ** 2 / [length] ** 2": "mass per energy",
    "[length] ** 2 / [time] ** 2": "energy per mass",
    "[mass] / [length] ** 3": "concentration",
    "[mass] / [length] / [time] ** 2": "pressure",
    "[current]": "current",
    "[mass] * [length] ** 2 / [current] / [time] ** 3": "voltage",
    "[turbidity]": "turbidity",
    "[time] / [length]": "energy per volume",
}


def registry() -> "pint.UnitRegistry":
    """The shared registry (created on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        import pint

        reg = pint.UnitRegistry(
            preprocessors=[lambda s: _EXPONENT.sub(lambda m: "**" + (m.group(1) or m.group(2)), s)],
            autoconvert_offset_to_baseunit=True,
        )
        reg.define("nephelometric_turbidity_unit = [turbidity] = NTU")
        for line in ("tCO2 = tonne", "tCO2e = tonne", "tCH4 = tonne"):
            reg.define(line)
        _REGISTRY = reg
    return _REGISTRY


_CURRENCY = re.compile(r"\b([A-Z]{3})\b")
_DIMENSIONLESS = {"-", "1", "ratio", "fraction"}


def _define_currencies(text: str) -> None:
    """Each three-letter currency code in ``text`` pint does not know becomes a dimension of its own."""
    reg = registry()
    for code in set(_CURRENCY.findall(text)):
        try:
            reg.parse_units(code)
        except Exception:  # noqa: BLE001 - not a unit yet
            reg.define(f"{code} = [currency_{code}]")


@lru_cache(maxsize=512)
def parse_unit(text: str) -> "pint.Unit":
    """``text`` as a pint Unit; ValueError naming the text if it is not a unit."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not a unit")
    reg = registry()
    if text.strip() in _DIMENSIONLESS:
        return reg.parse_units("dimensionless")
    _define_currencies(text)
    try:
        return reg.parse_units(text.strip())
    except Exception as exc:  # pint raises several kinds (UndefinedUnitError, DefinitionSyntaxError, ...)
        raise ValueError(f"{text!r} is not a unit pint knows ({type(exc).__name__}: {str(exc)[:120]})") from None


def kind(unit: "str | pint.Unit") -> str:
    """A readable name of a unit's dimension (``power``, ``volume flow``), else pint's dimensionality."""
    u = parse_unit(unit) if isinstance(unit, str) else unit
    dim = str(u.dimensionality)
    return _KINDS.get(dim, dim)


def conversion(from_unit: "str | pint.Unit", to_unit: "str | pint.Unit") -> tuple[float, float]:
    """``(scale, offset)`` with ``value_in_to = value_in_from * scale + offset``.

    Raises ValueError when a unit is unknown or the dimensions differ, naming both units and
    their kinds: ``'MW' cannot be converted to 'm3/h' (power vs volume flow)``.
    """
    return _conversion(str(from_unit) if not isinstance(from_unit, str) else from_unit,
                       str(to_unit) if not isinstance(to_unit, str) else to_unit)


@lru_cache(maxsize=1024)
def _conversion(from_text: str, to_text: str) -> tuple[float, float]:
    a, b = parse_unit(from_text), parse_unit(to_text)
    if a.dimensionality != b.dimensionality:
        raise ValueError(f"{from_text!r} cannot be converted to {to_text!r} ({kind(a)} vs {kind(b)})")
    q = registry().Quantity
    y0 = float(q(0.0, a).to(b).magnitude)
    if y0 == 0.0:
        return float(q(1.0, a).to(b).magnitude), 0.0
    # an offset unit (degC, degF): the slope over a wide span keeps the digits 0..1 would cancel
    return (float(q(1000.0, a).to(b).magnitude) - y0) / 1000.0, y0


def field_unit(field_name: str) -> str | None:
    """The unit a field name states by our convention, or None.

    ``<quantity>_<unit>`` or ``<quantity>_<unit>_per_<unit>``; a gas qualifier after a mass is
    skipped (``reduction_t_co2`` -> ``t``, ``ef_t_co2_per_mwh`` -> ``t/MWh``). Examples:
    ``power_kw`` kW, ``energy_kwh`` kWh, ``flow_m3_per_h`` m3/h, ``temp_c`` degC, ``waste_t`` t,
    ``aux_fuel_kg_per_h`` kg/h, ``irradiance_w_per_m2`` W/m2, ``speed_pct`` percent,
    ``frequency_hz`` Hz, ``head_m`` m, ``lhv_mj_per_kg`` MJ/kg, ``raw_turbidity_ntu`` NTU.
    """
    parts = field_name.lower().split("_")
    if len(parts) < 2:
        return None
    if len(parts) >= 4 and parts[-2] == "per":
        den = _TOKENS.get(parts[-1])
        num_parts = [p for p in parts[:-2]]
        while num_parts and num_parts[-1] in _QUALIFIERS:
            num_parts.pop()
        num = _TOKENS.get(num_parts[-1]) if len(num_parts) >= 2 else None
        return f"{num}/{den}" if num and den else None
    while len(parts) > 2 and parts[-1] in _QUALIFIERS:
        parts.pop()
    return _TOKENS.get(parts[-1])


def field_conversion(field_name: str, unit: str | None) -> tuple[float, float]:
    """``(scale, offset)`` from a value in ``unit`` to the unit field ``field_name`` states.

    ``unit`` None means "already in the field's unit" (identity). ValueError when the unit is
    unknown, when the field name states no unit to convert to, or when the dimensions differ.
    """
    if unit is None:
        return 1.0, 0.0
    target = field_unit(field_name)
    if target is None:
        parse_unit(unit)
        raise ValueError(f"field {field_name!r} states no unit in its name, so unit {unit!r} cannot be converted "
                         f"(name the field with its unit, e.g. power_kw, or drop `unit`)")
    try:
        return conversion(unit, target)
    except ValueError as exc:
        raise ValueError(f"{exc}: field {field_name!r} is in {target}") from None
