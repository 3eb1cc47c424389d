"""Every user error of the command line: exit status 2 and one line naming the problem."""

import copy
import json
import sys

import numpy as np
import pytest

import gaussmix
from gaussmix.cli import UsageError, main

from test_cli_fit import NAMES, blobs, write_csv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("errors")
    X = blobs(n_per=20)
    paths = {
        "good": write_csv(tmp / "good.csv", X, NAMES),
        "tiny": write_csv(tmp / "tiny.csv", X[:3], NAMES),
        "onerow": write_csv(tmp / "onerow.csv", X[:1], NAMES),
        "constant": write_csv(tmp / "constant.csv", np.c_[X[:, :2], np.ones(len(X))], NAMES),
    }
    (tmp / "text.csv").write_text("a,b,species\n1,2,setosa\n3,4,virginica\n5,6,setosa\n")
    (tmp / "holes.csv").write_text("a,b\n1,2\n3,\n5,6\n7,8\n")
    (tmp / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    (tmp / "empty.csv").write_text("")
    (tmp / "latin1.csv").write_bytes("a,b\n1,2\n\xe9,3\n".encode("latin-1"))
    (tmp / "data.txt").write_text("1,2\n")
    (tmp / "bad.json").write_text('{"format": "gaussmix-model", "format_version": 1}')
    (tmp / "notjson.json").write_text("hello")
    (tmp / "na.csv").write_text("a,b\n1,2\n3,NA\n5,6\n7,8\n")
    (tmp / "header.csv").write_text("height,weight,age\n")
    (tmp / "notnpy.npy").write_text("hello\n")
    np.save(tmp / "objects.npy", np.array([[1, "x"]], dtype=object), allow_pickle=True)
    (tmp / "str.npy").write_bytes(b"")
    np.save(tmp / "str.npy", np.array([["a", "b"], ["c", "d"]]))
    model = gaussmix.GaussianMixture(2, random_state=0).fit(X)
    model.save(tmp / "plain.json")  # no metadata: no training quantiles
    # Valid JSON whose integer no float64 holds.
    document = json.loads((tmp / "plain.json").read_text())
    document["weights"][0] = 10**400
    (tmp / "hugeint.json").write_text(json.dumps(document))
    # A header declaring 5e9 rows in a file of 5.
    np.save(tmp / "small.npy", np.arange(10.0).reshape(5, 2))
    (tmp / "bigheader.npy").write_bytes((tmp / "small.npy").read_bytes().replace(
        b"'shape': (5, 2), ", b"'shape': (5000000000,2)"))
    for name in ("text", "holes", "ragged", "empty", "latin1", "bad", "notjson", "str",
                 "plain", "na", "header", "notnpy", "objects", "hugeint", "bigheader"):
        ext = {"bad": "json", "notjson": "json", "plain": "json", "str": "npy",
               "notnpy": "npy", "objects": "npy", "hugeint": "json",
               "bigheader": "npy"}.get(name, "csv")
        paths[name] = str(tmp / f"{name}.{ext}")
    paths["txt"] = str(tmp / "data.txt")
    paths["dir"] = str(tmp)
    fitted = tmp / "fitted"
    assert main(["fit", paths["good"], "--k", "2", "--out", str(fitted), "--no-plots",
                 "-q"]) == 0
    paths["model"] = str(fitted / "model.json")
    paths["out"] = str(tmp / "out")
    return paths


CASES = [
    (["fit", "{dir}/nope.csv"], "no such file: '{dir}/nope.csv'"),
    (["fit", "{txt}"], "cannot tell the format of"),
    (["fit", "{latin1}"], "not UTF-8 text"),
    (["fit", "{empty}"], "is empty"),
    (["fit", "{ragged}"], "line 3 has 3 fields, expected 2"),
    (["fit", "{str}"], "is not numeric"),
    (["fit", "{good}", "--columns", "height,shoe"], "no column 'shoe'"),
    (["fit", "{good}", "--columns", "0,7"], "column index 7 is out of range"),
    (["fit", "{good}", "--columns", "0,height"], "names column 'height' twice"),
    (["fit", "{text}"], "column(s) 'species' of"),
    (["fit", "{text}"], "--drop-non-numeric"),
    (["fit", "{holes}"], "at line 3, column 'b'"),
    (["fit", "{holes}"], "--drop-missing"),
    (["fit", "{good}", "--k", "0"], "invalid K '0'"),
    (["fit", "{good}", "--k", "many"], "invalid K 'many'"),
    (["fit", "{good}", "--k", "auto", "--k-range", "5..2"], "invalid K range '5..2'"),
    (["fit", "{good}", "--k", "auto", "--k-range", "0..3"], "invalid K range '0..3'"),
    (["fit", "{good}", "--covariance", "round"], "unknown covariance model(s) 'round'"),
    (["fit", "{good}", "--covariance", "full,diag"], "or compare them with --k auto"),
    (["select", "{good}", "--covariance", "full,VVV", "--no-plot"], "'full' and 'VVV' are "
     "the same model"),
    (["fit", "{tiny}", "--k", "5"], "has 3 usable row(s); K=5 needs at least 5"),
    (["fit", "{tiny}", "--k", "auto", "--k-range", "4..6"], "K can be at most 3: use "
     "--k-range 1..3"),
    (["select", "{tiny}", "--k-range", "5,6", "--no-plot"], "use --k-range 1..3"),
    (["select", "{onerow}", "--k-range", "2..3", "--no-plot"], "has 1 usable row(s); select "
     "needs at least 2"),
    (["fit", "{na}"], "missing or non-finite value in '{dir}/na.csv' at line 3, column 'b'"),
    (["fit", "{header}"], "'{dir}/header.csv' has a header row but no data rows"),
    (["fit", "{notnpy}"], "'{dir}/notnpy.npy' is not a valid numeric .npy file (it lacks"),
    (["fit", "{objects}"], "is not a valid numeric .npy file: it holds Python objects"),
    (["predict", "{model}", "{good}", "--out", "{dir}/p.json"], "cannot tell the output "
     "format of '{dir}/p.json' from its extension: use .csv, .tsv or .parquet"),
    (["fit", "{constant}", "--standardize"], "cannot standardize constant column(s) 'age'"),
    (["fit", "{good}", "--tol", "-1"], "invalid value '-1'"),
    (["fit", "{good}", "--n-init", "0"], "invalid value '0'"),
    (["fit", "{good}", "--out", "{good}/sub"], "cannot create the output directory"),
    (["select", "{good}", "--criterion", "xic"], "invalid choice: 'xic'"),
    (["predict", "{dir}/none.json", "{good}"], "no such model file"),
    (["predict", "{bad}", "{good}"], "is not a valid gaussmix model file: Invalid model"),
    (["predict", "{notjson}", "{good}"], "invalid JSON"),
    (["predict", "{dir}", "{good}"], "is a directory"),
    (["predict", "{model}", "{text}"], "lacks the model's column(s) 'height', 'weight'"),
    (["predict", "{model}", "{text}", "--columns", "a,species,b"], "column(s) 'species' of"),
    (["predict", "{model}", "{text}", "--columns", "a,species,b"], "the model needs numbers"),
    (["predict", "{model}", "{good}", "--columns", "0,1"], "has 2 numeric column(s) but the "
     "model expects 3"),
    (["predict", "{plain}", "{good}", "--anomaly-threshold", "0.1"], "holds no training "
     "log-likelihood quantiles"),
    (["predict", "{model}", "{good}", "--anomaly-threshold", "1"], "invalid quantile '1'"),
    (["predict", "{model}", "{good}", "--out", "{dir}/no/such/dir.csv"], "cannot write"),
    # Refused before the fits, not after them.
    (["select", "{good}", "--plot", "{dir}/no/such/sel.png"], "the folder '{dir}/no/such' does "
     "not exist"),
    (["select", "{good}", "--no-plot", "--json", "{dir}/no/t.json"], "cannot write '{dir}/no/"),
    (["info", "{notjson}"], "invalid JSON"),
    (["select", "{good}", "--plot", "{dir}/sel.xyz"], "cannot write a figure as "
     "'{dir}/sel.xyz': use one of the extensions"),
    (["fit", "{good}", "--k", "auto", "--k-range", "1..2000000000"], "K range '1..2000000000' "
     "holds 2000000000 values; compare at most 1000"),
    (["fit", "{good}", "--columns", "\u00b2"], "no column '\u00b2'"),
    (["fit", "{bigheader}"], "'{dir}/bigheader.npy' declares an array larger than this "
     "machine's memory"),
    (["info", "{hugeint}"], "'weights' has non-finite values"),
]


@pytest.mark.parametrize("argv, message", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_user_error_is_one_line_with_status_2(files, argv, message, capsys):
    argv = [arg.format(**files) for arg in argv]
    if argv[0] in ("fit",) and "--out" not in argv:
        argv += ["--out", files["out"]]
    assert main([*argv, "--no-plots"] if argv[0] == "fit" else argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("gaussmix: error: ")
    assert captured.err.count("\n") == 1
    assert message.format(**files) in captured.err
    assert "Traceback" not in captured.err


def test_no_error_suggests_loading_pickles(files, capsys):
    for name in ("notnpy", "objects"):
        assert main(["fit", files[name], "--out", files["out"]]) == 2
        assert "pickle" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def standardized(files, tmp_path_factory):
    """The document of a model fitted with --standardize, to tamper with."""
    out = tmp_path_factory.mktemp("standardized")
    assert main(["fit", files["good"], "--k", "auto", "--k-range", "1..2", "--covariance",
                 "full", "--standardize", "--out", str(out), "--no-plots", "-q"]) == 0
    return json.loads((out / "model.json").read_text())


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def tamper(metadata):
        for key in keys[:-1]:
            metadata = metadata[key]
        metadata[keys[-1]] = value

    return tamper


def _drop(block, key):
    return lambda metadata: metadata[block].pop(key)


def _reverse(block, key):
    return lambda metadata: metadata[block][key].reverse()


TAMPERED = [
    ("data", _set("data", "x"), "'data' must be an object, not str"),
    ("data.header", _set("data", "header", "yes"), "'data.header' must be true or false"),
    ("data.columns", _set("data", "columns", ["height"]), "'data.columns' must be a list of 3"),
    ("preprocessing list", _set("preprocessing", [1]), "'preprocessing' must be an object"),
    ("preprocessing str", _set("preprocessing", "z"), "'preprocessing' must be an object"),
    ("standardize", _drop("preprocessing", "standardize"),
     "'preprocessing.standardize' must be true or false"),
    ("no center", _drop("preprocessing", "center"),
     "'preprocessing.center' must be a list of 3 finite numbers"),
    ("short center", _set("preprocessing", "center", [0.0]),
     "'preprocessing.center' must be a list of 3 finite numbers, not 1"),
    ("bool center", _set("preprocessing", "center", [0.0, True, 0.0]),
     "'preprocessing.center' must be a list of 3 finite numbers"),
    ("str scale", _set("preprocessing", "scale", "abc"), "'preprocessing.scale' must be a list"),
    ("huge scale", _set("preprocessing", "scale", [1, 10**400, 1]),
     "'preprocessing.scale' must be a list of 3 finite numbers"),
    ("zero scale", _set("preprocessing", "scale", [0.0, 1.0, 1.0]),
     "'preprocessing.scale' must hold only numbers > 0"),
    ("negative scale", _set("preprocessing", "scale", [-1.0, 1.0, 1.0]),
     "'preprocessing.scale' must hold only numbers > 0"),
    ("quantiles str", _set("training_log_likelihood", "x"),
     "'training_log_likelihood' must be an object"),
    ("no quantiles", _drop("training_log_likelihood", "quantiles"),
     "'training_log_likelihood.quantiles' must be a list of 1001 finite numbers"),
    ("short quantiles", _set("training_log_likelihood", "quantiles", [1.0, 2.0]),
     "'training_log_likelihood.quantiles' must be a list of 1001 finite numbers, not 2"),
    ("unsorted quantiles", _reverse("training_log_likelihood", "quantiles"),
     "'training_log_likelihood.quantiles' must not decrease"),
    ("unsorted probabilities", _reverse("training_log_likelihood", "probabilities"),
     "'training_log_likelihood.probabilities' must increase from 0 to 1"),
    ("text quantile", _set("training_log_likelihood", "quantiles", 0, "low"),
     "'training_log_likelihood.quantiles' must be a list of 1001 finite numbers"),
    ("no mean", _drop("training_log_likelihood", "mean"),
     "'training_log_likelihood.mean' must be a finite number"),
    ("selection", _set("selection", "best", "VVV"), "'selection.best' must be an object"),
    ("criterion", _set("selection", "criterion", 1), "'selection.criterion' must be a string"),
]


@pytest.mark.parametrize("tamper, field", [case[1:] for case in TAMPERED],
                         ids=[case[0] for case in TAMPERED])
@pytest.mark.parametrize("command", ["predict", "info"])
def test_tampered_metadata_is_one_line_naming_file_and_field(
    standardized, files, tmp_path, capsys, command, tamper, field
):
    doc = copy.deepcopy(standardized)
    tamper(doc["metadata"])
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    argv = [command, str(path)]
    if command == "predict":
        argv += [files["good"], "--out", str(tmp_path / "p.csv"), "--anomaly-threshold", "0.1"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    prefix = f"gaussmix: error: {str(path)!r} has invalid metadata: {field}"
    assert captured.err.startswith(prefix)
    assert captured.err.endswith("; write the model again with 'gaussmix fit'\n")
    assert captured.err.count("\n") == 1 and captured.out == ""
    assert not (tmp_path / "p.csv").exists()


def test_a_scale_that_overflows_the_data_is_one_line(standardized, files, tmp_path, capsys):
    doc = copy.deepcopy(standardized)
    doc["metadata"]["preprocessing"]["scale"][0] = 5e-324  # positive, but 1 / it is inf
    path = tmp_path / "model.json"
    path.write_text(json.dumps(doc))
    assert main(["predict", str(path), files["good"], "--out", str(tmp_path / "p.csv")]) == 2
    assert capsys.readouterr().err == (
        f"gaussmix: error: standardizing {files['good']!r} with the scale stored in "
        f"{str(path)!r} overflows; refit the model on data in comparable units\n"
    )


def test_untampered_standardized_model_still_predicts(standardized, files, tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(standardized))
    argv = ["predict", str(path), files["good"], "--out", str(tmp_path / "p.csv"),
            "--anomaly-threshold", "0.1", "-q"]
    assert main(argv) == 0
    assert main(["info", str(path)]) == 0


def test_drop_options_drop_and_say_so(files, tmp_path, capsys):
    argv = ["fit", files["text"], "--k", "1", "--drop-non-numeric", "--out", str(tmp_path),
            "--no-plots"]
    assert main(argv) == 0
    assert "dropped non-numeric column(s): species" in capsys.readouterr().err
    assert list(gaussmix.load(tmp_path / "model.json").feature_names_in_) == ["a", "b"]
    assert main([*argv, "-q"]) == 0
    assert capsys.readouterr().err == ""
    argv = ["fit", files["holes"], "--k", "1", "--drop-missing", "--out", str(tmp_path),
            "--no-plots"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "dropped 1 row(s) with missing values" in captured.err
    assert "to 3 rows x 2 columns" in captured.out


def test_debug_re_raises(files):
    with pytest.raises(UsageError, match="no such file"):
        main(["--debug", "fit", files["dir"] + "/nope.csv"])
    with pytest.raises(UsageError, match="no such file"):
        main(["fit", files["dir"] + "/nope.csv", "--debug"])


def test_internal_error_is_one_line_suggesting_debug(files, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr("gaussmix._cli_fit._write_outputs", broken)
    argv = ["fit", files["good"], "--k", "2", "--out", files["out"], "--no-plots"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == ("gaussmix: internal error: RuntimeError: something broke (rerun with "
                   "--debug for the traceback, and please report it)\n")
    with pytest.raises(RuntimeError, match="something broke"):
        main([*argv, "--debug"])


def test_a_full_disk_is_one_line_with_status_2_and_other_os_errors_stay_internal(
    files, monkeypatch, capsys
):
    """``gaussmix fit ... > /dev/full`` is the machine's state, not a fault to report."""
    import errno
    import io

    class FailingStdout(io.TextIOBase):
        def __init__(self, code, text):
            self.error = (code, text)

        def write(self, text):
            raise OSError(*self.error)

    argv = ["fit", files["good"], "--k", "2", "--out", files["out"], "--no-plots"]
    monkeypatch.setattr(sys, "stdout", FailingStdout(errno.ENOSPC, "No space left on device"))
    assert main(argv) == 2
    assert capsys.readouterr().err == ("gaussmix: error: cannot write the output: No space "
                                       "left on device\n")
    with pytest.raises(OSError, match="No space"):
        main([*argv, "--debug"])
    monkeypatch.setattr(sys, "stdout", FailingStdout(errno.EBADF, "Bad file descriptor"))
    assert main(argv) == 1
    assert "internal error: OSError" in capsys.readouterr().err


def test_select_plot_into_a_folder_writes_selection_png_there(files, tmp_path, capsys):
    """Not a hidden ``.png`` in it (``folder/``), nor ``folder.png`` beside it."""
    for name in ("slash", "plain"):
        folder = tmp_path / name
        folder.mkdir()
        target = f"{folder}/" if name == "slash" else str(folder)
        assert main(["select", files["good"], "--k-range", "1..2", "--covariance", "full",
                     "--plot", target, "-q"]) == 0
        assert sorted(p.name for p in folder.iterdir()) == ["selection.png"]
        assert not (tmp_path / f"{name}.png").exists()


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch, capsys):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert main(["fit", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == ("gaussmix: error: reading Parquet needs pyarrow: "
                   "pip install 'gaussmix[parquet]'\n")


def test_library_warnings_are_one_line_each(files, tmp_path, capsys):
    argv = ["fit", files["good"], "--k", "3", "--max-iter", "1", "--out", str(tmp_path),
            "--no-plots"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.startswith("gaussmix: warning: Best performing initialization did not converge")
    assert err.count("\n") == 1
    assert main([*argv, "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_an_output_that_is_the_input_data_is_refused(files, tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_bytes(open(files["good"], "rb").read())
    original = data.read_bytes()
    out = tmp_path / "fit"
    assert main(["fit", str(data), "--k", "2", "--out", str(out), "--no-plots", "-q"]) == 0
    capsys.readouterr()
    assert main(["predict", str(out / "model.json"), str(data), "--out", str(data)]) == 2
    assert capsys.readouterr().err == (
        f"gaussmix: error: the output {str(data)!r} is the input data file; writing it would "
        "replace the data: choose another output path\n"
    )
    # fit's own outputs in the data's folder: its assignments file.
    own = out / "assignments.csv"
    own.write_bytes(original)
    assert main(["fit", str(own), "--k", "2", "--out", str(out), "--no-plots", "-q"]) == 2
    assert "is the input data file" in capsys.readouterr().err
    assert data.read_bytes() == original and own.read_bytes() == original


def test_rows_too_far_for_their_probabilities_are_refused(files, tmp_path, capsys):
    """Their squared distances overflow: NaN probabilities and an arbitrary label, before."""
    out = tmp_path / "fit"
    assert main(["fit", files["good"], "--k", "2", "--out", str(out), "--no-plots", "-q"]) == 0
    capsys.readouterr()
    far = tmp_path / "far.csv"
    far.write_text(",".join(NAMES) + "\n0,0,0\n1e160,0,0\n")
    assert main(["predict", str(out / "model.json"), str(far), "--out", "-"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"gaussmix: error: data row 2 of {str(far)!r} lies too far from every component for "
        "float64 (its squared distances overflow), so its probabilities are undefined "
        "(1 such row(s)); check the data's units\n"
    )
    assert captured.out == ""


@pytest.mark.parametrize("command", ["fit", "select"])
def test_a_column_too_wide_for_its_squares_names_the_standardize_option(tmp_path, capsys, command):
    data = tmp_path / "huge.csv"
    data.write_text("a,b\n1e300,2\n-1e300,3\n3,4\n5,6\n")
    argv = [command, str(data), "-q"]
    argv += ["--k", "1", "--out", str(tmp_path / "o"), "--no-plots"] if command == "fit" else [
        "--k-range", "1..2", "--no-plot"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"gaussmix: error: column 'a' of {str(data)!r} spans 2e+300, more than float64's "
        "squares hold; fit with --standardize\n"
    )
    if command == "fit":
        assert main([*argv, "--standardize"]) == 0
