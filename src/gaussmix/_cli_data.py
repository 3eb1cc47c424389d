"""Data files for the command line: CSV, TSV, Parquet and .npy in, CSV or Parquet out.

CSV and TSV are read with the :mod:`csv` module and numpy, so the command
line needs no pandas; Parquet needs pyarrow, imported only when a Parquet
file is read or written.  Every problem with a file is a :class:`UsageError`
whose one-line message names the file, the row or column, and the fix.

In CSV and TSV a missing value is an empty cell or one of pandas' default
markers, matched exactly as written (case included): ``NA``, ``N/A``,
``n/a``, ``#N/A``, ``#N/A N/A``, ``#NA``, ``<NA>``, ``NULL``, ``null``,
``None``, ``NaN``, ``-NaN``, ``nan``, ``-nan``, ``1.#IND``, ``1.#QNAN``,
``-1.#IND`` and ``-1.#QNAN``.  Any other spelling that Python's
:func:`float` reads as NaN or infinity (``NAN``, ``inf``, ...) is a
non-finite value; both are refused, or dropped with ``drop_missing``.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "HEADER_CHOICES", "MISSING_MARKERS", "Table", "UsageError", "data_format", "output_format",
    "read_raw", "read_table", "write_table",
]  # fmt: skip

_FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
    ".npy": "npy",
}  # fmt: skip
# Enough rows to tell a header from a first data row that has a stray word.
_HEADER_PROBE_ROWS = 20
# Whether a CSV/TSV file's first row holds column names: told from the rows
# below it ('auto'), or said.
HEADER_CHOICES = ("auto", "yes", "no")
# pandas' default na_values, so that files written by R (NA) or by pandas
# (empty) read as they do in pandas.read_csv.
MISSING_MARKERS = frozenset({
    "", "NA", "N/A", "n/a", "#N/A", "#N/A N/A", "#NA", "<NA>", "NULL", "null", "None",
    "NaN", "-NaN", "nan", "-nan", "1.#IND", "1.#QNAN", "-1.#IND", "-1.#QNAN",
})  # fmt: skip
_NPY_MAGIC = b"\x93NUMPY"


class UsageError(Exception):
    """A mistake in the command line or its input, reported in one line."""


@dataclass
class _NonNumeric:
    """A column that holds text: where, and what, its first non-number is."""

    row: int
    text: str


@dataclass
class _Raw:
    names: list[str]
    header: bool
    columns: list[Any]  # float arrays (NaN where missing) or _NonNumeric
    lines: list[int] | None  # file line of each data row, for CSV/TSV messages

    def where(self, row: int) -> str:
        if self.lines is None:
            return f"row index {row}"
        return f"line {self.lines[row]}"


@dataclass
class Table:
    """Numeric data read from a file, ready to fit.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
    names : list of str
        Column names: the file's, or ``x0``, ``x1``, ... when it has none.
    header : bool
        Whether the names come from the file.
    path : str
    dropped_columns : list of str
        Non-numeric columns left out (``drop_non_numeric``).
    dropped_rows : int
        Rows with missing values left out (``drop_missing``).
    """

    X: np.ndarray
    names: list[str]
    header: bool
    path: str
    dropped_columns: list[str] = field(default_factory=list)
    dropped_rows: int = 0


def data_format(path: str) -> str:
    """``'csv'``, ``'tsv'``, ``'parquet'`` or ``'npy'``, from the file's extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise UsageError(
            f"cannot tell the format of {path!r} from its extension: use .csv, .tsv, "
            ".parquet or .npy"
        )
    return _FORMATS[ext]


def _parse_number(text: str) -> float:
    """The number a cell spells, as pandas' CSV reader reads it.

    Python's ``float`` also takes digit-group underscores ("1_0" is 10) and
    the digits of every script ("١" is 1), which pandas reads as text: such
    cells are refused as text too.

    Raises
    ------
    ValueError
        Where the cell is not a number.
    """
    value = float(text)
    if "_" in text or not text.isascii():
        raise ValueError(f"not a number: {text!r}")
    return value


def _is_number(text: str) -> bool:
    try:
        _parse_number(text)
    except ValueError:
        return False
    return True


def _is_text(cell: str) -> bool:
    """Neither a number nor a missing-value marker."""
    return cell not in MISSING_MARKERS and not _is_number(cell)


