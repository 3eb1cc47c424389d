"""gaussmix: Gaussian mixture models, a drop-in for scikit-learn's GaussianMixture.

The public names load on first use (PEP 562): ``import gaussmix`` and the
``gaussmix`` command's ``--help`` do not import scikit-learn, which alone
takes about a second; ``from gaussmix import GaussianMixture`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the submodule that defines it.
_EXPORTS = {
    "BootstrapLRTResult": ".bootstrap",
    "bootstrap_lrt": ".bootstrap",
    "GaussianMixture": ".estimator",
    "ConvergenceWarning": ".exceptions",
    "EmptyComponentWarning": ".exceptions",
    "from_sklearn": ".io",
    "load": ".io",
    "save": ".io",
    "to_sklearn": ".io",
    "SelectionResult": ".selection",
    "select_model": ".selection",
    "get_num_threads": "._parallel",
    "set_num_threads": "._parallel",
}

__all__ = [
    "BootstrapLRTResult",
    "bootstrap_lrt",
    "GaussianMixture",
    "ConvergenceWarning",
    "EmptyComponentWarning",
    "from_sklearn",
    "load",
    "save",
    "SelectionResult",
    "get_num_threads",
    "select_model",
    "set_num_threads",
    "to_sklearn",
    "__version__",
]

if TYPE_CHECKING:  # what type checkers and IDEs see
    from ._parallel import get_num_threads, set_num_threads
    from .bootstrap import BootstrapLRTResult, bootstrap_lrt
    from .estimator import GaussianMixture
    from .exceptions import ConvergenceWarning, EmptyComponentWarning
    from .io import from_sklearn, load, save, to_sklearn
    from .selection import SelectionResult, select_model


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
