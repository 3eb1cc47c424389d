"""SQUAREM acceleration (gaussmix.acceleration, acceleration='squarem')."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _helpers import COVARIANCE_TYPES, make_data

from gaussmix import GaussianMixture, acceleration
from gaussmix.covariance import get_covariance_model
from gaussmix.exceptions import ConvergenceWarning
from gaussmix.params import MixtureParams


def _overlapping(n_per_component=700, n_features=2, seed=0):
    """Three clusters 1 standard deviation apart: plain EM crawls here."""
    return make_data("overlapping", n_features, n_per_component=n_per_component, seed=seed)


def _fit(X, covariance_type, acceleration_name, tol, max_iter=20_000, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(
            3, covariance_type=covariance_type, tol=tol, max_iter=max_iter,
            random_state=0, acceleration=acceleration_name, **kwargs,
        ).fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_squarem_reaches_the_optimum_of_plain_em_in_fewer_passes(covariance_type):
    X = _overlapping()
    # Both run until a pass gains less than 1e-13 (plain EM: thousands of
    # passes here), from the same k-means start.
    plain = _fit(X, covariance_type, None, tol=1e-13, max_iter=50_000)
    fast = _fit(X, covariance_type, "squarem", tol=1e-13, max_iter=50_000)
    assert plain.converged_ and fast.converged_
    # Stopped by a gain of 1e-13 per pass at a linear rate of up to 0.9999,
    # plain EM is within about 1e-9 of the top.
    assert fast.lower_bound_ == pytest.approx(plain.lower_bound_, abs=1e-9)
    # The same optimum, not merely as high a likelihood: other local optima
    # of this data put the means 0.1 to 1 apart (the clusters' spread is 1).
    np.testing.assert_allclose(fast.means_, plain.means_, atol=1e-3)
    assert fast.n_iter_ < 0.25 * plain.n_iter_


def test_squarem_at_default_tol_on_three_overlapping_clusters():
    X = _overlapping(seed=1)
    plain = _fit(X, "full", None, tol=1e-3)
    fast = _fit(X, "full", "squarem", tol=1e-3)
    assert fast.converged_
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-12
    assert fast.n_iter_ <= plain.n_iter_


def test_kept_points_never_lose_likelihood():
    X = _overlapping(seed=2)
    fast = _fit(X, "full", "squarem", tol=1e-10)
    bounds = np.asarray(fast.lower_bounds_)
    # A rejected jump is a pass whose value dips; every other value is at
    # least the previous kept one, so the running maximum only ever moves
    # up and ends at the final lower bound.
    assert fast.lower_bound_ == pytest.approx(bounds.max(), abs=1e-12)
    assert len(bounds) == fast.n_iter_


def test_rejected_jumps_leave_the_plain_em_path(monkeypatch):
    """If every jump is worse than the EM step it extrapolates, the result is plain EM's."""
    X = _overlapping(seed=3)
    plain = _fit(X, "diag", None, tol=1e-6)

    def far_away(model, p0, p1, p2, step):
        means = p0.means + 50.0
        return MixtureParams(p0.weights, means, p0.covariances, p0.precisions_cholesky)

    monkeypatch.setattr(acceleration, "_jump", far_away)
    fast = _fit(X, "diag", "squarem", tol=1e-6)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(plain, name))
    assert fast.lower_bound_ == plain.lower_bound_
    assert fast.n_iter_ > plain.n_iter_  # the rejected passes count


def _spherical_params(variance: float) -> MixtureParams:
    covariances = np.array([variance])
    return MixtureParams(
        np.array([1.0]), np.zeros((1, 2)), covariances, 1.0 / np.sqrt(covariances)
    )


def test_invalid_jump_is_shortened_until_valid():
    # Variances 1, 0.5, 0.2: the full step (|r| / |v| = 2.5) lands on
    # 1 - 2.5 + 1.25 = -0.25; halving towards plain EM tries 1.75 (-0.14)
    # and then 1.375 (+0.003).
    model = get_covariance_model("spherical")
    p0, p1, p2 = (_spherical_params(v) for v in (1.0, 0.5, 0.2))
    jump, step_max = acceleration._valid_jump(model, p0, p1, p2, step_max=16.0)
    assert jump is not None
    step = 1.375
    expected = 1.0 - 2 * step * 0.5 + step**2 * 0.2
    np.testing.assert_allclose(jump.covariances, [expected], rtol=1e-12)
    assert 0.0 < jump.covariances[0] < 0.2
    assert step_max == 16.0


