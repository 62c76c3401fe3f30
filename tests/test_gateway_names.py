"""Names a gateway writes follow docs/data-model.md: browse spells units into field names once, and
check-config refuses names outside the data model for sources with `schema: data_model`."""

from __future__ import annotations

import pytest
import yaml

from plantmrv.config import ConfigError, load_config
from plantmrv.gateway.browse import field_name, render_yaml


@pytest.mark.parametrize("browse_name, unit, expected", [
    ("Energy", "kWh", "energy_kwh"),
    ("energy_kwh", "kW·h", "energy_kwh"),  # was energy_kwh_k_w_h
    ("EnergyKWh", "kW h", "energy_kwh"),
    ("Running", "1", "running"),  # a dimensionless unit adds nothing (was running_v_1)
    ("Flow", "m³/h", "flow_m3_per_h"),
    ("Flow", "W", "flow_w"),
    ("PowerKW", "kW", "power_kw"),
    ("Speed", "%", "speed_pct"),
    ("WaterTemp", "°C", "water_temp_c"),
    ("Irradiance", "W/m²", "irradiance_w_per_m2"),
    ("Level", None, "level"),
])
def test_browse_spells_the_unit_into_the_field_name_once(browse_name, unit, expected):
    assert field_name(browse_name, unit) == (expected, None)


def test_a_unit_browse_cannot_spell_is_named_not_mangled():
    name, note = field_name("Distance", "furlong/fortnight")
    assert name == "distance" and "unit 'furlong/fortnight' not recognised" in note
    text = render_yaml("opc.tcp://h:4840", [{"group": "p1", "asset": "P1", "skipped": [],
                                             "nodes": [{"field": name, "node_id": "ns=2;s=D", "unit": "furlong/fortnight", "note": note}]}])
    assert "# furlong/fortnight; unit 'furlong/fortnight' not recognised: put it into the field name" in text


def _gateway(tmp_path, schema: str, measurement: str, fields: list[str], mqtt_fields: dict | None = None):
    src = [{"type": "opcua", "name": "plc", "url": "opc.tcp://127.0.0.1:4840", "schema": schema,
            "groups": [{"name": "g", "measurement": measurement, "asset": "P1",
                        "nodes": [{"field": f, "node_id": f"ns=2;s={f}"} for f in fields]}]}]
    if mqtt_fields:
        src.append({"type": "mqtt", "name": "dev", "broker": {"url": "mqtt://127.0.0.1:1883"}, "schema": schema,
                    "mappings": [{"topic": "d/+", "measurement": measurement, "fields": mqtt_fields}]})
    p = tmp_path / "gw.yaml"
    p.write_text(yaml.safe_dump({"site": {"id": "s"}, "influxdb": {}, "gateway": {"id": "g", "sink": {"type": "influxdb"}, "sources": src}}, sort_keys=False))
    return p


def test_check_config_holds_data_model_sources_to_the_data_model_names(tmp_path):
    bad = _gateway(tmp_path, "data_model", "pump", ["power_kw", "energy_kwh_k_w_h", "running_v_1"], {"flow_m3_per_h": "f", "kw": "p"})
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    lines = [str(i) for i in err.value.issues]
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{bad}: gateway.sources[0].groups[0].nodes[1].field (line ")
    assert "'energy_kwh_k_w_h' is not a field of 'pump' in docs/data-model.md" in lines[0] and "schema: none" in lines[0]
    assert "gateway.sources[0].groups[0].nodes[2].field" in lines[1]
    assert "gateway.sources[1].mappings[0].fields.kw" in lines[2]
    with pytest.raises(ConfigError) as err:
        load_config(_gateway(tmp_path, "data_model", "CHANGE_ME", ["power_kw"]))
    assert "gateway.sources[0].groups[0].measurement" in str(err.value) and "'CHANGE_ME' is not a measurement" in str(err.value)
    assert load_config(_gateway(tmp_path, "data_model", "pump", ["power_kw", "energy_kwh", "running"]))
    assert load_config(_gateway(tmp_path, "none", "my_skid", ["t0_kw"]))  # names of one's own, knowingly
