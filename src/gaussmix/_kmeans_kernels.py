"""Compiled kernels of :mod:`gaussmix.kmeans` (numba, imported on first use).

Each kernel works on a range of rows, releases the GIL, and writes its sums
per block of :data:`BLOCK_ROWS` rows, so that the threads of
:mod:`gaussmix._parallel` can share the rows and the totals do not depend on
how many threads there were.

Squared distances of rows that must be compared with every centre come from
one matrix product per block (``|x|^2 - 2 x.c + |c|^2``); the others are
settled by Hamerly's bounds (Hamerly 2010, "Making k-means even faster"):
an upper bound ``u`` on the distance to the row's own centre and a lower
bound ``l`` on the distance to any other.  Both are kept valid, not just
close: each distance that sets them is widened by ``slack``, an upper bound
of its rounding error.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BLOCK_ROWS = 2048
# Reassociated sums (vector instructions) change a distance by a few ulps,
# far inside the slack and tie margins of gaussmix.kmeans.
_FAST = {"reassoc", "contract"}


@njit(nogil=True, cache=True)
def candidate_distances(
    Xc, row_sq, start, stop, candidates_t, candidates_sq, closest, out
):  # pragma: no cover
    """``out[t, i] = min(closest[i], |Xc[i] - c_t|^2)`` for rows ``[start, stop)``.

    As scikit-learn's k-means++ computes them: ``|x|^2 - 2 x.c + |c|^2`` in
    float64 (float32 data up-cast), clipped at zero, stored in ``out``'s
    dtype.  ``candidates_t`` holds the candidates as columns; ``closest`` is
    None for the first seed.
    """
    n_features = Xc.shape[1]
    n_candidates = candidates_t.shape[1]
    rows = np.empty((BLOCK_ROWS, n_features))
    products = np.empty((BLOCK_ROWS, n_candidates))
    for block_start in range(start, stop, BLOCK_ROWS):
        n_rows = min(BLOCK_ROWS, stop - block_start)
        for p in range(n_rows):
            for d in range(n_features):
                rows[p, d] = Xc[block_start + p, d]
        np.dot(rows[:n_rows], candidates_t, products[:n_rows])
        for p in range(n_rows):
            i = block_start + p
            for t in range(n_candidates):
                out[t, i] = max(row_sq[i] - 2.0 * products[p, t] + candidates_sq[t], 0.0)
                if closest is not None and closest[i] < out[t, i]:
                    out[t, i] = closest[i]


@njit(nogil=True, cache=True, fastmath=_FAST)
def _own_distance(Xc, i, centers, label):  # pragma: no cover
    total = 0.0
    for d in range(Xc.shape[1]):
        diff = np.float64(Xc[i, d]) - centers[label, d]
        total += diff * diff
    return total


# From this many clusters on, the minima over the centres run as four
# interleaved chains (one chain's latency is the limit): K=64 19 -> 14.6 ms
# per 1e5 compared rows; at K=16 the single chain was as fast.
_MANY_CLUSTERS = 32


@njit(nogil=True, cache=True, inline="always")
def _smallest(values):  # pragma: no cover
    """The smallest of ``values``, in four interleaved chains."""
    n = values.shape[0]
    a = values[0]
    b = values[1] if n > 1 else a
    c = values[2] if n > 2 else a
    e = values[3] if n > 3 else a
    j = 4
    while j + 4 <= n:
        a = min(a, values[j])
        b = min(b, values[j + 1])
        c = min(c, values[j + 2])
        e = min(e, values[j + 3])
        j += 4
    while j < n:
        a = min(a, values[j])
        j += 1
    return min(min(a, b), min(c, e))


@njit(nogil=True, cache=True)
def lloyd_rows(
    Xc, weights, start, stop, centers, centers_t, centers_sq, half_gap, shift, first_moved,
    largest_shift, second_shift, labels, upper, lower, row_norms, largest_norm, slack_factor,
    tie_factor, block_sums, block_weights, block_counts, first, update,
):  # pragma: no cover
    """One Lloyd iteration on rows ``[start, stop)``: labels, bounds and block sums.

    Returns ``(changed, ties, compared)``: rows whose label changed, rows
    whose two nearest centres are too close to call (their squared distances
    within ``tie_factor * (|x| + max|c|)^2``), and rows compared with every
    centre.  ``first``: no bounds yet (every row is compared; labels are
    -1).  ``update``: keep each block's weighted row sums, weights and row
    counts per centre (``block_sums``, ``block_weights``, ``block_counts``,
    indexed by block number, ``start`` a block boundary) up to date with the
    new labels: a row that changes label moves its terms from one centre's
    sums to the other's.
    """
    n_clusters, n_features = centers.shape
    changed = 0
    ties = 0
    compared = 0
    pending = np.empty(BLOCK_ROWS, dtype=np.int64)
    rows = np.empty((BLOCK_ROWS, n_features))
    dists = np.empty(n_clusters)
    all_products = np.empty((BLOCK_ROWS, n_clusters))
    for block_start in range(start, stop, BLOCK_ROWS):
        block_stop = min(block_start + BLOCK_ROWS, stop)
        n_pending = 0
        for i in range(block_start, block_stop):
            scale = row_norms[i] + largest_norm
            scale *= scale
            label = labels[i]
            if not first:
                # The centres moved by ``shift``: widen the bounds as much.
                u = upper[i] + shift[label]
                lo = lower[i] - (second_shift if label == first_moved else largest_shift)
                bound = max(lo, half_gap[label])
                if bound > u and bound * bound - u * u > tie_factor * scale:
                    upper[i] = u
                    lower[i] = lo
                    continue
                u = np.sqrt(_own_distance(Xc, i, centers, label) + slack_factor * scale)
                upper[i] = u
                lower[i] = lo
                if bound > u and bound * bound - u * u > tie_factor * scale:
                    continue
            for d in range(n_features):
                rows[n_pending, d] = Xc[i, d]
            pending[n_pending] = i
            n_pending += 1
        if n_pending:
            compared += n_pending
            products = all_products[:n_pending]
            np.dot(rows[:n_pending], centers_t, products)
            for p in range(n_pending):
                i = pending[p]
                row_sq = row_norms[i] * row_norms[i]
                for j in range(n_clusters):
                    dists[j] = row_sq - 2.0 * products[p, j] + centers_sq[j]
                # The nearest centre (the first of equals, as scikit-learn's
                # strict '<'), then the next nearest.
                if n_clusters < _MANY_CLUSTERS:
                    # Selects, not branches, which the comparisons would mispredict.
                    best = 0
                    nearest = dists[0]
                    for j in range(1, n_clusters):
                        closer = dists[j] < nearest
                        best = j if closer else best
                        nearest = dists[j] if closer else nearest
                    dists[best] = np.inf
                    runner_up = dists[0]
                    for j in range(1, n_clusters):
                        runner_up = min(runner_up, dists[j])
                else:
                    nearest = _smallest(dists)
                    best = 0
                    while dists[best] != nearest:
                        best += 1
                    dists[best] = np.inf
                    runner_up = _smallest(dists)
                scale = row_norms[i] + largest_norm
                scale *= scale
                if runner_up - nearest <= tie_factor * scale:
                    ties += 1
                slack = slack_factor * scale
                upper[i] = np.sqrt(max(nearest, 0.0) + slack)
                lower[i] = np.sqrt(max(runner_up - slack, 0.0))
                old = labels[i]
                if best != old:
                    changed += 1
                    labels[i] = best
                    if update:
                        block = i // BLOCK_ROWS
                        weight = np.float64(weights[i])
                        if old >= 0:
                            block_weights[block, old] -= weight
                            block_counts[block, old] -= 1
                            for d in range(n_features):
                                block_sums[block, old, d] -= weight * Xc[i, d]
                        block_weights[block, best] += weight
                        block_counts[block, best] += 1
                        for d in range(n_features):
                            block_sums[block, best, d] += weight * Xc[i, d]
    return changed, ties, compared