def test_step_bound_grows_when_reached_and_jump_is_none_when_em_is_as_far():
    model = get_covariance_model("spherical")
    p0, p1, p2 = (_spherical_params(v) for v in (1.0, 0.9, 0.85))
    # |r| / |v| = 0.1 / 0.05 = 2, above a bound of 1: plain EM, bound x4.
    jump, step_max = acceleration._valid_jump(model, p0, p1, p2, step_max=1.0)
    assert jump is None and step_max == 4.0
    # Steps that agree (v = 0) leave nothing to extrapolate.
    p0, p1, p2 = (_spherical_params(v) for v in (1.0, 0.9, 0.8))
    jump, step_max = acceleration._valid_jump(model, p0, p1, p2, step_max=4.0)
    assert jump is None and step_max == 4.0


def test_max_iter_counts_passes_and_warns():
    X = _overlapping(seed=4)
    with pytest.warns(ConvergenceWarning):
        fast = GaussianMixture(
            3, tol=1e-12, max_iter=7, random_state=0, acceleration="squarem"
        ).fit(X)
    assert fast.n_iter_ == 7 and not fast.converged_
    assert len(fast.lower_bounds_) == 7
    zero = GaussianMixture(3, max_iter=0, random_state=0, acceleration="squarem")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zero.fit(X)
    assert zero.n_iter_ == 0


def test_sample_weights_equal_repeated_rows():
    X = _overlapping(n_per_component=200, seed=5)
    weights = np.random.RandomState(0).randint(1, 4, size=X.shape[0])
    start = dict(
        weights_init=np.full(3, 1 / 3), means_init=X[[0, 250, 500]],
        precisions_init=np.tile(np.eye(2), (3, 1, 1)), tol=1e-8, max_iter=5000,
        acceleration="squarem",
    )
    weighted = GaussianMixture(3, **start).fit(X, sample_weight=weights)
    repeated = GaussianMixture(3, **start).fit(np.repeat(X, weights, axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-9, atol=1e-9)
    # See test_squarem_on_a_file_equals_squarem_on_the_array.
    assert abs(weighted.n_iter_ - repeated.n_iter_) <= 2


@pytest.mark.parametrize("covariance_type", ["EII", "EEI", "VVV", "E", "V"])
def test_models_closed_under_extrapolation_reach_plain_ems_optimum(covariance_type):
    n_features = 1 if covariance_type in ("E", "V") else 2
    X = make_data("overlapping", n_features, n_per_component=300)
    plain = _fit(X, covariance_type, None, tol=1e-13, max_iter=50_000)
    fast = _fit(X, covariance_type, "squarem", tol=1e-13, max_iter=50_000)
    assert plain.converged_ and fast.converged_
    # As in the test of the four scikit-learn types above.
    assert fast.lower_bound_ == pytest.approx(plain.lower_bound_, abs=1e-9)
    np.testing.assert_allclose(fast.means_, plain.means_, atol=1e-3)
    assert fast.n_iter_ < plain.n_iter_


@pytest.mark.parametrize("covariance_type", ["VEI", "EVI", "VEE", "EVE", "VVE", "EEV", "VEV", "EVV"])
def test_models_that_extrapolation_would_leave_are_refused(covariance_type):
    X = make_data("overlapping", 2, n_per_component=50)
    gm = GaussianMixture(3, covariance_type=covariance_type, acceleration="squarem")
    with pytest.raises(ValueError, match="cannot extrapolate covariance_type"):
        gm.fit(X)
    assert not hasattr(gm, "means_")


def test_unknown_acceleration_is_refused():
    X = make_data("overlapping", 2, n_per_component=50)
    with pytest.raises(ValueError, match="acceleration"):
        GaussianMixture(3, acceleration="aitken").fit(X)


def test_default_is_plain_em():
    X = _overlapping(n_per_component=100, seed=6)
    default = GaussianMixture(3, random_state=0).fit(X)
    explicit = GaussianMixture(3, random_state=0, acceleration=None).fit(X)
    np.testing.assert_array_equal(default.means_, explicit.means_)
    assert default.get_params()["acceleration"] is None


def test_squarem_on_a_file_equals_squarem_on_the_array(tmp_path):
    """The iteration takes any data source's E-step: a .npy file read block by block."""
    X = _overlapping(n_per_component=300, seed=7)
    path = tmp_path / "rows.npy"
    np.save(path, X)
    kwargs = dict(random_state=0, tol=1e-8, max_iter=2000, acceleration="squarem")
    from_file = GaussianMixture(3, **kwargs).fit(str(path))
    in_memory = GaussianMixture(3, **kwargs).fit(X)
    np.testing.assert_allclose(from_file.means_, in_memory.means_, rtol=1e-10, atol=1e-12)
    # Near convergence a jump's log-likelihood and its EM step's differ by
    # rounding, which sums grouped otherwise can order differently: keeping
    # or rejecting the jump costs the fallback pass or not, the same point
    # either way.
    assert abs(from_file.n_iter_ - in_memory.n_iter_) <= 2


def test_a_jump_whose_m_step_fails_falls_back_to_the_em_step(monkeypatch):
    """An M-step that raises after a kept jump sends the run back to plain EM's point."""
    X = _overlapping(seed=8)
    plain = _fit(X, "full", None, tol=1e-6)
    armed = []
    real_maximization = acceleration.maximization_with_refinement

    def jump_to_p2(model, p0, p1, p2, step):
        armed.append(True)
        return p2  # kept (its log-likelihood is at least p1's) ...

    def failing_once(*args, **kwargs):
        if armed:
            armed.clear()  # ... and the M-step after it fails
            raise ValueError("ill-defined covariance")
        return real_maximization(*args, **kwargs)

    monkeypatch.setattr(acceleration, "_jump", jump_to_p2)
    monkeypatch.setattr(acceleration, "maximization_with_refinement", failing_once)
    fast = _fit(X, "full", "squarem", tol=1e-6)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(plain, name))
    assert fast.lower_bound_ == plain.lower_bound_


