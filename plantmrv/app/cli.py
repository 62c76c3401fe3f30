"""The ``plantmrv`` command line (also ``python -m plantmrv``).

Each service contributes its own typer app from ``<package>/cli.py``; this module mounts them
and holds the commands that belong to no single service (``check-config``, ``version``). Before
any command runs, every service's config section is registered (:mod:`plantmrv.app.config`).
Service modules import their heavy dependencies (asyncua, fastapi) inside commands, so
``plantmrv --help`` stays fast on a Raspberry Pi. A command group whose extra is not installed
(``api`` without ``plantmrv[server]``) is replaced by a stub that names the extra; exit codes
are those of :mod:`plantmrv.exitcodes`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Optional

import typer

import plantmrv
from plantmrv import exitcodes, extras
from plantmrv.config import ConfigError, load_config

app = typer.Typer(
    name="plantmrv",
    help=(
        "IoT telemetry and MRV pipeline for low-carbon demonstration plants: gateways (OPC UA, MQTT) "
        "-> broker -> ingest -> InfluxDB -> MRV analytics -> Grafana and a verifier API.\n\n"
        "Exit codes: 0 ok, 1 runtime error, 2 usage error, 69 extra not installed, 78 config error."
    ),
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (command name, module with a typer `app`, help shown in `plantmrv --help`, extra it needs)
SUBCOMMANDS = [
    ("simulate", "plantmrv.simulators.cli", "Simulated plants served over OPC UA and MQTT, with faults and ground truth.", None),
    ("gateway", "plantmrv.gateway.cli", "Edge gateway agent: OPC UA / MQTT sources, durable buffer, MQTT or InfluxDB sink.", None),
    ("ingest", "plantmrv.ingest.cli", "Broker-to-InfluxDB ingest service with validation and dead letters.", None),
    ("analytics", "plantmrv.analytics.cli", "MRV analytics engine: continuous, backfill and period reports.", None),
    ("api", "plantmrv.api.cli", "Verifier API (FastAPI), its access tokens and operators' acceptances.", "server"),
    ("dashboards", "plantmrv.dashboards.cli", "Grafana dashboards generated from code: build, check and push.", "dashboards"),
    ("demo", "plantmrv.app.demo.harness", "Run the whole pipeline on simulated plants.", "demo"),
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"plantmrv {plantmrv.__version__}")
        raise typer.Exit()


CONFIG_FREE = {"healthcheck", "version"}  # commands that read no config file (a healthcheck runs every few seconds)


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", "-V", callback=_version_callback, is_eager=True, help="Print the version and exit."),
) -> None:
    # here rather than at import, and not for CONFIG_FREE: their start-up needs no service's config models
    if ctx.invoked_subcommand not in CONFIG_FREE:
        import plantmrv.app.config  # noqa: F401 - registers every service's config section


def _mount_missing_extra(name: str, extra: str, help_text: str) -> None:
    """A stand-in for a command group whose extra is absent: any use (even --help) names the extra."""

    def needs_extra(ctx: typer.Context) -> None:
        typer.echo(extras.message(name, extra), err=True)
        raise typer.Exit(exitcodes.UNAVAILABLE)

    app.command(name, help=f"{help_text} (needs the '{extra}' extra)", add_help_option=False,
                context_settings={"ignore_unknown_options": True, "allow_extra_args": True})(needs_extra)


def _mount() -> None:
    for name, module_name, help_text, extra in SUBCOMMANDS:
        if importlib.util.find_spec(module_name) is None:
            continue  # a service whose module is not part of this build
        if extra and extras.missing(extra):
            _mount_missing_extra(name, extra, help_text)
            continue
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

    Takes a service config (sections site, influxdb, mqtt, gateway, ingest, analytics, api, dashboards) or a
    simulator config (`plants:`, see examples/simulate.yaml). Exit code 0 when the file is valid,
    78 when it is not. Secrets are never printed.
    """
    from plantmrv.config import read_config_text

    try:
        text = read_config_text(file)  # once: FILE may be /dev/stdin
        if section is None and _is_simulator_config(text):
            return _check_simulator_config(file)
        cfg = load_config(file, text=text)
        if section and getattr(cfg, section, None) is None:
            raise ConfigError([_missing_section(file, section)])
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        typer.echo(f"{file}: {len(exc.issues)} error(s)", err=True)
        raise typer.Exit(exitcodes.CONFIG)
    present = [name for name in type(cfg).model_fields if getattr(cfg, name, None) is not None]
    typer.echo(f"{file}: OK (sections: {', '.join(present)})")


SIMULATOR_KEYS = {"start", "plants", "faults", "random_faults"}


def _is_simulator_config(text: str) -> bool:
    """A mapping whose keys are the simulator's (`plants` among them), not plantmrv's sections."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return False  # load_config reports it, located
    return isinstance(doc, dict) and "plants" in doc and set(doc) <= SIMULATOR_KEYS


def _check_simulator_config(file: Path) -> None:
    from plantmrv.simulators.server import build_config

    try:
        cfg = build_config([], file)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        typer.echo(f"{file}: 1 error(s)", err=True)
        raise typer.Exit(exitcodes.CONFIG)
    typer.echo(f"{file}: OK (simulator config: {len(cfg.assets)} plant(s))")


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
    _write_or_print(text, out)


def _write_or_print(text: str, out: Optional[Path]) -> None:
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

    _write_or_print(generate(), out)


@app.command("healthcheck")
def healthcheck(
    url: str = typer.Argument("http://127.0.0.1:9109/readyz", help="A service's /readyz or /healthz (see docs/operations.md)."),
    timeout_s: float = typer.Option(3.0, "--timeout", help="Seconds to wait for the answer."),
) -> None:
    """Exit 0 when URL answers 200, else print why and exit 1 (for container healthchecks: the image has no curl)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            body = resp.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        typer.echo(f"{url}: HTTP {exc.code}: {exc.read(4096).decode('utf-8', 'replace').strip()}", err=True)
        raise typer.Exit(exitcodes.RUNTIME)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        typer.echo(f"{url}: {getattr(exc, 'reason', exc)}", err=True)
        raise typer.Exit(exitcodes.RUNTIME)
    typer.echo(body.strip())


@app.command("version")
def version() -> None:
    """Print the plantmrv version (the same as `plantmrv --version`)."""
    typer.echo(plantmrv.__version__)


_mount()


def main() -> None:
    try:
        app(prog_name="plantmrv")
    except ModuleNotFoundError as exc:  # a module of an extra that is not installed, met inside a command
        extra = extras.extra_of(exc.name)
        if extra is None:
            raise
        command = " ".join(a for a in sys.argv[1:3] if not a.startswith("-")) or "this command"
        typer.echo(extras.message(command, extra), err=True)
        sys.exit(exitcodes.UNAVAILABLE)


if __name__ == "__main__":
    sys.exit(main())
