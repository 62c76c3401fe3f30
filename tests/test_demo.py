"""`make demo` as CI would run it, shortened: every project within 1% of ground truth, API answered, nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline_and_matches_ground_truth(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "plantmrv.cli", "demo", "run", "--duration", "45", "--speed", "160", "--out", str(tmp_path)],
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
    assert (run_dir / "report.md").read_text().count("|") > 20 and (run_dir / "reductions.png").stat().st_size > 10_000
    for pid in summary["pids"]:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z", f"pid {pid} still running"
    assert "nothing left running" in proc.stdout
