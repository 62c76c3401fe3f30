"""Waste-to-energy (incineration with power generation): avoided methane, displaced electricity.

Form of CDM ACM0022 [form]:

- ``ER_y = BE_y - PE_y``
- ``BE_y = BE_CH4,y + EG_net,y x EF_grid``
- ``PE_y = PE_COM,y + PE_EC,y + PE_FC,y``: fossil CO2 from burning plastics
  ``sum_j Q_j x FCC_j x FFC_j x 44/12 x OF``, purchased electricity, auxiliary fuel.
- ``BE_CH4,y`` by first-order decay [published equation, CDM TOOL04], see
  :func:`plantmrv.analytics.baselines.fod_methane`. All of phi, f, OX, F, DOC_f, MCF, DOC_j,
  k_j and GWP_CH4 are parameters with a source. Checked against public copies (2026-11): the
  decay rates k_j (IPCC 2006 Table 3.3, tropical wet) and DOC_j, F, DOC_f (IPCC defaults as also
  listed by 40 CFR 98 subpart HH) match; phi, OX, MCF, GWP_CH4 and the combustion factors could
  not be checked against the TOOL04 / IPCC text and say so in their ``source``: a project
  confirms them in its config.

Interval attribution [derived]: TOOL04 sums over the years x of the crediting period (x = 1 is
the first year, each year "a consecutive period of 12 months" from the start of the crediting
period) the decay in year y of the waste W_x diverted in year x. An interval credits

- the first-year term (y = x) of the waste it diverts itself: ``W_i x DOC_j x (1 - exp(-k_j))``;
- the tail of earlier years' waste (y > x): the year's ``sum_{x<y} W_x DOC_j exp(-k_j (y-x))
  (1 - exp(-k_j))`` spread over year y in proportion to time (:func:`methane_tail_t_co2e`).

Every factor is linear in W, so the intervals of a whole crediting year add up exactly to
TOOL04's BE_CH4,y (:func:`methane_avoided_by_year_t_co2e`), and a report of any period sums its
intervals. Missing data: waste fed and net export in a missing interval count 0 (reference low);
auxiliary fuel and purchased electricity are filled high.

Orders of magnitude to sanity-check against (not tests): Yangon 5,200 MWh/yr and ~2,400
tCO2/yr energy part, ~5,000 t/yr in total; Bac Ninh 91,872 MWh/yr and 41,805 tCO2/yr
[published].

References
----------
.. [1] UNFCCC CDM, ACM0022 "Alternative waste treatment processes".
.. [2] UNFCCC CDM, TOOL04 "Emissions from solid waste disposal sites".
.. [3] plantmrv, ``shared/docs/methodologies.md`` section 3, "Waste-to-energy".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .baselines import fod_methane
from .common import PERIOD_FORMULAS, emission_reductions_t_co2, emissions_t_co2
from .parameters import Param
from .registry import Column, DecayTable, Formula, Inputs, Methodology, Outputs, Quantity, fill_column, register

C_TO_CO2 = 44.0 / 12.0  # [published]
WASTE_TYPES = ("food", "paper", "wood", "textiles", "garden")
_UNVERIFIED = (
    "TOOL04 / IPCC 2006 default as recalled; NOT verified: neither the TOOL04 text nor IPCC 2006 Vol.5 "
    "was retrievable here (checked by searching public copies, 2026-11); confirm per project"
)
_K_SOURCE = (
    "IPCC 2006 Vol.5 Ch.3 Table 3.3, tropical (MAT > 20 C) moist and wet defaults: food 0.40, paper 0.07, "
    "wood 0.035, textiles 0.07 (paper/textiles), garden 0.17 [verified against the table's transcription in "
    "USEPA lfg-calc-py, IPCC_Waste_specific_k-values.csv; TOOL04's own table not retrieved]"
)
_DOC_SOURCE = (
    "IPCC 2006 defaults, wet basis: food 0.15, paper 0.40, wood 0.43, textiles 0.24, garden 0.20 [verified "
    "against 40 CFR 98 subpart HH Table HH-1, waste composition option, which lists the same values; IPCC "
    "Vol.5 Table 2.4 and TOOL04 text not retrieved]"
)


@dataclass(frozen=True)
class WtEParameters:
    phi: Param = field(default_factory=lambda: Param(0.85, "-", "0.85: " + _UNVERIFIED + " (the value for humid/wet conditions, as recalled)", "A", "phi", "Model correction factor (uncertainty)"))
    f: Param = field(default_factory=lambda: Param(0.0, "-", "no methane capture at the baseline landfill (project assumption)", "A", "f", "Fraction of methane captured and flared"))
    gwp_ch4: Param = field(default_factory=lambda: Param(25.0, "tCO2e/tCH4", "IPCC AR4 GWP-100 = 25, used by CDM from 2013 (recalled; NOT verified here against the CDM decision)", "A", "GWP_CH4", "Global warming potential of methane"))
    ox: Param = field(default_factory=lambda: Param(0.0, "-", "0 for a site without an oxidising cover (TOOL04 uses 0.1 where the site is covered with oxidising material): " + _UNVERIFIED, "A", "OX", "Oxidation factor"))
    F: Param = field(default_factory=lambda: Param(0.5, "-", "0.5 [the IPCC default; verified only against 40 CFR 98 subpart HH Table HH-1 (F 0.5), TOOL04 text not retrieved]", "A", "F", "Methane fraction of landfill gas"))
    doc_f: Param = field(default_factory=lambda: Param(0.5, "-", "0.5 [the IPCC default; verified only against 40 CFR 98 subpart HH Table HH-1 (DOCF 0.5), TOOL04 text not retrieved]", "A", "DOC_f", "Fraction of DOC that decomposes"))
    mcf: Param = field(default_factory=lambda: Param(0.8, "-", "0.8 for an unmanaged deep site (IPCC 2006 category as recalled): " + _UNVERIFIED, "A", "MCF", "Methane correction factor"))
    composition: Param = field(default_factory=lambda: Param((0.55, 0.10, 0.03, 0.03, 0.09), "-", "placeholder composition of Yangon MSW by weight (food, paper, wood, textiles, garden); replace with the project's sampling (option C)", "C", "p_j", "Weight fraction of waste type j"))
    doc_j: Param = field(default_factory=lambda: Param((0.15, 0.40, 0.43, 0.24, 0.20), "-", _DOC_SOURCE, "A", "DOC_j", "Degradable organic carbon of type j"))
    k_j_per_year: Param = field(default_factory=lambda: Param((0.40, 0.07, 0.035, 0.07, 0.17), "1/yr", _K_SOURCE, "A", "k_j", "Decay rate of type j"))
    plastic_fraction: Param = field(default_factory=lambda: Param(0.10, "-", "placeholder plastics share of Yangon MSW; replace with the project's sampling", "C", "p_plastic", "Weight fraction of plastics"))
    fcc_plastic: Param = field(default_factory=lambda: Param(0.75, "-", "IPCC 2006 Vol.5 Table 2.4 plastics total carbon content, wet, as recalled: NOT verified here", "A", "FCC_j", "Carbon content of plastics (wet)"))
    ffc_plastic: Param = field(default_factory=lambda: Param(1.0, "-", "IPCC 2006 Vol.5 Table 2.4 plastics fossil carbon fraction, as recalled: NOT verified here", "A", "FFC_j", "Fossil fraction of the carbon"))
    of: Param = field(default_factory=lambda: Param(1.0, "-", "IPCC 2006 Vol.5 Ch.5 oxidation factor of MSW incineration, as recalled: NOT verified here", "A", "OF", "Oxidation factor of combustion"))
    aux_fuel_ef_t_co2_per_t: Param = field(default_factory=lambda: Param(3.186, "tCO2/t", "IPCC 2006 Vol.2 diesel (gas/diesel oil) 74.1 tCO2/TJ x NCV 43.0 GJ/t, as recalled: NOT verified here", "A", "EF_FC", "CO2 per tonne of auxiliary fuel", (0.0, 5.0)))
    fill_waste_t_per_h: Param = field(default_factory=lambda: Param(None, "t/h", "none shipped: the furnace's maximum feed rate (waste burned over a gap counts in PE at this rate)", "A", "W_fill", "Maximum plausible waste feed over missing time", (0.0, None)))
    fill_aux_fuel_kg_per_h: Param = field(default_factory=lambda: Param(None, "kg/h", "none shipped: the auxiliary burners' maximum fuel rate", "A", "FC_fill", "Maximum plausible auxiliary fuel over missing time", (0.0, None)))
    fill_import_power_kw: Param = field(default_factory=lambda: Param(None, "kW", "none shipped: the plant's maximum import (auxiliary load with the generator off)", "A", "P_import,fill", "Maximum plausible purchased power over missing time", (0.0, None)))


def _v(p):
    return p.value


def methane_avoided_t_co2e(waste_t, params: WtEParameters | None = None, years_since_deposit=0):
    """BE_CH4 of waste diverted per interval (first-order decay, TOOL04) [tCO2e].

    Parameters
    ----------
    waste_t : array  Total waste fed per interval [t] (split by ``composition``)
    params : WtEParameters
    years_since_deposit : numeric  y - x [yr]; 0 credits the first year's decay

    Returns
    -------
    ndarray  Avoided methane per interval [tCO2e]
    """
    p = params or WtEParameters()
    w = np.asarray(waste_t, dtype=float)[..., None] * np.asarray(_v(p.composition), dtype=float)
    return fod_methane(w, _v(p.doc_j), _v(p.k_j_per_year), years_since_deposit, _v(p.phi), _v(p.f), _v(p.gwp_ch4), _v(p.ox), _v(p.F), _v(p.doc_f), _v(p.mcf))


def fod_decay_fraction(k_per_year, years_since_deposit):
    """Share of the decomposable carbon of a deposit that decays in year y (TOOL04 [published]).

    ``exp(-k (y - x)) x (1 - exp(-k))``; 0 for y < x.

    Parameters
    ----------
    k_per_year : numeric  Decay rate [1/yr]
    years_since_deposit : numeric  y - x [yr]

    Returns
    -------
    ndarray  Fraction [-]; summed over y = x, x+1, ... it is 1 (all decomposable carbon decays).
    """
    k = np.asarray(k_per_year, dtype=float)
    age = np.asarray(years_since_deposit, dtype=float)
    return np.where(age >= 0, np.exp(-k * np.maximum(age, 0.0)) * (1.0 - np.exp(-k)), 0.0)


def methane_avoided_by_year_t_co2e(waste_t_by_year, params: WtEParameters | None = None):
    """BE_CH4,y of TOOL04 for each crediting year y from the yearly waste W_x (x = 0..y) [tCO2e].

    ``BE_CH4,y = phi (1-f) GWP_CH4 (1-OX) 16/12 F DOC_f MCF sum_{x<=y} sum_j W_j,x DOC_j
    exp(-k_j (y-x)) (1 - exp(-k_j))`` [published equation, CDM TOOL04]

    Parameters
    ----------
    waste_t_by_year : array (n_years,)  Waste diverted in each year of the crediting period,
        the first year first [t] (split by ``composition``)
    params : WtEParameters

    Returns
    -------
    ndarray (n_years,)  Avoided methane of each year [tCO2e]
    """
    w = np.asarray(waste_t_by_year, dtype=float)
    return methane_avoided_t_co2e(w, params) + _tail_by_year(w, params)[: len(w)]


def _tail_by_year(waste_t_by_year, params: WtEParameters | None = None):
    """``sum_{x<y}`` part of BE_CH4,y for y = 0..n (length n + 1; y = 0 has no tail) [tCO2e]."""
    w = np.asarray(waste_t_by_year, dtype=float)
    n = len(w)
    if n == 0:
        return np.zeros(1)
    age = np.arange(n + 1)[:, None] - np.arange(n)[None, :]  # y - x
    per = methane_avoided_t_co2e(np.broadcast_to(w, (n + 1, n)), params, np.maximum(age, 1))
    return np.sum(np.where(age >= 1, per, 0.0), axis=1)


def crediting_year_edges_ns(crediting_start_ns: int, until_ns: int) -> np.ndarray:
    """Starts of the crediting years (consecutive 12-month periods from ``crediting_start_ns``)
    up to the first one after ``until_ns``, as int64 ns [derived from TOOL04's year definition].

    An anniversary on 29 February falls on 28 February in common years.
    """
    from datetime import datetime, timezone

    start = datetime.fromtimestamp(crediting_start_ns // 1_000_000_000, tz=timezone.utc)
    rest_ns = crediting_start_ns % 1_000_000_000
    out = []
    y = 0
    while True:
        year = start.year + y
        try:
            d = start.replace(year=year)
        except ValueError:  # 29 February
            d = start.replace(year=year, day=28)
        t = int(d.timestamp()) * 1_000_000_000 + rest_ns
        out.append(t)
        if t > until_ns:
            break
        y += 1
    return np.asarray(out, dtype=np.int64)


def crediting_year_of(ts_ns, year_edges_ns) -> np.ndarray:
    """Crediting year index (0 = first year) of each timestamp; -1 before the crediting period."""
    return np.searchsorted(np.asarray(year_edges_ns, dtype=np.int64), np.asarray(ts_ns, dtype=np.int64), side="right") - 1


def waste_by_crediting_year_t(edges_ns, waste_t, year_edges_ns, n_years: int) -> np.ndarray:
    """Waste of each crediting year (0..n_years-1) from interval amounts [t].

    Intervals are taken whole in the year of their start (the engine's intervals are whole
    hours or minutes and the crediting period starts on one); intervals before the crediting
    period are left out.
    """
    idx = crediting_year_of(np.asarray(edges_ns, dtype=np.int64)[:-1], year_edges_ns)
    ok = (idx >= 0) & (idx < n_years)
    return np.bincount(idx[ok], weights=np.asarray(waste_t, dtype=float)[ok], minlength=n_years)[:n_years]


def methane_tail_t_co2e(edges_ns, year_edges_ns, waste_t_by_year, params: WtEParameters | None = None):
    """Decay in each interval of the waste diverted in earlier crediting years (y > x) [tCO2e].

    Parameters
    ----------
    edges_ns : array of int64  Interval edges [ns]
    year_edges_ns : array of int64  Crediting year starts, covering the intervals
        (:func:`crediting_year_edges_ns`) [ns]
    waste_t_by_year : array  Waste diverted in crediting years 0, 1, ... [t]; years not given
        count 0
    params : WtEParameters

    Returns
    -------
    ndarray  Tail credited per interval [tCO2e]

    Notes
    -----
    Year y's tail ``sum_{x<y} W_x ... exp(-k (y-x)) (1 - exp(-k))`` is an annual quantity of
    TOOL04; it is spread over year y in proportion to time, so an interval straddling an
    anniversary takes its share of both years and the intervals of a year add up to the
    year's tail [derived]. Time before the crediting period carries no tail.
    """
    edges = np.asarray(edges_ns, dtype=np.int64)
    ye = np.asarray(year_edges_ns, dtype=np.int64)
    n_years = len(ye) - 1
    if n_years < 1:  # the whole window lies before the crediting period: no tail
        return np.zeros(len(edges) - 1)
    w = np.zeros(max(n_years, 0))
    given = np.asarray(waste_t_by_year, dtype=float)[:n_years]
    w[: len(given)] = given
    tail = _tail_by_year(w, params)[:n_years]  # tail of each year y = 0..n_years-1
    # cumulative tail at each edge: whole years before plus the elapsed share of the current one
    done = np.concatenate(([0.0], np.cumsum(tail)))
    y = np.clip(crediting_year_of(edges, ye), -1, n_years - 1)
    yy = np.maximum(y, 0)
    share = np.clip((edges - ye[yy]) / (ye[yy + 1] - ye[yy]), 0.0, 1.0)
    cum = np.where(y < 0, 0.0, done[yy] + tail[yy] * share)
    return np.diff(cum)


def electricity_displaced_t_co2(net_export_kwh, ef_t_co2_per_mwh):
    """BE_EC = EG_net x EF_grid [tCO2]; an interval of net import (negative) is carried into the
    period total, never clipped (the methodology nets over the period)."""
    return emissions_t_co2(np.asarray(net_export_kwh, dtype=float), ef_t_co2_per_mwh)


def reference_emissions_t_co2(waste_t, net_export_kwh, ef_t_co2_per_mwh, params: WtEParameters | None = None):
    """BE = BE_CH4 + EG_net x EF_grid per interval [tCO2e]."""
    return methane_avoided_t_co2e(waste_t, params) + electricity_displaced_t_co2(net_export_kwh, ef_t_co2_per_mwh)


def combustion_emissions_t_co2(waste_t, params: WtEParameters | None = None):
    """PE_COM = Q_plastic x FCC x FFC x 44/12 x OF [tCO2]."""
    p = params or WtEParameters()
    q = np.asarray(waste_t, dtype=float) * _v(p.plastic_fraction)
    return q * _v(p.fcc_plastic) * _v(p.ffc_plastic) * C_TO_CO2 * _v(p.of)


def fuel_emissions_t_co2(aux_fuel_t, params: WtEParameters | None = None):
    """PE_FC = auxiliary fuel x EF_FC [tCO2]."""
    p = params or WtEParameters()
    return np.asarray(aux_fuel_t, dtype=float) * _v(p.aux_fuel_ef_t_co2_per_t)


def project_emissions_t_co2(waste_t, aux_fuel_t, purchased_kwh, ef_t_co2_per_mwh, params: WtEParameters | None = None):
    """PE = PE_COM + PE_EC + PE_FC per interval [tCO2]."""
    return combustion_emissions_t_co2(waste_t, params) + emissions_t_co2(purchased_kwh, ef_t_co2_per_mwh) + fuel_emissions_t_co2(aux_fuel_t, params)


def emission_reductions(reference_t_co2, project_t_co2):
    """ER = BE - PE [tCO2e], full precision per interval."""
    return emission_reductions_t_co2(reference_t_co2, project_t_co2)


# --------------------------------------------------------------------------- registry

def compute_fod(inp: Inputs) -> Outputs:
    """Waste-to-energy: BE = BE_CH4 (first-order decay, with earlier years' tail) + EG_net x EF;
    PE = fossil CO2 of plastics burned + purchased electricity x EF + auxiliary fuel x EF_FC.

    The reference side counts what was measured over covered time (waste diverted, export);
    the project side is filled high over gaps (waste burned, purchased electricity, fuel).
    """
    p = inp.params
    edges = inp.edges_ns
    waste_t = inp.covered["waste"]  # waste of a missing interval is not credited
    export_kwh = inp.covered["export"]
    ef = inp.ef_t_co2_per_mwh
    # TOOL04: the first-year decay of the interval's own waste, plus the decay in this
    # crediting year of the waste diverted in earlier years (the tail)
    year_edges = crediting_year_edges_ns(inp.project.crediting_start_ns, int(edges[-1]))
    n_years = len(year_edges) - 1
    waste_by_year = waste_by_crediting_year_t(edges, waste_t, year_edges, n_years)
    if inp.prior_waste_t_by_year is not None:
        given = np.asarray(inp.prior_waste_t_by_year, dtype=float)[:n_years]
        waste_by_year[: len(given)] += given
    ch4 = methane_avoided_t_co2e(waste_t, p) + methane_tail_t_co2e(edges, year_edges, waste_by_year, p)
    ref_t = ch4 + electricity_displaced_t_co2(export_kwh, ef)
    import_kwh = inp.amounts["import"]
    proj_t = project_emissions_t_co2(inp.amounts["waste_burned"], inp.amounts["aux_fuel"] / 1000.0, import_kwh, ef, p)
    cob = {"waste_t": waste_t, "methane_avoided_t_co2e": ch4, "net_export_kwh": export_kwh, "import_kwh": import_kwh,
           "aux_fuel_kg": inp.amounts["aux_fuel"]}
    return Outputs(export_kwh, import_kwh, ref_t, proj_t, cob)


_WASTE = dict(meter="waste_meter", rate="waste_rate", symbol="W")
WASTE_BURNED = Quantity("waste_burned", "t", side="project", description="Waste burned (fossil CO2 of its plastics)", fill="fill_waste_t_per_h", **_WASTE)
IMPORT = Quantity("import", "kWh", "import_meter", "import_power", "project", "EC_import", "Electricity purchased from the grid", fill="fill_import_power_kw")
AUX_FUEL = Quantity("aux_fuel", "kg", "aux_fuel_meter", "aux_fuel_rate", "project", "FC_aux", "Auxiliary fossil fuel", fill="fill_aux_fuel_kg_per_h")
#: TOOL04 in the workbook: the factor, the waste types, each crediting year's waste and the tail blocks
DECAY_TABLE = DecayTable(
    "fod", "waste", "{phi} * (1 - {f}) * {gwp_ch4} * (1 - {ox}) * (16 / 12) * {F} * {doc_f} * {mcf}", WASTE_TYPES,
    "composition", "doc_j", "k_j_per_year", crediting_year_edges_ns,
)
register(Methodology(
    plant_type="wte", baseline="fod_methane", title="Waste-to-energy (ACM0022 form, TOOL04 first-order decay)", credited=True,
    quantities=(
        Quantity("waste", "t", side="reference", description="Waste diverted from landfill (credited by first-order decay)", **_WASTE),
        WASTE_BURNED,
        Quantity("export", "kWh", "export_meter", "export_power", "reference", "EG_net", "Electricity supplied to the grid"),
        IMPORT, AUX_FUEL,
    ),
    parameters=WtEParameters, required_parameters=("fill_waste_t_per_h", "fill_aux_fuel_kg_per_h", "fill_import_power_kw"),
    formulas=(
        Formula("BE_CH4,y", "BE_CH4,y = phi x (1 - f) x GWP_CH4 x (1 - OX) x 16/12 x F x DOC_f x MCF x sum_x sum_j W_j,x x DOC_j x exp(-k_j (y - x)) x (1 - exp(-k_j))",
                "Methane avoided from landfill, first-order decay; W over covered time; year y's tail of earlier years spread over the year in proportion to time [tCO2e]", "published"),
        Formula("BE_EC,i", "BE_EC,i = EG_net,i,covered / 1000 x EF_grid", "Grid electricity displaced [tCO2]", "form"),
        Formula("PE_COM,i", "PE_COM,i = W_burned,i x p_plastic x FCC x FFC x 44/12 x OF", "Fossil CO2 of plastics burned; W_burned filled at W_fill over missing time [tCO2]", "form"),
        Formula("PE_EC,i", "PE_EC,i = EC_import,i / 1000 x EF_grid", "Purchased electricity; filled at P_import,fill over missing time [tCO2]", "form"),
        Formula("PE_FC,i", "PE_FC,i = FC_aux,i / 1000 x EF_FC", "Auxiliary fossil fuel; filled at FC_fill over missing time [tCO2]", "form"),
        Formula("ER_i", "ER_i = BE_CH4,i + BE_EC,i - PE_COM,i - PE_EC,i - PE_FC,i", "Emission reductions of interval i [tCO2e]", "form"),
        PERIOD_FORMULAS[1],
    ),
    compute=compute_fod, source="CDM ACM0022 [form], CDM TOOL04 [published equation], methodologies.md s.3 'Waste-to-energy'",
    columns=(
        fill_column(WASTE_BURNED, "W_burned", "W_burned,i", "Waste burned, filled conservatively over missing time"),
        fill_column(IMPORT, "E_PJ", "EC_import,i", "Electricity purchased, filled conservatively over missing time", "project_energy_kwh"),
        fill_column(AUX_FUEL, "FC_aux", "FC_aux,i", "Auxiliary fuel, filled conservatively over missing time"),
        Column("E_RE", "EG_net,i", "kWh", "Electricity supplied to the grid over covered time", "{export.covered}", "reference_energy_kwh"),
        Column("E_saved", "E_saved,i", "kWh", "Net electricity: supplied - purchased", "{E_RE} - {E_PJ}", "energy_saved_kwh"),
        Column("BE_CH4_first", "BE_CH4,first,i", "tCO2e", "Methane avoided: first-year decay of the interval's own waste (FOD sheet)", "{fod.factor} * {waste.covered} * {fod.first_year}"),
        Column("BE_CH4_tail", "BE_CH4,tail,i", "tCO2e", "Methane avoided: the interval's share of its crediting year's decay of earlier years' waste (FOD sheet)", "{fod.tail}"),
        Column("BE_CH4", "BE_CH4,i", "tCO2e", "Methane avoided from landfill", "{BE_CH4_first} + {BE_CH4_tail}"),
        Column("BE_EC", "BE_EC,i", "tCO2", "Grid electricity displaced", "{E_RE} / {kWh_per_MWh} * {EF_grid}"),
        Column("RE", "BE_i", "tCO2e", "Reference emissions: methane avoided + electricity displaced", "{BE_CH4} + {BE_EC}", "reference_t_co2"),
        Column("PE_COM", "PE_COM,i", "tCO2", "Fossil CO2 of the plastics burned", "{W_burned} * {plastic_fraction} * {fcc_plastic} * {ffc_plastic} * (44 / 12) * {of}"),
        Column("PE_EC", "PE_EC,i", "tCO2", "Purchased electricity", "{E_PJ} / {kWh_per_MWh} * {EF_grid}"),
        Column("PE_FC", "PE_FC,i", "tCO2", "Auxiliary fossil fuel", "{FC_aux} / 1000 * {aux_fuel_ef_t_co2_per_t}"),
        Column("PE", "PE_i", "tCO2", "Project emissions", "{PE_COM} + {PE_EC} + {PE_FC}", "project_t_co2"),
        Column("ER", "ER_i", "tCO2e", "Emission reductions", "{RE} - {PE}", "reduction_t_co2"),
    ),
    tables=(DECAY_TABLE,),
))
