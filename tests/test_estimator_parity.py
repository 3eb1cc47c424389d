"""Parity with sklearn.mixture.GaussianMixture, step for step.

Both libraries run the same EM from the same starting point, so they must
agree to rounding.  Tolerances: the parameters go through the same formulas
in a different order (gaussmix accumulates statistics around a shift and in
chunks), so they differ by a modest multiple of machine epsilon per
iteration; EM is a contraction near a well-separated optimum and does not
amplify that much.  1e-8 relative (norm-wise, see ``relative_error``) leaves
orders of magnitude of headroom over the ~1e-13 actually seen, and is far
below any real algorithmic difference.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from gaussmix import GaussianMixture

from _helpers import (
    COVARIANCE_TYPES,
    DATA_KINDS,
    FITTED_ATTRIBUTES,
    INIT_METHODS,
    assert_params_close,
    make_data,
    relative_error,
    spd_matrix,
    user_init,
)

PARITY_RTOL = 1e-8


def fit_both(X, **kwargs):
    with warnings.catch_warnings():
        # Short runs may stop before convergence in both libraries alike.
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(**kwargs).fit(X)
        theirs = SkGaussianMixture(**kwargs).fit(X)
    return ours, theirs


def assert_same_fit(ours, theirs, rtol=PARITY_RTOL, skip_first_bound=False):
    assert_params_close(ours, theirs, rtol)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.converged_ == theirs.converged_
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=rtol)
    first = 1 if skip_first_bound else 0
    np.testing.assert_allclose(ours.lower_bounds_[first:], theirs.lower_bounds_[first:], rtol=rtol)
    # Types and memory layout too: code written against scikit-learn's
    # attributes (np.float64 bounds, C-ordered arrays handed to C code)
    # must not see a difference.
    assert type(ours.lower_bound_) is type(theirs.lower_bound_)
    assert [type(b) for b in ours.lower_bounds_] == [type(b) for b in theirs.lower_bounds_]
    for name in FITTED_ATTRIBUTES:
        assert getattr(ours, name).shape == getattr(theirs, name).shape
        assert getattr(ours, name).dtype == getattr(theirs, name).dtype
        assert getattr(ours, name).flags.c_contiguous == getattr(theirs, name).flags.c_contiguous


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("kind", DATA_KINDS)
@pytest.mark.parametrize("n_features", [1, 2, 10])
def test_parity_from_user_initialisation(covariance_type, kind, n_features):
    X = make_data(kind, n_features, seed=n_features)
    init = user_init(X, 3, covariance_type, seed=1)
    ours, theirs = fit_both(
        X, n_components=3, covariance_type=covariance_type, max_iter=25, tol=1e-6, **init
    )
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [1, 2, 7])
def test_parity_after_exactly_max_iter_iterations(covariance_type, max_iter):
    """tol=0 never converges: both run exactly max_iter steps."""
    X = make_data("overlapping", 3, seed=11)
    init = user_init(X, 3, covariance_type, seed=2)
    ours, theirs = fit_both(
        X, n_components=3, covariance_type=covariance_type, max_iter=max_iter, tol=0, **init
    )
    assert ours.n_iter_ == max_iter
    assert not ours.converged_
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("kind", DATA_KINDS)
@pytest.mark.parametrize("n_features", [1, 2, 10])
def test_parity_of_the_default_kmeans_initialisation(covariance_type, kind, n_features):
    """Same random_state: same k-means labels, same EM path, same n_iter_."""
    X = make_data(kind, n_features, seed=20 + n_features)
    ours, theirs = fit_both(
        X, n_components=3, covariance_type=covariance_type, random_state=7, max_iter=40
    )
    assert_same_fit(ours, theirs)


# scikit-learn's tied estimator sums X.T @ X over every row whatever its
# responsibility, which is right only when each row's responsibilities sum to
# one.  With one seed row per component ('k-means++', 'random_from_data') it
# starts from a covariance of the raw, uncentred data divided by
# n_components; gaussmix weights every row by its responsibility, as for the
# other covariance types, and starts from reg_covar * I (README, "Differences
# from scikit-learn").  Those two cases are tested in
# test_tied_start_from_seed_rows_is_the_weighted_estimate.
SEEDED_TIED = {("tied", "k-means++"), ("tied", "random_from_data")}
OTHER_INIT_CASES = [
    (c, i)
    for c in COVARIANCE_TYPES
    for i in ("k-means++", "random", "random_from_data")
    if (c, i) not in SEEDED_TIED
]


@pytest.mark.parametrize(("covariance_type", "init_params"), OTHER_INIT_CASES)
@pytest.mark.parametrize("kind", ["separated", "anisotropic"])
def test_parity_of_the_other_initialisations_with_the_same_random_state(
    covariance_type, init_params, kind
):
    """Each init method draws the same numbers as scikit-learn's.

    With 'k-means++' and 'random_from_data' scikit-learn starts from weights
    1/n_samples each, not normalised (its ``weights /= n_samples`` assumes
    responsibilities summing to one per row).  A constant factor on all
    weights leaves the responsibilities, hence every parameter, unchanged, but
    shifts the first recorded log-likelihood by log(n_samples/n_components):
    gaussmix records the log-likelihood of a proper mixture, so the first
    entry of ``lower_bounds_`` is left out of the comparison for those.
    """
    X = make_data(kind, 2, seed=3)
    ours, theirs = fit_both(
        X,
        n_components=3,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=7,
        max_iter=40,
    )
    one_hot = init_params in ("k-means++", "random_from_data")
    assert_same_fit(ours, theirs, skip_first_bound=one_hot)


@pytest.mark.parametrize(
    ("covariance_type", "init_params"),
    [(c, i) for c in COVARIANCE_TYPES for i in INIT_METHODS if (c, i) not in SEEDED_TIED],
)
def test_parity_of_the_initial_parameters(covariance_type, init_params):
    """max_iter=0 exposes the initialisation itself.

    For the one-row-per-component inits scikit-learn's initial weights are
    1/n_samples each and do not sum to one (see above); gaussmix's are those
    weights normalised.
    """
    X = make_data("overlapping", 3, seed=4)
    ours, theirs = fit_both(
        X,
        n_components=3,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=0,
        max_iter=0,
    )
    if init_params in ("kmeans", "random"):
        assert_params_close(ours, theirs, PARITY_RTOL)
        return
    # One row per component: its covariance is reg_covar alone.  scikit-learn
    # gets it as x**2 - 2 x**2 + x**2 ('diag', 'spherical'), which cancels to
    # ~eps * |x|**2 absolute; compare covariances to that accuracy.
    assert_params_close(ours, theirs, PARITY_RTOL, ["means_"])
    cancellation = 100 * np.finfo(np.float64).eps * np.max(X**2)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, rtol=0, atol=cancellation)
    assert np.sum(ours.weights_) == pytest.approx(1.0, rel=1e-12)
    expected_weights = theirs.weights_ / np.sum(theirs.weights_)
    np.testing.assert_allclose(ours.weights_, expected_weights, rtol=PARITY_RTOL)


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_tied_start_from_seed_rows_is_the_weighted_estimate(init_params):
    """One seed row per component: the same seeds and means as scikit-learn,
    and the tied covariance of rows weighted by their responsibilities, which
    is reg_covar * I since each component holds a single row."""
    X = make_data("separated", 2, seed=3)
    ours, theirs = fit_both(
        X,
        n_components=3,
        covariance_type="tied",
        init_params=init_params,
        random_state=7,
        max_iter=0,
    )
    np.testing.assert_allclose(ours.means_, theirs.means_, rtol=PARITY_RTOL)
    np.testing.assert_allclose(ours.covariances_, 1e-6 * np.eye(2), rtol=1e-9)
    fitted = GaussianMixture(
        3, covariance_type="tied", init_params=init_params, random_state=7
    ).fit(X)
    assert fitted.converged_
    assert np.all(np.isfinite(fitted.covariances_))
    assert np.all(np.linalg.eigvalsh(fitted.covariances_) > 1e-3)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_several_initialisations_start_with_scikit_learns(covariance_type):
    """With n_init > 1 the first start is scikit-learn's first start and the
    later ones are diversified (gaussmix.init.start_plan), so the best run is at
    least as good as scikit-learn's single start, to rounding."""
    X = make_data("overlapping", 2, seed=5)
    ours, theirs_one = fit_both(
        X, n_components=3, covariance_type=covariance_type, n_init=4, random_state=3
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs_one = SkGaussianMixture(
            n_components=3, covariance_type=covariance_type, random_state=3
        ).fit(X)
    assert ours.lower_bound_ >= theirs_one.lower_bound_ - PARITY_RTOL * abs(
        theirs_one.lower_bound_
    )


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_parity_of_max_iter_zero_with_several_initialisations(covariance_type, init_params):
    """No iterations, several inits: the last initialisation is kept, as in
    scikit-learn (its lower_bound_ is -inf, so none is better)."""
    X = make_data("overlapping", 2, seed=13)
    ours, theirs = fit_both(
        X, n_components=3, covariance_type=covariance_type, init_params=init_params,
        n_init=3, max_iter=0, random_state=0,
    )
    assert_params_close(ours, theirs, PARITY_RTOL, ["means_"])
    assert ours.lower_bound_ == theirs.lower_bound_ == -np.inf
    assert ours.n_iter_ == theirs.n_iter_ == 0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_parity_with_float32_input(covariance_type):
    """float32 data in both: same dtype out, agreement to float32 rounding.

    Each library computes in float32 in its own order and lands within ~5e-5
    (norm-wise) of the float64 fit of the same data: float32 eps (6e-8)
    amplified by the spread of component scales (0.3 to 3, i.e. 100 in
    variance) and 10 iterations.  The two errors need not cancel, so they
    may differ from each other by twice that; 3e-4 allows for it.
    """
    X = make_data("separated", 2, seed=6).astype(np.float32)
    init = {k: v.astype(np.float32) for k, v in user_init(X, 3, covariance_type, seed=3).items()}
    ours, theirs = fit_both(
        X, n_components=3, covariance_type=covariance_type, max_iter=10, tol=0, **init
    )
    for name in FITTED_ATTRIBUTES:
        assert getattr(ours, name).dtype == getattr(theirs, name).dtype == np.float32
    assert_params_close(ours, theirs, 3e-4)


# ------------------------------------------------------------------ inference
def same_parameters_as(sk, **kwargs):
    """A gaussmix mixture holding scikit-learn's fitted parameters (max_iter=0)."""
    return GaussianMixture(
        n_components=sk.n_components,
        covariance_type=sk.covariance_type,
        weights_init=sk.weights_,
        means_init=sk.means_,
        precisions_init=sk.precisions_,
        max_iter=0,
        **kwargs,
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [1, 3])
def test_inference_equals_scikit_learn_for_the_same_parameters(covariance_type, n_features):
    X = make_data("anisotropic", n_features, seed=8)
    sk = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    ours = same_parameters_as(sk).fit(X)
    # Parameters only went through precision -> Cholesky -> covariance.
    assert_params_close(ours, sk, 1e-10)

    X_new = make_data("overlapping", n_features, seed=9) * 4
    np.testing.assert_array_equal(ours.predict(X_new), sk.predict(X_new))
    # log-densities are O(1..100): 1e-10 relative covers the rounding of the
    # re-derived Cholesky factors and the different evaluation order.
    np.testing.assert_allclose(ours.score_samples(X_new), sk.score_samples(X_new), rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X_new), sk.predict_proba(X_new), atol=1e-10)
    assert ours.score(X_new) == pytest.approx(sk.score(X_new), rel=1e-10)
    assert ours.bic(X_new) == pytest.approx(sk.bic(X_new), rel=1e-10)
    assert ours.aic(X_new) == pytest.approx(sk.aic(X_new), rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("random_state", [0, 12345])
def test_sample_equals_scikit_learn_for_the_same_parameters_and_seed(
    covariance_type, random_state
):
    # Anisotropic clusters: distinct covariance eigenvalues, so the SVD inside
    # RandomState.multivariate_normal is stable under rounding of the inputs.
    X = make_data("anisotropic", 3, seed=10)
    sk = SkGaussianMixture(
        3, covariance_type=covariance_type, random_state=random_state
    ).fit(X)
    ours = same_parameters_as(sk, random_state=random_state).fit(X)
    for n in (1, 7, 500):
        X_ours, y_ours = ours.sample(n)
        X_sk, y_sk = sk.sample(n)
        np.testing.assert_array_equal(y_ours, y_sk)
        assert X_ours.shape == X_sk.shape == (n, 3)
        assert X_ours.dtype == X_sk.dtype
        # Same normal draws times covariance factors equal to ~1e-13.
        np.testing.assert_allclose(X_ours, X_sk, rtol=1e-8, atol=1e-8)


def test_parity_errors_are_far_below_the_tolerance():
    """A canary: the errors actually reached are tiny, not just under 1e-8."""
    X = make_data("separated", 2, seed=12)
    worst = 0.0
    for covariance_type in COVARIANCE_TYPES:
        init = user_init(X, 3, covariance_type, seed=4)
        ours, theirs = fit_both(X, n_components=3, covariance_type=covariance_type, **init)
        for name in FITTED_ATTRIBUTES:
            worst = max(worst, relative_error(getattr(ours, name), getattr(theirs, name)))
    # ~1e-13 is typical; 1e4 ulps (2e-12) still means rounding only, no
    # algorithmic difference, while leaving room for harmless reordering.
    assert worst < 1e4 * np.finfo(np.float64).eps


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_assembled_from_precision_factors_predicts_as_scikit_learn(covariance_type):
    """Inference needs weights_, means_ and precisions_cholesky_ only, as in scikit-learn."""
    X = make_data("overlapping", 3, seed=41)
    fitted = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    ours, theirs = GaussianMixture(3, covariance_type=covariance_type), SkGaussianMixture(
        3, covariance_type=covariance_type
    )
    for estimator in (ours, theirs):
        estimator.weights_ = fitted.weights_
        estimator.means_ = fitted.means_
        estimator.precisions_cholesky_ = fitted.precisions_cholesky_
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-12)
    np.testing.assert_allclose(ours.bic(X), theirs.bic(X), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
@pytest.mark.parametrize("with_covariances", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lower_triangular_precision_factors_set_by_hand_predict_as_scikit_learn(
    covariance_type, with_covariances, dtype
):
    """``np.linalg.cholesky(np.linalg.inv(cov))`` is lower-triangular, and
    scikit-learn's inference takes it.  The whitening reads only the upper
    triangle (D = 12: the rows were scored against another covariance,
    1.7 nats off per row)."""
    rng = np.random.default_rng(5)
    n_features, n_components = 12, 2
    covariances = np.stack([spd_matrix(rng, n_features) for _ in range(n_components)])
    if covariance_type == "tied":
        covariances = covariances[0]
    lower = np.linalg.cholesky(np.linalg.inv(covariances))
    means = rng.normal(size=(n_components, n_features))
    X = rng.normal(size=(50, n_features)) * 2
    ours, theirs = (cls(n_components, covariance_type=covariance_type)
                    for cls in (GaussianMixture, SkGaussianMixture))
    for estimator in (ours, theirs):
        estimator.weights_ = np.array([0.4, 0.6])
        estimator.means_ = means
        estimator.precisions_cholesky_ = lower
        if with_covariances:
            estimator.covariances_ = covariances
    ours.precisions_cholesky_ = lower.astype(dtype)
    expected = theirs.score_samples(X)
    # float32 factors: their rounding, eps32 relative, over log-densities of O(30).
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours.score_samples(X), expected, rtol=rtol)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.precisions_cholesky_ is not None  # the attribute set is left as it was
    assert np.any(np.tril(ours.precisions_cholesky_, -1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predict_proba_has_scikit_learns_exact_zeros(dtype):
    """Far from a component its responsibility underflows to 0, as in scikit-learn."""
    rng = np.random.RandomState(44)
    X = np.vstack([rng.randn(200, 2), rng.randn(200, 2) + 50]).astype(dtype)
    ours = GaussianMixture(2, random_state=0).fit(X).predict_proba(X)
    theirs = SkGaussianMixture(2, random_state=0).fit(X).predict_proba(X)
    assert ours.dtype == dtype
    assert np.count_nonzero(ours == 0) == np.count_nonzero(theirs == 0) > 0
    np.testing.assert_array_equal(ours == 0, theirs == 0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5 if dtype == np.float32 else 1e-10)
