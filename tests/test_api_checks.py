"""Stored results are checked before they are summed: duplicates, misaligned intervals,
completeness outside 0..1 and stale parameters are warnings in /reductions, the monitoring
report and the exports, and withhold the period (no floored or credited tonnes) until an
operator accepts exactly those results, through the API or the CLI.

Real influxd, the real engine's hourly results (``test_api_support``), and extra ``mrv`` points
written beside them as another writer would."""

from __future__ import annotations

import io
import math

import openpyxl
import pytest
import yaml
from typer.testing import CliRunner

from plantmrv.app.cli import app as cli
from tests import verify_export
from tests.test_api_support import DAY0, PROJECT_ID, S, TOKENS, analytics_raw, api_env  # noqa: F401

DAY = {"period": "2026-03-10/2026-03-11"}
REPORT = f"/projects/{PROJECT_ID}/monitoring-report"
H = 3600 * S


def engine_tags(api_env) -> str:
    p = next(p for p in api_env.cfg.analytics.projects if p.id == PROJECT_ID)
    return f"mrv,interval=1h,methodology={p.methodology.id},plant_type={p.plant_type},project={PROJECT_ID},site={p.site}"


def stored(api_env, ts: int) -> dict:
    res = api_env.influx.query(f'SELECT * FROM "mrv" WHERE "project" = \'{PROJECT_ID}\' AND time = {ts}')
    return {k: v[0] for k, v in res[0].columns.items()}


def restore(api_env, ts: int, row: dict, fields: tuple[str, ...]) -> None:
    parts = ",".join(f'{f}="{row[f]}"' if isinstance(row[f], str) else f"{f}={float(row[f])!r}" for f in fields)
    api_env.influx.write_body(f"{engine_tags(api_env)} {parts} {ts}\n".encode())


def sections(text: str) -> dict[str, list[list[str]]]:
    return verify_export.sections(text)


@pytest.fixture
def extra_point(api_env):
    """One more ``mrv`` point at 05:00 on day 1 under another methodology tag (the issue's 25 of 24 intervals)."""
    api_env.influx.write_body(
        f'mrv,interval=1h,methodology=copy,project={PROJECT_ID} reduction_t_co2=100000.0,reference_t_co2=100000.0,project_t_co2=0.0,'
        f'completeness=1.0,gap_filled_s=0.0,params_hash="{api_env.get(f"/projects/{PROJECT_ID}").json()["params_hash"]}" {DAY0 + 5 * H}\n'.encode()
    )
    yield
    api_env.influx.execute('DELETE FROM "mrv" WHERE "methodology" = \'copy\'')


def test_engine_results_carry_the_params_hash_the_api_expects(api_env):
    project = api_env.get(f"/projects/{PROJECT_ID}").json()
    report = api_env.get(REPORT, params={"period": "monitoring"}).json()
    assert len(project["params_hash"]) == 12 and report["params_hashes"] == [project["params_hash"]]
    assert report["checks"]["status"] == "ok" and report["reported_reduction_t_co2"] > 0


def test_a_duplicate_interval_is_flagged_and_withholds_the_period(api_env, extra_point):
    report = api_env.get(REPORT, params=DAY).json()
    assert report["mrv_intervals"] == 25 and report["reduction_t_co2"] > 100_000  # summed as stored, and said so
    assert report["checks"]["status"] == "withheld"
    (w,) = report["checks"]["warnings"]
    assert (w["code"], w["count"], w["first"]) == ("duplicate_interval", 1, "2026-03-10T05:00:00Z")
    assert report["reported_reduction_t_co2"] is None and report["japan_share_t_co2"] is None

    red = api_env.get(f"/projects/{PROJECT_ID}/reductions", params={"from": "2026-03-10T00:00:00Z", "to": "2026-03-11T00:00:00Z", "interval": "day"}).json()
    assert [x["code"] for x in red["warnings"]] == ["duplicate_interval"] and red["rows"][0]["intervals_found"] == 25

    text = api_env.get(f"/projects/{PROJECT_ID}/export", params={"from": "2026-03-10T00:00:00Z", "to": "2026-03-11T00:00:00Z", "raw": "false"}).text
    sec = sections(text)
    totals = dict(sec["totals"][1:])
    assert totals["reported_reduction_t_co2"] == "" and totals["credit_status"] == "withheld"
    assert [r[:3] for r in sec["checks"][1:]] == [["duplicate_interval", "1", "2026-03-10T05:00:00Z"]]
    assert verify_export.check_csv(text.encode())["checks"] == "withheld duplicate_interval:1"

    xlsx = api_env.get(f"/projects/{PROJECT_ID}/export", params={"from": "2026-03-10T00:00:00Z", "to": "2026-03-11T00:00:00Z", "format": "xlsx", "raw": "false"})
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    er_row = next(r for r in wb["Calculation"].iter_rows(values_only=True) if r[0] == "ER_p reported [tCO2]")
    er = next(j for j, f in enumerate(next(wb["Calculation"].iter_rows(min_row=5, max_row=5, values_only=True))) if f == "reduction_t_co2")
    assert er_row[er] == "withheld" and "Checks" in er_row[er + 1]
    assert wb["Checks"]["B1"].value == "withheld"


