"""Dashboard generators: one Grafana dashboard per plant type and one for the portfolio.

Each plant-type dashboard has the same five rows over its own measurement (see
``docs/data-model.md``): the process, energy, the MRV results of the ``mrv`` measurement,
data quality (samples per interval, non-GOOD samples from ``sample_quality``, completeness and
gap-filled time of the MRV intervals) and gateway health (buffer depth, online, dropped samples,
age of the last sample). The portfolio dashboard sums the ``mrv`` results of all projects:
tCO2 reduced today / this month / this monitoring period, energy saved, data completeness and
gateways online.

Public API: :func:`build_all` (uid -> dashboard JSON dict), :func:`render` (stable JSON text),
:func:`inventory` (``PANELS.md``),
:func:`schema_errors` (Grafana's dashboard schema as encoded in grafana-foundation-sdk),
:data:`PLANT_TYPES`.

Meter panels use ``non_negative_difference(max(meter))`` per interval: an interval in which a
register rolls over or is reset shows no bar rather than a huge negative one.

The uid of every dashboard is fixed (``plantmrv-<type>``) so links, provisioning and ``push``
address the same dashboard across builds; ``VERSION`` is bumped by hand when the generated
content changes (the tests compare the committed JSON with a fresh build, so a change is seen).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dash_m

from plantmrv.i18n import N_, fill
from plantmrv.i18n import gettext as _

from . import panels as P
from .panels import InfluxQL, select
from .settings import BuildSettings

#: Dashboard version written into every generated file (bump when the generated content changes).
VERSION = 3
TAGS = ["plantmrv"]


# --------------------------------------------------------------------------- plant types


@dataclass(frozen=True)
class PlantType:
    """What a plant-type dashboard shows: its measurement and the type-specific rows."""

    key: str  # dashboard uid suffix and file name
    title: str
    measurement: str
    #: a field every sample row carries, used for samples-per-interval and last-data panels
    heartbeat_field: str
    process: Callable[[str, BuildSettings], list]
    energy: Callable[[str], list]
    description: str = ""
    cobenefits: Callable[[], list] = lambda: []


BY_ASSET = 'time($__interval), "asset"'
ALIAS_ASSET = "$tag_asset $col"


def _q(exprs, m, where=None, group=BY_ASSET, fill="fill(null)") -> InfluxQL:
    return InfluxQL(select(exprs, m, where or P.plant_where(), group, fill)).alias(ALIAS_ASSET)


def _meter_per_interval(meter: str, alias: str, m: str) -> InfluxQL:
    """Increase of a cumulative register per interval (a rollover or reset gives no negative bar)."""
    return _q([(f'non_negative_difference(max("{meter}"))', alias)], m)


def _pump_process(m: str, settings: BuildSettings) -> list:
    return [
        P.timeseries(_("Flow"), P.U_M3_H, [_q([('mean("flow_m3_per_h")', "flow")], m)], description=_("Pumped flow per pump [m3/h]."), axis_label=_("flow [m³/h]")),
        P.timeseries(_("Head"), P.U_M, [_q([('mean("head_m")', "head")], m)], description=_("Total dynamic head per pump [m]."), axis_label=_("head [m]")),
        P.timeseries(
            _("Wire-to-water efficiency"),
            P.U_RATIO,
            [_q([('mean("efficiency")', "efficiency")], m)],
            description=_("eta = rho g Q H / P_el. Below 60 % the pump is worn or far from its best-efficiency point: check impeller and duty point."),
            axis_label=_("efficiency"),
            thresholds=P.steps((None, "red"), (0.6, "orange"), (0.7, "green")),
            max_val=1,
        ),
        P.timeseries(_("Running"), P.U_ONOFF, [_q([('max("running")', "running")], m)], description=_("1 when the pump runs."), axis_label=_("state"), max_val=1),
    ]


def _pump_energy(m: str) -> list:
    return [
        P.timeseries(
            _("Electrical and shaft power"),
            P.U_KW,
            [_q([('mean("power_kw")', "electrical"), ('mean("shaft_power_kw")', "shaft")], m)],
            description=_("Electrical input and shaft power per pump [kW]."),
            axis_label=_("power [kW]"),
        ),
        _specific_energy_panel(m),
        _meter_energy_panel(m, _("Increase of the energy meter per interval [kWh].")),
    ]


def _specific_energy_panel(m: str):
    return P.timeseries(
        _("Specific energy"),
        P.U_KWH_M3,
        [_q([('mean("power_kw") / mean("flow_m3_per_h")', "specific_energy")], m)],
        description=_("Electricity per pumped volume = mean power / mean flow [kWh/m3]."),
        axis_label=_("energy [kWh/m³]"),
    )


def _meter_energy_panel(m: str, description: str):
    return P.timeseries(
        _("Energy per interval (meter)"),
        P.U_KWH,
        [_meter_per_interval("energy_kwh", "energy", m)],
        description=description,
        axis_label=_("energy [kWh]"),
        bars=True,
    )


def _vsd_process(m: str, settings: BuildSettings) -> list:
    return [
        P.timeseries(_("Speed"), P.U_PERCENT, [_q([('mean("speed_pct")', "speed")], m)], description=_("Drive speed [% of rated]."), axis_label=_("speed [%]"), max_val=100),
        P.timeseries(
            _("Output frequency"),
            P.U_HZ,
            [_q([('mean("frequency_hz")', "frequency")], m)],
            description=_("Drive output frequency [Hz]. Above 50 Hz the motor runs beyond its rated speed."),
            axis_label=_("frequency [Hz]"),
            thresholds=P.steps((None, "green"), (50.5, "red")),
        ),
        P.timeseries(_("Flow"), P.U_M3_H, [_q([('mean("flow_m3_per_h")', "flow")], m)], description=_("Flow of the driven pump [m3/h]."), axis_label=_("flow [m³/h]")),
        P.timeseries(_("Running"), P.U_ONOFF, [_q([('max("running")', "running")], m)], description=_("1 when the drive runs."), axis_label=_("state"), max_val=1),
    ]


def _vsd_energy(m: str) -> list:
    return [
        P.timeseries(_("Drive input power"), P.U_KW, [_q([('mean("power_kw")', "power")], m)], description=_("Electrical input of the drive [kW]."), axis_label=_("power [kW]")),
        _specific_energy_panel(m),
        _meter_energy_panel(m, _("Increase of the drive's energy meter per interval [kWh].")),
    ]


def _ubcf_process(m: str, settings: BuildSettings) -> list:
    limit = settings.dashboards.alerts.treated_turbidity_ntu
    return [
        P.timeseries(_("Treated flow"), P.U_M3_H, [_q([('mean("flow_m3_per_h")', "flow")], m)], description=_("Flow through the U-BCF [m3/h]."), axis_label=_("flow [m³/h]")),
        P.timeseries(
            _("Turbidity"),
            P.U_NTU,
            [_q([('mean("raw_turbidity_ntu")', "raw"), ('mean("treated_turbidity_ntu")', "treated")], m)],
            description=fill(_("Raw and treated turbidity [NTU]. Treated water above {limit:g} NTU exceeds the configured limit (QCVN 01-1:2018: 2 NTU for drinking water): check backwash and coagulant dosing."), limit=limit),
            axis_label=_("turbidity [NTU]"),
            thresholds=P.steps((None, "green"), (0.75 * limit, "orange"), (limit, "red")),
        ),
        P.timeseries(
            _("Ammonium"),
            P.U_MG_L,
            [_q([('mean("nh4_in_mg_per_l")', "inlet"), ('mean("nh4_out_mg_per_l")', "outlet")], m)],
            description=_("NH4 before and after biological treatment [mg/L]. Outlet above 0.3 mg/L exceeds QCVN 01-1:2018: check aeration (blowers)."),
            axis_label=_("NH4 [mg/L]"),
            thresholds=P.steps((None, "green"), (0.3, "red")),
        ),
        P.timeseries(_("Water temperature"), P.U_CELSIUS, [_q([('mean("water_temp_c")', "water_temp")], m)], description=_("Raw water temperature [degC]."), axis_label=_("temperature [°C]"), min_val=None),
        P.timeseries(
            _("Chemical dosing"),
            P.U_KG_H,
            [_q([('mean("chlorine_kg_per_h")', "chlorine"), ('mean("coagulant_kg_per_h")', "coagulant")], m)],
            description=_("Chlorine and coagulant dosing rates [kg/h]."),
            axis_label=_("dosing [kg/h]"),
        ),
        P.timeseries(_("Backwash"), P.U_ONOFF, [_q([('max("backwash")', "backwash")], m)], description=_("1 while a filter backwash runs."), axis_label=_("state"), max_val=1),
    ]


def _ubcf_energy(m: str) -> list:
    return [
        P.timeseries(
            _("Pump and blower power"),
            P.U_KW,
            [_q([('mean("pump_power_kw")', "pumps"), ('mean("blower_power_kw")', "blowers")], m)],
            description=_("Electrical power of the pumps and the aeration blowers [kW]."),
            axis_label=_("power [kW]"),
        ),
        P.timeseries(
            _("Specific energy"),
            P.U_KWH_M3,
            [_q([('(mean("pump_power_kw") + mean("blower_power_kw")) / mean("flow_m3_per_h")', "specific_energy")], m)],
            description=_("Electricity per treated volume = (pump + blower power) / flow [kWh/m3]."),
            axis_label=_("energy [kWh/m³]"),
        ),
        P.timeseries(
            _("Energy per interval (meters)"),
            P.U_KWH,
            [_q([('non_negative_difference(max("pump_energy_kwh"))', "pumps"), ('non_negative_difference(max("blower_energy_kwh"))', "blowers")], m)],
            description=_("Increase of the pump and blower energy meters per interval [kWh]."),
            axis_label=_("energy [kWh]"),
            bars=True,
        ),
    ]


def _wte_process(m: str, settings: BuildSettings) -> list:
    return [
        P.timeseries(_("Waste feed"), P.U_T_H, [_q([('mean("waste_feed_t_per_h")', "waste_feed")], m)], description=_("Waste fed to the furnace [t/h]."), axis_label=_("feed [t/h]")),
        P.timeseries(
            _("Waste fed per interval (weighbridge)"),
            "suffix: t",
            [_meter_per_interval("waste_fed_t", "waste_fed", m)],
            description=_("Increase of the weighbridge total per interval [t]."),
            axis_label=_("waste [t]"),
            bars=True,
        ),
        P.timeseries(_("Lower heating value"), P.U_MJ_KG, [_q([('mean("lhv_mj_per_kg")', "lhv")], m)], description=_("LHV of the fed waste [MJ/kg]."), axis_label=_("LHV [MJ/kg]")),
        P.timeseries(_("Steam"), P.U_T_H, [_q([('mean("steam_t_per_h")', "steam")], m)], description=_("Boiler steam production [t/h]."), axis_label=_("steam [t/h]")),
        P.timeseries(
            _("Auxiliary fuel"),
            P.U_KG_H,
            [_q([('mean("aux_fuel_kg_per_h")', "aux_fuel")], m)],
            description=_("Auxiliary fuel burnt [kg/h]: project emissions. Sustained use means wet waste or a combustion problem."),
            axis_label=_("fuel [kg/h]"),
            thresholds=P.steps((None, "green"), (50, "orange")),
        ),
        P.timeseries(_("Incinerating"), P.U_ONOFF, [_q([('max("incinerating")', "incinerating")], m)], description=_("1 while the furnace burns waste."), axis_label=_("state"), max_val=1),
    ]


def _wte_energy(m: str) -> list:
    return [
        P.timeseries(
            _("Gross, auxiliary and net power"),
            P.U_KW,
            [_q([('mean("gross_power_kw")', "gross"), ('mean("aux_power_kw")', "auxiliary"), ('mean("gross_power_kw") - mean("aux_power_kw")', "net")], m)],
            description=_("Generator output, auxiliary consumption and their difference [kW]."),
            axis_label=_("power [kW]"),
            min_val=None,
        ),
        P.timeseries(
            _("Net electricity per tonne of waste"),
            P.U_KWH_T,
            [_q([('(mean("gross_power_kw") - mean("aux_power_kw")) / mean("waste_feed_t_per_h")', "net_per_t")], m)],
            description=_("(gross - auxiliary power) / waste feed [kWh/t]."),
            axis_label=_("energy [kWh/t]"),
            min_val=None,
        ),
        P.timeseries(
            _("Net export per interval (meter)"),
            P.U_KWH,
            [_meter_per_interval("net_export_energy_kwh", "net_export", m)],
            description=_("Increase of the export meter per interval [kWh]."),
            axis_label=_("energy [kWh]"),
            bars=True,
        ),
    ]


def _pv_process(m: str, settings: BuildSettings) -> list:
    return [
        P.timeseries(_("Irradiance"), P.U_W_M2, [_q([('mean("irradiance_w_per_m2")', "irradiance")], m)], description=_("Plane-of-array irradiance [W/m2]."), axis_label=_("irradiance [W/m²]")),
        P.timeseries(
            _("Module temperature"),
            P.U_CELSIUS,
            [_q([('mean("module_temp_c")', "module_temp")], m)],
            description=_("Module temperature [degC]. Above 75 degC output drops sharply: check ventilation and soiling."),
            axis_label=_("temperature [°C]"),
            thresholds=P.steps((None, "green"), (65, "orange"), (75, "red")),
            min_val=None,
        ),
    ]


def _pv_energy(m: str) -> list:
    return [
        P.timeseries(
            _("DC and AC power"),
            P.U_KW,
            [_q([('mean("dc_power_kw")', "dc"), ('mean("ac_power_kw")', "ac")], m)],
            description=_("Array DC power and inverter AC output [kW]."),
            axis_label=_("power [kW]"),
        ),
        P.timeseries(
            _("Inverter efficiency"),
            P.U_RATIO,
            [_q([('mean("ac_power_kw") / mean("dc_power_kw")', "inverter_efficiency")], m, where=P.plant_where('"dc_power_kw" > 1'))],
            description=_("AC / DC power while the array produces more than 1 kW. Below 94 % check the inverter."),
            axis_label=_("efficiency"),
            thresholds=P.steps((None, "red"), (0.94, "green")),
            max_val=1,
        ),
        P.timeseries(
            _("Export per interval (meter)"),
            P.U_KWH,
            [_meter_per_interval("export_energy_kwh", "export", m)],
            description=_("Increase of the export meter per interval [kWh]."),
            axis_label=_("energy [kWh]"),
            bars=True,
        ),
    ]


def _cobenefit(title, unit, exprs, description, axis_label, bars=True):
    return P.timeseries(title, unit, [_mrv(exprs)], description=description, axis_label=axis_label, bars=bars, interval="1h")


def _pump_cobenefits() -> list:
    return [
        _cobenefit(_("Running cost saved"), P.U_COUNT, [('sum("electricity_cost_saved")', "cost_saved")], _("Electricity cost saved per interval: energy saved x the project's tariff (its currency, e.g. VND)."), _("cost saved")),
    ]


def _vsd_cobenefits() -> list:
    return [
        _cobenefit(_("Operating hours"), P.U_HOURS, [('sum("operating_h")', "operating")], _("Hours the drive ran per interval (the constant-power baseline counts these) [h]."), _("time [h]")),
    ]


def _ubcf_cobenefits() -> list:
    return [
        _cobenefit(_("Treated-water quality: removal"), P.U_RATIO, [('mean("nh4_removal")', "nh4_removal"), ('mean("turbidity_removal")', "turbidity_removal")], _("Fraction of ammonium and turbidity the plant removes (1 - outlet / inlet) per interval."), _("removal"), bars=False),
        _cobenefit(_("Water treated"), P.U_M3, [('sum("volume_m3")', "volume")], _("Treated volume per interval [m3]."), _("volume [m³]")),
        _cobenefit(_("Chemicals used"), "suffix: kg", [('sum("chlorine_kg")', "chlorine"), ('sum("coagulant_kg")', "coagulant")], _("Chlorine and coagulant dosed per interval [kg]: biological treatment needs less pre-chlorination."), _("chemicals [kg]")),
    ]


def _wte_cobenefits() -> list:
    return [
        _cobenefit(_("Waste diverted from landfill"), "suffix: t", [('sum("waste_t")', "waste")], _("Waste incinerated instead of landfilled per interval [t]."), _("waste [t]")),
        _cobenefit(_("Landfill methane avoided"), P.U_TCO2, [('sum("methane_avoided_t_co2e")', "methane_avoided")], _("Methane the diverted waste would have produced in the landfill (first-order decay) per interval [tCO2e]."), _("methane [tCO₂e]")),
    ]


def _pv_cobenefits() -> list:
    return [
        _cobenefit(_("Grid electricity displaced"), P.U_KWH, [('sum("reference_energy_kwh")', "displaced")], _("Electricity the grid did not have to generate per interval [kWh]."), _("energy [kWh]")),
    ]


PLANT_TYPES: dict[str, PlantType] = {
    t.key: t
    for t in (
        PlantType("ubcf", N_("U-BCF water plant"), "ubcf", "flow_m3_per_h", _ubcf_process, _ubcf_energy, N_("Upward-flow biological contact filtration pre-treatment."), _ubcf_cobenefits),
        PlantType("pump", N_("Pump station"), "pump", "power_kw", _pump_process, _pump_energy, N_("High-efficiency pump station."), _pump_cobenefits),
        PlantType("vsd", N_("Inverter / VSD"), "vsd", "power_kw", _vsd_process, _vsd_energy, N_("Variable-speed drives on pumps and blowers."), _vsd_cobenefits),
        PlantType("wte", N_("Waste-to-energy"), "wte", "gross_power_kw", _wte_process, _wte_energy, N_("Waste incineration with power generation."), _wte_cobenefits),
        PlantType("pv", N_("Solar PV"), "pv", "ac_power_kw", _pv_process, _pv_energy, N_("Solar PV arrays and inverters."), _pv_cobenefits),
    )
}


# --------------------------------------------------------------------------- shared rows


def _mrv(expr_alias, interval=P.MRV_HOURLY, group='time($__interval), "project"', fill="fill(none)") -> InfluxQL:
    return InfluxQL(select(expr_alias, "mrv", P.mrv_where(interval), group, fill)).alias("$tag_project $col")


def mrv_row(settings: BuildSettings) -> list:
    return [
        P.timeseries(
            _("Reference vs project emissions"),
            P.U_TCO2,
            [_mrv([('sum("reference_t_co2")', "reference"), ('sum("project_t_co2")', "project")])],
            description=_("RE_p and PE_p per interval from the hourly MRV results [tCO2]."),
            axis_label=_("emissions [tCO₂]"),
            bars=True,
            interval="1h",
        ),
        P.timeseries(
            _("Emission reductions, cumulative"),
            P.U_TCO2,
            [_mrv([('cumulative_sum(sum("reduction_t_co2"))', "reduction")])],
            description=_("ER_p = RE_p - PE_p accumulated from the start of the time range [tCO2]."),
            axis_label=_("reductions [tCO₂]"),
            interval="1h",
            min_val=None,
        ),
        P.timeseries(
            _("Energy saved"),
            P.U_KWH,
            [_mrv([('sum("energy_saved_kwh")', "energy_saved")])],
            description=_("Reference minus project energy per interval [kWh]."),
            axis_label=_("energy [kWh]"),
            bars=True,
            interval="1h",
            min_val=None,
        ),
        P.stat(
            _("Reductions in range"),
            P.U_TCO2,
            [_mrv([('sum("reduction_t_co2")', "reduction")], group='"project"')],
            description=_("Sum of ER_p over the dashboard time range per project [tCO2]. Click a project for its verifier export of the range."),
            calc="sum",
            decimals=2,
            width=12,
            height=8,
            links=[export_link(settings, "${__field.labels.project}")],
        ),
    ]


def quality_row(pt: PlantType) -> list:
    m = pt.measurement
    sq_where = f"WHERE \"source\" = '{m}' AND \"site\" =~ /^$site$/ AND \"asset\" =~ /^$asset$/ AND $timeFilter"
    return [
        P.timeseries(
            _("Samples per interval"),
            P.U_COUNT,
            [_q([(f'count("{pt.heartbeat_field}")', "samples")], m, fill="fill(0)")],
            description=_("Number of {field} samples per interval; a drop to zero is a gap in the data.").format(field=pt.heartbeat_field),
            axis_label=_("samples"),
            bars=True,
        ),
        P.timeseries(
            _("Non-GOOD samples"),
            P.U_COUNT,
            [
                InfluxQL(select([('count("value")', "bad")], "sample_quality", sq_where.replace("AND $timeFilter", 'AND "quality" = 2 AND $timeFilter'), 'time($__interval), "asset", "field"', "fill(0)")).alias("$tag_asset $tag_field $col"),
                InfluxQL(select([('count("value")', "uncertain")], "sample_quality", sq_where.replace("AND $timeFilter", 'AND "quality" = 1 AND $timeFilter'), 'time($__interval), "asset", "field"', "fill(0)")).alias("$tag_asset $tag_field $col"),
            ],
            description=_("Samples the source flagged BAD (dropped from analytics) or UNCERTAIN, per field. Any BAD sample: check the sensor or the PLC mapping."),
            axis_label=_("samples"),
            bars=True,
            thresholds=P.steps((None, "green"), (1, "red")),
        ),
        P.timeseries(
            _("MRV data completeness"),
            P.U_RATIO,
            [_mrv([('mean("completeness")', "completeness")])],
            description=_("Covered fraction of each hourly MRV interval. Below 90 % the interval relies on conservative gap filling."),
            axis_label=_("completeness"),
            thresholds=P.COMPLETENESS,
            max_val=1,
            interval="1h",
        ),
        P.timeseries(
            _("Gap-filled time"),
            P.U_SECONDS,
            [_mrv([('sum("gap_filled_s")', "gap_filled")])],
            description=_("Seconds per interval filled conservatively instead of measured [s]."),
            axis_label=_("time [s]"),
            bars=True,
            interval="1h",
        ),
    ]


def _gw_where(by_gateway: bool = True) -> str:
    gw = ' AND "gateway" =~ /^$gateway$/' if by_gateway else ""
    return f'WHERE "site" =~ /^$site$/{gw} AND $timeFilter'


#: A gateway sends its health point every 10 s (gateway.health.sample_interval_s); it counts as
#: online while it reported in the last 3 minutes: the 3-minute moving average of its reports per
#: minute, empty minutes filled with 0, so a gateway that went silent shows 0 instead of vanishing
#: (InfluxQL has no moving_sum; moving_average(x, 3) > 0 exactly when one of the 3 minutes has a report).
def reports_3m(by_gateway: bool) -> str:
    return P.reports_in_last("online", "gateway", 3, "reports_3m", _gw_where(by_gateway), '"gateway"')


def gateway_online_stat(title: str, width: int, by_gateway: bool = True):
    return P.stat(
        title,
        P.U_COUNT,
        [InfluxQL(reports_3m(by_gateway)).alias("$tag_gateway")],
        description=_("Online while the gateway sent a health report in the last 3 minutes; offline when a gateway that reported in the last 24 h went silent."),
        calc="last",
        thresholds=P.steps((None, "red"), (0.01, "green")),
        mappings=P.reporting_mappings(_("offline"), _("online")),
        time_from="24h",
        width=width,
        text_mode="value_and_name",
    )


def gateway_row(pt: PlantType | None, settings: BuildSettings) -> list:
    by_gw = pt is not None
    fill_ratio = settings.dashboards.alerts.buffer_fill_ratio
    out = [
        P.timeseries(
            _("Gateway buffer depth"),
            P.U_COUNT,
            [InfluxQL(select([('max("buffer_depth")', "buffer_depth")], "gateway", _gw_where(by_gw), 'time($__interval), "gateway"')).alias("$tag_gateway $col")],
            description=_("Samples waiting in the gateway's durable buffer. A growing buffer means the uplink, the broker or InfluxDB is down; the gateway replays it when the link is back."),
            axis_label=_("samples"),
            width=6,
        ),
        P.timeseries(
            _("Gateway buffer fill"),
            P.U_RATIO,
            [InfluxQL(select([('max("buffer_bytes") / max("buffer_max_bytes")', "buffer_fill")], "gateway", _gw_where(by_gw), 'time($__interval), "gateway"')).alias("$tag_gateway $col")],
            description=_("Bytes in the durable buffer as a fraction of that gateway's own buffer.max_mb. At 100 % the oldest data is dropped: restore the link before the red line."),
            axis_label=_("buffer fill"),
            thresholds=P.steps((None, "green"), (fill_ratio / 2, "orange"), (fill_ratio, "red")),
            max_val=1,
            width=6,
        ),
        P.timeseries(
            _("Samples dropped"),
            P.U_COUNT,
            [InfluxQL(select([('non_negative_difference(max("samples_dropped"))', "dropped")], "gateway", _gw_where(by_gw), 'time($__interval), "gateway"', "fill(none)")).alias("$tag_gateway $col")],
            description=_("Samples the gateway dropped per interval (increase of its samples_dropped total: buffer full, rejected by InfluxDB): data lost for good."),
            axis_label=_("samples"),
            bars=True,
            thresholds=P.steps((None, "green"), (1, "red")),
            width=6,
        ),
        gateway_online_stat(_("Gateway online"), width=3 if by_gw else 6, by_gateway=by_gw),
    ]
    if pt is not None:
        out.append(
            P.stat(
                _("Last data"),
                P.U_TIME_AGO,
                [InfluxQL(select([(f'last("{pt.heartbeat_field}")', "value")], pt.measurement, P.plant_where(), "")).alias("last sample")],
                description=_("Time of the newest {measurement} sample in the time range.").format(measurement=pt.measurement),
                fields="/^Time$/",
                width=3,
            )
        )
    return out


# --------------------------------------------------------------------------- annotations and links


def plant_annotations(pt: PlantType) -> list[P.InfluxQLAnnotation]:
    """Events on the time axis of every panel: gateway offline, gaps and fills, meter events,
    parameter or methodology changes, simulator faults (``docs/data-model.md``)."""
    ev = 'WHERE "project" =~ /^$project$/ AND "kind" =~ /^({kinds})$/ AND $timeFilter'
    offline = (
        'SELECT "reports" FROM (SELECT count("online") AS "reports" FROM "gateway" '
        'WHERE "site" =~ /^$site$/ AND "gateway" =~ /^$gateway$/ AND $timeFilter GROUP BY time(1m), "gateway" fill(0)) '
        'WHERE "reports" = 0 GROUP BY "gateway"'
    )
    return [
        P.InfluxQLAnnotation(_("Gateway offline"), offline, "red", text_column="reports", tags_column="gateway"),
        # gaps and fills come from the results themselves (never stale after a recomputation)
        P.InfluxQLAnnotation(_("Gaps and fills"), 'SELECT "gap_filled_s", "completeness", "project" FROM "mrv" WHERE "project" =~ /^$project$/ '
                             'AND "interval" = \'1h\' AND "gap_filled_s" > 0 AND $timeFilter', "orange", text_column="gap_filled_s", tags_column="project"),
        P.InfluxQLAnnotation(_("Meter events"), f'SELECT "detail", "kind", "duration_s" FROM "mrv_event" {ev.format(kinds="meter_reset|meter_replacement|meter_drop|meter_jump|meter_rollover|meter_event_inconsistent")}', "purple", text_column="detail", tags_column="kind"),
        P.InfluxQLAnnotation(_("Parameter and methodology changes"), f'SELECT "detail", "kind" FROM "mrv_event" {ev.format(kinds="params_change")}', "blue", text_column="detail", tags_column="kind"),
        P.InfluxQLAnnotation(
            _("Simulator faults"),
            'SELECT "detail", "kind", "duration_s" FROM "sim_fault" WHERE "site" =~ /^$site$/ AND $timeFilter',
            "yellow",
            text_column="detail",
            tags_column="kind",
            enable=False,
        ),
    ]


def export_link(settings: BuildSettings, project: str) -> dash_m.DashboardLink | dict:
    """Data link to the verifier API's xlsx export of ``project`` for the dashboard range."""
    return {
        "title": _("Verifier export (xlsx) of this project for the selected range"),
        "url": f"{settings.dashboards.api_url}/projects/{project}/export?start=${{__from:date:iso}}&end=${{__to:date:iso}}&format=xlsx",
        "targetBlank": True,
    }


