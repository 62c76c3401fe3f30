"""``plantmrv gateway``: run the agent, browse an OPC UA server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("asyncua", "aiomqtt", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.command("run")
def run(
    config: Path = typer.Option(..., "--config", "-c", help="Gateway YAML file (sections: site, mqtt or influxdb, gateway)."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run the gateway agent until SIGTERM/SIGINT.

    The whole file is validated first (every error printed as `file: key.path (line N): message`,
    exit 1). Every sample read is stored in the durable buffer (fsync'ed) before it is sent and
    removed only after the sink confirmed it; a stop flushes memory to the buffer.
    """
    import asyncio

    from plantmrv.cli import load_or_exit
    from plantmrv.config import ConfigError

    cfg = load_or_exit(config)
    setup_logging(log_level)
    from plantmrv.gateway.agent import GatewayAgent

    try:
        agent = GatewayAgent(cfg, config)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1)
    except ValueError as exc:
        typer.echo(f"{config}: {exc}", err=True)
        raise typer.Exit(1)
    asyncio.run(agent.run(install_signal_handlers=True))


@app.command("browse")
def browse(
    url: str = typer.Argument(..., help="Server endpoint, opc.tcp://host:port."),
    username: Optional[str] = typer.Option(None, "--username", "-u", help="User name (security mode None)."),
    password: Optional[str] = typer.Option(None, "--password", envvar="OPCUA_PASSWORD", help="Password (or env OPCUA_PASSWORD)."),
    max_nodes: int = typer.Option(100_000, "--max-nodes", help="Stop after visiting this many references."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the YAML here instead of standard output."),
) -> None:
    """Walk a server's address space and print a ready-to-paste `type: opcua` source.

    Numeric and boolean variables under Objects (server namespace 0 excluded), one group per
    parent object, field names in snake_case with the unit from EngineeringUnits.
    """
    import asyncio

    from plantmrv.gateway.browse import render_yaml, walk

    try:
        groups = asyncio.run(walk(url, username, password, max_nodes))
    except (OSError, TimeoutError) as exc:
        typer.echo(f"cannot browse {url}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1)
    text = render_yaml(url, groups)
    n = sum(len(g["nodes"]) for g in groups)
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}: {n} variables in {len(groups)} groups", err=True)
    else:
        typer.echo(text, nl=False)
        typer.echo(f"# {n} variables in {len(groups)} groups", err=True)
