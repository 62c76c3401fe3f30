"""Shared panel, query and variable helpers for the generated Grafana dashboards.

Everything is built with ``grafana_foundation_sdk`` builders. The SDK ships no InfluxDB
dataquery model (it has Prometheus, Loki, Elasticsearch, ... but not InfluxDB), so this module
adds one through the SDK's own extension point: :class:`InfluxQLQuery` subclasses the SDK's
``Dataquery`` variant and is registered with ``cog.runtime`` under the plugin id ``influxdb``,
so ``Dashboard.from_json`` decodes our targets back into typed objects (the schema check in the
tests relies on that). Its JSON shape is the one Grafana's InfluxDB plugin stores for a raw
InfluxQL query: ``{"refId", "datasource", "query", "rawQuery": true, "resultFormat", "alias"}``.

Queries are InfluxQL only (never Flux). Every query filters on the template variables with the
Grafana InfluxDB idiom ``"site" =~ /^$site$/`` (Grafana renders a multi-value or *All* selection
as a regex group ``(a|b)``, each value regex-escaped) and on ``$timeFilter``; every SELECT
expression carries an alias (``AS "name"``), which the tests use as the expected field names.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.builders import bargauge as bargauge_b
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m

#: The datasource every target uses: the dashboard's ``datasource`` template variable.
DATASOURCE_TYPE = "influxdb"
DATASOURCE_VAR = "${datasource}"
#: uid and name of the datasource the provisioning file and ``push`` create.
DEFAULT_DATASOURCE_UID = "plantmrv-influxdb"
DEFAULT_DATASOURCE_NAME = "plantmrv InfluxDB"

#: ``mrv`` rows carry an ``interval`` tag; charts and period sums read the hourly results,
#: "today" reads the minute results so it is not empty in the first hour of the day.
MRV_HOURLY = "1h"
MRV_MINUTE = "1m"

# Grafana unit ids. Built-in ids where Grafana has one (see grafana_foundation_sdk.models.units);
# Grafana has no built-in id for m3/h, NTU, mg/L, t/h, kWh/m3, tCO2, so those use Grafana's
# custom-unit syntax ``suffix:<text>``, which every Grafana >= 7 renders as "<value> <text>".
U_KW = "kwatt"
U_KWH = "kwatth"
U_W_M2 = "Wm2"
U_CELSIUS = "celsius"
U_HZ = "hertz"
U_PERCENT = "percent"  # 0..100
U_RATIO = "percentunit"  # 0..1 shown as %
U_SECONDS = "s"
U_COUNT = "short"
U_BYTES = "decbytes"  # buffer.max_mb is in 10^6 bytes
U_M3 = "m3"
U_M3_H = "suffix: m³/h"
U_M = "lengthm"
U_NTU = "suffix: NTU"
U_MG_L = "suffix: mg/L"
U_KG_H = "suffix: kg/h"
U_T_H = "suffix: t/h"
U_MJ_KG = "suffix: MJ/kg"
U_KWH_M3 = "suffix: kWh/m³"
U_KWH_T = "suffix: kWh/t"
U_TCO2 = "suffix: tCO₂"
U_ONOFF = "bool_on_off"
U_TIME_AGO = "dateTimeFromNow"
U_HOURS = "h"


# --------------------------------------------------------------------------- InfluxQL target


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target of Grafana's InfluxDB datasource (the SDK has no model for it)."""

    def __init__(
        self,
        ref_id: str = "",
        query: str = "",
        raw_query: bool = True,
        result_format: str = "time_series",
        alias: typing.Optional[str] = None,
        datasource: typing.Optional[dash_m.DataSourceRef] = None,
        hide: typing.Optional[bool] = None,
    ) -> None:
        self.ref_id = ref_id
        self.query = query
        self.raw_query = raw_query
        self.result_format = result_format
        self.alias = alias
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": self.raw_query,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> "InfluxQLQuery":
        known = {"refId", "query", "rawQuery", "resultFormat", "alias", "datasource", "hide"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"InfluxDB target {data.get('refId', '?')}: unknown keys {sorted(unknown)}")
        if data.get("resultFormat", "time_series") not in ("time_series", "table", "logs"):
            raise ValueError(f"InfluxDB target {data.get('refId', '?')}: resultFormat {data['resultFormat']!r}")
        return cls(
            ref_id=data.get("refId", ""),
            query=data.get("query", ""),
            raw_query=data.get("rawQuery", True),
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            datasource=dash_m.DataSourceRef.from_json(data["datasource"]) if "datasource" in data else None,
            hide=data.get("hide"),
        )


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder for :class:`InfluxQLQuery`, in the SDK's builder style."""

    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = InfluxQLQuery(ref_id=ref_id, query=query, datasource=datasource_ref())

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self

    def alias(self, alias: str) -> typing.Self:
        self._internal.alias = alias
        return self

    def table(self) -> typing.Self:
        self._internal.result_format = "table"
        return self


