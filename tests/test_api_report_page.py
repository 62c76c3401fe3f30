"""The verifier API serves the monitoring report people read: the page of the shared renderer
(analytics.report_html) from the API's own JSON monitoring report, in English and Japanese, under
the same token, role, project and period rules; it states the site's time zone, and every figure
on it is the JSON report's. Data: a simulated pump with a dropout, results from the real engine,
in a real influxd (:mod:`tests.test_api_support`)."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient

from plantmrv.api.app import create_app
from plantmrv.api.models import MonitoringReport, ProjectDetail
from plantmrv.api.projects import Site
from plantmrv.api.queries import MrvColumns
from plantmrv.api.report_page import interval_gaps, page_data
from tests import browser
from tests.test_api_support import OTHER_ID, PROJECT_ID, TOKENS, api_env  # noqa: F401

PAGE = f"/projects/{PROJECT_ID}/monitoring-report.html"
PREPARED = datetime(2026, 3, 20, 1, 30, tzinfo=timezone.utc)  # 08:30 in Da Nang
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
#: A4 minus the report's 12 mm side margins, in CSS pixels (96 per inch)
PAGE_WIDTH_PX = round((210 - 24) / 25.4 * 96)


@pytest.fixture(scope="module")
def client(api_env):
    """The API over the same data and config, with its clock pinned (the page states when it was prepared)."""
    with TestClient(create_app(api_env.cfg, clock=lambda: PREPARED)) as c:
        yield c


def get(client, url, role="verifier", **params):
    headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
    return client.get(url, params=params, headers=headers)


def text_of(page: str) -> str:
    """The page's text, tags removed, entities decoded, whitespace collapsed."""
    body = page.split("</style>", 1)[1]
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


def section(page: str, letter: str) -> str:
    """The HTML of section ``letter`` (from its heading to the next)."""
    start = page.index(f"<h2>{letter}. ")
    end = page.find("<h2>", start + 4)
    return page[start : end if end > 0 else None]


