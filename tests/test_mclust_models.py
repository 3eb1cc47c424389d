"""mclust's 14 covariance models: registry, M-step constraints and optimality, fits."""

import warnings

import numpy as np
import pytest
from scipy.stats import ortho_group

from gaussmix import GaussianMixture
from gaussmix.covariance import (
    DiagCovariance,
    FullCovariance,
    SphericalCovariance,
    TiedCovariance,
    covariance_model_names,
    get_covariance_model,
)
from gaussmix.em import maximization
from gaussmix.exceptions import ConvergenceWarning, EmptyComponentWarning
from gaussmix.mclust_models import MCLUST_MODEL_NAMES
from gaussmix.suffstats import SuffStats

from _helpers import make_data, relative_error, spd_matrix, user_init

ALIASES = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}
NEW_MODELS = tuple(name for name in MCLUST_MODEL_NAMES if name not in ALIASES)
# The M-steps are exact up to rounding (closed forms) or run to a 1e-12
# relative step (iterative ones, which converge linearly or quadratically).
MSTEP_RTOL = 1e-9


def family(model):
    """The scikit-learn type whose parameter shape ``model`` shares."""
    for cls, name in (
        (TiedCovariance, "tied"),
        (SphericalCovariance, "spherical"),
        (DiagCovariance, "diag"),
        (FullCovariance, "full"),
    ):
        if isinstance(model, cls):
            return name
    raise AssertionError(model)


def as_full(model, covariances, n_components, n_features):
    """Covariances of any model as (K, D, D) matrices."""
    covariances = np.asarray(covariances, dtype=np.float64)
    kind = family(model)
    if kind == "full":
        return covariances
    if kind == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features)).copy()
    if kind == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return np.stack([c * np.eye(n_features) for c in covariances])


def statistic(model, scatters):
    """The model's second-order statistic of centred scatters ``W_k`` (K, D, D)."""
    kind = family(model)
    if kind == "full":
        return scatters.copy()
    if kind == "tied":
        return np.sum(scatters, axis=0)
    diagonals = np.diagonal(scatters, axis1=1, axis2=2).copy()
    return diagonals if kind == "diag" else np.sum(diagonals, axis=1)


def mstep(model, scatters, nk, reg_covar=0.0):
    """The M-step's covariances (K, D, D) for centred scatters and weights."""
    n_components, n_features, _ = scatters.shape
    shift_sum = np.zeros((n_components, n_features))
    covariances = model.estimate_covariances(
        statistic(model, scatters), nk, shift_sum, nk, reg_covar
    )
    return as_full(model, covariances, n_components, n_features)


def random_scatters(rng, n_components, n_features):
    """Weighted scatters of random data under random responsibilities."""
    X = rng.standard_normal((60, n_features)) @ rng.standard_normal((n_features, n_features))
    sample_weight = rng.uniform(0.5, 2.0, len(X))
    resp = rng.dirichlet(np.ones(n_components), size=len(X)) * sample_weight[:, None]
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    scatters = np.stack(
        [(X - means[k]).T * resp[:, k] @ (X - means[k]) for k in range(n_components)]
    )
    return X, resp, scatters, nk


def expected_log_likelihood(covariances, scatters, nk):
    """``sum_k [-n_k log det Sigma_k - tr(Sigma_k^-1 W_k)]``: what the M-step maximises."""
    _, log_dets = np.linalg.slogdet(covariances)
    traces = np.einsum("kij,kji->k", np.linalg.inv(covariances), scatters)
    return float(np.sum(-nk * log_dets - traces))


def decompose(covariances):
    """Volumes (K,), shapes (K, D) descending with product 1, orientations (K, D, D)."""
    values, vectors = np.linalg.eigh(covariances)
    values, vectors = values[:, ::-1], vectors[:, :, ::-1]
    volumes = np.exp(np.mean(np.log(values), axis=1))
    return volumes, values / volumes[:, None], vectors


def compose(volumes, shapes, orientations):
    return np.einsum("kij,kj,klj->kil", orientations, volumes[:, None] * shapes, orientations)


# ----------------------------------------------------------------- registry
def test_every_mclust_name_and_alias_is_registered():
    names = covariance_model_names()
    assert set(MCLUST_MODEL_NAMES) | {"full", "tied", "diag", "spherical", "E", "V"} == set(names)
    assert len(names) == 20
    for name in NEW_MODELS:
        assert get_covariance_model(name).name == name


