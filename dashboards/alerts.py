"""Alert rules as code: Grafana unified-alerting file provisioning, generated with the dashboards.

One rule group for the platform (gateways, ingest, analytics) and one per plant type, built from
the same :data:`plantmrv.dashboards.build.PLANT_TYPES` and the config's projects and thresholds
(``dashboards.alerts``). Every rule is one InfluxQL query (refId ``A``, no template variables:
one alert instance per series, by its tags), Grafana's server-side ``reduce`` (``B``) and a
``threshold`` (``C``, the condition):

=========================  ====================================================================
rule                       fires when
=========================  ====================================================================
gateway offline            a gateway sent no health report for ``gateway_offline_min``
gateway buffer             its buffer holds > ``buffer_fill_ratio`` of its own ``buffer.max_mb``
ingest dead letters        ingest's dead-letter total rose in ``dead_letters_window_min``
tag bad                    a tag's samples were BAD in every minute of ``tag_bad_min``
completeness               the minute results of the last hour cover < ``completeness_min``
analytics lag              a project has no minute result for ``analytics_lag_min``
data watermark late        a gateway wrote no ``coverage`` point for an asset for ``data_lag_min``
data stopped (per type)    an asset sent no sample for ``data_lag_min``
reductions below plan      a project's reductions over ``reductions_days`` days are below
                           ``reductions_ratio`` x its ex-ante daily rate x days
pump efficiency (pump)     a pump's mean wire-to-water efficiency over ``efficiency_window_h``
                           is below its project's ``eta_reference`` (the baseline's)
treated turbidity (ubcf)   treated-water turbidity above ``treated_turbidity_ntu`` for
                           ``turbidity_for_min``
=========================  ====================================================================

The rules are built as grafana-foundation-sdk ``alerting.Rule`` models (Grafana's provisioning
API shape, which :func:`api_rules` returns for ``push``) and written in the file-provisioning
shape (``groups`` / ``contactPoints`` / ``policies``) by :func:`alerting_document`. Summaries
and descriptions come from the message catalogues (``--lang``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import alerting, expr
from grafana_foundation_sdk.models import dashboard as dash_m

from plantmrv.i18n import fill, language
from plantmrv.i18n import gettext as _

from . import panels as P
from .build import PLANT_TYPES
from .settings import BuildSettings

ORG_ID = 1
FOLDER = "plantmrv"
FOLDER_UID = "plantmrv"
EXPR_UID = "__expr__"


@dataclass(frozen=True)
class RuleSpec:
    """One alert rule: query A over ``[now - window_s, now - to_s]``, reduce B, threshold C."""

    uid: str
    group: str
    title: str
    query: str
    window_s: int
    reducer: str  # last | mean | min | max | sum
    op: str  # gt | lt
    threshold: float
    summary: str
    description: str
    for_: str = "0s"
    to_s: int = 0
    interval_ms: int = 60_000
    no_data: str = "OK"
    severity: str = "warning"
    dashboard_uid: str = "plantmrv-portfolio"
    labels: dict = field(default_factory=dict)


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _minutes(n: int) -> str:
    return f"{n}m"


def platform_rules(settings: BuildSettings) -> list[RuleSpec]:
    a = settings.dashboards.alerts
    n = a.gateway_offline_min
    return [
        RuleSpec(
            "plantmrv-gateway-offline", "platform", _("Gateway offline"),
            P.reports_in_last("online", "gateway", n, "reports", "WHERE $timeFilter", '"site", "gateway"'),
            86400, "last", "lt", 0.01,
            fill(_("Gateway {{ $labels.gateway }} at {{ $labels.site }} sent no health report for {n} min"), n=n),
            fill(_("No health report for {n} minutes: the gateway, its power or its uplink is down (its MQTT last will says offline). Data are buffered at the edge only if the gateway still runs."), n=n),
            severity="critical", dashboard_uid="plantmrv-portfolio",
        ),
        RuleSpec(
            "plantmrv-gateway-buffer", "platform", _("Gateway buffer filling"),
            'SELECT last("buffer_bytes") / last("buffer_max_bytes") AS "buffer_fill" FROM "gateway" WHERE $timeFilter GROUP BY "site", "gateway"',
            300, "last", "gt", a.buffer_fill_ratio,
            fill(_("Gateway {{ $labels.gateway }} at {{ $labels.site }}: buffer above {pct:.0f} % of its max_mb"), pct=a.buffer_fill_ratio * 100),
            _("The durable buffer holds data the gateway cannot deliver (uplink, broker or InfluxDB down). At 100 % the oldest data are dropped for good: restore the link."),
            for_="2m",
        ),
        RuleSpec(
            "plantmrv-ingest-dead-letters", "platform", _("Ingest dead letters rising"),
            'SELECT non_negative_difference(max("dead_letters")) AS "new_dead_letters" FROM "ingest" WHERE $timeFilter GROUP BY time(1m), "instance" fill(none)',
            a.dead_letters_window_min * 60, "sum", "gt", 0,
            fill(_("Ingest {{ $labels.instance }} refused messages in the last {n} min"), n=a.dead_letters_window_min),
            _("Messages were dead-lettered (malformed, unknown field, refused by InfluxDB): their data are not in the database. Inspect and replay them with `plantmrv ingest dead-letters`."),
        ),
        RuleSpec(
            "plantmrv-tag-bad", "platform", _("Tag bad"),
            'SELECT count("value") AS "bad_samples" FROM "sample_quality" WHERE "quality" = 2 AND $timeFilter GROUP BY time(1m), "site", "asset", "source", "field" fill(0)',
            (a.tag_bad_min + 1) * 60, "min", "gt", 0,
            fill(_("{{ $labels.site }}/{{ $labels.asset }} {{ $labels.field }} has been BAD for {n} min"), n=a.tag_bad_min),
            _("The source flags every sample of this tag BAD (sensor failure, PLC mapping, communication): analytics treats them as missing. Check the sensor and the tag mapping."),
            to_s=60,
        ),
        RuleSpec(
            "plantmrv-watermark-late", "platform", _("Data watermark late"),
            P.reports_in_last("tags_total", "coverage", a.data_lag_min, "coverage_reports", "WHERE $timeFilter", '"site", "asset", "gateway"'),
            86400, "last", "lt", 0.01,
            fill(_("{{ $labels.site }}/{{ $labels.asset }}: gateway {{ $labels.gateway }} delivered no data coverage for {n} min"), n=a.data_lag_min),
            _("The gateway reported no coverage point for this asset: the data watermark (source time up to which every tag was observed) is not moving. Analytics cannot close the intervals after it."),
        ),
        RuleSpec(
            "plantmrv-completeness", "platform", _("MRV data completeness low"),
            f'SELECT mean("completeness") AS "completeness" FROM "mrv" WHERE "interval" = {_lit(P.MRV_MINUTE)} AND $timeFilter GROUP BY "project"',
            3600, "last", "lt", a.completeness_min,
            fill(_("Project {{ $labels.project }}: data completeness of the last hour below {pct:.0f} %"), pct=a.completeness_min * 100),
            _("Less data than expected reach the MRV intervals of the last hour: they are gap-filled conservatively (fewer credited tonnes). Check the gateway, the meters and the data-quality panels."),
            for_="10m",
        ),
        RuleSpec(
            "plantmrv-analytics-lag", "platform", _("Analytics results late"),
            P.reports_in_last("reduction_t_co2", "mrv", a.analytics_lag_min, "results", f'WHERE "interval" = {_lit(P.MRV_MINUTE)} AND $timeFilter', '"project"'),
            86400, "last", "lt", 0.01,
            fill(_("Project {{ $labels.project }}: no MRV result for {n} min"), n=a.analytics_lag_min),
            _("The analytics engine wrote no minute result for this project: it stopped, or no data reach it (watermark lag). Check `plantmrv analytics run` and the gateways."),
            severity="critical",
        ),
    ]


def plant_rules(settings: BuildSettings) -> list[RuleSpec]:
    a = settings.dashboards.alerts
    out = []
    for pt in PLANT_TYPES.values():
        n = a.data_lag_min
        out.append(RuleSpec(
            f"plantmrv-{pt.key}-data-stopped", pt.key, fill(_("{plant}: data stopped"), plant=_(pt.title)),
            P.reports_in_last(pt.heartbeat_field, pt.measurement, n, "samples", "WHERE $timeFilter", '"site", "asset"'),
            86400, "last", "lt", 0.01,
            fill(_("{{ $labels.site }}/{{ $labels.asset }}: no sample for {n} min"), n=n),
            fill(_("No sample newer than {n} minutes arrived for this asset (source, gateway or link down, or delivery lagging): the data watermark is behind."), n=n),
            dashboard_uid=f"plantmrv-{pt.key}", labels={"plant_type": pt.key},
        ))
    for p in settings.projects_of("pump"):
        eta = getattr(getattr(p.parameter_set, "eta_reference", None), "value", None)
        if p.baseline != "efficiency_ratio" or eta is None:
            continue
        assets = "|".join(re.escape(x.asset) for x in p.assets if x.measurement == "pump")
        out.append(RuleSpec(
            f"plantmrv-pump-efficiency-{p.id}"[:40], "pump", _("Pump efficiency below the baseline's"),
            f'SELECT mean("efficiency") AS "efficiency" FROM "pump" WHERE "site" = {_lit(p.site)} AND "asset" =~ /^({assets})$/ AND "efficiency" > 0 AND $timeFilter GROUP BY "site", "asset"',
            a.efficiency_window_h * 3600, "last", "lt", float(eta),
            fill(_("{{ $labels.site }}/{{ $labels.asset }}: mean efficiency of the last {n} h below the baseline's {eta:.1%}"), eta=float(eta), n=a.efficiency_window_h),
            fill(_("The running pump's wire-to-water efficiency is below the reference pump's (eta_reference of project {project}): the project emits more than its baseline assumes. Check impeller wear and the duty point."), project=p.id),
            dashboard_uid="plantmrv-pump", labels={"plant_type": "pump", "project": p.id},
        ))
    out.append(RuleSpec(
        "plantmrv-ubcf-turbidity", "ubcf", _("Treated water above the turbidity limit"),
        'SELECT mean("treated_turbidity_ntu") AS "treated_turbidity" FROM "ubcf" WHERE $timeFilter GROUP BY "site", "asset"',
        a.turbidity_for_min * 60, "last", "gt", a.treated_turbidity_ntu,
        fill(_("{{ $labels.site }}/{{ $labels.asset }}: treated turbidity above {limit:g} NTU for {n} min"), limit=a.treated_turbidity_ntu, n=a.turbidity_for_min),
        _("Treated water exceeds the configured turbidity limit. Check backwash and coagulant dosing."),
        severity="critical", dashboard_uid="plantmrv-ubcf", labels={"plant_type": "ubcf"},
    ))
    return out


def project_rules(settings: BuildSettings) -> list[RuleSpec]:
    a = settings.dashboards.alerts
    out = []
    for p in settings.projects:
        rate = settings.ex_ante_daily_t_co2(p)
        if rate is None or p.plant_type == "ubcf":
            continue
        limit = a.reductions_ratio * rate * a.reductions_days
        out.append(RuleSpec(
            f"plantmrv-below-plan-{p.id}"[:40], "portfolio", _("Reductions below plan"),
            f'SELECT sum("reduction_t_co2") AS "reductions" FROM "mrv" WHERE "project" = {_lit(p.id)} AND "interval" = {_lit(P.MRV_HOURLY)} AND $timeFilter GROUP BY "project"',
            a.reductions_days * 86400, "last", "lt", limit,
            fill(_("Project {{ $labels.project }}: reductions of the last {days} days below {pct:.0f} % of plan"), days=a.reductions_days, pct=a.reductions_ratio * 100),
            fill(_("Below {limit:.3f} tCO2 in {days} days, {pct:.0f} % of the ex-ante rate of {rate:.3f} tCO2/day. Check operation, meters and parameters."), 
                limit=limit, days=a.reductions_days, pct=a.reductions_ratio * 100, rate=rate
            ),
            for_="1h", no_data="NoData", dashboard_uid=f"plantmrv-{p.plant_type}", labels={"project": p.id, "plant_type": p.plant_type},
        ))
    return out


def all_rules(settings: BuildSettings) -> list[RuleSpec]:
    return platform_rules(settings) + plant_rules(settings) + project_rules(settings)


# --------------------------------------------------------------------------- SDK models


def rule_model(spec: RuleSpec, interval: str) -> alerting.Rule:
    """The rule as grafana-foundation-sdk's ``alerting.Rule`` (provisioning API shape)."""
    ds = dash_m.DataSourceRef(type_val=P.DATASOURCE_TYPE, uid=P.DEFAULT_DATASOURCE_UID)
    xds = dash_m.DataSourceRef(type_val=EXPR_UID, uid=EXPR_UID)
    query = P.InfluxQLQuery(ref_id="A", query=spec.query, datasource=ds)
    reduce = expr.TypeReduce(datasource=xds, expression="A", reducer=spec.reducer, ref_id="B", settings=expr.ExprTypeReduceSettings(mode="dropNN"))
    threshold = expr.TypeThreshold(
        datasource=xds, expression="B", ref_id="C",
        conditions=[expr.ExprTypeThresholdConditions(evaluator=expr.ExprTypeThresholdConditionsEvaluator(params=[float(spec.threshold)], type_val=spec.op))],
    )
    return alerting.Rule(
        uid=spec.uid,
        title=spec.title,
        condition="C",
        data=[
            alerting.Query(ref_id="A", datasource_uid=P.DEFAULT_DATASOURCE_UID, model=query, relative_time_range=alerting.RelativeTimeRange(from_val=spec.window_s, to=spec.to_s)),
            alerting.Query(ref_id="B", datasource_uid=EXPR_UID, model=reduce, relative_time_range=alerting.RelativeTimeRange(from_val=0, to=0)),
            alerting.Query(ref_id="C", datasource_uid=EXPR_UID, model=threshold, relative_time_range=alerting.RelativeTimeRange(from_val=0, to=0)),
        ],
        exec_err_state="Error",
        no_data_state=spec.no_data,
        folder_uid=FOLDER_UID,
        for_val=spec.for_,
        org_id=ORG_ID,
        rule_group=group_title(spec.group),
        is_paused=False,
        labels={"plantmrv": "true", "severity": spec.severity, **spec.labels},
        annotations={"summary": spec.summary, "description": spec.description, "__dashboardUid__": spec.dashboard_uid},
    )


