"""Initial responsibilities for EM.

Each initialiser draws from the ``RandomState`` it is given in exactly the
order scikit-learn does, so that the same ``random_state`` starts both
libraries from the same point.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from . import em
from ._kernels import rows_of_positive_weight
from ._parallel import free_cores, get_num_threads, single_threaded_blas, threadpool_controller
from .covariance import kernel_family
from .hierarchical import hierarchical_labels
from .kmeans import fitted_sklearn_kmeans, kmeans_labels
from .params import MixtureParams

__all__ = [
    "INIT_METHODS",
    "initial_labels",
    "initial_responsibilities",
    "kmeans_sample_rows",
    "initial_params",
    "start_plan",
    "standardised",
]

INIT_METHODS = (
    "kmeans",
    "k-means++",
    "random",
    "random_from_data",
    "hierarchical",
    "kmeans-sample",
)

# Rows that 'kmeans-sample' clusters: k-means on more rows moves the
# centres little, and its cost grows with the rows times its iterations.
KMEANS_SAMPLE_ROWS = 20_000
KMEANS_SAMPLE_ROWS_PER_COMPONENT = 200


# k-means with at most this many rows * features * components per iteration
# runs on the cores that no other process wants at the time
# (``_parallel.free_cores``), and on one where that is unknown (not on
# Linux).  Its iterations then take a few milliseconds at most and end at a
# barrier, and on busy cores every barrier waits for a descheduled thread;
# on idle cores a second thread pays (bench/README.md, "k-means share").
# Neither k-means engine takes more threads than gaussmix's own
# (``set_num_threads``), nor scikit-learn's more than OpenMP is allowed
# already.  Only the grouping of scikit-learn's floating-point sums, by
# thread, depends on the number of threads; in float32 that can change
# labels (the compiled engine's results never depend on it).
KMEANS_SERIAL_WORK = 1 << 25


def _openmp_threads() -> int | None:
    """The threads an OpenMP section may start now; None without OpenMP."""
    infos = threadpool_controller().select(user_api="openmp").info()
    return min((info["num_threads"] for info in infos), default=None)


def _free_threads(work: int) -> int:
    """gaussmix's threads for a k-means of ``work`` per iteration: the free cores if small."""
    threads = get_num_threads()
    if work <= KMEANS_SERIAL_WORK:
        free = free_cores()
        threads = min(threads, 1 if free is None else max(1, free))
    return threads


def _openmp_limit(threads: int) -> int | None:
    """OpenMP threads for scikit-learn's k-means on ``threads``; None: as it stands."""
    allowed = _openmp_threads()
    if allowed is None or threads >= allowed:
        return None
    return threads


def _kmeans_threads(work: int) -> int | None:
    """OpenMP threads for a k-means of ``work`` per iteration; None: as it stands."""
    return _openmp_limit(_free_threads(work))


def _kmeans(
    X: np.ndarray, n_components: int, random_state: np.random.RandomState,
    sample_weight: np.ndarray | None,
) -> KMeans:
    """scikit-learn's KMeans as its GaussianMixture runs it (one init), fitted."""
    threads = _kmeans_threads(X.shape[0] * X.shape[1] * n_components)
    return fitted_sklearn_kmeans(X, n_components, random_state, sample_weight, threads)


def kmeans_sample_rows(n_samples: int, n_components: int) -> int:
    """Rows clustered by ``init_params='kmeans-sample'``."""
    return min(n_samples, max(KMEANS_SAMPLE_ROWS, KMEANS_SAMPLE_ROWS_PER_COMPONENT * n_components))


def _one_hot(labels: np.ndarray, n_components: int, dtype) -> np.ndarray:
    """Responsibilities of hard labels; rows labelled -1 are in no component."""
    resp = np.zeros((labels.shape[0], n_components), dtype=dtype)
    assigned = np.flatnonzero(labels >= 0)
    resp[assigned, labels[assigned]] = 1
    return resp


