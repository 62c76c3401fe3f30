"""Shared fixtures of the verifier-API tests (no tests here): a simulated pump project in a real
influxd, its results computed by the real analytics engine, tokens of each role, an ASGI client.

Pipeline: ``examples/analytics.yaml``'s ``danang-pumps`` project (two days as its monitoring
period) -> the simulator's pump model (``plantmrv.simulators.plants``) every 5 s with a 15-minute
dropout -> real influxd -> ``Engine.backfill`` (hourly ``mrv``) -> the API built from the same
config. Tokens: a verifier for the pump project, one for another project, an operator and an
admin, declared in config by hash (the SQLite store is exercised in the security tests).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.engine import Engine
from plantmrv.api.app import create_app
from plantmrv.api.config import ApiConfig
from plantmrv.api.tokens import hash_token
from plantmrv.config import InfluxConfig, root_model
from plantmrv.simulators import faults, plants
from plantmrv.influxwrite import write_batch

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "analytics.yaml"
S = 1_000_000_000
PROJECT_ID = "danang-pumps"
OTHER_ID = "hcmc-vsd"
DAY0 = 1_773_100_800 * S  # 2026-03-10T00:00:00Z
DAYS = 2
START_ISO, END_ISO = "2026-03-10T00:00:00Z", "2026-03-12T00:00:00Z"
STEP_S = 5
DROPOUT = (DAY0 + (5 * 3600 + 20 * 60) * S, DAY0 + (5 * 3600 + 35 * 60) * S)  # 05:20-05:35 on day 1
GAP_HOUR_ISO = "2026-03-10T05:00:00Z"

TOKENS = {
    "verifier": "pmrv_verifier-danang-token-0123456789abcdefghijklmnop",
    "verifier_other": "pmrv_verifier-hcmc-token-0123456789abcdefghijklmnopq",
    "operator": "pmrv_operator-token-0123456789abcdefghijklmnopqrstuv",
    "admin": "pmrv_admin-token-0123456789abcdefghijklmnopqrstuvwxyz",
}


def analytics_config() -> AnalyticsConfig:
    return AnalyticsConfig.model_validate(analytics_raw())


def analytics_raw() -> dict:
    """The ``analytics`` section of the tests, as YAML would hold it."""
    raw = yaml.safe_load(EXAMPLE.read_text())["analytics"]
    projects = [p for p in raw["projects"] if p["id"] in (PROJECT_ID, OTHER_ID)]
    for p in projects:
        p["monitoring_period"] = {"start": START_ISO, "end": END_ISO}
    pump = next(p for p in projects if p["id"] == PROJECT_ID)
    pump["assets"][0]["fields"] = {"energy_meter": "energy_kwh"}  # the only input of efficiency_ratio
    # a lower conservative default than the example's, so two days credit whole tonnes
    pump["parameters"]["eta_reference"] = {"value": 0.70, "unit": "-", "source": "test: conservative ex-ante default", "option": "A"}
    return {**{k: v for k, v in raw.items() if k != "projects"}, "projects": projects}


def write_pump(client, seed: int = 7) -> None:
    """Two days of the simulated pump's meter every 5 s (plus a minute each side), with a dropout."""
    ts = DAY0 + np.arange(-60, DAYS * 86400 + 60 + 1, STEP_S, dtype=np.int64) * S
    fields = plants.generate("pump", ts, seed)
    used = {"energy_kwh": faults.apply_dropout(ts, fields["energy_kwh"], *DROPOUT)}
    write_batch(client, plants.to_batch("danang", "pump1", "pump", ts, used))


def write_other_project_result(client) -> None:
    """One result interval of another project, which a danang verifier must never see."""
    client.write_body(f'mrv,interval=1h,methodology=x,project={OTHER_ID} reduction_t_co2=999.0,completeness=1.0,gap_filled_s=0.0,params_hash="ffff" {DAY0}\n'.encode())


@dataclass
class ApiEnv:
    client: TestClient
    app: object
    influx: object
    cfg: object
    store_tokens: dict

    def get(self, url, role="verifier", **kw):
        headers = kw.pop("headers", {})
        if role:
            headers["Authorization"] = f"Bearer {TOKENS[role]}"
        return self.client.get(url, headers=headers, **kw)


def make_cfg(database: str, url: str, tmp_path, **api_extra):
    api = ApiConfig(
        token_store=tmp_path / "tokens.sqlite",
        tokens=[
            {"name": "verifier-danang", "role": "verifier", "projects": [PROJECT_ID], "sha256": hash_token(TOKENS["verifier"])},
            {"name": "verifier-hcmc", "role": "verifier", "projects": [OTHER_ID], "sha256": hash_token(TOKENS["verifier_other"])},
            {"name": "operator-1", "role": "operator", "sha256": hash_token(TOKENS["operator"])},
            {"name": "admin-1", "role": "admin", "sha256": hash_token(TOKENS["admin"])},
        ],
        **api_extra,
    )
    return root_model()(influxdb=InfluxConfig(url=url, database=database), api=api, analytics=analytics_config())


@pytest.fixture(scope="module")
def api_env(influxd, tmp_path_factory, request):
    """Simulated pump data + engine results in a real influxd, and the API over them."""
    name = "t_api_" + request.module.__name__.rsplit(".", 1)[-1][:40]
    influx = influxd.client(database=name)
    influx.execute(f'DROP DATABASE "{name}"')
    influx.create_database()
    cfg = make_cfg(name, influxd.url, tmp_path_factory.mktemp("api"))
    write_pump(influx)
    write_other_project_result(influx)
    pump = next(p for p in cfg.analytics.projects if p.id == PROJECT_ID)
    Engine(cfg.analytics, influx).backfill(DAY0, DAY0 + DAYS * 86400 * S, projects=[pump], interval_s=[3600])
    app = create_app(cfg)
    with TestClient(app) as client:
        yield ApiEnv(client, app, influx, cfg, {})
    influx.close()


@contextlib.contextmanager
def served(app):
    """``app`` served by uvicorn on a free loopback port in a thread of this process; yields its base URL."""
    import threading

    import uvicorn

    from plantmrv.localservices import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def fresh_database(influxd, name: str):
    client = influxd.client(database=name)
    client.execute(f'DROP DATABASE "{name}"')
    client.create_database()
    return client


def write_meter(client, step_s: int = 5, days: int = DAYS) -> int:
    """The simulated pump's meter every ``step_s`` over the test days (plus a minute each side); returns the rows written."""
    ts = DAY0 + np.arange(-60, days * 86400 + 60 + 1, step_s, dtype=np.int64) * S
    fields = plants.generate("pump", ts, 7)
    write_batch(client, plants.to_batch("danang", "pump1", "pump", ts, {"energy_kwh": fields["energy_kwh"]}))
    return len(ts)
