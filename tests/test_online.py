"""partial_fit: stepwise online EM, its statistics and its accuracy."""

import warnings

import numpy as np
import pytest

from gaussmix import GaussianMixture
from gaussmix import online
from gaussmix.covariance import covariance_model_names, get_covariance_model
from gaussmix.em import maximization
from gaussmix.suffstats import SuffStats

TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_MEANS = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]])
TRUE_COVS = np.array([np.eye(2), [[1.0, 0.5], [0.5, 1.0]], [[2.0, 0.0], [0.0, 0.5]]])


def draw(rng, n):
    labels = rng.choice(3, size=n, p=TRUE_WEIGHTS)
    X = np.empty((n, 2))
    for k in range(3):
        rows = labels == k
        X[rows] = rng.multivariate_normal(TRUE_MEANS[k], TRUE_COVS[k], size=rows.sum())
    return X


def by_position(model):
    """Component order by mean, so that fits with permuted labels compare."""
    return np.lexsort(model.means_.T[::-1])


@pytest.mark.parametrize("name", covariance_model_names())
def test_moved_statistics_equal_statistics_accumulated_around_the_new_shift(name):
    model = get_covariance_model(name)
    rng = np.random.default_rng(1)
    n_features = 1 if name in ("E", "V") else 3
    Xc = rng.normal(size=(200, n_features)) * 3.0 + 50.0
    resp = rng.dirichlet(np.ones(4), size=200).T.copy()
    old = rng.normal(size=(4, n_features)) + 50.0
    new = rng.normal(size=(4, n_features)) + 50.0
    # Non-zero offsets make every kernel accumulate exactly around them.
    shift_sum_old, scatter_old = model.chunk_stats(Xc, resp, old)
    shift_sum_new, scatter_new = model.chunk_stats(Xc, resp, new)
    stats = SuffStats(resp.sum(axis=1), shift_sum_old, scatter_old, old, 0.0, 200.0)
    result = online.moved(model, stats, new)
    # The correction terms are of the size of the scatter itself (offsets of
    # about one standard deviation): agreement to a few ulps of it.
    scale = np.max(np.abs(scatter_new))
    np.testing.assert_allclose(result.shift_sum, shift_sum_new, atol=1e-12 * 200 * 50)
    np.testing.assert_allclose(result.scatter, scatter_new, atol=1e-12 * scale)


def test_blend_with_step_one_is_the_batch_per_unit_weight():
    model = get_covariance_model("full")
    rng = np.random.default_rng(2)
    Xc = rng.normal(size=(100, 2))
    resp = rng.dirichlet(np.ones(2), size=100).T.copy()
    shift = np.zeros((2, 2))
    s, S = model.chunk_stats(Xc, resp, shift)
    batch = SuffStats(resp.sum(axis=1), s, S, shift, -150.0, 100.0)
    other = SuffStats(np.ones(2), np.ones((2, 2)), np.ones((2, 2, 2)), shift + 1, -3.0, 1.0)
    blended = online.blend(model, other, batch, 1.0)
    np.testing.assert_allclose(blended.scatter, S / 100.0, rtol=1e-14)
    np.testing.assert_allclose(blended.sum_resp, resp.sum(axis=1) / 100.0, rtol=1e-14)
    assert blended.log_likelihood == pytest.approx(-1.5)
    assert blended.weight_sum == 1.0


def test_step_sizes_follow_the_documented_schedule():
    assert online.step_size(0, 0.7, 10.0) == 1.0
    assert online.step_size(1, 0.7, 10.0) == pytest.approx(11.0**-0.7)
    assert online.step_size(5, 1.0, 0.0) == pytest.approx(0.2)


def test_repeated_passes_reach_the_full_batch_optimum():
    rng = np.random.default_rng(0)
    X = draw(rng, 20000)
    full = GaussianMixture(3, random_state=0, tol=1e-10, max_iter=1000).fit(X)
    stream = GaussianMixture(3, random_state=0)
    gaps = []
    for n_pass in range(20):
        for batch in np.array_split(rng.permutation(X), 20):
            stream.partial_fit(batch)
        if n_pass in (0, 19):
            gaps.append(full.score(X) - stream.score(X))
    assert stream.n_batch_iter_ == 400
    # The full-batch fit is the maximum: no stream beats it, and 20 passes
    # close the gap to the noise of the last steps' averaging (measured
    # 9e-5 after one pass, 2e-7 after twenty).
    assert gaps[0] >= -1e-12 and gaps[1] >= -1e-12
    assert gaps[1] < gaps[0] / 20
    assert gaps[1] < 2e-6
    a, b = by_position(stream), by_position(full)
    np.testing.assert_allclose(stream.means_[a], full.means_[b], atol=5e-3)
    np.testing.assert_allclose(stream.covariances_[a], full.covariances_[b], atol=1e-2)


