"""``plantmrv dashboards``: build the Grafana dashboards from code and push them to Grafana."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})

DEFAULT_OUT = Path("dashboards/generated")
DEFAULT_ALERTING = Path("dashboards/provisioning/alerting")


def load_settings(config: Optional[Path]):
    """Build settings from a config file (sections `dashboards` and `analytics`), or the defaults."""
    from plantmrv.config import ConfigError

    from .settings import BuildSettings

    if config is None:
        return BuildSettings.default()
    try:
        return BuildSettings.load(config)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1)


def check_lang(lang: str) -> str:
    from plantmrv.i18n import UnknownLanguage, check_language

    try:
        return check_language(lang)
    except UnknownLanguage as exc:
        raise typer.BadParameter(str(exc), param_hint="--lang")


@app.command("build")
def build_cmd(
    out: Path = typer.Option(DEFAULT_OUT, "--out", "-o", help="Directory for the generated <uid>.json files and PANELS.md (created if missing)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="plantmrv YAML with the `dashboards` and `analytics` sections (time zones, targets, thresholds, projects); default: built-in defaults, no projects."),
    lang: str = typer.Option("en", "--lang", help="Language of titles, descriptions, labels and alert texts (en, ja, or any catalogue in plantmrv/i18n/catalogues)."),
    alerting: Optional[Path] = typer.Option(DEFAULT_ALERTING, "--alerting-dir", help="Directory for plantmrv-alerting.yaml (Grafana alerting provisioning: rules, contact points, policy)."),
) -> None:
    """Generate one dashboard per plant type (ubcf, pump, vsd, wte, pv), the portfolio dashboard and the alert rules.

    Writes `<out>/<uid>.json` (stable: sorted keys, same input gives the same bytes), `<out>/PANELS.md` (every panel with unit, thresholds and query) and `<alerting-dir>/plantmrv-alerting.yaml`, removes stale `plantmrv-*.json` files, and prints created/updated/unchanged/removed per file. The committed files are built with `-c examples/analytics.yaml`.
    """
    from .write import write_all

    lang = check_lang(lang)
    results = write_all(out, load_settings(config), lang, alerting)
    for path, action in results:
        typer.echo(f"{path}: {action}")
    changed = sum(1 for _, a in results if a != "unchanged")
    typer.echo(f"{len(results)} file(s), {changed} changed")


@app.command("plan")
def plan_cmd(
    config: Path = typer.Option(..., "--config", "-c", help="plantmrv YAML with `influxdb`, `analytics` (projects, ex-ante) and `dashboards` (targets)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the line protocol instead of writing it."),
) -> None:
    """Write the ex-ante estimates (`mrv_plan`, per project and local day) and the targets (`mrv_target`) the portfolio compares with the monitored reductions.

    Idempotent: the same config writes the same points. Run it again after changing a project's ex-ante estimate or a target.
    """
    from plantmrv.clitools import load_or_exit

    from .plan import plan_lines
    from .settings import BuildSettings

    cfg = load_or_exit(config)
    try:
        settings = BuildSettings.from_config(cfg, str(config))
    except Exception as exc:  # ConfigError: located issues
        for issue in getattr(exc, "issues", [exc]):
            typer.echo(str(issue), err=True)
        raise typer.Exit(1)
    lines = plan_lines(settings)
    if dry_run:
        typer.echo("\n".join(lines))
        return
    client = cfg.influxdb.client()
    try:
        if cfg.influxdb.create_database:
            client.create_database()
        for i in range(0, len(lines), 5000):
            client.write_body(("\n".join(lines[i : i + 5000]) + "\n").encode())
    except Exception as exc:
        typer.echo(f"influxdb.url: {cfg.influxdb.url}: {exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"wrote {len(lines)} plan and target point(s) to {cfg.influxdb.url} database {cfg.influxdb.database}")


@app.command("push")
def push_cmd(
    url: str = typer.Option(..., "--url", help="Grafana base URL, e.g. http://localhost:3000"),
    token: str = typer.Option(
        ..., "--token", envvar="GRAFANA_TOKEN", help="Grafana service-account token (or env GRAFANA_TOKEN); never printed."
    ),
    folder: str = typer.Option("plantmrv", "--folder", help="Grafana folder to put the dashboards in (created if missing)."),
    directory: Path = typer.Option(
        None, "--dir", help="Directory of generated dashboard JSON (default: the files shipped with plantmrv)."
    ),
    influx_url: str = typer.Option(
        "http://influxdb:8086", "--influx-url", help="InfluxDB URL for the datasource, as Grafana reaches it (created only if missing)."
    ),
    database: str = typer.Option("plantmrv", "--database", help="InfluxDB database (v1 API / DBRP name) for the datasource."),
    influx_token: Optional[str] = typer.Option(
        None, "--influx-token", envvar="INFLUX_TOKEN", help="InfluxDB token for the datasource (or env INFLUX_TOKEN); never printed."
    ),
    alerting_file: Optional[Path] = typer.Option(
        None, "--alerting", help="Alerting provisioning file whose rules to upload (default: the one shipped with plantmrv)."
    ),
    no_alerts: bool = typer.Option(False, "--no-alerts", help="Upload no alert rules."),
) -> None:
    """Create the folder and the InfluxDB (InfluxQL) datasource if missing, upload changed dashboards and alert rules.

    Dashboards are uploaded with overwrite into the folder; unchanged ones are not re-uploaded.

    Prints one line per folder, datasource and dashboard: created, updated or unchanged. Exits 1, naming the API path at fault, when Grafana refuses a request or cannot be reached.
    """
    from .push import ALERTING_FILE, GENERATED_DIR, PushError, push

    try:
        changes = push(
            url, token, folder=folder, directory=directory or GENERATED_DIR, influx_url=influx_url, database=database, influx_token=influx_token,
            alerting_file=None if no_alerts else (alerting_file or ALERTING_FILE),
        )
    except PushError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    for c in changes:
        typer.echo(str(c))
    n = sum(1 for c in changes if c.action != "unchanged")
    typer.echo(f"{n} change(s) pushed to {url}")


@app.command("check")
def check_cmd(
    influx_url: str = typer.Option("http://127.0.0.1:8086", "--influx-url", help="InfluxDB URL (v1-compatible API)."),
    database: str = typer.Option("plantmrv", "--database", help="InfluxDB database (v1 API / DBRP name)."),
    influx_token: Optional[str] = typer.Option(
        None, "--influx-token", envvar="INFLUX_TOKEN", help="InfluxDB token (or env INFLUX_TOKEN); never printed."
    ),
    directory: Path = typer.Option(
        None, "--dir", help="Directory of generated dashboard JSON (default: the files shipped with plantmrv)."
    ),
    now: Optional[str] = typer.Option(
        None, "--now", help="Evaluate the dashboards as of this UTC time (ISO 8601, e.g. 2026-11-20T12:30:00Z) instead of now."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print the panels that are ok, with rows and query time."),
    alerts: bool = typer.Option(False, "--alerts", help="Also run every alert rule of the shipped alerting file and print the instances that would fire (informational)."),
    annotations: bool = typer.Option(False, "--annotations", help="Also run every annotation query and print how many events each finds (informational)."),
) -> None:
    """Run every panel query as Grafana would (time range, interval, All selections) and report panels that would be empty or fail.

    Exit 0 when every query returns its fields, 1 otherwise (each problem is printed with the query as sent).
    """
    import json

    from plantmrv.influx import InfluxClient

    from .check import check_dashboards
    from .push import GENERATED_DIR

    files = sorted(Path(directory or GENERATED_DIR).glob("*.json"))
    if not files:
        typer.echo(f"error: no dashboard JSON in {directory or GENERATED_DIR}", err=True)
        raise typer.Exit(1)
    dashboards = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    now_ns = None
    if now:
        from datetime import datetime, timezone

        try:
            dt = datetime.fromisoformat(now.replace("Z", "+00:00"))
        except ValueError:
            typer.echo(f"error: --now {now!r} is not an ISO 8601 time", err=True)
            raise typer.Exit(2)
        now_ns = int((dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()) * 10**9
    with InfluxClient(influx_url, database=database, token=influx_token, max_retries=1) as client:
        results = check_dashboards(client, dashboards, now_ns)
        extra = []
        if annotations:
            from .check import check_annotations

            extra += check_annotations(client, dashboards, now_ns)
        if alerts:
            import yaml

            from .check import check_alerts
            from .push import ALERTING_FILE

            extra += check_alerts(client, yaml.safe_load(ALERTING_FILE.read_text(encoding="utf-8")), now_ns)
    for r in extra:
        typer.echo(str(r))
    counts = {"ok": 0, "empty": 0, "error": 0}
    for r in results:
        counts[r.status] += 1
        if r.status != "ok" or verbose:
            typer.echo(str(r))
    typer.echo(f"{len(results)} queries: {counts['ok']} ok, {counts['empty']} empty, {counts['error']} error")
    if counts["ok"] != len(results):
        raise typer.Exit(1)
