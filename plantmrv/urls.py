"""Service URLs: parsed and checked once, at config load, and never echoed with a secret in them.

Every URL in a config (``influxdb.url``, ``mqtt.url``, a source's broker, an OPC UA endpoint)
goes through :func:`check_url`: scheme, host and port are checked and a bad one is refused with
a sentence saying what is wrong, so ``htp//127.0.0.1 :33261`` stops ``check-config`` instead
of a service at start. Credentials do not belong in a URL (they have their own keys, read from
the environment); a URL holding some is refused, and every error and log shows such a value
through :func:`redact` (``mqtts://gw:***@host``).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/@:]*)(:[^\s/@]*)?@")
_SECRET_QUERY = re.compile(r"(?i)\b((?:password|passwd|pwd|token|secret|key|auth)=)[^&\s]+")


def redact(text: str) -> str:
    """``text`` with the credentials of any URL in it masked: ``mqtts://gw:S3CR3T@h`` -> ``mqtts://gw:***@h``
    (a user name alone is kept), and secret-looking query parameters (``token=...``) too."""
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}{':***' if m.group(3) else ''}@", text)
    return _SECRET_QUERY.sub(r"\1***", text)


@dataclass(frozen=True)
class ServiceUrl:
    scheme: str
    host: str  # without IPv6 brackets
    port: int
    path: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def check_url(value: str, schemes: dict[str, int], *, path: bool = True) -> ServiceUrl:
    """Parse ``value`` as ``scheme://host[:port][/path]``; ValueError naming the fault otherwise.

    ``schemes``: the allowed schemes and their default ports. ``path``: whether a path may follow
    (an HTTP base path, an OPC UA endpoint path) or not (an MQTT broker). Messages show the value
    redacted.
    """
    shown = repr(redact(value))
    expected = " or ".join(f"{s}://host:port" for s in schemes)
    if not value:
        raise ValueError(f"the URL is empty; expected {expected}")
    if any(c.isspace() for c in value):
        raise ValueError(f"{shown} contains white space; expected {expected}")
    if "://" not in value:
        raise ValueError(f"{shown} has no scheme (no '://'); expected {expected}")
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError as exc:  # e.g. a bracketed host that is no IPv6 address
        raise ValueError(f"{shown}: {redact(str(exc))}") from None
    scheme = value.split("://", 1)[0].lower()
    if scheme not in schemes:
        raise ValueError(f"{shown} has scheme {scheme!r}; expected {expected}")
    if "@" in parts.netloc:
        raise ValueError(f"{shown} holds credentials; give them in their own keys (username, password: ${{ENV}}), never in the URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{shown} has a query or fragment ('?' or '#'), which this URL cannot take")
    if not path and parts.path not in ("", "/"):
        raise ValueError(f"{shown} has a path {parts.path!r}; expected {expected} without one")
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{shown} has no host; expected {expected}")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{shown}: {host!r} is not an IPv6 address") from None
    elif not _HOSTNAME.match(host):
        raise ValueError(f"{shown}: {host!r} is not a host name or IP address")
    try:
        port = parts.port
    except ValueError:
        port_text = parts.netloc.rsplit(":", 1)[-1]
        raise ValueError(f"{shown}: port {port_text!r} is not a number from 1 to 65535") from None
    if port is None:
        if parts.netloc.endswith(":"):
            raise ValueError(f"{shown} has an empty port after ':'")
        port = schemes[scheme]
    if not 1 <= port <= 65535:
        raise ValueError(f"{shown}: port {port} is not from 1 to 65535")
    return ServiceUrl(scheme, host, port, parts.path)
