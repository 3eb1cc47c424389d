"""Covariance models: the interface every parameterization implements, and the registry.

Each model owns everything that depends on the shape of its covariance
parameters: the chunk kernels of the E-step (weighted log-densities and the
statistics the M-step needs), the M-step itself, the Cholesky factor of the
precision, the log-determinant, validation of user-supplied precisions,
parameter counts and sampling.  Adding a parameterization is one class and
one ``register`` line.

scikit-learn's four models are in :mod:`gaussmix.sklearn_models` (full,
tied) and :mod:`gaussmix.sklearn_diagonal_models` (diag, spherical), mclust's
constrained ones in :mod:`gaussmix.mclust_models`; all register here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

__all__ = [
    "CovarianceModel",
    "register_covariance_model",
    "get_covariance_model",
    "covariance_model_names",
    "kernel_family",
]

ILL_DEFINED_COVARIANCE_CAUSE = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples)."
)
# scikit-learn's message, word for word.
ILL_DEFINED_COVARIANCE_MESSAGE = (
    ILL_DEFINED_COVARIANCE_CAUSE + " Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)


# Why a constrained M-step (mclust's models that divide by volumes or
# determinants) can fail where reg_covar, added after it, cannot help.
CONSTRAINED_MAXIMUM_MESSAGE = (
    " The {name} model's M-step has no maximum on these data: some component's"
    " scatter is singular (a constant feature, duplicate rows, or fewer"
    " distinct points than features), and reg_covar, added after that step,"
    " cannot repair it. Remove constant features or duplicate rows, decrease"
    " the number of components, or choose a model whose covariances reg_covar"
    " regularises directly ('full', 'tied', 'diag', 'spherical', 'EEV', 'EEI'"
    " or 'EII')."
)


class IllDefinedCovarianceError(ValueError):
    """A covariance is not positive-definite (scikit-learn raises ValueError).

    ``model_name`` is set for a constrained model whose M-step found no
    maximum, so that the error can be rebuilt for the data's dtype.
    """

    def __init__(self, message: str, model_name: str | None = None) -> None:
        super().__init__(message)
        self.model_name = model_name


def ill_defined_covariance_error(
    dtype: np.dtype, model_name: str | None = None
) -> IllDefinedCovarianceError:
    """Build the error raised when a covariance is not positive-definite.

    ``model_name`` names a constrained model whose M-step found no maximum;
    the message then says why reg_covar cannot help.
    """
    message = ILL_DEFINED_COVARIANCE_MESSAGE
    if model_name is not None:
        # Without scikit-learn's advice: reg_covar is what cannot help here.
        message = ILL_DEFINED_COVARIANCE_CAUSE + CONSTRAINED_MAXIMUM_MESSAGE.format(
            name=model_name
        )
    if np.dtype(dtype) == np.float32:
        message += (
            " The numerical accuracy can also be improved by passing float64"
            " data instead of float32."
        )
    return IllDefinedCovarianceError(message, model_name)


class CovarianceModel(ABC):
    """A covariance parameterization of a Gaussian mixture.

    Subclasses are stateless; every method is a pure function of its
    arguments.  ``name`` is the string accepted by ``covariance_type``.
    """

    name: str = ""

    # ------------------------------------------------------------------ shapes
    @abstractmethod
    def parameter_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of ``covariances_``, ``precisions_`` and their Cholesky factors."""

    @abstractmethod
    def n_covariance_parameters(self, n_components: int, n_features: int) -> int:
        """Number of free parameters in the covariances."""

    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Free parameters of the whole mixture: weights, means, covariances."""
        mean_params = n_features * n_components
        return int(
            self.n_covariance_parameters(n_components, n_features)
            + mean_params
            + n_components
            - 1
        )

    # ---------------------------------------------------------- chunk kernels
    # Bytes of the widest per-chunk temporary; None: the engine's default
    # (1 MiB, cache-sized).  Models whose kernels make many short numpy calls
    # per row take larger chunks: every call holds the interpreter lock for
    # a few microseconds, and two threads then wait on each other.
    chunk_bytes: int | None = None

    def chunk_width(self, n_components: int, n_features: int) -> int:
        """Columns of the widest per-row temporary of the chunk kernels.

        Sets the rows per chunk so that a chunk's working set stays in cache.
        """
        return 2 * n_features + 2 * n_components

    @abstractmethod
    def prepare(self, params, centre: np.ndarray, dtype, compiled: bool = False) -> dict:
        """Per-iteration constants for the chunk kernels (no data involved).

        ``compiled`` says that the pass is large enough for the model's
        compiled kernels (:data:`gaussmix.em.COMPILED_KERNELS_WORK`),
        where it has any; they load on first use, and the kernels fall back
        to numpy where they do not.

        Always holds ``"shift"``, the centres of the statistics (float64,
        shape (n_components, n_features)), ``"offsets"``, the shifts minus the
        centre, and ``"const"``, ``log w_k + log det U_k - D/2 log(2 pi)``.
        """

    @abstractmethod
    def log_prob_chunk(self, Xc: np.ndarray, prep: dict) -> tuple[np.ndarray, object]:
        """Weighted log-densities of one centred chunk; no argument checking.

        Parameters
        ----------
        Xc : ndarray of shape (n_samples, n_features)
            The chunk minus the centre.
        prep : dict
            From :meth:`prepare`.

        Returns
        -------
        weighted_log_prob : ndarray of shape (n_components, n_samples)
            ``log w_k + log N(x | mu_k, Sigma_k)``, a fresh array.  Component-
            major, so that reductions over components run along long rows.
        aux : object
            Intermediate results that :meth:`chunk_stats` can reuse.
        """

    @abstractmethod
    def chunk_stats(
        self, Xc: np.ndarray, resp: np.ndarray, offsets: np.ndarray, aux=None
    ) -> tuple[np.ndarray, np.ndarray]:
        """First and second-order statistics of one centred chunk.

        Parameters
        ----------
        Xc : ndarray of shape (n_samples, n_features)
            The chunk minus the centre.
        resp : ndarray of shape (n_components, n_samples)
            Responsibilities multiplied by the sample weights.
        offsets : ndarray of shape (n_components, n_features)
            Shifts minus the centre.
        aux : object, optional
            What :meth:`log_prob_chunk` returned for this chunk.

        Returns
        -------
        shift_sum : ndarray of shape (n_components, n_features)
            ``sum_i r_ik (x_i - shift_k)``.
        scatter : ndarray
            The model's second-order statistic around the shifts.
        """

    @abstractmethod
    def estimate_covariances(
        self,
        scatter: np.ndarray,
        sum_resp: np.ndarray,
        shift_sum: np.ndarray,
        nk: np.ndarray,
        reg_covar: float,
    ) -> np.ndarray:
        """M-step: covariances from statistics accumulated around the shift.

        Parameters
        ----------
        scatter : ndarray
            Sum over chunks of :meth:`scatter`.
        sum_resp : ndarray of shape (n_components,)
            Sum of (weighted) responsibilities per component.
        shift_sum : ndarray of shape (n_components, n_features)
            ``sum_i r_ik (x_i - shift_k)``.
        nk : ndarray of shape (n_components,)
            ``sum_resp`` plus a tiny positive floor, the divisor of the means.
        reg_covar : float
            Added to the diagonal of every covariance.
        """

    def estimate_covariances_from(
        self, scatter: np.ndarray, sum_resp: np.ndarray, shift_sum: np.ndarray, nk: np.ndarray,
        reg_covar: float, previous: np.ndarray,
    ) -> np.ndarray:
        """:meth:`estimate_covariances`, given the E-step's covariances ``previous``.

        Models whose M-step searches (EVE's and VVE's shared orientation)
        start a search there too, so that the step cannot lower the
        likelihood; the others ignore ``previous``.
        """
        return self.estimate_covariances(scatter, sum_resp, shift_sum, nk, reg_covar)

    def whitened_sq_norms(self, precisions_chol: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """``offsets[k]``'s squared Mahalanobis norm under component ``k``: shape (K,).

        What sets the precision lost by second moments accumulated that far
        from a component's mean (see :func:`gaussmix.em.maximization_with_refinement`).
        """
        raise NotImplementedError(
            f"The covariance model {self.name!r} cannot whiten offsets."
        )

    def scatter_of_covariances(
        self, covariances: np.ndarray, nk: np.ndarray, reg_covar: float, n_features: int
    ) -> np.ndarray:
        """The scatter, around the means, from which the M-step gives ``covariances``.

        The inverse of :meth:`estimate_covariances` on statistics with
        ``sum_resp = nk`` and ``shift_sum = 0``: what lets a fitted model
        stand for the statistics it was fitted on (``partial_fit`` after
        ``fit``).  Constrained models inherit their kernel family's: their
        M-step returns covariances that already satisfy the constraint.
        """
        raise NotImplementedError(
            f"The covariance model {self.name!r} cannot give the statistics of its "
            "covariances."
        )

    def moved_scatter(
        self,
        scatter: np.ndarray,
        sum_resp: np.ndarray,
        shift_sum: np.ndarray,
        step: np.ndarray,
    ) -> np.ndarray:
        """The scatter re-expressed around ``shift + step``.

        ``sum r (x - b)(x - b)^T = S - s d^T - d s^T + R d d^T`` with
        ``b = shift + d``, reduced to the model's statistic: what merging
        statistics of passes with different shifts needs (online EM).

        Parameters
        ----------
        scatter : ndarray
            The model's second-order statistic around the old shift.
        sum_resp : ndarray of shape (n_components,)
        shift_sum : ndarray of shape (n_components, n_features)
            ``sum_i r_ik (x_i - shift_k)`` around the old shift.
        step : ndarray of shape (n_components, n_features)
            New shift minus old shift.
        """
        raise NotImplementedError(
            f"The covariance model {self.name!r} cannot move its statistics to a new "
            "shift, which partial_fit needs."
        )

    # ------------------------------------------------------ precision factors
    @abstractmethod
    def precision_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        """Cholesky factor of the precision; ValueError if not positive-definite."""

    @abstractmethod
    def precision_cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Cholesky factor from user-supplied precisions."""

    @abstractmethod
    def precisions_from_cholesky(self, precisions_chol: np.ndarray) -> np.ndarray:
        """Precisions ``U @ U.T`` from their Cholesky factors."""

    @abstractmethod
    def covariances_from_precisions_cholesky(
        self, precisions_chol: np.ndarray
    ) -> np.ndarray:
        """Covariances, the inverses of ``U @ U.T``."""

    @abstractmethod
    def log_det_cholesky(
        self, precisions_chol: np.ndarray, n_components: int, n_features: int
    ) -> np.ndarray:
        """Log-determinant of each precision Cholesky factor, shape (n_components,)."""

    # ------------------------------------------------------------ validation
    @abstractmethod
    def check_precisions(self, precisions: np.ndarray) -> None:
        """Raise ValueError unless user-supplied precisions are valid."""

    # -------------------------------------------------------------- sampling
    @abstractmethod
    def sample(
        self,
        rng: np.random.RandomState,
        means: np.ndarray,
        covariances: np.ndarray,
        counts: np.ndarray,
    ) -> np.ndarray:
        """Draw ``counts[k]`` points from component ``k``, stacked in order."""

    @abstractmethod
    def pooled(self, covariances: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
        """Covariances with component ``k`` replaced by the others' weighted mean."""


_REGISTRY: dict[str, CovarianceModel] = {}
_BUILTINS_LOADED = False


def _registry() -> dict[str, CovarianceModel]:
    """The registry, with the built-in models registered on first use.

    Loaded here, not when this module is imported: the model modules import
    this one, so that importing one of them first (unpickling a model in a
    fresh process, a new Dask worker) would meet this module half-initialised.
    """
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True  # first: the models register through this registry
        from .sklearn_diagonal_models import DiagCovariance, SphericalCovariance
        from .sklearn_models import FullCovariance, TiedCovariance

        for model in (FullCovariance(), TiedCovariance(), DiagCovariance(), SphericalCovariance()):
            _REGISTRY[model.name] = model
        import importlib

        importlib.import_module(".mclust_models", __package__)  # registers the mclust models
    return _REGISTRY


def register_covariance_model(model: CovarianceModel) -> None:
    """Add a covariance model to the registry under ``model.name``.

    Raises
    ------
    ValueError
        If a model of that name is already registered.
    """
    registry = _registry()
    if model.name in registry:
        raise ValueError(f"Covariance model {model.name!r} is already registered.")
    registry[model.name] = model


def get_covariance_model(name: str) -> CovarianceModel:
    """Look up a covariance model by its ``covariance_type`` name."""
    registry = _registry()
    try:
        return registry[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(n) for n in registry)
        raise ValueError(
            f"Unknown covariance_type {name!r}; valid options are {valid}."
        ) from None


def kernel_family(model: CovarianceModel) -> CovarianceModel:
    """The registered scikit-learn model whose kernels ``model`` uses.

    mclust's constrained models reuse the chunk kernels of 'full', 'diag' or
    'spherical' and differ only in their M-step; this returns that base model
    (``model`` itself for the four scikit-learn models).
    """
    for name in ("tied", "spherical", "diag", "full"):
        base = _registry()[name]
        if isinstance(model, type(base)):
            return base
    return model


def covariance_model_names() -> tuple[str, ...]:
    """Names of all registered covariance models."""
    return tuple(_registry())


def register_covariance_alias(alias: str, name: str) -> None:
    """Make ``alias`` a second name of the registered model ``name`` (the same object).

    Raises
    ------
    ValueError
        If ``alias`` is taken or ``name`` is not registered.
    """
    if alias in _registry():
        raise ValueError(f"Covariance model {alias!r} is already registered.")
    _REGISTRY[alias] = get_covariance_model(name)


# scikit-learn's four model classes, once defined here, are still found here.
_MODEL_CLASSES = {
    "FullCovariance": "sklearn_models",
    "TiedCovariance": "sklearn_models",
    "DiagCovariance": "sklearn_diagonal_models",
    "SphericalCovariance": "sklearn_diagonal_models",
}


def __getattr__(name: str):
    if name in _MODEL_CLASSES:
        import importlib

        return getattr(importlib.import_module(f".{_MODEL_CLASSES[name]}", __package__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
