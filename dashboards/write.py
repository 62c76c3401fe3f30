"""Write the generated files: every dashboard's JSON, ``PANELS.md`` and the alert rules (:func:`write_all`)."""

from __future__ import annotations

from pathlib import Path

from .alerts import render_alerting
from .build import build_all, inventory, render
from .settings import BuildSettings


def _write_files(out_dir: Path, files: dict[str, str]) -> list[tuple[Path, str]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name, text in files.items():
        path = out_dir / name
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            results.append((path, "unchanged"))
            continue
        path.write_text(text, encoding="utf-8")
        results.append((path, "created" if old is None else "updated"))
    return results


def write_all(out_dir: Path, settings: BuildSettings | None = None, lang: str = "en", alerting_dir: Path | None = None) -> list[tuple[Path, str]]:
    """Write ``<out_dir>/<uid>.json`` and ``<out_dir>/PANELS.md`` and, when ``alerting_dir`` is
    given, the alert rules, contact points and notification policy (``plantmrv-alerting.yaml``,
    Grafana's alerting file provisioning) into it; return (path, action) per file.

    Actions: created, updated, unchanged; stale ``plantmrv-*.json`` files no generator produces any
    more are removed (action ``removed``).
    """
    out_dir = Path(out_dir)
    dashboards = build_all(settings, lang)
    files = {f"{uid}.json": render(d) for uid, d in dashboards.items()}
    files["PANELS.md"] = inventory(dashboards)
    results = _write_files(out_dir, files)
    for stale in sorted(out_dir.glob("plantmrv-*.json")):
        if stale.name not in files:
            stale.unlink()
            results.append((stale, "removed"))
    if alerting_dir is not None:
        results += _write_files(Path(alerting_dir), {"plantmrv-alerting.yaml": render_alerting(settings, lang)})
    return results
