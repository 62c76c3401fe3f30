"""Message catalogues: the template matches the sources, Japanese is complete and keeps every
placeholder, English is the default, a third language is one catalogue file away, and the
dashboards, alert rules and CLI report come out in the language asked for."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from plantmrv import i18n
from plantmrv.app.cli import app as cli_app
from plantmrv.i18n import __main__ as tools

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "analytics.yaml"
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}|\{\w+(?::[^{}]*)?\}|`[^`]*`")


def test_committed_template_is_extracted_from_the_sources():
    assert tools.TEMPLATE.read_bytes() == tools.render_template(), "run: python -m plantmrv.i18n update"


def test_template_does_not_depend_on_which_methodology_was_imported_first():
    """The registry's texts come out in one order whatever the import order (a full test run
    imports the methodologies in another order than ``python -m plantmrv.i18n update``)."""
    import subprocess
    import sys

    code = ("import plantmrv.analytics.wte, plantmrv.analytics.pv, plantmrv.analytics.ubcf\n"
            "from plantmrv.i18n import __main__ as t\n"
            "import sys; sys.exit(0 if t.TEMPLATE.read_bytes() == t.render_template() else 1)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "template order follows import order"


def test_japanese_catalogue_translates_every_message():
    assert tools.untranslated("ja") == []
    assert i18n.languages() == ["en", "ja"]


def test_translations_keep_every_placeholder_and_grafana_template():
    for m in i18n.catalogue("ja"):
        if not m.id:
            continue
        assert sorted(PLACEHOLDER.findall(m.id)) == sorted(PLACEHOLDER.findall(m.string)), m.id


def test_english_is_the_default_and_an_unknown_message_falls_back_to_english():
    assert i18n.gettext("Flow") == "Flow"
    assert i18n.gettext("Flow", lang="ja") == "流量"
    assert i18n.gettext("a message nobody translated", lang="ja") == "a message nobody translated"
    with i18n.language("ja"):
        assert i18n._("Flow") == "流量"
        assert i18n.translator("en")("Flow") == "Flow"
    assert i18n.gettext("Flow") == "Flow"


def test_the_language_of_one_thread_does_not_leak_into_another():
    seen = {}

    def other():
        seen["other"] = i18n.gettext("Flow")

    with i18n.language("ja"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        seen["here"] = i18n.gettext("Flow")
    assert seen == {"other": "Flow", "here": "流量"}


def test_an_unknown_language_names_the_ones_available():
    with pytest.raises(i18n.UnknownLanguage, match=r"'xx' has no catalogue .*available: en, ja"):
        i18n.gettext("Flow", lang="xx")


def test_a_third_language_is_one_catalogue_file_away(tmp_path, monkeypatch):
    for p in i18n.CATALOGUE_DIR.glob("*.po*"):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    (tmp_path / "vi.po").write_text(
        'msgid ""\nmsgstr ""\n"Language: vi\\n"\n"Plural-Forms: nplurals=1; plural=0;\\n"\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "Flow"\nmsgstr "Lưu lượng"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(i18n, "CATALOGUE_DIR", tmp_path)
    i18n.catalogue.cache_clear()
    i18n._table.cache_clear()
    try:
        assert i18n.languages() == ["en", "ja", "vi"]
        assert i18n.gettext("Flow", lang="vi") == "Lưu lượng"
        assert i18n.gettext("Head", lang="vi") == "Head"  # untranslated yet: English
    finally:
        i18n.catalogue.cache_clear()
        i18n._table.cache_clear()


def test_fill_leaves_grafana_templates_alone():
    assert i18n.fill("{{ $labels.site }}: {n} min, {pct:.0f} %", n=5, pct=80.4) == "{{ $labels.site }}: 5 min, 80 %"


def _texts(dash):
    for p in dash["panels"]:
        yield p["title"]
        if p.get("description"):
            yield p["description"]
        label = p.get("fieldConfig", {}).get("defaults", {}).get("custom", {}).get("axisLabel")
        if label:
            yield label
    for v in dash["templating"]["list"]:
        yield v.get("label", "")
    for a in dash["annotations"].get("list", []):
        yield a["name"]


def test_japanese_dashboards_are_japanese_throughout_and_still_pass_the_schema(tmp_path):
    from plantmrv.dashboards import build
    from plantmrv.dashboards.settings import BuildSettings

    settings = BuildSettings.load(EXAMPLE)
    ja = build.build_all(settings, lang="ja")
    same = {m.id for m in i18n.catalogue("ja") if m.id and m.id == m.string}  # "NH4 [mg/L]", "tCO2"
    for uid, dash in ja.items():
        assert JAPANESE.search(dash["title"]), dash["title"]
        assert build.schema_errors(dash) == []
        for text in _texts(dash):
            assert JAPANESE.search(text) or text in same or text in ("InfluxDB", ""), f"{uid}: {text!r} is not Japanese"
    en = build.build_all(settings)
    assert [p.get("targets") for p in ja["plantmrv-pump"]["panels"]] == [p.get("targets") for p in en["plantmrv-pump"]["panels"]]  # same queries


def test_cli_builds_the_japanese_set_and_its_alert_rules(tmp_path):
    runner = CliRunner()
    out, alerting = tmp_path / "ja", tmp_path / "alerting"
    r = runner.invoke(cli_app, ["dashboards", "build", "-c", str(EXAMPLE), "--lang", "ja", "--out", str(out), "--alerting-dir", str(alerting)])
    assert r.exit_code == 0, r.output
    import json

    assert json.loads((out / "plantmrv-pump.json").read_text())["title"] == "plantmrv / ポンプ場"
    doc = yaml.safe_load((alerting / "plantmrv-alerting.yaml").read_text())
    rule = next(r for g in doc["groups"] for r in g["rules"] if r["uid"] == "plantmrv-gateway-offline")
    assert rule["title"] == "ゲートウェイ オフライン"
    assert rule["annotations"]["summary"] == "ゲートウェイ {{ $labels.gateway }}（{{ $labels.site }}）から 5 分間ヘルス報告がありません"
    r = runner.invoke(cli_app, ["dashboards", "build", "--lang", "xx", "--out", str(out)])
    assert r.exit_code == 2 and "available: en, ja" in r.output