def test_misaligned_interval_completeness_above_1_and_stale_params_are_each_flagged(api_env):
    at_06, at_07 = DAY0 + 6 * H, DAY0 + 7 * H
    before_06, before_07 = stored(api_env, at_06), stored(api_env, at_07)
    tags = engine_tags(api_env)
    api_env.influx.write_body(
        f"{tags} completeness=1.5 {at_06}\n{tags} params_hash=\"0123456789ab\" {at_07}\n"
        f"{tags} reduction_t_co2=1.0,completeness=1.0,gap_filled_s=0.0,params_hash=\"{before_06['params_hash']}\" {DAY0 + 8 * H + 1800 * S}\n".encode()
    )
    try:
        report = api_env.get(REPORT, params=DAY).json()
        found = {w["code"]: w for w in report["checks"]["warnings"]}
        assert set(found) == {"completeness_above_1", "params_hash_stale", "misaligned_interval"}
        assert found["completeness_above_1"]["first"] == "2026-03-10T06:00:00Z" and "1.5" in found["completeness_above_1"]["message"]
        assert found["params_hash_stale"]["count"] == 1 and "0123456789ab" in found["params_hash_stale"]["message"]
        assert found["misaligned_interval"]["first"] == "2026-03-10T08:30:00Z"
        assert report["checks"]["status"] == "withheld" and report["reported_reduction_t_co2"] is None
    finally:
        api_env.influx.execute(f'DELETE FROM "mrv" WHERE time = {DAY0 + 8 * H + 1800 * S}')
        restore(api_env, at_06, before_06, ("completeness",))
        restore(api_env, at_07, before_07, ("params_hash",))
    assert api_env.get(REPORT, params=DAY).json()["checks"]["status"] == "ok"


