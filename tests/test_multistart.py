"""Diversified starts reach mclust's optimum with the default k-means init.

scikit-learn's ``n_init`` repeats k-means on the raw data; on data in raw
units (features on very different scales) its starts miss mclust's optimum
in some (model, K) cells.  gaussmix keeps scikit-learn's first start and
diversifies the others (``gaussmix.init.start_plan``): mclust's hierarchical
start, then k-means on standardised and raw features in turn.  With six
starts every cell where mclust converged reaches at least mclust's
log-likelihood, and the BIC-selected model is mclust's.

mclust stops when the relative change of the log-likelihood falls below
1e-5; the same stopping rule is used here (``tol`` per sample from mclust's
smallest |log-likelihood|), so "at least mclust's" is asked to 1e-6 of it.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from gaussmix import GaussianMixture, select_model
from gaussmix.init import start_plan

REFERENCE = Path(__file__).parent / "reference"


def load(name):
    X = np.loadtxt(REFERENCE / f"{name}.csv", delimiter=",", skiprows=1)
    with open(REFERENCE / f"mclust_{name}.json") as handle:
        return (X[:, None] if X.ndim == 1 else X), json.load(handle)


def select_like_mclust(X, reference, n_init):
    fitted = [c for c in reference["cells"] if c["status"] == "ok"]
    models = sorted({c["model"] for c in reference["cells"]})
    tol = 1e-5 * min(abs(c["loglik"]) for c in fitted) / X.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return select_model(
            X,
            n_components=range(1, 10),
            covariance_types=models,
            n_init=n_init,
            random_state=0,
            reg_covar=0.0,
            max_iter=10000,
            tol=tol,
            n_jobs=2,
        )


def cells_below_mclust(result, reference):
    ours = {(r["covariance_type"], r["n_components"]): r for r in result.table}
    below = []
    for cell in reference["cells"]:
        if cell["status"] != "ok":
            continue
        row = ours[(cell["model"], cell["G"])]
        loglik = row["log_likelihood"]
        if not np.isfinite(loglik) or loglik < cell["loglik"] - 1e-6 * abs(cell["loglik"]):
            below.append((cell["model"], cell["G"], loglik, cell["loglik"], row["error"]))
    return below


CASES = [
    pytest.param("diabetes", 3, id="diabetes"),
    pytest.param("faithful_waiting_1d", 3, id="faithful_waiting_1d"),
    pytest.param("faithful", 6, id="faithful", marks=pytest.mark.slow),
    pytest.param("iris", 6, id="iris", marks=pytest.mark.slow),
    pytest.param("banknote", 6, id="banknote", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "n_init"), CASES)
def test_default_init_with_several_starts_reaches_mclust(name, n_init):
    X, reference = load(name)
    result = select_like_mclust(X, reference, n_init)
    assert cells_below_mclust(result, reference) == []
    selected = reference["selected"]
    assert result.best_params_ == {
        "covariance_type": selected["model"],
        "n_components": selected["G"],
    }


def test_start_plan_keeps_scikit_learns_first_start():
    assert start_plan("kmeans", 0) == ("kmeans", False)
    assert start_plan("kmeans", 1) == ("hierarchical", False)
    assert start_plan("kmeans", 2) == ("kmeans", True)
    assert start_plan("kmeans", 3) == ("kmeans", False)
    # A deterministic first start is not repeated.
    assert start_plan("hierarchical", 1) == ("kmeans", True)
    assert all(start_plan("hierarchical", i)[0] == "kmeans" for i in range(1, 6))


def test_a_failed_start_is_skipped_when_another_succeeds():
    """reg_covar=0 with 8 components on iris: scikit-learn's k-means start for
    this seed collapses a component (singular covariance) and the fit raises;
    with more starts the fit keeps the best start that worked and says how
    many failed, instead of raising."""
    X, _ = load("iris")
    kwargs = dict(n_components=8, reg_covar=0.0, random_state=0)
    with pytest.raises(ValueError, match="increase reg_covar"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(**kwargs).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        warnings.simplefilter("always", category=UserWarning)
        with pytest.warns(UserWarning, match="initializations failed and were skipped"):
            fitted = GaussianMixture(n_init=4, **kwargs).fit(X)
    assert np.all(np.isfinite(fitted.covariances_))
    assert np.isfinite(fitted.lower_bound_)


def test_all_starts_failing_raises_the_fit_error():
    X = np.repeat([[1.0, 2.0], [3.0, 4.0]], 10, axis=0)
    with pytest.raises(ValueError, match="increase reg_covar"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(2, reg_covar=0.0, n_init=3, random_state=0).fit(X)
