"""One log format for every service: logfmt with correct quoting or JSON, unique keys, one line per event."""

from __future__ import annotations

import ast
import io
import json
import logging
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantmrv import logs

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["plantmrv", "gateway", "ingest", "analytics", "dashboards", "simulators"]
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical"}


@pytest.fixture
def capture():
    """Logs of one test as text, through the handler `plantmrv.logs.setup` installs."""
    made = []

    def make(level="info", fmt="logfmt"):
        stream = io.StringIO()
        logs.setup(level, fmt, stream=stream)
        made.append(stream)
        return stream

    yield make
    logs.setup("warning", "logfmt")  # leave the root logger quiet for the tests after this one


def parse_logfmt(line: str) -> dict[str, str]:
    """A strict logfmt reader: bare values or JSON-quoted strings, each key once."""
    out: dict[str, str] = {}
    pos = 0
    pattern = re.compile(r'([A-Za-z_][A-Za-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^\s"=\\]+)(?: |$)')
    while pos < len(line):
        m = pattern.match(line, pos)
        assert m, f"not logfmt at {pos}: {line[pos:]!r}"
        key, value = m.group(1), m.group(2)
        assert key not in out, f"key {key} repeats in {line!r}"
        out[key] = json.loads(value) if value.startswith('"') else value
        pos = m.end()
    return out


def test_values_with_spaces_quotes_and_newlines_are_quoted_and_stay_on_one_line(capture):
    out = capture()
    log = logging.getLogger("plantmrv.gateway.test")
    log.warning("event=opcua_connection_lost source=%s url=%s error=%s: %s", "plc 1", "opc.tcp://h:4840", "TimeoutError", 'no "reply"\nat all')
    (line,) = out.getvalue().splitlines()
    rec = parse_logfmt(line)
    assert list(rec)[:3] == ["ts", "level", "logger"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["ts"])
    assert rec["level"] == "warning" and rec["logger"] == "plantmrv.gateway.test"
    assert rec["event"] == "opcua_connection_lost" and rec["source"] == "plc 1" and rec["url"] == "opc.tcp://h:4840"
    assert rec["error"] == 'TimeoutError: no "reply"\nat all'


def test_a_value_that_looks_like_pairs_stays_one_value(capture):
    out = capture()
    logging.getLogger("plantmrv.ingest").info("event=dead_letter topic=%s reason=%s", "a/b", "unknown_field: x=1 y=2")
    rec = parse_logfmt(out.getvalue().strip())
    assert rec["reason"] == "unknown_field: x=1 y=2" and "x" not in rec and "y" not in rec


def test_json_lines_keep_numbers_as_numbers(capture):
    out = capture(fmt="json")
    logging.getLogger("plantmrv.gateway").info("event=status read=%d ratio=%.2f site=%s pct=%d%%", 12, 0.456, "danang", 50)
    logging.getLogger("plantmrv.gateway").info("event=status read=12 buffered=3 components=sink:mqtt:up")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["read"] == 12 and first["ratio"] == 0.46 and first["site"] == "danang" and first["pct"] == "50%"
    assert second["read"] == 12 and second["buffered"] == 3 and second["components"] == "sink:mqtt:up"
    assert set(first) >= {"ts", "level", "logger", "event"}


def test_a_repeated_key_is_kept_under_a_suffix_never_twice(capture):
    out = capture()
    logging.getLogger("plantmrv.x").info("event=gateway_stop event=status level=high")
    rec = parse_logfmt(out.getvalue().strip())
    assert rec["event"] == "gateway_stop" and rec["event_2"] == "status" and rec["level"] == "info" and rec["level_2"] == "high"


def test_text_before_the_first_key_is_the_msg_and_repr_quotes_are_not_doubled(capture):
    out = capture()
    logging.getLogger("plantmrv.api").info("stopping now event=stop who=%r", "tpe 1")
    rec = parse_logfmt(out.getvalue().strip())
    assert rec["msg"] == "stopping now" and rec["who"] == "tpe 1"


