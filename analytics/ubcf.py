"""U-BCF (upward biological contact filtration) drinking-water pre-treatment KPIs. NOT CREDITED.

No crediting methodology exists for U-BCF [published fact, methodologies.md s.3]. plantmrv
reports transparent KPIs, every one labelled ``credited = False``:

- energy per m3 against a declared baseline, ``E_RE = SEC_BL x V`` (baseline
  ``specific_energy``) [form, J-Credit EN-S-020 as a pattern only];
- chemicals per m3 (chlorine, coagulant) against the baseline period [form];
- water quality as co-benefits: ammonium, turbidity (and manganese) removal
  ``1 - out / in`` [published KPI definitions]. Published facts to compare with: U-BCF breaks
  down 30-40% of organics, removes 60-90% of ammonium-N and dissolved manganese, running cost
  about 1/20 of ozone treatment.

The comparator is declared per project (its pre-project period or a design alternative). A CO2
factor for chemicals is a parameter with a source, empty by default (then no CO2 is shown for
chemicals). Missing data: the conservative rule of :mod:`.common`.

References
----------
.. [1] plantmrv, ``shared/docs/methodologies.md`` section 3, "U-BCF drinking-water pre-treatment".
.. [2] Hai Phong Vinh Bao U-BCF plant (5,000 m3/d, 2013).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .baselines import specific_energy
from .common import ELECTRICITY_COLUMNS, ELECTRICITY_FORMULAS, FILL_FORMULA, PERIOD_FORMULAS, emission_reductions_t_co2, emissions_t_co2, fill_power_param
from .parameters import Param
from .registry import Column, Formula, Inputs, Methodology, Outputs, Quantity, fill_column, register

CREDITED = False
LABEL = "NOT CREDITED: no crediting methodology exists for U-BCF; KPIs against a declared baseline"


@dataclass(frozen=True)
class UBCFParameters:
    sec_baseline_kwh_per_m3: Param = field(default_factory=lambda: Param(None, "kWh/m3", "none shipped: the project's declared comparator (pre-project period or design alternative)", "B", "SEC_BL", "Baseline energy per m3"))
    chlorine_baseline_kg_per_m3: Param = field(default_factory=lambda: Param(None, "kg/m3", "none shipped: the project's pre-project chlorine dose", "B", "", "Baseline chlorine per m3"))
    coagulant_baseline_kg_per_m3: Param = field(default_factory=lambda: Param(None, "kg/m3", "none shipped: the project's pre-project coagulant dose", "B", "", "Baseline coagulant per m3"))
    chlorine_ef_t_co2_per_t: Param = field(default_factory=lambda: Param(None, "tCO2/t", "empty by default (methodologies.md s.3): no CO2 shown for chemicals", "A", "", "CO2 per tonne of chlorine"))
    coagulant_ef_t_co2_per_t: Param = field(default_factory=lambda: Param(None, "tCO2/t", "empty by default (methodologies.md s.3): no CO2 shown for chemicals", "A", "", "CO2 per tonne of coagulant"))
    fill_power_kw: Param = field(default_factory=lambda: fill_power_param("plant's pumps and blowers"))


def specific_energy_kwh_per_m3(energy_kwh, volume_m3):
    """Energy per m3 of treated water [kWh/m3]; NaN where no water was treated."""
    e = np.asarray(energy_kwh, dtype=float)
    v = np.asarray(volume_m3, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, e / np.where(v > 0, v, 1.0), np.nan)


def reference_energy_kwh(volume_m3, sec_baseline_kwh_per_m3):
    """Declared-baseline energy for the treated volume: SEC_BL x V [kWh]."""
    return specific_energy(volume_m3, sec_baseline_kwh_per_m3)


def reference_emissions_t_co2(volume_m3, sec_baseline_kwh_per_m3, ef_t_co2_per_mwh):
    """SEC_BL x V x EF [tCO2] (NOT CREDITED)."""
    return emissions_t_co2(reference_energy_kwh(volume_m3, sec_baseline_kwh_per_m3), ef_t_co2_per_mwh)


def project_emissions_t_co2(energy_kwh, ef_t_co2_per_mwh):
    """Plant energy x EF [tCO2] (NOT CREDITED)."""
    return emissions_t_co2(energy_kwh, ef_t_co2_per_mwh)


def emission_reductions(reference_t_co2, project_t_co2):
    """Reference - project [tCO2] (NOT CREDITED: a KPI, never a credit)."""
    return emission_reductions_t_co2(reference_t_co2, project_t_co2)


def chemical_saved_kg(dose_kg, volume_m3, baseline_kg_per_m3):
    """Chemical saved against the baseline dose: ``baseline x V - dose`` [kg]."""
    return np.asarray(baseline_kg_per_m3, dtype=float) * np.asarray(volume_m3, dtype=float) - np.asarray(dose_kg, dtype=float)


def chemical_emissions_t_co2(chemical_kg, ef_t_co2_per_t):
    """CO2 of a chemical amount [tCO2]; 0 when the factor is not set (None)."""
    if ef_t_co2_per_t is None:
        return np.zeros_like(np.asarray(chemical_kg, dtype=float))
    return np.asarray(chemical_kg, dtype=float) / 1000.0 * ef_t_co2_per_t


def removal_fraction(inflow_mg_per_l, outflow_mg_per_l):
    """Removal ``1 - out / in`` (ammonium, turbidity, manganese) [-]; NaN where in <= 0."""
    cin = np.asarray(inflow_mg_per_l, dtype=float)
    cout = np.asarray(outflow_mg_per_l, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cin > 0, 1.0 - cout / np.where(cin > 0, cin, 1.0), np.nan)


# --------------------------------------------------------------------------- registry

def compute_kpis(inp: Inputs) -> Outputs:
    """U-BCF KPIs against the declared baseline (NOT CREDITED): energy, chemicals, water quality."""
    vol = inp.covered["volume"]
    ref_kwh = reference_energy_kwh(vol, inp.value("sec_baseline_kwh_per_m3"))
    proj_kwh = inp.amounts["project_energy"]
    ef = inp.ef_t_co2_per_mwh
    cob = {"volume_m3": vol}
    for q, name in (("chlorine", "chlorine_kg"), ("coagulant", "coagulant_kg")):
        if q in inp.covered:
            cob[name] = inp.covered[q]
    from .amounts import mean_per_interval

    for kpi, (fin, fout) in _quality_pairs(inp.project).items():
        cin, cout = inp.extra_signals.get(f"quality:{fin}"), inp.extra_signals.get(f"quality:{fout}")
        if cin and cout:
            mi, _ = mean_per_interval(*cin[0], inp.edges_ns)
            mo, _ = mean_per_interval(*cout[0], inp.edges_ns)
            cob[f"{kpi}_removal"] = removal_fraction(mi, mo)
    return Outputs(ref_kwh, proj_kwh, reference_emissions_t_co2(vol, inp.value("sec_baseline_kwh_per_m3"), ef), project_emissions_t_co2(proj_kwh, ef), cob)


def _quality_pairs(project) -> dict[str, tuple[str, str]]:
    out = {}
    for a in project.assets:
        out.update(a.fields.quality_pairs)
    return out


PROJECT_ENERGY = Quantity("project_energy", "kWh", "energy_meter", "power", "project", "E_PJ", "Electricity of pumps and blowers", fill="fill_power_kw")


def _chemical_columns(name: str, symbol: str) -> tuple[Column, ...]:
    """KPIs of a dosed chemical against the baseline dose (shown when measured; CO2 only with a factor)."""
    return (
        Column(f"{symbol}_per_m3", f"{symbol}_i / V_i", "kg/m3", f"{name.capitalize()} per m3 treated (KPI, not credited)",
               f'IF({{volume.covered}} > 0, {{{name}.covered}} / {{volume.covered}}, "")', total=False),
        Column(f"{symbol}_saved", f"{symbol}_saved,i", "kg", f"{name.capitalize()} saved against the baseline dose (KPI, not credited)",
               f"{{{name}_baseline_kg_per_m3}} * {{volume.covered}} - {{{name}.covered}}"),
        Column(f"{symbol}_co2", f"CO2({symbol}_saved,i)", "tCO2", f"CO2 of the {name} saved (KPI, not credited)",
               f"{{{symbol}_saved}} / 1000 * {{{name}_ef_t_co2_per_t}}"),
    )


register(Methodology(
    plant_type="ubcf", baseline="specific_energy", title="U-BCF drinking-water pre-treatment (KPIs, not credited)", credited=CREDITED,
    quantities=(
        PROJECT_ENERGY,
        Quantity("volume", "m3", "volume_meter", "flow", "reference", "V", "Water treated"),
        Quantity("chlorine", "kg", None, "chlorine_rate", "kpi", "Cl", "Chlorine dosed (co-benefit)", required=False),
        Quantity("coagulant", "kg", None, "coagulant_rate", "kpi", "Coag", "Coagulant dosed (co-benefit)", required=False),
    ),
    parameters=UBCFParameters, required_parameters=("sec_baseline_kwh_per_m3", "fill_power_kw"),
    formulas=(
        Formula("E_RE,i", "E_RE,i = SEC_BL x V_i,covered", "Declared-baseline energy for the water treated over covered time [kWh] (NOT CREDITED)", "form"),
        FILL_FORMULA, *ELECTRICITY_FORMULAS, *PERIOD_FORMULAS,
        Formula("removal_i", "removal_i = 1 - mean(C_out,i) / mean(C_in,i)", "Co-benefit: ammonium / turbidity / manganese removal [-]", "form"),
    ),
    compute=compute_kpis, source="methodologies.md s.3 'U-BCF drinking-water pre-treatment': no crediting methodology exists; KPIs", label=LABEL,
    columns=(
        fill_column(PROJECT_ENERGY, "E_PJ", "E_PJ,i", "Plant energy, filled conservatively over missing time (NOT CREDITED)", "project_energy_kwh"),
        Column("E_RE", "E_RE,i", "kWh", "Declared-baseline energy: SEC_BL x covered volume (NOT CREDITED)", "{volume.covered} * {sec_baseline_kwh_per_m3}", "reference_energy_kwh"),
        *ELECTRICITY_COLUMNS,
        Column("SEC_PJ", "SEC_PJ,i", "kWh/m3", "Energy per m3 treated, against SEC_BL (KPI, not credited)",
               'IF({volume.covered} > 0, {project_energy.covered} / {volume.covered}, "")', total=False),
        *_chemical_columns("chlorine", "Cl"), *_chemical_columns("coagulant", "Coag"),
    ),
))