# --------------------------------------------------------------------------- dashboards


def _base(uid: str, title: str, description: str, time_from: str, timezone: str, settings: BuildSettings) -> dash_b.Dashboard:
    return (
        dash_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .version(VERSION)
        .editable()
        .timezone(timezone)
        .time(time_from, "now")
        .refresh("1m")
        .fiscal_year_start_month(settings.dashboards.fiscal_year_start_month - 1)
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .link(
            dash_b.DashboardLink(_("plantmrv dashboards"))
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
            .target_blank(False)
            .icon("external link")
            .tooltip("")
            .url("")
        )
    )


def plant_dashboard(pt: PlantType, settings: BuildSettings) -> dash_b.Dashboard:
    m = pt.measurement
    tz = settings.timezone(pt.key)
    zone = _("Times in {zone}.").format(zone=tz if tz != "utc" else "UTC")
    description = _(pt.description) + " " + _("Measurement `{measurement}`.").format(measurement=m) + " " + zone
    d = _base(f"plantmrv-{pt.key}", "plantmrv / " + _(pt.title), description, "now-24h", tz, settings)
    d = d.tags(TAGS + [pt.key])
    d = d.link(
        dash_b.DashboardLink(_("Portfolio"))
        .type(dash_m.DashboardLinkType.LINK)
        .url("/d/plantmrv-portfolio")
        .keep_time(True)
        .include_vars(True)
        .target_blank(False)
        .icon("dashboard")
        .tooltip(_("All projects, with this dashboard's time range and project selection"))
        .as_dropdown(False)
    )
    d = d.with_variable(P.datasource_variable())
    d = d.with_variable(P.tag_variable("site", _("Site"), m, "site"))
    d = d.with_variable(P.tag_variable("asset", _("Asset"), m, "asset", '"site" =~ /^$site$/'))
    d = d.with_variable(P.tag_variable("project", _("MRV project"), "mrv", "project", f"\"plant_type\" = '{pt.key}' AND \"site\" =~ /^$site$/"))
    d = d.with_variable(P.tag_variable("gateway", _("Gateway"), "gateway", "gateway", '"site" =~ /^$site$/'))
    for a in plant_annotations(pt):
        d = d.annotation(a.builder())
    for title, items in (
        (_("Process"), pt.process(m, settings)),
        (_("Energy"), pt.energy(m)),
        (_("MRV results"), mrv_row(settings)),
        (_("Co-benefits"), pt.cobenefits()),
        (_("Data quality"), quality_row(pt)),
        (_("Gateway health"), gateway_row(pt, settings)),
    ):
        d = d.with_row(P.row(title))
        for panel in items:
            d = d.with_panel(panel)
    return d


