"""What the generators need from the config: the ``dashboards`` section and the analytics projects.

:class:`BuildSettings` joins the two (a target of a city lists the projects of that city, a plant
dashboard's time zone is the zone of its projects, a project's ex-ante daily rate comes from its
monitoring period) and checks that they agree, naming the key at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from plantmrv.config import ConfigError, ConfigIssue

from .config import DashboardsConfig, TargetConfig

NS_PER_DAY = 86400 * 1_000_000_000


@dataclass(frozen=True)
class BuildSettings:
    dashboards: DashboardsConfig = field(default_factory=DashboardsConfig)
    projects: tuple = ()  # analytics ProjectConfig objects
    source: str = "<defaults>"

    @classmethod
    def default(cls) -> "BuildSettings":
        return cls()

    @classmethod
    def from_config(cls, cfg, source: str = "<config>") -> "BuildSettings":
        dash = getattr(cfg, "dashboards", None) or DashboardsConfig()
        analytics = getattr(cfg, "analytics", None)
        out = cls(dash, tuple(analytics.projects) if analytics else (), source)
        out.validate()
        return out

    @classmethod
    def load(cls, path: str | Path) -> "BuildSettings":
        from plantmrv.config import load_config

        return cls.from_config(load_config(path), str(path))

    # ------------------------------------------------------------------ checks
    def _issue(self, path: str, message: str) -> ConfigIssue:
        return ConfigIssue(self.source, path, None, message)

    def validate(self) -> None:
        issues = []
        for i, t in enumerate(self.dashboards.targets):
            try:
                self.target_projects(t)
            except ValueError as exc:
                issues.append(self._issue(f"dashboards.targets[{i}]", str(exc)))
        for key in ("ubcf", "pump", "vsd", "wte", "pv"):
            try:
                self.timezone(key)
            except ValueError as exc:
                issues.append(self._issue(f"dashboards.timezones.{key}", str(exc)))
        if issues:
            raise ConfigError(issues)

    # ------------------------------------------------------------------ derived
    def projects_of(self, plant_type: str) -> list:
        return [p for p in self.projects if p.plant_type == plant_type]

    def timezone(self, plant_type: str) -> str:
        """The plant dashboard's zone: configured, else its projects' common zone, else ``utc``."""
        if plant_type in self.dashboards.timezones:
            return self.dashboards.timezones[plant_type]
        zones = sorted({p.timezone for p in self.projects_of(plant_type)})
        if len(zones) > 1:
            raise ValueError(f"the {plant_type} projects are in several time zones ({', '.join(zones)}): set the dashboard's zone here")
        return zones[0] if zones else "utc"

    def target_projects(self, t: TargetConfig) -> list[str]:
        known = {p.id: p for p in self.projects}
        if t.scope == "programme":
            unknown = [i for i in t.projects or [] if i not in known]
            if unknown:
                raise ValueError(f"projects {', '.join(unknown)} are not analytics projects (known: {', '.join(sorted(known)) or 'none'})")
            kpi = [i for i in t.projects or [] if known[i].plant_type == "ubcf"]
            if kpi:
                raise ValueError(f"projects {', '.join(kpi)} are U-BCF KPI projects, which no methodology credits: they count toward no target")
            return sorted(t.projects or [])
        attr = "city" if t.scope == "city" else "country"
        # U-BCF results are KPIs no methodology credits: they count toward no target
        ids = sorted(p.id for p in self.projects if getattr(p, attr) == t.name and p.plant_type != "ubcf")
        if not ids:
            have = sorted({getattr(p, attr) for p in self.projects if getattr(p, attr)})
            raise ValueError(f"no analytics project has {attr} {t.name!r} (known: {', '.join(have) or 'none'})")
        return ids

    @staticmethod
    def target_id(t: TargetConfig) -> str:
        """The ``target`` tag of ``mrv_target`` (scope, name and fiscal year)."""
        return f"{t.scope}/{t.name}/FY{t.fiscal_year}".replace("'", "")

    def japan_share_groups(self, ids) -> list[tuple[float, list[str]]]:
        """Projects grouped by their Japan share (projects without one are left out)."""
        groups: dict[float, list[str]] = {}
        for p in self.projects:
            if p.id in ids and p.japan_share is not None and p.plant_type != "ubcf":
                groups.setdefault(float(p.japan_share), []).append(p.id)
        return sorted((k, sorted(v)) for k, v in groups.items())

    @staticmethod
    def ex_ante_daily_t_co2(project) -> float | None:
        """Ex-ante reductions per day: the monitoring period's estimate spread evenly [tCO2/d]."""
        if project.ex_ante_t_co2 is None:
            return None
        mp = project.monitoring_period
        return project.ex_ante_t_co2 / ((mp.end_ns - mp.start_ns) / NS_PER_DAY)
