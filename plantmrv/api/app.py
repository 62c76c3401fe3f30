"""The verifier API: FastAPI app factory.

``create_app(cfg)`` takes the loaded root config (sections ``api``, ``influxdb``,
``analytics``) and returns the ASGI app; ``plantmrv api -c FILE`` serves it with uvicorn.
Every endpoint but ``/health`` needs a bearer token; every request is logged as one line with
who called and what they asked (never the token; caller-supplied text percent-encoded, so it
cannot forge log lines). ``duration_ms`` runs until the response starts: exports stream after.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from urllib.parse import quote
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

import plantmrv
from plantmrv.api.auth import FORBIDDEN_PROJECT, Authenticator, principal, require_admin
from plantmrv.api.config import PROJECT_ID_PATTERN, ApiConfig
from plantmrv.api.export import ExportTooLarge, build_xlsx, iter_csv, iter_file
from plantmrv.api.models import (
    ErrorResponse,
    HealthResponse,
    Interval,
    MonitoringReport,
    ProjectDetail,
    ProjectSummary,
    ReductionsResponse,
    TokenInfo,
)
from plantmrv.api.projects import analytics_section, load_projects, parameters_sha256
from plantmrv.api.queries import SOURCE_INTERVAL_S, fetch_mrv, iter_raw, raw_fingerprint, raw_line
from plantmrv.api.reports import (
    PERIOD_HELP,
    RangeError,
    aggregate,
    allocate,
    apply_rounding,
    bucket_edges,
    check_range,
    gaps,
    mrv_sha256,
    parse_period,
    report_sha256,
)
from plantmrv.api.tokens import Principal
from plantmrv.influx import InfluxClient, InfluxError

log = logging.getLogger("plantmrv.api")
access_log = logging.getLogger("plantmrv.api.access")

ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token."},
    403: {"model": ErrorResponse, "description": "The token's role or project list does not allow this."},
    404: {"model": ErrorResponse, "description": "No such project (operators and admins; verifiers get 403 for any project not theirs)."},
    422: {"description": "Invalid project id, time range, interval, period or format."},
    503: {"model": ErrorResponse, "description": "InfluxDB unreachable."},
}
ProjectId = Annotated[str, Path(pattern=PROJECT_ID_PATTERN, max_length=64, description="Project id (as configured in `analytics.projects`).", examples=["danang-pumps"])]
FromTime = Annotated[datetime, Query(alias="from", description="Start, ISO 8601 (UTC if no offset), inclusive; whole hours.", examples=["2024-03-01T00:00:00Z"])]
ToTime = Annotated[datetime, Query(alias="to", description="End, ISO 8601, exclusive; whole hours.", examples=["2024-03-02T00:00:00Z"])]
Who = Annotated[Principal, Depends(principal)]
_REDACT = {"token", "access_token", "api_key", "apikey", "password"}


def _q(text: str, limit: int = 120) -> str:
    """Caller-supplied text for a log line: percent-encoded, so it cannot break the line or a key=value pair."""
    return quote(text[:limit], safe="/:,._-+*@")


def _safe_query(request: Request) -> str:
    parts = []
    for k, v in request.query_params.multi_items():
        parts.append(f"{_q(k, 40)}={'***' if k.lower() in _REDACT else _q(v, 80)}")
    return "&".join(parts)


def _analytics_interval(cfg: Any) -> str:
    analytics = analytics_section(cfg)
    if analytics is None:
        return "1h"
    from plantmrv.analytics.config import duration_label

    label = duration_label(analytics.mrv_interval_s)
    if label not in SOURCE_INTERVAL_S:
        raise ValueError(f"analytics.mrv_interval {label!r}: the API reads 1m or 1h results; set api.mrv_interval")
    return label


def create_app(cfg: Any, projects: list[ProjectDetail] | None = None, client: InfluxClient | None = None) -> FastAPI:
    """Build the app from the root config (``cfg.api``, ``cfg.influxdb``, ``cfg.analytics``).

    ``projects`` overrides the projects read from ``cfg.analytics`` (for embedding the API
    elsewhere); ``client`` overrides the InfluxDB client made from ``cfg.influxdb``.
    """
    api_cfg: ApiConfig = getattr(cfg, "api", None) or ApiConfig()
    project_list = projects if projects is not None else load_projects(cfg)
    by_id = {p.id: p for p in project_list}
    influx = client or cfg.influxdb.client()
    source_interval = api_cfg.mrv_interval or _analytics_interval(cfg)
    source_s = SOURCE_INTERVAL_S[source_interval]

    app = FastAPI(
        title="plantmrv verifier API",
        version=plantmrv.__version__,
        description=(
            "Reductions of JCM demonstration projects with everything needed to re-derive them: raw data, "
            "parameters with sources, formulas and gaps. Authenticate with `Authorization: Bearer <token>` "
            "(`plantmrv api token create`). Roles: verifier (read-only, its projects), operator, admin."
        ),
        root_path=api_cfg.root_path,
    )
    app.state.authenticator = Authenticator(api_cfg)
    app.state.config = api_cfg
    app.state.influx = influx
    app.state.projects = project_list

    @app.middleware("http")
    async def log_requests(request: Request, call_next):
        t0 = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            if api_cfg.log.requests:
                who: Principal | None = getattr(request.state, "principal", None)
                access_log.info(
                    "event=request who=%s role=%s method=%s path=%s query=%s status=%d duration_ms=%.1f client=%s",
                    who.name if who else "-", who.role if who else "-", _q(request.method, 10), _q(request.url.path, 200),
                    _safe_query(request) or "-", status, (time.perf_counter() - t0) * 1000,
                    request.client.host if request.client else "-",
                )

    @app.exception_handler(InfluxError)
    @app.exception_handler(httpx.TransportError)  # InfluxClient.query_chunks lets these through
    async def influx_error(request: Request, exc: Exception):
        log.error("event=influx_error path=%s error=%s", request.url.path, f"{exc.__class__.__name__}: {exc}"[:300])
        return JSONResponse({"detail": "InfluxDB unreachable or refused the query"}, status_code=503)

    @app.exception_handler(RangeError)
    async def range_error(request: Request, exc: RangeError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # Say what is wrong and where, without echoing the input back.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    hash_cache: OrderedDict[tuple, tuple[str, int]] = OrderedDict()

    def raw_hash(project: ProjectDetail, s_ns: int, e_ns: int) -> tuple[str, int]:
        """SHA-256 of the period's raw rows (as exported) and their count. Hashing reads every
        row (~200k rows/s from influxd); the result is reused while influxd's count and sum of
        each monitoring point and the bracketing samples are unchanged."""
        key = (project.id, s_ns, e_ns, tuple(raw_fingerprint(influx, p, s_ns, e_ns) for p in project.monitoring_points))
        if key in hash_cache:
            hash_cache.move_to_end(key)
            return hash_cache[key]
        h = hashlib.sha256()
        n = 0
        for point in project.monitoring_points:
            for ts, values in iter_raw(influx, point, s_ns, e_ns, chunk_size=50000):
                n += len(ts)
                h.update("".join(raw_line(point, t, v) + "\n" for t, v in zip(ts, values)).encode())
        hash_cache[key] = (h.hexdigest(), n)
        while len(hash_cache) > 256:
            hash_cache.popitem(last=False)
        return hash_cache[key]

    app.state.raw_hash = raw_hash

    def project_for(who: Principal, project_id: str) -> ProjectDetail:
        if not who.may_read(project_id):
            raise FORBIDDEN_PROJECT
        project = by_id.get(project_id)
        if project is None:
            raise HTTPException(status_code=404, detail="no such project")
        return project

    # ------------------------------------------------------------------ endpoints

    @app.get("/health", response_model=HealthResponse, tags=["service"], summary="Service and InfluxDB status (no token needed)")
    def health() -> HealthResponse:
        try:
            version, ok = influx.ping(), True
        except InfluxError:
            version, ok = None, False
        return HealthResponse(
            status="ok" if ok else "degraded", influxdb="ok" if ok else "unreachable", influxdb_version=version,
            projects=len(by_id), version=plantmrv.__version__,
        )

    @app.get("/projects", response_model=list[ProjectSummary], tags=["projects"], responses={k: ERRORS[k] for k in (401,)}, summary="Projects this token may read")
    def list_projects(who: Who) -> list[ProjectSummary]:
        return [p.summary() for p in project_list if who.may_read(p.id)]

    @app.get("/projects/{project_id}", response_model=ProjectDetail, tags=["projects"], responses={k: ERRORS[k] for k in (401, 403, 404, 422)}, summary="Plant, methodology, parameters with sources, EF, monitoring points")
    def get_project(project_id: ProjectId, who: Who) -> ProjectDetail:
        return project_for(who, project_id)

    @app.get("/projects/{project_id}/reductions", response_model=ReductionsResponse, tags=["results"], responses=ERRORS, summary="Reductions, energies, completeness and gaps per interval")
    def reductions(
        project_id: ProjectId,
        who: Who,
        start: FromTime,
        end: ToTime,
        interval: Annotated[Interval, Query(description="Row size: UTC hour, day, calendar month, or the whole range.", examples=["day"])] = "day",
    ) -> ReductionsResponse:
        project = project_for(who, project_id)
        s_ns, e_ns = check_range(start, end, api_cfg.max_span_days, source_s)
        mrv = fetch_mrv(influx, project.id, source_interval, s_ns, e_ns)
        rows = aggregate(mrv, bucket_edges(interval, s_ns, e_ns), source_s)
        total = aggregate(mrv, bucket_edges("period", s_ns, e_ns), source_s)[0]
        gap_list, n_gaps = gaps(mrv, s_ns, e_ns, source_s, project.methodology.missing_data_rule, api_cfg.max_gaps_listed)
        return ReductionsResponse(
            project=project.id, methodology_id=project.methodology.id, interval=interval, source_interval=source_interval,
            start=start, end=end, rows=rows, totals=total, gaps=gap_list, gaps_total=n_gaps, gaps_truncated=n_gaps > len(gap_list),
        )

    @app.get("/projects/{project_id}/monitoring-report", response_model=MonitoringReport, tags=["results"], responses=ERRORS, summary="Period totals with the rounding rule, and hashes of data and parameters")
    def monitoring_report(
        project_id: ProjectId,
        who: Who,
        period: Annotated[str, Query(max_length=40, pattern=r"^[A-Za-z0-9_./-]+$", description=f"The period: {PERIOD_HELP}.", examples=["FY2024"])],
    ) -> MonitoringReport:
        project = project_for(who, project_id)
        mp = parse_period(project, period)
        s_ns, e_ns = check_range(mp.start, mp.end, api_cfg.max_span_days, source_s, what=f"period {period}")
        mrv = fetch_mrv(influx, project.id, source_interval, s_ns, e_ns)
        total = aggregate(mrv, bucket_edges("period", s_ns, e_ns), source_s)[0]
        _, n_gaps = gaps(mrv, s_ns, e_ns, source_s, "", 1)
        data_sha, raw_points = raw_hash(project, s_ns, e_ns)
        params_sha, intervals_sha = parameters_sha256(project), mrv_sha256(mrv)
        er = total.reduction_t_co2 or 0.0
        reported = apply_rounding(er, project.methodology.rounding_scheme)
        return MonitoringReport(
            project=project.id, methodology_id=project.methodology.id, methodology_version=project.methodology.version,
            period=mp, reference_energy_kwh=total.reference_energy_kwh or 0.0, project_energy_kwh=total.project_energy_kwh or 0.0,
            energy_saved_kwh=total.energy_saved_kwh or 0.0, reference_t_co2=total.reference_t_co2 or 0.0,
            project_t_co2=total.project_t_co2 or 0.0, reduction_t_co2=er, rounding=project.methodology.rounding,
            reported_reduction_t_co2=reported, ex_ante_t_co2=project.ex_ante_t_co2, japan_share=project.japan_share,
            japan_share_t_co2=allocate(reported, project.japan_share), credited=project.methodology.credited,
            completeness=total.completeness, gap_intervals=n_gaps, gap_filled_s=total.gap_filled_s, mrv_intervals=len(mrv),
            raw_points=raw_points, params_hashes=sorted({str(x) for x in mrv.params_hash if x}),
            parameters_sha256=params_sha, data_sha256=data_sha, intervals_sha256=intervals_sha,
            report_sha256=report_sha256(params_sha, data_sha, intervals_sha),
        )

    @app.get("/admin/tokens", response_model=list[TokenInfo], tags=["admin"], responses={k: ERRORS[k] for k in (401, 403)}, summary="Tokens and what each may read (admin role; never a token or hash)")
    def list_tokens(who: Who) -> list[TokenInfo]:
        require_admin(who)
        auth: Authenticator = app.state.authenticator
        out = [TokenInfo(name=t.name, role=t.role, projects=sorted(t.projects), source="config") for t in api_cfg.tokens]
        if auth.store is not None:
            out += [TokenInfo(id=r.id, name=r.name, role=r.role, projects=list(r.projects), source="store", created_at=r.created_at, revoked_at=r.revoked_at) for r in auth.store.list()]
        return out

    @app.get(
        "/projects/{project_id}/export",
        tags=["results"],
        summary="Raw data, interval results, parameters, formulas and gaps (CSV or JCM-style xlsx), streamed",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "A sectioned CSV (`#section,<name>` lines) or an xlsx workbook (Input, Calculation, Gaps, Formulas, Project, Raw).",
                "content": {
                    "text/csv": {"example": "#section,meta\nkey,value\nproject,danang-pumps\n...\n#section,raw\nmeasurement,site,asset,field,ts_ns,value,time_utc\npump,danang,pump1,energy_kwh,1709251200000000000,120.5,2024-03-01T00:00:00Z\n"},
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}, "example": "<xlsx bytes>"},
                },
            },
            413: {"model": ErrorResponse, "description": "Too many raw rows for one xlsx sheet: use format=csv."},
            **ERRORS,
        },
    )
    def export(
        project_id: ProjectId,
        who: Who,
        start: FromTime,
        end: ToTime,
        format: Annotated[Literal["csv", "xlsx"], Query(description="csv (streamed, any size within the span limit) or xlsx.", examples=["csv"])] = "csv",
        raw: Annotated[bool, Query(description="Include the raw monitored values (false: parameters, intervals, formulas and gaps only, a small file).", examples=[True])] = True,
    ):
        project = project_for(who, project_id)
        s_ns, e_ns = check_range(start, end, api_cfg.max_export_span_days, source_s)
        mrv = fetch_mrv(influx, project.id, source_interval, s_ns, e_ns)
        gap_list, _ = gaps(mrv, s_ns, e_ns, source_s, project.methodology.missing_data_rule, api_cfg.max_gaps_listed)
        params_sha = parameters_sha256(project)
        stem = f"{project.id}_{start:%Y%m%dT%H%M}_{end:%Y%m%dT%H%M}"
        if format == "csv":
            return StreamingResponse(
                iter_csv(influx, project, mrv, gap_list, s_ns, e_ns, source_interval, params_sha, raw=raw),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'},
            )
        try:
            spool = build_xlsx(influx, project, mrv, gap_list, s_ns, e_ns, source_interval, params_sha, api_cfg.max_xlsx_raw_rows, raw=raw)
        except ExportTooLarge as exc:
            return JSONResponse({"detail": str(exc)}, status_code=413)
        return StreamingResponse(
            iter_file(spool),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{stem}.xlsx"'},
        )

    return app
