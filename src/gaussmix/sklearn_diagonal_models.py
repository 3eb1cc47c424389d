"""scikit-learn's diagonal covariance models: diag and spherical.

The kernels see each chunk centred on one point (the means' weighted
median), so data far from the origin lose no precision. ``[Xc**2, Xc] @
design`` gives every component's Mahalanobis distance in one product, and
``resp @ [Xc**2, Xc].T`` every first and second moment. Components far from
the centre (``far_threshold``) would lose precision in those sums: for
float32 data they take the same two products in float64 (up-cast features),
for float64 data (or float32 components farther than float64 can take) one
pass each around their own means.

Shapes (``K`` components, ``D`` features)::

    model      covariances / precisions    scatter statistic
    diag       (K, D)                      (K, D)
    spherical  (K,)                        (K,)

Precision Cholesky factors follow scikit-learn: the square roots of the
precisions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._covariance_numerics import (
    _check_positive,
    _const,
    _split_near_far,
    _zero_within_rounding,
    matmul_t,
    RowKernels,
)
from .covariance import CovarianceModel, ill_defined_covariance_error

__all__ = ["DiagCovariance", "SphericalCovariance"]


# From this many features on, diagonal models keep Xc and Xc**2 apart (see
# DiagCovariance._features).
_CONTIGUOUS_FEATURES = 32
# Squared whitened distance from the centre up to which float64 products
# keep a far component of float32 data within float32's precision budget
# (1e-5 relative, as ``far_threshold``): the same bound with float64's eps.
_UPCAST_LIMIT = 1e-5 / np.finfo(np.float64).eps


@dataclass
class _UpcastFeatures:
    """A float32 chunk's features, up-cast to float64 for its far components."""

    features64: object


