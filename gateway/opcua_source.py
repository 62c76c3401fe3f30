"""OPC UA source (asyncua): subscriptions and polling per tag group, OperationLimits-aware.

Registered as ``type: opcua``. Reads tags by NodeId or browse path, maps status codes to
sample quality, keeps the source timestamp (server timestamp when the source has none),
chunks every service call to the server's OperationLimits, reconnects with exponential
backoff and jitter (re-creating subscriptions on the new session), watches for a silent
subscription (no keep-alive) and backfills the outage with HistoryRead where the server keeps
history. Notifications are acknowledged to the server only once stored, missing ones are
Republished, and subscriptions are transferred to the next session, also after a restart
(:mod:`plantmrv.gateway.opcua_durable`). Nodes whose server keeps no history are announced at
WARNING and in the ``nodes_without_history`` metric: an outage leaves a permanent gap there. Security: None / Sign / SignAndEncrypt with Basic256Sha256 (default) or
Aes128_Sha256_RsaOaep / Aes256_Sha256_RsaPss, a generated application certificate, an explicit
server-certificate trust list and username/password.

PublishResponses are decoded by :mod:`plantmrv.gateway.opcua_fast` (a notification of uniform
numeric items becomes numpy columns in one ``np.frombuffer``; anything else goes to asyncua's
decoder), and each publish becomes one :class:`SampleBatch`: no per-sample Python objects.

asyncua is imported inside the functions that use it so ``plantmrv --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, NamedTuple

import numpy as np
from pydantic import Field, SecretStr, field_validator, model_validator

from plantmrv.batch import SampleBatch, Series, quality_from_status_code
from plantmrv.config import StrictModel
from plantmrv.gateway.asyncua_compat import disable_builtin_publish_loop, first_cert_from_chain, keep_subscriptions_on_close, session_of
from plantmrv.gateway.nodestatus import NodeHealth
from plantmrv.retry import backoff_delay
from plantmrv.scaling import ScaledTag, check_unique_series, compose
from plantmrv.urls import check_url

if TYPE_CHECKING:  # pragma: no cover
    from plantmrv.gateway.metrics import GatewayMetrics
    from plantmrv.gateway.opcua_fast import DataChangeColumns

log = logging.getLogger("plantmrv.gateway.opcua")

_NODEID = re.compile(r"^(ns=\d+;|nsu=[^;]+;)?(i=\d+|s=.+|g=[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|b=[A-Za-z0-9+/=]+)$")
_BROWSE_ELEMENT = re.compile(r"^\d+:[^/]+$")
DEFAULT_CHUNK = 1000  # per call when the server announces no limit (0): keeps messages reasonable
_OVERFLOW = 0x0480  # StatusCode InfoType DataValue (bit 10) + Overflow (bit 7): the server dropped queued values before this one

# --------------------------------------------------------------------------- config


class OpcUaNode(ScaledTag):
    """A tag; ``scale``/``offset``/``unit`` turn the server's raw value into the field's unit (before
    buffering; an absolute deadband stays in the field's unit: the server gets it divided by the scale)."""

    node_id: str | None = Field(None, description="NodeId, e.g. `ns=2;s=P1.Flow` or `ns=3;i=1042`.")
    browse_path: str | None = Field(
        None, description="Browse path from the Root folder, e.g. `0:Objects/2:PumpStation/2:P1/2:Flow`."
    )

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, v: str | None) -> str | None:
        if v is not None and not _NODEID.match(v):
            raise ValueError(f"{v!r} is not a valid NodeId (expected like ns=2;s=Name, ns=2;i=1001, i=2258)")
        return v

    @field_validator("browse_path")
    @classmethod
    def _browse_path(cls, v: str | None) -> str | None:
        if v is not None:
            parts = v.strip("/").split("/")
            bad = [p for p in parts if not _BROWSE_ELEMENT.match(p)]
            if bad:
                raise ValueError(f"browse path element {bad[0]!r} is not `<namespace index>:<browse name>`")
        return v

    @model_validator(mode="after")
    def _one_address(self) -> "OpcUaNode":
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("set exactly one of node_id or browse_path")
        self.check_unit(self.field)
        return self


class OpcUaGroup(StrictModel):
    name: str = Field(..., description="Group name (logs and metrics).")
    mode: Literal["subscription", "poll"] = Field("subscription", description="Monitored items, or `read` every poll interval.")
    measurement: str = Field(..., description="InfluxDB measurement (asset class: `pump`, `ubcf`, `pv`...).")
    asset: str | None = Field(None, description="`asset` tag of the group's nodes.")
    tags: dict[str, str] = Field(default_factory=dict, description="Extra tags (bounded cardinality only).")
    publishing_interval_ms: float = Field(1000.0, gt=0, description="Subscription publishing interval.")
    sampling_interval_ms: float = Field(-1.0, description="Monitored-item sampling interval; -1 = the publishing interval.")
    queue_size: int = Field(10, ge=1, le=100_000, description="Server-side queue per monitored item: values kept between publishes "
                            "and while the gateway is away (x the sampling interval, it must exceed a gateway restart).")
    deadband_type: Literal["none", "absolute", "percent"] = Field("none", description="Data-change deadband.")
    deadband_value: float = Field(0.0, ge=0, description="Deadband in engineering units (absolute) or percent of EURange.")
    poll_interval_ms: float = Field(1000.0, ge=10, description="Poll period; sub-second periods are honoured (mode: poll).")
    max_sample_interval_s: float | None = Field(
        None, gt=0, description="Largest time between two stored samples of an unchanged, healthy tag (report by exception: "
        "the value is stored again at the source's time); null: the source's `max_sample_interval_s`.")
    nodes: list[OpcUaNode] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _deadband(self) -> "OpcUaGroup":
        if self.mode == "poll" and self.deadband_type != "none":
            raise ValueError("deadband applies to subscriptions only (mode: subscription)")
        if self.deadband_type == "percent" and self.deadband_value > 100:
            raise ValueError("a percent deadband is 0..100")
        return self


