"""BlockDataset and the BlockReader contract, on in-memory readers."""

import threading
import warnings

import numpy as np
import pytest

from gaussmix import ConvergenceWarning, GaussianMixture
from gaussmix import _kernels, em
from gaussmix.covariance import get_covariance_model
from gaussmix.datasets import (
    ArrayBlockReader,
    ArrayDataset,
    BlockDataset,
    BlockReader,
    as_dataset,
    check_dataset_shape,
    default_block_rows,
)


def _mixture(n=3000, dtype=np.float64, seed=0):
    rng = np.random.RandomState(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, -3.0], [0.0, 7.0, 3.0]])
    X = centres[rng.randint(3, size=n)] + rng.randn(n, 3) * [1.0, 0.5, 2.0]
    return X.astype(dtype)


class _SequentialReader(BlockReader):
    """Only ``iter_blocks``: exercises the base class's ``take``."""

    def __init__(self, X, extra_rows=0, bad_width=False):
        self.X = X
        self.n_samples, self.n_features = X.shape
        self.n_samples -= extra_rows
        self.dtype = X.dtype
        self.bad_width = bad_width

    def iter_blocks(self, block_rows):
        for start in range(0, self.X.shape[0], block_rows):
            block = self.X[start : start + block_rows]
            yield block[:, :-1].copy() if self.bad_width else block


def _params(X):
    # One EM step from k-means: parameters a pass would see mid-fit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, max_iter=1, random_state=0).fit(X)
    model = get_covariance_model("full")
    return model, gm._fitted_params().astype(np.float64)


