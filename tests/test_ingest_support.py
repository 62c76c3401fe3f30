"""Helpers shared by the ingest tests (no tests here): configs, a paho publisher, batches, the CLI as a process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import yaml

from plantmrv.batch import SampleBatch, Series
from tests.helpers import wait_for
from plantmrv.codec import data_topic, encode_message

REPO = Path(__file__).resolve().parents[1]
PLANTMRV = str(Path(sys.executable).with_name("plantmrv"))
FIELDS = ("flow_m3_per_h", "power_kw", "head_m", "energy_kwh")


def now_base_ns() -> int:
    """A recent whole second, a day ago: inside every time window the validator applies."""
    return (time.time_ns() // 1_000_000_000 - 86400) * 1_000_000_000


def write_config(tmp_path: Path, influx_url: str, database: str, mqtt_url: str, name: str = "ingest.yaml", **ingest) -> Path:
    ingest.setdefault("group", "g" + uuid.uuid4().hex[:8])
    ingest.setdefault("linger_s", 0.2)
    ingest.setdefault("dead_letters", {"path": str(tmp_path / "dead.db")})
    ingest.setdefault("metrics", {"port": None})
    doc = {
        "influxdb": {"url": influx_url, "database": database, "max_retries": 1},
        "mqtt": {"url": mqtt_url, "client_id": "ingest-" + uuid.uuid4().hex[:8], "topic_prefix": ingest.pop("topic_prefix", "plantmrv/v1")},
        "ingest": ingest,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def pump_batch(site: str, assets: int, ts0_ns: int, steps: int, step_s: float = 1.0, seed: int = 0) -> SampleBatch:
    """``assets`` pumps x 4 fields x ``steps`` timestamps; values unique and exactly representable."""
    table = [Series.of("pump", f, site=site, asset=f"P{a}") for a in range(assets) for f in FIELDS]
    n_series = len(table)
    ts = ts0_ns + (np.arange(steps, dtype=np.int64) * int(step_s * 1e9))
    series = np.tile(np.arange(n_series, dtype=np.int32), steps)
    ts_col = np.repeat(ts, n_series)
    rng = np.random.default_rng(seed)
    value = np.round(rng.uniform(0, 1000, len(series)), 3)
    return SampleBatch(table, series, ts_col, value)


class Publisher:
    """A paho QoS 1 publisher that waits until the broker has every message."""

    def __init__(self, host: str, port: int):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub-" + uuid.uuid4().hex[:8], protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port, 30)
        self.client.loop_start()

    def publish_all(self, items, timeout_s: float = 60) -> None:
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in items]
        deadline = time.monotonic() + timeout_s
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "broker did not acknowledge a test message"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def batch_messages(batch: SampleBatch, per_message: int, site: str, gateway: str = "gw1", prefix: str = "plantmrv/v1"):
    topic = data_topic(prefix, site, gateway)
    return [(topic, encode_message(part, site=site, gateway=gateway, seq=i)) for i, part in enumerate(batch.split(per_message))]


wait_until = wait_for


def count_points(client, measurement: str = "pump", where: str = "") -> int:
    """Number of stored (series, time, field) values of ``measurement``."""
    total = 0
    for f in FIELDS:
        res = client.query(f'SELECT count("{f}") FROM "{measurement}" {where}')
        for r in res:
            total += int(np.nansum(r.columns.get("count", [0])))
    return total


def stored_values(client, site: str) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """{(asset, field): (time_ns, value)} for one site's pumps."""
    out = {}
    for f in FIELDS:
        for r in client.query(f"SELECT \"{f}\" FROM pump WHERE site='{site}' GROUP BY asset"):
            keep = ~np.isnan(r.columns[f])
            out[(r.tags["asset"], f)] = (r.columns["time"][keep], r.columns[f][keep])
    return out


def expected_values(batch: SampleBatch) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    out = {}
    for i, s in enumerate(batch.table):
        sel = batch.series == i
        order = np.argsort(batch.ts_ns[sel], kind="stable")
        out[(s.tag_dict["asset"], s.field)] = (batch.ts_ns[sel][order], batch.value[sel][order])
    return out


class IngestProcess:
    """``plantmrv ingest run -c FILE`` as a child process, its log in a file."""

    def __init__(self, config: Path, log_path: Path, client_id: str | None = None):
        self.config, self.log_path, self.client_id = config, log_path, client_id
        self.proc: subprocess.Popen | None = None

    def start(self, subscribed_timeout_s: float = 20) -> "IngestProcess":
        argv = [PLANTMRV, "ingest", "run", "-c", str(self.config)]
        if self.client_id:
            argv += ["--client-id", self.client_id]
        start_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})

        def subscribed():
            if self.proc.poll() is not None:
                raise AssertionError(f"ingest exited with {self.proc.returncode}:\n{self.log()}")
            return "event=subscribed" in self.log_path.read_text(errors="replace")[start_at:]

        wait_until(subscribed, subscribed_timeout_s, "ingest to subscribe")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def scrape(port: int) -> dict[str, float]:
    """Prometheus text from ``/metrics`` as {sample name with labels: value}."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = re.match(r"^(\S+)\s+(\S+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
    return out


class Background(threading.Thread):
    """Run ``fn`` in a thread, re-raising its exception on ``join_checked``."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.exc = fn, None

    def run(self):
        try:
            self.fn()
        except BaseException as exc:  # noqa: BLE001
            self.exc = exc

    def join_checked(self, timeout_s: float = 120):
        self.join(timeout_s)
        if self.exc:
            raise self.exc
