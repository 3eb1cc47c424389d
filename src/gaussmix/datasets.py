"""Where the data live: in memory, on disk block by block, or on a cluster.

EM needs three things from its data, and a :class:`Dataset` provides them:
one E-step pass reduced to summed :class:`~gaussmix.suffstats.SuffStats`, a
random sample of rows to initialise from, and per-row inference in row
order.  The engine (:func:`gaussmix.em.iterate_em`) and the estimator are
then the same for every kind of data:

- :class:`ArrayDataset`: an in-memory array, passed through untouched so
  that fits equal scikit-learn's;
- :class:`BlockDataset`: any :class:`BlockReader`, read one block at a
  time with the next block read ahead while the current one is computed;
  memory stays at two blocks whatever the number of rows
  (:mod:`gaussmix.sources` has readers for ``.npy``, Parquet and Zarr);
- a Dask dataset (:mod:`gaussmix.dask_backend`), where the E-step runs on
  the workers.

:func:`as_dataset` picks the right one for what a user passed to ``fit``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import em
from ._parallel import single_threaded_blas
from .covariance import CovarianceModel
from .params import MixtureParams
from .suffstats import SuffStats, sum_stats
from .validation import feature_extremes

__all__ = [
    "Dataset",
    "ArrayDataset",
    "BlockReader",
    "ArrayBlockReader",
    "BlockDataset",
    "as_dataset",
    "check_dataset_feature_names",
    "check_dataset_shape",
    "is_dataset_like",
    "DEFAULT_INIT_SAMPLE_ROWS",
]

# Rows drawn to initialise a fit on data read block by block: enough for
# k-means to place 16-64 components well, small enough to cluster in seconds.
DEFAULT_INIT_SAMPLE_ROWS = 100_000

# Bytes of one block read from disk: large enough that per-block overheads
# (a read call, a pass through the thread pool) are negligible, small
# enough that two blocks in flight stay far below the memory of the machine.
_BLOCK_BYTES = 64 << 20


class Dataset(ABC):
    """Data as the EM engine sees them.

    Attributes
    ----------
    n_samples : int
    n_features : int
    dtype : numpy.dtype
        float32 or float64: the precision the E-step computes in.
    feature_names : ndarray of str or None
        Column names, when the source has them (Parquet, dataframes).
    """

    n_samples: int
    n_features: int
    dtype: np.dtype
    feature_names: np.ndarray | None = None
    # Rows drawn to initialise from; None draws every row.
    init_sample_rows: int | None = DEFAULT_INIT_SAMPLE_ROWS

    def weighted(self, sample_weight: np.ndarray) -> Dataset:
        """The same data with validated per-row weights."""
        raise TypeError(f"{type(self).__name__} does not support sample_weight.")

    @abstractmethod
    def expectation(self, model: CovarianceModel, params: MixtureParams) -> SuffStats:
        """One E-step pass over all rows, statistics summed in row order."""

    @abstractmethod
    def sample(self, n_rows: int, random_state: np.random.RandomState) -> tuple[
        np.ndarray, np.ndarray | None
    ]:
        """Up to ``n_rows`` rows drawn without replacement, and their weights.

        Returns every row, in order and without consuming ``random_state``,
        when ``n_rows >= n_samples``.
        """

    @abstractmethod
    def infer(self, model: CovarianceModel, params: MixtureParams, want: str):
        """Per-row ``"score"``, ``"labels"`` or ``"proba"``, in row order."""

    @abstractmethod
    def feature_extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each feature's highest and lowest value over the rows of positive weight (one pass).

        See :func:`gaussmix.validation.feature_extremes`.
        """

    def passes(self, model: CovarianceModel, params: MixtureParams):
        """Context for a series of passes (thread settings, broadcast state)."""
        return contextlib.nullcontext()


