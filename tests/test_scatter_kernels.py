"""The compiled full-covariance statistics of sparse responsibilities, and when the E-step takes them."""

import numpy as np
import pytest

pytest.importorskip("numba")

from gaussmix import GaussianMixture, _kernels, em  # noqa: E402
from gaussmix._scatter_kernels import component_moments  # noqa: E402
from gaussmix.covariance import get_covariance_model  # noqa: E402
from gaussmix.params import MixtureParams  # noqa: E402

from _helpers import spd_matrix  # noqa: E402


def sparse_chunk(rng, dtype, n_samples=600, n_features=5, n_components=4, density=0.15):
    """Rows far from the origin, responsibilities mostly zero, one component with none."""
    X = (rng.standard_normal((n_samples, n_features)) * 2.0 + 50.0).astype(dtype)
    resp = rng.uniform(size=(n_components, n_samples))
    resp[rng.uniform(size=resp.shape) > density] = 0.0
    resp[-1] = 0.0
    centre = np.full(n_features, 49.0, dtype=dtype)
    offsets = np.zeros((n_components, n_features), dtype=dtype)
    offsets[1] = 1.5  # a component around its own mean, as far components are
    return X, centre, offsets, resp.astype(dtype)


def exact_moments(X, centre, offsets, resp):
    """The sums in float64 from the same (rounded) deviations, and the sums of their magnitudes."""
    n_components, n_features = offsets.shape
    totals = np.zeros(n_components)
    firsts = np.zeros((n_components, n_features))
    seconds = np.zeros((n_components, n_features, n_features))
    magnitudes = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        deviation = ((X - centre) - offsets[k]).astype(np.float64)
        r = resp[k].astype(np.float64)
        totals[k] = r.sum()
        firsts[k] = r @ deviation
        seconds[k] = (deviation * r[:, None]).T @ deviation
        magnitudes[k] = (np.abs(deviation) * r[:, None]).T @ np.abs(deviation)
    return totals, firsts, seconds, magnitudes


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_component_moments_are_the_weighted_sums_around_each_shift(dtype):
    X, centre, offsets, resp = sparse_chunk(np.random.default_rng(0), dtype)
    n_components, n_features = offsets.shape
    totals = np.zeros(n_components)
    firsts = np.zeros((n_components, n_features))
    seconds = np.zeros((n_components, n_features, n_features))
    component_moments(X, centre, offsets, resp, totals, firsts, seconds)
    exact_totals, exact_firsts, exact_seconds, magnitudes = exact_moments(X, centre, offsets, resp)
    # Rounding of a sum of n terms in the dtype: at most n * eps times the
    # sum of their magnitudes (the totals and first moments add in float64).
    n_terms = np.count_nonzero(resp, axis=1).max()
    bound = n_terms * np.finfo(dtype).eps * magnitudes + 1e-300
    assert np.all(np.abs(seconds - exact_seconds) <= bound)
    np.testing.assert_allclose(totals, exact_totals, rtol=1e-12)
    np.testing.assert_allclose(firsts, exact_firsts, rtol=1e-6 if dtype == np.float32 else 1e-12,
                               atol=1e-12)
    np.testing.assert_array_equal(seconds, np.swapaxes(seconds, 1, 2))
    # A component with no rows adds nothing.
    assert totals[-1] == 0.0 and not firsts[-1].any() and not seconds[-1].any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_statistics_match_the_dense_ones(dtype):
    X, centre, offsets, resp = sparse_chunk(np.random.default_rng(1), dtype)
    model = get_covariance_model("full")
    dense = model.stats_rows(X, centre, resp, offsets)
    sparse = model.sparse_stats_rows(X, centre, resp, offsets)
    _, _, _, magnitudes = exact_moments(X, centre, offsets, resp)
    eps = np.finfo(dtype).eps
    n_terms = X.shape[0]
    for dense_part, sparse_part in zip(dense, sparse):
        assert sparse_part.dtype == np.float64
        assert sparse_part.shape == dense_part.shape
    np.testing.assert_allclose(sparse[0], dense[0], rtol=n_terms * eps)
    # Both are within n * eps of the exact sums: of each other by twice that.
    assert np.all(np.abs(sparse[2] - dense[2]) <= 2 * n_terms * eps * magnitudes + 1e-300)


