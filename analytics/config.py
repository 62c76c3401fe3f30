"""Config section ``analytics``: projects (site + assets + methodology + parameters), intervals.

A project is configured, not coded: a new plant of a known type needs only a new entry here.
Plant types, baseline models, roles and parameters come from the methodology registry
(:mod:`.registry`). Every parameter carries value, unit, source and JCM monitoring option
(A/B/C); units are converted with a dimensional check (pint) and values checked against what
physics allows; a field mapped to a role must carry a unit of the role's dimension in its name.
Unknown keys are errors; errors name the key path (``analytics.projects[1].parameters.eta_reference:
...``), rendered with the YAML line by :func:`plantmrv.config.load_config`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Literal

from pydantic import Field, field_validator, model_validator

from plantmrv.config import ConfigSection, MetricsConfig, StrictModel, check_timezone

from . import registry


class AnalyticsMetricsConfig(MetricsConfig):
    port: int | None = Field(9110, ge=0, le=65535, description="Their port; null disables them, 0 picks a free port (logged).")


_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(value) -> int:
    """``60``, ``"60s"``, ``"1m"``, ``"1h"``, ``"1d"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or like 1m / 1h")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("a duration must be positive")
        return int(value)
    m = _DURATION.match(str(value).strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration like 60s, 1m, 1h or 1d")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def duration_label(seconds: int) -> str:
    """3600 -> ``1h``, 60 -> ``1m`` (the ``interval`` tag of measurement ``mrv``)."""
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


class ParameterValue(StrictModel):
    """One monitored or fixed parameter (the columns of a JCM monitoring report input sheet)."""

    value: float | list[float] | None = Field(description="Value in `unit`.")
    unit: str = Field(description="Unit; must match the methodology's (no silent conversion).")
    source: str = Field(min_length=1, description="Where the value comes from (datasheet, PDD, meter, statistic).")
    option: Literal["A", "B", "C"] = Field("A", description="JCM monitoring option: A public data, B invoices/revenue meters, C own equipment.")
    symbol: str | None = None
    description: str | None = None
    measurement_method: str | None = None
    frequency: str | None = None
    comments: str | None = None


class AssetFields(StrictModel):
    """Which fields of the asset's measurement play which role (names from docs/data-model.md).

    A field's name carries its unit (`power_kw`, `flow_m3_per_min`); it is converted to the
    role's unit, and a field of another dimension is refused.
    """

    energy_meter: str | list[str] | None = Field(None, description="Cumulative electricity register(s) consumed, kWh (e.g. `energy_kwh`).")
    power: str | list[str] | None = Field(None, description="Active power consumed, kW (used when no energy meter).")
    flow: str | None = Field(None, description="Flow, m3/h (volume when no volume meter).")
    volume_meter: str | None = Field(None, description="Cumulative volume register, m3.")
    hours_meter: str | None = Field(None, description="Run-hours counter of the project equipment, h (e.g. `run_time_h`).")
    running: str | None = Field(None, description="0/1 running flag, integrated to operating hours (when no run-hours counter).")
    export_meter: str | None = Field(None, description="Cumulative electricity exported to the grid, kWh.")
    export_power: str | None = Field(None, description="Power exported/generated, kW (when no export meter); negative values net off.")
    import_meter: str | None = Field(None, description="Cumulative electricity purchased from the grid, kWh (waste-to-energy).")
    import_power: str | None = Field(None, description="Power purchased from the grid, kW (when no import meter).")
    waste_meter: str | None = Field(None, description="Cumulative waste fed, t (weighbridge).")
    waste_rate: str | None = Field(None, description="Waste feed rate, t/h (when no waste meter).")
    aux_fuel_meter: str | None = Field(None, description="Auxiliary fuel totaliser, kg (e.g. `aux_fuel_kg`).")
    aux_fuel_rate: str | None = Field(None, description="Auxiliary fuel, kg/h (when no totaliser).")
    chlorine_rate: str | None = Field(None, description="Chlorine dose, kg/h.")
    coagulant_rate: str | None = Field(None, description="Coagulant dose, kg/h.")
    grid_available: str | None = Field(None, description="0/1 flag, 1 while the grid supplies the site (JCM KH_AM002 day category; held until the next sample).")
    quality_pairs: dict[str, tuple[str, str]] = Field(default_factory=dict, description="Co-benefit removal KPIs: name -> [inflow field, outflow field].")

    @model_validator(mode="after")
    def _units(self) -> "AssetFields":
        for role_name, fields in self.by_role().items():
            for f in fields:
                role_scale(f, role_name)  # raises with the field and both units
        return self

    def by_role(self) -> dict[str, list[str]]:
        """``{role: [field, ...]}`` of the configured roles (quality pairs not included)."""
        out = {}
        for role_name in registry.ROLES:
            v = getattr(self, role_name, None)
            if v:
                out[role_name] = [v] if isinstance(v, str) else list(v)
        return out


def role_scale(field_name: str, role_name: str) -> float:
    """Factor from the unit in ``field_name`` to the unit of ``role_name`` (a flag has none).

    ``ValueError`` naming the field, its unit and the role's when they differ in dimension, or
    when a quantity field's name carries no unit.
    """
    from plantmrv.units import conversion, field_unit

    r = registry.role(role_name)
    unit = field_unit(field_name)
    if r.unit == "1":
        if unit is not None and unit not in ("percent",):
            raise ValueError(f"{role_name}: field {field_name!r} is in {unit}, but {role_name} is a 0/1 flag")
        return 0.01 if unit == "percent" else 1.0
    if unit is None:
        raise ValueError(f"{role_name}: field {field_name!r} names no unit; {role_name} needs {r.unit} "
                         f"(name fields with their unit, e.g. `{role_name.split('_')[0]}_{r.unit.lower().replace('/', '_per_')}`)")
    try:
        scale, offset = conversion(unit, r.unit)
    except ValueError as exc:
        raise ValueError(f"{role_name}: field {field_name!r}: {exc}") from None
    if offset:
        raise ValueError(f"{role_name}: field {field_name!r} is in {unit}, an offset unit; {role_name} needs {r.unit}")
    return scale


class MeterEventConfig(StrictModel):
    """A declared meter replacement or reset, applied exactly (the old register's last reading and the new one's first)."""

    field: str = Field(description="The meter field, e.g. `energy_kwh`.")
    time: datetime = Field(description="When the meter was replaced or reset (readings taken at or after it are the new meter's).")
    kind: Literal["replacement", "reset"] = Field("replacement", description="Replacement (new meter) or reset (register cleared).")
    old_final: float = Field(description="Last reading of the old register, in the field's unit.")
    new_initial: float = Field(0.0, description="First reading of the new register, in the field's unit.")
    source: str = Field(min_length=1, description="Evidence: work order, calibration certificate, photo of the registers.")

    @field_validator("time")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)

    @property
    def time_ns(self) -> int:
        return int(self.time.timestamp() * 1e6) * 1000


