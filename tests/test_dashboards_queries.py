"""Every panel query and every template-variable query of the generated dashboards runs on a real
influxd holding plant, quality, gateway and MRV data, and returns its expected fields.

Grafana's InfluxDB datasource is emulated exactly where it touches the query text: ``$timeFilter``
becomes ``time >= <from>ms and time <= <to>ms``; ``$__interval`` becomes the panel's interval (at
least its min interval); a template variable with *All* selected becomes the regex group of all
its values, each regex-escaped (``(danang|hcmc)``), which is what Grafana interpolates into
``=~ /^$site$/``; a panel's relative time (``now/d``, ``now/M``, ``5m``) replaces the dashboard
range. The values of ``site``, ``asset`` and ``project`` come from running the dashboards' own
``SHOW TAG VALUES`` queries, so those are tested too.

Data: the plant simulators (``plantmrv.simulators.plants``) when they are installed, otherwise
representative points written here with the exact measurements, tags and fields of
``docs/data-model.md``; ``mrv`` rows likewise from the analytics engine's backfill when present,
else written here with every field of the data model.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from plantmrv.dashboards import build

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


def write_dashboard_data(client, end_ns: int, hours: int = 3) -> WrittenData:
    """Plant, sample_quality, gateway and mrv points for ``hours`` ending at ``end_ns`` (1-minute step)."""
    info = WrittenData()
    rng = np.random.default_rng(7)
    end_s = end_ns // 1_000_000_000
    ts = np.arange(end_s - hours * 3600, end_s + 1, 60)
    lines: list[str] = []
    for m, fields in FIELDS.items():
        site = PLANT_SITES[m]
        for k, asset in enumerate(ASSETS):
            cols = {}
            for name, spec in fields.items():
                if isinstance(spec, tuple):
                    cols[name] = spec[0] + spec[1] * np.sin(np.arange(len(ts)) / 17.0 + k) + rng.normal(0, spec[1] / 10, len(ts))
                elif spec == "flag":
                    cols[name] = (np.arange(len(ts)) % 60 < 5).astype(float)
                elif spec == "on":
                    cols[name] = np.ones(len(ts))
                else:  # cumulative meter: increment per minute
                    step = float(spec.split(":")[1])
                    cols[name] = 1000.0 * (k + 1) + np.cumsum(np.full(len(ts), step))
            lines += _lp_lines(m, {"site": site, "asset": asset}, cols, ts * 10**9)
            # non-GOOD samples: one BAD and one UNCERTAIN every 10 minutes on the first field
            first = next(iter(fields))
            q_ts = ts[::10]
            for quality in (1, 2):
                lines += _lp_lines("sample_quality", {"site": site, "asset": asset, "source": m, "field": first},
                                   {"value": np.full(len(q_ts), -1.0), "quality": np.full(len(q_ts), float(quality))}, q_ts * 10**9 + quality)
        info.tag_values[(m, "site")] = [site]
        info.tag_values[(m, "asset")] = list(ASSETS)
        # gateway health every minute, one gateway per site
        n = len(ts)
        lines += _lp_lines("gateway", {"site": site, "gateway": f"gw-{site}"},
                           {"buffer_depth": rng.integers(0, 5, n).astype(float), "buffer_bytes": rng.integers(0, 5000, n).astype(float),
                            "samples_read": np.arange(n) * 120.0, "samples_sent": np.arange(n) * 120.0,
                            "samples_dropped": np.arange(n) // 30 * 1.0, "online": np.ones(n)}, ts * 10**9)
    # a second gateway at the pump site that went silent 30 minutes before the end
    silent = ts[ts <= end_s - 1800]
    lines += _lp_lines("gateway", {"site": PLANT_SITES["pump"], "gateway": SILENT_GATEWAY},
                       {"buffer_depth": np.zeros(len(silent)), "buffer_bytes": np.zeros(len(silent)), "samples_read": np.zeros(len(silent)),
                        "samples_sent": np.zeros(len(silent)), "samples_dropped": np.zeros(len(silent)), "online": np.ones(len(silent))}, silent * 10**9)
    info.tag_values[("gateway", "site")] = sorted(PLANT_SITES.values())
    # mrv: minute and hourly results per project (hour rows stamped at the hour start, current hour included)
    hours_ts = np.arange((ts[0] // 3600) * 3600, (end_s // 3600) * 3600 + 1, 3600)
    for m, project in PROJECTS.items():
        for interval, t_arr, scale in (("1m", ts, 1 / 60), ("1h", hours_ts, 1.0)):
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
    body = ("\n".join(lines) + "\n").encode()
    client.write_body(body)
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


@pytest.fixture(scope="module")
def data_db(influxd):
    """One database filled once for the module: 3 hours of 1-minute data ending now."""
    client = influxd.client(database="dashboards_panels")
    client.execute('DROP DATABASE "dashboards_panels"')
    client.create_database()
    end_ns = time.time_ns() // 1_000_000_000 * 1_000_000_000
    info = write_dashboard_data(client, end_ns=end_ns, hours=3)
    yield client, end_ns, info
    client.close()


def _regex_group(values: list[str]) -> str:
    return "(" + "|".join(re.escape(v).replace("/", "\\/") for v in values) + ")"


def _tag_values(client, query: str) -> list[str]:
    res = client.query(query)
    return sorted({str(v) for r in res for v in r.columns.get("value", [])})


def _resolve_variables(client, dash: dict) -> dict[str, str]:
    """Run each query variable in order (later ones may use earlier ones), select All."""
    values: dict[str, str] = {}
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        q = _substitute_vars(var["query"], values)
        found = _tag_values(client, q)
        assert found, f"{dash['uid']}: variable {var['name']} query returned no values: {q}"
        values[var["name"]] = _regex_group(found)
    return values


def _substitute_vars(q: str, values: dict[str, str]) -> str:
    for name in sorted(values, key=len, reverse=True):
        q = q.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return q


def _time_range(panel: dict, dash: dict, end_ns: int) -> tuple[int, int]:
    end_ms = end_ns // 1_000_000
    rel = panel.get("timeFrom")
    if rel is None:
        rel = dash["time"]["from"]
    t = time.gmtime(end_ns / 1e9)
    if rel == "now/d":
        start = _utc(t.tm_year, t.tm_mon, t.tm_mday)
    elif rel == "now/M":
        start = _utc(t.tm_year, t.tm_mon, 1)
    elif rel == "now/fy":
        year = t.tm_year if t.tm_mon >= dash.get("fiscalYearStartMonth", 0) + 1 else t.tm_year - 1
        start = _utc(year, dash.get("fiscalYearStartMonth", 0) + 1, 1)
    else:
        m = re.fullmatch(r"(?:now-)?(\d+)([smhd])", rel)
        assert m, f"unhandled relative time {rel!r}"
        start = end_ms // 1000 - int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return start * 1000, end_ms


def _utc(y: int, mo: int, d: int) -> int:
    import calendar

    return calendar.timegm((y, mo, d, 0, 0, 0, 0, 0, 0))


def _interval(panel: dict, start_ms: int, end_ms: int) -> str:
    """Grafana's $__interval: range / max data points (~ panel width in px), at least the min interval."""
    seconds = max(1, (end_ms - start_ms) // 1000 // 1000)
    if panel.get("interval"):
        m = re.fullmatch(r"(\d+)([smhd])", panel["interval"])
        seconds = max(seconds, int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])
    return f"{seconds}s"


