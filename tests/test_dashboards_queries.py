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

from plantmrv.dashboards import build, check

DASHBOARDS = build.build_all()

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


def write_simulated_data(client, end_ns: int, hours: int = SIM_HOURS, step_s: int = SIM_STEP_S) -> WrittenData:
    """Simulated plants + engine backfill + quality/gateway points; returns the tag values written."""
    import yaml

    from plantmrv.analytics.config import AnalyticsConfig
    from plantmrv.analytics.engine import Engine
    from plantmrv.simulators import plants

    info = WrittenData()
    end_s = end_ns // 10**9
    start_s = (end_s - hours * 3600) // 3600 * 3600
    ts = np.arange(start_s, end_s + 1, step_s, dtype=np.int64) * 10**9
    ts_min = np.arange(start_s, end_s + 1, 60)
    lines: list[str] = []
    for name, pt in plants.PLANT_TYPES.items():
        site, asset = pt.default_site, pt.default_asset
        client.write_batch(plants.to_batch(site, asset, name, ts, plants.generate(name, ts, rng=11)))
        info.tag_values[(pt.measurement, "site")] = [site]
        info.tag_values[(pt.measurement, "asset")] = [asset]
        first = next(iter(pt.fields))
        for quality in (1, 2):
            q_ts = ts_min[::10]
            lines += _lp_lines("sample_quality", {"site": site, "asset": asset, "source": pt.measurement, "field": first},
                               {"value": np.full(len(q_ts), -1.0), "quality": np.full(len(q_ts), float(quality))}, q_ts * 10**9 + quality)
        n = len(ts_min)
        lines += _lp_lines("gateway", {"site": site, "gateway": f"gw-{site}"},
                           {"buffer_depth": np.zeros(n), "buffer_bytes": np.zeros(n), "samples_read": np.arange(n) * 60.0,
                            "samples_sent": np.arange(n) * 60.0, "samples_dropped": np.arange(n) // 30 * 1.0, "online": np.ones(n)}, ts_min * 10**9)
    silent = ts_min[ts_min <= end_s - 1800]
    lines += _lp_lines("gateway", {"site": plants.PLANT_TYPES["pump"].default_site, "gateway": SILENT_GATEWAY},
                       {"buffer_depth": np.zeros(len(silent)), "buffer_bytes": np.zeros(len(silent)), "samples_read": np.zeros(len(silent)),
                        "samples_sent": np.zeros(len(silent)), "samples_dropped": np.zeros(len(silent)), "online": np.ones(len(silent))}, silent * 10**9)
    client.write_body(("\n".join(lines) + "\n").encode())
    info.tag_values[("gateway", "site")] = sorted(pt.default_site for pt in plants.PLANT_TYPES.values())
    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "examples" / "analytics.yaml").read_text())
    cfg = AnalyticsConfig.model_validate(doc["analytics"])
    # closed intervals only, as the continuous engine writes them: minutes and hours before end_ns
    engine = Engine(cfg, client)
    engine.backfill(int(ts[0]), end_s // 60 * 60 * 10**9, interval_s=[60])
    engine.backfill(int(ts[0]), end_s // 3600 * 3600 * 10**9, interval_s=[3600])
    info.tag_values[("mrv", "project")] = sorted(p.id for p in cfg.projects)
    info.sites = {name: (pt.default_site, pt.default_asset) for name, pt in plants.PLANT_TYPES.items()}
    return info


def fixture_now_ns() -> int:
    """The "now" of the test dashboards: the latest 12:30 UTC that has passed.

    Grafana's "today" and "this month" show closed MRV intervals only, so they are empty in the
    first minute of a day and the first hour of a month; a mid-day "now" (the checks take "now"
    as a parameter) keeps the test independent of when it runs.
    """
    now_s = time.time()
    return int(((now_s - 45000) // 86400 * 86400 + 45000) * 10**9)


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
    end_s = end_ns // 10**9
    midnight_ns = end_s // 86400 * 86400 * 10**9
    t = time.gmtime(end_s)
    month_ns = int(__import__("calendar").timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)) * 10**9)
    today = _run_panel(client, end_ns, "plantmrv-portfolio", "tCO2 reduced today")[0].columns["reduction"][0]
    month = _run_panel(client, end_ns, "plantmrv-portfolio", "tCO2 reduced this month")[0].columns["reduction"][0]
    period = _run_panel(client, end_ns, "plantmrv-portfolio", "tCO2 reduced, monitoring period")[0].columns["reduction"][0]
    ts, v = rows["1m"]
    assert today == pytest.approx(v[ts >= midnight_ns].sum(), rel=1e-9)
    ts, v = rows["1h"]
    assert month == pytest.approx(v[ts >= month_ns].sum(), rel=1e-9)
    assert period == pytest.approx(v.sum(), rel=1e-9)  # the fiscal-year range holds all 24 h written
    assert 0 < today < period  # 12.5 h today out of 24 h, the simulated plants all save energy


def test_cli_check_reports_every_panel_ok_on_the_data_and_empty_on_a_fresh_database(data_db, influxd, tmp_path):
    from typer.testing import CliRunner

    from plantmrv.cli import app

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
    influx_db.write_batch(SampleBatch(table, np.arange(len(sites), dtype=np.int32), np.full(len(sites), 10**18, np.int64), np.arange(len(sites), dtype=np.float64), np.zeros(len(sites), np.uint8)))
    listed = check.tag_values(influx_db, 'SHOW TAG VALUES FROM "pump" WITH KEY = "site"')
    assert set(sites) <= set(listed)
    chosen = sites[: 1 + pick % len(sites)]
    q = check.substitute_variables('SELECT count("power_kw") AS "n" FROM "pump" WHERE "site" =~ /^$site$/ GROUP BY "site"', {"site": check.regex_group(chosen)})
    got = {r.tags["site"] for r in influx_db.query(q)}
    assert got == set(chosen), q
