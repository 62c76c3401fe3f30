"""Grid-connected solar PV: reference emissions of the displaced grid electricity.

- ``RE_p = sum_i EG_i,p x EF_RE``; ``PE_p = 0``; ``ER_p = RE_p`` [published, JCM VN_AM007,
  TH_AM001, KH_AM002, MN_AM003 and others]. EG = AC output or export meter [MWh].
- KH_AM002 variant [published structure: JCM KH_AM002 summary, "AC output multiplied by either
  the conservative EF of National Grid electricity or the conservative EF of diesel power
  generator in off-grid area"; monitored: "category of the day d"]: the EF of each day d by its
  category (:func:`day_categories`, :func:`ef_by_day_category`). How a day with both grid
  supply and an outage is categorised was not in the text available to us; plantmrv's rule
  [form]: grid supply all day -> grid EF; outage all day (flag known all day) -> diesel EF;
  mixed or partly unknown -> the lower of the two (conservative). The diesel EF shipped is a
  placeholder with its source; the project sets the methodology's value.
- The grid EF is the combined margin with solar weights 0.75/0.25 where OM/BM are published
  [published, CDM TOOL07], see :mod:`.emission_factors`.

EG from the export meter (option B) or inverter output (option C). Missing data: generation
of a missing interval counts 0 (reference low); PE stays 0. An interval with net import (a
negative EG from a signed export power) is carried into the period total, never clipped.

References
----------
.. [1] JCM VN_AM007, TH_AM001, KH_AM002, MN_AM003 ("Installation of Solar PV System" family).
.. [2] plantmrv, ``shared/docs/methodologies.md`` section 3, "Solar PV".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .baselines import generation
from .common import PERIOD_FORMULAS, emission_reductions_t_co2, emissions_t_co2
from .parameters import Param
from .registry import Column, DayTable, Formula, InputField, Inputs, Methodology, Outputs, Quantity, register


@dataclass(frozen=True)
class PVParameters:
    ef_diesel_t_co2_per_mwh: Param = field(default_factory=lambda: Param(None, "tCO2/MWh", "none shipped: KH_AM002 projects set the methodology's diesel EF", "A", "EF_diesel", "Emission factor of diesel generation on outage days (KH_AM002)", (0.0, 2.0), True))


def day_category_ef(grid_available, ef_grid_t_co2_per_mwh, ef_diesel_t_co2_per_mwh):
    """KH_AM002: EF per interval by day category [tCO2/MWh].

    Parameters
    ----------
    grid_available : array of bool  True on days (intervals) with grid supply
    ef_grid_t_co2_per_mwh, ef_diesel_t_co2_per_mwh : float
    """
    return np.where(np.asarray(grid_available, dtype=bool), ef_grid_t_co2_per_mwh, ef_diesel_t_co2_per_mwh)


GRID_DAY, OUTAGE_DAY, MIXED_DAY = 1, 0, -1


def local_day_edges_ns(start_ns: int, end_ns: int, utc_offset_h: float) -> np.ndarray:
    """Local midnights (UTC + ``utc_offset_h``) from the one at or before ``start_ns`` to the
    first at or after ``end_ns`` [ns]."""
    day = 86400 * 1_000_000_000
    off = int(round(utc_offset_h * 3600)) * 1_000_000_000
    first = ((int(start_ns) + off) // day) * day - off
    last = -(-(int(end_ns) + off) // day) * day - off
    return np.arange(first, max(last, first + day) + 1, day, dtype=np.int64)


def day_categories(ts_ns, grid_available, day_edges_ns, max_hold_s: float | None = None) -> np.ndarray:
    """KH_AM002 category of each day d from a held 0/1 grid supply flag.

    Parameters
    ----------
    ts_ns : array of int64  Flag sample times [ns]; include the last sample before the first
        day so its state at midnight is known
    grid_available : array  1 while the grid supplies the site, 0 during an outage [-]
    day_edges_ns : array of int64  Local midnights (:func:`local_day_edges_ns`) [ns]
    max_hold_s : float, optional  Hold limit: a flag older than this is unknown (a gap), so its
        day is not known all day [s]

    Returns
    -------
    ndarray of int  ``GRID_DAY`` (1) grid supply all day, ``OUTAGE_DAY`` (0) outage all day
    with the flag known all day, ``MIXED_DAY`` (-1) otherwise.
    """
    from .amounts import held_mean_per_interval

    edges = np.asarray(day_edges_ns, dtype=np.int64)
    flag = (np.asarray(grid_available, dtype=float) > 0.5).astype(float)
    flag[~np.isfinite(np.asarray(grid_available, dtype=float))] = np.nan
    mean, known_s = held_mean_per_interval(ts_ns, flag, edges, max_hold_s)
    length_s = np.diff(edges) / 1e9
    whole = known_s >= length_s - 1e-9
    return np.where(whole & (mean >= 1.0 - 1e-12), GRID_DAY, np.where(whole & (mean <= 1e-12), OUTAGE_DAY, MIXED_DAY))


def ef_by_day_category(category, ef_grid_t_co2_per_mwh, ef_diesel_t_co2_per_mwh):
    """KH_AM002 EF of each day (or interval) by category [tCO2/MWh]: grid, diesel, or the
    lower of the two for mixed and unknown days (conservative)."""
    c = np.asarray(category)
    low = min(ef_grid_t_co2_per_mwh, ef_diesel_t_co2_per_mwh)
    return np.where(c == GRID_DAY, ef_grid_t_co2_per_mwh, np.where(c == OUTAGE_DAY, ef_diesel_t_co2_per_mwh, low)).astype(float)


def reference_emissions_t_co2(generation_kwh, ef_t_co2_per_mwh):
    """RE_p = EG_p x EF_RE [tCO2]; ``ef`` may be an array (KH_AM002 day categories)."""
    return emissions_t_co2(generation(generation_kwh), ef_t_co2_per_mwh)


def project_emissions_t_co2(generation_kwh):
    """PE_p = 0 [tCO2] (same shape as the generation)."""
    return np.zeros_like(np.asarray(generation_kwh, dtype=float))


def emission_reductions(reference_t_co2, project_t_co2=0.0):
    """ER_p = RE_p - PE_p = RE_p [tCO2]."""
    return emission_reductions_t_co2(reference_t_co2, project_t_co2)


# --------------------------------------------------------------------------- registry

def state_span_ns(project, start_ns: int, end_ns: int) -> tuple[int, int]:
    """KH_AM002: a day's category needs its grid flag over the whole local day, whatever the window."""
    days = local_day_edges_ns(start_ns, end_ns, project.day_category.utc_offset_h)
    return int(days[0]), int(days[-1])


