"""Request and response models of the verifier API, each with an example for the OpenAPI docs.

Quantities carry their unit in the name (``reduction_t_co2``, ``energy_saved_kwh``); times are
ISO 8601 UTC. The same :class:`ProjectDetail` model describes a project inside the service and
on the wire, so what a verifier reads is exactly what the calculation used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Interval = Literal["hour", "day", "month", "period"]
Rounding = Literal["floor", "round", "none"]


def _examples(*examples: dict) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


# --------------------------------------------------------------------------- projects

EXAMPLE_PARAMETER = {
    "name": "eta_project",
    "symbol": "eta_PJ",
    "description": "Wire-to-water efficiency of the project pump",
    "value": 0.808,
    "unit": "-",
    "option": "A",
    "kind": "datasheet",
    "source": "Pump test certificate No. 1234 (manufacturer), 2017",
    "measurement_method": "Factory performance test",
    "frequency": "Once, ex ante",
    "comments": "",
}


class ParameterInfo(BaseModel):
    """One parameter with its source: the columns of a JCM monitoring-report input sheet."""

    model_config = _examples(EXAMPLE_PARAMETER)
    name: str = Field("", description="Key in the project's config (`analytics.projects[].parameters.<name>`).")
    symbol: str
    description: str = ""
    value: float | None = None
    unit: str = ""
    option: Literal["A", "B", "C"] | None = Field(None, description="JCM monitoring option: A public data/datasheet, B invoices/revenue meters, C project's own measurement.")
    kind: Literal["datasheet", "default", "measured", "ex_ante", "other"] = "other"
    source: str = ""
    measurement_method: str = ""
    frequency: str = ""
    comments: str = ""


EXAMPLE_EF = {"value_t_co2_per_mwh": 0.8154, "country": "VN", "grid": "national", "year": 2015, "kind": "national", "source": "DCC/MONRE, Viet Nam grid emission factor 2015 (CDM TOOL07)"}


class EmissionFactorInfo(BaseModel):
    model_config = _examples(EXAMPLE_EF)
    value_t_co2_per_mwh: float
    country: str = ""
    grid: str = ""
    year: int | None = None
    kind: str = ""
    source: str = ""


EXAMPLE_POINT = {
    "symbol": "EC_PJ",
    "description": "Electricity consumed by project pump 1",
    "measurement": "pump",
    "site": "danang",
    "asset": "pump1",
    "field": "energy_kwh",
    "unit": "kWh",
    "option": "C",
    "measurement_method": "Revenue-grade energy meter (cumulative register)",
    "frequency": "Continuous, 10 s",
    "meter": "EM-01",
}


class MonitoringPointInfo(BaseModel):
    """A monitored quantity: where its raw values live in InfluxDB and how it is measured."""

    model_config = _examples(EXAMPLE_POINT)
    symbol: str
    description: str = ""
    measurement: str
    site: str
    asset: str | None = None
    field: str
    unit: str = ""
    option: Literal["A", "B", "C"] | None = "C"
    measurement_method: str = ""
    frequency: str = ""
    meter: str | None = None


class FormulaInfo(BaseModel):
    model_config = _examples({"symbol": "RE_p", "expression": "RE_p = sum_i EC_PJ,i x (eta_PJ / eta_RE) x EF_elec / 1000", "description": "Reference emissions [tCO2]", "tag": "form"})
    symbol: str
    expression: str
    description: str = ""
    tag: str = Field("", description="[published], [derived] or [form], as in methodologies.md.")


class MonitoringPeriodInfo(BaseModel):
    model_config = _examples({"id": "MP1", "start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"})
    id: str
    start: datetime
    end: datetime


class MethodologyInfo(BaseModel):
    model_config = _examples({"id": "VN_AM00X", "version": "1.0", "title": "High-efficiency pumps", "baseline_model": "efficiency_ratio", "formulas": [], "missing_data_rule": "...", "rounding": "floor"})
    id: str
    version: str = ""
    title: str = ""
    baseline_model: str
    formulas: list[FormulaInfo] = Field(default_factory=list)
    missing_data_rule: str = ""
    rounding: Rounding = Field("floor", description="Rule applied to the period total: floor to whole tonnes (JCM, J-Credit), or none.")
    rounding_scheme: str = Field("jcm", description="The project's rounding scheme (`analytics.projects[].rounding`).")
    credited: bool = Field(True, description="False for KPI-only plants (U-BCF): reductions are reported, not credited.")


EXAMPLE_SUMMARY = {"id": "danang-pumps", "name": "Cau Do high-efficiency pumps", "plant_type": "pump", "site": "danang", "country": "VN", "methodology_id": "VN_AM00X", "methodology_version": "1.0"}


class ProjectSummary(BaseModel):
    model_config = _examples(EXAMPLE_SUMMARY)
    id: str
    name: str = ""
    plant_type: str = ""
    site: str
    country: str = ""
    methodology_id: str
    methodology_version: str = ""


class ProjectDetail(BaseModel):
    """Everything needed to re-derive a project's reductions, apart from the data."""

    model_config = _examples(
        {
            **{k: v for k, v in EXAMPLE_SUMMARY.items() if not k.startswith("methodology")},
            "methodology": {"id": "VN_AM00X", "version": "1.0", "title": "High-efficiency pumps", "baseline_model": "efficiency_ratio", "formulas": [], "missing_data_rule": "reference 0, project at its maximum", "rounding": "floor"},
            "parameters": [EXAMPLE_PARAMETER],
            "grid_emission_factor": EXAMPLE_EF,
            "monitoring_points": [EXAMPLE_POINT],
            "monitoring_periods": [{"id": "MP1", "start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}],
            "ex_ante_t_co2": 1043.0,
            "japan_share": 0.5,
        }
    )
    id: str
    name: str = ""
    plant_type: str = ""
    site: str
    country: str = ""
    methodology: MethodologyInfo
    parameters: list[ParameterInfo] = Field(default_factory=list)
    grid_emission_factor: EmissionFactorInfo | None = None
    monitoring_points: list[MonitoringPointInfo] = Field(default_factory=list)
    monitoring_periods: list[MonitoringPeriodInfo] = Field(default_factory=list)
    ex_ante_t_co2: float | None = Field(None, description="Ex-ante estimate for the monitoring period [tCO2], shown beside the ex-post value.")
    japan_share: float | None = Field(None, description="Japan's share of credits per the Credit Allocation Form (0..1).")
    params_hash: str | None = Field(None, description="The `params_hash` the analytics engine stamps on results computed with these parameters; stored results with another hash are flagged as stale.")
    crediting_start: datetime | None = Field(None, description="Waste-to-energy: start of the crediting period, year 1 of the first-order-decay model (CDM TOOL04); later years credit the decay of earlier years' waste.")
    day_category_utc_offset_h: float | None = Field(None, description="Solar PV under JCM KH_AM002: days d (whose category picks the grid or the diesel EF) run from local midnight at this UTC offset [h].")

    def summary(self) -> ProjectSummary:
        return ProjectSummary(
            id=self.id, name=self.name, plant_type=self.plant_type, site=self.site, country=self.country,
            methodology_id=self.methodology.id, methodology_version=self.methodology.version,
        )

    def parameter(self, symbol: str) -> ParameterInfo | None:
        return next((p for p in self.parameters if p.symbol == symbol), None)


# --------------------------------------------------------------------------- results

EXAMPLE_ROW = {
    "start": "2024-03-01T00:00:00Z",
    "end": "2024-03-02T00:00:00Z",
    "reference_energy_kwh": 5100.0,
    "project_energy_kwh": 4800.0,
    "energy_saved_kwh": 300.0,
    "reference_t_co2": 4.1585,
    "project_t_co2": 3.9139,
    "reduction_t_co2": 0.2446,
    "completeness": 0.98,
    "gap_filled_s": 1728.0,
    "intervals_expected": 24,
    "intervals_found": 24,
}


class ReductionRow(BaseModel):
    model_config = _examples(EXAMPLE_ROW)
    start: datetime
    end: datetime
    reference_energy_kwh: float | None
    project_energy_kwh: float | None
    energy_saved_kwh: float | None
    reference_t_co2: float | None
    project_t_co2: float | None
    reduction_t_co2: float | None
    completeness: float = Field(description="Covered fraction of the interval's time, 0..1 (intervals without a result count as 0).")
    gap_filled_s: float = Field(description="Seconds filled by the methodology's conservative rule.")
    intervals_expected: int = Field(description="Result intervals (`mrv_interval`) the row spans.")
    intervals_found: int = Field(description="Result intervals present in InfluxDB.")


EXAMPLE_GAP = {"start": "2024-03-01T05:00:00Z", "end": "2024-03-01T06:00:00Z", "completeness": 0.52, "gap_filled_s": 1728.0, "filled_by": "reference energy 0, project energy at the period's highest observed rate"}


class GapInfo(BaseModel):
    model_config = _examples(EXAMPLE_GAP)
    start: datetime
    end: datetime
    completeness: float
    gap_filled_s: float
    filled_by: str


WarningCode = Literal["duplicate_interval", "misaligned_interval", "completeness_above_1", "completeness_invalid", "params_hash_stale"]
EXAMPLE_WARNING = {"code": "duplicate_interval", "count": 1, "first": "2024-03-01T05:00:00Z", "message": "1 result interval stored more than once (same start): its tonnes would be counted twice"}


class ResultWarning(BaseModel):
    """A stored result that failed a check before summing (docs/verifier.md, "Result checks")."""

    model_config = _examples(EXAMPLE_WARNING)
    code: WarningCode = Field(description="duplicate_interval: a start stored more than once; misaligned_interval: a start off the interval grid (overlaps its neighbours); completeness_above_1; completeness_invalid: negative or missing; params_hash_stale: computed with parameters other than the project's current ones.")
    count: int = Field(description="Stored intervals concerned.")
    first: datetime | None = Field(None, description="Start of the first interval concerned.")
    message: str


class ReductionsResponse(BaseModel):
    model_config = _examples(
        {
            "project": "danang-pumps", "methodology_id": "VN_AM00X", "interval": "day", "source_interval": "1h",
            "start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00Z", "rows": [EXAMPLE_ROW], "totals": EXAMPLE_ROW,
            "gaps": [EXAMPLE_GAP], "gaps_total": 1, "gaps_truncated": False, "warnings": [],
        }
    )
    project: str
    methodology_id: str
    interval: Interval
    source_interval: str
    start: datetime
    end: datetime
    rows: list[ReductionRow]
    totals: ReductionRow
    gaps: list[GapInfo]
    gaps_total: int
    gaps_truncated: bool
    warnings: list[ResultWarning] = Field(default_factory=list, description="Stored results of the range that failed a check; the sums above include them as stored.")


EXAMPLE_ACCEPTANCE = {
    "id": 1, "project": "danang-pumps", "period": "FY2024", "start": "2024-03-31T15:00:00Z", "end": "2025-03-31T15:00:00Z",
    "intervals_sha256": "5e0f...", "parameters_sha256": "9b1c...", "warnings": ["params_hash_stale:744"],
    "reason": "EF updated to the 2023 value on 2024-10-01 per MONRE notice; earlier months computed with the 2022 value, as registered",
    "accepted_by": "ops-lead", "accepted_via": "api", "accepted_at": "2025-04-10T02:00:00+00:00", "withdrawn_at": None, "withdrawn_by": None,
}


class AcceptanceInfo(BaseModel):
    """An operator's recorded acceptance of a period whose results failed checks: who, when, why,
    and exactly which results (their hashes) it covers."""

    model_config = _examples(EXAMPLE_ACCEPTANCE)
    id: int
    project: str
    period: str
    start: datetime
    end: datetime
    intervals_sha256: str = Field(description="The interval results accepted; any later change to them voids the acceptance.")
    parameters_sha256: str = Field(description="The project definition accepted; any later change voids the acceptance.")
    warnings: list[str] = Field(description="`code:count` of each warning accepted.")
    reason: str
    accepted_by: str
    accepted_via: Literal["api", "cli"]
    accepted_at: str
    withdrawn_at: str | None = None
    withdrawn_by: str | None = None


class AcceptanceRequest(BaseModel):
    """Accept the current results of a period despite its warnings (operator or admin)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"period": "FY2024", "intervals_sha256": "5e0f" + "0" * 60, "reason": "EF changed mid-period as registered; see PDD annex 3"}]})
    period: str = Field(max_length=40, pattern=r"^[A-Za-z0-9_./-]+$", description="The period, as for the monitoring report.")
    intervals_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="`intervals_sha256` of the report the operator reviewed: refused if the results changed since.")
    reason: str = Field(min_length=10, max_length=2000, description="Why these results may be credited as they are (kept with the acceptance).")


class ResultChecks(BaseModel):
    model_config = _examples({"status": "withheld", "warnings": [EXAMPLE_WARNING], "current_params_hash": "f391d1083201", "acceptance": None})
    status: Literal["ok", "withheld", "accepted"] = Field(description="ok: no warning; withheld: warnings and no acceptance, so the period is neither floored nor credited; accepted: an operator accepted exactly these results.")
    warnings: list[ResultWarning]
    current_params_hash: str | None = Field(description="The `params_hash` of the project's current parameters (null: not known to this API, not checked).")
    acceptance: AcceptanceInfo | None = None


EXAMPLE_PIECE = {"start": "2024-01-01T00:00:00Z", "end": "2024-04-02T00:00:00Z", "url": "/projects/danang-pumps/export?from=2024-01-01T00:00:00Z&to=2024-04-02T00:00:00Z",
                 "raw_rows": 794882, "data_sha256": "77de...", "intervals": 2208, "intervals_sha256": "5e0f..."}


class ExportPiece(BaseModel):
    """An export the report covers: its trailer must carry exactly these hashes and counts."""

    model_config = _examples(EXAMPLE_PIECE)
    start: datetime
    end: datetime
    url: str = Field(description="The export (CSV; `&format=xlsx` for the workbook), relative to the API's root.")
    raw_rows: int
    data_sha256: str
    intervals: int
    intervals_sha256: str


class MonitoringReport(BaseModel):
    model_config = _examples(
        {
            "project": "danang-pumps", "methodology_id": "VN_AM00X", "methodology_version": "1.0",
            "period": {"id": "MP1", "start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"},
            "reference_energy_kwh": 2_400_000.0, "project_energy_kwh": 1_120_000.0, "energy_saved_kwh": 1_280_000.0,
            "reference_t_co2": 1956.96, "project_t_co2": 913.248, "reduction_t_co2": 1043.712, "rounding": "floor",
            "reported_reduction_t_co2": 1043, "ex_ante_t_co2": 1043.0, "japan_share": 0.5, "japan_share_t_co2": 521.5, "credited": True,
            "completeness": 0.997, "gap_intervals": 12, "gap_filled_s": 25200.0, "mrv_intervals": 8784,
            "raw_points": 3162240, "params_hashes": ["3f2a..."],
            "parameters_sha256": "9b1c...", "data_sha256": "77de...", "intervals_sha256": "5e0f...", "report_sha256": "c0aa...",
            "checks": {"status": "ok", "warnings": [], "current_params_hash": "3f2a...", "acceptance": None}, "exports": [EXAMPLE_PIECE],
        }
    )
    project: str
    methodology_id: str
    methodology_version: str
    period: MonitoringPeriodInfo
    reference_energy_kwh: float
    project_energy_kwh: float
    energy_saved_kwh: float
    reference_t_co2: float
    project_t_co2: float
    reduction_t_co2: float = Field(description="ER_p at full precision: the sum of interval reductions.")
    rounding: Rounding
    reported_reduction_t_co2: float | None = Field(description="ER_p with the methodology's rounding rule applied (JCM: floor to whole tonnes); null while the checks withhold the period.")
    ex_ante_t_co2: float | None
    japan_share: float | None
    japan_share_t_co2: float | None = Field(description="Japan's share of the reported reductions (Credit Allocation Form); null while withheld.")
    credited: bool
    completeness: float
    gap_intervals: int
    gap_filled_s: float
    mrv_intervals: int
    raw_points: int
    params_hashes: list[str] = Field(description="Distinct `params_hash` values the engine stored for the period.")
    parameters_sha256: str = Field(description="SHA-256 of the canonical JSON of the project definition (parameters, EF, formulas).")
    data_sha256: str = Field(description="SHA-256 of the period's raw rows in the canonical form of docs/verifier.md, computed from the rows each time.")
    intervals_sha256: str = Field(description="SHA-256 of the interval results as exported: `ts_ns,<mrv fields>,params_hash` lines (the CSV's intervals section, columns ts_ns to params_hash).")
    report_sha256: str = Field(description="SHA-256 of the three hashes above, each followed by a newline: parameters, data, intervals.")
    checks: ResultChecks = Field(description="Checks of the stored results before summing; warnings withhold the rounded and credited tonnes unless accepted.")
    exports: list[ExportPiece] = Field(description="The exports (at most `max_export_span_days` each, consecutive) whose trailers carry the period's raw rows and intervals.")


class TokenInfo(BaseModel):
    """An access token as an admin sees it: who holds it and what it may read, never the token or its hash."""

    model_config = _examples({"id": 3, "name": "tuv-auditor", "role": "verifier", "projects": ["danang-pumps"], "source": "store", "created_at": "2026-03-01T09:00:00+00:00", "revoked_at": None, "expires_at": "2026-09-01T00:00:00+00:00", "last_used_at": "2026-03-02T10:41:00+00:00"})
    id: int | None = Field(None, description="Store id (for `plantmrv api token revoke`); null for tokens declared in config.")
    name: str
    role: str
    projects: list[str]
    source: Literal["config", "store"]
    created_at: str | None = None
    revoked_at: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = Field(None, description="Last successful use (to the minute); config tokens: not recorded.")


class HealthResponse(BaseModel):
    model_config = _examples({"status": "ok", "influxdb": "ok", "influxdb_version": "1.8.10", "projects": 5, "version": "0.1.0"})
    status: Literal["ok", "degraded"]
    influxdb: Literal["ok", "unreachable"]
    influxdb_version: str | None
    projects: int
    version: str


class ErrorResponse(BaseModel):
    model_config = _examples({"detail": "time range longer than 400 days"})
    detail: str
