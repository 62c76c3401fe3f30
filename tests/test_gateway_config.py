"""Gateway config: commented examples load, errors are located (device-JSON mappings: test_devicejson.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from plantmrv.config import ConfigError, load_config
from plantmrv.gateway.agent import check_runnable
from tests.test_gateway_support import REPO


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "examples").glob("gateway-*.yaml")))
def test_gateway_example_configs_load_and_are_runnable(name, monkeypatch):
    cfg = load_config(REPO / "examples" / name)
    check_runnable(cfg, name)
    assert cfg.gateway.sources
    assert "#" in (REPO / "examples" / name).read_text()  # commented


def test_gateway_opcua_example_defaults_to_a_current_security_policy():
    cfg = load_config(REPO / "examples" / "gateway-opcua.yaml")
    src = cfg.gateway.sources[0]
    assert src.security.policy in ("Basic256Sha256", "Aes256_Sha256_RsaPss")
    assert src.watchdog_interval_s > 1


def _errors(tmp_path: Path, text: str) -> list[str]:
    p = tmp_path / "gw.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        cfg = load_config(p)
        check_runnable(cfg, str(p))
    return [str(i) for i in exc.value.issues]


def test_gateway_config_errors_name_key_path_and_line(tmp_path):
    errs = _errors(
        tmp_path,
        """site: {id: s}
mqtt: {url: "mqtt://127.0.0.1:1883"}
gateway:
  id: g1
  sources:
    - type: opcua
      name: plc
      url: opc.tcp://10.0.0.1:4840
      groups:
        - name: a
          measurement: pump
          nodes:
            - {field: flow_m3_per_h, node_id: "ns=2;s=A"}
            - {field: head_m, node_id: "ns=2;s="}
    - type: opcuaa
      name: x
  buffer: {max_mb: -1}
""",
    )
    text = "\n".join(errs)
    assert "gw.yaml: gateway.sources[0].groups[0].nodes[1].node_id (line 14): Value error, 'ns=2;s=' is not a valid NodeId" in text
    assert "gateway.sources[1] (line 15): `type` must be one of: opcua, mqtt" in text
    assert "gateway.buffer.max_mb (line 17)" in text


def test_gateway_config_refuses_duplicate_series_and_security_without_trust(tmp_path):
    errs = _errors(
        tmp_path,
        """site: {id: s}
mqtt: {url: "mqtt://127.0.0.1:1883"}
gateway:
  id: g1
  sources:
    - type: opcua
      name: plc
      url: opc.tcp://10.0.0.1:4840
      security: {mode: SignAndEncrypt}
      groups:
        - {name: a, measurement: pump, asset: P1, nodes: [{field: power_kw, node_id: "ns=2;s=A"}]}
        - {name: b, measurement: pump, asset: P1, nodes: [{field: power_kw, node_id: "ns=2;s=B"}]}
