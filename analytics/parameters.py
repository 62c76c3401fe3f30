"""Methodology parameters that carry their source: value, unit, source, monitoring option.

Each methodology module declares its defaults as one frozen dataclass of :class:`Param`
(pvlib's habit of a parameter set named once). A project's config may override any of them;
the override must bring its own ``source``. :func:`params_hash` fingerprints the values used
for an interval, written beside every result so a verifier sees when parameters changed.

Monitoring options follow the JCM monitoring report input sheet [published, JCM guidelines]:
A = public data, statistics, datasheets; B = invoices, revenue meters; C = the project's own
measuring equipment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Param:
    """One methodology parameter (the columns of a JCM monitoring report input sheet).

    ``bounds`` = (low, high), either None: the values physics or the methodology allows
    (an efficiency in (0, 1]); ``low_open`` makes the low bound exclusive.
    """

    value: float | tuple | None
    unit: str
    source: str
    option: str = "A"
    symbol: str = ""
    description: str = ""
    bounds: tuple[float | None, float | None] | None = None
    low_open: bool = False

    def __post_init__(self):
        if not self.source:
            raise ValueError(f"parameter {self.symbol or '?'}: a source is required")
        if self.option not in ("A", "B", "C"):
            raise ValueError(f"parameter {self.symbol or '?'}: monitoring option must be A, B or C, got {self.option!r}")

    def check_bounds(self, where: str) -> None:
        """``ValueError`` naming ``where`` when the value lies outside :attr:`bounds`."""
        if self.bounds is None or self.value is None:
            return
        lo, hi = self.bounds
        for v in (self.value if isinstance(self.value, (tuple, list)) else (self.value,)):
            if lo is not None and (v < lo or (self.low_open and v == lo)):
                raise ValueError(f"{where}: {v} {self.unit} is not plausible: must be {'above' if self.low_open else 'at least'} {lo} {self.unit}")
            if hi is not None and v > hi:
                raise ValueError(f"{where}: {v} {self.unit} is not plausible: must be at most {hi} {self.unit}")


def values(params: Any) -> dict[str, Any]:
    """``{name: value}`` of a parameter dataclass."""
    return {f.name: getattr(params, f.name).value for f in dataclasses.fields(params)}


def override(params: Any, overrides: Mapping[str, Any], where: str = "parameters") -> Any:
    """A copy of ``params`` with config overrides applied.

    ``overrides`` maps a field name to a :class:`Param`-like mapping or object with ``value``,
    ``unit``, ``source`` and optionally ``option``. The value is converted from its unit to
    the methodology's (pint, :mod:`plantmrv.units`), and checked against the parameter's
    bounds. Unknown names, units of another dimension and implausible values raise
    ``ValueError`` naming ``where.<name>``.
    """
    from plantmrv.units import conversion

    names = {f.name for f in dataclasses.fields(params)}
    changes = {}
    for name, ov in overrides.items():
        if name not in names:
            raise ValueError(f"{where}.{name}: unknown parameter for {type(params).__name__}; known: {', '.join(sorted(names))}")
        base: Param = getattr(params, name)
        get = ov.get if isinstance(ov, Mapping) else lambda k, d=None: getattr(ov, k, d)
        unit = get("unit", None)
        if not unit:
            raise ValueError(f"{where}.{name}: a unit is required (the methodology's is {base.unit!r})")
        value = get("value")
        if unit != base.unit and value is not None:
            try:
                scale, offset = conversion(unit, base.unit)
            except ValueError as exc:
                raise ValueError(f"{where}.{name}: {exc}") from None
            value = tuple(v * scale + offset for v in value) if isinstance(value, (list, tuple)) else value * scale + offset
        elif isinstance(value, list):
            value = tuple(value)
        source = get("source", None)
        if not source:
            raise ValueError(f"{where}.{name}: an override needs a source")
        new = Param(value, base.unit, source, get("option", None) or base.option, base.symbol, base.description, base.bounds, base.low_open)
        new.check_bounds(f"{where}.{name}")
        changes[name] = new
    return dataclasses.replace(params, **changes)


def table(params: Any) -> list[dict[str, Any]]:
    """Rows for a monitoring report: symbol, description, value, unit, option, source."""
    out = []
    for f in dataclasses.fields(params):
        p: Param = getattr(params, f.name)
        out.append({"name": f.name, "symbol": p.symbol, "description": p.description, "value": p.value, "unit": p.unit, "option": p.option, "source": p.source})
    return out


def params_hash(*parts: Any) -> str:
    """Short, stable hash of parameter sets and plain values (12 hex digits of SHA-256)."""

    def norm(x):
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return {f.name: norm(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, Mapping):
            return {str(k): norm(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if hasattr(x, "model_dump"):
            return norm(x.model_dump())
        return x

    blob = json.dumps([norm(p) for p in parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
