"""Fitting dask arrays and dataframes on a real two-process LocalCluster.

The dask fit computes the same chunk statistics as the in-memory fit and
only adds them in a different order (per block on the workers, then over
blocks on the driver), so parameters agree to a few hundred ulps: the
norm-wise relative differences measured here were 0 to 8e-14 in float64
(precisions_cholesky_ the largest), and the tests allow 1e-10.  float32
fits compute each row in float32 and may see BLAS round differently for the
different chunk shapes, hence 1e-4 there (see test_float32).
"""

from __future__ import annotations

import builtins
import gc
import logging
import sys
import time

import numpy as np
import pytest

pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from _helpers import relative_error, user_init  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402
from gaussmix.dask_backend import DaskDataset  # noqa: E402

PARAMS = ("weights_", "means_", "covariances_", "precisions_cholesky_")
RTOL64 = 1e-10
BLOCK_ROWS = 1000  # 6 blocks of the 6000 rows below


@pytest.fixture(scope="module")
def cluster():
    # The nanny's default MALLOC_TRIM_THRESHOLD_ slows allocation-heavy
    # E-steps; unset it for the worker processes (see docs/dask.md).
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=logging.CRITICAL,
        ) as local_cluster, distributed.Client(
            local_cluster, set_as_default=False
        ) as client:
            yield client


@pytest.fixture
def client(cluster):
    """The cluster's client, active for one test only (others run without)."""
    with cluster.as_current():
        yield cluster


def mixture(n=6000, n_features=3, n_components=3, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    centres = rng.normal(scale=6.0, size=(n_components, n_features))
    labels = rng.randint(n_components, size=n)
    X = centres[labels] + rng.normal(size=(n, n_features)) * rng.uniform(0.5, 2, n_features)
    return X.astype(dtype)


def assert_same_fit(dask_fit, memory_fit, rtol):
    for name in PARAMS:
        error = relative_error(getattr(dask_fit, name), getattr(memory_fit, name))
        assert error <= rtol, f"{name}: relative difference {error:.3g} > {rtol:.1g}"
    assert dask_fit.n_iter_ == memory_fit.n_iter_
    assert dask_fit.lower_bound_ == pytest.approx(memory_fit.lower_bound_, rel=rtol)


def test_fit_equals_in_memory_from_same_start(client):
    X = mixture()
    init = user_init(X, 3, "full")
    memory = GaussianMixture(3, tol=1e-6, max_iter=500, **init).fit(X)
    dataset = DaskDataset(da.from_array(X, chunks=700), block_rows=BLOCK_ROWS)
    fitted = GaussianMixture(3, tol=1e-6, max_iter=500, **init).fit(dataset)
    assert len(dataset._blocks.starts) - 1 == 6
    assert_same_fit(fitted, memory, RTOL64)
    assert fitted.n_iter_ > 5 and fitted.converged_


def test_squarem_on_dask_equals_squarem_in_memory(client):
    # Overlapping clusters, where SQUAREM extrapolates: its jumps, their
    # safeguard and the fallbacks take the Dask E-step like plain EM's.
    X = mixture(n_components=3, seed=3) * 0.15
    init = user_init(X, 3, "full")
    kwargs = dict(tol=1e-8, max_iter=2000, acceleration="squarem", **init)
    memory = GaussianMixture(3, **kwargs).fit(X)
    dataset = DaskDataset(da.from_array(X, chunks=700), block_rows=BLOCK_ROWS)
    fitted = GaussianMixture(3, **kwargs).fit(dataset)
    for name in PARAMS:
        error = relative_error(getattr(fitted, name), getattr(memory, name))
        assert error <= RTOL64, f"{name}: relative difference {error:.3g}"
    assert fitted.lower_bound_ == pytest.approx(memory.lower_bound_, rel=RTOL64)
    # Near convergence a jump's log-likelihood and its EM step's differ by
    # rounding, which the Dask sums group differently: keeping or rejecting
    # it costs the fallback pass or not, the same point either way.
    assert abs(fitted.n_iter_ - memory.n_iter_) <= 2
    plain = GaussianMixture(3, tol=1e-8, max_iter=2000, **init).fit(X)
    assert memory.n_iter_ < plain.n_iter_


def test_blocks_are_spread_over_both_workers(client):
    dataset = DaskDataset(da.from_array(mixture(), chunks=3000), block_rows=BLOCK_ROWS)
    dataset._parts()
    owners = dataset._blocks.owners
    assert sorted(owners.count(w) for w in set(owners)) == [3, 3]
    who_has = client.who_has(dataset._blocks.parts)
    assert all(who_has[f.key] == (w,) or list(who_has[f.key]) == [w]
               for f, w in zip(dataset._blocks.parts, owners))


def test_blocks_are_released_after_the_fit(client):
    X = mixture()
    GaussianMixture(3, random_state=0, max_iter=3).fit(
        DaskDataset(da.from_array(X), block_rows=BLOCK_ROWS)
    )
    gc.collect()
    deadline = time.monotonic() + 10  # releases reach the scheduler asynchronously
    while client.run_on_scheduler(_n_tasks) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.run_on_scheduler(_n_tasks) == 0


def _n_tasks(dask_scheduler):
    return len(dask_scheduler.tasks)


def test_float32(client):
    X = mixture(dtype=np.float32)
    init = user_init(X, 3, "full")
    # Whole data in one block: the same chunks as in memory, the same result.
    memory = GaussianMixture(3, tol=1e-6, **init).fit(X)
    fitted = GaussianMixture(3, tol=1e-6, **init).fit(da.from_array(X, chunks=BLOCK_ROWS))
    assert fitted.means_.dtype == np.float32
    assert_same_fit(fitted, memory, RTOL64)
    # Six blocks cut the rows into other chunk shapes, where float32 rows
    # round differently (~1e-7) and EM carries that along its slow
    # directions: 1.7e-4 was measured on means after a converged fit.  Ten
    # fixed iterations keep both on the same steps: 3.5e-6 measured.
    kwargs = dict(tol=0, max_iter=10, **init)
    with pytest.warns(ConvergenceWarning):
        memory = GaussianMixture(3, **kwargs).fit(X)
        fitted = GaussianMixture(3, **kwargs).fit(
            DaskDataset(da.from_array(X), block_rows=BLOCK_ROWS)
        )
    assert_same_fit(fitted, memory, 1e-4)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "VEV"])
