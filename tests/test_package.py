"""Packaging: the wheel maps the top-level folders onto plantmrv.* and installs nothing generic."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["plantmrv", "plantmrv.api", "plantmrv.gateway", "plantmrv.ingest", "plantmrv.analytics", "plantmrv.dashboards", "plantmrv.simulators"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("plantmrv-*.whl")
    return whl


def test_wheel_holds_only_the_plantmrv_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"plantmrv"}
    for pkg in SUBPACKAGES:
        assert pkg.replace(".", "/") + "/__init__.py" in names


def test_wheel_ships_the_data_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "plantmrv/analytics/data/emission_factors.csv" in names
    assert "plantmrv/dashboards/generated/plantmrv-portfolio.json" in names
    assert "plantmrv/dashboards/provisioning/datasources/plantmrv-influxdb.yaml" in names


def test_wheel_imports_every_subpackage_from_the_wheel_not_the_source_tree(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "import importlib, json; print(json.dumps({m: importlib.import_module(m).__file__ for m in %r}))" % SUBPACKAGES
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    files = json.loads(proc.stdout)
    assert all(f.startswith(str(site)) for f in files.values()), files


def test_editable_install_imports_every_subpackage():
    code = "import importlib; [importlib.import_module(m) for m in %r]; import plantmrv.app.cli" % SUBPACKAGES
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cli_help_lists_every_command():
    proc = subprocess.run([sys.executable, "-m", "plantmrv", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for command in ("check-config", "version"):
        assert command in proc.stdout
