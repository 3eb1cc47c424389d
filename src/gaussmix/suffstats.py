"""Mergeable sufficient statistics of one E-step.

The E-step on a chunk of rows returns a :class:`SuffStats`; statistics of
disjoint chunks add up with ``+`` (or :func:`sum_stats`), so one EM engine
serves in-memory arrays, memory-mapped files, streams and distributed blocks.

Second-order statistics are accumulated around a *shift*, the means used in
the E-step, never as raw ``sum r x x^T``: the M-step then subtracts a small
correction instead of two nearly equal large numbers, so data offset by 1e6
fit as well as centred data.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["SuffStats", "sum_stats"]


@dataclass(frozen=True)
class SuffStats:
    """Sufficient statistics of a weighted Gaussian-mixture E-step.

    Attributes
    ----------
    sum_resp : ndarray of shape (n_components,)
        ``sum_i w_i r_ik``.
    shift_sum : ndarray of shape (n_components, n_features)
        ``sum_i w_i r_ik (x_i - shift_k)``.
    scatter : ndarray
        The covariance model's second-order statistic around ``shift``.
    shift : ndarray of shape (n_components, n_features)
        The centre of the accumulation (shared by every chunk of one pass).
    log_likelihood : float
        ``sum_i w_i log p(x_i)`` under the parameters of the E-step.
    weight_sum : float
        ``sum_i w_i``.
    worst_log_density : float
        Smallest ``log p(x_i)`` among rows of positive weight.
    worst_sample : ndarray of shape (n_features,)
        The row that reached ``worst_log_density``.
    worst_weight : float
        Its weight ``w_i`` (1 for unweighted rows).
    reseed_candidates : ndarray of shape (m, n_features) or None
        Further badly explained rows, at most one per component: the worst
        of each stretch of a chunk's rows, the ``m`` lowest of them by
        ``log p(x)``, in increasing order (ties: the earlier row first).
        Components that empty together are re-seeded at distinct rows.
    reseed_log_densities : ndarray of shape (m,) or None
        Their ``log p(x)``.
    reseed_weights : ndarray of shape (m,) or None
        Their weights (None: all 1).
    """

    sum_resp: np.ndarray
    shift_sum: np.ndarray
    scatter: np.ndarray
    shift: np.ndarray
    log_likelihood: float
    weight_sum: float
    worst_log_density: float = np.inf
    worst_sample: np.ndarray | None = None
    worst_weight: float = 1.0
    reseed_candidates: np.ndarray | None = None
    reseed_log_densities: np.ndarray | None = None
    reseed_weights: np.ndarray | None = None

    def __add__(self, other: SuffStats) -> SuffStats:
        if not isinstance(other, SuffStats):
            return NotImplemented
        return sum_stats((self, other))

    @property
    def candidate_weights(self) -> np.ndarray | None:
        """``reseed_weights``, ones where they were not given; None without candidates."""
        if self.reseed_candidates is None:
            return None
        if self.reseed_weights is None:
            return np.ones(len(self.reseed_candidates))
        return self.reseed_weights

    @property
    def mean_log_likelihood(self) -> float:
        """Weighted mean log-likelihood per sample."""
        return self.log_likelihood / self.weight_sum


def _accumulator(array: np.ndarray) -> np.ndarray:
    return np.array(array, dtype=np.promote_types(array.dtype, np.float64))


def sum_stats(stats: Iterable[SuffStats]) -> SuffStats:
    """Add statistics of disjoint chunks, in order.

    Accumulated in place (``a + b`` is ``sum_stats((a, b))``): a pass sums
    over a hundred chunks, and a new set of arrays for each addition cost as
    much as a small chunk's E-step.  Ties for the worst row keep the earlier.
    """
    iterator = iter(stats)
    try:
        first = next(iterator)
    except StopIteration:
        raise ValueError("No statistics to add: the data had no chunks.") from None
    second = next(iterator, None)
    if second is None:
        return first
    sum_resp = _accumulator(first.sum_resp)
    shift_sum = _accumulator(first.shift_sum)
    scatter = _accumulator(first.scatter)
    log_likelihood, weight_sum = first.log_likelihood, first.weight_sum
    worst_log_density, worst_sample = first.worst_log_density, first.worst_sample
    worst_weight = first.worst_weight
    limit = sum_resp.shape[0]
    candidates = _Candidates(limit)
    candidates.add(first)
    for item in itertools.chain((second,), iterator):
        if item.shift is not first.shift and not np.array_equal(item.shift, first.shift):
            raise ValueError(
                "Cannot add sufficient statistics accumulated around different "
                "shifts; accumulate every chunk of one pass around the same means."
            )
        sum_resp += item.sum_resp
        shift_sum += item.shift_sum
        scatter += item.scatter
        log_likelihood += item.log_likelihood
        weight_sum += item.weight_sum
        if item.worst_log_density < worst_log_density:
            worst_log_density, worst_sample = item.worst_log_density, item.worst_sample
            worst_weight = item.worst_weight
        candidates.add(item)
    reseed_candidates, reseed_log_densities, reseed_weights = candidates.lowest()
    return SuffStats(
        sum_resp=sum_resp,
        shift_sum=shift_sum,
        scatter=scatter,
        shift=first.shift,
        log_likelihood=log_likelihood,
        weight_sum=weight_sum,
        worst_log_density=worst_log_density,
        worst_sample=worst_sample,
        worst_weight=worst_weight,
        reseed_candidates=reseed_candidates,
        reseed_log_densities=reseed_log_densities,
        reseed_weights=reseed_weights,
    )


class _Candidates:
    """The ``limit`` re-seeding candidates of lowest ``log p(x)`` among the statistics added.

    Their arrays are collected and cut back to ``limit`` now and then, so
    that a pass over thousands of chunks holds a few of them at a time.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: list[np.ndarray] = []
        self.log_densities: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.count = 0

    def add(self, stats: SuffStats) -> None:
        if stats.reseed_candidates is None:
            return
        self.rows.append(stats.reseed_candidates)
        self.log_densities.append(stats.reseed_log_densities)
        self.weights.append(stats.candidate_weights)
        self.count += len(stats.reseed_log_densities)
        if self.count > 8 * self.limit:
            rows, log_densities, weights = self.lowest()
            self.rows, self.log_densities, self.weights = [rows], [log_densities], [weights]
            self.count = len(rows)

    def lowest(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        if not self.rows:
            return None, None, None
        log_densities = np.concatenate(self.log_densities)
        # Stable: among equal densities the earlier chunk's row comes first.
        order = np.argsort(log_densities, kind="stable")[: self.limit]
        return (
            np.concatenate(self.rows)[order], log_densities[order],
            np.concatenate(self.weights)[order],
        )