def test_operator_accepts_exactly_the_reviewed_results_and_any_change_voids_it(api_env, tmp_path):
    at_09, at_10 = DAY0 + 9 * H, DAY0 + 10 * H
    before, before_10 = stored(api_env, at_09), stored(api_env, at_10)
    api_env.influx.write_body(f'{engine_tags(api_env)} params_hash="0ld0ld0ld0ld" {at_09}\n'.encode())  # as if computed before an EF update
    url = f"/projects/{PROJECT_ID}/acceptances"
    try:
        report = api_env.get(REPORT, params=DAY).json()
        assert report["checks"]["status"] == "withheld"
        body = {"period": DAY["period"], "intervals_sha256": report["intervals_sha256"], "reason": "EF update on 2026-03-10 09:00 as registered; hour 09 keeps the old factor"}
        assert api_env.client.post(url, json=body, headers={"Authorization": f"Bearer {TOKENS['verifier']}"}).status_code == 403
        r = api_env.client.post(url, json=body | {"intervals_sha256": "0" * 64}, headers={"Authorization": f"Bearer {TOKENS['operator']}"})
        assert r.status_code == 409 and "changed since they were reviewed" in r.json()["detail"]
        assert api_env.client.post(url, json=body | {"reason": "ok"}, headers={"Authorization": f"Bearer {TOKENS['operator']}"}).status_code == 422
        r = api_env.client.post(url, json=body | {"reason": " " * 12}, headers={"Authorization": f"Bearer {TOKENS['operator']}"})
        assert r.status_code == 422 and "reason of at least 10 characters" in r.json()["detail"]
        r = api_env.client.post(url, json=body, headers={"Authorization": f"Bearer {TOKENS['operator']}"})
        assert r.status_code == 201, r.text
        acc = r.json()
        assert (acc["accepted_by"], acc["accepted_via"], acc["warnings"], acc["intervals_sha256"]) == ("operator-1", "api", ["params_hash_stale:1"], report["intervals_sha256"])
        assert api_env.client.post(url, json=body, headers={"Authorization": f"Bearer {TOKENS['operator']}"}).status_code == 409  # already accepted

        accepted = api_env.get(REPORT, params=DAY).json()
        assert accepted["checks"]["status"] == "accepted" and accepted["checks"]["acceptance"]["id"] == acc["id"]
        assert accepted["reported_reduction_t_co2"] == math.floor(accepted["reduction_t_co2"] + 1e-9)
        assert [a["id"] for a in api_env.get(url).json()] == [acc["id"]]  # the verifier sees who accepted what, and why
        export = api_env.get(f"/projects/{PROJECT_ID}/export", params={"from": "2026-03-10T00:00:00Z", "to": "2026-03-11T00:00:00Z", "raw": "false"}).text
        assert dict(sections(export)["totals"][1:])["accepted_by"] == "operator-1"

        # any change to the results voids the acceptance: withheld again
        api_env.influx.write_body(f"{engine_tags(api_env)} reduction_t_co2=5.0 {at_10}\n".encode())
        changed = api_env.get(REPORT, params=DAY).json()
        assert changed["checks"]["status"] == "withheld" and changed["checks"]["acceptance"] is None

        # the CLI records an acceptance of the new state (who = OS user or --by), lists and withdraws it
        cfg = tmp_path / "api.yaml"
        cfg.write_text(yaml.safe_dump({
            "influxdb": {"url": api_env.influx.url, "database": api_env.influx.database},
            "api": {"token_store": str(api_env.cfg.api.token_store)}, "analytics": analytics_raw(),
        }))
        runner = CliRunner()
        args = ["api", "acceptance", "add", "-c", str(cfg), "-p", PROJECT_ID, "--period", DAY["period"], "--reason", "reviewed again after the 10:00 correction", "--by", "lead-engineer"]
        r = runner.invoke(cli, [*args, "--intervals-sha256", report["intervals_sha256"]])
        assert r.exit_code == 1 and "changed since they were reviewed" in r.output
        r = runner.invoke(cli, [*args, "--intervals-sha256", changed["intervals_sha256"]])
        assert r.exit_code == 0 and "by=lead-engineer (cli)" in r.output, r.output
        assert api_env.get(REPORT, params=DAY).json()["checks"]["status"] == "accepted"
        listed = yaml.safe_load(runner.invoke(cli, ["api", "acceptance", "list", "-c", str(cfg), "-p", PROJECT_ID]).output)
        new_id = listed[-1]["id"]
        assert listed[-1]["accepted_via"] == "cli"
        r = runner.invoke(cli, ["api", "acceptance", "withdraw", "-c", str(cfg), str(new_id), "--by", "auditor"])
        assert r.exit_code == 0 and f"withdrew acceptance id={new_id}" in r.output
        assert api_env.get(REPORT, params=DAY).json()["checks"]["status"] == "withheld"
    finally:
        restore(api_env, at_09, before, ("params_hash",))
        restore(api_env, at_10, before_10, ("reduction_t_co2",))
    assert api_env.get(REPORT, params=DAY).json()["checks"]["status"] == "ok"


def test_nothing_to_accept_when_the_results_pass_every_check(api_env):
    report = api_env.get(REPORT, params=DAY).json()
    r = api_env.client.post(f"/projects/{PROJECT_ID}/acceptances", json={"period": DAY["period"], "intervals_sha256": report["intervals_sha256"], "reason": "nothing wrong, accept anyway"},
                            headers={"Authorization": f"Bearer {TOKENS['admin']}"})
    assert r.status_code == 409 and "pass every check" in r.json()["detail"]


def test_results_are_read_from_a_separate_results_database_when_configured(influxd, tmp_path):
    """Least privilege in InfluxDB 2.x puts results in a bucket of their own (api.results_database)."""
    from fastapi.testclient import TestClient

    from plantmrv.api.app import create_app
    from tests.test_api_support import fresh_database, make_cfg

    raw, results = fresh_database(influxd, "t_api_raw_only"), fresh_database(influxd, "t_api_results_only")
    lines = "".join(f"mrv,interval=1h,methodology=m,project={PROJECT_ID} reduction_t_co2=0.5,completeness=1.0,gap_filled_s=0.0 {DAY0 + h * H}\n" for h in range(3))
    results.write_body(lines.encode())
    params = {"from": "2026-03-10T00:00:00Z", "to": "2026-03-10T03:00:00Z", "interval": "period"}
    for results_database, found in ((None, 0), ("t_api_results_only", 3)):
        app = create_app(make_cfg("t_api_raw_only", influxd.url, tmp_path / str(found), results_database=results_database))
        with TestClient(app) as client:
            body = client.get(f"/projects/{PROJECT_ID}/reductions", params=params, headers={"Authorization": f"Bearer {TOKENS['verifier']}"}).json()
        assert body["totals"]["intervals_found"] == found
    assert body["totals"]["reduction_t_co2"] == 1.5
    raw.close()
    results.close()
