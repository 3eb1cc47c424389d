"""Pure numerical kernels on one chunk of rows.

Arrays in, arrays out: no validation, no random numbers, no I/O.  Callers
guarantee finite inputs of matching shapes and a floating dtype.
"""

from __future__ import annotations

import functools

import numpy as np

from ._compiled import compiled_module
from .covariance import CovarianceModel
from .params import MixtureParams
from .suffstats import SuffStats

__all__ = [
    "chunk_size_for",
    "model_chunk_size",
    "chunk_weights",
    "rows_of_positive_weight",
    "iter_chunks",
    "mixture_centre",
    "weighted_log_prob",
    "normalise_log_prob",
    "responsibilities",
    "e_step_chunk",
    "stats_from_resp_chunk",
    "SPARSE_DENSITY",
]

# Bytes of the largest per-chunk temporary, (rows, n_components * n_features):
# small enough to stay in the L2 cache, large enough that the Python overhead
# of a chunk is small.
_CHUNK_BYTES = 1 << 20

# On large data the budget grows with the rows, up to 4 MiB: every chunk
# costs a few dozen numpy calls, each holding the interpreter lock for some
# microseconds, which two threads then take turns at.  Full covariance, 2
# threads, N=1e5, 4 MiB against 1 MiB, per iteration: float64 1.2-1.3x
# faster at D=16 (K=16 and 64), 1.0-1.2x at D=64; float32 1.2-1.6x at D=16,
# 0.9-1.3x at D=64.  Below about 32768 rows the budget stays put: there the
# temporaries would weigh in the fit's peak memory, which on larger float64
# data the initialisation's arrays set (float32, D=16, K=64, N=1e5: 12.3 ->
# 14.0 MB).
_BUDGET_ROWS = 1 << 15
_MAX_CHUNK_BYTES = 1 << 22


