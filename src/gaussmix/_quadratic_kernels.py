"""Compiled kernels of the expanded squares (numba, imported on first use).

* :func:`packed_products_into`: the rows' products ``x_a x_b``, the bulk of
  :func:`gaussmix._quadratic_forms.row_features`, bit for bit as numpy
  forms them and 3-4x faster (D = 16, a chunk of either dtype).
* :func:`refine_log_prob`: the expansion (:mod:`gaussmix._quadratic_forms`)
  computes a component far from the chunk's centre with an absolute error
  that grows with its distance; only the pairs whose responsibility could
  carry that error into the sums need the exact value, and on separated
  clusters they are about one per row.  This kernel computes those pairs
  from the row itself.
"""

from __future__ import annotations

import numpy as np
from numba import njit


# Pairs of one component computed at once: the whitening's multiply-adds
# run across them, a vector lane per pair (D = 16, about 300 pairs per
# component: 34 against 86 ns per pair one at a time; D = 8, 16 against 48).
PAIR_BATCH = 128


@njit(nogil=True, cache=True)
def refine_log_prob(X, weighted, components, cut, upper, means, means_low,
                    const):  # pragma: no cover
    """Overwrite ``weighted[components[j], i]`` wherever it is at least ``cut[i]``.

    The value is ``const[j] - ||U_j^T d||^2 / 2``, ``d = x_i - m_j``,
    ``U_j = upper[j]`` (upper-triangular, precision ``U_j U_j^T``), in
    float64, rounded once to ``weighted``'s dtype.  The mean ``m_j`` in the
    rows' coordinates comes in two parts, ``means[j] + means_low[j]`` (the
    second the rounding of the first, zero for raw rows), so that ``d``
    is rounded once however far the mean lies from the origin.  Each
    component's row of ``weighted`` is scanned in order (NaN compares
    false) and its pairs computed a batch at a time.
    """
    n_samples, n_features = X.shape
    rows = np.empty(PAIR_BATCH, np.int64)
    deviation = np.empty((n_features, PAIR_BATCH))
    for j in range(components.shape[0]):
        component = components[j]
        count = 0
        for i in range(n_samples):
            if weighted[component, i] >= cut[i]:
                for a in range(n_features):
                    deviation[a, count] = (np.float64(X[i, a]) - means[j, a]) - means_low[j, a]
                rows[count] = i
                count += 1
                if count == PAIR_BATCH:
                    _store_log_prob(weighted[component], rows, deviation, count,
                                    upper[j], const[j])
                    count = 0
        if count:
            _store_log_prob(weighted[component], rows, deviation, count, upper[j], const[j])


@njit(nogil=True, cache=True)
def _store_log_prob(weighted_row, rows, deviation, count, upper, const):  # pragma: no cover
    """``weighted_row[rows[p]] = const - ||U^T deviation[:, p]||^2 / 2`` for the first ``count``.

    The loops run across the pairs, one independent sum per pair, so they
    vectorise as they are, with IEEE arithmetic (no fastmath): the same
    bits on every machine.
    """
    n_features = deviation.shape[0]
    whitened = np.zeros((n_features, count))
    for a in range(n_features):
        for b in range(a, n_features):
            factor = upper[a, b]
            for p in range(count):
                whitened[b, p] += deviation[a, p] * factor
    sq_norms = np.zeros(count)
    for b in range(n_features):
        for p in range(count):
            sq_norms[p] += whitened[b, p] * whitened[b, p]
    for p in range(count):
        weighted_row[rows[p]] = const - 0.5 * sq_norms[p]


@njit(nogil=True, cache=True)
def packed_products_into(centred_t, out):  # pragma: no cover
    """``out[p] = centred_t[a] * centred_t[b]`` for the packed pairs ``a <= b``, in order.

    The products of :func:`gaussmix._covariance_numerics.packed_products`,
    bit for bit (one rounding each, no fastmath), written once where numpy
    gathers both factors first.
    """
    n_features, n_samples = centred_t.shape
    pair = 0
    for a in range(n_features):
        for b in range(a, n_features):
            for i in range(n_samples):
                out[pair, i] = centred_t[a, i] * centred_t[b, i]
            pair += 1
