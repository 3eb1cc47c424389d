"""Initial statistics from hard labels, and the 'kmeans-sample' start."""

import warnings

import numpy as np
import pytest

from gaussmix import GaussianMixture, _start_statistics
from gaussmix.covariance import get_covariance_model
from gaussmix.em import maximization, statistics_from_labels, statistics_from_resp
from gaussmix.init import (
    INIT_METHODS,
    initial_labels,
    initial_responsibilities,
    kmeans_sample_rows,
)

from _helpers import COVARIANCE_TYPES


def one_hot(labels, n_components):
    resp = np.zeros((labels.size, n_components))
    assigned = labels >= 0
    resp[np.flatnonzero(assigned), labels[assigned]] = 1.0
    return resp


def label_statistics_path(path, monkeypatch):
    """Make :func:`statistics_from_labels` take the numpy or the compiled path."""
    if path == "numpy":
        monkeypatch.setattr(_start_statistics, "_compiled_label_kernels", lambda: None)
    else:
        pytest.importorskip("numba")
        from gaussmix import _label_kernels

        monkeypatch.setattr(_start_statistics, "_compiled_label_kernels", lambda: _label_kernels)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["numpy", "compiled"])
def test_statistics_from_labels_match_one_hot_responsibilities(
    covariance_type, weighted, dtype, path, monkeypatch
):
    # The compiled path serves 'diag' and 'spherical' (others take numpy's).
    label_statistics_path(path, monkeypatch)
    rng = np.random.default_rng(3)
    # Far from the origin, so that sums around the wrong centre would show.
    X = (rng.standard_normal((700, 3)) * [1.0, 2.0, 0.5] + 1e4).astype(dtype)
    labels = rng.integers(-1, 4, size=X.shape[0])  # -1: rows in no component
    labels[labels == 2] = 1  # component 2 is empty
    weights = rng.uniform(0.0, 3.0, size=X.shape[0]) if weighted else None
    model = get_covariance_model(covariance_type)
    by_labels = statistics_from_labels(model, X, weights, labels, 4)
    by_resp = statistics_from_resp(model, X, weights, one_hot(labels, 4))
    p_labels, _ = maximization(model, by_labels, 1e-6, dtype, reseed_empty=False)
    p_resp, _ = maximization(model, by_resp, 1e-6, dtype, reseed_empty=False)
    # Totals in float64 from the weights themselves; the responsibilities'
    # path rounds each weight to the data's dtype first (float32: 6e-8).
    total_rtol = 1e-12 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(by_labels.sum_resp, by_resp.sum_resp, rtol=total_rtol)
    # Sums of ~200 rows of the data's precision, around means 1e4 away from
    # the origin: float32 rounds the centred values to ~eps32 * 1e4 / spread.
    rtol = 1e-9 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(p_labels.means, p_resp.means, rtol=rtol)
    np.testing.assert_allclose(p_labels.covariances, p_resp.covariances, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(p_labels.weights, p_resp.weights, rtol=total_rtol)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "EII", "VEI"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64, np.int16])
@pytest.mark.parametrize("n_features", [1, 5, 12])
def test_compiled_label_statistics_equal_numpy_ones_bit_for_bit(
    covariance_type, weighted, dtype, label_dtype, n_features, monkeypatch
):
    # The numpy twins add the compiled kernels' terms in their order: a
    # fit's start must not depend on whether numba is installed or loaded.
    # 1, 5 and 12 features: np.cumsum below 8 columns, np.add.reduce above.
    pytest.importorskip("numba")
    from gaussmix import _label_sums

    # Blocks of 256 rows: each component's sum runs on over several blocks.
    monkeypatch.setattr(_label_sums, "BLOCK_ROWS", 256)
    rng = np.random.default_rng(5)
    scales = rng.uniform(0.5, 3.0, size=n_features)
    # 1e6 from the origin: the sums must be taken around each component's mean.
    X = (rng.standard_normal((3000, n_features)) * scales + 1e6).astype(dtype)
    labels = rng.integers(-1, 5, size=X.shape[0]).astype(label_dtype)
    labels[labels == 3] = 0  # component 3 is empty
    weights = rng.uniform(0.0, 3.0, size=X.shape[0]) if weighted else None
    if weighted:
        weights[labels == 4] = 0.0  # component 4 has rows of no weight
    model = get_covariance_model(covariance_type)
    label_statistics_path("compiled", monkeypatch)
    compiled = statistics_from_labels(model, X, weights, labels, 5)
    label_statistics_path("numpy", monkeypatch)
    twin = statistics_from_labels(model, X, weights, labels, 5)
    for field in ("sum_resp", "shift", "shift_sum", "scatter"):
        np.testing.assert_array_equal(getattr(compiled, field), getattr(twin, field))
    assert compiled.weight_sum == twin.weight_sum
    assert compiled.scatter.shape == model.parameter_shape(5, n_features)


