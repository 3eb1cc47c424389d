"""Fitting from files: .npy, Parquet (file and folder), Zarr, np.memmap."""

import functools
import gc
import sys
import threading
import tracemalloc
import warnings

import numpy as np
import pytest

from gaussmix import ConvergenceWarning, GaussianMixture
from gaussmix.covariance import get_covariance_model
from gaussmix.datasets import ArrayBlockReader, ArrayDataset, BlockDataset, BlockReader
from gaussmix.sources import NpyReader, ParquetReader, ZarrReader, open_path, reader_for_memmap

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
zarr = pytest.importorskip("zarr")

FORMATS = [
    "npy", "npy_fortran", "parquet", "parquet_folder", "zarr", "zarr_array", "memmap",
    "memmap_fortran",
]
# Formats given to fit as something that is not a path.
_OBJECTS = {"zarr_array", "memmap", "memmap_fortran"}


def _mixture(n=3000, dtype=np.float64, seed=0):
    """Three well separated, anisotropic clusters in 3-D."""
    rng = np.random.RandomState(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, -3.0], [0.0, 7.0, 3.0]])
    X = centres[rng.randint(3, size=n)] + rng.randn(n, 3) * [1.0, 0.5, 2.0]
    return X.astype(dtype)


def _write(fmt, X, folder):
    """``X`` stored as ``fmt`` under ``folder``; returns what fit is given."""
    if fmt.startswith(("npy", "memmap")):
        path = folder / "x.npy"
        # numpy.save writes a Fortran-contiguous array column by column.
        np.save(path, np.asfortranarray(X) if fmt.endswith("fortran") else X)
        if fmt.startswith("memmap"):
            # A map is read block by block only where the reader says so.
            return reader_for_memmap(np.load(path, mmap_mode="r"))
        return path
    columns = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    if fmt == "parquet":
        path = folder / "x.parquet"
        # Row groups that do not line up with the blocks.
        pq.write_table(pa.table(columns), path, row_group_size=700)
        return path
    if fmt == "parquet_folder":
        path = folder / "parts"
        path.mkdir()
        # Unequal files, named so that sorted order is row order.
        for i, (lo, hi) in enumerate([(0, 1234), (1234, 1235), (1235, X.shape[0])]):
            part = pa.table({k: v[lo:hi] for k, v in columns.items()})
            pq.write_table(part, path / f"part-{i:03d}.parquet", row_group_size=400)
        (path / "_SUCCESS").touch()
        return path
    path = folder / "x.zarr"
    array = zarr.create_array(str(path), shape=X.shape, chunks=(256, X.shape[1]), dtype=X.dtype)
    array[:] = X
    return zarr.open_array(str(path), mode="r") if fmt == "zarr_array" else path


def _reader(source):
    if isinstance(source, BlockReader):
        return source
    if hasattr(source, "oindex"):
        return ZarrReader(source)
    return open_path(source)


def _fixed_init():
    """Deliberately rough starting parameters, so EM has work to do."""
    return dict(
        weights_init=[0.2, 0.3, 0.5],
        means_init=[[1.0, 1.0, 0.0], [5.0, 1.0, -2.0], [1.0, 6.0, 2.0]],
        precisions_init=np.tile(np.eye(3), (3, 1, 1)) * 0.5,
    )


_FIXED_FIT = dict(n_components=3, tol=0, max_iter=15, **_fixed_init())


@functools.lru_cache(maxsize=None)
def _in_memory_fit(kind, dtype):
    """The in-memory fit each format is compared with, fitted once per session."""
    X = _mixture(dtype=np.dtype(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if kind == "fixed":
            return GaussianMixture(**_FIXED_FIT).fit(X)
        return GaussianMixture(3, random_state=0).fit(X)


def _assert_same_fit(a, b, rtol=0.0):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        if rtol:
            scale = np.abs(getattr(b, name)).max()
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol,
                                       atol=rtol * scale, err_msg=name)
        else:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    if rtol:
        assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=rtol)
    else:
        assert a.lower_bound_ == b.lower_bound_
    assert a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("fmt", FORMATS)