def test_an_m_step_failure_without_a_jump_is_raised(monkeypatch):
    X = _overlapping(n_per_component=100, seed=9)

    def failing(*args, **kwargs):
        raise ValueError("ill-defined covariance")

    monkeypatch.setattr(acceleration, "maximization_with_refinement", failing)
    gm = GaussianMixture(3, random_state=0, acceleration="squarem")
    with pytest.raises(ValueError, match="ill-defined covariance"):
        gm.fit(X)
    assert not hasattr(gm, "means_")


def test_select_model_accelerates_the_models_it_serves_and_runs_plain_em_elsewhere():
    from gaussmix import select_model

    X = _overlapping(n_per_component=150, seed=10)
    kwargs = dict(n_components=[3], covariance_types=["full", "VEV"], random_state=0,
                  n_jobs=1, tol=1e-8, max_iter=3000)
    fast = select_model(X, acceleration="squarem", **kwargs)
    plain = select_model(X, **kwargs)
    rows = {r["covariance_type"]: r for r in fast.table}
    plain_rows = {r["covariance_type"]: r for r in plain.table}
    assert all(r["error"] is None for r in fast.table)
    # VEV cannot be extrapolated: its cell is plain EM, to the bit.
    assert rows["VEV"]["n_iter"] == plain_rows["VEV"]["n_iter"]
    assert rows["VEV"]["log_likelihood"] == plain_rows["VEV"]["log_likelihood"]
    assert rows["full"]["n_iter"] < plain_rows["full"]["n_iter"]