def _project_regex(ids) -> str:
    import re

    return "(" + "|".join(re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda x: "\\" + x.group(0), i) for i in sorted(ids)) + ")"


def targets_row(settings: BuildSettings) -> list:
    """One bar gauge per configured target: monitored (ex-post), planned (ex-ante), target and
    Japan's share, this fiscal year to date (``mrv``, and ``mrv_plan`` written by ``dashboards plan``)."""
    out = []
    for t in settings.dashboards.targets:
        ids = settings.target_projects(t)
        rx = _project_regex(ids)
        where = f"WHERE \"project\" =~ /^{rx}$/ AND \"interval\" = '{P.MRV_HOURLY}' AND $timeFilter"
        queries = [
            InfluxQL(select([('sum("reduction_t_co2")', "monitored")], "mrv", where, "")).alias(_("monitored (ex-post)")),
            InfluxQL(select([('sum("ex_ante_t_co2")', "planned")], "mrv_plan", f'WHERE "project" =~ /^{rx}$/ AND $timeFilter', "")).alias(_("planned (ex-ante)")),
            InfluxQL(select([('last("target_t_co2")', "target")], "mrv_target", f"WHERE \"target\" = '{settings.target_id(t)}' AND $timeFilter", "")).alias(_("target")),
        ]
        for share, group in settings.japan_share_groups(ids):
            gw = f"WHERE \"project\" =~ /^{_project_regex(group)}$/ AND \"interval\" = '{P.MRV_HOURLY}' AND $timeFilter"
            queries.append(InfluxQL(select([(f'sum("reduction_t_co2") * {share:g}', "japan")], "mrv", gw, "")).alias(_("Japan's share")))
        scope = {"city": _("city"), "country": _("country"), "programme": _("programme")}[t.scope]
        out.append(
            P.bargauge(
                _("{name} ({scope}), FY{year}").format(name=t.name, scope=scope, year=t.fiscal_year),
                P.U_TCO2,
                queries,
                description=_("Reductions this fiscal year to date of {projects}: monitored vs planned (ex-ante) vs the target of {target:,.0f} tCO2 ({source}).").format(
                    projects=", ".join(ids), target=t.t_co2, source=t.source
                ),
                max_val=t.t_co2,
                thresholds=P.steps((None, "orange"), (t.t_co2, "green")),
                time_from="now/fy",
                width=8,
            )
        )
    return out


