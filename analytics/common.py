"""Pieces every methodology shares: emissions from energy, ER, and the conservative gap rule.

- ``RE = E_ref_mwh x EF``, ``PE = E_PJ_mwh x EF``, ``ER_p = RE_p - PE_p`` [published, JCM
  common frame, ``shared/docs/methodologies.md`` sections 1-2].
- Missing or bad-quality data [plantmrv rule, methodologies.md section 1, until a methodology
  says otherwise]: never fill silently; the reference side of a missing interval counts 0
  and the project side counts high (the period's highest observed rate, or a configured
  maximum plausible rate, over the missing seconds); filled seconds are reported.
"""

from __future__ import annotations

import numpy as np

KWH_PER_MWH = 1000.0
FILL_METHOD = "conservative: reference 0, project at highest observed rate (methodologies.md s.1)"


def emissions_t_co2(energy_kwh, ef_t_co2_per_mwh):
    """Emissions of electricity: ``E [MWh] x EF``.

    Parameters
    ----------
    energy_kwh : numeric  Electricity per interval [kWh]
    ef_t_co2_per_mwh : numeric  Emission factor [tCO2/MWh]

    Returns
    -------
    numeric  [tCO2]
    """
    return np.asarray(energy_kwh, dtype=float) / KWH_PER_MWH * np.asarray(ef_t_co2_per_mwh, dtype=float)


def emission_reductions_t_co2(reference_t_co2, project_t_co2):
    """``ER = RE - PE`` per interval [tCO2], at full precision (not floored: flooring to zero
    or to whole tonnes applies to the reported period total, see :mod:`.reporting`)."""
    return np.asarray(reference_t_co2, dtype=float) - np.asarray(project_t_co2, dtype=float)


def highest_rate_kw(energy_kwh, covered_s):
    """The period's highest observed rate: ``max(E / covered hours)`` over intervals [kW].

    Intervals covered less than 1 s are ignored; 0 when nothing is covered.
    """
    e = np.asarray(energy_kwh, dtype=float)
    c = np.asarray(covered_s, dtype=float)
    ok = c >= 1.0
    if not ok.any():
        return 0.0
    return float(np.max(e[ok] / (c[ok] / 3600.0)))


def conservative_fill(reference_kwh, project_kwh, gap_s, project_fill_rate_kw):
    """Fill missing time conservatively: reference side low (0), project side high.

    Parameters
    ----------
    reference_kwh : array  Reference energy computed over the covered part of each interval [kWh]
    project_kwh : array  Project energy over the covered part [kWh]
    gap_s : array  Missing seconds per interval [s]
    project_fill_rate_kw : numeric  Rate charged to the project over missing time: the
        period's highest observed rate or a maximum plausible rate [kW]

    Returns
    -------
    (reference_kwh, project_kwh, filled_s)  The reference unchanged (missing time adds 0),
    the project energy plus ``gap_s / 3600 x rate``, and the filled seconds.
    """
    gap = np.maximum(np.asarray(gap_s, dtype=float), 0.0)
    rate = np.maximum(np.asarray(project_fill_rate_kw, dtype=float), 0.0)
    return np.asarray(reference_kwh, dtype=float), np.asarray(project_kwh, dtype=float) + gap / 3600.0 * rate, gap
