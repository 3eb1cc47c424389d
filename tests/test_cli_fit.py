"""``gaussmix fit``, ``predict``, ``select`` and ``info`` end to end, in process."""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import gaussmix
from gaussmix.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MEANS = np.array([[0.0, 0.0, 0.0], [8.0, 1.0, 2.0], [2.0, 9.0, -4.0]])
NAMES = ["height", "weight", "age"]


def blobs(n_per=60, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(m, 1.0, (n_per, 3)) for m in MEANS])
    return X[rng.permutation(len(X))]


def write_csv(path, X, names=None, delimiter=","):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        if names is not None:
            writer.writerow(names)
        writer.writerows(X.tolist())
    return str(path)


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], np.array(rows[1:], dtype=float)


@pytest.fixture(scope="module")
def X():
    return blobs()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, X):
    """One fit with plots, shared by the tests that only read its outputs."""
    tmp = tmp_path_factory.mktemp("fit")
    data = write_csv(tmp / "data.csv", X, NAMES)
    out = tmp / "out"
    argv = ["fit", data, "--k", "3", "--out", str(out), "--seed", "1", "-q"]
    assert main(argv) == 0
    return {"data": data, "out": out, "X": X}


def test_fit_writes_model_assignments_summary_and_plots(fitted, capsys):
    out, X = fitted["out"], fitted["X"]
    model = gaussmix.load(out / "model.json")
    assert list(model.feature_names_in_) == NAMES
    header, table = read_csv(out / "assignments.csv")
    assert header == ["label", "proba_0", "proba_1", "proba_2"]
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), 1.0, rtol=1e-12)
    # Labels agree with loading the model and predicting.
    with pytest.warns(UserWarning, match="feature names"):
        expected = model.predict(X)
    np.testing.assert_array_equal(table[:, 0].astype(int), expected)
    np.testing.assert_array_equal(table[:, 1:].argmax(axis=1), expected)
    assert sorted(np.bincount(expected)) == [60, 60, 60]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["n_components"] == 3
    assert summary["data"]["columns"] == NAMES
    assert summary["training"]["converged"] is True
    assert "3-component 'full' mixture" in (out / "summary.txt").read_text()
    for name in ("pairs.png", "uncertainty.png", "log_likelihood.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert not (out / "criterion.png").exists()


def test_fit_prints_a_summary_and_no_progress_when_quiet(tmp_path, X, capsys, monkeypatch):
    data = write_csv(tmp_path / "d.csv", X, NAMES)
    monkeypatch.setattr("gaussmix._progress._is_tty", lambda stream: True)
    argv = ["fit", data, "--k", "3", "--out", str(tmp_path / "o"), "--no-plots"]
    assert main([*argv, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert re.search(r"^\s*component\s+weight\s+rows\s+mean height", captured.out, re.M)
    assert "Wrote 4 files" in captured.out
    # Without --quiet, on a terminal, the bar shows EM iterations.
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "fitting [" in err and "iteration" in err and "\r" in err


def test_fit_one_column_draws_its_density_and_uncertainty(tmp_path, X):
    data = write_csv(tmp_path / "d.csv", X[:, :1], ["a"])
    out = tmp_path / "o"
    assert main(["fit", data, "--k", "2", "--out", str(out), "-q"]) == 0
    figures = ["density.png", "log_likelihood.png", "uncertainty.png"]
    assert sorted(p.name for p in out.glob("*.png")) == figures
    for name in figures:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize("covariance", ["VEV", "VVE", "EEI", "EII", "E"])
def test_fit_of_an_mclust_model_writes_its_model_and_plots(tmp_path, X, covariance):
    """The plotted copy keeps the model's name: under its kernel family's it refused to predict."""
    columns = X[:, :1] if covariance == "E" else X[:, :2]
    data = write_csv(tmp_path / "d.csv", columns, ["a", "b"][: columns.shape[1]])
    out = tmp_path / "o"
    assert main(["fit", data, "--k", "2", "--covariance", covariance, "--out", str(out), "-q"]) == 0
    assert (out / "model.json").is_file()
    figure = "density.png" if covariance == "E" else "clusters.png"
    assert (out / figure).read_bytes()[:8] == PNG_MAGIC
    assert (out / "uncertainty.png").read_bytes()[:8] == PNG_MAGIC


def test_fit_two_columns_draws_clusters_and_parquet_assignments(tmp_path, X):
    data = write_csv(tmp_path / "d.csv", X[:, :2], ["a", "b"])
    out = tmp_path / "o"
    assert main(["fit", data, "--k", "3", "--out", str(out), "--format", "parquet", "-q"]) == 0
    assert (out / "clusters.png").read_bytes()[:8] == PNG_MAGIC
    import pyarrow.parquet as pq

    table = pq.read_table(out / "assignments.parquet").to_pydict()
    assert list(table) == ["label", "proba_0", "proba_1", "proba_2"]
    proba = np.column_stack([table[f"proba_{k}"] for k in range(3)])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_fit_auto_picks_the_true_k_and_plots_the_criterion(tmp_path, X, capsys):
    data = write_csv(tmp_path / "d.csv", X, NAMES)
    out = tmp_path / "o"
    argv = ["fit", data, "--k", "auto", "--k-range", "1..5", "--covariance", "full,VII",
            "--n-jobs", "1", "--out", str(out), "-q"]
    assert main(argv) == 0
    assert "Chosen by BIC among 10 (model, K) fits" in capsys.readouterr().out
    model = gaussmix.load(out / "model.json")
    assert model.n_components == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["selection"]["best"]["n_components"] == 3
    assert len(summary["selection"]["table"]) == 10
    assert (out / "criterion.png").read_bytes()[:8] == PNG_MAGIC


def test_predict_matches_columns_by_name_in_any_order(fitted, tmp_path, capsys):
    X = fitted["X"]
    order = [2, 0, 1]
    data = write_csv(tmp_path / "new.csv", X[:, order], [NAMES[i] for i in order])
    out = tmp_path / "pred.csv"
    assert main(["predict", str(fitted["out"] / "model.json"), data, "--out", str(out)]) == 0
    assert "Wrote 180 predictions" in capsys.readouterr().out
    header, table = read_csv(out)
    assert header == ["label", "proba_0", "proba_1", "proba_2", "log_likelihood"]
    model = gaussmix.io.load(fitted["out"] / "model.json")
    del model.feature_names_in_
    np.testing.assert_array_equal(table[:, 0].astype(int), model.predict(X))
    np.testing.assert_allclose(table[:, -1], model.score_samples(X), rtol=1e-12)
    _, assigned = read_csv(fitted["out"] / "assignments.csv")
    np.testing.assert_array_equal(table[:, 0], assigned[:, 0])


def test_predict_without_header_goes_by_position_and_to_stdout(fitted, tmp_path, capsys):
    X = fitted["X"]
    npy = tmp_path / "new.npy"
    np.save(npy, X)
    assert main(["predict", str(fitted["out"] / "model.json"), str(npy), "--out", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "label,proba_0,proba_1,proba_2,log_likelihood"
    _, assigned = read_csv(fitted["out"] / "assignments.csv")
    labels = [int(line.split(",")[0]) for line in lines[1:]]
    np.testing.assert_array_equal(labels, assigned[:, 0])


def test_numeric_column_names_are_read_as_names_with_header_yes(tmp_path, X):
    years = ["1990", "2000", "2010"]
    data = write_csv(tmp_path / "years.csv", X, years)
    out = tmp_path / "out"
    argv = ["fit", data, "--k", "3", "--out", str(out), "--seed", "1", "-q", "--no-plots"]
    assert main([*argv, "--header", "yes"]) == 0
    model = gaussmix.load(out / "model.json")
    assert list(model.feature_names_in_) == years
    assert model.n_features_in_ == 3
    # predict matches the numeric names, here given in another order.
    order = [1, 2, 0]
    new = write_csv(tmp_path / "new.csv", X[:, order], [years[i] for i in order])
    pred = tmp_path / "pred.csv"
    args = ["predict", str(out / "model.json"), new, "--out", str(pred), "--header", "yes"]
    assert main(args) == 0
    _, table = read_csv(pred)
    del model.feature_names_in_
    np.testing.assert_array_equal(table[:, 0].astype(int), model.predict(X))
    # Without --header, predict takes a first row of the model's names for
    # the header, numbers as they are: one prediction per data row.
    assert main(args[:-2]) == 0
    _, table = read_csv(pred)
    np.testing.assert_array_equal(table[:, 0].astype(int), model.predict(X))
    # fit has no names to go by: without --header the names row is data.
    argv[argv.index("--out") + 1] = str(tmp_path / "guessed")
    assert main(argv) == 0
    guessed = gaussmix.load(tmp_path / "guessed" / "model.json")
    assert list(guessed.feature_names_in_) == ["x0", "x1", "x2"]
    _, assigned = read_csv(tmp_path / "guessed" / "assignments.csv")
    assert len(assigned) == len(X) + 1


def test_anomaly_flags_about_the_requested_fraction_of_training_rows(tmp_path, capsys):
    X = np.random.default_rng(3).normal(size=(2000, 2))
    data = write_csv(tmp_path / "d.csv", X, ["u", "v"])
    out = tmp_path / "o"
    assert main(["fit", data, "--k", "2", "--standardize", "--out", str(out), "--no-plots",
                 "-q"]) == 0
    for q in (0.01, 0.05, 0.2):
        pred = tmp_path / "p.parquet"
        argv = ["predict", str(out / "model.json"), data, "--out", str(pred),
                "--anomaly-threshold", str(q)]
        assert main(argv) == 0
        import pyarrow.parquet as pq

        flags = np.asarray(pq.read_table(pred).column("anomaly"))
        assert abs(flags.mean() - q) <= 0.0015, (q, flags.mean())
    assert "flagged as anomalies" in capsys.readouterr().out


def test_standardize_is_stored_and_applied_by_predict(tmp_path, X):
    scaled = X * [1.0, 100.0, 0.01] + [0.0, 5000.0, -3.0]
    data = write_csv(tmp_path / "d.csv", scaled, NAMES)
    out = tmp_path / "o"
    assert main(["fit", data, "--k", "3", "--standardize", "--out", str(out), "--no-plots",
                 "-q"]) == 0
    model, doc = gaussmix.io.load_document(out / "model.json")
    prep = doc["metadata"]["preprocessing"]
    assert prep["standardize"] is True
    np.testing.assert_allclose(prep["center"], scaled.mean(axis=0))
    np.testing.assert_allclose(prep["scale"], scaled.std(axis=0))
    # The mixture lives in z-scores: its means are near 0, not near 5000.
    assert np.all(np.abs(model.means_) < 3)
    pred = tmp_path / "p.csv"
    assert main(["predict", str(out / "model.json"), data, "--out", str(pred), "-q"]) == 0
    _, table = read_csv(pred)
    _, assigned = read_csv(out / "assignments.csv")
    np.testing.assert_array_equal(table[:, 0], assigned[:, 0])
    # Log-likelihoods are those of the original units: shifted by the Jacobian.
    z = (scaled - prep["center"]) / prep["scale"]
    del model.feature_names_in_
    expected = model.score_samples(z) - np.sum(np.log(prep["scale"]))
    np.testing.assert_allclose(table[:, -1], expected, rtol=1e-10)


def test_select_prints_the_table_and_marks_the_best(tmp_path, X, capsys):
    data = write_csv(tmp_path / "d.tsv", X, NAMES, delimiter="\t")
    plot, table_json = tmp_path / "sel.png", tmp_path / "sel.json"
    argv = ["select", data, "--k-range", "1..4", "--covariance", "diag,EII", "--n-jobs", "1",
            "--criterion", "icl", "--plot", str(plot), "--json", str(table_json), "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"model\s+K\s+log-lik\s+params\s+BIC\s+AIC\s+ICL", out)
    rows = re.findall(r"^\s*(diag|EII)\s+(\d)\s+\S+\s+\d+\s+\S+\s+\S+\s+(\S+)", out, re.M)
    assert len(rows) == 8
    best = min(rows, key=lambda row: float(row[2]))
    marked = [line for line in out.splitlines() if "<- best by ICL" in line]
    assert len(marked) == 1 and marked[0].split()[:2] == [best[0], best[1]]
    assert best[1] == "3"
    assert f"Best by ICL: {best[0]} with K=3" in out
    assert plot.read_bytes()[:8] == PNG_MAGIC
    saved = json.loads(table_json.read_text())
    assert saved["best"] == {"covariance_type": best[0], "n_components": 3}


def test_select_on_few_rows_fits_the_ks_they_allow_as_select_model_does(tmp_path, X, capsys):
    data = write_csv(tmp_path / "d.csv", X[:7], NAMES)
    table_json = tmp_path / "sel.json"
    argv = ["select", data, "--covariance", "EII,VII", "--n-jobs", "1", "--no-plot",
            "--json", str(table_json)]  # the default --k-range, 1..9
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ("gaussmix: 7 usable row(s) allow K up to 7; the cells with "
                            "K=8,9 are reported as failed\n")
    rows = re.findall(r"^\s*(EII|VII)\s+(\d)\s+(\S+)", captured.out, re.M)
    assert len(rows) == 18
    failed = {(m, k) for m, k, ll in rows if ll == "failed"}
    # K above the rows cannot be fitted; K = 7 puts each row in a component
    # of its own, a singular covariance that the table also reports as failed.
    assert {(m, k) for m in ("EII", "VII") for k in ("7", "8", "9")} <= failed
    expected = gaussmix.select_model(X[:7], range(1, 10), ["EII", "VII"], random_state=0,
                                     n_jobs=1)
    saved = json.loads(table_json.read_text())
    assert [row["error"] for row in saved["table"]] == [row["error"] for row in expected.table]
    assert saved["best"] == expected.best_params_
    assert main([*argv, "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_select_stops_em_as_select_model_and_fit_as_gaussian_mixture(tmp_path, X, capsys):
    """Without --tol and --max-iter each command takes the defaults of what it runs.

    Overlapping clusters, where EM's stop shows: 8 and 145 iterations at
    select_model's tol=1e-5 against 4 and 7 at 1e-3."""
    rng = np.random.default_rng(0)
    Z = np.vstack([rng.normal(0, 1, (150, 2)), rng.normal(1.5, 1, (150, 2))])
    data = write_csv(tmp_path / "d.csv", Z, NAMES[:2])
    table_json = tmp_path / "sel.json"
    assert main(["select", data, "--k-range", "2..3", "--covariance", "VVV", "--n-jobs", "1",
                 "--no-plot", "--json", str(table_json), "-q"]) == 0
    expected = gaussmix.select_model(Z, [2, 3], ["VVV"], random_state=0, n_jobs=1)
    saved = json.loads(table_json.read_text())["table"]
    assert [row["n_iter"] for row in saved] == [row["n_iter"] for row in expected.table]
    assert [row["log_likelihood"] for row in saved] == pytest.approx(
        [row["log_likelihood"] for row in expected.table], rel=1e-12)
    out = tmp_path / "fit"
    assert main(["fit", data, "--k", "2", "--out", str(out), "--no-plots", "-q"]) == 0
    model = gaussmix.load(out / "model.json")
    assert (model.tol, model.max_iter) == (1e-3, 100)


def test_select_progress_bar_counts_the_cells(tmp_path, X, capsys, monkeypatch):
    data = write_csv(tmp_path / "d.csv", X, NAMES)
    monkeypatch.setattr("gaussmix._progress._is_tty", lambda stream: True)
    argv = ["select", data, "--k-range", "1..3", "--covariance", "full", "--n-jobs", "1",
            "--no-plot"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "selecting [" in err and "3/3" in err
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_info_prints_what_the_model_file_holds(fitted, capsys):
    assert main(["info", str(fitted["out"] / "model.json")]) == 0
    out = capsys.readouterr().out
    assert "feature names:    height, weight, age" in out
    assert "covariance type:  full" in out
    assert "components (K):   3" in out
    assert re.search(r"format version:\s+1 \(written by gaussmix \d", out)
    assert "converged=True" in out
    assert "(1001 stored, for --anomaly-threshold)" in out
    assert len(re.findall(r"^  \d: \[", out, re.M)) == 3


def test_console_script_fit_end_to_end(tmp_path, X):
    script = os.path.join(os.path.dirname(sys.executable), "gaussmix")
    data = write_csv(tmp_path / "d.csv", X, NAMES)
    result = subprocess.run(
        [script, "fit", data, "--k", "3", "--out", str(tmp_path / "o"), "--no-plots"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar
    assert "3-component 'full' mixture to 180 rows x 3 columns" in result.stdout
    assert gaussmix.load(tmp_path / "o" / "model.json").n_components == 3


@pytest.mark.parametrize("magnitude", [1e200, 1e-200])
def test_standardize_holds_at_any_magnitude(tmp_path, X, magnitude):
    # The scale is taken after dividing by the largest deviation: squares of
    # 1e200 overflow, of 1e-200 underflow (a column once called constant).
    data = write_csv(tmp_path / "d.csv", X * magnitude, NAMES)
    out = tmp_path / "o"
    assert main(["fit", data, "--k", "3", "--standardize", "--out", str(out), "--no-plots",
                 "-q"]) == 0
    _, doc = gaussmix.io.load_document(out / "model.json")
    # Standard deviations of the blobs' columns, about 3-4 before scaling.
    np.testing.assert_allclose(doc["metadata"]["preprocessing"]["scale"],
                               X.std(axis=0) * magnitude, rtol=1e-12)


def test_summary_json_is_strict_json_without_iterations(tmp_path, X):
    # With --max-iter 0 the lower bound is -inf: null in strict JSON.
    data = write_csv(tmp_path / "d.csv", X, NAMES)
    out = tmp_path / "o"
    assert main(["fit", data, "--k", "2", "--max-iter", "0", "--out", str(out), "--no-plots",
                 "-q"]) == 0

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=refuse)
    assert summary["training"]["lower_bound"] is None


def test_parquet_integers_beyond_float64_precision_are_read(tmp_path, X):
    # Nanosecond timestamps or 64-bit ids beside the data: once every column
    # was cast safely, which failed the read even with --columns leaving them out.
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    ids = np.arange(len(X), dtype=np.int64) + 1_700_000_000_000_000_001
    columns = {name: X[:, j] for j, name in enumerate(NAMES)}
    pq.write_table(pa.table({**columns, "id": ids}), tmp_path / "d.parquet")
    out = tmp_path / "o"
    assert main(["fit", str(tmp_path / "d.parquet"), "--columns", ",".join(NAMES), "--k", "3",
                 "--out", str(out), "--no-plots", "-q"]) == 0
    assert main(["fit", str(tmp_path / "d.parquet"), "--k", "3", "--out", str(tmp_path / "all"),
                 "--no-plots", "-q"]) == 0


def test_npy_sub_array_fields_are_one_column_each(tmp_path, X):
    records = np.zeros(len(X), dtype=[("height", "f8"), ("rest", "f8", (2,))])
    records["height"], records["rest"] = X[:, 0], X[:, 1:]
    np.save(tmp_path / "s.npy", records)
    out = tmp_path / "o"
    assert main(["fit", str(tmp_path / "s.npy"), "--k", "3", "--out", str(out), "-q"]) == 0
    model = gaussmix.load(out / "model.json")
    assert list(model.feature_names_in_) == ["height", "rest[0]", "rest[1]"]
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), np.sort(MEANS[:, 0]), atol=0.5)


def test_select_plot_without_extension_is_a_png_named_so(tmp_path, X, capsys):
    data = write_csv(tmp_path / "d.csv", X, NAMES)
    plot = tmp_path / "criteria"
    assert main(["select", data, "--k-range", "1..2", "--covariance", "full",
                 "--plot", str(plot)]) == 0
    assert f"Wrote {plot}.png" in capsys.readouterr().out
    assert (tmp_path / "criteria.png").read_bytes().startswith(PNG_MAGIC)
