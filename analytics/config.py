"""Config section ``analytics``: projects (site + assets + methodology + parameters), intervals.

A project is configured, not coded: a new plant of a known type needs only a new entry here.
Every parameter carries value, unit, source and JCM monitoring option (A/B/C); unknown keys are
errors; errors name the key path (``analytics.projects[1].parameters.eta_reference: ...``),
rendered with the YAML line by :func:`plantmrv.config.load_config`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Literal

from pydantic import Field, field_validator, model_validator

from plantmrv.config import StrictModel, check_timezone

PLANT_TYPES = ("pump", "vsd", "wte", "ubcf", "pv")
#: Baseline models each plant type supports (the first is the default).
BASELINES_BY_TYPE = {
    "pump": ("efficiency_ratio", "specific_energy"),
    "vsd": ("constant_power_hours", "specific_energy"),
    "wte": ("fod_methane",),
    "ubcf": ("specific_energy",),
    "pv": ("generation",),
}
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
    """Which fields of the asset's measurement play which role (names from docs/data-model.md)."""

    energy_meter: str | list[str] | None = Field(None, description="Cumulative electricity register(s) consumed, kWh (e.g. `energy_kwh`).")
    power: str | list[str] | None = Field(None, description="Active power consumed, kW (used when no energy meter).")
    flow: str | None = Field(None, description="Flow, m3/h (volume when no volume meter).")
    volume_meter: str | None = Field(None, description="Cumulative volume register, m3.")
    running: str | None = Field(None, description="0/1 running flag (operating hours).")
    export_meter: str | None = Field(None, description="Cumulative electricity exported to the grid, kWh.")
    export_power: str | None = Field(None, description="Power exported/generated, kW (when no export meter).")
    waste_meter: str | None = Field(None, description="Cumulative waste fed, t (weighbridge).")
    waste_rate: str | None = Field(None, description="Waste feed rate, t/h (when no waste meter).")
    aux_fuel_rate: str | None = Field(None, description="Auxiliary fuel, kg/h.")
    chlorine_rate: str | None = Field(None, description="Chlorine dose, kg/h.")
    coagulant_rate: str | None = Field(None, description="Coagulant dose, kg/h.")
    grid_available: str | None = Field(None, description="0/1 flag, 1 while the grid supplies the site (JCM KH_AM002 day category; held until the next sample).")
    quality_pairs: dict[str, tuple[str, str]] = Field(default_factory=dict, description="Co-benefit removal KPIs: name -> [inflow field, outflow field].")


class AssetConfig(StrictModel):
    measurement: str = Field(description="Raw measurement (asset class), e.g. `pump`.")
    asset: str = Field(description="`asset` tag value.")
    site: str | None = Field(None, description="`site` tag value; defaults to the project's site.")
    fields: AssetFields = Field(default_factory=AssetFields)
    rollover_at: float | None = Field(None, gt=0, description="Register maximum of this asset's meters (they wrap to 0 after it).")


class DayCategoryConfig(StrictModel):
    """JCM KH_AM002: the emission factor of each day d by its category (grid supply or outage)."""

    utc_offset_h: float = Field(7.0, ge=-12, le=14, description="Days d run from local midnight: UTC offset in hours (Cambodia: 7).")


class MethodologyRef(StrictModel):
    id: str = Field(description="Methodology id, e.g. `VN_AM007` or `plantmrv-pump-form`; the `methodology` tag.")
    version: str = Field("1.0", description="Methodology version applied.")


class GridEFRef(StrictModel):
    """The grid emission factor: a row of the shipped table, or an explicit value with a source."""

    country: str | None = None
    grid: str | None = None
    year: int | None = None
    kind: Literal["OM", "BM", "CM", "national"] | None = None
    generation_type: str = Field("other", description="`solar`/`wind` use TOOL07 weights 0.75/0.25, else 0.5/0.5.")
    value: float | None = Field(None, ge=0, description="Explicit factor, tCO2/MWh (needs `source`).")
    source: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> "GridEFRef":
        if self.value is not None:
            if not self.source:
                raise ValueError("an explicit grid EF value needs a source")
        elif None in (self.country, self.grid, self.year, self.kind):
            raise ValueError("give country, grid, year and kind of the emission-factor table, or value + source")
        else:
            from .emission_factors import EmissionFactorError, default_table

            try:  # fail at config check, not at the first computation
                default_table().lookup(self.country, self.grid, self.year, self.kind, self.generation_type)
            except EmissionFactorError as exc:
                raise ValueError(str(exc)) from None
        return self


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


class ProjectConfig(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Project id: the `project` tag of `mrv`.")
    name: str | None = Field(None, description="Human-readable project name.")
    site: str = Field(description="Site id (the raw data's `site` tag).")
    city: str | None = Field(None, description="City, for the portfolio roll-up.")
    country: str | None = Field(None, description="Host country (ISO alpha-2), for the portfolio roll-up.")
    timezone: str = Field("utc", description="IANA time zone of the site (e.g. `Asia/Ho_Chi_Minh`): the plant dashboard's zone; reports state it.")
    plant_type: Literal["pump", "vsd", "wte", "ubcf", "pv"] = Field(description="Methodology family: pump, vsd, wte, ubcf (KPIs, not credited), pv.")
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
    project_fill_rate_kw: ParameterValue | None = Field(None, description="Maximum plausible project rate for gap filling; default the period's highest observed rate.")

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
        allowed = BASELINES_BY_TYPE[plant_type]
        if v not in allowed:
            raise ValueError(f"baseline {v!r} does not apply to plant_type {plant_type!r}; choose one of {', '.join(allowed)}")
        return v

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, v, info):
        plant_type = info.data.get("plant_type")
        if plant_type is None:
            return v
        from .methodologies import parameter_defaults
        from .parameters import override

        override(parameter_defaults(plant_type), {k: p.model_dump() for k, p in v.items()}, "parameters")
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
            self.baseline = BASELINES_BY_TYPE[self.plant_type][0]
        return self

    @property
    def parameter_set(self):
        """The methodology's parameter dataclass with this project's overrides applied."""
        from .methodologies import parameter_defaults
        from .parameters import override

        return override(parameter_defaults(self.plant_type), {k: p.model_dump() for k, p in self.parameters.items()}, "parameters")


class AnalyticsConfig(StrictModel):
    projects: list[ProjectConfig] = Field(default_factory=list, description="MRV projects: a plant, its methodology, parameters and monitoring period.")
    process_interval: int | str = Field("1m", description="Interval of process KPIs (`interval` tag `1m`).")
    mrv_interval: int | str = Field("1h", description="Interval of MRV results (`interval` tag `1h`).")
    max_gap_s: float = Field(10.0, gt=0, description="Longest spacing between samples that is bridged; longer is a gap.")
    late_data_lookback: int | str = Field("6h", description="How far back the continuous engine looks for late data to recompute.")
    state_hold_max: int | str = Field("1d", description="How far back a state flag's last value (e.g. `running`, sent only on change) is looked up and held.")
    late_data_check_s: float = Field(60.0, gt=0, description="How often the continuous engine compares raw sample counts over the lookback window (one count query per project).")
    poll_s: float = Field(5.0, gt=0, description="How often the continuous engine checks for closed intervals and late data.")
    settle_s: float = Field(10.0, ge=0, description="Wait after an interval closes before computing it (samples in flight).")

    @field_validator("process_interval", "mrv_interval", "late_data_lookback", "state_hold_max")
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
    def late_data_lookback_s(self) -> int:
        return parse_duration_s(self.late_data_lookback)
