"""The ``gaussmix`` command line, in process and as ``python -m gaussmix``."""

import os
import re
import subprocess
import sys

import pytest

from gaussmix.cli import format_table, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_module(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "gaussmix", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=300,
    )


def check_demo_output(out, out_dir):
    assert re.search(r"^\s*K\s+BIC\s+AIC\s*$", out, re.MULTILINE)
    rows = re.findall(r"^\s*([1-6])\s+(\d+\.\d\d)\s+(\d+\.\d\d)", out, re.MULTILINE)
    assert [int(k) for k, _, _ in rows] == [1, 2, 3, 4, 5, 6]
    best_by_bic = min(rows, key=lambda row: float(row[1]))[0]
    assert best_by_bic == "3"
    assert "Best K by BIC: 3" in out
    assert re.search(r"^\s*component\s+weight\s+mean x\s+mean y\s*$", out, re.MULTILINE)
    for name in ("clusters.png", "criteria.png"):
        path = out_dir / name
        assert str(path) in out
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_main_demo(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--seed", "0"]) == 0
    captured = capsys.readouterr()
    check_demo_output(captured.out, tmp_path)
    assert captured.err == ""


def test_python_m_gaussmix_demo(tmp_path):
    result = run_module("demo", "--out", str(tmp_path / "figs"))
    assert result.returncode == 0, result.stderr
    check_demo_output(result.stdout, tmp_path / "figs")


def test_python_m_gaussmix_demo_default_out_dir(tmp_path):
    result = run_module("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    check_demo_output(result.stdout, tmp_path / "gaussmix-demo")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["demo", "--seed", "many"], "invalid seed 'many'"),
        (["demo", "--seed", "-1"], "invalid seed -1"),
        (["demo", "--out"], "expected one argument"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required: COMMAND"),
    ],
)
def test_user_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("gaussmix: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1


def test_unwritable_out_dir_is_a_user_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["demo", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gaussmix: error: cannot write the figures to")
    assert err.count("\n") == 1


def test_bad_option_via_subprocess_has_no_traceback():
    result = run_module("demo", "--bogus")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "gaussmix: error: unrecognized arguments: --bogus\n"


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert re.match(r"gaussmix \d+\.\d+", capsys.readouterr().out)


def test_format_table_aligns_columns():
    text = format_table(["K", "BIC"], [["1", "10.50"], ["12", "3.25"]])
    assert text.splitlines() == [" K    BIC", "--  -----", " 1  10.50", "12   3.25"]


def test_import_and_help_do_not_load_scikit_learn():
    """``import gaussmix`` and ``gaussmix --help`` stay quick: scikit-learn loads
    only with the estimator or the command that runs."""
    script = (
        "import sys, contextlib, io\n"
        "import gaussmix\n"
        "assert 'sklearn' not in sys.modules, 'import gaussmix'\n"
        "from gaussmix.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for argv in (['--help'], ['fit', '--help'], ['predict', '--help'], ['--version']):\n"
        "        assert main(argv) == 0\n"
        "assert 'sklearn' not in sys.modules, 'gaussmix --help'\n"
        "from gaussmix import GaussianMixture\n"
        "assert 'sklearn' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def test_bad_option_values_are_checked_before_the_command_loads(capsys):
    assert main(["fit", "data.csv", "--k", "0"]) == 2
    assert "invalid K '0'" in capsys.readouterr().err
    assert main(["select", "data.csv", "--k-range", "3..1"]) == 2
    assert "invalid K range" in capsys.readouterr().err
    assert main(["predict", "m.json", "d.csv", "--anomaly-threshold", "1.5"]) == 2
    assert "invalid quantile" in capsys.readouterr().err
