"""Full-covariance log-densities from the rows' packed products (the expanded square)."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gaussmix import _kernels
from gaussmix._covariance_numerics import far_threshold, packed_scatter_wins
from gaussmix._quadratic_forms import expandable_components, expansion_coefficients, row_features
from gaussmix.covariance import get_covariance_model
from gaussmix.params import MixtureParams

from _helpers import count_calls, spd_matrix

MODEL = get_covariance_model("full")


def mixture(rng, n_components, n_features, spread=3.0, weights=None):
    means = rng.standard_normal((n_components, n_features)) * spread
    covariances = np.stack([spd_matrix(rng, n_features) for _ in range(n_components)])
    if weights is None:
        weights = rng.dirichlet(np.ones(n_components))
    return MixtureParams(weights, means, covariances, MODEL.precision_cholesky(covariances))


def scipy_log_prob(params, X):
    with np.errstate(divide="ignore"):
        return np.stack([
            np.log(w) + multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(params.weights, params.means, params.covariances)
        ])


def prepared(params, dtype):
    centre = _kernels.mixture_centre(params, dtype)
    return centre.astype(dtype), MODEL.prepare(params, centre, dtype)


def test_row_features_are_ones_centred_rows_and_their_products():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((7, 3))
    centre = np.array([0.5, -1.0, 2.0])
    features = row_features(X, centre)
    Xc = X - centre
    np.testing.assert_array_equal(features[0], 1.0)
    np.testing.assert_array_equal(features[1:4], Xc.T)
    upper, lower = np.triu_indices(3)
    np.testing.assert_array_equal(features[4:], (Xc[:, upper] * Xc[:, lower]).T)


def test_coefficients_times_features_are_the_weighted_log_densities():
    rng = np.random.default_rng(1)
    params = mixture(rng, 5, 4)
    X = rng.standard_normal((50, 4)) * 3
    centre = params.means.mean(axis=0)
    precisions = MODEL.precisions_from_cholesky(params.precisions_cholesky)
    log_det = MODEL.log_det_cholesky(params.precisions_cholesky, 5, 4)
    const = np.log(params.weights) + log_det - 2 * np.log(2 * np.pi)
    coefficients = expansion_coefficients(precisions, params.means - centre, const)
    weighted = coefficients @ row_features(X, centre)
    np.testing.assert_allclose(weighted, scipy_log_prob(params, X), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("n_components", [3, 16])
def test_the_kernel_expands_where_the_products_serve(dtype, rtol, n_components):
    rng = np.random.default_rng(2)
    n_features = 5
    params = mixture(rng, n_components, n_features, spread=1.0)
    X = (params.means[rng.integers(n_components, size=400)]
         + rng.standard_normal((400, n_features))).astype(dtype)
    centre, prep = prepared(params, dtype)
    assert ("coefficients" in prep) == packed_scatter_wins(n_components, n_features)
    weighted, aux = MODEL.log_prob_rows(X, centre, prep)
    # float32: the rows' own rounding (eps times |x|^2 in whitened units) bounds the agreement.
    np.testing.assert_allclose(weighted, scipy_log_prob(params, X.astype(np.float64)),
                               rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_statistics_from_the_products_equal_those_of_the_whitening_path(dtype):
    rng = np.random.default_rng(3)
    params = mixture(rng, 8, 4, spread=1.0)
    X = rng.standard_normal((300, 4)).astype(dtype) * 2
    centre, prep = prepared(params, dtype)
    assert "coefficients" in prep
    weighted, features = MODEL.log_prob_rows(X, centre, prep)
    _, resp = _kernels.normalise_log_prob(weighted)
    offsets = prep["offsets"]
    from_products = MODEL.stats_rows(X, centre, resp, offsets, features)
    from_rows = MODEL.stats_rows(X, centre, resp, offsets, features[: 1 + X.shape[1]])
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    for mine, reference in zip(from_products, from_rows):
        np.testing.assert_allclose(
            mine, reference, rtol=tolerance, atol=tolerance * np.abs(reference).max()
        )


def test_far_and_ill_conditioned_components_keep_the_whitening():
    rng = np.random.default_rng(4)
    n_components, n_features = 6, 3
    params = mixture(rng, n_components, n_features, spread=1.0)
    covariances = params.covariances.copy()
    # Component 0 far from the others (its own shift), component 1 nearly singular.
    means = params.means.copy()
    means[0] += 1e4
    rotation = np.linalg.qr(rng.standard_normal((3, 3)))[0]
    covariances[1] = rotation @ np.diag([1.0, 1.0, 1e-8]) @ rotation.T
    chol = MODEL.precision_cholesky(covariances)
    params = MixtureParams(params.weights, means, covariances, chol)
    centre, prep = prepared(params, np.float64)
    assert set(prep["whitened"]) == {0, 1}
    X = np.vstack([means[:2] + rng.standard_normal((2, 3)) * 1e-3, rng.standard_normal((40, 3))])
    weighted, _ = MODEL.log_prob_rows(X, centre, prep)
    # The whitened rows are the whitening's own values; the others scipy's.
    only_whitening = {key: value for key, value in prep.items() if key != "coefficients"}
    reference, _ = MODEL.log_prob_rows(X, centre, only_whitening)
    np.testing.assert_array_equal(weighted[:2], reference[:2])
    np.testing.assert_allclose(weighted[2:], scipy_log_prob(params, X)[2:], rtol=1e-12)


def test_the_whitening_serves_all_when_most_components_would_be_whitened():
    rng = np.random.default_rng(5)
    params = mixture(rng, 4, 3, spread=1.0)
    means = params.means.copy()
    means[:3] += np.array([[1e4, 0, 0], [0, 1e4, 0], [0, 0, -1e4]])
    params = MixtureParams(params.weights, means, params.covariances, params.precisions_cholesky)
    _, prep = prepared(params, np.float64)
    assert "coefficients" not in prep


def test_a_component_of_zero_weight_has_no_density():
    rng = np.random.default_rng(6)
    params = mixture(rng, 4, 3, spread=1.0, weights=np.array([0.5, 0.5, 0.0, 0.0]))
    X = rng.standard_normal((20, 3))
    centre, prep = prepared(params, np.float64)
    weighted, _ = MODEL.log_prob_rows(X, centre, prep)
    assert np.all(weighted[2:] == -np.inf)
    np.testing.assert_allclose(weighted[:2], scipy_log_prob(params, X)[:2], rtol=1e-12)


def test_expandable_components_apply_the_precision_budget():
    eye = np.eye(4)[None].repeat(3, axis=0)
    budget = far_threshold(np.float32) * 4
    # cond = 1: the distance alone decides, at the budget's edge.
    sq_offsets = np.array([0.0, budget - 4, budget - 3])
    np.testing.assert_array_equal(
        expandable_components(eye, eye, sq_offsets, np.float32), [True, True, False]
    )
    # cond = 100 (the precision's infinity norm times the covariance's):
    # 400 against float32's budget of 336, float64's of 18000.
    precision = np.stack([np.diag([10.0, 1.0, 1.0, 0.1])] * 3)
    covariance = np.linalg.inv(precision)
    assert not expandable_components(precision, covariance, np.zeros(3), np.float32).any()
    assert expandable_components(precision, covariance, np.zeros(3), np.float64).all()


@pytest.mark.parametrize("dtype, far", [(np.float64, 1e155), (np.float32, 1e20)])
def test_rows_whose_products_overflow_score_as_the_whitening_scores_them(dtype, far):
    """Beyond the square root of the range, x_a x_b is inf: the row is whitened, not NaN."""
    rng = np.random.default_rng(7)
    params = mixture(rng, 4, 3, spread=1.0)
    X = np.vstack([rng.standard_normal((5, 3)), [far, -far, far]]).astype(dtype)
    centre, prep = prepared(params, dtype)
    assert "coefficients" in prep
    with np.errstate(over="ignore", invalid="ignore"):
        weighted, _ = MODEL.log_prob_rows(X, centre, prep)
        only_whitening = {key: value for key, value in prep.items() if key != "coefficients"}
        reference, _ = MODEL.log_prob_rows(X, centre, only_whitening)
    np.testing.assert_array_equal(weighted[:, -1], reference[:, -1])
    assert np.all(weighted[:, -1] == -np.inf)
    np.testing.assert_allclose(weighted[:, :-1], reference[:, :-1], rtol=1e-5)


def separated(rng, n_components, n_features, n_samples, dtype, spread=60.0):
    """Clusters far apart, each beyond the float32 budget from the centre, and rows drawn from them."""
    params = mixture(rng, n_components, n_features, spread=spread)
    labels = rng.integers(n_components, size=n_samples)
    chol = np.linalg.cholesky(params.covariances)
    noise = np.einsum("nde,ne->nd", chol[labels], rng.standard_normal((n_samples, n_features)))
    return params, (params.means[labels] + noise).astype(dtype)


def exact_log_prob(params, X):
    """float64 whitening around each component's own mean: the reference for refined pairs."""
    const = (np.log(params.weights)
             + MODEL.log_det_cholesky(params.precisions_cholesky, *params.means.shape)
             - 0.5 * params.means.shape[1] * np.log(2 * np.pi))
    deviations = X.astype(np.float64)[None] - params.means[:, None]
    whitened = np.einsum("knd,kde->kne", deviations, params.precisions_cholesky)
    return const[:, None] - 0.5 * np.einsum("kne,kne->kn", whitened, whitened)


