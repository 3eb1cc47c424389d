"""Data files of the command line: formats, header detection, column choice."""

import numpy as np
import pytest

from gaussmix._cli_data import MISSING_MARKERS, UsageError, read_table, write_table


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


def test_header_yes_reads_numeric_names_and_no_reads_a_text_first_row_as_data(tmp_path):
    # Numeric column names (years) look like a data row to 'auto'.
    path = tmp_path / "years.csv"
    path.write_text("1990,2000\n1,2\n3,4\n")
    guessed = read_table(str(path))
    assert not guessed.header and guessed.X.shape == (3, 2)
    table = read_table(str(path), header="yes")
    assert table.header and table.names == ["1990", "2000"]
    np.testing.assert_array_equal(table.X, [[1, 2], [3, 4]])
    # A first row that 'auto' takes for names (text over numbers): 'no'
    # keeps it as data, and its text makes that column non-numeric.
    text = tmp_path / "text.tsv"
    text.write_text("a\t5\n1\t2\n")
    assert read_table(str(text)).names == ["a", "5"]
    as_data = read_table(str(text), header="no", drop_non_numeric=True)
    assert not as_data.header and as_data.names == ["x1"] and as_data.dropped_columns == ["x0"]
    np.testing.assert_array_equal(as_data.X, [[5], [2]])


def test_header_no_on_a_text_first_row_names_the_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(UsageError, match=r"column\(s\) 'x0', 'x1' .*line 1 holds 'a'"):
        read_table(str(path), header="no")


@pytest.mark.parametrize("header", ["yes", "no"])
def test_header_is_refused_for_files_without_header_rows(tmp_path, header):
    npy = tmp_path / "d.npy"
    np.save(npy, np.ones((3, 2)))
    with pytest.raises(UsageError, match=rf"--header {header} is for CSV and TSV files;"
                                         r" .*d\.npy' is npy, which has no column names"):
        read_table(str(npy), header=header)
    assert read_table(str(npy), header="auto").X.shape == (3, 2)
    with pytest.raises(UsageError, match="header must be one of auto, yes, no; got 'maybe'"):
        read_table(str(npy), header="maybe")


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
    with pytest.raises(UsageError, match="e.npy' is not a valid numeric .npy file: it holds "
                       "Python objects"):
        read_table(str(tmp_path / "e.npy"))


