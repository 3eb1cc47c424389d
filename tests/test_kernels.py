"""Chunk kernels: the folded log-probability GEMMs and the log-sum-exp paths."""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gaussmix import _kernels
from gaussmix.covariance import get_covariance_model
from gaussmix.params import MixtureParams

from _helpers import COVARIANCE_TYPES, spd_matrix


def random_params(covariance_type, rng, n_components=4, n_features=3, spread=1.0):
    means = rng.standard_normal((n_components, n_features)) * 3
    if covariance_type == "full":
        covs = np.stack([spd_matrix(rng, n_features, spread) for _ in range(n_components)])
    elif covariance_type == "tied":
        covs = spd_matrix(rng, n_features, spread)
    elif covariance_type == "diag":
        covs = rng.uniform(0.5, 2.0, size=(n_components, n_features)) * spread
    else:
        covs = rng.uniform(0.5, 2.0, size=n_components) * spread
    model = get_covariance_model(covariance_type)
    weights = rng.dirichlet(np.ones(n_components))
    return model, MixtureParams(weights, means, covs, model.precision_cholesky(covs))


def assert_scatter_is_outer_products(scatter, X, shifts, resp):
    """Each component's scatter is its weighted outer products around its shift, row by row."""
    for k in range(resp.shape[0]):
        diff = X - shifts[k]
        np.testing.assert_allclose(scatter[k], (diff * resp[k][:, None]).T @ diff,
                                   rtol=1e-10, atol=1e-8)


def full_covariances(covariance_type, params):
    k, d = params.means.shape
    covs = params.covariances
    if covariance_type == "tied":
        return np.broadcast_to(covs, (k, d, d))
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covs])
    if covariance_type == "spherical":
        return covs[:, None, None] * np.eye(d)
    return covs


