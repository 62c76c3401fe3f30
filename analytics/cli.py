"""``plantmrv analytics``: continuous engine, backfill and period reports."""

from __future__ import annotations

import json
import logging
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional

import typer

from plantmrv import exitcodes
from plantmrv.logs import LOG_FORMAT_OPTION, LOG_LEVEL_OPTION, LogFormat, LogLevel

app = typer.Typer(no_args_is_help=True, add_completion=False, help="MRV analytics engine: continuous, backfill and period reports.")

NS = 1_000_000_000


def _load(config: Path):
    from plantmrv.clitools import load_or_exit
    from plantmrv.config import ConfigError, require_section

    cfg = load_or_exit(config)
    try:
        section = require_section(cfg, "analytics", str(config))
    except ConfigError as exc:
        exitcodes.config_error(exc.issues)
    if not section.projects:
        exitcodes.config_error([f"{config}: analytics.projects: no project configured"])
    return cfg, section


def _engine(cfg, section, projects: Optional[List[str]] = None):
    from .engine import Engine

    if projects:
        known = {p.id for p in section.projects}
        unknown = [p for p in projects if p not in known]
        if unknown:
            typer.echo(f"unknown project(s) {', '.join(unknown)}; configured: {', '.join(sorted(known))}", err=True)
            raise typer.Exit(2)
        section = section.model_copy(update={"projects": [p for p in section.projects if p.id in projects]})
    client = cfg.influxdb.client()
    try:
        client.ping(retry=True)
    except Exception as exc:
        typer.echo(f"influxdb.url: {cfg.influxdb.url}: {exc}", err=True)
        raise typer.Exit(exitcodes.RUNTIME)
    if cfg.influxdb.create_database:
        client.create_database()
    try:
        return Engine(section, client)
    except LookupError as exc:
        exitcodes.config_error([f"analytics.projects[].grid_ef: {exc}"])


def _parse_time(value: str, option: str) -> int:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date/time (2026-01-01 or 2026-01-01T06:00:00Z)", param_hint=option)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * NS