def chunk_size_for(
    n_components: int,
    n_features: int,
    itemsize: int = 8,
    width: int | None = None,
    chunk_bytes: int | None = None,
    n_samples: int | None = None,
) -> int:
    """Rows per chunk so that one chunk's temporaries stay cache-sized.

    ``width`` is the model's :meth:`~gaussmix.covariance.CovarianceModel.chunk_width`;
    by default the widest of all models, ``n_components * n_features``.
    ``chunk_bytes`` is the model's ``chunk_bytes``, by default 1 MiB.
    ``n_samples``, the rows of the whole data set, lets the budget grow on
    large data (up to 4 MiB); the chunk size then depends on the data's
    size, not on the blocks in which its rows arrive.
    """
    if width is None:
        width = max(n_components * n_features, 2 * n_features + n_components)
    budget = _CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    if n_samples is not None and n_samples > _BUDGET_ROWS:
        budget = max(budget, min(budget * n_samples // _BUDGET_ROWS, _MAX_CHUNK_BYTES))
    rows = budget // max(1, width * itemsize)
    return int(min(max(rows, 256), 16384))


def model_chunk_size(
    model: CovarianceModel, n_components: int, n_features: int, dtype,
    n_samples: int | None = None,
) -> int:
    """:func:`chunk_size_for` with ``model``'s chunk width and byte budget."""
    width = model.chunk_width(n_components, n_features)
    return chunk_size_for(
        n_components, n_features, np.dtype(dtype).itemsize, width, model.chunk_bytes,
        n_samples,
    )


def chunk_weights(sample_weight: np.ndarray | None, rows: slice) -> np.ndarray | None:
    """The weights of a chunk's ``rows``, or None where the rows are unweighted."""
    return None if sample_weight is None else sample_weight[rows]


def rows_of_positive_weight(
    X: np.ndarray, sample_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``X`` and ``sample_weight`` without the rows of weight zero (as given where there are none).

    A weight of zero drops its row: 0 * inf would be NaN for a row of no
    weight too far out for its log-density or products, and starts and
    criteria would see it.
    """
    if sample_weight is None or np.all(sample_weight > 0):
        return X, sample_weight
    kept = sample_weight > 0
    return X[kept], sample_weight[kept]


def iter_chunks(n_samples: int, chunk_size: int, offset: int = 0) -> list[slice]:
    """Consecutive row slices covering ``range(offset, offset + n_samples)``."""
    stop = offset + n_samples
    return [
        slice(start, min(start + chunk_size, stop))
        for start in range(offset, stop, chunk_size)
    ]


def mixture_centre(params: MixtureParams, dtype=np.float64) -> np.ndarray:
    """The point every chunk is centred on (float64): the means' weighted median.

    Kernels lose about ``eps * |mu_k - centre|`` (in component k's standard
    deviations) to rounding, so the centre lies among the heavy components:
    the weighted median of the means, feature by feature, where a light
    component far out (an outlier alone) would drag the weighted mean away
    from all the others.  Where the weight splits evenly, the midpoint of the
    two middle means.

    Rounded to ``dtype``, the data's: the rows are centred on the centre in
    their own dtype, and the statistics and log-densities that say where
    they were centred must name that very point.  float32 data far from the
    origin are spaced farther apart than a float32 centre can move (0.0625
    at 1e6): a float64 centre named a point up to half that spacing away,
    which moved every mean by as much.
    """
    weights = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    columns = np.arange(means.shape[1])
    order = means.argsort(axis=0, kind="stable")
    sorted_means = means[order, columns]
    cumulative = weights[order].cumsum(axis=0)
    half = 0.5 * cumulative[-1]
    # The first mean whose cumulative weight reaches half; where it reaches
    # exactly half (an even split), the midpoint with the next one.
    lower = (cumulative >= half).argmax(axis=0)
    centre = sorted_means[lower, columns]
    even = cumulative[lower, columns] == half
    if even.any():
        upper = np.minimum(lower + 1, means.shape[0] - 1)
        centre = np.where(even, 0.5 * (centre + sorted_means[upper, columns]), centre)
    return centre.astype(dtype).astype(np.float64)


def weighted_log_prob(
    model: CovarianceModel,
    X: np.ndarray,
    params: MixtureParams,
    centre: np.ndarray | None = None,
    prep: dict | None = None,
) -> np.ndarray:
    """``log w_k + log N(x | mu_k, Sigma_k)``, shape (n_components, n_samples)."""
    if centre is None:
        centre = mixture_centre(params, X.dtype)
    if prep is None:
        prep = model.prepare(params, centre, X.dtype)
    return _log_prob(model, X, centre.astype(X.dtype), prep)[0]


def _log_prob(model: CovarianceModel, X: np.ndarray, centre: np.ndarray, prep: dict):
    """Weighted log-probabilities of raw rows, and what :func:`_stats` can reuse.

    Models with a ``log_prob_rows`` method centre the rows inside their own
    kernel (diag and spherical build their features from ``X`` directly);
    the others get a centred copy of the chunk.
    """
    from_rows = getattr(model, "log_prob_rows", None)
    if from_rows is not None:
        return from_rows(X, centre, prep)
    Xc = X - centre
    weighted, aux = model.log_prob_chunk(Xc, prep)
    return weighted, (Xc, aux)


def _stats(model: CovarianceModel, X, centre, resp, offsets, aux=None):
    """``(sum_resp, shift_sum, scatter)`` of raw rows, ``aux`` from :func:`_log_prob`."""
    from_rows = getattr(model, "stats_rows", None)
    if from_rows is not None:
        return from_rows(X, centre, resp, offsets, aux)
    Xc, inner = (X - centre, None) if aux is None else aux
    shift_sum, scatter = model.chunk_stats(Xc, resp, offsets, inner)
    return resp.sum(axis=1, dtype=np.float64), shift_sum, scatter


# Bounds on the per-row sums of exp(log-probabilities) within which they are
# computed without subtracting the row maxima first: the largest term is then
# a normal number far from overflow, and terms that underflow are below the
# dtype's precision relative to the sum.
_DIRECT_LOG_RANGE = {
    np.dtype(np.float64): (np.log(1e-250), np.log(1e250)),
    np.dtype(np.float32): (np.log(1e-30), np.log(1e30)),
}


@functools.lru_cache(maxsize=None)
def _underflow_floor(dtype: np.dtype, n_components: int) -> float:
    """Lowest log-responsibility computed, relative to its row's maximum.

    Below it, exp and the products that follow would produce subnormal
    numbers, which were measured 10-20x slower than normal ones (float32
    values near -95, float64 near -720).  Raising such terms to the floor
    keeps every responsibility normal; each term added is at most
    ``n_components * e * tiny`` of its row's sum, far below the rounding.
    """
    if dtype not in _DIRECT_LOG_RANGE:
        return -np.inf
    return float(np.log(np.finfo(dtype).tiny) + np.log(n_components) + 1.0)


def _raise_to_floor(weighted: np.ndarray, floor, lowest=None) -> None:
    """Raise the finite values of ``weighted`` below ``floor`` to it, in place.

    ``-inf`` (a component of zero weight) stays, so that its responsibility
    is exactly zero.  Most chunks need no change, which one reduction finds
    (``lowest``, the least value of ``weighted``, where the caller has it).
    """
    if lowest is None:
        lowest = weighted.min(initial=np.inf)
    if not lowest < np.min(floor, initial=np.inf):
        return
    # In the data's dtype: a float64 floor would make np.maximum cast every
    # float32 value to float64 and back (6x slower, float32, K=64).  The
    # result is the same, as rounding keeps the order of float32 values.
    floor = np.asarray(floor, dtype=weighted.dtype)
    if lowest == -np.inf:
        np.maximum(weighted, floor, out=weighted, where=weighted > -np.inf)
    else:
        np.maximum(weighted, floor, out=weighted)


def normalise_log_prob(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-sum-exp over components and responsibilities.

    Each chunk chooses its path from its own values only, so that results do
    not depend on which thread ran which chunk first.

    Parameters
    ----------
    weighted : ndarray of shape (n_components, n_samples)
        Overwritten by the responsibilities.

    Returns
    -------
    log_density : ndarray of shape (n_samples,)
    resp : ndarray of shape (n_components, n_samples)
    """
    # Reductions across the short component axis of a component-major array
    # are elementwise operations between long rows: fast and vectorised.
    col_max = np.max(weighted, axis=0)
    bounds = _DIRECT_LOG_RANGE.get(weighted.dtype)
    n_components = weighted.shape[0]
    floor = _underflow_floor(weighted.dtype, n_components)
    # Each row's sum lies between exp(its max) and n_components times that:
    # when both ends are in range, exp needs no shift, which saves the pass
    # that subtracts the maxima.  One component keeps responsibility exactly
    # one, as the shifted path gives (exp(w) / exp(w) need not round to one).
    log_k = np.log(n_components)
    if (
        bounds is not None
        and n_components > 1
        and col_max.size
        and bounds[0] < (least_max := col_max.min())
        and col_max.max() + log_k < bounds[1]
    ):
        # Unshifted, exp(w) and exp(w) / sum must both stay normal.  The
        # floor rises with the row maximum, so its least value is the least
        # maximum's: the per-row floors are built only where some value is
        # below that (rounding keeps the order, so the test is the same).
        lowest = weighted.min(initial=np.inf)
        if lowest < max(least_max + log_k, 0.0) + floor:
            _raise_to_floor(weighted, np.maximum(col_max + log_k, 0.0) + floor, lowest)
        np.exp(weighted, out=weighted)
        total = weighted.sum(axis=0)
        weighted *= 1.0 / total
        return np.log(total), weighted
    col_max[~np.isfinite(col_max)] = 0.0
    weighted -= col_max
    _raise_to_floor(weighted, floor)
    np.exp(weighted, out=weighted)
    total = np.sum(weighted, axis=0)
    weighted *= 1.0 / total
    with np.errstate(divide="ignore"):
        log_density = np.log(total)
    log_density += col_max
    return log_density, weighted


def responsibilities(weighted: np.ndarray) -> np.ndarray:
    """Responsibilities as scikit-learn gives them: ``exp(w - logsumexp(w))``.

    Without the underflow floor of :func:`normalise_log_prob`: a component
    far from a row has responsibility exactly zero (or subnormal), as in
    scikit-learn's ``predict_proba``, instead of about ``1e-306``.

    Parameters
    ----------
    weighted : ndarray of shape (n_components, n_samples)
        Overwritten.

    Returns
    -------
    resp : ndarray of shape (n_components, n_samples)
    """
    col_max = np.max(weighted, axis=0)
    col_max[~np.isfinite(col_max)] = 0.0
    weighted -= col_max
    with np.errstate(divide="ignore"):
        log_total = np.log(np.sum(np.exp(weighted), axis=0))
    weighted -= log_total
    return np.exp(weighted, out=weighted)


def _drop_negligible(resp: np.ndarray) -> None:
    """Set to zero, in place, responsibilities too small to change any statistic.

    Responsibilities raised to the underflow floor (about ``1e-36`` in
    float32) are normal numbers, but their products with the data in the
    statistics' GEMMs are subnormal wherever a coordinate is below about
    0.02, and subnormal arithmetic was measured to make float32 M-steps on
    separated clusters slower than float64 ones.  Zero adds nothing, at full
    speed, and a responsibility below ``eps**2`` adds less than the sums'
    rounding: its row lies at least ``2 log(1 / eps**2)`` (64 in float32)
    further, in squared whitened distance, from the component than from its
    own, so it adds about ``r * (64 + D)`` to a whitened scatter of
    ``n_k * D`` (1e-13 relative in float32 with n / n_k = 1000).  Chunks with
    no responsibility near the floor (all of float64's but on extremely
    separated data) are left as they are.
    """
    info = np.finfo(resp.dtype)
    if resp.min(initial=np.inf) < np.sqrt(info.tiny):
        # A multiplication by the mask was measured 3-5x faster than a
        # masked assignment.
        resp *= resp >= info.eps**2


# The compiled sparse statistics serve a chunk whose nonzero responsibilities
# are at most this fraction of them (SPARSE_DENSITY, or SPARSE_DENSITY_FEW
# below SPARSE_FEW_FEATURES features, where the dense products are cheap).
# bench/bench_sparse_scatter.py (sparse-scatter-1), one thread, both dtypes:
# the two forms cost the same at densities of about 0.4 (D = K = 16),
# 0.55 (D = 64, K = 16), 0.3 (D = 16, K = 64) and 0.12-0.2 (D = 8, K = 32);
# at 0.2 the compiled form is 1.1-3.2x faster for D >= 16; at 0.05, 1.9x at
# D = 8.  Separated clusters in float32 have densities of 0.08-0.14 there
# (compiled form 1.2-4.2x faster); float64 keeps terms down to 1e-32 and has
# 0.54-1.0, so it keeps the dense form.
SPARSE_DENSITY = 0.2
SPARSE_DENSITY_FEW = 0.05
SPARSE_FEW_FEATURES = 16


def _sparse_enough(resp: np.ndarray, n_features: int, nonzero: int | None = None) -> bool:
    """Whether the nonzero responsibilities (``nonzero``, counted here if None) are few enough."""
    limit = SPARSE_DENSITY if n_features >= SPARSE_FEW_FEATURES else SPARSE_DENSITY_FEW
    if nonzero is None:
        # Counted on a boolean mask: numpy counts the nonzeros of a float array
        # one element at a time (K = 64, 1351 rows: 65 against 11 us, both dtypes).
        nonzero = np.count_nonzero(resp != 0)
    return nonzero <= limit * resp.size


def normalise_compiled(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """:func:`normalise_log_prob` and :func:`_drop_negligible` in one compiled call.

    Responsibilities below ``eps**2`` are zero on every chunk, where
    ``_drop_negligible`` zeroes them only on chunks that reach the
    underflow floor; either way they are below the sums' rounding.
    Returns ``(log_density, resp, nonzero)``, ``resp`` overwriting
    ``weighted`` and ``nonzero`` its count of nonzero terms; or None where
    numba does not load, the dtype is neither float32 nor float64, or the
    chunk has values the kernel leaves to numpy (NaN, rows with no finite
    maximum), with ``weighted`` unchanged.
    """
    kernels = compiled_module("_softmax_kernels")
    if kernels is None or weighted.dtype not in _DIRECT_LOG_RANGE:
        return None
    weighted = np.ascontiguousarray(weighted)
    log_density = np.empty(weighted.shape[1], dtype=weighted.dtype)
    smallest = weighted.dtype.type(np.finfo(weighted.dtype).eps ** 2)
    nonzero = kernels.normalise_rows(weighted, log_density, smallest)
    if nonzero < 0:
        return None
    return log_density, weighted, int(nonzero)


def _empty_stats(model: CovarianceModel, params: MixtureParams, shift) -> SuffStats:
    """Statistics of a chunk with no rows: zeros that add as nothing."""
    n_components, n_features = params.means.shape
    scatter_shape = model.parameter_shape(n_components, n_features)
    return SuffStats(
        sum_resp=np.zeros(n_components),
        shift_sum=np.zeros((n_components, n_features)),
        scatter=np.zeros(scatter_shape),
        shift=shift,
        log_likelihood=0.0,
        weight_sum=0.0,
    )


def e_step_chunk(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    params: MixtureParams,
    centre: np.ndarray | None = None,
    prep: dict | None = None,
) -> SuffStats:
    """E-step on one chunk, returned as sufficient statistics.

    ``centre`` and ``prep`` are per-pass constants; chunks of one pass must
    share them (they default to :func:`mixture_centre` and its preparation).
    """
    if centre is None:
        centre = mixture_centre(params, X.dtype)
    if prep is None:
        prep = model.prepare(params, centre, X.dtype)
    X, sample_weight = rows_of_positive_weight(X, sample_weight)
    if X.shape[0] == 0:
        return _empty_stats(model, params, prep["shift"])
    centre = centre.astype(X.dtype)
    weighted, aux = _log_prob(model, X, centre, prep)
    normalised = normalise_compiled(weighted) if prep.get("compiled_normalisation") else None
    if normalised is None:
        log_density, resp = normalise_log_prob(weighted)
        _drop_negligible(resp)
        nonzero = None
    else:
        log_density, resp, nonzero = normalised
    if sample_weight is None:
        log_likelihood = float(log_density.sum(dtype=np.float64))
        weight_sum = float(X.shape[0])
    else:
        resp *= sample_weight.astype(resp.dtype, copy=False)
        log_likelihood = float(np.dot(sample_weight, log_density.astype(np.float64)))
        weight_sum = float(np.sum(sample_weight, dtype=np.float64))
    sparse = prep.get("sparse_statistics")
    statistics = None
    if sparse is not None and _sparse_enough(resp, X.shape[1], nonzero):
        # None where its compiled kernel does not load.
        statistics = sparse(X, centre, resp, prep["offsets"])
    if statistics is None:
        statistics = _stats(model, X, centre, resp, prep["offsets"], aux)
    sum_resp, shift_sum, scatter = statistics
    worst = int(log_density.argmin())
    stretch_rows = _stretch_worst_rows(log_density, resp.shape[0])
    if sample_weight is None:
        worst_weight, reseed_weights = 1.0, None
    else:
        worst_weight = float(sample_weight[worst])
        reseed_weights = sample_weight[stretch_rows].astype(np.float64)
    return SuffStats(
        sum_resp=sum_resp.astype(np.float64),
        shift_sum=shift_sum.astype(np.float64),
        scatter=scatter.astype(np.float64),
        shift=prep["shift"],
        log_likelihood=log_likelihood,
        weight_sum=weight_sum,
        worst_log_density=float(log_density[worst]),
        worst_sample=np.array(X[worst], dtype=np.float64),
        worst_weight=worst_weight,
        reseed_candidates=np.array(X[stretch_rows], dtype=np.float64),
        reseed_log_densities=log_density[stretch_rows].astype(np.float64),
        reseed_weights=reseed_weights,
    )


def _stretch_worst_rows(candidates: np.ndarray, n_components: int) -> np.ndarray:
    """The rows of lowest ``candidates`` in ``n_components`` stretches, up to that many, by value.

    Components that empty in one M-step are re-seeded at distinct badly
    explained rows: one pass over the chunk's log-densities finds the worst
    row of each of ``n_components`` equal stretches and of the few rows
    left after them, cheaper than sorting them all.  The chunk's worst row
    is among them.  Rows of non-finite value are left out.
    """
    n_rows = candidates.shape[0]
    n_stretches = max(1, min(n_components, n_rows))
    length = n_rows // n_stretches
    covered = n_stretches * length
    rows = candidates[:covered].reshape(n_stretches, length).argmin(axis=1)
    rows += np.arange(n_stretches) * length
    if covered < n_rows:
        rows = np.append(rows, covered + int(candidates[covered:].argmin()))
    rows = rows[np.isfinite(candidates[rows])]
    return rows[np.argsort(candidates[rows], kind="stable")][:n_components]


def stats_from_resp_chunk(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    resp: np.ndarray,
    means: np.ndarray,
    centre: np.ndarray,
) -> SuffStats:
    """Statistics of one chunk from given responsibilities (initialisation).

    ``means`` are the responsibilities' own weighted means and ``centre``
    their overall mean, both from a first pass over the data.
    """
    resp = np.array(resp.T, dtype=X.dtype, order="C")
    if sample_weight is not None:
        resp *= sample_weight.astype(X.dtype, copy=False)
        weight_sum = float(np.sum(sample_weight, dtype=np.float64))
    else:
        weight_sum = float(X.shape[0])
    # Around each component's own mean: exact however far apart they are.
    offsets = (means - centre).astype(X.dtype)
    sum_resp, shift_sum, scatter = _stats(model, X, centre.astype(X.dtype), resp, offsets)
    return SuffStats(
        sum_resp=sum_resp.astype(np.float64),
        shift_sum=shift_sum.astype(np.float64),
        scatter=scatter.astype(np.float64),
        shift=means,
        log_likelihood=0.0,
        weight_sum=weight_sum,
    )
