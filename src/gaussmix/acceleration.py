"""SQUAREM: EM extrapolated along its own steps, with a monotonicity safeguard.

Plain EM crawls where clusters overlap: each step moves the parameters a
little along nearly the same direction.  SQUAREM (Varadhan and Roland, 2008,
"Simple and globally convergent methods for accelerating the convergence of
any EM algorithm", Scand. J. Statist. 35) takes two EM steps from ``p``,

    p1 = F(p),   p2 = F(p1),   r = p1 - p,   v = p2 - 2 p1 + p,

and jumps to ``p' = p - 2 a r + a**2 v`` with the step length
``a = -||r|| / ||v||`` (their scheme S3); ``a = -1`` gives ``p2``, plain EM.
The next cycle starts with an EM step from ``p'``, which returns any jump
to the model.  A jump is kept only if its parameters are valid (positive
weights, positive-definite covariances) and its log-likelihood is at least
that of ``p1``; otherwise the cycle falls back to ``p2``.  So every cycle
ends at least as high as the plain EM step it extrapolated.  A kept jump
whose next M-step fails (a covariance ill-defined, with ``reg_covar=0``)
also falls back to ``p2``.

Extrapolation is linear in the weights, means and covariances, so it keeps
a model only where any valid linear combination of its covariances is again
in the model: scikit-learn's four types and mclust's EII and EEI
(:data:`SQUAREM_MODELS`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .covariance import CovarianceModel
from .em import EMResult, maximization_with_refinement
from .params import MixtureParams
from .suffstats import SuffStats

__all__ = [
    "SQUAREM_MODELS",
    "check_acceleration",
    "iterate_squarem",
    "supported_acceleration",
]

# Models whose covariances stay in the model under valid linear combinations.
SQUAREM_MODELS = frozenset({"full", "tied", "diag", "spherical", "EII", "EEI"})

# Bound on the step length |a|: it starts at 1 (plain EM), is multiplied by
# this factor each time a step reaches it, and divided by it when a jump is
# rejected, so a rejected jump at the bound leaves the bound where it was
# (Varadhan and Roland's step.max0 = 1 and mstep = 4).
_STEP_FACTOR = 4.0
# Valid parameters are searched for by halving the jump towards p2 at most
# this many times.
_MAX_BACKTRACKS = 8


def check_acceleration(acceleration: str | None, model: CovarianceModel) -> None:
    """Raise a ValueError if ``acceleration`` cannot serve ``model``.

    The value itself is validated with the estimator's other parameters.
    """
    if acceleration == "squarem" and model.name not in SQUAREM_MODELS:
        supported = ", ".join(sorted(SQUAREM_MODELS))
        raise ValueError(
            f"acceleration='squarem' cannot extrapolate covariance_type "
            f"{model.name!r}: its covariances do not stay in the model under "
            f"linear combinations. Use one of {supported}, or acceleration=None."
        )


def supported_acceleration(acceleration: str | None, model: CovarianceModel) -> str | None:
    """``acceleration`` if it can serve ``model``, else None (plain EM)."""
    return acceleration if model.name in SQUAREM_MODELS else None


def _step_norms(
    p0: MixtureParams, p1: MixtureParams, p2: MixtureParams
) -> tuple[float, float]:
    """``||r||`` and ``||v||`` over weights, means and covariances.

    Covariances are measured in units of their mean magnitude and means in
    its square root, so the step length does not depend on the data's units.
    """
    cov_unit = float(np.mean(np.abs(p0.covariances))) or 1.0
    sq_r = sq_v = 0.0
    for a, b, c, unit in (
        (p0.weights, p1.weights, p2.weights, 1.0),
        (p0.means, p1.means, p2.means, np.sqrt(cov_unit)),
        (p0.covariances, p1.covariances, p2.covariances, cov_unit),
    ):
        r = (b - a) / unit
        v = (c - 2.0 * b + a) / unit
        sq_r += float(np.sum(r * r))
        sq_v += float(np.sum(v * v))
    return float(np.sqrt(sq_r)), float(np.sqrt(sq_v))


def _jump(
    model: CovarianceModel, p0: MixtureParams, p1: MixtureParams, p2: MixtureParams,
    step: float,
) -> MixtureParams | None:
    """``p0 - 2 a r + a**2 v`` for ``a = -step``, or None if it is not valid."""
    def combine(a, b, c):
        r = b - a
        v = c - 2.0 * b + a
        return a + 2.0 * step * r + step * step * v

    weights = combine(p0.weights, p1.weights, p2.weights)
    means = combine(p0.means, p1.means, p2.means)
    covariances = combine(p0.covariances, p1.covariances, p2.covariances)
    if not (np.all(weights > 0.0) and np.all(np.isfinite(means))
            and np.all(np.isfinite(covariances))):
        return None
    try:
        precisions_cholesky = model.precision_cholesky(covariances)
    except ValueError:
        return None
    params = MixtureParams(weights / np.sum(weights), means, covariances, precisions_cholesky)
    return params if params.all_finite() else None


def iterate_squarem(
    e_step: Callable[[MixtureParams], SuffStats],
    model: CovarianceModel,
    params: MixtureParams,
    *,
    dtype,
    tol: float,
    max_iter: int,
    reg_covar: float,
    lower_bound: float = -np.inf,
    on_iteration: Callable[[int, float, float], None] | None = None,
) -> EMResult:
    """EM accelerated by SQUAREM, on any data source (see :func:`gaussmix.em.iterate_em`).

    Parameters
    ----------
    e_step : callable
        ``e_step(params)`` makes one pass over the data and returns the
        summed :class:`~gaussmix.suffstats.SuffStats`.
    model : CovarianceModel
        One of :data:`SQUAREM_MODELS`.
    params : MixtureParams
        Where to start.
    dtype : dtype
        Precision of the data.
    tol : float
        The run stops when a plain EM step, the first of each cycle, gains
        less than ``tol`` in mean log-likelihood: the rule of plain EM.
    max_iter : int
        Most passes over the data; every pass counts, extrapolated or not
        (but the rare second pass of an M-step whose means moved far, see
        :func:`gaussmix.em.maximization_with_refinement`, as in plain EM).
    reg_covar : float
    lower_bound : float
        Mean log-likelihood before the first pass (warm starts).
    on_iteration : callable, optional
        Called after every pass with ``(pass, change, lower_bound)``.

    Returns
    -------
    EMResult
        ``n_iter`` counts passes; ``lower_bounds`` holds the mean
        log-likelihood of each pass's parameters (a rejected jump shows as a
        dip that the iteration did not keep); ``lower_bound`` is that of the
        last point kept, before the final M-step, as in plain EM.
    """
    lower_bounds: list[float] = []
    reseed_events: list[tuple[int, int, float]] = []
    n_passes = 0

    passed: list[MixtureParams] = []  # the parameters of the latest pass

    def one_pass(current: MixtureParams) -> tuple[SuffStats, float]:
        nonlocal n_passes
        n_passes += 1
        passed[:] = [current]
        stats = e_step(current)
        value = stats.mean_log_likelihood
        change = value - (lower_bounds[-1] if lower_bounds else lower_bound)
        lower_bounds.append(value)
        if on_iteration is not None:
            on_iteration(n_passes, change, value)
        return stats, value

    def m_step(stats: SuffStats) -> tuple[MixtureParams, bool]:
        new, reseeded = maximization_with_refinement(
            model, stats, passed[0], e_step, reg_covar, dtype
        )
        reseed_events.extend((n_passes, k, stats.worst_log_density) for k in reseeded)
        return new, bool(reseeded)

    if max_iter == 0:
        return EMResult(params, lower_bound, lower_bounds, 0, False, reseed_events)
    # A bound of 1 makes the first cycle plain EM: the start, which may come
    # from outside the model (a user's precisions_init for EII or EEI), never
    # enters a jump; only M-step results do.
    step_max = 1.0
    stats, value = one_pass(params)
    # Gain of the pass just made if it followed a plain EM step, else None.
    gain: float | None = value - lower_bound
    # The EM step that the kept jump extrapolated, and its log-likelihood.
    fallback: tuple[MixtureParams, float] | None = None
    while True:
        try:
            p1, reseeded = m_step(stats)
        except ValueError:
            # A jump can land where the next M-step finds a covariance
            # ill-defined (with reg_covar=0); the EM step it extrapolated
            # does not, so go on from there.
            if fallback is None:
                raise
            params, value1 = fallback
            fallback = None
            if n_passes == max_iter:
                return EMResult(params, value1, lower_bounds, n_passes, False, reseed_events)
            stats, value = one_pass(params)
            gain = value - value1
            continue
        fallback = None
        if gain is not None and abs(gain) < tol:
            return EMResult(p1, value, lower_bounds, n_passes, True, reseed_events)
        if n_passes == max_iter:
            return EMResult(p1, value, lower_bounds, n_passes, False, reseed_events)
        p0, value0 = params, value
        stats1, value1 = one_pass(p1)
        p2, reseeded2 = m_step(stats1)
        if abs(value1 - value0) < tol:
            return EMResult(p2, value1, lower_bounds, n_passes, True, reseed_events)
        if n_passes == max_iter:
            return EMResult(p2, value1, lower_bounds, n_passes, False, reseed_events)
        jump = None
        if not (reseeded or reseeded2):
            jump, step_max = _valid_jump(model, p0, p1, p2, step_max)
        if jump is not None:
            jump_stats, jump_value = one_pass(jump)
            if jump_value >= value1:
                params, stats, value, gain = jump, jump_stats, jump_value, None
                fallback = (p2, value1)
                continue
            step_max = max(1.0, step_max / _STEP_FACTOR)
            if n_passes == max_iter:
                return EMResult(p2, value1, lower_bounds, n_passes, False, reseed_events)
        params = p2
        stats, value = one_pass(p2)
        gain = value - value1


def _valid_jump(
    model: CovarianceModel, p0: MixtureParams, p1: MixtureParams, p2: MixtureParams,
    step_max: float,
) -> tuple[MixtureParams | None, float]:
    """The extrapolated point (None where plain EM is as far as it gets) and the new bound."""
    norm_r, norm_v = _step_norms(p0, p1, p2)
    if not (norm_v > 0.0 and np.isfinite(norm_r / norm_v)):
        return None, step_max
    step = min(max(norm_r / norm_v, 1.0), step_max)
    if step >= step_max:
        step_max *= _STEP_FACTOR
    for _ in range(_MAX_BACKTRACKS):
        if step <= 1.0:
            return None, step_max
        jump = _jump(model, p0, p1, p2, step)
        if jump is not None:
            return jump, step_max
        step = 0.5 * (step + 1.0)
    return None, step_max
