"""``plantmrv api``: serve the verifier API, and manage its access tokens.

``plantmrv api -c FILE`` runs the server (uvicorn) on ``api.host``/``api.port``, over HTTPS
when ``api.tls`` names a certificate and key.
``plantmrv api token create|list|revoke -c FILE`` manage the SQLite store at ``api.token_store``;
a token is printed once, at creation, and only its SHA-256 is kept.
``plantmrv api acceptance add|list|withdraw -c FILE`` record an operator's acceptance of a
period whose results failed checks (who, when, why), list and withdraw them.
"""

from __future__ import annotations

import getpass
import json
import logging
import re
import ssl
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import List, Optional

import typer

from plantmrv import exitcodes
from plantmrv.logs import LOG_FORMAT_OPTION, LogFormat, LogLevel

app = typer.Typer(
    help="Verifier API (FastAPI), its access tokens and operators' acceptances.",
    invoke_without_command=True,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
token_app = typer.Typer(help="Create, list and revoke API tokens (SQLite store at api.token_store).", no_args_is_help=True)
app.add_typer(token_app, name="token")
acceptance_app = typer.Typer(help="Accept a period's results despite their warnings (recorded with who, when, why); list and withdraw acceptances.", no_args_is_help=True)
app.add_typer(acceptance_app, name="acceptance")

ConfigOpt = typer.Option(..., "--config", "-c", help="YAML config with sections api, influxdb and analytics.")


def _setup_logging(cfg, level: Optional[LogLevel], fmt: LogFormat) -> None:
    from plantmrv import logs

    api = cfg.api
    logs.setup(level or (api.log.level if api else "INFO"), fmt, file=str(api.log.file) if api and api.log.file else None)
    from plantmrv.api.accesslog import QuietAbort

    logging.getLogger("uvicorn.error").addFilter(QuietAbort())


def _tls_options(config: Path, cfg) -> dict:
    """uvicorn's TLS options for ``api.tls``, after loading the pair once to name what is wrong."""
    tls = cfg.api.tls
    if tls is None:
        return {}
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        exitcodes.config_error([f"{config}: api.tls: cannot use cert_file {tls.cert_file} with key_file {tls.key_file}: {exc}"])
    return {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}


@app.callback()
def serve(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config with sections api, influxdb and analytics; runs the server."),
    log_level: Optional[LogLevel] = typer.Option(None, "--log-level", case_sensitive=False, envvar="PLANTMRV_LOG_LEVEL",
                                                 help="Least severe level logged (default: api.log.level)."),
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    """Serve the verifier API with uvicorn on api.host:api.port (`plantmrv api -c FILE`), HTTPS with api.tls.

    Endpoints: /projects, /projects/{id}, /projects/{id}/reductions, /projects/{id}/monitoring-report,
    /projects/{id}/export, /projects/{id}/acceptances, /admin/tokens, /health; OpenAPI docs at /docs.
    Every request is logged (who, what), never a token. What a verifier can check: docs/verifier.md.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        typer.echo(ctx.get_help())
        typer.echo("\nerror: -c/--config FILE is required to run the server", err=True)
        raise typer.Exit(exitcodes.USAGE)
    from plantmrv.api.app import create_app
    from plantmrv.clitools import load_or_exit
    from plantmrv.ops import Health, OpsServer, influx_probe, new_registry, run_uvicorn

    cfg = load_or_exit(config)
    if cfg.api is None:
        exitcodes.config_error([f"{config}: api: section 'api' is required for this command"])
    _setup_logging(cfg, log_level, log_format)
    from plantmrv.api.tokens import TokenStoreError
    from plantmrv.config import ConfigError

    try:
        api = create_app(cfg)
    except ConfigError as exc:
        exitcodes.config_error(exc.issues)
    except TokenStoreError as exc:
        exitcodes.config_error([f"{config}: api: {exc}"])
    except ValueError as exc:  # names its key: influxdb.tls.ca_file, analytics.mrv_interval
        exitcodes.config_error([f"{config}: {exc}"])
    tls = _tls_options(config, cfg)
    log = logging.getLogger("plantmrv.api")
    log.info("event=start host=%s port=%d tls=%s projects=%d", cfg.api.host, cfg.api.port, "on" if tls else "off", len(api.state.projects))
    health = Health(stall_after_s=60.0)
    health.add_check("influxdb", influx_probe(cfg.influxdb))
    ops = OpsServer(new_registry("api"), health)
    if cfg.api.metrics.port is not None:
        log.info("event=metrics_listening host=%s port=%d", cfg.api.metrics.host, ops.start(cfg.api.metrics.host, cfg.api.metrics.port))
    try:
        run_uvicorn(api, health, host=cfg.api.host, port=cfg.api.port, log_level=(log_level or cfg.api.log.level).lower(),
                    access_log=False, root_path=cfg.api.root_path, **tls)
    finally:
        ops.close()


def _store(config: Path):
    from plantmrv.api.tokens import TokenStore, TokenStoreError

    cfg = _store_config(config)
    try:
        return TokenStore(cfg.api.token_store)
    except TokenStoreError as exc:
        typer.echo(f"{config}: api.token_store: {exc}", err=True)
        raise typer.Exit(1)


def _store_config(config: Path):
    from plantmrv.clitools import load_or_exit

    cfg = load_or_exit(config)
    if cfg.api is None or cfg.api.token_store is None:
        typer.echo(f"{config}: api.token_store: set the path of the API's state file (tokens and acceptances)", err=True)
        raise typer.Exit(1)
    return cfg


def parse_expiry(text: str, now: datetime) -> datetime:
    """``90d`` / ``12h`` from ``now``, or an ISO 8601 date or time (UTC if no offset)."""
    if m := re.fullmatch(r"(\d{1,5})([dh])", text.strip()):
        n = int(m.group(1))
        return now + (timedelta(days=n) if m.group(2) == "d" else timedelta(hours=n))
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not like 90d, 12h, 2026-12-31 or 2026-12-31T18:00:00+09:00") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., "--role", help="verifier (read-only, listed projects), operator or admin."),
    project: List[str] = typer.Option([], "--project", "-p", help="Project id a verifier may read; repeat for several."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Who holds the token (shown in logs as who=); default: <role>-<n>."),
    config: Path = ConfigOpt,
    print_hash: bool = typer.Option(False, "--print-hash", help="Also print the SHA-256 (for api.tokens in a config file)."),
    expires: Optional[str] = typer.Option(None, "--expires", help="Refuse the token from then on: 90d, 12h, or an ISO date/time (UTC if no offset)."),
) -> None:
    """Create a token and print it ONCE; only its SHA-256 is stored."""
    from plantmrv.api.tokens import ROLES, TokenStoreError, hash_token, utc_now

    if role not in ROLES:
        typer.echo(f"--role: {role!r} is not one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    try:
        expires_at = parse_expiry(expires, utc_now()) if expires else None
    except ValueError as exc:
        typer.echo(f"--expires: {exc}", err=True)
        raise typer.Exit(2)
    store = _store(config)
    try:
        rec, token = store.create(name or f"{role}-{len(store.list()) + 1}", role, project, expires_at=expires_at)
    except TokenStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    typer.echo(f"created token id={rec.id} name={rec.name} role={rec.role} projects={','.join(rec.projects) or '*'} expires={rec.expires_at or 'never'}", err=True)
    typer.echo(token)
    if print_hash:
        typer.echo(f"sha256={hash_token(token)}", err=True)


@token_app.command("list")
def token_list(
    config: Path = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List tokens (id, name, role, created, expires, last used, revoked, projects); never the tokens themselves."""
    records = _store(config).list()
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    typer.echo(f"{'id':>4}  {'name':<24} {'role':<9} {'created':<26} {'expires':<26} {'last used':<26} {'revoked':<26} projects")
    for r in records:
        typer.echo(f"{r.id:>4}  {r.name:<24} {r.role:<9} {r.created_at:<26} {r.expires_at or '-':<26} {r.last_used_at or '-':<26} {r.revoked_at or '-':<26} {','.join(r.projects) or '*'}")


@token_app.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., help="Id of the token (see `plantmrv api token list`)."),
    config: Path = ConfigOpt,
) -> None:
    """Revoke a token; requests with it get 401 from then on."""
    from plantmrv.api.tokens import TokenStoreError

    try:
        rec = _store(config).revoke(token_id)
    except TokenStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked token id={rec.id} name={rec.name} at {rec.revoked_at}")


