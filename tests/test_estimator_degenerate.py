"""Degenerate data: duplicates, constant features, identical points, components
that lose all their data, and singular covariances without regularisation."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from gaussmix import EmptyComponentWarning, GaussianMixture

from _helpers import COVARIANCE_TYPES, FITTED_ATTRIBUTES, INIT_METHODS, make_data


def assert_finite_fit(gm):
    for name in FITTED_ATTRIBUTES:
        value = getattr(gm, name)
        assert np.all(np.isfinite(value)), name
    assert np.isfinite(gm.lower_bound_)
    assert gm.weights_.sum() == pytest.approx(1.0, rel=1e-10)
    assert np.all(gm.weights_ >= 0)


def quiet_fit(gm, X, **kwargs):
    """Fit, tolerating the warnings degenerate data legitimately cause."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", EmptyComponentWarning)
        return gm.fit(X, **kwargs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_duplicated_points(covariance_type, init_params):
    rng = np.random.RandomState(0)
    X = np.repeat(rng.standard_normal((8, 2)), 12, axis=0)
    gm = quiet_fit(GaussianMixture(3, covariance_type=covariance_type, init_params=init_params, random_state=0), X)
    assert_finite_fit(gm)
    proba = gm.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_constant_feature(covariance_type):
    X = make_data("separated", 3, seed=1)
    X[:, 1] = 4.2
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert_finite_fit(gm)
    np.testing.assert_allclose(gm.means_[:, 1], 4.2, rtol=1e-12)
    # The constant feature's variance is the regularisation alone (for
    # 'spherical' it is averaged in with the others).
    if covariance_type == "full":
        np.testing.assert_allclose(gm.covariances_[:, 1, 1], gm.reg_covar, rtol=1e-6)
    elif covariance_type == "tied":
        assert gm.covariances_[1, 1] == pytest.approx(gm.reg_covar, rel=1e-6)
    elif covariance_type == "diag":
        np.testing.assert_allclose(gm.covariances_[:, 1], gm.reg_covar, rtol=1e-6)
    # The other features are unaffected: same fit as without the column,
    # up to the labels.
    reference = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X[:, [0, 2]])
    if covariance_type == "diag":
        order = np.argsort(gm.means_[:, 0])
        ref_order = np.argsort(reference.means_[:, 0])
        np.testing.assert_allclose(
            gm.covariances_[order][:, [0, 2]], reference.covariances_[ref_order], rtol=1e-8
        )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("init_params", INIT_METHODS)
