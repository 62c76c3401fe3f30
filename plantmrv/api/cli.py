"""``plantmrv api``: serve the verifier API, and manage its access tokens.

``plantmrv api -c FILE`` runs the server (uvicorn) on ``api.host``/``api.port``.
``plantmrv api token create|list|revoke -c FILE`` manage the SQLite store at ``api.token_store``;
a token is printed once, at creation, and only its SHA-256 is kept.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    help="Verifier API (FastAPI) and its access tokens.",
    invoke_without_command=True,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
token_app = typer.Typer(help="Create, list and revoke API tokens (SQLite store at api.token_store).", no_args_is_help=True)
app.add_typer(token_app, name="token")

ConfigOpt = typer.Option(..., "--config", "-c", help="YAML config with sections api, influxdb and analytics.")


def _setup_logging(cfg) -> None:
    api = cfg.api
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if api and api.log.file:
        handlers.append(logging.FileHandler(api.log.file))
    fmt = logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    logger = logging.getLogger("plantmrv")
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    logger.setLevel(api.log.level if api else "INFO")


@app.callback()
def serve(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config with sections api, influxdb and analytics; runs the server."),
) -> None:
    """Serve the verifier API with uvicorn on api.host:api.port (`plantmrv api -c FILE`).

    Endpoints: /projects, /projects/{id}, /projects/{id}/reductions, /projects/{id}/monitoring-report,
    /projects/{id}/export, /health; OpenAPI docs at /docs. Every request is logged (who, what), never the token.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        typer.echo(ctx.get_help())
        typer.echo("\nerror: -c/--config FILE is required to run the server", err=True)
        raise typer.Exit(2)
    import uvicorn

    from plantmrv.api.app import create_app
    from plantmrv.cli import load_or_exit

    cfg = load_or_exit(config)
    if cfg.api is None:
        typer.echo(f"{config}: api: section 'api' is required for this command", err=True)
        raise typer.Exit(1)
    _setup_logging(cfg)
    from plantmrv.api.tokens import TokenStoreError
    from plantmrv.config import ConfigError

    try:
        api = create_app(cfg)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1)
    except (TokenStoreError, ValueError) as exc:
        typer.echo(f"{config}: api: {exc}", err=True)
        raise typer.Exit(1)
    logging.getLogger("plantmrv.api").info("event=start host=%s port=%d projects=%d", cfg.api.host, cfg.api.port, len(api.state.projects))
    uvicorn.run(api, host=cfg.api.host, port=cfg.api.port, log_level=cfg.api.log.level.lower(), access_log=False, root_path=cfg.api.root_path)


def _store(config: Path):
    from plantmrv.api.tokens import TokenStore
    from plantmrv.cli import load_or_exit

    cfg = load_or_exit(config)
    if cfg.api is None or cfg.api.token_store is None:
        typer.echo(f"{config}: api.token_store: set the path of the token store to manage tokens", err=True)
        raise typer.Exit(1)
    return TokenStore(cfg.api.token_store)


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., "--role", help="verifier (read-only, listed projects), operator or admin."),
    project: List[str] = typer.Option([], "--project", "-p", help="Project id a verifier may read; repeat for several."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Who holds the token (shown in logs as who=); default: <role>-<n>."),
    config: Path = ConfigOpt,
    print_hash: bool = typer.Option(False, "--print-hash", help="Also print the SHA-256 (for api.tokens in a config file)."),
) -> None:
    """Create a token and print it ONCE; only its SHA-256 is stored."""
    from plantmrv.api.tokens import ROLES, TokenStoreError, hash_token

    if role not in ROLES:
        typer.echo(f"--role: {role!r} is not one of {', '.join(ROLES)}", err=True)
        raise typer.Exit(2)
    store = _store(config)
    try:
        rec, token = store.create(name or f"{role}-{len(store.list()) + 1}", role, project)
    except TokenStoreError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1)
    typer.echo(f"created token id={rec.id} name={rec.name} role={rec.role} projects={','.join(rec.projects) or '*'}", err=True)
    typer.echo(token)
    if print_hash:
        typer.echo(f"sha256={hash_token(token)}", err=True)


@token_app.command("list")
def token_list(
    config: Path = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List tokens (id, name, role, projects, created, revoked); never the tokens themselves."""
    records = _store(config).list()
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    typer.echo(f"{'id':>4}  {'name':<24} {'role':<9} {'created':<26} {'revoked':<26} projects")
    for r in records:
        typer.echo(f"{r.id:>4}  {r.name:<24} {r.role:<9} {r.created_at:<26} {r.revoked_at or '-':<26} {','.join(r.projects) or '*'}")


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