class AssetConfig(StrictModel):
    measurement: str = Field(description="Raw measurement (asset class), e.g. `pump`.")
    asset: str = Field(description="`asset` tag value.")
    site: str | None = Field(None, description="`site` tag value; defaults to the project's site.")
    fields: AssetFields = Field(default_factory=AssetFields)
    rollover_at: float | None = Field(None, gt=0, description="Register maximum of this asset's meters (they wrap to 0 after it).")
    max_rate: dict[str, ParameterValue] = Field(
        default_factory=dict,
        description="Physical maximum rate of a meter field (e.g. `energy_kwh: {value: 1200, unit: kW, source: ...}`): an increment "
        "beyond it is a jump, never counted. Project-side meters default to the methodology's fill rate.",
    )
    meter_events: list[MeterEventConfig] = Field(default_factory=list, description="Declared meter replacements and resets of this asset.")

    @model_validator(mode="after")
    def _meters(self) -> "AssetConfig":
        configured = {f for fields in self.fields.by_role().values() for f in fields}
        for name, pv in self.max_rate.items():
            if name not in configured:
                raise ValueError(f"max_rate.{name}: not a field of this asset's roles ({', '.join(sorted(configured)) or 'none'})")
            from plantmrv.units import conversion, field_unit

            unit = field_unit(name)
            try:
                conversion(pv.unit, f"{unit}/hour")
            except (ValueError, TypeError) as exc:
                raise ValueError(f"max_rate.{name}: {exc}") from None
        for i, ev in enumerate(self.meter_events):
            if ev.field not in configured:
                raise ValueError(f"meter_events[{i}].field: {ev.field!r} is not a field of this asset's roles")
        return self

    def max_rate_per_h(self, field_name: str, role_name: str) -> float | None:
        """The configured maximum rate of a meter field in the role's unit per hour, or None."""
        pv = self.max_rate.get(field_name)
        if pv is None:
            return None
        from plantmrv.units import conversion

        scale, _ = conversion(pv.unit, f"{registry.role(role_name).unit}/hour")
        return float(pv.value) * scale

    def events_of(self, field_name: str):
        from .amounts import MeterEvent

        return [MeterEvent(e.time_ns, e.old_final, e.new_initial, e.kind, e.source) for e in self.meter_events if e.field == field_name]


