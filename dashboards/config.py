"""Config section ``dashboards``: time zones, alert thresholds, contact points, targets, links.

The dashboards and alert rules are generated from the plant-type definitions in ``build.py``
and from this section together with the ``analytics`` projects of the same file (their sites,
time zones, ex-ante estimates and parameters). Errors name the key path, as every section does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from plantmrv.config import ConfigSection, StrictModel, check_timezone

PLANT_TYPE_KEYS = ("ubcf", "pump", "vsd", "wte", "pv")


class AlertThresholds(StrictModel):
    """Thresholds of the generated alert rules (one rule group per plant type, one for the portfolio)."""

    evaluation_interval: str = Field("1m", pattern=r"^\d+[smh]$", description="How often Grafana evaluates each rule group.")
    gateway_offline_min: int = Field(5, ge=1, description="A gateway with no health report for this many minutes is offline.")
    buffer_fill_ratio: float = Field(0.8, gt=0, lt=1, description="Alert when a gateway's buffer holds more than this fraction of its own `buffer.max_mb`.")
    dead_letters_window_min: int = Field(10, ge=1, description="Alert when ingest's dead-letter total rose within this many minutes.")
    tag_bad_min: int = Field(15, ge=1, description="Alert when a tag's samples were BAD in every minute of this many minutes.")
    completeness_min: float = Field(0.9, gt=0, le=1, description="Alert when the minute results of the last hour cover less than this fraction.")
    analytics_lag_min: int = Field(15, ge=1, description="Alert when a project has no minute result for this many minutes (analytics stopped or data stopped).")
    data_lag_min: int = Field(15, ge=1, description="Alert when no data delivery (`coverage`) came for an asset for this many minutes.")
    reductions_ratio: float = Field(0.5, gt=0, le=1, description="Alert when a project's daily reductions stay below this fraction of its ex-ante daily rate ...")
    reductions_days: int = Field(3, ge=1, le=31, description="... on each of this many days.")
    efficiency_window_h: int = Field(24, ge=1, le=168, description="Alert when a pump's mean wire-to-water efficiency while running over this many hours is below its project's `eta_reference` (the baseline pump's); shorter windows catch the normal swing around the best-efficiency point.")
    treated_turbidity_ntu: float = Field(2.0, gt=0, description="Treated-water turbidity limit [NTU] of the turbidity panel and alert (QCVN 01-1:2018: 2 NTU for drinking water; a pre-treatment stage uses its design outlet value).")
    turbidity_for_min: int = Field(10, ge=1, description="Turbidity above the limit for this many minutes.")


class ContactPointConfig(StrictModel):
    """A Grafana contact point; values are placeholders filled from the environment (``$VAR``)."""

    name: str = Field(min_length=1)
    type: Literal["email", "webhook", "slack", "line", "teams"] = "email"
    settings: dict[str, str] = Field(description="Receiver settings, e.g. `{addresses: $PLANTMRV_ALERT_EMAIL}`; Grafana expands `$VAR` from its environment.")


class TargetConfig(StrictModel):
    """A reduction target for one fiscal year of a city, a country or a programme."""

    scope: Literal["city", "country", "programme"]
    name: str = Field(min_length=1, description="City (as in `analytics.projects[].city`), country code, or programme name.")
    fiscal_year: int = Field(ge=2000, le=2100, description="Japanese fiscal year (April to March), labelled by the year it starts.")
    t_co2: float = Field(gt=0, description="Target reductions in the fiscal year [tCO2].")
    projects: list[str] | None = Field(None, description="Projects of a programme (for a city or country: the projects with that city / country).")
    source: str = Field(min_length=1, description="Where the target is stated (programme document, city plan).")

    @model_validator(mode="after")
    def _programme_projects(self) -> "TargetConfig":
        if self.scope == "programme" and not self.projects:
            raise ValueError("a programme target lists its projects")
        return self


class DashboardsConfig(StrictModel):
    portfolio_timezone: str = Field("Asia/Tokyo", description="Time zone of the portfolio dashboard (the programme office).")
    timezones: dict[Literal["ubcf", "pump", "vsd", "wte", "pv"], str] = Field(
        default_factory=dict,
        description="Time zone per plant-type dashboard; default: the `timezone` of that type's analytics projects (`utc` when none).",
    )
    fiscal_year_start_month: int = Field(4, ge=1, le=12, description="First month of the fiscal year (Japan: April).")
    api_url: str = Field("http://localhost:8000", description="Verifier API base URL as a browser reaches it (export links).")
    alerts: AlertThresholds = Field(default_factory=AlertThresholds)
    contact_points: list[ContactPointConfig] = Field(
        default_factory=lambda: [ContactPointConfig(name="plantmrv operators", type="email", settings={"addresses": "$PLANTMRV_ALERT_EMAIL"})],
        description="Where alerts go; the first one receives everything the notification policy does not route elsewhere.",
    )
    targets: list[TargetConfig] = Field(default_factory=list, description="Reduction targets shown on the portfolio (monitored vs planned vs target).")

    @field_validator("portfolio_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("timezones")
    @classmethod
    def _tzs(cls, v: dict) -> dict:
        return {k: check_timezone(z) for k, z in v.items()}

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v.rstrip("/")

    @field_validator("contact_points")
    @classmethod
    def _contacts(cls, v: list) -> list:
        if not v:
            raise ValueError("at least one contact point (the notification policy's default receiver)")
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            raise ValueError(f"contact point names must be unique: {names}")
        return v


SECTION = ConfigSection("dashboards", DashboardsConfig)
