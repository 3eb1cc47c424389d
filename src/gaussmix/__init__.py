"""gaussmix: Gaussian mixture models, a drop-in for scikit-learn's GaussianMixture."""

from ._parallel import get_num_threads, set_num_threads
from .bootstrap import BootstrapLRTResult, bootstrap_lrt
from .estimator import GaussianMixture
from .exceptions import ConvergenceWarning, EmptyComponentWarning
from .io import from_sklearn, load, save, to_sklearn
from .selection import SelectionResult, select_model

__version__ = "0.1.0"

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
