"""The ``plantmrv`` command line.

Each service contributes its own typer app from ``<package>/cli.py``; this module mounts them
and holds the commands that belong to no single service (``check-config``, ``version``).
Service modules import their heavy dependencies (asyncua, fastapi) inside commands, so
``plantmrv --help`` stays fast on a Raspberry Pi.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Optional

import typer

import plantmrv
from plantmrv.config import ConfigError, load_config

app = typer.Typer(
    name="plantmrv",
    help=(
        "IoT telemetry and MRV pipeline for low-carbon demonstration plants: gateways (OPC UA, MQTT) "
        "-> broker -> ingest -> InfluxDB -> MRV analytics -> Grafana and a verifier API."
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (command name, module with a typer `app`, help shown in `plantmrv --help`)
SUBCOMMANDS = [
    ("simulate", "plantmrv.simulators.cli", "Simulated plants served over OPC UA and MQTT, with faults and ground truth."),
    ("gateway", "plantmrv.gateway.cli", "Edge gateway agent: OPC UA / MQTT sources, durable buffer, MQTT or InfluxDB sink."),
    ("ingest", "plantmrv.ingest.cli", "Broker-to-InfluxDB ingest service with validation and dead letters."),
    ("analytics", "plantmrv.analytics.cli", "MRV analytics engine: continuous, backfill and period reports."),
    ("api", "plantmrv.api.cli", "Verifier API (FastAPI), its access tokens and operators' acceptances."),
    ("dashboards", "plantmrv.dashboards.cli", "Grafana dashboards generated from code: build, check and push."),
    ("demo", "plantmrv.demo", "Run the whole pipeline on simulated plants."),
]


def _mount() -> None:
    for name, module_name, help_text in SUBCOMMANDS:
        if importlib.util.find_spec(module_name) is None:
            continue  # a service whose module is not part of this build
        module = importlib.import_module(module_name)
        app.add_typer(module.app, name=name, help=help_text)


@app.command("check-config")
def check_config(
    file: Path = typer.Argument(..., help="YAML config file to validate."),
    section: Optional[str] = typer.Option(
        None, "--section", "-s", help="Also require this section (gateway, ingest, analytics, api, ...)."
    ),
) -> None:
    """Validate a config file and print every error as `file: key.path (line N): message`.

    Exit code 0 when the file is valid, 1 when it is not. Secrets are never printed.
    """
    try:
        cfg = load_config(file)
        if section and getattr(cfg, section, None) is None:
            raise ConfigError([_missing_section(file, section)])
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"{file}: {len(exc.issues)} error(s)", err=True)
        raise typer.Exit(1)
    present = [name for name in type(cfg).model_fields if getattr(cfg, name, None) is not None]
    typer.echo(f"{file}: OK (sections: {', '.join(present)})")


def _missing_section(file: Path, section: str):
    from plantmrv.config import ConfigIssue

    return ConfigIssue(str(file), section, None, f"section '{section}' is required")


@app.command("broker-acl")
def broker_acl(
    files: list[Path] = typer.Argument(..., help="Config files of the gateways (mqtt sink) and ingest processes that use the broker."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to this file (Mosquitto's dynamic-security JSON) instead of standard output."),
) -> None:
    """Print the broker's authorization for these services: each gateway may publish only its own topics, only ingest subscribes.

    Mosquitto: load it with the dynamic-security plugin (deploy/mosquitto/mosquitto.conf), passwords
    stay in the password_file. Every file needs `mqtt.username` (one broker user per gateway and per
    ingest process). EMQX and HiveMQ: docs/broker-acl.md.
    """
    from plantmrv.brokeracl import document_for_files, render

    try:
        text = render(document_for_files(files))
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1)
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text, nl=False)


@app.command("config-doc")
def config_doc(
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to this file instead of standard output."),
) -> None:
    """Print the configuration reference (Markdown) generated from the config models."""
    from plantmrv.configdoc import generate

    text = generate()
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text, nl=False)


@app.command("version")
def version() -> None:
    """Print the plantmrv version."""
    typer.echo(plantmrv.__version__)


def load_or_exit(file: Path):
    """Load a config for a service command; print located errors and exit 1 on failure."""
    try:
        return load_config(file)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1)


_mount()


def main() -> None:
    app(prog_name="plantmrv")


if __name__ == "__main__":
    sys.exit(main())
