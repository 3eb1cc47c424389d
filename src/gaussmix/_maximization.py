"""The M-step: parameters from summed statistics.

Pure functions of :class:`~gaussmix.suffstats.SuffStats`: the means and
covariances they imply, components re-seeded where they emptied, and a
second pass (through the caller's E-step) where the means moved too far
from the shift the statistics were accumulated around.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ._covariance_numerics import far_threshold
from .covariance import CovarianceModel, ill_defined_covariance_error
from .params import MixtureParams
from .suffstats import SuffStats

__all__ = [
    "EMPTY_COMPONENT_SHARE",
    "REFINE_FACTOR",
    "maximization",
    "maximization_with_refinement",
]

# A component whose share of the total weight falls below this has no data
# left: its mean and covariance would be numerical noise.
EMPTY_COMPONENT_SHARE = 1e-12


def maximization(
    model: CovarianceModel,
    stats: SuffStats,
    reg_covar: float,
    dtype: np.dtype = np.float64,
    *,
    reseed_empty: bool = True,
    previous: np.ndarray | None = None,
) -> tuple[MixtureParams, list[int]]:
    """M-step: parameters from summed statistics.

    Parameters
    ----------
    model : CovarianceModel
    stats : SuffStats
        Statistics summed over all chunks of one pass.
    reg_covar : float
        Added to the diagonal of each covariance.
    dtype : dtype
        Precision of the data; sets the floor added to component totals,
        as in scikit-learn (``10 * eps``).
    reseed_empty : bool
        Re-seed components with no weight left at the worst-explained sample
        (statistics from an E-step carry it).
    previous : ndarray or None
        The E-step's covariances, where the statistics come from one: a
        searching M-step starts there too
        (:meth:`~gaussmix.covariance.CovarianceModel.estimate_covariances_from`).

    Returns
    -------
    params : MixtureParams
        In float64.
    reseeded : list of int
        Components that were re-seeded.
    """
    sum_resp = stats.sum_resp
    if not all(np.all(np.isfinite(a)) for a in (sum_resp, stats.shift_sum, stats.scatter)):
        # Overflowed sums (float32 data near its range) would reach the
        # solvers (eigh, Cholesky) as inf and fail there obscurely.
        raise _non_finite_error()
    nk = _component_totals(stats, dtype)
    means = _moved_means(stats, nk)
    empty = np.array([], dtype=np.intp)
    if reseed_empty and stats.worst_sample is not None and len(nk) > 1:
        empty = np.flatnonzero(sum_resp < EMPTY_COMPONENT_SHARE * stats.weight_sum)
        if empty.size == len(nk):
            empty = empty[:0]
    if getattr(model, "zeroes_collapsed_scatter", False):
        stats = _collapsed_scatter_zeroed(model, stats, nk, means, dtype)
    covariances = _estimate_covariances(model, stats, nk, reg_covar, empty, previous)
    weights = nk / np.sum(nk)

    reseeded: list[int] = []
    if empty.size:
        for k, (seed, seed_weight) in zip(empty, _reseed_rows(stats, empty.size)):
            covariances = model.pooled(covariances, weights, int(k))
            means[k] = seed
            # The share of the weight of its sample (1 / n unweighted): enough
            # to let the next E-step claim data, and the same whatever the
            # weights' scale.  Never zero, which no E-step could lift.
            weights[k] = max(seed_weight / stats.weight_sum, np.finfo(np.float64).tiny)
            reseeded.append(int(k))
        weights = weights / np.sum(weights)

    try:
        precisions_cholesky = model.precision_cholesky(covariances)
    except ValueError as error:
        # The M-step runs in float64; the advice must name the data's dtype.
        raise ill_defined_covariance_error(dtype, getattr(error, "model_name", None)) from None
    params = MixtureParams(weights, means, covariances, precisions_cholesky)
    if not params.all_finite():
        raise _non_finite_error()
    return params, reseeded


# A component's second moments lose about eps * t of relative precision when
# accumulated at squared whitened distance t from its new mean.  The E-step
# keeps t below far_threshold (1e-12 of precision in float64, 1e-5 in
# float32) for the means it is given; an M-step whose means moved beyond
# this multiple of that bound is redone from a second pass around them.
# Ordinary EM steps move means by a fraction of a standard deviation and
# never come near it; a start far from the data (means_init, a warm start on
# shifted data) does.
REFINE_FACTOR = 4.0


def _reseed_rows(stats: SuffStats, count: int) -> list[tuple[np.ndarray, float]]:
    """``count`` badly explained rows and their weights, distinct rows where the data allow.

    The worst-explained row first, then the statistics' further candidates
    in order, each skipped where it equals a row already taken; when
    distinct rows run out, the worst row again.
    """
    worst = (stats.worst_sample, stats.worst_weight)
    rows = [worst]
    if stats.reseed_candidates is None:
        return rows * count
    for candidate, weight in zip(stats.reseed_candidates, stats.candidate_weights):
        if len(rows) == count:
            break
        if not any(np.array_equal(candidate, row) for row, _ in rows):
            rows.append((candidate, float(weight)))
    return rows + [worst] * (count - len(rows))


def _component_totals(stats: SuffStats, dtype) -> np.ndarray:
    """``sum_resp`` plus scikit-learn's floor, ``10 eps``: the M-step's divisors."""
    return stats.sum_resp + 10 * np.finfo(dtype).eps


def _moved_means(stats: SuffStats, nk: np.ndarray) -> np.ndarray:
    """The M-step's means, ``shift + shift_sum / nk``."""
    return stats.shift + stats.shift_sum / nk[:, None]