def test_readers_give_the_rows_back(fmt, tmp_path):
    X = _mixture(1000)
    reader = _reader(_write(fmt, X, tmp_path))
    assert (reader.n_samples, reader.n_features, reader.dtype) == (1000, 3, np.float64)
    blocks = list(reader.iter_blocks(300))
    sizes = [b.shape[0] for b in blocks]
    # Zarr reads whole chunks (256 rows here) rather than split one.
    assert sizes == ([256, 256, 256, 232] if "zarr" in fmt else [300, 300, 300, 100])
    assert all(b.flags.c_contiguous and b.dtype == np.float64 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), X)
    rows = np.sort(np.random.RandomState(0).choice(1000, 137, replace=False))
    np.testing.assert_array_equal(reader.take(rows), X[rows])
    np.testing.assert_array_equal(reader.take(np.arange(1000)), X)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fit_from_many_blocks_equals_the_in_memory_fit(fmt, dtype, tmp_path):
    X = _mixture(dtype=dtype)
    dataset = BlockDataset(_reader(_write(fmt, X, tmp_path)), block_rows=500)
    assert dataset.dtype == dtype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        from_file = GaussianMixture(**_FIXED_FIT).fit(dataset)
    in_memory = _in_memory_fit("fixed", np.dtype(dtype).name)
    # Six blocks of 500 rows against one chunk of 3000: each sum is rounded
    # differently, by a few ulps of the working precision per term, and 15
    # EM iterations carry that forward without blowing it up (EM is a
    # contraction near its fixed point).  Measured: about 2e-14 of each
    # parameter's scale in float64, 1e-6 in float32 (the E-step runs in
    # single precision, eps 6e-8); the tolerances leave a 10-50x margin.
    _assert_same_fit(from_file, in_memory, rtol=1e-12 if dtype == np.float64 else 1e-5)
    assert from_file.means_.dtype == dtype


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_default_fit_from_a_file_equals_the_array_fit(fmt, dtype, tmp_path):
    X = _mixture(dtype=dtype)
    source = _write(fmt, X, tmp_path)
    # Fewer rows than the init sample: every row, in order, seeds k-means,
    # and the default blocks hold the whole file, so nothing may differ.
    _assert_same_fit(GaussianMixture(3, random_state=0).fit(source),
                     _in_memory_fit("default", np.dtype(dtype).name))


# Parquet columns have names and the model was fitted on an array: scikit-learn's warning.
@pytest.mark.filterwarnings("ignore:X has feature names")
@pytest.mark.parametrize("fmt", FORMATS)
def test_inference_on_a_file_equals_inference_on_the_array(fmt, tmp_path):
    X = _mixture()
    source = _write(fmt, X, tmp_path)
    gm = _in_memory_fit("default", "float64")
    np.testing.assert_array_equal(gm.predict(source), gm.predict(X))
    np.testing.assert_array_equal(gm.predict_proba(source), gm.predict_proba(X))
    np.testing.assert_array_equal(gm.score_samples(source), gm.score_samples(X))
    assert gm.score(source) == gm.score(X)
    assert gm.bic(source) == gm.bic(X)
    assert gm.aic(source) == gm.aic(X)
    # Many blocks: per-row results do not depend on where the blocks end.
    blocks = BlockDataset(_reader(source), block_rows=500)
    np.testing.assert_allclose(gm.score_samples(blocks), gm.score_samples(X), rtol=1e-13)
    np.testing.assert_array_equal(gm.predict(blocks), gm.predict(X))


@pytest.mark.parametrize("fmt", ["npy", "parquet_folder", "zarr"])
def test_fit_predict_on_a_path(fmt, tmp_path):
    X = _mixture()
    source = _write(fmt, X, tmp_path)
    labels = GaussianMixture(3, random_state=0).fit_predict(source)
    np.testing.assert_array_equal(labels, GaussianMixture(3, random_state=0).fit_predict(X))
    np.testing.assert_array_equal(labels, GaussianMixture(3, random_state=0).fit(source).predict(source))


@pytest.mark.parametrize("fmt", ["npy", "parquet", "zarr"])
def test_sample_weight_with_a_path(fmt, tmp_path):
    X = _mixture()
    w = np.random.RandomState(2).randint(0, 4, size=X.shape[0]).astype(float)
    source = _write(fmt, X, tmp_path)
    _assert_same_fit(GaussianMixture(3, random_state=0).fit(source, sample_weight=w),
                     GaussianMixture(3, random_state=0).fit(X, sample_weight=w))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        params = dict(n_components=3, tol=0, max_iter=10, **_fixed_init())
        blocks = BlockDataset(_reader(source), block_rows=500)
        # Same rounding argument as the unweighted fit from many blocks.
        _assert_same_fit(GaussianMixture(**params).fit(blocks, sample_weight=w),
                         GaussianMixture(**params).fit(X, sample_weight=w), rtol=1e-12)


