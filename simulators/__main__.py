"""``python -m plantmrv.simulators``: same as ``plantmrv simulate``."""

from .cli import main

main()
