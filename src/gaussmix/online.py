"""Online EM for data that arrive in batches: stepwise EM.

Stepwise EM (Cappé and Moulines, 2009; Liang and Klein, 2009) keeps running
sufficient statistics per unit weight and moves them a step towards each
new batch's statistics, computed under the current parameters:

    s_t = (1 - eta_t) s_{t-1} + eta_t s(batch_t; theta_{t-1}),
    theta_t = M-step(s_t),
    eta_t = (learning_offset + t) ** -learning_decay,

with ``t`` the number of batches already seen.  A decay in (0.5, 1] makes
the steps shrink fast enough to average the batches' noise away and slowly
enough to forget the poor early parameters (Robbins-Monro conditions); the
offset damps the first steps.  Batches of one stream must be statistically
alike (shuffle ordered data first).

Statistics of different batches are accumulated around different shifts
(each E-step's means); they are merged around the newest shift with
:meth:`~gaussmix.covariance.CovarianceModel.moved_scatter`, never through
raw second moments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .covariance import CovarianceModel
from .em import maximization
from .params import MixtureParams
from .suffstats import SuffStats

__all__ = [
    "OnlineState", "step_size", "stats_of_params", "per_unit_weight", "moved", "blend", "update",
]


@dataclass(frozen=True)
class OnlineState:
    """Running statistics of a stream and the number of batches they hold."""

    stats: SuffStats
    n_steps: int


def step_size(n_steps: int, learning_decay: float, learning_offset: float) -> float:
    """Weight of the next batch after ``n_steps`` batches: ``(offset + n) ** -decay``.

    The first batch (``n_steps == 0``) always has weight one.
    """
    if n_steps == 0:
        return 1.0
    return float((learning_offset + n_steps) ** -learning_decay)


def stats_of_params(
    model: CovarianceModel, params: MixtureParams, reg_covar: float, log_likelihood: float
) -> SuffStats:
    """Statistics per unit weight whose M-step gives ``params`` back: a fitted model's.

    ``log_likelihood`` is the mean log-likelihood it was fitted to.
    """
    weights = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    return SuffStats(
        sum_resp=weights,
        shift_sum=np.zeros_like(means),
        scatter=model.scatter_of_covariances(
            np.asarray(params.covariances, dtype=np.float64), weights, reg_covar, means.shape[1]
        ),
        shift=means,
        log_likelihood=float(log_likelihood),
        weight_sum=1.0,
    )


def _scaled(stats: SuffStats, factor: float) -> SuffStats:
    """The statistics of ``factor`` times the weight (the M-step gives the same parameters)."""
    # replace: the worst-explained rows travel with the statistics, their
    # weights scaled as all others (a re-seeded component takes its row's share).
    return replace(
        stats,
        sum_resp=stats.sum_resp * factor,
        shift_sum=stats.shift_sum * factor,
        scatter=stats.scatter * factor,
        log_likelihood=stats.log_likelihood * factor,
        weight_sum=stats.weight_sum * factor,
        worst_weight=stats.worst_weight * factor,
        reseed_weights=None if stats.reseed_candidates is None
        else stats.candidate_weights * factor,
    )


def per_unit_weight(stats: SuffStats) -> SuffStats:
    """Statistics divided by their total weight: batches of any size then mix."""
    return replace(_scaled(stats, 1.0 / stats.weight_sum), weight_sum=1.0)


def moved(model: CovarianceModel, stats: SuffStats, shift: np.ndarray) -> SuffStats:
    """The same statistics accumulated around ``shift`` instead of ``stats.shift``."""
    step = np.asarray(shift, dtype=np.float64) - stats.shift
    return replace(
        stats,
        shift_sum=stats.shift_sum - stats.sum_resp[:, None] * step,
        scatter=model.moved_scatter(stats.scatter, stats.sum_resp, stats.shift_sum, step),
        shift=np.asarray(shift, dtype=np.float64),
    )


def blend(
    model: CovarianceModel, running: SuffStats, batch: SuffStats, eta: float
) -> SuffStats:
    """``(1 - eta) running + eta batch``, both per unit weight, around the batch's shift.

    The worst-explained sample is the batch's: only current data can
    re-seed an emptied component.
    """
    batch = per_unit_weight(batch)
    running = moved(model, running, batch.shift)
    keep = 1.0 - eta
    return replace(
        batch,
        sum_resp=keep * running.sum_resp + eta * batch.sum_resp,
        shift_sum=keep * running.shift_sum + eta * batch.shift_sum,
        scatter=keep * running.scatter + eta * batch.scatter,
        log_likelihood=keep * running.log_likelihood + eta * batch.log_likelihood,
        weight_sum=1.0,
    )


def update(
    model: CovarianceModel,
    state: OnlineState | None,
    batch: SuffStats,
    *,
    reg_covar: float,
    dtype,
    learning_decay: float,
    learning_offset: float,
) -> tuple[OnlineState, MixtureParams, list[int]]:
    """One stepwise-EM step: blend a batch's statistics in, then the M-step.

    Parameters
    ----------
    model : CovarianceModel
    state : OnlineState or None
        The stream so far; None before its first batch.
    batch : SuffStats
        The batch's E-step under the current parameters.
    reg_covar, dtype
        As for :func:`gaussmix.em.maximization`.
    learning_decay, learning_offset : float
        The step-size schedule, see :func:`step_size`.

    Returns
    -------
    state : OnlineState
    params : MixtureParams
    reseeded : list of int
        Components re-seeded because they were left with no weight.
    """
    n_steps = 0 if state is None else state.n_steps
    if state is None:
        running = per_unit_weight(batch)
    else:
        eta = step_size(n_steps, learning_decay, learning_offset)
        running = blend(model, state.stats, batch, eta)
    # The M-step's floor on component totals (10 eps) is sized for totals
    # counted in rows; per unit weight it would perturb a component of
    # share s by 10 eps / s (1e-3 for s = 1e-3 in float32).  Counted in the
    # batch's rows instead, the step is the same up to that floor.
    params, reseeded = maximization(
        model, _scaled(running, max(batch.weight_sum, 1.0)), reg_covar, dtype
    )
    return OnlineState(running, n_steps + 1), params, reseeded