def expected_weighted_log_prob(covariance_type, params, X):
    covs = full_covariances(covariance_type, params)
    return np.stack(
        [
            np.log(w) + multivariate_normal(mean, cov).logpdf(X)
            for w, mean, cov in zip(params.weights, params.means, covs)
        ]
    )


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weighted_log_prob_from_raw_rows_is_the_mixture_log_density(covariance_type):
    rng = np.random.default_rng(0)
    model, params = random_params(covariance_type, rng)
    X = rng.standard_normal((300, 3)) * 3
    got = _kernels.weighted_log_prob(model, X, params)
    # O(10) log-densities, each from O(1) terms in float64.
    np.testing.assert_allclose(got, expected_weighted_log_prob(covariance_type, params, X),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_component_is_computed_around_its_own_mean(covariance_type):
    rng = np.random.default_rng(1)
    model, params = random_params(covariance_type, rng, spread=1e-4)
    # One component 1e5 standard deviations from the mixture mean: expanding
    # its square around the centre would cancel all but a few digits.
    params.means[0] += 10.0
    X = params.means[0] + rng.standard_normal((200, 3)) * 1e-2
    centre = _kernels.mixture_centre(params)
    prep = model.prepare(params, centre, X.dtype)
    assert np.any(prep["offsets"][0] != 0)
    got = _kernels.weighted_log_prob(model, X, params, centre, prep)[0]
    expected = expected_weighted_log_prob(covariance_type, params, X)[0]
    # Log-densities of O(1e4) from whitened values of O(1e2): eps * 1e4 each.
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("n_features", [3, 40])
def test_float32_far_components_take_float64_products_as_exact_as_one_pass_each(
    monkeypatch, covariance_type, n_features
):
    from gaussmix import sklearn_diagonal_models

    rng = np.random.default_rng(3)
    model, params = random_params(covariance_type, rng, n_components=4, n_features=n_features)
    # Two components ~30 standard deviations from the centre, beyond float32's
    # far threshold (squared distance 84) and far within the float64
    # products'; two near it.
    means = params.means * np.array([[10.0], [10.0], [0.01], [0.01]])
    means[1] = -means[0]  # equal weights, so the centre is about 0
    params = MixtureParams(np.full(4, 0.25), means, params.covariances,
                           params.precisions_cholesky)
    X = (params.means[rng.integers(0, 4, 500)] + rng.standard_normal((500, n_features))) + 1e3
    params = MixtureParams(params.weights, params.means + 1e3, params.covariances,
                           params.precisions_cholesky)
    X32 = X.astype(np.float32)
    centre = _kernels.mixture_centre(params)
    prep = model.prepare(params, centre, np.float32)
    assert prep["upcast"] and len(prep["far"]) == 0
    got = _kernels.weighted_log_prob(model, X32, params, centre, prep)
    upcast = _kernels.e_step_chunk(model, X32, None, params, centre, prep)
    # The same one far component at a time, around its own mean, in float32.
    monkeypatch.setattr(sklearn_diagonal_models, "_UPCAST_LIMIT", 0.0)
    exact_prep = model.prepare(params, centre, np.float32)
    assert not exact_prep["upcast"] and len(exact_prep["far"]) == 2
    expected = _kernels.weighted_log_prob(model, X32, params, centre, exact_prep)
    # Log-densities from O(50) to O(1e5): float32 sums of D squares, a few ulps.
    np.testing.assert_allclose(got, expected, rtol=4 * n_features * np.finfo(np.float32).eps)
    exact = _kernels.e_step_chunk(model, X32, None, params, centre, exact_prep)
    np.testing.assert_array_equal(upcast.shift, exact.shift)
    # Sums of ~125 float32 terms of O(1) around each component's mean (its
    # own scale: a far component's error must not hide in a near one's).
    for name in ("sum_resp", "shift_sum", "scatter"):
        for k in range(4):
            a, b = getattr(upcast, name)[k], getattr(exact, name)[k]
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max(),
                                       err_msg=f"{name}[{k}]")


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_float32_given_shifts_keep_the_exact_pass_per_component(covariance_type):
    # A refinement pass: the shifts are the moved means, and one component's
    # rows are far tighter than its (old) variance says, 3000 from the centre.
    rng = np.random.default_rng(4)
    model = get_covariance_model(covariance_type)
    means = np.array([[-30.0] * 3, [3000.0] * 3])
    covs = np.array([[1.0] * 3, [1e4] * 3]) if covariance_type == "diag" else np.array([1.0, 1e4])
    params = MixtureParams(np.array([0.5, 0.5]), means, covs, model.precision_cholesky(covs))
    X = np.vstack([-30 + rng.standard_normal((2000, 3)),
                   3000 + 1e-3 * rng.standard_normal((2000, 3))]).astype(np.float32)
    X64 = X.astype(np.float64)
    shift = np.stack([X64[:2000].mean(axis=0), X64[2000:].mean(axis=0)])
    params = MixtureParams(params.weights, means, covs, params.precisions_cholesky, shift=shift)
    centre = _kernels.mixture_centre(params)
    prep = model.prepare(params, centre, np.float32)
    assert not prep["upcast"]
    stats = _kernels.e_step_chunk(model, X, None, params, centre, prep)
    got = model.centred_scatter(stats.scatter, stats.sum_resp, stats.shift_sum, stats.sum_resp)[1]
    tight = X64[2000:] - X64[2000:].mean(axis=0)
    expected = np.sum(tight**2, axis=0)
    expected = expected if covariance_type == "diag" else expected.sum()
    # Squares of float32 rows around their own mean: a few float32 ulps.
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direct_and_shifted_log_sum_exp_agree(dtype):
    rng = np.random.default_rng(2)
    weighted = (-20 + 5 * rng.standard_normal((5, 400))).astype(dtype)
    direct_density, direct_resp = _kernels.normalise_log_prob(weighted.copy())
    # A row beyond the direct range sends the chunk to the shifted path.
    shifted_input = np.concatenate([weighted, np.full((5, 1), -2000, dtype=dtype)], axis=1)
    shifted_density, shifted_resp = _kernels.normalise_log_prob(shifted_input)
    reference = logsumexp(weighted.astype(np.float64), axis=0)
    # Sums of 5 terms in the dtype, then a log of a value near e^-20.
    atol = 1e-13 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(direct_density, reference, atol=atol)
    np.testing.assert_allclose(shifted_density[:-1], reference, atol=atol)
    np.testing.assert_allclose(direct_resp, shifted_resp[:, :-1], atol=10 * np.finfo(dtype).eps)
    assert shifted_density[-1] == pytest.approx(-2000 + np.log(5), rel=1e-6)


