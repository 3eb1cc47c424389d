"""The compiled k-means start: scikit-learn's labels, and scikit-learn's where rounding decides."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans

from gaussmix import GaussianMixture, kmeans

pytest.importorskip("numba")


def mixture(n, d, k, separation, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * separation
    return means[rng.integers(0, k, n)] + rng.normal(size=(n, d)) + offset


def sklearn_run(X, k, seed, sample_weight=None):
    state = np.random.RandomState(seed)
    fitted = KMeans(n_clusters=k, n_init=1, random_state=state).fit(X, sample_weight=sample_weight)
    return fitted, state


def compiled_run(X, k, seed, sample_weight=None, **kwargs):
    state = np.random.RandomState(seed)
    result = kmeans.kmeans_labels(X, k, state, sample_weight, engine="compiled", **kwargs)
    return result, state


@pytest.mark.parametrize(
    "n, d, k, separation",
    [(3000, 2, 3, 1.0), (5000, 16, 16, 1.5), (5000, 16, 16, 6.0), (4000, 64, 8, 0.5),
     (20000, 5, 24, 2.0), (6000, 4, 40, 1.0)],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_labels_iterations_and_draws_are_scikit_learns(n, d, k, separation, seed):
    X = mixture(n, d, k, separation, seed)
    expected, expected_state = sklearn_run(X, k, seed)
    result, state = compiled_run(X, k, seed)
    assert result.engine == "compiled" and result.handed_over is None
    np.testing.assert_array_equal(result.labels, expected.labels_)
    assert result.n_iter == expected.n_iter_
    # Centres: the same means of the same rows, summed in another order.
    np.testing.assert_allclose(result.centers, expected.cluster_centers_, rtol=0, atol=1e-12 * np.abs(X).max())
    # The random state is left as scikit-learn leaves it (later starts draw on).
    assert state.uniform() == expected_state.uniform()


def test_sample_weights_and_far_offset_give_scikit_learns_labels():
    X = mixture(6000, 4, 6, 1.5, 7, offset=1e6)
    weights = np.random.default_rng(7).uniform(0.2, 3.0, X.shape[0])
    expected, _ = sklearn_run(X, 6, 3, weights)
    result, _ = compiled_run(X, 6, 3, weights)
    assert result.handed_over is None
    np.testing.assert_array_equal(result.labels, expected.labels_)


def test_float32_labels_are_scikit_learns_on_separated_clusters():
    X = mixture(8000, 8, 6, 4.0, 11).astype(np.float32)
    expected, _ = sklearn_run(X, 6, 0)
    result, _ = compiled_run(X, 6, 0)
    assert result.handed_over is None
    np.testing.assert_array_equal(result.labels, expected.labels_)
    assert result.centers.dtype == np.float32


@pytest.mark.parametrize("n, d, k, separation, seed", [(10000, 16, 16, 0.3, 0), (8000, 4, 8, 0.5, 3)])
def test_float32_labels_are_scikit_learns_where_its_thread_count_does_not_decide(
    n, d, k, separation, seed
):
    # Long runs on overlapping float32 clusters (134 and 57 iterations).
    # scikit-learn sums float32 in an order set by its OpenMP threads; where
    # one thread and two agree, its labels do not hang on that rounding, and
    # the compiled run (float64 arithmetic) must give them.
    from threadpoolctl import threadpool_limits

    X = mixture(n, d, k, separation, seed).astype(np.float32)
    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="openmp"):
            runs.append(sklearn_run(X, k, 0)[0])
    np.testing.assert_array_equal(runs[0].labels_, runs[1].labels_)
    result, _ = compiled_run(X, k, 0)
    assert result.handed_over is None
    np.testing.assert_array_equal(result.labels, runs[1].labels_)
    assert result.n_iter == runs[1].n_iter_


def test_results_do_not_depend_on_the_number_of_threads():
    X = mixture(40000, 6, 10, 1.0, 5)
    one, _ = compiled_run(X, 10, 0, n_threads=1)
    two, _ = compiled_run(X, 10, 0, n_threads=2)
    plan = kmeans._thread_plan(X.shape[0], 2, 6 * 10)
    assert plan.threads == 2 and len(plan.ranges) > 2
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_array_equal(one.centers, two.centers)


@pytest.mark.parametrize(
    "n_samples, row_work, threads",
    [
        (10_000, 16 * 16, 2),  # 2.6e6 of work: a second thread pays
        (1_000_000, 2 * 3, 2),
        (100_000, 2 * 3, 1),  # 6e5: it costs more than it saves
        (20_000, 8 * 8, 1),
        (1_000, 64 * 64, 1),  # one block of rows: nothing to share
    ],
)
def test_a_second_thread_takes_rows_where_the_work_repays_it(n_samples, row_work, threads):
    plan = kmeans._thread_plan(n_samples, 2, row_work)
    assert plan.threads == threads
    assert plan.ranges[0][0] == 0 and plan.ranges[-1][1] == n_samples
    assert all(a[1] == b[0] for a, b in zip(plan.ranges, plan.ranges[1:]))


def assert_handed_over(reason, X, k, seed):
    """The compiled run handed over for ``reason`` and ended as scikit-learn's own."""
    expected, expected_state = sklearn_run(X, k, seed)
    result, state = compiled_run(X, k, seed)
    assert result.engine == "sklearn" and result.handed_over == reason
    np.testing.assert_array_equal(result.labels, expected.labels_)
    assert result.n_iter == expected.n_iter_
    assert state.uniform() == expected_state.uniform()


