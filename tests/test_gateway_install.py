"""A gateway install as the README does it: the wheel alone, in a fresh venv, in a temporary root.

The README's systemd steps run with their absolute paths under a temporary root (``/etc`` ->
``<root>/etc``, ...), ``pip install plantmrv`` taking the wheel built from this tree, the user
made with ``useradd --prefix`` and ``systemctl daemon-reload`` / ``enable --now`` replaced by
``systemctl --root`` (no systemd runs here). Then the installed gateway runs for real against
mosquitto, under a fake systemd notify socket, while the server-side commands name their extra.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from plantmrv.localservices import free_port
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
SERVER_ONLY = ("fastapi", "uvicorn", "starlette", "openpyxl", "matplotlib", "grafana_client", "grafana_foundation_sdk")
MAX_SITE_PACKAGES_MB = 200  # measured 190 MB, pip and setuptools included (numpy ~75, asyncua ~28, cryptography ~16)

pytestmark = pytest.mark.slow


def readme_systemd_steps() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"^```sh\n(.*?)^```$", text, re.M | re.S) if "useradd" in b)
    return [line for line in block.splitlines() if line.strip()]


def rooted(line: str, root: Path) -> str:
    return re.sub(r"(?<![\w.])/(etc|opt|var)/", lambda m: f"{root}/{m.group(1)}/", line)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """Run the README's steps in a temporary root; return the root."""
    work = tmp_path_factory.mktemp("gateway-install")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "wheel"), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (work / "wheel").glob("plantmrv-*.whl")
    root = work / "root"
    (root / "etc").mkdir(parents=True)
    for name, line in (("passwd", "root:x:0:0:root:/root:/bin/sh"), ("group", "root:x:0:"), ("shadow", "root:*:19000:0:99999:7:::"),
                       ("gshadow", "root:*::")):
        (root / "etc" / name).write_text(line + "\n")
    shutil.copy("/etc/login.defs", root / "etc" / "login.defs")  # Debian's: USERGROUPS_ENAB yes
    for step in readme_systemd_steps():
        assert step.startswith("sudo "), step
        words = shlex.split(step.removeprefix("sudo "))
        if words[0] == "useradd":  # its paths are the user's, inside the root that --prefix names
            words[1:1] = ["--prefix", str(root)]
        else:
            words = shlex.split(rooted(step.removeprefix("sudo "), root))
        if words[0] == "useradd":
            pass
        elif words[0].endswith("/pip") and words[-1] == "plantmrv":
            words[-1] = str(wheel)
        elif words[:2] == ["systemctl", "daemon-reload"]:
            continue  # nothing to reload: `systemctl --root` reads the files
        elif words[:3] == ["systemctl", "enable", "--now"]:
            words = ["systemctl", f"--root={root}", "enable", *words[3:]]
        run = subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, f"README step failed: {step}\n{run.stdout}{run.stderr}"
    return root


def venv_bin(root: Path) -> Path:
    return root / "opt" / "plantmrv" / "venv" / "bin"


def test_the_readme_steps_install_user_config_secrets_and_an_enabled_unit(installed):
    root = installed
    user = re.search(r"^plantmrv:x:(\d+):(\d+)::/var/lib/plantmrv:/usr/sbin/nologin$", (root / "etc" / "passwd").read_text(), re.M)
    assert user and int(user.group(1)) < 1000, "a system user"
    assert re.search(rf"^plantmrv:x:{user.group(2)}:$", (root / "etc" / "group").read_text(), re.M), "its own group (Group=plantmrv)"
    assert (root / "etc" / "plantmrv" / "plantmrv.yaml").read_text() == (ROOT / "examples" / "gateway-opcua.yaml").read_text()
    assert oct((root / "etc" / "plantmrv" / "env").stat().st_mode & 0o777) == "0o600"
    assert (root / "etc" / "systemd" / "system" / "plantmrv-.service.d" / "hardening.conf").exists()
    link = root / "etc" / "systemd" / "system" / "multi-user.target.wants" / "plantmrv-gateway.service"
    assert link.is_symlink()


def test_the_gateway_install_is_small_and_holds_no_server_package(installed):
    site = next((installed / "opt" / "plantmrv" / "venv" / "lib").glob("python3*/site-packages"))
    size_mb = sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6
    assert size_mb < MAX_SITE_PACKAGES_MB, f"gateway install is {size_mb:.0f} MB"
    present = {p.name.split("-")[0].lower() for p in site.iterdir()}
    assert not present & set(SERVER_ONLY), present & set(SERVER_ONLY)
    print(f"gateway-only site-packages: {size_mb:.0f} MB")


