"""``plantmrv gateway``: run the agent, show a running agent's status, browse an OPC UA server, scan a Modbus device."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from plantmrv import exitcodes
from plantmrv.logs import LOG_FORMAT_OPTION, LOG_LEVEL_OPTION, LogFormat, LogLevel

app = typer.Typer(no_args_is_help=True, add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})


AGENT_SECTIONS = ("site", "mqtt", "influxdb", "gateway")  # what GatewayAgent reads from the root config

def tune_malloc() -> dict[str, int]:
    """Set glibc's allocator for a small long-running agent; return what was set.

    ``M_ARENA_MAX`` 1: the agent's few threads (event loop, paho's network loop, buffer I/O)
    share the main arena instead of growing a second one. Skipped when the environment sets
    ``MALLOC_ARENA_MAX``; a no-op outside glibc. Call before any thread starts.

    Not set here: a fixed ``M_MMAP_THRESHOLD`` (``MALLOC_MMAP_THRESHOLD_=131072``) saves more
    memory, because the blobs of each flush are then mmap'ed and returned instead of fragmenting
    the heap, but it costs page faults and CPU on every flush; an operator short of RAM can set
    it. Both trade-offs were measured with ``bench/gateway.py`` (figures in bench/README.md,
    gateway).
    """
    from plantmrv.malloc import M_ARENA_MAX, set_unless_configured

    return set_unless_configured({M_ARENA_MAX: 1})


def _compact_pickler():
    import pickle

    from plantmrv.gateway.opcua_source import NodeRef, OpcUaNode

    class CompactPickler(pickle.Pickler):
        """Pickles validated OPC UA nodes as :class:`NodeRef` tuples (what the agent keeps per tag)."""

        def reducer_override(self, obj):
            if type(obj) is OpcUaNode:
                return NodeRef, tuple(NodeRef.of(obj))
            return NotImplemented

    return CompactPickler


def load_config_compact(config: Path):
    """The validated config, parsed in a forked child so its garbage never enters the agent's heap (exit 78 if invalid).

    YAML with line numbers for error messages allocates per tag what Python frees but cannot
    give back (fragmented arenas), for the life of the agent. The child parses and validates
    (printing every located error, exit 78), then pickles the sections the agent reads; the
    agent unpickles only those models, with each OPC UA node as a
    :class:`~plantmrv.gateway.opcua_source.NodeRef` tuple rather than a pydantic model, which is
    smaller (figures in bench/README.md, gateway). Without ``os.fork`` the config is loaded
    in-process.
    """
    import os
    import pickle

    from plantmrv.config import ConfigError, load_config, root_model

    if not hasattr(os, "fork"):
        from plantmrv.clitools import load_or_exit

        return load_or_exit(config)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = exitcodes.RUNTIME
        try:
            os.close(r)
            try:
                cfg = load_config(config)
            except ConfigError as exc:
                for issue in exc.issues:
                    sys.stderr.write(f"{issue}\n")
                code = exitcodes.CONFIG
            else:
                with os.fdopen(w, "wb") as f:
                    _compact_pickler()(f, pickle.HIGHEST_PROTOCOL).dump({k: getattr(cfg, k) for k in AGENT_SECTIONS})
                code = 0
        except BaseException:  # noqa: BLE001 - reported, and the parent exits 1
            import traceback

            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not data:
        raise typer.Exit(code if code > 0 else exitcodes.RUNTIME)
    return root_model().model_construct(**pickle.loads(data))


@app.command("run")
def run(
    config: Path = typer.Option(..., "--config", "-c", help="Gateway YAML file (sections: site, mqtt or influxdb, gateway)."),
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    """Run the gateway agent until SIGTERM/SIGINT.

    The whole file is validated first (every error printed as `file: key.path (line N): message`,
    exit 78). Every sample read is stored in the durable buffer (fsync'ed) before it is sent and
    removed only after the sink confirmed it; a stop flushes memory to the buffer. Under systemd
    (Type=notify) it reports readiness and pings the watchdog while its event loop runs.
    """
    import asyncio

    from plantmrv import logs
    from plantmrv.config import ConfigError

    malloc = tune_malloc()
    cfg = load_config_compact(config)
    logs.setup(log_level, log_format)
    if malloc:
        logging.getLogger("plantmrv.gateway").info("event=malloc_tuned settings=%s", ",".join(f"{k}={v}" for k, v in malloc.items()))
    from plantmrv.gateway.agent import GatewayAgent

    try:
        agent = GatewayAgent(cfg, config)
    except ConfigError as exc:
        exitcodes.config_error(exc.issues)
    except ValueError as exc:
        exitcodes.config_error([f"{config}: {exc}"])
    asyncio.run(_run_supervised(agent))


async def _run_supervised(agent) -> None:
    """Run the agent with a heartbeat task: /healthz and systemd's watchdog see the event loop turn."""
    import asyncio

    from plantmrv import sdnotify

    async def heartbeat() -> None:
        await asyncio.sleep(0)  # the agent has started
        sdnotify.ready(f"gateway {agent.gateway_id} running")
        while True:
            agent.metrics.health.beat()
            await asyncio.sleep(1.0)

    beat = asyncio.create_task(heartbeat(), name="heartbeat")
    try:
        await agent.run(install_signal_handlers=True)
    finally:
        sdnotify.stopping()
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)


