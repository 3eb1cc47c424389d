"""sample_weight as row multiplicities."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from gaussmix import EmptyComponentWarning, GaussianMixture

from _helpers import (
    COVARIANCE_TYPES,
    assert_params_close,
    assert_same_mixture,
    make_data,
    user_init,
)

# From a common start the weighted and the repeated fit run the same EM; the
# sums differ only in order and grouping (w * x once vs x added w times), a
# few ulps per statistic.  1e-10 relative allows for 30 iterations of that.
WEIGHT_RTOL = 1e-10


def fit(X, sample_weight=None, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(**kwargs).fit(X, sample_weight=sample_weight)


def weighted_problem(seed=0, kind="overlapping", n_features=2):
    X = make_data(kind, n_features, n_per_component=40, seed=seed)
    rng = np.random.RandomState(seed)
    weights = rng.randint(0, 4, size=len(X))
    weights[:5] = [0, 1, 2, 3, 5]
    return X, weights


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [1, 3])
def test_integer_weights_equal_repeated_rows(covariance_type, n_features):
    X, w = weighted_problem(seed=1, n_features=n_features)
    init = user_init(X, 3, covariance_type, seed=0)
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=30, tol=0, **init)
    weighted = fit(X, w, **kwargs)
    repeated = fit(np.repeat(X, w, axis=0), **kwargs)
    assert_params_close(weighted, repeated, WEIGHT_RTOL)
    assert weighted.n_iter_ == repeated.n_iter_
    np.testing.assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=WEIGHT_RTOL)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_zero_weight_equals_dropping_the_row(covariance_type):
    X, _ = weighted_problem(seed=2)
    w = np.ones(len(X))
    w[::7] = 0.0
    X_far = X.copy()
    X_far[::7] *= 1e3  # dropped rows may hold anything: they must not matter
    init = user_init(X[w > 0], 3, covariance_type, seed=1)
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=30, tol=0, **init)
    weighted = fit(X_far, w, **kwargs)
    dropped = fit(X[w > 0], **kwargs)
    assert_params_close(weighted, dropped, WEIGHT_RTOL)
    np.testing.assert_allclose(weighted.lower_bounds_, dropped.lower_bounds_, rtol=WEIGHT_RTOL)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_unit_weights_equal_no_weights(covariance_type):
    X, _ = weighted_problem(seed=3)
    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=0)
    weighted = fit(X, np.ones(len(X)), **kwargs)
    plain = fit(X, **kwargs)
    assert_params_close(weighted, plain, WEIGHT_RTOL)
    assert weighted.n_iter_ == plain.n_iter_


@pytest.mark.parametrize("weights", ["ones", "threes", "zeros dropped"])
def test_random_from_data_draws_the_rows_it_draws_without_weights(weights):
    """numpy's choice with p=, even uniform, draws other rows: unit weights
    started elsewhere (12 against 30 iterations), and zero weights elsewhere
    than the rows dropped.  Equal weights draw as none, over the rows kept."""
    X, _ = weighted_problem(seed=3)
    w = {"ones": np.ones(len(X)), "threes": np.full(len(X), 3.0),
         "zeros dropped": (np.arange(len(X)) % 3 > 0).astype(float)}[weights]
    kwargs = dict(n_components=3, init_params="random_from_data", random_state=0, max_iter=0)
    weighted = fit(X, w, **kwargs)
    plain = fit(X[w > 0], **kwargs)
    assert_params_close(weighted, plain, WEIGHT_RTOL)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("scale", [1e-3, 0.5, 7.0, 1e4])
def test_scaling_all_weights_leaves_the_fit_unchanged(covariance_type, scale):
    """Only relative multiplicities matter, also through the k-means init.

    Scaling multiplies every sum by the same factor; the M-step divides it
    out, leaving rounding only.
    """
    X, w = weighted_problem(seed=4)
    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=0, tol=1e-8)
    base = fit(X, w, **kwargs)
    scaled = fit(X, w * scale, **kwargs)
    assert_params_close(scaled, base, 1e-8)
    assert scaled.lower_bound_ == pytest.approx(base.lower_bound_, rel=1e-8)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_weights_equal_repeats_with_the_default_random_init_on_clear_clusters(
    covariance_type, init_params
):
    """With a random initialisation the weighted and the repeated data draw
    different random numbers (the repeated data have more rows), so the starts
    differ; on well separated clusters both reach the same optimum, which is
    checked here after convergence (up to relabelling of the components).
    Bit-for-bit equality needs a common start (tests above).
    """
    X, w = weighted_problem(seed=5, kind="separated")
    kwargs = dict(
        n_components=3,
        covariance_type=covariance_type,
        random_state=0,
        tol=1e-10,
        init_params=init_params,
        max_iter=500,
    )
    weighted = fit(X, w, **kwargs)
    repeated = fit(np.repeat(X, w, axis=0), **kwargs)
    # Both converged to |change| < 1e-10 in mean log-likelihood: parameters
    # within ~sqrt(1e-10) of the optimum in the worst case, far closer for a
    # contraction this fast; 1e-6 relative.
    assert_same_mixture(weighted, repeated, 1e-6)
    assert weighted.lower_bound_ == pytest.approx(repeated.lower_bound_, rel=1e-8)


def test_zero_weight_rows_are_never_chosen_as_seeds():
    """'random_from_data' and 'k-means++' pick rows; weightless rows are absent."""
    X, _ = weighted_problem(seed=6, kind="separated")
    X = X.copy()
    w = np.ones(len(X))
    w[::2] = 0.0
    X[::2] = 1e6  # absurd rows, weightless
    for init_params in ("random_from_data", "k-means++", "kmeans"):
        for seed in range(5):
            gm = GaussianMixture(
                3, init_params=init_params, random_state=seed, max_iter=0
            ).fit(X, sample_weight=w)
            assert np.all(np.abs(gm.means_) < 100), (init_params, seed)


def test_weighted_fit_predict_and_scores_are_consistent():
    X, w = weighted_problem(seed=7)
    gm = GaussianMixture(3, random_state=0)
    labels = gm.fit_predict(X, sample_weight=w)
    np.testing.assert_array_equal(labels, gm.predict(X))
    # lower_bound_ is the weighted mean log-likelihood of the run's last
    # E-step, so it is close to (not equal to) the score of the final fit.
    weighted_score = np.average(gm.score_samples(X), weights=w)
    assert weighted_score == pytest.approx(gm.lower_bound_, abs=10 * gm.tol)


def test_fractional_weights_are_accepted():
    X, _ = weighted_problem(seed=8)
    rng = np.random.RandomState(8)
    w = rng.uniform(0.1, 2.5, size=len(X))
    gm = GaussianMixture(3, random_state=0).fit(X, sample_weight=w)
    assert np.all(np.isfinite(gm.means_))
    assert gm.weights_.sum() == pytest.approx(1.0, rel=1e-12)


def test_scalar_sample_weight_means_equal_weights():
    X, _ = weighted_problem(seed=9)
    a = GaussianMixture(3, random_state=0).fit(X, sample_weight=3.0)
    b = GaussianMixture(3, random_state=0).fit(X)
    assert_params_close(a, b, 1e-10)


# ------------------------------------------------------------ weight scale
@pytest.mark.parametrize("factor", [1e-16, 1e-30, 1e306])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_common_factor_of_the_weights_changes_nothing(covariance_type, factor):
    """Weights are relative: 1e-16 per row, or 1e306 (whose sum overflows), fits as one.

    The M-step's floor on component totals is sized for weights of about
    one; tiny weights used to be swamped by it (no warning, a worse fit).
    """
    X, weights = weighted_problem(seed=21)
    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=0)
    plain = fit(X, weights, **kwargs)
    scaled = fit(X, weights * factor, **kwargs)
    assert_params_close(scaled, plain, rtol=WEIGHT_RTOL)
    assert scaled.lower_bound_ == pytest.approx(plain.lower_bound_, rel=WEIGHT_RTOL)


def test_float32_weights_far_below_one_fit_as_weights_of_one():
    """In float32 the floor is 1.2e-6: weights of 1e-7 per row used to move the means by 0.5."""
    X, weights = weighted_problem(seed=22)
    X32 = X.astype(np.float32)
    plain = fit(X32, weights, n_components=3, random_state=0)
    scaled = fit(X32, weights * 1e-7, n_components=3, random_state=0)
    # float32 rounding of the weights and of the statistics: about 1e-7 relative.
    np.testing.assert_allclose(scaled.means_, plain.means_, rtol=1e-5, atol=1e-5)
    assert scaled.lower_bound_ == pytest.approx(plain.lower_bound_, rel=1e-5)


def test_rows_of_weight_zero_do_not_move_the_kmeans_start():
    """A zero-weight row far away is not in the data: the fit is the fit without it."""
    X, _ = weighted_problem(seed=23)
    with_outlier = np.vstack([X, [[1e12, 1e12]]])
    weights = np.r_[np.ones(X.shape[0]), 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no re-seeding, no convergence trouble
        ours = GaussianMixture(3, random_state=0).fit(with_outlier, sample_weight=weights)
    reference = GaussianMixture(3, random_state=0).fit(X)
    assert_params_close(ours, reference, rtol=WEIGHT_RTOL)


def test_weights_spanning_more_than_float64s_range_are_kept_as_given():
    """No common factor keeps 1e-200 and 1e200 both representable: none is applied."""
    X, _ = weighted_problem(seed=24)
    weights = np.full(X.shape[0], 1e-200)
    weights[:2] = 1e200
    with warnings.catch_warnings():
        # Two rows hold all the weight: the third component empties, as it should.
        warnings.simplefilter("ignore", EmptyComponentWarning)
        fitted = fit(X, weights, n_components=3, random_state=0)
    assert np.all(np.isfinite(fitted.means_)) and np.all(fitted.weights_ > 0)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "VEV"])
def test_a_reseeded_component_takes_its_rows_share_of_the_weight(covariance_type):
    """Re-seeding from a start far from the data: unit, tripled and normalised
    weights fit alike (its starting weight was one over the weights' sum)."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(50, 2), rng.randn(50, 2) + [6, 0], rng.randn(50, 2) + [0, 6]])
    precisions = np.full((3, 2), 0.01) if covariance_type == "diag" else np.array(
        [np.eye(2)] * 3
    ) * 0.01
    start = dict(
        means_init=[[0, 0], [6, 0], [100, 100]], weights_init=[0.4, 0.4, 0.2],
        precisions_init=precisions,
    )
    fits = []
    for weights in (np.ones(len(X)), np.full(len(X), 3.0), np.full(len(X), 1 / len(X))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with pytest.warns(EmptyComponentWarning):
                fits.append(GaussianMixture(
                    3, covariance_type=covariance_type, max_iter=3, tol=0, **start
                ).fit(X, sample_weight=weights))
    for other in fits[1:]:
        # Weights scaled by a power of two inside: the sums round alike.
        assert other.lower_bound_ == pytest.approx(fits[0].lower_bound_, rel=1e-12)
        np.testing.assert_allclose(other.weights_, fits[0].weights_, rtol=1e-10)
        np.testing.assert_allclose(other.means_, fits[0].means_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype, far", [(np.float64, 1e160), (np.float32, 1e20)])
def test_a_zero_weight_row_beyond_the_range_of_its_squares_is_dropped(dtype, far):
    """Its log-density is -inf and its products overflow: 0 * inf made the fit NaN."""
    X, _ = weighted_problem(seed=5)
    X = X.astype(dtype)
    X_far = np.vstack([X, [[far, -far]]]).astype(dtype)
    w = np.r_[np.ones(len(X)), 0.0]
    init = user_init(X, 3, "full", seed=1)
    kwargs = dict(n_components=3, covariance_type="full", max_iter=10, tol=0, **init)
    weighted = fit(X_far, w, **kwargs)
    dropped = fit(X, **kwargs)
    assert_params_close(weighted, dropped, WEIGHT_RTOL if dtype == np.float64 else 1e-5)
    # A stream drops it too.
    streamed = GaussianMixture(3, covariance_type="full", **init)
    streamed.partial_fit(X_far, sample_weight=w)
    reference = GaussianMixture(3, covariance_type="full", **init).partial_fit(X)
    np.testing.assert_allclose(streamed.means_, reference.means_, rtol=1e-5)


@pytest.mark.parametrize("init_params", ["kmeans", "hierarchical", "random_from_data"])
def test_zero_weight_rows_leave_every_start_as_without_them(init_params):
    """Standardisation, draws and statistics of the starts see only weighted rows."""
    # Elongated clusters, where the second start's standardised features
    # decide its k-means (a row far out rescaled them).
    rng = np.random.RandomState(23)
    X = np.vstack([rng.randn(60, 2) * [3, 1], rng.randn(60, 2) * [3, 1] + [0, 4],
                   rng.randn(40, 2) + [8, 2]])
    X_more = np.vstack([X[:50], [[0.0, 1e4]], X[50:], [[-3e3, 2e3]]])
    w = np.ones(len(X_more))
    w[[50, len(X_more) - 1]] = 0.0
    kwargs = dict(n_components=3, n_init=2, init_params=init_params, random_state=23)
    weighted = fit(X_more, w, **kwargs)
    dropped = fit(X, **kwargs)
    assert_params_close(weighted, dropped, WEIGHT_RTOL)
    assert weighted.lower_bound_ == pytest.approx(dropped.lower_bound_, rel=WEIGHT_RTOL)


@pytest.mark.parametrize(
    "dtype, tiny, huge", [(np.float64, 5e-324, 1e308), (np.float32, 1e-320, 1e50)]
)
def test_weights_beyond_the_datas_range_fit_as_the_negligible_ones_dropped(dtype, tiny, huge):
    """Kept as given, the large weights overflowed their sum or their float32 cast."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(20, 2), rng.randn(20, 2) + 5]).astype(dtype)
    weights = np.r_[tiny, np.full(len(X) - 1, huge)]
    dropped = weights.copy()
    dropped[0] = 0.0
    kwargs = dict(n_components=2, random_state=0)
    fitted = fit(X, weights, **kwargs)
    reference = fit(X, dropped, **kwargs)
    assert_params_close(fitted, reference, WEIGHT_RTOL if dtype == np.float64 else 1e-5)


def test_too_few_rows_within_float64s_range_of_the_largest_weight_are_refused():
    X, _ = weighted_problem(seed=7)
    weights = np.full(len(X), 5e-324)
    weights[:2] = 1e308
    weights[2:10] = 1e300  # the sum overflows
    with pytest.raises(ValueError, match="spans more than float64's range: only 10 rows"):
        GaussianMixture(11).fit(X, sample_weight=weights)
