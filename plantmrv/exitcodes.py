"""Exit codes of every plantmrv command (the table in docs/operations.md).

Following BSD ``sysexits.h`` where a code exists for the case, as mosquitto and systemd expect:
a unit's ``RestartPreventExitStatus=69 78`` stops a restart loop on errors a restart cannot fix.
"""

from __future__ import annotations

from typing import Iterable, NoReturn

import typer

OK = 0
RUNTIME = 1  # a failure while running: a server unreachable past retries, a refused write, ...
USAGE = 2  # a wrong command line (unknown option, bad value); click's own code
UNAVAILABLE = 69  # EX_UNAVAILABLE: the command needs an extra that is not installed
CONFIG = 78  # EX_CONFIG: the config file is missing, unreadable or invalid


def config_error(issues: Iterable[object]) -> NoReturn:
    """Print each config problem (``file: key.path (line N): message``) and exit :data:`CONFIG`."""
    for issue in issues:
        typer.echo(str(issue), err=True)
    raise typer.Exit(CONFIG)
