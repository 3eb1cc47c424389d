"""Covariance models: registry, M-step, precision factors, densities, sampling."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gaussmix import GaussianMixture, covariance
from gaussmix._covariance_numerics import triangular_inverse
from gaussmix.covariance import (
    CovarianceModel,
    DiagCovariance,
    covariance_model_names,
    get_covariance_model,
    register_covariance_model,
)
from gaussmix.em import log_prob_norm_and_labels, maximization, statistics_from_resp
from gaussmix.params import MixtureParams

from _helpers import COVARIANCE_TYPES, full_covariances, spd_matrix

K, D = 3, 4


def random_covariances(covariance_type, rng, n_components=K, n_features=D):
    if covariance_type == "full":
        return np.stack([spd_matrix(rng, n_features) for _ in range(n_components)])
    if covariance_type == "tied":
        return spd_matrix(rng, n_features)
    if covariance_type == "diag":
        return rng.uniform(0.2, 3.0, size=(n_components, n_features))
    return rng.uniform(0.2, 3.0, size=n_components)


# ---------------------------------------------------------------- registry
def test_registry_holds_the_four_scikit_learn_types():
    # scikit-learn's four names come first; mclust's models follow them.
    assert covariance_model_names()[:4] == COVARIANCE_TYPES
    for name in COVARIANCE_TYPES:
        model = get_covariance_model(name)
        assert isinstance(model, CovarianceModel)
        assert model.name == name


@pytest.mark.parametrize("name", ["bogus", "Full", None, 3])
def test_unknown_covariance_type_names_the_valid_options(name):
    with pytest.raises(ValueError, match="Unknown covariance_type.*'full'.*'spherical'"):
        get_covariance_model(name)


def test_registering_a_taken_name_is_refused():
    with pytest.raises(ValueError, match="'diag' is already registered"):
        register_covariance_model(DiagCovariance())


def test_registering_a_new_model_makes_it_available(monkeypatch):
    monkeypatch.setattr(covariance, "_REGISTRY", dict(covariance._REGISTRY))

    class Isotropic(DiagCovariance):
        name = "isotropic-test"

    register_covariance_model(Isotropic())
    assert "isotropic-test" in covariance_model_names()
    assert isinstance(get_covariance_model("isotropic-test"), Isotropic)


# -------------------------------------------------------------- parameters
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_parameter_shape_and_count_match_scikit_learn(covariance_type):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((60, D))
    sk = SkGaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(X)
    model = get_covariance_model(covariance_type)
    assert model.parameter_shape(K, D) == sk.covariances_.shape
    assert model.n_parameters(K, D) == sk._n_parameters()


# ------------------------------------------------------------------ M-step
def direct_weighted_covariances(X, wr, covariance_type, reg):
    """The M-step by definition, in float64 with two-pass centring."""
    n_components = wr.shape[1]
    n_features = X.shape[1]
    means = wr.T @ X / wr.sum(axis=0)[:, None]
    direct = np.stack(
        [
            (wr[:, k, None] * (X - means[k])).T @ (X - means[k]) / wr[:, k].sum()
            for k in range(n_components)
        ]
    )
    eye = np.eye(n_features)
    if covariance_type == "full":
        return means, direct + reg * eye
    if covariance_type == "tied":
        return means, np.tensordot(wr.sum(axis=0), direct, axes=1) / wr.sum() + reg * eye
    if covariance_type == "diag":
        return means, np.diagonal(direct, axis1=1, axis2=2) + reg
    return means, np.trace(direct, axis1=1, axis2=2) / n_features + reg


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("separation", [0.0, 3.0, 1e3, 1e6])
@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_m_step_from_responsibilities_is_the_weighted_covariance(
    covariance_type, separation, offset
):
    """Statistics, however they are accumulated, give the weighted covariance.

    Components ``separation`` apart (unit spread) and the whole data set at
    ``offset`` from the origin: the accumulation must not cancel in either.
    """
    rng = np.random.RandomState(1)
    n = 90
    labels = np.arange(n) % K
    X = rng.standard_normal((n, D)) * [1.0, 2.0, 0.5, 1.5]
    X[:, 0] += separation * labels
    X += offset
    resp = rng.dirichlet(np.ones(K) * 0.3, size=n)
    resp[np.arange(n), labels] += 3.0
    resp /= resp.sum(axis=1, keepdims=True)
    weights = rng.uniform(0.5, 2.0, size=n)
    model = get_covariance_model(covariance_type)
    reg = 1e-3
    stats = statistics_from_resp(model, X, weights, resp)
    params, reseeded = maximization(model, stats, reg, reseed_empty=False)
    assert reseeded == []

    wr = resp * weights[:, None]
    means, expected = direct_weighted_covariances(X - offset, wr, covariance_type, reg)
    assert params.covariances.shape == model.parameter_shape(K, D)
    # Rounding of the data themselves: eps * |X| absolute, squared relative
    # to the unit spread for the soft responsibilities that mix far-apart
    # rows ('tied', and the tails of every component).  rtol 1e-9 plus that.
    scale = 1.0 + separation * K
    atol = 1e3 * np.finfo(np.float64).eps * scale**2
    np.testing.assert_allclose(params.covariances, expected, rtol=1e-9, atol=atol)
    np.testing.assert_allclose(params.means - offset, means, rtol=0, atol=1e-9 * (scale + offset))
    np.testing.assert_allclose(params.weights, wr.sum(axis=0) / wr.sum(), rtol=1e-12)
    if covariance_type in ("full", "tied"):
        np.testing.assert_array_equal(params.covariances, np.swapaxes(params.covariances, -1, -2))


# ------------------------------------------------------- precision factors
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_cholesky_factors_the_inverse_covariance(covariance_type):
    rng = np.random.RandomState(2)
    model = get_covariance_model(covariance_type)
    covs = random_covariances(covariance_type, rng)
    chol = model.precision_cholesky(covs)
    assert chol.shape == covs.shape
    precisions = model.precisions_from_cholesky(chol)
    full_cov = full_covariances(covs, covariance_type, K, D)
    full_prec = full_covariances(precisions, covariance_type, K, D)
    # Condition numbers here are < 20: inverse round trips hold to ~1e-13.
    for c, p in zip(full_cov, full_prec):
        np.testing.assert_allclose(p @ c, np.eye(D), atol=1e-12)
    if covariance_type in ("full", "tied"):
        for u in chol.reshape(-1, D, D):
            assert np.array_equal(u, np.triu(u)), "factor must be upper-triangular"
            assert np.all(np.diag(u) > 0)
    else:
        assert np.all(chol > 0)
    back = model.covariances_from_precisions_cholesky(chol)
    np.testing.assert_allclose(back, covs, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("shape", [(5, 5), (4, 5, 5), (2, 3, 6, 6)])
def test_triangular_inverse_inverts_each_factor_and_keeps_its_triangle(dtype, lower, shape):
    rng = np.random.RandomState(11)
    matrices = rng.normal(size=shape)
    # A dominant positive diagonal keeps every factor well conditioned.
    matrices += 4 * np.eye(shape[-1])
    factors = (np.tril(matrices) if lower else np.triu(matrices)).astype(dtype)
    inverses = triangular_inverse(factors, lower=lower)
    assert inverses.shape == factors.shape and inverses.dtype == dtype
    triangle = np.tril if lower else np.triu
    assert np.array_equal(inverses, triangle(inverses))
    identity = np.broadcast_to(np.eye(shape[-1]), shape)
    # Condition numbers below 10: the products are the identity to a few
    # roundings of the dtype.
    np.testing.assert_allclose(
        np.matmul(inverses.astype(np.float64), factors.astype(np.float64)), identity,
        atol=50 * np.finfo(dtype).eps,
    )


def test_triangular_inverse_is_none_for_a_zero_on_the_diagonal():
    factors = np.stack([np.eye(3), np.diag([1.0, 0.0, 2.0])])
    assert triangular_inverse(factors, lower=True) is None


def test_covariances_from_a_singular_precision_factor_name_the_problem():
    chol = np.stack([np.eye(3), np.triu(np.ones((3, 3))) - np.diag([0.0, 1.0, 0.0])])
    with pytest.raises(ValueError, match="zero on its diagonal"):
        get_covariance_model("full").covariances_from_precisions_cholesky(chol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_cholesky_from_precisions_is_the_same_factor(covariance_type):
    """The upper factor with positive diagonal is unique: both routes agree."""
    rng = np.random.RandomState(3)
    model = get_covariance_model(covariance_type)
    covs = random_covariances(covariance_type, rng)
    chol = model.precision_cholesky(covs)
    from_precisions = model.precision_cholesky_from_precisions(
        model.precisions_from_cholesky(chol)
    )
    np.testing.assert_allclose(from_precisions, chol, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_det_cholesky_is_minus_half_log_det_covariance(covariance_type):
    rng = np.random.RandomState(4)
    model = get_covariance_model(covariance_type)
    covs = random_covariances(covariance_type, rng)
    chol = model.precision_cholesky(covs)
    got = model.log_det_cholesky(chol, K, D)
    expected = [-0.5 * np.linalg.slogdet(c)[1] for c in full_covariances(covs, covariance_type, K, D)]
    assert got.shape == (K,)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("spread", [1.0, 1e-4])
@pytest.mark.parametrize("offset", [0.0, 1e5])
def test_log_densities_match_scipy_near_and_far(covariance_type, spread, offset):
    """Mixture log-density, responsibilities and labels from the model's
    kernels, for components close together (spread 1) and 5e4 standard
    deviations apart (spread 1e-4), at the origin and far from it."""
    rng = np.random.RandomState(5)
    model = get_covariance_model(covariance_type)
    covs = random_covariances(covariance_type, rng) * spread**2
    chol = model.precision_cholesky(covs)
    means = rng.standard_normal((K, D)) * 5 + offset
    weights = np.array([0.2, 0.3, 0.5])
    params = MixtureParams(weights, means, covs, chol)
    full_cov = full_covariances(covs, covariance_type, K, D)
    # Points near each component, a few standard deviations out.
    X = np.vstack([rng.multivariate_normal(means[k], full_cov[k] * 4, size=5) for k in range(K)])
    log_joint = np.stack(
        [np.log(weights[k]) + multivariate_normal(means[k], full_cov[k]).logpdf(X) for k in range(K)],
        axis=1,
    )
    expected = logsumexp(log_joint, axis=1)
    score = log_prob_norm_and_labels(model, X, params, want="score")
    proba = log_prob_norm_and_labels(model, X, params, want="proba")
    labels = log_prob_norm_and_labels(model, X, params, want="labels")
    assert score.shape == (len(X),) and proba.shape == (len(X), K)
    # Whitened coordinates of rows near their component are O(1); taking X
    # minus a mean loses eps * |offset| / spread in each, squared distances
    # then ~ that times 10.  log-densities are O(1..40) at spread 1.
    atol = 1e2 * np.finfo(np.float64).eps * (1.0 + offset) / spread
    np.testing.assert_allclose(score, expected, rtol=1e-10, atol=max(atol, 1e-10))
    np.testing.assert_allclose(proba, np.exp(log_joint - expected[:, None]), atol=max(atol, 1e-10))
    np.testing.assert_array_equal(labels, np.argmax(log_joint, axis=1))


def test_remote_components_lie_beyond_the_whitenings_reach():
    """``||U|| |mu - c|`` against ``far_threshold * sqrt(D)``: 336 in float32 at D = 16."""
    from gaussmix._covariance_numerics import far_threshold, remote_components

    n_features = 16
    reach = far_threshold(np.float32) * 4.0
    identity = np.eye(n_features)
    distances = np.array([0.0, 0.99 * reach, 1.01 * reach, np.inf, np.nan])
    offsets = np.zeros((5, n_features))
    offsets[:, 0] = distances
    factors = np.broadcast_to(identity, (5, n_features, n_features))
    np.testing.assert_array_equal(remote_components(offsets, factors, np.float32), [2, 3, 4])
    # float64 reaches 1.8e4: the same offsets are near there; a tied factor too.
    np.testing.assert_array_equal(remote_components(offsets, identity, np.float64), [3, 4])
    # A factor twice as large (half the spread) reaches half as far.
    np.testing.assert_array_equal(
        remote_components(offsets[:2] / 1.9, 2 * identity, np.float32), [1])


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_remote_log_densities_are_float64_around_the_components_own_means(covariance_type):
    """float32 rows near a component at 1e5 of standard deviation 1e-3:
    whitened around a centre 1e5 away, its offset is 1e8 standard
    deviations, and float32 whitening keeps none of its log-density.
    Around the mean, in float64, it is scipy's, from raw rows and from
    rows already centred alike."""
    from gaussmix._covariance_numerics import remote_preparation, remote_log_prob

    rng = np.random.default_rng(3)
    model = get_covariance_model(covariance_type)
    means = np.array([[0.0, 0.0], [1e5 + 1e-3 / 3, 1e5 - 2e-3]])
    covariances = np.stack([np.eye(2), np.array([[2.0, 0.5], [0.5, 1.0]]) * 1e-6])
    if covariance_type == "tied":
        covariances = covariances[1]
    full = covariances if covariances.ndim == 3 else np.stack([covariances] * 2)
    chol = model.precision_cholesky(covariances)
    const = np.log([0.5, 0.5]) + model.log_det_cholesky(chol, 2, 2) - np.log(2 * np.pi)
    X = (means[1] + rng.normal(size=(20, 2)) * 2e-3).astype(np.float32)
    centre = np.array([1.0, -2.0])
    remote = remote_preparation(means, centre, chol, const, np.float32)
    # Component 1's row (tied: component 0, as narrow, is remote too).
    row = list(remote["components"]).index(1)
    expected = np.log(0.5) + multivariate_normal(means[1], full[1]).logpdf(X.astype(np.float64))
    raw = remote_log_prob(X, centre, remote)[row]
    # x - mu rounded once (1e5 * eps64 = 2e-11, 1e-8 standard deviations):
    # log-densities of O(10) to within 1e-8 absolute.
    np.testing.assert_allclose(raw, expected, rtol=0, atol=1e-8)
    centred = remote_log_prob(X.astype(np.float64) - centre, np.zeros(2), remote)[row]
    np.testing.assert_allclose(centred, raw, rtol=0, atol=1e-8)


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_check_precisions_accepts_valid_and_rejects_invalid(covariance_type):
    rng = np.random.RandomState(6)
    model = get_covariance_model(covariance_type)
    covs = random_covariances(covariance_type, rng)
    precisions = model.precisions_from_cholesky(model.precision_cholesky(covs))
    model.check_precisions(precisions)  # no exception
    bad = precisions.copy()
    if covariance_type in ("full", "tied"):
        bad.reshape(-1, D, D)[0] = -np.eye(D)
        match = f"'{covariance_type} precision' should be symmetric, positive-definite"
    else:
        bad.flat[0] = 0.0
        match = f"'{covariance_type} precision' should be positive"
    with pytest.raises(ValueError, match=match):
        model.check_precisions(bad)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_check_precisions_rejects_asymmetric(covariance_type):
    model = get_covariance_model(covariance_type)
    asym = np.eye(D) + np.triu(np.full((D, D), 0.3), 1)
    bad = asym if covariance_type == "tied" else np.stack([np.eye(D), asym, np.eye(D)])
    with pytest.raises(ValueError, match="symmetric, positive-definite"):
        model.check_precisions(bad)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_singular_covariance_raises_naming_the_remedy(covariance_type, dtype):
    model = get_covariance_model(covariance_type)
    covs = np.zeros(model.parameter_shape(K, D), dtype=dtype)
    with pytest.raises(ValueError, match="ill-defined empirical covariance.*increase reg_covar") as info:
        model.precision_cholesky(covs)
    assert ("float64" in str(info.value)) == (dtype == np.float32)


# --------------------------------------------------------------- sampling
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_draws_counts_per_component_with_the_right_moments(covariance_type):
    rng = np.random.RandomState(7)
    model = get_covariance_model(covariance_type)
    covs = random_covariances(covariance_type, rng)
    means = 20.0 * np.arange(K)[:, None] + rng.standard_normal((K, D))
    counts = np.array([4000, 0, 6000])
    X = model.sample(np.random.RandomState(0), means, covs, counts)
    assert X.shape == (counts.sum(), D)
    full_cov = full_covariances(covs, covariance_type, K, D)
    start = 0
    for k, n in enumerate(counts):
        block = X[start : start + n]
        start += n
        if n == 0:
            continue
        scale = np.sqrt(np.max(np.diag(full_cov[k])))
        # Standard errors: mean scale/sqrt(n), covariance ~ scale**2*sqrt(2/n);
        # 6 standard errors (seeded, so deterministic anyway).
        np.testing.assert_allclose(block.mean(axis=0), means[k], atol=6 * scale / np.sqrt(n))
        np.testing.assert_allclose(
            np.cov(block.T), full_cov[k], atol=6 * scale**2 * np.sqrt(2.0 / n)
        )


# ----------------------------------------------------------------- pooling
@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_pooled_replaces_one_component_by_weighted_mean_of_others(covariance_type):
    rng = np.random.RandomState(8)
    model = get_covariance_model(covariance_type)
    covs = random_covariances(covariance_type, rng)
    weights = np.array([0.2, 0.5, 0.3])
    pooled = model.pooled(covs, weights, 1)
    expected = (0.2 * covs[0] + 0.3 * covs[2]) / 0.5
    np.testing.assert_allclose(pooled[1], expected, rtol=1e-14)
    np.testing.assert_array_equal(pooled[[0, 2]], covs[[0, 2]])
    assert not np.shares_memory(pooled, covs)
    model.precision_cholesky(pooled)  # still a valid covariance


def test_pooled_tied_is_unchanged():
    rng = np.random.RandomState(9)
    model = get_covariance_model("tied")
    cov = spd_matrix(rng, D)
    np.testing.assert_array_equal(model.pooled(cov, np.ones(K) / K, 0), cov)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_a_variance_within_rounding_of_zero_is_zero(covariance_type):
    """A component collapsed onto rows sharing a value: its centred moment is
    a difference of moments around the shift, and noise of either sign there
    must not pass for a variance (it gave a fit an unbounded likelihood)."""
    model = get_covariance_model(covariance_type)
    nk = np.array([4.0, 4.0])
    mean = np.array([[3.0, 1.0], [0.5, 2.0]])
    shift_sum = nk[:, None] * mean  # the shift is at the origin
    exact = nk[:, None] * mean**2  # every row at its component's mean
    # Rounding-sized noise on the moment around the shift, and one real spread.
    scatter = exact * (1 + 8 * np.finfo(float).eps)
    scatter[1] += nk[1] * np.array([0.25, 0.04])
    if covariance_type == "spherical":
        scatter = scatter.sum(axis=1)
    covariances = model.estimate_covariances(scatter, nk, shift_sum, nk, 0.0)
    if covariance_type == "diag":
        np.testing.assert_array_equal(covariances[0], 0.0)
        np.testing.assert_allclose(covariances[1], [0.25, 0.04], rtol=1e-12)
    else:
        assert covariances[0] == 0.0
        np.testing.assert_allclose(covariances[1], 0.145, rtol=1e-12)
    with pytest.raises(ValueError, match="ill-defined"):
        model.precision_cholesky(covariances)
    # reg_covar lifts the collapsed variance, as in scikit-learn.
    lifted = model.estimate_covariances(scatter, nk, shift_sum, nk, 1e-6)
    assert np.all(lifted >= 1e-6)


@pytest.mark.parametrize("first", [
    "gaussmix.sklearn_models", "gaussmix.sklearn_diagonal_models",
    "gaussmix._covariance_numerics", "gaussmix.mclust_models", "gaussmix.covariance",
])
def test_any_model_module_can_be_imported_first(first):
    # A fresh Dask worker unpickling a model imports its class's module first:
    # the registry then loads the built-in models without a circular import.
    import pickle
    import subprocess
    import sys

    code = (
        f"import pickle, sys, {first}\n"
        "model = pickle.loads(sys.stdin.buffer.read())\n"
        "from gaussmix.covariance import covariance_model_names, get_covariance_model\n"
        "assert type(get_covariance_model('full')) is type(model), model\n"
        "print(len(covariance_model_names()))\n"
    )
    blob = pickle.dumps(get_covariance_model("full"))
    done = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert int(done.stdout) == len(covariance_model_names())


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_float32_scores_along_the_long_axis_of_a_correlated_covariance_keep_the_budget(
    covariance_type,
):
    """A light component 319 whitened standard deviations out along the long
    axis of correlations of 0.99 (D = 16): the whitening's error scales with
    ``||U|| |mu - c|``, 25 times its whitened offset here, and scored 2.4e-4
    of the log-likelihood off while that offset alone decided.  The same
    float32 parameters scored in float64 are the reference."""
    from gaussmix._covariance_numerics import far_threshold

    n_features, rho = 16, 0.99
    cov = (1 - rho) * np.eye(n_features) + rho * np.ones((n_features, n_features))
    evals, evecs = np.linalg.eigh(cov)
    offset = evecs[:, -1] * np.sqrt(evals[-1]) * 0.95 * far_threshold(np.float32) * 4.0
    means = np.vstack([np.zeros(n_features), offset])
    covariances = np.stack([cov, cov]) if covariance_type == "full" else cov
    model = get_covariance_model(covariance_type)
    X = np.random.default_rng(1).multivariate_normal(offset, cov, 400).astype(np.float32)
    scores = {}
    for dtype in (np.float32, np.float64):
        gm = GaussianMixture(2, covariance_type=covariance_type)
        gm.weights_ = np.array([0.9, 0.1], dtype=dtype)
        gm.means_ = means.astype(np.float32).astype(dtype)
        gm.covariances_ = covariances.astype(np.float32).astype(dtype)
        gm.precisions_cholesky_ = model.precision_cholesky(
            gm.covariances_.astype(np.float64)).astype(dtype)
        gm.n_features_in_ = n_features
        scores[dtype] = gm.score_samples(X.astype(dtype)).astype(np.float64)
    error = np.max(np.abs(scores[np.float32] - scores[np.float64]))
    # float32's budget: 1e-5 of the log-likelihood (measured now: 1e-7).
    assert error < 1e-5 * np.mean(np.abs(scores[np.float64]))
