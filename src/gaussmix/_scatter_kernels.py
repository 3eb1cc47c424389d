"""Compiled full-covariance statistics of sparse responsibilities (numba, imported on first use).

On separated clusters most responsibilities of a chunk are exactly zero
(:func:`gaussmix._kernels._drop_negligible`; in float32 far more of them
than in float64, whose negligible terms are smaller), and the dense
products of :meth:`gaussmix.sklearn_models.FullCovariance.stats_rows`
spend most of their time multiplying by zero.  This kernel gathers each
component's rows of nonzero responsibility, centred on its shift, and
sums their weighted outer products with one matrix product (BLAS, the
data's dtype, as the dense path), so its cost follows the nonzero
responsibilities.  ``bench/bench_sparse_scatter.py`` measures both forms
and the density at which they cross.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def component_moments(X, centre, offsets, resp, sum_resp, shift_sum, scatter):  # pragma: no cover
    """Add the statistics of ``X``'s rows around ``centre + offsets[k]`` for every component k.

    ``sum_resp[k] += sum_i r_ki``, ``shift_sum[k] += sum_i r_ki d_ki`` and
    ``scatter[k] += sum_i r_ki d_ki d_ki^T``, with ``d_ki = (x_i - centre)
    - offsets[k]`` in ``X``'s dtype, over the rows where ``r_ki != 0``.
    ``resp`` is (K, n) in ``X``'s dtype; the outputs are float64.  The
    totals and first moments add in float64; the outer products in one
    matrix product per component, made exactly symmetric.
    """
    n_samples, n_features = X.shape
    n_components = resp.shape[0]
    centred = np.empty((n_samples, n_features), X.dtype)
    weighted = np.empty((n_samples, n_features), X.dtype)
    for k in range(n_components):
        count = 0
        total = 0.0
        for i in range(n_samples):
            r = resp[k, i]
            if r == 0:
                continue
            total += np.float64(r)
            for a in range(n_features):
                deviation = (X[i, a] - centre[a]) - offsets[k, a]
                centred[count, a] = deviation
                weighted[count, a] = r * deviation
                shift_sum[k, a] += np.float64(r * deviation)
            count += 1
        if count == 0:
            continue
        sum_resp[k] += total
        product = np.dot(weighted[:count].T, centred[:count])
        for a in range(n_features):
            for b in range(a + 1):
                value = 0.5 * (np.float64(product[a, b]) + np.float64(product[b, a]))
                scatter[k, a, b] += value
                if b != a:
                    scatter[k, b, a] += value