def test_log_sum_exp_out_of_range_rows_without_warnings():
    # Beyond exp's range above and below, and a component of zero weight.
    weighted = np.array([[800.0, -1e4, 0.0, -np.inf], [799.0, -1e4 - 1, -1.0, -5.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_density, resp = _kernels.normalise_log_prob(weighted.copy())
    np.testing.assert_allclose(log_density, logsumexp(weighted, axis=0), rtol=1e-14)
    np.testing.assert_allclose(resp.sum(axis=0), 1.0, rtol=1e-14)
    assert resp[0, 3] == 0.0


def test_one_component_has_responsibility_exactly_one():
    weighted = np.array([[-1.0, -700.0, 3.5, -0.25]])
    log_density, resp = _kernels.normalise_log_prob(weighted.copy())
    np.testing.assert_array_equal(resp, 1.0)
    np.testing.assert_array_equal(log_density, weighted[0])


@pytest.mark.parametrize("n_features", [1, 2, 9, 16, 17, 33, 40, 64, 70])
def test_full_blocks_cover_the_features_in_order(n_features):
    from gaussmix._covariance_numerics import feature_blocks

    blocks = feature_blocks(n_features)
    assert blocks[0][0] == 0 and blocks[-1][1] == n_features
    assert all(stop > start for start, stop in blocks)
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))


@pytest.mark.parametrize("n_features", [1, 9, 17, 40, 70])
@pytest.mark.parametrize("far", [False, True])
def test_full_block_triangular_kernels_match_direct_computation(n_features, far):
    # Several feature blocks (and one), every component near the centre or
    # one far from it: log-densities against scipy, scatter against the
    # weighted outer products summed row by row.
    rng = np.random.default_rng(n_features)
    model, params = random_params("full", rng, n_components=3, n_features=n_features)
    if far:
        params.means[0] += 1e5 * np.sqrt(np.diag(params.covariances[0]))
    X = params.means[rng.integers(0, 3, 400)] + rng.standard_normal((400, n_features))
    centre = _kernels.mixture_centre(params)
    prep = model.prepare(params, centre, X.dtype)
    # The centre is the means' weighted median: the far one is off it, or
    # (where it carries half the weight) the two others are.
    assert bool(np.any(prep["offsets"] != 0)) == far
    weighted, aux = model.log_prob_rows(X, centre, prep)
    expected = expected_weighted_log_prob("full", params, X)
    # O(1e11) log-densities of the far component from whitened values of
    # O(1e5): relative eps * 1e5 each; O(10) otherwise.
    np.testing.assert_allclose(weighted, expected, rtol=1e-9 if far else 1e-12, atol=1e-10)
    resp = rng.dirichlet(np.ones(3), size=400).T.copy()
    sum_resp, shift_sum, scatter = model.stats_rows(X, centre, resp, prep["offsets"], aux)
    shifts = prep["shift"]
    np.testing.assert_allclose(sum_resp, resp.sum(axis=1), rtol=1e-13)
    for k in range(3):
        diff = X - shifts[k]
        np.testing.assert_allclose(shift_sum[k], resp[k] @ diff, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(scatter[k], (diff * resp[k][:, None]).T @ diff,
                                   rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0.0, -30.0, 40.0])
def test_log_sum_exp_never_makes_subnormal_responsibilities(dtype, offset):
    # Terms whose exp would be subnormal (10-20x slower to compute with) are
    # raised to a floor far below the rounding of their row's sum: every
    # responsibility is zero or normal, and the results are unchanged.
    rng = np.random.default_rng(3)
    tiny = np.finfo(dtype).tiny
    spread = -np.log(tiny) * 1.5
    weighted = (offset - rng.uniform(0, spread, size=(8, 500))).astype(dtype)
    weighted[:, ::7] = offset  # some rows far from the floor everywhere
    weighted[5] = -np.inf  # a component of zero weight
    expected_density = logsumexp(weighted.astype(np.float64), axis=0)
    expected_resp = np.exp(weighted.astype(np.float64) - expected_density)
    log_density, resp = _kernels.normalise_log_prob(weighted.copy())
    eps = np.finfo(dtype).eps
    nonzero = resp[resp != 0]
    assert np.all(np.abs(nonzero) >= tiny)
    assert np.all(resp[5] == 0)
    np.testing.assert_allclose(log_density, expected_density, rtol=10 * eps, atol=10 * eps)
    np.testing.assert_allclose(resp.sum(axis=0), 1.0, rtol=10 * eps)
    # exp(w) carries the rounding of w, eps * |w| relative, up to eps * spread.
    np.testing.assert_allclose(resp, expected_resp, rtol=2 * eps * spread, atol=10 * eps)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [5, 40])