def _shared_scatter(model: CovarianceModel, n_features: int) -> bool:
    """Whether the model sums one scatter over all components (tied), not one each."""
    return model.parameter_shape(1, n_features) == model.parameter_shape(2, n_features)


def maximization_with_refinement(
    model: CovarianceModel,
    stats: SuffStats,
    params: MixtureParams,
    e_step: Callable[[MixtureParams], SuffStats],
    reg_covar: float,
    dtype,
) -> tuple[MixtureParams, list[int]]:
    """:func:`maximization`, redone from a second pass when the means moved too far.

    ``stats`` come from ``e_step(params)``.  Second moments are accumulated
    around shifts chosen from ``params``' means; when the new means lie far
    from them (in whitened distance, see ``REFINE_FACTOR``), the correction
    to the new means cancels most of their digits.  The second pass keeps
    the responsibilities (the same ``params``) and accumulates around the new
    means, so the update is the same EM step, computed accurately.  A first
    M-step that fails outright (a scatter with no precision left) is
    retried the same way before its error is raised.
    """
    previous = np.asarray(params.covariances, dtype=np.float64)
    try:
        new, reseeded = maximization(model, stats, reg_covar, dtype, previous=previous)
    except ValueError:
        means = _moved_means(stats, _component_totals(stats, dtype))
        if np.array_equal(means, stats.shift):
            raise
        return maximization(
            model, e_step(replace(params, shift=means)), reg_covar, dtype, previous=previous
        )
    try:
        moved = model.whitened_sq_norms(new.precisions_cholesky, new.means - stats.shift)
    except NotImplementedError:  # a registered model that cannot whiten
        return new, reseeded
    moved[reseeded] = 0.0  # placed at a sample, with no scatter of their own
    if not np.any(moved > REFINE_FACTOR * far_threshold(dtype)):
        return new, reseeded
    refined = e_step(replace(params, shift=_moved_means(stats, _component_totals(stats, dtype))))
    return maximization(model, refined, reg_covar, dtype, previous=previous)


