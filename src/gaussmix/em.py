"""The EM engine: E-step as a map over chunks, M-step from summed statistics.

Nothing here holds estimator state; every function takes the data, the
covariance model and the current parameters, and returns new values.  The
M-step is :mod:`gaussmix._maximization`, the statistics of a starting
partition :mod:`gaussmix._start_statistics`; both are exported here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import _kernels
from ._compiled import compiled_module
from ._maximization import maximization, maximization_with_refinement
from ._parallel import available_cores, imap_chunks, map_chunks, single_threaded_blas
from ._start_statistics import statistics_from_labels, statistics_from_resp
from .covariance import CovarianceModel
from .params import MixtureParams
from .suffstats import SuffStats, sum_stats

__all__ = [
    "EMResult",
    "e_step_chunk_size",
    "expectation",
    "sparse_statistics_for",
    "COMPILED_KERNELS_WORK",
    "COMPILED_NORMALISATION_TERMS",
    "statistics_from_resp",
    "statistics_from_labels",
    "maximization",
    "maximization_with_refinement",
    "run_em",
    "iterate_em",
    "log_prob_norm_and_labels",
]


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


def e_step_chunk_size(model: CovarianceModel, params: MixtureParams, dtype, n_samples: int) -> int:
    """Rows per chunk of the E-step over a data set of ``n_samples`` rows.

    Sources that hand the rows over in blocks pass it to :func:`expectation`
    for each block, so that they use the chunk size of the same rows in
    memory (the very chunks and sums where each block is one chunk).
    """
    return _kernels.model_chunk_size(model, params.n_components, params.n_features, dtype, n_samples)


# A thread takes up to this many consecutive chunks at a time and sums their
# statistics itself: each task costs the calling thread a hand-off and an
# addition, as much as the E-step of a small chunk.  Tasks depend only on
# the number of rows, the chunk size, the chunk's work and the machine's
# cores, never on the number of threads in use, so the sums stay
# reproducible; two tasks per core keep the cores evenly loaded.
_CHUNKS_PER_TASK = 8
_MIN_TASKS = max(4, 2 * available_cores())
# Chunks of at least this many rows x features x components are tasks of
# their own: a run of eight of them is several milliseconds, and the thread
# left without a run at the end of a pass waits for the other's.  Two
# threads, BLAS on one, ms per iteration, one chunk a task against runs of
# up to eight: full covariance, N = 1e5, overlapping, D = 64, K = 16: 254.5
# against 269.0 in float64, 129.6 against 143.3 in float32; D = 16, K = 64:
# 35.5 against 36.4 in float32; D = K = 16: 22.7 against 25.2 in float64;
# tied, D = 64, K = 16: 41.0 against 44.9.  Smaller chunks (D = 2, K = 3:
# 16384 rows, work 1e5) were 4-11 % slower alone, and keep their runs.
_TASK_CHUNK_WORK = 1 << 19


def _tasks(n_samples: int, chunk_size: int, chunk_work: int = 0) -> list[slice]:
    """Runs of whole chunks, at least ``_MIN_TASKS`` of them where there are as many chunks.

    ``chunk_work`` is a chunk's rows x features x components: chunks of at
    least ``_TASK_CHUNK_WORK`` are tasks of their own.
    """
    if chunk_work >= _TASK_CHUNK_WORK:
        return _kernels.iter_chunks(n_samples, chunk_size)
    n_chunks = -(-n_samples // chunk_size)
    per_task = max(1, min(_CHUNKS_PER_TASK, n_chunks // _MIN_TASKS))
    return _kernels.iter_chunks(n_samples, chunk_size * per_task)


# Rows x features x components of a pass from which compiled kernels may
# serve it: the sparse statistics below, and the full-covariance products
# and refined pairs of gaussmix._quadratic_kernels.  Their first use in a
# process loads numba and the cached kernel, 0.4 s on this machine (0.15 s
# and 0.25 s); the sparse statistics save about 1 ns per row x feature x
# component of each iteration on separated clusters in float32 (D = K = 16:
# 357 against 99 ns per row), and the compiled products 0.5-1 ns (D = 16:
# 162 against 43 ns per row in float32, 326 against 86 in float64), so from
# 2^24 the load repays itself within about 25 iterations.
COMPILED_KERNELS_WORK = 1 << 24


def compiled_pass(work: int) -> bool:
    """Whether a pass of ``work`` rows x features x components may take the compiled kernels."""
    return work >= COMPILED_KERNELS_WORK


# Rows x components of a compiled pass from which the compiled normalisation
# (gaussmix._softmax_kernels) serves it too, where no other kernel of the
# pass loads numba anyway.  It saves about 0.8 ns per row x component of
# each iteration in float64 and 1.2 in float32 (numpy's passes against the
# kernel's, full covariance, N = 1e5, D = 16, K = 64, overlapping, one
# thread: 16.0 against 11.1 ms per iteration in float64, 12.0 against 4.5
# in float32), so from 2^22 the load (0.4 s) repays itself within about
# 80 iterations in float32 and 125 in float64.
COMPILED_NORMALISATION_TERMS = 1 << 22


def compiled_normalisation(work: int, terms: int, loads_numba: bool) -> bool:
    """Whether a pass takes the compiled normalisation.

    ``work`` is its rows x features x components, ``terms`` its rows x
    components, ``loads_numba`` whether the pass's model has other compiled
    kernels, so that numba's load is (mostly) paid anyway.
    """
    return compiled_pass(work) and (loads_numba or terms >= COMPILED_NORMALISATION_TERMS)


def _takes_compiled_normalisation(model: CovarianceModel, work: int, terms: int) -> bool:
    """:func:`compiled_normalisation` for a pass of ``model``.

    Full covariance (the model with sparse statistics) takes it in every
    compiled pass: its products, refined pairs or sparse statistics load
    numba anyway, except on overlapping clusters with few components per
    feature, whose iterations cost so much more that the load weighs
    little.
    """
    return compiled_normalisation(work, terms, sparse_statistics_for(model, work) is not None)


def sparse_statistics_for(model: CovarianceModel, work: int):
    """The compiled sparse statistics of ``model`` for a pass of ``work`` rows x features x components.

    Where the model has them (full covariance) and the work is at least
    :data:`COMPILED_KERNELS_WORK`, a function of the arguments of
    ``model.sparse_stats_rows`` that loads numba on its first call and
    returns None where numba does not load (the caller then sums densely);
    else None.  It is called only on chunks sparse enough for it, so it
    loads nothing for fits that have none (float64, overlapping clusters).
    The rule depends on the data alone, so a fit takes the same path, and
    gives the same bits, in every process where numba is installed.
    """
    method = getattr(model, "sparse_stats_rows", None)
    if method is None or not compiled_pass(work):
        return None
    return functools.partial(_compiled_or_none, method)


def _compiled_or_none(method, *args):
    """``method(*args)``, or None where the compiled kernels do not load."""
    if not _scatter_kernels_load():
        return None
    return method(*args)


def _scatter_kernels_load() -> bool:
    return compiled_module("_scatter_kernels") is not None


def expectation(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    params: MixtureParams,
    chunk_size: int | None = None,
    n_samples: int | None = None,
) -> SuffStats:
    """E-step over all of ``X``, chunk by chunk, reduced to one :class:`SuffStats`.

    Chunks run on all cores (see :mod:`gaussmix._parallel`) and are summed
    in order, so the result does not depend on the number of threads.
    ``n_samples``, the rows of the whole data set where ``X`` is one block
    of it (default: ``X``'s), sets the chunk size (unless given) and whether
    the compiled sparse statistics serve: a block takes the same kernels as
    the same rows in memory.
    """
    if n_samples is None:
        n_samples = X.shape[0]
    if chunk_size is None:
        chunk_size = e_step_chunk_size(model, params, X.dtype, n_samples)
    centre = _kernels.mixture_centre(params, X.dtype)
    work = n_samples * X.shape[1] * params.n_components
    prep = model.prepare(params, centre, X.dtype, compiled=compiled_pass(work))
    sparse = sparse_statistics_for(model, work)
    if sparse is not None:
        prep = {**prep, "sparse_statistics": sparse}
    if _takes_compiled_normalisation(model, work, n_samples * params.n_components):
        prep = {**prep, "compiled_normalisation": True}

    def e_step(task: slice) -> SuffStats:
        return sum_stats(
            _kernels.e_step_chunk(
                model, X[rows], _kernels.chunk_weights(sample_weight, rows), params, centre, prep
            )
            for rows in _kernels.iter_chunks(task.stop - task.start, chunk_size, task.start)
        )

    chunk_work = chunk_size * X.shape[1] * params.n_components
    return sum_stats(imap_chunks(e_step, _tasks(X.shape[0], chunk_size, chunk_work)))


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

    def e_step(current: MixtureParams) -> SuffStats:
        return expectation(model, X, sample_weight, current)

    with single_threaded_blas():
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
    chunk_size = _kernels.model_chunk_size(model, params.n_components, params.n_features, X.dtype)
    centre = _kernels.mixture_centre(params, X.dtype)
    # The rule of the fit's passes (expectation), so that the same rows
    # score as the fit's lower bound measured them.
    work = X.shape[0] * X.shape[1] * params.n_components
    prep = model.prepare(params, centre, X.dtype, compiled=compiled_pass(work))
    compiled = _takes_compiled_normalisation(model, work, X.shape[0] * params.n_components)

    def infer(rows: slice) -> np.ndarray:
        weighted = _kernels.weighted_log_prob(model, X[rows], params, centre, prep)
        if want == "labels":
            return np.argmax(weighted, axis=0)
        if want == "proba":
            # Rows first and C-ordered, as scikit-learn's: code handing the
            # array to C expects that layout, not the transpose's.
            return np.ascontiguousarray(_kernels.responsibilities(weighted).T)
        normalised = _kernels.normalise_compiled(weighted) if compiled else None
        if normalised is None:
            return _kernels.normalise_log_prob(weighted)[0]
        return normalised[0]

    chunks = _kernels.iter_chunks(X.shape[0], chunk_size)
    with single_threaded_blas():
        pieces = map_chunks(infer, chunks)
    return np.concatenate(pieces, axis=0)
