"""glibc allocator settings for plantmrv's long-running services; a no-op outside glibc.

Each service sets what suits its memory pattern (see ``plantmrv.gateway.cli.tune_malloc`` and
``plantmrv.ingest.cli.tune_malloc``), always yielding to an operator's own choice: a parameter
that the environment sets (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``, ... or
``GLIBC_TUNABLES``) is left alone. Call before any thread starts.
"""

from __future__ import annotations

import os
import platform

# mallopt parameters (malloc.h): the environment variable and the tunable that set each one
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
_PARAMETERS = {
    M_TRIM_THRESHOLD: ("malloc_trim_threshold", "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
    M_MMAP_THRESHOLD: ("malloc_mmap_threshold", "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"),
    M_ARENA_MAX: ("malloc_arena_max", "MALLOC_ARENA_MAX", "glibc.malloc.arena_max"),
}


def set_unless_configured(settings: dict[int, int]) -> dict[str, int]:
    """``mallopt`` each ``{parameter: value}`` the environment does not set; return what was set, by name."""
    if platform.libc_ver()[0] != "glibc":
        return {}
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return {}
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    done = {}
    for parameter, value in settings.items():
        name, env_var, tunable = _PARAMETERS[parameter]
        if env_var in os.environ or tunable in tunables:
            continue
        if mallopt(parameter, value) == 1:
            done[name] = value
    return done