def full_params(rng, n_components, n_features, spread):
    model = get_covariance_model("full")
    means = rng.standard_normal((n_components, n_features)) * spread
    covs = np.stack([spd_matrix(rng, n_features, 1.0) for _ in range(n_components)])
    weights = rng.dirichlet(np.ones(n_components))
    return model, MixtureParams(weights, means, covs, model.precision_cholesky(covs))


@pytest.mark.parametrize(
    "n_features, spread, takes_sparse",
    # Separated: about one component in 8 per row, sparse enough from 16
    # features on (SPARSE_DENSITY), not below (SPARSE_DENSITY_FEW).
    [(16, 40.0, True), (16, 0.3, False), (4, 40.0, False)],
)
def test_e_step_takes_the_sparse_statistics_only_below_the_density(
    n_features, spread, takes_sparse
):
    rng = np.random.default_rng(2)
    model, params = full_params(rng, 8, n_features, spread)
    labels = rng.integers(8, size=3000)
    X = (params.means[labels] + rng.standard_normal((3000, n_features))).astype(np.float32)
    centre = _kernels.mixture_centre(params, X.dtype)
    prep = model.prepare(params, centre, X.dtype)
    calls = []

    def spy(*args):
        calls.append(1)
        return model.sparse_stats_rows(*args)

    dense = _kernels.e_step_chunk(model, X, None, params, centre, prep)
    chosen = _kernels.e_step_chunk(
        model, X, None, params, centre, {**prep, "sparse_statistics": spy}
    )
    assert bool(calls) == takes_sparse
    assert chosen.log_likelihood == dense.log_likelihood
    np.testing.assert_allclose(chosen.sum_resp, dense.sum_resp, rtol=1e-5)
    scale = np.abs(dense.scatter).max(axis=(1, 2), keepdims=True)
    # Summation order only: float32 sums of 3000 terms of one sign.
    assert np.all(np.abs(chosen.scatter - dense.scatter) <= 3000 * np.finfo(np.float32).eps * scale)


def test_sparse_statistics_are_taken_for_full_models_on_large_work_only():
    full = get_covariance_model("full")
    big = em.COMPILED_KERNELS_WORK
    assert em.sparse_statistics_for(full, big) is not None
    assert em.sparse_statistics_for(full, big - 1) is None
    assert em.sparse_statistics_for(get_covariance_model("diag"), big) is None
    assert em.sparse_statistics_for(get_covariance_model("VVE"), big) is not None