class DiagCovariance(RowKernels, CovarianceModel):
    """Each component has its own diagonal covariance matrix (mclust's VVI)."""

    name = "diag"
    # Measured on 2 threads at N=1e5 against 1 MiB chunks: D=16, K=16
    # 13.7 -> 11.1 ms per iteration, D=16, K=64 40.0 -> 33.6 ms; 8 MiB was
    # slower again.
    chunk_bytes = 1 << 21

    def parameter_shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features

    def chunk_width(self, n_components, n_features):
        return 2 * n_features + 1 + 2 * n_components

    def _sq_distances(self, offsets, precisions):
        return np.sum(offsets**2 * precisions, axis=1)

    def _design(self, offsets, precisions, sq_distances, const):
        # log w_k + log N = [Xc^2, Xc, 1] @ [-P/2, d P, const - |d|_P^2 / 2]^T:
        # the GEMM gives the weighted log-probabilities themselves, with no
        # pass over the (K, n) result to scale it and add the constants.
        return np.concatenate(
            [-0.5 * precisions, offsets * precisions, (const - 0.5 * sq_distances)[:, None]],
            axis=1,
        )

    def prepare(self, params, centre, dtype, compiled=False):
        n_components, n_features = params.means.shape
        precisions = params.precisions_cholesky**2
        offsets = params.means - centre
        sq_distances = self._sq_distances(offsets, precisions)
        shift, far = _split_near_far(params.means, centre, sq_distances, dtype, params.shift)
        log_det = self.log_det_cholesky(params.precisions_cholesky, n_components, n_features)
        const = _const(params, log_det, n_features)
        design = self._design(offsets, precisions, sq_distances, const)
        # Given shifts (a refinement pass) move every component by distances
        # that its current precision does not bound: those passes keep the
        # exact pass per component.
        upcast = (
            np.dtype(dtype) == np.float32 and far.size > 0 and params.shift is None
            and bool(np.all(sq_distances[far] <= _UPCAST_LIMIT))
        )
        if upcast:
            # One float64 product for every component beats one pass each.
            far = far[:0]
        return {
            "shift": shift,
            "offsets": (shift - centre).astype(dtype),
            "far": far,
            "far_precisions": precisions[far].astype(dtype),
            "far_offsets": offsets[far].astype(dtype),
            "upcast": upcast,
            "upcast_design": np.ascontiguousarray(design),
            "design": np.ascontiguousarray(design, dtype=dtype),
            "const": const.astype(dtype),
        }

    def _features(self, X, centre):
        """``[Xc**2; Xc; 1]`` (2 * n_features + 1, n_samples), or ``(Xc, Xc**2)``.

        Built from the raw rows, so that no other centred copy of the chunk
        is made.  Below 32 features one array, feature-major, whose row of
        ones puts the constants into the log-probability GEMM and the
        component totals into the moments GEMM: against rows of length
        2D+1 it was measured 1.2-6x faster (6x at D=2, 1.6x at D=16),
        against two arrays 1.2-1.5x.  From 32 features on, the two
        contiguous arrays ``(Xc, Xc**2)`` were measured 1.2-1.4x faster.
        """
        n_features = X.shape[1]
        if n_features >= _CONTIGUOUS_FEATURES:
            centred = X - centre
            return centred, centred * centred
        # float64 for a float64 centre (float32 rows up-cast as they are read).
        features = np.empty((2 * n_features + 1, X.shape[0]), dtype=np.result_type(X, centre))
        centred_t = features[n_features : 2 * n_features]
        np.subtract(X.T, centre[:, None], out=centred_t)
        np.multiply(centred_t, centred_t, out=features[:n_features])
        features[2 * n_features] = 1.0
        return features

    def _centred_rows(self, features, n_features):
        if isinstance(features, tuple):
            return features[0]
        return features[n_features : 2 * n_features].T

    def _weighted(self, design, features, n_features):
        """``log w_k + log N(x | mu_k, Sigma_k)`` of the chunk: (n_components, n_samples)."""
        if not isinstance(features, tuple):
            return design @ features
        centred, squared = features
        weighted = design[:, :n_features] @ squared.T
        weighted += design[:, n_features : 2 * n_features] @ centred.T
        weighted += design[:, 2 * n_features, None]
        return weighted

    def _far_maha(self, diff, precision):
        return (diff * diff) @ precision

    def log_prob_rows(self, X, centre, prep):
        """Weighted log-probabilities of raw rows, and the features the statistics reuse."""
        if prep["upcast"]:
            features64 = self._features(X, centre.astype(np.float64))
            weighted = self._weighted(prep["upcast_design"], features64, X.shape[1])
            return weighted.astype(X.dtype), _UpcastFeatures(features64)
        features = self._features(X, centre)
        weighted = self._weighted(prep["design"], features, X.shape[1])
        if len(prep["far"]):
            Xc = self._centred_rows(features, X.shape[1])
            for k, precision, offset in zip(
                prep["far"], prep["far_precisions"], prep["far_offsets"]
            ):
                maha = self._far_maha(Xc - offset, precision)
                maha *= -0.5
                maha += prep["const"][k]
                weighted[k] = maha
        return weighted, features

    def _moments(self, features, resp, n_features):
        """Component totals, first and second moments."""
        if isinstance(features, tuple):
            centred, squared = features
            return resp.sum(axis=1), matmul_t(resp, centred.T), matmul_t(resp, squared.T)
        moments = matmul_t(resp, features)
        return moments[:, -1], moments[:, n_features : 2 * n_features], moments[:, :n_features]

    def stats_rows(self, X, centre, resp, offsets, aux=None):
        """``(sum_resp, shift_sum, scatter)`` of raw rows (see :meth:`chunk_stats`)."""
        n_features = X.shape[1]
        if isinstance(aux, _UpcastFeatures):
            # Around the centre in float64, then moved to the shifts: the
            # cancellation costs eps64 * distance**2, within float32's budget.
            totals, sums, squares = self._moments(
                aux.features64, resp.astype(np.float64), n_features
            )
            step = offsets.astype(np.float64)
            shift_sum = sums - totals[:, None] * step
            scatter = self.moved_scatter(squares, totals, sums, step)
            return totals, shift_sum.astype(X.dtype), scatter.astype(X.dtype)
        features = self._features(X, centre) if aux is None else aux
        sum_resp, shift_sum, scatter = self._moments(features, resp, n_features)
        far = np.flatnonzero(offsets.any(axis=1))
        if far.size:
            # Around their own means, exactly, however far from the centre.
            Xc = self._centred_rows(features, n_features)
            for k in far:
                own = self._moments(
                    self._features(Xc, offsets[k]), resp[k : k + 1], n_features
                )
                shift_sum[k], scatter[k] = own[1][0], own[2][0]
        return sum_resp, shift_sum, scatter

    def moved_scatter(self, scatter, sum_resp, shift_sum, step):
        return scatter - 2.0 * shift_sum * step + sum_resp[:, None] * step**2

    def whitened_sq_norms(self, precisions_chol, offsets):
        return np.sum((offsets * precisions_chol) ** 2, axis=1)

    def scatter_of_covariances(self, covariances, nk, reg_covar, n_features):
        return nk[:, None] * (covariances - reg_covar)

    def centred_scatter(self, scatter, sum_resp, shift_sum, nk):
        """Diagonals of ``W_k`` around the new means, shape (K, D)."""
        return self.moved_scatter(scatter, sum_resp, shift_sum, shift_sum / nk[:, None])

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        centred = _zero_within_rounding(
            self.centred_scatter(scatter, sum_resp, shift_sum, nk), scatter
        )
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

    def chunk_width(self, n_components, n_features):
        return n_features + 2 + 2 * n_components

    def _sq_distances(self, offsets, precisions):
        return np.sum(offsets**2, axis=1) * precisions

    def _design(self, offsets, precisions, sq_distances, const):
        # log w_k + log N = [Xc, ||Xc||^2, 1] @ [d p, -p/2, const - p ||d||^2 / 2]^T.
        return np.concatenate(
            [
                offsets * precisions[:, None],
                -0.5 * precisions[:, None],
                (const - 0.5 * sq_distances)[:, None],
            ],
            axis=1,
        )

    def _features(self, X, centre):
        """``[Xc; ||Xc||**2; 1]``, ``Xc = X - centre``: (n_features + 2, n_samples).

        Feature-major below 32 features; from 32 on, a view of rows
        ``[Xc, ||Xc||**2, 1]``, measured faster there (D=64, K=16: 0.029-0.042
        against 0.044-0.057 s per iteration at N=1e5).
        """
        n_features = X.shape[1]
        dtype = np.result_type(X, centre)
        if n_features >= _CONTIGUOUS_FEATURES:
            features = np.empty((X.shape[0], n_features + 2), dtype=dtype)
            centred = features[:, :n_features]
            np.subtract(X, centre, out=centred)
            np.einsum("nd,nd->n", centred, centred, out=features[:, n_features])
            features[:, n_features + 1] = 1.0
            return features.T
        features = np.empty((n_features + 2, X.shape[0]), dtype=dtype)
        centred_t = features[:n_features]
        np.subtract(X.T, centre[:, None], out=centred_t)
        np.einsum("dn,dn->n", centred_t, centred_t, out=features[n_features])
        features[n_features + 1] = 1.0
        return features

    def _centred_rows(self, features, n_features):
        return features[:n_features].T

    def _far_maha(self, diff, precision):
        return np.einsum("nd,nd->n", diff, diff) * precision

    def _moments(self, features, resp, n_features):
        moments = matmul_t(resp, features)
        return moments[:, -1], moments[:, :n_features], moments[:, n_features]

    def moved_scatter(self, scatter, sum_resp, shift_sum, step):
        return (
            scatter
            - 2.0 * np.sum(shift_sum * step, axis=1)
            + sum_resp * np.sum(step**2, axis=1)
        )

    def whitened_sq_norms(self, precisions_chol, offsets):
        return np.sum(offsets**2, axis=1) * precisions_chol**2

    def scatter_of_covariances(self, covariances, nk, reg_covar, n_features):
        # The statistic is the trace: D variances per component.
        return nk * n_features * (covariances - reg_covar)

    def centred_scatter(self, scatter, sum_resp, shift_sum, nk):
        """Traces of ``W_k`` around the new means, shape (K,)."""
        return self.moved_scatter(scatter, sum_resp, shift_sum, shift_sum / nk[:, None])

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        n_features = shift_sum.shape[1]
        centred = _zero_within_rounding(
            self.centred_scatter(scatter, sum_resp, shift_sum, nk), scatter
        )
        return centred / (nk * n_features) + reg_covar

    def log_det_cholesky(self, precisions_chol, n_components, n_features):
        return n_features * np.log(precisions_chol)
