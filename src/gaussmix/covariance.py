"""Covariance models: one small class per parameterization, behind a registry.

Each model owns everything that depends on the shape of its covariance
parameters: the per-chunk scatter statistic it needs, its M-step, the
Cholesky factor of the precision, the log-determinant, the Mahalanobis
distances, validation of user-supplied precisions, parameter counts and
sampling.  Adding a parameterization is one class and one ``register`` line.

Shapes (``K`` components, ``D`` features)::

    model      covariances / precisions    scatter statistic
    full       (K, D, D)                   (K, D, D)
    tied       (D, D)                      (D, D)
    diag       (K, D)                      (K, D)
    spherical  (K,)                        (K,)

Precision Cholesky factors follow scikit-learn: an upper-triangular ``U``
with ``precision = U @ U.T``, so that ``||(x - mu) @ U||^2`` is the
Mahalanobis distance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from scipy import linalg

__all__ = [
    "CovarianceModel",
    "FullCovariance",
    "TiedCovariance",
    "DiagCovariance",
    "SphericalCovariance",
    "register_covariance_model",
    "get_covariance_model",
    "covariance_model_names",
]

ILL_DEFINED_COVARIANCE_MESSAGE = (
    "Fitting the mixture model failed because some components have "
    "ill-defined empirical covariance (for instance caused by singleton "
    "or collapsed samples). Try to decrease the number of components, "
    "increase reg_covar, or scale the input data."
)


def ill_defined_covariance_error(dtype: np.dtype) -> ValueError:
    """Build the error raised when a covariance is not positive-definite."""
    message = ILL_DEFINED_COVARIANCE_MESSAGE
    if np.dtype(dtype) == np.float32:
        message += (
            " The numerical accuracy can also be improved by passing float64"
            " data instead of float32."
        )
    return ValueError(message)


def _flip(matrix: np.ndarray) -> np.ndarray:
    """Reverse the last two axes (conjugation by the exchange matrix)."""
    return matrix[..., ::-1, ::-1]


def _precision_cholesky_of_matrix(covariance: np.ndarray) -> np.ndarray:
    """Upper factor ``U`` of ``inv(covariance) = U @ U.T``; raises LinAlgError."""
    cov_chol = linalg.cholesky(covariance, lower=True, check_finite=False)
    eye = np.eye(covariance.shape[0], dtype=covariance.dtype)
    return linalg.solve_triangular(cov_chol, eye, lower=True, check_finite=False).T


def _upper_factor_of_precision(precision: np.ndarray) -> np.ndarray:
    """Upper ``U`` with ``precision = U @ U.T`` (Cholesky of the flipped matrix)."""
    return _flip(linalg.cholesky(_flip(precision), lower=True, check_finite=False))


def _check_symmetric_positive_definite(precision: np.ndarray, name: str) -> None:
    if not (
        np.allclose(precision, precision.T)
        and np.all(np.linalg.eigvalsh(precision) > 0.0)
    ):
        raise ValueError(f"'{name} precision' should be symmetric, positive-definite")


def _check_positive(precision: np.ndarray, name: str) -> None:
    if np.any(np.less_equal(precision, 0.0)):
        raise ValueError(f"'{name} precision' should be positive")


def _centred_second_moment(
    scatter: np.ndarray, sum_resp: np.ndarray, shift_sum: np.ndarray, nk: np.ndarray
) -> np.ndarray:
    """Scatter around the new means from scatter around the shift.

    With ``d = shift_sum / nk`` the move of the mean away from the shift,
    ``sum r (x - mu)(x - mu)^T = S - s d^T - d s^T + R d d^T``.  The shift is
    close to the new mean, so the correction is small and nothing cancels.
    """
    delta = shift_sum / nk[:, None]
    outer_sd = shift_sum[:, :, None] * delta[:, None, :]
    return (
        scatter
        - outer_sd
        - np.swapaxes(outer_sd, 1, 2)
        + sum_resp[:, None, None] * delta[:, :, None] * delta[:, None, :]
    )


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

    # ------------------------------------------------------------- statistics
    @abstractmethod
    def scatter(self, diff: np.ndarray, resp: np.ndarray) -> np.ndarray:
        """Per-chunk second-order statistic around the shift.

        Parameters
        ----------
        diff : ndarray of shape (n_components, n_samples, n_features)
            ``x - shift_k`` for every component ``k``.
        resp : ndarray of shape (n_samples, n_components)
            Responsibilities already multiplied by the sample weights.
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

    # ------------------------------------------------------------- densities
    @abstractmethod
    def mahalanobis(self, diff: np.ndarray, precisions_chol: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distances, shape (n_samples, n_components).

        ``diff`` has shape (n_components, n_samples, n_features) and holds
        ``x - mean_k``; no argument checking.
        """

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


class FullCovariance(CovarianceModel):
    """Each component has its own general covariance matrix (mclust's VVV)."""

    name = "full"

    def parameter_shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def scatter(self, diff, resp):
        return np.matmul(np.swapaxes(diff * resp.T[:, :, None], 1, 2), diff)

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        covariances = _centred_second_moment(scatter, sum_resp, shift_sum, nk)
        covariances /= nk[:, None, None]
        # Symmetrise: the two rank-one corrections round differently.
        covariances = 0.5 * (covariances + np.swapaxes(covariances, 1, 2))
        n_features = covariances.shape[-1]
        covariances[:, np.arange(n_features), np.arange(n_features)] += reg_covar
        return covariances

    def precision_cholesky(self, covariances):
        out = np.empty_like(covariances)
        for k, covariance in enumerate(covariances):
            try:
                out[k] = _precision_cholesky_of_matrix(covariance)
            except (linalg.LinAlgError, ValueError):
                raise ill_defined_covariance_error(covariances.dtype) from None
        return out

    def precision_cholesky_from_precisions(self, precisions):
        return np.stack([_upper_factor_of_precision(p) for p in precisions])

    def precisions_from_cholesky(self, precisions_chol):
        return np.matmul(precisions_chol, np.swapaxes(precisions_chol, 1, 2))

    def covariances_from_precisions_cholesky(self, precisions_chol):
        eye = np.eye(precisions_chol.shape[-1], dtype=precisions_chol.dtype)
        inv = np.stack(
            [linalg.solve_triangular(u, eye, lower=False) for u in precisions_chol]
        )
        # inv(U U^T) = U^-T U^-1
        return np.matmul(np.swapaxes(inv, 1, 2), inv)

    def log_det_cholesky(self, precisions_chol, n_components, n_features):
        diagonals = np.diagonal(precisions_chol, axis1=1, axis2=2)
        return np.sum(np.log(diagonals), axis=1)

    def mahalanobis(self, diff, precisions_chol):
        whitened = np.matmul(diff, precisions_chol)
        return np.einsum("knd,knd->nk", whitened, whitened)

    def check_precisions(self, precisions):
        for precision in precisions:
            _check_symmetric_positive_definite(precision, self.name)

    def sample(self, rng, means, covariances, counts):
        return np.vstack(
            [
                rng.multivariate_normal(mean, covariance, int(count))
                for mean, covariance, count in zip(means, covariances, counts)
            ]
        )

    def pooled(self, covariances, weights, k):
        others = np.delete(np.arange(len(weights)), k)
        out = covariances.copy()
        if others.size:
            w = weights[others] / max(weights[others].sum(), np.finfo(float).tiny)
            out[k] = np.tensordot(w, covariances[others], axes=1)
        return out


class TiedCovariance(CovarianceModel):
    """All components share one general covariance matrix (mclust's EEE)."""

    name = "tied"

    def parameter_shape(self, n_components, n_features):
        return (n_features, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def scatter(self, diff, resp):
        return np.einsum("knd,kne->de", diff * resp.T[:, :, None], diff)

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        delta = shift_sum / nk[:, None]
        outer_sd = shift_sum.T @ delta
        covariance = (
            scatter - outer_sd - outer_sd.T + (sum_resp[:, None] * delta).T @ delta
        )
        covariance /= np.sum(nk)
        covariance = 0.5 * (covariance + covariance.T)
        covariance.flat[:: covariance.shape[0] + 1] += reg_covar
        return covariance

    def precision_cholesky(self, covariances):
        try:
            return _precision_cholesky_of_matrix(covariances)
        except (linalg.LinAlgError, ValueError):
            raise ill_defined_covariance_error(covariances.dtype) from None

    def precision_cholesky_from_precisions(self, precisions):
        return _upper_factor_of_precision(precisions)

    def precisions_from_cholesky(self, precisions_chol):
        return precisions_chol @ precisions_chol.T

    def covariances_from_precisions_cholesky(self, precisions_chol):
        eye = np.eye(precisions_chol.shape[-1], dtype=precisions_chol.dtype)
        inv = linalg.solve_triangular(precisions_chol, eye, lower=False)
        return inv.T @ inv

    def log_det_cholesky(self, precisions_chol, n_components, n_features):
        return np.full(n_components, np.sum(np.log(np.diagonal(precisions_chol))))

    def mahalanobis(self, diff, precisions_chol):
        whitened = np.matmul(diff, precisions_chol)
        return np.einsum("knd,knd->nk", whitened, whitened)

    def check_precisions(self, precisions):
        _check_symmetric_positive_definite(precisions, self.name)

    def sample(self, rng, means, covariances, counts):
        return np.vstack(
            [
                rng.multivariate_normal(mean, covariances, int(count))
                for mean, count in zip(means, counts)
            ]
        )

    def pooled(self, covariances, weights, k):
        return covariances.copy()


class DiagCovariance(CovarianceModel):
    """Each component has its own diagonal covariance matrix (mclust's VVI)."""

    name = "diag"

    def parameter_shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features

    def scatter(self, diff, resp):
        return np.einsum("kn,knd->kd", resp.T, diff * diff)

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        delta = shift_sum / nk[:, None]
        centred = scatter - 2.0 * shift_sum * delta + sum_resp[:, None] * delta**2
        return centred / nk[:, None] + reg_covar

    def precision_cholesky(self, covariances):
        if np.any(np.less_equal(covariances, 0.0)):
            raise ill_defined_covariance_error(covariances.dtype)
        return 1.0 / np.sqrt(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def precisions_from_cholesky(self, precisions_chol):
        return precisions_chol**2

    def covariances_from_precisions_cholesky(self, precisions_chol):
        return 1.0 / precisions_chol**2

    def log_det_cholesky(self, precisions_chol, n_components, n_features):
        return np.sum(np.log(precisions_chol), axis=1)

    def mahalanobis(self, diff, precisions_chol):
        return np.einsum("knd,kd->nk", diff * diff, precisions_chol**2)

    def check_precisions(self, precisions):
        _check_positive(precisions, self.name)

    def sample(self, rng, means, covariances, counts):
        n_features = means.shape[1]
        return np.vstack(
            [
                mean + rng.standard_normal(size=(int(count), n_features)) * np.sqrt(cov)
                for mean, cov, count in zip(means, covariances, counts)
            ]
        )

    def pooled(self, covariances, weights, k):
        others = np.delete(np.arange(len(weights)), k)
        out = covariances.copy()
        if others.size:
            w = weights[others] / max(weights[others].sum(), np.finfo(float).tiny)
            out[k] = w @ covariances[others]
        return out


class SphericalCovariance(DiagCovariance):
    """Each component has its own single variance (mclust's VII).

    As in scikit-learn, the variance is the mean over features of the
    diagonal covariance estimate.
    """

    name = "spherical"

    def parameter_shape(self, n_components, n_features):
        return (n_components,)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components

    def scatter(self, diff, resp):
        return np.einsum("kn,kn->k", resp.T, np.einsum("knd,knd->kn", diff, diff))

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        n_features = shift_sum.shape[1]
        delta = shift_sum / nk[:, None]
        centred = (
            scatter
            - 2.0 * np.sum(shift_sum * delta, axis=1)
            + sum_resp * np.sum(delta**2, axis=1)
        )
        return centred / (nk * n_features) + reg_covar

    def log_det_cholesky(self, precisions_chol, n_components, n_features):
        return n_features * np.log(precisions_chol)

    def mahalanobis(self, diff, precisions_chol):
        return np.einsum("knd,knd->nk", diff, diff) * precisions_chol**2


_REGISTRY: dict[str, CovarianceModel] = {}


def register_covariance_model(model: CovarianceModel) -> None:
    """Add a covariance model to the registry under ``model.name``.

    Raises
    ------
    ValueError
        If a model of that name is already registered.
    """
    if model.name in _REGISTRY:
        raise ValueError(f"Covariance model {model.name!r} is already registered.")
    _REGISTRY[model.name] = model


def get_covariance_model(name: str) -> CovarianceModel:
    """Look up a covariance model by its ``covariance_type`` name."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(n) for n in _REGISTRY)
        raise ValueError(
            f"Unknown covariance_type {name!r}; valid options are {valid}."
        ) from None


def covariance_model_names() -> tuple[str, ...]:
    """Names of all registered covariance models."""
    return tuple(_REGISTRY)


for _model in (FullCovariance(), TiedCovariance(), DiagCovariance(), SphericalCovariance()):
    register_covariance_model(_model)