def group_title(group: str) -> str:
    return f"plantmrv {group}"


def api_rules(settings: BuildSettings | None = None, lang: str = "en") -> list[dict]:
    """Every rule as Grafana's provisioning API JSON (``POST /api/v1/provisioning/alert-rules``)."""
    settings = settings or BuildSettings.default()
    P.register_influxdb_variant()
    with language(lang):
        iv = settings.dashboards.alerts.evaluation_interval
        return [json.loads(json.dumps(rule_model(s, iv), cls=JSONEncoder)) for s in all_rules(settings)]


# --------------------------------------------------------------------------- file provisioning


def _file_rule(api: dict) -> dict:
    """API rule JSON -> the rule shape of an alerting provisioning file (group keys lifted out)."""
    out = {k: v for k, v in api.items() if k not in ("folderUID", "ruleGroup", "orgID")}
    return out


def alerting_document(settings: BuildSettings | None = None, lang: str = "en") -> dict:
    """The alerting provisioning file: rule groups, contact points and the notification policy."""
    settings = settings or BuildSettings.default()
    rules = api_rules(settings, lang)
    groups: dict[str, list] = {}
    for r in rules:
        groups.setdefault(r["ruleGroup"], []).append(_file_rule(r))
    iv = settings.dashboards.alerts.evaluation_interval
    cps = settings.dashboards.contact_points
    return {
        "apiVersion": 1,
        "groups": [{"orgId": ORG_ID, "name": name, "folder": FOLDER, "interval": iv, "rules": rs} for name, rs in groups.items()],
        "contactPoints": [
            {
                "orgId": ORG_ID,
                "name": c.name,
                "receivers": [{"uid": contact_uid(c.name), "type": c.type, "settings": dict(c.settings), "disableResolveMessage": False}],
            }
            for c in cps
        ],
        "policies": [
            {
                "orgId": ORG_ID,
                "receiver": cps[0].name,
                "group_by": ["grafana_folder", "alertname", "site", "project"],
                "group_wait": "30s",
                "group_interval": "5m",
                "repeat_interval": "4h",
                "routes": [
                    {"receiver": cps[0].name, "object_matchers": [["severity", "=", "critical"]], "group_wait": "10s", "repeat_interval": "1h"},
                ],
            }
        ],
    }