# --------------------------------------------------------------------------- acceptances


def _acceptance_store(config: Path):
    from plantmrv.api.acceptances import AcceptanceStore
    from plantmrv.api.store import StoreError

    cfg = _store_config(config)
    try:
        return cfg, AcceptanceStore(cfg.api.token_store)
    except StoreError as exc:
        typer.echo(f"{config}: api.token_store: {exc}", err=True)
        raise typer.Exit(1)


@acceptance_app.command("add")
def acceptance_add(
    project: str = typer.Option(..., "--project", "-p", help="Project id."),
    period: str = typer.Option(..., "--period", help="The period, as for the monitoring report (monitoring, FY2024, 2024-03, ...)."),
    intervals_sha256: str = typer.Option(..., "--intervals-sha256", help="intervals_sha256 of the report you reviewed (refused if the results changed since)."),
    reason: str = typer.Option(..., "--reason", help="Why these results may be credited as they are (kept with the acceptance)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who accepts (default: the OS user)."),
    config: Path = ConfigOpt,
) -> None:
    """Accept the current results of a period despite their warnings; the report then floors and credits them."""
    from plantmrv.api.acceptances import accept_results
    from plantmrv.api.app import _analytics_interval, api_influx_client
    from plantmrv.api.projects import load_projects
    from plantmrv.api.reports import RangeError
    from plantmrv.api.store import StoreError
    from plantmrv.influx import InfluxError

    cfg, store = _acceptance_store(config)
    found = {p.id: p for p in load_projects(cfg)}.get(project)
    if found is None:
        typer.echo(f"--project: no project {project!r} in {config}'s analytics section", err=True)
        raise typer.Exit(2)
    who = by or getpass.getuser()
    influx = api_influx_client(cfg, cfg.api)
    try:
        info = accept_results(influx, store, found, period, intervals_sha256, reason, f"{who} (cli)", "cli", cfg.api.mrv_interval or _analytics_interval(cfg), cfg.api.max_span_days,
                              cfg.api.results_database)
    except (StoreError, RangeError, InfluxError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    finally:
        influx.close()
    typer.echo(f"accepted id={info.id} project={info.project} period={info.period} warnings={','.join(info.warnings)} by={info.accepted_by} at={info.accepted_at}")


@acceptance_app.command("list")
def acceptance_list(
    config: Path = ConfigOpt,
    project: Optional[str] = typer.Option(None, "--project", "-p", help="Only this project."),
) -> None:
    """List acceptances as JSON (withdrawn ones too)."""
    _, store = _acceptance_store(config)
    typer.echo(json.dumps([a.model_dump(mode="json") for a in store.list(project)], indent=2))


@acceptance_app.command("withdraw")
def acceptance_withdraw(
    acceptance_id: int = typer.Argument(..., help="Id of the acceptance (see `plantmrv api acceptance list`)."),
    by: Optional[str] = typer.Option(None, "--by", help="Who withdraws (default: the OS user)."),
    config: Path = ConfigOpt,
) -> None:
    """Withdraw an acceptance: the period is withheld again (the record stays)."""
    from plantmrv.api.store import StoreError

    _, store = _acceptance_store(config)
    try:
        info = store.withdraw(acceptance_id, f"{by or getpass.getuser()} (cli)")
    except StoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    typer.echo(f"withdrew acceptance id={info.id} project={info.project} period={info.period} at {info.withdrawn_at}")
