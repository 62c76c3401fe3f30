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

app = typer.Typer(no_args_is_help=True, add_completion=False, help="MRV analytics engine: continuous, backfill and period reports.")

NS = 1_000_000_000


def _load(config: Path):
    from plantmrv.cli import load_or_exit
    from plantmrv.config import ConfigError, require_section

    cfg = load_or_exit(config)
    try:
        section = require_section(cfg, "analytics", str(config))
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1)
    if not section.projects:
        typer.echo(f"{config}: analytics.projects: no project configured", err=True)
        raise typer.Exit(1)
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
        raise typer.Exit(1)
    if cfg.influxdb.create_database:
        client.create_database()
    try:
        return Engine(section, client)
    except LookupError as exc:
        typer.echo(f"analytics.projects[].grid_ef: {exc}", err=True)
        raise typer.Exit(1)


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
) -> None:
    """Continuous mode: compute every closed interval, recompute intervals that got late data."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg, section = _load(config)
    engine = _engine(cfg, section, project)
    if once:
        for k, n in engine.poll().items():
            typer.echo(f"{k}: {n} interval(s) written")
        return
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        engine.run(stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        pass


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
) -> None:
    """Period reports from the `mrv` results: ex-ante vs ex-post, Japan's share, roll-up."""
    from .engine import period_reports
    from .reporting import portfolio_rollup

    if by not in ("monitoring", "fiscal_year", "calendar_year"):
        raise typer.BadParameter("use monitoring, fiscal_year or calendar_year", param_hint="--by")
    cfg, section = _load(config)
    engine = _engine(cfg, section, project)
    reports = period_reports(engine, by)
    roll = portfolio_rollup(reports, rollup)
    if as_json:
        typer.echo(json.dumps({"reports": [r.as_dict() for r in reports], "rollup": roll}, indent=2, default=str))
        return
    hdr = f"{'project':18} {'period':10} {'ex-ante t':>10} {'ER unrounded t':>15} {'ER reported t':>13} {'Japan t':>8} {'complete':>8} {'gap-filled h':>12}"
    typer.echo(hdr)
    for r in reports:
        ex = "-" if r.ex_ante_t_co2 is None else f"{r.ex_ante_t_co2:,.0f}"
        rep = f"{r.reported_t_co2:,.0f}" if r.credited else "NOT CREDITED"
        jp = "-" if r.japan_t_co2 is None else f"{r.japan_t_co2:,.0f}"
        typer.echo(f"{r.project:18} {r.period:10} {ex:>10} {r.reduction_t_co2:15,.3f} {rep:>13} {jp:>8} {r.completeness:8.1%} {r.gap_filled_s / 3600:12.2f}")
    typer.echo("")
    typer.echo(f"roll-up by {rollup}:")
    for g in roll:
        typer.echo(f"  {g[rollup]}: reported {g['reported_t_co2']:,.0f} t (Japan {g['japan_t_co2']:,.0f} t), unrounded {g['reduction_t_co2']:,.3f} t, ex-ante {g['ex_ante_t_co2']:,.0f} t, projects {', '.join(g['projects'])}")
