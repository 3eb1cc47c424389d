"""Statistics of hard labels for the diagonal models, in numpy, bit for bit the compiled ones.

:mod:`gaussmix._label_kernels` sums each component's rows in row order, in
float64.  These functions take the same arguments and add the same terms in
the same order, so that a fit's start does not depend on whether numba is
installed or loaded: each component's rows are gathered (in row order, a
block at a time) and summed down the block row after row, the running
total of the earlier blocks entering as the first row's addend.  numpy
reduces a C-ordered block over its rows one row at a time (the inner loop
runs along the row), but a single column in pairs, which rounds
differently: narrow blocks are summed by ``np.cumsum``, which adds in
order always (faster below 8 columns, half as fast at 16).  The tests hold
both paths to the same bits.
"""

from __future__ import annotations

import numpy as np

# Rows gathered at a time: float64 blocks of about 256 KiB at D = 16.
BLOCK_ROWS = 2048
# Columns from which a block is summed by np.add.reduce rather than
# np.cumsum: per 2048 rows, 58 against 106 us at 16 columns, but 38
# against 17 us at 2.
REDUCE_FROM_COLUMNS = 8


def component_rows(labels: np.ndarray, n_components: int):
    """``(k, rows)`` for each component: its row indices, in row order.

    Rows labelled below 0 are in no component.
    """
    # Labels of 16 bits sort by radix (about 3x faster than 64-bit labels
    # at 1e5 rows, the same order).
    key_type = np.int16 if n_components < np.iinfo(np.int16).max else np.int64
    keys = labels.astype(key_type, copy=False)
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_components + 1))
    for k in range(n_components):
        yield k, order[bounds[k] : bounds[k + 1]]


def _blocks(members: np.ndarray):
    for start in range(0, members.size, BLOCK_ROWS):
        yield members[start : start + BLOCK_ROWS]


def _add_in_order(terms: np.ndarray, total: np.ndarray) -> None:
    """``total += terms[0]; total += terms[1]; ...``, row by row (``terms`` is overwritten)."""
    terms[:1] += total
    if terms.ndim == 2 and terms.shape[1] >= REDUCE_FROM_COLUMNS:
        total[...] = np.add.reduce(terms, axis=0)
    else:
        total[...] = np.cumsum(terms, axis=0)[-1]


def _gathered(X: np.ndarray, block: np.ndarray) -> np.ndarray:
    """The rows ``block`` of ``X`` as a new float64 array."""
    # np.take: 3-8x faster than X[block] on rows of 2 or 3 features.
    rows = np.take(X, block, axis=0)
    return rows if rows.dtype == np.float64 else rows.astype(np.float64)


def label_sums(X, labels, weights, weighted, totals, sums) -> None:
    """Add each labelled row (times its weight) to its component's ``totals`` and ``sums``.

    As :func:`gaussmix._label_kernels.label_sums`: rows labelled below 0 are
    in no component; ``weights`` (float64) is read only when ``weighted``.
    """
    n_components = totals.shape[0]
    for k, members in component_rows(labels, n_components):
        for block in _blocks(members):
            rows = _gathered(X, block)
            if weighted:
                block_weights = np.take(weights, block)
                rows *= block_weights[:, None]
                _add_in_order(block_weights, totals[k : k + 1])
            else:
                # Adding 1.0 per row is exact while the count is an integer
                # below 2**53: one addition of the count gives the same.
                totals[k] += block.size
            _add_in_order(rows, sums[k])


def label_moments_around(X, labels, weights, weighted, shift, shift_sum, scatter) -> None:
    """Add each labelled row's deviations from its component's ``shift``, and their squares.

    As :func:`gaussmix._label_kernels.label_moments_around`: ``shift_sum``
    and ``scatter`` are (K, D), one sum per feature.
    """
    n_components = shift.shape[0]
    for k, members in component_rows(labels, n_components):
        for block in _blocks(members):
            deviations = _gathered(X, block)
            deviations -= shift[k]
            if weighted:
                weighted_deviations = deviations * np.take(weights, block)[:, None]
                # (w * d) * d, the compiled loop's order of the two products.
                squares = np.multiply(weighted_deviations, deviations, out=deviations)
            else:
                weighted_deviations = deviations
                squares = deviations * deviations
            _add_in_order(squares, scatter[k])
            _add_in_order(weighted_deviations, shift_sum[k])