class ArrayDataset(Dataset):
    """An in-memory array and its optional sample weights.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated, finite, float32 or float64.
    sample_weight : ndarray of shape (n_samples,) or None
    """

    # Every row initialises an in-memory fit, as in scikit-learn.
    init_sample_rows = None

    def __init__(self, X: np.ndarray, sample_weight: np.ndarray | None = None):
        self.X = X
        self.sample_weight = sample_weight
        self.n_samples, self.n_features = X.shape
        self.dtype = X.dtype

    def weighted(self, sample_weight):
        return ArrayDataset(self.X, sample_weight)

    def expectation(self, model, params):
        return em.expectation(model, self.X, self.sample_weight, params)

    def sample(self, n_rows, random_state):
        if n_rows >= self.n_samples:
            return self.X, self.sample_weight
        rows = sample_rows(self.n_samples, n_rows, self.sample_weight, random_state)
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        return self.X[rows], weights

    def infer(self, model, params, want):
        return em.log_prob_norm_and_labels(model, self.X, params, want=want)

    def feature_extremes(self):
        return feature_extremes(self.X, self.sample_weight)

    def passes(self, model, params):
        return single_threaded_blas()


class BlockReader(ABC):
    """Rows of a table that does not fit in memory, read in consecutive blocks.

    Subclasses set ``n_samples``, ``n_features``, ``dtype`` (float32 or
    float64; integer sources are read as float64) and ``feature_names``.
    """

    n_samples: int
    n_features: int
    dtype: np.dtype
    feature_names: np.ndarray | None = None

    @abstractmethod
    def iter_blocks(self, block_rows: int) -> Iterator[np.ndarray]:
        """Consecutive blocks of at most ``block_rows`` rows covering every row.

        Each block is a C-contiguous ``(rows, n_features)`` array of
        ``dtype`` that the consumer may keep: do not overwrite it later.
        """

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The rows at sorted, unique indices ``rows``, as one array.

        The default reads every block and keeps the requested rows; readers
        with random access override it.
        """
        block_rows = default_block_rows(self.n_features, self.dtype)
        pieces, start = [], 0
        for block in self.iter_blocks(block_rows):
            stop = start + block.shape[0]
            lo, hi = np.searchsorted(rows, [start, stop])
            if hi > lo:
                pieces.append(block[rows[lo:hi] - start])
            start = stop
        if not pieces:
            return np.empty((0, self.n_features), dtype=self.dtype)
        return np.ascontiguousarray(np.concatenate(pieces))

    def close(self) -> None:
        """Release files or handles; the reader is not used afterwards."""


class ArrayBlockReader(BlockReader):
    """Blocks of an array-like with NumPy slicing (``h5py`` datasets...).

    Each block is copied out, so that only the blocks in flight are
    resident.  For a plain ``np.memmap``,
    :func:`gaussmix.sources.reader_for_memmap` reads its file instead: the
    pages a slice of a map touches stay resident until the map is closed.
    """

    def __init__(self, array, feature_names=None):
        if getattr(array, "ndim", None) != 2:
            raise ValueError(
                f"Expected a 2-D array of shape (n_samples, n_features), got shape "
                f"{getattr(array, 'shape', None)}."
            )
        self.array = array
        self.n_samples, self.n_features = (int(n) for n in array.shape)
        self.dtype = _float_dtype(array.dtype)
        self.feature_names = None if feature_names is None else np.asarray(feature_names, dtype=object)

    def iter_blocks(self, block_rows):
        for start in range(0, self.n_samples, block_rows):
            yield np.ascontiguousarray(self.array[start : start + block_rows], dtype=self.dtype)

    def take(self, rows):
        return np.ascontiguousarray(self.array[rows], dtype=self.dtype)


def _float_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype.kind in "iub" or dtype.kind == "f":
        return np.dtype(np.float64)
    raise TypeError(
        f"Cannot fit a mixture to data of dtype {dtype}: the columns must be numeric."
    )


def default_block_rows(n_features: int, dtype) -> int:
    """Rows per block read from disk: about 64 MiB, a whole number of chunks."""
    itemsize = np.dtype(dtype).itemsize
    rows = max(_BLOCK_BYTES // max(1, n_features * itemsize), 1)
    # A multiple of the largest chunk (16384 rows): blocks then end on chunk
    # boundaries of that size, and of any size that divides it.
    step = 16384
    return int(max(step, rows // step * step))


def _prefetched(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The same blocks, each read in a background thread while the previous is used."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaussmix-read") as reader:
        pending = reader.submit(next, blocks, None)
        while True:
            block = pending.result()
            if block is None:
                return
            pending = reader.submit(next, blocks, None)
            yield block


def sample_rows(
    n_samples: int, n_rows: int, sample_weight: np.ndarray | None,
    random_state: np.random.RandomState,
) -> np.ndarray:
    """Sorted indices of the rows to initialise from.

    Every row when there are at most ``n_rows`` (without consuming
    ``random_state``).  Else ``n_rows`` rows drawn without replacement among
    those of positive weight (all of them if there are no more): rows of
    weight zero are not in the data, and a sample of them could hold fewer
    rows than components.
    """
    if n_rows >= n_samples:
        return np.arange(n_samples)
    candidates = None if sample_weight is None else np.flatnonzero(sample_weight > 0)
    if candidates is not None and candidates.size == n_samples:
        candidates = None  # the same draws as without weights
    pool = n_samples if candidates is None else candidates.size
    if n_rows >= pool:
        return candidates
    picked = random_state.choice(pool, size=n_rows, replace=False)
    return np.sort(picked if candidates is None else candidates[picked])


def _check_block(
    block: np.ndarray, start: int, n_features: int, rows: np.ndarray | None = None
) -> None:
    """Refuse a block of the wrong width or with non-finite values.

    Rows are numbered from ``start``, or are ``rows`` (a sample's indices).
    """
    if block.ndim != 2 or block.shape[1] != n_features:
        raise ValueError(
            f"Rows {start}.. have shape {block.shape}, expected (rows, {n_features}): "
            "the data source changed while it was read."
        )
    # One reduction is far cheaper than an elementwise mask, and a non-finite
    # sum catches every NaN and inf (overflowing finite rows are checked exactly).
    if not np.isfinite(np.sum(block, dtype=np.float64)) and not np.isfinite(block).all():
        bad = int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
        row = start + bad if rows is None else int(rows[bad])
        raise ValueError(
            f"Input contains NaN or infinity in row {row}; "
            "remove or impute non-finite values first."
        )


class BlockDataset(Dataset):
    """A :class:`BlockReader` with optional weights, read block by block.

    Parameters
    ----------
    reader : BlockReader
    sample_weight : ndarray of shape (n_samples,) or None
    block_rows : int, optional
        Rows per block; about 64 MiB of data by default.
    """

    def __init__(self, reader: BlockReader, sample_weight=None, block_rows: int | None = None):
        self.reader = reader
        self.sample_weight = sample_weight
        self.n_samples = reader.n_samples
        self.n_features = reader.n_features
        self.dtype = np.dtype(reader.dtype)
        self.feature_names = reader.feature_names
        self.block_rows = block_rows or default_block_rows(self.n_features, self.dtype)

    def _blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        for block in _prefetched(self.reader.iter_blocks(self.block_rows)):
            _check_block(block, start, self.n_features)
            yield start, block
            start += block.shape[0]
        if start != self.n_samples:
            raise ValueError(
                f"The data source gave {start} rows where it announced {self.n_samples}: "
                "it changed while it was read."
            )

    def weighted(self, sample_weight):
        return BlockDataset(self.reader, sample_weight, self.block_rows)

    def _weights(self, start: int, block: np.ndarray):
        if self.sample_weight is None:
            return None
        return self.sample_weight[start : start + block.shape[0]]

    def expectation(self, model, params):
        chunk_size = em.e_step_chunk_size(model, params, self.dtype, self.n_samples)
        return sum_stats(
            em.expectation(
                model, block, self._weights(start, block), params, chunk_size, self.n_samples
            )
            for start, block in self._blocks()
        )

    def sample(self, n_rows, random_state):
        rows = sample_rows(self.n_samples, n_rows, self.sample_weight, random_state)
        X = self.reader.take(rows)
        _check_block(X, 0, self.n_features, rows)
        weights = None if self.sample_weight is None else self.sample_weight[rows]
        return X, weights

    def infer(self, model, params, want):
        pieces = [em.log_prob_norm_and_labels(model, block, params, want=want)
                  for _, block in self._blocks()]
        return np.concatenate(pieces, axis=0)

    def feature_extremes(self):
        return combined_extremes(
            feature_extremes(block, self._weights(start, block)) for start, block in self._blocks()
        )

    def passes(self, model, params):
        return single_threaded_blas()


def combined_extremes(
    pieces: Iterable[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """The per-feature extremes of all ``pieces``, each ``(highest, lowest)`` of some rows."""
    highest = lowest = None
    for piece_highest, piece_lowest in pieces:
        if highest is None:
            highest, lowest = piece_highest.copy(), piece_lowest.copy()
        else:
            np.maximum(highest, piece_highest, out=highest)
            np.minimum(lowest, piece_lowest, out=lowest)
    if highest is None:
        raise ValueError("No rows to take the extremes of.")
    return highest, lowest


def check_dataset_shape(
    dataset: Dataset, min_samples: int, n_features: int | None = None
) -> None:
    """Refuse datasets too small to fit, or with the wrong number of columns."""
    if dataset.n_features < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape=({dataset.n_samples}, 0)) "
            "while a minimum of 1 is required."
        )
    if dataset.n_samples < min_samples:
        raise ValueError(
            f"Found array with {dataset.n_samples} sample(s) (shape=({dataset.n_samples}, "
            f"{dataset.n_features})) while a minimum of {min_samples} is required."
        )
    if n_features is not None and dataset.n_features != n_features:
        raise ValueError(
            f"X has {dataset.n_features} features, but GaussianMixture is expecting "
            f"{n_features} features as input."
        )


def check_dataset_feature_names(estimator, dataset: Dataset) -> None:
    """scikit-learn's feature-name checks of predict, for data read in blocks.

    Different names, or the same in another order, are an error; names on
    one side only, a warning, with scikit-learn's messages.
    """
    fitted = getattr(estimator, "feature_names_in_", None)
    given = getattr(dataset, "feature_names", None)
    name = type(estimator).__name__
    if fitted is None and given is None:
        return
    if fitted is None:
        warnings.warn(
            f"X has feature names, but {name} was fitted without feature names",
            UserWarning, stacklevel=4,
        )
        return
    if given is None:
        warnings.warn(
            f"X does not have valid feature names, but {name} was fitted with feature names",
            UserWarning, stacklevel=4,
        )
        return
    fitted, given = [str(n) for n in fitted], [str(n) for n in given]
    if fitted == given:
        return
    unseen = [n for n in given if n not in fitted]
    missing = [n for n in fitted if n not in given]
    lines = ["The feature names should match those that were passed during fit."]
    if unseen:
        lines += ["Feature names unseen at fit time:", *(f"- {n}" for n in unseen)]
    if missing:
        lines += ["Feature names seen at fit time, yet now missing:", *(f"- {n}" for n in missing)]
    if not unseen and not missing:
        lines.append("Feature names must be in the same order as they were in fit.")
    raise ValueError("\n".join(lines) + "\n")


def _is_dask_collection(X) -> bool:
    module = type(X).__module__ or ""
    return module.split(".")[0] in ("dask", "dask_expr") and hasattr(X, "__dask_graph__")


def is_dataset_like(X) -> bool:
    """Whether :func:`as_dataset` would take ``X``, without opening anything."""
    return (
        isinstance(X, (Dataset, BlockReader, str, os.PathLike))
        or (type(X).__module__ or "").split(".")[0] == "zarr"
        or _is_dask_collection(X)
    )


def as_dataset(X) -> Dataset | None:
    """The dataset for ``X``, or None when ``X`` is an ordinary array-like.

    Parameters
    ----------
    X : object
        A :class:`Dataset` or :class:`BlockReader`; a path to a ``.npy``
        file, a Parquet file or folder, or a Zarr store; a ``zarr`` array;
        a dask array or dataframe.  Anything else (lists, arrays,
        dataframes) is left to scikit-learn's validation.  An ``np.memmap``
        is an array: it is fitted as scikit-learn fits it, from every row,
        since joblib hands large arrays to its workers as memmaps and a fit
        must not change with ``n_jobs``.  To read one block by block, pass
        its file's path or :func:`gaussmix.sources.reader_for_memmap`.
    """
    if isinstance(X, Dataset):
        return X
    if isinstance(X, BlockReader):
        return BlockDataset(X)
    if isinstance(X, (str, os.PathLike)):
        from .sources import open_path

        return BlockDataset(open_path(X))
    if (type(X).__module__ or "").split(".")[0] == "zarr":
        from .sources import ZarrReader

        return BlockDataset(ZarrReader(X))
    if _is_dask_collection(X):
        from .dask_backend import DaskDataset

        return DaskDataset(X)
    return None
