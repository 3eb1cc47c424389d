"""init_params='hierarchical': mclust's model-based hierarchical clustering start.

The reference merges and partitions come from R's mclust 6.0.0
(tests/reference/README.md): ``hc(modelName = "VVV", use = "SVD")`` and
``hclass`` for the multivariate data sets, ``qclass`` for faithful$waiting.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from gaussmix import EmptyComponentWarning, GaussianMixture
from gaussmix.hierarchical import (
    SUBSAMPLE_SEED,
    cut_tree,
    hierarchical_labels,
    hierarchical_merges,
    quantile_classes,
    svd_transform,
)
from gaussmix.init import INIT_METHODS, initial_responsibilities

REFERENCE = Path(__file__).parent / "reference"
MULTIVARIATE = ("faithful", "iris", "diabetes", "banknote")
GS = range(2, 10)
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def load(name):
    X = np.loadtxt(REFERENCE / f"{name}.csv", delimiter=",", skiprows=1, ndmin=2)
    with open(REFERENCE / f"mclust_{name}.json") as f:
        return X, json.load(f)["init"]


def mclust_partition(init, G):
    return np.array(init["partitions"][str(G)]) - 1


def quiet_fit(gm, X, **kwargs):
    """Fit, tolerating the warnings degenerate data legitimately cause."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", EmptyComponentWarning)
        return gm.fit(X, **kwargs)


# --------------------------------------------------------------------------
# agreement with mclust


@pytest.mark.parametrize("name", MULTIVARIATE)
def test_merges_equal_mclust_hc(name):
    X, init = load(name)
    pairs, costs = hierarchical_merges(svd_transform(X))
    np.testing.assert_array_equal(pairs + 1, np.array(init["hc_merges"]))
    assert np.all(np.isfinite(costs))


@pytest.mark.parametrize("name", MULTIVARIATE)
def test_partitions_equal_mclust_hclass(name):
    X, init = load(name)
    for G in GS:
        labels = hierarchical_labels(X, G)
        # Not only up to relabelling: hclass numbers clusters by first row too.
        np.testing.assert_array_equal(labels, mclust_partition(init, G), err_msg=f"G={G}")
        assert adjusted_rand_score(labels, mclust_partition(init, G)) == 1.0


def test_one_dimension_uses_mclust_quantile_classes():
    x, init = load("faithful_waiting_1d")
    for G in GS:
        np.testing.assert_array_equal(quantile_classes(x[:, 0], G), mclust_partition(init, G))
        np.testing.assert_array_equal(hierarchical_labels(x, G), mclust_partition(init, G))


def test_svd_transform_is_standardised_scaled_principal_components():
    X, _ = load("iris")
    Z = svd_transform(X)
    Xs = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    d = np.linalg.svd(Xs, compute_uv=False)
    # Columns of Z are uncorrelated, with sums of squares the singular values.
    np.testing.assert_allclose(Z.T @ Z, np.diag(d), atol=1e-10)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)


def test_cut_tree_follows_merges():
    pairs = np.array([[1, 2], [0, 3], [0, 1]])
    np.testing.assert_array_equal(cut_tree(pairs, np.arange(4), 4), [0, 1, 2, 3])
    np.testing.assert_array_equal(cut_tree(pairs, np.arange(4), 3), [0, 1, 1, 2])
    np.testing.assert_array_equal(cut_tree(pairs, np.arange(4), 2), [0, 1, 1, 0])
    np.testing.assert_array_equal(cut_tree(pairs, np.arange(4), 1), [0, 0, 0, 0])
    with pytest.raises(ValueError, match="n_clusters"):
        cut_tree(pairs, np.arange(4), 5)


# --------------------------------------------------------------------------
# determinism, duplicates, subsampling, weights


def three_blobs(n_per=100, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 2.0], [0.0, 10.0, -4.0]])
    return np.vstack([c + rng.normal(size=(n_per, 3)) for c in centres])


