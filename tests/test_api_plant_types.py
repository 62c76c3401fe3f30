"""Every plant type of examples/analytics.yaml, simulated for a day, through the real engine: the
xlsx of each recomputes the monitoring report's tonnes in a formula engine, and the CSV's
intervals add up to it."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.engine import Engine, asset_fields
from plantmrv.api.app import create_app
from plantmrv.api.config import ApiConfig
from plantmrv.api.tokens import hash_token
from plantmrv.config import InfluxConfig, root_model
from plantmrv.simulators import plants
from plantmrv.influxwrite import write_batch

S = 1_000_000_000
DAY0 = 1_773_100_800 * S  # 2026-03-10T00:00:00Z
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "analytics.yaml"
TOKEN = "pmrv_plant-types-operator-0123456789abcdefghijklmnopqrs"
#: what the reference energy of each example project multiplies: a monitored input x a parameter cell
LIVE_REFERENCE = {"danang-pumps": "*Input!$C$", "hcmc-vsd": "*Input!$C$", "haiphong-ubcf": "*Input!$C$"}
RANGE = {"from": "2026-03-10T00:00:00Z", "to": "2026-03-11T00:00:00Z"}


@pytest.fixture(scope="module")
def api(influxd, tmp_path_factory):
    influx = influxd.client(database="t_api_plant_types")
    influx.execute('DROP DATABASE "t_api_plant_types"')
    influx.create_database()
    raw = yaml.safe_load(EXAMPLE.read_text())["analytics"]
    for p in raw["projects"]:
        p["monitoring_period"] = {"start": RANGE["from"], "end": RANGE["to"]}
    analytics = AnalyticsConfig.model_validate({**{k: v for k, v in raw.items() if k != "projects"}, "projects": raw["projects"]})
    ts = DAY0 + np.arange(-60, 86400 + 61, 10, dtype=np.int64) * S
    for project in analytics.projects:
        (asset, pairs), = asset_fields(project)
        fields = plants.generate(project.plant_type, ts, 7)
        write_batch(influx, plants.to_batch(asset.site or project.site, asset.asset, project.plant_type, ts, {f: fields[f] for _, f in pairs}))
    Engine(analytics, influx).backfill(DAY0, DAY0 + 86400 * S, interval_s=[3600])
    cfg = root_model()(
        influxdb=InfluxConfig(url=influxd.url, database="t_api_plant_types"),
        analytics=analytics,
        api=ApiConfig(tokens=[{"name": "ops", "role": "operator", "sha256": hash_token(TOKEN)}]),
    )
    with TestClient(create_app(cfg)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client, [p.id for p in analytics.projects]
    influx.close()


def test_every_example_project_is_described_with_sources_and_formulas(api):
    client, ids = api
    assert {p["plant_type"] for p in client.get("/projects").json()} == {"pump", "vsd", "wte", "ubcf", "pv"}
    for pid in ids:
        d = client.get(f"/projects/{pid}").json()
        assert d["grid_emission_factor"]["source"] and d["monitoring_points"], pid
        assert all(p["source"] for p in d["parameters"]), pid
        assert {f["symbol"] for f in d["methodology"]["formulas"]} >= {"ER_p"}, pid
        assert len(d["methodology"]["formulas"]) > 4, pid
    assert client.get("/projects/haiphong-ubcf").json()["methodology"]["credited"] is False


def test_xlsx_of_every_plant_type_recomputes_the_report(api, tmp_path):
    """The fast check (the ``formulas`` package); tests/test_api_workbook.py recalculates every
    methodology's workbook in LibreOffice."""
    import formulas
    import openpyxl

    client, ids = api
    for pid in ids:
        report = client.get(f"/projects/{pid}/monitoring-report", params={"period": "monitoring"}).json()
        assert report["mrv_intervals"] == 24, pid
        text = client.get(f"/projects/{pid}/export", params=RANGE | {"format": "csv", "raw": "false"}).text
        intervals = _section(text, "intervals")
        assert math.isclose(sum(float(r["reduction_t_co2"]) for r in intervals), report["reduction_t_co2"], rel_tol=1e-9, abs_tol=1e-9), pid

        path = tmp_path / f"{pid}.xlsx"
        # raw=false: the calculation workbook without the raw rows (checked in test_api_rederivation)
        path.write_bytes(client.get(f"/projects/{pid}/export", params=RANGE | {"format": "xlsx", "raw": "false"}).content)
        assert openpyxl.load_workbook(path, read_only=True)["Raw"].max_row in (0, 1, None), pid
        solution = formulas.ExcelModel().loads(str(path)).finish().calculate()
        calc = openpyxl.load_workbook(path)["Calculation"]
        fields = {calc.cell(5, j).value: calc.cell(5, j).column_letter for j in range(2, calc.max_column + 1) if calc.cell(5, j).value}
        total_row = 6 + 24 + 1

        def value(cell):
            v = solution[next(k for k in solution if k.upper().endswith(f"CALCULATION'!{cell}"))].value
            return float(v[0][0] if hasattr(v, "__getitem__") else v)

        for f, letter in fields.items():
            assert math.isclose(value(f"{letter}{total_row}"), report[f], rel_tol=1e-9, abs_tol=1e-9), (pid, f)
        assert value(f"{fields['reduction_t_co2']}{total_row + 1}") == report["reported_reduction_t_co2"], pid
        formulas_re = [c.value for c in calc[fields["reference_energy_kwh"]][5 : 5 + 24]]
        assert all(str(f).startswith("=Input!") for f in formulas_re), (pid, formulas_re[:3])
        if pid in LIVE_REFERENCE:  # the reference energy is a live formula of monitored input x parameter
            assert sum(LIVE_REFERENCE[pid] in str(f) for f in formulas_re) == 24, (pid, formulas_re[:3])


def _section(text: str, name: str) -> list[dict]:
    rows, header, inside = [], None, False
    for row in csv.reader(io.StringIO(text)):
        if row and row[0] == "#section":
            inside, header = row[1] == name, None
        elif inside and header is None:
            header = row
        elif inside:
            rows.append(dict(zip(header, row)))
    return rows
