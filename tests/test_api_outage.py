"""InfluxDB down: the API answers 503 with a plain message (no query, no traceback), /health says
degraded, and it recovers by itself when influxd is back."""

from __future__ import annotations

import functools

from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from plantmrv.api.app import create_app
from plantmrv.api.projects import project_from_analytics
from plantmrv.api.reports import RangeError, parse_period
from tests.test_api_support import PROJECT_ID, TOKENS, analytics_config, make_cfg


def test_influxdb_outage_gives_503_then_recovers(influxd_private, tmp_path):
    client = influxd_private.client(database="outage")
    client.create_database()
    app = create_app(make_cfg("outage", influxd_private.url, tmp_path))
    h = {"Authorization": f"Bearer {TOKENS['verifier']}"}
    url = f"/projects/{PROJECT_ID}/reductions?from=2026-03-10T00:00:00Z&to=2026-03-11T00:00:00Z&interval=day"
    with TestClient(app) as api:
        assert api.get(url, headers=h).status_code == 200
        influxd_private.stop()
        app.state.influx.max_retries = 0  # fail fast instead of backing off for the test's sake
        r = api.get(url, headers=h)
        assert r.status_code == 503 and r.json() == {"detail": "InfluxDB unreachable or refused the query"}
        assert api.get("/health").json()["status"] == "degraded"
        influxd_private.start()
        assert api.get(url, headers=h).status_code == 200
        assert api.get("/health").json()["status"] == "ok"
    client.close()


@given(st.one_of(st.text(max_size=30), st.from_regex(r"\A(FY|CY)?\d{4}(-\d{2})?\Z"), st.from_regex(r"\A\d{4}-\d{2}-\d{2}/\d{4}-\d{2}-\d{2}\Z")))
def test_period_parser_accepts_a_valid_period_or_refuses_with_range_error(spec):
    try:
        period = parse_period(pump_project(), spec)
    except RangeError as exc:
        assert "period must be" in str(exc)
        return
    assert period.id == spec

    assert period.start < period.end or spec.count("/") == 1  # explicit ranges are ordered by check_range later


@functools.lru_cache(maxsize=1)
def pump_project():
    return project_from_analytics(analytics_config().projects[0])
