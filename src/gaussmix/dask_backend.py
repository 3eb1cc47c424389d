"""Fitting dask arrays and dataframes: the E-step runs where the blocks live.

:class:`DaskDataset` cuts the rows into blocks of about 64 MiB (one column
chunk), computes each block once, checks it and keeps it on the workers for
the whole fit.  Each EM iteration then hands the parameters (a few
kilobytes) to the workers as one task, runs :func:`gaussmix.em.expectation` on every block as one task,
and adds the returned :class:`~gaussmix.suffstats.SuffStats` on the driver in
block order, so that the fit equals the in-memory fit of the same rows up to
the order of a few floating-point additions.

With an active :class:`distributed.Client` the blocks are spread evenly over
its workers; without one, dask's default scheduler computes them once into
this process and EM runs on them here.  dask and distributed are the
optional extra ``pip install 'gaussmix[dask]'``, imported only when a dask
collection is fitted.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from . import em
from ._parallel import set_num_threads, single_threaded_blas, threadpool_controller
from .covariance import CovarianceModel
from .datasets import (
    DEFAULT_INIT_SAMPLE_ROWS,
    Dataset,
    _check_block,
    _float_dtype,
    combined_extremes,
    default_block_rows,
    sample_rows,
)
from .params import MixtureParams
from .suffstats import SuffStats, sum_stats
from .validation import feature_extremes

__all__ = ["DaskDataset"]

_INSTALL_HINT = "pip install 'gaussmix[dask]'"


def _import_dask():
    """``dask.array``, or an ImportError that says how to install it."""
    try:
        import dask
        import dask.array as da
    except ImportError as error:
        raise ImportError(
            "Fitting dask arrays and dataframes needs dask and distributed, the "
            f"optional extra of gaussmix: {_INSTALL_HINT}"
        ) from error
    return dask, da


def _active_client():
    """The current ``distributed.Client``, or None (dask's local scheduler)."""
    # A client exists only if distributed was imported: do not import it here.
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        # The client of ``with client.as_current():``, else the default one.
        return distributed.Client.current()
    except ValueError:
        return None


# ------------------------------------------------------------ worker side
_worker_limits = None


def _configure_worker(driver_pid: int) -> None:
    """One EM thread and one BLAS thread per task in a worker process.

    A worker runs one task per worker thread; EM threads inside each task
    would oversubscribe its cores.  In the driver's own process (threaded
    scheduler, in-process workers) nothing is changed.
    """
    global _worker_limits
    if os.getpid() == driver_pid or _worker_limits is not None:
        return
    set_num_threads(1)
    _worker_limits = threadpool_controller().limit(limits=1, user_api="blas")


def _checked_block(block, index: int, start: int, n_features: int, dtype) -> np.ndarray:
    """A block as a contiguous float array, refused if it holds NaN or infinity."""
    block = np.ascontiguousarray(block, dtype=dtype)
    try:
        _check_block(block, start, n_features)
    except ValueError as error:
        stop = start + block.shape[0] - 1
        raise ValueError(
            f"Block {index} (rows {start} to {stop}) of the dask input: {error}"
        ) from None
    return block


def _e_step_task(
    block, weights, model, params, chunk_size: int, n_samples: int, driver_pid: int
) -> SuffStats:
    _configure_worker(driver_pid)
    return em.expectation(model, block, weights, params, chunk_size, n_samples)


def _infer_task(block, weights, model, params, want: str, driver_pid: int) -> np.ndarray:
    _configure_worker(driver_pid)
    return em.log_prob_norm_and_labels(model, block, params, want=want)


def _take_task(block: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return block[rows]


def _held(client, value, owner: str | None = None):
    """A future of ``value`` held on the workers (on ``owner`` by preference), with lineage."""
    if owner is None:
        return client.submit(_identity, value, pure=False)
    return client.submit(_identity, value, workers=[owner], allow_other_workers=True, pure=False)


def _identity(block):
    return block


# ------------------------------------------------------------ driver side
def _as_array(X, da):
    """A 2-D dask array and the column names of a dask dataframe (else None)."""
    if isinstance(X, da.Array):
        return X, None
    import dask.dataframe as dd

    if isinstance(X, dd.DataFrame):
        for name, dtype in X.dtypes.items():
            # pandas extension dtypes have a kind too: "O" for strings.
            if getattr(dtype, "kind", "O") not in "biuf":
                raise TypeError(
                    f"Column {name!r} of the dask dataframe has dtype {dtype}; only "
                    "numeric columns can be fitted: drop or encode it first."
                )
        # As scikit-learn: feature names only when every column name is a string.
        names = (np.asarray(list(X.columns), dtype=object)
                 if all(isinstance(name, str) for name in X.columns) else None)
        if any(not isinstance(dtype, np.dtype) or dtype.kind == "b" for dtype in X.dtypes):
            # Booleans and pandas' nullable or arrow-backed numbers become an
            # object array in to_dask_array; as floats they fit as in memory
            # (a missing value becomes NaN, which the blocks' check reports).
            X = X.astype("float64")
        # Row counts are left unknown here and computed by the caller
        # (compute_chunk_sizes, one pass): lengths=True failed on frames read
        # from Parquet with a subset of columns, whose partitions it miscounts
        # (dask 2025: "The number of items in 'lengths' does not match").
        return X.to_dask_array(), names
    if isinstance(X, dd.Series):
        raise ValueError(
            "Expected a 2-D dask array or a dask dataframe, got a dask Series; "
            "use series.to_frame() for one feature."
        )
    raise TypeError(f"Expected a dask array or dataframe, got {type(X).__name__}.")


def _shares(n_blocks: int, nthreads: dict) -> dict:
    """Blocks per worker, proportional to its threads (largest remainders)."""
    total = sum(nthreads.values())
    exact = {w: n_blocks * t / total for w, t in nthreads.items()}
    shares = {w: int(q) for w, q in exact.items()}
    for w in sorted(exact, key=lambda w: shares[w] - exact[w])[: n_blocks - sum(shares.values())]:
        shares[w] += 1
    return shares


class _Blocks:
    """The row blocks of one dask array, computed once and then held.

    Shared by a dataset and its :meth:`DaskDataset.weighted` copies, so
    that the data are computed once whatever the weights.
    """

    def __init__(self, X, dtype: np.dtype):
        self.array = X
        self.dtype = dtype
        self.starts = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
        self.client = None
        self.parts: list | None = None  # futures on the workers, or numpy arrays
        self.owners: list[str] | None = None

    def tasks(self) -> list:
        dask, _ = _import_dask()
        delayed = self.array.to_delayed().ravel()
        return [
            dask.delayed(_checked_block, pure=True)(
                block, i, int(self.starts[i]), self.array.shape[1], self.dtype
            )
            for i, block in enumerate(delayed)
        ]

    def get(self) -> list:
        if self.parts is None:
            self.client = _active_client()
            if self.client is None:
                dask, _ = _import_dask()
                self.parts = list(dask.compute(*self.tasks()))
            else:
                self.parts, self.owners = self._on_workers(self.client)
        return self.parts

    def _on_workers(self, client) -> tuple[list, list]:
        from distributed import wait

        futures = client.compute(self.tasks())
        wait(futures)
        for future in futures:
            if future.status == "error":
                future.result()  # raises the block's error here
        # Dask places blocks where their inputs were, often unevenly (22/42
        # blocks was seen): the slowest worker sets the time of every
        # iteration, so move blocks until each worker holds its share.
        nthreads = client.nthreads()
        shares = _shares(len(futures), nthreads)
        who_has = client.who_has(futures)
        owners: list[str | None] = []
        for future in futures:
            here = [w for w in who_has.get(future.key, ()) if shares.get(w, 0) > 0]
            owners.append(here[0] if here else None)
            if here:
                shares[here[0]] -= 1
        for i, owner in enumerate(owners):
            if owner is None:
                target = max(shares, key=shares.get)
                shares[target] -= 1
                owners[i] = target
                # Other workers allowed: a lost target's block is then
                # recomputed elsewhere, not waited for.
                futures[i] = _held(client, futures[i], target)
        wait(futures)
        return futures, owners

    def release(self) -> None:
        self.parts = self.owners = None


class DaskDataset(Dataset):
    """A dask array or dataframe as a :class:`~gaussmix.datasets.Dataset`.

    Blocks are computed, checked and placed on the first pass (at the
    initial sample of a fit) and held until :meth:`close` or until the
    dataset is dropped (a fit drops it when it returns).

    Parameters
    ----------
    X : dask.array.Array or dask.dataframe.DataFrame
        2-D, numeric.  Rows of unknown chunk sizes are counted first.
    sample_weight : ndarray or dask array of shape (n_samples,), optional
    block_rows : int, optional
        Rows per block; about 64 MiB of data by default.  Each block is one
        task per iteration, and a task costs the scheduler about a
        millisecond: keep blocks of 1e5 rows or more.
    init_sample_rows : int or None, optional
        Rows drawn to initialise from; None brings every row to the driver.
    """

    def __init__(
        self,
        X,
        sample_weight=None,
        *,
        block_rows: int | None = None,
        init_sample_rows: int | None = DEFAULT_INIT_SAMPLE_ROWS,
    ):
        dask, da = _import_dask()
        X, self.feature_names = _as_array(X, da)
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D dask array of shape (n_samples, n_features), got "
                f"{X.ndim} dimension(s) (shape {X.shape})."
            )
        if any(np.isnan(c) for c in X.chunks[0]) or any(np.isnan(c) for c in X.chunks[1]):
            X = X.compute_chunk_sizes()
        self.n_samples, self.n_features = (int(n) for n in X.shape)
        self.dtype = _float_dtype(X.dtype)
        self.init_sample_rows = init_sample_rows
        self.block_rows = int(block_rows or default_block_rows(self.n_features, self.dtype))
        X = X.astype(self.dtype).rechunk({0: self.block_rows, 1: -1})
        self._blocks = _Blocks(X, self.dtype)
        self.sample_weight = None if sample_weight is None else self._checked_weights(sample_weight)
        self._weight_parts = None

    def _checked_weights(self, sample_weight) -> np.ndarray:
        if hasattr(sample_weight, "__dask_graph__"):
            # Weights are one number per row: small enough for the driver.
            sample_weight = sample_weight.compute()
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != (self.n_samples,):
            raise ValueError(
                f"sample_weight has shape {weights.shape}, expected ({self.n_samples},)."
            )
        return weights

    def weighted(self, sample_weight) -> DaskDataset:
        copy = object.__new__(DaskDataset)
        copy.__dict__.update(self.__dict__)
        copy.sample_weight = self._checked_weights(sample_weight)
        copy._weight_parts = None
        return copy

    def close(self) -> None:
        """Release the blocks held on the workers (or in this process)."""
        self._blocks.release()
        self._weight_parts = None

    # -------------------------------------------------------------- passes
    def _parts(self) -> tuple[list, list]:
        """The blocks and their weights (None, arrays or futures beside them)."""
        parts = self._blocks.get()
        if self._weight_parts is None:
            starts = self._blocks.starts
            if self.sample_weight is None:
                pieces = [None] * len(parts)
            else:
                pieces = [self.sample_weight[a:b] for a, b in zip(starts[:-1], starts[1:])]
            client = self._blocks.client
            if client is not None and self.sample_weight is not None:
                # Tasks, not scattered data: a piece lost with its worker is
                # recomputed from its task instead of failing the fit.
                pieces = [
                    _held(client, piece, owner)
                    for piece, owner in zip(pieces, self._blocks.owners)
                ]
            self._weight_parts = pieces
        return parts, self._weight_parts

    def _submit(self, function, *args) -> list:
        """``function(block, weights, *args)`` per block on its worker, in block order."""
        client = self._blocks.client
        parts, weights = self._parts()
        return client.gather([
            client.submit(
                function, part, weight, *args, workers=[owner], allow_other_workers=True,
                pure=False,
            )
            for part, weight, owner in zip(parts, weights, self._blocks.owners)
        ])

    def expectation(self, model: CovarianceModel, params: MixtureParams) -> SuffStats:
        parts, weights = self._parts()
        chunk_size = em.e_step_chunk_size(model, params, self.dtype, self.n_samples)
        client = self._blocks.client
        if client is None:
            return sum_stats(
                em.expectation(model, b, w, params, chunk_size, self.n_samples)
                for b, w in zip(parts, weights)
            )
        # The parameters once per iteration, as a task every E-step task
        # depends on: workers fetch it from each other, and a copy lost with
        # a worker is recomputed (a broadcast scatter waited on a dead worker).
        remote = _held(client, params)
        stats = self._submit(_e_step_task, model, remote, chunk_size, self.n_samples, os.getpid())
        # Summed here in block order: reproducible, unlike a reduction tree.
        return sum_stats(stats)

    def sample(self, n_rows: int, random_state: np.random.RandomState):
        rows = sample_rows(self.n_samples, n_rows, self.sample_weight, random_state)
        parts, _ = self._parts()
        starts = self._blocks.starts
        bounds = np.searchsorted(rows, starts)
        wanted = [
            (i, rows[lo:hi] - starts[i])
            for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
            if hi > lo
        ]
        client = self._blocks.client
        if client is None:
            pieces = [parts[i][local] for i, local in wanted]
        else:
            # Only the sampled rows come back to the driver.
            pieces = client.gather([
                client.submit(_take_task, parts[i], local, workers=[self._blocks.owners[i]],
                              allow_other_workers=True, pure=False)
                for i, local in wanted
            ])
        X = np.concatenate(pieces) if pieces else np.empty((0, self.n_features), self.dtype)
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        return X, weights

    def infer(self, model: CovarianceModel, params: MixtureParams, want: str) -> np.ndarray:
        """Per-row results as one numpy array on the driver, in row order."""
        client = self._blocks.client if self._blocks.parts is not None else _active_client()
        if client is None:
            parts, _ = self._parts()
            pieces = [em.log_prob_norm_and_labels(model, b, params, want=want) for b in parts]
        elif self._blocks.parts is None:
            # One pass: compute straight from the graph, without holding blocks.
            dask, _ = _import_dask()
            remote = _held(client, params)
            futures = client.compute([
                dask.delayed(_infer_task, pure=False)(task, None, model, remote, want, os.getpid())
                for task in self._blocks.tasks()
            ])
            pieces = client.gather(futures)
        else:
            remote = _held(client, params)
            pieces = self._submit(_infer_task, model, remote, want, os.getpid())
        return np.concatenate(pieces, axis=0)

    def feature_extremes(self) -> tuple[np.ndarray, np.ndarray]:
        parts, weights = self._parts()
        if self._blocks.client is None:
            return combined_extremes(feature_extremes(b, w) for b, w in zip(parts, weights))
        return combined_extremes(self._submit(feature_extremes))

    def passes(self, model: CovarianceModel, params: MixtureParams):
        if _active_client() is not None:
            return contextlib.nullcontext()  # worker processes set their own threads
        # Without a client, EM runs here on the computed blocks, chunk by
        # chunk on gaussmix's threads, as for an in-memory array.
        return single_threaded_blas()