def register_influxdb_variant() -> None:
    """Teach the SDK runtime to decode ``influxdb`` targets into :class:`InfluxQLQuery`."""
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json))


def datasource_ref() -> dash_m.DataSourceRef:
    return dash_m.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_VAR)


# --------------------------------------------------------------------------- annotations


class InfluxQLAnnotation:
    """An annotation query of Grafana's InfluxDB datasource (InfluxQL; each row is an event).

    The SDK's ``AnnotationTarget`` models only the built-in Grafana annotations (limit, tags), so
    the InfluxDB target (``query``, ``textColumn``, ``tagsColumn``, ``fromAnnotations``: the shape
    Grafana's InfluxDB plugin stores) is attached after encoding by :func:`attach_annotation_targets`
    and checked by :meth:`from_target` (unknown keys are errors), like :class:`InfluxQLQuery`.
    """

    TARGET_KEYS = {"refId", "query", "rawQuery", "resultFormat", "fromAnnotations", "textColumn", "tagsColumn", "titleColumn", "timeEndColumn"}

    def __init__(self, name: str, query: str, color: str, *, text_column: str, tags_column: str, enable: bool = True) -> None:
        self.name, self.query, self.color = name, query, color
        self.text_column, self.tags_column, self.enable = text_column, tags_column, enable

    def builder(self) -> dash_b.AnnotationQuery:
        return dash_b.AnnotationQuery().name(self.name).datasource(datasource_ref()).enable(self.enable).hide(False).icon_color(self.color)

    def target(self) -> dict:
        return {
            "refId": "Anno",
            "query": self.query,
            "rawQuery": True,
            "resultFormat": "table",
            "fromAnnotations": True,
            "textColumn": self.text_column,
            "tagsColumn": self.tags_column,
        }

    @classmethod
    def check_target(cls, target: dict, where: str) -> list[str]:
        """Problems of an annotation target (empty when it is a valid InfluxQL annotation)."""
        errors = [f"{where}: unknown key {k!r}" for k in sorted(set(target) - cls.TARGET_KEYS)]
        if not str(target.get("query", "")).startswith("SELECT ") or "$timeFilter" not in target.get("query", ""):
            errors.append(f"{where}: query is no InfluxQL SELECT over $timeFilter")
        if target.get("fromAnnotations") is not True or target.get("rawQuery") is not True:
            errors.append(f"{where}: not a raw annotation query")
        return errors


def attach_annotation_targets(dashboard: dict, annotations: typing.Sequence[InfluxQLAnnotation]) -> None:
    """Put each annotation's InfluxQL target into the encoded dashboard (matched by name)."""
    by_name = {a.name: a for a in annotations}
    for item in dashboard.get("annotations", {}).get("list", []):
        if item["name"] in by_name:
            item["target"] = by_name[item["name"]].target()


# --------------------------------------------------------------------------- InfluxQL text


def ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def plant_where(extra: str = "") -> str:
    """WHERE clause of a raw plant measurement: the site and asset variables and the time range."""
    clause = 'WHERE "site" =~ /^$site$/ AND "asset" =~ /^$asset$/'
    if extra:
        clause += f" AND {extra}"
    return clause + " AND $timeFilter"


def mrv_where(interval: str = MRV_HOURLY) -> str:
    return f"WHERE \"project\" =~ /^$project$/ AND \"interval\" = '{interval}' AND $timeFilter"


def select(exprs: typing.Sequence[tuple[str, str]], measurement: str, where: str, group: str = "time($__interval)", fill: str = "fill(null)") -> str:
    """``SELECT <expr> AS "<alias>", ... FROM <measurement> <where> GROUP BY <group> <fill>``."""
    cols = ", ".join(f"{expr} AS {ident(alias)}" for expr, alias in exprs)
    q = f"SELECT {cols} FROM {ident(measurement)} {where}"
    if group:
        q += f" GROUP BY {group}"
    if fill and group and "time(" in group:
        q += f" {fill}"
    return q