def test_a_tie_hands_over_to_scikit_learns_lloyd_from_the_same_seeds(monkeypatch):
    # Every row a tie: scikit-learn's Lloyd iterations go on from the same
    # seeds (its seeding is not run again).
    monkeypatch.setattr(kmeans, "TIE_FACTOR", 10.0)

    def no_restart(*args, **kwargs):
        raise AssertionError("KMeans.fit ran again")

    monkeypatch.setattr(kmeans, "sklearn_kmeans", no_restart)
    assert_handed_over("tie", mixture(3000, 3, 4, 2.0, 2), 4, 4)


def test_without_scikit_learns_lloyd_function_the_whole_kmeans_runs(monkeypatch):
    # Its private Lloyd function changed: the hand-over restarts KMeans.fit.
    def changed(*args, **kwargs):
        raise TypeError("unexpected keyword argument")

    monkeypatch.setattr(kmeans, "_private_lloyd", lambda: (changed, lambda: 1))
    monkeypatch.setattr(kmeans, "TIE_FACTOR", 10.0)
    assert_handed_over("tie", mixture(3000, 3, 4, 2.0, 2), 4, 4)


def test_grid_data_with_exact_ties_get_scikit_learns_labels():
    # Rows on a 0.1 grid sit exactly between two seeds (rows themselves):
    # rounding decides, so scikit-learn's Lloyd goes on from the same seeds.
    X = np.round(mixture(20000, 4, 8, 1.5, 2), 1)
    for seed in range(3):
        expected, _ = sklearn_run(X, 8, seed)
        result, _ = compiled_run(X, 8, seed)
        assert result.handed_over is not None
        np.testing.assert_array_equal(result.labels, expected.labels_)
        assert result.n_iter == expected.n_iter_


