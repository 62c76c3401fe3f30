"""One log format for every plantmrv service: logfmt (default) or JSON lines, on standard error.

Every record becomes one line of ``key=value`` pairs (``--log-format logfmt``) or one JSON
object (``--log-format json``), always starting with ``ts`` (UTC, RFC 3339), ``level`` and
``logger``. Call sites keep writing templates, ``log.info("event=x site=%s n=%d", site, n)``:
the formatter reads the keys from the template and the values from the arguments, so a value
with spaces, quotes or newlines is quoted correctly (``error="timed out: no reply"``) and never
splits into false keys, and JSON keeps numbers as numbers. Text before the first ``key=`` is
the ``msg``. A key that repeats in one line gets a suffix (``event_2``); ``tests/test_logs.py``
fails on a template that repeats a key.

Exceptions stay on the line: ``error="Type: message"`` and, for plantmrv's own loggers,
``traceback="..."`` (escaped). A third-party library's traceback (asyncua logs one on every
lost connection) is folded into one WARNING line with ``error=``; the traceback itself goes to
a separate DEBUG line, shown only with ``--log-level debug``.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import re
import sys
import time
import traceback
from typing import Any, TextIO

import typer


class LogLevel(str, enum.Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(str, enum.Enum):
    logfmt = "logfmt"
    json = "json"


LOG_LEVEL_OPTION = typer.Option(
    LogLevel.info, "--log-level", case_sensitive=False, envvar="PLANTMRV_LOG_LEVEL",
    help="Least severe level logged: debug, info, warning or error.",
)
LOG_FORMAT_OPTION = typer.Option(
    LogFormat.logfmt, "--log-format", case_sensitive=False, envvar="PLANTMRV_LOG_FORMAT",
    help="Log lines on standard error: logfmt (key=value) or json (one object per line).",
)

RESERVED = ("ts", "level", "logger")
OWN_LOGGERS = ("plantmrv", "__main__")
# libraries that log much at INFO about what plantmrv reports itself
QUIET_LIBRARIES = ("asyncua", "aiomqtt", "paho", "pymodbus", "httpx", "httpcore", "urllib3", "uvicorn.access", "aiosqlite")

_OPEN, _CLOSE = "\ue000", "\ue001"  # (private use) around a substituted argument while the line is parsed
_PROTECTED = re.compile(f"{_OPEN}(\\d+){_CLOSE}")
_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z_][A-Za-z0-9_.]*)=")
_SPEC = re.compile(r"%(?:\(([^)]*)\))?([#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?)[hlL]?([diouxXeEfFgGcrsa%])")
_QUOTED = re.compile(r'=("(?:[^"\\]|\\.)*")')
_BARE = re.compile(r"^[^\s\"=\\\x00-\x1f\x7f]+\Z")
_NUMBER = re.compile(r"^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?\Z")


def quote(value: str) -> str:
    """A logfmt value: bare when it holds no space, quote, ``=``, backslash or control character."""
    return value if _BARE.match(value) else json.dumps(value, ensure_ascii=False)


def _substitute(template: str, args: tuple) -> tuple[str, list[tuple[str, Any]]]:
    """Replace each %-spec of ``template`` by a placeholder; return it and (text, raw arg) per placeholder."""
    values: list[tuple[str, Any]] = []
    it = iter(args)
    missing = object()

    def repl(m: re.Match) -> str:
        if m.group(3) == "%":
            return "%"
        if m.group(1) is not None or "*" in m.group(2):
            raise TypeError("mapping keys and * widths are not supported in log templates")
        arg = next(it, missing)
        if arg is missing:
            raise TypeError("not enough arguments for the log template")
        conv = m.group(3)
        if conv in "ra" and isinstance(arg, str):
            conv = "s"  # the formatter quotes strings itself; repr() would add a second layer
        text = ("%" + m.group(2) + conv) % (arg,)
        values.append((text.replace(_OPEN, "").replace(_CLOSE, ""), arg))
        return f"{_OPEN}{len(values) - 1}{_CLOSE}"

    skeleton = _SPEC.sub(repl, template.replace(_OPEN, "").replace(_CLOSE, ""))
    if next(it, missing) is not missing:
        raise TypeError("not all arguments converted in the log template")
    return skeleton, values


def parse(text: str, values: list[tuple[str, Any]] | None = None) -> list[tuple[str, Any]]:
    """The (key, value) pairs of a message; text before the first ``key=`` becomes ``msg``.

    ``values`` holds the substituted arguments that ``text`` refers to by placeholder; a value
    that is exactly one argument keeps the argument (an int stays an int in JSON).
    """
    values = list(values or [])
    if '="' in text:  # already-quoted values (a preformatted logfmt string): keep them whole, unquoted
        def unquote(m: re.Match) -> str:
            try:
                decoded = json.loads(m.group(1))
            except ValueError:
                return m.group(0)
            values.append((decoded, decoded))
            return f"={_OPEN}{len(values) - 1}{_CLOSE}"

        text = _QUOTED.sub(unquote, text)

    def restore(s: str) -> Any:
        s = s.strip()
        m = _PROTECTED.fullmatch(s)
        if m:
            shown, raw = values[int(m.group(1))]
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and shown.strip() == str(raw):
                return raw
            return shown
        return _PROTECTED.sub(lambda m: values[int(m.group(1))][0], s)

    keys = list(_KEY.finditer(text))
    pairs: list[tuple[str, Any]] = []
    head = text[: keys[0].start()] if keys else text
    if head.strip():
        pairs.append(("msg", restore(head)))
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(text)
        pairs.append((m.group(1), restore(text[m.end():end])))
    return pairs


def template_keys(template: str) -> list[str]:
    """Keys a log template produces, in order (for the check that none repeats)."""
    skeleton = _SPEC.sub(lambda m: "%" if m.group(3) == "%" else f"{_OPEN}0{_CLOSE}", template)
    return [m.group(1) for m in _KEY.finditer(skeleton)]


def _message_pairs(record: logging.LogRecord) -> list[tuple[str, Any]]:
    if not record.name.startswith(OWN_LOGGERS):
        return [("msg", record.getMessage())]
    template = str(record.msg)
    if not record.args:
        return parse(template)
    if isinstance(record.args, dict):
        return parse(record.getMessage())
    try:
        skeleton, values = _substitute(template, tuple(record.args))
    except (TypeError, ValueError) as exc:
        return [("msg", template), ("args", repr(record.args)), ("log_error", str(exc))]
    return parse(skeleton, values)


def _unique(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    seen: dict[str, int] = {}
    out = []
    for k, v in pairs:
        n = seen.get(k, 0) + 1
        seen[k] = n
        out.append((k if n == 1 else f"{k}_{n}", v))
    return out


def _exception_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class StructuredFormatter(logging.Formatter):
    """Formats every record as one logfmt or JSON line (see the module docstring)."""

    def __init__(self, fmt: LogFormat | str = LogFormat.logfmt) -> None:
        super().__init__()
        self.json = LogFormat(fmt) is LogFormat.json

    def pairs(self, record: logging.LogRecord) -> list[tuple[str, Any]]:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        pairs: list[tuple[str, Any]] = [("ts", ts), ("level", record.levelname.lower()), ("logger", record.name)]
        pairs += _message_pairs(record)
        if getattr(record, "_plantmrv_error", None):
            pairs.append(("error", record._plantmrv_error))
        if record.exc_info and record.exc_info[1] is not None:
            pairs.append(("error", _exception_text(record.exc_info[1])))
            pairs.append(("traceback", "".join(traceback.format_exception(*record.exc_info)).rstrip()))
        elif record.exc_text:
            pairs.append(("traceback", record.exc_text))
        if record.stack_info:
            pairs.append(("stack", record.stack_info))
        return _unique(pairs)

    def format(self, record: logging.LogRecord) -> str:
        pairs = self.pairs(record)
        if self.json:
            return json.dumps({k: _json_value(v) for k, v in pairs}, ensure_ascii=False)
        return " ".join(f"{k}={quote(_text(v))}" for k, v in pairs)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (int, float)) or not _NUMBER.match(v):
        return v
    return int(v) if v.lstrip("-").isdigit() else float(v)


class FoldThirdPartyTracebacks(logging.Filter):
    """A library's record with a traceback becomes one WARNING line; the traceback a DEBUG line.

    plantmrv handles the failures its libraries report (a lost OPC UA connection is retried and
    logged by the source), so their tracebacks are detail, not alarms.
    """

    def __init__(self, handler: logging.Handler, debug: bool) -> None:
        super().__init__()
        self.handler = handler
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.name.startswith(OWN_LOGGERS) or not record.exc_info or record.exc_info[1] is None
                or getattr(record, "_plantmrv_detail", False)):
            return True
        exc_info = record.exc_info
        if self.debug:
            detail = logging.LogRecord(record.name, logging.DEBUG, record.pathname, record.lineno,
                                       "%s", (record.getMessage(),), exc_info)
            detail.created, detail.msecs, detail._plantmrv_detail = record.created, record.msecs, True
            self.handler.handle(detail)
        record.exc_info, record.exc_text = None, None
        record._plantmrv_error = _exception_text(exc_info[1])
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_HANDLER_MARK = "_plantmrv_handler"


def setup(level: LogLevel | str = LogLevel.info, fmt: LogFormat | str = LogFormat.logfmt, *,
          stream: TextIO | None = None, file: str | None = None) -> None:
    """Route every logger (plantmrv's and the libraries') through one structured handler.

    Replaces handlers a previous call installed (tests call it more than once). ``file``: also
    append the same lines to this file.
    """
    level_name = LogLevel(str(getattr(level, "value", level)).lower()).value.upper()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
            h.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if file:
        handlers.append(logging.FileHandler(file))
    debug = level_name == "DEBUG"
    for h in handlers:
        h.setFormatter(StructuredFormatter(fmt))
        h.addFilter(FoldThirdPartyTracebacks(h, debug))
        setattr(h, _HANDLER_MARK, True)
        root.addHandler(h)
    root.setLevel(level_name)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