def test_deterministic():
    X = three_blobs()
    first = hierarchical_labels(X, 4)
    np.testing.assert_array_equal(first, hierarchical_labels(X.copy(), 4))
    resp = [
        initial_responsibilities(X, 4, "hierarchical", np.random.RandomState(seed))
        for seed in (0, 1)
    ]
    np.testing.assert_array_equal(resp[0], resp[1])
    np.testing.assert_array_equal(resp[0].argmax(axis=1), first)


def same_rows_same_label(X, labels):
    _, group = np.unique(X, axis=0, return_inverse=True)
    return all(np.unique(labels[group.ravel() == g]).size == 1 for g in np.unique(group))


def test_identical_rows_end_up_together():
    # faithful has 16 repeated rows; mclust keeps them together at every G.
    X, _ = load("faithful")
    assert len(np.unique(X, axis=0)) < len(X)
    for G in GS:
        assert same_rows_same_label(X, hierarchical_labels(X, G)), G
    # Heavily duplicated data: most rows occur 2 to 4 times.
    rng = np.random.default_rng(3)
    distinct = three_blobs(n_per=40, seed=3)
    X = rng.permutation(np.repeat(distinct, rng.integers(1, 5, len(distinct)), axis=0))
    for G in GS:
        assert same_rows_same_label(X, hierarchical_labels(X, G)), G


def test_two_identical_rows_merge_at_least_pair_cost():
    # Two identical single rows cost -2 log 2, the least cost of any pair of
    # single rows, whatever alpha: they are merged first here.
    X = np.array([[0.0, 0.0], [3.0, 1.0], [1.0, 4.0], [3.0, 1.0], [5.0, 5.0]])
    pairs, costs = hierarchical_merges(X)
    np.testing.assert_array_equal(pairs[0], [1, 3])
    assert costs[0] == pytest.approx(-2 * np.log(2), rel=1e-12)


def test_subsample_is_deterministic_and_labels_every_row():
    X = three_blobs(n_per=200, seed=1)
    max_samples = 150
    labels = hierarchical_labels(X, 3, max_samples=max_samples)
    np.testing.assert_array_equal(labels, hierarchical_labels(X, 3, max_samples=max_samples))
    assert labels.shape == (len(X),)
    assert set(np.unique(labels)) == {0, 1, 2}
    # The documented subsample is clustered exactly as on its own.
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    rows = np.sort(rng.choice(len(X), size=max_samples, replace=False))
    np.testing.assert_array_equal(labels[rows], hierarchical_labels(X[rows], 3))
    # Well separated blobs: the rest of the rows join their own blob.
    truth = np.repeat([0, 1, 2], 200)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_more_clusters_than_max_samples_subsample_as_many_rows():
    X = three_blobs(n_per=200, seed=1)
    labels = hierarchical_labels(X, 40, max_samples=30)
    assert set(np.unique(labels)) == set(range(40))
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    rows = np.sort(rng.choice(len(X), size=40, replace=False))
    np.testing.assert_array_equal(labels[rows], hierarchical_labels(X[rows], 40))
    # Up to max_samples clusters, the subsample keeps its size.
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    rows = np.sort(rng.choice(len(X), size=30, replace=False))
    np.testing.assert_array_equal(
        hierarchical_labels(X, 30, max_samples=30)[rows], np.arange(30)
    )


def test_zero_weight_rows_are_left_out_then_assigned():
    X = three_blobs(seed=2)
    weight = np.ones(len(X))
    weight[::7] = 0.0
    labels = hierarchical_labels(X, 3, sample_weight=weight)
    kept = weight > 0
    np.testing.assert_array_equal(labels[kept], hierarchical_labels(X[kept], 3))
    assert adjusted_rand_score(np.repeat([0, 1, 2], 100), labels) == 1.0
    # Positive weights do not change the agglomeration.
    np.testing.assert_array_equal(
        hierarchical_labels(X, 3, sample_weight=np.linspace(0.5, 3.0, len(X))),
        hierarchical_labels(X, 3),
    )


def test_constant_column_is_dropped_like_mclust():
    X, init = load("iris")
    with_constant = np.column_stack([X[:, :2], np.full(len(X), 3.0), X[:, 2:]])
    np.testing.assert_array_equal(hierarchical_labels(with_constant, 3), mclust_partition(init, 3))