def test_every_covariance_type(client, covariance_type):
    # Default k-means start: under 1e5 rows the sample is every row, so the
    # start equals the in-memory one.
    X = mixture(n=3000)
    kwargs = dict(covariance_type=covariance_type, random_state=0, tol=1e-8, max_iter=100)
    memory = GaussianMixture(3, **kwargs).fit(X)
    fitted = GaussianMixture(3, **kwargs).fit(
        DaskDataset(da.from_array(X), block_rows=BLOCK_ROWS)
    )
    assert_same_fit(fitted, memory, RTOL64)


def test_dataframe_with_feature_names(client):
    X = mixture()
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["c"] = (frame["c"] * 100).round().astype(np.int64)  # integer column -> float64
    ddf = dd.from_pandas(frame, npartitions=4)
    init = user_init(frame.to_numpy(np.float64), 3, "full")
    memory = GaussianMixture(3, **init).fit(frame)
    fitted = GaussianMixture(3, **init).fit(ddf)
    assert list(fitted.feature_names_in_) == ["a", "b", "c"]
    assert_same_fit(fitted, memory, RTOL64)
    np.testing.assert_array_equal(fitted.predict(ddf), memory.predict(frame))


@pytest.mark.parametrize("as_dask", [False, True])
def test_sample_weight(client, as_dask):
    X = mixture()
    weights = np.random.RandomState(1).randint(0, 4, size=X.shape[0]).astype(np.float64)
    init = user_init(X, 3, "diag")
    kwargs = dict(covariance_type="diag", tol=1e-8, **init)
    memory = GaussianMixture(3, **kwargs).fit(X, sample_weight=weights)
    given = da.from_array(weights, chunks=1500) if as_dask else weights
    fitted = GaussianMixture(3, **kwargs).fit(
        DaskDataset(da.from_array(X), block_rows=BLOCK_ROWS), sample_weight=given
    )
    assert_same_fit(fitted, memory, RTOL64)


def test_kmeans_start_from_a_sample(client, monkeypatch):
    X = mixture(n=6000, n_components=4, seed=3)
    n_sample = 1000
    dataset = DaskDataset(da.from_array(X), block_rows=BLOCK_ROWS, init_sample_rows=n_sample)

    # Everything the driver gathers from the workers while drawing the sample.
    gathered = []
    original = distributed.Client.gather

    def recording_gather(self, futures, *args, **kwargs):
        result = original(self, futures, *args, **kwargs)
        gathered.extend(r for r in result if isinstance(r, np.ndarray))
        return result

    monkeypatch.setattr(distributed.Client, "gather", recording_gather)
    rows, weights = dataset.sample(n_sample, np.random.RandomState(0))
    monkeypatch.undo()
    expected_rows = np.sort(np.random.RandomState(0).choice(len(X), n_sample, replace=False))
    np.testing.assert_array_equal(rows, X[expected_rows])
    assert weights is None
    assert sum(a.nbytes for a in gathered) == rows.nbytes

    memory = GaussianMixture(4, random_state=0).fit(X)
    fitted = GaussianMixture(4, random_state=0).fit(dataset)
    # Well-separated data: a start from 1000 rows reaches the same optimum.
    assert fitted.score(X) == pytest.approx(memory.score(X), rel=1e-3)


