"""The verifier API: FastAPI app factory.

``create_app(cfg)`` takes the loaded root config (sections ``api``, ``influxdb``,
``analytics``) and returns the ASGI app; ``plantmrv api -c FILE`` serves it with uvicorn.
Every endpoint but ``/health`` needs a bearer token; every request is logged as one line with
who called and what they asked, when its last byte went out (:mod:`plantmrv.api.accesslog`).
Endpoints that read InfluxDB run under the per-token limit and on their own threads
(:mod:`plantmrv.api.limits`); the others never wait for InfluxDB.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

import plantmrv
from plantmrv.api.acceptances import AcceptanceRefused, AcceptanceStore, accept_results
from plantmrv.api.accesslog import AccessLog
from plantmrv.api.auth import FORBIDDEN_PROJECT, Authenticator, principal, require_admin, require_operator
from plantmrv.api.checks import checked_results, find_acceptance
from plantmrv.api.config import PROJECT_ID_PATTERN, ApiConfig
from plantmrv.api.digests import distinct_points, range_digests
from plantmrv.api.export import ExportTooLarge, build_xlsx, iter_csv, iter_file
from plantmrv.api.workbook import export_fields, read_extras
from plantmrv.api.headers import SecurityHeaders
from plantmrv.api.limits import Deadline, Limits, RequestTimeout, Slot
from plantmrv.api.models import (
    AcceptanceInfo,
    AcceptanceRequest,
    ErrorResponse,
    ExportPiece,
    HealthResponse,
    Interval,
    MonitoringReport,
    ProjectDetail,
    ProjectSummary,
    ReductionsResponse,
    TokenInfo,
)
from plantmrv.api.projects import Site, analytics_section, load_projects, load_sites
from plantmrv.api.report_page import page_data
from plantmrv.api.queries import SOURCE_INTERVAL_S, MrvColumns, RawDataError, count_raw
from plantmrv.api.reports import (
    PERIOD_HELP,
    RangeError,
    aggregate,
    allocate,
    apply_rounding,
    bucket_edges,
    check_range,
    export_pieces,
    gaps,
    iso,
    mrv_sha256,
    parse_period,
    report_sha256,
)
from plantmrv.api.store import StoreError
from plantmrv.api.tokens import Principal, utc_now
from plantmrv.i18n import DEFAULT_LANGUAGE, languages
from plantmrv.influx import InfluxClient, InfluxError

log = logging.getLogger("plantmrv.api")

ERRORS = {
    401: {"model": ErrorResponse, "description": "Missing, invalid, expired or revoked bearer token."},
    403: {"model": ErrorResponse, "description": "The token's role or project list does not allow this."},
    404: {"model": ErrorResponse, "description": "No such project (operators and admins; verifiers get 403 for any project not theirs)."},
    422: {"description": "Invalid project id, time range, interval, period or format."},
    429: {"model": ErrorResponse, "description": "This token has `api.limits.per_token_concurrency` requests in flight; retry after `Retry-After` seconds."},
    503: {"model": ErrorResponse, "description": "InfluxDB (or the token store) unreachable."},
    504: {"model": ErrorResponse, "description": "The request read InfluxDB for longer than `api.limits.request_timeout_s`."},
}
#: the errors of a route whose own answer is not JSON (FastAPI would document them in its media type)
JSON_ERRORS = {code: ({"description": r["description"], "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}} if "model" in r else r)
               for code, r in ERRORS.items()}
ProjectId = Annotated[str, Path(pattern=PROJECT_ID_PATTERN, max_length=64, description="Project id (as configured in `analytics.projects`).", examples=["danang-pumps"])]
FromTime = Annotated[datetime, Query(alias="from", description="Start, ISO 8601 (UTC if no offset), inclusive; whole hours.", examples=["2024-03-01T00:00:00Z"])]
ToTime = Annotated[datetime, Query(alias="to", description="End, ISO 8601, exclusive; whole hours.", examples=["2024-03-02T00:00:00Z"])]
Period = Annotated[str, Query(max_length=40, pattern=r"^[A-Za-z0-9_./-]+$", description=f"The period: {PERIOD_HELP}.", examples=["FY2024"])]
Who = Annotated[Principal, Depends(principal)]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: languages with a message catalogue (plantmrv/i18n/catalogues), English first
LANGUAGES = tuple(languages())
Lang = Annotated[
    Literal[LANGUAGES],  # type: ignore[valid-type]
    Query(description="Language of the headings, labels and notes: `en` (default) or `ja` (a third language is one catalogue file away: "
          "plantmrv/i18n/catalogues). Sheet names, machine keys, symbols, numbers and hashes are the same in every language.", examples=["ja"]),
]
#: the HTML page runs nothing and loads nothing: its one inline style sheet is all it needs
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def _analytics_interval(cfg: Any) -> str:
    analytics = analytics_section(cfg)
    if analytics is None:
        return "1h"
    from plantmrv.analytics.config import duration_label

    label = duration_label(analytics.mrv_interval_s)
    if label not in SOURCE_INTERVAL_S:
        raise ValueError(f"analytics.mrv_interval {label!r}: the API reads 1m or 1h results; set api.mrv_interval")
    return label


def api_influx_client(cfg: Any, api_cfg: ApiConfig) -> InfluxClient:
    """The InfluxDB client of ``cfg.influxdb`` with the API's timeout and retries."""
    return cfg.influxdb.model_copy(update={"timeout_s": api_cfg.limits.influx_timeout_s, "max_retries": api_cfg.limits.influx_retries}).client()