def test_blocks_of_one_chunk_give_the_in_memory_statistics_exactly():
    X = _mixture(40000)
    model, params = _params(X)
    # The E-step's chunks depend on the data set's rows (above 32768 they
    # grow), not on the block sizes in which those rows arrive.
    chunk = em.e_step_chunk_size(model, params, X.dtype, X.shape[0])
    assert chunk > _kernels.model_chunk_size(model, 3, 3, X.dtype)
    assert X.shape[0] > 2 * chunk
    # One chunk per block: the same chunks, added in the same order.
    in_memory, blocks = ArrayDataset(X), BlockDataset(ArrayBlockReader(X), block_rows=chunk)
    with in_memory.passes(model, params):
        expected = in_memory.expectation(model, params)
    with blocks.passes(model, params):
        got = blocks.expectation(model, params)
    for name in ("sum_resp", "shift_sum", "scatter", "worst_sample"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    assert got.log_likelihood == expected.log_likelihood
    assert got.weight_sum == expected.weight_sum


def test_small_blocks_sum_to_the_same_statistics():
    X = _mixture()
    model, params = _params(X)
    expected = ArrayDataset(X).expectation(model, params)
    got = BlockDataset(ArrayBlockReader(X), block_rows=333).expectation(model, params)
    # Different chunks: each float64 sum of 3000 terms is rounded differently,
    # by at most ~n * eps relative (3000 * 2.2e-16 < 1e-12).
    np.testing.assert_allclose(got.scatter, expected.scatter, rtol=1e-12)
    np.testing.assert_allclose(got.sum_resp, expected.sum_resp, rtol=1e-12)


def test_weights_follow_their_rows_across_blocks():
    X = _mixture()
    w = np.random.RandomState(1).randint(0, 4, size=X.shape[0]).astype(float)
    model, params = _params(X)
    expected = ArrayDataset(X, w).expectation(model, params)
    got = BlockDataset(ArrayBlockReader(X), block_rows=700).weighted(w).expectation(model, params)
    np.testing.assert_allclose(got.sum_resp, expected.sum_resp, rtol=1e-12)
    assert got.weight_sum == expected.weight_sum


def test_sample_all_rows_in_order_without_consuming_the_seed():
    X = _mixture(100)
    rs = np.random.RandomState(5)
    rows, weights = BlockDataset(_SequentialReader(X)).sample(1000, rs)
    np.testing.assert_array_equal(rows, X)
    assert weights is None
    assert rs.randint(1 << 30) == np.random.RandomState(5).randint(1 << 30)


def test_sample_draws_the_rows_an_array_would():
    X = _mixture()
    w = np.arange(X.shape[0], dtype=float)
    got = BlockDataset(_SequentialReader(X), w, block_rows=256).sample(100, np.random.RandomState(3))
    expected = ArrayDataset(X, w).sample(100, np.random.RandomState(3))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_infer_equals_in_memory():
    X = _mixture()
    model, params = _params(X)
    dataset = BlockDataset(ArrayBlockReader(X), block_rows=400)
    for want in ("score", "labels", "proba"):
        got = dataset.infer(model, params, want)
        expected = ArrayDataset(X).infer(model, params, want)
        # Per-row results do not depend on the blocks.
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


def test_a_reader_that_loses_rows_is_refused():
    X = _mixture(500)
    model, params = _params(_mixture())
    with pytest.raises(ValueError, match="announced 490"):
        BlockDataset(_SequentialReader(X, extra_rows=10), block_rows=100).expectation(model, params)
    with pytest.raises(ValueError, match=r"expected \(rows, 3\)"):
        BlockDataset(_SequentialReader(X, bad_width=True), block_rows=100).expectation(model, params)


def test_non_finite_values_name_their_row():
    X = _mixture(500)
    X[321, 1] = np.nan
    model, params = _params(_mixture())
    with pytest.raises(ValueError, match="row 321"):
        BlockDataset(ArrayBlockReader(X), block_rows=100).expectation(model, params)
    # The read-ahead thread ends with the failed pass.
    assert not [t for t in threading.enumerate() if t.name.startswith("gaussmix-read")]


def test_default_block_rows_are_whole_chunks_of_about_64_mib():
    rows = default_block_rows(16, np.float32)
    assert rows % 16384 == 0
    assert 32 << 20 <= rows * 16 * 4 <= 64 << 20
    # Very wide rows still get one chunk's worth.
    assert default_block_rows(10**7, np.float64) == 16384


def test_base_take_reads_requested_rows():
    X = _mixture(1000)
    rows = np.array([0, 5, 511, 512, 999])
    np.testing.assert_array_equal(_SequentialReader(X).take(rows), X[rows])
    assert _SequentialReader(X).take(np.array([], dtype=int)).shape == (0, 3)


def test_array_block_reader_casts_integers_and_refuses_1d():
    reader = ArrayBlockReader(np.arange(12).reshape(6, 2))
    assert reader.dtype == np.float64
    block = next(reader.iter_blocks(4))
    assert block.dtype == np.float64 and block.flags.c_contiguous
    with pytest.raises(ValueError, match="2-D"):
        ArrayBlockReader(np.arange(5))


def test_as_dataset_dispatch(tmp_path):
    X = _mixture(50)
    dataset = ArrayDataset(X)
    assert as_dataset(dataset) is dataset
    assert isinstance(as_dataset(ArrayBlockReader(X)), BlockDataset)
    assert as_dataset(X) is None and as_dataset(X.tolist()) is None
    np.save(tmp_path / "x.npy", X)
    assert isinstance(as_dataset(tmp_path / "x.npy"), BlockDataset)
    assert isinstance(as_dataset(str(tmp_path / "x.npy")), BlockDataset)
    # A memmap is an array, fitted as scikit-learn fits it.
    assert as_dataset(np.load(tmp_path / "x.npy", mmap_mode="r")) is None


def test_check_dataset_shape():
    dataset = BlockDataset(ArrayBlockReader(_mixture(5)))
    with pytest.raises(ValueError, match="minimum of 6"):
        check_dataset_shape(dataset, 6)
    with pytest.raises(ValueError, match="expecting 4 features"):
        check_dataset_shape(dataset, 1, n_features=4)
    check_dataset_shape(dataset, 5, n_features=3)


def test_fit_from_a_block_dataset_equals_the_array_fit():
    X = _mixture()
    from_blocks = GaussianMixture(3, random_state=0).fit(BlockDataset(ArrayBlockReader(X)))
    in_memory = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(from_blocks.means_, in_memory.means_)
    np.testing.assert_array_equal(from_blocks.covariances_, in_memory.covariances_)
    assert from_blocks.n_iter_ == in_memory.n_iter_


def test_a_float32_file_is_scored_in_the_float64_of_the_model(tmp_path):
    # As for arrays, the computation takes the wider of the two dtypes, so a
    # float64 model gives the same scores whether float32 rows come from an
    # array or from a file.
    X = np.random.default_rng(3).normal(size=(2000, 3))
    model = GaussianMixture(3, random_state=0).fit(X)
    path = tmp_path / "rows.npy"
    np.save(path, X.astype(np.float32))
    from_file = model.score_samples(str(path))
    assert from_file.dtype == np.float64
    np.testing.assert_array_equal(from_file, model.score_samples(X.astype(np.float32)))