def reports_in_last(field: str, measurement: str, minutes: int, alias: str, where: str, group_by: str) -> str:
    """Per series, the moving average over ``minutes`` one-minute buckets (empty ones filled with
    0) of the count of ``field``: 0 exactly when nothing came in the last ``minutes``, so a source
    that went silent shows 0 instead of vanishing (InfluxQL has no moving_sum)."""
    return f"SELECT moving_average(count({ident(field)}), {minutes}) AS {ident(alias)} FROM {ident(measurement)} {where} GROUP BY time(1m), {group_by} fill(0)"


# --------------------------------------------------------------------------- thresholds


def steps(*pairs: tuple[typing.Optional[float], str]) -> dash_b.ThresholdsConfig:
    """Absolute thresholds: ``steps((None, "green"), (80, "red"))`` (None = base step)."""
    return (
        dash_b.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps([dash_m.Threshold(value=v, color=c) for v, c in pairs])
    )


NEUTRAL = steps((None, "text"))
COMPLETENESS = steps((None, "red"), (0.9, "orange"), (0.98, "green"))


# --------------------------------------------------------------------------- panels


def _targets(panel, queries: typing.Sequence[InfluxQL]):
    for i, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + i)))
    return panel.datasource(datasource_ref())


def timeseries(
    title: str,
    unit: str,
    queries: typing.Sequence[InfluxQL],
    *,
    description: str,
    axis_label: str,
    thresholds: dash_b.ThresholdsConfig | None = None,
    min_val: float | None = 0,
    max_val: float | None = None,
    bars: bool = False,
    interval: str | None = None,
    width: int = 12,
    height: int = 8,
) -> ts_b.Panel:
    """A time series with its unit and axis label; thresholds drawn as dashed lines when given."""
    p = (
        ts_b.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .axis_label(axis_label)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10 if not bars else 80)
        .show_points(common.VisibilityMode.NEVER)
        .legend(common_b.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST).placement(common.LegendPlacement.BOTTOM))
        .tooltip(common_b.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.NONE))
    )
    if bars:
        p = p.draw_style(common.GraphDrawStyle.BARS)
    if min_val is not None:
        p = p.min(min_val)
    if max_val is not None:
        p = p.max(max_val)
    if thresholds is not None:
        p = p.thresholds(thresholds).thresholds_style(common_b.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED))
    else:
        p = p.thresholds(NEUTRAL)
    if interval:
        p = p.interval(interval)
    return _targets(p, queries)


def stat(
    title: str,
    unit: str,
    queries: typing.Sequence[InfluxQL],
    *,
    description: str,
    calc: str = "lastNotNull",
    thresholds: dash_b.ThresholdsConfig | None = None,
    mappings: list | None = None,
    time_from: str | None = None,
    fields: str = "",
    decimals: float | None = None,
    width: int = 6,
    height: int = 4,
    text_mode: str | None = None,
    links: list[dict] | None = None,
) -> stat_b.Panel:
    """A single-value stat; ``time_from`` overrides the range (``now/d`` = today so far)."""
    p = (
        stat_b.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(width)
        .height(height)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE if thresholds is not None else common.BigValueColorMode.NONE)
        .reduce_options(common_b.ReduceDataOptions().calcs([calc]).fields(fields).values(False))
        .thresholds(thresholds if thresholds is not None else NEUTRAL)
    )
    if mappings:
        p = p.mappings(mappings)
    if time_from:
        p = p.time_from(time_from)
    if decimals is not None:
        p = p.decimals(decimals)
    if text_mode:
        p = p.text_mode(common.BigValueTextMode(text_mode))
    if links:
        p._internal.field_config.defaults.links = [data_link(**x) for x in links]
    return _targets(p, queries)


