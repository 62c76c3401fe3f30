"""Shared fixtures of the verifier-API tests (no tests here): a simulated pump project in a real
influxd, result intervals in measurement ``mrv``, tokens of each role and an ASGI client.

Raw data: one pump's cumulative energy meter every 10 s for a week, written to the real
influxd. Results: hourly ``mrv`` intervals computed by :func:`fill_mrv` (the engine's job; see
the note there). Tokens: a verifier for the pump project, a verifier for another project, an
operator and an admin, declared in config by hash and in the SQLite store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient

from plantmrv.api.app import create_app
from plantmrv.api.config import ApiConfig
from plantmrv.api.models import (
    EmissionFactorInfo,
    MethodologyInfo,
    MonitoringPeriodInfo,
    MonitoringPointInfo,
    ParameterInfo,
    ProjectDetail,
)
from plantmrv.api.projects import MISSING_DATA_RULE, formulas_for
from plantmrv.api.tokens import hash_token
from plantmrv.batch import SampleBatch, Series
from plantmrv.config import InfluxConfig, root_model

__all__ = ["api_env", "ApiEnv", "PROJECT_ID", "START", "END", "ETA_PJ", "ETA_RE", "EF"]

PROJECT_ID = "danang-pumps"
OTHER_ID = "hcmc-vsd"
START = datetime(2024, 3, 1, tzinfo=timezone.utc)
DAYS = 7
END = datetime(2024, 3, 1 + DAYS, tzinfo=timezone.utc)
STEP_S = 10
ETA_PJ, ETA_RE, EF = 0.808, 0.6037, 0.8154  # eta_PJ from the test certificate, eta_RE a conservative default, VN 2015
GAP_HOUR = datetime(2024, 3, 3, 5, tzinfo=timezone.utc)  # an hour the "engine" marks as partly gap-filled

TOKENS = {
    "verifier": "pmrv_verifier-danang-token-0123456789abcdefghijklmnop",
    "verifier_other": "pmrv_verifier-hcmc-token-0123456789abcdefghijklmnopq",
    "operator": "pmrv_operator-token-0123456789abcdefghijklmnopqrstuv",
    "admin": "pmrv_admin-token-0123456789abcdefghijklmnopqrstuvwxyz",
}


def pump_project() -> ProjectDetail:
    return ProjectDetail(
        id=PROJECT_ID,
        name="Cau Do high-efficiency pumps (simulated)",
        plant_type="pump",
        site="danang",
        country="VN",
        methodology=MethodologyInfo(
            id="VN_AM00X", version="1.0", title="High-efficiency pumps in water supply", baseline_model="efficiency_ratio",
            formulas=formulas_for("efficiency_ratio"), missing_data_rule=MISSING_DATA_RULE, rounding="floor",
        ),
        parameters=[
            ParameterInfo(symbol="eta_PJ", description="Wire-to-water efficiency of the project pump", value=ETA_PJ, unit="-", option="A", kind="datasheet", source="Pump test certificate", measurement_method="Factory test", frequency="Once"),
            ParameterInfo(symbol="eta_RE", description="Reference pump efficiency (conservative default)", value=ETA_RE, unit="-", option="A", kind="default", source="Methodology default", frequency="Fixed ex ante"),
        ],
        grid_emission_factor=EmissionFactorInfo(value_t_co2_per_mwh=EF, country="VN", grid="national", year=2015, kind="national", source="DCC/MONRE 2015"),
        monitoring_points=[
            MonitoringPointInfo(symbol="EC_PJ", description="Electricity of pump 1", measurement="pump", site="danang", asset="pump1", field="energy_kwh", unit="kWh", option="C", measurement_method="Energy meter", frequency="10 s", meter="EM-01"),
        ],
        monitoring_periods=[MonitoringPeriodInfo(id="MP1", start=START, end=END)],
        ex_ante_t_co2_per_year=2000.0,
        japan_share=0.5,
    )


def other_project() -> ProjectDetail:
    p = pump_project()
    return p.model_copy(update={"id": OTHER_ID, "name": "Thu Duc intake VSD (simulated)", "site": "hcmc", "monitoring_points": []})


def write_pump_meter(client, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A week of a pump's cumulative meter (kWh) every 10 s; power 780-920 kW with noise."""
    rng = np.random.default_rng(seed)
    t0 = int(START.timestamp())
    n = DAYS * 86400 // STEP_S + 1
    ts_s = t0 + np.arange(n, dtype=np.int64) * STEP_S
    power_kw = 850 + 70 * np.sin(2 * np.pi * (ts_s - t0) / 86400) + rng.normal(0, 5, n)
    energy_kwh = 123456.0 + np.concatenate([[0.0], np.cumsum(power_kw[:-1] * STEP_S / 3600)])
    ts_ns = ts_s * 1_000_000_000
    batch = SampleBatch.from_columns({Series.of("pump", "energy_kwh", site="danang", asset="pump1"): (ts_ns, energy_kwh)})
    client.write_batch(batch)
    return ts_ns, energy_kwh