@pytest.mark.parametrize("alias, name", [*ALIASES.items(), ("E", "EII"), ("V", "spherical")])
def test_aliases_are_the_same_objects(alias, name):
    assert get_covariance_model(alias) is get_covariance_model(name)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_each_model_subclasses_the_family_of_its_parameter_shape(name):
    model = get_covariance_model(name)
    expected = {"I": "diag", "E": "full", "V": "full"}[name[2]]
    if name == "EII":
        expected = "spherical"
    assert family(model) == expected
    assert model.parameter_shape(3, 4) == get_covariance_model(expected).parameter_shape(3, 4)


# ------------------------------------------------------ M-step: constraints
def assert_constraint(name, covariances, rtol=1e-9):
    """``covariances`` (K, D, D) satisfy the volume-shape-orientation letters of ``name``."""
    volumes, shapes, orientations = decompose(covariances)
    volume, shape, orientation = name
    if volume == "E":
        assert relative_error(volumes, np.full_like(volumes, volumes[0])) <= rtol
    off_diagonal = covariances * (1.0 - np.eye(covariances.shape[-1]))
    if orientation == "I":
        assert np.all(off_diagonal == 0.0)
        # Axis-aligned shapes are compared axis by axis, not sorted.
        shapes = np.diagonal(covariances, axis1=1, axis2=2) / volumes[:, None]
    if shape == "E":
        assert relative_error(shapes, np.broadcast_to(shapes[0], shapes.shape)) <= rtol
    if orientation == "E":
        # A shared orientation: the covariances commute.
        scale = np.max(np.abs(covariances)) ** 2
        for a in covariances:
            for b in covariances:
                assert np.max(np.abs(a @ b - b @ a)) <= rtol * scale


@pytest.mark.parametrize("name", MCLUST_MODEL_NAMES)
@pytest.mark.parametrize("seed", range(3))
def test_mstep_satisfies_its_constraint(name, seed):
    rng = np.random.RandomState(seed)
    _, _, scatters, nk = random_scatters(rng, n_components=3, n_features=4)
    covariances = mstep(get_covariance_model(name), scatters, nk)
    assert_constraint(name, covariances)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_reg_covar_is_added_to_the_diagonal_afterwards(name):
    rng = np.random.RandomState(3)
    _, _, scatters, nk = random_scatters(rng, n_components=3, n_features=3)
    model = get_covariance_model(name)
    plain, regularised = mstep(model, scatters, nk), mstep(model, scatters, nk, reg_covar=0.5)
    expected = np.broadcast_to(0.5 * np.eye(3), plain.shape)
    np.testing.assert_allclose(regularised - plain, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_statistics_around_any_shift_give_the_same_mstep(name):
    """W_k is formed from statistics around the shift exactly as the parent does."""
    rng = np.random.RandomState(4)
    X, resp, scatters, nk = random_scatters(rng, n_components=3, n_features=3)
    model = get_covariance_model(name)
    shift = rng.standard_normal((3, 3))
    shift_sum = np.stack([resp[:, k] @ (X - shift[k]) for k in range(3)])
    around_shift = np.stack([(X - shift[k]).T * resp[:, k] @ (X - shift[k]) for k in range(3)])
    shifted = model.estimate_covariances(statistic(model, around_shift), nk, shift_sum, nk, 0.0)
    assert relative_error(as_full(model, shifted, 3, 3), mstep(model, scatters, nk)) <= 1e-10


# ------------------------------------------------------ M-step: optimality
def random_factor(rng, letter, n_components, draw):
    """``draw()`` once for every component (V), once shared (E)."""
    if letter == "V":
        return np.stack([draw() for _ in range(n_components)])
    return np.stack([draw()] * n_components)


def random_feasible(rng, name, n_components, n_features):
    """A random member of model ``name``'s constraint set, (K, D, D)."""
    volumes = random_factor(rng, name[0], n_components, lambda: rng.uniform(0.2, 3.0))
    log_shapes = random_factor(
        rng, name[1], n_components, lambda: rng.normal(0.0, 0.7, n_features)
    )
    shapes = np.exp(log_shapes - log_shapes.mean(axis=1, keepdims=True))
    if name[1] == "I":
        shapes = np.ones_like(shapes)
    if name[2] == "I":
        orientations = np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features))
    else:
        orientations = random_factor(
            rng, name[2], n_components, lambda: ortho_group.rvs(n_features, random_state=rng)
        )
    return compose(volumes, shapes, orientations)


