"""Compiled kernels of the expanded squares (numba, imported on first use).

* :func:`packed_products_into`: the rows' products ``x_a x_b``, the bulk of
  :func:`gaussmix._quadratic_forms.row_features`, bit for bit as numpy
  forms them and 3-4x faster (D = 16, a chunk of either dtype).
* :func:`pair_log_prob`: the expansion (:mod:`gaussmix._quadratic_forms`)
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


@njit(nogil=True, cache=True, fastmath=True)
def pair_log_prob(X, centre, weighted, components, pair_components, pair_rows,
                  upper, offsets, const):  # pragma: no cover
    """Overwrite ``weighted[components[j], i]`` for every pair ``(j, i)``.

    With ``j = pair_components[p]`` (sorted) and ``i = pair_rows[p]``, the
    value is ``const[j] - ||U_j^T d||^2 / 2``, ``d = (x_i - centre) -
    offsets[j]``, ``U_j = upper[j]`` (upper-triangular, precision
    ``U_j U_j^T``), all in float64 and rounded once to ``weighted``'s
    dtype.  fastmath lets the sums vectorise; in float64 their order
    changes nothing at the precision stored.
    """
    n_pairs = pair_components.shape[0]
    n_features = X.shape[1]
    deviation = np.empty((n_features, PAIR_BATCH))
    whitened = np.empty((n_features, PAIR_BATCH))
    sq_norms = np.empty(PAIR_BATCH)
    start = 0
    while start < n_pairs:
        j = pair_components[start]
        stop = start + 1
        while stop < n_pairs and stop - start < PAIR_BATCH and pair_components[stop] == j:
            stop += 1
        count = stop - start
        for p in range(count):
            i = pair_rows[start + p]
            for a in range(n_features):
                deviation[a, p] = (np.float64(X[i, a]) - centre[a]) - offsets[j, a]
        whitened[:, :count] = 0.0
        for a in range(n_features):
            for b in range(a, n_features):
                factor = upper[j, a, b]
                for p in range(count):
                    whitened[b, p] += deviation[a, p] * factor
        sq_norms[:count] = 0.0
        for b in range(n_features):
            for p in range(count):
                sq_norms[p] += whitened[b, p] * whitened[b, p]
        component = components[j]
        for p in range(count):
            weighted[component, pair_rows[start + p]] = const[j] - 0.5 * sq_norms[p]
        start = stop


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
