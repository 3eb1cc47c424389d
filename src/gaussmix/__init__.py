"""gaussmix: Gaussian mixture models, a drop-in for scikit-learn's GaussianMixture."""

from ._parallel import get_num_threads, set_num_threads
from .estimator import GaussianMixture
from .exceptions import ConvergenceWarning, EmptyComponentWarning

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture",
    "ConvergenceWarning",
    "EmptyComponentWarning",
    "get_num_threads",
    "set_num_threads",
    "__version__",
]
