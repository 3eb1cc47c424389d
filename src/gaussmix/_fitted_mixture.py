"""The fitted mixture: its attributes, and what a fitted model computes.

A mixin of :class:`gaussmix.GaussianMixture`: storing the fitted
parameters in scikit-learn's attributes (in the data's dtype), reading them
back as one :class:`~gaussmix.params.MixtureParams`, and the inference
methods (``score_samples``, ``score``, ``predict``, ``predict_proba``,
``sample``) on arrays, files and Dask collections alike.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import em
from .covariance import get_covariance_model
from .datasets import as_dataset, check_dataset_feature_names, check_dataset_shape
from .params import MixtureParams

__all__ = ["FittedMixtureMixin"]


class FittedMixtureMixin:
    """Fitted attributes and inference of a Gaussian mixture estimator."""

    def _set_fitted(self, model, params: MixtureParams, dtype) -> None:
        """Set the fitted attributes from ``params``, cast to the data's ``dtype``.

        Raises ValueError, setting nothing, where a parameter fitted in
        float64 lies beyond float32's range.
        """
        with np.errstate(over="ignore"):  # reported below, with its fix
            params = params.astype(dtype)
            # C order, as scikit-learn's: the engine's factors may be transposed views.
            precisions_cholesky = np.ascontiguousarray(params.precisions_cholesky)
            precisions = model.precisions_from_cholesky(precisions_cholesky)
        fitted = {
            "weights_": params.weights,
            "means_": params.means,
            "covariances_": params.covariances,
            "precisions_cholesky_": precisions_cholesky,
            "precisions_": precisions,
        }
        overflowed = [name for name, value in fitted.items() if not np.all(np.isfinite(value))]
        if overflowed:
            raise ValueError(
                f"The fitted {', '.join(overflowed)} exceed the range of "
                f"{np.dtype(dtype).name}, the dtype of X. Fit float64 data "
                "(X.astype(np.float64)), or rescale the data or reg_covar."
            )
        if np.dtype(dtype) != np.float64:
            # A covariance whose condition number exceeds 1 / eps of the
            # dtype can lose positive-definiteness in the cast; the model
            # would then fail to load from its own file.
            try:
                model.precision_cholesky(np.asarray(params.covariances, dtype=np.float64))
            except ValueError:
                raise ValueError(
                    f"The fitted covariances_ are not positive-definite once rounded to "
                    f"{np.dtype(dtype).name}, the dtype of X: their condition number is "
                    "beyond its precision. Fit float64 data (X.astype(np.float64)), or "
                    "increase reg_covar."
                ) from None
        # The parameters' layout: covariance_type can change afterwards.
        self._fitted_covariance_type = model.name
        self.__dict__.update(fitted)

    def _check_covariance_type_unchanged(self) -> None:
        """The fitted attributes must be of ``covariance_type``'s layout.

        ``set_params(covariance_type=...)`` after a fit leaves attributes of
        the old model, which the new one cannot read (numpy broadcasting
        errors, BIC's division by zero, a model file its loader refuses).
        """
        fitted = getattr(self, "_fitted_covariance_type", None)
        if fitted is not None and (
            get_covariance_model(self.covariance_type).name != get_covariance_model(fitted).name
        ):
            raise ValueError(
                f"This mixture was fitted with covariance_type={fitted!r}, but "
                f"covariance_type is now {self.covariance_type!r}. Fit it again, or set "
                f"covariance_type back to {fitted!r}."
            )

    def _fitted_params(self) -> MixtureParams:
        model = get_covariance_model(self.covariance_type)
        precisions_chol = _upper_precision_factors(model, self.precisions_cholesky_)
        covariances = getattr(self, "covariances_", None)
        if covariances is None:
            # Inference needs only the precisions, as in scikit-learn, so a
            # model assembled from weights, means and precision factors works.
            covariances = model.covariances_from_precisions_cholesky(
                np.asarray(precisions_chol, dtype=np.float64)
            )
        return MixtureParams(self.weights_, self.means_, covariances, precisions_chol)

    # -------------------------------------------------------------- inference
    def _infer(self, X, want: str) -> np.ndarray:
        dataset = as_dataset(X)
        check_is_fitted(self)
        self._check_covariance_type_unchanged()
        model = get_covariance_model(self.covariance_type)
        if dataset is not None:
            check_dataset_shape(dataset, min_samples=1, n_features=self.n_features_in_)
            check_dataset_feature_names(self, dataset)
            params = self._fitted_params()
            with dataset.passes(model, params):
                return dataset.infer(model, params, want)
        # dtype "numeric", as scikit-learn's inference: arrays of strings are
        # refused (text read by mistake), not parsed as numbers.
        X = validate_data(self, X, reset=False)
        if X.dtype not in (np.float64, np.float32):
            X = X.astype(np.float64)
        return em.log_prob_norm_and_labels(model, X, self._fitted_params(), want=want)

    def score_samples(self, X) -> np.ndarray:
        """Log-likelihood of each sample under the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        return self._infer(X, "score")

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per sample of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        log_likelihood : float
        """
        return float(np.mean(self.score_samples(X)))

    def predict(self, X) -> np.ndarray:
        """Most probable component of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._infer(X, "labels")

    def predict_proba(self, X) -> np.ndarray:
        """Posterior probability of each component for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
        """
        return self._infer(X, "proba")

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture.

        Seeded by ``random_state`` exactly as scikit-learn's, so the same
        model and seed give the same draws.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each draw; draws are grouped by component.
        """
        check_is_fitted(self)
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples} . The sampling "
                "requires at least one sample."
            )
        rng = check_random_state(self.random_state)
        weights = np.asarray(self.weights_, dtype=np.float64)
        if np.sum(weights[:-1]) > 1.0:
            # float32 weights sum to one only within float32's rounding, which
            # numpy refuses (beyond 1e-12); scikit-learn's draws otherwise.
            weights = weights / np.sum(weights)
        counts = rng.multinomial(n_samples, weights)
        model = get_covariance_model(self.covariance_type)
        X = model.sample(
            rng,
            np.asarray(self.means_, dtype=np.float64),
            np.asarray(self.covariances_, dtype=np.float64),
            counts,
        )
        y = np.concatenate(
            [np.full(int(count), k, dtype=np.int64) for k, count in enumerate(counts)]
        )
        return np.asarray(X, dtype=np.float64), y


def _upper_precision_factors(model, precisions_chol):
    """``precisions_chol`` as the upper-triangular factors that the kernels read.

    Fits store scikit-learn's upper factors, and the whitening reads only
    their upper triangles.  A factor set by hand may be lower-triangular
    (``np.linalg.cholesky(np.linalg.inv(cov))``), which scikit-learn's
    inference also accepts: it is replaced by the upper factor of the same
    precision ``F F^T``, in its own dtype.
    """
    # Whether the model's factors are matrices ((K, D, D) or (D, D)): its
    # parameter shape for K = 2, D = 3 ends in (3, 3), diag's is (2, 3).
    matrices = model.parameter_shape(2, 3)[-2:] == (3, 3)
    factors = np.asarray(precisions_chol)
    if not matrices or not np.any(np.tril(factors, -1)):
        return precisions_chol
    precisions = model.precisions_from_cholesky(factors.astype(np.float64))
    return model.precision_cholesky_from_precisions(precisions).astype(factors.dtype)
