"""YAML configuration: loading, ``${ENV}`` substitution, pydantic validation, located errors.

One schema for every service: the shared sections defined here (``site``, ``influxdb``, ``mqtt``)
and a section per service (``gateway``, ``ingest``, ...), which each service declares beside its
code (:class:`ConfigSection`) and the application registers (:mod:`plantmrv.app.config`); a file
holds the sections its service needs.
Every validation error is rendered as ``file: key.path (line N): message`` so an engineer
finds the fault without reading a traceback. Secrets (passwords, tokens) are ``SecretStr``
and never printed; ``${VAR}`` / ``${VAR:-default}`` take them from the environment, or from the
file that ``$VAR_FILE`` names when ``$VAR`` is unset (Docker secrets, systemd credentials).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from plantmrv.urls import check_url, redact


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors (typos are caught before start)."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- shared sections


def check_timezone(value: str) -> str:
    """An IANA zone name (``Asia/Ho_Chi_Minh``) or ``utc``; anything else is an error."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value in ("utc", "UTC"):
        return "utc"
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Asia/Ho_Chi_Minh, Asia/Tokyo)") from None
    return value


class SiteConfig(StrictModel):
    id: str = Field(description="Site identifier, used as the `site` tag (e.g. `danang`).", pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = Field(None, description="Human-readable plant name.")
    country: str | None = Field(None, description="Host country (ISO 3166 alpha-2 or name).")
    city: str | None = None
    timezone: str = Field("UTC", description="IANA time zone of the plant, for reports.")


class InfluxTlsConfig(StrictModel):
    ca_file: Path | None = Field(None, description="PEM CA certificate that signed InfluxDB's certificate (an `https://` url), instead of the system's trust store.")


class InfluxConfig(StrictModel):
    url: str = Field("http://127.0.0.1:8086", description="Base URL of the v1-compatible HTTP API.")
    database: str = Field("plantmrv", description="Database (InfluxDB 2.x/3.x: the bucket's DBRP database).")
    retention_policy: str | None = Field(None, description="Retention policy (InfluxDB 2.x: the DBRP mapping's).")
    username: str | None = Field(None, description="v1 user (InfluxDB 1.x auth).")
    password: SecretStr | None = Field(None, description="v1 password; use `${INFLUX_PASSWORD}`.")
    token: SecretStr | None = Field(None, description="v2/v3 API token, sent as `Authorization: Token`; use `${INFLUX_TOKEN}`.")
    timeout_s: float = Field(10.0, gt=0, description="HTTP timeout per request.")
    gzip: bool = Field(False, description="Gzip /write bodies (saves bandwidth on WAN links; costs influxd CPU).")
    max_retries: int = Field(5, ge=0, description="Retries on connection errors, 429 and 5xx, with exponential backoff and jitter.")
    batch_lines: int = Field(5000, ge=1, le=5000, description="Lines per /write body.")
    create_database: bool = Field(True, description="Create the database at start if missing (InfluxDB 1.x).")
    tls: InfluxTlsConfig | None = Field(None, description="TLS toward InfluxDB (with an `https://` url).")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        check_url(v, {"http": 80, "https": 443})
        return v

    @model_validator(mode="after")
    def _one_auth(self) -> "InfluxConfig":
        if self.token is not None and self.username is not None:
            raise ValueError("set either token (v2/v3) or username/password (v1), not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    def client(self):
        """The client; a CA file that cannot be loaded raises ValueError naming ``influxdb.tls.ca_file``."""
        from plantmrv.influx import InfluxClient

        try:
            return InfluxClient.from_config(self)
        except ValueError as exc:
            raise ValueError(f"influxdb.{exc}") from None


class TlsConfig(StrictModel):
    ca_file: Path | None = Field(None, description="CA certificate that signed the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Client private key (mutual TLS).")
    insecure: bool = Field(False, description="Skip broker hostname verification (test only).")


MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}


class MqttConfig(StrictModel):
    url: str = Field("mqtt://127.0.0.1:1883", description="Broker URL: mqtt://host:port or mqtts://host:port.")
    username: str | None = None
    password: SecretStr | None = Field(None, description="Use `${MQTT_PASSWORD}`.")
    client_id: str | None = Field(None, description="MQTT client id; a persistent session needs a stable one.")
    keepalive_s: int = Field(30, ge=5, le=65535)
    tls: TlsConfig | None = None
    topic_prefix: str = Field("plantmrv/v1", description="Prefix of gateway batch and state topics.")

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        check_url(v, MQTT_SCHEMES, path=False)
        return v

    @property
    def host(self) -> str:
        return check_url(self.url, MQTT_SCHEMES, path=False).host

    @property
    def port(self) -> int:
        return check_url(self.url, MQTT_SCHEMES, path=False).port

    @property
    def use_tls(self) -> bool:
        return self.url.lower().startswith("mqtts") or self.tls is not None


class MetricsConfig(StrictModel):
    """``/metrics``, ``/healthz`` and ``/readyz`` of a long-running service (docs/operations.md)."""

    host: str = Field("127.0.0.1", description="Address of /metrics, /healthz and /readyz.")
    port: int | None = Field(None, ge=0, le=65535, description="Their port; null disables them, 0 picks a free port (logged).")


# --------------------------------------------------------------------------- root


@dataclass(frozen=True)
class ConfigSection:
    """A service's top-level section: its key, its model and the checks that span sections.

    Each service declares its own (``SECTION`` in ``<service>/config.py``) and the application
    (:mod:`plantmrv.app.config`) registers them all, in the order the reference lists them: this
    module knows no service. A check takes ``(root_config, filename)`` and raises
    :class:`ConfigError`; :func:`load_config` runs it for every file that holds the section.
    """

    name: str
    model: type[BaseModel]
    checks: tuple[Callable[[Any, str], None], ...] = ()


_SECTIONS: dict[str, ConfigSection] = {}
_ROOT = None


def register_section(section: ConfigSection) -> None:
    """Add a service's section to the root schema (once; registering the same one again is a no-op)."""
    global _ROOT
    known = _SECTIONS.get(section.name)
    if known is not None and known != section:
        raise ValueError(f"config section {section.name!r} is registered twice, with different models or checks")
    _SECTIONS[section.name] = section
    _ROOT = None


def _build_root():
    from pydantic import create_model

    sections = {s.name: (s.model | None, None) for s in _SECTIONS.values()}
    return create_model(
        "PlantMRVConfig",
        __base__=StrictModel,
        site=(SiteConfig | None, None),
        influxdb=(InfluxConfig, InfluxConfig()),
        mqtt=(MqttConfig | None, None),
        **sections,
    )


def root_model():
    """The model of a whole config file: the shared sections and every registered service's."""
    global _ROOT
    if _ROOT is None:
        if not _SECTIONS:
            raise RuntimeError("no service has registered its config section: import plantmrv.app.config, which registers every service's")
        _ROOT = _build_root()
    return _ROOT


# --------------------------------------------------------------------------- errors


@dataclass
class ConfigIssue:
    file: str
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return redact(f"{self.file}: {self.path or '<root>'}{where}: {self.message}")


class ConfigError(Exception):
    """One or more problems in a config file, each located by key path and YAML line."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


# --------------------------------------------------------------------------- YAML with lines

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _node_to_python(node: yaml.Node, path: tuple, lines: dict[tuple, int], env_issues: list[tuple[tuple, str]]):
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                env_issues.append((path + (key,), f"duplicate key {key!r}"))
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _node_to_python(value_node, path + (key,), lines, env_issues)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_node_to_python(n, path + (i,), lines, env_issues) for i, n in enumerate(node.value)]
    value = _construct_scalar(node)
    if isinstance(value, str) and "${" in value:
        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if f"{name}_FILE" in os.environ:  # a secret in a file (Docker secrets, systemd credentials)
                return _read_secret_file(name, path, env_issues)
            if default is not None:
                return default
            env_issues.append((path, f"environment variable {name} is not set"))
            return ""

        value = _ENV.sub(sub, value)
    return value


def _read_secret_file(name: str, path: tuple, env_issues: list[tuple[tuple, str]]) -> str:
    """``${NAME}`` from the file named by ``$NAME_FILE``, without its trailing newline."""
    file = os.environ[f"{name}_FILE"]
    try:
        return Path(file).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        env_issues.append((path, f"environment variable {name}_FILE: cannot read {file}: {getattr(exc, 'strerror', None) or exc}"))
        return ""


def _construct_scalar(node: yaml.ScalarNode):
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load_yaml_with_lines(text: str, filename: str) -> tuple[Any, dict[tuple, int], list[ConfigIssue]]:
    """Parse YAML keeping each key path's line; substitute ``${ENV}`` in string scalars."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(filename, "", line, f"invalid YAML: {problem}")]) from None
    if node is None:
        return {}, {}, []
    lines: dict[tuple, int] = {}
    env_issues: list[tuple[tuple, str]] = []
    data = _node_to_python(node, (), lines, env_issues)
    issues = [ConfigIssue(filename, format_path(p), lines.get(p), msg) for p, msg in env_issues]
    return data, lines, issues


def _line_for(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for n in range(len(loc), 0, -1):  # not the document root: line 1 would mislead
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _clean_loc(loc: tuple, data: Any = None) -> tuple:
    """The key path of an error: drop what pydantic adds that is not a key of the document.

    Union members and validator names (``function-after[...]``, discriminator tags) appear in
    ``loc`` between real keys; a part that is not a key of the data at that point, and is not the
    last part (a missing key is), is one of those.
    """
    out = []
    cur = data
    for i, part in enumerate(loc):
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        last = i == len(loc) - 1
        if isinstance(part, int):
            out.append(part)
            cur = cur[part] if isinstance(cur, list) and 0 <= part < len(cur) else None
        elif isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif last or data is None or not isinstance(cur, dict):
            out.append(part)
            cur = None
    return tuple(out)


def validation_issues(
    exc: ValidationError, filename: str, lines: dict[tuple, int], prefix: tuple = (), data: Any = None
) -> list[ConfigIssue]:
    issues = []
    seen = set()
    for err in exc.errors(include_input=False, include_url=False):
        loc = prefix + _clean_loc(tuple(err["loc"]), data)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and indentation)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        key = (loc, msg)
        if key in seen:
            continue
        seen.add(key)
        issues.append(ConfigIssue(filename, format_path(loc), _line_for(loc, lines), msg))
    return issues


def validate_data(model: type[BaseModel], data: Any, filename: str, lines: dict[tuple, int] | None = None, prefix: tuple = ()):
    """Validate ``data`` against ``model``, raising :class:`ConfigError` with located issues."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, filename, lines or {}, prefix, data)) from None


def read_config_text(path: str | os.PathLike) -> str:
    """The text of a config file; :class:`ConfigError` (located at the file) when it cannot be read."""
    filename = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(filename, "", None, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(filename, "", None, f"cannot read: {exc}")]) from None


def load_config(path: str | os.PathLike, model: type[BaseModel] | None = None, text: str | None = None):
    """Load and validate a plantmrv YAML config file; raise :class:`ConfigError` on any problem.

    ``text``: the file's content when the caller has read it already (``/dev/stdin``).
    """
    path = Path(path)
    filename = str(path)
    if text is None:
        text = read_config_text(path)
    data, lines, issues = load_yaml_with_lines(text, filename)
    if data is None or data == {}:
        sections = ", ".join(root_model().model_fields)
        raise ConfigError(issues + [ConfigIssue(filename, "", None, f"the file holds no section; expected one or more of {sections}")])
    if not isinstance(data, dict):
        issues.append(ConfigIssue(filename, "", 1, "top level must be a mapping of sections"))
        raise ConfigError(issues)
    model = model or root_model()
    try:
        cfg = validate_data(model, data, filename, lines)
    except ConfigError as exc:
        raise ConfigError(issues + exc.issues) from None
    if issues:
        raise ConfigError(issues)
    if model is root_model():
        cross_check(cfg, filename, lines)
    return cfg


def cross_check(cfg: Any, filename: str, lines: dict[tuple, int] | None = None) -> None:
    """Run the checks that span sections (a gateway's MQTT sink needs the `mqtt` section, ...) of
    every registered section the file holds; raise one :class:`ConfigError` with all they found."""
    issues: list[ConfigIssue] = []
    for section in _SECTIONS.values():
        if getattr(cfg, section.name, None) is None:
            continue
        for check in section.checks:
            try:
                check(cfg, filename)
            except ConfigError as exc:
                issues.extend(exc.issues)
    for issue in issues:
        if issue.line is None and lines:
            loc = tuple(int(p) if p.isdigit() else p for p in re.split(r"\.|\[|\]", issue.path) if p)
            issue.line = _line_for(loc, lines)
    if issues:
        raise ConfigError(issues)


def relative_base(config_path: str | os.PathLike) -> Path:
    """The folder that relative paths of a service's state (buffer, generated PKI) resolve against.

    Under systemd with ``StateDirectory=`` that is ``$STATE_DIRECTORY`` (``/var/lib/plantmrv``:
    writable, while ``/etc/plantmrv`` is read-only under ``ProtectSystem=strict``); otherwise the
    config file's folder.
    """
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) if state else Path(config_path).resolve().parent


def require_section(cfg: Any, name: str, filename: str) -> Any:
    section = getattr(cfg, name, None)
    if section is None:
        raise ConfigError([ConfigIssue(str(filename), name, None, f"section '{name}' is required for this command")])
    return section