def test_server_commands_name_the_extra_they_need(installed):
    plantmrv = str(venv_bin(installed) / "plantmrv")
    expected = "plantmrv api: needs the 'server' extra, which is not installed: pip install 'plantmrv[server]'"
    assert expected in (ROOT / "docs" / "operations.md").read_text()
    for args, extra in ((["api", "-c", "/etc/plantmrv/plantmrv.yaml"], "server"), (["api"], "server"), (["api", "--help"], "server"),
                        (["dashboards", "build"], "dashboards"), (["demo", "run"], "demo")):
        proc = subprocess.run([plantmrv, *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 69, (args, proc.stdout, proc.stderr)
        assert proc.stderr == f"plantmrv {args[0]}: needs the '{extra}' extra, which is not installed: pip install 'plantmrv[{extra}]'\n"
        if args[1:2] == ["-c"]:
            assert proc.stderr.rstrip("\n") == expected
    help_text = subprocess.run([plantmrv, "--help"], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "(needs the 'server' extra)" in help_text and "(needs the 'dashboards' extra)" in help_text
    assert subprocess.run([plantmrv, "gateway", "run", "--help"], capture_output=True, timeout=120).returncode == 0
    assert subprocess.run([plantmrv, "ingest", "run", "--help"], capture_output=True, timeout=120).returncode == 0


def test_the_installed_gateway_runs_tells_systemd_and_forwards_device_data(installed, mosquitto, tmp_path):
    plantmrv = str(venv_bin(installed) / "plantmrv")
    state = installed / "var" / "lib" / "plantmrv"
    state.mkdir(parents=True, exist_ok=True)
    metrics_port = free_port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(f"""
site: {{id: binhduong}}
mqtt: {{url: "{mosquitto.url}", client_id: install-gw-pub}}
gateway:
  id: gw-install
  sources:
    - type: mqtt
      name: inverters
      broker: {{url: "{mosquitto.url}", client_id: install-gw-sub}}
      mappings:
        - topic: install/pv/+/telemetry
          measurement: pv
          tags: {{asset: "{{topic[2]}}"}}
          timestamp: {{path: ts, unit: ms}}
          fields: {{ac_power_kw: p_kw}}
  sink: {{type: mqtt}}
  buffer: {{path: buffer.db, batch_max_age_s: 0.2}}
  health: {{metrics_port: {metrics_port}, sample_interval_s: null}}
""")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.5)
    received: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="install-test-sub")
    sub.on_message = lambda c, u, m: received.append(m.payload)
    host, port = mosquitto.url.removeprefix("mqtt://").split(":")
    sub.connect(host, int(port))
    sub.subscribe("plantmrv/v1/binhduong/gw-install/data", qos=1)
    sub.loop_start()
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000", "STATE_DIRECTORY": str(state)}
    proc = subprocess.Popen([plantmrv, "gateway", "run", "-c", str(cfg), "--log-format", "json"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        messages = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ({"WATCHDOG=1"} <= set(messages) and any(m.startswith("READY=1") for m in messages)):
            try:
                messages.append(notify.recv(4096).decode())
            except TimeoutError:
                assert proc.poll() is None, proc.stderr.read()
        assert any(m.startswith("READY=1") for m in messages) and "WATCHDOG=1" in messages, messages
        base = f"http://127.0.0.1:{metrics_port}"
        wait_for(lambda: _status(f"{base}/readyz") == 200, 20, "the gateway's /readyz")
        assert _status(f"{base}/healthz") == 200
        assert "plantmrv_gateway_samples_read_total" not in httpx.get(f"{base}/healthz").text  # not the metrics page
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="install-test-pub")
        pub.connect(host, int(port))
        pub.loop_start()

        def published_and_forwarded():
            pub.publish("install/pv/inv01/telemetry", json.dumps({"ts": 1_790_000_000_000, "p_kw": 12.5}), qos=1).wait_for_publish(5)
            return received

        wait_for(published_and_forwarded, 20, "a batch on plantmrv/v1/binhduong/gw-install/data", interval_s=1.0)
        pub.loop_stop()
        assert (state / "buffer.db").exists()  # a relative buffer path lands in $STATE_DIRECTORY
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        sub.loop_stop()
        notify.close()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = [r.get("event") for r in records]
    assert "gateway_start" in events and "gateway_stop" in events, err
    assert all(set(r) >= {"ts", "level", "logger"} for r in records)


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def test_useradd_and_systemctl_exist_for_the_readme_steps():
    for tool in ("useradd", "systemctl", "install"):
        assert shutil.which(tool), f"{tool} is missing: the README's systemd steps need it"