def test_degenerate_inputs():
    X = three_blobs(n_per=20)
    collinear = np.column_stack([X, X[:, 0] + X[:, 1]])
    labels = hierarchical_labels(collinear, 3)
    assert set(np.unique(labels)) == {0, 1, 2}
    identical = np.full((10, 3), 7.5)
    np.testing.assert_array_equal(
        hierarchical_labels(identical, 3), np.repeat([0, 1, 2], [4, 3, 3])
    )
    np.testing.assert_array_equal(hierarchical_labels(X, 1), 0)
    with pytest.raises(ValueError, match="n_components"):
        hierarchical_labels(X[:2], 3)
    with pytest.raises(ValueError, match="transform"):
        hierarchical_labels(X, 3, transform="PCS")


def test_quantile_classes_with_few_distinct_values():
    x = np.array([1.0, 1.0, 2.0, 2.0, 2.0, 5.0])
    np.testing.assert_array_equal(quantile_classes(x, 3), [0, 0, 1, 1, 1, 2])
    np.testing.assert_array_equal(quantile_classes(np.zeros(6), 3), [0, 0, 1, 1, 2, 2])
    labels = quantile_classes(np.arange(20.0), 4)
    np.testing.assert_array_equal(np.bincount(labels), [5, 5, 5, 5])


def test_transform_none_clusters_raw_data():
    X = three_blobs(n_per=30)
    pairs, _ = hierarchical_merges(X)
    np.testing.assert_array_equal(
        hierarchical_labels(X, 3, transform=None), cut_tree(pairs, np.arange(len(X)), 3)
    )


# --------------------------------------------------------------------------
# the estimator


def test_estimator_accepts_hierarchical():
    assert "hierarchical" in INIT_METHODS
    X = three_blobs()
    gm = GaussianMixture(3, init_params="hierarchical").fit(X)
    assert gm.converged_
    assert adjusted_rand_score(np.repeat([0, 1, 2], 100), gm.predict(X)) == 1.0
    again = GaussianMixture(3, init_params="hierarchical", random_state=5).fit(X)
    np.testing.assert_array_equal(gm.means_, again.means_)


