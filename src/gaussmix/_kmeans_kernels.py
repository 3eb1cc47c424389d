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

Which rows a bound settles is unpredictable, so a block's rows pass through
the tests as lists built without branches, and the nearest two centres of
the compared rows are found across rows (vector instructions) rather than
one row's chain of comparisons at a time: N = 1e5, D = 16, one thread,
late iterations 1.5-1.8x faster than a loop with branches per row.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

BLOCK_ROWS = 2048
# Reassociated sums (vector instructions) change a distance by a few ulps,
# far inside the slack and tie margins of gaussmix.kmeans.
_FAST = {"reassoc", "contract"}


def _float64_rows(rows, buffer):  # pragma: no cover
    """``rows`` as float64: themselves, or (float32) copied into ``buffer``."""
    raise NotImplementedError("compiled use only")


@overload(_float64_rows)
def _float64_rows_typed(rows, buffer):  # pragma: no cover
    if rows.dtype == types.float64:
        return lambda rows, buffer: rows

    def upcast(rows, buffer):
        copied = buffer[: rows.shape[0]]
        for p in range(rows.shape[0]):
            for d in range(rows.shape[1]):
                copied[p, d] = rows[p, d]
        return copied

    return upcast


@njit(nogil=True, cache=True)
def candidate_distances(
    Xc, row_sq, start, stop, candidates_t, candidates_sq, closest, out
):  # pragma: no cover
    """``out[t, i] = min(closest[i], |Xc[i] - c_t|^2)`` for rows ``[start, stop)``.

    As scikit-learn's k-means++ computes them: ``|x|^2 - 2 x.c + |c|^2`` in
    float64 (float32 data up-cast), clipped at zero, stored in ``out``'s
    dtype.  ``candidates_t`` holds the candidates as columns; ``closest`` is
    None for the first seed.  The products of a block come from one matrix
    product on the rows in place, and each candidate's distances are then
    written in one contiguous run (1.5-2.2x faster than a row's candidates
    at a time, which writes to every candidate's row of ``out`` in turn).
    """
    n_candidates = candidates_t.shape[1]
    buffer = np.empty(BLOCK_ROWS * n_candidates)
    # float32 rows are up-cast into this; float64 rows need none.
    rows_buffer = np.empty((BLOCK_ROWS if Xc.itemsize == 4 else 0, Xc.shape[1]))
    for block_start in range(start, stop, BLOCK_ROWS):
        n_rows = min(BLOCK_ROWS, stop - block_start)
        products = buffer[: n_rows * n_candidates].reshape((n_rows, n_candidates))
        rows = _float64_rows(Xc[block_start : block_start + n_rows], rows_buffer)
        np.dot(rows, candidates_t, products)
        for t in range(n_candidates):
            candidate_sq = candidates_sq[t]
            for p in range(n_rows):
                i = block_start + p
                distance = row_sq[i] - 2.0 * products[p, t] + candidate_sq
                distance = distance if distance > 0.0 else 0.0
                if closest is not None:
                    nearest = closest[i]
                    distance = distance if distance < nearest else nearest
                out[t, i] = distance


@njit(nogil=True, cache=True)
def weighted_cumsum(weights, values, out):  # pragma: no cover
    """``out = np.cumsum(weights * values)``, bit for bit, in one pass.

    numpy rounds each product to the arrays' dtype and then adds them in
    order; so does this loop (no fast-math, so no fused multiply-add), in
    the same dtype: the k-means++ draws meet the same cumulative sums as in
    scikit-learn.  One pass instead of numpy's two, and no call overhead
    per element: about 4x faster at 1e5 rows.
    """
    total = weights[0] * values[0]
    out[0] = total
    for i in range(1, values.shape[0]):
        total = total + weights[i] * values[i]
        out[i] = total


@njit(nogil=True, cache=True, fastmath=_FAST)
def _own_distance(Xc, i, centers, label):  # pragma: no cover
    total = 0.0
    for d in range(Xc.shape[1]):
        diff = np.float64(Xc[i, d]) - centers[label, d]
        total += diff * diff
    return total


