"""Bootstrap likelihood-ratio test for the number of components."""

import numpy as np
import pytest

import gaussmix
from gaussmix import BootstrapLRTResult, bootstrap_lrt
from gaussmix import bootstrap as bootstrap_module

# 19 replicates: the smallest p-value is 1 / 20 = 0.05, so "significant at
# 0.05" means no replicate reached the observed statistic.
B = 19
LEVEL = 0.05


def two_blobs(n_per: int = 100, seed: int = 0, n_features: int = 2) -> np.ndarray:
    """Two unit-variance Gaussians 8 apart in each coordinate."""
    rng = np.random.default_rng(seed)
    shape = (n_per, n_features)
    return np.vstack([rng.normal(0.0, 1.0, shape), rng.normal(8.0, 1.0, shape)])


@pytest.fixture(scope="module")
def separated() -> BootstrapLRTResult:
    return bootstrap_lrt(two_blobs(), max_components=3, n_bootstrap=B, random_state=0)


def test_two_separated_gaussians_select_two(separated):
    first, second = separated.table
    # Means 8 standard deviations apart (distance 11 in 2-D): the observed
    # LRTS of 1 vs 2 is in the hundreds, while under one Gaussian the
    # statistic is of the order of the extra parameters (6), so no replicate
    # reaches it and the p-value is the smallest possible.
    assert first["n_components"] == 1
    assert first["p_value"] == pytest.approx(1 / (B + 1))
    assert first["lrts"] > 100
    # Two Gaussians are the true model: the 2 vs 3 statistic is a draw from
    # the null distribution; with this fixed seed it is far from its tail.
    assert second["n_components"] == 2
    assert second["p_value"] > LEVEL
    assert separated.n_components_ == 2
    assert "Selected number of components: 2" in str(separated)


def test_p_values_are_bootstrap_fractions(separated):
    for row in separated.table:
        boot = row["boot_lrts"]
        assert boot.shape == (B,)
        assert row["n_failed"] == 0
        assert np.all(boot >= 0)
        m = np.count_nonzero(boot >= row["lrts"])
        assert row["p_value"] == pytest.approx((1 + m) / (B + 1))
        assert 1 / (B + 1) <= row["p_value"] <= 1


def test_fixed_random_state_is_deterministic(separated):
    again = bootstrap_lrt(two_blobs(), max_components=3, n_bootstrap=B, random_state=0)
    assert again.n_components_ == separated.n_components_
    for row, other in zip(separated.table, again.table):
        assert row["lrts"] == other["lrts"]
        assert row["p_value"] == other["p_value"]
        np.testing.assert_array_equal(row["boot_lrts"], other["boot_lrts"])


@pytest.mark.parametrize("seed", [0, 1])
def test_one_gaussian_selects_one(seed):
    # Under the null each p-value is (nearly) uniform on {1/20, ..., 1}, so a
    # false rejection has probability about 0.05 per seed; both fixed seeds
    # give p-values well above the level.
    X = np.random.default_rng(10 + seed).normal(size=(150, 2))
    result = bootstrap_lrt(X, max_components=2, n_bootstrap=B, random_state=seed)
    assert result.table[0]["p_value"] > LEVEL
    assert result.n_components_ == 1


def test_mclust_model_name():
    result = bootstrap_lrt(
        two_blobs(), "EEI", max_components=3, n_bootstrap=B, random_state=0,
        sequential=True,
    )
    assert result.covariance_type == "EEI"
    assert result.table[0]["p_value"] == pytest.approx(1 / (B + 1))
    assert result.n_components_ == 2


def test_one_dimensional_data():
    x = two_blobs(n_features=1)[:, 0]
    result = bootstrap_lrt(
        x, "V", max_components=3, n_bootstrap=B, random_state=0, sequential=True
    )
    assert result.table[0]["p_value"] == pytest.approx(1 / (B + 1))
    assert result.n_components_ == 2


def test_failed_replicates_are_recorded(monkeypatch):
    calls = {"n": 0}
    real_fit = bootstrap_module._fit

    def failing_fit(X, k, seed, options):
        # The data's own fits (first two calls) succeed; every bootstrap fit fails.
        calls["n"] += 1
        if calls["n"] > 2:
            raise ValueError("ill-defined")
        return real_fit(X, k, seed, options)

    monkeypatch.setattr(bootstrap_module, "_fit", failing_fit)
    result = bootstrap_lrt(
        two_blobs(), max_components=2, n_bootstrap=3, level=0.5, random_state=0
    )
    row = result.table[0]
    assert row["n_failed"] == 3
    assert np.all(np.isnan(row["boot_lrts"]))
    assert row["p_value"] == 1.0
    assert calls["n"] == 2 + 3 * bootstrap_module.MAX_REDRAWS


def test_too_few_replicates_to_reject_at_the_level_warn():
    """p >= 1 / (B + 1): with B = 9 nothing is significant at 0.05."""
    with pytest.warns(UserWarning, match=r"smallest possible p-value is 0.1.*n_bootstrap >= 19"):
        result = bootstrap_lrt(two_blobs(), max_components=2, n_bootstrap=9, random_state=0)
    assert result.table[0]["p_value"] >= 0.1


def test_exported():
    assert "bootstrap_lrt" in gaussmix.__all__
    assert "BootstrapLRTResult" in gaussmix.__all__
    with pytest.raises(ValueError, match="max_components"):
        bootstrap_lrt(two_blobs(), max_components=1)


def test_whole_number_floats_count_and_weights_are_refused_by_name():
    X = np.random.default_rng(0).normal(size=(80, 2))
    with pytest.warns(UserWarning, match="smallest possible p-value"):
        result = bootstrap_lrt(X, "VVV", max_components=2.0, n_bootstrap=5.0, random_state=0)
    assert result.n_bootstrap == 5
    with pytest.raises(TypeError, match="does not take sample_weight"):
        bootstrap_lrt(X, "VVV", 2, n_bootstrap=19, sample_weight=np.ones(80))


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), True, "4"])
def test_counts_that_are_not_numbers_of_components_are_refused_by_name(bad):
    """int(inf) raised OverflowError, and n_components in gmm_kwargs Python's own TypeError."""
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match="max_components must be an integer"):
        bootstrap_lrt(X, "VVV", max_components=bad)
    with pytest.raises(ValueError, match="n_bootstrap must be an integer"):
        bootstrap_lrt(X, "VVV", n_bootstrap=bad)
    with pytest.raises(TypeError, match="sets n_components itself"):
        bootstrap_lrt(X, "VVV", 2, n_bootstrap=19, n_components=3)
