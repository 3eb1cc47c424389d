"""Model-based agglomerative hierarchical clustering, as R's mclust ``hc``.

This is the VVV criterion of Banfield & Raftery (1993) with the regularised
merge cost of Fraley (1998), "Algorithms for model-based Gaussian
hierarchical clustering", SIAM J. Sci. Comput. 20(1), and the same
transformation, tie-breaking and tree cut as mclust 6.0.0's
``hc(modelName = "VVV", use = "SVD")`` and ``hclass``.  mclust starts EM
from the partition of this tree into G clusters; in one dimension it uses
quantile classes (``qclass``) instead, and so does :func:`hierarchical_labels`.

Criterion
---------
A cluster C of n points with scatter matrix W (sum of outer products of the
deviations from the cluster mean) in p dimensions is scored by

    term(C) = n * log(det(W / n) + beta * (trace(W) + alpha) / n),

where det(W / n) is 0 when n <= p (W is then singular), so that a singleton
scores log(alpha * beta) and a cluster of at most p points scores
n * log(beta * (trace(W) + alpha) / n).  The cost of merging clusters i and j
is term(i + j) - term(i) - term(j), the change in (minus two times) the
regularised VVV classification log-likelihood; each step merges the pair of
least cost.  As in mclust's ``hcVVV``, beta = 1 and
alpha = trace(W_all) / (n * p) of the (transformed) data, at least the
machine epsilon.  The trace term keeps the cost finite and informative for
clusters too small, or too flat, to have a non-singular scatter matrix.

On the SVD-transformed data the columns have sums of squares equal to the
singular values, so alpha is about sqrt(n) / n and cluster covariances are
small: det(W / n) is then orders of magnitude below the trace term (for the
three-cluster cuts of faithful, iris and banknote by 2 to 9 orders), and the
cost behaves like that of n * log((trace(W) + alpha) / n), a spherical
criterion of variable volume, on the transformed data.

Identical rows start apart, as they do in mclust 6.0.0: ``hc``'s default
``partition = dupPartition(data)`` is never passed on to ``hcVVV``, which
then starts from every row alone (mclust returns n - 1 merges for faithful's
272 rows, 16 of them repeats).  Two identical rows cost -2 log 2 to merge,
the least cost of any pair of single rows, so they join early; starting them
in one cluster instead changes the tree (:func:`hierarchical_merges` takes
such a ``partition``).

Ties are broken as in mclust: costs are ordered by pair (i, j), i < j,
column by column (j, then i) over cluster slots, the last least cost wins,
the merged cluster keeps slot i and the cluster in the last slot moves into
slot j.  Costs are computed by a different floating-point route than
mclust's Fortran (LU instead of Givens QR for determinants), so pairs whose
costs tie to the last bit in one implementation may not in the other.
"""

from __future__ import annotations

import numpy as np

from ._agglomeration import _consecutive, hierarchical_merges

__all__ = [
    "svd_transform",
    "hierarchical_merges",
    "cut_tree",
    "quantile_classes",
    "hierarchical_labels",
]

#: Rows clustered at most; larger inputs cluster a fixed-seed subsample, like
#: mclust's ``subset`` option (default 2000).
DEFAULT_MAX_SAMPLES = 2000

#: Seed of the ``numpy.random.Generator`` that draws that subsample.
SUBSAMPLE_SEED = 0


# --------------------------------------------------------------------------
# transformation


