"""Readers for data on disk: ``.npy`` files, Parquet files or folders, Zarr arrays.

Each reader is a :class:`~gaussmix.datasets.BlockReader`: it announces the
shape and dtype from metadata alone, then hands out consecutive blocks of
rows, so that :class:`~gaussmix.datasets.BlockDataset` fits a mixture to a
file of any size in the memory of a few blocks.  ``GaussianMixture.fit``
accepts a path directly (see :func:`open_path`); construct a reader
yourself to choose Parquet columns or a Zarr array inside a group.

``.npy`` files are read with plain file reads into a fresh array per block,
not through a memory map: the pages of a memory map that a pass has touched
count in the process's resident memory until it is unmapped, which for a
file of many gigabytes means the whole file.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import ArrayBlockReader, BlockReader

__all__ = ["open_path", "reader_for_memmap", "NpyReader", "ParquetReader", "ZarrReader"]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_SUPPORTED = (
    "a .npy file, a Parquet file (.parquet, .pq) or a folder of Parquet files, "
    "or a Zarr array (a .zarr folder)"
)
# Rows closer than this many bytes apart are read in one call when sampling:
# the kernel reads whole pages anyway, and one call beats one per row.
_TAKE_GAP_BYTES = 1 << 16
# Largest single read when sampling, so that a dense sample stays in small pieces.
_TAKE_SPAN_BYTES = 8 << 20


def open_path(path: str | os.PathLike) -> BlockReader:
    """The reader for a file or folder, chosen by its suffix and contents.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file; a ``.parquet``/``.pq`` file or a folder of them; a
        Zarr array (a ``.zarr`` folder, or any folder Zarr opens as an array).

    Returns
    -------
    BlockReader

    Raises
    ------
    FileNotFoundError
        When nothing exists at ``path``.
    ValueError
        When the format is not one of the supported ones.
    """
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        # A str given as X (to fit, predict, ...) lands here too: say why it
        # was taken for a path, and what else to pass.
        raise FileNotFoundError(
            f"No such file or directory: '{path}'. A str or path given as data is "
            f"read as a file: {_SUPPORTED}; pass an array for data in memory."
        )
    suffix = path.suffix.lower()
    if path.is_file():
        if suffix == ".npy":
            return NpyReader(path)
        if suffix in _PARQUET_SUFFIXES:
            return ParquetReader(path)
    elif path.is_dir():
        if suffix == ".zarr" or _has_zarr_metadata(path):
            return ZarrReader(path)
        if suffix in _PARQUET_SUFFIXES or _parquet_files_in(path):
            return ParquetReader(path)
    raise ValueError(
        f"Cannot read '{path}': supported are {_SUPPORTED}. Load other formats "
        "into an array (or a np.memmap) and pass that instead."
    )


def _target_dtype(dtype: np.dtype, what: str) -> np.dtype:
    """float32 stays float32 (in native byte order); other numbers become float64."""
    if dtype.hasobject or dtype.names is not None or dtype.kind not in "biuf":
        raise ValueError(
            f"{what} has dtype {dtype}; a mixture is fitted to numeric columns only "
            "(save a plain float or integer array)."
        )
    if dtype.kind == "f" and dtype.itemsize == 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


# ----------------------------------------------------------------- raw files
class _FileRowsReader(BlockReader):
    """Rows of an ``(n_samples, n_features)`` array stored at ``offset`` in a file.

    In C order by default; ``fortran_order`` reads a column-major array, one
    read per column for each block of rows (its columns are contiguous).
    """

    def __init__(
        self, path, offset: int, shape: tuple[int, int], file_dtype: np.dtype,
        fortran_order: bool = False,
    ):
        self.path = os.fspath(path)
        self.offset = int(offset)
        self.fortran_order = bool(fortran_order)
        self.n_samples, self.n_features = (int(n) for n in shape)
        self.file_dtype = np.dtype(file_dtype)
        self.dtype = _target_dtype(self.file_dtype, f"'{self.path}'")
        self.row_bytes = self.n_features * self.file_dtype.itemsize
        needed = self.offset + self.n_samples * self.row_bytes
        size = os.path.getsize(self.path)
        if size < needed:
            raise ValueError(
                f"'{self.path}' is truncated: {size} bytes where its header "
                f"announces {needed}."
            )

    def _as_target(self, raw: np.ndarray) -> np.ndarray:
        # Byte-swapped or integer files: one conversion per block.
        return raw if raw.dtype == self.dtype else raw.astype(self.dtype)

    def _column_offset(self, column: int, row: int) -> int:
        """Where ``(row, column)`` of a Fortran-ordered array starts."""
        return self.offset + (column * self.n_samples + row) * self.file_dtype.itemsize

    def iter_blocks(self, block_rows: int) -> Iterator[np.ndarray]:
        with open(self.path, "rb", buffering=0) as file:
            for start in range(0, self.n_samples, block_rows):
                rows = min(block_rows, self.n_samples - start)
                if self.fortran_order:
                    # (features, rows) as the file holds them; the block is its transpose.
                    raw = np.empty((self.n_features, rows), dtype=self.file_dtype)
                    for column in range(self.n_features):
                        file.seek(self._column_offset(column, start))
                        _read_exactly(file, memoryview(raw[column]).cast("B"), self.path)
                    # One copy converts and lays out the block.
                    yield np.ascontiguousarray(raw.T, dtype=self.dtype)
                    continue
                raw = np.empty((rows, self.n_features), dtype=self.file_dtype)
                file.seek(self.offset + start * self.row_bytes)
                _read_exactly(file, memoryview(raw).cast("B"), self.path)
                yield self._as_target(raw)

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.n_features), dtype=self.dtype)
        if rows.size == 0:
            return out
        if self.fortran_order:
            return self._take_from_columns(rows, out)
        with open(self.path, "rb", buffering=0) as file:
            fd = file.fileno()
            for lo, hi in _spans(rows, self.row_bytes):
                first, last = int(rows[lo]), int(rows[hi - 1])
                length = (last - first + 1) * self.row_bytes
                data = os.pread(fd, length, self.offset + first * self.row_bytes)
                if len(data) != length:
                    raise ValueError(f"'{self.path}' ended early while reading row {last}.")
                span = np.frombuffer(data, dtype=self.file_dtype).reshape(-1, self.n_features)
                out[lo:hi] = span[rows[lo:hi] - first]
        return out

    def _take_from_columns(self, rows: np.ndarray, out: np.ndarray) -> np.ndarray:
        """:meth:`take` of a Fortran-ordered array: each span once per column."""
        itemsize = self.file_dtype.itemsize
        with open(self.path, "rb", buffering=0) as file:
            fd = file.fileno()
            for lo, hi in _spans(rows, itemsize):
                first, last = int(rows[lo]), int(rows[hi - 1])
                length = (last - first + 1) * itemsize
                for column in range(self.n_features):
                    data = os.pread(fd, length, self._column_offset(column, first))
                    if len(data) != length:
                        raise ValueError(f"'{self.path}' ended early while reading row {last}.")
                    span = np.frombuffer(data, dtype=self.file_dtype)
                    out[lo:hi, column] = span[rows[lo:hi] - first]
        return out


def _read_exactly(file, buffer: memoryview, path: str) -> None:
    done = 0
    while done < len(buffer):
        n = file.readinto(buffer[done:])
        if not n:
            raise ValueError(f"'{path}' ended early: it changed while it was read.")
        done += n


def _spans(rows: np.ndarray, row_bytes: int) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` index ranges of sorted ``rows`` that are close enough to read at once."""
    gap = max(1, _TAKE_GAP_BYTES // max(row_bytes, 1))
    longest = max(1, _TAKE_SPAN_BYTES // max(row_bytes, 1))
    breaks = np.flatnonzero(np.diff(rows) > gap) + 1
    bounds = np.concatenate(([0], breaks, [rows.size]))
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        # Split a long dense run so that no single read exceeds `longest` rows.
        while rows[hi - 1] - rows[lo] >= longest:
            cut = max(int(np.searchsorted(rows, rows[lo] + longest)), lo + 1)
            yield lo, cut
            lo = cut
        yield lo, hi


class NpyReader(_FileRowsReader):
    """Rows of a 2-D ``.npy`` file, read block by block with plain file reads.

    Parameters
    ----------
    path : str or path-like
        A file written by ``numpy.save`` of a 2-D numeric array, in C order
        or in Fortran order (as ``numpy.save`` writes a Fortran-contiguous
        array, such as ``DataFrame.to_numpy()`` of a float frame often is:
        each block of rows is then one read per column).  float32 data stay
        float32; other numeric types are read as float64.
    """

    def __init__(self, path: str | os.PathLike):
        path = os.fspath(path)
        shape, fortran_order, dtype, offset = _npy_header(path)
        if len(shape) != 2:
            hint = (
                " For a single feature, save X.reshape(-1, 1)."
                if len(shape) == 1 else ""
            )
            raise ValueError(
                f"'{path}' holds an array of shape {shape}; expected 2-D "
                f"(n_samples, n_features).{hint}"
            )
        # One column is the same bytes in either order.
        super().__init__(path, offset, shape, dtype, fortran_order and shape[1] > 1)


def _npy_header(path: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    fmt = np.lib.format
    with open(path, "rb") as file:
        try:
            version = fmt.read_magic(file)
        except ValueError:
            raise ValueError(f"'{path}' is not a .npy file (no NumPy magic string).") from None
        if version == (1, 0):
            shape, fortran_order, dtype = fmt.read_array_header_1_0(file)
        elif version == (2, 0):
            shape, fortran_order, dtype = fmt.read_array_header_2_0(file)
        else:
            # Version 3 only exists for structured dtypes with non-Latin-1 names.
            raise ValueError(
                f"'{path}' uses .npy format version {version}, written only for "
                "structured arrays; save a plain numeric 2-D array."
            )
        offset = file.tell()
    if dtype.hasobject:
        raise ValueError(
            f"'{path}' holds Python objects (dtype {dtype}); save a numeric array."
        )
    _target_dtype(dtype, f"'{path}'")
    return tuple(int(n) for n in shape), bool(fortran_order), dtype, offset


def reader_for_memmap(X: np.memmap) -> BlockReader:
    """A reader for a 2-D ``np.memmap`` that reads its file instead of its pages.

    ``fit(reader_for_memmap(X))`` fits a map block by block, as a file's
    path is fitted; ``fit(X)`` fits it as the array it is, from every row.
    Reading through the map would leave every touched page resident; file
    reads keep only the blocks in flight; a Fortran-contiguous map is read
    column by column.  Maps whose data are not plainly the file's
    (copy-on-write maps, strided views, no file name) are sliced
    through :class:`~gaussmix.datasets.ArrayBlockReader` instead.
    """
    if np.ndim(X) != 2:
        hint = " For a single feature, map X.reshape(-1, 1)." if np.ndim(X) == 1 else ""
        raise ValueError(
            f"reader_for_memmap expects a 2-D map (n_samples, n_features); got shape "
            f"{np.shape(X)}.{hint}"
        )
    filename = getattr(X, "filename", None)
    mapping = getattr(X, "_mmap", None)
    row_bytes = X.shape[1] * X.dtype.itemsize
    plain = (
        filename is not None
        and mapping is not None
        and getattr(X, "mode", "c") in ("r", "r+", "w+")
        and (X.flags.c_contiguous or X.flags.f_contiguous)
        and X.dtype.kind in "biuf"
        and row_bytes > 0
    )
    if plain:
        try:
            base = np.frombuffer(mapping, dtype=np.uint8)
            # The map starts at the allocation boundary at or before X.offset.
            map_start = X.offset - X.offset % mmap.ALLOCATIONGRANULARITY
            offset = map_start + (X.ctypes.data - base.ctypes.data)
            del base
            return _FileRowsReader(
                filename, offset, X.shape, X.dtype, not X.flags.c_contiguous
            )
        except (ValueError, TypeError, OSError):
            pass
    return ArrayBlockReader(X)


# ------------------------------------------------------------------- Parquet
def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError(
            "reading Parquet needs pyarrow: pip install 'gaussmix[parquet]'"
        ) from None
    return pyarrow, pyarrow.parquet


def _natural_key(path: Path) -> list:
    """Sort key that orders runs of digits by value: ``part.2`` before ``part.10``."""
    # Split on the runs of digits: text at even places, digits at odd ones,
    # so that keys compare text with text and numbers with numbers.
    tokens = re.split(r"(\d+)", path.as_posix())
    return [(int(token), token) if place % 2 else (0, token) for place, token in enumerate(tokens)]


def _parquet_files_in(folder: Path) -> list[Path]:
    # Skip the markers and summaries writers leave (_SUCCESS, _metadata, .crc).
    # Numbered parts in the order they were written, as dask.dataframe reads
    # them (its part.10 follows part.9; pandas, through pyarrow, puts it
    # after part.1).
    return sorted(
        (
            p for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in _PARQUET_SUFFIXES
            and not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts)
        ),
        key=_natural_key,
    )


def _data_columns(schema) -> list[str]:
    """The columns of a Parquet schema less the pandas index that pandas or Dask wrote.

    ``df.to_parquet`` stores a non-default index (and Dask its
    ``__null_dask_index__``) as columns named in the pandas metadata; like
    ``pd.read_parquet``, fitting leaves them out.
    """
    metadata = schema.pandas_metadata or {}
    # A RangeIndex is described by a dict, not stored as a column.
    index = {name for name in metadata.get("index_columns", []) if isinstance(name, str)}
    return [name for name in schema.names if name not in index]


class ParquetReader(BlockReader):
    """Numeric columns of a Parquet file, or of every Parquet file in a folder.

    Parameters
    ----------
    path : str or path-like
        A ``.parquet``/``.pq`` file, or a folder: its Parquet files (also in
        subfolders) are read in sorted order of their paths, numbers in them
        by value (``part.2`` before ``part.10``, as ``dask.dataframe`` reads
        the parts it wrote).
    columns : sequence of str, optional
        Columns to fit, in this order; all columns by default.  Every column
        must be numeric (integer, float or boolean) and free of nulls.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str] | None = None):
        pa, pq = _pyarrow()
        path = Path(os.fspath(path))
        self.files = _parquet_files_in(path) if path.is_dir() else [path]
        if not self.files:
            raise ValueError(f"'{path}' contains no Parquet files (*.parquet, *.pq).")
        schema = pq.read_metadata(self.files[0]).schema.to_arrow_schema()
        if isinstance(columns, str):
            columns = [columns]  # one column, not its letters
        names = _data_columns(schema) if columns is None else [str(c) for c in columns]
        if not names:
            raise ValueError(f"'{path}' has no columns to fit.")
        self.columns = names
        float32 = True
        self.group_rows: list[list[int]] = []
        for file in self.files:
            metadata = pq.read_metadata(file)
            file_schema = metadata.schema.to_arrow_schema()
            _check_parquet_columns(pa, file_schema, names, file, columns is None)
            self.group_rows.append(
                [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
            )
            float32 &= all(pa.types.is_float32(file_schema.field(n).type) for n in names)
        self.n_samples = int(sum(sum(groups) for groups in self.group_rows))
        self.n_features = len(names)
        self.dtype = np.dtype(np.float32 if float32 else np.float64)
        self.feature_names = np.asarray(names, dtype=object)

    def _fill(self, out: np.ndarray, at: int, batch, row_numbers) -> None:
        """Copy a record batch's columns into rows ``at..`` of ``out``.

        ``row_numbers`` gives the file rows of the batch: the first one of
        consecutive rows, or an array of them.
        """
        for j, column in enumerate(batch.columns):
            if column.null_count:
                nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False))
                first = int(np.flatnonzero(nulls)[0])
                row = (row_numbers + first if np.ndim(row_numbers) == 0
                       else row_numbers[first])
                raise ValueError(
                    f"Column {self.columns[j]!r} has a missing value in row {row}; "
                    "drop or impute missing values first."
                )
            out[at : at + batch.num_rows, j] = column.to_numpy(zero_copy_only=False)

    def iter_blocks(self, block_rows: int) -> Iterator[np.ndarray]:
        _, pq = _pyarrow()
        # Batches smaller than a block keep Arrow's copy of the rows small.
        batch_rows = max(1, min(block_rows, 65536))
        out, filled, start = None, 0, 0
        for file in self.files:
            with pq.ParquetFile(file) as parquet:
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=self.columns):
                    used = 0
                    while used < batch.num_rows:
                        if out is None:
                            out = np.empty((block_rows, self.n_features), dtype=self.dtype)
                        n = min(block_rows - filled, batch.num_rows - used)
                        self._fill(out, filled, batch.slice(used, n), start + filled)
                        filled += n
                        used += n
                        if filled == block_rows:
                            yield out
                            out, filled, start = None, 0, start + block_rows
        if filled:
            yield out[:filled]

    def take(self, rows: np.ndarray) -> np.ndarray:
        pa, pq = _pyarrow()
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.n_features), dtype=self.dtype)
        start = 0
        for file, groups in zip(self.files, self.group_rows):
            lo_file, hi_file = np.searchsorted(rows, [start, start + sum(groups)])
            if hi_file > lo_file:
                # Only the row groups that hold sampled rows are read.
                with pq.ParquetFile(file) as parquet:
                    for g, size in enumerate(groups):
                        lo, hi = np.searchsorted(rows, [start, start + size])
                        if hi > lo:
                            table = parquet.read_row_group(g, columns=self.columns)
                            picked = table.take(pa.array(rows[lo:hi] - start))
                            for batch in picked.combine_chunks().to_batches():
                                self._fill(out, lo, batch, rows[lo : lo + batch.num_rows])
                                lo += batch.num_rows
                        start += size
            else:
                start += sum(groups)
        return out


def _check_parquet_columns(pa, schema, names, file, all_columns: bool) -> None:
    for name in names:
        index = schema.get_field_index(name)
        if index < 0:
            raise ValueError(
                f"'{file}' has no column {name!r}; its columns are {list(schema.names)}."
            )
        kind = schema.field(index).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind)):
            advice = (
                " Pass columns=[...] to ParquetReader to choose numeric columns."
                if all_columns else ""
            )
            raise ValueError(
                f"Column {name!r} of '{file}' has type {kind}, which is not numeric; "
                f"a mixture is fitted to numeric columns only.{advice}"
            )


# ---------------------------------------------------------------------- Zarr
def _has_zarr_metadata(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def _open_zarr(path: Path):
    try:
        import zarr
    except ImportError:
        raise ImportError("reading Zarr needs zarr: pip install 'gaussmix[zarr]'") from None
    node = zarr.open(str(path), mode="r")
    if not hasattr(node, "shape"):
        arrays = sorted(name for name, _ in node.arrays())
        raise ValueError(
            f"'{path}' is a Zarr group with arrays {arrays}, not an array; pass the "
            f"path of one of them (e.g. '{path / arrays[0]}')" if arrays
            else f"'{path}' is a Zarr group with no arrays."
        )
    return node


class ZarrReader(BlockReader):
    """Rows of a 2-D Zarr array (format 2 or 3), read a whole number of chunks at a time.

    Parameters
    ----------
    array_or_path : zarr.Array or str or path-like
        An open array, or the path of one.
    """

    def __init__(self, array_or_path: Any):
        if isinstance(array_or_path, (str, os.PathLike)):
            array = _open_zarr(Path(os.fspath(array_or_path)))
        else:
            array = array_or_path
        if getattr(array, "ndim", None) != 2:
            raise ValueError(
                f"Expected a 2-D Zarr array of shape (n_samples, n_features), got "
                f"shape {getattr(array, 'shape', None)}."
            )
        self.array = array
        self.n_samples, self.n_features = (int(n) for n in array.shape)
        self.dtype = _target_dtype(np.dtype(array.dtype), "The Zarr array")
        # With sharding the shard is what is stored and decompressed as a unit.
        unit = getattr(array, "shards", None) or array.chunks
        self.chunk_rows = max(1, int(unit[0]))

    def _reads(self, block_rows: int) -> int:
        """Rows per read: a whole number of row chunks, at least one chunk."""
        return max(1, block_rows // self.chunk_rows) * self.chunk_rows

    def iter_blocks(self, block_rows: int) -> Iterator[np.ndarray]:
        step = self._reads(block_rows)
        for start in range(0, self.n_samples, step):
            rows = np.ascontiguousarray(self.array[start : start + step], dtype=self.dtype)
            # A chunk larger than a block is read once and handed out in pieces.
            for lo in range(0, rows.shape[0], block_rows):
                yield rows[lo : lo + block_rows]

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.n_features), dtype=self.dtype)
        step = self._reads(1 << 20)
        for start in range(0, self.n_samples, step):
            lo, hi = np.searchsorted(rows, [start, start + step])
            if hi > lo:
                out[lo:hi] = self.array.oindex[rows[lo:hi], :]
        return out