def _numeric_column(cells: list[str]) -> np.ndarray | _NonNumeric:
    values = np.empty(len(cells))
    for i, cell in enumerate(cells):
        if cell in MISSING_MARKERS:
            values[i] = np.nan
            continue
        try:
            values[i] = _parse_number(cell)
        except ValueError:
            return _NonNumeric(i, cell)
    return values


def _looks_like_header(first: list[str], rest: list[list[str]]) -> bool:
    """Some cell of the first row is text while the values under it are numbers.

    A first row with text over no values at all (only missing markers, or
    no rows) is a header too: a file with a header but no data.
    """
    if not any(map(_is_text, first)):
        return False
    below = [
        [row[j] for row in rest if j < len(row) and row[j] not in MISSING_MARKERS]
        for j in range(len(first))
    ]
    if not any(below):
        return True
    return any(
        _is_text(cell) and values and not any(map(_is_text, values))
        for cell, values in zip(first, below)
    )


def _read_delimited(path: str, delimiter: str, header: str = "auto") -> _Raw:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            lines = [(reader.line_num, [c.strip() for c in row]) for row in reader if row]
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path!r}: not UTF-8 text") from None
    except csv.Error as exc:
        raise UsageError(f"cannot read {path!r}: {exc}") from exc
    # Blank lines are skipped, as pandas skips them; a row of empty cells
    # (",,") is a row of missing values, refused or dropped as such, so that
    # predictions stay one per data row.
    lines = [(n, row) for n, row in lines if len(row) > 1 or row[0]]
    if not lines:
        raise UsageError(f"{path!r} is empty")
    rows = [row for _, row in lines]
    if header == "auto":
        has_header = _looks_like_header(rows[0], rows[1 : 1 + _HEADER_PROBE_ROWS])
    else:
        # Said outright: column names that are numbers ("1990", "2000")
        # look like data, and a text first row over text columns like names.
        has_header = header == "yes"
    width = len(rows[0])
    for line, row in lines:
        if len(row) != width:
            kind = "TSV" if delimiter == "\t" else "CSV"
            raise UsageError(
                f"{path!r} line {line} has {len(row)} fields, expected {width} "
                f"(is it really {kind}? the format comes from the extension)"
            )
    if has_header:
        names = [cell or f"x{j}" for j, cell in enumerate(rows[0])]
        lines, rows = lines[1:], rows[1:]
        if not rows:
            raise UsageError(f"{path!r} has a header row but no data rows")
    else:
        names = [f"x{j}" for j in range(width)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"{path!r} has duplicate column names: {', '.join(duplicates)}")
    columns = [_numeric_column([row[j] for row in rows]) for j in range(width)]
    return _Raw(names, has_header, columns, [n for n, _ in lines])


def _pyarrow(action: str):
    try:
        import pyarrow
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError(f"{action} Parquet needs pyarrow: pip install 'gaussmix[parquet]'") from None
    return pyarrow


def _read_parquet(path: str) -> _Raw:
    pa = _pyarrow("reading")
    try:
        table = pa.parquet.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise UsageError(f"cannot read {path!r} as Parquet: {exc}") from exc
    columns: list[Any] = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            # Unsafe: integers beyond 2**53 (timestamps, 64-bit ids) round
            # to the nearest float64 instead of failing the whole read.
            cast = pa.compute.cast(column, pa.float64(), safe=False)
            columns.append(np.asarray(cast.to_numpy(zero_copy_only=False), dtype=np.float64))
        else:
            values = column.to_pylist()
            row = next((i for i, v in enumerate(values) if v is not None), 0)
            columns.append(_NonNumeric(row, str(values[row]) if values else str(kind)))
    return _Raw([str(n) for n in table.column_names], True, columns, None)


def _load_npy(path: str) -> np.ndarray:
    """The array of a .npy file, never unpickling anything in it.

    numpy falls back to pickle for a file without the .npy header, and its
    refusals advise allow_pickle, which would run code from the file: the
    messages here say what is wrong with the file instead.
    """
    with open(path, "rb") as f:
        if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise UsageError(
                f"{path!r} is not a valid numeric .npy file (it lacks the .npy header); "
                "write it with numpy.save"
            )
    try:
        return np.load(path, allow_pickle=False)
    except MemoryError:
        raise UsageError(
            f"{path!r} declares an array larger than this machine's memory: a corrupted "
            "header, or a file for gaussmix.sources' block-by-block fit from Python"
        ) from None
    except ValueError as exc:
        reason = "it holds Python objects, not numbers" if "pickle" in str(exc) else exc
        raise UsageError(f"{path!r} is not a valid numeric .npy file: {reason}") from None
    except EOFError:
        raise UsageError(f"{path!r} is not a valid numeric .npy file: it is truncated") from None


