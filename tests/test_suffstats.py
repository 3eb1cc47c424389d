"""SuffStats: addition, and chunk-split invariance of the per-chunk kernels."""

import warnings
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gaussmix import GaussianMixture
from gaussmix._kernels import e_step_chunk, stats_from_resp_chunk
from gaussmix.covariance import get_covariance_model
from gaussmix.params import MixtureParams
from gaussmix.suffstats import SuffStats, sum_stats

from _helpers import COVARIANCE_TYPES, full_covariances

# Deterministic, no example database written into the working tree.
HYPOTHESIS = dict(deadline=None, database=None, derandomize=True)

STAT_FIELDS = ("sum_resp", "shift_sum", "scatter")


def make_stats(rng, shift, worst=0.0, k=2, d=3):
    return SuffStats(
        sum_resp=rng.uniform(size=k),
        shift_sum=rng.standard_normal((k, d)),
        scatter=rng.standard_normal((k, d, d)),
        shift=shift,
        log_likelihood=float(rng.standard_normal()),
        weight_sum=float(rng.uniform(1, 2)),
        worst_log_density=worst,
        worst_sample=rng.standard_normal(d),
    )


def test_addition_sums_every_additive_field():
    rng = np.random.RandomState(0)
    shift = rng.standard_normal((2, 3))
    a, b = make_stats(rng, shift, worst=-3.0), make_stats(rng, shift.copy(), worst=-5.0)
    total = a + b
    for name in STAT_FIELDS + ("log_likelihood", "weight_sum"):
        np.testing.assert_array_equal(getattr(total, name), getattr(a, name) + getattr(b, name))
    assert total.worst_log_density == -5.0
    np.testing.assert_array_equal(total.worst_sample, b.worst_sample)
    assert total.mean_log_likelihood == total.log_likelihood / total.weight_sum
    # Inputs are immutable values, left untouched.
    assert a.worst_log_density == -3.0


def test_addition_keeps_the_first_worst_sample_on_ties():
    """Ties go to the earlier chunk, as argmin over one chunk picks the first row."""
    rng = np.random.RandomState(1)
    shift = np.zeros((2, 3))
    a, b = make_stats(rng, shift, worst=-2.0), make_stats(rng, shift, worst=-2.0)
    np.testing.assert_array_equal((a + b).worst_sample, a.worst_sample)
    np.testing.assert_array_equal((b + a).worst_sample, b.worst_sample)


def test_addition_keeps_the_lowest_reseed_candidates_in_order():
    # At most one candidate per component (k = 2), the lowest log-densities
    # first; on ties the earlier chunk's row.
    rng = np.random.RandomState(2)
    shift = np.zeros((2, 3))
    rows = rng.standard_normal((4, 3))
    a = replace(make_stats(rng, shift), reseed_candidates=rows[:2],
                reseed_log_densities=np.array([-4.0, -1.0]))
    b = replace(make_stats(rng, shift), reseed_candidates=rows[2:],
                reseed_log_densities=np.array([-5.0, -4.0]))
    total = a + b
    np.testing.assert_array_equal(total.reseed_log_densities, [-5.0, -4.0])
    np.testing.assert_array_equal(total.reseed_candidates, rows[[2, 0]])
    # Their weights travel with them (unweighted chunks: 1).
    weighted = replace(b, reseed_weights=np.array([0.5, 2.0]))
    np.testing.assert_array_equal((a + weighted).reseed_weights, [0.5, 1.0])
    # Statistics without candidates (older producers) add as nothing.
    np.testing.assert_array_equal((a + make_stats(rng, shift)).reseed_candidates, rows[:2])
    assert (make_stats(rng, shift) + make_stats(rng, shift)).reseed_candidates is None


def test_e_step_candidates_are_each_stretchs_worst_row():
    rng = np.random.RandomState(3)
    model = get_covariance_model("spherical")
    params = MixtureParams(np.array([0.5, 0.5]), np.zeros((2, 2)), np.ones(2), np.ones(2))
    X = rng.standard_normal((101, 2))
    X[[7, 60, 100]] = [[30.0, 0.0], [0.0, 20.0], [10.0, 10.0]]  # one per stretch, and the tail
    stats = e_step_chunk(model, X, None, params)
    # Two components: the two lowest of the stretches' and the tail's worst rows.
    np.testing.assert_array_equal(stats.reseed_candidates, X[[7, 60]])
    np.testing.assert_array_equal(stats.reseed_candidates[0], stats.worst_sample)
    assert stats.reseed_log_densities[0] == stats.worst_log_density
    weights = np.linspace(1.0, 2.0, len(X))
    weighted = e_step_chunk(model, X, weights, params)
    np.testing.assert_array_equal(weighted.reseed_weights, weights[[7, 60]])
    assert weighted.worst_weight == weights[7]


