"""The demo on generated blobs: numbers, figures and model selection."""

import matplotlib.image
import numpy as np
import pytest

from gaussmix.demo import BLOB_MEANS, BLOB_SIZES, make_blobs, run_demo

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_make_blobs_is_seeded_and_sized():
    X, y = make_blobs(random_state=3)
    assert X.shape == (300, 2)
    np.testing.assert_array_equal(np.bincount(y), BLOB_SIZES)
    np.testing.assert_array_equal(make_blobs(random_state=3)[0], X)
    assert not np.array_equal(make_blobs(random_state=4)[0], X)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("demo") / "nested" / "out", random_state=0)


def test_run_demo_recovers_the_blobs(result):
    assert result["n_samples"] == 300
    assert result["best_k"] == 3
    weights, means = result["weights"], result["means"]
    assert weights.shape == (3,) and means.shape == (3, 2)
    np.testing.assert_allclose(weights.sum(), 1.0)
    # Match fitted to true components by nearest mean.
    order = [int(np.argmin(np.linalg.norm(BLOB_MEANS - m, axis=1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(means, BLOB_MEANS[order], atol=0.4)
    np.testing.assert_allclose(weights, np.array(BLOB_SIZES)[order] / 300, atol=0.02)


def test_run_demo_table(result):
    table = result["table"]
    assert [row["n_components"] for row in table] == [1, 2, 3, 4, 5, 6]
    for row in table:
        assert row["covariance_type"] == "full"
        assert np.isfinite(row["bic"]) and np.isfinite(row["aic"])
        # BIC's penalty p log(300) exceeds AIC's 2p.
        assert row["bic"] > row["aic"]
    assert min(table, key=lambda row: row["bic"])["n_components"] == result["best_k"]
    assert min(table, key=lambda row: row["aic"])["n_components"] == result["best_k_aic"]


def test_run_demo_writes_pngs(result):
    assert set(result["paths"]) == {"clusters", "criteria"}
    for name, path in result["paths"].items():
        assert path.name == f"{name}.png"
        assert path.read_bytes()[:8] == PNG_MAGIC
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 300


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 21))
def test_run_demo_selects_three_components_for_other_seeds(seed, tmp_path):
    assert run_demo(tmp_path, random_state=seed)["best_k"] == 3
