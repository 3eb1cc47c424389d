"""scikit-learn's covariance models with general matrices: full and tied.

Its diagonal ones, diag and spherical, are in
:mod:`gaussmix.sklearn_diagonal_models` (and exported here too).

The kernels see each chunk centred on one point (the means' weighted
median), so data far from the origin lose no precision, and they compute
every component with one matrix product where the model allows it:

* full: ``Xc @ [U_1 | ... | U_K]`` whitens all components at once, or,
  with many components for few features, one product of per-component
  coefficients with each row's ``[1; x; x_a x_b]`` gives every
  log-density (:mod:`gaussmix._quadratic_forms`); the scatter is
  accumulated around the centre, or around a component's own mean when it
  lies far from the centre;
* tied: one whitening ``Xc @ U``, then one product with the whitened means.

Shapes (``K`` components, ``D`` features)::

    model      covariances / precisions    scatter statistic
    full       (K, D, D)                   (K, D, D)
    tied       (D, D)                      (D, D)

Precision Cholesky factors follow scikit-learn: an upper-triangular ``U``
with ``precision = U @ U.T``, so that ``||(x - mu) @ U||^2`` is the
Mahalanobis distance.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg

from ._covariance_numerics import (
    _centred_second_moment,
    _check_symmetric_positive_definite,
    _const,
    _far_scatter,
    _moved_second_moment,
    _ones_rows_t,
    _precision_cholesky_of_matrix,
    _rows_t,
    _scatter_around_centre,
    _split_near_far,
    _upper_factor_of_precision,
    far_threshold,
    feature_blocks,
    matmul_t,
    packed_pairs,
    packed_scatter_wins,
    remote_preparation,
    triangular_inverse,
    RowKernels,
    unpack_scatter,
    with_remote_log_prob,
)
from ._quadratic_forms import (
    expandable_components,
    expansion_coefficients,
    compiled_kernels_load,
    refine_pairs,
    refinement_wins,
    rounding_bound_terms,
    row_features,
)
from .covariance import CovarianceModel
from .sklearn_diagonal_models import DiagCovariance, SphericalCovariance

__all__ = [
    "FullCovariance",
    "TiedCovariance",
    "DiagCovariance",
    "SphericalCovariance",
    "far_threshold",
]


def _whitened_log_prob(rows_t, whiteners, const):
    """``const_k - ||y_k||^2 / 2`` from the block whiteners of :meth:`FullCovariance.prepare`."""
    # Whitening is linear in the offset, so a far centre costs only
    # eps * distance of absolute precision here.
    n_samples = rows_t.shape[1]
    n_components = const.shape[0]
    weighted = None
    for stop, whitener in whiteners:
        half = (whitener @ rows_t[: stop + 1]).reshape(n_components, -1, n_samples)
        block_norms = np.einsum("kdn,kdn->kn", half, half)
        if weighted is None:
            weighted = block_norms
        else:
            weighted += block_norms
    np.subtract(const[:, None], weighted, out=weighted)
    return weighted


class FullCovariance(RowKernels, CovarianceModel):
    """Each component has its own general covariance matrix (mclust's VVV)."""

    name = "full"

    def parameter_shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def chunk_width(self, n_components, n_features):
        widest = max(stop - start for start, stop in feature_blocks(n_features))
        # Per row: one block's whitened features (or the packed products
        # of the scatter, where wider), the log-probabilities, the row.
        temporaries = n_components * widest
        if packed_scatter_wins(n_components, n_features):
            temporaries = max(temporaries, packed_pairs(n_features))
        return temporaries + n_components + n_features

    def prepare(self, params, centre, dtype, compiled=False):
        n_components, n_features = params.means.shape
        chol = params.precisions_cholesky
        offsets = params.means - centre
        whitened_offsets = np.einsum("kd,kde->ke", offsets, chol)
        sq_offsets = np.sum(whitened_offsets**2, axis=1)
        shift, _ = _split_near_far(params.means, centre, sq_offsets, dtype, params.shift)
        log_det = self.log_det_cholesky(chol, n_components, n_features)
        # Whitening is y_k = U_k^T (x - c) - U_k^T (mu_k - c), and U_k^T is
        # lower-triangular: features [a, b) of y need only the first b of x.
        # Per block, one GEMM whitens every component, [1; Xc^T][:1 + b]
        # against the rows of [-U_k^T (mu_k - c) | U_k^T[a:b, :b]], scaled by
        # sqrt(1/2) so that the squared norms are maha / 2.
        lower = np.swapaxes(chol, 1, 2) * math.sqrt(0.5)
        shifted = whitened_offsets * -math.sqrt(0.5)
        whiteners = []
        for start, stop in feature_blocks(n_features):
            block = np.empty((n_components, stop - start, stop + 1), dtype=dtype)
            block[:, :, 0] = shifted[:, start:stop]
            block[:, :, 1:] = lower[:, start:stop, :stop]
            whiteners.append((stop, block.reshape(n_components * (stop - start), stop + 1)))
        const = _const(params, log_det, n_features)
        prep = {
            "shift": shift,
            "offsets": (shift - centre).astype(dtype),
            "whiteners": whiteners,
            "const": const.astype(dtype),
        }
        prep["remote"] = remote_preparation(params.means, centre, chol, const, dtype)
        if packed_scatter_wins(n_components, n_features):
            prep.update(
                self._expansion(params, centre, offsets, sq_offsets, const, prep, dtype, compiled)
            )
        return prep

    def _expansion(
        self, params, centre, offsets, sq_offsets, const, prep, dtype, compiled
    ) -> dict:
        """The coefficients of the expanded squares, where the statistics form the products anyway.

        Components that the expansion would compute less precisely than the
        budget (see :mod:`gaussmix._quadratic_forms`), or that are summed
        around their own means, keep the whitening: their blocks of
        ``whiteners`` are kept apart.  With ``compiled`` and many components
        for few features (:func:`refinement_wins`), they are expanded too,
        and the pairs of them and rows that need it are computed again in
        float64 (``"refined"``, :func:`~gaussmix._quadratic_forms.refine_pairs`).
        """
        precisions = self.precisions_from_cholesky(params.precisions_cholesky)
        within_budget = expandable_components(precisions, params.covariances, sq_offsets, dtype)
        within_budget &= ~prep["offsets"].any(axis=1)
        n_components, n_features = offsets.shape
        refine = compiled and refinement_wins(n_components, n_features)

        def mostly_whitened(whitened):
            # The whitened components cost the whitening's GEMMs beside the
            # expansion's: at D = 16 one costs about three expanded ones
            # (float32, separated, N = 1e4, D = K = 16, 14 of 16 whitened:
            # 1.5x slower than whitening all).
            return 2 * np.count_nonzero(whitened) > len(whitened)

        if not refine and mostly_whitened(~within_budget):
            return {}
        coefficients = expansion_coefficients(precisions, offsets, const)
        # Precisions beyond the dtype's range (float32) are reported by the
        # M-step; here they keep the whitening, whose factors are their roots.
        representable = np.all(np.abs(coefficients) <= np.finfo(dtype).max, axis=1)
        refined = np.flatnonzero(~within_budget & representable) if refine else np.empty(0, int)
        if refined.size and not compiled_kernels_load():
            refined = refined[:0]  # without numba they are whitened
        whitened = ~within_budget | ~representable
        whitened[refined] = False
        if mostly_whitened(whitened):
            return {}
        coefficients[whitened] = 0.0
        whitened = np.flatnonzero(whitened)
        expansion = {
            "compiled": compiled,
            "coefficients": coefficients.astype(dtype),
            "whitened": whitened,
            "whitened_blocks": self._blocks_of(prep["whiteners"], whitened, n_components),
        }
        if refined.size:
            expansion["refined"] = {
                "components": refined,
                "bound_terms": rounding_bound_terms(
                    precisions[refined], offsets[refined], coefficients[refined], dtype
                ),
                "upper": np.ascontiguousarray(params.precisions_cholesky[refined]),
                "means": np.ascontiguousarray(params.means[refined], dtype=np.float64),
                "centre": np.asarray(centre, dtype=np.float64),
                "const": const[refined],
            }
        return expansion

    @staticmethod
    def _blocks_of(whiteners, components, n_components):
        """The rows of ``whiteners``' blocks that whiten ``components``."""
        return [
            (stop, block.reshape(n_components, -1, stop + 1)[components].reshape(-1, stop + 1))
            for stop, block in whiteners
        ]

    def log_prob_rows(self, X, centre, prep):
        """Weighted log-probabilities of raw rows, and what the statistics reuse.

        That is ``[1; Xc^T]``, or with the expansion the products too
        (:func:`~gaussmix._quadratic_forms.row_features`).
        """
        coefficients = prep.get("coefficients")
        if coefficients is None:
            rows_t = _ones_rows_t(X, centre)
            weighted = _whitened_log_prob(rows_t, prep["whiteners"], prep["const"])
            return with_remote_log_prob(weighted, X, centre, prep), rows_t
        # The products serve the scatter too (stats_rows).
        features = row_features(X, centre, prep["compiled"])
        weighted = coefficients @ features
        whitened = prep["whitened"]
        if whitened.size:
            weighted[whitened] = _whitened_log_prob(
                features, prep["whitened_blocks"], prep["const"][whitened]
            )
        # After the whitened components: each row's largest value says which
        # pairs need refining.
        refined = prep.get("refined")
        if refined is not None:
            refine_pairs(X, centre, features, weighted, refined)
        # Rows beyond the square root of the dtype's range (fits refuse them,
        # scoring does not) overflow their products: inf - inf, NaN, where the
        # whitening gives -inf.  One reduction finds them; they are whitened.
        if not np.isfinite(weighted.sum()):
            overflowed = np.flatnonzero(~np.all(weighted < np.inf, axis=0))
            if overflowed.size:
                weighted[:, overflowed] = _whitened_log_prob(
                    features[:, overflowed], prep["whiteners"], prep["const"]
                )
        return with_remote_log_prob(weighted, X, centre, prep), features

    def stats_rows(self, X, centre, resp, offsets, aux=None):
        """``(sum_resp, shift_sum, scatter)`` of raw rows (see :meth:`chunk_stats`)."""
        n_components, n_features = offsets.shape
        rows_t = _ones_rows_t(X, centre) if aux is None else aux
        centred_t = rows_t[1 : 1 + n_features]
        # With the products among the rows (row_features), one GEMM sums the
        # totals, first moments and packed scatters of every component.
        moments = matmul_t(resp, rows_t)
        sum_resp = moments[:, 0]
        shift_sum = moments[:, 1 : 1 + n_features] - sum_resp[:, None] * offsets
        blocks = feature_blocks(n_features)
        far = offsets.any(axis=1)
        with_products = rows_t.shape[0] > 1 + n_features
        if with_products:
            scatter = unpack_scatter(moments[:, 1 + n_features :], n_features)
        elif not far.any():
            return sum_resp, shift_sum, _scatter_around_centre(centred_t, resp, blocks)
        else:
            scatter = np.empty((n_components, n_features, n_features), dtype=X.dtype)
            if not far.all():
                scatter[~far] = _scatter_around_centre(centred_t, resp[~far], blocks)
        if not far.any():
            return sum_resp, shift_sum, scatter
        far_components = np.flatnonzero(far)
        scatter[far_components], shift_sum[far_components] = _far_scatter(
            centred_t, resp[far_components], offsets[far_components],
            group=max(1, (n_components * blocks[0][1]) // n_features),
        )
        return sum_resp, shift_sum, scatter

    def sparse_stats_rows(self, X, centre, resp, offsets):
        """:meth:`stats_rows` by the compiled kernel that skips zero responsibilities.

        The same sums, float64, in another order: each component's rows of
        nonzero responsibility, around its own shift.  Needs numba (see
        :func:`gaussmix.em.sparse_statistics_for`).
        """
        from ._scatter_kernels import component_moments

        n_components, n_features = offsets.shape
        sum_resp = np.zeros(n_components)
        shift_sum = np.zeros((n_components, n_features))
        scatter = np.zeros((n_components, n_features, n_features))
        component_moments(
            np.ascontiguousarray(X), centre, offsets, resp, sum_resp, shift_sum, scatter
        )
        return sum_resp, shift_sum, scatter

    def moved_scatter(self, scatter, sum_resp, shift_sum, step):
        return _moved_second_moment(scatter, sum_resp, shift_sum, step)

    def whitened_sq_norms(self, precisions_chol, offsets):
        return np.sum(np.einsum("kd,kde->ke", offsets, precisions_chol) ** 2, axis=1)

    def scatter_of_covariances(self, covariances, nk, reg_covar, n_features):
        return nk[:, None, None] * (covariances - reg_covar * np.eye(n_features))

    def centred_scatter(self, scatter, sum_resp, shift_sum, nk):
        """``W_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T``, shape (K, D, D)."""
        centred = _centred_second_moment(scatter, sum_resp, shift_sum, nk)
        # Symmetrise: the two rank-one corrections round differently.
        return 0.5 * (centred + np.swapaxes(centred, 1, 2))

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        covariances = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        covariances /= nk[:, None, None]
        n_features = covariances.shape[-1]
        covariances[:, np.arange(n_features), np.arange(n_features)] += reg_covar
        return covariances

    def precision_cholesky(self, covariances):
        return _precision_cholesky_of_matrix(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return np.stack([_upper_factor_of_precision(p) for p in precisions])

    def precisions_from_cholesky(self, precisions_chol):
        return np.matmul(precisions_chol, np.swapaxes(precisions_chol, 1, 2))

    def covariances_from_precisions_cholesky(self, precisions_chol):
        inv = triangular_inverse(precisions_chol, lower=False)
        if inv is None:
            raise ValueError(
                "A precision Cholesky factor has a zero on its diagonal, so its precision "
                "matrix is singular and has no covariance. Give positive-definite precisions."
            )
        # inv(U U^T) = U^-T U^-1
        return np.matmul(np.swapaxes(inv, 1, 2), inv)

    def log_det_cholesky(self, precisions_chol, n_components, n_features):
        diagonals = np.diagonal(precisions_chol, axis1=1, axis2=2)
        return np.sum(np.log(diagonals), axis=1)

    def check_precisions(self, precisions):
        for precision in precisions:
            _check_symmetric_positive_definite(precision, self.name)

    def sample(self, rng, means, covariances, counts):
        # scikit-learn's draws.  The fitted covariances are positive-definite
        # (their Cholesky factors exist); numpy's check, by an SVD tolerance,
        # warned of ill-conditioned ones (condition numbers near 1 / eps).
        return np.vstack(
            [
                rng.multivariate_normal(mean, covariance, int(count), check_valid="ignore")
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


class TiedCovariance(RowKernels, CovarianceModel):
    """All components share one general covariance matrix (mclust's EEE)."""

    name = "tied"
    # Measured on 2 threads at N=1e5 against 1 MiB chunks: D=16, K=16
    # 27.7 -> 21.0 ms per iteration, D=16, K=64 54.2 -> 40.1 ms.
    chunk_bytes = 1 << 21

    def parameter_shape(self, n_components, n_features):
        return (n_features, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def chunk_width(self, n_components, n_features):
        return 3 * n_features + 3 + 2 * n_components

    def prepare(self, params, centre, dtype, compiled=False):
        n_components, n_features = params.means.shape
        chol = params.precisions_cholesky
        whitened_offsets = (params.means - centre) @ chol
        sq_distances = np.sum(whitened_offsets**2, axis=1)
        shift, far = _split_near_far(params.means, centre, sq_distances, dtype, params.shift)
        log_det = self.log_det_cholesky(chol, n_components, n_features)
        const = _const(params, log_det, n_features)
        # log w_k + log N = [y, ||y||^2, 1] @ [b_k, -1/2, const_k - ||b_k||^2 / 2]
        # with y = Xc U and b_k the whitened offset: one GEMM for all k.
        design = np.concatenate(
            [
                whitened_offsets,
                np.full((n_components, 1), -0.5),
                (const - 0.5 * sq_distances)[:, None],
            ],
            axis=1,
        )
        return {
            "remote": remote_preparation(params.means, centre, chol, const, dtype),
            "shift": shift,
            "offsets": (shift - centre).astype(dtype),
            "far": far,
            "chol_t": np.ascontiguousarray(chol.T, dtype=dtype),
            "whitened_offsets": whitened_offsets.astype(dtype),
            "design": np.ascontiguousarray(design, dtype=dtype),
            "const": const.astype(dtype),
        }

    def log_prob_rows(self, X, centre, prep):
        """Weighted log-probabilities of raw rows, and ``[Xc^T; 1]`` for the statistics."""
        n_features = X.shape[1]
        rows_t = _rows_t(X, centre)
        features = np.empty((n_features + 2, X.shape[0]), dtype=X.dtype)
        whitened_t = features[:n_features]
        np.matmul(prep["chol_t"], rows_t[:n_features], out=whitened_t)
        np.einsum("dn,dn->n", whitened_t, whitened_t, out=features[n_features])
        features[n_features + 1] = 1.0
        weighted = prep["design"] @ features
        # Far components, where the expansion of the square would cancel, directly.
        for k in prep["far"]:
            diff = whitened_t - prep["whitened_offsets"][k][:, None]
            maha = np.einsum("dn,dn->n", diff, diff)
            maha *= -0.5
            maha += prep["const"][k]
            weighted[k] = maha
        return with_remote_log_prob(weighted, X, centre, prep), rows_t

    def stats_rows(self, X, centre, resp, offsets, aux=None):
        """``(sum_resp, shift_sum, scatter)`` of raw rows (see :meth:`chunk_stats`)."""
        n_features = X.shape[1]
        rows_t = _rows_t(X, centre) if aux is None else aux
        centred_t = rows_t[:n_features]
        moments = matmul_t(resp, rows_t)
        sum_resp = moments[:, n_features]
        shift_sum = moments[:, :n_features] - sum_resp[:, None] * offsets
        far = offsets.any(axis=1)
        near_weight = resp[~far].sum(axis=0) if far.any() else resp.sum(axis=0)
        scatter = (centred_t * near_weight) @ centred_t.T
        for k in np.flatnonzero(far):
            diff = centred_t - offsets[k][:, None]
            scatter += (diff * resp[k]) @ diff.T
        return sum_resp, shift_sum, scatter

    def whitened_sq_norms(self, precisions_chol, offsets):
        return np.sum((offsets @ precisions_chol) ** 2, axis=1)

    def scatter_of_covariances(self, covariances, nk, reg_covar, n_features):
        return np.sum(nk) * (covariances - reg_covar * np.eye(n_features))

    def moved_scatter(self, scatter, sum_resp, shift_sum, step):
        outer_sd = shift_sum.T @ step
        return scatter - outer_sd - outer_sd.T + (sum_resp[:, None] * step).T @ step

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        covariance = self.moved_scatter(scatter, sum_resp, shift_sum, shift_sum / nk[:, None])
        covariance /= np.sum(nk)
        covariance = 0.5 * (covariance + covariance.T)
        covariance.flat[:: covariance.shape[0] + 1] += reg_covar
        return covariance

    def precision_cholesky(self, covariances):
        return _precision_cholesky_of_matrix(covariances)

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

    def check_precisions(self, precisions):
        _check_symmetric_positive_definite(precisions, self.name)

    def sample(self, rng, means, covariances, counts):
        # As FullCovariance.sample: scikit-learn's draws, without numpy's
        # warning for an ill-conditioned positive-definite covariance.
        return np.vstack(
            [
                rng.multivariate_normal(mean, covariances, int(count), check_valid="ignore")
                for mean, count in zip(means, counts)
            ]
        )

    def pooled(self, covariances, weights, k):
        return covariances.copy()