def _svd_projection(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Column selection, centre, scale and projection of mclust's "SVD" use."""
    center = X.mean(axis=0)
    scale = X.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    # mclust drops columns that standardising leaves non-finite (constant ones).
    keep = np.flatnonzero(np.isfinite(scale) & (scale > 0))
    Xs = (X[:, keep] - center[keep]) / scale[keep]
    if keep.size == 0:
        return keep, center, scale, np.zeros((0, 0))
    _, d, Vt = np.linalg.svd(Xs, full_matrices=False)
    # Directions without spread (collinear columns) would be divided by zero.
    tol = d.max() * max(Xs.shape) * np.finfo(float).eps
    rank = int(np.sum(d > tol))
    projection = Vt[:rank].T / np.sqrt(d[:rank])
    return keep, center, scale, projection


def svd_transform(X: np.ndarray) -> np.ndarray:
    """mclust's ``hcUse = "SVD"`` transformation of the data.

    Each column is standardised (centred, divided by its standard deviation
    with n - 1 degrees of freedom; constant columns are dropped), giving Xs.
    With the thin SVD Xs = U diag(d) V^T, the result is
    ``Z = Xs V diag(1 / sqrt(d))``: the principal components, each divided by
    the square root of its singular value.  Directions of zero singular value
    (collinear columns), which mclust does not guard against, are dropped.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    Z : ndarray of shape (n_samples, rank)
    """
    X = np.asarray(X, dtype=np.float64)
    keep, center, scale, projection = _svd_projection(X)
    return ((X[:, keep] - center[keep]) / scale[keep]) @ projection


def _transform_fitted_on(X: np.ndarray, rows: np.ndarray, transform: str | None):
    """The transformation fitted on ``X[rows]`` as a function of any rows of ``X``."""
    if transform is None:
        return lambda Y: Y
    keep, center, scale, projection = _svd_projection(X[rows])
    return lambda Y: ((Y[:, keep] - center[keep]) / scale[keep]) @ projection


# --------------------------------------------------------------------------
# cutting the tree


def cut_tree(pairs: np.ndarray, partition: np.ndarray, n_clusters: int) -> np.ndarray:
    """Labels of the rows when the tree is cut at ``n_clusters`` (mclust ``hclass``).

    Parameters
    ----------
    pairs : ndarray of shape (n_groups - 1, 2)
        From :func:`hierarchical_merges`.
    partition : ndarray of shape (n_samples,)
        The initial clusters given to :func:`hierarchical_merges`.
    n_clusters : int
        Between 1 and n_groups.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        0, 1, ..., n_clusters - 1, numbered in order of first appearance.
    """
    partition = np.asarray(partition, dtype=np.intp)
    n_groups = pairs.shape[0] + 1
    if not 1 <= n_clusters <= n_groups:
        raise ValueError(f"n_clusters must be in [1, {n_groups}], got {n_clusters}.")
    group = np.arange(n_groups)
    for i, j in pairs[: n_groups - n_clusters]:
        group[group == j] = i
    return _consecutive(group[partition])


# --------------------------------------------------------------------------
# one dimension


def _r_quantile7(sorted_x: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R's ``quantile(x, probs)`` (type 7) of sorted data, operation for operation."""
    n = sorted_x.size
    index = 1.0 + (n - 1) * probs
    lo = np.floor(index).astype(np.intp)
    hi = np.ceil(index).astype(np.intp)
    qs = sorted_x[lo - 1]
    interpolate = (index > lo) & (sorted_x[hi - 1] != qs)
    h = (index - lo)[interpolate]
    qs[interpolate] = (1 - h) * qs[interpolate] + h * sorted_x[hi[interpolate] - 1]
    return qs


def _r_seq01(length: int) -> np.ndarray:
    """R's ``seq(from = 0, to = 1, length = length)``."""
    steps = np.arange(length, dtype=np.float64) * (1.0 / (length - 1))
    steps[-1] = 1.0
    return steps


def _quantile_breaks(sorted_x: np.ndarray, k: int) -> np.ndarray:
    """k + 1 distinct quantile breaks, the first grid of quantiles that has them."""
    # The finest grid reproduces the distinct values; cap the search there.
    max_grid = min(sorted_x.size, 4096)
    grid = k
    breaks = np.zeros(0)
    while breaks.size < k + 1 and grid < max_grid:
        grid += 1
        breaks = np.unique(_r_quantile7(sorted_x, _r_seq01(grid)))
    if breaks.size < k + 1:
        breaks = np.unique(sorted_x)
    if breaks.size > k + 1:
        # Drop the lower break of each of the smallest gaps (R's order is stable).
        drop = np.argsort(np.diff(breaks), kind="stable")[: breaks.size - k - 1]
        breaks = np.delete(breaks, drop)
    return breaks


def quantile_classes(x: np.ndarray, n_classes: int) -> np.ndarray:
    """mclust's ``qclass``: classes between quantiles of one-dimensional data.

    The breaks are the distinct quantiles (R's type 7) on the coarsest grid
    of k + 2, k + 3, ... equally spaced probabilities that gives at least
    k + 1 of them; if there are more, the lower break of each of the smallest
    gaps is dropped.  Class c holds the values in [break c, break c + 1), the
    outer breaks widened to the data range by sd * sqrt(machine epsilon).
    With k or fewer distinct values, which mclust cannot classify, each
    distinct value is a class when there are exactly k, else the sorted values
    are cut into k blocks of nearly equal size.

    Parameters
    ----------
    x : ndarray of shape (n_samples,)
    n_classes : int

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        0, ..., n_classes - 1, increasing with x.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    k = int(n_classes)
    sorted_x = np.sort(x)
    distinct = np.unique(sorted_x)
    if k == 1:
        return np.zeros(x.size, dtype=np.intp)
    if distinct.size == k:
        return np.searchsorted(distinct, x)
    if distinct.size < k:
        order = np.argsort(x, kind="stable")
        labels = np.empty(x.size, dtype=np.intp)
        for label, block in enumerate(np.array_split(order, k)):
            labels[block] = label
        return labels
    breaks = _quantile_breaks(sorted_x, k)
    # Values fall in [q_c, q_c+1); the outer breaks only widen the range.
    return np.searchsorted(breaks[1:-1], x, side="right")


# --------------------------------------------------------------------------
# labels for EM


def _nearest_mean(Z_rows: np.ndarray, Z_clustered: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Label of the nearest mean of the clusters ``labels`` of ``Z_clustered``."""
    k = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=k)
    means = np.zeros((k, Z_clustered.shape[1]))
    np.add.at(means, labels, Z_clustered)
    means /= counts[:, None]
    dist = (
        np.einsum("ij,ij->i", Z_rows, Z_rows)[:, None]
        - 2.0 * Z_rows @ means.T
        + np.einsum("ij,ij->i", means, means)[None, :]
    )
    return np.argmin(dist, axis=1)


def _cluster_rows(Z: np.ndarray, n_clusters: int) -> np.ndarray:
    """VVV agglomeration of the rows of Z, every row alone at first, cut at ``n_clusters``."""
    n = Z.shape[0]
    if Z.shape[1] == 0:
        # No direction of spread: all rows coincide; split them in row order.
        return np.arange(n) * n_clusters // n
    pairs, _ = hierarchical_merges(Z)
    return cut_tree(pairs, np.arange(n), n_clusters)


def hierarchical_labels(
    X: np.ndarray,
    n_components: int,
    *,
    transform: str | None = "SVD",
    max_samples: int = DEFAULT_MAX_SAMPLES,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Initial partition of the rows as mclust starts EM from it.

    For more than one feature: the rows are transformed (:func:`svd_transform`),
    VVV model-based agglomeration runs from every row alone
    (:func:`hierarchical_merges`) and the tree is cut at ``n_components``
    clusters (:func:`cut_tree`).  For one feature: quantile classes
    (:func:`quantile_classes`).  Deterministic.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int
        The number of clusters, between 1 and n_samples.
    transform : {'SVD', None}, default='SVD'
        'SVD' is mclust's default ``hcUse``; None clusters X as it is.  The
        transformation is fitted on the rows that are clustered.
    max_samples : int, default=2000
        At most this many rows are agglomerated (it takes O(max_samples^2)
        memory and time), or ``n_components`` where that is larger.  With
        more rows of positive weight, a subsample of this size, drawn without replacement by ``numpy.random.default_rng(0)``
        and sorted, is clustered; mclust draws its ``subset`` (2000 rows by
        default) at random too.  Quantile classes in one dimension use all
        rows.
    sample_weight : ndarray of shape (n_samples,), optional
        Rows of zero weight are left out of the clustering and the
        transformation.  Positive weights do not change the agglomeration,
        which has no notion of multiplicity: every row counts once.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        0, ..., n_components - 1.  Rows that were not clustered (zero weight,
        or left out of the subsample) take the label of the nearest cluster
        mean in the transformed space.
    """
    X = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X.shape
    if transform not in ("SVD", None):
        raise ValueError(f"transform must be 'SVD' or None, got {transform!r}.")
    # More clusters than max_samples need as many rows to cut the tree at.
    rows = _rows_to_cluster(
        n_samples, n_features > 1, max(max_samples, n_components), sample_weight
    )
    if not 1 <= n_components <= rows.size:
        raise ValueError(
            f"n_components={n_components} must be between 1 and the {rows.size} "
            "rows that can be clustered."
        )
    if n_components == 1:
        return np.zeros(n_samples, dtype=np.intp)
    to_space = _transform_fitted_on(X, rows, transform if n_features > 1 else None)
    Z = to_space(X[rows])
    if n_features == 1:
        clustered = quantile_classes(Z[:, 0], n_components)
    else:
        clustered = _cluster_rows(Z, n_components)
    if rows.size == n_samples:
        return clustered
    labels = _nearest_mean(to_space(X), Z, clustered)
    labels[rows] = clustered
    return labels


def _rows_to_cluster(n_samples, subsample, max_samples, sample_weight) -> np.ndarray:
    """Indices of the rows of positive weight, subsampled to ``max_samples``."""
    rows = np.arange(n_samples)
    if sample_weight is not None:
        rows = np.flatnonzero(np.asarray(sample_weight) > 0)
    if subsample and rows.size > max_samples:
        rng = np.random.default_rng(SUBSAMPLE_SEED)
        rows = np.sort(rng.choice(rows, size=max_samples, replace=False))
    return rows