def test_an_iid_stream_converges_to_the_generating_parameters():
    rng = np.random.default_rng(3)
    stream = GaussianMixture(3, random_state=0)
    for _ in range(200):
        stream.partial_fit(draw(rng, 500))
    order = by_position(stream)
    truth = np.lexsort(TRUE_MEANS.T[::-1])
    # 100,000 draws in all: standard errors of a mean are about
    # sqrt(2 / (0.2 * 1e5)) = 0.01; the last steps weigh a few thousand draws.
    np.testing.assert_allclose(stream.means_[order], TRUE_MEANS[truth], atol=0.06)
    np.testing.assert_allclose(stream.weights_[order], TRUE_WEIGHTS[truth], atol=0.02)
    np.testing.assert_allclose(stream.covariances_[order], TRUE_COVS[truth], atol=0.12)


@pytest.mark.parametrize("name", covariance_model_names())
def test_every_covariance_model_streams(name):
    rng = np.random.default_rng(4)
    X = draw(rng, 3000)
    if name in ("E", "V"):
        X = X[:, :1]
    stream = GaussianMixture(3, covariance_type=name, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            for batch in np.array_split(X, 10):
                stream.partial_fit(batch)
    full = GaussianMixture(3, covariance_type=name, random_state=0).fit(X)
    for attribute in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(stream, attribute)))
    assert stream.covariances_.shape == full.covariances_.shape
    # Two passes come within a small fraction of a nat per sample of the
    # full-batch fit (the batch fit converged only to tol=1e-3).
    assert stream.score(X) > full.score(X) - 0.02


def test_weights_equal_repeated_rows():
    rng = np.random.default_rng(5)
    X = draw(rng, 400)
    counts = rng.integers(0, 3, size=400)
    start = dict(
        weights_init=TRUE_WEIGHTS, means_init=TRUE_MEANS,
        precisions_init=np.linalg.inv(TRUE_COVS),
    )
    weighted = GaussianMixture(3, **start)
    repeated = GaussianMixture(3, **start)
    for rows in np.array_split(np.arange(400), 4):
        weighted.partial_fit(X[rows], sample_weight=counts[rows])
        repeated.partial_fit(np.repeat(X[rows], counts[rows], axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-10)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-10)


def test_a_later_batch_of_one_weighted_row_is_that_row():
    # Only the first batch needs as many rows as components; weights are row
    # multiplicities, so one positive weight is a one-row batch.
    rng = np.random.default_rng(7)
    X = draw(rng, 200)
    weighted = GaussianMixture(3, random_state=0).partial_fit(X[:100])
    plain = GaussianMixture(3, random_state=0).partial_fit(X[:100])
    weighted.partial_fit(X[100:200], sample_weight=np.eye(100)[3])
    plain.partial_fit(X[103:104])
    np.testing.assert_allclose(weighted.means_, plain.means_, rtol=1e-12)
    np.testing.assert_allclose(weighted.covariances_, plain.covariances_, rtol=1e-12)


def test_a_float64_batch_beyond_a_float32_streams_range_is_named():
    rng = np.random.default_rng(8)
    X = draw(rng, 200)
    model = GaussianMixture(3, random_state=0).partial_fit(X[:100].astype(np.float32))
    means = model.means_.copy()
    batch = X[100:].copy()
    batch[7, 0] = 1e39
    with pytest.raises(ValueError, match="beyond the range of float32, the dtype of this stream"):
        model.partial_fit(batch)
    np.testing.assert_array_equal(model.means_, means)
    model.partial_fit(X[100:])  # within range: cast and taken
    assert model.means_.dtype == np.float32