def portfolio_dashboard(settings: BuildSettings) -> dash_b.Dashboard:
    tz = settings.dashboards.portfolio_timezone
    d = _base(
        "plantmrv-portfolio",
        "plantmrv / " + _("Portfolio"),
        _("All MRV projects: emission reductions, energy saved, data completeness and gateways. "
          "The default time range is the Japanese fiscal year to date; set it to the monitoring period.")
        + " " + _("Times in {zone}.").format(zone=tz if tz != "utc" else "UTC"),
        "now/fy",
        tz,
        settings,
    )
    d = d.with_variable(P.datasource_variable())
    d = d.with_variable(P.tag_variable("project", _("MRV project"), "mrv", "project"))
    d = d.with_variable(P.tag_variable("site", _("Gateway site"), "gateway", "site"))

    def total(expr, alias, interval=P.MRV_HOURLY):
        return InfluxQL(select([(expr, alias)], "mrv", P.mrv_where(interval), "")).alias(alias)

    d = d.with_row(P.row(_("Emission reductions")))
    d = d.with_panel(P.stat(_("tCO2 reduced today"), P.U_TCO2, [total('sum("reduction_t_co2")', "reduction", P.MRV_MINUTE)], description=_("ER of all selected projects since midnight, from the minute results [tCO2]."), calc="sum", time_from="now/d", decimals=3, width=4))
    d = d.with_panel(P.stat(_("tCO2 reduced this month"), P.U_TCO2, [total('sum("reduction_t_co2")', "reduction")], description=_("ER of all selected projects since the first of the month, hourly results [tCO2]."), calc="sum", time_from="now/M", decimals=2, width=4))
    d = d.with_panel(P.stat(_("tCO2 reduced, monitoring period"), P.U_TCO2, [total('sum("reduction_t_co2")', "reduction")], description=_("ER over the dashboard time range: set it to the monitoring period [tCO2]."), calc="sum", decimals=2, width=4))
    d = d.with_panel(P.stat(_("Energy saved, monitoring period"), P.U_KWH, [total('sum("energy_saved_kwh")', "energy_saved")], description=_("Reference minus project energy over the time range [kWh]."), calc="sum", width=4))
    d = d.with_panel(P.stat(_("Data completeness"), P.U_RATIO, [total('mean("completeness")', "completeness")], description=_("Mean covered fraction of the hourly MRV intervals in the time range."), thresholds=P.COMPLETENESS, width=4))
    # One tile per gateway, green "online" / red "offline". A count of online gateways needs a
    # nested InfluxQL subquery over the filled per-minute buckets, far too slow on influxd 1.x
    # (bench/README.md, dashboards); the tiles also name the gateway that is down.
    d = d.with_panel(gateway_online_stat(_("Gateways online"), width=4, by_gateway=False))
    targets = targets_row(settings)
    if targets:
        d = d.with_row(P.row(_("Progress toward targets, fiscal year to date")))
        for panel in targets:
            d = d.with_panel(panel)
    d = d.with_row(P.row(_("By project")))
    drill = {
        "title": _("Plant dashboard of this project, same time range"),
        "url": "/d/plantmrv-${__data.fields.plant_type}?var-project=${__data.fields.project}&var-site=${__data.fields.site}&${__url_time_range}",
    }
    export = export_link(settings, "${__data.fields.project}")
    d = d.with_panel(
        P.table(
            _("Projects, monitoring period"),
            [
                InfluxQL(
                    select(
                        [
                            ('sum("reduction_t_co2")', "reduction_t_co2"),
                            ('sum("reference_t_co2")', "reference_t_co2"),
                            ('sum("project_t_co2")', "project_t_co2"),
                            ('sum("energy_saved_kwh")', "energy_saved_kwh"),
                            ('mean("completeness")', "completeness"),
                            ('sum("gap_filled_s")', "gap_filled_s"),
                        ],
                        "mrv",
                        P.mrv_where(),
                        '"project", "methodology", "plant_type", "site"',
                    )
                )
            ],
            description=_("Per project over the dashboard time range. Click a project for its plant dashboard or its verifier export."),
            units={
                "reduction_t_co2": P.U_TCO2,
                "reference_t_co2": P.U_TCO2,
                "project_t_co2": P.U_TCO2,
                "energy_saved_kwh": P.U_KWH,
                "completeness": P.U_RATIO,
                "gap_filled_s": P.U_SECONDS,
            },
            thresholds={"completeness": P.COMPLETENESS},
            links={"project": [drill, export]},
        )
    )
    d = d.with_panel(
        P.timeseries(
            _("Emission reductions per day"),
            P.U_TCO2,
            [_mrv([('sum("reduction_t_co2")', "reduction")], group='time(1d), "project"')],
            description=_("ER per day and project [tCO2]."),
            axis_label=_("reductions [tCO₂]"),
            bars=True,
            min_val=None,
        )
    )
    d = d.with_panel(
        P.timeseries(
            _("Emission reductions, cumulative"),
            P.U_TCO2,
            [_mrv([('cumulative_sum(sum("reduction_t_co2"))', "reduction")])],
            description=_("ER accumulated from the start of the time range, per project [tCO2]."),
            axis_label=_("reductions [tCO₂]"),
            interval="1h",
            min_val=None,
        )
    )
    d = d.with_panel(
        P.timeseries(
            _("Data completeness per project"),
            P.U_RATIO,
            [_mrv([('mean("completeness")', "completeness")])],
            description=_("Covered fraction of the hourly MRV intervals. Below 90 % the interval relies on conservative gap filling."),
            axis_label=_("completeness"),
            thresholds=P.COMPLETENESS,
            max_val=1,
            interval="1h",
        )
    )
    d = d.with_panel(
        P.timeseries(
            _("Energy saved per day"),
            P.U_KWH,
            [_mrv([('sum("energy_saved_kwh")', "energy_saved")], group='time(1d), "project"')],
            description=_("Reference minus project energy per day and project [kWh]."),
            axis_label=_("energy [kWh]"),
            bars=True,
            min_val=None,
        )
    )
    d = d.with_row(P.row(_("Gateways")))
    d = d.with_panel(
        P.table(
            _("Gateways"),
            [
                InfluxQL(
                    select(
                        [('last("buffer_depth")', "buffer_depth"), ('last("buffer_bytes")', "buffer_bytes"), ('last("buffer_bytes") / last("buffer_max_bytes")', "buffer_fill"), ('last("samples_dropped")', "samples_dropped")],
                        "gateway",
                        _gw_where(False),
                        '"site", "gateway"',
                    )
                )
            ],
            description=_("Last report of each gateway in the time range (samples_dropped is its total since start)."),
            units={"buffer_depth": P.U_COUNT, "buffer_bytes": P.U_BYTES, "buffer_fill": P.U_RATIO, "samples_dropped": P.U_COUNT},
            thresholds={"buffer_fill": P.steps((None, "green"), (settings.dashboards.alerts.buffer_fill_ratio / 2, "orange"), (settings.dashboards.alerts.buffer_fill_ratio, "red"))},
            width=12,
        )
    )
    for panel in gateway_row(None, settings)[:3]:
        # gateway health is about the last day, not the monitoring period of the dashboard range
        d = d.with_panel(panel.span(4).time_from("24h"))
    return d


