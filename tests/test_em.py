"""The EM engine: chunked expectation, maximization, run_em, inference."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gaussmix import GaussianMixture
from gaussmix import _kernels, em
from gaussmix.covariance import get_covariance_model
from gaussmix.em import (
    EMResult,
    expectation,
    log_prob_norm_and_labels,
    maximization,
    run_em,
    statistics_from_resp,
)
from gaussmix.params import MixtureParams
from gaussmix.suffstats import SuffStats

from _helpers import COVARIANCE_TYPES, full_covariances, spd_matrix

# Deterministic, no example database written into the working tree.
HYPOTHESIS = dict(deadline=None, database=None, derandomize=True)


def params_of(gm):
    return MixtureParams(gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_)


def short_fit_params(X, n_components, covariance_type, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(
            n_components, covariance_type=covariance_type, max_iter=2, tol=0, random_state=seed
        ).fit(X)
    return params_of(gm)


def true_params(covariance_type, n_features, rng, separation, spread, offset=0.0):
    """Three components ``separation`` apart along a random direction."""
    direction = rng.standard_normal(n_features)
    direction /= np.linalg.norm(direction)
    means = offset + separation * np.arange(3)[:, None] * direction + rng.standard_normal((3, n_features)) * spread
    if covariance_type == "full":
        covs = np.stack([spd_matrix(rng, n_features, spread**2) for _ in range(3)])
    elif covariance_type == "tied":
        covs = spd_matrix(rng, n_features, spread**2)
    elif covariance_type == "diag":
        covs = rng.uniform(0.5, 2.0, size=(3, n_features)) * spread**2
    else:
        covs = rng.uniform(0.5, 2.0, size=3) * spread**2
    model = get_covariance_model(covariance_type)
    return MixtureParams(np.array([0.25, 0.35, 0.4]), means, covs, model.precision_cholesky(covs))


def sample_from(params, covariance_type, n, rng):
    full = full_covariances(params.covariances, covariance_type, 3, params.n_features)
    labels = rng.choice(3, size=n, p=params.weights)
    X = np.empty((n, params.n_features))
    for k in range(3):
        X[labels == k] = rng.multivariate_normal(params.means[k], full[k], size=np.sum(labels == k))
    return X


def reference_m_step(X, sample_weight, params, covariance_type, reg_covar):
    """E-step with scipy, M-step by definition (two-pass), in float64."""
    n_features = X.shape[1]
    full = full_covariances(params.covariances, covariance_type, 3, n_features)
    log_joint = np.stack(
        [np.log(params.weights[k]) + multivariate_normal(params.means[k], full[k]).logpdf(X) for k in range(3)],
        axis=1,
    )
    log_density = logsumexp(log_joint, axis=1)
    resp = np.exp(log_joint - log_density[:, None]) * sample_weight[:, None]
    nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
    means = resp.T @ X / nk[:, None]
    covs = np.stack([(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) / nk[k] for k in range(3)])
    eye = np.eye(n_features)
    if covariance_type == "full":
        covs = covs + reg_covar * eye
    elif covariance_type == "tied":
        covs = np.tensordot(nk, covs, axes=1) / nk.sum() + reg_covar * eye
    elif covariance_type == "diag":
        covs = np.diagonal(covs, axis1=1, axis2=2) + reg_covar
    else:
        covs = np.trace(covs, axis1=1, axis2=2) / n_features + reg_covar
    mean_ll = sample_weight @ log_density / sample_weight.sum()
    return nk / nk.sum(), means, covs, mean_ll


# ------------------------------------------------------------- E + M steps
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "separation, spread, offset",
    [(0.5, 1.0, 0.0), (4.0, 1.0, 0.0), (30.0, 1.0, 0.0), (1e3, 1e-3, 0.0), (6.0, 1.0, 1e6)],
    ids=["overlapping", "separated", "far", "very-far-narrow", "offset"],
)
def test_one_em_step_equals_the_textbook_step(covariance_type, separation, spread, offset):
    rng = np.random.RandomState(0)
    n_features = 3
    truth = true_params(covariance_type, n_features, rng, separation, spread, offset)
    X = sample_from(truth, covariance_type, 600, rng)
    sample_weight = rng.uniform(0.2, 2.0, size=len(X))
    # Start from perturbed parameters so the responsibilities are soft.
    start = true_params(covariance_type, n_features, np.random.RandomState(1), separation, spread, offset)
    start = MixtureParams(start.weights, truth.means + 0.3 * spread, start.covariances, start.precisions_cholesky)
    model = get_covariance_model(covariance_type)
    reg = 1e-6 * spread**2
    stats = expectation(model, X, sample_weight, start)
    params, reseeded = maximization(model, stats, reg)
    assert reseeded == []
    weights, means, covs, mean_ll = reference_m_step(X, sample_weight, start, covariance_type, reg)
    # Both sides compute in float64 by different routes.  Absolute accuracy
    # of the data is eps * |X| = eps * (offset + 3 * separation); relative
    # to the spread, the covariances may lose that squared.
    rel = np.finfo(np.float64).eps * (offset + 3 * separation) / spread
    tol = max(1e-9, 1e3 * rel**2 + 1e3 * rel)
    np.testing.assert_allclose(params.weights, weights, rtol=1e-9)
    np.testing.assert_allclose(params.means, means, rtol=0, atol=tol * spread + 1e-9 * spread)
    full_got = full_covariances(params.covariances, covariance_type, 3, n_features)
    full_exp = full_covariances(covs, covariance_type, 3, n_features)
    for k in range(3):
        scale = np.max(np.abs(full_exp[k]))
        np.testing.assert_allclose(full_got[k], full_exp[k], rtol=0, atol=tol * scale)
    assert stats.mean_log_likelihood == pytest.approx(mean_ll, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "separation", [0.5, 4.0, 12.0, 1e3], ids=["overlapping", "separated", "far", "very-far"]
)
def test_float32_em_step_is_accurate_to_float32_precision(covariance_type, separation):
    """float32 statistics must not lose more than ~1e-4 of the covariances,
    whatever the distance between the components."""
    rng = np.random.RandomState(2)
    truth = true_params(covariance_type, 3, rng, separation, 1.0, offset=50.0)
    X64 = sample_from(truth, covariance_type, 600, rng).astype(np.float32).astype(np.float64)
    model = get_covariance_model(covariance_type)
    stats32 = expectation(model, X64.astype(np.float32), None, truth)
    stats64 = expectation(model, X64, None, truth)
    p32, _ = maximization(model, stats32, 1e-6, np.float32)
    p64, _ = maximization(model, stats64, 1e-6, np.float64)
    full32 = full_covariances(p32.covariances, covariance_type, 3, 3)
    full64 = full_covariances(p64.covariances, covariance_type, 3, 3)
    # float32 eps is 1.2e-7; a few hundred rows and well-conditioned
    # components: ~1e-6 norm-wise; 1e-4 is the library's float32 promise.
    for k in range(3):
        err = np.max(np.abs(full32[k] - full64[k])) / np.max(np.abs(full64[k]))
        assert err < 1e-4, (k, err)
    np.testing.assert_allclose(p32.means, p64.means, rtol=0, atol=1e-4 * (1 + 50 + 3 * separation))


# --------------------------------------------------- chunking (hypothesis)
@settings(max_examples=30, **HYPOTHESIS)
@given(
    n_samples=st.integers(2, 150),
    n_features=st.integers(1, 4),
    n_components=st.integers(1, 3),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    chunk_size=st.integers(1, 160),
    weighted=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_expectation_does_not_depend_on_chunk_size(
    n_samples, n_features, n_components, covariance_type, chunk_size, weighted, seed
):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, n_features)) * 3 + rng.uniform(-100, 100)
    X[: n_samples // 2] += 5
    sw = rng.uniform(0, 2, size=n_samples) if weighted else None
    if sw is not None:
        sw[0] = 1.0  # at least one positive weight
    model = get_covariance_model(covariance_type)
    params = short_fit_params(X, min(n_components, n_samples), covariance_type)
    one = expectation(model, X, sw, params, chunk_size=n_samples)
    many = expectation(model, X, sw, params, chunk_size=chunk_size)
    # Same terms summed in other groupings: rounding relative to the terms,
    # n * span**order for a statistic of that order.
    span = float(np.max(np.ptp(X, axis=0))) + 1.0
    for name, order in (("sum_resp", 0), ("shift_sum", 1), ("scatter", 2)):
        np.testing.assert_allclose(
            getattr(many, name), getattr(one, name), rtol=1e-12, atol=1e-13 * n_samples * span**order
        )
    np.testing.assert_array_equal(many.shift, one.shift)
    assert many.log_likelihood == pytest.approx(one.log_likelihood, rel=1e-12, abs=1e-12)
    assert many.weight_sum == pytest.approx(one.weight_sum, rel=1e-14)
    assert many.worst_log_density == pytest.approx(one.worst_log_density, rel=1e-12)
    np.testing.assert_array_equal(many.worst_sample, one.worst_sample)


@settings(max_examples=20, **HYPOTHESIS)
@given(
    n_samples=st.integers(3, 120),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
    chunk_size=st.integers(1, 130),
    seed=st.integers(0, 2**16),
)
def test_statistics_from_resp_do_not_depend_on_chunk_size(n_samples, covariance_type, chunk_size, seed):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, 2)) * 2 + 40
    resp = rng.dirichlet(np.ones(3), size=n_samples)
    model = get_covariance_model(covariance_type)
    one = statistics_from_resp(model, X, None, resp, chunk_size=n_samples)
    many = statistics_from_resp(model, X, None, resp, chunk_size=chunk_size)
    p_one, _ = maximization(model, one, 1e-6, reseed_empty=False)
    p_many, _ = maximization(model, many, 1e-6, reseed_empty=False)
    # Different groupings of ~100 O(1) terms around the same means.
    np.testing.assert_allclose(p_many.means, p_one.means, rtol=1e-12)
    np.testing.assert_allclose(p_many.covariances, p_one.covariances, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_chunks", [5, 2 * em._MIN_TASKS + 3])
@pytest.mark.parametrize("task_chunk_work", [em._TASK_CHUNK_WORK, 1])
def test_expectation_does_not_depend_on_the_number_of_threads(
    covariance_type, n_chunks, task_chunk_work, monkeypatch
):
    """Chunks may run on several threads but are summed in order: bitwise equal.

    With many small chunks a thread takes runs of them and sums each run
    itself; larger chunks (all of them, with ``task_chunk_work`` 1) are
    tasks of their own.
    """
    from gaussmix import _parallel

    monkeypatch.setattr(em, "_TASK_CHUNK_WORK", task_chunk_work)
    rng = np.random.RandomState(8)
    model = get_covariance_model(covariance_type)
    chunk_size = _kernels.model_chunk_size(model, 3, 3, np.float64)
    X = rng.standard_normal((n_chunks * chunk_size + 11, 3))
    X[::2] += 4
    params = short_fit_params(X[:500], 3, covariance_type)
    results = []
    try:
        for n_threads in (1, 2, 3):
            _parallel.set_num_threads(n_threads)
            results.append(expectation(model, X, None, params, chunk_size))
    finally:
        _parallel.set_num_threads(None)
    for other in results[1:]:
        for name in ("sum_resp", "shift_sum", "scatter"):
            np.testing.assert_array_equal(getattr(other, name), getattr(results[0], name))
        assert other.log_likelihood == results[0].log_likelihood


def test_chunks_cover_the_rows_exactly_once():
    for n_samples in (1, 255, 256, 257, 10_000):
        for chunk_size in (1, 7, 256, 20_000):
            chunks = list(_kernels.iter_chunks(n_samples, chunk_size))
            covered = np.concatenate([np.arange(n_samples)[c] for c in chunks])
            np.testing.assert_array_equal(covered, np.arange(n_samples))
            assert all(c.stop > c.start for c in chunks)
            assert all(c.stop - c.start <= chunk_size for c in chunks)


def test_tasks_are_runs_of_whole_chunks_independent_of_threads():
    for n_samples in (1, 1000, 8 * 100, 8 * 100 + 1, 17 * 100 + 5, 200 * 100, 10**6):
        chunk_size = 100
        tasks = em._tasks(n_samples, chunk_size)
        covered = np.concatenate([np.arange(n_samples)[t] for t in tasks])
        np.testing.assert_array_equal(covered, np.arange(n_samples))
        n_chunks = -(-n_samples // chunk_size)
        # Every task but the last is a whole number of chunks, never more than the cap.
        sizes = [t.stop - t.start for t in tasks]
        assert all(size % chunk_size == 0 for size in sizes[:-1])
        assert max(sizes) <= em._CHUNKS_PER_TASK * chunk_size
        assert len(tasks) >= min(n_chunks, em._MIN_TASKS)


def test_chunks_of_much_work_are_tasks_of_their_own():
    chunk_size = 100
    for n_samples in (1, 1000, 17 * 100 + 5, 10**5):
        small = em._tasks(n_samples, chunk_size, em._TASK_CHUNK_WORK - 1)
        large = em._tasks(n_samples, chunk_size, em._TASK_CHUNK_WORK)
        assert large == _kernels.iter_chunks(n_samples, chunk_size)
        assert small == em._tasks(n_samples, chunk_size)
    assert len(small) < len(large)


def test_chunks_within_a_task_start_at_its_offset():
    chunks = _kernels.iter_chunks(250, 100, offset=1000)
    assert chunks == [slice(1000, 1100), slice(1100, 1200), slice(1200, 1250)]


def test_a_model_may_take_larger_chunks():
    # Rows are the budget over the bytes of a row of the widest temporary.
    assert _kernels.chunk_size_for(16, 16, width=128) == (1 << 20) // (128 * 8)
    larger = _kernels.chunk_size_for(16, 16, width=128, chunk_bytes=1 << 21)
    assert larger == (1 << 21) // (128 * 8)
    for name in ("diag", "spherical", "tied"):
        model = get_covariance_model(name)
        assert model.chunk_bytes == 1 << 21
        width = model.chunk_width(16, 16)
        assert _kernels.model_chunk_size(model, 16, 16, np.float64) == (1 << 21) // (width * 8)
    full = get_covariance_model("full")
    assert full.chunk_bytes is None
    assert _kernels.model_chunk_size(full, 16, 16, np.float64) == (1 << 20) // (full.chunk_width(16, 16) * 8)


def test_chunk_size_is_a_positive_bounded_int_shrinking_with_width():
    sizes = [_kernels.chunk_size_for(k, d) for k, d in [(1, 1), (3, 10), (10, 100), (50, 500)]]
    assert all(isinstance(s, int) and s >= 1 for s in sizes)
    assert sizes == sorted(sizes, reverse=True)
    assert _kernels.chunk_size_for(3, 10, itemsize=4) >= _kernels.chunk_size_for(3, 10, itemsize=8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_inference_over_many_chunks_matches_scipy(covariance_type):
    rng = np.random.RandomState(3)
    n_features = 2
    params = true_params(covariance_type, n_features, rng, 4.0, 1.0)
    n = 3 * _kernels.chunk_size_for(3, n_features) + 17  # several chunks, one ragged
    X = sample_from(params, covariance_type, n, rng)
    model = get_covariance_model(covariance_type)
    full = full_covariances(params.covariances, covariance_type, 3, n_features)
    log_joint = np.stack(
        [np.log(params.weights[k]) + multivariate_normal(params.means[k], full[k]).logpdf(X) for k in range(3)],
        axis=1,
    )
    expected = logsumexp(log_joint, axis=1)
    # Two evaluations of O(1..30) log-densities: 1e-10 relative.
    np.testing.assert_allclose(log_prob_norm_and_labels(model, X, params, want="score"), expected, rtol=1e-10)
    np.testing.assert_allclose(
        log_prob_norm_and_labels(model, X, params, want="proba"),
        np.exp(log_joint - expected[:, None]),
        atol=1e-10,
    )
    labels = log_prob_norm_and_labels(model, X, params, want="labels")
    clear = np.max(np.exp(log_joint - expected[:, None]), axis=1) > 0.51  # no near-ties
    np.testing.assert_array_equal(labels[clear], np.argmax(log_joint, axis=1)[clear])


# ------------------------------------------------------------ maximization
def stats_with_an_empty_component(covariance_type, rng, n_features=2):
    model = get_covariance_model(covariance_type)
    X = rng.standard_normal((50, n_features))
    resp = np.zeros((50, 3))
    resp[:25, 0] = 1.0
    resp[25:, 2] = 1.0
    stats = statistics_from_resp(model, X, None, resp)
    worst = np.array([9.0, -9.0])[:n_features]
    return model, SuffStats(
        stats.sum_resp,
        stats.shift_sum,
        stats.scatter,
        stats.shift,
        -100.0,
        stats.weight_sum,
        worst_log_density=-42.0,
        worst_sample=worst,
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_maximization_reseeds_an_empty_component_at_the_worst_sample(covariance_type):
    model, stats = stats_with_an_empty_component(covariance_type, np.random.RandomState(4))
    params, reseeded = maximization(model, stats, 1e-6)
    assert reseeded == [1]
    np.testing.assert_array_equal(params.means[1], stats.worst_sample)
    assert params.weights.sum() == pytest.approx(1.0, rel=1e-14)
    # The weight of one sample out of 50, renormalised.
    assert params.weights[1] == pytest.approx((1 / 50) / (1 + 1 / 50), rel=1e-6)
    assert params.all_finite()
    # Its covariance is the weighted mean of the others' (here 25 rows each,
    # so the plain average): a usable, data-scaled shape.
    covs = np.asarray(params.covariances)
    if covariance_type != "tied":
        np.testing.assert_allclose(covs[1], (covs[0] + covs[2]) / 2, rtol=1e-12)
    model.precision_cholesky(params.covariances)  # valid


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_maximization_without_reseeding_keeps_the_empty_component(covariance_type):
    model, stats = stats_with_an_empty_component(covariance_type, np.random.RandomState(5))
    params, reseeded = maximization(model, stats, 1e-6, reseed_empty=False)
    assert reseeded == []
    assert params.weights[1] < 1e-12


def test_maximization_of_non_finite_statistics_is_an_explicit_error():
    model, stats = stats_with_an_empty_component("diag", np.random.RandomState(6))
    bad = SuffStats(
        stats.sum_resp,
        stats.shift_sum,
        np.full_like(stats.scatter, np.inf),
        stats.shift,
        stats.log_likelihood,
        stats.weight_sum,
    )
    with pytest.raises(ValueError, match="non-finite|ill-defined"):
        maximization(model, bad, 1e-6)


# ----------------------------------------------------------------- run_em
@pytest.fixture
def problem():
    rng = np.random.RandomState(7)
    X = np.vstack([rng.standard_normal((60, 2)), rng.standard_normal((60, 2)) + 3])
    model = get_covariance_model("full")
    return model, X, short_fit_params(X, 2, "full")


def test_run_em_with_no_iterations_returns_the_start(problem):
    model, X, start = problem
    result = run_em(model, X, None, start, tol=1e-3, max_iter=0, reg_covar=1e-6)
    assert isinstance(result, EMResult)
    assert result.params is start
    assert result.n_iter == 0 and not result.converged and result.lower_bounds == []


def test_run_em_reports_every_iteration(problem):
    model, X, start = problem
    calls = []
    result = run_em(
        model, X, None, start, tol=0.0, max_iter=5, reg_covar=1e-6,
        on_iteration=lambda *args: calls.append(args),
    )
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5]
    assert [c[2] for c in calls] == result.lower_bounds
    np.testing.assert_allclose([c[1] for c in calls[1:]], np.diff(result.lower_bounds), rtol=1e-12)
    assert calls[0][1] == np.inf  # from the default lower_bound of -inf
    assert result.n_iter == 5 and not result.converged
    assert result.lower_bound == result.lower_bounds[-1]


def test_run_em_stops_when_the_change_is_below_tol(problem):
    model, X, start = problem
    result = run_em(model, X, None, start, tol=1e-4, max_iter=500, reg_covar=1e-6)
    assert result.converged
    changes = np.diff(result.lower_bounds)
    assert abs(changes[-1]) < 1e-4
    assert np.all(np.abs(changes[:-1]) >= 1e-4)


def test_run_em_continues_from_a_given_lower_bound(problem):
    """A warm start passes the previous bound: a fit already at its optimum
    converges in one step."""
    model, X, start = problem
    first = run_em(model, X, None, start, tol=1e-10, max_iter=500, reg_covar=1e-6)
    again = run_em(
        model, X, None, first.params, tol=1e-6, max_iter=10, reg_covar=1e-6,
        lower_bound=first.lower_bound,
    )
    assert again.converged and again.n_iter == 1


def test_run_em_one_iteration_is_expectation_then_maximization(problem):
    model, X, start = problem
    result = run_em(model, X, None, start, tol=0.0, max_iter=1, reg_covar=1e-6)
    stats = expectation(model, X, None, start)
    expected, _ = maximization(model, stats, 1e-6)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_array_equal(getattr(result.params, name), getattr(expected, name))
    assert result.lower_bounds == [stats.mean_log_likelihood]


def test_run_em_records_reseeding(problem):
    model, X, start = problem
    far = MixtureParams(
        start.weights, np.array([X.mean(axis=0), [500.0, 500.0]]), start.covariances, start.precisions_cholesky
    )
    result = run_em(model, X, None, far, tol=0.0, max_iter=3, reg_covar=1e-6)
    assert result.reseeded and result.reseeded[0][:2] == (1, 1)
    assert np.isfinite(result.reseeded[0][2])
    assert result.params.all_finite()


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_float32_statistics_name_the_centre_their_rows_were_centred_on(covariance_type):
    # float32 numbers near 1e6 are 0.0625 apart.  A centre half-way between
    # two of them, given as float64, is not the float32 point the rows are
    # centred on: the means it implied were off by up to 0.03 (0.1 SD here).
    rng = np.random.default_rng(3)
    X = (1e6 + 0.03 + 0.3 * rng.standard_normal((2000, 2))).astype(np.float32)
    model = get_covariance_model(covariance_type)
    means = 1e6 + 0.03 + np.array([[-0.2, 0.1], [0.2, -0.1]])
    covariances = {
        "full": np.stack([np.eye(2) * 0.09] * 2), "tied": np.eye(2) * 0.09,
        "diag": np.full((2, 2), 0.09), "spherical": np.full(2, 0.09),
    }[covariance_type]
    params = MixtureParams(np.array([0.5, 0.5]), means, covariances,
                           model.precision_cholesky(covariances))
    centre = _kernels.mixture_centre(params, np.float32)
    assert centre.astype(np.float32).astype(np.float64).tolist() == centre.tolist()

    def implied_means(data):
        stats = em.expectation(model, data, None, params)
        return stats.shift + stats.shift_sum / stats.sum_resp[:, None]

    # float32 sums of 2000 terms of O(0.3): rounding of about 2000 * 6e-8
    # of the sum, 4e-5 of the data's scale at most.
    np.testing.assert_allclose(implied_means(X), implied_means(X.astype(np.float64)),
                               rtol=0, atol=4e-5)
