"""Every panel query and every template-variable query of the generated dashboards runs on a real
influxd filled by the simulators and the analytics engine, and returns its expected fields.

The queries are sent as Grafana's InfluxDB datasource would send them (``plantmrv.dashboards.check``:
``$timeFilter``, ``$__interval``, panel relative times, *All* selections as regex groups whose
values come from running the dashboards' own ``SHOW TAG VALUES`` variable queries).

Data (module fixture, written once): 24 h ending now of the five simulated plants
(``plantmrv.simulators.plants.generate`` / ``to_batch``, 10 s samples, the default sites and
assets), ``mrv`` rows at ``1m`` and ``1h`` from the analytics engine's backfill with the projects
of ``examples/analytics.yaml``, plus ``sample_quality`` and ``gateway`` points written here with
the fields of ``docs/data-model.md`` (ingest and the gateway agent write those in production).
``write_dashboard_data`` (synthetic points for every field, any sample rate) also feeds
``bench/dashboards.py``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from plantmrv.config import load_config
from plantmrv.dashboards import alerts, build, check
from plantmrv.dashboards.settings import BuildSettings
from plantmrv.influxwrite import write_batch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "analytics.yaml"
SETTINGS_CFG = load_config(EXAMPLE)
SETTINGS = BuildSettings.from_config(SETTINGS_CFG, str(EXAMPLE))
DASHBOARDS = build.build_all(SETTINGS)
ALERTING = alerts.alerting_document(SETTINGS)

#: site of each plant type (the default simulated sites of docs/data-model.md)
PLANT_SITES = {"pump": "danang", "vsd": "hcmc", "ubcf": "haiphong", "wte": "yangon", "pv": "binhduong"}
ASSETS = ["a1", "a2"]
SILENT_GATEWAY = "gw-danang-2"
#: project ids and methodology ids as in examples/analytics.yaml
PROJECTS = {"pump": "danang-pumps", "vsd": "hcmc-vsd", "ubcf": "haiphong-ubcf", "wte": "yangon-wte", "pv": "binhduong-pv"}
METHODOLOGIES = {"pump": "plantmrv-pump-efficiency-ratio", "vsd": "plantmrv-vsd-constant-power", "ubcf": "plantmrv-ubcf-kpi", "wte": "plantmrv-wte-acm0022-form", "pv": "VN_AM007"}

#: every field of docs/data-model.md per plant measurement, with a plausible level and swing
FIELDS = {
    "ubcf": {"flow_m3_per_h": (210, 20), "volume_m3": "meter:3.5", "raw_turbidity_ntu": (25, 10), "treated_turbidity_ntu": (0.8, 0.3),
             "nh4_in_mg_per_l": (1.2, 0.4), "nh4_out_mg_per_l": (0.1, 0.05), "water_temp_c": (27, 1), "pump_power_kw": (30, 3),
             "blower_power_kw": (12, 2), "pump_energy_kwh": "meter:0.5", "blower_energy_kwh": "meter:0.2", "backwash": "flag",
             "chlorine_kg_per_h": (0.8, 0.1), "coagulant_kg_per_h": (4, 1)},
    "pump": {"flow_m3_per_h": (6300, 400), "volume_m3": "meter:105", "head_m": (40, 2), "shaft_power_kw": (700, 40), "power_kw": (850, 50),
             "efficiency": (0.8, 0.02), "energy_kwh": "meter:14", "running": "on"},
    "vsd": {"speed_pct": (80, 10), "frequency_hz": (40, 5), "flow_m3_per_h": (3000, 300), "power_kw": (400, 60), "energy_kwh": "meter:6.7",
            "throttle_power_kw": (520, 20), "running": "on"},
    "wte": {"waste_feed_t_per_h": (2.5, 0.3), "waste_fed_t": "meter:0.04", "lhv_mj_per_kg": (6.5, 0.8), "steam_t_per_h": (3.2, 0.4),
            "gross_power_kw": (700, 50), "aux_power_kw": (150, 10), "net_export_energy_kwh": "meter:9", "incinerating": "on",
            "aux_fuel_kg_per_h": (10, 5)},
    "pv": {"irradiance_w_per_m2": (650, 200), "module_temp_c": (48, 8), "dc_power_kw": (420, 120), "ac_power_kw": (405, 115),
           "export_energy_kwh": "meter:6.8"},
}


class WrittenData:
    def __init__(self):
        self.tag_values: dict[tuple[str, str], list[str]] = {}


def _lp_lines(measurement, tags, fields, ts_s):
    """Line protocol for columns of equal length (fields: name -> array; ints end in 'i')."""
    tag_txt = "".join(f",{k}={v}" for k, v in sorted(tags.items()))
    names = list(fields)
    lines = []
    for j, t in enumerate(ts_s):
        parts = []
        for n in names:
            v = fields[n][j]
            parts.append(f'{n}="{v}"' if isinstance(v, str) else f"{n}={float(v)!r}")
        lines.append(f"{measurement}{tag_txt} {','.join(parts)} {int(t)}")
    return lines


def write_dashboard_data(client, end_ns: int, hours: int = 3, step_s: int = 60) -> WrittenData:
    """Plant, sample_quality, gateway and mrv points for ``hours`` ending at ``end_ns``.

    Plant samples every ``step_s`` seconds, quality flags every 10 minutes, gateway health and
    ``mrv`` minute rows every minute, ``mrv`` hour rows at each hour start (the current one too).
    """
    info = WrittenData()
    rng = np.random.default_rng(7)
    end_s = end_ns // 1_000_000_000
    ts_min = np.arange(end_s - hours * 3600, end_s + 1, 60)
    ts = np.arange(end_s - hours * 3600, end_s + 1, step_s)
    lines: list[str] = []
    for m, fields in FIELDS.items():
        site = PLANT_SITES[m]
        for k, asset in enumerate(ASSETS):
            cols = {}
            for name, spec in fields.items():
                if isinstance(spec, tuple):
                    cols[name] = spec[0] + spec[1] * np.sin(ts / 1020.0 + k) + rng.normal(0, spec[1] / 10, len(ts))
                elif spec == "flag":
                    cols[name] = (ts % 3600 < 300).astype(float)
                elif spec == "on":
                    cols[name] = np.ones(len(ts))
                else:  # cumulative meter: increment per minute
                    step = float(spec.split(":")[1])
                    cols[name] = 1000.0 * (k + 1) + np.cumsum(np.full(len(ts), step * step_s / 60))
            lines += _lp_lines(m, {"site": site, "asset": asset}, cols, ts * 10**9)
            # non-GOOD samples: one BAD and one UNCERTAIN every 10 minutes on the first field
            first = next(iter(fields))
            q_ts = ts_min[::10]
            for quality in (1, 2):
                lines += _lp_lines("sample_quality", {"site": site, "asset": asset, "source": m, "field": first},
                                   {"value": np.full(len(q_ts), -1.0), "quality": np.full(len(q_ts), float(quality))}, q_ts * 10**9 + quality)
        info.tag_values[(m, "site")] = [site]
        info.tag_values[(m, "asset")] = list(ASSETS)
        # gateway health every minute, one gateway per site
        n = len(ts_min)
        # coverage per asset and flush (every minute), stamped at the watermark; none from the stalled site
        cov = ts_min if f"gw-{site}" != STALLED_GATEWAY else ts_min[ts_min < end_s - FAULT_MIN["stall"] * 60]
        lines += _lp_lines("coverage", {"site": site, "asset": asset, "measurement": pt.measurement, "gateway": f"gw-{site}", "source": "opcua"},
                           {"tags_total": np.full(len(cov), float(len(pt.fields))), "tags_bad": np.zeros(len(cov))}, cov * 10**9)
        lines += _lp_lines("gateway", {"site": site, "gateway": f"gw-{site}"},
                           {"buffer_depth": rng.integers(0, 5, n).astype(float), "buffer_bytes": rng.integers(0, 5000, n).astype(float),
                            "samples_read": np.arange(n) * 120.0, "samples_sent": np.arange(n) * 120.0,
                            "samples_dropped": np.arange(n) // 30 * 1.0, "online": np.ones(n)}, ts_min * 10**9)
    # a second gateway at the pump site that went silent 30 minutes before the end
    silent = ts_min[ts_min <= end_s - 1800]
    lines += _lp_lines("gateway", {"site": PLANT_SITES["pump"], "gateway": SILENT_GATEWAY},
                       {"buffer_depth": np.zeros(len(silent)), "buffer_bytes": np.zeros(len(silent)), "samples_read": np.zeros(len(silent)),
                        "samples_sent": np.zeros(len(silent)), "samples_dropped": np.zeros(len(silent)), "online": np.ones(len(silent))}, silent * 10**9)
    info.tag_values[("gateway", "site")] = sorted(PLANT_SITES.values())
    # mrv: minute and hourly results per project (hour rows stamped at the hour start, current hour included)
    hours_ts = np.arange((ts_min[0] // 3600) * 3600, (end_s // 3600) * 3600 + 1, 3600)
    for m, project in PROJECTS.items():
        for interval, t_arr, scale in (("1m", ts_min, 1 / 60), ("1h", hours_ts, 1.0)):
            n = len(t_arr)
            ref_kwh = np.full(n, 500.0 * scale)
            prj_kwh = np.full(n, 400.0 * scale)
            cols = {
                "energy_saved_kwh": ref_kwh - prj_kwh, "reference_energy_kwh": ref_kwh, "project_energy_kwh": prj_kwh,
                "reference_t_co2": ref_kwh * 0.00066, "project_t_co2": prj_kwh * 0.00066, "reduction_t_co2": (ref_kwh - prj_kwh) * 0.00066,
                "completeness": np.clip(0.97 + rng.normal(0, 0.02, n), 0, 1), "gap_filled_s": rng.integers(0, 60, n).astype(float),
                "params_hash": ["3f2a9c"] * n,
            }
            lines += _lp_lines("mrv", {"project": project, "methodology": METHODOLOGIES[m], "interval": interval}, cols, t_arr * 10**9)
    info.tag_values[("mrv", "project")] = sorted(PROJECTS.values())
    for i in range(0, len(lines), 20000):
        client.write_body(("\n".join(lines[i : i + 20000]) + "\n").encode())
    info.lines = len(lines)
    return info


def _panel_targets():
    for uid, dash in DASHBOARDS.items():
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                yield pytest.param(uid, panel, target, id=f"{uid}:{panel['title']}:{target['refId']}")


def _variables():
    for uid, dash in DASHBOARDS.items():
        for var in dash["templating"]["list"]:
            if var["type"] == "query":
                yield pytest.param(uid, var, id=f"{uid}:{var['name']}")


SIM_STEP_S = 10
SIM_HOURS = 24


#: faults injected into the simulated data, each for one alert rule (minutes before the end)
FAULT_MIN = {"efficiency": 12 * 60, "turbidity": 30, "stall": 40, "bad": 30, "analytics_stop": 30, "dead_letters": 5, "pv_meter": 18 * 60}
STALLED_GATEWAY = "gw-hcmc"


def injected_faults(end_ns: int) -> list:
    """The simulator faults of the fixture (plantmrv.simulators.faults), one per plant-level rule:
    pump efficiency x0.8 (worn impeller), U-BCF treated turbidity x10, a network stall at the VSD
    site (no sample reaches InfluxDB, the gateway buffers them), a BAD sensor at the WtE plant, the
    PV export meter silent for 18 h (the day's reductions far below plan)."""
    from plantmrv.simulators.faults import Fault
    from plantmrv.simulators.plants import PLANT_TYPES as SIM

    def last(minutes):
        return end_ns - minutes * 60 * 10**9, end_ns + 10**9

    return [
        Fault("spike", *last(FAULT_MIN["efficiency"]), SIM["pump"].default_site, SIM["pump"].default_asset, "efficiency", value=0.9),
        Fault("spike", *last(FAULT_MIN["turbidity"]), SIM["ubcf"].default_site, SIM["ubcf"].default_asset, "treated_turbidity_ntu", value=10.0),
        Fault("network_stall", *last(FAULT_MIN["stall"]), SIM["vsd"].default_site, SIM["vsd"].default_asset),
        Fault("bad_status", *last(FAULT_MIN["bad"]), SIM["wte"].default_site, SIM["wte"].default_asset, "lhv_mj_per_kg"),
        Fault("dropout", *last(FAULT_MIN["pv_meter"]), SIM["pv"].default_site, SIM["pv"].default_asset, "export_energy_kwh"),
    ]


def write_simulated_data(client, end_ns: int, hours: int = SIM_HOURS, step_s: int = SIM_STEP_S) -> WrittenData:
    """Simulated plants with the :func:`injected_faults` (as ingest writes them: samples that never
    came left out, non-GOOD ones also in ``sample_quality``), gateway health, ingest health, the
    analytics engine's backfill, its events, the plan points and the simulator's fault points.

    Gateway and ingest health and ``mrv_event`` rows are written here with the fields of
    ``docs/data-model.md`` (the gateway agent, ingest and analytics write them in production).
    """
    from plantmrv.analytics.engine import Engine
    from plantmrv.dashboards.plan import plan_lines
    from plantmrv.lineprotocol import event_line
    from plantmrv.qualityrouting import with_quality_series
    from plantmrv.simulators import plants
    from plantmrv.simulators.faults import apply_faults, fault_lines

    info = WrittenData()
    end_s = end_ns // 10**9
    start_s = (end_s - hours * 3600) // 3600 * 3600
    ts = np.arange(start_s, end_s + 1, step_s, dtype=np.int64) * 10**9
    ts_min = np.arange(start_s, end_s + 1, 60)
    faults = injected_faults(end_ns)
    lines: list[str] = []
    for name, pt in plants.PLANT_TYPES.items():
        site, asset = pt.default_site, pt.default_asset
        values, quality = apply_faults(faults, site, asset, ts, plants.generate(name, ts, rng=11))
        write_batch(client, with_quality_series(plants.to_batch(site, asset, name, ts, values, quality)))
        info.tag_values[(pt.measurement, "site")] = [site]
        info.tag_values[(pt.measurement, "asset")] = [asset]
        first = next(iter(pt.fields))
        for q in (1, 2):
            q_ts = ts_min[::10]
            lines += _lp_lines("sample_quality", {"site": site, "asset": asset, "source": pt.measurement, "field": first},
                               {"value": np.full(len(q_ts), -1.0), "quality": np.full(len(q_ts), float(q))}, q_ts * 10**9 + q)
        n = len(ts_min)
        buffer = np.zeros(n)
        if f"gw-{site}" == STALLED_GATEWAY:  # the network stall: the gateway buffers what it cannot send
            stalled = ts_min >= end_s - FAULT_MIN["stall"] * 60
            buffer[stalled] = np.linspace(0.1, 0.9, stalled.sum()) * 512e6
        # coverage per asset and flush (every minute), stamped at the watermark; none from the stalled site
        cov = ts_min if f"gw-{site}" != STALLED_GATEWAY else ts_min[ts_min < end_s - FAULT_MIN["stall"] * 60]
        lines += _lp_lines("coverage", {"site": site, "asset": asset, "measurement": pt.measurement, "gateway": f"gw-{site}", "source": "opcua"},
                           {"tags_total": np.full(len(cov), float(len(pt.fields))), "tags_bad": np.zeros(len(cov))}, cov * 10**9)
        lines += _lp_lines("gateway", {"site": site, "gateway": f"gw-{site}"},
                           {"buffer_depth": buffer / 1000, "buffer_bytes": buffer, "buffer_max_bytes": np.full(n, 512e6), "samples_read": np.arange(n) * 60.0,
                            "samples_sent": np.arange(n) * 60.0, "samples_dropped": np.arange(n) // 30 * 1.0, "online": np.ones(n)}, ts_min * 10**9)
    silent = ts_min[ts_min <= end_s - 1800]
    lines += _lp_lines("gateway", {"site": plants.PLANT_TYPES["pump"].default_site, "gateway": SILENT_GATEWAY},
                       {"buffer_depth": np.zeros(len(silent)), "buffer_bytes": np.zeros(len(silent)), "buffer_max_bytes": np.full(len(silent), 64e6),
                        "samples_read": np.zeros(len(silent)), "samples_sent": np.zeros(len(silent)), "samples_dropped": np.zeros(len(silent)),
                        "online": np.ones(len(silent))}, silent * 10**9)
    # ingest health: ingest-1 dead-letters 3 messages in the last minutes, ingest-2 none since long ago
    dl = np.where(ts_min >= end_s - FAULT_MIN["dead_letters"] * 60, 3.0, 0.0)
    lines += _lp_lines("ingest", {"instance": "ingest-1"}, {"dead_letters": dl}, ts_min * 10**9)
    lines += _lp_lines("ingest", {"instance": "ingest-2"}, {"dead_letters": np.full(len(ts_min), 7.0)}, ts_min * 10**9)
    lines += fault_lines(faults)
    client.write_body(("\n".join(lines) + "\n").encode())
    info.tag_values[("gateway", "site")] = sorted(pt.default_site for pt in plants.PLANT_TYPES.values())
    info.tag_values[("gateway", "gateway")] = sorted([f"gw-{pt.default_site}" for pt in plants.PLANT_TYPES.values()] + [SILENT_GATEWAY])
    cfg = SETTINGS_CFG.analytics
    # closed intervals only, as the continuous engine writes them: minutes and hours before end_ns
    engine = Engine(cfg, client)
    engine.backfill(int(ts[0]), end_s // 60 * 60 * 10**9, interval_s=[60])
    engine.backfill(int(ts[0]), end_s // 3600 * 3600 * 10**9, interval_s=[3600])
    # the analytics of one project stopped half an hour ago: its newest minute results are not there
    stop_ns = (end_s - FAULT_MIN["analytics_stop"] * 60) * 10**9
    client.execute(f"DELETE FROM \"mrv\" WHERE \"project\" = 'binhduong-pv' AND \"interval\" = '1m' AND time >= {stop_ns}")
    # analytics events (meter, parameter change), as the engine records them; gaps and fills are
    # in the mrv points the backfill above computed (the network stall's gap in hcmc-vsd)
    ev = [
        ("danang-pumps", "pump1.energy_kwh", "meter_replacement", end_s - 5 * 3600, 1.0, "pump1.energy_kwh: declared replacement: old meter 1.2e+06 -> 1.2e+06, new meter 0 -> 0.3"),
        ("danang-pumps", "params", "params_change", end_s - 8 * 3600, 0.0, "params_hash 3f2a9c -> 7b1d20"),
    ]
    client.write_body(("\n".join(event_line("mrv_event", {"project": p, "site": "danang", "source": src}, {"kind": k, "duration_s": d, "detail": t}, t0 * 10**9)
                                  for p, src, k, t0, d, t in ev) + "\n").encode())
    client.write_body(("\n".join(plan_lines(SETTINGS)) + "\n").encode())
    info.tag_values[("mrv", "project")] = sorted(p.id for p in cfg.projects)
    info.sites = {name: (pt.default_site, pt.default_asset) for name, pt in plants.PLANT_TYPES.items()}
    info.faults = faults
    return info


#: The pinned "now" of the test dashboards: mid-day (Grafana's "today" and "this month" show
#: closed MRV intervals only), inside the example projects' monitoring period and fiscal year 2026.
FIXTURE_NOW_NS = 1_795_177_800 * 10**9  # 2026-11-20T12:30:00Z


def fixture_now_ns() -> int:
    return FIXTURE_NOW_NS


@pytest.fixture(scope="module")
def data_db(influxd):
    """One database filled once for the module: 24 h of simulated plants and their MRV results, ending now."""
    client = influxd.client(database="dashboards_panels", timeout_s=60)
    client.execute('DROP DATABASE "dashboards_panels"')
    client.create_database()
    end_ns = fixture_now_ns()
    info = write_simulated_data(client, end_ns=end_ns)
    yield client, end_ns, info
    client.close()


@pytest.mark.parametrize("uid,panel,target", list(_panel_targets()))
def test_panel_query_returns_its_fields_on_real_influxd(data_db, uid, panel, target):
    client, end_ns, _ = data_db
    dash = DASHBOARDS[uid]
    result = check.check_target(client, dash, panel, target, check.resolve_variables(client, dash), end_ns)
    assert check.select_aliases(target["query"]), f"panel {panel['title']!r}: query has no aliased field"
    assert result.status == "ok", str(result)


@pytest.mark.parametrize("uid,var", list(_variables()))
def test_variable_query_lists_the_written_tag_values(data_db, uid, var):
    client, _, info = data_db
    dash = DASHBOARDS[uid]
    values = check.resolve_variables(client, dash)
    found = check.tag_values(client, check.substitute_variables(var["query"], values))
    m = re.search(r'FROM "([^"]+)" WITH KEY = "([^"]+)"', var["query"])
    assert m
    expected = set(info.tag_values[(m.group(1), m.group(2))])
    plant = uid.removeprefix("plantmrv-")
    if (m.group(1), m.group(2)) == ("mrv", "project") and plant in build.PLANT_TYPES:
        # a plant dashboard lists only the projects of its plant type
        expected = {p["id"] for p in _example_projects() if p["plant_type"] == plant}
        assert expected
    if (m.group(1), m.group(2)) == ("gateway", "gateway"):
        # the gateways of the plant's site (the pump site has a second one)
        expected = {g for g in expected if g.startswith(f"gw-{info.sites[plant][0]}")}
        assert expected
    assert set(found) == expected, var["query"]


def _example_projects() -> list[dict]:
    import yaml

    path = Path(__file__).resolve().parent.parent / "examples" / "analytics.yaml"
    return yaml.safe_load(path.read_text())["analytics"]["projects"]


def test_asset_variable_follows_the_site_selection(data_db):
    client, _, info = data_db
    dash = DASHBOARDS["plantmrv-pump"]
    asset_var = next(v for v in dash["templating"]["list"] if v["name"] == "asset")
    site = info.sites["pump"][0]
    found = check.tag_values(client, check.substitute_variables(asset_var["query"], {"site": check.regex_group([site])}))
    assert found and set(found) == set(info.tag_values[("pump", "asset")])
    assert check.tag_values(client, check.substitute_variables(asset_var["query"], {"site": check.regex_group(["nowhere"])})) == []


def _run_panel(client, end_ns, uid, title, ref_id="A"):
    dash = DASHBOARDS[uid]
    panel = next(p for p in dash["panels"] if p["title"] == title)
    target = next(t for t in panel["targets"] if t["refId"] == ref_id)
    q = check.render_query(target["query"], panel, dash, check.resolve_variables(client, dash), end_ns)
    return client.query(q, epoch="ms")


def test_gateway_that_went_silent_shows_offline_instead_of_vanishing(data_db):
    client, end_ns, info = data_db
    res = _run_panel(client, end_ns, "plantmrv-pump", "Gateway online")
    last = {r.tags["gateway"]: r.columns["reports_3m"][-1] for r in res}
    assert last[SILENT_GATEWAY] == 0  # mapped to "offline", red
    assert last["gw-danang"] >= 0.01  # "online", green
    res = _run_panel(client, end_ns, "plantmrv-portfolio", "Gateways online")
    last = {r.tags["gateway"]: r.columns["reports_3m"][-1] for r in res}
    assert len(last) == len(info.sites) + 1
    assert [g for g, v in last.items() if v < 0.01] == [SILENT_GATEWAY]


def test_today_month_and_period_stats_sum_the_mrv_rows_of_their_own_range(data_db):
    client, end_ns, _ = data_db
    rows = {}
    for iv in ("1m", "1h"):
        (r,) = client.query(f"SELECT \"reduction_t_co2\" FROM \"mrv\" WHERE \"interval\" = '{iv}'")
        rows[iv] = (r.columns["time"], r.columns["reduction_t_co2"])
    from datetime import datetime
    from zoneinfo import ZoneInfo

    # "today" and "this month" are the portfolio's local ones (the programme office, Asia/Tokyo)
    assert DASHBOARDS["plantmrv-portfolio"]["timezone"] == "Asia/Tokyo"
    local = datetime.fromtimestamp(end_ns / 1e9, ZoneInfo("Asia/Tokyo"))
    midnight_ns = int(local.replace(hour=0, minute=0, second=0).timestamp()) * 10**9
    month_ns = int(local.replace(day=1, hour=0, minute=0, second=0).timestamp()) * 10**9
    assert midnight_ns == 1_795_100_400 * 10**9  # 2026-11-20 00:00 JST = 2026-11-19T15:00Z
    today = _run_panel(client, end_ns, "plantmrv-portfolio", "tCO2 reduced today")[0].columns["reduction"][0]
    month = _run_panel(client, end_ns, "plantmrv-portfolio", "tCO2 reduced this month")[0].columns["reduction"][0]
    period = _run_panel(client, end_ns, "plantmrv-portfolio", "tCO2 reduced, monitoring period")[0].columns["reduction"][0]
    ts, v = rows["1m"]
    assert today == pytest.approx(v[ts >= midnight_ns].sum(), rel=1e-9)
    ts, v = rows["1h"]
    assert month == pytest.approx(v[ts >= month_ns].sum(), rel=1e-9)
    assert period == pytest.approx(v.sum(), rel=1e-9)  # the fiscal-year range holds all 24 h written
    assert 0 < today < period  # 21.5 h today (JST) out of 24 h, the simulated plants all save energy


def test_cli_check_reports_every_panel_ok_on_the_data_and_empty_on_a_fresh_database(data_db, influxd, tmp_path):
    from typer.testing import CliRunner

    from plantmrv.app.cli import app

    client, end_ns, _ = data_db
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end_ns // 10**9))
    runner = CliRunner()
    r = runner.invoke(app, ["dashboards", "check", "--influx-url", influxd.url, "--database", "dashboards_panels", "--now", at])
    assert r.exit_code == 0, r.output
    n_targets = sum(len(p.get("targets", [])) for d in DASHBOARDS.values() for p in d["panels"])
    assert f"{n_targets} queries: {n_targets} ok, 0 empty, 0 error" in r.output
    empty = influxd.client(database="dashboards_empty")
    empty.execute('DROP DATABASE "dashboards_empty"')
    empty.create_database()
    r = runner.invoke(app, ["dashboards", "check", "--influx-url", influxd.url, "--database", "dashboards_empty", "--now", at])
    assert r.exit_code == 1
    assert f"0 ok, {n_targets} empty, 0 error" in r.output
    assert "plantmrv-pump: 'Flow' A: empty" in r.output
    r = runner.invoke(app, ["dashboards", "check", "--influx-url", influxd.url, "--database", "no_such_db"])
    assert r.exit_code == 1 and "database not found" in r.output
    r = runner.invoke(app, ["dashboards", "check", "--influx-url", influxd.url, "--now", "yesterday"])
    assert r.exit_code == 2 and "not an ISO 8601 time" in r.output


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# tag values with regex metacharacters, the regex delimiter and line-protocol specials (a backslash
# before those cannot be read back by InfluxDB 1.x, see plantmrv.lineprotocol, so none here)
_TAG_TEXT = st.text(alphabet="aA0._-()|/+*?[]{}^$ ,=", min_size=1, max_size=8).filter(lambda v: v.strip() == v)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sites=st.lists(_TAG_TEXT, min_size=2, max_size=4, unique=True), pick=st.integers(0, 3))
def test_a_site_selection_matches_exactly_the_selected_sites_whatever_their_characters(influx_db, sites, pick):
    """Grafana's regex formatting of a selection (``(a|b)``, values escaped) inside the dashboards'
    ``"site" =~ /^$site$/`` selects exactly those sites on influxd: a dot or a bracket in a site
    name never matches another site, and the listed values round-trip through SHOW TAG VALUES."""
    from plantmrv.batch import SampleBatch, Series

    table = [Series.of("pump", "power_kw", site=s, asset="p1") for s in sites]
    write_batch(influx_db, SampleBatch(table, np.arange(len(sites), dtype=np.int32), np.full(len(sites), 10**18, np.int64), np.arange(len(sites), dtype=np.float64), np.zeros(len(sites), np.uint8)))
    listed = check.tag_values(influx_db, 'SHOW TAG VALUES FROM "pump" WITH KEY = "site"')
    assert set(sites) <= set(listed)
    chosen = sites[: 1 + pick % len(sites)]
    q = check.substitute_variables('SELECT count("power_kw") AS "n" FROM "pump" WHERE "site" =~ /^$site$/ GROUP BY "site"', {"site": check.regex_group(chosen)})
    got = {r.tags["site"] for r in influx_db.query(q)}
    assert got == set(chosen), q


# --------------------------------------------------------------------------- annotations

#: (dashboard, annotation) pairs that show the events injected for them
ANNOTATIONS_WITH_EVENTS = {
    ("plantmrv-pump", "Gateway offline"),  # gw-danang-2 silent for 30 min
    ("plantmrv-pump", "Meter events"),  # meter replacement
    ("plantmrv-pump", "Parameter and methodology changes"),
    ("plantmrv-vsd", "Gaps and fills"),  # the network stall's hours: gap_filled_s > 0 in mrv
    ("plantmrv-pv", "Gaps and fills"),  # the PV plant's faults leave gaps too
    ("plantmrv-pump", "Simulator faults"),
    ("plantmrv-vsd", "Simulator faults"),
    ("plantmrv-ubcf", "Simulator faults"),
    ("plantmrv-wte", "Simulator faults"),
    ("plantmrv-pv", "Simulator faults"),
}


def test_every_plant_dashboard_has_the_five_annotations_and_each_shows_its_events_on_real_influxd(data_db):
    client, end_ns, _ = data_db
    plant = [d for uid, d in DASHBOARDS.items() if uid != "plantmrv-portfolio"]
    for d in plant:
        assert [a["name"] for a in d["annotations"]["list"]] == ["Gateway offline", "Gaps and fills", "Meter events", "Parameter and methodology changes", "Simulator faults"]
    results = check.check_annotations(client, plant, end_ns)
    assert len(results) == 5 * len(plant)
    assert not [str(r) for r in results if r.status == "error"]
    shown = {(r.dashboard, r.panel.removeprefix("annotation ")) for r in results if r.status == "ok"}
    assert shown == ANNOTATIONS_WITH_EVENTS
    offline = next(r for r in results if (r.dashboard, r.panel) == ("plantmrv-pump", "annotation Gateway offline"))
    assert offline.rows >= 25  # one event per silent minute of gw-danang-2 (30 min, the last one partial)


def test_annotations_show_the_events_of_the_selected_project_only(data_db):
    client, end_ns, _ = data_db
    dash = DASHBOARDS["plantmrv-vsd"]
    gaps = next(a for a in dash["annotations"]["list"] if a["name"] == "Gaps and fills")
    values = check.resolve_variables(client, dash)
    rows = client.query(check.render_query(gaps["target"]["query"], {}, dash, values, end_ns))
    assert len(rows[0].columns["gap_filled_s"]) >= 1 and min(rows[0].columns["gap_filled_s"]) > 0  # the stall's hours
    values["project"] = check.regex_group(["danang-pumps"])
    assert client.query(check.render_query(gaps["target"]["query"], {}, dash, values, end_ns)) == []


# --------------------------------------------------------------------------- alert rules

#: what each rule must fire on, given the injected faults (every other series stays quiet)
EXPECTED_FIRING = {
    "plantmrv-gateway-offline": [{"site": "danang", "gateway": SILENT_GATEWAY}],
    "plantmrv-gateway-buffer": [{"site": "hcmc", "gateway": STALLED_GATEWAY}],
    "plantmrv-ingest-dead-letters": [{"instance": "ingest-1"}],
    "plantmrv-tag-bad": [{"site": "yangon", "asset": "wte1", "source": "wte", "field": "lhv_mj_per_kg"}],
    "plantmrv-completeness": [{"project": "binhduong-pv"}, {"project": "hcmc-vsd"}],
    "plantmrv-analytics-lag": [{"project": "binhduong-pv"}],
    "plantmrv-vsd-data-stopped": [{"site": "hcmc", "asset": "intake1"}],
    "plantmrv-watermark-late": [{"site": "hcmc", "asset": "intake1", "gateway": STALLED_GATEWAY}],
    "plantmrv-pump-efficiency-danang-pumps": [{"site": "danang", "asset": "pump1"}],
    "plantmrv-ubcf-turbidity": [{"site": "haiphong", "asset": "ubcf1"}],
    "plantmrv-below-plan-binhduong-pv": [{"project": "binhduong-pv"}],
}
#: 13 h before "now" only the 18-hour PV meter outage is under way
EXPECTED_FIRING_13H_EARLIER = {k: v for k, v in EXPECTED_FIRING.items() if k in ("plantmrv-completeness", "plantmrv-below-plan-binhduong-pv")}
EXPECTED_FIRING_13H_EARLIER["plantmrv-completeness"] = [{"project": "binhduong-pv"}]


def _alert_settings():
    """The example's settings, with a one-day plan window (the fixture holds 24 h) and the
    waste-to-energy ex-ante scaled to the simulated plant (600 t/yr; the example's 5,000 t is the
    published figure of the real, larger plant)."""
    import dataclasses

    a = SETTINGS.dashboards.alerts.model_copy(update={"reductions_days": 1})
    projects = tuple(p.model_copy(update={"ex_ante_t_co2": 600.0}) if p.id == "yangon-wte" else p for p in SETTINGS.projects)
    return dataclasses.replace(SETTINGS, dashboards=SETTINGS.dashboards.model_copy(update={"alerts": a}), projects=projects)


ALERT_RULES = [r for g in alerts.alerting_document(_alert_settings())["groups"] for r in g["rules"]]


def test_every_kind_of_rule_has_a_fault_that_fires_it():
    families = {re.sub(r"-(danang|hcmc|yangon|binhduong|haiphong)-.*$", "", re.sub(r"^plantmrv-(ubcf|pump|vsd|wte|pv)-data-stopped$", "data-stopped", r["uid"])) for r in ALERT_RULES}
    fired = {re.sub(r"-(danang|hcmc|yangon|binhduong|haiphong)-.*$", "", re.sub(r"^plantmrv-(ubcf|pump|vsd|wte|pv)-data-stopped$", "data-stopped", u)) for u in EXPECTED_FIRING}
    assert families == fired
    assert set(EXPECTED_FIRING) <= {r["uid"] for r in ALERT_RULES}


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["uid"])
def test_alert_rule_fires_on_its_fault_and_only_there_on_real_influxd(data_db, rule):
    client, end_ns, _ = data_db
    now = check.evaluate_rule(client, rule, end_ns)
    assert now, f"{rule['uid']}: the query finds no series at all: {rule['data'][0]['model']['query']}"
    firing = sorted((dict(i.labels) for i in now if i.firing), key=lambda d: sorted(d.items()))
    assert firing == EXPECTED_FIRING.get(rule["uid"], []), [(dict(i.labels), i.value) for i in now]
    if rule["uid"].startswith("plantmrv-below-plan-"):
        return  # a sum over a day: 13 h earlier its window holds 11 h of data (the other projects are the control)
    before = check.evaluate_rule(client, rule, end_ns - 13 * 3600 * 10**9)
    firing = sorted((dict(i.labels) for i in before if i.firing), key=lambda d: sorted(d.items()))
    assert firing == EXPECTED_FIRING_13H_EARLIER.get(rule["uid"], []), "fires before its fault was injected"


def test_a_rule_with_a_for_duration_fires_only_once_the_condition_held_that_long(data_db):
    client, end_ns, _ = data_db
    rule = next(r for r in ALERT_RULES if r["uid"] == "plantmrv-gateway-buffer")
    assert rule["for"] == "2m"
    # the stalled gateway's buffer (10 % -> 90 % over the 40-min stall) passes 80 % of its max
    # at minute 36: pending at minutes 36 and 37, firing from minute 38 (held for 2 min)
    stall_start_s = (end_ns // 10**9) - FAULT_MIN["stall"] * 60
    states = [any(i.firing for i in check.evaluate_rule(client, rule, (stall_start_s + k * 60) * 10**9)) for k in range(35, 41)]
    assert states == [False, False, False, True, True, True]
    held = [any(c for _, c in check.evaluate_once(client, rule, (stall_start_s + k * 60) * 10**9).values()) for k in range(35, 41)]
    assert held == [False, True, True, True, True, True]


def test_cli_check_prints_firing_alerts_and_annotation_events(data_db, influxd):
    from typer.testing import CliRunner

    from plantmrv.app.cli import app

    _, end_ns, _ = data_db
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end_ns // 10**9))
    r = CliRunner().invoke(app, ["dashboards", "check", "--influx-url", influxd.url, "--database", "dashboards_panels", "--now", at, "--alerts", "--annotations"])
    assert r.exit_code == 0, r.output
    assert "plantmrv platform: 'alert Gateway offline' plantmrv-gateway-offline: ok" in r.output
    assert "firing: [{'gateway': 'gw-danang-2', 'site': 'danang'}]" in r.output
    assert re.search(r"plantmrv-vsd: 'annotation Gaps and fills' Anno: ok \([1-9]\d* rows", r.output), r.output  # the stall's hours