def test_fit_starts_a_new_stream_and_partial_fit_continues_a_fit():
    rng = np.random.default_rng(6)
    X = draw(rng, 2000)
    model = GaussianMixture(3, random_state=0).fit(X)
    assert not hasattr(model, "n_batch_iter_")
    fitted_means = model.means_.copy()
    model.partial_fit(X[:500])
    assert model.n_batch_iter_ == 1
    # One step on a quarter of the data from the fitted optimum stays close.
    np.testing.assert_allclose(model.means_, fitted_means, atol=0.15)
    model.partial_fit(X[500:1000])
    assert model.n_batch_iter_ == 2 and len(model.lower_bounds_) == 2
    # The attributes keep a fitted model's types and layout.
    assert type(model.lower_bound_) is np.float64
    assert {type(bound) for bound in model.lower_bounds_} == {np.float64}
    assert model.precisions_cholesky_.flags.c_contiguous
    model.fit(X)
    assert not hasattr(model, "n_batch_iter_")
    np.testing.assert_allclose(model.means_, fitted_means, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV", "EEI"])
def test_a_fitted_models_statistics_give_it_back(covariance_type):
    """The statistics that stand for a fitted model reproduce it through the M-step."""
    rng = np.random.default_rng(9)
    X = draw(rng, 1500)
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    cov_model = get_covariance_model(covariance_type)
    params = model._fitted_params()
    stats = online.stats_of_params(cov_model, params, model.reg_covar, model.lower_bound_)
    again, reseeded = maximization(cov_model, stats, model.reg_covar)
    assert not reseeded
    # Only the M-step's 10 eps floor on the totals separates them.
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(again, name), getattr(model, name + "_"), rtol=1e-12)


def test_partial_fit_blends_a_batch_into_a_fitted_model():
    """After fit the model is the stream's first batch: two rows no longer replace it."""
    rng = np.random.default_rng(10)
    X = draw(rng, 6000)
    model = GaussianMixture(3, random_state=0).fit(X)
    fitted_score, fitted_bound = model.score(X), model.lower_bound_
    fitted_means = model.means_.copy()
    model.partial_fit(X[:2])
    eta = (model.learning_offset + 1) ** -model.learning_decay
    assert model.n_batch_iter_ == 1 and len(model.lower_bounds_) == 1
    # Each mean moves at most eta of the way to the batch's rows.
    reach = eta * np.max(np.linalg.norm(X[:2, None] - fitted_means[None], axis=-1))
    assert np.max(np.linalg.norm(model.means_ - fitted_means, axis=1)) <= reach
    assert model.score(X) > fitted_score - 0.1
    # The running log-likelihood blends the fit's and the batch's.
    assert model.lower_bound_ == pytest.approx(
        (1 - eta) * fitted_bound + eta * model.lower_bounds_[0], rel=1e-12
    )


def test_partial_fit_refuses_to_continue_a_model_of_other_parameters():
    rng = np.random.default_rng(11)
    X = draw(rng, 600)
    model = GaussianMixture(3, random_state=0).fit(X)
    model.set_params(n_components=4)
    with pytest.raises(ValueError, match="3 components.*n_components=4.*Call fit"):
        model.partial_fit(X[:100])
    model.set_params(n_components=3, covariance_type="diag")
    with pytest.raises(ValueError, match="covariance_type='diag'.*Call fit"):
        model.partial_fit(X[:100])


def test_partial_fit_tells_diag_from_tied_of_the_same_shape():
    """With n_components == n_features diag's (K, D) is tied's (D, D)."""
    rng = np.random.default_rng(12)
    X = draw(rng, 600)[:, :2]
    model = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
    model.set_params(covariance_type="tied")
    with pytest.raises(ValueError, match="covariance_type='tied'.*Call fit"):
        model.partial_fit(X[:100])


def test_partial_fit_tells_models_of_one_layout_apart():
    """mclust's VVE stores full matrices: continuing it as 'full' would drop its constraint."""
    rng = np.random.default_rng(13)
    X = draw(rng, 600)
    model = GaussianMixture(3, covariance_type="VVE", random_state=0).fit(X)
    model.set_params(covariance_type="full")
    with pytest.raises(ValueError, match="covariance_type='full'.*Call fit"):
        model.partial_fit(X[:100])
    # An alias names the same model: the stream goes on.
    full = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    full.set_params(covariance_type="VVV").partial_fit(X[:100])
    assert full.n_batch_iter_ == 1