def bargauge(
    title: str,
    unit: str,
    queries: typing.Sequence[InfluxQL],
    *,
    description: str,
    max_val: float,
    thresholds: dash_b.ThresholdsConfig,
    time_from: str | None = None,
    width: int = 8,
    height: int = 6,
) -> bargauge_b.Panel:
    """Horizontal bars, one per query (each query aliased), scaled 0..``max_val``."""
    p = (
        bargauge_b.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .span(width)
        .height(height)
        .min(0)
        .max(max_val)
        .decimals(0)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .show_unfilled(True)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .thresholds(thresholds)
    )
    if time_from:
        p = p.time_from(time_from)
    return _targets(p, queries)


def data_link(title: str, url: str, targetBlank: bool = False) -> dash_m.DashboardLink:
    """A field data link. Grafana reads title, url and targetBlank; the schema types it as a dashboard link."""
    return dash_m.DashboardLink(title=title, type_val=dash_m.DashboardLinkType.LINK, url=url, target_blank=targetBlank, icon="external link", tooltip="", tags=[])


def table(
    title: str,
    queries: typing.Sequence[InfluxQL],
    *,
    description: str,
    units: dict[str, str],
    thresholds: dict[str, dash_b.ThresholdsConfig] | None = None,
    width: int = 24,
    height: int = 8,
    links: dict[str, list[dict]] | None = None,
) -> table_b.Panel:
    """A table of ``table``-format queries merged on their tag columns; a unit per column.

    Plain dicts appear only where the SDK's schema itself types a value as ``object``: the
    options of a transformation (``DataTransformerConfig.options``) and the value of a field
    override property (``DynamicConfigValue.value``, here the table cell display mode).
    """
    p = (
        table_b.Panel()
        .title(title)
        .description(description)
        .unit(U_COUNT)
        .span(width)
        .height(height)
        .thresholds(NEUTRAL)
        .show_header(True)
        .with_transformation(dash_m.DataTransformerConfig(id_val="merge", options={}))
        # InfluxQL stamps an aggregate without GROUP BY time() with the range start: not a datum
        .with_transformation(dash_m.DataTransformerConfig(id_val="organize", options={"excludeByName": {"Time": True}}))
    )
    for name, unit in units.items():
        props = [dash_m.DynamicConfigValue(id_val="unit", value=unit)]
        if thresholds and name in thresholds:
            props.append(dash_m.DynamicConfigValue(id_val="thresholds", value=thresholds[name].build()))
            props.append(dash_m.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}))
        p = p.override_by_name(name, props)
    for name, items in (links or {}).items():
        p = p.override_by_name(name, [dash_m.DynamicConfigValue(id_val="links", value=[data_link(**x).to_json() for x in items])])
    return _targets(p, [q.table() for q in queries])


def online_mappings() -> list:
    """0 -> offline (red), 1 -> online (green)."""
    return [
        dash_m.ValueMap(
            options={
                "0": dash_m.ValueMappingResult(text="offline", color="red", index=0),
                "1": dash_m.ValueMappingResult(text="online", color="green", index=1),
            }
        )
    ]


def reporting_mappings(offline: str = "offline", online: str = "online") -> list:
    """A rate of health reports: 0 -> offline (red), above 0 -> online (green)."""
    return [
        dash_m.ValueMap(options={"0": dash_m.ValueMappingResult(text=offline, color="red", index=0)}),
        dash_m.RangeMap(options=dash_m.DashboardRangeMapOptions(from_val=0.01, to=1e12, result=dash_m.ValueMappingResult(text=online, color="green", index=1))),
    ]


def row(title: str) -> dash_b.Row:
    return dash_b.Row(title)


# --------------------------------------------------------------------------- variables


def datasource_variable() -> dash_b.DatasourceVariable:
    return (
        dash_b.DatasourceVariable("datasource")
        .label("InfluxDB")
        .type(DATASOURCE_TYPE)
        .current(dash_m.VariableOption(selected=True, text=DEFAULT_DATASOURCE_NAME, value=DEFAULT_DATASOURCE_UID))
    )


def tag_variable(name: str, label: str, measurement: str, key: str, where: str = "") -> dash_b.QueryVariable:
    """A multi-value variable over the values of one tag (InfluxQL ``SHOW TAG VALUES``)."""
    q = f"SHOW TAG VALUES FROM {ident(measurement)} WITH KEY = {ident(key)}"
    if where:
        q += f" WHERE {where}"
    return (
        dash_b.QueryVariable(name)
        .label(label)
        .query(q)
        .datasource(datasource_ref())
        .refresh(dash_m.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dash_m.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )
