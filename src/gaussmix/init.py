"""Initial responsibilities for EM.

Each initialiser draws from the ``RandomState`` it is given in exactly the
order scikit-learn does, so that the same ``random_state`` starts both
libraries from the same point.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

from . import em
from .covariance import kernel_family
from .hierarchical import hierarchical_labels
from .params import MixtureParams

__all__ = [
    "INIT_METHODS",
    "initial_responsibilities",
    "initial_params",
    "start_plan",
    "standardised",
]

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data", "hierarchical")


def _one_hot(labels: np.ndarray, n_components: int, dtype) -> np.ndarray:
    resp = np.zeros((labels.shape[0], n_components), dtype=dtype)
    resp[np.arange(labels.shape[0]), labels] = 1
    return resp


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
    method : {'kmeans', 'k-means++', 'random', 'random_from_data', 'hierarchical'}
        'kmeans' labels rows with one run of k-means; 'k-means++' puts one
        row in each component with k-means++ seeding; 'random' draws uniform
        responsibilities; 'random_from_data' puts one random row in each;
        'hierarchical' labels rows as R's mclust does by default: VVV
        model-based agglomerative clustering of the SVD-transformed data
        (quantile classes in one dimension), see
        :func:`gaussmix.hierarchical.hierarchical_labels`.
    random_state : numpy.random.RandomState
        Not used by 'hierarchical', which is deterministic.
    sample_weight : ndarray of shape (n_samples,), optional
        Row multiplicities. Rows of zero weight are never chosen as seeds.
        'hierarchical' leaves them out of the clustering and gives them the
        label of the nearest cluster mean; it counts every row of positive
        weight once.
    """
    n_samples = X.shape[0]
    if method == "hierarchical":
        labels = hierarchical_labels(X, n_components, sample_weight=sample_weight)
        return _one_hot(labels, n_components, X.dtype)
    if method == "kmeans":
        labels = (
            KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
            .fit(X, sample_weight=sample_weight)
            .labels_
        )
        return _one_hot(labels, n_components, X.dtype)
    if method == "random":
        resp = np.asarray(random_state.uniform(size=(n_samples, n_components)), dtype=X.dtype)
        resp /= np.sum(resp, axis=1)[:, None]
        return resp
    if method == "random_from_data":
        if sample_weight is None:
            indices = random_state.choice(n_samples, size=n_components, replace=False)
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
    resp = np.zeros((n_samples, n_components), dtype=X.dtype)
    resp[indices, np.arange(n_components)] = 1
    return resp


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
    if len(user_init) < 3:
        method, standardise = start_plan(init_params, start)
        seeds_from = standardised(X) if standardise else X
        resp = initial_responsibilities(
            seeds_from, n_components, method, random_state, sample_weight
        )
        stats = em.statistics_from_resp(model, X, sample_weight, resp)
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
