"""The compiled normalisation of a chunk's log-probabilities, and when the E-step takes it."""

import warnings

import numpy as np
import pytest

pytest.importorskip("numba")

from gaussmix import GaussianMixture, _kernels, em  # noqa: E402
from gaussmix._softmax_kernels import fast_exp_into, normalise_rows  # noqa: E402
from gaussmix.covariance import get_covariance_model  # noqa: E402
from gaussmix.params import MixtureParams  # noqa: E402

from _helpers import count_calls  # noqa: E402

DTYPES = [np.float64, np.float32]


def fitted_params(gm):
    return MixtureParams(gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_)


def smallest(dtype):
    return np.dtype(dtype).type(np.finfo(dtype).eps ** 2)


def numpy_normalisation(weighted):
    """The numpy path: normalise_log_prob, then the negligible terms dropped."""
    log_density, resp = _kernels.normalise_log_prob(weighted.copy())
    _kernels._drop_negligible(resp)
    return log_density, resp


def log_probabilities(rng, dtype, n_components=24, n_samples=700, spread=25.0):
    """Values spanning far more than the dtype's exp range, with a zero-weight component."""
    weighted = rng.standard_normal((n_components, n_samples)) * spread - 40.0
    weighted[3] = -np.inf
    weighted[:, :5] -= 1e4  # rows far from every component
    return weighted.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_exp_is_within_one_unit_in_the_last_place(dtype):
    if dtype == np.float64 and np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
        pytest.skip("no extended precision to compare float64 with on this platform")
    low = np.log(smallest(dtype))
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(low, 0.0, 200_001), rng.uniform(low, 0.0, 200_000)]).astype(dtype)
    out = np.empty_like(x)
    fast_exp_into(x, out)
    exact = np.exp(x.astype(np.longdouble))
    ulps = np.abs(out.astype(np.longdouble) - exact) / np.spacing(exact.astype(dtype))
    assert ulps.max() <= 1.0
    assert out[x == 0.0].tolist() == [1.0]
    assert np.all(out >= np.finfo(dtype).tiny)  # never subnormal on this range


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalise_rows_agrees_with_the_numpy_path(dtype):
    weighted = log_probabilities(np.random.default_rng(1), dtype)
    expected_log_density, expected_resp = numpy_normalisation(weighted)
    resp = weighted.copy()
    log_density = np.empty(weighted.shape[1], dtype)
    nonzero = normalise_rows(resp, log_density, smallest(dtype))
    eps = np.finfo(dtype).eps
    # Each responsibility: the exp (one ulp), the sum of K terms and the
    # scaling round, in both paths.  The log-densities: log(s) + m, each
    # term within a few ulps of its magnitude.
    tolerance = (weighted.shape[0] + 4) * eps
    np.testing.assert_allclose(resp, expected_resp, rtol=tolerance, atol=smallest(dtype))
    magnitude = np.abs(expected_log_density) + 1.0
    assert np.all(np.abs(log_density - expected_log_density) <= 4 * eps * magnitude)
    # Zero exactly where the numpy path dropped the term (below eps**2),
    # and for the zero-weight component.
    assert np.array_equal(resp == 0, expected_resp == 0)
    assert np.all(resp[3] == 0)
    assert nonzero == np.count_nonzero(resp)
    assert resp.dtype == dtype and log_density.dtype == dtype
    np.testing.assert_allclose(resp.sum(axis=0, dtype=np.float64), 1.0, rtol=tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_component_keeps_responsibility_exactly_one(dtype):
    weighted = np.array([[-3.5, 12.0, -900.0]], dtype=dtype)
    log_density = np.empty(3, dtype)
    resp = weighted.copy()
    assert normalise_rows(resp, log_density, smallest(dtype)) == 3
    assert resp.tolist() == [[1.0, 1.0, 1.0]]
    assert log_density.tolist() == weighted[0].tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", ["nan", "inf", "row of -inf"])
def test_values_left_to_numpy_change_nothing(dtype, bad):
    weighted = log_probabilities(np.random.default_rng(2), dtype)
    if bad == "nan":
        weighted[5, 17] = np.nan
    elif bad == "inf":
        weighted[0, 9] = np.inf
    else:
        weighted[:, 9] = -np.inf
    before = weighted.copy()
    log_density = np.zeros(weighted.shape[1], dtype)
    assert normalise_rows(weighted, log_density, smallest(dtype)) == -1
    np.testing.assert_array_equal(weighted, before)
    assert not log_density.any()
    assert _kernels.normalise_compiled(weighted) is None


def test_normalise_compiled_serves_float32_and_float64_only(monkeypatch):
    weighted = log_probabilities(np.random.default_rng(3), np.float64, n_samples=50)
    log_density, resp, nonzero = _kernels.normalise_compiled(weighted.copy())
    assert nonzero == np.count_nonzero(resp)
    assert _kernels.normalise_compiled(weighted.astype(np.float16)) is None
    # A non-contiguous array is normalised from a copy, returned as resp.
    strided = np.asfortranarray(weighted)
    _, resp_strided, _ = _kernels.normalise_compiled(strided)
    np.testing.assert_array_equal(resp_strided, resp)
    monkeypatch.setattr(_kernels, "compiled_module", lambda name: None)
    assert _kernels.normalise_compiled(weighted.copy()) is None


def test_compiled_normalisation_rule():
    work, terms = em.COMPILED_KERNELS_WORK, em.COMPILED_NORMALISATION_TERMS
    assert em.compiled_normalisation(work, terms, False)
    assert not em.compiled_normalisation(work, terms - 1, False)
    assert em.compiled_normalisation(work, 1, True)
    assert not em.compiled_normalisation(work - 1, terms, True)


def expectation_prep(monkeypatch, covariance_type, n_samples, n_features, n_components):
    """The prep of one expectation pass, captured from e_step_chunk."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((n_samples, n_features))
    gm = GaussianMixture(n_components, covariance_type=covariance_type, max_iter=1,
                         random_state=0, init_params="random_from_data")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X[:2000])
    seen = []
    original = _kernels.e_step_chunk

    def spy(model, X, sample_weight, params, centre=None, prep=None):
        seen.append(prep)
        return original(model, X, sample_weight, params, centre, prep)

    monkeypatch.setattr(_kernels, "e_step_chunk", spy)
    model = get_covariance_model(covariance_type)
    em.expectation(model, X, None, fitted_params(gm), chunk_size=n_samples)
    return seen[0]


def test_expectation_takes_it_in_compiled_passes_by_the_rule(monkeypatch):
    # Full covariance: every compiled pass (its other kernels load numba).
    rows = -(-em.COMPILED_KERNELS_WORK // (8 * 4))
    prep = expectation_prep(monkeypatch, "full", rows, 8, 4)
    assert prep.get("compiled_normalisation")
    prep = expectation_prep(monkeypatch, "full", rows - 1, 8, 4)
    assert not prep.get("compiled_normalisation")
    # Other models: compiled passes of at least COMPILED_NORMALISATION_TERMS.
    prep = expectation_prep(monkeypatch, "diag", rows, 8, 4)
    assert rows * 4 < em.COMPILED_NORMALISATION_TERMS
    assert not prep.get("compiled_normalisation")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_e_step_chunk_statistics_agree_with_the_numpy_path(dtype, covariance_type):
    rng = np.random.default_rng(6)
    means = rng.standard_normal((6, 5)) * 4.0
    labels = rng.integers(6, size=4000)
    X = (means[labels] + rng.standard_normal((4000, 5)) + 1e3).astype(dtype)
    gm = GaussianMixture(6, covariance_type=covariance_type, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(X)
    params = fitted_params(gm)
    model = get_covariance_model(covariance_type)
    weights = rng.uniform(0.5, 2.0, size=X.shape[0])
    centre = _kernels.mixture_centre(params, X.dtype)
    prep = model.prepare(params, centre, X.dtype)
    for sample_weight in (None, weights):
        plain = _kernels.e_step_chunk(model, X, sample_weight, params, centre, prep)
        fused = _kernels.e_step_chunk(model, X, sample_weight, params, centre,
                                      {**prep, "compiled_normalisation": True})
        # Each term is within K + 4 roundings of the numpy path's; the sums
        # of n terms round, each path its own way, by at most n eps.
        rtol = float((means.shape[0] + 4 + 2 * X.shape[0]) * np.finfo(dtype).eps)
        np.testing.assert_allclose(fused.log_likelihood, plain.log_likelihood, rtol=rtol)
        np.testing.assert_allclose(fused.sum_resp, plain.sum_resp, rtol=rtol)
        for name in ("shift_sum", "scatter"):
            a, b = getattr(fused, name), getattr(plain, name)
            scale = np.abs(b).max()
            assert np.all(np.abs(a - b) <= rtol * scale), name
        assert fused.worst_log_density == pytest.approx(plain.worst_log_density, rel=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_with_the_compiled_normalisation_matches_the_numpy_fit(monkeypatch, dtype):
    rng = np.random.default_rng(7)
    n_samples, n_features, n_components = 9000, 12, 16
    assert em.compiled_normalisation(n_samples * n_features * n_components,
                                     n_samples * n_components, True) is False
    means = rng.standard_normal((n_components, n_features)) * 2.0
    labels = rng.integers(n_components, size=n_samples)
    X = (means[labels] + rng.standard_normal((n_samples, n_features))).astype(dtype)
    start = GaussianMixture(n_components, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start.fit(X)
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_)

    def fit():
        gm = GaussianMixture(n_components, tol=0.0, max_iter=15, **init)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gm.fit(X)

    plain = fit()
    monkeypatch.setattr(em, "compiled_normalisation", lambda *args: True)
    calls = count_calls(monkeypatch, _kernels, "normalise_compiled")
    fused = fit()
    assert calls
    # Fifteen iterations from the same start carry each E-step's rounding
    # differences through the M-steps.  float32: the lower bound within the
    # 1e-5 relative that float32 fits keep to float64's, the parameters
    # (of unit scale) within some thousand float32 roundings.
    lower_bound_rtol, atol = (1e-12, 1e-9) if dtype == np.float64 else (1e-5, 2e-4)
    np.testing.assert_allclose(fused.lower_bound_, plain.lower_bound_, rtol=lower_bound_rtol)
    np.testing.assert_allclose(fused.means_, plain.means_, rtol=0, atol=atol)
    np.testing.assert_allclose(fused.covariances_, plain.covariances_, rtol=0, atol=atol)


def test_scores_of_a_compiled_pass_take_it_too(monkeypatch):
    """score_samples follows the fit's rule, so that rows score as the fit's passes measure them."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((3000, 6)) + rng.integers(3, size=(3000, 1)) * 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(3, random_state=0).fit(X)
    numpy_scores = gm.score_samples(X)
    calls = count_calls(monkeypatch, _kernels, "normalise_compiled")
    assert not calls and gm.score_samples(X[:10]).shape == (10,) and not calls
    monkeypatch.setattr(em, "COMPILED_KERNELS_WORK", 1)
    compiled_scores = gm.score_samples(X)
    assert calls
    # log(s) + m: each within a few ulps of its magnitude in either path.
    eps = np.finfo(np.float64).eps
    assert np.all(np.abs(compiled_scores - numpy_scores) <= 8 * eps * (np.abs(numpy_scores) + 1))
    # Labels and responsibilities keep scikit-learn's forms.
    calls.clear()
    gm.predict_proba(X)
    gm.predict(X)
    assert not calls


@pytest.mark.parametrize("dtype", DTYPES)
def test_expectation_with_it_does_not_depend_on_the_number_of_threads(monkeypatch, dtype):
    """The kernel works on one chunk at a time: chunks summed in order stay bitwise equal."""
    from gaussmix import _parallel

    rng = np.random.default_rng(9)
    X = (rng.standard_normal((20_000, 6)) + rng.integers(5, size=(20_000, 1)) * 2.5).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(5, max_iter=2, tol=0, random_state=0).fit(X)
    params = fitted_params(gm)
    model = get_covariance_model("full")
    monkeypatch.setattr(em, "compiled_normalisation", lambda *args: True)
    calls = count_calls(monkeypatch, _kernels, "normalise_compiled")
    results = []
    try:
        for n_threads in (1, 2, 3):
            _parallel.set_num_threads(n_threads)
            results.append(em.expectation(model, X, None, params, chunk_size=1500))
    finally:
        _parallel.set_num_threads(None)
    assert len(calls) == 3 * 14
    for other in results[1:]:
        for name in ("sum_resp", "shift_sum", "scatter"):
            np.testing.assert_array_equal(getattr(other, name), getattr(results[0], name))
        assert other.log_likelihood == results[0].log_likelihood