# --------------------------------------------------------------------------- output


def _number_panels(model: dash_m.Dashboard) -> None:
    for i, panel in enumerate(model.panels or [], start=1):
        panel.id_val = i


def build_all(settings: BuildSettings | None = None, lang: str = "en") -> dict[str, dict]:
    """Every dashboard as a JSON-ready dict, keyed by uid (plant types first, then the portfolio).

    ``settings``: time zones, targets, thresholds and projects (default: :meth:`BuildSettings.default`);
    ``lang``: the language of every title, description and label (a catalogue of ``plantmrv.i18n``).
    """
    from plantmrv.i18n import language

    P.register_influxdb_variant()
    settings = settings or BuildSettings.default()
    out: dict[str, dict] = {}
    with language(lang):
        builders = [(plant_dashboard(pt, settings), plant_annotations(pt)) for pt in PLANT_TYPES.values()] + [(portfolio_dashboard(settings), [])]
        for b, annotations in builders:
            model = b.build()
            _number_panels(model)
            dash = json.loads(json.dumps(model, cls=JSONEncoder))
            P.attach_annotation_targets(dash, annotations)
            out[model.uid] = dash
    return out


def render(dashboard: dict) -> str:
    """Stable JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def inventory(dashboards: dict[str, dict]) -> str:
    """Markdown list of every dashboard, panel, unit, thresholds and query (``PANELS.md``)."""
    out = [
        "# Generated dashboards: panel inventory",
        "",
        "Written by `plantmrv dashboards build` from `dashboards/build.py`; do not edit by hand.",
        "",
    ]
    for uid, dash in dashboards.items():
        variables = ", ".join(f"`{v['name']}`" for v in dash["templating"]["list"])
        out += [f"## {dash['title']} (`{uid}`, version {dash['version']})", "", dash.get("description", ""), "", f"Variables: {variables}. Default range: `{dash['time']['from']}` to `{dash['time']['to']}`.", ""]
        out += ["| row / panel | unit | thresholds | range | query |", "|---|---|---|---|---|"]
        for p in dash["panels"]:
            if p["type"] == "row":
                out.append(f"| **{p['title']}** | | | | |")
                continue
            d = p["fieldConfig"]["defaults"]
            steps = d.get("thresholds", {}).get("steps", [])
            th = " / ".join(f"{s['color']}" + (f" from {s['value']:g}" if s["value"] is not None else "") for s in steps) if len(steps) > 1 else ""
            queries = "<br>".join(f"`{t['query']}`".replace("|", "\\|") for t in p.get("targets", []))
            out.append(f"| {p['title']} ({p['type']}) | `{d.get('unit', '')}` | {th} | {p.get('timeFrom', '')} | {queries} |")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- schema check


def schema_errors(dashboard: dict) -> list[str]:
    """Check a dashboard JSON against Grafana's dashboard schema as the SDK encodes it.

    The SDK ships typed models (generated from Grafana's CUE schema), not a JSON Schema file, so
    the check is: (1) decoding with ``Dashboard.from_json`` and encoding again gives back exactly
    the same JSON (a key the schema does not know, or a misplaced one, is dropped and shows up as a
    difference); (2) every panel type and every target decodes into a typed model (a registered
    panel plugin; our InfluxQL target); (3) every enum-typed field holds one of the enum's values;
    (4) unique panel ids, grid positions inside the 24-column grid and not overlapping.
    Returns the problems found (empty when the dashboard is valid).
    """
    import enum
    import typing

    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.runtime import UnknownDataquery, panelcfg_config

    plugins.register_default_plugins()
    P.register_influxdb_variant()
    errors: list[str] = []
    uid = dashboard.get("uid", "?")
    # InfluxDB annotation targets: checked by our own model (the SDK models only Grafana's built-in ones)
    dashboard = json.loads(json.dumps(dashboard))
    for i, a in enumerate(dashboard.get("annotations", {}).get("list", [])):
        if a.get("datasource", {}).get("type") == P.DATASOURCE_TYPE and "target" in a:
            errors += P.InfluxQLAnnotation.check_target(a.pop("target"), f"{uid}: annotations.list[{i}] ({a.get('name')})")
    model = dash_m.Dashboard.from_json(dashboard)
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    if again != dashboard:
        errors += [f"{uid}: {d}" for d in _diff(dashboard, again, "")]

    def walk(obj, path: str):
        if isinstance(obj, list):
            for i, x in enumerate(obj):
                walk(x, f"{path}[{i}]")
            return
        if isinstance(obj, dict):
            for k, x in obj.items():
                walk(x, f"{path}.{k}")
            return
        if not hasattr(obj, "to_json") or isinstance(obj, enum.Enum):
            return
        try:
            hints = typing.get_type_hints(type(obj), vars(__import__(type(obj).__module__, fromlist=["_"])))
        except Exception:
            hints = {}
        for attr, hint in hints.items():
            value = getattr(obj, attr, None)
            enums = [a for a in _flatten_hint(hint) if isinstance(a, type) and issubclass(a, enum.Enum)]
            if enums and value is not None and not isinstance(value, enum.Enum):
                if not any(value in {m.value for m in e} for e in enums):
                    errors.append(f"{uid}: {path}.{attr} = {value!r} is not one of {[m.value for e in enums for m in e]}")
            walk(value, f"{path}.{attr}")

    walk(model, "dashboard")
    ids = []
    cells: dict[tuple[int, int], int] = {}
    for panel in model.panels or []:
        ids.append(panel.id_val)
        if isinstance(panel, dash_m.Panel):
            if panelcfg_config(panel.type_val) is None:
                errors.append(f"{uid}: panel {panel.title!r}: type {panel.type_val!r} is no known panel plugin")
            if isinstance(panel.options, dict) and panel.options:
                errors.append(f"{uid}: panel {panel.title!r}: options did not decode into the {panel.type_val} model")
            for t in panel.targets or []:
                if isinstance(t, UnknownDataquery) or not isinstance(t, P.InfluxQLQuery):
                    errors.append(f"{uid}: panel {panel.title!r}: target is not an InfluxQL query: {t.to_json()}")
                elif t.datasource is None or t.datasource.type_val != P.DATASOURCE_TYPE:
                    errors.append(f"{uid}: panel {panel.title!r}: target {t.ref_id} datasource is not {P.DATASOURCE_TYPE}")
        g = panel.grid_pos
        if g is None or g.x < 0 or g.w < 1 or g.x + g.w > 24:
            errors.append(f"{uid}: panel {panel.title!r}: gridPos {g and g.to_json()} outside the 24-column grid")
            continue
        for x in range(g.x, g.x + g.w):
            for y in range(g.y, g.y + g.h):
                if (x, y) in cells:
                    errors.append(f"{uid}: panel {panel.title!r} overlaps panel id {cells[(x, y)]} at ({x},{y})")
                    break
                cells[(x, y)] = panel.id_val
            else:
                continue
            break
    if len(set(ids)) != len(ids) or None in ids:
        errors.append(f"{uid}: panel ids not unique: {ids}")
    return errors


def _flatten_hint(hint) -> list:
    import typing

    args = typing.get_args(hint)
    if not args:
        return [hint]
    out = []
    for a in args:
        out += _flatten_hint(a)
    return out


def _diff(a, b, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in b:
                out.append(f"{path}.{k}: not in the schema (dropped by the SDK model)")
            elif k not in a:
                out.append(f"{path}.{k}: added by the SDK model ({b[k]!r})")
            else:
                out += _diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} became {b!r}"]