@app.command("run")
def run(
    config: Path = typer.Option(..., "-c", "--config", help="plantmrv YAML with influxdb and analytics sections."),
    once: bool = typer.Option(False, "--once", help="One poll, then exit (cron / tests)."),
    project: Optional[List[str]] = typer.Option(None, "--project", "-p", help="Only these project ids."),
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    """Continuous mode: compute every closed interval, recompute intervals that got late data.

    Serves /metrics, /healthz and /readyz on analytics.metrics (not with --once); under systemd
    (Type=notify) reports readiness and pings the watchdog from the engine's loop.
    """
    from plantmrv import logs, sdnotify
    from plantmrv.ops import influx_probe

    from .metrics import AnalyticsMetrics

    logs.setup(log_level, log_format)
    cfg, section = _load(config)
    engine = _engine(cfg, section, project)
    if once:
        for k, n in engine.poll().items():
            typer.echo(f"{k}: {n} interval(s) written")
        return
    metrics = AnalyticsMetrics()
    metrics.health.add_check("influxdb", influx_probe(cfg.influxdb))
    engine.metrics = metrics  # the engine reports polls, watermarks and intervals written
    if section.metrics.port is not None:
        port = metrics.serve(section.metrics.host, section.metrics.port)
        logging.getLogger("plantmrv.analytics").info("event=metrics_listening host=%s port=%d", section.metrics.host, port)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))

    def stop() -> bool:  # the engine asks before every poll: proof that its loop turns
        metrics.health.beat()
        return bool(stopping)

    sdnotify.ready(f"analytics running, {len(engine.config.projects)} project(s)")
    try:
        engine.run(stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        sdnotify.stopping()
        metrics.close()


@app.command("backfill")
def backfill(
    config: Path = typer.Option(..., "-c", "--config"),
    from_: str = typer.Option(..., "--from", help="Start (ISO, UTC unless an offset is given)."),
    to: str = typer.Option(..., "--to", help="End, exclusive."),
    project: Optional[List[str]] = typer.Option(None, "--project", "-p"),
    interval: Optional[List[str]] = typer.Option(None, "--interval", help="Only these interval lengths (1m, 1h); default both."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Recompute and write every interval of a range (idempotent: existing points are overwritten)."""
    from .config import parse_duration_s

    start, end = _parse_time(from_, "--from"), _parse_time(to, "--to")
    if end <= start:
        raise typer.BadParameter("--to must be after --from", param_hint="--to")
    cfg, section = _load(config)
    engine = _engine(cfg, section, project)
    ivs = [parse_duration_s(i) for i in interval] if interval else engine.intervals()
    total = (end - start) * len(engine.config.projects)
    import time as _time

    t0 = _time.perf_counter()
    if quiet:
        n = engine.backfill(start, end, interval_s=ivs)
    else:
        with typer.progressbar(length=total // NS, label="backfill", file=sys.stderr) as bar:
            n = engine.backfill(start, end, interval_s=ivs, progress=lambda ns: bar.update(ns // NS))
    typer.echo(f"wrote {n} mrv point(s) for {len(engine.config.projects)} project(s) in {_time.perf_counter() - t0:.1f} s")


@app.command("report")
def report(
    config: Path = typer.Option(..., "-c", "--config"),
    by: str = typer.Option("monitoring", "--by", help="monitoring | fiscal_year | calendar_year"),
    rollup: str = typer.Option("country", "--rollup", help="Portfolio roll-up by project | city | country | all."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
    project: Optional[List[str]] = typer.Option(None, "--project", "-p"),
    lang: str = typer.Option("en", "--lang", help="Language of the table and the HTML reports (en, ja, or any catalogue in plantmrv/i18n/catalogues)."),
    html_dir: Optional[Path] = typer.Option(None, "--html", help="Also write one printable monitoring report per project and period: <dir>/<project>_<period>.<lang>.html (JCM monitoring-report layout)."),
) -> None:
    """Period reports from the `mrv` results: ex-ante vs ex-post, Japan's share, roll-up; optionally a printable HTML monitoring report per project."""
    from plantmrv.i18n import UnknownLanguage, check_language, language

    from .engine import period_reports
    from .reporting import portfolio_rollup

    if by not in ("monitoring", "fiscal_year", "calendar_year"):
        raise typer.BadParameter("use monitoring, fiscal_year or calendar_year", param_hint="--by")
    try:
        check_language(lang)
    except UnknownLanguage as exc:
        raise typer.BadParameter(str(exc), param_hint="--lang")
    cfg, section = _load(config)
    engine = _engine(cfg, section, project)
    reports = period_reports(engine, by)
    roll = portfolio_rollup(reports, rollup)
    if html_dir is not None:
        write_html_reports(engine, reports, html_dir, lang)
    if as_json:
        typer.echo(json.dumps({"reports": [r.as_dict() for r in reports], "rollup": roll}, indent=2, default=str))
        return
    with language(lang):
        print_reports(reports, roll, rollup, {p.id: p.timezone for p in engine.config.projects})


def print_reports(reports, roll, rollup: str, zones: dict) -> None:
    """The period table and the roll-up, in the context's language (plantmrv.i18n)."""
    from plantmrv.i18n import gettext as _

    cols = [(_("project"), 18, "<"), (_("period"), 10, "<"), (_("time zone"), 17, "<"), (_("ex-ante t"), 10, ">"), (_("ER unrounded t"), 15, ">"),
            (_("ER reported t"), 13, ">"), (_("Japan t"), 8, ">"), (_("complete"), 8, ">"), (_("gap-filled h"), 12, ">")]
    typer.echo(" ".join(_pad(name, w, a) for name, w, a in cols))
    for r in reports:
        ex = "-" if r.ex_ante_t_co2 is None else f"{r.ex_ante_t_co2:,.0f}"
        rep = f"{r.reported_t_co2:,.0f}" if r.credited else _("NOT CREDITED")
        jp = "-" if r.japan_t_co2 is None else f"{r.japan_t_co2:,.0f}"
        zone = zones.get(r.project, "utc")
        vals = [r.project, r.period, "UTC" if zone == "utc" else zone, ex, f"{r.reduction_t_co2:,.3f}", rep, jp, f"{r.completeness:.1%}", f"{r.gap_filled_s / 3600:.2f}"]
        typer.echo(" ".join(_pad(v, w, a) for v, (_n, w, a) in zip(vals, cols)))
    typer.echo("")
    typer.echo(_("roll-up by {key}:").format(key=rollup))
    for g in roll:
        typer.echo("  " + _("{group}: reported {reported:,.0f} t (Japan {japan:,.0f} t), unrounded {unrounded:,.3f} t, ex-ante {ex_ante:,.0f} t, projects {projects}").format(
            group=g[rollup], reported=g["reported_t_co2"], japan=g["japan_t_co2"], unrounded=g["reduction_t_co2"], ex_ante=g["ex_ante_t_co2"], projects=", ".join(g["projects"])
        ))


def _pad(text: str, width: int, align: str) -> str:
    """Pad to a display width (East Asian wide characters count two columns)."""
    import unicodedata

    w = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    fill = " " * max(0, width - w)
    return fill + text if align == ">" else text + fill


def write_html_reports(engine, reports, out_dir: Path, lang: str) -> list[Path]:
    """One HTML monitoring report per project and period (see ``report_html``)."""
    from .report_html import render_html, report_data

    out_dir.mkdir(parents=True, exist_ok=True)
    by_id = {p.id: p for p in engine.config.projects}
    written = []
    for r in reports:
        data = report_data(engine, by_id[r.project], r)
        path = out_dir / f"{r.project}_{r.period}.{lang}.html"
        path.write_text(render_html(data, lang), encoding="utf-8")
        written.append(path)
        typer.echo(f"wrote {path}", err=True)
    return written
