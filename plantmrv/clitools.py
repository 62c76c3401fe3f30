"""What every service's command line shares: load the config file or exit 78 (EX_CONFIG).

The services' ``cli.py`` import from here (and :mod:`plantmrv.exitcodes`, :mod:`plantmrv.logs`),
never from the ``plantmrv`` command that mounts them (:mod:`plantmrv.app.cli`).
"""

from __future__ import annotations

from pathlib import Path

from plantmrv import exitcodes
from plantmrv.config import ConfigError, load_config


def load_or_exit(file: Path):
    """Load a config for a service command; print located errors and exit 78 (EX_CONFIG) on failure."""
    try:
        return load_config(file)
    except ConfigError as exc:
        exitcodes.config_error(exc.issues)