@pytest.mark.parametrize("far", [False, True])
def test_kernels_match_direct_computation_at_few_and_many_features(
    covariance_type, n_features, far
):
    # Diagonal models lay their features out differently from 32 features
    # on; both layouts, near and far components, against scipy and sums of
    # weighted outer products row by row.
    rng = np.random.default_rng(n_features + 100 * far)
    model, params = random_params(covariance_type, rng, n_components=3, n_features=n_features)
    if far:
        params.means[0] += 1e5
    X = params.means[rng.integers(0, 3, 300)] + rng.standard_normal((300, n_features))
    centre = _kernels.mixture_centre(params)
    prep = model.prepare(params, centre, X.dtype)
    # The centre is the means' weighted median: the far one is off it, or
    # (where it carries half the weight) the two others are.
    assert bool(np.any(prep["offsets"] != 0)) == far
    weighted, aux = model.log_prob_rows(X, centre, prep)
    expected = expected_weighted_log_prob(covariance_type, params, X)
    # Far: log-densities of O(1e10) from O(1e5) whitened values.
    np.testing.assert_allclose(weighted, expected, rtol=1e-9 if far else 1e-11, atol=1e-9)
    resp = rng.dirichlet(np.ones(3), size=300).T.copy()
    sum_resp, shift_sum, scatter = model.stats_rows(X, centre, resp, prep["offsets"], aux)
    np.testing.assert_allclose(sum_resp, resp.sum(axis=1), rtol=1e-13)
    for k in range(3):
        diff = X - prep["shift"][k]
        np.testing.assert_allclose(shift_sum[k], resp[k] @ diff, rtol=1e-10, atol=1e-8)
    if covariance_type in ("diag", "spherical"):
        per_feature = np.stack([np.einsum("n,nd->d", resp[k], (X - prep["shift"][k]) ** 2)
                                for k in range(3)])
        wanted = per_feature if covariance_type == "diag" else per_feature.sum(axis=1)
        np.testing.assert_allclose(scatter, wanted, rtol=1e-10, atol=1e-8)
    elif covariance_type == "full":
        for k in range(3):
            diff = X - prep["shift"][k]
            np.testing.assert_allclose(scatter[k], (diff * resp[k][:, None]).T @ diff,
                                       rtol=1e-10, atol=1e-8)
    else:  # tied: one scatter, each component's rows around its own shift
        wanted = sum((X - prep["shift"][k]).T @ ((X - prep["shift"][k]) * resp[k][:, None])
                     for k in range(3))
        np.testing.assert_allclose(scatter, wanted, rtol=1e-10, atol=1e-8)


def test_raising_to_the_floor_keeps_the_dtype_and_the_values():
    # A float64 floor (per row, as the direct path passes it) on float32
    # values: the result is float32 and is what the float64 maximum, rounded
    # to float32, would give, bit for bit.
    rng = np.random.default_rng(11)
    weighted = (rng.standard_normal((5, 300)) * 40 - 60).astype(np.float32)
    weighted[1, ::17] = -np.inf  # components of zero weight stay at -inf
    floor = rng.uniform(-90.0, -60.0, size=300)  # float64
    for values in (weighted[:, :], weighted[1:, :]):
        got = values.copy()
        _kernels._raise_to_floor(got, floor)
        assert got.dtype == np.float32
        wanted = np.where(values > -np.inf, np.maximum(values.astype(np.float64), floor),
                          -np.inf).astype(np.float32)
        np.testing.assert_array_equal(got, wanted)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("left_rows, right_rows", [(3, 17), (17, 3), (5, 5)])
