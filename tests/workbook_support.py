"""Fixtures of the workbook tests (no tests here): one project per methodology of the registry,
each with gaps and a declared meter replacement, and a KH_AM002 solar project with a grid-supply
day, an outage day and a mixed day; simulated plant data in a real influxd, results computed by
the real engine, exported by the real API.

Gaps: every field but the grid flag drops out 05:20-05:35 UTC on 2026-03-10 (daylight in Asia:
a solar meter that does not move across a gap bridges it), and the project-side meters again
10:50-11:40 (across an hour edge). The U-BCF project's fill rate (15 kW) lies below
its real draw (~19 kW; its meters' maximum rates are set apart, 100 kW), so its meters' increment
across the gap wins over the rate there; elsewhere the rate wins.
Waste-to-energy: the crediting period starts 2025-03-10T12:30Z; a half day of 2025 data lies in
crediting year 1, the exported day 2026-03-10 straddles the anniversary (its 12:00 interval
takes its share of both years), so its second half credits the tail of year 1's waste.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from fastapi.testclient import TestClient

from plantmrv.analytics.config import AnalyticsConfig
from plantmrv.analytics.engine import Engine
from plantmrv.api.app import create_app
from plantmrv.api.config import ApiConfig
from plantmrv.api.reports import iso
from plantmrv.api.tokens import hash_token
from plantmrv.config import InfluxConfig, root_model
from plantmrv.influxwrite import write_batch
from plantmrv.simulators import faults, plants

S = 1_000_000_000
H = 3600 * S
DAY0 = 1_773_100_800 * S  # 2026-03-10T00:00:00Z
KH0 = DAY0 - 7 * H  # 2026-03-09T17:00:00Z: local midnight at UTC+7
WTE_YEAR1 = DAY0 - 365 * 86400 * S  # 2025-03-10T00:00:00Z
TOKEN = "pmrv_workbook-operator-0123456789abcdefghijklmnopqrst"
STEP_S = 10
DROPOUT = (5 * 3600 + 20 * 60, 5 * 3600 + 35 * 60)  # seconds after the day's start, every field but the grid flag
PROJECT_GAP = (10 * 3600 + 50 * 60, 11 * 3600 + 40 * 60)  # the project-side meters only
REPLACED_AT = 14 * 3600 + 30 * 60 + 5  # a declared meter replacement, between two samples
EF = {"value": 0.7, "unit": "tCO2/MWh", "source": "test: the project's grid EF", "kind": "national"}


def _p(value, unit, source="test value"):
    return {"value": value, "unit": unit, "source": source, "option": "A"}


@dataclass
class Case:
    """One exported project: its config, plant model, project-side meters, the meter replaced, its range."""

    config: dict
    plant: str
    project_meters: tuple[str, ...]  # fields of project-side quantities (second gap)
    replaced: str  # the meter field replaced at REPLACED_AT
    start_ns: int = DAY0
    days: int = 1
    max_rate: dict | None = None  # assets[].max_rate

    @property
    def id(self) -> str:
        return self.config["id"]

    @property
    def range(self) -> dict:
        return {"from": iso(self.start_ns), "to": iso(self.start_ns + self.days * 86400 * S)}


def _project(pid, plant, fields, methodology, baseline, params, start_ns=DAY0, days=1, **extra) -> dict:
    return {
        "id": pid, "site": "s", "country": "VN", "plant_type": plant, "timezone": "Asia/Ho_Chi_Minh",
        "assets": [{"measurement": plant, "asset": pid, "fields": fields}],
        "methodology": {"id": methodology, "version": "1.0"}, "baseline": baseline, "parameters": params,
        "monitoring_period": {"start": iso(start_ns), "end": iso(start_ns + days * 86400 * S)}, "grid_ef": EF, **extra,
    }


def cases() -> list[Case]:
    fill = lambda kw: {"fill_power_kw": _p(kw, "kW", "test: rated draw")}  # noqa: E731
    return [
        Case(_project("pump-ratio", "pump", {"energy_meter": "energy_kwh", "volume_meter": "volume_m3", "running": "running"}, "plantmrv-pump-efficiency-ratio",
                      "efficiency_ratio", {"eta_project": _p(0.808, "-"), "eta_reference": _p(0.70, "-"), **fill(1000)}),
             "pump", ("energy_kwh",), "energy_kwh"),
        Case(_project("pump-sec", "pump", {"energy_meter": "energy_kwh", "volume_meter": "volume_m3"}, "plantmrv-pump-sec", "specific_energy",
                      {"sec_baseline_kwh_per_m3": _p(0.16, "kWh/m3"), **fill(1000)}),
             "pump", ("energy_kwh",), "volume_m3"),
        Case(_project("vsd-cph", "vsd", {"energy_meter": "energy_kwh", "hours_meter": "run_time_h"}, "plantmrv-vsd-constant-power", "constant_power_hours",
                      {"baseline_power_kw": _p(720, "kW"), **fill(800)}),
             "vsd", ("energy_kwh",), "energy_kwh"),
        Case(_project("vsd-sec", "vsd", {"energy_meter": "energy_kwh", "flow": "flow_m3_per_h"}, "plantmrv-vsd-flow", "specific_energy",
                      {"sec_baseline_kwh_per_m3": _p(0.11, "kWh/m3"), **fill(800)}),
             "vsd", ("energy_kwh",), "energy_kwh"),
        Case(_project("ubcf", "ubcf", {"energy_meter": ["pump_energy_kwh", "blower_energy_kwh"], "volume_meter": "volume_m3", "chlorine_rate": "chlorine_kg_per_h",
                                       "coagulant_rate": "coagulant_kg_per_h", "quality_pairs": {"nh4": ["nh4_in_mg_per_l", "nh4_out_mg_per_l"]}},
                      "plantmrv-ubcf-kpi", "specific_energy",
                      {"sec_baseline_kwh_per_m3": _p(0.12, "kWh/m3"), "chlorine_baseline_kg_per_m3": _p(0.01, "kg/m3"), "chlorine_ef_t_co2_per_t": _p(1.2, "tCO2/t"),
                       **fill(15)}),
             "ubcf", ("pump_energy_kwh", "blower_energy_kwh"), "pump_energy_kwh",
             max_rate={f: _p(100, "kW", "test: meter rating") for f in ("pump_energy_kwh", "blower_energy_kwh")}),
        Case(_project("wte", "wte", {"waste_meter": "waste_fed_t", "export_meter": "net_export_energy_kwh", "import_meter": "import_energy_kwh", "aux_fuel_meter": "aux_fuel_kg"},
                      "plantmrv-wte-acm0022-form", "fod_methane",
                      {"fill_waste_t_per_h": _p(4, "t/h"), "fill_aux_fuel_kg_per_h": _p(150, "kg/h"), "fill_import_power_kw": _p(250, "kW")},
                      crediting_start="2025-03-10T12:30:00Z"),
             "wte", ("import_energy_kwh", "aux_fuel_kg"), "waste_fed_t"),
        Case(_project("pv", "pv", {"export_meter": "export_energy_kwh"}, "VN_AM007", "generation", {}), "pv", (), "export_energy_kwh"),
        Case(_project("pv-kh", "pv", {"export_meter": "export_energy_kwh", "grid_available": "grid_ok"}, "KH_AM002", "generation",
                      {"ef_diesel_t_co2_per_mwh": _p(0.6, "tCO2/MWh", "test: the methodology's diesel EF")}, start_ns=KH0, days=3,
                      day_category={"utc_offset_h": 7}),
             "pv", (), "export_energy_kwh", start_ns=KH0, days=3),
    ]


def _grid_flag(ts: np.ndarray) -> np.ndarray:
    """Day 1 grid supply all day, day 2 an outage all day, day 3 an outage of an hour (mixed)."""
    flag = np.ones(len(ts))
    flag[(ts >= KH0 + 24 * H) & (ts < KH0 + 48 * H)] = 0.0
    flag[(ts >= KH0 + 55 * H) & (ts < KH0 + 56 * H)] = 0.0
    return flag


def write_case(influx, case: Case, start_ns: int, length_s: int, seed: int, day0_ns: int = DAY0, replace: bool = True) -> list[dict]:
    """Simulated data of ``case`` over ``length_s`` from ``start_ns`` with its gaps (in daylight:
    at times of the day starting ``day0_ns``) and, with ``replace``, its meter replacement;
    returns the declared meter events."""
    ts = start_ns + np.arange(-60, length_s + 61, STEP_S, dtype=np.int64) * S
    sim = plants.generate(case.plant, ts, seed)
    if case.id == "pv-kh":
        sim["grid_ok"] = _grid_flag(ts)
    if case.id == "wte":  # the simulated plant neither buys power nor burns fuel: let both registers move
        hours = (ts - ts[0]) / H
        sim["import_energy_kwh"] = sim["import_energy_kwh"] + 20.0 * hours
        sim["aux_fuel_kg"] = sim["aux_fuel_kg"] + 10.0 * hours
    asset = case.config["assets"][0]
    used = [f for v in asset["fields"].values() if not isinstance(v, dict) for f in ([v] if isinstance(v, str) else v)]
    used += [f for pair in asset["fields"].get("quality_pairs", {}).values() for f in pair]
    out, events = {}, []
    for f in used:
        v = sim[f].astype(float)
        if f == case.replaced and replace:  # a new register from REPLACED_AT, starting at 0
            at = day0_ns + REPLACED_AT * S
            old_final = float(np.interp(at, ts, v))
            v = np.where(ts >= at, v - old_final, v)
            events.append({"field": f, "time": iso(at), "kind": "replacement", "old_final": old_final, "new_initial": 0.0,
                           "source": "test: work order 1 (photo of both registers)"})
        if f != "grid_ok":
            v = faults.apply_dropout(ts, v, day0_ns + DROPOUT[0] * S, day0_ns + DROPOUT[1] * S)
        if f in case.project_meters:
            v = faults.apply_dropout(ts, v, day0_ns + PROJECT_GAP[0] * S, day0_ns + PROJECT_GAP[1] * S)
        out[f] = v
    write_batch(influx, plants.to_batch("s", case.id, case.plant, ts, out))
    return events


@dataclass
class WorkbookEnv:
    client: TestClient
    cases: list[Case]
    influx: object

    def get(self, url, **params):
        r = self.client.get(url, params=params)
        assert r.status_code == 200, (url, params, r.status_code, r.text[:500])
        return r


@pytest.fixture(scope="module")
def workbook_env(influxd):
    name = "t_api_workbook"
    influx = influxd.client(database=name)
    influx.execute(f'DROP DATABASE "{name}"')
    influx.create_database()
    all_cases = cases()
    for k, case in enumerate(all_cases):
        events = write_case(influx, case, case.start_ns, case.days * 86400, 7 + k)
        if case.id == "wte":  # half a day of crediting year 1
            write_case(influx, case, WTE_YEAR1 + 12 * H, 12 * 3600, 3, WTE_YEAR1 + 12 * H, replace=False)
        case.config["assets"][0]["meter_events"] = events
        if case.max_rate:
            case.config["assets"][0]["max_rate"] = case.max_rate
    analytics = AnalyticsConfig.model_validate({"max_gap_s": 120, "mrv_interval": "1h", "process_interval": "1m", "projects": [c.config for c in all_cases]})
    engine = Engine(analytics, influx)
    wte = next(p for p in analytics.projects if p.id == "wte")
    engine.backfill(WTE_YEAR1 + 12 * H, WTE_YEAR1 + 24 * H, projects=[wte], interval_s=[3600])
    for case, project in zip(all_cases, analytics.projects):
        engine.backfill(case.start_ns, case.start_ns + case.days * 86400 * S, projects=[project], interval_s=[3600])
    cfg = root_model()(influxdb=InfluxConfig(url=influxd.url, database=name), analytics=analytics,
                       api=ApiConfig(tokens=[{"name": "ops", "role": "operator", "sha256": hash_token(TOKEN)}]))
    with TestClient(create_app(cfg)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield WorkbookEnv(client, all_cases, influx)
    influx.close()