def test_our_exceptions_keep_their_traceback_on_the_same_line(capture):
    out = capture()
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("plantmrv.ingest").exception("event=write_job_failed messages=%d", 3)
    (line,) = out.getvalue().splitlines()
    rec = parse_logfmt(line)
    assert rec["level"] == "error" and rec["error"] == "ValueError: bad\nvalue" and "Traceback (most recent call last)" in rec["traceback"]


def test_a_library_traceback_is_one_warning_line_and_the_traceback_only_at_debug(capture):
    def library_error(stream_level):
        out = capture(stream_level)
        try:
            raise ConnectionResetError("peer went away")
        except ConnectionResetError:
            logging.getLogger("asyncua.client.ua_client").error("Error while renewing session", exc_info=True)
        return out.getvalue().splitlines()

    (line,) = library_error("info")
    rec = parse_logfmt(line)
    assert rec["level"] == "warning" and rec["msg"] == "Error while renewing session"
    assert rec["error"] == "ConnectionResetError: peer went away" and "traceback" not in rec
    detail, summary = (parse_logfmt(x) for x in library_error("debug"))
    assert detail["level"] == "debug" and "Traceback (most recent call last)" in detail["traceback"]
    assert summary["level"] == "warning" and "traceback" not in summary


def test_a_template_with_wrong_arguments_still_formats_as_one_line():
    record = logging.LogRecord("plantmrv.x", logging.INFO, __file__, 1, "event=x n=%d m=%d", (1,), None)
    rec = parse_logfmt(logs.StructuredFormatter("logfmt").format(record))
    assert rec["msg"] == "event=x n=%d m=%d" and rec["args"] == "(1,)" and "log_error" in rec


@given(st.text(max_size=40), st.text(max_size=40))
def test_any_value_round_trips_through_logfmt(a, b):
    formatter = logs.StructuredFormatter("logfmt")
    record = logging.LogRecord("plantmrv.t", logging.INFO, __file__, 1, "event=x a=%s b=%s", (a, b), None)
    line = formatter.format(record)
    assert "\n" not in line
    rec = parse_logfmt(line)
    assert rec["a"] == a.replace("\ue000", "").replace("\ue001", "") and rec["b"] == b.replace("\ue000", "").replace("\ue001", "")


def _log_templates():
    """Every literal template passed to a logger in the packages: (file:line, template)."""
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOG_METHODS and node.args):
                    continue
                if not (isinstance(node.func.value, ast.Name) and node.func.value.id in ("log", "logger", "access_log", "_log")):
                    continue
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    yield f"{path.relative_to(ROOT)}:{node.lineno}", first.value
                elif isinstance(first, ast.JoinedStr):
                    yield f"{path.relative_to(ROOT)}:{node.lineno}", "".join(
                        v.value if isinstance(v, ast.Constant) else "%s" for v in first.values)


def test_no_log_template_repeats_a_key_or_uses_a_reserved_one():
    templates = list(_log_templates())
    assert len(templates) > 40  # the scan finds the code's log calls
    bad = []
    for where, template in templates:
        keys = logs.template_keys(template)
        repeated = {k for k in keys if keys.count(k) > 1}
        reserved = set(keys) & set(logs.RESERVED)
        if repeated or reserved:
            bad.append(f"{where}: {template!r} repeats {sorted(repeated)} / uses reserved {sorted(reserved)}")
    assert not bad, "\n".join(bad)


def test_every_service_command_offers_the_same_log_options():
    from typer.main import get_command

    from plantmrv.app.cli import app

    cli = get_command(app)
    for path in (("gateway", "run"), ("ingest", "run"), ("analytics", "run"), ("simulate",), ("api",)):
        cmd = cli
        for part in path:
            cmd = cmd.commands[part] if hasattr(cmd, "commands") and part in cmd.commands else cmd
        names = {o for p in cmd.params for o in p.opts}
        assert {"--log-level", "--log-format"} <= names, f"plantmrv {' '.join(path)}: {sorted(names)}"


def test_an_unknown_log_level_is_a_usage_error(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "plantmrv", "gateway", "run", "-c", str(tmp_path / "x.yaml"), "--log-level", "verbose"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "verbose" in proc.stderr and "debug" in proc.stderr, proc.stderr
