"""Loading of the compiled-kernel modules (numba), on first use."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType


@functools.lru_cache(maxsize=None)
def compiled_module(name: str) -> ModuleType | None:
    """The module ``gaussmix.<name>`` of compiled kernels, or None where it does not load.

    Importing it imports numba and loads (or compiles and caches) its
    kernels: about 0.4 s the first time in a process, which callers weigh
    against the work the kernels save.  numba raises ``RuntimeError``
    where it finds no writable cache folder; the kernels then stay unused.
    """
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except (ImportError, RuntimeError, OSError):
        return None
