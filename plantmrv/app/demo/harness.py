"""``plantmrv demo run``: the whole pipeline on simulated plants, on this machine, then a report.

What it starts, each as its own process on a free loopback port, with data under ``--out``:
influxd and mosquitto (Debian's), the simulators of the five plant types (one OPC UA server for
pump, VSD, U-BCF and waste-to-energy; the solar PV plant as MQTT device JSON), one gateway per
plant (OPC UA subscriptions for four, the MQTT device-JSON source for PV), ingest, the
analytics engine (continuous) and the verifier API.

Plant time is accelerated (``--speed``, default 120: two plant minutes per second) and starts
at ``--start`` (default: 02:00 UTC of a day that keeps plant time in the past), so that the
hourly MRV intervals are whole. The comparison window starts at that hour, after every gateway
came online. The engine closes intervals on event time (the gateways' watermarks), so it
computes each plant hour once the plants have reported past it, whatever the wall clock says;
each hour closed is printed live beside the simulator's ground truth. At the end the engine
backfills the window once more (idempotent), each project's reductions are compared with the
ground truth, the API is asked for the same numbers, a report (Markdown + PNG) is written, and
every process is stopped by PID.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import typer
import yaml

from plantmrv.localservices import ServiceError, free_port, influxd_service, mosquitto_service

app = typer.Typer(help="Run the whole pipeline on simulated plants and report against ground truth.", no_args_is_help=True)

S = 1_000_000_000
HOUR_NS = 3600 * S
REPO = Path(__file__).resolve().parents[3]  # the checkout: plantmrv/app/demo/harness.py
PROJECTS_EXAMPLE = REPO / "examples" / "analytics.yaml"
OPCUA_PLANTS = ("pump", "vsd", "ubcf", "wte")
MQTT_PLANTS = ("pv",)
SEEDS = {"pump": 11, "vsd": 12, "ubcf": 13, "wte": 14, "pv": 15}
LOCAL_DAY_START_UTC_H = 2  # 09:00 in Viet Nam (UTC+7): the solar plant has daylight


class DemoError(RuntimeError):
    pass


# --------------------------------------------------------------------------- time plan


@dataclass
class TimePlan:
    speed: float
    sim_start_ns: int  # plant time when the simulator starts
    window_start_ns: int  # first whole hour compared with ground truth
    window_hours: int

    @property
    def window_end_ns(self) -> int:
        return self.window_start_ns + self.window_hours * HOUR_NS

    def plant_time_ns(self, wall_elapsed_s: float) -> int:
        return int(self.sim_start_ns + wall_elapsed_s * self.speed * S)


def plan_times(now_ns: int, speed: float, duration_s: float, warmup_s: float, start_ns: int | None = None) -> TimePlan:
    """Choose plant times: the window starts at ``start_ns`` (a whole hour), or by default at an
    hour at 02:00 UTC far enough back that plant time stays in the past."""
    window_hours = max(1, int(speed * duration_s // 3600))
    if start_ns is not None:
        if start_ns % HOUR_NS:
            raise DemoError(f"--start {iso(start_ns)} is not a whole hour: the compared window is whole MRV hours")
        return TimePlan(speed, start_ns - int(speed * warmup_s * S), start_ns, window_hours)
    needed_ns = int(speed * (warmup_s + duration_s + 60) * S)
    day = (now_ns - needed_ns) // (24 * HOUR_NS) * (24 * HOUR_NS)
    window_start = day + LOCAL_DAY_START_UTC_H * HOUR_NS
    while window_start + needed_ns > now_ns:
        window_start -= 24 * HOUR_NS
    return TimePlan(speed, window_start - int(speed * warmup_s * S), window_start, window_hours)


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / S, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path


@dataclass
class Stack:
    """Everything the demo started; ``stop()`` ends it all by PID, newest first."""

    out: Path
    procs: list[Proc] = field(default_factory=list)
    services: list = field(default_factory=list)

    def spawn(self, name: str, args: list[str], ready: str | None = None, timeout_s: float = 60) -> Proc:
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(log, "ab")
        popen = subprocess.Popen(
            [sys.executable, "-m", "plantmrv", *args], stdout=fh, stderr=subprocess.STDOUT, cwd=self.out, start_new_session=True
        )
        fh.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        if ready:
            deadline = time.monotonic() + timeout_s
            while ready not in log.read_text(errors="replace"):
                if popen.poll() is not None:
                    raise DemoError(f"{name} exited with code {popen.returncode}; last lines of {log}:\n{tail(log)}")
                if time.monotonic() > deadline:
                    raise DemoError(f"{name} did not print {ready!r} within {timeout_s}s; see {log}")
                time.sleep(0.1)
        return proc

    def check_alive(self) -> None:
        for p in self.procs:
            if p.popen.poll() is not None:
                raise DemoError(f"{p.name} exited with code {p.popen.returncode}; last lines of {p.log}:\n{tail(p.log)}")

    def stop_proc(self, proc: Proc, timeout_s: float = 20) -> None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGINT)
            try:
                proc.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.popen.terminate()
                try:
                    proc.popen.wait(5)
                except subprocess.TimeoutExpired:
                    proc.popen.kill()
                    proc.popen.wait(5)

    def stop(self) -> list[int]:
        """Stop everything; return the PIDs that were still alive afterwards (should be none)."""
        for proc in reversed(self.procs):
            self.stop_proc(proc)
        for svc in reversed(self.services):
            svc.stop()
        pids = [p.popen.pid for p in self.procs] + [s.pid for s in self.services if s.pid]
        return [pid for pid in pids if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- configs


def load_projects(plan: TimePlan) -> list[dict]:
    """The example projects, monitoring the demo window, with the simulated plants' parameters."""
    from plantmrv.simulators import plants
    from plantmrv.simulators.truth import truth

    if not PROJECTS_EXAMPLE.exists():
        raise DemoError(f"{PROJECTS_EXAMPLE} not found: run the demo from a plantmrv source checkout (`make demo`)")
    projects = yaml.safe_load(PROJECTS_EXAMPLE.read_text())["analytics"]["projects"]
    for p in projects:
        p["monitoring_period"] = {"start": iso(plan.window_start_ns), "end": iso(plan.window_end_ns)}
        # what a real project fixes from its documents (test certificate, pre-retrofit measurement)
        if p["plant_type"] == "pump":
            p["parameters"]["eta_project"]["value"] = float(plants.make_params("pump").eta_project)
        if p["plant_type"] == "vsd":
            t = truth("vsd", plan.window_start_ns, plan.window_end_ns, rng=SEEDS["vsd"], site=p["site"], asset=p["assets"][0]["asset"])
            p["parameters"]["baseline_power_kw"]["value"] = round(t.inputs["baseline_power_kw"], 3)
    return projects


