"""The parameters of a fitted Gaussian mixture, as one immutable value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MixtureParams"]


@dataclass(frozen=True)
class MixtureParams:
    """Weights, means, covariances and precision Cholesky factors.

    Shapes of ``covariances`` and ``precisions_cholesky`` depend on the
    covariance model (see :mod:`gaussmix.covariance`).

    ``shift``, shape (n_components, n_features), when set, is where an
    E-step under these parameters accumulates each component's second
    moments; by default (None) the covariance model chooses: the mixture
    mean, or a component's own mean where that lies far from it.  The EM
    engine sets it to the next means when they moved too far for the
    default's precision (see :func:`gaussmix.em.maximization_with_refinement`).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    shift: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    def astype(self, dtype: np.dtype) -> MixtureParams:
        """Copy with every array cast to ``dtype``."""
        return MixtureParams(
            weights=np.asarray(self.weights, dtype=dtype),
            means=np.asarray(self.means, dtype=dtype),
            covariances=np.asarray(self.covariances, dtype=dtype),
            precisions_cholesky=np.asarray(self.precisions_cholesky, dtype=dtype),
            shift=self.shift,
        )

    def all_finite(self) -> bool:
        return all(
            np.all(np.isfinite(a))
            for a in (self.weights, self.means, self.covariances, self.precisions_cholesky)
        )
