"""Grid emission factors: a versioned table with sources, and the combined margin of CDM TOOL07.

The table (``analytics/data/emission_factors.csv``) holds one row per (country, grid, year,
kind) with the value in tCO2/MWh and its source; kinds are ``OM`` (operating margin), ``BM``
(build margin), ``CM`` (combined margin, when published as such) and ``national`` (a single
published factor, as Viet Nam's DCC/MONRE announces). No factor is a literal in code.

- Combined margin ``EF_CM = w_OM x EF_OM + w_BM x EF_BM`` [published, CDM TOOL07]; weights
  0.75/0.25 for wind and solar, 0.5/0.5 otherwise [published, CDM TOOL07].
- Viet Nam 2014-2023 and Philippine (Mindanao, Luzon-Visayas) 2015-2017 values [published,
  ``shared/docs/methodologies.md`` section 4].

References
----------
.. [1] UNFCCC CDM, "Tool to calculate the emission factor for an electricity system"
   (TOOL07).
.. [2] plantmrv, ``shared/docs/methodologies.md`` section 4.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_FILE = Path(__file__).with_name("data") / "emission_factors.csv"

#: TOOL07 weights (w_OM, w_BM) by generation type [published, CDM TOOL07]
CM_WEIGHTS = {"solar": (0.75, 0.25), "wind": (0.75, 0.25), "other": (0.5, 0.5)}
CM_WEIGHTS_SOURCE = "CDM TOOL07: w_OM/w_BM = 0.75/0.25 for wind and solar, 0.5/0.5 otherwise"
KINDS = ("OM", "BM", "CM", "national")


class EmissionFactorError(LookupError):
    """A factor the table does not hold; the message names what is missing and what exists."""


@dataclass(frozen=True)
class EmissionFactor:
    country: str
    grid: str
    year: int
    kind: str
    value_t_co2_per_mwh: float
    source: str


def combined_margin(ef_om_t_co2_per_mwh, ef_bm_t_co2_per_mwh, w_om: float = 0.5, w_bm: float = 0.5):
    """Combined margin emission factor, CDM TOOL07.

    Parameters
    ----------
    ef_om_t_co2_per_mwh : numeric  Operating-margin factor [tCO2/MWh]
    ef_bm_t_co2_per_mwh : numeric  Build-margin factor [tCO2/MWh]
    w_om, w_bm : float  Weights [-]; 0.75/0.25 for wind and solar, 0.5/0.5 otherwise

    Returns
    -------
    numeric  ``w_om x EF_OM + w_bm x EF_BM`` [tCO2/MWh]
    """
    if not np.isclose(w_om + w_bm, 1.0):
        raise ValueError(f"combined-margin weights must sum to 1, got w_om={w_om} w_bm={w_bm}")
    return w_om * np.asarray(ef_om_t_co2_per_mwh, dtype=float) + w_bm * np.asarray(ef_bm_t_co2_per_mwh, dtype=float)


def cm_weights(generation_type: str) -> tuple[float, float]:
    """(w_OM, w_BM) for a project's generation type: ``solar``/``wind`` or anything else."""
    return CM_WEIGHTS.get(generation_type.lower(), CM_WEIGHTS["other"])


class EmissionFactorTable:
    """Rows of (country, grid, year, kind, value, source); lookups with explicit errors."""

    def __init__(self, rows: list[EmissionFactor], path: str = "<memory>"):
        self.rows = rows
        self.path = path
        self._index = {(r.country.lower(), r.grid.lower(), r.year, r.kind.lower()): r for r in rows}

    @classmethod
    def load(cls, path: str | Path | None = None) -> "EmissionFactorTable":
        path = Path(path) if path else DATA_FILE
        rows = []
        with open(path, newline="", encoding="utf-8") as fh:
            for i, rec in enumerate(csv.DictReader(fh), start=2):
                try:
                    kind = rec["kind"].strip()
                    if kind not in KINDS:
                        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
                    rows.append(
                        EmissionFactor(
                            rec["country"].strip(),
                            rec["grid"].strip(),
                            int(rec["year"]),
                            kind,
                            float(rec["value_t_co2_per_mwh"]),
                            rec["source"].strip(),
                        )
                    )
                except (KeyError, ValueError, TypeError) as exc:
                    raise ValueError(f"{path}: line {i}: {exc}") from None
        return cls(rows, str(path))

    def lookup(self, country: str, grid: str, year: int, kind: str, generation_type: str = "other") -> EmissionFactor:
        """The factor for (country, grid, year, kind).

        ``kind="CM"`` returns a published CM row when there is one, else combines the OM and BM
        rows per TOOL07 with the weights of ``generation_type``. Raises
        :class:`EmissionFactorError` naming what is missing and what the table has instead.
        """
        key = (country.lower(), grid.lower(), int(year), kind.lower())
        if key in self._index:
            return self._index[key]
        if kind.upper() == "CM":
            om = self._index.get(key[:3] + ("om",))
            bm = self._index.get(key[:3] + ("bm",))
            if om and bm:
                w_om, w_bm = cm_weights(generation_type)
                value = float(combined_margin(om.value_t_co2_per_mwh, bm.value_t_co2_per_mwh, w_om, w_bm))
                return EmissionFactor(
                    om.country, om.grid, om.year, "CM", value,
                    f"combined margin {w_om}/{w_bm} ({CM_WEIGHTS_SOURCE}) of OM [{om.source}] and BM [{bm.source}]",
                )
        raise EmissionFactorError(self._missing_message(country, grid, int(year), kind))

    def _missing_message(self, country, grid, year, kind) -> str:
        c = [r for r in self.rows if r.country.lower() == country.lower()]
        where = f"grid emission factor country={country!r} grid={grid!r} year={year} kind={kind!r} not in {self.path}"
        if not c:
            return f"{where}; countries available: {', '.join(sorted({r.country for r in self.rows}))}"
        g = [r for r in c if r.grid.lower() == grid.lower()]
        if not g:
            return f"{where}; grids for {country}: {', '.join(sorted({r.grid for r in c}))}"
        y = [r for r in g if r.year == year]
        if not y:
            return f"{where}; years for {country}/{grid}: {', '.join(str(v) for v in sorted({r.year for r in g}))}"
        return f"{where}; kinds for {country}/{grid}/{year}: {', '.join(sorted({r.kind for r in y}))}"


_DEFAULT: EmissionFactorTable | None = None


def default_table() -> EmissionFactorTable:
    """The table shipped with plantmrv (loaded once)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = EmissionFactorTable.load()
    return _DEFAULT


def grid_emission_factor(country: str, grid: str, year: int, kind: str, generation_type: str = "other") -> EmissionFactor:
    """Look up a factor in the shipped table (see :meth:`EmissionFactorTable.lookup`)."""
    return default_table().lookup(country, grid, year, kind, generation_type)