def rows(table_html: str) -> list[list[str]]:
    """The text of each body row's cells (header rows have none)."""
    out = [[re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", c))).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr)]
           for tr in re.findall(r"<tr>(.*?)</tr>", table_html)]
    return [r for r in out if r]


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_the_page_states_the_site_zone_and_the_json_reports_figures(client, lang):
    report = get(client, f"/projects/{PROJECT_ID}/monitoring-report", period="monitoring").json()
    r = get(client, PAGE, period="monitoring", lang=lang)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8" and r.headers["content-language"] == lang
    assert r.headers["content-security-policy"].startswith("default-src 'none'") and r.headers["cache-control"] == "no-store"
    page, text = r.text, text_of(r.text)
    assert f'<html lang="{lang}">' in page
    zone = "Asia/Ho_Chi_Minh (UTC+07:00)"
    assert {"en": f"Times in {zone}.", "ja": f"時刻は {zone}。"}[lang] in text
    # the period in site time: 2026-03-10T00:00Z .. 2026-03-12T00:00Z, prepared at the pinned clock
    b = text_of("<style></style>" + section(page, "B"))
    assert "2026-03-10 07:00" in b and "2026-03-12 07:00" in b and "2026-03-20 08:30" in b
    assert report["report_sha256"] in b and f"{report['mrv_intervals']:,}" in b
    # section E: every figure as the JSON report states it
    calc = rows(section(page, "E"))
    figures = [row[-1] for row in calc]
    assert figures[:4] == [f"{report['reference_t_co2']:,.3f}", f"{report['project_t_co2']:,.3f}", f"{report['reduction_t_co2']:,.3f}",
                           f"{report['reported_reduction_t_co2']:,.0f}"], (figures, report)
    assert report["reported_reduction_t_co2"] >= 1  # two days of the pump credit whole tonnes: the row is not a trivial 0
    assert f"{report['energy_saved_kwh']:,.0f}" in figures and f"{report['completeness']:.1%}" in figures
    assert f"{report['gap_filled_s'] / 3600:,.2f}" in figures
    # the dropout 05:20-05:35 UTC on the first day: a gap in the hour 12:00-13:00 site time
    gaps = rows(section(page, "F"))
    assert gaps and gaps[0][:2] == ["2026-03-10 12:00", "2026-03-10 13:00"], gaps
    if lang == "ja":
        assert "<h1>モニタリング報告書</h1>" in page and "E. 排出削減量の計算" in text and "リファレンス排出量" in text
        assert JAPANESE.search(rows(section(page, "D"))[0][0])  # eta_PJ's description, from the catalogue
    else:
        assert "<h1>Monitoring report</h1>" in page and "E. Calculation of emission reductions" in text


def test_the_page_follows_the_json_reports_period_rules(client):
    for period in ("FY2025", "2026-03", "2026-03-10/2026-03-11"):
        report = get(client, f"/projects/{PROJECT_ID}/monitoring-report", period=period).json()
        page = get(client, PAGE, period=period, lang="ja").text
        assert f"{report['reduction_t_co2']:,.3f}" in [row[-1] for row in rows(section(page, "E"))], period
    for bad in ("FY20", "2026-13", "2026-03-11/2026-03-10"):
        js, page = get(client, f"/projects/{PROJECT_ID}/monitoring-report", period=bad), get(client, PAGE, period=bad)
        assert js.status_code == page.status_code == 422 and js.json() == page.json(), bad


def test_the_page_needs_a_token_that_may_read_the_project(client):
    assert get(client, PAGE, role=None, period="monitoring").status_code == 401
    assert client.get(PAGE, params={"period": "monitoring"}, headers={"Authorization": "Bearer pmrv_not-a-token-0123456789abcdefghijklmnopq"}).status_code == 401
    foreign = get(client, PAGE, role="verifier_other", period="monitoring")
    unknown = get(client, "/projects/nope/monitoring-report.html", role="verifier_other", period="monitoring")
    assert foreign.status_code == unknown.status_code == 403 and foreign.json() == unknown.json()  # no hint whether it exists
    assert get(client, "/projects/nope/monitoring-report.html", role="operator", period="monitoring").status_code == 404
    assert get(client, f"/projects/{OTHER_ID}/monitoring-report.html", role="operator", period="monitoring").status_code == 200
    bad = get(client, PAGE, period="monitoring", lang="xx")
    assert bad.status_code == 422 and "lang" in bad.json()["detail"][0]["loc"]


def test_openapi_documents_the_page_and_the_lang_parameter(client):
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/projects/{project_id}/monitoring-report.html"]["get"]
    assert "example" in op["responses"]["200"]["content"]["text/html"]
    for path in ("/projects/{project_id}/monitoring-report.html", "/projects/{project_id}/export"):
        lang = next(p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "lang")
        assert lang["schema"]["enum"] == ["en", "ja"] and lang["schema"]["default"] == "en" and lang["schema"]["examples"] == ["ja"], lang


def test_the_japanese_page_fits_a4(client, tmp_path):
    page = get(client, PAGE, period="monitoring", lang="ja").text
    assert browser.overflow(page, tmp_path, PAGE_WIDTH_PX) == []


# --------------------------------------------------------------------------- the adapter alone

def _report(status: str) -> MonitoringReport:
    example = MonitoringReport.model_config["json_schema_extra"]["examples"][0]
    warnings = [] if status == "ok" else [{"code": "params_hash_stale", "count": 3, "first": "2024-01-01T05:00:00Z", "message": "stale"}]
    return MonitoringReport.model_validate({**example, "reported_reduction_t_co2": None if status == "withheld" else 1043, "japan_share_t_co2": None,
                                            "period": {"id": "2024-01-01/2024-01-02", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T04:00:00Z"},
                                            "mrv_intervals": 2, "checks": {"status": status, "warnings": warnings, "current_params_hash": "x"}})


def test_a_withheld_period_says_so_instead_of_a_reported_figure():
    project = ProjectDetail.model_validate(ProjectDetail.model_config["json_schema_extra"]["examples"][0])
    step = 3600 * 10**9
    start = 1_704_067_200 * 10**9  # 2024-01-01T00:00Z, the example period's start
    mrv = MrvColumns(np.array([start, start + 2 * step], np.int64), {"completeness": np.array([1.0, 0.5]), "gap_filled_s": np.array([0.0, 1800.0])}, np.array(["x", "x"]))
    from plantmrv.analytics.report_html import render_html

    withheld = render_html(page_data(project, _report("withheld"), mrv, 3600, Site("Asia/Ho_Chi_Minh", "Da Nang"), PREPARED, "ja"), "ja")
    assert "保留：保存された結果がチェックに合格していません（params_hash_stale:3）" in text_of(withheld)
    assert rows(section(withheld, "E"))[3][-1] == "-"  # no reported ER_p while withheld
    ok = render_html(page_data(project, _report("ok"), mrv, 3600, Site(), PREPARED, "en"), "en")
    assert "Withheld" not in ok and rows(section(ok, "E"))[3][-1] == "1,043" and "Times in UTC (UTC+00:00)." in text_of(ok)
    # the intervals never stored (01:00, 03:00) are gaps on the page, as the JSON report counts them; 02:00 is half covered
    gaps = rows(section(ok, "F"))
    assert [g[:2] for g in gaps] == [["2024-01-01 01:00", "2024-01-01 04:00"]], gaps
    assert "2 of 4 (3600 s each)" in text_of(ok)


def test_interval_gaps_put_missing_and_off_grid_results_on_the_grid():
    step = 60 * 10**9
    t = np.array([0, step + 5, 3 * step], np.int64)  # one off the grid (a checks warning), one missing
    ts, comp, filled = interval_gaps(MrvColumns(t, {"completeness": np.array([1.0, 1.0, np.nan]), "gap_filled_s": np.array([0.0, 0.0, 60.0])}, np.array(["h"] * 3)), 0, 4 * step, 60)
    assert ts.tolist() == [0, step, 2 * step, 3 * step] and comp.tolist() == [1.0, 0.0, 0.0, 0.0] and filled.tolist() == [0.0, 0.0, 0.0, 60.0]