@pytest.mark.parametrize("method", ["predict", "score_samples", "predict_proba"])
def test_inference_on_a_dask_array(client, method):
    X = mixture()
    model = GaussianMixture(3, random_state=0).fit(X)
    result = getattr(model, method)(da.from_array(X, chunks=BLOCK_ROWS))
    assert isinstance(result, np.ndarray)
    # Rows are computed exactly as in memory, chunk by chunk, only grouped
    # in blocks: equal up to BLAS rounding on different chunk shapes.
    np.testing.assert_allclose(result, getattr(model, method)(X), rtol=1e-12, atol=1e-12)


def test_float32_rows_under_a_float64_model(client):
    X = mixture()
    model = GaussianMixture(3, random_state=0).fit(X)
    X32 = X.astype(np.float32)
    np.testing.assert_allclose(
        model.score_samples(da.from_array(X32)), model.score_samples(X32), rtol=1e-12
    )


def test_fit_predict_equals_fit_then_predict(client):
    X = mixture()
    model = GaussianMixture(3, random_state=0)
    labels = model.fit_predict(DaskDataset(da.from_array(X), block_rows=BLOCK_ROWS))
    np.testing.assert_array_equal(labels, model.predict(X))


def test_default_scheduler_without_client():
    with pytest.raises(ValueError):  # no client is active
        distributed.Client.current()
    X = mixture()
    init = user_init(X, 3, "full")
    memory = GaussianMixture(3, **init).fit(X)
    fitted = GaussianMixture(3, **init).fit(
        DaskDataset(da.from_array(X, chunks=500), block_rows=BLOCK_ROWS)
    )
    assert_same_fit(fitted, memory, RTOL64)
    np.testing.assert_allclose(
        fitted.score_samples(da.from_array(X)), memory.score_samples(X), rtol=1e-12
    )


def test_unknown_chunk_sizes(client):
    X = mixture()
    masked = da.from_array(X, chunks=1000)
    masked = masked[masked[:, 0] > -np.inf]  # all rows, chunk sizes unknown
    assert np.isnan(masked.shape[0])
    init = user_init(X, 3, "full")
    memory = GaussianMixture(3, **init).fit(X)
    assert_same_fit(GaussianMixture(3, **init).fit(masked), memory, RTOL64)


@pytest.mark.parametrize("shape", [(100,), (10, 5, 2)])
def test_refuses_other_than_two_dimensions(shape):
    with pytest.raises(ValueError, match="2-D dask array"):
        GaussianMixture(2).fit(da.zeros(shape))


def test_nan_names_block_and_row(client):
    X = mixture()
    X[2345, 1] = np.nan
    with pytest.raises(ValueError, match=r"Block 2 \(rows 2000 to 2999\).*row 2345"):
        GaussianMixture(3).fit(DaskDataset(da.from_array(X), block_rows=BLOCK_ROWS))


def test_non_numeric_column():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "c"]})
    with pytest.raises(TypeError, match="'label'"):
        GaussianMixture(1).fit(dd.from_pandas(frame, npartitions=1))