class DayCategoryConfig(StrictModel):
    """JCM KH_AM002: the emission factor of each day d by its category (grid supply or outage)."""

    utc_offset_h: float = Field(7.0, ge=-12, le=14, description="Days d run from local midnight: UTC offset in hours (Cambodia: 7).")


class MethodologyRef(StrictModel):
    id: str = Field(description="Methodology id, e.g. `VN_AM007` or `plantmrv-pump-form`; the `methodology` tag.")
    version: str = Field("1.0", description="Methodology version applied.")


#: Grid emission factors outside this range are not plausible for any grid [tCO2/MWh].
EF_BOUNDS_T_CO2_PER_MWH = (0.0, 2.0)


class GridEFRef(StrictModel):
    """The grid emission factor: a row of the shipped table, or an explicit value with unit and source."""

    country: str | None = None
    grid: str | None = None
    year: int | None = None
    kind: Literal["OM", "BM", "CM", "national"] | None = None
    generation_type: Literal["solar", "wind", "other"] | None = Field(
        None, description="TOOL07 combined-margin weights: `solar`/`wind` 0.75/0.25, `other` 0.5/0.5; default from the plant type (pv: solar).")
    value: float | None = Field(None, description="Explicit factor in `unit` (needs `unit` and `source`).")
    unit: str | None = Field(None, description="Unit of an explicit `value`, e.g. `tCO2/MWh` or `g/kWh` (converted, dimension checked).")
    source: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> "GridEFRef":
        if self.value is not None:
            if not self.source:
                raise ValueError("an explicit grid EF value needs a source")
            if not self.unit:
                raise ValueError("an explicit grid EF value needs a unit (e.g. tCO2/MWh, or g/kWh)")
            from plantmrv.units import conversion

            try:
                scale, _ = conversion(self.unit, "tCO2/MWh")
            except ValueError as exc:
                raise ValueError(f"unit: {exc}") from None
            lo, hi = EF_BOUNDS_T_CO2_PER_MWH
            v = self.value * scale
            if not lo < v <= hi:
                raise ValueError(f"value: {self.value} {self.unit} = {v:g} tCO2/MWh is not a plausible grid emission factor ({lo} < EF <= {hi} tCO2/MWh)")
        elif None in (self.country, self.grid, self.year, self.kind):
            raise ValueError("give country, grid, year and kind of the emission-factor table, or value + unit + source")
        else:
            from .emission_factors import EmissionFactorError, default_table

            try:  # fail at config check, not at the first computation (the weights do not change what exists)
                default_table().lookup(self.country, self.grid, self.year, self.kind, self.generation_type or "other")
            except EmissionFactorError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def value_t_co2_per_mwh(self) -> float | None:
        if self.value is None:
            return None
        from plantmrv.units import conversion

        return self.value * conversion(self.unit, "tCO2/MWh")[0]


class MonitoringPeriod(StrictModel):
    start: datetime = Field(description="Start of the monitoring period.")
    end: datetime = Field(description="End of the monitoring period (exclusive).")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)

    @model_validator(mode="after")
    def _order(self) -> "MonitoringPeriod":
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    @property
    def start_ns(self) -> int:
        return int(self.start.timestamp()) * 1_000_000_000

    @property
    def end_ns(self) -> int:
        return int(self.end.timestamp()) * 1_000_000_000


def _zone(name: str):
    from zoneinfo import ZoneInfo

    name = check_timezone(name)
    return timezone.utc if name == "utc" else ZoneInfo(name)


