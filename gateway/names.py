"""``check-config`` for a gateway's names: sources with ``schema: data_model`` use only the
measurements and fields of docs/data-model.md (:mod:`plantmrv.datamodel`), each refusal located
at its key path (``gateway.sources[0].groups[1].nodes[3].field``)."""

from __future__ import annotations

from plantmrv.config import ConfigError, ConfigIssue, format_path
from plantmrv.datamodel import name_problem


def check_names(root, filename: str) -> None:
    """Raise ConfigError listing every name a ``schema: data_model`` source uses that the data model lacks."""
    issues = []
    for si, src in enumerate(root.gateway.sources if root.gateway else []):
        if getattr(src, "schema_", "none") != "data_model" or not hasattr(src, "series_names"):
            continue
        seen = set()
        for where_m, where_f, measurement, field in src.series_names():
            problem = name_problem(measurement, field)
            if problem is None:
                continue
            what, text = problem
            path = ("gateway", "sources", si) + (where_m if what == "measurement" else where_f)
            if (path, text) in seen:
                continue
            seen.add((path, text))
            issues.append(ConfigIssue(filename, format_path(path), None, text + "; or set this source's schema: none"))
    if issues:
        raise ConfigError(issues)
