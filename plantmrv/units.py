"""Units, checked: one pint registry, conversions with a dimensional check, units read from field names.

plantmrv names every quantity with its unit (``power_kw``, ``flow_m3_per_h``,
``ef_t_co2_per_mwh``); configured values carry a unit string. Both are converted here, never
by hand:

- :func:`parse_unit` reads a unit string (``kW``, ``m3/h``, ``g/kWh``, ``tCO2/MWh``, ``-``);
- :func:`conversion` gives ``(scale, offset)`` with ``to = from x scale + offset`` and refuses
  a conversion between different dimensions (``'MW' cannot be converted to 'm3/h' (power vs
  volume flow)``);
- :func:`field_unit` reads the unit from a field name by the project's convention.

Besides pint's own units: ``tCO2``, ``tCO2e``, ``tCH4`` (tonnes of the gas), ``NTU``
(turbidity, its own dimension), ``-`` (dimensionless) and any three-letter currency code
(``VND/kWh``; each currency is its own dimension, so no exchange rate is ever assumed).
The registry is created on first use (pint's start-up costs ~0.3 s, which the gateway's
``--help`` does not pay).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

_LOCK = threading.Lock()
_UREG = None
_CURRENCY = re.compile(r"\b([A-Z]{3})\b")
#: Readable names of dimensions in error messages (keyed by a unit of that dimension).
_DIMENSION_EXAMPLES = {
    "kW": "power", "kWh": "energy", "m**3/hour": "volume flow", "m**3": "volume", "tonne": "mass", "tonne/hour": "mass flow",
    "hour": "time", "m": "length", "K": "temperature", "dimensionless": "a ratio", "Hz": "frequency", "mg/L": "concentration",
    "tCO2/MWh": "mass per energy", "W/m**2": "irradiance", "MJ/kg": "specific energy", "kWh/m**3": "energy per volume",
}

#: Tokens of field-name units (``_per_`` separates numerator and denominator).
FIELD_UNIT_TOKENS = {
    "kw": "kW", "mw": "MW", "w": "W", "kwh": "kWh", "mwh": "MWh", "wh": "Wh", "gwh": "GWh",
    "m3": "m**3", "l": "L", "m2": "m**2", "m": "m", "mm": "mm", "km": "km",
    "h": "hour", "s": "second", "min": "minute", "d": "day",
    "t": "tonne", "kg": "kg", "g": "g", "mg": "mg",
    "t_co2": "tCO2", "t_co2e": "tCO2e", "kg_co2": "kg",
    "pct": "percent", "hz": "Hz", "c": "degC", "k": "K", "ntu": "NTU", "bar": "bar", "kpa": "kPa", "pa": "Pa",
    "mj": "MJ", "gj": "GJ", "kj": "kJ", "a": "A", "v": "V", "kvar": "kvar", "kva": "kVA", "rpm": "rpm",
}


def registry():
    """The shared pint UnitRegistry (created once, thread-safe)."""
    global _UREG
    if _UREG is None:
        with _LOCK:
            if _UREG is None:
                import pint

                u = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
                for line in ("tCO2 = tonne", "tCO2e = tonne", "tCH4 = tonne", "NTU = [turbidity]", "kvar = kVA"):
                    u.define(line)
                _UREG = u
    return _UREG


def _normalise(text: str) -> str:
    t = str(text).strip()
    if t in ("-", "", "1", "ratio", "fraction"):
        return "dimensionless"
    t = t.replace("³", "**3").replace("²", "**2").replace("·", "*")
    t = re.sub(r"\b([kcdm]?m)([23])\b", r"\1**\2", t)  # m3 -> m**3, km2 -> km**2
    u = registry()
    for code in set(_CURRENCY.findall(t)):
        if code not in ("MWh", "GWh") and not _known(code):
            with _LOCK:
                if not _known(code):
                    u.define(f"{code} = [currency_{code}]")
    return t


def _known(name: str) -> bool:
    try:
        registry().Unit(name)
        return True
    except Exception:  # noqa: BLE001 - pint raises several kinds
        return False


@lru_cache(maxsize=512)
def parse_unit(text: str):
    """The pint Unit of ``text``; ``ValueError`` naming the text when pint cannot read it."""
    try:
        return registry().Unit(_normalise(text))
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{text!r} is not a unit plantmrv knows ({type(exc).__name__}: {exc})") from None


def dimension_name(unit) -> str:
    """``power``, ``volume flow``, ... for a unit (pint's dimensionality where no name is known)."""
    u = registry()
    dim = u.Quantity(1, unit).dimensionality
    for example, name in _DIMENSION_EXAMPLES.items():
        if u.Quantity(1, example).dimensionality == dim:
            return name
    return str(dim)


@lru_cache(maxsize=1024)
def conversion(from_unit: str, to_unit: str) -> tuple[float, float]:
    """``(scale, offset)`` such that ``value_to = value_from x scale + offset``.

    Raises ``ValueError`` when either unit is unknown or their dimensions differ, naming both.
    """
    a, b = parse_unit(from_unit), parse_unit(to_unit)
    u = registry()
    if u.Quantity(1, a).dimensionality != u.Quantity(1, b).dimensionality:
        raise ValueError(f"{from_unit!r} cannot be converted to {to_unit!r} ({dimension_name(a)} vs {dimension_name(b)})")
    zero = float(u.Quantity(0.0, a).to(b).magnitude)
    one = float(u.Quantity(1.0, a).to(b).magnitude)
    return one - zero, zero


def convert(value, from_unit: str, to_unit: str):
    """``value`` (number or numpy array) in ``from_unit`` expressed in ``to_unit`` (dimension checked)."""
    scale, offset = conversion(from_unit, to_unit)
    if scale == 1.0 and offset == 0.0:
        return value
    return value * scale + offset


@lru_cache(maxsize=2048)
def field_unit(field_name: str) -> str | None:
    """The unit a field name states by convention (``power_kw`` -> ``kW``), or None.

    The longest suffix of ``_``-separated words that reads as ``<unit>[_per_<unit>]`` wins:
    ``flow_m3_per_h`` -> ``m**3/hour``, ``ef_t_co2_per_mwh`` -> ``tCO2/MWh``, ``module_temp_c``
    -> ``degC``, ``speed_pct`` -> ``percent``; ``running`` and ``efficiency`` -> None.
    """
    parts = field_name.lower().split("_")
    for k in range(1, len(parts)):
        unit = _suffix_unit(parts[k:])
        if unit is not None:
            return unit
    return None


def _suffix_unit(words: list[str]) -> str | None:
    if "per" in words:
        i = words.index("per")
        num, den = _token(words[:i]), _token(words[i + 1 :])
        return f"{num}/{den}" if num and den else None
    return _token(words)


def _token(words: list[str]) -> str | None:
    return FIELD_UNIT_TOKENS.get("_".join(words)) if words else None