def test_init_sample_from_a_larger_file_is_drawn_like_the_array_sample(tmp_path):
    X = _mixture(5000)
    np.save(tmp_path / "x.npy", X)
    dataset = BlockDataset(NpyReader(tmp_path / "x.npy"), block_rows=700)
    got, _ = dataset.sample(1000, np.random.RandomState(4))
    expected, _ = ArrayDataset(X).sample(1000, np.random.RandomState(4))
    np.testing.assert_array_equal(got, expected)


def test_parquet_folder_parts_are_read_in_numbered_order(tmp_path):
    # Twelve parts named as dask.dataframe names them: part.10 comes after
    # part.9 (pyarrow's lexicographic order would put it after part.1).
    X = np.arange(48.0).reshape(24, 2)
    folder = tmp_path / "parts"
    (folder / "sub").mkdir(parents=True)
    for i in range(12):
        pq.write_table(pa.table({"a": X[2 * i : 2 * i + 2, 0], "b": X[2 * i : 2 * i + 2, 1]}),
                       folder / f"part.{i}.parquet")
    pq.write_table(pa.table({"a": [99.0], "b": [99.0]}), folder / "sub" / "part.0.parquet")
    reader = open_path(folder)
    np.testing.assert_array_equal(np.concatenate(list(reader.iter_blocks(5))),
                                  np.vstack([X, [[99.0, 99.0]]]))


def test_parquet_file_order_key_compares_numbers_by_value_and_takes_any_name():
    from pathlib import Path

    from gaussmix.sources import _natural_key

    names = ["p/part.10.pq", "p/part.2.pq", "p/part.02.pq", "p/a/part.0.pq", "p/x\u00b2.pq",
             "p/\u0663.pq", "p/part-00001-ab12.pq"]
    ordered = [str(p) for p in sorted(map(Path, names), key=_natural_key)]
    assert ordered.index("p/part.2.pq") < ordered.index("p/part.10.pq")
    assert ordered.index("p/part.02.pq") < ordered.index("p/part.10.pq")
    assert sorted(ordered) == sorted(names)


# dask.dataframe's own Parquet writer warns about a pandas deprecation.
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
def test_parquet_folder_written_by_dask_is_read_in_dask_order(tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": np.arange(30.0), "b": np.arange(30.0) ** 2})
    dd.from_pandas(frame, npartitions=12).to_parquet(tmp_path / "out", write_index=False)
    got = np.concatenate(list(open_path(tmp_path / "out").iter_blocks(7)))
    np.testing.assert_array_equal(got, dd.read_parquet(tmp_path / "out").compute().to_numpy())
    np.testing.assert_array_equal(got, frame.to_numpy())


def test_parquet_feature_names_and_columns(tmp_path):
    X = _mixture(200)
    table = pa.table({"a": X[:, 0], "label": ["x"] * 200, "b": X[:, 1].astype(np.float32),
                      "n": np.arange(200, dtype=np.int32)})
    pq.write_table(table, tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"'label'.*columns="):
        open_path(tmp_path / "t.parquet")
    reader = ParquetReader(tmp_path / "t.parquet", columns=["b", "a", "n"])
    assert list(reader.feature_names) == ["b", "a", "n"]
    assert reader.dtype == np.float64
    expected = np.column_stack([X[:, 1].astype(np.float32), X[:, 0], np.arange(200)])
    np.testing.assert_array_equal(np.concatenate(list(reader.iter_blocks(64))), expected)
    gm = GaussianMixture(2, random_state=0).fit(reader)
    assert list(gm.feature_names_in_) == ["b", "a", "n"]
    with pytest.raises(ValueError, match="no column 'c'"):
        ParquetReader(tmp_path / "t.parquet", columns=["a", "c"])
    pq.write_table(pa.table({"a": X[:, 0].astype(np.float32)}), tmp_path / "f.pq")
    assert open_path(tmp_path / "f.pq").dtype == np.float32


def test_npy_integers_and_byte_order(tmp_path):
    ints = np.arange(30, dtype=np.int16).reshape(10, 3)
    np.save(tmp_path / "i.npy", ints)
    reader = open_path(tmp_path / "i.npy")
    assert reader.dtype == np.float64
    np.testing.assert_array_equal(np.concatenate(list(reader.iter_blocks(4))), ints)
    big = _mixture(50).astype(">f4")
    np.save(tmp_path / "b.npy", big)
    reader = open_path(tmp_path / "b.npy")
    block = next(reader.iter_blocks(100))
    assert block.dtype == np.dtype(np.float32) and block.dtype.isnative
    np.testing.assert_array_equal(block, big)
    np.testing.assert_array_equal(reader.take(np.array([3, 40])), big[[3, 40]])
    np.save(tmp_path / "bf.npy", np.asfortranarray(big))
    reader = open_path(tmp_path / "bf.npy")
    assert reader.fortran_order
    np.testing.assert_array_equal(np.concatenate(list(reader.iter_blocks(7))), big)
    np.testing.assert_array_equal(reader.take(np.array([0, 3, 49])), big[[0, 3, 49]])


def test_fortran_npy_reads_one_span_per_column_and_detects_truncation(tmp_path):
    X = _mixture(5000)
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    reader = open_path(tmp_path / "f.npy")
    # Rows far apart are separate spans, each read once per column.
    rows = np.array([1, 2, 4000, 4999])
    np.testing.assert_array_equal(reader.take(rows), X[rows])
    # One column is stored alike in either order: a header that says
    # Fortran is read as rows.
    with open(tmp_path / "one.npy", "wb") as file:
        header = {"descr": "<f8", "fortran_order": True, "shape": (5000, 1)}
        np.lib.format.write_array_header_1_0(file, header)
        file.write(X[:, :1].astype("<f8").tobytes())
    one = open_path(tmp_path / "one.npy")
    assert not one.fortran_order
    np.testing.assert_array_equal(np.concatenate(list(one.iter_blocks(999))), X[:, :1])
    data = (tmp_path / "f.npy").read_bytes()
    (tmp_path / "f.npy").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="truncated"):
        open_path(tmp_path / "f.npy")