def initial_labels(
    X: np.ndarray,
    n_components: int,
    method: str,
    random_state: np.random.RandomState,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray | None:
    """Hard initial assignments: the component of each row, ``-1`` for none.

    Every method but 'random' assigns each row to at most one component;
    'random' (soft responsibilities) returns None.  The random draws are
    those of :func:`initial_responsibilities`, in the same order.
    """
    n_samples = X.shape[0]
    if method in ("kmeans", "kmeans-sample") and sample_weight is not None:
        positive = np.flatnonzero(sample_weight > 0)
        if positive.size < n_samples:
            # Rows of weight zero are not in the data, but k-means would
            # still count them (its stopping tolerance is their variance).
            labels = np.full(n_samples, -1, dtype=np.intp)
            labels[positive] = initial_labels(
                X[positive], n_components, method, random_state, sample_weight[positive]
            )
            return labels
    if method == "hierarchical":
        return hierarchical_labels(X, n_components, sample_weight=sample_weight)
    if method == "kmeans":
        threads = _free_threads(X.shape[0] * X.shape[1] * n_components)
        return kmeans_labels(
            X, n_components, random_state, sample_weight,
            n_threads=threads, sklearn_threads=_openmp_limit(threads),
        ).labels
    if method == "kmeans-sample":
        n_rows = kmeans_sample_rows(n_samples, n_components)
        if n_rows < n_samples:
            rows = np.sort(random_state.choice(n_samples, size=n_rows, replace=False))
            sample, weights = X[rows], None if sample_weight is None else sample_weight[rows]
        else:
            sample, weights = X, sample_weight
        kmeans = _kmeans(sample, n_components, random_state, weights)
        return kmeans.labels_ if n_rows == n_samples else kmeans.predict(X)
    if method == "random":
        return None
    if method == "random_from_data":
        positive = None if sample_weight is None else np.flatnonzero(sample_weight > 0)
        if positive is None or np.all(sample_weight[positive] == sample_weight[positive[0]]):
            # Equal weights draw as no weights, over the rows they keep: numpy's
            # choice with p=, even uniform, takes other draws, so unit weights
            # gave another start and zero weights another than dropped rows.
            pool = n_samples if positive is None else positive.size
            indices = random_state.choice(pool, size=n_components, replace=False)
            if positive is not None:
                indices = positive[indices]
        else:
            probabilities = sample_weight / np.sum(sample_weight)
            indices = random_state.choice(
                n_samples, size=n_components, replace=False, p=probabilities
            )
    elif method == "k-means++":
        _, indices = kmeans_plusplus(
            X, n_components, random_state=random_state, sample_weight=sample_weight
        )
    else:
        valid = ", ".join(repr(m) for m in INIT_METHODS)
        raise ValueError(f"Unknown init_params {method!r}; valid options are {valid}.")
    labels = np.full(n_samples, -1, dtype=np.intp)
    labels[indices] = np.arange(n_components)
    return labels


def initial_responsibilities(
    X: np.ndarray,
    n_components: int,
    method: str,
    random_state: np.random.RandomState,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Responsibilities, shape (n_samples, n_components), to start EM from.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
    method : {'kmeans', 'k-means++', 'random', 'random_from_data', 'hierarchical', \
'kmeans-sample'}
        'kmeans' labels rows with one run of k-means; 'k-means++' puts one
        row in each component with k-means++ seeding; 'random' draws uniform
        responsibilities; 'random_from_data' puts one random row in each;
        'hierarchical' labels rows as R's mclust does by default: VVV
        model-based agglomerative clustering of the SVD-transformed data
        (quantile classes in one dimension), see
        :func:`gaussmix.hierarchical.hierarchical_labels`; 'kmeans-sample'
        runs k-means on a random sample of :func:`kmeans_sample_rows` rows
        and labels every row with its nearest centre.
    random_state : numpy.random.RandomState
        Not used by 'hierarchical', which is deterministic.
    sample_weight : ndarray of shape (n_samples,), optional
        Row multiplicities. Rows of zero weight are never chosen as seeds.
        'hierarchical' leaves them out of the clustering and gives them the
        label of the nearest cluster mean; it counts every row of positive
        weight once.
    """
    labels = initial_labels(X, n_components, method, random_state, sample_weight)
    if labels is None:
        resp = np.asarray(
            random_state.uniform(size=(X.shape[0], n_components)), dtype=X.dtype
        )
        resp /= np.sum(resp, axis=1)[:, None]
        return resp
    return _one_hot(labels, n_components, X.dtype)


def start_plan(init_params: str, start: int) -> tuple[str, bool]:
    """Initialisation method of start number ``start``, and whether on standardised data.

    The first start is scikit-learn's, so ``n_init=1`` matches it.  Later
    starts vary what k-means cannot see on data in raw units, where one
    feature's scale can hide the structure in the others: the second start is
    mclust's hierarchical clustering (k-means on standardised features if the
    first already was), and the following ones alternate the chosen method on
    standardised features and on raw ones.  Deterministic methods
    ('hierarchical') give way to 'kmeans' after their one start.
    """
    if start == 0:
        return init_params, False
    if start == 1 and init_params != "hierarchical":
        return "hierarchical", False
    method = "kmeans" if init_params == "hierarchical" else init_params
    return method, start == 1 or start % 2 == 0


def standardised(X: np.ndarray) -> np.ndarray:
    """Columns scaled to unit standard deviation (constant columns left as they are)."""
    scale = np.std(X, axis=0)
    scale[scale == 0] = 1.0
    return (X - np.mean(X, axis=0)) / scale


def initial_params(
    model,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    random_state: np.random.RandomState,
    user_init: dict,
    *,
    init_params: str,
    n_components: int,
    reg_covar: float,
    start: int = 0,
) -> MixtureParams:
    """Parameters to start EM from: user-supplied, else from initial responsibilities.

    Parameters
    ----------
    model : CovarianceModel
    X : ndarray of shape (n_samples, n_features)
        The rows to initialise from (all of them, or a sample).
    sample_weight : ndarray of shape (n_samples,) or None
    random_state : RandomState
    user_init : dict
        Validated ``weights``, ``means`` and ``precisions`` given by the user;
        each replaces the estimated one.
    init_params : str
        One of :data:`INIT_METHODS`.
    n_components : int
    reg_covar : float
    start : int
        Number of the start in :func:`start_plan`.

    Returns
    -------
    params : MixtureParams
        In float64.
    """
    weights = means = covariances = precisions_chol = None
    # The start's standardisation, draws and statistics as without them.
    X, sample_weight = rows_of_positive_weight(X, sample_weight)
    if len(user_init) < 3:
        method, standardise = start_plan(init_params, start)
        seeds_from = standardised(X) if standardise else X
        labels = initial_labels(seeds_from, n_components, method, random_state, sample_weight)
        if labels is None:
            resp = initial_responsibilities(
                seeds_from, n_components, method, random_state, sample_weight
            )
            with single_threaded_blas():
                stats = em.statistics_from_resp(model, X, sample_weight, resp)
        else:
            # Hard assignments: each row enters only its own component's sums.
            with single_threaded_blas():
                stats = em.statistics_from_labels(
                    model, X, sample_weight, labels, n_components
                )
        try:
            estimated, _ = em.maximization(
                model, stats, reg_covar, X.dtype, reseed_empty=False
            )
        except ValueError:
            family = kernel_family(model)
            if family is model:
                raise
            # One seed row per component leaves no scatter for a
            # constrained M-step (volumes and shapes need determinants):
            # start from the unconstrained estimate of the same kernel,
            # reg_covar * I here; the first M-step imposes the constraint.
            estimated, _ = em.maximization(
                family, stats, reg_covar, X.dtype, reseed_empty=False
            )
        weights, means = estimated.weights, estimated.means
        covariances, precisions_chol = (
            estimated.covariances,
            estimated.precisions_cholesky,
        )
    if "weights" in user_init:
        weights = user_init["weights"]
    if "means" in user_init:
        means = user_init["means"]
    if "precisions" in user_init:
        precisions = np.asarray(user_init["precisions"], dtype=np.float64)
        precisions_chol = model.precision_cholesky_from_precisions(precisions)
        covariances = model.covariances_from_precisions_cholesky(precisions_chol)
    return MixtureParams(
        weights=np.asarray(weights, dtype=np.float64),
        means=np.asarray(means, dtype=np.float64),
        covariances=np.asarray(covariances, dtype=np.float64),
        precisions_cholesky=np.asarray(precisions_chol, dtype=np.float64),
    )