class ProjectConfig(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Project id: the `project` tag of `mrv`.")
    name: str | None = Field(None, description="Human-readable project name.")
    site: str = Field(description="Site id (the raw data's `site` tag).")
    city: str | None = Field(None, description="City, for the portfolio roll-up.")
    country: str | None = Field(None, description="Host country (ISO alpha-2), for the portfolio roll-up.")
    timezone: str = Field(description="IANA time zone of the plant (e.g. `Asia/Ho_Chi_Minh`): calendar years and local days are cut here.")
    plant_type: str = Field(description="Methodology family: pump, vsd, wte, ubcf (KPIs, not credited), pv (see the methodology registry).")
    assets: list[AssetConfig] = Field(min_length=1, description="Monitored assets and which of their fields feed the methodology.")
    methodology: MethodologyRef = Field(description="Methodology id and version (the `methodology` tag of `mrv`).")
    baseline: str | None = Field(None, description="Baseline model; default per plant type.")
    parameters: dict[str, ParameterValue] = Field(default_factory=dict, description="Overrides of the methodology's parameters, each with a source.")
    monitoring_period: MonitoringPeriod = Field(description="Monitoring period p (start, end; ISO-8601, UTC unless an offset is given).")
    day_category: DayCategoryConfig | None = Field(None, description="Solar PV under JCM KH_AM002: reference EF by category of day d, the grid EF on days with grid supply, the diesel EF (parameter `ef_diesel_t_co2_per_mwh`) on outage days and the lower of the two on mixed or unknown days; needs an asset field `grid_available`.")
    crediting_start: datetime | None = Field(None, description="Start of the crediting period: year 1 of the first-order-decay model (CDM TOOL04, waste-to-energy), whose later years credit the decay of earlier years' waste; default the monitoring period's start. Not after it.")
    ex_ante_t_co2: float | None = Field(None, description="Ex-ante estimate for the monitoring period, tCO2.")
    japan_share: float | None = Field(None, ge=0, le=1, description="Japan's share of credits (Credit Allocation Form).")
    grid_ef: GridEFRef = Field(description="Grid emission factor: a row of analytics/data/emission_factors.csv, or value + source.")
    rounding: Literal["jcm", "j-credit", "none"] = Field("jcm", description="Rounding of the reported period total: jcm and j-credit floor to whole tonnes.")
    electricity_price_per_kwh: ParameterValue | None = Field(None, description="Tariff for the electricity-cost-saved co-benefit.")

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data):
        if isinstance(data, dict) and "project_fill_rate_kw" in data:
            raise ValueError("project_fill_rate_kw moved to parameters.fill_power_kw (waste-to-energy: fill_waste_t_per_h, "
                             "fill_aux_fuel_kg_per_h, fill_import_power_kw): the maximum plausible rate, with unit and source")
        return data

    @field_validator("plant_type")
    @classmethod
    def _plant_type(cls, v):
        registry.baselines(v)  # refuses an unknown plant type, naming the known ones
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v, info):
        plant_type = info.data.get("plant_type")
        if v is None or plant_type is None:
            return v
        registry.get(plant_type, v)
        return v

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, v, info):
        plant_type = info.data.get("plant_type")
        if plant_type is None:
            return v
        from .parameters import override

        override(registry.get(plant_type).parameters(), {k: p.model_dump() for k, p in v.items()}, "parameters")
        return v

    @field_validator("crediting_start")
    @classmethod
    def _crediting_utc(cls, v):
        return v if v is None or v.tzinfo else v.replace(tzinfo=timezone.utc)

    @model_validator(mode="after")
    def _crediting_before_monitoring(self) -> "ProjectConfig":
        if self.crediting_start is not None and self.crediting_start > self.monitoring_period.start:
            raise ValueError(
                f"crediting_start {self.crediting_start.isoformat()} is after monitoring_period.start "
                f"{self.monitoring_period.start.isoformat()}: the crediting period contains every monitoring period"
            )
        return self

    @model_validator(mode="after")
    def _day_category(self) -> "ProjectConfig":
        flags = [a.fields.grid_available for a in self.assets if a.fields.grid_available]
        if self.day_category is not None:
            if self.plant_type != "pv":
                raise ValueError(f"day_category (JCM KH_AM002) applies to plant_type pv, not {self.plant_type!r}")
            if not flags:
                raise ValueError("day_category needs a 0/1 grid supply flag: set assets[].fields.grid_available")
        elif self.methodology.id.upper().startswith("KH_AM002"):
            raise ValueError("methodology KH_AM002 credits by category of day: add day_category (and assets[].fields.grid_available)")
        elif flags:
            raise ValueError("assets[].fields.grid_available is used only with day_category (JCM KH_AM002)")
        return self

    @property
    def crediting_start_ns(self) -> int:
        """Start of the crediting period [ns] (default: the monitoring period's start)."""
        if self.crediting_start is None:
            return self.monitoring_period.start_ns
        return int(self.crediting_start.timestamp()) * 1_000_000_000

    @model_validator(mode="after")
    def _default_baseline(self) -> "ProjectConfig":
        if self.baseline is None:
            self.baseline = registry.baselines(self.plant_type)[0]
        return self

    @model_validator(mode="after")
    def _methodology_inputs(self) -> "ProjectConfig":
        """Every quantity the methodology requires is measured, every required parameter stated."""
        m = self.spec
        configured = {}
        for a in self.assets:
            for r, fields in a.fields.by_role().items():
                configured.setdefault(r, []).extend(fields)
        unused = set(configured) - set(m.roles())
        if unused:
            raise ValueError(f"assets[].fields: {', '.join(sorted(unused))} not used by {m.key} (it reads {', '.join(m.roles())})")
        for q in m.quantities:
            if q.required and not any(configured.get(r) for r in (q.meter, q.rate) if r):
                choices = " or ".join(f"assets[].fields.{r}" for r in (q.meter, q.rate) if r)
                raise ValueError(f"{m.key} needs {q.description.lower()} ({q.symbol}, {q.unit}): set {choices}")
        params = self.parameter_set
        for name in m.required_parameters:
            prm = getattr(params, name)
            if prm.value is None:
                raise ValueError(f"parameters.{name}: required by {m.key} ({prm.description}, {prm.unit}); no default is shipped: {prm.source}")
        if self.day_category is not None and getattr(params, "ef_diesel_t_co2_per_mwh").value is None:
            raise ValueError("parameters.ef_diesel_t_co2_per_mwh: required by day_category (JCM KH_AM002), in tCO2/MWh, with its source")
        return self

    @property
    def spec(self):
        """The project's methodology (:class:`~plantmrv.analytics.registry.Methodology`)."""
        return registry.get(self.plant_type, self.baseline)

    @property
    def generation_type(self) -> str:
        """TOOL07 weights: the grid EF's setting, else from the plant type (solar PV: solar)."""
        return self.grid_ef.generation_type or ("solar" if self.plant_type == "pv" else "other")

    @property
    def zone(self):
        return _zone(self.timezone)

    @property
    def parameter_set(self):
        """The methodology's parameter dataclass with this project's overrides applied (canonical units)."""
        from .parameters import override

        return override(self.spec.parameters(), {k: p.model_dump() for k, p in self.parameters.items()}, "parameters")


