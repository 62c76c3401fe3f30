"""Shared fixtures: real influxd and mosquitto as this user's processes on free loopback ports.

A missing binary or a service that does not answer fails the test with the reason (and the
service's log); nothing is skipped. Services are stopped by PID at teardown.
"""

from __future__ import annotations

import pytest

from plantmrv.localservices import ServiceError, influxd_service, mosquitto_service

pytest_plugins = ["tests.sim_fixtures"] if __import__("importlib.util").util.find_spec("tests.sim_fixtures") else []


def _start(service):
    try:
        return service.start()
    except ServiceError as exc:
        pytest.fail(f"cannot start {service.name}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def influxd(tmp_path_factory):
    """A session-wide influxd (1.x, Debian's). Tests use their own database names where they write."""
    try:
        svc = influxd_service(tmp_path_factory.mktemp("influxd"))
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    _start(svc)
    yield svc
    svc.stop()


@pytest.fixture
def influxd_private(tmp_path):
    """An influxd of the test's own, for tests that stop and restart it."""
    try:
        svc = influxd_service(tmp_path / "influxd")
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    _start(svc)
    yield svc
    svc.stop()


@pytest.fixture
def influx_db(influxd, request):
    """A fresh database on the shared influxd, named after the test; returns a client for it."""
    import re

    name = "t_" + re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]
    client = influxd.client(database=name)
    client.execute(f'DROP DATABASE "{name}"')
    client.create_database()
    yield client
    client.close()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    """A session-wide mosquitto broker (persistence on, unlimited queues for persistent sessions)."""
    try:
        svc = mosquitto_service(tmp_path_factory.mktemp("mosquitto"))
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    _start(svc)
    yield svc
    svc.stop()


@pytest.fixture
def mosquitto_private(tmp_path):
    """A broker of the test's own, for tests that stop and restart it."""
    try:
        svc = mosquitto_service(tmp_path / "mosquitto")
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    _start(svc)
    yield svc
    svc.stop()
