"""scikit-learn's k-means start, computed faster: the same labels, sooner.

``GaussianMixture``'s default start is the labels of
``KMeans(n_clusters, n_init=1, random_state=random_state).fit(X)``.
:func:`kmeans_labels` computes them with the same algorithm and the same
random draws, in the same order:

* k-means++ seeding on the column-centred data, with the draws, cumulative
  sums and potentials of scikit-learn's ``_kmeans_plusplus`` (numpy calls on
  arrays of the same values); only the distances to the candidate seeds
  come from one fused pass over the rows instead of a matrix product,
  additions and a clip over temporaries;
* Lloyd iterations with scikit-learn's stopping rules (labels unchanged, or
  the squared centre shifts summed at most ``1e-4`` times the mean feature
  variance, at most 300 iterations, then a last labelling with the final
  centres), where Hamerly's bounds spare most rows the comparison with
  every centre once the centres settle.

Where the float64 result could depend on rounding (a k-means++ draw on the
boundary between two rows' shares, two candidate seeds' potentials as
near, a row whose two nearest centres are equally far within
``TIE_FACTOR``, a centre shift on the stopping threshold) or where
scikit-learn relocates a centre (an empty cluster, fewer distinct labels
than clusters, rows of weight zero), scikit-learn's own Lloyd iterations
run instead from the same seeds (or, where the seeding itself is in doubt
or a cluster ends empty, its whole k-means from the same random state), so
the labels are scikit-learn's in every case it decides by more than
rounding.
For float32 data scikit-learn sums in float32, in an order set by its
number of OpenMP threads, so where float32 rounding decides a label its
own labels change with the machine's cores (``bench_kmeans_compiled.py``:
in 5 of 16 float32 cells, all at N = 1e5, one thread and two give
different labels).  These kernels work in float64 on the same float32 rows
and centring: they give scikit-learn's labels wherever its thread count
does not change them (the other 11 cells), and elsewhere the labels of
the exact arithmetic, which no thread count of scikit-learn's is closer
to than another.

The kernels need numba (``pip install 'gaussmix[fast]'``); without it, with
``GAUSSMIX_KMEANS=sklearn``, or for runs too small to repay loading numba
(about 0.5 s, once per process; smaller runs take the compiled k-means once
numba is loaded), scikit-learn's k-means runs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans

from ._parallel import get_num_threads, map_chunks, single_threaded_blas, threadpool_controller

__all__ = [
    "KMeansResult",
    "kmeans_labels",
    "compiled_kmeans_available",
    "fitted_sklearn_kmeans",
    "sklearn_kmeans",
]

MAX_ITER = 300
TOL = 1e-4
# Squared distances of a row to its two nearest centres closer than this
# times (|x| + max|c|)^2 are a tie that rounding may break either way: far
# above the float64 rounding of either library's distances (D * eps of the
# same scale), far below anything the data decide.
TIE_FACTOR = 1e-11
# Stop-rule values within this relative distance of the tolerance are a tie.
TOL_TIE = 1e-9
# Rows * features * clusters from which 'auto' loads numba for the compiled
# engine: its first load in a process costs about 0.5 s, which only runs
# this large repay.  Once numba is loaded, 'auto' takes the compiled engine
# for runs of any size (200 rows: 1.0 ms against scikit-learn's 1.8 ms).
COMPILED_LOAD_WORK = 1 << 25
# Work per thread (rows x features x clusters) below which one thread does
# it: threads cost ~50 us an iteration to wake and join.  Compiled k-means,
# two threads against one (bench/README, "Compiled"): 0.87x the time at
# N = 1e4, D = K = 16 (work 2.6e6), 0.89x at N = 1e6, D = 2, K = 3 (6e6);
# 1.0-1.17x from 6e5 to 1.6e6 (N = 1e5, D = 2, K = 3: 1.08x; N = 2e4,
# D = K = 8: 1.17x), where a rule by rows alone (8192 per thread) took two.
WORK_PER_THREAD = 1 << 20
# Row ranges per thread: the threads take them from a shared counter, so a
# thread whose rows need more comparisons, or whose core is busier, takes
# fewer.  With one range per thread and BLAS left on its default threads
# (an OpenBLAS thread spinning on the other core after the seeding's
# products), the early Lloyd iterations of N = 1e5, D = K = 16 took 3.8 ms
# on one thread and 7.5 ms on the other.
RANGES_PER_THREAD = 4


@dataclass
class KMeansResult:
    """Labels of a k-means run and how they were computed."""

    labels: np.ndarray
    centers: np.ndarray
    n_iter: int
    engine: str
    # Why the compiled engine handed over to scikit-learn's (None: it did not).
    handed_over: str | None = None


_kernels = None


def _import_kernels():
    from . import _kmeans_kernels

    return _kmeans_kernels


def _load_kernels():
    global _kernels
    if _kernels is None:
        _kernels = _import_kernels()
    return _kernels


def _numba_loaded() -> bool:
    return "numba" in sys.modules


def compiled_kmeans_available() -> bool:
    """Whether the compiled k-means can run: numba imports and its kernels load.

    numba raises RuntimeError where it can cache the kernels nowhere (no
    writable folder beside them or in the user's cache): scikit-learn's
    k-means then runs, with the same labels.
    """
    try:
        _load_kernels()
    except (ImportError, RuntimeError, OSError):
        return False
    return True


def _engine_setting(engine: str, work: int, dtype) -> str:
    if engine not in ("auto", "compiled", "sklearn"):
        raise ValueError(f"engine must be 'auto', 'compiled' or 'sklearn', got {engine!r}.")
    if engine == "auto":
        env = os.environ.get("GAUSSMIX_KMEANS", "auto")
        if env not in ("auto", "compiled", "sklearn"):
            raise ValueError(
                f"GAUSSMIX_KMEANS must be 'auto', 'compiled' or 'sklearn', got {env!r}."
            )
        engine = env
    if engine == "auto":
        worth_it = work >= COMPILED_LOAD_WORK or _numba_loaded()
        compiled = dtype in (np.float32, np.float64) and worth_it and compiled_kmeans_available()
        engine = "compiled" if compiled else "sklearn"
    elif engine == "compiled" and not compiled_kmeans_available():
        raise ImportError(
            "The compiled k-means needs numba and a writable cache for its kernels "
            "(NUMBA_CACHE_DIR): pip install 'gaussmix[fast]', or use engine='sklearn'."
        )
    return engine


def fitted_sklearn_kmeans(X, n_clusters, random_state, sample_weight, n_threads=None) -> KMeans:
    """scikit-learn's ``KMeans(n_clusters, n_init=1, random_state=random_state)``, fitted
    on ``n_threads`` OpenMP threads (None: as it stands)."""
    kmeans = KMeans(n_clusters=n_clusters, n_init=1, random_state=random_state)
    if n_threads is None:
        return kmeans.fit(X, sample_weight=sample_weight)
    with threadpool_controller().limit(limits=n_threads, user_api="openmp"):
        return kmeans.fit(X, sample_weight=sample_weight)


def sklearn_kmeans(X, n_clusters, random_state, sample_weight, n_threads=None) -> KMeansResult:
    """:func:`fitted_sklearn_kmeans` as a :class:`KMeansResult`."""
    kmeans = fitted_sklearn_kmeans(X, n_clusters, random_state, sample_weight, n_threads)
    return KMeansResult(kmeans.labels_, kmeans.cluster_centers_, kmeans.n_iter_, "sklearn")


def kmeans_labels(
    X: np.ndarray,
    n_clusters: int,
    random_state: np.random.RandomState,
    sample_weight: np.ndarray | None = None,
    *,
    n_threads: int | None = None,
    sklearn_threads: int | None = None,
    engine: str = "auto",
) -> KMeansResult:
    """The labels of scikit-learn's ``KMeans(n_clusters, n_init=1)`` on ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    n_clusters : int
    random_state : numpy.random.RandomState
        Drawn from as scikit-learn's k-means draws from it.
    sample_weight : ndarray of shape (n_samples,), optional
    n_threads : int, optional
        Threads of the compiled engine; default gaussmix's
        (:func:`gaussmix.set_num_threads`).
    sklearn_threads : int, optional
        OpenMP threads of scikit-learn's k-means; default as it stands.
    engine : {'auto', 'compiled', 'sklearn'}
        'compiled' needs numba; 'auto' takes it where numba can be
        imported, for runs of :data:`COMPILED_LOAD_WORK` rows *
        features * clusters and more, or of any size once numba is
        loaded; the environment variable
        ``GAUSSMIX_KMEANS`` ('compiled' or 'sklearn') overrides it.

    Returns
    -------
    KMeansResult
        ``labels`` (n_samples,), ``centers`` (n_clusters, n_features) in
        ``X``'s dtype, ``n_iter``, and the engine that computed them.
    """
    n_samples, n_features = X.shape
    engine = _engine_setting(engine, n_samples * n_features * n_clusters, X.dtype)
    if engine == "sklearn" or n_samples < n_clusters or X.dtype not in (np.float32, np.float64):
        return sklearn_kmeans(X, n_clusters, random_state, sample_weight, sklearn_threads)
    state = random_state.get_state()
    result = _compiled_kmeans(X, n_clusters, random_state, sample_weight, n_threads)
    if isinstance(result, _HandOver):
        lloyd = _sklearn_lloyd(result, sklearn_threads) if result.seeds is not None else None
        if lloyd is not None:
            return lloyd
        # From the start, for scikit-learn's own warnings and relocations.
        random_state.set_state(state)
        handed = sklearn_kmeans(X, n_clusters, random_state, sample_weight, sklearn_threads)
        handed.handed_over = result.reason
        return handed
    return result


@dataclass
class _HandOver:
    """Why the compiled run stopped, and what scikit-learn's Lloyd needs to go on."""

    reason: str
    seeds: np.ndarray | None = None
    Xc: np.ndarray | None = None
    weights: np.ndarray | None = None
    tol: float = 0.0
    X_mean: np.ndarray | None = None


def _private_lloyd():
    """scikit-learn's Lloyd run and its OpenMP thread count (private), or None."""
    try:
        from sklearn.cluster._kmeans import _kmeans_single_lloyd
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    except ImportError:
        return None
    return _kmeans_single_lloyd, _openmp_effective_n_threads


def _sklearn_lloyd(handover: _HandOver, sklearn_threads: int | None) -> KMeansResult | None:
    """scikit-learn's Lloyd iterations from the seeds, as its ``KMeans.fit`` runs them.

    The seeds are scikit-learn's own (the same rows of the same centred
    data), so this finishes the run scikit-learn would have made, without
    seeding again.  None where its private function is not as expected, or
    the labels leave a cluster out (``KMeans.fit`` warns of that): then the
    whole of ``KMeans.fit`` runs.
    """
    private = _private_lloyd()
    if private is None:
        return None
    single_lloyd, openmp_threads = private

    def run():
        return single_lloyd(
            handover.Xc, handover.weights, handover.seeds.copy(), max_iter=MAX_ITER,
            verbose=False, tol=handover.tol, n_threads=openmp_threads(),
        )

    try:
        if sklearn_threads is None:
            labels, _, centers, n_iter = run()
        else:
            with threadpool_controller().limit(limits=sklearn_threads, user_api="openmp"):
                labels, _, centers, n_iter = run()
    except TypeError:
        return None
    n_clusters = handover.seeds.shape[0]
    if np.unique(labels).size < n_clusters:
        return None
    return KMeansResult(
        labels, centers + handover.X_mean, int(n_iter), "sklearn", handover.reason
    )


@dataclass(frozen=True)
class _Plan:
    """The threads that pay (at most ``n_threads``) and the row ranges they share."""

    threads: int
    ranges: list[tuple[int, int]]

    def map(self, function):
        """``[function(r) for r in ranges]`` on :attr:`threads` threads."""
        return map_chunks(function, self.ranges, self.threads)


def _thread_plan(n_samples: int, n_threads: int | None, row_work: int) -> _Plan:
    """Row ranges of whole blocks, :data:`RANGES_PER_THREAD` per thread that pays.

    ``row_work`` is the work of one row in an iteration, features x clusters.
    """
    block = _load_kernels().BLOCK_ROWS
    threads = get_num_threads() if n_threads is None else n_threads
    n_blocks = -(-n_samples // block)
    threads = max(1, min(threads, n_blocks, n_samples * row_work // WORK_PER_THREAD))
    n_ranges = 1 if threads == 1 else min(n_blocks, threads * RANGES_PER_THREAD)
    edges = [round(r * n_blocks / n_ranges) * block for r in range(n_ranges + 1)]
    return _Plan(threads, [(edges[r], min(edges[r + 1], n_samples)) for r in range(n_ranges)])


def _run_blas_serial(function, plan: _Plan):
    """:meth:`_Plan.map` with BLAS on one thread: the kernels' products are
    small, and BLAS threads would only contend with ours."""
    with single_threaded_blas():
        return plan.map(function)


def _seed(Xc, row_sq, n_clusters, sample_weight, random_state, plan):
    """k-means++ seeds as scikit-learn's ``_kmeans_plusplus`` picks them (indices).

    None where a draw falls so near a boundary of the cumulative sums, or two
    candidates' potentials lie so near each other, that the rounding of the
    distances (here and in scikit-learn) could pick another seed.
    """
    kernels = _load_kernels()
    n_samples, n_features = Xc.shape
    rounding = _rounding_budget(row_sq, sample_weight, n_features)
    n_local_trials = 2 + int(np.log(n_clusters))
    center_id = random_state.choice(n_samples, p=sample_weight / sample_weight.sum())
    indices = np.full(n_clusters, -1, dtype=int)
    indices[0] = center_id
    closest = np.empty((1, n_samples), dtype=Xc.dtype)

    def distances(candidates, previous, out):
        seeds = np.asarray(candidates, dtype=np.float64)
        seeds_t = np.ascontiguousarray(seeds.T)
        seeds_sq = np.einsum("ij,ij->i", seeds, seeds)

        def rows(bounds):
            kernels.candidate_distances(
                Xc, row_sq, bounds[0], bounds[1], seeds_t, seeds_sq, previous, out
            )

        # The numpy calls around run as in scikit-learn, on its BLAS threads:
        # the (1, n) @ (n,) potential rounds differently on one thread.
        _run_blas_serial(rows, plan)

    distances(Xc[[center_id]], None, closest)
    # Shapes as scikit-learn's: (1, n) @ (n,) here and (t, n) @ (n, 1) below
    # pick the same BLAS routines, so the potentials round alike.
    closest_dist_sq = closest
    current_pot = closest_dist_sq @ sample_weight
    trials = np.empty((n_local_trials, n_samples), dtype=Xc.dtype)
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_local_trials) * current_pot
        # The cumulative sums go into a row of ``trials``, free until the
        # candidates' distances: no other array of every row is held.
        cumulative = trials[0]
        kernels.weighted_cumsum(sample_weight, closest_dist_sq.reshape(-1), cumulative)
        candidate_ids = _search_left(cumulative, rand_vals)
        if _near_boundary(cumulative, candidate_ids, rand_vals, rounding):
            return None
        np.clip(candidate_ids, None, closest_dist_sq.size - 1, out=candidate_ids)
        candidates = Xc[candidate_ids]
        distances(candidates, closest_dist_sq.reshape(-1), trials)
        candidates_pot = trials @ sample_weight.reshape(-1, 1)
        best_candidate = np.argmin(candidates_pot)
        # Candidates at the best one's very coordinates have the same
        # potential in both libraries, and both keep the first.
        same_point = np.all(candidates == candidates[best_candidate], axis=1)
        runner_up = np.min(candidates_pot[~same_point, 0], initial=np.inf)
        if runner_up - candidates_pot[best_candidate, 0] <= 2 * rounding:
            return None
        current_pot = candidates_pot[best_candidate]
        # Into the same row, so that no second one is held meanwhile.
        closest_dist_sq[0] = trials[best_candidate]
        indices[c] = candidate_ids[best_candidate]
    return indices


def _search_left(cumulative, values) -> np.ndarray:
    """``np.searchsorted(cumulative, values)`` without up-casting ``cumulative``.

    float32 sums against float64 draws: numpy compares them in float64 by
    copying every sum; here each comparison up-casts one, exactly as well.
    """
    if cumulative.dtype == values.dtype:
        return np.searchsorted(cumulative, values)
    found = np.empty(values.shape, dtype=np.intp)
    for j, value in enumerate(values.tolist()):
        low, high = 0, cumulative.shape[0]
        while low < high:
            middle = (low + high) // 2
            if float(cumulative[middle]) < value:
                low = middle + 1
            else:
                high = middle
        found[j] = low
    return found


def _rounding_budget(row_sq, sample_weight, n_features, block=4096) -> float:
    """How far a k-means++ cumulative sum or potential can be off, here or in scikit-learn.

    Each distance is off by at most (D + 4) eps (|x| + |c|)^2 in either
    library; summed over the rows (weighted), for the largest |c| of any
    row (twice, one for each library).  Summed a block of rows at a time,
    so that no temporary of every row is held.
    """
    largest = float(np.sqrt(row_sq.max()))
    total = 0.0
    for start in range(0, row_sq.shape[0], block):
        norms = np.sqrt(row_sq[start : start + block])
        norms += largest
        norms *= norms
        total += float(np.asarray(sample_weight[start : start + block], dtype=np.float64) @ norms)
    return 2 * (n_features + 4) * np.finfo(np.float64).eps * total


def _near_boundary(cumulative, ids, values, rounding) -> bool:
    """Whether a draw lies within ``rounding`` of a cumulative sum next to it."""
    above = cumulative[np.minimum(ids, cumulative.size - 1)]
    below = np.where(ids > 0, cumulative[np.maximum(ids - 1, 0)], -np.inf)
    # The draw scales the potential, itself off by up to ``rounding``.
    margin = 2 * rounding
    return bool(np.any((np.abs(above - values) <= margin) | (values - below <= margin)))


def _compiled_kmeans(X, n_clusters, random_state, sample_weight, n_threads):
    """The compiled k-means, or why (and from where) scikit-learn's must decide instead."""
    kernels = _load_kernels()
    n_samples, n_features = X.shape
    X = np.ascontiguousarray(X)
    weights = (
        np.ones(n_samples, dtype=X.dtype)
        if sample_weight is None
        else np.asarray(sample_weight, dtype=X.dtype)
    )
    if not np.all(weights > 0):
        # A cluster of weightless rows has no mean: scikit-learn relocates it.
        return _HandOver("weights not all positive")
    X_mean = X.mean(axis=0)
    Xc = X - X_mean
    plan = _thread_plan(n_samples, n_threads, n_features * n_clusters)
    row_sq = np.einsum("ij,ij->i", Xc, Xc, dtype=np.float64)
    # scikit-learn's tolerance, the mean of the feature variances, from the
    # squared norms of the centred rows (the same squares, summed by row
    # first): it differs by rounding, far inside TOL_TIE, and spares
    # np.var's passes over X.
    tol = float(np.sum(row_sq)) / (n_samples * n_features) * TOL
    indices = _seed(Xc, row_sq, n_clusters, weights, random_state, plan)
    if indices is None:
        return _HandOver("seeding tie")
    seeds = Xc[indices]
    centers = seeds.astype(np.float64)

    def hand_over(reason):
        # scikit-learn's Lloyd goes on with its own tolerance, to the bit.
        sklearn_tol = np.mean(np.var(X, axis=0)) * TOL
        return _HandOver(reason, seeds, Xc, weights, sklearn_tol, X_mean)

    # In place: the squared norms are not needed after the seeding.
    row_norms = np.sqrt(row_sq, out=row_sq)
    del row_sq
    labels = np.full(n_samples, -1, dtype=np.int32)
    upper = np.zeros(n_samples)
    lower = np.zeros(n_samples)
    n_blocks = -(-n_samples // kernels.BLOCK_ROWS)
    block_sums = np.zeros((n_blocks, n_clusters, n_features))
    block_weights = np.zeros((n_blocks, n_clusters))
    block_counts = np.zeros((n_blocks, n_clusters), dtype=np.int64)
    slack_factor = (n_features + 4) * np.finfo(np.float64).eps
    shift = np.zeros(n_clusters)
    half_gap = np.zeros(n_clusters)
    centers_sq = np.empty(n_clusters)

    def iteration(first: bool, update: bool):
        largest_norm, first_moved, largest_shift, second_shift = kernels.iteration_constants(
            centers, shift, centers_sq
        )

        def rows(bounds):
            return kernels.lloyd_rows(
                Xc, weights, bounds[0], bounds[1], centers, centers_sq, half_gap,
                shift, first_moved, largest_shift, second_shift, labels, upper, lower,
                row_norms, largest_norm, slack_factor, TIE_FACTOR, block_sums, block_weights,
                block_counts, first, update,
            )

        # Summed in Python: numpy's conversion of a short list of tuples
        # costs more than the sums.
        counts = plan.map(rows)
        return sum(count[0] for count in counts), sum(count[1] for count in counts)

    # The kernels' products are small; BLAS threads would only contend with ours.
    with single_threaded_blas():
        strict = False
        for n_iter in range(1, MAX_ITER + 1):
            changed, ties = iteration(n_iter == 1, True)
            if ties:
                return hand_over("tie")
            if not kernels.update_centers(
                block_sums, block_weights, block_counts, centers, shift, half_gap
            ):
                return hand_over("empty cluster")
            if changed == 0:
                strict = True
                break
            center_shift_tot = float(shift @ shift)
            if abs(center_shift_tot - tol) <= TOL_TIE * tol:
                return hand_over("stopping tie")
            if center_shift_tot <= tol:
                break
        if not strict:
            # Counts kept up to date, so that they tell whether a cluster emptied.
            _, ties = iteration(False, True)
            if ties:
                return hand_over("tie")
    if np.any(block_counts.sum(axis=0) == 0):
        return _HandOver("empty cluster")
    return KMeansResult(labels, (centers + X_mean).astype(X.dtype), n_iter, "compiled")
