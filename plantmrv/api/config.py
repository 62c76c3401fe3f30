"""Config section `api`: the verifier API's listener, access tokens, query bounds and logs.

Tokens are never stored in clear: a config entry holds the SHA-256 of the token
(``plantmrv api token create --print-hash`` prints one), the SQLite store does the same. The
projects themselves are configured once, in the ``analytics`` section, and read from there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from plantmrv.config import StrictModel

Role = Literal["verifier", "operator", "admin"]
PROJECT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"  # analytics.projects[].id, at most 64 characters


class ApiTokenEntry(StrictModel):
    """A token declared in the config file (by its hash), for deployments without a store."""

    name: str = Field(description="Who holds the token; appears in the request log as `who=`.", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role = Field(description="verifier: read-only, its projects only; operator: all projects; admin: all projects and token listing.")
    projects: list[str] = Field(default_factory=list, description="Project ids a verifier may read (required for verifiers; ignored for operator/admin).")
    sha256: str = Field(description="Hex SHA-256 of the token (never the token itself).", pattern=r"^[0-9a-f]{64}$")

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


class ApiConfig(StrictModel):
    """The verifier API (`plantmrv api -c FILE`): listener, tokens, query bounds, logs."""

    host: str = Field("127.0.0.1", description="Listen address (`0.0.0.0` in a container, behind a TLS-terminating proxy).")
    port: int = Field(8000, ge=1, le=65535, description="Listen port.")
    root_path: str = Field("", description="URL prefix when served behind a proxy under a sub-path (e.g. `/mrv`).")
    projects_from: Path | None = Field(None, description="Read projects from this file's `analytics` section when this file has none (e.g. `/etc/plantmrv/analytics.yaml`).")
    token_store: Path | None = Field(None, description="SQLite file of hashed tokens managed with `plantmrv api token ...`; created if missing.")
    tokens: list[ApiTokenEntry] = Field(default_factory=list, description="Tokens declared in config, by hash.")
    mrv_interval: Literal["1m", "1h"] | None = Field(None, description="Which `interval` tag of measurement `mrv` the API aggregates from; default `analytics.mrv_interval` (else 1h).")
    max_span_days: float = Field(400.0, gt=0, le=36600, description="Longest time range `/reductions` and `/monitoring-report` accept [days].")
    max_export_span_days: float = Field(92.0, gt=0, le=3660, description="Longest time range `/export` accepts [days] (raw data at native resolution).")
    max_xlsx_raw_rows: int = Field(1_000_000, ge=1, le=1_048_000, description="Raw rows an xlsx export may hold (Excel's sheet limit is 1,048,576); past it use format=csv.")
    max_gaps_listed: int = Field(10_000, ge=1, description="Most gaps one `/reductions` answer lists (the count is always exact).")
    log: ApiLogConfig = Field(default_factory=ApiLogConfig, description="Logs of the API service.")

    @model_validator(mode="after")
    def _unique_token_names(self) -> "ApiConfig":
        names = [t.name for t in self.tokens]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"token names must be unique, repeated: {', '.join(sorted(dup))}")
        return self
