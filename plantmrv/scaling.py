"""Per-tag scaling shared by every source: ``scale``, ``offset`` and ``unit`` of a raw value.

A device gives a raw number (a PLC register in 0.1 kW, a 4-20 mA count, a meter in Wh); the
tag's config says how to turn it into the quantity its field names::

    value_in_unit  = raw * scale + offset
    value_in_field = value_in_unit converted from `unit` to the unit of the field name

so ``{field: ac_power_kw, scale: 0.1, unit: W}`` turns a register in 0.1 W into kW. The
conversion is checked when the config loads (:func:`plantmrv.units.field_conversion`): a
dimension mismatch (``unit: MW`` on ``flow_m3_per_h``) is a located config error. Sources apply
the combined ``raw * a + b`` (:meth:`Scaling.effective`) before deadband and buffering.
"""

from __future__ import annotations

import re
from typing import Iterable

from pydantic import Field, field_validator

from plantmrv.config import StrictModel
from plantmrv.units import field_conversion


class Scaling(StrictModel):
    """Mixin of a tag's raw-value conversion (fields ``scale``, ``offset``, ``unit``)."""

    scale: float = Field(1.0, description="Multiplier applied to the raw value (e.g. 0.1 for a register in 0.1 kW).")
    offset: float = Field(0.0, description="Added after scaling (e.g. -4 for a 4-20 mA loop before a span scale).")
    unit: str | None = Field(
        None, description="Unit of `raw * scale + offset` (pint, e.g. `W`, `Wh`, `L/s`, `degF`); converted to the unit "
        "the field name states (`ac_power_kw` -> kW). Omitted: already in the field's unit."
    )

    def effective(self, field: str) -> tuple[float, float]:
        """``(a, b)`` with ``value_in_field_unit = raw * a + b`` (ValueError on a unit mismatch)."""
        return compose(self.scale, self.offset, field, self.unit)

    def check_unit(self, field: str, where: str = "") -> None:
        """Raise ValueError ``<where>unit: <why>`` unless ``unit`` converts to ``field``'s unit (config validators)."""
        try:
            self.effective(field)
        except ValueError as exc:
            raise ValueError(f"{where}unit: {exc}") from None


def compose(scale: float, offset: float, field: str, unit: str | None) -> tuple[float, float]:
    """``raw * scale + offset`` in ``unit``, then converted to ``field``'s unit, as one ``raw * a + b``."""
    k, c = field_conversion(field, unit)
    return scale * k, offset * k + c


_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_field_name(v: str) -> str:
    """``v`` if it is a field name (letters, digits, underscore), else a ValueError saying so."""
    if not _FIELD_NAME.match(v):
        raise ValueError(f"{v!r} is not a field name (letters, digits, underscore; unit in the name: flow_m3_per_h)")
    return v


class ScaledTag(Scaling):
    """A source's tag: the field it feeds (unit in the name), optional asset/measurement overrides, scaling."""

    field: str = Field(..., description="Field name with its unit (`flow_m3_per_h`).")
    asset: str | None = Field(None, description="Overrides the group's or device's `asset` tag.")
    measurement: str | None = Field(None, description="Overrides the group's or device's measurement.")

    @field_validator("field")
    @classmethod
    def _field_name(cls, v: str) -> str:
        return check_field_name(v)


def check_unique_series(entries: Iterable[tuple[str, ScaledTag, str | None, str | None, dict[str, str]]]) -> None:
    """Raise ValueError naming both places when two tags feed one series.

    ``entries``: (where, tag, default measurement, default asset, extra tags) per tag, the defaults
    being its group's or device's.
    """
    seen: dict[tuple, str] = {}
    for where, tag, measurement, asset, tags in entries:
        key = (tag.measurement or measurement, tag.asset or asset, tuple(sorted(tags.items())), tag.field)
        if key in seen:
            raise ValueError(f"{where}: series {key[0]} asset={key[1]} field={key[3]} is already read by {seen[key]}")
        seen[key] = where