def perturb_within(rng, name, covariances, size):
    """Move every factor the constraint leaves free by a relative ``size``."""
    n_components, n_features, _ = covariances.shape
    volumes, shapes, orientations = decompose(covariances)
    if name[2] == "I":
        # Keep the axis order: the shape of an axis-aligned model is per axis.
        orientations = np.broadcast_to(np.eye(n_features), covariances.shape).copy()
        shapes = np.diagonal(covariances, axis1=1, axis2=2) / volumes[:, None]
    log_step = random_factor(rng, name[0], n_components, rng.standard_normal)
    volumes = volumes * np.exp(size * log_step)
    log_step = random_factor(rng, name[1], n_components, lambda: rng.standard_normal(n_features))
    if name[1] != "I":
        shapes = shapes * np.exp(size * (log_step - log_step.mean(axis=1, keepdims=True)))
    if name[2] != "I":

        def small_rotation():
            skew = size * rng.standard_normal((n_features, n_features))
            return np.linalg.qr(np.eye(n_features) + skew - skew.T)[0]

        rotation = random_factor(rng, name[2], n_components, small_rotation)
        # A shared orientation turns by one rotation; separate ones independently.
        orientations = np.matmul(orientations, rotation)
    return compose(volumes, shapes, orientations)


@pytest.mark.parametrize("name", MCLUST_MODEL_NAMES)
@pytest.mark.parametrize("seed", range(3))
def test_mstep_beats_random_members_of_the_constraint_set(name, seed):
    rng = np.random.RandomState(seed)
    _, _, scatters, nk = random_scatters(rng, n_components=3, n_features=3)
    best = expected_log_likelihood(mstep(get_covariance_model(name), scatters, nk), scatters, nk)
    for _ in range(20):
        other = random_feasible(rng, name, 3, 3)
        assert expected_log_likelihood(other, scatters, nk) < best


@pytest.mark.parametrize("name", MCLUST_MODEL_NAMES)
@pytest.mark.parametrize("seed", range(3))
def test_mstep_is_a_local_maximum_within_the_constraint_set(name, seed):
    rng = np.random.RandomState(seed)
    _, _, scatters, nk = random_scatters(rng, n_components=3, n_features=3)
    optimum = mstep(get_covariance_model(name), scatters, nk)
    assert_constraint(name, perturb_within(rng, name, optimum, 1e-3), rtol=1e-8)
    best = expected_log_likelihood(optimum, scatters, nk)
    # At a maximum a step of size h loses O(h^2); rounding of the objective
    # is about 1e-16 of its size.
    slack = 1e-13 * abs(best)
    for size in (1e-2, 1e-3, 1e-4):
        for _ in range(10):
            moved = perturb_within(rng, name, optimum, size)
            assert expected_log_likelihood(moved, scatters, nk) <= best + slack


@pytest.mark.parametrize("name", MCLUST_MODEL_NAMES)
def test_one_component_gives_the_unconstrained_estimate_of_its_family(name):
    """With K = 1 "E" and "V" coincide: the M-step is VVV's, VVI's or VII's."""
    rng = np.random.RandomState(5)
    _, _, scatters, nk = random_scatters(rng, n_components=1, n_features=4)
    unconstrained = {"I": "VVI", "E": "VVV", "V": "VVV"}[name[2]]
    if name[:2] == "EI" or name == "VII":
        unconstrained = "VII"
    expected = mstep(get_covariance_model(unconstrained), scatters, nk)
    assert relative_error(mstep(get_covariance_model(name), scatters, nk), expected) <= MSTEP_RTOL


@pytest.mark.parametrize("name", MCLUST_MODEL_NAMES)
def test_equal_covariances_are_recovered_by_every_model(name):
    """When every W_k / n_k is one matrix S, each full model's M-step returns S."""
    rng = np.random.RandomState(6)
    nk = np.array([5.0, 17.0, 40.0])
    common = spd_matrix(rng, 4)
    if name[2] == "I":
        common = np.diag(np.diag(common))
    if name[1] == "I":
        common = np.eye(4) * np.mean(np.diag(common))
    covariances = mstep(get_covariance_model(name), nk[:, None, None] * common, nk)
    assert relative_error(covariances, np.broadcast_to(common, covariances.shape)) <= MSTEP_RTOL


