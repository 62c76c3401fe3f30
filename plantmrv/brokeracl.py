"""Broker authorization: who may publish and subscribe what, derived from the services' own configs.

Least privilege per identity (each gateway and each ingest process has its own broker user):

* a gateway user may publish only ``<prefix>/<site>/<gateway>/data`` and ``.../state`` (its Last
  Will included) and may subscribe to nothing;
* an ingest user may subscribe only to the gateway data topics (``$share/<group>/...`` or plain)
  and its mapped device-JSON topics, receive only those, and publish nothing;
* anybody else (and anything not granted) is refused.

The document is Mosquitto's dynamic-security format (``plugin mosquitto_dynamic_security.so``),
holding no secrets: passwords stay in Mosquitto's ``password_file`` (``mosquitto_passwd``). A
plain ``acl_file`` cannot do this job on Mosquitto 2.0: it never checks subscriptions
(``security_default.c``: "FIXME - implement ACL subscription strings"), and a member of a shared
subscription whose reads the ACL denies still takes its turn, so any authenticated client could
join ``$share/ingest/...`` and make the broker drop a share of the messages meant for ingest
(measured on 2.0.11: 10 of 30 reached ingest with two such members). The dynamic-security plugin
checks subscriptions (default deny). Pair it with ``use_username_as_clientid true``, so that no
client can take over another's session by its client id (a takeover moves the session's
subscriptions and drops the queued messages the new user may not read).

``plantmrv broker-acl CONFIG... -o dynamic-security.json`` writes the document for the gateway
and ingest configs given; the same function builds the test brokers' (:mod:`plantmrv.localservices`).
EMQX and HiveMQ equivalents: docs/broker-acl.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from plantmrv.config import ConfigError, ConfigIssue

DEFAULT_PREFIX = "plantmrv/v1"


@dataclass(frozen=True)
class GatewayIdentity:
    """A gateway's broker user and the one site/gateway it may publish as."""

    username: str
    site: str
    gateway: str
    prefix: str = DEFAULT_PREFIX

    def topics(self) -> list[str]:
        base = f"{self.prefix}/{self.site}/{self.gateway}"
        return [f"{base}/data", f"{base}/state"]


@dataclass(frozen=True)
class IngestIdentity:
    """An ingest process's broker user: what it subscribes to. ``group``: the shared-subscription
    group (``None``: plain subscriptions only; ``"+"``: any group)."""

    username: str
    prefix: str = DEFAULT_PREFIX
    group: str | None = "ingest"
    gateway_topics: bool = True
    device_topics: tuple[str, ...] = field(default_factory=tuple)

    def filters(self) -> list[str]:
        plain = ([f"{self.prefix}/+/+/data"] if self.gateway_topics else []) + list(self.device_topics)
        return [f"$share/{self.group}/{t}" if self.group else t for t in plain]

    def reads(self) -> list[str]:
        return ([f"{self.prefix}/+/+/data"] if self.gateway_topics else []) + list(self.device_topics)


HARNESS_ROLE = "plantmrv-test-harness"


def dynsec_document(gateways: Iterable[GatewayIdentity], ingests: Iterable[IngestIdentity], harness: bool = False) -> dict[str, Any]:
    """The dynamic-security document for these identities. ``harness`` (test brokers only): anonymous
    clients may do anything, as the test tools that stand in for operators do."""
    gateways, ingests = list(gateways), list(ingests)
    seen: dict[str, str] = {}
    for who in [*gateways, *ingests]:
        what = f"gateway {who.site}/{who.gateway}" if isinstance(who, GatewayIdentity) else "ingest"
        if who.username in seen:
            raise ValueError(f"broker user {who.username!r} is given to both {seen[who.username]} and {what}: one user per identity")
        seen[who.username] = what
    clients, roles = [], []
    for g in gateways:
        role = f"plantmrv-gateway-{g.username}"
        clients.append({"username": g.username, "textname": f"plantmrv gateway {g.gateway} of site {g.site}", "roles": [{"rolename": role}]})
        roles.append({"rolename": role, "acls": [_acl("publishClientSend", t) for t in g.topics()]})
    for i in ingests:
        role = f"plantmrv-ingest-{i.username}"
        clients.append({"username": i.username, "textname": "plantmrv ingest", "roles": [{"rolename": role}]})
        acls = [_acl("subscribePattern", t) for t in i.filters()] + [_acl("publishClientReceive", t) for t in i.reads()]
        roles.append({"rolename": role, "acls": acls})
    doc: dict[str, Any] = {
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False, "subscribe": False, "unsubscribe": True},
        "clients": clients,
        "groups": [],
        "roles": roles,
    }
    if harness:
        doc["groups"] = [{"groupname": HARNESS_ROLE, "roles": [{"rolename": HARNESS_ROLE}]}]
        doc["anonymousGroup"] = HARNESS_ROLE
        doc["roles"].append({"rolename": HARNESS_ROLE, "acls": [
            _acl("publishClientSend", "#"), _acl("publishClientReceive", "#"),
            _acl("subscribePattern", "#"), _acl("subscribePattern", "$share/#"),
        ]})
    return doc


def _acl(kind: str, topic: str) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": True}


def identities_from_config(cfg: Any, filename: str) -> tuple[list[GatewayIdentity], list[IngestIdentity]]:
    """The broker identities a loaded config declares: a gateway with an MQTT sink, an ingest section.
    Both need ``mqtt.username`` (ConfigError otherwise)."""
    gateways, ingests = [], []
    mqtt = getattr(cfg, "mqtt", None)
    gw = getattr(cfg, "gateway", None)
    ingest = getattr(cfg, "ingest", None)
    if (gw is None or gw.sink.type != "mqtt") and ingest is None:
        raise ConfigError([ConfigIssue(filename, "", None, "neither a gateway with an mqtt sink nor an ingest section: no broker identity here")])
    if mqtt is None or not mqtt.username:
        raise ConfigError([ConfigIssue(filename, "mqtt.username", None, "each gateway and ingest needs a broker user of its own (mqtt.username)")])
    if gw is not None and gw.sink.type == "mqtt":
        site = gw.site or cfg.site.id
        gateways.append(GatewayIdentity(mqtt.username, site, gw.id, mqtt.topic_prefix))
    if ingest is not None:
        ingests.append(IngestIdentity(mqtt.username, mqtt.topic_prefix, ingest.group, ingest.gateway_topics,
                                      tuple(t.topic for t in ingest.device_json)))
    return gateways, ingests


def document_for_files(files: Iterable[str | Path]) -> dict[str, Any]:
    """The document for the identities of every config file given (ConfigError naming the file at fault)."""
    from plantmrv.config import load_config

    gateways, ingests = [], []
    for f in files:
        g, i = identities_from_config(load_config(f), str(f))
        gateways += g
        ingests += i
    try:
        return dynsec_document(gateways, ingests)
    except ValueError as exc:
        raise ConfigError([ConfigIssue(", ".join(map(str, files)), "mqtt.username", None, str(exc))]) from None


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"