def compute_generation(inp: Inputs) -> Outputs:
    """Solar PV: RE = EG x EF (by day category under KH_AM002), PE = 0."""
    edges = inp.edges_ns
    eg = generation(inp.covered["generation"])  # a missing interval generates 0 (reference low)
    ef = inp.ef_t_co2_per_mwh
    stored = {}
    if inp.project.day_category is not None:
        days = local_day_edges_ns(int(edges[0]), int(edges[-1]), inp.project.day_category.utc_offset_h)
        flags = inp.states.get("grid_available") or []
        if flags:
            per_flag = np.array([day_categories(ts, v, days, inp.max_gap_s) for ts, v in flags])
            cats = np.where(np.all(per_flag == per_flag[0], axis=0), per_flag[0], MIXED_DAY)
        else:
            cats = np.full(len(days) - 1, MIXED_DAY)
        day_of = np.clip(np.searchsorted(days, edges[:-1], side="right") - 1, 0, len(days) - 2)
        ef = ef_by_day_category(cats[day_of], inp.ef_t_co2_per_mwh, inp.value("ef_diesel_t_co2_per_mwh"))
        stored["day_category"] = cats[day_of].astype(float)  # the monitored "category of the day d" of each interval
    return Outputs(eg, np.zeros_like(eg), reference_emissions_t_co2(eg, ef), project_emissions_t_co2(eg), inputs=stored)


DAY_CATEGORY = InputField("day_category", "day_category", "GA_d", "-", "Category of the interval's local day d (KH_AM002): 1 grid supply all day, 0 outage all day, -1 mixed or unknown")
DAY_TABLE = DayTable("day_category", ((GRID_DAY, "grid supply all day: grid EF"), (OUTAGE_DAY, "outage all day: diesel EF"),
                                      (MIXED_DAY, "mixed or not known all day: the lower EF")), local_day_edges_ns)


register(Methodology(
    plant_type="pv", baseline="generation", title="Grid-connected solar PV", credited=True,
    quantities=(Quantity("generation", "kWh", "export_meter", "export_power", "reference", "EG", "Electricity supplied to the grid"),),
    parameters=PVParameters, required_parameters=(),
    formulas=(
        Formula("E_RE,i", "E_RE,i = EG_i,covered", "Reference energy: electricity supplied to the grid over covered time, displacing grid electricity [kWh]; net import intervals negative", "published"),
        Formula("RE_i", "RE_i = E_RE,i / 1000 x EF_RE", "Reference emissions [tCO2]", "published"),
        Formula("PE_i", "PE_i = 0", "Project emissions are zero", "published"),
        *PERIOD_FORMULAS,
    ),
    compute=compute_generation, source="JCM VN_AM007, TH_AM001, KH_AM002, MN_AM003 [published]", states=("grid_available",),
    columns=(
        Column("E_RE", "E_RE,i", "kWh", "Electricity supplied to the grid over covered time", "{generation.covered}", "reference_energy_kwh"),
        Column("E_PJ", "E_PJ,i", "kWh", "Project energy (none)", "0", "project_energy_kwh"),
        Column("E_saved", "E_saved,i", "kWh", "Energy saved", "{E_RE} - {E_PJ}", "energy_saved_kwh"),
        Column("EF_RE", "EF_RE,i", "tCO2/MWh", "Reference EF: by the category of the interval's day (KH_AM002, Days sheet), else the grid EF", (
            "IF({day_category} = 1, {EF_grid}, IF({day_category} = 0, {ef_diesel_t_co2_per_mwh}, MIN({EF_grid}, {ef_diesel_t_co2_per_mwh})))",
            "{EF_grid}"), total=False),
        Column("RE", "RE_i", "tCO2", "Reference emissions", "{E_RE} / {kWh_per_MWh} * {EF_RE}", "reference_t_co2"),
        Column("PE", "PE_i", "tCO2", "Project emissions (none)", "0", "project_t_co2"),
        Column("ER", "ER_i", "tCO2", "Emission reductions", "{RE} - {PE}", "reduction_t_co2"),
    ),
    inputs=(DAY_CATEGORY,), tables=(DAY_TABLE,),
    state_span=state_span_ns,
    conditional_formulas=((lambda p: p.day_category is not None, Formula(
        "EF_RE,d", "EF_RE,d = EF_grid if GA_d = 1 all day d; EF_diesel if GA_d = 0 all day d; min(EF_grid, EF_diesel) otherwise",
        "Reference emission factor of local day d by its category (JCM KH_AM002); a day not yet closed takes the lower factor and is recomputed when it closes",
        "form")),),
))