def test_float32_batches_stay_float32():
    rng = np.random.default_rng(7)
    X = draw(rng, 2000).astype(np.float32)
    model = GaussianMixture(3, random_state=0)
    for batch in np.array_split(X, 4):
        model.partial_fit(batch)
    assert model.means_.dtype == np.float32
    assert model.predict(X).shape == (2000,)


def test_bad_batches_are_refused_clearly(tmp_path):
    rng = np.random.default_rng(8)
    X = draw(rng, 100)
    with pytest.raises(ValueError, match="first batch .* 2 rows, fewer than n_components=3"):
        GaussianMixture(3).partial_fit(X[:2])
    model = GaussianMixture(3, random_state=0).partial_fit(X)
    before = model.means_.copy()
    with pytest.raises(ValueError, match="3 features, but GaussianMixture is expecting 2"):
        model.partial_fit(np.ones((10, 3)))
    np.testing.assert_array_equal(model.means_, before)
    assert model.n_batch_iter_ == 1
    path = tmp_path / "x.npy"
    np.save(path, X)
    with pytest.raises(TypeError, match="partial_fit takes one in-memory batch"):
        model.partial_fit(str(path))
    with pytest.raises(ValueError, match="learning_decay"):
        GaussianMixture(3, learning_decay=0.4).partial_fit(X)


def test_float32_streams_keep_small_components_exact():
    """The M-step's 10 eps floor acts on totals counted in the batch's rows.

    Per unit weight, float32's floor (1.2e-6) moved a component of share
    1e-4 by 1 % of its offset at every step.
    """
    rng = np.random.default_rng(13)
    n_rows, shares = 100_000, np.array([1 - 1e-4, 1e-4])
    sum_resp = shares * n_rows
    shift_sum = rng.normal(size=(2, 2)) * sum_resp[:, None]
    model = get_covariance_model("spherical")
    # Traces around the shift 0 of unit-variance rows: D + |mean|^2 per row.
    scatter = sum_resp * (2.0 + np.sum((shift_sum / sum_resp[:, None]) ** 2, axis=1))
    batch = SuffStats(
        sum_resp=sum_resp, shift_sum=shift_sum, scatter=scatter,
        shift=np.zeros((2, 2)), log_likelihood=-1.0 * n_rows, weight_sum=float(n_rows),
    )
    _, params, _ = online.update(model, None, batch, reg_covar=0.0, dtype=np.float32,
                                 learning_decay=0.7, learning_offset=10.0)
    exact = shift_sum / sum_resp[:, None]
    # What is left: the floor over the small component's 10 rows, 1.2e-7.
    np.testing.assert_allclose(params.means, exact, rtol=1e-6)


def test_a_stream_whose_float32_covariance_rounds_indefinite_raises_and_keeps_its_state():
    """Nine rows in the unit square and one at 1e6: the tied covariance's condition
    number (3e17) is beyond float32, whose rounding left it indefinite; the
    model saved, and its own file was refused on loading."""
    X = np.array([
        [-0.7091165781021118, -0.30539974570274353], [-999999.6875, 999999.1875],
        [-0.03865709528326988, -0.8892199993133545], [0.6655343770980835, 0.17351789772510529],
        [-0.17149406671524048, 0.5196146368980408], [-0.7267504334449768, 0.480989545583725],
        [0.4018021523952484, -0.15839391946792603], [-0.5794413089752197, -0.3715422451496124],
        [-0.5597794055938721, 0.8041111826896667], [-0.8802059888839722, 0.45060279965400696],
    ], dtype=np.float32)
    gm = GaussianMixture(1, covariance_type="tied", init_params="random_from_data",
                         random_state=219)
    batches = np.array_split(np.arange(10), 3)
    gm.partial_fit(X[batches[0]])
    gm.partial_fit(X[batches[1]])
    means = gm.means_.copy()
    with pytest.raises(ValueError, match="not positive-definite once rounded to float32"):
        gm.partial_fit(X[batches[2]])
    np.testing.assert_array_equal(gm.means_, means)
    np.linalg.cholesky(gm.covariances_.astype(np.float64))
