"""The simulator process: plants served over OPC UA (asyncua) and as device JSON over MQTT.

OPC UA address space
--------------------
``Objects/<site>/<asset>/<field>``, NodeIds ``ns=<ns>;s=<site>/<asset>/<field>`` in namespace
``urn:plantmrv:simulator`` (index 2 on a fresh server). Every variable is a Double with a
``Description``, an ``EngineeringUnits`` property (EUInformation, UNECE code), AccessLevel
CurrentRead | HistoryRead and ``Historizing`` true. ``SourceTimestamp`` is the simulated time of
the sample. HistoryRead (raw) is answered from the plant model itself, so any past period can
be backfilled and agrees with what was served live (same samples, same faults).

MQTT device JSON
----------------
Topic ``devices/<site>/<asset>``, one message per asset per update, QoS ``--mqtt-qos``::

    {"ts": 1767225600000, "flow_m3_per_h": 5630.2, "volume_m3": 24750766.2, ...,
     "status": {"head_m": "BadSensorFailure"}}

``ts`` is the simulated time in Unix milliseconds. A field in dropout is left out; a field
with a non-good status is listed in ``status`` (a bad one is also left out of the values).

Faults are applied on the live stream (see :mod:`.faults`) and written to the fault log.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlparse

import numpy as np

from .faults import FAULT_KINDS, Fault, FaultLog, fault_schedule, with_meter_resets
from .meters import parse_time_ns
from .plants import PLANT_TYPES, make_params, plant_type
from .signals import NS_PER_DAY, NS_PER_S

log = logging.getLogger("plantmrv.simulators")
_PLANT_CLOCKS: dict[int, "Simulator"] = {}  # id(address space) -> the simulator serving it


def _plant_time_as_publish_time(aspace, result) -> None:
    """A PublishResult of the address space ``aspace`` carries its simulator's plant time (``Simulator._plant_clock_on_publishes``)."""
    sim = _PLANT_CLOCKS.get(id(aspace))
    if sim is not None and getattr(sim, "k", None) is not None:
        result.NotificationMessage.PublishTime = datetime.fromtimestamp(sim.sim_ns(sim.k) / NS_PER_S, timezone.utc)


NAMESPACE_URI = "urn:plantmrv:simulator"
APP_URI = "urn:plantmrv:simulator:server"

# UNECE Recommendation 20 common codes for the units used in FIELDS
UNECE = {
    "m3/h": ("MQH", "m³/h"),
    "m3": ("MTQ", "m³"),
    "m": ("MTR", "m"),
    "kW": ("KWT", "kW"),
    "kWh": ("KWH", "kW·h"),
    "1": ("C62", "1"),
    "%": ("P1", "%"),
    "Hz": ("HTZ", "Hz"),
    "NTU": ("", "NTU"),
    "mg/L": ("M1", "mg/l"),
    "degC": ("CEL", "°C"),
    "kg/h": ("E93", "kg/h"),
    "t/h": ("E18", "t/h"),
    "t": ("TNE", "t"),
    "MJ/kg": ("JK", "MJ/kg"),
    "W/m2": ("D54", "W/m²"),
}


def kv(**items: Any) -> str:
    """One structured log line: ``key=value`` pairs (values with spaces quoted)."""
    parts = []
    for k, v in items.items():
        s = str(v)
        parts.append(f"{k}={json.dumps(s) if (' ' in s or not s) else s}")
    return " ".join(parts)


# ----------------------------------------------------------------------------- configuration


@dataclass
class AssetSpec:
    """One served asset: plant type, labels, seed, params (meter resets already applied)."""

    plant: str
    site: str
    asset: str
    seed: int
    params: Any
    faults: list[Fault] = field(default_factory=list)

    @property
    def fields(self) -> list[str]:
        return list(plant_type(self.plant).fields)


@dataclass
class SimConfig:
    assets: list[AssetSpec]
    faults: list[Fault]  # every fault (asset-level and server-level), sorted by start
    start_ns: int
    start_is_now: bool = False  # no explicit start: the run starts when serving starts
    rebuild: Any = None  # start_ns -> SimConfig with the same inputs (used when start_is_now)


def _err(where: str, msg: str) -> ValueError:
    return ValueError(f"{where}: {msg}")


