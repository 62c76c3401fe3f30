"""The root config schema: the shared sections of :mod:`plantmrv.config` and every service's own.

Importing this module registers each service's section (``SECTION`` in its ``config.py``), in
the order docs/configuration.md lists them; from then on :func:`load_config` and
:func:`root_model` (re-exported here) cover a whole plantmrv file. The ``plantmrv`` command
imports it before any command runs (:mod:`plantmrv.app.cli`); so does ``tests/conftest.py``.
"""

from __future__ import annotations

from plantmrv.analytics.config import SECTION as ANALYTICS
from plantmrv.api.config import SECTION as API
from plantmrv.config import load_config, register_section, root_model
from plantmrv.dashboards.config import SECTION as DASHBOARDS
from plantmrv.gateway.config import SECTION as GATEWAY
from plantmrv.ingest.config import SECTION as INGEST

SECTIONS = (GATEWAY, INGEST, ANALYTICS, API, DASHBOARDS)

for _section in SECTIONS:
    register_section(_section)

__all__ = ["SECTIONS", "load_config", "root_model"]
