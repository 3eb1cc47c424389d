"""Compiled normalisation of one chunk's log-probabilities (numba, imported on first use).

:func:`gaussmix._kernels.normalise_log_prob` and ``_drop_negligible`` make
six to nine passes over a chunk's (K, n) log-probabilities in numpy: the
row maxima, the least value, the underflow floor, exp, the sums, the
scaling, the negligible terms, the count of nonzero terms.
:func:`normalise_rows` makes three, in one call that never takes the
interpreter lock, so that two threads run it side by side.

numba's ``exp`` is the C library's, one element at a time; :func:`fast_exp`
is written out (range reduction by ``ln 2`` in two parts, a polynomial, the
power of two built from its exponent bits) so that the loops vectorise.
On the arguments it is given here, ``[log(eps**2), 0]``, it is within one
unit in the last place of the exact value in both dtypes (tests compare
it with ``np.exp`` in extended precision).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload


def fast_exp(x):  # pragma: no cover
    """``exp(x)`` for ``x`` in ``[log(eps**2), 0]`` of its dtype, in compiled code only."""
    raise NotImplementedError("compiled use only")


@njit(inline="always")
def _exp_float32(x):  # pragma: no cover
    n = np.floor(x * np.float32(1.4426950408889634) + np.float32(0.5))
    # ln 2 in two parts: n * the first is exact for the n of this range.
    r = x - n * np.float32(0.693359375)
    r = r - n * np.float32(-2.12194440e-4)
    # Cephes' expf polynomial on [-ln 2 / 2, ln 2 / 2].
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    two_n = np.int32((np.int32(n) + np.int32(127)) << np.int32(23)).view(np.float32)
    return p * two_n


@njit(inline="always")
def _exp_float64(x):  # pragma: no cover
    n = np.floor(x * 1.4426950408889634 + 0.5)
    r = x - n * 6.93145751953125e-1
    r = r - n * 1.42860682030941723212e-6
    # Taylor to degree 13: on |r| <= ln 2 / 2 the remainder is below
    # 0.35**14 / 14! = 4e-18, well under float64's unit roundoff.
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r * r + r + 1.0
    two_n = np.int64((np.int64(n) + np.int64(1023)) << np.int64(52)).view(np.float64)
    return p * two_n


@overload(fast_exp, inline="always")
def _fast_exp_overload(x):  # pragma: no cover
    if x == types.float32:
        return lambda x: _exp_float32(x)
    if x == types.float64:
        return lambda x: _exp_float64(x)
    return None


@njit(nogil=True, cache=True)
def fast_exp_into(values, out):  # pragma: no cover
    """``out[i] = fast_exp(values[i])``: :func:`fast_exp` as the tests see it."""
    for i in range(values.size):
        out[i] = fast_exp(values[i])


@njit(nogil=True, cache=True)
def normalise_rows(weighted, log_density, smallest):  # pragma: no cover
    """Responsibilities in place of ``weighted`` (K, n), and each row's log-density.

    Per row ``i`` (a column of ``weighted``), with ``m_i`` its largest
    value: ``log_density[i] = log(s_i) + m_i`` with
    ``s_i = sum_k exp(w_ki - m_i)``, and ``w_ki`` becomes
    ``exp(w_ki - m_i) / s_i`` where that is at least ``smallest``, else
    zero.  Terms of ``exp`` below ``smallest`` are left out of ``s_i``
    (``s_i >= 1``, so they are below its rounding where ``smallest`` is
    ``eps**2``), and ``exp`` is never taken below ``log(smallest)``,
    where it would be subnormal and slow.

    Returns the number of nonzero responsibilities, or -1, having changed
    nothing, where some value is NaN or some row's largest value is not
    finite (the caller then takes numpy's path, which handles them).
    """
    n_components, n_samples = weighted.shape
    dtype = weighted.dtype
    row_max = np.full(n_samples, -np.inf, dtype)
    not_numbers = 0
    for k in range(n_components):
        for i in range(n_samples):
            value = weighted[k, i]
            not_numbers += value != value
            row_max[i] = max(row_max[i], value)
    for i in range(n_samples):
        not_numbers += not (np.abs(row_max[i]) < np.inf)
    if not_numbers:
        return -1
    # Constants in the dtype: a float64 literal would widen the loops.
    zero = smallest - smallest
    one = smallest / smallest
    cut = np.log(smallest)
    total = np.zeros(n_samples, dtype)
    for k in range(n_components):
        for i in range(n_samples):
            shifted = weighted[k, i] - row_max[i]
            term = fast_exp(max(shifted, cut)) if shifted >= cut else zero
            weighted[k, i] = term
            total[i] += term
    scale = np.empty(n_samples, dtype)
    for i in range(n_samples):
        scale[i] = one / total[i]
        log_density[i] = np.log(total[i]) + row_max[i]
    nonzero = 0
    for k in range(n_components):
        for i in range(n_samples):
            resp = weighted[k, i] * scale[i]
            kept = resp >= smallest
            weighted[k, i] = resp if kept else zero
            nonzero += kept
    return nonzero