def test_label_statistics_take_the_compiled_kernels_once_numba_is_loaded(monkeypatch):
    # Small fits take the numpy twins until numba is loaded (loading it
    # costs more than they take), the compiled kernels after; large fits
    # load it.  Either way the same bits (the test above).
    pytest.importorskip("numba")
    from gaussmix import _label_kernels, _label_sums, kmeans

    X_small = np.zeros((100, 4))
    X_large = np.zeros((kmeans.COMPILED_LOAD_WORK // 4, 4))
    monkeypatch.setattr(kmeans, "_numba_loaded", lambda: False)
    assert _start_statistics._label_kernels_for(X_small, 3) is _label_sums
    assert _start_statistics._label_kernels_for(X_large, 1) is _label_kernels
    monkeypatch.setattr(kmeans, "_numba_loaded", lambda: True)
    assert _start_statistics._label_kernels_for(X_small, 3) is _label_kernels
    monkeypatch.setattr(_start_statistics, "_compiled_label_kernels", lambda: None)
    assert _start_statistics._label_kernels_for(X_large, 1) is _label_sums


@pytest.mark.parametrize("method", [m for m in INIT_METHODS if m != "random"])
def test_initial_responsibilities_are_the_one_hot_labels(method):
    X = np.random.default_rng(0).standard_normal((60, 2))
    labels = initial_labels(X, 3, method, np.random.RandomState(1))
    resp = initial_responsibilities(X, 3, method, np.random.RandomState(1))
    np.testing.assert_array_equal(resp, one_hot(labels, 3))


def test_random_init_has_no_hard_labels():
    X = np.random.default_rng(0).standard_normal((20, 2))
    assert initial_labels(X, 3, "random", np.random.RandomState(0)) is None


def test_kmeans_sample_is_kmeans_when_every_row_fits_in_the_sample():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 2)) + rng.integers(0, 3, size=(500, 1)) * 4.0
    assert kmeans_sample_rows(X.shape[0], 3) == X.shape[0]
    fits = [
        GaussianMixture(3, init_params=init, random_state=0).fit(X)
        for init in ("kmeans", "kmeans-sample")
    ]
    np.testing.assert_array_equal(fits[0].means_, fits[1].means_)
    assert fits[0].lower_bound_ == fits[1].lower_bound_


def test_kmeans_sample_clusters_a_sample_and_labels_every_row(monkeypatch):
    import gaussmix.init as init

    monkeypatch.setattr(init, "KMEANS_SAMPLE_ROWS", 300)
    monkeypatch.setattr(init, "KMEANS_SAMPLE_ROWS_PER_COMPONENT", 10)
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    X = rng.standard_normal((3000, 2)) + centres[rng.integers(0, 3, size=3000)]
    assert init.kmeans_sample_rows(X.shape[0], 3) == 300
    labels = init.initial_labels(X, 3, "kmeans-sample", np.random.RandomState(0))
    assert labels.shape == (3000,) and set(np.unique(labels)) == {0, 1, 2}
    # Well separated: every row goes with its own cluster's sampled centre.
    truth = np.argmin(((X[:, None, :] - centres) ** 2).sum(axis=2), axis=1)
    pairs = set(zip(labels.tolist(), truth.tolist()))
    assert len(pairs) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = [
            GaussianMixture(3, init_params="kmeans-sample", random_state=0).fit(X)
            for _ in range(2)
        ]
    np.testing.assert_array_equal(fitted[0].means_, fitted[1].means_)  # reproducible
    order = np.argsort(fitted[0].means_[:, 0] + 2 * fitted[0].means_[:, 1])
    np.testing.assert_allclose(fitted[0].means_[order], centres[[0, 1, 2]], atol=0.1)


def test_kmeans_sample_is_a_valid_parameter():
    X = np.random.default_rng(0).standard_normal((50, 2))
    GaussianMixture(2, init_params="kmeans-sample", random_state=0).fit(X)
    with pytest.raises(ValueError):
        GaussianMixture(2, init_params="kmeans_sample").fit(X)
