"""``python -m plantmrv``: the ``plantmrv`` command (:mod:`plantmrv.app.cli`), for where the script is not on PATH."""

from plantmrv.app.cli import main

if __name__ == "__main__":
    main()