@pytest.mark.parametrize("shape, hint", [((100,), "map X.reshape(-1, 1)"), ((4, 5, 5), "")])
def test_a_memmap_that_is_not_2d_is_refused_by_name(tmp_path, shape, hint):
    path = tmp_path / "v.npy"
    np.save(path, np.zeros(shape))
    with pytest.raises(ValueError, match=r"expects a 2-D map .* got shape") as error:
        reader_for_memmap(np.load(path, mmap_mode="r"))
    assert hint in str(error.value)


def test_memmaps_are_read_from_their_file(tmp_path):
    X = _mixture(2000)
    path = tmp_path / "raw.bin"
    X.tofile(path)
    offset_map = np.memmap(path, dtype=np.float64, mode="r", shape=(1900, 3), offset=100 * 24)
    view = offset_map[37:1500]
    reader = reader_for_memmap(view)
    assert not isinstance(reader, ArrayBlockReader)
    np.testing.assert_array_equal(np.concatenate(list(reader.iter_blocks(333))), X[137:1600])
    np.testing.assert_array_equal(reader.take(np.array([0, 9, 1462])), X[[137, 146, 1599]])
    # Private copy-on-write pages and strided views are not the file's: sliced instead.
    assert isinstance(reader_for_memmap(np.memmap(path, np.float64, "c", shape=(2000, 3))),
                      ArrayBlockReader)
    assert isinstance(reader_for_memmap(offset_map[::2]), ArrayBlockReader)
    # A Fortran-ordered map (a column-major file, or a C map's transpose) too.
    transposed = reader_for_memmap(offset_map.T)
    assert not isinstance(transposed, ArrayBlockReader) and transposed.fortran_order
    np.testing.assert_array_equal(np.concatenate(list(transposed.iter_blocks(2))), X[100:].T)
    writable = np.memmap(tmp_path / "w.bin", np.float64, "w+", shape=(2000, 3))
    writable[:] = X
    _assert_same_fit(GaussianMixture(3, random_state=0).fit(writable),
                     GaussianMixture(3, random_state=0).fit(X))


def test_a_memmap_is_fitted_as_the_array_it_is(tmp_path, monkeypatch):
    # joblib hands large arrays to its workers as memmaps: the fit must not
    # change with n_jobs, however many rows the map has.  A 500-row start
    # sample stands in for the 100,000 rows of larger files.
    monkeypatch.setattr(BlockDataset, "init_sample_rows", 500)
    X = _mixture(3000)
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    in_memory = GaussianMixture(3, random_state=0).fit(X)
    fitted = GaussianMixture(3, random_state=0).fit(mapped)
    _assert_same_fit(fitted, in_memory)
    np.testing.assert_array_equal(fitted.predict(mapped), in_memory.predict(X))
    # Block by block, the start comes from the sample instead.
    blockwise = GaussianMixture(3, random_state=0).fit(reader_for_memmap(mapped))
    assert not np.array_equal(blockwise.means_, in_memory.means_)


