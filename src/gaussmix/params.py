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
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray

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
        )

    def all_finite(self) -> bool:
        return all(
            np.all(np.isfinite(a))
            for a in (self.weights, self.means, self.covariances, self.precisions_cholesky)
        )