def _read_npy(path: str) -> _Raw:
    array = _load_npy(path)
    if array.dtype.names:  # a structured array names its columns
        names, columns = [], []
        for name in array.dtype.names:
            field = array[name]
            if field.dtype.kind not in "iuf":
                names.append(name)
                columns.append(_NonNumeric(0, str(field[0]) if len(array) else str(field.dtype)))
                continue
            # A sub-array field, ('v', 'f8', (2,)), is one column per element.
            cells = list(np.ndindex(field.shape[1:]))
            flat = field.reshape(len(array), len(cells))
            for j, cell in enumerate(cells):
                names.append(f"{name}[{','.join(map(str, cell))}]" if cell else name)
                columns.append(flat[:, j].astype(np.float64))
        return _Raw(names, True, columns, None)
    if array.ndim == 1:
        array = array[:, np.newaxis]
    if array.ndim != 2:
        raise UsageError(f"{path!r} holds a {array.ndim}-D array; expected 2-D (rows x columns)")
    if array.dtype.kind not in "iuf":
        raise UsageError(f"{path!r} holds an array of dtype {array.dtype}, which is not numeric")
    columns = [array[:, j].astype(np.float64) for j in range(array.shape[1])]
    return _Raw([f"x{j}" for j in range(array.shape[1])], False, columns, None)


def read_raw(path: str, header: str = "auto") -> _Raw:
    """The file's column names, whether it has a header, and its columns unchecked.

    ``header`` ('auto', 'yes' or 'no') says whether the first row of a CSV
    or TSV file holds the column names; 'auto' tells from the rows below it
    (a text cell over numbers).  Parquet and .npy files have no header row:
    'yes' and 'no' are refused for them.
    """
    if header not in HEADER_CHOICES:
        raise UsageError(f"header must be one of {', '.join(HEADER_CHOICES)}; got {header!r}")
    fmt = data_format(path)
    if header != "auto" and fmt not in ("csv", "tsv"):
        names = "column names of its own" if fmt == "parquet" else "no column names"
        raise UsageError(
            f"--header {header} is for CSV and TSV files; {path!r} is {fmt}, which has "
            f"{names}: leave --header out"
        )
    if not os.path.exists(path):
        raise UsageError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise UsageError(f"{path!r} is a directory, not a data file")
    try:
        if fmt == "parquet":
            return _read_parquet(path)
        if fmt == "npy":
            return _read_npy(path)
        return _read_delimited(path, "\t" if fmt == "tsv" else ",", header)
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror or exc}") from exc


def _select(raw: _Raw, spec: str | list[int] | None, path: str) -> list[int]:
    """Indices of the columns named (or numbered from 0) in ``spec``, in its order."""
    if spec is None:
        return list(range(len(raw.names)))
    if isinstance(spec, list):
        return spec
    indices = []
    for token in (t.strip() for t in spec.split(",")):
        if token in raw.names:
            index = raw.names.index(token)
        elif token.lstrip("-").isascii() and token.lstrip("-").isdigit():
            index = int(token)
            if not 0 <= index < len(raw.names):
                raise UsageError(
                    f"column index {index} is out of range: {path!r} has "
                    f"{len(raw.names)} columns, numbered 0 to {len(raw.names) - 1}"
                )
        elif not token:
            raise UsageError(f"--columns {spec!r} has an empty entry")
        else:
            raise UsageError(
                f"no column {token!r} in {path!r}; its columns are: {', '.join(raw.names)}"
            )
        if index in indices:
            raise UsageError(f"--columns names column {raw.names[index]!r} twice")
        indices.append(index)
    return indices


