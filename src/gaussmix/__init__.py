"""gaussmix: Gaussian mixture models, a drop-in for scikit-learn's GaussianMixture."""

from .estimator import GaussianMixture
from .exceptions import ConvergenceWarning, EmptyComponentWarning

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "ConvergenceWarning", "EmptyComponentWarning", "__version__"]
