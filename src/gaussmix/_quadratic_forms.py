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
distance of a component's own rows) keep the whitening; or, in passes
large enough for the compiled kernels and with many components for few
features, they are expanded too, and the few (component, row) pairs whose
responsibility could carry the expansion's rounding into the sums are
computed again in float64 (:func:`refinement_cut`, :func:`refine_pairs`).
"""

from __future__ import annotations

import numpy as np

from ._compiled import compiled_module
from ._covariance_numerics import far_threshold, packed_pairs, packed_products, upper_indices

__all__ = [
    "expansion_coefficients",
    "expandable_components",
    "refinement_cut",
    "refine_pairs",
    "refinement_wins",
    "rounding_bound_terms",
    "row_features",
    "split_difference",
    "compiled_kernels_load",
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


def row_features(X: np.ndarray, centre: np.ndarray, compiled: bool = False) -> np.ndarray:
    """``[1; Xc^T; products]``, ``Xc = X - centre``: (1 + D + D (D + 1) / 2, n_samples).

    The first ``1 + D`` rows are the ``[1; Xc^T]`` of the whitening and the
    first moments; the products ``x_a x_b`` (``a <= b``) follow, in the
    order of :func:`~gaussmix._covariance_numerics.upper_indices`.  With
    ``compiled``, the products are formed by the compiled kernel where it
    loads: the same bits, so that the choice changes only the speed.
    """
    n_samples, n_features = X.shape
    features = np.empty((1 + n_features + packed_pairs(n_features), n_samples), dtype=X.dtype)
    features[0] = 1.0
    centred_t = features[1 : 1 + n_features]
    np.subtract(X.T, centre[:, None], out=centred_t)
    if compiled and compiled_kernels_load():
        from ._quadratic_kernels import packed_products_into

        packed_products_into(centred_t, features[1 + n_features :])
    else:
        packed_products(centred_t, out=features[1 + n_features :])
    return features


# The expansion with refined pairs against the whitening, for the
# log-densities of separated clusters (every component beyond the budget):
# see refinement_wins.
REFINE_MIN_COMPONENTS_PER_FEATURE = 2


def refinement_wins(n_components: int, n_features: int) -> bool:
    """Whether expanding and refining beats whitening the components beyond the budget."""
    return n_components >= REFINE_MIN_COMPONENTS_PER_FEATURE * n_features


def rounding_bound_terms(
    precisions: np.ndarray, offsets: np.ndarray, coefficients: np.ndarray, dtype
) -> np.ndarray:
    """``gamma * [max |c_k0|, max ||P_k o_k||, max rho_k / 2]`` over the given components.

    With ``y`` a centred row, the expansion's rounding in ``dtype`` is at
    most ``gamma * sum_j |coef_kj| |feature_j|``, ``gamma = (m + 5) u``
    for the ``m`` terms of the dot product (and the roundings of the
    coefficients, the centring and the products), ``u`` the unit roundoff.
    The sum is at most ``|c_k0| + ||P_k o_k|| ||y|| + rho_k ||y||^2 / 2``,
    with ``rho_k`` the largest absolute row sum of ``P_k`` (at least the
    norm of ``|P_k|``).  Their maxima over the components bound every
    component's error on a row: :func:`refinement_cut`.
    """
    n_terms = coefficients.shape[1]
    gamma = (n_terms + 5) * np.finfo(dtype).eps / 2
    linear = np.linalg.norm(np.einsum("kde,ke->kd", precisions, offsets), axis=1)
    rho = np.abs(precisions).sum(axis=2).max(axis=1)
    return gamma * np.array(
        [np.abs(coefficients[:, 0]).max(), linear.max(), 0.5 * rho.max()]
    )


def refinement_cut(weighted: np.ndarray, bound_terms: np.ndarray, sq_norms: np.ndarray) -> np.ndarray:
    """Per row, the value from which an expanded pair beyond the budget is computed again.

    The rows of ``weighted`` computed by the expansion beyond its precision
    budget are each within ``e_i`` (from ``bound_terms`` and the rows'
    squared norms around the centre) of their values.  A pair's
    responsibility is at most ``exp(w + e_i - best_i + e_i)``, with
    ``best_i`` the row's largest value; where that times ``e_i`` stays
    below the unit roundoff ``u``, its error changes the row's
    responsibilities and log-density by less than their own rounding, and
    it keeps its value.  So a pair is refined where ``w >= cut_i``,
    ``cut_i = best_i - 2 e_i - log(e_i) + log(u)`` (float64, shape
    (n_samples,)).  Rows whose products overflow (infinite norms, values
    that are not finite) get a cut that nothing reaches: the caller
    whitens them.
    """
    unit = np.finfo(weighted.dtype).eps / 2
    sq_norms = sq_norms.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        bound = bound_terms[0] + bound_terms[1] * np.sqrt(sq_norms) + bound_terms[2] * sq_norms
        cut = weighted.max(axis=0) - 2.0 * bound - np.log(bound) + np.log(unit)
    cut[~np.isfinite(bound) | np.isnan(cut)] = np.inf
    return cut


def refine_pairs(
    X: np.ndarray, centre: np.ndarray, features: np.ndarray, weighted: np.ndarray, plan: dict
) -> None:
    """Values in float64, in place, for the pairs of ``plan["components"]`` that need them.

    ``plan`` is :meth:`~gaussmix.sklearn_models.FullCovariance.prepare`'s
    ``"refined"``, made only where the compiled kernel loads (see
    :func:`compiled_kernels_load`); the pairs, those at or above
    :func:`refinement_cut`.  ``centre`` is the point ``X``'s features are
    centred on (the pass's centre for raw rows, zero for rows centred
    already), ``features`` its :func:`row_features`.
    """
    from ._quadratic_kernels import refine_log_prob

    n_features = X.shape[1]
    centred_t = features[1 : 1 + n_features]
    sq_norms = np.einsum("dn,dn->n", centred_t, centred_t)
    cut = refinement_cut(weighted, plan["bound_terms"], sq_norms)
    # The means in the rows' own coordinates: themselves for raw rows.
    means, means_low = split_difference(plan["means"], plan["centre"] - centre.astype(np.float64))
    refine_log_prob(
        np.ascontiguousarray(X), weighted, plan["components"], cut,
        plan["upper"], means, means_low, plan["const"],
    )


def split_difference(minuend: np.ndarray, subtrahend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``minuend - subtrahend`` as the float64 difference and its rounding error.

    Knuth's two-sum: ``high + low`` equals the difference exactly, so that
    ``(x - high) - low`` is ``x`` less the exact difference, rounded about
    once.
    """
    minuend = np.asarray(minuend, dtype=np.float64)
    negated = -np.asarray(subtrahend, dtype=np.float64)
    high = minuend + negated
    back = high - minuend
    low = (minuend - (high - back)) + (negated - back)
    return high, low


def compiled_kernels_load() -> bool:
    """Whether the compiled kernels of :mod:`gaussmix._quadratic_kernels` load (numba)."""
    return compiled_module("_quadratic_kernels") is not None