@app.command("status")
def status(
    config: Path = typer.Option(..., "--config", "-c", help="The running gateway's YAML file (its gateway.health.metrics_port)."),
    url: Optional[str] = typer.Option(None, "--url", help="The agent's metrics URL, if not the one in the config (http://host:port/metrics)."),
) -> None:
    """Show a running gateway: components up or down, samples read, sent and dropped, and every tag
    that cannot be read or subscribed now (NodeId, series, OPC UA status, phase).

    Reads the agent's Prometheus endpoint (gateway.health.metrics_port must not be null).
    Exit code 0 when every component is up and no tag fails, 2 otherwise, 1 when unreachable.
    """
    from plantmrv.clitools import load_or_exit
    from plantmrv.gateway.statusview import fetch, render

    cfg = load_or_exit(config)
    if url is None:
        h = cfg.gateway.health if cfg.gateway else None
        if h is None or h.metrics_port in (None, 0):
            typer.echo(f"{config}: gateway.health.metrics_port: set a fixed port (or give --url) to read the agent's status", err=True)
            raise typer.Exit(1)
        host = "127.0.0.1" if h.metrics_host in ("0.0.0.0", "::") else h.metrics_host
        url = f"http://{host}:{h.metrics_port}/metrics"
    try:
        view = fetch(url)
    except OSError as exc:
        typer.echo(f"cannot read {url}: {exc} (is the gateway running?)", err=True)
        raise typer.Exit(1)
    typer.echo(render(view, cfg.gateway.id if cfg.gateway else "?", url), nl=False)
    if view.bad_nodes or not all(view.components.values()):
        raise typer.Exit(2)


@app.command("browse")
def browse(
    url: str = typer.Argument(..., help="Server endpoint, opc.tcp://host:port."),
    username: Optional[str] = typer.Option(None, "--username", "-u", help="User name (security mode None)."),
    password: Optional[str] = typer.Option(None, "--password", envvar="OPCUA_PASSWORD", help="Password (or env OPCUA_PASSWORD)."),
    max_nodes: int = typer.Option(100_000, "--max-nodes", help="Stop after visiting this many references."),
    measurement: Optional[str] = typer.Option(None, "--measurement", "-m", help="Measurement (asset class) of every group: pump, vsd, ubcf, wte, pv."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the YAML here instead of standard output."),
) -> None:
    """Walk a server's address space and print a ready-to-paste `type: opcua` source.

    Scalar numeric and boolean variables under Objects (server namespace 0 excluded), one group
    per parent object, field names in snake_case with the unit from EngineeringUnits; arrays,
    structures and other types are listed as comments saying why they are left out. The source
    has `schema: data_model`: check-config refuses names outside docs/data-model.md.
    """
    import asyncio

    from plantmrv.gateway.browse import render_yaml, walk
    from plantmrv.urls import check_url, redact

    try:
        check_url(url, {"opc.tcp": 4840})
    except ValueError as exc:
        typer.echo(f"URL: {exc}", err=True)
        raise typer.Exit(2)
    try:
        groups = asyncio.run(walk(url, username, password, max_nodes))
    except (OSError, TimeoutError) as exc:
        typer.echo(redact(f"cannot browse {url}: {type(exc).__name__}: {exc}"), err=True)
        raise typer.Exit(exitcodes.RUNTIME)
    text = render_yaml(url, groups, measurement)
    n = sum(len(g["nodes"]) for g in groups)
    skipped = sum(len(g["skipped"]) for g in groups)
    summary = f"{n} variables in {len(groups)} groups; {skipped} left out (see the comments)"
    if out:
        out.write_text(text)
        typer.echo(f"wrote {out}: {summary}", err=True)
    else:
        typer.echo(text, nl=False)
        typer.echo(f"# {summary}", err=True)


@app.command("scan")
def scan(
    url: str = typer.Argument(..., help="Device or gateway, modbus://host[:port] (Modbus TCP)."),
    unit: int = typer.Option(1, "--unit", help="Unit id (slave address) to scan."),
    ranges: str = typer.Option("0-9999", "--range", help="Register address ranges to probe, e.g. 0-9999,15000-16600."),
    timeout: float = typer.Option(1.0, "--timeout", help="Answer timeout per request [s]."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write a pasteable `type: modbus` source here."),
) -> None:
    """Probe a Modbus device: register ranges that answer (holding, input) and SunSpec models.

    Prints the findings; with --out, writes a ready-to-paste source (SunSpec devices as
    `sunspec: {}`, other registers as point stubs to name and type from the manual).
    """
    import asyncio

    from plantmrv.gateway.modbus_scan import parse_ranges, render_text, render_yaml
    from plantmrv.gateway.modbus_scan import scan as do_scan

    try:
        spans = parse_ranges(ranges)
    except ValueError as exc:
        typer.echo(f"--range: {exc}", err=True)
        raise typer.Exit(2)
    if not 0 <= unit <= 255:
        typer.echo("--unit: 0..255", err=True)
        raise typer.Exit(2)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    try:
        result = asyncio.run(do_scan(url, unit, spans, timeout))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2)
    except (OSError, ConnectionError) as exc:
        typer.echo(f"cannot scan {url}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1)
    if out:
        out.write_text(render_yaml(result))
        typer.echo(render_text(result), nl=False)
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(render_yaml(result), nl=False)