@pytest.mark.parametrize("name", ["EEV", "EVV", "EVI", "EEI", "EII"])
def test_closed_forms_match_their_formulas(name):
    """Celeux & Govaert's closed forms, written out independently."""
    rng = np.random.RandomState(7)
    _, _, scatters, nk = random_scatters(rng, n_components=3, n_features=3)
    n = nk.sum()
    if name == "EII":
        expected = np.trace(scatters, axis1=1, axis2=2).sum() / (3 * n) * np.eye(3)
        expected = np.broadcast_to(expected, scatters.shape)
    elif name == "EEI":
        expected = np.broadcast_to(np.diag(np.diag(scatters.sum(axis=0))) / n, scatters.shape)
    elif name == "EVI":
        diagonals = np.diagonal(scatters, axis1=1, axis2=2)
        roots = np.prod(diagonals, axis=1) ** (1 / 3)
        expected = np.stack([np.diag(d / r) for d, r in zip(diagonals, roots)]) * roots.sum() / n
    elif name == "EVV":
        roots = np.linalg.det(scatters) ** (1 / 3)
        expected = scatters / roots[:, None, None] * roots.sum() / n
    else:
        values, vectors = np.linalg.eigh(scatters)
        pooled = values.sum(axis=0) / n  # ascending in every component alike
        expected = np.einsum("kij,j,klj->kil", vectors, pooled, vectors)
    got = mstep(get_covariance_model(name), scatters, nk)
    assert relative_error(got, expected) <= 1e-12


def degenerate_stats(model):
    """Statistics where each component has one feature without spread (a different one)."""
    rng = np.random.RandomState(8)
    _, _, scatters, nk = random_scatters(rng, n_components=2, n_features=3)
    scatters[0, 0, :] = scatters[0, :, 0] = 0.0
    scatters[1, :, 2] = scatters[1, 2, :] = 0.0
    return SuffStats(
        sum_resp=nk,
        shift_sum=np.zeros((2, 3)),
        scatter=statistic(model, scatters),
        shift=np.zeros((2, 3)),
        log_likelihood=0.0,
        weight_sum=float(nk.sum()),
    )


@pytest.mark.parametrize("name", ["EVI", "VEV", "EVV"])
def test_mstep_without_a_maximiser_raises_the_ill_defined_error(name):
    """Per-component shapes (or volumes) can shrink onto the flat feature: no maximum."""
    model = get_covariance_model(name)
    with pytest.raises(ValueError, match="ill-defined empirical covariance.*float64 data"):
        maximization(model, degenerate_stats(model), reg_covar=1e-6, dtype=np.float32)


@pytest.mark.parametrize("name", ["VEV", "EVI"])
def test_constant_feature_error_says_reg_covar_cannot_help(name):
    """The constrained M-step fails before reg_covar is added: the advice must say so."""
    X = make_data("separated", 2, seed=12)
    X[:, 1] = 1.0
    with pytest.raises(ValueError, match=rf"{name} model's M-step has no maximum.*cannot repair"
                       ) as error:
        GaussianMixture(2, covariance_type=name, random_state=0, reg_covar=0.1).fit(X)
    # Not scikit-learn's advice to increase reg_covar beside it.
    assert "increase reg_covar" not in str(error.value)


@pytest.mark.parametrize("name", ["EVI", "EVE", "EVV"])
@pytest.mark.parametrize("scale", [1e80, 1e-100])
def test_one_volume_models_fit_data_at_extreme_scales(name, scale):
    """Scaling the data by s shifts the mean log-density by -D log s and nothing else.

    The common volume times a component's normalised shape is formed as
    ``volume * (shape_k / volume_k)``: the product first would overflow
    (or underflow) at these scales.
    """
    X = make_data("overlapping", 3, seed=13)
    kwargs = {"n_components": 2, "covariance_type": name, "random_state": 0, "reg_covar": 0.0}
    plain = GaussianMixture(**kwargs).fit(X)
    scaled = GaussianMixture(**kwargs).fit(X * scale)
    expected = plain.lower_bound_ - X.shape[1] * np.log(scale)
    # Relative to the terms summed: rounding of about 1e-16 per operation.
    assert abs(scaled.lower_bound_ - expected) <= 1e-10 * (abs(plain.lower_bound_) + abs(expected))
    np.testing.assert_array_equal(scaled.predict(X * scale), plain.predict(X))