def test_matmul_t_is_the_product_with_the_transpose_c_ordered(dtype, left_rows, right_rows):
    from gaussmix._covariance_numerics import matmul_t

    rng = np.random.default_rng(left_rows)
    left = rng.standard_normal((left_rows, 200)).astype(dtype)
    right = rng.standard_normal((right_rows, 200)).astype(dtype)
    got = matmul_t(left, right)
    assert got.dtype == dtype and got.flags.c_contiguous
    wanted = left.astype(np.float64) @ right.astype(np.float64).T
    # Sums of 200 products of O(1): a few hundred roundings at most.
    rtol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, wanted, rtol=rtol, atol=rtol * 200)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_negligible_responsibilities_become_zero_only_near_the_floor(dtype):
    info = np.finfo(dtype)
    resp = np.array([[1.0, 0.5, info.eps**2 * 2], [0.0, 0.5, 0.3]], dtype=dtype)
    untouched = resp.copy()
    _kernels._drop_negligible(resp)
    # Nothing near the floor: the chunk is left as it is, bit for bit.
    np.testing.assert_array_equal(resp, untouched)
    resp[1, 0] = info.tiny * 50  # a responsibility raised to the floor
    resp[0, 1] = info.eps**2 / 2
    expected = resp.copy()
    expected[1, 0] = expected[0, 1] = 0.0
    _kernels._drop_negligible(resp)
    np.testing.assert_array_equal(resp, expected)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_dropping_negligible_responsibilities_keeps_the_statistics(covariance_type, monkeypatch):
    # Well-separated components in float32: most responsibilities sit at the
    # underflow floor and are dropped.  The statistics move by the dropped
    # terms only (below 1e-13 relative, see _drop_negligible) and by the
    # float32 rounding they perturb.
    rng = np.random.default_rng(7)
    model, params = random_params(covariance_type, rng, n_components=4, n_features=3)
    params = MixtureParams(params.weights, params.means * 20, params.covariances,
                           params.precisions_cholesky)
    labels = rng.integers(0, 4, size=3000)
    X = (params.means[labels] + rng.standard_normal((3000, 3))).astype(np.float32)
    dropped = _kernels.e_step_chunk(model, X, None, params)
    monkeypatch.setattr(_kernels, "_drop_negligible", lambda resp: None)
    kept = _kernels.e_step_chunk(model, X, None, params)
    for name in ("sum_resp", "shift_sum", "scatter"):
        np.testing.assert_allclose(
            getattr(dropped, name), getattr(kept, name),
            rtol=1e-5, atol=1e-5 * np.abs(getattr(kept, name)).max(),
        )
    assert dropped.log_likelihood == kept.log_likelihood


@pytest.mark.parametrize("n_features", [3, 40])
def test_full_scatter_of_many_far_components_in_groups(n_features):
    # Far components are summed around their own means a group at a time
    # (6 per group at 40 features and 12 components): every component, in
    # every group and beside near ones, against weighted outer products.
    rng = np.random.default_rng(n_features)
    n_components = 12
    model, params = random_params("full", rng, n_components=n_components, n_features=n_features)
    params.means[:9] += rng.standard_normal((9, n_features)) * 1e5  # 9 far, 3 near
    X = params.means[rng.integers(0, n_components, 400)] + rng.standard_normal((400, n_features))
    centre = _kernels.mixture_centre(params)
    prep = model.prepare(params, centre, X.dtype)
    far = np.flatnonzero(prep["offsets"].any(axis=1))
    assert far.size >= 9
    _, aux = model.log_prob_rows(X, centre, prep)
    resp = rng.dirichlet(np.ones(n_components), size=400).T.copy()
    _, _, scatter = model.stats_rows(X, centre, resp, prep["offsets"], aux)
    assert_scatter_is_outer_products(scatter, X, prep["shift"], resp)


