"""Information criteria of a fitted mixture: BIC, AIC and ICL.

A mixin, so that the estimator stays glue: each criterion needs only
``score_samples``, ``predict_proba`` and the covariance model's parameter
count.
"""

from __future__ import annotations

import math

import numpy as np

from .covariance import get_covariance_model

__all__ = ["InformationCriteriaMixin"]


class InformationCriteriaMixin:
    """``bic``, ``aic`` and ``icl`` for a fitted Gaussian mixture."""

    def _n_parameters(self) -> int:
        """Number of free parameters of the fitted model."""
        self._check_covariance_type_unchanged()
        n_components, n_features = self.means_.shape
        model = get_covariance_model(self.covariance_type)
        return model.n_parameters(n_components, n_features)

    def bic(self, X) -> float:
        """Bayesian information criterion on ``X``; lower is better.

        ``-2 log L + p log n`` with ``p`` free parameters and ``n`` rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        bic : float
        """
        log_prob = self.score_samples(X)
        n_samples = log_prob.shape[0]
        mean = float(np.mean(log_prob))
        return -2 * mean * n_samples + self._n_parameters() * math.log(n_samples)

    def aic(self, X) -> float:
        """Akaike information criterion on ``X``; lower is better.

        ``-2 log L + 2 p`` with ``p`` free parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        aic : float
        """
        log_prob = self.score_samples(X)
        return -2 * float(np.mean(log_prob)) * log_prob.shape[0] + 2 * self._n_parameters()

    def icl(self, X) -> float:
        """Integrated completed likelihood criterion on ``X``; lower is better.

        ``bic(X) - 2 sum_i log max_k p(k | x_i)``: the BIC plus a penalty for
        samples that the model does not assign clearly to one component
        (Biernacki, Celeux and Govaert, 2000).  The sum runs over the hard
        (MAP) assignment of each sample, as in R's ``mclust::icl``, whose
        value is ``-icl(X)`` (mclust's higher-is-better sign).  Equal to
        :meth:`bic` for one component.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        icl : float
        """
        log_map_resp = np.log(np.max(self.predict_proba(X), axis=1))
        return self.bic(X) - 2 * float(np.sum(log_map_resp, dtype=np.float64))