def test_addition_refuses_different_shifts():
    rng = np.random.RandomState(2)
    a = make_stats(rng, np.zeros((2, 3)))
    b = make_stats(rng, np.ones((2, 3)))
    with pytest.raises(ValueError, match="different shifts"):
        a + b


def test_addition_with_other_types_is_a_type_error():
    a = make_stats(np.random.RandomState(3), np.zeros((2, 3)))
    with pytest.raises(TypeError):
        a + 1


def test_sum_stats_of_nothing_is_an_explicit_error():
    with pytest.raises(ValueError, match="No statistics"):
        sum_stats([])


def test_sum_stats_adds_in_order():
    rng = np.random.RandomState(4)
    shift = np.zeros((2, 3))
    parts = [make_stats(rng, shift, worst=w) for w in (-1.0, -4.0, -2.0)]
    total = sum_stats(parts)
    manual = parts[0] + parts[1] + parts[2]
    for name in STAT_FIELDS:
        np.testing.assert_array_equal(getattr(total, name), getattr(manual, name))
    assert total.worst_log_density == -4.0


def test_sum_stats_leaves_its_parts_unchanged_and_keeps_the_first_worst_row():
    rng = np.random.RandomState(5)
    shift = np.zeros((2, 3))
    parts = [make_stats(rng, shift, worst=w) for w in (-2.0, -5.0, -5.0)]
    before = [{name: np.copy(getattr(p, name)) for name in STAT_FIELDS} for p in parts]
    total = sum_stats(iter(parts))
    for part, saved in zip(parts, before):
        for name in STAT_FIELDS:
            np.testing.assert_array_equal(getattr(part, name), saved[name])
    # Ties keep the earlier chunk's row, as ``+`` does.
    assert total.worst_sample is parts[1].worst_sample
    assert (parts[0] + parts[1] + parts[2]).worst_sample is parts[1].worst_sample
    assert sum_stats([parts[0]]) is parts[0]


def test_sum_stats_refuses_different_shifts():
    rng = np.random.RandomState(6)
    parts = [make_stats(rng, np.zeros((2, 3))), make_stats(rng, np.ones((2, 3)))]
    with pytest.raises(ValueError, match="different shifts"):
        sum_stats(parts)


# ------------------------------------------------------ chunk invariance
def fitted_params(X, n_components, covariance_type):
    """Parameters of a short fit: a realistic, non-degenerate E-step point."""
    gm = GaussianMixture(
        n_components, covariance_type=covariance_type, max_iter=2, tol=0, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    return MixtureParams(gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_)


def assert_stats_close(a: SuffStats, b: SuffStats, X):
    # Chunked sums add the same terms in another order: rounding of a few eps
    # times the number of terms, relative to the terms (not to the result,
    # which may cancel to ~0, e.g. shift_sum around the mean).  Terms are at
    # most n * span**p for a statistic of order p.
    n = len(X)
    span = float(np.max(np.ptp(X, axis=0))) + 1.0
    for name, order in zip(STAT_FIELDS, (0, 1, 2)):
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13 * n * span**order)
    np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=1e-10)
    np.testing.assert_allclose(a.weight_sum, b.weight_sum, rtol=1e-12)
    np.testing.assert_allclose(a.worst_log_density, b.worst_log_density, rtol=1e-12)
    # Rows tied within rounding for the worst may swap between splits.
    for worst in (a.worst_sample, b.worst_sample):
        assert np.any(np.all(X == worst, axis=1))
    assert a.shift is b.shift or np.array_equal(a.shift, b.shift)


@st.composite
def chunked_problem(draw):
    n_samples = draw(st.integers(4, 120))
    n_features = draw(st.integers(1, 4))
    n_components = draw(st.integers(1, 3))
    covariance_type = draw(st.sampled_from(COVARIANCE_TYPES))
    seed = draw(st.integers(0, 2**16))
    weighted = draw(st.booleans())
    cuts = draw(st.lists(st.integers(1, n_samples - 1), max_size=6, unique=True))
    return n_samples, n_features, n_components, covariance_type, seed, weighted, sorted(cuts)