def test_nan_and_inf_count_as_missing(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,nan\n2,inf\n3,4\n")
    with pytest.raises(UsageError, match=r"line 2, column 'b' \(2 row\(s\) affected\)"):
        read_table(str(path))
    assert read_table(str(path), drop_missing=True).X.tolist() == [[3.0, 4.0]]


@pytest.mark.parametrize("marker", sorted(MISSING_MARKERS))
def test_missing_value_markers_count_as_missing_not_as_text(tmp_path, marker):
    path = tmp_path / "d.csv"
    path.write_text(f"a,b\n1,2\n3,{marker}\n5,6\n")
    with pytest.raises(UsageError, match=r"missing .* at line 3, column 'b' \(1 row"):
        read_table(str(path))
    table = read_table(str(path), drop_missing=True)
    assert table.header and table.dropped_rows == 1
    assert table.X.tolist() == [[1.0, 2.0], [5.0, 6.0]]


@pytest.mark.parametrize("cell", ["1_0", "\u0661", "\uff11", "1e\u0663"])
def test_numbers_only_in_ascii_without_digit_groups_as_pandas_reads_them(tmp_path, cell):
    """Python's float takes "1_0" (10) and other scripts' digits; pandas reads them as text."""
    path = tmp_path / "d.csv"
    path.write_text(f"a,b\n1,2\n{cell},3\n4,5\n", encoding="utf-8")
    with pytest.raises(UsageError, match=rf"'a' .* are not numeric \(line 3 holds '{cell}'\)"):
        read_table(str(path))
    table = read_table(str(path), drop_non_numeric=True)
    assert table.names == ["b"] and table.X.ravel().tolist() == [2.0, 3.0, 5.0]


def test_missing_markers_are_matched_exactly_and_do_not_make_a_header(tmp_path):
    # pandas' set is case-sensitive: 'na' is text, as in pandas.read_csv.
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,na\n")
    with pytest.raises(UsageError, match=r"'b' .* are not numeric \(line 3 holds 'na'\)"):
        read_table(str(path))
    # A marker in the first row is a missing value, not a column name.
    path.write_text("NA,1\n2,3\n4,5\n")
    table = read_table(str(path), drop_missing=True)
    assert not table.header and table.X.tolist() == [[2.0, 3.0], [4.0, 5.0]]


@pytest.mark.parametrize("text, complete", [
    ("a,b\n", False), ("a,b\n\n", False), ("a,b\n\n,\n", True), ("a,b\nNA,\n", True),
])
def test_header_without_data_rows_says_so(tmp_path, text, complete):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        read_table(str(path), drop_non_numeric=True, drop_missing=True)
    message = str(info.value)
    if complete:  # a data row (of empty cells, as pandas reads ","), though an empty one
        assert message == f"{str(path)!r} has no complete data rows"
    else:  # blank lines are no rows
        assert message == f"{str(path)!r} has a header row but no data rows"


def test_rows_of_empty_cells_are_missing_values_and_lines_are_counted(tmp_path):
    # A row of empty cells is a row, as pandas reads it: refused as missing
    # (so that predictions stay one per row), or dropped and counted.  Blank
    # lines are skipped, and messages name the file's own line numbers.
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n,\n3,4\n\n5,NA\n2,2\n")
    with pytest.raises(UsageError, match="line 3, column 'a'"):
        read_table(str(path))
    table = read_table(str(path), drop_missing=True)
    assert table.X.tolist() == [[1.0, 2.0], [3.0, 4.0], [2.0, 2.0]]
    assert table.dropped_rows == 2
    path.write_text("a,b\n1,2\n\n3,NA\n")
    with pytest.raises(UsageError, match="line 4, column 'b'"):
        read_table(str(path))


@pytest.mark.parametrize("content", [b"hello\n", b"", b"PK\x03\x04 a zip, as np.savez writes"])
def test_a_file_named_npy_that_is_not_one_says_so_without_pickle_advice(tmp_path, content):
    path = tmp_path / "d.npy"
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        read_table(str(path))
    assert "is not a valid numeric .npy file (it lacks the .npy header)" in str(info.value)
    assert "pickle" not in str(info.value)


def test_truncated_and_object_npy_never_suggest_pickle(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(10.0).reshape(5, 2))
    whole = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[:-8])
    np.save(tmp_path / "obj.npy", np.array([[1, "x"]], dtype=object), allow_pickle=True)
    for name in ("cut.npy", "obj.npy"):
        with pytest.raises(UsageError, match="is not a valid numeric .npy file: ") as info:
            read_table(str(tmp_path / name))
        assert "pickle" not in str(info.value)


@pytest.mark.parametrize("name", ["p.json", "p.npy", "p.txt", "predictions"])
def test_write_table_refuses_an_extension_it_cannot_write(tmp_path, name):
    with pytest.raises(UsageError, match=f"output format of '.*{name}'.*use .csv, .tsv or "
                       ".parquet, or '-'"):
        write_table({"label": np.arange(3)}, str(tmp_path / name))
    assert not (tmp_path / name).exists()


def test_write_table_round_trips_floats_exactly(tmp_path):
    values = np.random.default_rng(0).random(5)
    write_table({"label": np.arange(5), "p": values}, str(tmp_path / "o.csv"))
    table = read_table(str(tmp_path / "o.csv"))
    assert table.names == ["label", "p"]
    np.testing.assert_array_equal(table.X[:, 1], values)
