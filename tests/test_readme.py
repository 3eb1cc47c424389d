"""The examples in README.md run and print what it says."""

import doctest
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif(not README.exists(), reason="README.md is not next to the tests")
def test_readme_examples():
    result = doctest.testfile(
        str(README),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
    )
    assert result.failed == 0
    assert result.attempted >= 10


@pytest.mark.skipif(not README.exists(), reason="README.md is not next to the tests")
def test_readme_plotting_example(tmp_path, monkeypatch):
    # The plotting block has no doctest prompts; run it after the examples it
    # builds on, in a scratch directory for its PNG.
    text = README.read_text()
    blocks = text.split("```python\n")[1:]
    doctests = [b.split("```")[0] for b in blocks if b.startswith(">>>")]
    plain = [b.split("```")[0] for b in blocks if not b.startswith(">>>")]
    namespace: dict = {}
    for block in doctests:
        source = doctest.DocTestParser().get_examples(block)
        for example in source:
            exec(example.source, namespace)
    monkeypatch.chdir(tmp_path)
    for block in plain:
        exec(block, namespace)
    assert (tmp_path / "mixture.png").read_bytes()[:4] == b"\x89PNG"
    import matplotlib.pyplot as plt

    plt.close("all")


def _console_block(command: str) -> list[str]:
    """The lines the README shows after ``$ command``, up to the end of its block."""
    text = README.read_text()
    start = text.index(f"$ {command}\n") + len(f"$ {command}\n")
    return text[start : text.index("```", start)].rstrip("\n").split("\n")


def _assert_printed_as_shown(printed: str, command: str, **replacements: str) -> None:
    """``printed`` is the README's block of ``command``, its '...' lines any rows.

    ``replacements`` map a shown text to a pattern (a version number).
    """
    pattern = "".join(
        "(?:.*\n)*?" if line.strip() == "..." else re.escape(line.rstrip()) + "\n"
        for line in _console_block(command)
    )
    for shown, replacement in replacements.items():
        pattern = pattern.replace(re.escape(shown), replacement)
    text = "".join(line.rstrip() + "\n" for line in printed.rstrip("\n").split("\n"))
    assert re.fullmatch(pattern, text), printed


@pytest.fixture
def iris_folder(tmp_path, monkeypatch):
    """A scratch folder, the working one, holding iris.csv made as the README makes it."""
    from sklearn.datasets import load_iris

    monkeypatch.chdir(tmp_path)
    iris = load_iris()
    header = ",".join(n[:-5].replace(" ", "_") for n in iris.feature_names)
    np.savetxt("iris.csv", iris.data, fmt="%g", delimiter=",", header=header, comments="")
    yield tmp_path
    import matplotlib.pyplot as plt

    plt.close("all")


def _run(command: str) -> int:
    from gaussmix.cli import main

    return main(command.split()[1:])


@pytest.mark.skipif(not README.exists(), reason="README.md is not next to the tests")
def test_readme_fit_console_example_prints_what_it_shows(iris_folder, capsys):
    """The command line's fit example, then the predict, head, info and error examples."""
    fit = "gaussmix fit iris.csv --k auto --k-range 1..4 --covariance VVV,VEV,EEE --out iris-fit"
    assert _run(fit) == 0
    printed = capsys.readouterr().out.rstrip("\n").split("\n")
    assert [line.rstrip() for line in printed] == [line.rstrip() for line in _console_block(fit)]
    assert (iris_folder / "iris-fit" / "model.json").is_file()

    predict = "gaussmix predict iris-fit/model.json iris.csv --anomaly-threshold 0.02 --out predictions.csv"
    shown = _console_block(predict)
    head_at = shown.index("$ head -3 predictions.csv")
    assert _run(predict) == 0
    assert capsys.readouterr().out.rstrip("\n").split("\n") == shown[:head_at]
    with open("predictions.csv") as f:
        rows = [next(f).rstrip("\n") for _ in range(3)]
    assert rows[0] == shown[head_at + 1]
    for row, expected in zip(rows[1:], shown[head_at + 2 :]):
        # Probabilities and log-likelihoods as printed, to their last digits
        # give or take the rounding of another BLAS.
        np.testing.assert_allclose(
            [float(v) for v in row.split(",")], [float(v) for v in expected.split(",")],
            rtol=1e-9, atol=1e-15,
        )
    info = "gaussmix info iris-fit/model.json"
    assert _run(info) == 0
    _assert_printed_as_shown(
        capsys.readouterr().out, info, **{"gaussmix 0.1.0": r"gaussmix [^)]+"}
    )
    mistake = "gaussmix fit iris.csv --columns sepal_length,petal"
    assert _run(mistake) == 2
    assert capsys.readouterr().err.rstrip("\n").split("\n") == _console_block(mistake)


@pytest.mark.skipif(not README.exists(), reason="README.md is not next to the tests")
def test_readme_select_console_example_prints_what_it_shows(iris_folder, capsys):
    """The select example; its '...' lines stand for the rows the README leaves out."""
    select = "gaussmix select iris.csv --k-range 1..4 --covariance VVV,VEV,EEE,diag"
    assert _run(select) == 0
    _assert_printed_as_shown(capsys.readouterr().out, select)
    assert (iris_folder / "selection.png").read_bytes()[:4] == b"\x89PNG"
