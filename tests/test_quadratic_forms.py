"""Full-covariance log-densities from the rows' packed products (the expanded square)."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gaussmix import _kernels
from gaussmix._covariance_numerics import far_threshold, packed_scatter_wins
from gaussmix._quadratic_forms import expandable_components, expansion_coefficients, row_features
from gaussmix.covariance import get_covariance_model
from gaussmix.params import MixtureParams

from _helpers import spd_matrix

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
