"""Generated dashboards: stable output, committed files up to date, Grafana's schema as encoded in
grafana-foundation-sdk, units and thresholds, variables, provisioning files that match the compose
stack, and the ``plantmrv dashboards build`` command."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from grafana_foundation_sdk.models import units as sdk_units
from plantmrv.app.cli import app as cli_app
from plantmrv.dashboards import alerts, build, panels
from plantmrv.dashboards.settings import BuildSettings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "analytics.yaml"
SETTINGS = BuildSettings.load(EXAMPLE)
ALERTING = ROOT / "dashboards" / "provisioning" / "alerting" / "plantmrv-alerting.yaml"
GENERATED = ROOT / "dashboards" / "generated"
PROVISIONING = ROOT / "dashboards" / "provisioning"
EXPECTED_UIDS = {"plantmrv-ubcf", "plantmrv-pump", "plantmrv-vsd", "plantmrv-wte", "plantmrv-pv", "plantmrv-portfolio"}
#: every built-in Grafana unit id the SDK knows
SDK_UNITS = {v for k, v in vars(sdk_units).items() if not k.startswith("_") and isinstance(v, str)}


def _data_panels(dash):
    return [p for p in dash["panels"] if p["type"] != "row"]


def test_build_twice_gives_identical_json():
    a = {uid: build.render(d) for uid, d in build.build_all(SETTINGS).items()}
    b = {uid: build.render(d) for uid, d in build.build_all(SETTINGS).items()}
    assert a == b
    assert set(a) == EXPECTED_UIDS


def test_committed_json_and_inventory_equal_a_fresh_build():
    dashboards = build.build_all(SETTINGS)
    fresh = {f"{uid}.json": build.render(d) for uid, d in dashboards.items()}
    fresh["PANELS.md"] = build.inventory(dashboards)
    committed = {p.name: p.read_text(encoding="utf-8") for p in GENERATED.iterdir() if p.is_file()}
    assert set(committed) == set(fresh), "run: plantmrv dashboards build -c examples/analytics.yaml"
    for name, text in fresh.items():
        assert committed[name] == text, f"{name} is stale: run `plantmrv dashboards build -c examples/analytics.yaml`"
    assert ALERTING.read_text(encoding="utf-8") == alerts.render_alerting(SETTINGS), "alert rules stale: run `plantmrv dashboards build -c examples/analytics.yaml`"


@pytest.mark.parametrize("uid", sorted(EXPECTED_UIDS))
def test_generated_dashboard_passes_the_sdk_schema(uid):
    assert build.schema_errors(build.build_all(SETTINGS)[uid]) == []


def test_schema_check_rejects_unknown_keys_bad_enums_foreign_targets_and_overlaps():
    dash = copy.deepcopy(build.build_all(SETTINGS)["plantmrv-pump"])
    ts = [p for p in dash["panels"] if p["type"] == "timeseries"]
    ts[0]["fieldConfig"]["defaults"]["colour"] = "red"
    ts[0]["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "zigzag"
    ts[1]["targets"][0]["datasource"]["type"] = "prometheus"
    ts[2]["gridPos"] = dict(ts[0]["gridPos"])
    errors = "\n".join(build.schema_errors(dash))
    assert "colour: not in the schema" in errors
    assert "'zigzag' is not one of" in errors
    assert "datasource is not influxdb" in errors
    assert "overlaps panel" in errors


def test_uids_are_stable_and_every_dashboard_has_a_version():
    for uid, dash in build.build_all(SETTINGS).items():
        assert dash["uid"] == uid and re.fullmatch(r"plantmrv-[a-z]+", uid)
        assert isinstance(dash["version"], int) and dash["version"] >= 1
        assert "plantmrv" in dash["tags"]


def test_every_panel_tells_the_operator_what_it_shows():
    for uid, dash in build.build_all(SETTINGS).items():
        for p in _data_panels(dash):
            assert len(p.get("description", "")) >= 20, f"{uid}: panel {p['title']!r} has no description"


def test_every_panel_has_a_valid_unit_and_every_axis_a_label():
    for uid, dash in build.build_all(SETTINGS).items():
        for p in _data_panels(dash):
            unit = p["fieldConfig"]["defaults"].get("unit")
            assert unit, f"{uid}: panel {p['title']!r} has no unit"
            assert unit in SDK_UNITS or unit.startswith("suffix: "), f"{uid}: panel {p['title']!r}: {unit!r} is no Grafana unit id"
            for o in p["fieldConfig"]["overrides"]:
                for prop in o["properties"]:
                    if prop["id"] == "unit":
                        assert prop["value"] in SDK_UNITS or prop["value"].startswith("suffix: ")
            if p["type"] == "timeseries":
                assert p["fieldConfig"]["defaults"]["custom"].get("axisLabel"), f"{uid}: {p['title']!r} has no axis label"


def test_operator_thresholds_are_on_the_panels_an_operator_acts_on():
    want = {
        "plantmrv-ubcf": {"Turbidity": SETTINGS.dashboards.alerts.treated_turbidity_ntu, "Ammonium": 0.3},
        "plantmrv-pump": {"Wire-to-water efficiency": 0.6},
        "plantmrv-pv": {"Module temperature": 75, "Inverter efficiency": 0.94},
        "plantmrv-vsd": {"Output frequency": 50.5},
        "plantmrv-wte": {"Auxiliary fuel": 50},
    }
    shared = {"MRV data completeness": 0.9, "Gateway buffer fill": 0.8, "Samples dropped": 1, "Non-GOOD samples": 1, "Gateway online": 0.01}
    for uid, dash in build.build_all(SETTINGS).items():
        by_title = {p["title"]: p for p in _data_panels(dash)}
        for title, value in {**want.get(uid, {}), **(shared if uid != "plantmrv-portfolio" else {})}.items():
            steps = by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert value in [s["value"] for s in steps], f"{uid}: {title!r} lacks threshold {value}: {steps}"
            if by_title[title]["type"] == "timeseries":
                assert by_title[title]["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"


def test_plant_dashboards_have_their_rows_and_five_variables():
    for key, pt in build.PLANT_TYPES.items():
        dash = build.build_all(SETTINGS)[f"plantmrv-{key}"]
        rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
        assert rows == ["Process", "Energy", "MRV results", "Co-benefits", "Data quality", "Gateway health"]
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert list(variables) == ["datasource", "site", "asset", "project", "gateway"]
        assert variables["gateway"]["query"] == 'SHOW TAG VALUES FROM "gateway" WITH KEY = "gateway" WHERE "site" =~ /^$site$/'
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "influxdb"
        assert variables["site"]["query"] == f'SHOW TAG VALUES FROM "{pt.measurement}" WITH KEY = "site"'
        assert variables["project"]["query"] == (
            f'SHOW TAG VALUES FROM "mrv" WITH KEY = "project" WHERE "plant_type" = \'{key}\' AND "site" =~ /^$site$/'
        )
        for v in ("site", "asset", "project", "gateway"):
            assert variables[v]["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
            assert variables[v]["multi"] and variables[v]["includeAll"]
        measurements = {m for p in _data_panels(dash) for t in p["targets"] for m in re.findall(r'FROM "(\w+)"', t["query"])}
        assert measurements == {pt.measurement, "mrv", "sample_quality", "gateway"}


def test_portfolio_shows_today_month_period_energy_completeness_gateways():
    dash = build.build_all(SETTINGS)["plantmrv-portfolio"]
    by_title = {p["title"]: p for p in _data_panels(dash)}
    assert by_title["tCO2 reduced today"]["timeFrom"] == "now/d"
    assert by_title["tCO2 reduced this month"]["timeFrom"] == "now/M"
    assert "timeFrom" not in by_title["tCO2 reduced, monitoring period"]
    assert dash["time"]["from"] == "now/fy" and dash["fiscalYearStartMonth"] == 3  # JP fiscal year: April
    for title in ("Energy saved, monitoring period", "Data completeness", "Gateways online", "Projects, monitoring period"):
        assert title in by_title


def test_every_query_is_raw_influxql_on_the_datasource_variable():
    for uid, dash in build.build_all(SETTINGS).items():
        for p in _data_panels(dash):
            assert p["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
            assert p["targets"], f"{uid}: {p['title']!r} has no query"
            for t in p["targets"]:
                assert t["rawQuery"] is True and t["query"].startswith("SELECT ")
                assert "$timeFilter" in t["query"], f"{uid}: {p['title']!r} ignores the time range"
                assert "from(bucket" not in t["query"] and "|>" not in t["query"]


def test_provisioning_datasource_is_influxql_on_the_compose_influxdb_with_the_read_only_token():
    doc = yaml.safe_load((PROVISIONING / "datasources" / "plantmrv-influxdb.yaml").read_text())
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["type"] == "influxdb" and ds["url"] == "http://influxdb:8086"
    assert ds["uid"] == panels.DEFAULT_DATASOURCE_UID and ds["name"] == panels.DEFAULT_DATASOURCE_NAME
    assert ds["jsonData"]["version"] == "InfluxQL" and ds["jsonData"]["dbName"] == "plantmrv"
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"]["httpHeaderValue1"] == "Token $__file{/run/influx-tokens/reader.token}"
    for dash in build.build_all(SETTINGS).values():
        current = next(v for v in dash["templating"]["list"] if v["name"] == "datasource")["current"]
        assert current["value"] == ds["uid"]


def test_provisioning_provider_reads_the_directory_compose_mounts_the_generated_json_into():
    doc = yaml.safe_load((PROVISIONING / "dashboards" / "plantmrv.yaml").read_text())
    (prov,) = doc["providers"]
    assert prov["type"] == "file" and prov["options"]["path"] == "/var/lib/grafana/dashboards/plantmrv"
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    mounts = {m.split(":")[1]: m.split(":")[0] for m in compose["services"]["grafana"]["volumes"] if isinstance(m, str)}
    assert (ROOT / "deploy" / mounts[prov["options"]["path"]]).resolve() == GENERATED
    assert (ROOT / "deploy" / mounts["/etc/grafana/provisioning"]).resolve() == PROVISIONING
    assert "influx-tokens:/run/influx-tokens:ro" in compose["services"]["grafana"]["volumes"]


def test_cli_build_writes_reports_and_removes_stale_files(tmp_path):
    runner = CliRunner()
    out = tmp_path / "gen"
    args = ["dashboards", "build", "--out", str(out), "-c", str(EXAMPLE), "--alerting-dir", str(tmp_path / "alerting")]
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    assert {p.stem for p in out.glob("*.json")} == EXPECTED_UIDS
    assert r.output.count(": created") == 8  # 6 dashboards + PANELS.md + alerting
    assert (tmp_path / "alerting" / "plantmrv-alerting.yaml").read_text() == ALERTING.read_text()
    (out / "plantmrv-retired.json").write_text("{}")
    (out / "plantmrv-pump.json").write_text("{}")
    r = runner.invoke(cli_app, args)
    assert r.exit_code == 0, r.output
    assert "plantmrv-pump.json: updated" in r.output and "plantmrv-retired.json: removed" in r.output
    assert r.output.count(": unchanged") == 7
    assert not (out / "plantmrv-retired.json").exists()
    for uid in EXPECTED_UIDS:
        assert (out / f"{uid}.json").read_text() == (GENERATED / f"{uid}.json").read_text()


# --------------------------------------------------------------------------- alert rules


def test_alerting_provisioning_passes_the_sdk_rule_model_and_grafanas_file_keys():
    doc = yaml.safe_load(ALERTING.read_text())
    assert alerts.alerting_schema_errors(doc) == []
    assert {g["name"] for g in doc["groups"]} == {"plantmrv platform", "plantmrv portfolio"} | {f"plantmrv {k}" for k in build.PLANT_TYPES}
    assert doc["policies"][0]["receiver"] == doc["contactPoints"][0]["name"]
    assert doc["contactPoints"][0]["receivers"][0]["settings"] == {"addresses": "$PLANTMRV_ALERT_EMAIL"}


def test_alerting_schema_check_rejects_unknown_keys_bad_states_variables_and_dangling_receivers():
    doc = yaml.safe_load(ALERTING.read_text())
    rule = doc["groups"][0]["rules"][0]
    rule["noDataState"] = "Maybe"
    rule["colour"] = "red"
    rule["data"][0]["model"]["query"] = rule["data"][0]["model"]["query"].replace("WHERE", 'WHERE "site" =~ /^$site$/ AND')
    rule["condition"] = "Z"
    doc["policies"][0]["receiver"] = "nobody"
    doc["groups"][1]["rules"][0]["uid"] = rule["uid"]
    errors = "\n".join(alerts.alerting_schema_errors(doc))
    for text in ("does not round-trip", "noDataState/execErrState", "no template variable", "condition 'Z'", "receiver 'nobody'", "not unique"):
        assert text in errors, text


def test_alert_summaries_use_only_the_labels_their_query_groups_by():
    doc = yaml.safe_load(ALERTING.read_text())
    for g in doc["groups"]:
        for r in g["rules"]:
            q = r["data"][0]["model"]["query"]
            group_by = set(re.findall(r'"(\w+)"', q.split("GROUP BY", 1)[1])) if "GROUP BY" in q else set()
            used = set(re.findall(r"\$labels\.(\w+)", r["annotations"]["summary"]))
            assert used and used <= group_by, (r["uid"], used, group_by)
            assert r["annotations"]["__dashboardUid__"] in EXPECTED_UIDS


def test_rules_come_from_the_plant_types_and_projects():
    uids = {r["uid"] for g in yaml.safe_load(ALERTING.read_text())["groups"] for r in g["rules"]}
    assert {f"plantmrv-{k}-data-stopped" for k in build.PLANT_TYPES} <= uids
    credited = {p.id for p in SETTINGS.projects if p.ex_ante_t_co2 is not None and p.plant_type != "ubcf"}
    assert {u.removeprefix("plantmrv-below-plan-") for u in uids if u.startswith("plantmrv-below-plan-")} == credited
    pump = next(r for g in yaml.safe_load(ALERTING.read_text())["groups"] for r in g["rules"] if r["uid"] == "plantmrv-pump-efficiency-danang-pumps")
    assert pump["data"][2]["model"]["conditions"][0]["evaluator"] == {"params": [0.791], "type": "lt"}  # eta_reference of danang-pumps


# --------------------------------------------------------------------------- links, zones, targets


def test_plant_dashboards_are_in_their_sites_zone_and_link_back_to_the_portfolio():
    dashboards = build.build_all(SETTINGS)
    assert dashboards["plantmrv-pump"]["timezone"] == "Asia/Ho_Chi_Minh"
    assert dashboards["plantmrv-wte"]["timezone"] == "Asia/Yangon"
    assert dashboards["plantmrv-portfolio"]["timezone"] == "Asia/Tokyo"
    assert "Times in Asia/Yangon." in dashboards["plantmrv-wte"]["description"]
    assert build.build_all()["plantmrv-pump"]["timezone"] == "utc"  # no projects configured: UTC, stated
    for key in build.PLANT_TYPES:
        link = next(x for x in dashboards[f"plantmrv-{key}"]["links"] if x["type"] == "link")
        assert link["url"] == "/d/plantmrv-portfolio" and link["includeVars"] and link["keepTime"]
        stat = next(p for p in dashboards[f"plantmrv-{key}"]["panels"] if p["title"] == "Reductions in range")
        (export,) = stat["fieldConfig"]["defaults"]["links"]
        assert export["url"] == "http://localhost:8000/projects/${__field.labels.project}/export?start=${__from:date:iso}&end=${__to:date:iso}&format=xlsx"


def test_portfolio_project_rows_drill_down_to_their_plant_dashboard_with_project_site_and_range():
    table = next(p for p in build.build_all(SETTINGS)["plantmrv-portfolio"]["panels"] if p["title"] == "Projects, monitoring period")
    assert table["targets"][0]["query"].endswith('GROUP BY "project", "methodology", "plant_type", "site"')
    (override,) = [o for o in table["fieldConfig"]["overrides"] if o["matcher"]["options"] == "project"]
    drill, export = override["properties"][0]["value"]
    assert drill["url"] == "/d/plantmrv-${__data.fields.plant_type}?var-project=${__data.fields.project}&var-site=${__data.fields.site}&${__url_time_range}"
    assert "/projects/${__data.fields.project}/export?start=${__from:date:iso}" in export["url"]


def test_each_target_has_a_progress_panel_with_monitored_planned_target_and_japans_share():
    dash = build.build_all(SETTINGS)["plantmrv-portfolio"]
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows[1] == "Progress toward targets, fiscal year to date"
    gauges = [p for p in dash["panels"] if p["type"] == "bargauge"]
    assert [g["title"] for g in gauges] == ["VN (country), FY2026", "Yangon (city), FY2026", "Pumps and inverters (programme), FY2026"]
    for g, t in zip(gauges, SETTINGS.dashboards.targets):
        assert g["timeFrom"] == "now/fy" and g["fieldConfig"]["defaults"]["max"] == t.t_co2
        assert [x["alias"] for x in g["targets"]] == ["monitored (ex-post)", "planned (ex-ante)", "target", "Japan's share"]
    vn = gauges[0]["targets"][0]["query"]
    assert 'WHERE "project" =~ /^(binhduong-pv|danang-pumps|hcmc-vsd)$/' in vn  # credited VN projects (U-BCF KPIs count toward no target)