@pytest.mark.parametrize("n_features", [3, 40])
@pytest.mark.parametrize("zero_fraction", [0.9, 0.0])
def test_full_scatter_of_far_components_with_mostly_zero_responsibilities(
    n_features, zero_fraction, monkeypatch
):
    # Separated clusters leave far components with zero responsibility for
    # most rows; their nonzero rows alone are gathered (zero_fraction 0.9)
    # unless they are too many (0.0, every row counts).  Both give the
    # weighted outer products around each component's own shift.
    rng = np.random.default_rng(n_features + 7)
    n_components, n_samples = 12, 400
    model, params = random_params("full", rng, n_components=n_components, n_features=n_features)
    params.means[:9] += rng.standard_normal((9, n_features)) * 1e5  # 9 far, 3 near
    X = params.means[rng.integers(0, n_components, n_samples)] + rng.standard_normal(
        (n_samples, n_features)
    )
    centre = _kernels.mixture_centre(params)
    prep = model.prepare(params, centre, X.dtype)
    _, aux = model.log_prob_rows(X, centre, prep)
    resp = rng.dirichlet(np.ones(n_components), size=n_samples).T.copy()
    resp *= rng.random(resp.shape) >= zero_fraction
    resp[:, :3] = 0.0  # rows that count for no component at all
    from gaussmix import _covariance_numerics

    gathered = []

    def spy(*args, **kwargs):
        gathered.append(spy.__wrapped__(*args, **kwargs))
        return gathered[-1]

    spy.__wrapped__ = _covariance_numerics._sparse_scatter_around
    monkeypatch.setattr(_covariance_numerics, "_sparse_scatter_around", spy)
    _, _, scatter = model.stats_rows(X, centre, resp, prep["offsets"], aux)
    assert len(gathered) == 1 and (gathered[0] is not None) == (zero_fraction > 0)
    for k in range(n_components):
        diff = X - prep["shift"][k]
        np.testing.assert_allclose(scatter[k], (diff * resp[k][:, None]).T @ diff,
                                   rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_scatter_gathers_nonzero_rows_or_declines(dtype):
    from gaussmix._covariance_numerics import _sparse_scatter_around

    rng = np.random.default_rng(5)
    centred_t = rng.standard_normal((4, 50)).astype(dtype)
    # Offsets far from the rows: the padding of the shorter components must
    # add nothing, whatever the offsets.
    offsets = (rng.standard_normal((3, 4)) * 100).astype(dtype)
    resp = (rng.random((3, 50)) * (rng.random((3, 50)) < 0.2)).astype(dtype)
    resp[0, :20] = 0.5  # the widest component, the others padded to it
    resp[2] = 0.0  # a component with no rows: a zero matrix
    got, first = _sparse_scatter_around(centred_t, resp, offsets, max_rows=50)
    assert got.dtype == dtype and first.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for k in range(3):
        diff = centred_t.T.astype(np.float64) - offsets[k]
        wanted = (diff * resp[k][:, None]).T @ diff
        np.testing.assert_allclose(got[k], wanted, rtol=rtol, atol=rtol * np.abs(wanted).max())
        wanted_first = resp[k] @ diff
        np.testing.assert_allclose(first[k], wanted_first, rtol=rtol,
                                   atol=rtol * np.abs(wanted_first).max())
    assert not got[2].any() and not first[2].any()
    most = int(np.count_nonzero(resp, axis=1).max())
    assert _sparse_scatter_around(centred_t, resp, offsets, max_rows=most - 1) is None
    assert _sparse_scatter_around(centred_t, resp, offsets, max_rows=most) is not None


def test_chunks_grow_with_the_data_up_to_a_cap():
    # Up to 32768 rows the chunk budget is the model's; beyond, it grows
    # with the rows up to 4 MiB, and never shrinks below the model's own.
    base = _kernels.chunk_size_for(16, 16, 8, width=160)
    assert _kernels.chunk_size_for(16, 16, 8, width=160, n_samples=32768) == base
    grown = [
        _kernels.chunk_size_for(16, 16, 8, width=160, n_samples=n)
        for n in (40_000, 65_536, 100_000, 131_072, 10**6, 10**8)
    ]
    assert grown == sorted(grown) and grown[0] > base
    assert grown[-1] == grown[-2] == grown[-3] == (4 << 20) // (160 * 8)
    # A model whose own budget is already 2 MiB grows to 4 MiB too, no further.
    own = _kernels.chunk_size_for(16, 16, 8, width=64, chunk_bytes=2 << 20)
    most = _kernels.chunk_size_for(16, 16, 8, width=64, chunk_bytes=2 << 20, n_samples=10**7)
    assert most == min(2 * own, 16384)
    # float32 rows are half as wide: twice the rows for the same bytes.
    assert _kernels.chunk_size_for(16, 16, 4, width=160, n_samples=10**6) == (4 << 20) // (160 * 4)


@pytest.mark.parametrize("n_features, n_components", [(1, 1), (2, 3), (5, 3), (16, 16), (33, 17)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_packed_scatter_is_the_weighted_outer_products(n_features, n_components, dtype):
    from gaussmix._covariance_numerics import (
        _blocked_scatter, _packed_scatter, feature_blocks, packed_scatter_wins,
    )

    assert packed_scatter_wins(n_components, n_features)
    rng = np.random.default_rng(n_features)
    centred_t = rng.standard_normal((n_features, 500)).astype(dtype)
    resp = rng.dirichlet(np.ones(n_components), size=500).T.astype(dtype)
    packed = _packed_scatter(centred_t, resp)
    assert packed.dtype == dtype
    np.testing.assert_array_equal(packed, np.swapaxes(packed, 1, 2))
    x = centred_t.astype(np.float64)
    wanted = np.einsum("kn,an,bn->kab", resp.astype(np.float64), x, x)
    # Sums of 500 terms of O(1): a few hundred roundings of the dtype.
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(packed, wanted, rtol=rtol, atol=rtol * 500)
    blocked = _blocked_scatter(centred_t, resp, feature_blocks(n_features))
    np.testing.assert_allclose(packed, blocked, rtol=rtol, atol=rtol * 500)


def test_packed_scatter_serves_many_components_and_few_features_only():
    from gaussmix._covariance_numerics import packed_scatter_wins

    assert packed_scatter_wins(16, 16) and packed_scatter_wins(64, 16)
    assert packed_scatter_wins(64, 64) and packed_scatter_wins(3, 2)
    assert not packed_scatter_wins(8, 16) and not packed_scatter_wins(16, 64)
    assert not packed_scatter_wins(16, 32)


@pytest.mark.parametrize("far", [False, True])
def test_full_statistics_with_packed_scatter_match_direct_sums(far):
    # 16 features and 16 components take the packed products; one far
    # component keeps its own pass, the others the packed products.
    rng = np.random.default_rng(7)
    n_components, n_features = 16, 16
    model, params = random_params("full", rng, n_components=n_components, n_features=n_features)
    if far:
        params.means[0] += 1e5 * np.sqrt(np.diag(params.covariances[0]))
    X = params.means[rng.integers(0, n_components, 600)] + rng.standard_normal((600, n_features))
    centre = _kernels.mixture_centre(params)
    prep = model.prepare(params, centre, X.dtype)
    # The centre is the means' weighted median: the far one is off it, or
    # (where it carries half the weight) the two others are.
    assert bool(np.any(prep["offsets"] != 0)) == far
    _, aux = model.log_prob_rows(X, centre, prep)
    resp = rng.dirichlet(np.ones(n_components), size=600).T.copy()
    _, _, scatter = model.stats_rows(X, centre, resp, prep["offsets"], aux)
    assert_scatter_is_outer_products(scatter, X, prep["shift"], resp)


def test_the_centre_is_the_weighted_median_of_the_means_feature_by_feature():
    means = np.array([[0.0, 5.0], [1.0, -2.0], [1e6, 1e6]])
    covariances = np.ones((3, 2))
    params = MixtureParams(np.array([0.45, 0.45, 0.1]), means, covariances, covariances)
    # The light component far out does not move it: each feature's middle mean.
    np.testing.assert_array_equal(_kernels.mixture_centre(params), [1.0, 5.0])
    # An even split of the weight: the midpoint of the two middle means.
    even = MixtureParams(np.array([0.5, 0.5]), means[:2], covariances[:2], covariances[:2])
    np.testing.assert_array_equal(_kernels.mixture_centre(even), [0.5, 1.5])
    # Rounded to the data's dtype.
    far = MixtureParams(np.ones(1), np.array([[1e6 + 0.01, 3.0]]), covariances[:1], covariances[:1])
    assert _kernels.mixture_centre(far, np.float32)[0] == np.float32(1e6 + 0.01)
