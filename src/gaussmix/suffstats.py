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
    """

    sum_resp: np.ndarray
    shift_sum: np.ndarray
    scatter: np.ndarray
    shift: np.ndarray
    log_likelihood: float
    weight_sum: float
    worst_log_density: float = np.inf
    worst_sample: np.ndarray | None = None

    def __add__(self, other: SuffStats) -> SuffStats:
        if not isinstance(other, SuffStats):
            return NotImplemented
        if self.shift is not other.shift and not np.array_equal(self.shift, other.shift):
            raise ValueError(
                "Cannot add sufficient statistics accumulated around different "
                "shifts; accumulate every chunk of one pass around the same means."
            )
        if other.worst_log_density < self.worst_log_density:
            worst = (other.worst_log_density, other.worst_sample)
        else:
            worst = (self.worst_log_density, self.worst_sample)
        return SuffStats(
            sum_resp=self.sum_resp + other.sum_resp,
            shift_sum=self.shift_sum + other.shift_sum,
            scatter=self.scatter + other.scatter,
            shift=self.shift,
            log_likelihood=self.log_likelihood + other.log_likelihood,
            weight_sum=self.weight_sum + other.weight_sum,
            worst_log_density=worst[0],
            worst_sample=worst[1],
        )

    @property
    def mean_log_likelihood(self) -> float:
        """Weighted mean log-likelihood per sample."""
        return self.log_likelihood / self.weight_sum


def sum_stats(stats: Iterable[SuffStats]) -> SuffStats:
    """Add statistics of disjoint chunks, in order."""
    iterator = iter(stats)
    try:
        total = next(iterator)
    except StopIteration:
        raise ValueError("No statistics to add: the data had no chunks.") from None
    for item in iterator:
        total = total + item
    return total