def test_import_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name == "dask" or name.startswith("dask."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for name in [m for m in sys.modules if m == "dask" or m.startswith("dask.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_dask)
    with pytest.raises(ImportError, match=r"pip install 'gaussmix\[dask\]'"):
        DaskDataset(np.zeros((4, 2)))


@pytest.mark.parametrize("with_client", [False, True])
def test_blocks_of_one_chunk_give_the_in_memory_statistics_exactly(with_client, request):
    # Above 32768 rows the E-step's chunks grow with the data set's rows;
    # blocks on workers must use the whole data set's chunk size, not their
    # own row counts, to sum the very chunks an in-memory pass sums.
    from gaussmix import _kernels, em
    from gaussmix.covariance import get_covariance_model
    from gaussmix.datasets import ArrayDataset

    X = mixture(40_000)
    with pytest.warns(ConvergenceWarning):
        fitted = GaussianMixture(3, max_iter=1, random_state=0).fit(X[:5000])
    model, params = get_covariance_model("full"), fitted._fitted_params().astype(np.float64)
    chunk = em.e_step_chunk_size(model, params, X.dtype, X.shape[0])
    assert chunk > _kernels.model_chunk_size(model, 3, 3, X.dtype)  # grown with the rows
    if with_client:
        request.getfixturevalue("client")
    in_memory = ArrayDataset(X)
    blocks = DaskDataset(da.from_array(X, chunks=chunk), block_rows=chunk)
    with in_memory.passes(model, params):
        expected = in_memory.expectation(model, params)
    with blocks.passes(model, params):
        got = blocks.expectation(model, params)
    for name in ("sum_resp", "shift_sum", "scatter"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    assert got.log_likelihood == expected.log_likelihood


def test_dataframe_of_booleans_and_nullable_numbers_fits_as_in_memory():
    frame = pd.DataFrame(mixture()[:, :2], columns=["a", "b"])
    frame["flag"] = frame["a"] > 1.0
    frame["count"] = pd.array((frame["b"] * 10).round(), dtype="Int64")
    init = user_init(frame.to_numpy(np.float64), 3, "full")
    memory = GaussianMixture(3, **init).fit(frame.astype(np.float64))
    fitted = GaussianMixture(3, **init).fit(dd.from_pandas(frame, npartitions=3))
    assert list(fitted.feature_names_in_) == ["a", "b", "flag", "count"]
    assert_same_fit(fitted, memory, RTOL64)


def test_dataframe_read_from_parquet_with_a_column_subset_fits_as_in_memory(tmp_path):
    # to_dask_array(lengths=True) miscounted such a frame's partitions.
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(mixture()[:, :3], columns=["a", "b", "c"])
    dd.from_pandas(frame, npartitions=12).to_parquet(tmp_path / "parts")
    subset = dd.read_parquet(tmp_path / "parts", columns=["a", "b"])
    init = user_init(frame[["a", "b"]].to_numpy(), 3, "full")
    memory = GaussianMixture(3, **init).fit(frame[["a", "b"]])
    fitted = GaussianMixture(3, **init).fit(subset)
    assert list(fitted.feature_names_in_) == ["a", "b"]
    assert_same_fit(fitted, memory, RTOL64)
    np.testing.assert_array_equal(fitted.predict(subset), memory.predict(frame[["a", "b"]]))


def test_integer_column_names_give_no_feature_names():
    """As scikit-learn: feature names only when every column name is a string."""
    frame = pd.DataFrame(mixture()[:300])
    fitted = GaussianMixture(2, random_state=0).fit(dd.from_pandas(frame, npartitions=2))
    assert not hasattr(fitted, "feature_names_in_")


def test_predict_checks_the_feature_names_of_a_dask_dataframe():
    frame = pd.DataFrame(mixture()[:600], columns=["a", "b", "c"])
    ddf = dd.from_pandas(frame, npartitions=2)
    fitted = GaussianMixture(3, random_state=0).fit(ddf)
    with pytest.raises(ValueError, match="same order"):
        fitted.predict(ddf[["c", "b", "a"]])
    unnamed = GaussianMixture(3, random_state=0).fit(frame.to_numpy())
    with pytest.warns(UserWarning, match="fitted without feature names"):
        unnamed.predict(ddf)


@pytest.mark.slow
@pytest.mark.parametrize("weighted", [False, True])
def test_a_worker_killed_mid_fit_changes_nothing(weighted):
    # Parameters and weight pieces are tasks, with lineage: what a killed
    # worker held is recomputed elsewhere.  A broadcast scatter of the
    # parameters once waited on the dead worker for good, and scattered
    # weights were lost with it.
    import os
    import signal

    # Iterations long enough for the scheduler to notice the death mid-fit.
    X = np.random.RandomState(0).normal(size=(200_000, 8))
    weights = np.random.RandomState(1).uniform(0.5, 2, len(X)) if weighted else None
    kwargs = dict(n_components=8, tol=0, max_iter=30, means_init=X[:8], random_state=0,
                  verbose=2, verbose_interval=1)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        silence_logs=logging.CRITICAL,
    ) as cluster, distributed.Client(cluster) as own:
        data = da.from_array(X, chunks=25_000)
        reference = GaussianMixture(**kwargs).fit(data, sample_weight=weights)
        victim = sorted(own.run(os.getpid).values())[0]
        killed = []

        class KillAtIteration5(logging.Handler):
            def emit(self, record):
                if record.getMessage().startswith("  Iteration 5\t") and not killed:
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)

        handler = KillAtIteration5()
        logging.getLogger("gaussmix").addHandler(handler)
        try:
            fitted = GaussianMixture(**kwargs).fit(data, sample_weight=weights)
        finally:
            logging.getLogger("gaussmix").removeHandler(handler)
    assert killed
    for name in PARAMS:
        np.testing.assert_array_equal(getattr(fitted, name), getattr(reference, name))


@pytest.mark.parametrize("with_client", [False, True])
def test_a_fit_failing_on_overflowing_squares_names_the_feature(request, with_client):
    if with_client:
        request.getfixturevalue("client")
    import warnings

    X = mixture()
    X[:, 2] *= 1e160
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overflow, and the start's, before the fit fails
        with pytest.raises(ValueError, match=r"Feature 2 of X spans .* square root") as caught:
            GaussianMixture(3, random_state=0).fit(da.from_array(X, chunks=(BLOCK_ROWS, 3)))
    assert "non-finite" in str(caught.value.__cause__)