# ------------------------------------------------------------------- errors
def test_unsupported_and_missing_paths(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"x\.csv.*\.npy.*Parquet.*Zarr"):
        GaussianMixture(2).fit(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match="nothere.npy"):
        GaussianMixture(2).fit(tmp_path / "nothere.npy")
    # A str that is not a path (data pasted as text, say) is read as one:
    # the message says so, and what to pass instead.
    fitted = GaussianMixture(2, random_state=0).fit(np.arange(20.0).reshape(10, 2))
    with pytest.raises(FileNotFoundError,
                       match=r"'1\.5, 2\.5'\. A str or path given as data is read as a "
                             r"file: a \.npy file.*pass an array for data in memory"):
        fitted.predict("1.5, 2.5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="supported"):
        open_path(tmp_path / "empty")
    (tmp_path / "fake.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match="not a .npy file"):
        open_path(tmp_path / "fake.npy")


def test_npy_shapes_and_dtypes_that_cannot_be_fitted(tmp_path):
    np.save(tmp_path / "one.npy", np.arange(10.0))
    with pytest.raises(ValueError, match=r"shape \(10,\).*reshape\(-1, 1\)"):
        GaussianMixture(2).fit(tmp_path / "one.npy")
    np.save(tmp_path / "obj.npy", np.array([[1, "a"], [2, "b"]], dtype=object))
    with pytest.raises(ValueError, match="Python objects"):
        open_path(tmp_path / "obj.npy")
    np.save(tmp_path / "str.npy", np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="numeric"):
        open_path(tmp_path / "str.npy")
    np.save(tmp_path / "t.npy", _mixture(20))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-8])
    with pytest.raises(ValueError, match="truncated"):
        open_path(tmp_path / "t.npy")


def test_parquet_nulls_name_column_and_row(tmp_path):
    values = pa.array([1.0, 2.0, None, 4.0] * 100)
    pq.write_table(pa.table({"a": np.ones(400), "b": values}), tmp_path / "n.parquet")
    with pytest.raises(ValueError, match="'b'.*row 2;"):
        GaussianMixture(2).fit(tmp_path / "n.parquet")
    with pytest.raises(ValueError, match="'b'.*row 6;"):
        open_path(tmp_path / "n.parquet").take(np.array([0, 6]))