def fill_mrv(client, ts_ns: np.ndarray, energy_kwh: np.ndarray) -> None:
    """Hourly ``mrv`` results from the meter, as the analytics engine stores them.

    Stand-in for ``plantmrv analytics backfill`` while the engine is not part of this build: the
    meter has a sample on every hour edge, so an hour's energy is the difference of the readings
    at its edges; the reference side follows the efficiency-ratio model. One hour is marked as
    partly gap-filled (completeness 0.75, 900 s) to exercise gap reporting.
    """
    hour_ns = 3600 * 1_000_000_000
    edges = np.arange(ts_ns[0], ts_ns[-1] + 1, hour_ns)
    idx = np.searchsorted(ts_ns, edges)
    ec = np.diff(energy_kwh[idx])
    e_re = ec * (ETA_PJ / ETA_RE)
    lines = []
    for i, t in enumerate(edges[:-1]):
        gap = int(t) == int(GAP_HOUR.timestamp()) * 1_000_000_000
        ref = 0.75 * e_re[i] if gap else e_re[i]
        re_t, pe_t = ref / 1000 * EF, ec[i] / 1000 * EF
        fields = {
            "energy_saved_kwh": ref - ec[i], "reference_energy_kwh": ref, "project_energy_kwh": ec[i],
            "reference_t_co2": re_t, "project_t_co2": pe_t, "reduction_t_co2": re_t - pe_t,
            "completeness": 0.75 if gap else 1.0, "gap_filled_s": 900.0 if gap else 0.0,
        }
        body = ",".join(f"{k}={float(v)!r}" for k, v in fields.items())
        lines.append(f'mrv,interval=1h,methodology=VN_AM00X,project={PROJECT_ID} {body},params_hash="a1b2c3d4e5f6" {int(t)}')
    # an interval of the other project, which a danang verifier must never see
    lines.append(f'mrv,interval=1h,methodology=VN_AM00X,project={OTHER_ID} reduction_t_co2=999.0,completeness=1.0,gap_filled_s=0.0,params_hash="ffff" {int(edges[0])}')
    client.write_body(("\n".join(lines) + "\n").encode())


@dataclass
class ApiEnv:
    client: TestClient
    app: object
    influx: object
    cfg: object
    ts_ns: np.ndarray
    energy_kwh: np.ndarray
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
    return root_model()(influxdb=InfluxConfig(url=url, database=database), api=api)


@pytest.fixture(scope="module")
def api_env(influxd, tmp_path_factory, request):
    """A week of simulated pump data + hourly results in a real influxd, and the API over it."""
    name = "t_api_" + request.module.__name__.rsplit(".", 1)[-1][:40]
    influx = influxd.client(database=name)
    influx.execute(f'DROP DATABASE "{name}"')
    influx.create_database()
    ts_ns, energy_kwh = write_pump_meter(influx)
    fill_mrv(influx, ts_ns, energy_kwh)
    tmp = tmp_path_factory.mktemp("api")
    cfg = make_cfg(name, influxd.url, tmp)
    app = create_app(cfg, projects=[pump_project(), other_project()])
    with TestClient(app) as client:
        yield ApiEnv(client, app, influx, cfg, ts_ns, energy_kwh, {})
    influx.close()


def floor_t(x: float) -> int:
    return math.floor(x)
