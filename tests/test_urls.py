"""Every service URL is parsed and checked at config load, each fault a located error, and a value
that may carry a secret is never echoed (errors and logs show it redacted)."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from plantmrv.app.cli import app
from plantmrv.urls import check_url, redact

SECRET = "S3CR3T-pw"


@pytest.mark.parametrize("url, words", [
    ("htp//127.0.0.1 :33261", "contains white space"),
    ("htp//127.0.0.1:33261", "has no scheme"),
    ("ftp://127.0.0.1:21", "has scheme 'ftp'"),
    ("http://", "has no host"),
    ("http://:8086", "has no host"),
    ("http://host:99999", "port '99999' is not a number from 1 to 65535"),
    ("http://host:0", "port 0 is not from 1 to 65535"),
    ("http://host:abc", "port 'abc' is not a number"),
    ("http://host:", "empty port"),
    ("http://ho$t:8086", "'ho$t' is not a host name or IP address"),
    ("http://[fe80::zz]:8086", "not appear to be an IPv4 or IPv6 address"),
    ("http://host:8086/?db=x", "query or fragment"),
    (f"http://admin:{SECRET}@host:8086", "holds credentials"),
])
def test_a_broken_url_is_refused_naming_the_fault(url, words):
    with pytest.raises(ValueError, match=words.replace("$", r"\$").replace("?", r"\?").replace("[", r"\[")) as err:
        check_url(url, {"http": 80, "https": 443})
    assert SECRET not in str(err.value)


def test_good_urls_parse_with_default_ports():
    assert check_url("https://influx.example.org", {"http": 80, "https": 443}).port == 443
    assert check_url("http://[::1]:8086/prefix", {"http": 80}).netloc == "[::1]:8086"
    assert check_url("mqtts://broker_1.local", {"mqtt": 1883, "mqtts": 8883}, path=False).port == 8883
    with pytest.raises(ValueError, match="has a path"):
        check_url("mqtt://broker:1883/x", {"mqtt": 1883}, path=False)


def test_redact_masks_credentials_and_secret_parameters_in_any_text():
    assert redact(f"cannot reach mqtts://gw:{SECRET}@broker:8883 now") == "cannot reach mqtts://gw:***@broker:8883 now"
    assert redact(f"http://u:{SECRET}@h/x?token={SECRET}&db=p") == "http://u:***@h/x?token=***&db=p"
    assert redact("mqtt://user@host") == "mqtt://user@host"


BROKEN = f"mqtts://gw:{SECRET}@broker.example.org:8883"
CASES = {  # key path -> a config with that URL broken (None: a gateway's)
    "influxdb.url": {"influxdb": {"url": "htp//127.0.0.1 :33261"}},
    "mqtt.url": {"mqtt": {"url": BROKEN}},
    "gateway.sources[0].url": None,
    "gateway.sources[1].broker.url": None,
}


def _gateway(opcua_url: str, broker_url: str) -> dict:
    return {"site": {"id": "s"}, "gateway": {"id": "g", "sink": {"type": "influxdb"}, "sources": [
        {"type": "opcua", "name": "plc", "url": opcua_url, "groups": [{"name": "g", "measurement": "pump", "nodes": [{"field": "power_kw", "node_id": "ns=2;s=P"}]}]},
        {"type": "mqtt", "name": "dev", "broker": {"url": broker_url}, "mappings": [{"topic": "d/+", "measurement": "pump", "fields": {"power_kw": "p"}}]}]}}


@pytest.mark.parametrize("key", list(CASES))
def test_check_config_locates_every_broken_service_url_and_never_echoes_a_secret(tmp_path, key):
    doc = CASES[key]
    if doc is None:
        doc = _gateway(f"opc.tcp://op:{SECRET}@plc:4840" if "sources[0]" in key else "opc.tcp://plc:4840",
                       BROKEN if "broker" in key else "mqtt://devices:1883")
    f = tmp_path / "c.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    f.write_text(text)
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if "url:" in ln and (SECRET in ln or "htp//" in ln))
    res = CliRunner().invoke(app, ["check-config", str(f)])
    assert res.exit_code == 78  # EX_CONFIG
    first = res.output.splitlines()[0]
    assert first.startswith(f"{f}: {key} (line {line}): "), res.output
    assert SECRET not in res.output
    if SECRET in yaml.safe_dump(doc):
        assert ":***@" in first and "holds credentials" in first


def test_a_config_error_never_echoes_credentials_whatever_the_validator_says(tmp_path):
    from plantmrv.config import ConfigIssue

    assert SECRET not in str(ConfigIssue("f.yaml", "x", 3, f"value 'mqtt://u:{SECRET}@h' is odd"))
