"""Full-covariance log-densities as one GEMM against the rows' packed products.

With few features beside many components, the Mahalanobis distance of a
centred row ``x`` from component ``k``,
``(x - o_k)^T P_k (x - o_k) = sum_{a<=b} c_kab x_a x_b - 2 o_k^T P_k x + o_k^T P_k o_k``,
is a dot product between one row of coefficients per component and the
row's features ``[1; x; x_a x_b (a <= b)]``.  The products are those the
packed scatter of the M-step sums, so one array of them serves both: the
log-densities of every component are one GEMM, and the statistics another,
where whitening formed ``K * D`` whitened features per row first.

Expanding the square trades the whitening's rounding, about
``eps * sqrt(cond) * (|o_k|^2 + D)`` in ``P_k``'s units, for
``eps * cond * (|o_k|^2 + D)``.  Components for which that bound exceeds
the precision budget of the near/far split (relative to ``D``, the typical
distance of a component's own rows) keep the whitening.
"""

from __future__ import annotations

import numpy as np

from ._covariance_numerics import far_threshold, packed_pairs, packed_products, upper_indices

__all__ = [
    "expansion_coefficients",
    "expandable_components",
    "row_features",
]


def expandable_components(
    precisions: np.ndarray, covariances: np.ndarray, sq_offsets: np.ndarray, dtype
) -> np.ndarray:
    """Whether each component's distances may be computed from the expanded square.

    ``cond_inf(P_k) * (|o_k|^2 + D) <= far_threshold(dtype) * D``, with the
    infinity-norm condition number ``||P_k|| ||Sigma_k||`` (at least the
    ratio of the extreme eigenvalues of ``|P_k|`` and ``P_k`` that scales
    the expansion's rounding) and ``sq_offsets`` the squared whitened
    distances of the means from the centre.
    """
    n_features = precisions.shape[-1]
    condition = np.abs(precisions).sum(axis=2).max(axis=1) * np.abs(covariances).sum(axis=2).max(
        axis=1
    )
    bound = condition * (sq_offsets + n_features)
    return np.isfinite(bound) & (bound <= far_threshold(dtype) * n_features)


def expansion_coefficients(
    precisions: np.ndarray, offsets: np.ndarray, const: np.ndarray
) -> np.ndarray:
    """Rows ``[const_k - o_k^T P_k o_k / 2, o_k^T P_k, -c_kab / 2]``: (K, 1 + D + D (D + 1) / 2).

    Their product with :func:`row_features` is ``log w_k + log N(x | mu_k,
    Sigma_k)``; ``c_kab`` is ``P_kab`` on the diagonal and ``2 P_kab`` off it.
    Computed in float64 from the float64 parameters.
    """
    n_features = offsets.shape[1]
    upper, lower = upper_indices(n_features)
    pairs = precisions[:, upper, lower] * np.where(upper == lower, -0.5, -1.0)
    linear = np.einsum("kd,kde->ke", offsets, precisions)
    constant = const - 0.5 * np.einsum("kd,kd->k", linear, offsets)
    return np.concatenate([constant[:, None], linear, pairs], axis=1)


def row_features(X: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``[1; Xc^T; products]``, ``Xc = X - centre``: (1 + D + D (D + 1) / 2, n_samples).

    The first ``1 + D`` rows are the ``[1; Xc^T]`` of the whitening and the
    first moments; the products ``x_a x_b`` (``a <= b``) follow, in the
    order of :func:`~gaussmix._covariance_numerics.upper_indices`.
    """
    n_samples, n_features = X.shape
    features = np.empty((1 + n_features + packed_pairs(n_features), n_samples), dtype=X.dtype)
    features[0] = 1.0
    centred_t = features[1 : 1 + n_features]
    np.subtract(X.T, centre[:, None], out=centred_t)
    packed_products(centred_t, out=features[1 + n_features :])
    return features
