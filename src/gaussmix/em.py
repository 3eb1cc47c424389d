"""The EM engine: E-step as a map over chunks, M-step from summed statistics.

Nothing here holds estimator state; every function takes the data, the
covariance model and the current parameters, and returns new values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from . import _kernels, _label_sums
from ._covariance_numerics import far_threshold
from ._parallel import available_cores, imap_chunks, map_chunks, single_threaded_blas
from .covariance import CovarianceModel, ill_defined_covariance_error, kernel_family
from .params import MixtureParams
from .suffstats import SuffStats, sum_stats

__all__ = [
    "EMResult",
    "e_step_chunk_size",
    "expectation",
    "statistics_from_resp",
    "statistics_from_labels",
    "maximization",
    "maximization_with_refinement",
    "run_em",
    "iterate_em",
    "log_prob_norm_and_labels",
]

# A component whose share of the total weight falls below this has no data
# left: its mean and covariance would be numerical noise.
EMPTY_COMPONENT_SHARE = 1e-12


@dataclass
class EMResult:
    """Outcome of one EM run from one initialisation."""

    params: MixtureParams
    lower_bound: float
    lower_bounds: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    # (iteration, component, log-density of the sample it was re-seeded at)
    reseeded: list[tuple[int, int, float]] = field(default_factory=list)


def _chunk_size(
    model: CovarianceModel, n_components: int, n_features: int, dtype,
    n_samples: int | None = None,
) -> int:
    width = model.chunk_width(n_components, n_features)
    return _kernels.chunk_size_for(
        n_components, n_features, np.dtype(dtype).itemsize, width, model.chunk_bytes,
        n_samples,
    )


def e_step_chunk_size(model: CovarianceModel, params: MixtureParams, dtype, n_samples: int) -> int:
    """Rows per chunk of the E-step over a data set of ``n_samples`` rows.

    Sources that hand the rows over in blocks pass it to :func:`expectation`
    for each block, so that they use the chunk size of the same rows in
    memory (the very chunks and sums where each block is one chunk).
    """
    return _chunk_size(model, params.n_components, params.n_features, dtype, n_samples)


# A thread takes up to this many consecutive chunks at a time and sums their
# statistics itself: each task costs the calling thread a hand-off and an
# addition, as much as the E-step of a small chunk (diag, D=64, K=16: 814
# rows).  Tasks depend only on the number of rows, the chunk size and the
# machine's cores, never on the number of threads in use, so the sums stay
# reproducible; two tasks per core keep the cores evenly loaded.
_CHUNKS_PER_TASK = 8
_MIN_TASKS = max(4, 2 * available_cores())


def _tasks(n_samples: int, chunk_size: int) -> list[slice]:
    """Runs of whole chunks, at least ``_MIN_TASKS`` of them where there are as many chunks."""
    n_chunks = -(-n_samples // chunk_size)
    per_task = max(1, min(_CHUNKS_PER_TASK, n_chunks // _MIN_TASKS))
    return _kernels.iter_chunks(n_samples, chunk_size * per_task)


def _chunk_weights(sample_weight: np.ndarray | None, rows: slice) -> np.ndarray | None:
    return None if sample_weight is None else sample_weight[rows]


def expectation(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    params: MixtureParams,
    chunk_size: int | None = None,
) -> SuffStats:
    """E-step over all of ``X``, chunk by chunk, reduced to one :class:`SuffStats`.

    Chunks run on all cores (see :mod:`gaussmix._parallel`) and are summed
    in order, so the result does not depend on the number of threads.
    """
    if chunk_size is None:
        chunk_size = e_step_chunk_size(model, params, X.dtype, X.shape[0])
    centre = _kernels.mixture_centre(params, X.dtype)
    prep = model.prepare(params, centre, X.dtype)

    def e_step(task: slice) -> SuffStats:
        return sum_stats(
            _kernels.e_step_chunk(
                model, X[rows], _chunk_weights(sample_weight, rows), params, centre, prep
            )
            for rows in _kernels.iter_chunks(task.stop - task.start, chunk_size, task.start)
        )

    return sum_stats(imap_chunks(e_step, _tasks(X.shape[0], chunk_size)))


def statistics_from_resp(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    resp: np.ndarray,
    chunk_size: int | None = None,
) -> SuffStats:
    """Statistics for given responsibilities, accumulated around their own means.

    Two passes: the first finds the weighted means, which the second uses as
    the shift so that the scatter never cancels.
    """
    n_components = resp.shape[1]
    if chunk_size is None:
        chunk_size = _kernels.chunk_size_for(n_components, X.shape[1], X.dtype.itemsize)
    chunks = _kernels.iter_chunks(X.shape[0], chunk_size)
    weighted_resp = resp if sample_weight is None else resp * sample_weight[:, None]
    sums = np.zeros((n_components, X.shape[1]), dtype=np.float64)
    totals = np.zeros(n_components, dtype=np.float64)
    for rows in chunks:
        sums += weighted_resp[rows].T.astype(np.float64) @ X[rows].astype(np.float64)
        totals += weighted_resp[rows].sum(axis=0, dtype=np.float64)
    means = sums / np.maximum(totals, np.finfo(np.float64).tiny)[:, None]
    # In the data's dtype, as the centre of an E-step pass (mixture_centre).
    centre = (totals @ means / np.sum(totals)).astype(X.dtype).astype(np.float64)

    def stats(rows: slice) -> SuffStats:
        weights = _chunk_weights(sample_weight, rows)
        return _kernels.stats_from_resp_chunk(
            model, X[rows], weights, resp[rows], means, centre
        )

    return sum_stats(imap_chunks(stats, chunks))


def statistics_from_labels(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    labels: np.ndarray,
    n_components: int,
) -> SuffStats:
    """Statistics of hard assignments, each component around its own mean.

    The same statistics as :func:`statistics_from_resp` with one-hot
    responsibilities, without forming them: the rows of each component are
    gathered (a block at a time) and only they enter its sums, so the work
    is ``n_samples`` rows once instead of ``n_components`` times.

    Parameters
    ----------
    model : CovarianceModel
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    labels : ndarray of shape (n_samples,)
        Component of each row, ``-1`` for rows in no component.
    n_components : int
    """
    family = kernel_family(model).name
    if family in ("diag", "spherical"):
        return _diagonal_statistics_from_labels(
            _label_kernels_for(X, n_components), family, X, sample_weight, labels, n_components
        )
    return _gathered_statistics_from_labels(model, X, sample_weight, labels, n_components)


def _gathered_statistics_from_labels(
    model: CovarianceModel, X: np.ndarray, sample_weight, labels, n_components: int
) -> SuffStats:
    """:func:`statistics_from_labels` through the chunk kernels, any model.

    Each component's rows are gathered a chunk at a time: its mean from a
    first pass, then its statistics around that mean from a second.
    """
    n_samples, n_features = X.shape
    # Per-component scatter (full, diag, spherical) is stacked; a shared one
    # (tied) is summed over components.
    one_shape = model.parameter_shape(1, n_features)
    shared = _shared_scatter(model, n_features)
    chunk_size = _chunk_size(model, 1, n_features, X.dtype)
    sum_resp = np.zeros(n_components)
    shift = np.zeros((n_components, n_features))
    shift_sum = np.zeros((n_components, n_features))
    scatters = np.zeros((n_components, *one_shape))
    no_offset = np.zeros((1, n_features), dtype=X.dtype)
    for k, members in _label_sums.component_rows(np.asarray(labels), n_components):
        weights = None if sample_weight is None else sample_weight[members]
        total = members.size if weights is None else float(np.sum(weights, dtype=np.float64))
        if total <= 0:
            continue  # no data: zero statistics, the mean at the origin, as scikit-learn
        # The mean, in float64, from a first pass over the component's rows.
        mean = np.zeros(n_features)
        for start in range(0, members.size, chunk_size):
            rows = X[members[start : start + chunk_size]]
            if weights is None:
                mean += np.sum(rows, axis=0, dtype=np.float64)
            else:
                mean += weights[start : start + chunk_size] @ rows.astype(np.float64, copy=False)
        centre = (mean / total).astype(X.dtype)
        shift[k] = centre
        sum_resp[k] = total
        for start in range(0, members.size, chunk_size):
            rows = X[members[start : start + chunk_size]]
            if weights is None:
                resp = np.ones((1, rows.shape[0]), dtype=X.dtype)
            else:
                resp = weights[None, start : start + chunk_size].astype(X.dtype)
            _, sums, scatter = _kernels._stats(model, rows, centre, resp, no_offset)
            shift_sum[k] += sums[0]
            scatters[k] += scatter
    weight_sum = float(n_samples if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
    return SuffStats(
        sum_resp=sum_resp,
        shift_sum=shift_sum,
        scatter=scatters.sum(axis=0) if shared else scatters.reshape(
            model.parameter_shape(n_components, n_features)
        ),
        shift=shift,
        log_likelihood=0.0,
        weight_sum=weight_sum,
    )


def _label_kernels_for(X: np.ndarray, n_components: int):
    """The kernels that sum the statistics of hard labels for 'diag' and 'spherical'.

    The compiled ones (:mod:`gaussmix._label_kernels`) where numba is
    loaded already, or where the fit is large enough to load it (the size
    at which the compiled k-means does, about 0.5 s to load,
    :data:`gaussmix.kmeans.COMPILED_LOAD_WORK`); elsewhere their numpy twins
    (:mod:`gaussmix._label_sums`).  Both add the same terms in the same
    order, so a fit gives the same bits in any process, whether or not
    numba was loaded before (a model selection's worker processes against
    the parent, for one).
    """
    from .kmeans import COMPILED_LOAD_WORK, _numba_loaded

    if X.shape[0] * X.shape[1] * n_components >= COMPILED_LOAD_WORK or _numba_loaded():
        kernels = _compiled_label_kernels()
        if kernels is not None:
            return kernels
    return _label_sums


def _compiled_label_kernels():
    """The compiled label statistics where numba is installed, else None."""
    try:
        from . import _label_kernels
    except (ImportError, RuntimeError, OSError):
        return None
    return _label_kernels


def _diagonal_statistics_from_labels(
    kernels, family: str, X: np.ndarray, sample_weight: np.ndarray | None,
    labels: np.ndarray, n_components: int,
) -> SuffStats:
    """:func:`statistics_from_labels` of 'diag' and 'spherical' by ``kernels``.

    ``kernels``: :mod:`gaussmix._label_kernels` or :mod:`gaussmix._label_sums`,
    which sum row by row in float64: each component's mean first, then the
    deviations from that mean (rounded to the data's dtype, as the shift)
    and their squares.
    """
    n_samples, n_features = X.shape
    labels = np.asarray(labels)
    if labels.dtype not in (np.int32, np.int64):
        labels = labels.astype(np.int64)
    weighted = sample_weight is not None
    weights = (
        np.ascontiguousarray(sample_weight, dtype=np.float64) if weighted else np.empty(0)
    )
    totals = np.zeros(n_components)
    sums = np.zeros((n_components, n_features))
    kernels.label_sums(X, labels, weights, weighted, totals, sums)
    has_data = totals > 0
    # Components with no data keep zero statistics and the origin as their
    # mean, as scikit-learn's.
    means = np.divide(sums, totals[:, None], out=np.zeros_like(sums), where=has_data[:, None])
    shift = means.astype(X.dtype).astype(np.float64)
    shift_sum = np.zeros((n_components, n_features))
    scatter = np.zeros((n_components, n_features))
    kernels.label_moments_around(X, labels, weights, weighted, shift, shift_sum, scatter)
    weight_sum = float(n_samples if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
    return SuffStats(
        sum_resp=totals,
        shift_sum=shift_sum,
        scatter=scatter.sum(axis=1) if family == "spherical" else scatter,
        shift=shift,
        log_likelihood=0.0,
        weight_sum=weight_sum,
    )


def maximization(
    model: CovarianceModel,
    stats: SuffStats,
    reg_covar: float,
    dtype: np.dtype = np.float64,
    *,
    reseed_empty: bool = True,
    previous: np.ndarray | None = None,
) -> tuple[MixtureParams, list[int]]:
    """M-step: parameters from summed statistics.

    Parameters
    ----------
    model : CovarianceModel
    stats : SuffStats
        Statistics summed over all chunks of one pass.
    reg_covar : float
        Added to the diagonal of each covariance.
    dtype : dtype
        Precision of the data; sets the floor added to component totals,
        as in scikit-learn (``10 * eps``).
    reseed_empty : bool
        Re-seed components with no weight left at the worst-explained sample
        (statistics from an E-step carry it).
    previous : ndarray or None
        The E-step's covariances, where the statistics come from one: a
        searching M-step starts there too
        (:meth:`~gaussmix.covariance.CovarianceModel.estimate_covariances_from`).

    Returns
    -------
    params : MixtureParams
        In float64.
    reseeded : list of int
        Components that were re-seeded.
    """
    sum_resp = stats.sum_resp
    if not all(np.all(np.isfinite(a)) for a in (sum_resp, stats.shift_sum, stats.scatter)):
        # Overflowed sums (float32 data near its range) would reach the
        # solvers (eigh, Cholesky) as inf and fail there obscurely.
        raise _non_finite_error()
    nk = _component_totals(stats, dtype)
    means = _moved_means(stats, nk)
    empty = np.array([], dtype=np.intp)
    if reseed_empty and stats.worst_sample is not None and len(nk) > 1:
        empty = np.flatnonzero(sum_resp < EMPTY_COMPONENT_SHARE * stats.weight_sum)
        if empty.size == len(nk):
            empty = empty[:0]
    covariances = _estimate_covariances(model, stats, nk, reg_covar, empty, previous)
    weights = nk / np.sum(nk)

    reseeded: list[int] = []
    if empty.size:
        for k, seed in zip(empty, _reseed_rows(stats, empty.size)):
            covariances = model.pooled(covariances, weights, int(k))
            means[k] = seed
            # Weight of one sample: enough to let the next E-step claim data.
            weights[k] = 1.0 / max(stats.weight_sum, 1.0)
            reseeded.append(int(k))
        weights = weights / np.sum(weights)

    try:
        precisions_cholesky = model.precision_cholesky(covariances)
    except ValueError as error:
        # The M-step runs in float64; the advice must name the data's dtype.
        raise ill_defined_covariance_error(dtype, getattr(error, "model_name", None)) from None
    params = MixtureParams(weights, means, covariances, precisions_cholesky)
    if not params.all_finite():
        raise _non_finite_error()
    return params, reseeded


# A component's second moments lose about eps * t of relative precision when
# accumulated at squared whitened distance t from its new mean.  The E-step
# keeps t below far_threshold (1e-12 of precision in float64, 1e-5 in
# float32) for the means it is given; an M-step whose means moved beyond
# this multiple of that bound is redone from a second pass around them.
# Ordinary EM steps move means by a fraction of a standard deviation and
# never come near it; a start far from the data (means_init, a warm start on
# shifted data) does.
REFINE_FACTOR = 4.0


def _reseed_rows(stats: SuffStats, count: int) -> list[np.ndarray]:
    """``count`` badly explained rows for emptied components, distinct where the data allow.

    The worst-explained row first, then the statistics' further candidates
    in order, each skipped where it equals a row already taken; when
    distinct rows run out, the worst row again.
    """
    rows = [stats.worst_sample]
    for candidate in [] if stats.reseed_candidates is None else stats.reseed_candidates:
        if len(rows) == count:
            break
        if not any(np.array_equal(candidate, row) for row in rows):
            rows.append(candidate)
    return rows + [stats.worst_sample] * (count - len(rows))


def _component_totals(stats: SuffStats, dtype) -> np.ndarray:
    """``sum_resp`` plus scikit-learn's floor, ``10 eps``: the M-step's divisors."""
    return stats.sum_resp + 10 * np.finfo(dtype).eps


def _moved_means(stats: SuffStats, nk: np.ndarray) -> np.ndarray:
    """The M-step's means, ``shift + shift_sum / nk``."""
    return stats.shift + stats.shift_sum / nk[:, None]


def _shared_scatter(model: CovarianceModel, n_features: int) -> bool:
    """Whether the model sums one scatter over all components (tied), not one each."""
    return model.parameter_shape(1, n_features) == model.parameter_shape(2, n_features)


def maximization_with_refinement(
    model: CovarianceModel,
    stats: SuffStats,
    params: MixtureParams,
    e_step: Callable[[MixtureParams], SuffStats],
    reg_covar: float,
    dtype,
) -> tuple[MixtureParams, list[int]]:
    """:func:`maximization`, redone from a second pass when the means moved too far.

    ``stats`` come from ``e_step(params)``.  Second moments are accumulated
    around shifts chosen from ``params``' means; when the new means lie far
    from them (in whitened distance, see ``REFINE_FACTOR``), the correction
    to the new means cancels most of their digits.  The second pass keeps
    the responsibilities (the same ``params``) and accumulates around the new
    means, so the update is the same EM step, computed accurately.  A first
    M-step that fails outright (a scatter with no precision left) is
    retried the same way before its error is raised.
    """
    previous = np.asarray(params.covariances, dtype=np.float64)
    try:
        new, reseeded = maximization(model, stats, reg_covar, dtype, previous=previous)
    except ValueError:
        means = _moved_means(stats, _component_totals(stats, dtype))
        if np.array_equal(means, stats.shift):
            raise
        return maximization(
            model, e_step(replace(params, shift=means)), reg_covar, dtype, previous=previous
        )
    try:
        moved = model.whitened_sq_norms(new.precisions_cholesky, new.means - stats.shift)
    except NotImplementedError:  # a registered model that cannot whiten
        return new, reseeded
    moved[reseeded] = 0.0  # placed at a sample, with no scatter of their own
    if not np.any(moved > REFINE_FACTOR * far_threshold(dtype)):
        return new, reseeded
    refined = e_step(replace(params, shift=_moved_means(stats, _component_totals(stats, dtype))))
    return maximization(model, refined, reg_covar, dtype, previous=previous)


def _estimate_covariances(
    model: CovarianceModel, stats: SuffStats, nk: np.ndarray, reg_covar: float,
    empty: np.ndarray, previous: np.ndarray | None = None,
) -> np.ndarray:
    """The model's covariance estimate; without the ``empty`` components where they spoil it.

    A constrained M-step (mclust's models that divide by volumes or
    determinants) has no maximum while a component holds no data, and
    returns NaN for every component.  The maximiser over the components
    that keep data is then the M-step; the emptied ones get placeholders,
    replaced when they are re-seeded.
    """
    def estimate(keep):
        statistics = (stats.scatter[keep], stats.sum_resp[keep], stats.shift_sum[keep], nk[keep])
        if previous is None:
            return model.estimate_covariances(*statistics, reg_covar)
        return model.estimate_covariances_from(*statistics, reg_covar, previous[keep])

    covariances = estimate(slice(None))
    shared = _shared_scatter(model, stats.shift.shape[1])
    if not empty.size or shared or np.all(np.isfinite(covariances)):
        return covariances
    keep = np.setdiff1d(np.arange(nk.shape[0]), empty)
    kept = estimate(keep)
    covariances = np.empty((nk.shape[0], *kept.shape[1:]), dtype=kept.dtype)
    covariances[keep] = kept
    covariances[empty] = kept[0]
    return covariances


def _non_finite_error() -> ValueError:
    return ValueError(
        "The M-step produced non-finite parameters; the data may be too "
        "badly scaled for this model. Scale the input data, increase "
        "reg_covar, or decrease the number of components."
    )


def run_em(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    params: MixtureParams,
    *,
    tol: float,
    max_iter: int,
    reg_covar: float,
    lower_bound: float = -np.inf,
    on_iteration: Callable[[int, float, float], None] | None = None,
) -> EMResult:
    """Iterate EM on an in-memory array from ``params`` (see :func:`iterate_em`)."""
    n_chunks = -(-X.shape[0] // e_step_chunk_size(model, params, X.dtype, X.shape[0]))

    def e_step(current: MixtureParams) -> SuffStats:
        return expectation(model, X, sample_weight, current)

    with single_threaded_blas(n_chunks):
        return iterate_em(
            e_step,
            model,
            params,
            dtype=X.dtype,
            tol=tol,
            max_iter=max_iter,
            reg_covar=reg_covar,
            lower_bound=lower_bound,
            on_iteration=on_iteration,
        )


def iterate_em(
    e_step: Callable[[MixtureParams], SuffStats],
    model: CovarianceModel,
    params: MixtureParams,
    *,
    dtype,
    tol: float,
    max_iter: int,
    reg_covar: float,
    lower_bound: float = -np.inf,
    on_iteration: Callable[[int, float, float], None] | None = None,
) -> EMResult:
    """Iterate EM from ``params`` until the mean log-likelihood gains less than ``tol``.

    ``e_step(params)`` makes one pass over the data, wherever they live (an
    array, blocks read from disk, blocks on Dask workers), and returns the
    summed statistics; everything else is the same for every data source.

    The lower bound recorded at iteration ``t`` is the weighted mean
    log-likelihood under the parameters *before* that iteration's M-step,
    exactly as in scikit-learn, so that ``lower_bound_`` and ``n_iter_``
    match it step for step.
    """
    lower_bounds: list[float] = []
    reseed_events: list[tuple[int, int, float]] = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        previous = lower_bound
        stats = e_step(params)
        lower_bound = stats.mean_log_likelihood
        params, reseeded = maximization_with_refinement(
            model, stats, params, e_step, reg_covar, dtype
        )
        reseed_events.extend((n_iter, k, stats.worst_log_density) for k in reseeded)
        lower_bounds.append(lower_bound)
        change = lower_bound - previous
        if on_iteration is not None:
            on_iteration(n_iter, change, lower_bound)
        if abs(change) < tol:
            converged = True
            break
    return EMResult(params, lower_bound, lower_bounds, n_iter, converged, reseed_events)


def log_prob_norm_and_labels(
    model: CovarianceModel, X: np.ndarray, params: MixtureParams, *, want: str
) -> np.ndarray:
    """Per-row ``log p(x)``, labels or responsibilities, computed chunk by chunk.

    ``want`` is ``"score"``, ``"labels"`` or ``"proba"``.
    """
    # float32 rows under a float64 model are scored in float64, as it was fitted.
    X = X.astype(np.result_type(X.dtype, params.means.dtype), copy=False)
    chunk_size = _chunk_size(model, params.n_components, params.n_features, X.dtype)
    centre = _kernels.mixture_centre(params, X.dtype)
    prep = model.prepare(params, centre, X.dtype)

    def infer(rows: slice) -> np.ndarray:
        weighted = _kernels.weighted_log_prob(model, X[rows], params, centre, prep)
        if want == "labels":
            return np.argmax(weighted, axis=0)
        if want == "proba":
            return _kernels.responsibilities(weighted).T
        return _kernels.normalise_log_prob(weighted)[0]

    chunks = _kernels.iter_chunks(X.shape[0], chunk_size)
    with single_threaded_blas(len(chunks)):
        pieces = map_chunks(infer, chunks)
    return np.concatenate(pieces, axis=0)