def test_sparse_statistics_load_numba_on_a_sparse_chunk_only(monkeypatch):
    """Fits with no sparse chunk do not load numba; where it does not load, the sums are dense."""
    rng = np.random.default_rng(4)
    model, params = full_params(rng, 8, 16, 40.0)
    labels = rng.integers(8, size=3000)
    X = (params.means[labels] + rng.standard_normal((3000, 16))).astype(np.float32)
    centre = _kernels.mixture_centre(params, X.dtype)
    prep = model.prepare(params, centre, X.dtype)
    loads = []

    def load(succeeds):
        def attempt():
            loads.append(succeeds)
            return succeeds
        return attempt

    sparse = em.sparse_statistics_for(model, em.COMPILED_KERNELS_WORK)
    dense = _kernels.e_step_chunk(model, X, None, params, centre, prep)
    monkeypatch.setattr(em, "_scatter_kernels_load", load(True))
    _, near = full_params(rng, 8, 16, 0.3)
    rows = (near.means[labels] + rng.standard_normal((3000, 16))).astype(np.float32)
    near_centre = _kernels.mixture_centre(near, X.dtype)
    _kernels.e_step_chunk(model, rows, None, near, near_centre,
                          {**model.prepare(near, near_centre, X.dtype), "sparse_statistics": sparse})
    assert loads == []
    compiled = _kernels.e_step_chunk(model, X, None, params, centre,
                                     {**prep, "sparse_statistics": sparse})
    assert loads == [True]
    monkeypatch.setattr(em, "_scatter_kernels_load", load(False))
    unloaded = _kernels.e_step_chunk(model, X, None, params, centre,
                                     {**prep, "sparse_statistics": sparse})
    assert loads == [True, False]
    np.testing.assert_array_equal(unloaded.scatter, dense.scatter)
    assert not np.array_equal(compiled.scatter, dense.scatter)
    scale = np.abs(dense.scatter).max(axis=(1, 2), keepdims=True)
    assert np.all(np.abs(compiled.scatter - dense.scatter) <= 3000 * np.finfo(np.float32).eps * scale)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_float32_fit_with_sparse_statistics_matches_the_dense_fit(monkeypatch):
    rng = np.random.default_rng(3)
    means = rng.standard_normal((5, 6)) * 30.0
    labels = rng.integers(5, size=4000)
    X = (means[labels] + rng.standard_normal((4000, 6))).astype(np.float32)
    monkeypatch.setattr(em, "COMPILED_KERNELS_WORK", 1)
    monkeypatch.setattr(_kernels, "SPARSE_FEW_FEATURES", 1)
    calls = []
    original = get_covariance_model("full").sparse_stats_rows

    def spy(self, *args):
        calls.append(1)
        return original(*args)

    from gaussmix.sklearn_models import FullCovariance

    monkeypatch.setattr(FullCovariance, "sparse_stats_rows", spy)
    kwargs = dict(n_components=5, covariance_type="full", random_state=0, tol=0, max_iter=8)
    sparse = GaussianMixture(**kwargs).fit(X)
    assert calls
    monkeypatch.setattr(_kernels, "SPARSE_DENSITY", -1.0)
    calls.clear()
    dense = GaussianMixture(**kwargs).fit(X)
    assert not calls
    # float32 statistics summed in other orders: the bounds agree far inside
    # the 1e-5 that float32 fits keep to float64 ones.
    assert abs(sparse.lower_bound_ - dense.lower_bound_) <= 1e-6 * abs(dense.lower_bound_)
    np.testing.assert_allclose(sparse.means_, dense.means_, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(sparse.covariances_, dense.covariances_, rtol=1e-4, atol=1e-5)


def test_a_block_takes_the_sparse_statistics_of_its_whole_data_set(monkeypatch):
    """Blocks of a file or of a Dask array decide as the same rows in memory would."""
    from gaussmix.datasets import ArrayBlockReader, ArrayDataset, BlockDataset
    from gaussmix.sklearn_models import FullCovariance

    rng = np.random.default_rng(6)
    model, params = full_params(rng, 8, 16, 40.0)
    labels = rng.integers(8, size=4000)
    X = (params.means[labels] + rng.standard_normal((4000, 16))).astype(np.float32)
    # Large enough for all 4000 rows, not for a block of 1000.
    monkeypatch.setattr(em, "COMPILED_KERNELS_WORK", 2000 * 16 * 8)
    rows = []
    original = FullCovariance.sparse_stats_rows

    def spy(self, X, *args):
        rows.append(X.shape[0])
        return original(self, X, *args)

    monkeypatch.setattr(FullCovariance, "sparse_stats_rows", spy)
    em.expectation(model, X[:1000], None, params)
    assert not rows
    em.expectation(model, X[:1000], None, params, n_samples=4000)
    assert sum(rows) == 1000
    rows.clear()
    in_memory = ArrayDataset(X).expectation(model, params)
    assert sum(rows) == 4000
    rows.clear()
    blocks = BlockDataset(ArrayBlockReader(X), block_rows=1000).expectation(model, params)
    assert sum(rows) == 4000
    # The blocks split the chunks elsewhere: float32 products summed in
    # other groups, within 1000 * eps32 (1.2e-4) of each other at worst.
    scale = np.abs(in_memory.scatter).max(axis=(1, 2), keepdims=True)
    assert np.all(np.abs(blocks.scatter - in_memory.scatter) <= 1000 * np.finfo(np.float32).eps * scale)