def test_the_refinement_cut_leaves_only_pairs_whose_error_is_below_the_rounding():
    from gaussmix._quadratic_forms import refinement_cut

    rng = np.random.default_rng(8)
    weighted = (rng.standard_normal((6, 500)) * 20 - 40).astype(np.float32)
    components = np.array([1, 3, 4])
    bound_terms = np.array([1e-3, 1e-4, 1e-5])
    sq_norms = rng.uniform(0, 1e4, size=500)
    cut = refinement_cut(weighted, bound_terms, sq_norms)
    chosen = weighted[components] >= cut
    bound = 1e-3 + 1e-4 * np.sqrt(sq_norms) + 1e-5 * sq_norms
    best = weighted.max(axis=0).astype(np.float64)
    # The largest responsibility an unchosen pair may have, times its error bound.
    carried = np.exp(weighted[components] + 2 * bound - best) * bound
    assert np.all(carried[~chosen] < np.finfo(np.float32).eps / 2 * (1 + 1e-4))
    assert chosen.any() and not chosen.all()
    # Each row's own best pair is chosen where its component is refined.
    own = np.isin(weighted.argmax(axis=0), components)
    assert np.all(chosen[:, own].any(axis=0))
    # A row whose values are not finite (products beyond the range) is left to the caller.
    weighted[:, 7] = np.nan
    sq_norms[7] = np.inf
    assert refinement_cut(weighted, bound_terms, sq_norms)[7] == np.inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_refined_pairs_are_exact_and_the_others_within_their_bound(dtype):
    rng = np.random.default_rng(9)
    params, X = separated(rng, 12, 4, 600, dtype, spread=60.0 if dtype == np.float32 else 1e4)
    centre = _kernels.mixture_centre(params, dtype)
    prep = MODEL.prepare(params, centre, dtype, compiled=True)
    plain = MODEL.prepare(params, centre, dtype)
    assert "refined" in prep and "refined" not in plain
    refined = prep["refined"]["components"]
    assert refined.size > 6
    reference = exact_log_prob(params, X)
    weighted, _ = MODEL.log_prob_rows(X, centre.astype(dtype), prep)
    features = row_features(X, centre.astype(dtype))
    approximate = prep["coefficients"] @ features
    changed = weighted[refined] != approximate[refined]
    assert changed.sum() >= X.shape[0] // 2
    # Refined pairs: float64 values rounded once (float64: a few roundings
    # of the deviation x - mean and of the sums; measured 1 eps).
    rtol = 2 * np.finfo(np.float32).eps if dtype == np.float32 else 8 * np.finfo(np.float64).eps
    np.testing.assert_allclose(weighted[refined][changed], reference[refined][changed],
                               rtol=rtol, atol=0)
    # The others: within their rounding bound.
    terms = prep["refined"]["bound_terms"]
    sq_norms = np.einsum("dn,dn->n", features[1:5].astype(np.float64), features[1:5])
    bound = terms[0] + terms[1] * np.sqrt(sq_norms) + terms[2] * sq_norms
    error = np.abs(approximate[refined].astype(np.float64) - reference[refined])
    assert np.all(error <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_e_step_with_refined_pairs_matches_the_whitening(dtype):
    rng = np.random.default_rng(10)
    params, X = separated(rng, 12, 4, 3000, dtype, spread=60.0 if dtype == np.float32 else 1e4)
    centre = _kernels.mixture_centre(params, dtype)
    refined = _kernels.e_step_chunk(MODEL, X, None, params, centre,
                                    MODEL.prepare(params, centre, dtype, compiled=True))
    whitened = _kernels.e_step_chunk(MODEL, X, None, params, centre,
                                     MODEL.prepare(params, centre, dtype))
    eps = np.finfo(dtype).eps
    # The whitening's own rounding, about eps * |x - c| per row in whitened
    # units (the rows lie 60, float64 1e4, from the centre), bounds the
    # agreement of the log-likelihoods: measured 0.02 eps (float32) and
    # 10 eps (float64) relative.  The responsibilities differ by about eps,
    # and so do the statistics summed from them.
    assert abs(refined.log_likelihood - whitened.log_likelihood) <= (
        100 * eps * abs(whitened.log_likelihood))
    np.testing.assert_allclose(refined.sum_resp, whitened.sum_resp, rtol=16 * eps)
    scale = np.abs(whitened.scatter).max(axis=(1, 2), keepdims=True)
    assert np.all(np.abs(refined.scatter - whitened.scatter) <= 16 * eps * scale)


def test_without_the_compiled_kernels_the_compiled_preparation_is_the_plain_one(monkeypatch):
    from gaussmix import _quadratic_forms, sklearn_models

    rng = np.random.default_rng(11)
    params, X = separated(rng, 12, 4, 500, np.float32)
    centre = _kernels.mixture_centre(params, np.float32)
    monkeypatch.setattr(_quadratic_forms, "compiled_kernels_load", lambda: False)
    monkeypatch.setattr(sklearn_models, "compiled_kernels_load", lambda: False)
    prep = MODEL.prepare(params, centre, np.float32, compiled=True)
    assert "refined" not in prep
    plain = MODEL.prepare(params, centre, np.float32)
    weighted, _ = MODEL.log_prob_rows(X, centre.astype(np.float32), prep)
    reference, _ = MODEL.log_prob_rows(X, centre.astype(np.float32), plain)
    np.testing.assert_array_equal(weighted, reference)


def test_centred_rows_refine_as_raw_rows():
    """log_prob_chunk hands the kernels rows centred already, and a zero centre."""
    rng = np.random.default_rng(15)
    params, X = separated(rng, 12, 4, 400, np.float64, spread=1e4)
    centre = _kernels.mixture_centre(params, np.float64)
    prep = MODEL.prepare(params, centre, np.float64, compiled=True)
    assert "refined" in prep
    from_rows, _ = MODEL.log_prob_rows(X, centre, prep)
    from_centred, _ = MODEL.log_prob_chunk(X - centre, prep)
    refined = prep["refined"]["components"]
    # Centred rows carry the rounding of x - centre (eps * 1e4 absolute).
    np.testing.assert_allclose(from_centred[refined], from_rows[refined], rtol=1e-11)
    # Each row's own component is refined: float64 rounding only.
    own = from_rows.argmax(axis=0)
    rows = np.arange(X.shape[0])
    assert np.isin(own, refined).all()
    np.testing.assert_allclose(from_rows[own, rows], exact_log_prob(params, X)[own, rows],
                               rtol=8 * np.finfo(np.float64).eps)


def test_refinement_serves_many_components_for_few_features_only():
    from gaussmix._quadratic_forms import refinement_wins

    rng = np.random.default_rng(12)
    for n_components, n_features, expected in [(12, 4, True), (6, 4, False)]:
        params, _ = separated(rng, n_components, n_features, 10, np.float32)
        assert refinement_wins(n_components, n_features) == expected
        centre = _kernels.mixture_centre(params, np.float32)
        prep = MODEL.prepare(params, centre, np.float32, compiled=True)
        assert ("refined" in prep) == expected


@pytest.mark.parametrize("dtype, far", [(np.float64, 1e155), (np.float32, 1e20)])
def test_rows_whose_products_overflow_score_as_the_whitening_with_refined_pairs(dtype, far):
    rng = np.random.default_rng(13)
    params, X = separated(rng, 12, 4, 30, dtype, spread=60.0 if dtype == np.float32 else 1e4)
    X = np.vstack([X, np.full((1, 4), far, dtype=dtype)])
    centre = _kernels.mixture_centre(params, dtype).astype(dtype)
    prep = MODEL.prepare(params, centre.astype(np.float64), dtype, compiled=True)
    assert "refined" in prep
    with np.errstate(over="ignore", invalid="ignore"):
        weighted, _ = MODEL.log_prob_rows(X, centre, prep)
        only_whitening = {key: value for key, value in prep.items() if key != "coefficients"}
        reference, _ = MODEL.log_prob_rows(X, centre, only_whitening)
    assert np.all(weighted[:, -1] == -np.inf)
    np.testing.assert_array_equal(weighted[:, -1], reference[:, -1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_products_are_numpys_bit_for_bit(dtype, monkeypatch):
    from gaussmix import _quadratic_kernels

    rng = np.random.default_rng(14)
    X = (rng.standard_normal((333, 7)) * np.logspace(-3, 3, 7) + 1e3).astype(dtype)
    centre = np.median(X, axis=0).astype(dtype)
    calls = count_calls(monkeypatch, _quadratic_kernels, "packed_products_into")
    compiled = row_features(X, centre, compiled=True)
    assert calls
    np.testing.assert_array_equal(compiled, row_features(X, centre))


def test_split_difference_is_exact():
    from gaussmix._quadratic_forms import split_difference

    rng = np.random.default_rng(16)
    minuend = rng.standard_normal((5, 3)) * 1e8 + 0.1
    subtrahend = rng.standard_normal(3) * 1e-3 + np.pi
    high, low = split_difference(minuend, subtrahend)
    exact = minuend.astype(np.longdouble) - subtrahend.astype(np.longdouble)
    if np.finfo(np.longdouble).nmant > 52:
        np.testing.assert_array_equal(high.astype(np.longdouble) + low, exact)
    np.testing.assert_array_equal(high, minuend - subtrahend)
    assert np.all(np.abs(low) <= np.finfo(float).eps * np.abs(high))


def test_scoring_takes_the_kernels_of_a_fit_of_its_size(monkeypatch):
    """score and predict use the fit's rule, so the same rows score as the fit measured them."""
    from gaussmix import em, sklearn_models

    rng = np.random.default_rng(17)
    params, X = separated(rng, 12, 4, 2000, np.float32)
    calls = count_calls(monkeypatch, sklearn_models, "refine_pairs")
    monkeypatch.setattr(em, "COMPILED_KERNELS_WORK", X.size * 12)
    scores = em.log_prob_norm_and_labels(MODEL, X, params, want="score")
    assert calls
    calls.clear()
    pass_stats = em.expectation(MODEL, X, None, params)
    assert calls
    # float32 log-densities summed in float64, in other chunks.
    assert abs(scores.sum(dtype=np.float64) - pass_stats.log_likelihood) <= (
        1e-6 * abs(pass_stats.log_likelihood))
    calls.clear()
    monkeypatch.setattr(em, "COMPILED_KERNELS_WORK", X.size * 12 + 1)
    em.log_prob_norm_and_labels(MODEL, X, params, want="score")
    assert not calls
