"""``plantmrv ingest``: run the service; list, show and replay dead letters."""

from __future__ import annotations

import datetime as dt
import logging
import signal
from pathlib import Path
from typing import List, Optional

import typer

from plantmrv import exitcodes
from plantmrv.logs import LOG_FORMAT_OPTION, LOG_LEVEL_OPTION, LogFormat, LogLevel

app = typer.Typer(no_args_is_help=True, help="Broker-to-InfluxDB ingest service with validation and dead letters.")
dl_app = typer.Typer(no_args_is_help=True, help="Messages ingest refused: list, show, replay after fixing the config.")
app.add_typer(dl_app, name="dead-letters")

CONFIG_OPT = typer.Option(..., "--config", "-c", help="YAML config with sections `ingest`, `influxdb` and `mqtt`.")


def _load(file: Path):
    from plantmrv.clitools import load_or_exit
    from plantmrv.config import ConfigError, require_section

    cfg = load_or_exit(file)
    try:
        require_section(cfg, "ingest", file)
    except ConfigError as exc:
        exitcodes.config_error(exc.issues)
    return cfg


def tune_malloc() -> dict[str, int]:
    """Keep the batcher's memory between batches; return what was set (a no-op outside glibc).

    Each batch allocates tens of MB of numpy arrays and frees them. With glibc's defaults the
    freed memory goes back to the kernel and the next batch faults it in again, page by page, at
    a cost in CPU per point (``bench/ingest.py --rate 200000``; figures in bench/README.md,
    ingest). A 32 MiB ``M_MMAP_THRESHOLD`` (glibc's largest) keeps such arrays in the heap, a
    512 MiB ``M_TRIM_THRESHOLD`` keeps the heap; the price is that ingest holds its peak.
    Parameters the environment sets are left alone.
    """
    from plantmrv.malloc import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, set_unless_configured

    return set_unless_configured({M_MMAP_THRESHOLD: 32 * 1024 * 1024, M_TRIM_THRESHOLD: 512 * 1024 * 1024})


@app.command("run")
def run(
    config: Path = CONFIG_OPT,
    client_id: Optional[str] = typer.Option(
        None, "--client-id", help="MQTT client id, overriding mqtt.client_id (each process of a group needs its own, stable)."
    ),
    log_level: LogLevel = LOG_LEVEL_OPTION,
    log_format: LogFormat = LOG_FORMAT_OPTION,
) -> None:
    """Subscribe (QoS 1, persistent session, shared subscription), validate, write to InfluxDB, ack after write.

    Runs until SIGTERM or SIGINT, then writes what it holds and disconnects; anything not yet
    written stays at the broker for the next start.
    """
    from plantmrv import logs
    from plantmrv.ingest.service import IngestService

    malloc = tune_malloc()
    cfg = _load(config)
    logs.setup(log_level, log_format)
    if malloc:
        logging.getLogger("plantmrv.ingest").info("event=malloc_tuned settings=%s", ",".join(f"{k}={v}" for k, v in malloc.items()))
    svc = IngestService(cfg, client_id=client_id)

    def _term(signum, frame):
        svc.request_stop()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    logging.getLogger("plantmrv.ingest").info(
        "event=starting client_id=%s topics=%s influx=%s database=%s dead_letters=%s",
        svc.client_id, ",".join(svc.topics()), cfg.influxdb.url, cfg.influxdb.database, cfg.ingest.dead_letters.path,
    )
    try:
        svc.run_forever()
    except Exception as exc:
        logging.getLogger("plantmrv.ingest").error("event=stopped_on_error error=%s", f"{type(exc).__name__}: {exc}")
        raise typer.Exit(exitcodes.RUNTIME)


def _store(cfg):
    from plantmrv.ingest.deadletter import DeadLetterStore

    path = cfg.ingest.dead_letters.path
    if not Path(path).exists():
        typer.echo(f"{path}: no dead-letter store yet (ingest.dead_letters.path)", err=True)
        raise typer.Exit(1)
    return DeadLetterStore(path)


def _when(ns: int | None) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dl_app.command("list")
def dl_list(
    config: Path = CONFIG_OPT,
    reason: Optional[str] = typer.Option(None, "--reason", help="Only this reason code (e.g. unknown_field, decode)."),
    all_: bool = typer.Option(False, "--all", help="Include rows already replayed."),
    limit: int = typer.Option(100, "--limit", help="Show at most this many rows (0: all)."),
) -> None:
    """One line per dead letter: id, time, topic, samples, size, reason; then one per gap in a gateway's message sequence."""
    store = _store(_load(config))
    rows = store.list(code=reason, include_replayed=all_, limit=limit or None)
    typer.echo(f"{'id':>6}  {'dead-lettered':20}  {'kind':5}  {'samples':>7}  {'bytes':>8}  topic  reason")
    for d in rows:
        flag = " (replayed)" if d.replayed_ns else ""
        typer.echo(f"{d.id:>6}  {_when(d.created_ns):20}  {d.kind:5}  {d.samples:>7}  {len(d.payload):>8}  {d.topic}  {d.reason[:160]}{flag}")
    typer.echo(f"{len(rows)} shown, {store.count()} not replayed in {store.path}")
    gaps = store.gaps()
    for g in gaps[-(limit or len(gaps)):]:
        typer.echo(f"{'gap':>6}  {_when(g.detected_ns):20}  {g.site}/{g.gateway}  messages {g.first}..{g.last} of epoch {g.epoch} "
                   f"never arrived ({g.last - g.first + 1} messages)")
    if gaps:
        typer.echo(f"{len(gaps)} sequence gaps ({sum(g.last - g.first + 1 for g in gaps)} messages) in {store.path}")