def build_config(
    plants: Sequence[str] = (),
    config_file: str | Path | None = None,
    scale: int = 1,
    start_ns: int | None = None,
    seed: int = 0,
    fault_seed: int | None = None,
    fault_rate_per_h: float = 0.0,
) -> SimConfig:
    """Assets and faults from ``--plants``, ``--config`` and ``--scale``.

    Config file (YAML)::

        start: "2026-11-23T00:00:00Z"   # optional simulated start (default: now)
        plants:
          - type: pump                  # ubcf | pump | vsd | wte | pv
            site: danang                # default per type (docs/data-model.md)
            asset: pump1
            seed: 1
            params: {eta_pump_bep: 0.85, meter: {rollover: 1000000}}
            faults:                     # site/asset default to this plant's
              - {kind: stuck, at_s: 30, duration_s: 20, field: head_m}
        faults:                         # server-level or targeted by site/asset
          - {kind: network_stall, at_s: 120, duration_s: 5}
        random_faults: {seed: 7, rate_per_h: 6, kinds: [dropout, spike], duration_s: [5, 60], hours: 24}

    Scaled clones (``scale`` > 1) are copies of each plant as asset ``<asset>-<k>`` with seed
    ``seed + k``; their meters start at the simulated start day (so no history to integrate).
    Errors name the file and key path, e.g. ``sim.yaml: plants[1].params.q_bep: unknown ...``.
    """
    src = str(config_file) if config_file else "--plants"
    doc: dict[str, Any] = {}
    if config_file:
        import yaml

        try:
            text = Path(config_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{config_file}: cannot read: {exc.strerror}") from None
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{config_file}: invalid YAML: {exc}") from None
        if not isinstance(doc, dict):
            raise _err(str(config_file), "top level must be a mapping")
        unknown = set(doc) - {"start", "plants", "faults", "random_faults"}
        if unknown:
            raise _err(f"{config_file}: {sorted(unknown)[0]}", "unknown key; known: start, plants, faults, random_faults")
    start_is_now = False
    if start_ns is None:
        if doc.get("start") is not None:
            try:
                start_ns = parse_time_ns(doc["start"])
            except (TypeError, ValueError) as exc:
                raise _err(f"{src}: start", str(exc)) from None
        else:
            start_ns = (time.time_ns() // NS_PER_S) * NS_PER_S
            start_is_now = True
    items: list[dict[str, Any]] = []
    for i, name in enumerate(plants):
        name = name.strip()
        if not name:
            continue
        if name not in PLANT_TYPES:
            raise _err(f"--plants[{i}]", f"unknown plant type {name!r}; known: {', '.join(PLANT_TYPES)}")
        items.append({"type": name, "_where": f"--plants[{i}]"})
    raw_plants = doc.get("plants") or []
    if not isinstance(raw_plants, list):
        raise _err(f"{src}: plants", "expected a list")
    for i, p in enumerate(raw_plants):
        where = f"{src}: plants[{i}]"
        if not isinstance(p, dict):
            raise _err(where, "expected a mapping with at least 'type'")
        unknown = set(p) - {"type", "site", "asset", "seed", "params", "faults"}
        if unknown:
            raise _err(f"{where}.{sorted(unknown)[0]}", "unknown key; known: type, site, asset, seed, params, faults")
        if not isinstance(p.get("type"), str) or p["type"] not in PLANT_TYPES:
            raise _err(f"{where}.type", f"{p.get('type')!r} is not a plant type; known: {', '.join(PLANT_TYPES)}")
        items.append({**p, "_where": where})
    if not items:
        raise ValueError("no plants: give --plants pump,vsd,ubcf,wte,pv or a --config file with 'plants'")
    assets: list[AssetSpec] = []
    faults: list[Fault] = []
    seen = set()
    counts: dict[str, int] = {}
    for n, item in enumerate(items):
        pt = plant_type(item["type"])
        where = item["_where"]
        counts[pt.name] = counts.get(pt.name, 0) + 1
        site = str(item.get("site") or pt.default_site)
        default_asset = pt.default_asset if counts[pt.name] == 1 else f"{pt.default_asset[:-1]}{counts[pt.name]}"
        asset = str(item.get("asset") or default_asset)
        for label, v in (("site", site), ("asset", asset)):
            if not v or "/" in v or any(c.isspace() for c in v):
                raise _err(f"{where}.{label}", f"{v!r} must be non-empty without '/' or spaces")
        if (site, asset) in seen:
            raise _err(f"{where}.asset", f"duplicate site/asset {site}/{asset}")
        seen.add((site, asset))
        s = item.get("seed", seed + n)
        if isinstance(s, bool) or not isinstance(s, int):
            raise _err(f"{where}.seed", f"expected an integer, got {s!r}")
        try:
            params = make_params(pt.name, item.get("params") or {}, where=f"{where}.params")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        afaults = []
        if not isinstance(item.get("faults") or [], list):
            raise _err(f"{where}.faults", "expected a list of faults")
        for j, fi in enumerate(item.get("faults") or []):
            if not isinstance(fi, dict):
                raise _err(f"{where}.faults[{j}]", "expected a mapping")
            fi = {"site": site, "asset": asset, **fi}
            afaults.append(Fault.from_config(fi, start_ns, where=f"{where}.faults[{j}]"))
        for f in afaults:
            if f.field is not None and f.field not in pt.fields:
                raise _err(f"{where}.faults", f"field {f.field!r} is not a field of {pt.name}")
        assets.append(AssetSpec(pt.name, site, asset, s, params, afaults))
        faults.extend(afaults)
    # scaled clones
    base = list(assets)
    for k in range(1, max(scale, 1)):
        for a in base:
            day0 = start_ns - start_ns % NS_PER_DAY
            meter = dataclasses.replace(a.params.meter, origin=str(day0))
            assets.append(AssetSpec(a.plant, a.site, f"{a.asset}-{k}", a.seed + 1000 * k, dataclasses.replace(a.params, meter=meter)))
    for j, fi in enumerate(doc.get("faults") or []):
        if not isinstance(fi, dict):
            raise _err(f"{src}: faults[{j}]", "expected a mapping")
        faults.append(Fault.from_config(fi, start_ns, where=f"{src}: faults[{j}]"))
    rf = doc.get("random_faults")
    if rf is not None or fault_rate_per_h > 0:
        rf = dict(rf or {})
        unknown = set(rf) - {"seed", "rate_per_h", "kinds", "duration_s", "hours"}
        if unknown:
            raise _err(f"{src}: random_faults.{sorted(unknown)[0]}", "unknown key; known: seed, rate_per_h, kinds, duration_s, hours")
        kinds = rf.get("kinds") or ["dropout", "stuck", "spike", "bad_status", "uncertain"]
        for k in kinds:
            if k not in FAULT_KINDS:
                raise _err(f"{src}: random_faults.kinds", f"{k!r} unknown; known: {', '.join(FAULT_KINDS)}")
        hours = float(rf.get("hours", 24.0))
        faults.extend(
            fault_schedule(
                int(fault_seed if fault_seed is not None else rf.get("seed", 0)),
                start_ns,
                start_ns + int(hours * 3600 * NS_PER_S),
                [(a.site, a.asset, a.fields) for a in base],
                kinds=kinds,
                rate_per_h=float(rf.get("rate_per_h", fault_rate_per_h or 6.0)),
                duration_s=tuple(rf.get("duration_s", (5, 60))),
            )
        )
    faults.sort(key=lambda f: (f.start_ns, f.kind, f.site or "", f.asset or "", f.field or ""))
    for a in assets:
        a.faults = [f for f in faults if f.asset is not None and f.targets(a.site, a.asset)]
        a.params = with_meter_resets(a.params, a.faults, a.site, a.asset)
    rebuild = None
    if start_is_now:
        def rebuild(new_start_ns: int) -> SimConfig:
            return build_config(plants, config_file, scale, new_start_ns, seed, fault_seed, fault_rate_per_h)
    return SimConfig(assets, faults, start_ns, start_is_now, rebuild)


# ----------------------------------------------------------------------------- certificates


def ensure_certificate(cert_dir: str | Path, name: str = "server", app_uri: str = APP_URI, host: str = "127.0.0.1", client: bool = False) -> tuple[Path, Path]:
    """Self-signed application certificate (DER) and key (PEM) in ``cert_dir``, made if absent.

    Returns ``(cert_path, key_path)``. Used by the server (``name='server'``) and by test
    clients (``client=True``, another name and app URI). Call outside an event loop; inside
    one, await :func:`ensure_certificate_async`.
    """
    return asyncio.run(ensure_certificate_async(cert_dir, name, app_uri, host, client))


async def ensure_certificate_async(cert_dir: str | Path, name: str = "server", app_uri: str = APP_URI, host: str = "127.0.0.1", client: bool = False) -> tuple[Path, Path]:
    """Async variant of :func:`ensure_certificate` (for use inside an event loop)."""
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from asyncua.crypto.cert_gen import setup_self_signed_certificate

    d = Path(cert_dir)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / f"{name}_cert.der", d / f"{name}_key.pem"
    use = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    await setup_self_signed_certificate(key, cert, app_uri, host, use, {"countryName": "JP", "organizationName": "plantmrv", "commonName": name})
    return cert, key


# ----------------------------------------------------------------------------- runtime


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 4840
    rate_hz: float = 1.0
    speed: float = 1.0
    history: bool = True
    security: tuple[str, ...] = ("none",)
    cert_dir: str | None = None
    user: str | None = None
    password: str | None = None
    mqtt_url: str | None = None
    mqtt_qos: int = 0
    opcua: bool = True
    modbus_port: int | None = None
    fault_log: str | None = None
    fault_influx: str | None = None  # "URL/database": also write each fault start as a sim_fault point
    duration_s: float | None = None
    chunk_ticks: int = 60


def influx_sink(target: str):
    """A fault-line writer to ``http://host:port/database`` (errors are logged, never raised)."""
    from plantmrv.influx import InfluxClient

    url, _, database = target.rstrip("/").rpartition("/")
    client = InfluxClient(url, database=database, timeout_s=2.0, max_retries=0)

    def write(line: str) -> None:
        try:
            client.write_body((line + "\n").encode())
        except Exception as exc:  # a dashboard annotation must never stop the simulation
            log.warning(kv(event="sim_fault_write_failed", error=str(exc)))

    return write


class _AssetRuntime:
    """Per-asset state: node ids, precomputed sample chunk, held values for stuck faults."""

    def __init__(self, spec: AssetSpec, ns: int):
        from asyncua import ua

        self.spec = spec
        self.fields = spec.fields
        self.node_ids = [ua.NodeId(f"{spec.site}/{spec.asset}/{f}", ns) for f in self.fields]
        self.chunk_k0 = -1
        self.chunk: np.ndarray | None = None  # shape (ticks, fields)
        self.next: tuple[int, np.ndarray] | None = None  # prefetched (k0, chunk)
        self.held: dict[tuple[int, str], float] = {}


class Simulator:
    """Runs the plants: builds the OPC UA server, ticks, applies faults, publishes MQTT."""

    def __init__(self, config: SimConfig, opts: ServeOptions):
        self.cfg = config
        self.opts = opts
        self.step_ns = int(round(opts.speed / opts.rate_hz * NS_PER_S))
        if self.step_ns <= 0:
            raise ValueError("--rate and --speed must be > 0")
        self.fault_log = FaultLog(opts.fault_log, sink=influx_sink(opts.fault_influx) if opts.fault_influx else None)
        self.server = None
        self.ns = 2
        self.assets: list[_AssetRuntime] = [_AssetRuntime(spec, self.ns) for spec in config.assets]
        self.by_node: dict[Any, tuple[_AssetRuntime, int]] = {}
        self.mqtt = None
        self.modbus = None
        self.tags = sum(len(a.fields) for a in config.assets)
        self._fault_state: dict[int, bool] = {}
        self._wall0 = 0.0
        self.k = 0
        self._stopping = False
        self._prefetch_task = None
        self.stats = {"ticks": 0, "values": 0, "late_ticks": 0}

    # --- time
    def sim_ns(self, k: int) -> int:
        return self.cfg.start_ns + k * self.step_ns

    def _plant_clock_on_publishes(self) -> None:
        """The simulated server's clock is plant time: every PublishResponse (data or keep-alive)
        carries the plant time of the tick last served as its PublishTime, as a real server
        carries its own clock, so a client can tell how far an unchanged subscription reaches.
        (asyncua stamps the wall clock; the hook maps each subscription to its simulator by the
        address space it serves, so several simulators in one process keep their own clocks.)"""
        from plantmrv.gateway.asyncua_compat import on_publish_result

        _PLANT_CLOCKS[id(self.server.iserver.aspace)] = self
        on_publish_result(_plant_time_as_publish_time)

    # --- samples
    def _compute_chunk(self, rt: _AssetRuntime, k0: int) -> np.ndarray:
        ts = self.sim_ns(k0) + np.arange(self.opts.chunk_ticks, dtype=np.int64) * self.step_ns
        out = plant_type(rt.spec.plant).model(ts, rt.spec.seed, rt.spec.params)
        return np.column_stack([out[f] for f in rt.fields])

    def values_at(self, rt: _AssetRuntime, k: int) -> np.ndarray:
        c = self.opts.chunk_ticks
        k0 = (k // c) * c
        if rt.chunk_k0 != k0:
            nxt = rt.next
            rt.chunk = nxt[1] if nxt is not None and nxt[0] == k0 else self._compute_chunk(rt, k0)
            rt.chunk_k0 = k0
        return rt.chunk[k - k0]

    def _prefetch(self, k0: int) -> None:
        """Compute every asset's next chunk (runs in a worker thread, off the event loop)."""
        for rt in list(self.assets):
            if rt.chunk_k0 != k0:
                rt.next = (k0, self._compute_chunk(rt, k0))

    def maybe_prefetch(self, k: int) -> None:
        """Half-way through a chunk, start computing the next one in the background, so the
        boundary tick does not stall on thousands of model calls."""
        c = self.opts.chunk_ticks
        if k % c == c // 2 and (self._prefetch_task is None or self._prefetch_task.done()):
            loop = asyncio.get_running_loop()
            self._prefetch_task = loop.run_in_executor(None, self._prefetch, (k // c + 1) * c)

    def samples(self, spec: AssetSpec, ts_ns: np.ndarray) -> dict[str, np.ndarray]:
        """Model output for one asset on any grid (used by HistoryRead)."""
        return plant_type(spec.plant).model(np.asarray(ts_ns, np.int64), spec.seed, spec.params)

    # --- OPC UA
    async def build_server(self):
        from asyncua import Server, ua
        from asyncua.crypto.permission_rules import User, UserRole
        from asyncua.server.user_managers import UserManager

        opts = self.opts
        user, password = opts.user, opts.password

        class _Users(UserManager):
            def get_user(self, iserver, username=None, password_=None, certificate=None, **kw):
                pw = kw.get("password", password_)
                if user is None:
                    return User(role=UserRole.User)
                if username is None or pw is None:
                    return None
                if hmac.compare_digest(str(username), user) and hmac.compare_digest(str(pw), password or ""):
                    return User(role=UserRole.User, name=username)
                return None

        from plantmrv.simulators import opcua_conformance

        opcua_conformance.install()  # TransferSubscriptions and Republish as Part 4 says
        server = Server(user_manager=_Users())
        await server.init()
        server.set_endpoint(f"opc.tcp://{opts.host}:{opts.port}")
        server.set_server_name("plantmrv simulator")
        await server.set_application_uri(APP_URI)
        policies = []
        for mode in opts.security:
            policies.append(
                {
                    "none": ua.SecurityPolicyType.NoSecurity,
                    "sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
                    "encrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                }[mode]
            )
        server.set_security_policy(policies)
        if any(m != "none" for m in opts.security):
            cert_dir = opts.cert_dir or tempfile.mkdtemp(prefix="plantmrv-sim-certs-")
            cert, key = await ensure_certificate_async(cert_dir, "server", APP_URI, opts.host)
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            log.info(kv(event="certificate", path=cert))
        if user is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        else:
            server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken])
        self.ns = await server.register_namespace(NAMESPACE_URI)
        await self._add_nodes(server)
        if opts.history:
            server.iserver.history_manager.set_storage(_ModelHistory(self))
        self.server = server
        self._plant_clock_on_publishes()
        return server

    async def _add_nodes(self, server) -> None:
        from asyncua import ua

        ns = self.ns
        session = server.iserver.isession
        items: list = []

        def folder(node_id: str, name: str, parent) -> ua.NodeId:
            nid = ua.NodeId(node_id, ns)
            it = ua.AddNodesItem()
            it.RequestedNewNodeId = nid
            it.BrowseName = ua.QualifiedName(name, ns)
            it.NodeClass = ua.NodeClass.Object
            it.ParentNodeId = parent
            it.ReferenceTypeId = ua.NodeId(ua.ObjectIds.Organizes)
            it.TypeDefinition = ua.NodeId(ua.ObjectIds.FolderType)
            attrs = ua.ObjectAttributes()
            attrs.DisplayName = ua.LocalizedText(name)
            attrs.Description = ua.LocalizedText(name)
            it.NodeAttributes = attrs
            items.append(it)
            return nid

        async def flush():
            if items:
                res = await session.add_nodes(list(items))
                bad = [r for r in res if not r.StatusCode.is_good()]
                if bad:
                    raise RuntimeError(f"add_nodes failed: {bad[0].StatusCode}")
                items.clear()

        objects = ua.NodeId(ua.ObjectIds.ObjectsFolder)
        sites: dict[str, ua.NodeId] = {}
        for spec in self.cfg.assets:
            if spec.site not in sites:
                sites[spec.site] = folder(spec.site, spec.site, objects)
        await flush()
        for rt in self.assets:
            spec = rt.spec
            if ns != 2:
                rt.node_ids = [ua.NodeId(f"{spec.site}/{spec.asset}/{f}", ns) for f in rt.fields]
            anode = folder(f"{spec.site}/{spec.asset}", spec.asset, sites[spec.site])
            pt = plant_type(spec.plant)
            for i, (fname, nid) in enumerate(zip(rt.fields, rt.node_ids)):
                unit, desc = pt.fields[fname]
                v = ua.AddNodesItem()
                v.RequestedNewNodeId = nid
                v.BrowseName = ua.QualifiedName(fname, ns)
                v.NodeClass = ua.NodeClass.Variable
                v.ParentNodeId = anode
                v.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
                v.TypeDefinition = ua.NodeId(ua.ObjectIds.BaseDataVariableType)
                va = ua.VariableAttributes()
                va.DisplayName = ua.LocalizedText(fname)
                va.Description = ua.LocalizedText(f"{desc} [{unit}] ({pt.measurement} {spec.site}/{spec.asset})")
                va.Value = ua.Variant(0.0, ua.VariantType.Double)
                va.DataType = ua.NodeId(ua.ObjectIds.Double)
                va.ValueRank = -1
                va.AccessLevel = ua.AccessLevel.CurrentRead.mask | (ua.AccessLevel.HistoryRead.mask if self.opts.history else 0)
                va.UserAccessLevel = va.AccessLevel
                va.Historizing = bool(self.opts.history)
                va.MinimumSamplingInterval = 1000.0 / self.opts.rate_hz
                v.NodeAttributes = va
                items.append(v)
                code, disp = UNECE.get(unit, ("", unit))
                uid = -1
                if code:
                    uid = 0
                    for ch in code:
                        uid = (uid << 8) | ord(ch)
                eu = ua.EUInformation(
                    NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                    UnitId=uid,
                    DisplayName=ua.LocalizedText(disp),
                    Description=ua.LocalizedText(unit),
                )
                p = ua.AddNodesItem()
                p.RequestedNewNodeId = ua.NodeId(f"{spec.site}/{spec.asset}/{fname}/EngineeringUnits", ns)
                p.BrowseName = ua.QualifiedName("EngineeringUnits", 0)
                p.NodeClass = ua.NodeClass.Variable
                p.ParentNodeId = nid
                p.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty)
                p.TypeDefinition = ua.NodeId(ua.ObjectIds.PropertyType)
                pa = ua.VariableAttributes()
                pa.DisplayName = ua.LocalizedText("EngineeringUnits")
                pa.Value = ua.Variant(eu, ua.VariantType.ExtensionObject)
                pa.DataType = ua.NodeId(ua.ObjectIds.EUInformation)
                pa.ValueRank = -1
                pa.AccessLevel = ua.AccessLevel.CurrentRead.mask
                pa.UserAccessLevel = pa.AccessLevel
                p.NodeAttributes = pa
                items.append(p)
                self.by_node[nid] = (rt, i)
            if len(items) > 2000:
                await flush()
        await flush()

    # --- MQTT
    def start_mqtt(self) -> None:
        import paho.mqtt.client as mqtt

        u = urlparse(self.opts.mqtt_url)
        if u.scheme not in ("mqtt", "tcp", ""):
            raise ValueError(f"--mqtt: {self.opts.mqtt_url!r}: only mqtt://host:port is supported")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"plantmrv-sim-{os.getpid()}")
        if u.username:
            client.username_pw_set(u.username, u.password)
        client.max_queued_messages_set(100_000)
        client.connect(u.hostname or "127.0.0.1", u.port or 1883, keepalive=30)
        client.loop_start()
        self.mqtt = client
        log.info(kv(event="mqtt_connected", host=u.hostname, port=u.port or 1883))

    # --- faults
    def _fault_events(self, t_ns: int) -> None:
        for i, f in enumerate(self.cfg.faults):
            on = f.active(t_ns) or (f.start_ns == f.end_ns and f.start_ns <= t_ns < f.start_ns + self.step_ns)
            was = self._fault_state.get(i, False)
            if on and not was:
                self.fault_log.write("start", f, t_ns)
                log.info(kv(event="fault_start", kind=f.kind, site=f.site, asset=f.asset, field=f.field, sim_ns=t_ns))
            elif was and not on:
                self.fault_log.write("end", f, t_ns)
                log.info(kv(event="fault_end", kind=f.kind, site=f.site, asset=f.asset, field=f.field, sim_ns=t_ns))
            self._fault_state[i] = on

    async def _server_faults(self, t_ns: int) -> None:
        for f in self.cfg.faults:
            if f.kind not in ("server_restart", "network_stall") or not (f.start_ns <= t_ns < f.start_ns + self.step_ns):
                continue
            wall_s = (f.end_ns - f.start_ns) / NS_PER_S / self.opts.speed
            if f.kind == "network_stall":
                log.info(kv(event="network_stall", wall_s=wall_s))
                time.sleep(wall_s)  # deliberately blocks the whole process: no reply, no publish
            else:
                log.info(kv(event="server_restart", wall_s=wall_s))
                if self.server is not None:
                    await self.server.bserver.stop()
                if self.modbus is not None:
                    await self.modbus.stop()
                await asyncio.sleep(wall_s)
                if self.server is not None:
                    await self.server.bserver.start()
                if self.modbus is not None:
                    await self.modbus.start()

    # --- tick
    def asset_values(self, rt: _AssetRuntime, k: int) -> list[tuple[int, float | None, str | None]]:
        """(field index, value or None for no update, status name or None) for one tick."""
        t = self.sim_ns(k)
        vals = self.values_at(rt, k)
        out = []
        active = [f for f in rt.spec.faults if f.active(t) and f.kind != "meter_reset"]
        server_down = any(f.active(t) for f in self.cfg.faults if f.asset is None and f.kind in ("server_restart", "network_stall"))
        for i, name in enumerate(rt.fields):
            v = float(vals[i])
            status = None
            skip = server_down
            for f in active:
                if f.field not in (None, name):
                    continue
                if f.kind == "dropout":
                    skip = True
                elif f.kind == "stuck" or f.kind == "uncertain":
                    hk = (id(f), name)
                    if hk not in rt.held:
                        rt.held[hk] = self._value_at_time(rt, i, f.start_ns)
                    v = rt.held[hk]
                    if f.kind == "uncertain":
                        status = f.status_name
                elif f.kind == "spike":
                    v = v * (10.0 if f.value is None else f.value)
                elif f.kind == "bad_status":
                    status = f.status_name
            out.append((i, None if skip else v, status))
        return out

    def _value_at_time(self, rt: _AssetRuntime, i: int, t_ns: int) -> float:
        # the sample at the first tick at or after the fault start
        k = max(0, -(-(t_ns - self.cfg.start_ns) // self.step_ns))
        return float(self.values_at(rt, k)[i]) if k >= 0 else float("nan")

    async def tick(self, k: int) -> None:
        from asyncua import ua

        t = self.sim_ns(k)
        self._fault_events(t)
        await self._server_faults(t)
        src_ts = datetime.fromtimestamp(t / NS_PER_S, timezone.utc)  # plant time is the simulated server's clock
        aspace = self.server.iserver.aspace if self.server else None
        n = 0
        for rt in self.assets:
            values = self.asset_values(rt, k)
            payload: dict[str, Any] = {"ts": t // 1_000_000}
            statuses = {}
            for i, v, status in values:
                if v is None:
                    continue
                name = rt.fields[i]
                if status:
                    statuses[name] = status
                if aspace is not None:
                    code = ua.StatusCode(getattr(ua.StatusCodes, status)) if status else ua.StatusCode()
                    dv = ua.DataValue(ua.Variant(v, ua.VariantType.Double), StatusCode=code, SourceTimestamp=src_ts, ServerTimestamp=src_ts)
                    await aspace.write_attribute_value(rt.node_ids[i], ua.AttributeIds.Value, dv)
                if not (status and status.startswith("Bad")):
                    payload[name] = v
                n += 1
            if self.mqtt is not None and (len(payload) > 1 or statuses):
                if statuses:
                    payload["status"] = statuses
                self.mqtt.publish(f"devices/{rt.spec.site}/{rt.spec.asset}", json.dumps(payload, separators=(",", ":")), qos=self.opts.mqtt_qos)
        self.stats["ticks"] += 1
        self.stats["values"] += n

    async def run(self, ready_stream=None) -> None:
        opts = self.opts
        if opts.opcua:
            server = await self.build_server()
            await server.start()
        if opts.mqtt_url:
            self.start_mqtt()
        if opts.modbus_port is not None:
            from .modbus_server import ModbusPlantServer

            self.modbus = ModbusPlantServer(self, opts.host, opts.modbus_port)
            await self.modbus.start()
        # no explicit start: the simulated start is the next whole second after start-up, so
        # faults given as at_s count from when serving begins, and at --speed 1 sample times
        # are the wall clock. With --start, tick 0 is served now and time runs at --speed.
        period = 1.0 / opts.rate_hz
        k = 0
        if self.cfg.start_is_now and self.cfg.rebuild is not None:
            new_start = (time.time_ns() // NS_PER_S + 1) * NS_PER_S
            new = self.cfg.rebuild(new_start)
            for rt, spec in zip(self.assets, new.assets):
                rt.spec = spec
                rt.chunk_k0 = -1
                rt.held.clear()
            self.cfg = new
            self._fault_state.clear()
            wall_anchor = new_start / NS_PER_S
        else:
            wall_anchor = time.time()
        k_anchor = k
        for rt in self.assets:  # prime chunks so the first tick is on time
            self.values_at(rt, k)
        self.k = k
        endpoint = f"opc.tcp://{opts.host}:{opts.port}" if opts.opcua else "none"
        out = ready_stream or sys.stdout
        print(kv(event="plants", assets=len(self.assets), tags=self.tags, namespace=NAMESPACE_URI, ns=self.ns,
                 speed=opts.speed, rate_hz=opts.rate_hz, start=datetime.fromtimestamp(self.cfg.start_ns / NS_PER_S, timezone.utc).isoformat()), file=out)
        if opts.mqtt_url:
            print(kv(event="mqtt", topics="devices/<site>/<asset>"), file=out)
        modbus = ""
        if self.modbus is not None:
            modbus = f" modbus=modbus://{opts.host}:{opts.modbus_port}"
            for line in self.modbus.describe():
                print(f"event=modbus {line}", file=out)
        print(f"plantmrv-sim ready endpoint={endpoint} tags={self.tags}{modbus}", file=out, flush=True)
        t_end = None if opts.duration_s is None else time.time() + opts.duration_s
        self._stopping = False
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:  # explicit: a background job may have inherited SIGINT ignored
                signal.signal(sig, signal.SIG_DFL)
                loop.add_signal_handler(sig, self.request_stop, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - non-POSIX
                pass
        try:
            while (t_end is None or time.time() < t_end) and not self._stopping:
                delay = wall_anchor + (k - k_anchor) * period - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -period:
                    # after a stall or restart (or overload): skip the ticks that are past
                    self.stats["late_ticks"] += 1
                    k += int(-delay // period)
                self.k = k
                await self.tick(k)
                self.maybe_prefetch(k)
                k += 1
                await asyncio.sleep(0)
        finally:
            await self.close()

    def request_stop(self, sig=None) -> None:
        """Stop after the current tick (SIGINT / SIGTERM handler)."""
        log.info(kv(event="stopping", signal=getattr(sig, "name", sig)))
        self._stopping = True

    async def close(self) -> None:
        print(kv(event="stats", **self.stats), flush=True)
        if self.mqtt is not None:
            try:
                self.mqtt.loop_stop()
                self.mqtt.disconnect()
            except Exception:  # pragma: no cover - best effort on shutdown
                pass
            self.mqtt = None
        if self.modbus is not None:
            await self.modbus.stop()
            self.modbus = None
        if self.server is not None:
            try:
                await self.server.stop()
            except Exception:  # pragma: no cover
                pass
            self.server = None


class _ModelHistory:
    """asyncua history storage answering raw HistoryRead from the plant models.

    Samples are on the served tick grid (``start + k * step``), up to the current simulated
    time, with the same faults applied as live (dropouts and restarts leave gaps; statuses are
    carried). At most ``max_values`` per call, with a continuation point beyond.
    """

    max_values = 10_000

    def __init__(self, sim: Simulator):
        self.sim = sim
        self._cache: dict[tuple, dict[str, np.ndarray]] = {}

    async def init(self):
        return None

    async def new_historized_node(self, *a, **k):
        return None

    async def save_node_value(self, *a, **k):
        return None

    async def new_historized_event(self, *a, **k):
        return None

    async def save_event(self, *a, **k):
        return None

    async def read_event_history(self, *a, **k):
        return [], None

    async def stop(self):
        return None

    async def read_node_history(self, node_id, start, end, nb_values):
        from asyncua import ua

        hit = self.sim.by_node.get(node_id)
        if hit is None:
            return [], None
        rt, i = hit
        sim = self.sim
        epoch = ua.get_win_epoch()
        now_k = sim.k
        now_ns = sim.sim_ns(now_k)

        def to_ns(d):
            if d is None or d == epoch:
                return None
            if d.tzinfo is None:
                d = d.replace(tzinfo=timezone.utc)
            return parse_time_ns(d)

        t0, t1 = to_ns(start), to_ns(end)
        reverse = t0 is not None and t1 is not None and t0 > t1
        if reverse:
            t0, t1 = t1, t0
        if t1 is None or t1 > now_ns:
            t1 = now_ns
        if t0 is None:
            t0 = t1 - 3600 * NS_PER_S
        k0 = -(-(t0 - sim.cfg.start_ns) // sim.step_ns)
        k1 = (t1 - sim.cfg.start_ns) // sim.step_ns
        limit = min(nb_values or self.max_values, self.max_values)
        if k1 < k0:
            return [], None
        n = min(k1 - k0 + 1, limit + 1)
        ks = (np.arange(k0, k0 + n) if not reverse else np.arange(k1, k1 - n, -1)).astype(np.int64)
        ts = sim.cfg.start_ns + ks * sim.step_ns
        # a backfilling client reads every tag of an asset for the same window: compute the
        # asset once per window (small LRU), not once per tag
        ck = (id(rt), int(ts[0]), int(ts[-1]), len(ts))
        fields = self._cache.get(ck)
        if fields is None:
            fields = sim.samples(rt.spec, ts)
            self._cache[ck] = fields
            while len(self._cache) > 64:
                self._cache.pop(next(iter(self._cache)))
        vals = fields[rt.fields[i]]
        name = rt.fields[i]
        server_faults = [f for f in sim.cfg.faults if f.asset is None and f.kind in ("server_restart", "network_stall")]
        faults = [f for f in rt.spec.faults if f.field in (None, name) and f.kind != "meter_reset"] + server_faults
        out = []
        for t, v in zip(ts.tolist(), vals.tolist()):
            status = None
            skip = False
            for f in faults:
                if not f.active(t):
                    continue
                if f.kind in ("dropout", "server_restart", "network_stall"):
                    skip = True
                elif f.kind in ("stuck", "uncertain"):
                    v = sim._value_at_time(rt, i, f.start_ns) if f.start_ns >= sim.cfg.start_ns else float(
                        sim.samples(rt.spec, np.array([f.start_ns]))[name][0])
                    if f.kind == "uncertain":
                        status = f.status_name
                elif f.kind == "spike":
                    v = v * (10.0 if f.value is None else f.value)
                elif f.kind == "bad_status":
                    status = f.status_name
            if skip:
                continue
            code = ua.StatusCode(getattr(ua.StatusCodes, status)) if status else ua.StatusCode()
            dt = datetime.fromtimestamp(t / NS_PER_S, timezone.utc)
            variant = ua.Variant(None, ua.VariantType.Null) if (status and status.startswith("Bad")) else ua.Variant(float(v), ua.VariantType.Double)
            out.append(ua.DataValue(variant, StatusCode=code, SourceTimestamp=dt, ServerTimestamp=dt))
        cont = None
        if len(out) > limit:
            cont = out[limit].SourceTimestamp
            out = out[:limit]
        return out, cont