@pytest.mark.parametrize("fmt", ["npy", "parquet", "zarr"])
def test_nan_in_a_later_block_names_the_row(fmt, tmp_path):
    X = _mixture()
    X[2345, 2] = np.nan
    source = _write(fmt, X, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init = _fixed_init()
        with pytest.raises(ValueError, match="row 2345"):
            GaussianMixture(3, **init).fit(BlockDataset(_reader(source), block_rows=500))
    gc.collect()
    assert not _read_ahead_threads()


def test_wrong_number_of_features_at_predict(tmp_path):
    gm = GaussianMixture(2, random_state=0).fit(_mixture(300))
    np.save(tmp_path / "two.npy", _mixture(300)[:, :2])
    with pytest.raises(ValueError, match="2 features.*expecting 3"):
        gm.predict(tmp_path / "two.npy")


def test_zarr_group_and_one_dimensional_arrays(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.create_array("X", shape=(10, 2), dtype="f8")
    with pytest.raises(ValueError, match=r"group with arrays \['X'\]"):
        open_path(tmp_path / "g.zarr")
    assert open_path(tmp_path / "g.zarr" / "X").n_features == 2
    with pytest.raises(ValueError, match="2-D"):
        ZarrReader(zarr.create_array(str(tmp_path / "v.zarr"), shape=(10,), dtype="f8"))


# ----------------------------------------------------- memory and threads
def _read_ahead_threads():
    return [t for t in threading.enumerate() if t.name.startswith("gaussmix-read")]


def _traced_peak(function):
    gc.collect()
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_pass_over_a_large_file_holds_a_few_blocks(tmp_path):
    block_rows = 4000
    X = _mixture(400_000, seed=1)  # 100 blocks, 9.6 MB
    np.save(tmp_path / "big.npy", X)
    gm = GaussianMixture(3, random_state=0).fit(X[:3000])
    model = get_covariance_model("full")
    params = gm._fitted_params()
    dataset = BlockDataset(NpyReader(tmp_path / "big.npy"), block_rows=block_rows)
    one_block = ArrayDataset(np.ascontiguousarray(X[:block_rows]))
    with dataset.passes(model, params):
        dataset.expectation(model, params)  # warm up thread pools and caches
        peak = _traced_peak(lambda: dataset.expectation(model, params))
        per_block = _traced_peak(lambda: one_block.expectation(model, params))
    block_bytes = block_rows * 3 * 8
    # The E-step's own temporaries on one block, plus the blocks in flight:
    # the one computed, the one read ahead, and one not yet released by the
    # generators between them; 64 KiB more for per-pass constants (prepared
    # parameters, the running statistics).  The file is 100 blocks.
    assert peak <= per_block + 3 * block_bytes + (64 << 10), (peak, per_block, block_bytes)
    # The E-step's temporaries are several times a block, so the whole pass
    # holds about 9 blocks' worth: far from the file's 100.
    assert peak < X.nbytes / 5
    assert not _read_ahead_threads()


def test_read_ahead_thread_is_gone_after_each_pass(tmp_path):
    X = _mixture()
    np.save(tmp_path / "x.npy", X)
    gm = GaussianMixture(3, random_state=0).fit(BlockDataset(NpyReader(tmp_path / "x.npy"), block_rows=500))
    assert not _read_ahead_threads()
    gm.predict(tmp_path / "x.npy")
    assert not _read_ahead_threads()


def test_missing_pyarrow_says_how_to_install_it(tmp_path, monkeypatch):
    pq.write_table(pa.table({"a": np.ones(3)}), tmp_path / "a.parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"pip install 'gaussmix\[parquet\]'"):
        open_path(tmp_path / "a.parquet")


def test_nan_found_in_the_start_sample_names_the_file_row(tmp_path):
    """Rows of the init sample are numbered as in the file, not as in the sample."""
    X = _mixture(n=2000)
    X[1990, 1] = np.nan
    np.save(tmp_path / "n.npy", X)
    # Seed 0 draws row 1990 into a sample of 1500 (at position 1490 or so).
    assert 1990 in np.random.RandomState(0).choice(2000, size=1500, replace=False)
    dataset = BlockDataset(NpyReader(tmp_path / "n.npy"))
    with pytest.raises(ValueError, match="row 1990;"):
        dataset.sample(1500, np.random.RandomState(0))


def test_start_sample_is_drawn_from_rows_of_positive_weight(tmp_path):
    """Sparse weights: a uniform sample could hold fewer weighted rows than components."""
    X = _mixture(n=3000)
    np.save(tmp_path / "x.npy", X)
    weights = np.zeros(3000)
    weights[[10, 1500, 2999, 700]] = 1.0
    dataset = BlockDataset(NpyReader(tmp_path / "x.npy")).weighted(weights)
    rows, sample_weights = dataset.sample(2, np.random.RandomState(0))
    assert np.all(sample_weights > 0) and rows.shape == (2, 3)
    fitted = GaussianMixture(3, random_state=0)
    fitted.fit(BlockDataset(NpyReader(tmp_path / "x.npy")), sample_weight=weights)
    assert np.all(np.isfinite(fitted.means_))


def test_parquet_index_columns_are_not_features(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(_mixture(n=300), columns=["a", "b", "c"])
    filtered = frame[frame.a > frame.a.median()]  # keeps a non-default index
    filtered.to_parquet(tmp_path / "f.parquet")
    frame.set_index("a").to_parquet(tmp_path / "i.parquet")
    assert list(ParquetReader(tmp_path / "f.parquet").feature_names) == ["a", "b", "c"]
    assert list(ParquetReader(tmp_path / "i.parquet").feature_names) == ["b", "c"]
    assert list(ParquetReader(tmp_path / "f.parquet", columns="b").feature_names) == ["b"]


def test_predict_checks_the_feature_names_of_a_parquet_file(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(_mixture(n=300), columns=["a", "b", "c"])
    frame.to_parquet(tmp_path / "abc.parquet", index=False)
    frame.rename(columns={"c": "z"}).to_parquet(tmp_path / "abz.parquet", index=False)
    gm = GaussianMixture(3, random_state=0).fit(tmp_path / "abc.parquet")
    with pytest.raises(ValueError, match="unseen at fit time:\n- z"):
        gm.predict(tmp_path / "abz.parquet")
    with pytest.raises(ValueError, match="same order"):
        gm.predict(ParquetReader(tmp_path / "abc.parquet", columns=["c", "b", "a"]))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        gm.predict(frame.to_numpy())
    np.testing.assert_array_equal(gm.predict(tmp_path / "abc.parquet"), gm.predict(frame))