def sim_config(projects: list[dict], types: tuple[str, ...]) -> dict:
    return {
        "plants": [
            {"type": p["plant_type"], "site": p["site"], "asset": p["assets"][0]["asset"], "seed": SEEDS[p["plant_type"]]}
            for p in projects
            if p["plant_type"] in types
        ]
    }


def gateway_config(project: dict, source: dict, mqtt_url: str, state_dir: Path, metrics_port: int) -> dict:
    """One gateway per plant: ``source`` -> durable buffer -> the demo's broker."""
    site = project["site"]
    return {
        "site": {"id": site},
        "mqtt": {"url": mqtt_url, "client_id": f"gw-{site}"},
        "gateway": {
            "id": f"gw-{site}",
            "sources": [source],
            "sink": {"type": "mqtt"},
            "buffer": {"path": str(state_dir / f"gw-{site}.db"), "max_mb": 256, "batch_max_age_s": 0.5},
            "health": {"metrics_port": metrics_port, "sample_interval_s": 5},
        },
    }


def opcua_source(project: dict, endpoint: str) -> dict:
    """Subscribe to every tag of the plant's asset on the simulator (NodeIds ``ns=2;s=site/asset/field``)."""
    from plantmrv.simulators.plants import plant_type

    pt = plant_type(project["plant_type"])
    site, asset = project["site"], project["assets"][0]["asset"]
    group = {
        "name": asset,
        "mode": "subscription",
        "measurement": pt.measurement,
        "asset": asset,
        "publishing_interval_ms": 200,
        "sampling_interval_ms": 100,
        "queue_size": 100,
        "nodes": [{"field": f, "node_id": f"ns=2;s={site}/{asset}/{f}"} for f in pt.fields],
    }
    return {"type": "opcua", "name": "sim", "url": endpoint, "security": {"mode": "None"}, "groups": [group]}


