"""Config section `api`: the verifier API's listener, access tokens, query bounds and logs.

Tokens are never stored in clear: a config entry holds the SHA-256 of the token
(``plantmrv api token create --print-hash`` prints one), the SQLite store does the same. The
projects themselves are configured once, in the ``analytics`` section, and read from there.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from plantmrv.config import ConfigSection, MetricsConfig, StrictModel

Role = Literal["verifier", "operator", "admin"]
PROJECT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"  # analytics.projects[].id, at most 64 characters


class ApiMetricsConfig(MetricsConfig):
    port: int | None = Field(9111, ge=0, le=65535, description="Their port (apart from the API's, so they stay off the public listener); null disables them, 0 picks a free port (logged).")


class ApiTokenEntry(StrictModel):
    """A token declared in the config file (by its hash), for deployments without a store."""

    name: str = Field(description="Who holds the token; appears in the request log as `who=`.", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role = Field(description="verifier: read-only, its projects only; operator: all projects; admin: all projects and token listing.")
    projects: list[str] = Field(default_factory=list, description="Project ids a verifier may read (required for verifiers; ignored for operator/admin).")
    sha256: str = Field(description="Hex SHA-256 of the token (never the token itself).", pattern=r"^[0-9a-f]{64}$")
    expires: datetime | None = Field(None, description="The token is refused from this time on (ISO 8601; UTC if no offset).")

    @field_validator("expires")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v.replace(tzinfo=timezone.utc) if v is not None and v.tzinfo is None else v

    @model_validator(mode="after")
    def _verifier_has_projects(self) -> "ApiTokenEntry":
        if self.role == "verifier" and not self.projects:
            raise ValueError("a verifier token must list the projects it may read")
        for p in self.projects:
            if not re.match(PROJECT_ID_PATTERN, p):
                raise ValueError(f"project id {p!r} is not a valid project id")
        return self


class ApiLogConfig(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level of the `plantmrv.api` loggers.")
    file: Path | None = Field(None, description="Append logs to this file as well as standard error.")
    requests: bool = Field(True, description="Log one line per request: who, role, method, path, query, status, duration (never the token).")


class ApiLimits(StrictModel):
    """Fair use: one token cannot slow the others down, and nothing waits forever on InfluxDB."""

    per_token_concurrency: int = Field(4, ge=1, le=1000, description="Requests that read InfluxDB (reductions, reports, exports, acceptances) one token may have in flight; more get 429 with Retry-After.")
    retry_after_s: int = Field(5, ge=1, le=3600, description="Retry-After of a 429 answer [s].")
    workers: int = Field(8, ge=1, le=256, description="Threads that read InfluxDB for requests; more requests queue. Token, project and health requests never wait for them.")
    influx_timeout_s: float = Field(30.0, gt=0, le=3600, description="Longest wait for InfluxDB to connect or send the next part of an answer [s]; then 503 (or an aborted export).")
    influx_retries: int = Field(1, ge=0, le=10, description="Retries of a failed InfluxDB query for the API (each may wait `influx_timeout_s`).")
    request_timeout_s: float = Field(300.0, gt=0, le=86400, description="Longest a report or reductions request may read InfluxDB [s]; then 504.")
    health_timeout_s: float = Field(2.0, gt=0, le=60, description="Longest `/health` waits for InfluxDB's ping [s]; then it answers `degraded`.")
    max_export_raw_rows: int = Field(50_000_000, ge=1, description="Raw rows a CSV export may hold, counted before it starts (413 beyond).")


class ApiTlsConfig(StrictModel):
    """HTTPS for the API itself (without it, put a TLS-terminating proxy in front)."""

    cert_file: Path = Field(description="PEM certificate chain the API presents (server certificate first).")
    key_file: Path = Field(description="PEM private key of the certificate (readable by the API's user only).")


class ApiConfig(StrictModel):
    """The verifier API (`plantmrv api -c FILE`): listener, tokens, query bounds, logs."""

    host: str = Field("127.0.0.1", description="Listen address (`0.0.0.0` in a container, behind a TLS-terminating proxy, or with `tls`).")
    port: int = Field(8000, ge=1, le=65535, description="Listen port.")
    root_path: str = Field("", description="URL prefix when served behind a proxy under a sub-path (e.g. `/mrv`).")
    projects_from: Path | None = Field(None, description="Read projects from this file's `analytics` section when this file has none (e.g. `/etc/plantmrv/analytics.yaml`).")
    tls: ApiTlsConfig | None = Field(None, description="Serve HTTPS with this certificate and key.")
    token_store: Path | None = Field(None, description="SQLite file of hashed tokens (`plantmrv api token ...`) and operators' acceptances; created if missing (mode 0600, in a directory made 0700). Refused when another user owns it or could write it or its directory (as ssh's StrictModes).")
    tokens: list[ApiTokenEntry] = Field(default_factory=list, description="Tokens declared in config, by hash.")
    results_database: str | None = Field(None, description="InfluxDB database holding measurement `mrv` when it is not `influxdb.database` (2.x: the DBRP database of a separate results bucket; the same retention policy setting applies).")
    mrv_interval: Literal["1m", "1h"] | None = Field(None, description="Which `interval` tag of measurement `mrv` the API aggregates from; default `analytics.mrv_interval` (else 1h).")
    max_span_days: float = Field(400.0, gt=0, le=36600, description="Longest time range `/reductions` and `/monitoring-report` accept [days].")
    max_export_span_days: float = Field(92.0, gt=0, le=3660, description="Longest time range `/export` accepts [days] (raw data at native resolution).")
    max_xlsx_raw_rows: int = Field(1_000_000, ge=1, le=1_048_000, description="Raw rows an xlsx export may hold (Excel's sheet limit is 1,048,576), counted before it starts (413 beyond: use format=csv).")
    max_gaps_listed: int = Field(10_000, ge=1, description="Most gaps one `/reductions` answer lists (the count is always exact).")
    limits: ApiLimits = Field(default_factory=ApiLimits, description="Per-token concurrency, worker threads and timeouts toward InfluxDB.")
    log: ApiLogConfig = Field(default_factory=ApiLogConfig, description="Logs of the API service.")
    metrics: ApiMetricsConfig = Field(default_factory=ApiMetricsConfig, description="Prometheus /metrics, /healthz and /readyz, on their own port.")

    @model_validator(mode="after")
    def _unique_token_names(self) -> "ApiConfig":
        names = [t.name for t in self.tokens]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"token names must be unique, repeated: {', '.join(sorted(dup))}")
        return self


SECTION = ConfigSection("api", ApiConfig)
