"""docs/configuration.md is generated from the config models and must match them."""

from pathlib import Path

from plantmrv.configdoc import generate

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_configuration_reference_is_in_sync_with_the_models():
    assert DOC.read_text() == generate(), "run `plantmrv config-doc -o docs/configuration.md` and commit the result"


def test_reference_covers_every_section():
    text = generate()
    for section in ("site", "influxdb", "mqtt", "gateway", "ingest", "analytics", "api"):
        assert f"## `{section}`" in text
