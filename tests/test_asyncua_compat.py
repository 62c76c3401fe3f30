"""asyncua's internals are used in one place only, and what that place relies on is still there.

:mod:`plantmrv.gateway.asyncua_compat` lists every asyncua name it relies on (``RELIED_ON``)
with the parameters it calls it with; here each is looked up in the installed asyncua, so a new
asyncua that renames, removes or re-signs one fails with the name, what changed and the asyncua
version. No other module of the repository reaches into asyncua (an underscore name of
asyncua's, or a replaced asyncua method). And the client-side adapter is run against a real
asyncua server (the tests' server, with the simulator's conformance patches).
"""

from __future__ import annotations

import ast
import asyncio
import datetime
import importlib
import inspect
import re
import textwrap
from functools import cache
from pathlib import Path

import pytest

import asyncua
from asyncua import Client, ua
from asyncua.ua.ua_binary import struct_from_binary

from plantmrv.gateway import asyncua_compat
from plantmrv.gateway.asyncua_compat import (RELIED_ON, decode_publish_responses, disable_builtin_publish_loop,
                                             first_cert_from_chain, keep_subscriptions_on_close, session_of)
from tests.test_gateway_support import running_opcua_server

REPO = Path(__file__).resolve().parents[1]
ADAPTER = Path(asyncua_compat.__file__).resolve()
ASYNCUA = Path(asyncua.__file__).resolve().parent
TESTED = "asyncua 2.1.0"


class _Default:
    def __repr__(self) -> str:
        return "..."


def _shape(obj) -> str:
    """``obj``'s signature as RELIED_ON writes it: names and defaults, no annotations; a default
    other than None, a number or a bool shown as ``...``."""
    sig = inspect.signature(obj)
    params = []
    for p in sig.parameters.values():
        d = p.default
        if d is not p.empty and d is not None and type(d) not in (int, float, bool):
            d = _Default()
        params.append(p.replace(annotation=p.empty, default=d))
    return str(sig.replace(parameters=params, return_annotation=sig.empty))