def test_estimator_starts_from_mclust_partition():
    X, init = load("diabetes")
    gm = GaussianMixture(3, init_params="hierarchical", max_iter=0).fit(X)
    start = mclust_partition(init, 3)
    means = np.array([X[start == k].mean(axis=0) for k in range(3)])
    np.testing.assert_allclose(gm.means_, means, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_estimator_with_sample_weight_and_degenerate_data(covariance_type):
    X = three_blobs(n_per=50)
    weight = np.r_[np.zeros(10), np.ones(140)]
    gm = GaussianMixture(3, covariance_type=covariance_type, init_params="hierarchical")
    gm.fit(X, sample_weight=weight)
    assert np.isfinite(gm.lower_bound_)
    duplicated = np.repeat(np.random.RandomState(0).standard_normal((8, 2)), 12, axis=0)
    for data, n_components in ((duplicated, 3), (np.full((30, 3), 7.5), 4)):
        gm = GaussianMixture(
            n_components, covariance_type=covariance_type, init_params="hierarchical"
        )
        quiet_fit(gm, data)
        assert np.isfinite(gm.lower_bound_)
        assert np.all(np.isfinite(gm.means_))


# --------------------------------------------------------------------------
# anisotropic data where the k-means start fails (scikit-learn issue 34845)


def parallel_cigars(seed, n_features=2, n_per=100, length=10.0, width=0.1, gap=1.0):
    """Three long thin parallel Gaussian clusters, ``gap`` apart across their width."""
    rng = np.random.default_rng(seed)
    scales = np.r_[length, np.full(n_features - 1, width)]
    offset = np.zeros(n_features)
    blocks = []
    for k in range(3):
        offset[1] = (k - 1) * gap
        blocks.append(rng.normal(size=(n_per, n_features)) * scales + offset)
    return np.vstack(blocks), np.repeat([0, 1, 2], n_per)


def best_of_kmeans_starts(X, **kwargs):
    """The best fit of three k-means starts, each cutting the cigars crosswise."""
    fits = [
        quiet_fit(GaussianMixture(3, init_params="kmeans", random_state=r, **kwargs), X)
        for r in range(3)
    ]
    return max(fits, key=lambda gm: gm.score(X))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hierarchical_beats_kmeans_on_parallel_cigars(seed):
    X, truth = parallel_cigars(seed)
    hier = GaussianMixture(3, init_params="hierarchical").fit(X)
    kmeans = best_of_kmeans_starts(X)
    # Measured with the default tol=1e-3 (mean log-likelihood per row, ARI):
    # seed 0: -4.544 vs -4.933, 0.50 vs 0.00; seed 1: -3.806 vs -4.897,
    # 1.00 vs 0.01; seed 2: -4.525 vs -4.925, 0.58 vs 0.00.  From the
    # k-means starts EM creeps: with tol=1e-8 all reach the hierarchical
    # start's optimum here, after 97-249 iterations instead of 16-68.
    assert hier.score(X) > kmeans.score(X) + 0.25
    hier_ari = adjusted_rand_score(truth, hier.predict(X))
    assert hier_ari > adjusted_rand_score(truth, kmeans.predict(X)) + 0.3


@pytest.mark.parametrize("seed", [0, 2])
def test_kmeans_starts_end_in_worse_local_optimum_on_3d_cigars(seed):
    X, truth = parallel_cigars(seed, n_features=3)
    tight = dict(tol=1e-8, max_iter=2000)
    hier = GaussianMixture(3, init_params="hierarchical", **tight).fit(X)
    kmeans = best_of_kmeans_starts(X, **tight)
    assert hier.converged_ and kmeans.converged_
    # Measured: seed 0: -2.932 vs -3.552, ARI 1.00 vs 0.54; seed 2: -3.030
    # vs -3.611, ARI 1.00 vs 0.53.
    assert hier.score(X) > kmeans.score(X) + 0.4
    assert adjusted_rand_score(truth, hier.predict(X)) == 1.0
    assert adjusted_rand_score(truth, kmeans.predict(X)) < 0.7


def _last_least_pair(minima, m):
    """The pair mclust merges, by a full scan: the last least cost, column by column, row by row."""
    upper = np.triu(np.ones((m, m), dtype=bool), 1)
    values = np.where(upper, minima.cost[:m, :m], np.inf)
    rows, columns = np.nonzero(values == values.min())
    last = np.lexsort((rows, columns))[-1]
    return int(rows[last]), int(columns[last])


@pytest.mark.parametrize("outlier", [False, True])
def test_column_minima_choose_the_pairs_of_a_full_scan(outlier, monkeypatch):
    from gaussmix import _agglomeration

    rng = np.random.default_rng(5)
    Z = rng.standard_normal((150, 3))
    Z[10:14] = Z[3]  # ties between pairs of equal rows
    if outlier:
        Z[0] = 1e4
    pairs, costs = hierarchical_merges(Z)
    monkeypatch.setattr(_agglomeration._ColumnMinima, "best", _last_least_pair)
    scanned_pairs, scanned_costs = hierarchical_merges(Z)
    np.testing.assert_array_equal(pairs, scanned_pairs)
    np.testing.assert_array_equal(costs, scanned_costs)


def test_an_outlier_does_not_make_every_merge_search_every_column(monkeypatch):
    from gaussmix import _agglomeration

    searched = []
    recompute = _agglomeration._ColumnMinima.recompute

    def counting(self, columns, m):
        searched.append(np.asarray(columns).size)
        return recompute(self, columns, m)

    monkeypatch.setattr(_agglomeration._ColumnMinima, "recompute", counting)
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((400, 4))
    Z[0] = 1e4
    hierarchical_merges(Z)
    # The first search covers all 400 columns and each merge the two slots
    # it changed; searching every column whose least cost a merge changed
    # took 78250 column searches here.
    assert sum(searched) <= 5 * Z.shape[0]