@njit(nogil=True, cache=True)
def lloyd_rows(
    Xc, weights, start, stop, centers, centers_sq, half_gap, shift, first_moved,
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
    check = np.empty(BLOCK_ROWS, dtype=np.int64)
    rows = np.empty((BLOCK_ROWS, n_features))
    nearest_v = np.empty(BLOCK_ROWS)
    second_v = np.empty(BLOCK_ROWS)
    row_sq_v = np.empty(BLOCK_ROWS)
    best_v = np.empty(BLOCK_ROWS, dtype=np.int64)
    products_buffer = np.empty(n_clusters * BLOCK_ROWS)
    for block_start in range(start, stop, BLOCK_ROWS):
        block_stop = min(block_start + BLOCK_ROWS, stop)
        n_pending = 0
        if first:
            for i in range(block_start, block_stop):
                pending[n_pending] = i
                n_pending += 1
        else:
            # Branch-free passes (the tests' outcomes are unpredictable): rows
            # the widened bounds settle, then those their own centre's exact
            # distance settles, and the rest are compared.
            n_check = 0
            for i in range(block_start, block_stop):
                scale = row_norms[i] + largest_norm
                scale *= scale
                label = labels[i]
                u = upper[i] + shift[label]
                lo = lower[i] - (second_shift if label == first_moved else largest_shift)
                upper[i] = u
                lower[i] = lo
                bound = max(lo, half_gap[label])
                settled = (bound > u) & (bound * bound - u * u > tie_factor * scale)
                check[n_check] = i
                n_check += not settled
            # The rows to check are copied out first, in one pass of
            # independent loads, and their own distances taken from the copy,
            # which then keeps the rows left to compare: where the data
            # outgrow the caches, each row read for its own distance alone
            # waited on memory (N = 1e6, D = K = 16, a late iteration's
            # kernel: 24.7-25.0 -> 21.9-22.7 ms).
            for q in range(n_check):
                i = check[q]
                for d in range(n_features):
                    rows[q, d] = Xc[i, d]
            for q in range(n_check):
                i = check[q]
                scale = row_norms[i] + largest_norm
                scale *= scale
                label = labels[i]
                u = np.sqrt(_own_distance(rows, q, centers, label) + slack_factor * scale)
                upper[i] = u
                bound = max(lower[i], half_gap[label])
                settled = (bound > u) & (bound * bound - u * u > tie_factor * scale)
                # Branch-free: a settled row's copy is overwritten by the next.
                for d in range(n_features):
                    rows[n_pending, d] = rows[q, d]
                pending[n_pending] = i
                n_pending += not settled
        if first:
            for p in range(n_pending):
                i = pending[p]
                for d in range(n_features):
                    rows[p, d] = Xc[i, d]
        if n_pending:
            compared += n_pending
            # Products as (centres, rows): the nearest two centres of every row
            # are then found with vector instructions across rows, instead of
            # one row's chain of dependent comparisons at a time.
            products = products_buffer[: n_clusters * n_pending].reshape((n_clusters, n_pending))
            np.dot(centers, rows[:n_pending].T, products)
            for p in range(n_pending):
                nearest_v[p] = np.inf
                second_v[p] = np.inf
                best_v[p] = 0
                row_sq_v[p] = row_norms[pending[p]] * row_norms[pending[p]]
            for j in range(n_clusters):
                c_sq = centers_sq[j]
                for p in range(n_pending):
                    dist = row_sq_v[p] - 2.0 * products[j, p] + c_sq
                    near = nearest_v[p]
                    closer = dist < near
                    second_v[p] = min(second_v[p], max(near, dist))
                    nearest_v[p] = dist if closer else near
                    best_v[p] = j if closer else best_v[p]
            for p in range(n_pending):
                i = pending[p]
                best = best_v[p]
                nearest = nearest_v[p]
                runner_up = second_v[p]
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


@njit(nogil=True, cache=True)
def iteration_constants(centers, shift, centers_sq):  # pragma: no cover
    """The per-iteration constants of :func:`lloyd_rows`, from one call.

    Fills ``centers_sq`` with the centres' squared norms and returns the
    largest norm, the centre that moved most, its shift and the largest
    shift of the others (0.0 for one centre).  With the sums of the
    counts and shifts around it, the numpy calls this replaces took 17-27
    us an iteration against 4 us (K = D = 16); a late iteration's kernel
    takes about 200 us at N = 1e4.  Any order of the sums will do: the
    kernels' slack bounds the rounding of any order.
    """
    n_clusters, n_features = centers.shape
    largest_sq = 0.0
    for k in range(n_clusters):
        total = 0.0
        for d in range(n_features):
            total += centers[k, d] * centers[k, d]
        centers_sq[k] = total
        largest_sq = max(largest_sq, total)
    first_moved = 0
    for k in range(1, n_clusters):
        if shift[k] > shift[first_moved]:
            first_moved = k
    second_shift = 0.0
    for k in range(n_clusters):
        if k != first_moved:
            second_shift = max(second_shift, shift[k])
    return np.sqrt(largest_sq), first_moved, shift[first_moved], second_shift


@njit(nogil=True, cache=True)
def update_centers(block_sums, block_weights, block_counts, centers, shift, half_gap):  # pragma: no cover
    """The new centres from the block sums, in place; False where a cluster is empty.

    Also, in place: ``shift``, how far each centre moved, and ``half_gap``,
    half the distance from each new centre to its nearest other, from the
    differences (not ``|a|^2 - 2 a.b + |b|^2``, whose rounding is relative
    to the centres' norms rather than to the gaps), shrunk by far more than
    their rounding so that a bound stays a bound.  Blocks are summed in
    order, as numpy sums them over their axis.
    """
    n_blocks, n_clusters, n_features = block_sums.shape
    summed = np.empty(n_features)
    for k in range(n_clusters):
        count = 0
        weight = 0.0
        for b in range(n_blocks):
            count += block_counts[b, k]
            weight += block_weights[b, k]
        if count == 0:
            return False
        for d in range(n_features):
            summed[d] = 0.0
        for b in range(n_blocks):
            for d in range(n_features):
                summed[d] += block_sums[b, k, d]
        scale = 1.0 / weight
        total = 0.0
        for d in range(n_features):
            value = summed[d] * scale
            diff = value - centers[k, d]
            total += diff * diff
            centers[k, d] = value
        shift[k] = np.sqrt(total)
    for k in range(n_clusters):
        nearest = np.inf
        for j in range(n_clusters):
            if j != k:
                total = 0.0
                for d in range(n_features):
                    diff = centers[k, d] - centers[j, d]
                    total += diff * diff
                nearest = min(nearest, total)
        half_gap[k] = 0.5 * np.sqrt(nearest) * (1 - 1e-12)
    return True