def read_table(
    path: str,
    columns: str | list[int] | None = None,
    drop_non_numeric: bool | None = False,
    drop_missing: bool | None = False,
    raw: _Raw | None = None,
    header: str = "auto",
) -> Table:
    """Read the numeric columns of a data file.

    Parameters
    ----------
    path : str
        A .csv, .tsv, .parquet or .npy file.
    columns : str or list of int, optional
        Comma-separated column names or 0-based indices, or a list of
        indices; all when None.
    drop_non_numeric : bool or None, default=False
        Leave out columns that hold text instead of refusing them; None
        when the command has no such option, which changes the suggested fix.
    drop_missing : bool or None, default=False
        Leave out rows with a missing (empty, ``NA``, ... see the module
        docstring), NaN or infinite value instead of refusing them; None
        when the command has no such option, which changes the suggested fix.
    raw : optional
        What :func:`read_raw` gave for ``path``, not to read it twice.
    header : {'auto', 'yes', 'no'}, default='auto'
        Whether a CSV or TSV file's first row holds column names (see
        :func:`read_raw`); unused when ``raw`` is given.

    Returns
    -------
    table : Table

    Raises
    ------
    UsageError
        Naming the file and the problem: missing or unreadable file, unknown
        format, bad column, non-numeric column, missing value, no rows.
    """
    raw = read_raw(path, header) if raw is None else raw
    selected = _select(raw, columns, path)
    text = [j for j in selected if isinstance(raw.columns[j], _NonNumeric)]
    if text and not drop_non_numeric:
        first = raw.columns[text[0]]
        listed = ", ".join(repr(raw.names[j]) for j in text)
        fix = (
            "drop them with --drop-non-numeric or choose columns with --columns"
            if drop_non_numeric is not None else "the model needs numbers there"
        )
        raise UsageError(
            f"column(s) {listed} of {path!r} are not numeric ({raw.where(first.row)} "
            f"holds {first.text!r}); {fix}"
        )
    kept = [j for j in selected if j not in text]
    if not kept:
        raise UsageError(f"{path!r} has no numeric columns to fit")
    names = [raw.names[j] for j in kept]
    X = np.column_stack([raw.columns[j] for j in kept])
    bad_rows = ~np.all(np.isfinite(X), axis=1)
    n_bad = int(np.sum(bad_rows))
    if n_bad and not drop_missing:
        row = int(np.argmax(bad_rows))
        column = names[int(np.argmax(~np.isfinite(X[row])))]
        fix = (
            "drop those rows with --drop-missing" if drop_missing is not None
            else "remove or fill those rows first"
        )
        raise UsageError(
            f"missing or non-finite value in {path!r} at {raw.where(row)}, column "
            f"{column!r} ({n_bad} row(s) affected); {fix}"
        )
    X = X[~bad_rows]
    if X.shape[0] == 0:
        raise UsageError(f"{path!r} has no complete data rows")
    return Table(X, names, raw.header, path, [raw.names[j] for j in text], n_bad)


def output_format(path: str) -> str:
    """``'csv'``, ``'tsv'`` or ``'parquet'`` for an output file; ``'-'`` is CSV on stdout.

    Raises
    ------
    UsageError
        For any other extension, rather than writing CSV under a name
        that says otherwise.
    """
    if path == "-":
        return "csv"
    fmt = _FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt not in ("csv", "tsv", "parquet"):
        raise UsageError(
            f"cannot tell the output format of {path!r} from its extension: use .csv, "
            ".tsv or .parquet, or '-' for CSV on stdout"
        )
    return fmt


def refuse_overwriting(data_path: str, *outputs: str) -> None:
    """Refuse an output file that is the input data file itself.

    Raises
    ------
    UsageError
        Naming the file, before any work: writing it would replace the data
        it was computed from.
    """
    for output in outputs:
        if output == "-" or not os.path.exists(output) or not os.path.exists(data_path):
            continue
        if os.path.samefile(output, data_path):
            raise UsageError(
                f"the output {output!r} is the input data file; writing it would replace "
                "the data: choose another output path"
            )


def write_table(columns: dict[str, np.ndarray], path: str) -> None:
    """Write columns as CSV, TSV (.tsv, .tab), Parquet (.parquet, .pq) or CSV on stdout ('-').

    Floats are written in the shortest form that reads back to the same
    number, so nothing is lost in CSV.

    Raises
    ------
    UsageError
        If the extension names no format written here (see :func:`output_format`).
    """
    fmt = output_format(path)
    if fmt == "parquet":
        pa = _pyarrow("writing")
        pa.parquet.write_table(pa.table({k: np.asarray(v) for k, v in columns.items()}), path)
        return
    cells = [np.asarray(v).tolist() for v in columns.values()]
    if path == "-":
        _write_rows(sys.stdout, columns, cells, ",")
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        _write_rows(f, columns, cells, "\t" if fmt == "tsv" else ",")


def _write_rows(stream, columns, cells, delimiter: str) -> None:
    writer = csv.writer(stream, delimiter=delimiter, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*cells))