def _outer_aliases(q: str) -> list[str]:
    head = q.split(" FROM ", 1)[0]
    return re.findall(r' AS "([^"]+)"', head)


@pytest.mark.parametrize("uid,panel,target", list(_panel_targets()))
def test_panel_query_returns_its_fields_on_real_influxd(data_db, uid, panel, target):
    client, end_ns, _ = data_db
    dash = DASHBOARDS[uid]
    values = _resolve_variables(client, dash)
    start_ms, end_ms = _time_range(panel, dash, end_ns)
    q = target["query"]
    q = q.replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    q = q.replace("$__interval", _interval(panel, start_ms, end_ms))
    q = _substitute_vars(q, values)
    assert not re.search(r"\$(\w|\{)", q), f"unsubstituted variable left in {q}"
    results = client.query(q, epoch="ms")
    assert results, f"panel {panel['title']!r} would show 'No data': {q}"
    expected = _outer_aliases(target["query"])
    assert expected, f"panel {panel['title']!r}: query has no aliased field"
    for name in expected:
        cols = [r.columns[name] for r in results if name in r.columns]
        assert cols, f"panel {panel['title']!r}: field {name!r} missing from the result of {q}"
        vals = np.concatenate([np.asarray(c, dtype=np.float64) for c in cols])
        assert np.isfinite(vals).any(), f"panel {panel['title']!r}: field {name!r} is all null for {q}"