class OpcUaSecurity(StrictModel):
    mode: Literal["None", "Sign", "SignAndEncrypt"] = Field("None", description="Message security mode.")
    policy: Literal["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"] = Field(
        "Basic256Sha256", description="Security policy (the deprecated Basic128Rsa15 / Basic256 are not offered)."
    )
    certificate: Path = Field(Path("pki/own/cert.der"), description="Application certificate (DER or PEM); generated if absent.")
    private_key: Path = Field(Path("pki/own/key.pem"), description="Application private key (PEM); generated if absent.")
    application_uri: str = Field("urn:plantmrv:gateway", description="ApplicationUri written into the generated certificate.")
    trusted_server_certs: list[Path] = Field(
        default_factory=list, description="Server certificates (files, or folders of .der/.pem) this gateway trusts."
    )
    trust_any_server: bool = Field(False, description="Skip the trust-list check (commissioning only; logged as a warning).")

    @model_validator(mode="after")
    def _trust(self) -> "OpcUaSecurity":
        if self.mode != "None" and not self.trusted_server_certs and not self.trust_any_server:
            raise ValueError("mode Sign/SignAndEncrypt needs trusted_server_certs (or trust_any_server: true while commissioning)")
        return self


class OpcUaSourceConfig(StrictModel):
    type: Literal["opcua"]
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Source name (logs, metrics).")
    url: str = Field(..., description="Endpoint URL, `opc.tcp://host:4840`.")
    username: str | None = None
    password: SecretStr | None = Field(None, description="Use `${OPCUA_PASSWORD}`.")
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity)
    request_timeout_s: float = Field(10.0, gt=0, description="Answer timeout of each service call.")
    session_timeout_s: float = Field(120.0, ge=10, description="Requested session timeout; subscriptions outlive a lost "
                                     "connection as long, so a gateway back (reconnected or restarted) within it takes them over.")
    watchdog_interval_s: float = Field(
        10.0,
        ge=1,
        description="Period of the server-state probe (asyncua `watchdog_intervall`; its 1 s default drops busy servers).",
    )
    publish_requests: int = Field(3, ge=1, le=20, description="PublishRequests kept in flight (asyncua sends one at a time).")
    stale_after_s: float = Field(30.0, gt=0, description="Reconnect when a subscription sends nothing (not even a keep-alive) this long.")
    keepalive_s: float = Field(5.0, gt=0, description="Requested subscription keep-alive period.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay (doubles per failure, full jitter).")
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest reconnect delay.")
    history_backfill: bool = Field(True, description="After an outage, read the gap with HistoryRead where the server keeps history.")
    history_max_gap_s: float = Field(86_400.0, gt=0, description="Longest gap backfilled.")
    history_overlap_s: float = Field(
        5.0, ge=0, description="Backfill starts this long before the newest buffered sample (re-reads are idempotent)."
    )
    max_sample_interval_s: float = Field(
        60.0, gt=0, description="Largest time between two stored samples of an unchanged, healthy tag: a subscription reports "
        "changes only, so the gateway stores the held value again at the server's time (the analytics' `max_gap_s` must exceed it).")
    max_nodes_per_read: int | None = Field(None, ge=1, description="Caps the server's MaxNodesPerRead (null: server's value).")
    max_monitored_items_per_call: int | None = Field(None, ge=1, description="Caps the server's MaxMonitoredItemsPerCall.")
    schema_: Literal["none", "data_model"] = Field(
        "none", alias="schema",
        description="`data_model`: check-config refuses measurement and field names that are not in docs/data-model.md.",
    )
    groups: list[OpcUaGroup] = Field(..., min_length=1)

    model_config = {"populate_by_name": True}

    def series_names(self) -> list[tuple[tuple, str, str, str]]:
        """(key path of the measurement, key path of the field, measurement, field) of every tag, for name checks."""
        out = []
        for gi, g in enumerate(self.groups):
            for ni, n in enumerate(g.nodes):
                node = ("groups", gi, "nodes", ni)
                where_m = node + ("measurement",) if n.measurement else ("groups", gi, "measurement")
                out.append((where_m, node + ("field",), n.measurement or g.measurement, n.field))
        return out

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        check_url(v, {"opc.tcp": 4840})
        return v

    @model_validator(mode="after")
    def _checks(self) -> "OpcUaSourceConfig":
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        check_unique_series((f"groups[{gi}].nodes[{ni}]", n, g.measurement, g.asset, g.tags)
                            for gi, g in enumerate(self.groups) for ni, n in enumerate(g.nodes))
        return self


# --------------------------------------------------------------------------- helpers

_EPOCH_AWARE = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)


def dt_to_ns(dt: datetime | None) -> int:
    """OPC UA DateTime (aware or naive UTC) to Unix ns; 0 when absent."""
    if dt is None:
        return 0
    td = dt - (_EPOCH_NAIVE if dt.tzinfo is None else _EPOCH_AWARE)
    return (td.days * 86400 + td.seconds) * 1_000_000_000 + td.microseconds * 1000


def to_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)):
        return float(v)
    return None


def _load_cert_der(path: Path) -> bytes:
    data = path.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" in data:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return data


