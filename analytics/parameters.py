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
    """One methodology parameter (the columns of a JCM monitoring report input sheet)."""

    value: float | None
    unit: str
    source: str
    option: str = "A"
    symbol: str = ""
    description: str = ""

    def __post_init__(self):
        if not self.source:
            raise ValueError(f"parameter {self.symbol or '?'}: a source is required")
        if self.option not in ("A", "B", "C"):
            raise ValueError(f"parameter {self.symbol or '?'}: monitoring option must be A, B or C, got {self.option!r}")


def values(params: Any) -> dict[str, Any]:
    """``{name: value}`` of a parameter dataclass."""
    return {f.name: getattr(params, f.name).value for f in dataclasses.fields(params)}


def override(params: Any, overrides: Mapping[str, Any], where: str = "parameters") -> Any:
    """A copy of ``params`` with config overrides applied.

    ``overrides`` maps a field name to a :class:`Param`-like mapping or object with ``value``,
    ``unit``, ``source`` and optionally ``option``. Unknown names and unit mismatches raise
    ``ValueError`` naming ``where.<name>``.
    """
    names = {f.name for f in dataclasses.fields(params)}
    changes = {}
    for name, ov in overrides.items():
        if name not in names:
            raise ValueError(f"{where}.{name}: unknown parameter for {type(params).__name__}; known: {', '.join(sorted(names))}")
        base: Param = getattr(params, name)
        get = ov.get if isinstance(ov, Mapping) else lambda k, d=None: getattr(ov, k, d)
        unit = get("unit", None) or base.unit
        if unit != base.unit:
            raise ValueError(f"{where}.{name}: unit {unit!r} does not match the methodology's {base.unit!r} (convert explicitly)")
        source = get("source", None)
        if not source:
            raise ValueError(f"{where}.{name}: an override needs a source")
        changes[name] = Param(get("value"), base.unit, source, get("option", None) or base.option, base.symbol, base.description)
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