@pytest.mark.parametrize("uid,var", list(_variables()))
def test_variable_query_lists_the_written_tag_values(data_db, uid, var):
    client, _, info = data_db
    dash = DASHBOARDS[uid]
    values = _resolve_variables(client, dash)
    found = _tag_values(client, _substitute_vars(var["query"], values))
    m = re.search(r'FROM "([^"]+)" WITH KEY = "([^"]+)"', var["query"])
    assert m
    assert set(found) == set(info.tag_values[(m.group(1), m.group(2))]), var["query"]


def test_asset_variable_follows_the_site_selection(data_db):
    client, _, info = data_db
    dash = DASHBOARDS["plantmrv-pump"]
    asset_var = next(v for v in dash["templating"]["list"] if v["name"] == "asset")
    site = PLANT_SITES["pump"]
    found = _tag_values(client, _substitute_vars(asset_var["query"], {"site": _regex_group([site])}))
    assert found and set(found) == set(info.tag_values[("pump", "asset")])
    assert _tag_values(client, _substitute_vars(asset_var["query"], {"site": _regex_group(["nowhere"])})) == []


def _run_panel(client, end_ns, uid, title, ref_id="A"):
    dash = DASHBOARDS[uid]
    panel = next(p for p in dash["panels"] if p["title"] == title)
    target = next(t for t in panel["targets"] if t["refId"] == ref_id)
    start_ms, end_ms = _time_range(panel, dash, end_ns)
    q = target["query"].replace("$timeFilter", f"time >= {start_ms}ms and time <= {end_ms}ms")
    q = _substitute_vars(q.replace("$__interval", _interval(panel, start_ms, end_ms)), _resolve_variables(client, dash))
    return client.query(q, epoch="ms")


def test_gateway_that_went_silent_shows_offline_instead_of_vanishing(data_db):
    client, end_ns, _ = data_db
    res = _run_panel(client, end_ns, "plantmrv-pump", "Gateway online")
    last = {r.tags["gateway"]: r.columns["reports_3m"][-1] for r in res}
    assert last[SILENT_GATEWAY] == 0  # mapped to "offline", red
    assert last["gw-danang"] >= 0.01  # "online", green
    online = _run_panel(client, end_ns, "plantmrv-portfolio", "Gateways online", "A")
    known = _run_panel(client, end_ns, "plantmrv-portfolio", "Gateways online", "B")
    assert online[0].columns["online"][0] == len(PLANT_SITES)
    assert known[0].columns["known"][0] == len(PLANT_SITES) + 1


def test_today_and_month_stats_sum_only_their_own_range(data_db):
    client, end_ns, _ = data_db
    today = _run_panel(client, end_ns, "plantmrv-portfolio", "tCO2 reduced today")[0].columns["reduction"][0]
    period = _run_panel(client, end_ns, "plantmrv-portfolio", "tCO2 reduced, monitoring period")[0].columns["reduction"][0]
    minutes_today = (end_ns // 10**9) % 86400 // 60 + 1
    written_minutes = 3 * 60 + 1
    expected_today = len(PROJECTS) * min(minutes_today, written_minutes) * (500 - 400) / 60 * 0.00066
    assert today == pytest.approx(expected_today, rel=1e-9)
    hours = len(np.arange(((end_ns // 10**9) - 3 * 3600) // 3600 * 3600, (end_ns // 10**9) // 3600 * 3600 + 1, 3600))
    assert period == pytest.approx(len(PROJECTS) * hours * 100 * 0.00066, rel=1e-9)