@settings(max_examples=40, **HYPOTHESIS)
@given(chunked_problem())
def test_e_step_over_any_split_sums_to_the_one_chunk_statistics(problem):
    n_samples, n_features, n_components, covariance_type, seed, weighted, cuts = problem
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, n_features)) * rng.uniform(0.5, 10) + rng.uniform(-50, 50)
    X[: n_samples // 2] += 4.0
    sw = rng.uniform(0.0, 3.0, size=n_samples) if weighted else None
    model = get_covariance_model(covariance_type)
    params = fitted_params(X, n_components, covariance_type)

    whole = e_step_chunk(model, X, sw, params)
    bounds = [0, *cuts, n_samples]
    pieces = [
        e_step_chunk(model, X[a:b], None if sw is None else sw[a:b], params)
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    total = pieces[0]
    for piece in pieces[1:]:
        total = total + piece
    assert_stats_close(total, whole, X)


@settings(max_examples=25, **HYPOTHESIS)
@given(chunked_problem())
def test_statistics_from_resp_over_any_split_sum_to_the_one_chunk_statistics(problem):
    n_samples, n_features, n_components, covariance_type, seed, weighted, cuts = problem
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_samples, n_features)) * 3.0 + 10.0
    resp = rng.dirichlet(np.ones(n_components), size=n_samples)
    sw = rng.uniform(0.0, 3.0, size=n_samples) if weighted else None
    means = rng.standard_normal((n_components, n_features)) + 10.0
    centre = means.mean(axis=0)
    model = get_covariance_model(covariance_type)
    whole = stats_from_resp_chunk(model, X, sw, resp, means, centre)
    bounds = [0, *cuts, n_samples]
    total = sum_stats(
        stats_from_resp_chunk(
            model, X[a:b], None if sw is None else sw[a:b], resp[a:b], means, centre
        )
        for a, b in zip(bounds[:-1], bounds[1:])
    )
    for name in STAT_FIELDS:
        y = getattr(whole, name)
        np.testing.assert_allclose(getattr(total, name), y, rtol=1e-12, atol=1e-13 * n_samples * 100.0)
    np.testing.assert_allclose(total.weight_sum, whole.weight_sum, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_statistics_have_the_documented_meaning(covariance_type):
    """sum_resp, shift_sum, weight_sum and the worst row, checked against definitions."""
    rng = np.random.RandomState(5)
    X = np.vstack([rng.standard_normal((30, 2)), rng.standard_normal((30, 2)) + 6])
    sw = rng.uniform(0.5, 2.0, size=60)
    sw[7] = 0.0
    X[7] = [100.0, 100.0]  # worst row, but weightless: must not be reported
    model = get_covariance_model(covariance_type)
    params = fitted_params(X[sw > 0], 2, covariance_type)
    stats = e_step_chunk(model, X, sw, params)

    covs = full_covariances(params.covariances, covariance_type, 2, 2)
    log_joint = np.stack(
        [np.log(params.weights[k]) + multivariate_normal(params.means[k], covs[k]).logpdf(X) for k in range(2)],
        axis=1,
    )
    log_density = logsumexp(log_joint, axis=1)
    resp = np.exp(log_joint - log_density[:, None]) * sw[:, None]
    # Densities are computed two ways (Cholesky vs scipy's eigh): ~1e-13 apart.
    np.testing.assert_allclose(stats.sum_resp, resp.sum(axis=0), rtol=1e-10)
    # shift_sum is relative to the statistics' own shift (a model choice).
    assert stats.shift.shape == params.means.shape
    np.testing.assert_allclose(
        stats.shift_sum, resp.T @ X - resp.sum(axis=0)[:, None] * stats.shift, rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(stats.log_likelihood, sw @ log_density, rtol=1e-10)
    assert stats.weight_sum == pytest.approx(sw.sum(), rel=1e-14)
    positive = np.flatnonzero(sw > 0)
    worst = positive[np.argmin(log_density[positive])]
    np.testing.assert_array_equal(stats.worst_sample, X[worst])
    np.testing.assert_allclose(stats.worst_log_density, log_density[worst], rtol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_an_empty_chunk_contributes_nothing(weighted):
    """A stream or a distributed block may be empty: its statistics are zero.

    The module promises one engine for arrays, memory-mapped files, streams
    and distributed blocks; a block with no rows must add nothing rather
    than fail.
    """
    rng = np.random.RandomState(6)
    X = rng.standard_normal((40, 2))
    model = get_covariance_model("full")
    params = fitted_params(X, 2, "full")
    sw = np.ones(40) if weighted else None
    whole = e_step_chunk(model, X, sw, params)
    empty = e_step_chunk(model, X[:0], None if sw is None else sw[:0], params)
    assert empty.weight_sum == 0.0
    assert empty.log_likelihood == 0.0
    for name in STAT_FIELDS:
        assert not np.any(getattr(empty, name))
    assert_stats_close(empty + whole, whole, X)
    assert_stats_close(whole + empty, whole, X)