""",
    )
    text = "\n".join(errs)
    assert "gateway.sources[0].security" in text and "trusted_server_certs" in text


def test_gateway_config_cross_section_errors_before_start(tmp_path):
    errs = _errors(tmp_path, "gateway:\n  id: g1\n  sources:\n    - {type: mqtt, name: d, mappings: [{topic: a/+, measurement: pv, fields: {power_kw: p}}]}\n")
    text = "\n".join(errs)
    assert "gateway.site" in text and "mqtt" in text and "gateway.sources[0].broker" in text


def test_check_config_cli_reports_every_gateway_error(tmp_path):
    p = tmp_path / "gw.yaml"
    p.write_text("gateway:\n  id: 'bad id'\n  sources: []\n  bogus: 1\n")
    r = subprocess.run([sys.executable, "-m", "plantmrv", "check-config", str(p)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 78
    assert "gateway.id (line 2)" in r.stderr and "gateway.sources (line 3)" in r.stderr and "gateway.bogus (line 4): unknown key" in r.stderr


def test_gateway_run_refuses_a_bad_config_before_starting(tmp_path):
    p = tmp_path / "gw.yaml"
    p.write_text("site: {id: s}\ngateway:\n  id: g1\n  sources:\n    - {type: opcua, name: p, url: 'opc.tcp://h:4840', groups: []}\n")
    r = subprocess.run([sys.executable, "-m", "plantmrv", "gateway", "run", "-c", str(p)], capture_output=True,
                       text=True, cwd=REPO, timeout=60)
    assert r.returncode == 78
    assert "gateway.sources[0].groups (line 5)" in r.stderr
    assert not (tmp_path / "gateway-buffer.db").exists()  # nothing started


def test_gateway_commands_have_help():
    for args in (["gateway", "--help"], ["gateway", "run", "--help"], ["gateway", "browse", "--help"]):
        r = subprocess.run([sys.executable, "-m", "plantmrv", *args], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert r.returncode == 0 and "Usage" in r.stdout, (args, r.stderr)


def test_gateway_run_config_keeps_opcua_nodes_as_tuples_with_the_validated_values():
    """The forked child validates; the agent gets every node as a NodeRef with the model's values."""
    from plantmrv.gateway.cli import load_config_compact
    from plantmrv.gateway.opcua_source import NodeRef, OpcUaSource

    path = REPO / "examples" / "gateway-opcua.yaml"
    full, compact = load_config(path), load_config_compact(path)
    check_runnable(compact, str(path))
    assert compact.site == full.site and compact.mqtt == full.mqtt and compact.influxdb == full.influxdb
    n = 0
    for fs, cs in zip(full.gateway.sources, compact.gateway.sources, strict=True):
        if fs.type != "opcua":
            assert cs == fs
            continue
        for fg, cg in zip(fs.groups, cs.groups, strict=True):
            assert cg.name == fg.name and cg.mode == fg.mode and cg.measurement == fg.measurement
            for fn, cn in zip(fg.nodes, cg.nodes, strict=True):
                assert type(cn) is NodeRef and cn == NodeRef.of(fn)
                assert (cn.field, cn.node_id, cn.browse_path, cn.asset, cn.measurement) == (
                    fn.field, fn.node_id, fn.browse_path, fn.asset, fn.measurement)
                n += 1
        a = OpcUaSource(fs, "s", None)
        b = OpcUaSource(cs, "s", None)
        assert a.table == b.table and [g.name for g in a.node_group] == [g.name for g in b.node_group]
    assert n > 0


def test_gateway_tune_malloc_sets_one_glibc_arena_unless_the_environment_does():
    import os
    import platform

    code = "from plantmrv.gateway.cli import tune_malloc; print(sorted(tune_malloc().items()))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    if platform.libc_ver()[0] != "glibc":
        assert r.stdout.strip() == "[]"
        return
    assert r.stdout.strip() == "[('malloc_arena_max', 1)]"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                       env=dict(env, MALLOC_ARENA_MAX="2"))
    assert r.stdout.strip() == "[]"


def test_modbus_config_errors_are_located(tmp_path):
    errs = _errors(tmp_path, """site: {id: s}
influxdb: {url: "http://127.0.0.1:1"}
gateway:
  id: g
  sink: {type: influxdb}
  sources:
    - type: modbus
      name: m
      host: 10.0.0.1
      devices:
        - name: d
          measurement: vsd
          points:
            - {field: flow_m3_per_h, address: 1, unit: MW}
            - {field: power_kw, kind: coil, address: 2, type: int32}
            - {field: energy_kwh, address: 3, type: string}
""")
    text = "\n".join(errs)
    assert "gateway.sources[0].devices[0].points[0] (line 14)" in text
    assert "'MW' cannot be converted to 'm3/h' (power vs volume flow)" in text
    assert "gateway.sources[0].devices[0].points[1] (line 15)" in text and "type must be bool" in text
    assert "points[2]" in text and "a string needs `length`" in text