def _instance_attributes(cls) -> set[str]:
    """The attributes ``cls.__init__`` (or a base's) assigns to ``self``."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or not inspect.isfunction(init):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            names |= {t.attr for t in targets if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
    return names


def _problem(target: str, expected: str | None) -> str | None:
    """What is wrong with ``target`` in the installed asyncua, or None."""
    module_name, qualname = target.split(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        return f"module {module_name} is gone ({exc})"
    *owners, name = qualname.split(".")
    for part in owners:
        if not hasattr(obj, part):
            return f"{module_name}.{part} is gone"
        obj = getattr(obj, part)
    if hasattr(obj, name):
        attr = inspect.getattr_static(obj, name)
        if isinstance(attr, property):
            return None if expected is None else f"is a property now, was called as {expected}"
        found = getattr(obj, name)
    elif inspect.isclass(obj) and name in _instance_attributes(obj):
        found = None
    else:
        return "is gone"
    if expected is None:
        return None
    if not callable(found):
        return f"is no longer callable (expected {expected})"
    shape = _shape(found)
    return None if shape == expected else f"has the signature {shape}, the adapter calls it as {expected}"


@pytest.mark.parametrize("target", sorted(RELIED_ON))
def test_every_asyncua_internal_the_adapter_relies_on_is_unchanged(target):
    problem = _problem(target, RELIED_ON[target])
    assert problem is None, (
        f"asyncua {asyncua.__version__}: {target} {problem}. plantmrv.gateway.asyncua_compat relies on it "
        f"(tested with {TESTED}): adapt the function using it and its RELIED_ON entry, or pin asyncua below this version."
    )


def test_shape_renders_what_relied_on_writes():
    def f(self, a, b=None, c=-1, d=b"MSG", *, e=True): ...

    assert _shape(f) == "(self, a, b=None, c=-1, d=..., *, e=True)"
    assert _problem("asyncua.common.utils:Buffer.nonexistent", None) == "is gone"
    assert _problem("asyncua.common.utils:Buffer.read", "(self, n)") == "has the signature (self, size), the adapter calls it as (self, n)"


def test_asyncua_is_pinned_to_a_range_that_holds_the_installed_version():
    import tomllib

    from packaging.requirements import Requirement

    deps = [Requirement(d) for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    (pin,) = [d for d in deps if d.name == "asyncua"]
    assert any(s.operator == "<" for s in pin.specifier), f"pyproject.toml: asyncua is not pinned below a version ({pin})"
    assert pin.specifier.contains(asyncua.__version__), f"asyncua {asyncua.__version__} is installed; pyproject.toml pins {pin}"


def _private_names_relied_on() -> set[str]:
    names = {target.split(":")[1].rsplit(".", 1)[-1] for target in RELIED_ON}
    return {n for n in names if n.startswith("_")}


def test_the_adapter_docstring_lists_every_private_name_it_uses():
    private = _private_names_relied_on()
    assert "_send_request" in private
    missing = sorted(n for n in private if n not in asyncua_compat.__doc__)
    assert not missing, f"plantmrv/gateway/asyncua_compat.py: its docstring does not name {missing}"


# --------------------------------------------------------------------------- nothing else reaches in
@cache
def _asyncua_private_names() -> frozenset[str]:
    """Every ``_name`` asyncua defines: functions, classes, module globals, attributes it assigns
    (read with a pattern, not parsed: asyncua's generated address space is ~30 MB of Python)."""
    pattern = re.compile(r"(?:\b(?:def|class)\s+|\.|^\s*)(_[A-Za-z]\w*)\b(?=\s*[(:=])", re.MULTILINE)
    return frozenset(n for f in ASYNCUA.rglob("*.py") for n in pattern.findall(f.read_text(encoding="utf-8")))


def _our_files() -> list[Path]:
    """The repository's Python sources (the packages' folders, tests, bench, scripts), not build output."""
    import tomllib

    folders = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
    skip = {ADAPTER, Path(__file__).resolve()}
    return sorted(p.resolve() for folder in sorted(folders | {"tests", "bench", "scripts"}) for p in (REPO / folder).rglob("*.py")
                  if p.resolve() not in skip)


def _defined_names(trees) -> set[str]:
    out = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                out.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.add(node.id)
            elif isinstance(node, ast.arg):
                out.add(node.arg)
    return out


def test_no_module_but_the_adapter_reaches_into_asyncua():
    """Outside plantmrv/gateway/asyncua_compat.py: no private name the adapter relies on and no
    underscore name imported from asyncua; in a file that uses asyncua, no method replaced that
    the adapter replaces and no underscore attribute that asyncua defines and our code does not."""
    relied_private = _private_names_relied_on()
    methods = {target.split(":")[1].rsplit(".", 1)[-1] for target, params in RELIED_ON.items() if params is not None}
    replaced = methods & {n.attr for n in ast.walk(ast.parse(ADAPTER.read_text(encoding="utf-8")))  # the methods the adapter assigns
                          if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    assert {"publish", "ensure_publish_loop", "close_session", "datachange_callback"} <= replaced
    files = _our_files()
    trees = {f: ast.parse(f.read_text(encoding="utf-8"), str(f)) for f in files}
    ours = _defined_names(trees.values())
    theirs = _asyncua_private_names()
    found = []
    for f, tree in trees.items():
        uses_asyncua = "asyncua" in f.read_text(encoding="utf-8")
        where = f.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("asyncua"):
                found += [f"{where}:{node.lineno}: imports {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Attribute):
                if node.attr in relied_private:
                    found.append(f"{where}:{node.lineno}: uses asyncua's private {node.attr}")
                elif uses_asyncua and isinstance(node.ctx, ast.Store) and node.attr in replaced:
                    found.append(f"{where}:{node.lineno}: replaces {ast.unparse(node)}, a method asyncua has")
                elif uses_asyncua and node.attr in theirs and node.attr not in ours:
                    found.append(f"{where}:{node.lineno}: uses {ast.unparse(node)}, an underscore name of asyncua's")
            elif isinstance(node, ast.Name) and node.id in relied_private:
                found.append(f"{where}:{node.lineno}: uses asyncua's private {node.id}")
    assert not found, "asyncua internals outside plantmrv/gateway/asyncua_compat.py (add a function there):\n" + "\n".join(found)


# --------------------------------------------------------------------------- against a real server
@pytest.fixture
def server(tmp_path):
    yield from running_opcua_server(tmp_path, tags=3, period_s=0.1)


async def _subscribe(session, node_id: str) -> int:
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = 100
    params.RequestedMaxKeepAliveCount = 10
    params.RequestedLifetimeCount = 600
    params.PublishingEnabled = True
    sub = await session.create_subscription(params, lambda _result: None)
    rv = ua.ReadValueId()
    rv.NodeId = ua.NodeId.from_string(node_id)
    rv.AttributeId = ua.AttributeIds.Value
    mp = ua.MonitoringParameters()
    mp.ClientHandle, mp.SamplingInterval, mp.QueueSize = 1, 100, 10
    item = ua.MonitoredItemCreateRequest()
    item.ItemToMonitor, item.MonitoringMode, item.RequestedParameters = rv, ua.MonitoringMode.Reporting, mp
    cp = ua.CreateMonitoredItemsParameters()
    cp.SubscriptionId, cp.TimestampsToReturn, cp.ItemsToCreate = sub.SubscriptionId, ua.TimestampsToReturn.Both, [item]
    (res,) = await session.create_monitored_items(cp)
    assert res.StatusCode.is_good(), res.StatusCode
    return sub.SubscriptionId


async def _data_publish(session):
    for _ in range(50):
        resp = await asyncio.wait_for(session.publish([]), 5)
        if resp.Parameters.NotificationMessage.NotificationData:
            return resp.Parameters
    raise AssertionError("50 PublishResponses without data")


async def _adapter_scenario(url: str) -> None:
    first = Client(url)
    await first.connect()
    session = session_of(first)
    raw: list[int] = []

    def decode(data):
        raw.append(len(data))
        return struct_from_binary(ua.PublishResponse, data)

    decode_publish_responses(session, decode)
    disable_builtin_publish_loop(session)
    sid = await _subscribe(session, "ns=2;s=T0")
    await asyncio.sleep(0.6)  # six publishing intervals: asyncua's own loop would have published by now
    assert raw == [], "asyncua ran its own publish loop although disable_builtin_publish_loop was called"
    first_data = await _data_publish(session)
    assert raw and first_data.SubscriptionId == sid  # our decoder saw the raw response
    seq = first_data.NotificationMessage.SequenceNumber
    keep_subscriptions_on_close(first)
    await first.disconnect()  # nothing acknowledged: the server keeps message ``seq``

    second = Client(url)
    await second.connect()
    try:
        session = session_of(second)
        disable_builtin_publish_loop(session)
        params = ua.TransferSubscriptionsParameters()
        params.SubscriptionIds, params.SendInitialValues = [sid], False
        (moved,) = await session.transfer_subscriptions(params)
        assert moved.StatusCode.is_good(), f"the subscription did not outlive its session: {moved.StatusCode}"
        assert seq in moved.AvailableSequenceNumbers
        for _ in range(2):  # a republished message stays until acknowledged
            msg = await session.republish(sid, seq)
            assert msg.SequenceNumber == seq and msg.NotificationData
        again = await _data_publish(session)  # the transferred subscription answers the new session
        assert again.SubscriptionId == sid and again.NotificationMessage.SequenceNumber > seq
    finally:
        await second.disconnect()


def test_the_client_side_adapter_against_a_real_server(server):
    asyncio.run(_adapter_scenario(server.url))


def test_first_cert_from_chain_takes_the_leading_certificate():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def cert(cn: str) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        c = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
             .not_valid_before(t0).not_valid_after(t0 + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        return c.public_bytes(serialization.Encoding.DER)

    server, ca = cert("server"), cert("ca")
    assert first_cert_from_chain(server + ca) == server
    assert first_cert_from_chain(server) == server
