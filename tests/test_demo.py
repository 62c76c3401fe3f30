"""`make demo` as CI would run it, shortened and pinned in plant time: every project within 1% of
ground truth, every hour printed live within 1% of it, API answered, nothing left running.

The window is the one that failed on 2026-12-05 when the demo's window moved with the date
(auxiliary fuel at 0 for hours, sent only on change, was taken for missing data and filled)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_matches_ground_truth(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "plantmrv", "demo", "run", "--duration", "45", "--speed", "160", "--start", "2026-12-04T02:00:00Z",
         "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["api_ok"]
    projects = {p["id"]: p for p in summary["projects"]}
    assert set(projects) == {"danang-pumps", "hcmc-vsd", "haiphong-ubcf", "yangon-wte", "binhduong-pv"}
    for pid, p in projects.items():
        assert p["truth_t_co2"] != 0, pid
        assert abs(p["reduction_t_co2"] - p["truth_t_co2"]) <= 0.01 * abs(p["truth_t_co2"]), (pid, p)
        assert p["completeness"] > 0.95, (pid, p)
    assert summary["window"][0] == "2026-12-04T02:00:00Z"
    # every hour the engine closed while the plants streamed was printed: within 1 % of truth when
    # its data was complete; an hour with a gap (a gateway still subscribing on a loaded machine)
    # is filled conservatively, so it may fall short of truth, never exceed it
    live = summary["live_hours"]
    assert {h["project"] for h in live} == set(projects) and len(live) >= len(projects)
    for h in live:
        tolerance = 0.01 * abs(h["truth_t_co2"])
        if h["gap_filled_s"] > 0:
            assert h["reduction_t_co2"] <= h["truth_t_co2"] + tolerance and h["completeness"] < 1.0, (h, live)
        else:
            assert abs(h["reduction_t_co2"] - h["truth_t_co2"]) <= tolerance, (h, live)
    assert sum(h["gap_filled_s"] > 0 for h in live) <= len(projects), f"gaps beyond the first hours: {live}"
    # running totals printed live count only closed (final) hours: none negative where truth is positive
    for line in proc.stdout.splitlines():
        if "plant time" in line and " t (" in line:
            for pid in projects:
                if f"{pid}: -" in line:
                    raise AssertionError(f"negative running total printed: {line}")
    assert (run_dir / "report.md").read_text().count("|") > 20 and (run_dir / "reductions.png").stat().st_size > 10_000
    for pid in summary["pids"]:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z", f"pid {pid} still running"
    assert "nothing left running" in proc.stdout