@dl_app.command("show")
def dl_show(
    id_: int = typer.Argument(..., metavar="ID", help="Dead-letter id (from `list`)."),
    config: Path = CONFIG_OPT,
    max_samples: int = typer.Option(20, "--samples", help="Samples of a batch payload to print."),
) -> None:
    """Everything about one dead letter: topic, times, full reason and the payload decoded."""
    store = _store(_load(config))
    d = store.get(id_)
    if d is None:
        typer.echo(f"no dead letter with id {id_} in {store.path}", err=True)
        raise typer.Exit(1)
    typer.echo(f"id: {d.id}\ntopic: {d.topic}\nkind: {d.kind}\nreceived: {_when(d.received_ns)}\n"
               f"dead-lettered: {_when(d.created_ns)}\nreplayed: {_when(d.replayed_ns)}\nsamples: {d.samples}\n"
               f"payload bytes: {len(d.payload)}\nreason: {d.reason}")
    if d.kind == "batch":
        from plantmrv.codec import CodecError, decode_message

        try:
            msg = decode_message(d.payload)
        except CodecError as exc:
            typer.echo(f"payload: not decodable ({exc}); first bytes {d.payload[:64]!r}")
            return
        b = msg.batch
        typer.echo(f"meta: {msg.meta}")
        for i in range(min(len(b), max_samples)):
            typer.echo(f"  {b.table[b.series[i]].key()} ts_ns={int(b.ts_ns[i])} ({_when(int(b.ts_ns[i]))}) value={float(b.value[i])!r} quality={int(b.quality[i])}")
        if len(b) > max_samples:
            typer.echo(f"  ... {len(b) - max_samples} more samples")
    else:
        text = d.payload[:2000].decode("utf-8", "replace")
        typer.echo(f"payload: {text}" + (" ..." if len(d.payload) > 2000 else ""))


@dl_app.command("replay")
def dl_replay(
    config: Path = CONFIG_OPT,
    ids: Optional[List[int]] = typer.Option(None, "--id", help="Dead-letter id to replay (repeatable)."),
    all_: bool = typer.Option(False, "--all", help="Replay every row not yet replayed."),
    reason: Optional[str] = typer.Option(None, "--reason", help="With --all: only rows with this reason code."),
) -> None:
    """Re-validate with the current config and write what now passes; still-refused samples get a new row.

    Replayed rows are marked, not deleted (see `list --all`). Writes are idempotent, so
    replaying twice stores nothing twice. A row that cannot be processed is reported and kept,
    and the rows after it are still replayed. Exit code 3 when anything stays refused or kept.
    """
    from plantmrv.influx import InfluxError
    from plantmrv.ingest.replay import replay_dead_letters

    if not ids and not all_:
        typer.echo("give --id ID (repeatable) or --all", err=True)
        raise typer.Exit(2)
    cfg = _load(config)
    store = _store(cfg)
    targets = list(ids or []) + ([d.id for d in store.list(code=reason)] if all_ else [])
    targets = list(dict.fromkeys(targets))

    def progress(n, total, r):
        if r.error:
            typer.echo(f"[{n}/{total}] id={r.id} skipped (kept, not replayed): cannot process it: {r.error}")
            return
        typer.echo(f"[{n}/{total}] id={r.id} written={r.written} still_refused={r.still_refused}"
                   + (f" new_ids={','.join(map(str, r.new_ids))}" if r.new_ids else ""))

    try:
        results = replay_dead_letters(cfg, store, targets, progress=progress)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(1)
    except InfluxError as exc:
        typer.echo(f"replay stopped: {exc}", err=True)
        raise typer.Exit(1)
    written = sum(r.written for r in results)
    refused = sum(r.still_refused for r in results)
    failed = [r.id for r in results if r.error]
    refused_rows = sum(1 for r in results if r.new_ids)
    typer.echo(f"replayed {len(results) - len(failed)} rows: {written} points written, {refused} samples still refused"
               + (f" ({refused_rows} rows refused again)" if refused_rows else "")
               + (f"; {len(failed)} rows could not be processed and were kept: ids {','.join(map(str, failed))}" if failed else ""))
    if refused or refused_rows or failed:
        raise typer.Exit(3)
