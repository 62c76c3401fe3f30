"""Plan and fault points for the dashboards: ``mrv_plan`` spreads each project's ex-ante estimate
over the local days of its monitoring period, ``mrv_target`` stamps each target at its fiscal
year's start in the portfolio's zone; the simulator's fault log can write ``sim_fault`` points;
the ``dashboards`` section names the key at fault."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plantmrv.config import ConfigError, load_config
from plantmrv.dashboards.plan import plan_lines
from plantmrv.dashboards.settings import BuildSettings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "analytics.yaml"


def _points(lines, measurement):
    out = []
    for line in lines:
        if line.startswith(measurement + ","):
            key, fields, ts = line.rsplit(" ", 2)
            out.append((dict(kv.split("=", 1) for kv in key.split(",")[1:]), dict(kv.split("=", 1) for kv in fields.split(",")), int(ts)))
    return out


def test_plan_spreads_each_ex_ante_over_the_local_days_of_the_monitoring_period():
    settings = BuildSettings.load(EXAMPLE)
    plan = _points(plan_lines(settings), "mrv_plan")
    for p in settings.projects:
        rows = [r for r in plan if r[0]["project"] == p.id]
        if p.ex_ante_t_co2 is None:
            assert not rows
            continue
        assert sum(float(f["ex_ante_t_co2"]) for _, f, _ in rows) == pytest.approx(p.ex_ante_t_co2, rel=1e-12)
        assert rows[0][2] == p.monitoring_period.start_ns
        # after the first, every point is a local midnight of the project's zone (2026: 366 points, the first partial)
        from datetime import datetime
        from zoneinfo import ZoneInfo

        local = [datetime.fromtimestamp(ts / 1e9, ZoneInfo(p.timezone)) for _, _, ts in rows[1:]]
        assert all((t.hour, t.minute) == (0, 0) for t in local)
        assert len(rows) == 366


def test_targets_are_stamped_at_the_fiscal_years_start_in_the_portfolio_zone():
    settings = BuildSettings.load(EXAMPLE)
    targets = _points(plan_lines(settings), "mrv_target")
    assert [(t["target"], f["target_t_co2"]) for t, f, _ in targets] == [
        ("country/VN/FY2026", "2000.0"), ("city/Yangon/FY2026", "5000.0"), ("programme/Pumps\\ and\\ inverters/FY2026", "1200.0"),
    ]
    assert {ts for *_, ts in targets} == {1_774_969_200 * 10**9}  # 2026-04-01 00:00 JST


def test_dashboards_section_errors_name_the_key(tmp_path):
    text = EXAMPLE.read_text().replace("portfolio_timezone: Asia/Tokyo", "portfolio_timezone: Tokyo/Japan")
    (tmp_path / "a.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "a.yaml")
    assert re.search(r"a\.yaml: dashboards\.portfolio_timezone \(line \d+\): .*'Tokyo/Japan' is not an IANA time zone", str(e.value))
    text = EXAMPLE.read_text().replace("{scope: city, name: Yangon,", "{scope: city, name: Mandalay,")
    (tmp_path / "b.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"b\.yaml: dashboards\.targets\[1\]: no analytics project has city 'Mandalay' \(known: Binh Duong, Da Nang, Hai Phong, Ho Chi Minh City, Yangon\)"):
        BuildSettings.load(tmp_path / "b.yaml")


def test_the_fault_log_can_write_each_fault_start_as_a_sim_fault_point(tmp_path):
    from plantmrv.simulators.faults import Fault, FaultLog

    lines = []
    log = FaultLog(tmp_path / "f.jsonl", sink=lines.append)
    f = Fault("spike", 10**18, 10**18 + 30 * 10**9, "haiphong", "ubcf1", "treated_turbidity_ntu", value=10.0)
    log.write("start", f, 10**18)
    log.write("end", f, 10**18 + 30 * 10**9)
    assert lines == ['sim_fault,asset=ubcf1,kind=spike,site=haiphong field="treated_turbidity_ntu",detail="spike haiphong/ubcf1 treated_turbidity_ntu for 30 s (x10)",duration_s=30.0 1000000000000000000']
    assert len(FaultLog.read(tmp_path / "f.jsonl")) == 2


def test_simulator_writes_its_faults_to_influxdb_for_the_annotations(simulator, influx_db, tmp_path):
    import time

    cfg = tmp_path / "sim.yaml"
    cfg.write_text("plants:\n  - type: pump\n    faults:\n      - {kind: spike, at_s: 1, duration_s: 5, field: efficiency, value: 0.5}\n")
    sim = simulator(["--config", str(cfg), "--start", "2026-11-20T00:00:00Z", "--rate", "2", "--fault-influx", f"{influx_db.url}/{influx_db.database}"])
    deadline = time.monotonic() + 30
    rows = []
    while time.monotonic() < deadline and not rows:
        rows = influx_db.query('SELECT "detail", "duration_s" FROM "sim_fault" GROUP BY "site", "asset", "kind"')
        time.sleep(0.2)
    assert rows, f"no sim_fault point; simulator stderr:\n{sim.stderr()}"
    (r,) = rows
    assert r.tags == {"site": "danang", "asset": "pump1", "kind": "spike"}
    assert list(r.columns["detail"]) == ["spike danang/pump1 efficiency for 5 s (x0.5)"]
    start = next(f for f in sim.faults() if f["event"] == "start")
    assert int(r.columns["time"][0]) == start["start_ns"]