class AnalyticsConfig(StrictModel):
    projects: list[ProjectConfig] = Field(default_factory=list, description="MRV projects: a plant, its methodology, parameters and monitoring period.")
    process_interval: int | str = Field("1m", description="Interval of process KPIs (`interval` tag `1m`).")
    mrv_interval: int | str = Field("1h", description="Interval of MRV results (`interval` tag `1h`).")
    max_gap_s: float = Field(
        120.0, gt=0, description="Longest spacing between samples that is bridged (the hold limit); longer is a gap. Must exceed the "
        "gateways' `max_sample_interval_s` (60 s by default): a healthy report-by-exception tag is stored at least that often.")
    late_data_lookback: int | str = Field("6h", description="How far back the continuous engine looks for late data to recompute.")
    state_hold_max: int | str = Field("1d", description="How far back a KH_AM002 grid flag's last value is looked up before a window (held until the next sample).")
    late_data_check_s: float = Field(60.0, gt=0, description="How often the continuous engine compares raw sample counts over the lookback window (one count query per project).")
    poll_s: float = Field(5.0, gt=0, description="How often the continuous engine checks for closed intervals and late data.")
    settle_s: float = Field(10.0, ge=0, description="Event time: an interval is computed once every source of its project has reported (its `coverage` watermark) this far past the interval's end.")
    lateness: int | str = Field("15m", description="Event time: an interval whose sources have not all reported up to its end is computed anyway, "
                                "marked provisional, once the newest source of any project is this far past its end; it is recomputed when the data arrives.")
    max_clock_skew_s: float = Field(300.0, ge=0, description="Source time further ahead of this machine's clock than this is not trusted to close intervals.")
    metrics: AnalyticsMetricsConfig = Field(default_factory=AnalyticsMetricsConfig, description="Prometheus /metrics, /healthz and /readyz of `plantmrv analytics run`.")

    @field_validator("process_interval", "mrv_interval", "late_data_lookback", "state_hold_max", "lateness")
    @classmethod
    def _duration(cls, v):
        parse_duration_s(v)
        return v

    @model_validator(mode="after")
    def _unique_ids(self) -> "AnalyticsConfig":
        seen = set()
        for p in self.projects:
            if p.id in seen:
                raise ValueError(f"project id {p.id!r} appears twice")
            seen.add(p.id)
        return self

    @model_validator(mode="after")
    def _monitoring_periods_align(self) -> "AnalyticsConfig":
        """A monitoring period starts and ends on interval edges, so its report sums whole intervals."""
        for iv_name in ("mrv_interval", "process_interval"):
            step = parse_duration_s(getattr(self, iv_name)) * 1_000_000_000
            for p in self.projects:
                for end in ("start", "end"):
                    t = getattr(p.monitoring_period, f"{end}_ns")
                    if t % step:
                        raise ValueError(f"project {p.id}: monitoring_period.{end} {getattr(p.monitoring_period, end).isoformat()} is not on a "
                                         f"{duration_label(step // 1_000_000_000)} interval edge ({iv_name}): the period's first or last interval "
                                         "would be cut; start and end it on an edge")
        return self

    @property
    def process_interval_s(self) -> int:
        return parse_duration_s(self.process_interval)

    @property
    def mrv_interval_s(self) -> int:
        return parse_duration_s(self.mrv_interval)

    @property
    def state_hold_max_s(self) -> int:
        return parse_duration_s(self.state_hold_max)

    @property
    def lateness_s(self) -> int:
        return parse_duration_s(self.lateness)

    @property
    def late_data_lookback_s(self) -> int:
        return parse_duration_s(self.late_data_lookback)