# A component holding copies of one row has a centred scatter of zero;
# computed from moments around the shift it comes out as rounding noise of
# either sign: of its own moments (COLLAPSE_SLACK below; the first moments
# of far components come from the scatter's own differences, see
# _far_scatter), or of rows that differ in their last places.  Variances
# within this many units in the last place of the mean, in every feature,
# count as that zero: rows spread over so few representable values carry
# no shape for the models that share one.  Eight zeroed real clusters of
# float32 data near 1e6 whose standard deviations were below 0.95 (16
# units of 0.0625): VEI, VEE, VVE and VEV re-seeded them without end.
COLLAPSE_ULPS = 2
# ... or within this many eps of the moments they were computed from.
COLLAPSE_SLACK = 64


def _collapsed_scatter_zeroed(
    model: CovarianceModel, stats: SuffStats, nk: np.ndarray, means: np.ndarray, dtype
) -> SuffStats:
    """``stats`` with an exact zero scatter for components collapsed onto one point.

    mclust's constrained M-steps of varying volumes give a component of
    zero scatter volume zero and leave the shape or orientation they share
    to the others
    (``reg_covar`` then gives it its covariance); its rounding noise, taken
    for a scatter, would set that shared shape (VEE on rows half of which
    are one repeated point: a variance of 3e301 in the other component).
    Zero first moments around the shift with a zero scatter make the
    centred scatter exactly zero; the means were computed before.  Each
    feature is compared with its own mean's resolution, so that a large
    coordinate in one feature does not hide a spread in another.
    """
    centred = model.centred_scatter(stats.scatter, stats.sum_resp, stats.shift_sum, nk)
    if centred.ndim == 3:
        variances = np.diagonal(centred, axis1=1, axis2=2)
        around_shift = np.diagonal(stats.scatter, axis1=1, axis2=2)
    elif centred.ndim == 2:
        variances, around_shift = centred, stats.scatter
    else:
        return stats  # traces name no feature's resolution (no such model opts in)
    eps = np.finfo(dtype).eps
    resolution = nk[:, None] * (COLLAPSE_ULPS * eps * means) ** 2
    # Moments summed around a shift away from the point (the mixture's
    # centre) cancel to about eps times their own size instead.
    noise = np.maximum(resolution, COLLAPSE_SLACK * eps * np.abs(around_shift))
    within = np.abs(variances) <= noise
    collapsed = np.all(within, axis=1) & np.any(variances != 0, axis=1)
    if not collapsed.any():
        return stats
    scatter, shift_sum = stats.scatter.copy(), stats.shift_sum.copy()
    scatter[collapsed] = 0.0
    shift_sum[collapsed] = 0.0
    return replace(stats, scatter=scatter, shift_sum=shift_sum)


def _estimate_covariances(
    model: CovarianceModel, stats: SuffStats, nk: np.ndarray, reg_covar: float,
    empty: np.ndarray, previous: np.ndarray | None = None,
) -> np.ndarray:
    """The model's covariance estimate; without the ``empty`` components where they spoil it.

    A constrained M-step (mclust's models that divide by volumes or
    determinants) has no maximum while a component holds no data, and
    returns NaN for every component.  The maximiser over the components
    that keep data is then the M-step; the emptied ones get placeholders,
    replaced when they are re-seeded.
    """
    def estimate(keep):
        statistics = (stats.scatter[keep], stats.sum_resp[keep], stats.shift_sum[keep], nk[keep])
        if previous is None:
            return model.estimate_covariances(*statistics, reg_covar)
        return model.estimate_covariances_from(*statistics, reg_covar, previous[keep])

    covariances = estimate(slice(None))
    shared = _shared_scatter(model, stats.shift.shape[1])
    if not empty.size or shared or np.all(np.isfinite(covariances)):
        return covariances
    keep = np.setdiff1d(np.arange(nk.shape[0]), empty)
    kept = estimate(keep)
    covariances = np.empty((nk.shape[0], *kept.shape[1:]), dtype=kept.dtype)
    covariances[keep] = kept
    covariances[empty] = kept[0]
    return covariances


def _non_finite_error() -> ValueError:
    return ValueError(
        "The M-step produced non-finite parameters; the data may be too "
        "badly scaled for this model. Scale the input data, increase "
        "reg_covar, or decrease the number of components."
    )
