"""The plan side of the portfolio: ex-ante estimates and targets as InfluxDB points.

Grafana's InfluxQL panels and alert rules can only compare what is in InfluxDB, so the ex-ante
estimate of every project (``analytics.projects[].ex_ante_t_co2`` for its monitoring period) and
every target of ``dashboards.targets`` are written as points by ``plantmrv dashboards plan``
(idempotent: the same config writes the same points, replacing earlier ones):

- ``mrv_plan``: tags ``project``; field ``ex_ante_t_co2``, the estimate spread evenly over the
  monitoring period, one point per local day of the project's time zone (stamped at local
  midnight; the first and last days pro rata);
- ``mrv_target``: tags ``target`` (``<scope>/<name>/FY<year>``), ``scope``; fields
  ``target_t_co2``, ``fiscal_year``; one point at the start of the fiscal year (local midnight of
  the portfolio's zone, first day of ``fiscal_year_start_month``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from plantmrv.lineprotocol import event_line

from .settings import BuildSettings

NS = 1_000_000_000


def _zone(name: str):
    return timezone.utc if name == "utc" else ZoneInfo(name)


def _local_midnights_ns(start_ns: int, end_ns: int, zone) -> list[int]:
    """Local midnights in ``[start, end)``, preceded by ``start`` itself when it is not one."""
    t = datetime.fromtimestamp(start_ns / NS, zone)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    out = [start_ns]
    while True:
        day = (day + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe next local midnight
        ns = int(day.timestamp()) * NS
        if ns >= end_ns:
            return out
        out.append(ns)


def plan_lines(settings: BuildSettings) -> list[str]:
    """Line protocol of ``mrv_plan`` and ``mrv_target`` for the settings' projects and targets."""
    lines = []
    for p in settings.projects:
        rate = settings.ex_ante_daily_t_co2(p)
        if rate is None:
            continue
        mp = p.monitoring_period
        starts = _local_midnights_ns(mp.start_ns, mp.end_ns, _zone(p.timezone))
        for a, b in zip(starts, starts[1:] + [mp.end_ns]):
            lines.append(event_line("mrv_plan", {"project": p.id}, {"ex_ante_t_co2": rate * (b - a) / (86400 * NS)}, a))
    zone = _zone(settings.dashboards.portfolio_timezone)
    month = settings.dashboards.fiscal_year_start_month
    for t in settings.dashboards.targets:
        fy_start = int(datetime(t.fiscal_year, month, 1, tzinfo=zone).timestamp()) * NS
        lines.append(event_line("mrv_target", {"target": settings.target_id(t), "scope": t.scope},
                                {"target_t_co2": float(t.t_co2), "fiscal_year": int(t.fiscal_year)}, fy_start))
    return lines