def test_cli_squarem_flag(tmp_path):
    from gaussmix import load
    from gaussmix.cli import main

    X = _overlapping(n_per_component=150, seed=11)
    data = tmp_path / "data.csv"
    np.savetxt(data, X, delimiter=",")
    runs = {}
    for name, extra in (("plain", []), ("squarem", ["--squarem"])):
        out = tmp_path / name
        argv = ["fit", str(data), "--k", "3", "--tol", "1e-8", "--max-iter", "3000",
                "--out", str(out), "-q", *extra]
        assert main(argv) == 0
        runs[name] = load(out / "model.json")
    assert runs["squarem"].acceleration == "squarem"
    assert runs["plain"].acceleration is None
    assert runs["squarem"].n_iter_ < runs["plain"].n_iter_
    # A model SQUAREM cannot serve is fitted with plain EM, not refused.
    out = tmp_path / "vev"
    argv = ["fit", str(data), "--k", "3", "--covariance", "VEV", "--out", str(out),
            "-q", "--no-plots", "--squarem"]
    assert main(argv) == 0
    assert load(out / "model.json").acceleration is None


def test_a_jump_below_the_em_step_is_rejected(monkeypatch):
    """A jump back to the cycle's start (below p1 while EM still gains) is never kept."""
    X = _overlapping(seed=12)
    plain = _fit(X, "full", None, tol=1e-6)
    monkeypatch.setattr(acceleration, "_jump", lambda model, p0, p1, p2, step: p0)
    fast = _fit(X, "full", "squarem", tol=1e-6)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(plain, name))
    assert fast.lower_bound_ == plain.lower_bound_


@pytest.mark.parametrize("covariance_type", sorted(acceleration.SQUAREM_MODELS))
def test_the_first_four_passes_are_plain_em(covariance_type):
    """The step bound starts at 1: no jump before the second cycle (pass 5)."""
    X = _overlapping(n_per_component=200, seed=13)
    for max_iter in range(1, 5):
        plain = _fit(X, covariance_type, None, tol=1e-12, max_iter=max_iter)
        fast = _fit(X, covariance_type, "squarem", tol=1e-12, max_iter=max_iter)
        assert fast.n_iter_ == plain.n_iter_ == max_iter
        assert fast.lower_bound_ == plain.lower_bound_
        for name in ("weights_", "means_", "covariances_"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(plain, name))


def test_the_result_is_the_m_step_of_the_pass_it_reports(monkeypatch):
    """As in plain EM: parameters M(E(p)) and lower bound LL(p), for the last point p."""
    X = _overlapping(n_per_component=300, seed=14)
    real_maximization = acceleration.maximization_with_refinement
    for max_iter in range(5, 31, 5):
        steps = []

        def recording(model, stats, *args, **kwargs):
            result = real_maximization(model, stats, *args, **kwargs)
            steps.append((stats.mean_log_likelihood, result[0]))
            return result

        monkeypatch.setattr(acceleration, "maximization_with_refinement", recording)
        fast = _fit(X, "full", "squarem", tol=1e-12, max_iter=max_iter)
        matching = [params for value, params in steps if value == fast.lower_bound_]
        assert matching, "the reported lower bound is the value of no pass"
        np.testing.assert_array_equal(fast.means_, matching[-1].means)
        np.testing.assert_array_equal(fast.covariances_, matching[-1].covariances)


def test_warm_start_of_a_converged_fit_stops_after_one_pass():
    X = _overlapping(n_per_component=200, seed=15)
    for name in (None, "squarem"):
        gm = GaussianMixture(3, random_state=0, tol=1e-4, max_iter=5000, acceleration=name,
                             warm_start=True)
        gm.fit(X)
        gm.fit(X)
        assert gm.n_iter_ == 1 and gm.converged_


def test_no_jump_in_a_cycle_that_reseeded_a_component(monkeypatch):
    """A re-seeded component's step is no direction to extrapolate along."""
    X = _overlapping(n_per_component=200, seed=16)
    plain = _fit(X, "diag", None, tol=1e-6)
    real_maximization = acceleration.maximization_with_refinement

    def reporting_a_reseed(*args, **kwargs):
        params, _ = real_maximization(*args, **kwargs)
        return params, [0]

    def no_jump(*args, **kwargs):
        raise AssertionError("extrapolated across a re-seeded component")

    monkeypatch.setattr(acceleration, "maximization_with_refinement", reporting_a_reseed)
    monkeypatch.setattr(acceleration, "_valid_jump", no_jump)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = _fit(X, "diag", "squarem", tol=1e-6)
    np.testing.assert_array_equal(fast.means_, plain.means_)
    assert fast.n_iter_ == plain.n_iter_
