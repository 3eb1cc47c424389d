"""The examples in README.md run and print what it says."""

import doctest
from pathlib import Path

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