def trusted_fingerprints(paths: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        files = sorted(q for q in p.iterdir() if q.suffix.lower() in (".der", ".pem", ".crt")) if p.is_dir() else [p]
        for f in files:
            out[hashlib.sha256(_load_cert_der(f)).hexdigest()] = f
    return out


class UntrustedServerError(Exception):
    """The server's certificate is not in the trust list."""


class NodeRef(NamedTuple):
    """A validated :class:`OpcUaNode` as the running agent keeps it: a tuple, not a pydantic model.

    ``plantmrv gateway run`` validates the config in a forked child, which hands every node over
    as one of these (:func:`plantmrv.gateway.cli.load_config_compact`): a tuple costs a fraction
    of the model with its ``__dict__`` and fields-set (bench/README.md, gateway: memory).
    """

    field: str
    node_id: str | None
    browse_path: str | None
    asset: str | None
    measurement: str | None
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None

    @classmethod
    def of(cls, n: OpcUaNode) -> "NodeRef":
        return cls(n.field, n.node_id, n.browse_path, n.asset, n.measurement, n.scale, n.offset, n.unit)


class _NodeIds:
    """NodeIds by tag index, made when asked (``ua.NodeId`` objects are ~180 bytes each).

    A subscription needs each one once, per call chunk; a polled group keeps a list of its own.
    Browse-path tags hold what the server resolved for this session.
    """

    __slots__ = ("_nodes", "_resolved", "_parse")

    def __init__(self, nodes: list, resolved: dict[int, Any], parse: Callable[[str], Any]):
        self._nodes = nodes
        self._resolved = resolved
        self._parse = parse

    def __len__(self) -> int:
        return len(self._nodes)

    def __getitem__(self, i: int):
        r = self._resolved.get(i)
        return r if r is not None else self._parse(self._nodes[i].node_id)


# --------------------------------------------------------------------------- the source


class OpcUaSource:
    """Runs forever: connect, subscribe/poll, emit batches; reconnect on any loss."""

    type = "opcua"

    def __init__(self, cfg: OpcUaSourceConfig, site: str, metrics: "GatewayMetrics", config_dir: Path = Path(".")):
        self.cfg = cfg
        self.name = cfg.name
        self.metrics = metrics
        self.config_dir = config_dir
        # per tag i (OPC UA ClientHandle i + 1): its series, its node and its group
        self.table: list[Series] = []
        self.nodes: list[OpcUaNode | NodeRef] = []
        self.node_group: list[OpcUaGroup] = []
        tagsets: dict[tuple, tuple] = {}  # one tag tuple per distinct tag set, shared by its series
        for g in cfg.groups:
            for n in g.nodes:
                asset = n.asset or g.asset
                tags = dict(g.tags, site=site)
                if asset:
                    tags["asset"] = asset
                key = tuple(sorted((k, str(v)) for k, v in tags.items()))
                self.nodes.append(n)
                self.node_group.append(g)
                self.table.append(Series(n.measurement or g.measurement, tagsets.setdefault(key, key), n.field))
        self._interval_ns = {
            series: int((g.max_sample_interval_s or cfg.max_sample_interval_s) * 1e9) for series, g in zip(self.table, self.node_group)
        }
        # per tag: value = raw * a + b (scale, offset, unit); None when no tag is scaled (the common case)
        ab = [compose(n.scale, n.offset, n.field, n.unit) for n in self.nodes]
        self._scaled = any(x != (1.0, 0.0) for x in ab)
        self._a = np.array([x[0] for x in ab]) if self._scaled else None
        self._b = np.array([x[1] for x in ab]) if self._scaled else None
        self.last_ts_ns = 0  # newest sample timestamp seen (for the backfill after an outage)
        # While a backfill is due or running, the resume point the agent persists must not move past
        # the outage start, or a crash mid-backfill would lose the gap for good.
        self.resume_floor_ns: int | None = None
        self.connected = False
        self._lost: asyncio.Event | None = None
        self._emit: Callable[[SampleBatch], None] | None = None
        self.health = NodeHealth(self.name, self.nodes, self.node_group, self.table, metrics)  # tags that fail, loudly
        from plantmrv.gateway.opcua_durable import SubscriptionLedger

        self.ledger = SubscriptionLedger(self.name, self._fingerprint(), metrics)
        self.without_history: set[int] = set()  # tag indices whose server answers no HistoryRead
        self._republishing: set[asyncio.Task] = set()

    def _fingerprint(self) -> str:
        """What a subscription this source created is made of: another configuration does not take it over."""
        doc = [self.cfg.url] + [[g.mode, g.publishing_interval_ms, g.sampling_interval_ms, g.queue_size, g.deadband_type,
                                 g.deadband_value, [n.node_id or n.browse_path for n in g.nodes]] for g in self.cfg.groups]
        return hashlib.sha256(repr(doc).encode()).hexdigest()[:16]

    def max_sample_interval_ns(self, series: Series) -> int:
        """Largest time between stored samples of an unchanged tag (its group's setting) [ns]."""
        return self._interval_ns.get(series, int(self.cfg.max_sample_interval_s * 1e9))

    # ------------------------------------------------------------------ emit
    def _emit_rows(self, idx, ts, vals, codes, server_ts=None, covers: np.ndarray | None = None, server_clock_ns: int = 0,
                   **durable) -> None:
        """Emit one batch from row columns (lists or numpy arrays of equal length).

        ``covers`` (tag indices) are the tags the server observed for these rows (a subscription's
        or a poll group's members): their watermark is the newest source timestamp of the rows,
        capped by the newest server timestamp (a device clock ahead of the server's does not move
        it), or the server's own clock (``server_clock_ns``: a publish's PublishTime less the
        sampling interval) where that is later, so an unchanged subscription still reaches
        forward. None: rows read from history, no watermark. ``durable``: the ``ack`` and ``state``
        of a subscription's NotificationMessage (see :class:`~plantmrv.gateway.agent.SourceEmitter`).
        """
        if not len(idx) and (covers is None or server_clock_ns <= 0):
            if durable:
                self._emit(SampleBatch.empty(), **durable)
            return
        ts_arr = np.asarray(ts, dtype=np.int64)
        idx = np.asarray(idx, np.int32)
        vals = np.asarray(vals, np.float64)
        if self._scaled and len(idx):
            vals = vals * self._a[idx] + self._b[idx]
        codes = np.asarray(codes, np.uint32)
        self.health.observe(idx, codes)
        batch = SampleBatch(self.table, idx, ts_arr, vals, quality_from_status_code(codes), codes if codes.any() else None)
        watermark = server_clock_ns if covers is not None and server_clock_ns > 0 else None
        if len(batch):
            newest = int(ts_arr.max())
            if newest > self.last_ts_ns:
                self.last_ts_ns = newest
            if covers is not None:
                w = newest
                srv = np.asarray(server_ts, dtype=np.int64) if server_ts is not None else np.empty(0, np.int64)
                if len(srv) and int(srv.max()) > 0:
                    w = min(w, int(srv.max()))
                watermark = max(w, watermark or 0)
        self._emit(batch, watermark, covers if watermark is not None else None, **durable)

    def _rows_from_datavalues(self, pairs, now_ns: int):
        """(series index, asyncua DataValue) pairs -> row columns (with server timestamps); non-numeric good values are counted, not sent."""
        idx, ts, vals, codes, srv_ts = [], [], [], [], []
        skipped = 0
        for series_index, dv in pairs:
            v = to_float(dv.Value.Value if dv.Value is not None else None)
            code = dv.StatusCode.value if dv.StatusCode is not None else 0
            if v is None:
                if code & 0xC0000000 == 0:
                    skipped += 1
                    continue
                v = float("nan")  # a BAD sample without a value still counts as a BAD sample
            t = dt_to_ns(dv.SourceTimestamp)
            srv = dt_to_ns(dv.ServerTimestamp)
            if t <= 0:
                t = srv if srv > 0 else now_ns
            idx.append(series_index)
            ts.append(t)
            vals.append(v)
            codes.append(code)
            srv_ts.append(srv)
        if skipped:
            self.metrics.source_error(self.name, "non_numeric", skipped)
        return idx, ts, vals, codes, srv_ts

    def _rows_from_columns(self, cols: "DataChangeColumns", now_ns: int):
        """The same rows as :meth:`_rows_from_datavalues`, vectorized over a fast-decoded notification."""
        h = cols.client_handle.astype(np.int64) - 1
        ok = (h >= 0) & (h < len(self.nodes))
        keep = ok & (cols.has_value | ((cols.status & np.uint32(0xC0000000)) != 0))
        skipped = int(np.count_nonzero(ok & ~keep))
        if skipped:
            self.metrics.source_error(self.name, "non_numeric", skipped)
        src, srv = cols.source_ts_ns[keep], cols.server_ts_ns[keep]
        ts = np.where(src > 0, src, np.where(srv > 0, srv, now_ns))
        return h[keep], ts, cols.value[keep], cols.status[keep], srv

    # ------------------------------------------------------------------ lifecycle
    async def run(self, emit: Callable[[SampleBatch], None]) -> None:
        self._emit = emit
        if hasattr(emit, "saved"):  # the subscriptions an earlier run left on the server, to take over
            self.ledger.load(emit.saved(self.ledger.state_key))
        attempt = 0
        while True:
            client = None
            outage_from_ns = self.resume_floor_ns or self.last_ts_ns
            try:
                client = await self._connect()
                self.connected = True
                self.metrics.source_connected(self.name, True)
                log.info("event=opcua_connected source=%s url=%s security=%s", self.name, self.cfg.url, self.cfg.security.mode)
                attempt = 0
                await self._serve(client, outage_from_ns)
            except asyncio.CancelledError:
                if client is not None:
                    await self._disconnect(client)
                raise
            except UntrustedServerError as exc:
                log.error("event=opcua_untrusted_server source=%s url=%s error=%s", self.name, self.cfg.url, exc)
                self.metrics.source_error(self.name, "untrusted_server")
            except Exception as exc:  # noqa: BLE001 - every failure ends in a reconnect
                log.warning("event=opcua_connection_lost source=%s url=%s error=%s: %s", self.name, self.cfg.url,
                            type(exc).__name__, str(exc)[:300])
                self.metrics.source_error(self.name, "connection")
            self.connected = False
            self.metrics.source_connected(self.name, False)
            if hasattr(emit, "lost"):
                emit.lost()  # coverage ends at the last watermark: no hold bridges the outage
            if client is not None:
                await self._disconnect(client)
            delay = backoff_delay(attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
            attempt += 1
            self.metrics.source_reconnect(self.name)
            log.info("event=opcua_reconnect_wait source=%s attempt=%d delay_s=%.2f", self.name, attempt, delay)
            await asyncio.sleep(delay)

    async def _disconnect(self, client) -> None:
        for t in list(self._republishing):
            t.cancel()
        try:  # CloseSession keeps the subscriptions (DeleteSubscriptions false): the next session takes them over
            keep_subscriptions_on_close(client)
            await asyncio.wait_for(client.disconnect(), timeout=5)
        except Exception:  # noqa: BLE001
            pass

    def _path(self, p: Path) -> Path:
        return p if p.is_absolute() else self.config_dir / p

    async def _connect(self):
        from asyncua import Client, ua
        from asyncua.crypto import security_policies

        cfg = self.cfg
        client = Client(cfg.url, timeout=cfg.request_timeout_s, watchdog_intervall=cfg.watchdog_interval_s)
        client.session_timeout = int(cfg.session_timeout_s * 1000)
        client.name = client.description = f"plantmrv gateway {self.name}"
        sec = cfg.security
        if sec.mode != "None":
            client.application_uri = sec.application_uri
            cert, key = self._path(sec.certificate), self._path(sec.private_key)
            if not cert.exists() or not key.exists():
                await client.setup_self_signed_certificate(key, cert)
                print(f"plantmrv gateway: generated application certificate {cert.resolve()} (key {key.resolve()}); "
                      f"add it to the OPC UA server's trusted clients", flush=True)
                log.info("event=opcua_certificate_generated source=%s cert=%s key=%s", self.name, cert.resolve(), key.resolve())
            policy = {
                "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
                "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
                "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
            }[sec.policy]
            mode = getattr(ua.MessageSecurityMode, sec.mode)
            endpoints = await client.connect_and_get_server_endpoints()
            match = [e for e in endpoints if e.SecurityPolicyUri == policy.URI and e.SecurityMode == mode]
            if not match:
                offered = sorted({f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints})
                raise UntrustedServerError(f"server offers no endpoint with {sec.policy}/{sec.mode} (offers: {', '.join(offered)})")
            server_der = match[0].ServerCertificate
            server_der = first_cert_from_chain(server_der)
            fp = hashlib.sha256(server_der).hexdigest()
            if not sec.trust_any_server:
                trusted = trusted_fingerprints([self._path(p) for p in sec.trusted_server_certs])
                if fp not in trusted:
                    rejected = self._path(Path("pki/rejected")) / f"{fp[:16]}.der"
                    rejected.parent.mkdir(parents=True, exist_ok=True)
                    rejected.write_bytes(server_der)
                    raise UntrustedServerError(
                        f"server certificate sha256={fp} is not in security.trusted_server_certs; "
                        f"it was saved to {rejected.resolve()}: after checking it, add that file to the trust list"
                    )
            else:
                log.warning("event=opcua_trust_any_server source=%s fingerprint=%s", self.name, fp)
            await client.set_security(policy, str(cert), str(key), server_certificate=server_der, mode=mode)
        if cfg.username:
            client.set_user(cfg.username)
            client.set_password(cfg.password.get_secret_value())
        self._lost = asyncio.Event()
        lost = self._lost

        async def _on_lost(exc):
            lost.set()

        client.connection_lost_callback = _on_lost
        await client.connect()
        return client

    # ------------------------------------------------------------------ serving one session
    async def _operation_limits(self, client) -> dict[str, int]:
        from asyncua import ua

        names = ["MaxNodesPerRead", "MaxMonitoredItemsPerCall", "MaxNodesPerHistoryReadData", "MaxNodesPerTranslateBrowsePathsToNodeIds"]
        nodes = [client.get_node(getattr(ua.ObjectIds, f"Server_ServerCapabilities_OperationLimits_{n}")) for n in names]
        out = {n: 0 for n in names}
        try:
            values = await client.read_attributes(nodes, ua.AttributeIds.Value)
            for n, dv in zip(names, values):
                if dv.StatusCode is None or dv.StatusCode.is_good():
                    out[n] = int(dv.Value.Value or 0)
        except Exception as exc:  # noqa: BLE001 - a server without OperationLimits
            log.info("event=opcua_no_operation_limits source=%s error=%s", self.name, exc)
        return out

    @staticmethod
    def _chunk(server_limit: int, override: int | None) -> int:
        """Items per call: never above the server's limit (0 = none announced); at most
        ``DEFAULT_CHUNK`` unless configured higher, so one call stays well inside the request timeout."""
        want = override or DEFAULT_CHUNK
        return min(server_limit, want) if server_limit > 0 else want

    async def _resolve(self, client, limits: dict[str, int]) -> _NodeIds:
        """Every tag's NodeId (:class:`_NodeIds`): browse paths translated by the server now, NodeId
        strings parsed when used."""
        from asyncua import ua

        by_path = [i for i, n in enumerate(self.nodes) if n.node_id is None]
        resolved: dict[int, Any] = {}
        chunk = self._chunk(limits["MaxNodesPerTranslateBrowsePathsToNodeIds"], None)
        root = ua.NodeId(ua.ObjectIds.RootFolder)
        for k in range(0, len(by_path), chunk):
            part = by_path[k : k + chunk]
            results = await client.translate_browsepaths(root, ["/" + self.nodes[i].browse_path.strip("/") for i in part])
            for i, res in zip(part, results):
                if not res.StatusCode.is_good() or not res.Targets:  # this tag fails (loudly), the others go on
                    self.health.fail(i, res.StatusCode.value if not res.StatusCode.is_good() else ua.StatusCodes.BadNoMatch, "browse")
                    resolved[i] = ua.NodeId()  # the null NodeId: every service call on it fails harmlessly
                    continue
                self.health.ok(i, "browse")
                resolved[i] = res.Targets[0].TargetId.NodeId if hasattr(res.Targets[0].TargetId, "NodeId") else res.Targets[0].TargetId
        return _NodeIds(self.nodes, resolved, ua.NodeId.from_string)

    async def _serve(self, client, outage_from_ns: int) -> None:
        limits = await self._operation_limits(client)
        read_chunk = self._chunk(limits["MaxNodesPerRead"], self.cfg.max_nodes_per_read)
        mi_chunk = self._chunk(limits["MaxMonitoredItemsPerCall"], self.cfg.max_monitored_items_per_call)
        log.info("event=opcua_limits source=%s max_nodes_per_read=%d max_monitored_items_per_call=%d read_chunk=%d mi_chunk=%d",
                 self.name, limits["MaxNodesPerRead"], limits["MaxMonitoredItemsPerCall"], read_chunk, mi_chunk)
        nodeids = await self._resolve(client, limits)
        from plantmrv.gateway.opcua_fast import install

        from plantmrv.gateway.opcua_durable import publish_loop, transfer

        self._session = session = session_of(client)
        install(session)  # DataChangeNotifications decoded as numpy columns
        disable_builtin_publish_loop(session)  # our publish loops acknowledge only what is stored (below)
        groups: dict[int, list[int]] = {}
        for i, g in enumerate(self.node_group):
            groups.setdefault(id(g), []).append(i)
        tasks: list[asyncio.Task] = []
        subs = []
        try:
            by_interval: dict[float, list[tuple[OpcUaGroup, list[int]]]] = {}
            polled: list[int] = []
            for g in self.cfg.groups:
                if g.mode == "subscription":  # one subscription per publishing interval, not per group:
                    by_interval.setdefault(g.publishing_interval_ms, []).append((g, groups[id(g)]))  # fewer publish loops
                else:
                    members = groups[id(g)]
                    polled += members
                    tasks.append(asyncio.create_task(self._poll(client, g, members, [nodeids[i] for i in members], read_chunk)))
            moved = await transfer(session, self.ledger)  # the subscriptions the last session (or process) left
            by_id = {self.ledger.subs[sid].interval_ms: sid for sid in moved}
            for interval, members in by_interval.items():
                sid = by_id.pop(interval, None)
                subs.append(self._adopt(sid, interval, members) if sid is not None
                            else await self._subscribe(client, interval, members, nodeids, mi_chunk))
            if by_id:  # taken over but no longer configured at this interval
                await session.delete_subscriptions(list(by_id.values()))
                self.ledger.forget({s.sub_id for s in subs})
            if hasattr(self._emit, "persist"):  # the ids are durable before any notification can arrive
                await self._emit.persist(self.ledger.state())
            callbacks = {s.sub_id: s.publish_callback for s in subs}
            if subs:  # several PublishRequests in flight: a busy server is not round-trip bound
                for _ in range(self.cfg.publish_requests):
                    tasks.append(asyncio.create_task(publish_loop(session, self.ledger, callbacks)))
            for sid, available in moved.items():
                if sid in callbacks:
                    log.info("event=opcua_subscription_transferred source=%s subscription=%d stored_through=%d available=%d",
                             self.name, sid, self.ledger.subs[sid].through, len(available))
                    self._republish_later(session, next(s for s in subs if s.sub_id == sid), self.ledger.available(sid, available))
            await self._check_history(client, nodeids, read_chunk)  # after the subscriptions: their queues wait for nobody
            taken_over = len(subs) > 0 and all(s.transferred for s in subs)
            if outage_from_ns and self.cfg.history_backfill:
                # subscriptions taken over lost nothing the server held: only what was not is read again
                backfill = polled if taken_over else list(range(len(self.nodes)))
                if backfill:
                    self.resume_floor_ns = outage_from_ns
                    await self._backfill(client, nodeids, outage_from_ns, limits, backfill)
                self.resume_floor_ns = None  # rows emitted: the next flush stores them with the new point
            await self._watch(tasks, subs)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _sub_object(self, interval_ms: float, groups: list[tuple[OpcUaGroup, list[int]]], keepalive_count: int):
        """What the source keeps of one subscription: its members, sampling, keep-alive and publish callback."""
        from asyncua import ua

        from plantmrv.gateway.opcua_fast import DataChangeColumns

        source = self

        class _Sub:
            """Decodes a whole publish response into one batch (no per-value callbacks or tasks)."""

            sub_id = 0
            transferred = False
            members = np.asarray(sorted(i for _g, m in groups for i in m), np.int32)
            sampling_ns = int(max(g.publishing_interval_ms if g.sampling_interval_ms < 0 else g.sampling_interval_ms for g, _ in groups) * 1e6)
            keepalive_s = keepalive_count * interval_ms / 1000
            last_publish_at = time.monotonic()

            async def publish_callback(self, publish_result) -> None:
                self.last_publish_at = time.monotonic()
                msg = publish_result.NotificationMessage
                if not msg.NotificationData:
                    gaps = source.ledger.keepalive(self.sub_id, msg.SequenceNumber)
                    # the server's clock at this publish, less a sampling interval: every change it
                    # sampled before then is in this or an earlier publish (keep-alives included)
                    clock_ns = dt_to_ns(msg.PublishTime) - self.sampling_ns if msg.PublishTime is not None else 0
                    source._emit_rows([], [], [], [], [], covers=self.members, server_clock_ns=clock_ns)
                else:
                    new, gaps = source.ledger.received(self.sub_id, msg.SequenceNumber)
                    if new:  # while older messages are missing, the coverage watermark waits for them
                        self.emit_message(msg, live=not source.ledger.subs[self.sub_id].missing)
                if gaps:
                    source._republish_later(None, self, gaps)

            def emit_message(self, msg, live: bool) -> None:
                """One NotificationMessage's samples, with its ack and the ledger's state; ``live``: the
                newest message (its PublishTime moves the coverage watermark), not a Republished one."""
                clock_ns = dt_to_ns(msg.PublishTime) - self.sampling_ns if msg.PublishTime is not None and live else 0
                durable = {"ack": source.ledger.acker(self.sub_id), "state": source.ledger.state()}
                covers = self.members if live else None
                now_ns = time.time_ns()
                pairs = []
                parts = []
                for notif in msg.NotificationData:
                    if isinstance(notif, DataChangeColumns):  # fast-decoded (opcua_fast)
                        parts.append(source._rows_from_columns(notif, now_ns))
                    elif isinstance(notif, ua.DataChangeNotification):
                        for item in notif.MonitoredItems:
                            h = item.ClientHandle - 1
                            if 0 <= h < len(source.nodes):
                                pairs.append((h, item.Value))
                    elif isinstance(notif, ua.StatusChangeNotification):
                        log.warning("event=opcua_subscription_status source=%s status=%s", source.name, notif.Status)
                        if source._lost is not None and live:
                            source._lost.set()
                if pairs:
                    parts.append(source._rows_from_datavalues(pairs, now_ns))
                for idx, _ts, _v, codes, _srv in parts:
                    source._note_overflow(idx, codes)
                if len(parts) == 1:
                    source._emit_rows(*parts[0], covers=covers, server_clock_ns=clock_ns, **durable)
                elif parts:
                    source._emit_rows(*(np.concatenate([np.asarray(p[k]) for p in parts]) for k in range(5)), covers=covers,
                                      server_clock_ns=clock_ns, **durable)
                else:
                    source._emit(SampleBatch.empty(), **durable)

        return _Sub()

    def _note_overflow(self, idx, codes) -> None:
        """Values the server discarded from a monitored item's full queue (OPC UA Part 4 7.22.1: the
        next value carries the InfoType DataValue + Overflow bits): a permanent gap, counted and logged."""
        codes = np.asarray(codes, np.uint64)
        hit = (codes & np.uint64(_OVERFLOW)) == np.uint64(_OVERFLOW)
        if not hit.any():
            return
        tags = sorted({self._node_name(int(i)) for i in np.asarray(idx)[hit]})
        self.metrics.source_error(self.name, "queue_overflow", len(tags))
        log.warning("event=opcua_queue_overflow source=%s tags=%d nodes=%s consequence=%s", self.name, len(tags),
                    ",".join(tags[:20]) + (f",...({len(tags) - 20} more)" if len(tags) > 20 else ""),
                    "the server discarded values of these tags from full queues (queue_size too small for the gap it had "
                    "to hold): lost unless HistoryRead backfills them")

    def _keepalive_count(self, interval_ms: float) -> int:
        return max(1, math.ceil(self.cfg.keepalive_s * 1000 / interval_ms))

    def _adopt(self, sub_id: int, interval_ms: float, groups: list[tuple[OpcUaGroup, list[int]]]):
        """A subscription transferred from an earlier session: its monitored items are the configured ones."""
        sub = self._sub_object(interval_ms, groups, self._keepalive_count(interval_ms))
        sub.sub_id = sub_id
        sub.transferred = True
        sub.last_publish_at = time.monotonic()
        return sub

    def _republish_later(self, session, sub, seqs: list[int]) -> None:
        """Ask the server again for the messages ``seqs`` of ``sub`` (in a task; each is emitted when it comes)."""
        if not seqs:
            return
        log.info("event=opcua_republish source=%s subscription=%d seqs=%d..%d count=%d", self.name, sub.sub_id, seqs[0], seqs[-1], len(seqs))
        t = asyncio.create_task(self._republish(session, sub, seqs))
        self._republishing.add(t)
        t.add_done_callback(self._republishing.discard)

    async def _republish(self, session, sub, seqs: list[int]) -> None:
        from asyncua.ua.uaerrors import UaStatusCodeError

        session = session or self._session
        for k in seqs:
            try:
                msg = await session.republish(sub.sub_id, k)
            except UaStatusCodeError as exc:  # BadMessageNotAvailable: the server no longer holds it
                msg, why = None, exc.__class__.__name__
            except Exception as exc:  # noqa: BLE001 - the connection went: the next session asks again
                log.info("event=opcua_republish_interrupted source=%s subscription=%d seq=%d error=%s", self.name, sub.sub_id, k, exc)
                return
            else:
                why = "empty answer"
            if msg is None or msg.SequenceNumber != k or not msg.NotificationData:
                self.ledger.lost(sub.sub_id, k)
                log.warning("event=opcua_notification_lost source=%s subscription=%d seq=%d reason=%s consequence=%s",
                            self.name, sub.sub_id, k, why,
                            "the server no longer holds it: its samples are lost unless HistoryRead backfills them")
                self._emit(SampleBatch.empty(), state=self.ledger.state())
                continue
            new, _gaps = self.ledger.received(sub.sub_id, k, live=False)
            if new:
                self.metrics.source_republished(self.name, 1)
                sub.emit_message(msg, live=False)

    async def _subscribe(self, client, interval_ms: float, groups: list[tuple[OpcUaGroup, list[int]]], nodeids: _NodeIds, mi_chunk: int):
        from asyncua import ua

        from plantmrv.gateway.opcua_durable import SubSeq

        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = interval_ms
        params.RequestedMaxKeepAliveCount = self._keepalive_count(interval_ms)
        params.RequestedLifetimeCount = max(3 * params.RequestedMaxKeepAliveCount,
                                            math.ceil(self.cfg.session_timeout_s * 1000 / interval_ms))
        params.MaxNotificationsPerPublish = 0
        params.PublishingEnabled = True
        params.Priority = 0
        sub = self._sub_object(interval_ms, groups, params.RequestedMaxKeepAliveCount)
        session = session_of(client)
        self._session = session
        result = await session.create_subscription(params, sub.publish_callback)
        sub.sub_id = result.SubscriptionId
        self.ledger.subs[sub.sub_id] = SubSeq(sub.sub_id, interval_ms)
        sub.last_publish_at = time.monotonic()
        sub.keepalive_s = result.RevisedMaxKeepAliveCount * result.RevisedPublishingInterval / 1000 or sub.keepalive_s

        def request(i: int, g: OpcUaGroup, mfilter) -> "ua.MonitoredItemCreateRequest":
            rv = ua.ReadValueId()
            rv.NodeId = nodeids[i]
            rv.AttributeId = ua.AttributeIds.Value
            mp = ua.MonitoringParameters()
            mp.ClientHandle = i + 1
            mp.SamplingInterval = g.publishing_interval_ms if g.sampling_interval_ms < 0 else g.sampling_interval_ms
            mp.QueueSize = g.queue_size
            mp.DiscardOldest = True
            if mfilter is not None:
                mp.Filter = mfilter
            mir = ua.MonitoredItemCreateRequest()
            mir.ItemToMonitor = rv
            mir.MonitoringMode = ua.MonitoringMode.Reporting
            mir.RequestedParameters = mp
            return mir

        items = []  # (tag index, group, filter): requests are built one call at a time
        for g, members in groups:
            mfilter = None
            if g.deadband_type != "none":
                mfilter = ua.DataChangeFilter()
                mfilter.Trigger = ua.DataChangeTrigger.StatusValue
                mfilter.DeadbandType = 1 if g.deadband_type == "absolute" else 2
                mfilter.DeadbandValue = g.deadband_value
            for i in members:
                f = mfilter
                if f is not None and g.deadband_type == "absolute" and self._scaled and self._a[i] not in (0.0, 1.0):
                    f = ua.DataChangeFilter()  # the server compares raw values: the deadband in raw units
                    f.Trigger, f.DeadbandType = mfilter.Trigger, mfilter.DeadbandType
                    f.DeadbandValue = g.deadband_value / abs(float(self._a[i]))
                items.append((i, g, f))
        failed = []
        for k in range(0, len(items), mi_chunk):
            part = items[k : k + mi_chunk]
            # the session's service call, not Subscription.create_monitored_items: that one keeps a
            # Node and a SubscriptionItemData per item for callbacks this subscription never makes
            cp = ua.CreateMonitoredItemsParameters()
            cp.SubscriptionId = sub.sub_id
            cp.TimestampsToReturn = ua.TimestampsToReturn.Both
            cp.ItemsToCreate = [request(i, g, f) for i, g, f in part]
            results = await session.create_monitored_items(cp)
            for (i, _g, _f), r in zip(part, results):
                if r.StatusCode.is_good():
                    self.health.ok(i, "subscribe")
                else:
                    failed.append(i)
                    self.health.fail(i, r.StatusCode.value, "subscribe")
            sub.last_publish_at = time.monotonic()  # setting up a big subscription is not silence
        if failed:
            self.metrics.source_error(self.name, "monitored_item_failed", len(failed))
        log.info("event=opcua_subscribed source=%s groups=%d items=%d failed=%d publishing_interval_ms=%g calls=%d",
                 self.name, len(groups), len(items) - len(failed), len(failed), interval_ms,
                 math.ceil(len(items) / mi_chunk))
        if hasattr(self._emit, "persist"):  # durable once complete, before it can deliver: a restart takes it over
            await self._emit.persist(self.ledger.state())
        return sub

    async def _read(self, client, members: list[int], ids: list, chunk: int) -> None:
        """Read ``members`` (tag indices) once; ``ids`` are their NodeIds, in the same order."""
        from asyncua import ua

        for k in range(0, len(members), chunk):
            part = members[k : k + chunk]
            params = ua.ReadParameters()
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            for nodeid in ids[k : k + chunk]:
                rv = ua.ReadValueId()
                rv.NodeId = nodeid
                rv.AttributeId = ua.AttributeIds.Value
                params.NodesToRead.append(rv)
            values = await client.uaclient.read(params)
            self._emit_rows(*self._rows_from_datavalues(zip(part, values), time.time_ns()), covers=np.asarray(part, np.int32))

    async def _poll(self, client, g: OpcUaGroup, members: list[int], ids: list, chunk: int) -> None:
        period = g.poll_interval_ms / 1000
        next_t = time.monotonic()
        while True:
            await self._read(client, members, ids, chunk)
            next_t += period
            now = time.monotonic()
            if next_t < now:  # overran: skip the missed ticks instead of bursting
                missed = math.ceil((now - next_t) / period)
                self.metrics.source_error(self.name, "poll_overrun", missed)
                next_t += missed * period
            await asyncio.sleep(next_t - time.monotonic())

    async def _watch(self, tasks: list[asyncio.Task], subs: list) -> None:
        while True:
            if self._lost.is_set():
                raise ConnectionError("connection lost (server-state watchdog or subscription status)")
            for t in tasks:
                if t.done():
                    exc = t.exception()
                    raise exc if exc else ConnectionError("poll task ended")
            now = time.monotonic()
            for s in subs:
                silent = now - (s.last_publish_at or now)
                if silent > max(self.cfg.stale_after_s, 3 * s.keepalive_s):
                    if s.transferred and not self.ledger.subs[s.sub_id].delivered:
                        self.ledger.transfer_ok = False  # the server kept the subscription but does not serve it to us
                        self._emit(SampleBatch.empty(), state=self.ledger.state())
                        log.warning("event=opcua_transfer_unusable source=%s subscription=%d silent_s=%.1f action=%s",
                                    self.name, s.sub_id, silent, "subscriptions are created anew from now on; HistoryRead "
                                    "backfills where the server keeps history")
                    raise ConnectionError(f"subscription {s.sub_id} silent for {silent:.1f}s (no data, no keep-alive)")
            try:
                await asyncio.wait_for(self._lost.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass

    async def _check_history(self, client, nodeids: _NodeIds, chunk: int) -> None:
        """Which tags' server keeps no history (UserAccessLevel without HistoryRead): announce them at
        WARNING and in the ``nodes_without_history`` metric, since an outage leaves a permanent gap there."""
        from asyncua import ua

        without = set()
        for k in range(0, len(self.nodes), chunk):
            part = list(range(k, min(k + chunk, len(self.nodes))))
            params = ua.ReadParameters()
            for i in part:
                rv = ua.ReadValueId()
                rv.NodeId = nodeids[i]
                rv.AttributeId = ua.AttributeIds.UserAccessLevel
                params.NodesToRead.append(rv)
            try:
                values = await client.uaclient.read(params)
            except Exception as exc:  # noqa: BLE001 - not knowing is no reason to stop reading
                log.info("event=opcua_access_level_unknown source=%s error=%s", self.name, exc)
                return
            for i, dv in zip(part, values):
                level = dv.Value.Value if dv.Value is not None and (dv.StatusCode is None or dv.StatusCode.is_good()) else None
                if isinstance(level, int) and not level & ua.AccessLevel.HistoryRead.mask:
                    without.add(i)
        self._set_without_history(without)

    def _set_without_history(self, without: set[int]) -> None:
        if without == self.without_history:
            return
        self.without_history = without
        names = {self._node_name(i): self.table[i].key() for i in sorted(without)}
        self.metrics.nodes_without_history(self.name, names)
        if without:
            shown = ",".join(list(names)[:20]) + (f",...({len(names) - 20} more)" if len(names) > 20 else "")
            log.warning("event=opcua_nodes_without_history source=%s count=%d of=%d nodes=%s consequence=%s", self.name,
                        len(without), len(self.nodes), shown,
                        "samples these nodes change while the gateway cannot read them (an outage longer than the server's "
                        "queues, a restart after the session timeout, polled groups) are lost for good: the server keeps no history")
        else:
            log.info("event=opcua_all_nodes_have_history source=%s nodes=%d", self.name, len(self.nodes))

    def _node_name(self, i: int) -> str:
        return self.nodes[i].node_id or self.nodes[i].browse_path

    async def _backfill(self, client, nodeids: _NodeIds, from_ns: int, limits: dict[str, int], indices: list[int]) -> None:
        """HistoryRead (raw) of the outage for the tags ``indices``; idempotent downstream."""
        from asyncua import ua

        now_ns = time.time_ns()
        start_ns = max(from_ns - int(self.cfg.history_overlap_s * 1e9), now_ns - int(self.cfg.history_max_gap_s * 1e9))
        if now_ns - start_ns < 1e9:
            return
        chunk = self._chunk(limits["MaxNodesPerHistoryReadData"], 1000)
        start = datetime.fromtimestamp(start_ns / 1e9, timezone.utc)
        end = datetime.fromtimestamp(now_ns / 1e9, timezone.utc)
        total = 0
        unsupported = 0
        unsupported_nodes = set()
        for k in range(0, len(indices), chunk):
            part = indices[k : k + chunk]
            cps: dict[int, bytes | None] = {i: None for i in part}
            while cps:
                details = ua.ReadRawModifiedDetails()
                details.IsReadModified = False
                details.StartTime = start
                details.EndTime = end
                details.NumValuesPerNode = 10_000
                details.ReturnBounds = False
                params = ua.HistoryReadParameters()
                params.HistoryReadDetails = details
                params.TimestampsToReturn = ua.TimestampsToReturn.Both
                params.ReleaseContinuationPoints = False
                ids = list(cps)
                for i in ids:
                    hv = ua.HistoryReadValueId()
                    hv.NodeId = nodeids[i]
                    hv.ContinuationPoint = cps[i]
                    params.NodesToRead.append(hv)
                results = await client.uaclient.history_read(params)
                nxt: dict[int, bytes | None] = {}
                pairs = []
                for i, res in zip(ids, results):
                    if not res.StatusCode.is_good():
                        unsupported += 1
                        unsupported_nodes.add(i)
                        continue
                    for dv in (res.HistoryData.DataValues if res.HistoryData else None) or []:
                        pairs.append((i, dv))
                    if res.ContinuationPoint:
                        nxt[i] = res.ContinuationPoint
                rows = self._rows_from_datavalues(pairs, now_ns)
                total += len(rows[0])
                self._emit_rows(*rows)
                cps = nxt
                await asyncio.sleep(0)  # let live notifications in between chunks
        if unsupported_nodes - self.without_history:  # the server's access levels promised history it does not serve
            self._set_without_history(self.without_history | unsupported_nodes)
        self.metrics.source_backfilled(self.name, total)
        log.info("event=opcua_backfill source=%s from=%s to=%s samples=%d nodes_without_history=%d",
                 self.name, start.isoformat(), end.isoformat(), total, unsupported)