def contact_uid(name: str) -> str:
    return ("plantmrv-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name.strip()).strip("-").lower())[:40]


def render_alerting(settings: BuildSettings | None = None, lang: str = "en") -> str:
    head = (
        "# Grafana alerting provisioning, generated by `plantmrv dashboards build` from dashboards/alerts.py: do not edit.\n"
        "# Contact point settings are placeholders Grafana fills from its environment ($VAR).\n"
    )
    return head + yaml.safe_dump(alerting_document(settings, lang), sort_keys=False, allow_unicode=True, width=10_000)


# --------------------------------------------------------------------------- schema check

#: keys of Grafana's alerting provisioning file (docs: "Provision alerting resources using files")
FILE_KEYS = {"apiVersion", "groups", "contactPoints", "policies", "deleteRules", "templates", "muteTimes", "resetPolicies", "deleteContactPoints"}
GROUP_KEYS = {"orgId", "name", "folder", "interval", "rules"}
CONTACT_KEYS = {"orgId", "name", "receivers"}
RECEIVER_KEYS = {"uid", "type", "settings", "disableResolveMessage"}
POLICY_KEYS = {"orgId", "receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "routes", "object_matchers", "continue", "mute_time_intervals"}


def alerting_schema_errors(doc: dict) -> list[str]:
    """Check an alerting provisioning document: each rule against the SDK's ``alerting.Rule`` model
    (decode + encode gives back the same JSON, every query model decodes into a typed InfluxQL or
    expression model, enum fields hold allowed values), the file's envelope keys against Grafana's
    documented ones, and the references between them (condition refId, receivers, unique uids)."""
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.runtime import UnknownDataquery

    plugins.register_default_plugins()
    P.register_influxdb_variant()
    errors = [f"unknown top-level key {k!r}" for k in sorted(set(doc) - FILE_KEYS)]
    if doc.get("apiVersion") != 1:
        errors.append("apiVersion must be 1")
    uids = []
    for gi, g in enumerate(doc.get("groups", [])):
        where = f"groups[{gi}]"
        errors += [f"{where}: unknown key {k!r}" for k in sorted(set(g) - GROUP_KEYS)]
        if not re.fullmatch(r"\d+[smh]", str(g.get("interval", ""))):
            errors.append(f"{where}.interval: {g.get('interval')!r} is not a duration")
        for ri, r in enumerate(g.get("rules", [])):
            rw = f"{where}.rules[{ri}] ({r.get('uid')})"
            api = {**r, "folderUID": FOLDER_UID, "ruleGroup": g["name"], "orgID": g["orgId"]}
            model = alerting.Rule.from_json(api)
            again = json.loads(json.dumps(model, cls=JSONEncoder))
            if again != api:
                errors.append(f"{rw}: does not round-trip through the SDK's alerting.Rule: {sorted(set(api) ^ set(again))} {api == again}")
            if model.no_data_state not in ("Alerting", "NoData", "OK") or model.exec_err_state not in ("OK", "Alerting", "Error"):
                errors.append(f"{rw}: noDataState/execErrState not allowed")
            refs = [q.ref_id for q in model.data or []]
            if model.condition not in refs:
                errors.append(f"{rw}: condition {model.condition!r} is none of the queries {refs}")
            for q in model.data or []:
                if isinstance(q.model, UnknownDataquery):
                    errors.append(f"{rw}: query {q.ref_id} model decodes into no typed model: {q.model.to_json()}")
                elif isinstance(q.model, P.InfluxQLQuery):
                    if "$timeFilter" not in q.model.query or re.search(r"\$(?!timeFilter|__interval)\w+", q.model.query):
                        errors.append(f"{rw}: query {q.ref_id} must filter on $timeFilter and use no template variable")
                    if q.datasource_uid != P.DEFAULT_DATASOURCE_UID:
                        errors.append(f"{rw}: query {q.ref_id} datasource {q.datasource_uid!r}")
                elif q.datasource_uid != EXPR_UID:
                    errors.append(f"{rw}: expression {q.ref_id} must use datasource {EXPR_UID}")
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", r.get("uid", "")):
                errors.append(f"{rw}: uid must be 1-40 characters [A-Za-z0-9_-]")
            uids.append(r.get("uid"))
    if len(set(uids)) != len(uids):
        errors.append(f"rule uids not unique: {sorted(u for u in uids if uids.count(u) > 1)}")
    names = set()
    for ci, c in enumerate(doc.get("contactPoints", [])):
        errors += [f"contactPoints[{ci}]: unknown key {k!r}" for k in sorted(set(c) - CONTACT_KEYS)]
        names.add(c.get("name"))
        for rc in c.get("receivers", []):
            errors += [f"contactPoints[{ci}].receivers: unknown key {k!r}" for k in sorted(set(rc) - RECEIVER_KEYS)]
            cp = alerting.ContactPoint.from_json({"name": c["name"], "type": rc["type"], "settings": rc["settings"], "uid": rc["uid"]})
            if cp.type_val not in typing_args(alerting.ContactPoint, "type_val"):
                errors.append(f"contactPoints[{ci}]: type {rc['type']!r} unknown")
    for pi, p in enumerate(doc.get("policies", [])):
        errors += [f"policies[{pi}]: unknown key {k!r}" for k in sorted(set(p) - POLICY_KEYS)]
        for route in [p] + list(p.get("routes", [])):
            if route.get("receiver") not in names:
                errors.append(f"policies[{pi}]: receiver {route.get('receiver')!r} is no contact point")
            errors += [f"policies[{pi}]: route key {k!r} unknown" for k in sorted(set(route) - POLICY_KEYS)]
    return errors


def typing_args(cls, attr: str) -> set:
    import typing

    hint = typing.get_type_hints(cls.__init__)[attr]
    out = set()
    for a in typing.get_args(hint):
        out |= set(typing.get_args(a)) if typing.get_origin(a) is typing.Literal else set()
    return out