def _gcd_s(offset_s: int) -> int:
    import math

    return math.gcd(int(offset_s) % 86400 or 86400, 86400)


def boundary_offsets(project: ProjectConfig, kind: str) -> list[tuple[str, int]]:
    """(what, UTC offset in s) of the boundaries a ``kind`` report cuts at: the Japanese fiscal
    year (00:00 JST on 1 April) or the calendar years of the project's zone (each offset the
    zone takes over the monitoring period, daylight-saving time included)."""
    if kind == "fiscal_year":
        return [("the Japanese fiscal year's start (00:00 JST)", 9 * 3600)]
    zone = project.zone
    offsets = set()
    mp = project.monitoring_period
    for year in range(mp.start.year, mp.end.year + 2):
        for month in (1, 7):
            offsets.add(int(datetime(year, month, 1, tzinfo=zone).utcoffset().total_seconds()))
    return [(f"calendar years in {project.timezone}", o) for o in sorted(offsets)]


def check_report_alignment(project: ProjectConfig, interval_s: int, kind: str) -> None:
    """``ValueError`` when a ``kind`` report of ``project`` would have to cut an interval of
    ``interval_s`` at its boundary (the split is refused rather than guessed)."""
    for what, offset_s in boundary_offsets(project, kind):
        if offset_s % interval_s:
            raise ValueError(
                f"project {project.id}: {duration_label(interval_s)} intervals do not align with {what} (UTC{offset_s / 3600:+g} h): "
                f"an interval would straddle the boundary. Report this project by monitoring period, or set analytics.mrv_interval "
                f"to an interval that divides {duration_label(_gcd_s(offset_s))} (e.g. 30m)")


SECTION = ConfigSection("analytics", AnalyticsConfig)
