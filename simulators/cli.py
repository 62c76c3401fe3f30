"""``plantmrv simulate``: simulated plants served over OPC UA and MQTT, with faults.

Mounted by ``plantmrv/app/cli.py``; also runnable as ``python -m plantmrv.simulators``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Optional

import typer

from plantmrv import exitcodes
from plantmrv.logs import LOG_FORMAT_OPTION, LOG_LEVEL_OPTION, LogFormat, LogLevel

SHORT_HELP = "Simulated plants served over OPC UA, MQTT and Modbus TCP, with faults and ground truth."

HELP = """Run simulated plants (U-BCF, pump station, VSD, waste-to-energy, PV)
in one process; serve them over OPC UA (asyncua) and, with --mqtt, as device
JSON over MQTT.

\b
OPC UA address space: Objects/<site>/<asset>/<field>,
NodeId ns=2;s=<site>/<asset>/<field> (namespace urn:plantmrv:simulator).
Each variable is a Double with a Description, an EngineeringUnits property
(UNECE code) and SourceTimestamp = simulated time. Fields and units are
those of docs/data-model.md. HistoryRead (raw) is answered from the plant
model, so a gateway can backfill any past period (--no-history: off).

\b
MQTT (--mqtt mqtt://host:port): topic devices/<site>/<asset>, one message
per asset per update:
  {"ts": <simulated Unix ms>, "<field>": <value>, ...,
   "status": {"<field>": "<StatusCode>"}}
A field in dropout is left out; "status" lists non-good fields (bad ones
carry no value).

\b
Modbus TCP (--modbus PORT): every vsd and pv plant is one unit id (1, 2,
... in plant order). A vsd answers with a Danfoss VLT FC-series map
(holding register = parameter number x 10 - 1): 15019 kWh counter
(uint32), 16029 status word (bit 11 running), 16049 main actual value
(int16, 16384 = 100 %), 16099 power (int32, 0.01 kW), 16129 frequency
(uint16, 0.1 Hz), 16519 feedback = flow (int32, 0.001 m3/h). A pv plant is
a SunSpec inverter at 40000: models 1, 103 (W, DCW, WH with scale
factors), 302 (POAI irradiance), 303 (module temperature). Faults: a
dropout goes unanswered (timeout), bad_status answers exception 04,
server_restart closes the listener.

\b
Config file (--config FILE, YAML; see examples/simulate.yaml):
  start: ISO time of the simulated start (default now)
  plants: list of {type, site, asset, seed, params, faults}
  faults: list of {kind, at_s or start, duration_s, site, asset, field,
          value, status}
  random_faults: {seed, rate_per_h, kinds, duration_s (min, max), hours}
Fault kinds: dropout, stuck, spike, bad_status (BadSensorFailure),
uncertain (UncertainLastUsableValue), meter_reset, server_restart,
network_stall. Every fault start and end is appended to the JSONL
--fault-log with its simulated time.

\b
Security (--security, repeatable): none, sign (Basic256Sha256 Sign),
encrypt (Basic256Sha256 SignAndEncrypt); self-signed certificates are
generated into --cert-dir. --user NAME requires username/password login
(anonymous refused); the password is read from the environment variable
named by --password-env (default PLANTMRV_SIM_PASSWORD), never from the
command line, and is never printed.

\b
Once serving, stdout gets the line
  plantmrv-sim ready endpoint=opc.tcp://HOST:PORT tags=N
Logs are logfmt (key=value) or, with --log-format json, JSON lines on stderr."""

app = typer.Typer(
    name="simulate",
    help=SHORT_HELP + " Details below the options.",
    add_completion=False,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True, epilog=HELP)
def simulate(
    plants: Optional[str] = typer.Option(None, "--plants", "-p", help="Comma-separated plant types with default sites: pump,vsd,ubcf,wte,pv. Default: all five when no --config."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file listing plants (type, site, asset, params, seed, faults)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (OPC UA)."),
    port: int = typer.Option(4840, "--port", help="OPC UA TCP port."),
    rate: float = typer.Option(1.0, "--rate", help="Updates per wall-clock second [Hz]."),
    speed: float = typer.Option(1.0, "--speed", help="Time acceleration: simulated seconds per wall second (60 = one simulated minute per second)."),
    start: Optional[str] = typer.Option(None, "--start", help="Simulated start time, ISO-8601 (default: now, or 'start' in the config)."),
    scale: int = typer.Option(1, "--scale", help="Multiply every plant N times (assets <asset>-<k>) for load tests."),
    seed: int = typer.Option(0, "--seed", help="Base seed: plant n gets seed+n unless the config sets one."),
    fault_seed: Optional[int] = typer.Option(None, "--fault-seed", help="Seed of the random fault schedule (overrides random_faults.seed)."),
    fault_rate: float = typer.Option(0.0, "--fault-rate", help="Random faults per simulated hour over all plants (0 = none unless the config asks)."),
    fault_log: Optional[Path] = typer.Option(None, "--fault-log", help="JSONL file receiving one line per fault start/end."),
    fault_influx: Optional[str] = typer.Option(None, "--fault-influx", help="Also write each fault start as a `sim_fault` point (dashboard annotation) to this InfluxDB: URL/database, e.g. http://127.0.0.1:8086/plantmrv."),
    mqtt: Optional[str] = typer.Option(None, "--mqtt", help="Also publish device JSON to this broker, mqtt://host:port."),
    mqtt_qos: int = typer.Option(0, "--mqtt-qos", help="QoS of the MQTT publishes (0, 1 or 2)."),
    no_opcua: bool = typer.Option(False, "--no-opcua", help="Do not start the OPC UA server (MQTT or Modbus only)."),
    modbus: Optional[int] = typer.Option(None, "--modbus", help="Also serve the vsd and pv plants over Modbus TCP on this port (unit ids 1, 2, ... in plant order)."),
    history: bool = typer.Option(True, "--history/--no-history", help="Answer OPC UA HistoryRead from the models."),
    security: list[str] = typer.Option(["none"], "--security", help="OPC UA security mode, repeatable: none, sign, encrypt."),
    cert_dir: Optional[Path] = typer.Option(None, "--cert-dir", help="Where the server certificate/key are kept (generated if absent; default a temp dir)."),
    user: Optional[str] = typer.Option(None, "--user", help="Require this username (password from --password-env)."),
    password_env: str = typer.Option("PLANTMRV_SIM_PASSWORD", "--password-env", help="Environment variable holding the password for --user."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many wall seconds (default: run until interrupted)."),
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    from .meters import parse_time_ns
    from .plants import PLANT_TYPES
    from .server import ServeOptions, Simulator, build_config

    from plantmrv import logs

    logs.setup(log_level, log_format)
    modes = []
    for m in security:
        for part in m.split(","):
            part = part.strip().lower()
            if part not in ("none", "sign", "encrypt"):
                typer.echo(f"--security: {part!r} is not one of none, sign, encrypt", err=True)
                raise typer.Exit(2)
            modes.append(part)
    password = None
    if user is not None:
        password = os.environ.get(password_env)
        if not password:
            typer.echo(f"--user {user}: environment variable {password_env} is empty or unset", err=True)
            raise typer.Exit(2)
    plant_list = [p for p in (plants or "").split(",") if p.strip()]
    if not plant_list and config is None:
        plant_list = list(PLANT_TYPES)
    try:
        start_ns = parse_time_ns(start) if start else None
    except ValueError as exc:
        typer.echo(f"--start: {exc}", err=True)
        raise typer.Exit(2)
    try:
        cfg = build_config(plant_list, config, scale=scale, start_ns=start_ns, seed=seed, fault_seed=fault_seed, fault_rate_per_h=fault_rate)
    except ValueError as exc:  # a problem in --config FILE is a config error, one on the command line a usage error
        typer.echo(str(exc), err=True)
        raise typer.Exit(exitcodes.CONFIG if config is not None and str(exc).startswith(str(config)) else exitcodes.USAGE)
    if mqtt_qos not in (0, 1, 2):
        typer.echo(f"--mqtt-qos: {mqtt_qos} is not 0, 1 or 2", err=True)
        raise typer.Exit(2)
    if rate <= 0 or speed <= 0:
        typer.echo("--rate and --speed must be > 0", err=True)
        raise typer.Exit(2)
    opts = ServeOptions(
        host=host, port=port, rate_hz=rate, speed=speed, history=history, security=tuple(modes),
        cert_dir=str(cert_dir) if cert_dir else None, user=user, password=password, mqtt_url=mqtt,
        mqtt_qos=mqtt_qos, opcua=not no_opcua, modbus_port=modbus, fault_log=str(fault_log) if fault_log else None, fault_influx=fault_influx,
        duration_s=duration,
    )
    sim = Simulator(cfg, opts)
    try:
        asyncio.run(sim.run())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        typer.echo(f"cannot serve on {host}:{port}: {exc}", err=True)
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - thin wrapper
    app(prog_name="plantmrv simulate")
