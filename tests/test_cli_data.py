"""Data files of the command line: formats, header detection, column choice."""

import numpy as np
import pytest

from gaussmix._cli_data import UsageError, read_table, write_table


def test_csv_with_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a, b ,c\n1,2,3\n4,5.5,-6e1\n")
    table = read_table(str(path))
    assert table.header and table.names == ["a", "b", "c"]
    np.testing.assert_array_equal(table.X, [[1, 2, 3], [4, 5.5, -60]])


def test_csv_without_header_names_columns_x0_x1(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,2\n3,4\n5,6\n")
    table = read_table(str(path))
    assert not table.header and table.names == ["x0", "x1"]
    assert table.X.shape == (3, 2)


def test_a_text_first_row_over_text_columns_is_data_not_header(tmp_path):
    # No cell of the first row is text above numbers, so it is a data row.
    path = tmp_path / "d.csv"
    path.write_text("red,1\nblue,2\n")
    with pytest.raises(UsageError, match=r"column\(s\) 'x0' .*line 1 holds 'red'"):
        read_table(str(path))
    table = read_table(str(path), drop_non_numeric=True)
    assert table.names == ["x1"] and table.dropped_columns == ["x0"]


def test_tsv_and_column_selection_by_name_and_index(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("a\tb\tc\n1\t2\t3\n4\t5\t6\n")
    table = read_table(str(path), columns="c,0")
    assert table.names == ["c", "a"]
    np.testing.assert_array_equal(table.X, [[3, 1], [6, 4]])


def test_parquet_numeric_text_and_nulls(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"i": [1, 2, 3], "f": [0.5, None, 1.5], "s": ["x", "y", "z"]}),
                   path)
    with pytest.raises(UsageError, match=r"'s' .*row index 0 holds 'x'"):
        read_table(str(path))
    with pytest.raises(UsageError, match=r"row index 1, column 'f'"):
        read_table(str(path), columns="i,f")
    table = read_table(str(path), drop_non_numeric=True, drop_missing=True)
    assert table.names == ["i", "f"] and table.dropped_rows == 1
    np.testing.assert_array_equal(table.X, [[1, 0.5], [3, 1.5]])


def test_npy_plain_one_dimensional_and_structured(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6, dtype=np.int32).reshape(3, 2))
    table = read_table(str(tmp_path / "a.npy"))
    assert table.names == ["x0", "x1"] and not table.header
    np.testing.assert_array_equal(table.X, [[0, 1], [2, 3], [4, 5]])
    np.save(tmp_path / "b.npy", np.array([1.0, 2.0, 3.0]))
    assert read_table(str(tmp_path / "b.npy")).X.shape == (3, 1)
    rec = np.array([(1.0, 2), (3.0, 4)], dtype=[("u", "f8"), ("v", "i4")])
    np.save(tmp_path / "c.npy", rec)
    table = read_table(str(tmp_path / "c.npy"))
    assert table.header and table.names == ["u", "v"]
    np.save(tmp_path / "d.npy", np.zeros((2, 2, 2)))
    with pytest.raises(UsageError, match="3-D array"):
        read_table(str(tmp_path / "d.npy"))
    np.save(tmp_path / "e.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(UsageError, match="cannot read .* as .npy"):
        read_table(str(tmp_path / "e.npy"))


def test_nan_and_inf_count_as_missing(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,nan\n2,inf\n3,4\n")
    with pytest.raises(UsageError, match=r"line 2, column 'b' \(2 row\(s\) affected\)"):
        read_table(str(path))
    assert read_table(str(path), drop_missing=True).X.tolist() == [[3.0, 4.0]]


def test_write_table_round_trips_floats_exactly(tmp_path):
    values = np.random.default_rng(0).random(5)
    write_table({"label": np.arange(5), "p": values}, str(tmp_path / "o.csv"))
    table = read_table(str(tmp_path / "o.csv"))
    assert table.names == ["label", "p"]
    np.testing.assert_array_equal(table.X[:, 1], values)
