"""Optional extras: which modules each one brings, and the message when one is missing.

``pip install plantmrv`` is the edge gateway; ``plantmrv[server]`` adds the verifier API,
``plantmrv[dashboards]`` the Grafana tooling, ``plantmrv[demo]`` everything the demo needs.
A command whose extra is absent says so in one line and exits 69 (EX_UNAVAILABLE).
"""

from __future__ import annotations

import importlib.util

# extra -> top-level modules it installs (only those plantmrv imports)
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": ("fastapi", "uvicorn", "openpyxl", "babel"),
    "dashboards": ("grafana_foundation_sdk", "grafana_client", "babel"),
    "demo": ("fastapi", "uvicorn", "openpyxl", "babel", "grafana_foundation_sdk", "grafana_client", "matplotlib"),
}
# the dependencies of those modules, for a ModuleNotFoundError raised inside them
_ALSO = {"starlette": "server"}


def missing(extra: str) -> list[str]:
    """Modules of ``extra`` that cannot be imported here."""
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def extra_of(module_name: str | None) -> str | None:
    """The extra that installs ``module_name`` (a dotted name; its top level decides), if any."""
    top = (module_name or "").split(".")[0]
    if top in _ALSO:
        return _ALSO[top]
    for extra in ("server", "dashboards", "demo"):  # the smallest extra that has it
        if top in EXTRAS[extra]:
            return extra
    return None


def message(command: str, extra: str) -> str:
    return f"plantmrv {command}: needs the '{extra}' extra, which is not installed: pip install 'plantmrv[{extra}]'"