def test_duplicate_seeds_hand_over_with_scikit_learns_warning():
    # Two distinct rows for three clusters: k-means++ seeds a duplicate, whose
    # rows are equally near two centres and leave one empty; once every row
    # sits on a seed, the draws fall on the cumulative sums themselves.
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0]]), 50, axis=0)
    with warnings.catch_warnings(record=True) as expected_warnings:
        warnings.simplefilter("always")
        expected, _ = sklearn_run(X, 3, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, _ = compiled_run(X, 3, 0)
    assert result.handed_over in ("seeding tie", "tie", "empty cluster")
    np.testing.assert_array_equal(result.labels, expected.labels_)
    assert [str(w.message) for w in caught] == [str(w.message) for w in expected_warnings]


def test_a_seed_drawn_on_a_boundary_hands_over(monkeypatch):
    # Every draw "near" a boundary: the seeding defers to scikit-learn.
    monkeypatch.setattr(kmeans, "_near_boundary", lambda *args: True)
    assert_handed_over("seeding tie", mixture(3000, 3, 5, 2.0, 6), 5, 2)


def test_near_boundary_sees_draws_within_the_rounding_of_a_cumulative_sum():
    cumulative = np.array([1.0, 2.0, 3.0])
    values = np.array([1.5, 2.9999])
    ids = np.searchsorted(cumulative, values)
    assert not kmeans._near_boundary(cumulative, ids, values, 1e-6)
    assert kmeans._near_boundary(cumulative, ids, values, 1e-4)
    # Below the first sum and past the last (scikit-learn clips to the last row).
    assert not kmeans._near_boundary(cumulative, np.array([0]), np.array([0.5]), 1e-3)
    assert kmeans._near_boundary(cumulative, np.array([3]), np.array([3.0 + 1e-9]), 1e-6)


def test_a_stopping_rule_on_its_threshold_hands_over(monkeypatch):
    monkeypatch.setattr(kmeans, "TOL_TIE", 1e12)
    assert_handed_over("stopping tie", mixture(3000, 3, 5, 0.7, 9), 5, 1)


def test_engine_choice_and_its_errors(monkeypatch):
    X = mixture(200, 2, 2, 3.0, 0)
    assert kmeans.kmeans_labels(X, 2, np.random.RandomState(0), engine="sklearn").engine == "sklearn"
    # 'auto' does not load numba for runs that would not repay it (its
    # first load costs ~0.5 s), and takes runs of any size once it is loaded.
    mid = mixture(40000, 8, 4, 3.0, 0)
    monkeypatch.setattr(kmeans, "_numba_loaded", lambda: False)
    assert kmeans.kmeans_labels(X, 2, np.random.RandomState(0)).engine == "sklearn"
    assert kmeans.kmeans_labels(mid, 4, np.random.RandomState(0)).engine == "sklearn"
    monkeypatch.setattr(kmeans, "COMPILED_LOAD_WORK", mid.size * 4)
    assert kmeans.kmeans_labels(mid, 4, np.random.RandomState(0)).engine == "compiled"
    monkeypatch.setattr(kmeans, "_numba_loaded", lambda: True)
    monkeypatch.setattr(kmeans, "COMPILED_LOAD_WORK", 1 << 40)
    assert kmeans.kmeans_labels(mid, 4, np.random.RandomState(0)).engine == "compiled"
    assert kmeans.kmeans_labels(X, 2, np.random.RandomState(0)).engine == "compiled"
    mid32 = mid.astype(np.float32)
    assert kmeans.kmeans_labels(mid32, 4, np.random.RandomState(0)).engine == "compiled"
    with pytest.raises(ValueError, match="engine must be"):
        kmeans.kmeans_labels(X, 2, np.random.RandomState(0), engine="fast")
    monkeypatch.setenv("GAUSSMIX_KMEANS", "compiled")
    assert kmeans.kmeans_labels(X, 2, np.random.RandomState(0)).engine == "compiled"
    monkeypatch.setenv("GAUSSMIX_KMEANS", "numba")
    with pytest.raises(ValueError, match="GAUSSMIX_KMEANS must be"):
        kmeans.kmeans_labels(X, 2, np.random.RandomState(0))
    monkeypatch.setattr(kmeans, "compiled_kmeans_available", lambda: False)
    with pytest.raises(ImportError, match="gaussmix\\[fast\\]"):
        kmeans.kmeans_labels(X, 2, np.random.RandomState(0), engine="compiled")


def test_kernels_that_cannot_load_leave_the_start_to_scikit_learn(monkeypatch):
    # numba raises RuntimeError where it finds no writable cache folder.
    def no_cache():
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(kmeans, "_kernels", None)
    monkeypatch.setattr(kmeans, "_import_kernels", no_cache)
    monkeypatch.setattr(kmeans, "COMPILED_LOAD_WORK", 0)
    X = mixture(3000, 3, 4, 2.0, 2)
    result = kmeans.kmeans_labels(X, 4, np.random.RandomState(0))
    assert result.engine == "sklearn" and result.handed_over is None
    expected, _ = sklearn_run(X, 4, 0)
    np.testing.assert_array_equal(result.labels, expected.labels_)
    with pytest.raises(ImportError, match="NUMBA_CACHE_DIR"):
        kmeans.kmeans_labels(X, 4, np.random.RandomState(0), engine="compiled")


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_default_fit_is_the_same_with_either_engine(monkeypatch, covariance_type):
    X = mixture(4000, 5, 4, 1.2, 3)
    # The start the fit draws (random_state=0): computed, not handed over.
    assert compiled_run(X, 4, 0)[0].handed_over is None
    fits = {}
    for engine in ("sklearn", "compiled"):
        monkeypatch.setenv("GAUSSMIX_KMEANS", engine)
        fits[engine] = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    np.testing.assert_array_equal(fits["sklearn"].means_, fits["compiled"].means_)
    assert fits["sklearn"].lower_bound_ == fits["compiled"].lower_bound_


def test_search_left_compares_float32_sums_with_float64_draws_exactly():
    rng = np.random.default_rng(4)
    cumulative = np.cumsum(rng.random(5001).astype(np.float32))
    draws = rng.random(40) * float(cumulative[-1]) * 1.01
    # Draws on a sum exactly, between a sum and its float32 neighbours, below and past all.
    on = cumulative[[0, 7, 5000]].astype(np.float64)
    between = np.nextafter(on, np.inf)
    draws = np.concatenate([draws, on, between, [-1.0, 0.0]])
    expected = np.searchsorted(cumulative.astype(np.float64), draws)
    np.testing.assert_array_equal(kmeans._search_left(cumulative, draws), expected)
    np.testing.assert_array_equal(
        kmeans._search_left(cumulative.astype(np.float64), draws), expected
    )


def test_rounding_budget_summed_by_blocks_is_the_whole_array_sum():
    rng = np.random.default_rng(5)
    row_sq = rng.random(9000) * 4.0
    weights = rng.uniform(0.5, 2.0, 9000).astype(np.float32)
    budget = kmeans._rounding_budget(row_sq, weights, 3, block=1000)
    norms = np.sqrt(row_sq)
    direct = 2 * 7 * np.finfo(np.float64).eps * float(
        weights.astype(np.float64) @ (norms + norms.max()) ** 2
    )
    assert budget == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_cumulative_sums_are_numpys_bit_for_bit(dtype):
    # The k-means++ draws search these sums; one ulp off could move a draw
    # to the next row where scikit-learn's do not.
    rng = np.random.default_rng(6)
    kernels = kmeans._load_kernels()
    for n in (1, 2, 1000, 100_003):
        values = (rng.random(n) * rng.choice([1e-3, 1.0, 1e3], n)).astype(dtype)
        weights = rng.uniform(0.1, 3.0, n).astype(dtype)
        out = np.empty(n, dtype=dtype)
        kernels.weighted_cumsum(weights, values, out)
        np.testing.assert_array_equal(out, np.cumsum(weights * values))
        assert out.dtype == dtype