@pytest.mark.parametrize("name", ["EEV", "VEV", "full"])
def test_overflowing_float32_statistics_raise_the_non_finite_error(name):
    """float32 scatter beyond its range (about 3e38) is refused clearly, not in eigh.

    Each feature spans half the square root of float32's range, so every
    square is representable (wider data are refused before the fit, by
    ``check_squares_in_range``) but the sums of a few hundred overflow.
    """
    X = make_data("separated", 3, seed=14)
    span = np.ptp(X, axis=0).max()
    X = (X * (0.5 * np.sqrt(np.finfo(np.float32).max) / span)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow itself
        with pytest.raises(ValueError, match="non-finite parameters.*Scale the input data"):
            GaussianMixture(2, covariance_type=name, random_state=0).fit(X)


@pytest.mark.parametrize("name", ["EII", "EEI", "VEI", "VEE", "VVE", "EEV"])
def test_mstep_with_a_maximiser_survives_flat_features(name):
    """Where the constraint ties the flat feature to other components, the maximum exists."""
    model = get_covariance_model(name)
    params, _ = maximization(model, degenerate_stats(model), reg_covar=1e-6)
    assert params.all_finite()


EQUAL_VOLUME_VARYING_SHAPE = ("EVI", "EVE", "EVV")


@pytest.mark.parametrize("name", MCLUST_MODEL_NAMES)
def test_a_component_of_zero_scatter_leaves_the_others_as_without_it(name):
    """One row alone (scatter exactly zero): the others' M-step is theirs without it.

    Its term ``n_k log det Sigma_k`` falls without bound as its volume
    shrinks, whatever its shape: it takes volume zero, or the identity shape
    at the common volume, and reg_covar is its covariance's floor.  The
    common volume counts its weight, so with one volume the others scale by
    ``n_without / n_with``.
    """
    model = get_covariance_model(name)
    _, _, scatters, nk = random_scatters(np.random.default_rng(3), 3, 3)
    with_single = np.concatenate([scatters, np.zeros((1, 3, 3))])
    nk_single = np.append(nk, 1.0)
    reg_covar = 1e-6
    covariances = mstep(model, with_single, nk_single, reg_covar)
    alone = mstep(model, scatters, nk, reg_covar) - reg_covar * np.eye(3)
    assert np.all(np.isfinite(covariances))
    tied = family(model) == "tied" or name in ("EII", "EEI", "EEV")
    if tied:
        # One shared volume and shape, from the pooled scatter over all weight.
        alone = alone * nk.sum() / nk_single.sum()
        np.testing.assert_allclose(covariances[:3] - reg_covar * np.eye(3), alone, rtol=1e-9)
        return
    if name in EQUAL_VOLUME_VARYING_SHAPE:
        alone = alone * nk.sum() / nk_single.sum()
        volume = np.exp(np.mean(np.log(np.linalg.eigvalsh(alone[0]))))
        expected_single = volume * np.eye(3)
    else:
        expected_single = np.zeros((3, 3))
    np.testing.assert_allclose(covariances[:3] - reg_covar * np.eye(3), alone, rtol=1e-9)
    # EVE rotates the identity by its orientation: rounding of a few eps of the volume.
    np.testing.assert_allclose(
        covariances[3] - reg_covar * np.eye(3), expected_single, rtol=1e-9,
        atol=64 * np.finfo(float).eps * np.max(expected_single),
    )


def half_copies_of_one_row(seed=6, n_samples=60, n_features=3):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (n_samples // 2, n_features)),
                   rng.normal(4, 1, (n_samples // 2, n_features))])
    X[: n_samples // 2] = X[0]
    return X


# Every model on seed 6; the models that zero collapsed scatters on more
# seeds, with two and three components (those of one volume keep the
# noise, see _ConstrainedModel).
COPIES_CASES = [(name, 6, 2) for name in NEW_MODELS] + [
    (name, seed, k) for name in ("VEI", "VEE", "VVE", "VEV")
    for seed, k in ((2, 2), (7, 2), (9, 2), (0, 3), (3, 3), (7, 3))
]


@pytest.mark.parametrize("name, seed, n_components", COPIES_CASES)
def test_a_component_on_copies_of_one_row_is_a_zero_scatter(name, seed, n_components):
    """Its scatter, computed around the shift, is rounding noise; the M-step must see zero.

    Noise of 6e-30 taken for a scatter set VEE's shared matrix: the other
    component got a variance of 3e301, a converged fit, and a model file
    that does not load.  With the zero, each model fits the other cluster's
    spread: no variance beyond the data's.  First moments taken from the
    sums around the chunk's centre carried eps times the distance from it,
    beyond the resolution of the mean (seed 2: four times it; with three
    components, where the centre moves between iterations, VEE fitted
    3e300); taken from the scatter's own differences (_far_scatter) they
    cancel with it.
    """
    X = half_copies_of_one_row(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(n_components, covariance_type=name, random_state=0).fit(X)
    variances = np.asarray(gm.covariances_)
    assert np.all(np.isfinite(variances))
    assert np.max(np.abs(variances)) < 10 * X.var(axis=0).max()
    assert np.all(np.diff(gm.lower_bounds_) > -1e-9 * np.abs(gm.lower_bounds_[1:]))


def test_rounding_noise_counts_as_zero_scatter_but_a_spread_above_it_does_not():
    from gaussmix._maximization import COLLAPSE_ULPS, _collapsed_scatter_zeroed

    model = get_covariance_model("VEE")
    eps = np.finfo(float).eps
    means = np.array([[3.0, 4.0], [3.0, 4.0], [1e6, 4.0]])
    nk = np.array([10.0, 10.0, 10.0])
    # Half each feature's resolution: noise.  Four times it in one feature:
    # a spread.  A coordinate of 1e6 in one feature leaves the other's
    # resolution its own.
    noise = nk[0] * (COLLAPSE_ULPS * eps * means[0]) ** 2 * 0.5
    scatter = np.stack([np.diag(noise), np.diag(noise * [1.0, 8.0]), np.diag(noise * [1.0, 8.0])])
    stats = SuffStats(sum_resp=nk, shift_sum=np.zeros((3, 2)), scatter=scatter,
                      shift=means, log_likelihood=0.0, weight_sum=30.0)
    zeroed = _collapsed_scatter_zeroed(model, stats, nk, means, np.float64)
    np.testing.assert_array_equal(zeroed.scatter[0], 0.0)
    np.testing.assert_array_equal(zeroed.scatter[1:], scatter[1:])
    np.testing.assert_array_equal(stats.scatter, scatter)   # the caller's statistics stay


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_spread_of_a_few_units_beside_a_large_coordinate_is_kept(dtype):
    """A feature near 1e6 (sd 3) beside unit features: every model keeps the spreads."""
    rng = np.random.default_rng(0)
    clusters = [np.column_stack([1e6 + 3 * rng.standard_normal(300),
                                 centre + rng.standard_normal((300, 2))]) for centre in (0.0, 8.0)]
    X = np.vstack(clusters).astype(dtype)
    for name in ("VEE", "VEV", "VEI", "EVV", "EEV"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm = GaussianMixture(2, covariance_type=name, random_state=0).fit(X)
        variances = np.asarray(gm.covariances_, dtype=float)
        variances = np.diagonal(variances, axis1=1, axis2=2) if variances.ndim == 3 else variances
        assert np.all(variances > 0.5), name


# ---------------------------------------------------------------- counts
@pytest.mark.parametrize(
    "name, expected",
    [
        ("EII", 1), ("VII", 3), ("EEI", 4), ("VEI", 6), ("EVI", 10), ("VVI", 12),
        ("EEE", 10), ("VEE", 12), ("EVE", 16), ("VVE", 18), ("EEV", 22), ("VEV", 24),
        ("EVV", 28), ("VVV", 30),
    ],
)  # fmt: skip
def test_covariance_parameter_counts_for_three_components_in_four_dimensions(name, expected):
    """mclust's nVarParams(model, d = 4, G = 3); every fixture cell is checked too."""
    assert get_covariance_model(name).n_covariance_parameters(3, 4) == expected
    assert get_covariance_model(name).n_parameters(3, 4) == expected + 3 * 4 + 2


# ------------------------------------------------------------- end to end
def fit(X, name, sample_weight=None, **kwargs):
    kwargs = {"n_components": 3, "covariance_type": name, "random_state": 0, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(**kwargs).fit(X, sample_weight=sample_weight)


@pytest.fixture(scope="module")
def anisotropic():
    return make_data("anisotropic", 3, n_per_component=50, seed=2)


def full_fitted(estimator):
    model = get_covariance_model(estimator.covariance_type)
    n_components, n_features = estimator.means_.shape
    return as_full(model, estimator.covariances_, n_components, n_features)


@pytest.mark.parametrize("name", MCLUST_MODEL_NAMES)
def test_every_model_fits_end_to_end(name, anisotropic):
    gm = fit(anisotropic, name, max_iter=200, tol=1e-8)
    model = get_covariance_model(name)
    assert gm.covariances_.shape == model.parameter_shape(3, 3)
    assert gm.converged_
    assert np.all(np.diff(gm.lower_bounds_) >= -1e-12)  # EM never loses likelihood
    assert_constraint(name, full_fitted(gm) - 1e-6 * np.eye(3), rtol=1e-7)
    np.testing.assert_allclose(
        gm.precisions_, model.precisions_from_cholesky(gm.precisions_cholesky_)
    )
    assert gm.bic(anisotropic) == pytest.approx(
        -2 * gm.score(anisotropic) * len(anisotropic)
        + model.n_parameters(3, 3) * np.log(len(anisotropic))
    )
    assert gm.predict(anisotropic).shape == (len(anisotropic),)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_float32_input_fits_like_float64(name, anisotropic):
    gm64 = fit(anisotropic, name, max_iter=50, tol=1e-6)
    gm32 = fit(anisotropic.astype(np.float32), name, max_iter=50, tol=1e-6)
    assert gm32.covariances_.dtype == np.float32
    assert gm32.means_.dtype == np.float32
    assert gm32.score(anisotropic) == pytest.approx(gm64.score(anisotropic), rel=1e-4)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_sample_weight_is_accepted(name, anisotropic):
    weights = np.random.RandomState(0).uniform(0.1, 3.0, len(anisotropic))
    gm = fit(anisotropic, name, sample_weight=weights)
    assert gm.covariances_.shape == get_covariance_model(name).parameter_shape(3, 3)
    np.testing.assert_allclose(gm.weights_.sum(), 1.0)


@pytest.mark.parametrize("name", ["EII", "VEI", "EVE", "VEV"])
def test_integer_weights_equal_repeated_rows(name):
    X = make_data("overlapping", 3, n_per_component=40, seed=1)
    weights = np.random.RandomState(1).randint(0, 4, size=len(X))
    init = user_init(X, 3, family(get_covariance_model(name)), seed=0)
    kwargs = dict(max_iter=20, tol=0, **init)
    weighted = fit(X, name, weights, **kwargs)
    repeated = fit(np.repeat(X, weights, axis=0), name, **kwargs)
    for attribute in ("weights_", "means_", "covariances_"):
        assert relative_error(getattr(weighted, attribute), getattr(repeated, attribute)) <= 1e-9
    np.testing.assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-10)


@pytest.mark.parametrize("name", MCLUST_MODEL_NAMES + ("E", "V"))
def test_one_dimensional_models_reduce_to_e_and_v(name):
    """In 1-D only the volume letter means anything: each model is "E" or "V"."""
    X = np.loadtxt("tests/reference/faithful_waiting_1d.csv", delimiter=",", skiprows=1, ndmin=2)
    gm = fit(X, name, n_components=2, max_iter=30, tol=0)
    reference = fit(X, name[0], n_components=2, max_iter=30, tol=0)
    assert relative_error(full_fitted(gm), full_fitted(reference)) <= 1e-8
    assert relative_error(gm.means_, reference.means_) <= 1e-8


# ------------------------------------------------------------------ aliases
@pytest.mark.parametrize("alias, name", ALIASES.items())
@pytest.mark.parametrize("n_features", [1, 3])
def test_mclust_alias_fits_exactly_like_the_scikit_learn_name(alias, name, n_features):
    X = make_data("overlapping", n_features, n_per_component=40, seed=3)
    by_alias, by_name = fit(X, alias), fit(X, name)
    for attribute in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(by_alias, attribute), getattr(by_name, attribute))
    assert by_alias.lower_bounds_ == by_name.lower_bounds_
    assert by_alias.bic(X) == by_name.bic(X)


def _shared_orientation_start(seed, covariance_type):
    """Three far-apart clusters and the best start of one shared orientation
    taken from a cluster's own axes: the M-step's objective there beats the
    orientation the pooled scatter's axes lead to on these data sets."""
    rng = np.random.default_rng(seed)
    sizes = np.array([150, 300, 450])
    centres = np.array([[0.0, 0.0, 0.0], [100.0, 0.0, 0.0], [0.0, 100.0, 0.0]])
    parts = []
    for n, centre in zip(sizes, centres):
        mixing = rng.normal(size=(3, 3)) * rng.uniform(0.3, 3, 3)
        parts.append(rng.normal(size=(n, 3)) @ mixing + centre)
    X = np.vstack(parts)
    scatters = np.array([(p - p.mean(0)).T @ (p - p.mean(0)) for p in parts])
    starts = []
    for own in scatters:
        axes = np.linalg.eigh(own)[1]
        diagonals = np.einsum("da,kde,ea->ka", axes, scatters, axes)
        if covariance_type == "VVE":
            scales = diagonals / sizes[:, None]
        else:  # EVE: one volume
            volumes = np.exp(np.mean(np.log(diagonals), axis=1))
            scales = volumes.sum() / sizes.sum() * diagonals / volumes[:, None]
        covariances = np.einsum("da,ka,ea->kde", axes, scales, axes)
        start = dict(covariance_type=covariance_type, reg_covar=0,
                     means_init=np.array([p.mean(0) for p in parts]),
                     weights_init=sizes / sizes.sum(), precisions_init=np.linalg.inv(covariances))
        score = GaussianMixture(3, max_iter=0, **start).fit(X).score(X)
        starts.append((score, start))
    return X, max(starts, key=lambda pair: pair[0])


@pytest.mark.parametrize("covariance_type, seed", [("VVE", 8), ("VVE", 24), ("EVE", 32)])
def test_shared_orientation_m_steps_never_lower_the_likelihood(covariance_type, seed):
    # The orientation search also starts from the E-step's own orientation,
    # so the M-step cannot end below it: EM's bound cannot fall.  From the
    # pooled axes alone, these starts fell by 0.11, 0.007 and 0.018 per row.
    X, (start_score, start) = _shared_orientation_start(seed, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = GaussianMixture(3, tol=1e-12, max_iter=20, **start).fit(X)
    bounds = np.array([start_score, *fitted.lower_bounds_])
    # Each bound is a mean of 900 log-densities of O(10): rounding of 1e-13.
    assert np.all(np.diff(bounds) >= -1e-12)


@pytest.mark.parametrize("covariance_type", ["EVE", "VVE"])
def test_orientation_search_stops_where_the_objective_stops_falling(monkeypatch,
                                                                    covariance_type):
    # Nearly collinear features (condition number about 1e4): accepted Newton
    # steps changed the objective by its rounding only, yet kept the angles
    # above tol, so every M-step ran its 1000 rounds, from both starts.
    import gaussmix._mclust_numerics as numerics

    rounds = []
    newton = numerics._newton_rotation
    monkeypatch.setattr(numerics, "_newton_rotation",
                        lambda *args: rounds.append(1) or newton(*args))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 1)) + 1e-2 * rng.normal(size=(600, 6))
    X[:300] += 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = GaussianMixture(2, covariance_type=covariance_type, random_state=0,
                                 max_iter=5, tol=0).fit(X)
    # Five M-steps of two searches each: a few rounds per search (11000 before).
    assert len(rounds) < 200
    assert np.all(np.diff(fitted.lower_bounds_) >= -1e-12)


def test_vee_with_a_common_matrix_beyond_float64_raises_the_ill_defined_error():
    """Rows of scale 1e-8 beside one at 1e6: VEE's C lost its range and numpy's
    LinAlgError escaped a stream's first step (fit already named the problem)."""
    X = np.array([
        [-7.884596205663916e-10, -1.033413186128096e-12],
        [-2.1000302695913544e-08, 6.664068091081979e-09],
        [-3.983158037504036e-09, 2.2748035363294862e-09],
        [-7.34611913410953e-09, -2.7260071066909296e-09],
        [-4.5283697091213103e-10, -2.6482280524040622e-08],
        [-4.73849306444089e-09, 1.1251271575830373e-08],
        [2.422510607224906e-09, -1.062958560947545e-08],
        [5.524806014733904e-09, -2.447551669355576e-08],
        [-1.7853540814545022e-09, -5.986139377852579e-10],
        [-2.8803502825323314e-09, -1.22840251575986e-08],
        [-1000000.0000000222, -1000000.000000016],
    ])
    kwargs = dict(covariance_type="VEE", init_params="random", random_state=208, reg_covar=0.01)
    for how in ("fit", "partial_fit"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with pytest.raises(ValueError, match="ill-defined empirical covariance"):
                getattr(GaussianMixture(3, **kwargs), how)(X)


@pytest.mark.parametrize("name", ["VEI", "VEE", "VVE", "VEV", "VVV"])
def test_float32_clusters_near_1e6_narrower_than_a_unit_keep_their_spreads(name):
    """Standard deviations of 0.5 and 1 near 1e6 in float32 (spacing 0.0625):
    eight or sixteen units of the data's last place, a spread and not the
    rounding noise of one repeated point.  The models that zero collapsed
    scatters took them for collapsed below 0.95 and re-seeded the
    components without end (mean log-likelihood -5.1 against -2.84).  The
    same values in float64 are the reference."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (200, 2)), rng.normal(6, 0.5, (200, 2))]) + 1e6
    X32 = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmptyComponentWarning)
        gm32 = GaussianMixture(2, covariance_type=name, random_state=0).fit(X32)
    gm64 = GaussianMixture(2, covariance_type=name, random_state=0).fit(X32.astype(np.float64))
    # float32's budget for the mean log-likelihood: 1e-5 relative.
    assert abs(gm32.lower_bound_ - gm64.lower_bound_) < 1e-5 * abs(gm64.lower_bound_)
