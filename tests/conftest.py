"""Shared fixtures: real influxd and mosquitto as this user's processes on free loopback ports.

A missing binary or a service that does not answer fails the test with the reason (and the
service's log); nothing is skipped. Services are stopped by PID at teardown. Session-wide
instances serve most tests; the `*_private` ones belong to one test, which may stop, kill and
restart them.

Every mosquitto runs with the broker authorization plantmrv ships (:mod:`plantmrv.brokeracl`,
Mosquitto's dynamic-security plugin) for the identities in :data:`BROKER_GATEWAYS` and
:data:`BROKER_INGESTS` (passwords in ``broker.passwords``): a test that connects as one of them
gets exactly that identity's rights. Anonymous clients are the test harness (publishers and
observers standing in for the operator) and may do anything.
"""

from __future__ import annotations

import re
import secrets

import pytest

import plantmrv.app.config  # noqa: F401 - every service's config section, as in every plantmrv process
from plantmrv.brokeracl import GatewayIdentity, IngestIdentity, dynsec_document
from plantmrv.localservices import ServiceError, influxd_service, mosquitto_service

BROKER_GATEWAYS = [GatewayIdentity("gw-danang", "danang", "gw-danang"), GatewayIdentity("gw-hcmc", "hcmc", "gw-hcmc")]
BROKER_INGESTS = [IngestIdentity("ingest", group="+")]


def acl_mosquitto(workdir, **kwargs):
    """A mosquitto with the shipped authorization for the test identities and an anonymous test harness."""
    passwords = {who.username: secrets.token_urlsafe(12) for who in [*BROKER_GATEWAYS, *BROKER_INGESTS]}
    kwargs.setdefault("acl", dynsec_document(BROKER_GATEWAYS, BROKER_INGESTS, harness=kwargs.get("anonymous", True)))
    return mosquitto_service(workdir, passwords=passwords, **kwargs)

pytest_plugins = ["tests.sim_fixtures"]


def _running(factory, workdir):
    """Start the service ``factory(workdir)`` makes, yield it, stop it; fail the test if it cannot start."""
    try:
        svc = factory(workdir).start()
    except ServiceError as exc:
        pytest.fail(f"cannot start the service in {workdir}: {exc}", pytrace=False)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    """A session-wide influxd (1.x, Debian's). Tests write to databases of their own."""
    yield from _running(influxd_service, tmp_path_factory.mktemp("influxd"))


@pytest.fixture
def influxd_private(tmp_path):
    """An influxd of the test's own, for tests that stop and restart it."""
    yield from _running(influxd_service, tmp_path / "influxd")


@pytest.fixture
def influx_db(influxd, request):
    """A fresh database on the shared influxd, named after the test; returns a client for it."""
    name = "t_" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]
    client = influxd.client(database=name)
    client.execute(f'DROP DATABASE "{name}"')
    client.create_database()
    yield client
    client.close()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    """A session-wide mosquitto broker (persistence on, unlimited queues for persistent sessions, ACL'd)."""
    yield from _running(acl_mosquitto, tmp_path_factory.mktemp("mosquitto"))


@pytest.fixture
def mosquitto_private(tmp_path):
    """A broker of the test's own, for tests that stop and restart it (ACL'd like the shared one)."""
    yield from _running(acl_mosquitto, tmp_path / "mosquitto")