def mqtt_device_source(project: dict, broker_url: str) -> dict:
    """Map the simulator's device JSON (``devices/<site>/<asset>``, ``ts`` in ms) field by field."""
    from plantmrv.simulators.plants import plant_type

    pt = plant_type(project["plant_type"])
    site, asset = project["site"], project["assets"][0]["asset"]
    mapping = {  # plantmrv.devicejson shape; the gateway adds site = site.id
        "topic": f"devices/{site}/{asset}",
        "measurement": pt.measurement,
        "tags": {"asset": "{topic[2]}"},
        "fields": {f: f for f in pt.fields},
        "timestamp": {"path": "ts", "unit": "ms"},
    }
    return {"type": "mqtt", "name": "devices", "broker": {"url": broker_url}, "qos": 1, "mappings": [mapping]}


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# --------------------------------------------------------------------------- observing


def prometheus_value(url: str, metric: str) -> float | None:
    import httpx

    try:
        text = httpx.get(url, timeout=1).text
    except httpx.HTTPError:
        return None
    total = None
    for line in text.splitlines():
        if line.startswith(metric) and not line.startswith("#"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def gateways_online(mqtt_host: str, mqtt_port: int, prefix: str = "plantmrv/v1", wait_s: float = 1.0) -> dict[str, str]:
    """Read the retained gateway state topics (``online`` / ``offline``)."""
    import paho.mqtt.client as mqtt

    states: dict[str, str] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-observer-{os.getpid()}-{time.monotonic_ns()}")

    def on_message(_c, _u, msg):
        states[msg.topic.split("/")[-2]] = msg.payload.decode(errors="replace")

    client.on_message = on_message
    try:
        client.connect(mqtt_host, mqtt_port, 10)
    except OSError:
        return states
    client.subscribe(f"{prefix}/+/+/state", qos=1)
    client.loop_start()
    time.sleep(wait_s)
    client.loop_stop()
    client.disconnect()
    return states


def mrv_totals(client, window_start_ns: int, until_ns: int, final_only: bool = False) -> dict[str, dict[str, float]]:
    """Sum the engine's hourly results per project over ``[window_start, until)`` (``final_only``:
    leave out hours computed provisionally, before their plant had reported past them)."""
    from plantmrv.influx import InfluxError

    final = " AND provisional = 0" if final_only else ""
    q = (
        "SELECT sum(energy_saved_kwh) AS e, sum(reduction_t_co2) AS r, mean(completeness) AS c, count(reduction_t_co2) AS n FROM mrv "
        f"WHERE \"interval\" = '1h' AND time >= {window_start_ns} AND time < {until_ns}{final} GROUP BY project"
    )
    try:
        results = client.query(q)
    except InfluxError:
        return {}
    return {
        r.tags["project"]: {"energy_saved_kwh": float(r.columns["e"][0]), "reduction_t_co2": float(r.columns["r"][0]),
                            "completeness": float(r.columns["c"][0]), "hours": int(r.columns["n"][0])}
        for r in results
    }


def hourly_results(client, start_ns: int, end_ns: int) -> dict[tuple[str, int], tuple[float, float, float]]:
    """``{(project, hour start): (reduction_t_co2, completeness, gap_filled_s)}`` of the final (not provisional) hours."""
    from plantmrv.influx import InfluxError

    try:
        res = client.query(f"SELECT reduction_t_co2, completeness, gap_filled_s, provisional FROM mrv WHERE \"interval\" = '1h' "
                           f"AND time >= {start_ns} AND time < {end_ns} GROUP BY project")
    except InfluxError:
        return {}
    out = {}
    for r in res:
        n = len(r.columns["time"])

        def col(name: str) -> np.ndarray:
            values = r.columns.get(name)
            return np.full(n, np.nan) if values is None else np.asarray([np.nan if v is None else float(v) for v in values])

        prov = np.nan_to_num(col("provisional"))
        for t, v, c, g, pv in zip(r.columns["time"], r.columns["reduction_t_co2"], col("completeness"), col("gap_filled_s"), prov):
            if not pv:
                out[(r.tags["project"], int(t))] = (float(v), float(c), float(g))
    return out


def truth_totals(projects_cfg, start_ns: int, end_ns: int) -> dict[str, dict[str, float]]:
    from plantmrv.analytics.methodologies import resolve_grid_ef
    from plantmrv.simulators.truth import truth
    from plantmrv.app.demo.truthcheck import expected_from_truth

    out = {}
    for p in projects_cfg:
        asset = p.assets[0].asset
        t = truth(p.plant_type, start_ns, end_ns, rng=SEEDS[p.plant_type], site=p.site, asset=asset)
        out[p.id] = expected_from_truth(p, t.inputs, resolve_grid_ef(p).value_t_co2_per_mwh, start_ns, end_ns)
    return out


# --------------------------------------------------------------------------- the run


@app.command("run")
def run(
    duration: float = typer.Option(150.0, "--duration", "-d", min=20, help="Wall-clock seconds of streaming after warm-up (Ctrl-C ends earlier)."),
    speed: float = typer.Option(120.0, "--speed", min=1, help="Plant seconds per wall second (120: two plant minutes per second)."),
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for data, logs, configs and the report (a fresh subfolder per run)."),
    warmup: float = typer.Option(20.0, "--warmup", min=5, help="Wall seconds for every process to come up before the compared window starts."),
    tolerance_pct: float = typer.Option(1.0, "--tolerance", help="Largest acceptable gap to ground truth per project [%] (exit code 1 beyond)."),
    start: str | None = typer.Option(None, "--start", help="Plant time of the compared window's start, a whole hour (ISO-8601, e.g. 2026-12-04T02:00:00Z); default: 02:00 UTC of a recent day."),
) -> None:
    """Start influxd, mosquitto, simulators, gateways, ingest, analytics and the API; stream; report; stop all.

    Prints progress while it runs (plant time, gateways online, points/s ingested, each
    project's tCO2 so far), then each project's energy saved and tCO2 beside the simulator's
    ground truth, and where the data and the report are. Exit code 1 when a project is further
    from ground truth than --tolerance or the API did not answer. The compared window needs
    speed x duration >= 3600 (one whole plant hour).
    """
    run_dir = out.resolve() / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(run_dir)
    interrupted = False
    summary = None
    try:
        start_ns = None
        if start is not None:
            from plantmrv.simulators.meters import parse_time_ns

            try:
                start_ns = parse_time_ns(start)
            except ValueError as exc:
                raise typer.BadParameter(f"{start!r} is not an ISO-8601 time ({exc})", param_hint="--start") from None
        summary = _run(stack, run_dir, duration, speed, warmup, start_ns)
    except KeyboardInterrupt:
        interrupted = True
        typer.echo("\ninterrupted: stopping everything the demo started ...")
    except (DemoError, ServiceError) as exc:
        typer.echo(f"demo failed: {exc}", err=True)
    finally:
        left = stack.stop()
        if left:
            typer.echo(f"WARNING: processes still alive after stop: {left}", err=True)
        else:
            typer.echo(f"stopped {len(stack.procs) + len(stack.services)} processes; nothing left running")
    typer.echo(f"data, logs and configs: {run_dir}")
    if summary is None:
        raise typer.Exit(130 if interrupted else 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    typer.echo(f"report: {summary['report']}")
    worst = max((abs(p["error_pct"]) for p in summary["projects"]), default=0.0)
    if not summary["api_ok"] or worst > tolerance_pct:
        typer.echo(f"demo check failed: api_ok={summary['api_ok']} worst error {worst:.2f}% > {tolerance_pct}%", err=True)
        raise typer.Exit(1)


def _run(stack: Stack, run_dir: Path, duration: float, speed: float, warmup: float, start_ns: int | None = None) -> dict:
    from plantmrv.analytics.config import AnalyticsConfig
    from plantmrv.app.demo.report import ProjectOutcome, write_report

    if speed * duration < 3600:
        raise DemoError(f"--speed {speed:g} x --duration {duration:g} covers less than one plant hour; raise either")
    plan = plan_times(time.time_ns(), speed, duration, warmup, start_ns)
    echo = typer.echo
    echo(f"plantmrv demo: plant time {iso(plan.sim_start_ns)} .. {iso(plan.window_end_ns)} at {speed:g}x; compared window {plan.window_hours} h from {iso(plan.window_start_ns)}")
    state = run_dir / "state"
    state.mkdir(mode=0o700, exist_ok=True)  # the token store there is refused when others may write it
    cfg_dir = run_dir / "config"
    cfg_dir.mkdir(exist_ok=True)

    echo("starting influxd and mosquitto ...")
    influx = influxd_service(run_dir / "influxd")
    mosq = mosquitto_service(run_dir / "mosquitto")
    stack.services += [influx, mosq]
    influx.start()
    mosq.start()
    client = influx.client(database="plantmrv")
    client.create_database()

    projects = load_projects(plan)
    projects_cfg = AnalyticsConfig.model_validate({"projects": projects}).projects
    api_port = free_port()
    ingest_metrics = free_port()
    core = {"influxdb": {"url": influx.url, "database": "plantmrv"}}
    write_yaml(
        cfg_dir / "ingest.yaml",
        {
            **core,
            "mqtt": {"url": mosq.url, "client_id": "demo-ingest"},
            "ingest": {"dead_letters": {"path": str(state / "dead-letters.db")}, "metrics": {"port": ingest_metrics}},
        },
    )
    services_cfg = write_yaml(
        cfg_dir / "plantmrv.yaml",
        {
            **core,
            "analytics": {"projects": projects, "max_gap_s": max(10.0, 4 * speed), "poll_s": 2, "settle_s": 2, "late_data_lookback": "7d",
                          "metrics": {"port": 0}},
            "api": {"port": api_port, "token_store": str(state / "api-tokens.db"), "metrics": {"port": 0}},
        },
    )

    echo("starting ingest, analytics and the verifier API ...")
    stack.spawn("ingest", ["ingest", "run", "-c", str(cfg_dir / "ingest.yaml")])
    stack.spawn("analytics", ["analytics", "run", "-c", str(services_cfg)])
    stack.spawn("api", ["api", "-c", str(services_cfg)], ready="Uvicorn running", timeout_s=60)

    echo("starting the simulators (OPC UA: pump, vsd, ubcf, wte; MQTT device JSON: pv) ...")
    sim_port = free_port()
    common = ["--speed", f"{speed:g}", "--start", iso(plan.sim_start_ns), "--rate", "5"]
    opc_cfg = write_yaml(cfg_dir / "simulate-opcua.yaml", sim_config(projects, OPCUA_PLANTS))
    mqtt_cfg = write_yaml(cfg_dir / "simulate-mqtt.yaml", sim_config(projects, MQTT_PLANTS))
    sim = stack.spawn(
        "simulate-opcua",
        ["simulate", "-c", str(opc_cfg), "--port", str(sim_port), "--fault-log", str(run_dir / "faults.jsonl"), *common],
        ready="plantmrv-sim ready",
    )
    endpoint = re.search(r"endpoint=(\S+)", sim.log.read_text()).group(1)
    stack.spawn("simulate-mqtt", ["simulate", "-c", str(mqtt_cfg), "--no-opcua", "--mqtt", mosq.url, "--mqtt-qos", "1", *common], ready="plantmrv-sim ready")
    wall_t0 = time.monotonic()

    echo("starting one gateway per plant ...")
    for p in projects:
        source = opcua_source(p, endpoint) if p["plant_type"] in OPCUA_PLANTS else mqtt_device_source(p, mosq.url)
        path = write_yaml(cfg_dir / f"gateway-{p['site']}.yaml", gateway_config(p, source, mosq.url, state, free_port()))
        stack.spawn(f"gateway-{p['site']}", ["gateway", "run", "-c", str(path)])

    n_gw = len(projects)
    while True:
        stack.check_alive()
        online = [g for g, s in gateways_online(mosq.host, mosq.port, wait_s=0.5).items() if s == "online"]
        elapsed = time.monotonic() - wall_t0
        if len(online) == n_gw:
            break
        if elapsed > warmup * 0.95:
            raise DemoError(f"only {len(online)} of {n_gw} gateways online after {elapsed:.0f}s: {sorted(online)}; see {run_dir / 'logs'}")
        time.sleep(0.5)
    echo(f"all {n_gw} gateways online after {time.monotonic() - wall_t0:.1f}s")

    token = _create_token(cfg_dir / "plantmrv.yaml", [p["id"] for p in projects])
    echo(f"verifier API: http://127.0.0.1:{api_port}/docs   demo verifier token: {token}")

    end_wall = wall_t0 + warmup + duration
    last_points, last_t = prometheus_value(f"http://127.0.0.1:{ingest_metrics}/metrics", "plantmrv_ingest_points_written_total") or 0.0, time.monotonic()
    printed: set[tuple[str, int]] = set()
    live_checks: list[dict] = []
    try:
        while time.monotonic() < end_wall:
            time.sleep(min(5.0, max(0.1, end_wall - time.monotonic())))
            stack.check_alive()
            now = time.monotonic()
            points = prometheus_value(f"http://127.0.0.1:{ingest_metrics}/metrics", "plantmrv_ingest_points_written_total") or 0.0
            rate = (points - last_points) / max(now - last_t, 1e-3)
            last_points, last_t = points, now
            plant_now = plan.plant_time_ns(now - wall_t0)
            online = sum(s == "online" for s in gateways_online(mosq.host, mosq.port, wait_s=0.3).values())
            # only hours the engine closed on event time (final): a running total never counts a
            # provisional hour computed before its plant reported past it
            got = mrv_totals(client, plan.window_start_ns, plan.window_end_ns, final_only=True)
            echo(
                f"[{now - wall_t0:5.0f}s] plant time {iso(plant_now)}  gateways online {online}/{n_gw}  "
                f"ingest {rate:8,.0f} points/s  "
                + "  ".join(f"{pid}: {v['reduction_t_co2']:.3f} t ({v['hours']} h)" for pid, v in sorted(got.items()))
            )
            for (pid, hour), (value, completeness, gap_s) in sorted(hourly_results(client, plan.window_start_ns, plan.window_end_ns).items()):
                if (pid, hour) in printed:
                    continue
                printed.add((pid, hour))
                want = truth_totals([p for p in projects_cfg if p.id == pid], hour, hour + HOUR_NS)[pid]["reduction_t_co2"]
                err = 100.0 * (value - want) / abs(want) if want else 0.0
                live_checks.append({"project": pid, "hour": iso(hour), "reduction_t_co2": value, "truth_t_co2": want, "error_pct": err,
                                    "completeness": completeness, "gap_filled_s": gap_s})
                echo(f"    hour {iso(hour)} closed  {pid:<16} {value:10.4f} t  truth {want:10.4f} t  {err:+7.3f}%")
    except KeyboardInterrupt:
        echo("Ctrl-C: finishing with the data so far ...")

    elapsed = time.monotonic() - wall_t0
    plant_end = min(plan.window_end_ns, plan.plant_time_ns(elapsed) // HOUR_NS * HOUR_NS)
    if plant_end <= plan.window_start_ns:
        raise DemoError("stopped before the first compared hour closed: nothing to compare")
    echo(f"stopping sources; letting the pipeline drain, then a final backfill of {iso(plan.window_start_ns)} .. {iso(plant_end)} ...")
    for proc in [p for p in stack.procs if p.name.startswith(("simulate", "gateway"))]:
        if proc.name.startswith("simulate"):
            stack.stop_proc(proc)
    time.sleep(3)
    for proc in [p for p in stack.procs if p.name.startswith("gateway")]:
        stack.stop_proc(proc)
    _wait_drained(ingest_metrics)
    backfill = subprocess.run(
        [sys.executable, "-m", "plantmrv", "analytics", "backfill", "-c", str(services_cfg), "--from", iso(plan.window_start_ns), "--to", iso(plant_end)],
        capture_output=True,
        text=True,
        cwd=run_dir,
        timeout=600,
    )
    (run_dir / "logs" / "backfill.log").write_text(backfill.stdout + backfill.stderr)
    if backfill.returncode != 0:
        raise DemoError(f"analytics backfill failed:\n{backfill.stderr[-2000:]}")

    got = mrv_totals(client, plan.window_start_ns, plant_end)
    want = truth_totals(projects_cfg, plan.window_start_ns, plant_end)
    api_ok, api_detail = _ask_api(api_port, token, projects_cfg[0].id, plan.window_start_ns, plant_end, got.get(projects_cfg[0].id))
    outcomes = []
    for p in projects_cfg:
        g = got.get(p.id, {"energy_saved_kwh": 0.0, "reduction_t_co2": 0.0, "completeness": 0.0})
        w = want[p.id]
        ts, cum = _cumulative(client, p.id, plan.window_start_ns, plant_end)
        outcomes.append(
            ProjectOutcome(p.id, p.plant_type, p.site, p.methodology.id, g["energy_saved_kwh"], g["reduction_t_co2"], w["energy_saved_kwh"], w["reduction_t_co2"], g["completeness"], ts, cum)
        )
    hours = (plant_end - plan.window_start_ns) // HOUR_NS
    report = write_report(
        outcomes,
        run_dir,
        {
            "plant time compared": f"{iso(plan.window_start_ns)} .. {iso(plant_end)} ({hours} h at {speed:g}x)",
            "verifier API": f"http://127.0.0.1:{api_port}/docs (stopped with the demo); {api_detail}",
            "dashboards": "dashboards/generated/*.json: import into Grafana (Dashboards > New > Import) with an InfluxQL datasource on the demo's InfluxDB, or `plantmrv dashboards push`",
            "data": str(run_dir),
        },
    )
    echo("")
    echo(f"{'project':<18} {'energy saved kWh':>17} {'tCO2':>10} {'truth tCO2':>11} {'error':>8}")
    for o in outcomes:
        echo(f"{o.project:<18} {o.energy_saved_kwh:>17,.1f} {o.reduction_t_co2:>10.4f} {o.truth_reduction_t_co2:>11.4f} {o.error_pct:>+7.2f}%")
    return {
        "report": str(report),
        "api_ok": api_ok,
        "window": [iso(plan.window_start_ns), iso(plant_end)],
        "projects": [
            {"id": o.project, "reduction_t_co2": o.reduction_t_co2, "truth_t_co2": o.truth_reduction_t_co2, "error_pct": o.error_pct, "completeness": o.completeness}
            for o in outcomes
        ],
        "pids": [p.popen.pid for p in stack.procs] + [s.pid for s in stack.services],
        "live_hours": live_checks,
    }


def _create_token(config: Path, project_ids: list[str]) -> str:
    args = ["api", "token", "create", "--role", "verifier", "--name", "demo-verifier", "-c", str(config)]
    for pid in project_ids:
        args += ["--project", pid]
    proc = subprocess.run([sys.executable, "-m", "plantmrv", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise DemoError(f"could not create the demo verifier token: {proc.stderr.strip()}")
    tokens = re.findall(r"\b[A-Za-z0-9_\-]{24,}\b", proc.stdout)
    if not tokens:
        raise DemoError(f"no token in the output of `plantmrv api token create`: {proc.stdout!r}")
    return tokens[0]


def _ask_api(port: int, token: str, project_id: str, start_ns: int, end_ns: int, expected: dict | None) -> tuple[bool, str]:
    import httpx

    base = f"http://127.0.0.1:{port}"
    try:
        health = httpx.get(f"{base}/health", timeout=10)
        resp = httpx.get(
            f"{base}/projects/{project_id}/reductions",
            params={"from": iso(start_ns), "to": iso(end_ns), "interval": "period"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        return False, f"API unreachable: {exc}"
    if health.status_code != 200 or resp.status_code != 200:
        return False, f"API answered health={health.status_code} reductions={resp.status_code}: {resp.text[:300]}"
    body = resp.json()
    total = _find_number(body, "reduction_t_co2")
    if expected is not None and total is not None and not math.isclose(total, expected["reduction_t_co2"], rel_tol=1e-6, abs_tol=1e-9):
        return False, f"API total {total} differs from InfluxDB {expected['reduction_t_co2']}"
    return True, f"GET /projects/{project_id}/reductions answered {total} tCO2"


def _find_number(doc, key: str):
    if isinstance(doc, dict):
        if key in doc and isinstance(doc[key], (int, float)):
            return float(doc[key])
        for v in doc.values():
            found = _find_number(v, key)
            if found is not None:
                return found
    if isinstance(doc, list):
        for v in doc:
            found = _find_number(v, key)
            if found is not None:
                return found
    return None


def _wait_drained(metrics_port: int, quiet_s: float = 3.0, timeout_s: float = 60.0) -> None:
    """Wait until ingest has written everything (its points counter stops moving)."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = prometheus_value(url, "plantmrv_ingest_points_written_total")
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)


def _cumulative(client, project_id: str, start_ns: int, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
    from plantmrv.influx import quote_literal

    res = client.query(
        f"SELECT reduction_t_co2 FROM mrv WHERE project = {quote_literal(project_id)} AND \"interval\" = '1h' "
        f"AND time >= {start_ns} AND time < {end_ns}"
    )
    if not res:
        return np.empty(0, np.int64), np.empty(0)
    cols = res[0].columns
    return cols["time"], np.cumsum(np.nan_to_num(cols["reduction_t_co2"]))