@pytest.mark.parametrize("n_components", [2, 4])
def test_all_identical_points_with_several_components(covariance_type, init_params, n_components):
    X = np.full((30, 3), 7.5)
    gm = quiet_fit(
        GaussianMixture(
            n_components, covariance_type=covariance_type, init_params=init_params, random_state=0
        ),
        X,
    )
    assert_finite_fit(gm)
    np.testing.assert_allclose(gm.means_, 7.5, rtol=1e-12)
    np.testing.assert_allclose(gm.score_samples(X), gm.score_samples(X[:1])[0], rtol=1e-12)
    assert np.all(np.isfinite(gm.score_samples(X)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_two_distinct_points_many_components(covariance_type):
    X = np.repeat([[0.0, 0.0], [1.0, 1.0]], 10, axis=0)
    gm = quiet_fit(GaussianMixture(4, covariance_type=covariance_type, random_state=0), X)
    assert_finite_fit(gm)


def far_mean_problem(covariance_type, max_iter=5):
    X = make_data("separated", 2, seed=2)
    means_init = np.array([X.mean(axis=0), [1e3, 1e3]])
    return X, GaussianMixture(
        2, covariance_type=covariance_type, means_init=means_init, max_iter=max_iter, random_state=0
    )


# mclust's constrained models, whose M-steps divide by every component's
# volume: the components that keep data are estimated alone.
CONSTRAINED = ("EII", "EEI", "VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES + CONSTRAINED)
def test_a_component_that_empties_is_reseeded_with_a_warning(covariance_type):
    X, gm = far_mean_problem(covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(EmptyComponentWarning) as record:
            gm.fit(X)
    messages = [str(w.message) for w in record if w.category is EmptyComponentWarning]
    assert messages
    # The message says which component, when, what was done and what to do.
    assert "Component 1 of 2" in messages[0]
    assert "no data left" in messages[0]
    assert "iteration 1" in messages[0]
    assert "re-seeded" in messages[0]
    assert "decreasing n_components" in messages[0]
    assert_finite_fit(gm)
    # Re-seeded inside the data, where it now explains some of it.
    assert np.all(np.abs(gm.means_) < 50)
    assert np.all(gm.weights_ > 1e-3)
    # The warning is raised from the user's call, not from library internals.
    assert record[0].filename == __file__


def _one_step_reseeding(X, covariance_type, means_init):
    """One EM step from ``means_init``, which must empty (and re-seed) a component."""
    gm = GaussianMixture(len(means_init), covariance_type=covariance_type,
                         means_init=np.array(means_init), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(EmptyComponentWarning):
            gm.fit(X)
    return gm


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_reseeding_claims_the_worst_explained_sample(covariance_type):
    """One outlier far from both initial means: the emptied component takes it."""
    X = make_data("separated", 2, seed=3)
    X = np.vstack([X, [[60.0, -60.0]]])
    gm = _one_step_reseeding(X, covariance_type, [X[:-1].mean(axis=0), [1e4, 1e4]])
    np.testing.assert_array_equal(gm.means_[1], [60.0, -60.0])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES + CONSTRAINED)
def test_a_reseeded_component_left_with_one_row_fits_on(covariance_type):
    """The re-seeded component keeps its one outlier: zero scatter, reg_covar its floor.

    mclust's models with shared shapes or orientations failed here as
    ill-defined (its zero volume divided the shared shape).
    """
    X = make_data("separated", 2, seed=3)
    outlier = [60.0, -60.0]
    X = np.vstack([X, [outlier]])
    gm = GaussianMixture(2, covariance_type=covariance_type, max_iter=20, random_state=0,
                         means_init=np.array([X[:-1].mean(axis=0), [1e4, 1e4]]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(EmptyComponentWarning):
            gm.fit(X)
    assert_finite_fit(gm)
    # The mean is the centre plus an offset: rounding of a few eps of 60.
    np.testing.assert_allclose(gm.means_[1], outlier, rtol=1e-13)
    np.testing.assert_array_equal(gm.predict(X), np.r_[np.zeros(len(X) - 1), 1])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_components_that_empty_together_are_reseeded_at_distinct_rows(covariance_type):
    # Two outliers and two initial means far from every row: both emptied
    # components are re-seeded in the same M-step, one at each outlier,
    # instead of both at the worst one (exact duplicates ever after).
    X = make_data("separated", 2, seed=3)
    outliers = np.array([[60.0, -60.0], [-70.0, 50.0]])
    X = np.vstack([X[:150], outliers[:1], X[150:], outliers[1:]])
    gm = _one_step_reseeding(X, covariance_type, [X.mean(axis=0), [1e4, 1e4], [-1e4, 1e4]])
    reseeded = sorted(map(tuple, gm.means_[1:]))
    assert reseeded == sorted(map(tuple, outliers))


def test_no_warning_on_ordinary_data():
    X = make_data("separated", 2, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for covariance_type in COVARIANCE_TYPES:
            GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)


# ----------------------------------------------------- reg_covar = 0
SINGULAR = {
    "constant-feature": np.column_stack([np.linspace(0, 1, 30), np.full(30, 2.0)]),
    "identical-points": np.full((30, 2), 3.0),
    "collinear": np.column_stack([np.linspace(0, 1, 30), 2 * np.linspace(0, 1, 30)]),
}
# Exactly collinear data are singular too, but rounding may leave their
# covariance numerically positive-definite (Cholesky then succeeds with a
# huge precision), so they are not required to raise.
SINGULAR_FOR = {
    "full": ["constant-feature", "identical-points"],
    "tied": ["constant-feature", "identical-points"],
    "diag": ["constant-feature", "identical-points"],
    "spherical": ["identical-points"],
}


@pytest.mark.parametrize(
    "covariance_type, data",
    [(c, d) for c in COVARIANCE_TYPES for d in SINGULAR_FOR[c]],
)
def test_singular_data_without_regularisation_names_the_remedy(covariance_type, data):
    gm = GaussianMixture(1, covariance_type=covariance_type, reg_covar=0.0, random_state=0)
    with pytest.raises(ValueError, match="ill-defined empirical covariance.*increase reg_covar"):
        gm.fit(SINGULAR[data])
    assert not hasattr(gm, "means_")


def test_one_row_components_without_regularisation_raise_where_scikit_learn_keeps_noise():
    """scikit-learn's gh-18216 start: two components keep one row each after one
    step, where scikit-learn fits variances of 3.6e-16 and 9.5e-16 (noise)."""
    X = np.random.RandomState(0).uniform(size=(30, 3))
    means_init = [
        [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
        [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
        [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
        [0.18578301420435747, 0.5531158970919143, 0.19388943970532435],
        [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
        [0.609279894978321, 0.7929063819678847, 0.9620097270828052],
    ]
    precisions_init = [999999.999604483, 999999.9990869573, 553.7603944542167,
                       204.78596008931834, 15.867423501783637, 85.4595728389735]
    weights_init = [1 / 30, 1 / 30, 2 / 30, 2 / 30, 21 / 30, 3 / 30]
    kwargs = dict(covariance_type="spherical", n_components=6, means_init=means_init,
                  weights_init=weights_init, precisions_init=precisions_init, max_iter=1)
    gm = GaussianMixture(reg_covar=0, **kwargs)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        gm.fit(X)
    assert not hasattr(gm, "means_")
    # The same start with the default reg_covar: the two keep their rows.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = GaussianMixture(**kwargs).fit(X)
    np.testing.assert_allclose(fitted.covariances_[:2], 1e-6, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_singular_float32_data_suggests_float64(covariance_type):
    gm = GaussianMixture(1, covariance_type=covariance_type, reg_covar=0.0)
    with pytest.raises(ValueError, match="increase reg_covar.*float64"):
        gm.fit(SINGULAR["identical-points"].astype(np.float32))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_same_singular_data_fit_with_default_regularisation(covariance_type):
    for X in SINGULAR.values():
        gm = quiet_fit(GaussianMixture(1, covariance_type=covariance_type), X)
        assert_finite_fit(gm)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_tiny_scale_data_fit_without_nan(covariance_type):
    """Data of scale 1e-5 (variances 1e-10, below reg_covar): finite fit."""
    X = make_data("separated", 2, seed=5) * 1e-5
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert_finite_fit(gm)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_huge_scale_data_fit_without_nan(covariance_type):
    X = make_data("separated", 2, seed=6) * 1e8
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert_finite_fit(gm)
    assert np.all(np.isfinite(gm.score_samples(X)))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_identical_float32_rows_far_from_the_origin_converge_as_float64_ones(covariance_type):
    # float32 numbers near 1e8 are 8 apart: a float64 centre between two of
    # them once named a point 4 away from the rows' own, which beside
    # variances of reg_covar (1e-6) made EM crawl for hundreds of iterations.
    fits = {}
    for dtype in (np.float32, np.float64):
        X = np.full((300, 3), 1e8, dtype=dtype)
        with warnings.catch_warnings():
            # Three components on one point: k-means finds one cluster, and
            # the empty components are re-seeded.
            warnings.simplefilter("ignore", EmptyComponentWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[dtype] = GaussianMixture(
                3, covariance_type=covariance_type, random_state=0, max_iter=20
            ).fit(X)
    got, wanted = fits[np.float32], fits[np.float64]
    assert got.converged_ and got.n_iter_ <= wanted.n_iter_ + 2
    # Log-densities of about 18 (variances 1e-6) in float32: a few of its
    # roundings of those terms.
    assert got.lower_bound_ == pytest.approx(wanted.lower_bound_, rel=1e-5)
    assert got.score(got.means_[:1].astype(np.float32)) == pytest.approx(got.lower_bound_, rel=1e-5)