class _SlotStreamingResponse(StreamingResponse):
    """A streamed response that gives its token's slot back however the stream ends."""

    def __init__(self, content, slot: Slot, **kw):
        super().__init__(content, **kw)
        self._slot = slot

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slot.release()


class _HealthProbe:
    """One InfluxDB ping at a time, on a thread of its own; callers wait at most ``timeout_s``."""

    def __init__(self, influx: InfluxClient, timeout_s: float):
        self.influx, self.timeout_s = influx, timeout_s
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="plantmrv-health")
        self._pending: asyncio.Future | None = None

    async def version(self) -> str | None:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().run_in_executor(self._pool, self.influx.ping)
        try:
            return await asyncio.wait_for(asyncio.shield(self._pending), self.timeout_s)
        except (InfluxError, asyncio.TimeoutError):
            return None


def create_app(cfg: Any, projects: list[ProjectDetail] | None = None, client: InfluxClient | None = None, clock=utc_now) -> FastAPI:
    """Build the app from the root config (``cfg.api``, ``cfg.influxdb``, ``cfg.analytics``).

    ``projects`` overrides the projects read from ``cfg.analytics`` (for embedding the API
    elsewhere); ``client`` overrides the InfluxDB client made from ``cfg.influxdb``; ``clock``
    (UTC now) decides token expiry and the times recorded in the store.
    """
    api_cfg: ApiConfig = getattr(cfg, "api", None) or ApiConfig()
    project_list = projects if projects is not None else load_projects(cfg)
    by_id = {p.id: p for p in project_list}
    sites = load_sites(cfg)
    influx = client or api_influx_client(cfg, api_cfg)
    source_interval = api_cfg.mrv_interval or _analytics_interval(cfg)
    source_s = SOURCE_INTERVAL_S[source_interval]
    limits = Limits(api_cfg.limits)
    results_db = api_cfg.results_database

    app = FastAPI(
        title="plantmrv verifier API",
        version=plantmrv.__version__,
        description=(
            "Reductions of JCM demonstration projects with everything needed to re-derive them: raw data, "
            "parameters with sources, formulas and gaps. Authenticate with `Authorization: Bearer <token>` "
            "(`plantmrv api token create`). Roles: verifier (read-only, its projects), operator, admin. "
            "Exports end with a trailer that proves them complete; results that fail checks are withheld "
            "until an operator accepts them (docs/verifier.md)."
        ),
        root_path=api_cfg.root_path,
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog, enabled=api_cfg.log.requests)
    app.state.authenticator = Authenticator(api_cfg, clock)
    app.state.acceptances = AcceptanceStore(api_cfg.token_store, clock) if api_cfg.token_store else None
    app.state.config = api_cfg
    app.state.influx = influx
    app.state.projects = project_list
    app.state.limits = limits
    health_probe = _HealthProbe(influx, api_cfg.limits.health_timeout_s)

    @app.exception_handler(InfluxError)
    @app.exception_handler(httpx.TransportError)  # InfluxClient.query_chunks lets these through
    async def influx_error(request: Request, exc: Exception):
        log.error("event=influx_error path=%s error=%s", request.url.path, f"{exc.__class__.__name__}: {exc}"[:300].replace("\n", " "))
        return JSONResponse({"detail": "InfluxDB unreachable or refused the query"}, status_code=503)

    @app.exception_handler(RangeError)
    @app.exception_handler(RawDataError)
    async def range_error(request: Request, exc: Exception):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestTimeout)
    async def request_timeout(request: Request, exc: RequestTimeout):
        return JSONResponse({"detail": str(exc)}, status_code=504)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError):
        if isinstance(exc, AcceptanceRefused):
            return JSONResponse({"detail": str(exc)}, status_code=exc.status)
        log.error("event=token_store_error error=%s", str(exc)[:300].replace("\n", " "))
        return JSONResponse({"detail": "token store unavailable"}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 405:  # Allow: every method of the path (Starlette names only the first route's)
            allowed = sorted({m for r in app.router.routes if r.matches(request.scope)[0] != Match.NONE for m in getattr(r, "methods", None) or ()})
            exc = StarletteHTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(allowed)})
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # Say what is wrong and where, without echoing the input back.
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    def project_for(who: Principal, project_id: str) -> ProjectDetail:
        if not who.may_read(project_id):
            raise FORBIDDEN_PROJECT
        project = by_id.get(project_id)
        if project is None:
            raise HTTPException(status_code=404, detail="no such project")
        return project

    async def heavy(who: Principal, fn, *args):
        """``fn(*args)`` under the caller's slot, on a worker thread."""
        slot = limits.acquire(who)
        try:
            return await limits.run(fn, *args)
        finally:
            slot.release()

    # ------------------------------------------------------------------ work (worker threads)

    def reductions_work(project: ProjectDetail, start: datetime, end: datetime, interval: str) -> ReductionsResponse:
        s_ns, e_ns = check_range(start, end, api_cfg.max_span_days, source_s)
        checked = checked_results(influx, project, source_interval, s_ns, e_ns, results_db)
        mrv = checked.mrv
        rows = aggregate(mrv, bucket_edges(interval, s_ns, e_ns), source_s)
        total = aggregate(mrv, bucket_edges("period", s_ns, e_ns), source_s)[0]
        gap_list, n_gaps = gaps(mrv, s_ns, e_ns, source_s, project.methodology.missing_data_rule, api_cfg.max_gaps_listed)
        return ReductionsResponse(
            project=project.id, methodology_id=project.methodology.id, interval=interval, source_interval=source_interval,
            start=start, end=end, rows=rows, totals=total, gaps=gap_list, gaps_total=n_gaps, gaps_truncated=n_gaps > len(gap_list),
            warnings=checked.warnings,
        )

    def report_parts(project: ProjectDetail, period: str) -> tuple[MonitoringReport, MrvColumns]:
        """The monitoring report of ``period`` and the stored intervals it summed."""
        deadline = Deadline(api_cfg.limits.request_timeout_s)
        mp = parse_period(project, period)
        s_ns, e_ns = check_range(mp.start, mp.end, api_cfg.max_span_days, source_s, what=f"period {period}")
        checked = checked_results(influx, project, source_interval, s_ns, e_ns, results_db)
        checks = checked.checks(find_acceptance(app.state.acceptances, project, s_ns, e_ns, checked))
        mrv = checked.mrv
        total = aggregate(mrv, bucket_edges("period", s_ns, e_ns), source_s)[0]
        _, n_gaps = gaps(mrv, s_ns, e_ns, source_s, "", 1)
        pieces = export_pieces(s_ns, e_ns, api_cfg.max_export_span_days, source_s)
        data, parts = range_digests(influx, project.monitoring_points, pieces, deadline.check)
        exports = []
        for (ps, pe), part in zip(pieces, parts):
            sub = mrv.between(ps, pe)
            exports.append(ExportPiece(
                start=iso(ps), end=iso(pe), url=f"/projects/{project.id}/export?from={iso(ps)}&to={iso(pe)}", raw_rows=part.rows,
                data_sha256=part.sha256, intervals=len(sub), intervals_sha256=mrv_sha256(sub),
            ))
        er = total.reduction_t_co2 or 0.0
        reported = None if checks.status == "withheld" else apply_rounding(er, project.methodology.rounding_scheme)
        data_sha = data.sha256
        return MonitoringReport(
            project=project.id, methodology_id=project.methodology.id, methodology_version=project.methodology.version,
            period=mp, reference_energy_kwh=total.reference_energy_kwh or 0.0, project_energy_kwh=total.project_energy_kwh or 0.0,
            energy_saved_kwh=total.energy_saved_kwh or 0.0, reference_t_co2=total.reference_t_co2 or 0.0,
            project_t_co2=total.project_t_co2 or 0.0, reduction_t_co2=er, rounding=project.methodology.rounding,
            reported_reduction_t_co2=reported, ex_ante_t_co2=project.ex_ante_t_co2, japan_share=project.japan_share,
            japan_share_t_co2=None if reported is None else allocate(reported, project.japan_share), credited=project.methodology.credited,
            completeness=total.completeness, gap_intervals=n_gaps, gap_filled_s=total.gap_filled_s, mrv_intervals=len(mrv),
            raw_points=data.rows, params_hashes=sorted({str(x) for x in mrv.params_hash if x}),
            parameters_sha256=checked.parameters_sha256, data_sha256=data_sha, intervals_sha256=checked.intervals_sha256,
            report_sha256=report_sha256(checked.parameters_sha256, data_sha, checked.intervals_sha256), checks=checks, exports=exports,
        ), mrv

    def report_work(project: ProjectDetail, period: str) -> MonitoringReport:
        return report_parts(project, period)[0]

    def report_page_work(project: ProjectDetail, period: str, lang: str) -> str:
        from plantmrv.analytics.report_html import render_html

        report, mrv = report_parts(project, period)
        return render_html(page_data(project, report, mrv, source_s, sites.get(project.id, Site()), clock(), lang), lang)

    def export_prepare(project: ProjectDetail, start: datetime, end: datetime, fmt: str, raw: bool):
        """Everything an export needs before its first byte, and its size checked: 413 before any work."""
        s_ns, e_ns = check_range(start, end, api_cfg.max_export_span_days, source_s)
        if raw:
            limit = api_cfg.max_xlsx_raw_rows if fmt == "xlsx" else api_cfg.limits.max_export_raw_rows
            n = sum(count_raw(influx, p, s_ns, e_ns) + 2 for p in distinct_points(project.monitoring_points))  # +2: the brackets
            if n > limit:
                hint = "shorten the range or use format=csv" if fmt == "xlsx" else "shorten the range"
                raise ExportTooLarge(f"up to {n:,} raw rows, more than the {limit:,} the {fmt} export allows: {hint}")
        checked = checked_results(influx, project, source_interval, s_ns, e_ns, results_db, extra=export_fields(project))
        checks = checked.checks(find_acceptance(app.state.acceptances, project, s_ns, e_ns, checked))
        gap_list, _ = gaps(checked.mrv, s_ns, e_ns, source_s, project.methodology.missing_data_rule, api_cfg.max_gaps_listed)
        extras = read_extras(influx, project, s_ns, e_ns, source_interval, results_db)
        return s_ns, e_ns, checked, checks, gap_list, extras

    # ------------------------------------------------------------------ endpoints

    @app.get("/health", response_model=HealthResponse, tags=["service"], summary="Service and InfluxDB status (no token needed)")
    async def health() -> HealthResponse:
        version = await health_probe.version()
        ok = version is not None
        return HealthResponse(
            status="ok" if ok else "degraded", influxdb="ok" if ok else "unreachable", influxdb_version=version,
            projects=len(by_id), version=plantmrv.__version__,
        )

    @app.get("/projects", response_model=list[ProjectSummary], tags=["projects"], responses={k: ERRORS[k] for k in (401,)}, summary="Projects this token may read")
    async def list_projects(who: Who) -> list[ProjectSummary]:
        return [p.summary() for p in project_list if who.may_read(p.id)]

    @app.get("/projects/{project_id}", response_model=ProjectDetail, tags=["projects"], responses={k: ERRORS[k] for k in (401, 403, 404, 422)}, summary="Plant, methodology, parameters with sources, EF, monitoring points")
    async def get_project(project_id: ProjectId, who: Who) -> ProjectDetail:
        return project_for(who, project_id)

    @app.get("/projects/{project_id}/reductions", response_model=ReductionsResponse, tags=["results"], responses=ERRORS, summary="Reductions, energies, completeness, gaps and warnings per interval")
    async def reductions(
        project_id: ProjectId,
        who: Who,
        start: FromTime,
        end: ToTime,
        interval: Annotated[Interval, Query(description="Row size: UTC hour, day, calendar month, or the whole range.", examples=["day"])] = "day",
    ) -> ReductionsResponse:
        return await heavy(who, reductions_work, project_for(who, project_id), start, end, interval)

    @app.get("/projects/{project_id}/monitoring-report", response_model=MonitoringReport, tags=["results"], responses=ERRORS, summary="Period totals with the rounding rule, checks, hashes of data and parameters, and the exports they cover")
    async def monitoring_report(project_id: ProjectId, who: Who, period: Period) -> MonitoringReport:
        return await heavy(who, report_work, project_for(who, project_id), period)

    @app.get(
        "/projects/{project_id}/monitoring-report.html", response_class=HTMLResponse, tags=["results"],
        summary="The monitoring report as a page people read and print (JCM monitoring-report layout), in English or Japanese",
        responses={
            200: {
                "description": "A self-contained HTML page (A4 print style): project, monitoring period, monitoring points, parameters with sources, "
                "calculation of emission reductions, data gaps and how they were filled, signatures. Times in the site's time zone, which the page states; "
                "every figure is the JSON monitoring report's for the same period (its `report_sha256` is on the page).",
                "content": {"text/html": {"example": '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><title>モニタリング報告書: Cau Do pumps</title>...'
                                                     "<h1>モニタリング報告書</h1>...<h2>E. 排出削減量の計算</h2>...</html>"}},
            },
            **JSON_ERRORS,
        },
    )
    async def monitoring_report_page(project_id: ProjectId, who: Who, period: Period, lang: Lang = DEFAULT_LANGUAGE) -> HTMLResponse:
        page = await heavy(who, report_page_work, project_for(who, project_id), period, lang)
        return HTMLResponse(page, headers={"Content-Language": lang, "Content-Security-Policy": PAGE_CSP})

    @app.get("/projects/{project_id}/acceptances", response_model=list[AcceptanceInfo], tags=["results"], responses={k: ERRORS[k] for k in (401, 403, 404, 422, 503)}, summary="Operators' acceptances of results with warnings (who, when, why, which results)")
    async def list_acceptances(project_id: ProjectId, who: Who) -> list[AcceptanceInfo]:
        project = project_for(who, project_id)
        store: AcceptanceStore | None = app.state.acceptances
        return [] if store is None else await limits.run_aux(store.list, project.id)

    @app.post(
        "/projects/{project_id}/acceptances", response_model=AcceptanceInfo, status_code=201, tags=["results"],
        responses={**ERRORS, 400: {"model": ErrorResponse, "description": "The body is not JSON."},
                   409: {"model": ErrorResponse, "description": "Nothing to accept, the results changed since they were reviewed, or they are already accepted."}},
        summary="Accept a period's results despite their warnings (operator or admin): recorded with who, when and why",
    )
    async def accept(project_id: ProjectId, body: AcceptanceRequest, who: Who) -> AcceptanceInfo:
        require_operator(who)
        project = project_for(who, project_id)
        store: AcceptanceStore | None = app.state.acceptances
        if store is None:
            raise HTTPException(status_code=503, detail="acceptances need api.token_store (the API's state file)")
        info = await heavy(who, accept_results, influx, store, project, body.period, body.intervals_sha256, body.reason, who.name, "api",
                           source_interval, api_cfg.max_span_days, results_db)
        log.warning("event=results_accepted project=%s period=%s acceptance=%d by=%s warnings=%s", project.id, info.period, info.id, who.name, ",".join(info.warnings))
        return info

    @app.get("/admin/tokens", response_model=list[TokenInfo], tags=["admin"], responses={k: ERRORS[k] for k in (401, 403)}, summary="Tokens and what each may read (admin role; never a token or hash)")
    async def list_tokens(who: Who) -> list[TokenInfo]:
        require_admin(who)
        auth: Authenticator = app.state.authenticator
        out = [TokenInfo(name=t.name, role=t.role, projects=sorted(t.projects), source="config", expires_at=t.expires.isoformat() if t.expires else None) for t in api_cfg.tokens]
        if auth.store is not None:
            records = await limits.run_aux(auth.store.list)
            out += [TokenInfo(id=r.id, name=r.name, role=r.role, projects=list(r.projects), source="store", created_at=r.created_at, revoked_at=r.revoked_at,
                              expires_at=r.expires_at, last_used_at=r.last_used_at) for r in records]
        return out

    @app.get(
        "/projects/{project_id}/export",
        tags=["results"],
        summary="Raw data, interval results, parameters, formulas, checks and gaps (CSV or JCM-style xlsx), streamed, ending with a trailer",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "A sectioned CSV (`#section,<name>` lines, ending with `#section,trailer` and `#end`) or an xlsx workbook "
                "(Input, Calculation, Checks, Gaps, Formulas, Project, Raw, Trailer), its headings and notes in `lang`: sheet names, CSV sections and "
                "column headings, the workbook's key rows, symbols and hashes are the same in every language. "
                "A stream that fails half-way is aborted, never ended cleanly.",
                "content": {
                    "text/csv": {"example": "#section,meta\nkey,value\nproject,danang-pumps\n...\n#section,raw\nmeasurement,site,asset,field,ts_ns,value,time_utc\npump,danang,pump1,energy_kwh,1709251200000000000,120.5,2024-03-01T00:00:00Z\n#section,trailer\nkey,value\nformat,plantmrv-export-csv/2\n...\n#end\n"},
                    XLSX: {"schema": {"type": "string", "format": "binary"}, "example": "<xlsx bytes>"},
                },
            },
            413: {"model": ErrorResponse, "description": "More raw rows than the format's limit (counted before any work): shorten the range, or use format=csv."},
            **ERRORS,
        },
    )
    async def export(
        project_id: ProjectId,
        who: Who,
        start: FromTime,
        end: ToTime,
        format: Annotated[Literal["csv", "xlsx"], Query(description="csv (streamed, any size within the limits) or xlsx.", examples=["csv"])] = "csv",
        raw: Annotated[bool, Query(description="Include the raw monitored values (false: parameters, intervals, formulas and gaps only, a small file).", examples=[True])] = True,
        lang: Lang = DEFAULT_LANGUAGE,
    ):
        project = project_for(who, project_id)
        slot = limits.acquire(who)
        handed_over = False
        try:
            s_ns, e_ns, checked, checks, gap_list, extras = await limits.run(export_prepare, project, start, end, format, raw)
            stem = f"{project.id}_{start:%Y%m%dT%H%M}_{end:%Y%m%dT%H%M}" + ("" if lang == DEFAULT_LANGUAGE else f"_{lang}")
            if format == "csv":
                chunks = iter_csv(influx, project, checked, checks, gap_list, s_ns, e_ns, source_interval, raw=raw, extras=extras, lang=lang)
                media = "text/csv; charset=utf-8"
            else:
                spool = await limits.run(build_xlsx, influx, project, checked, checks, gap_list, s_ns, e_ns, source_interval, api_cfg.max_xlsx_raw_rows, raw, extras, lang)
                chunks, media = iter_file(spool), XLSX
            response = _SlotStreamingResponse(
                limits.stream(chunks, slot, f"export {project.id} {format}"), slot, media_type=media,
                headers={"Content-Disposition": f'attachment; filename="{stem}.{format}"', "Content-Language": lang},
            )
            handed_over = True
            return response
        except ExportTooLarge as exc:
            return JSONResponse({"detail": str(exc)}, status_code=413)
        finally:
            if not handed_over:
                slot.release()

    return app
