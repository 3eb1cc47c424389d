"""The fitting loop: warm starts, max_iter=0, n_init, convergence, fit_predict,
determinism, scikit-learn integration, and invariants checked with hypothesis."""

import logging
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import gaussmix
from gaussmix import EmptyComponentWarning, GaussianMixture

from _helpers import (
    COVARIANCE_TYPES,
    FITTED_ATTRIBUTES,
    INIT_METHODS,
    assert_params_close,
    make_data,
    user_init,
)

# Deterministic, no example database written into the working tree.
HYPOTHESIS = dict(deadline=None, database=None, derandomize=True)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


# -------------------------------------------------------------- warm start
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("library", ["gaussmix", "sklearn"])
def test_two_warm_fits_of_k_iterations_equal_one_fit_of_2k(covariance_type, k, library):
    """Same property for both libraries (tol=0: no early stop in either)."""
    Estimator = GaussianMixture if library == "gaussmix" else SkGaussianMixture
    X = make_data("overlapping", 2, seed=0)
    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=0, tol=0)
    warm = Estimator(warm_start=True, max_iter=k, **kwargs)
    quiet(warm.fit, X)
    quiet(warm.fit, X)
    once = quiet(Estimator(max_iter=2 * k, **kwargs).fit, X)
    # The warm fit resumes from the stored parameters, which are exactly the
    # loop's parameters: only the storage round trip (precisions from their
    # Cholesky factors) can round.
    assert_params_close(warm, once, 1e-12)
    assert warm.n_iter_ == k
    np.testing.assert_allclose(warm.lower_bounds_, once.lower_bounds_[k:], rtol=1e-12)
    assert warm.lower_bound_ == pytest.approx(once.lower_bound_, rel=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_warm_start_matches_scikit_learn_warm_start(covariance_type):
    X = make_data("overlapping", 2, seed=1)
    init = user_init(X, 3, covariance_type, seed=0)
    kwargs = dict(n_components=3, covariance_type=covariance_type, tol=1e-4, max_iter=2, warm_start=True, **init)
    ours, theirs = GaussianMixture(**kwargs), SkGaussianMixture(**kwargs)
    for _ in range(4):
        quiet(ours.fit, X)
        quiet(theirs.fit, X)
        assert_params_close(ours, theirs, 1e-8)
        assert ours.converged_ == theirs.converged_
        assert ours.n_iter_ == theirs.n_iter_
        np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-10)


def test_warm_start_ignores_n_init_and_init_after_the_first_fit():
    X = make_data("overlapping", 2, seed=2)
    gm = GaussianMixture(3, warm_start=True, n_init=3, max_iter=2, tol=0, random_state=0)
    quiet(gm.fit, X)
    means = gm.means_.copy()
    # Changing init_params no longer matters: the fit continues from means.
    gm.set_params(init_params="random", max_iter=0)
    gm.fit(X)
    np.testing.assert_array_equal(gm.means_, means)


def test_cold_refit_is_independent_of_the_previous_fit():
    X = make_data("overlapping", 2, seed=3)
    gm = GaussianMixture(3, random_state=0).fit(X)
    gm.fit(X * 2 + 1)
    fresh = GaussianMixture(3, random_state=0).fit(X * 2 + 1)
    for name in FITTED_ATTRIBUTES:
        np.testing.assert_array_equal(getattr(gm, name), getattr(fresh, name))


# ---------------------------------------------------------------- max_iter=0
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_max_iter_zero_keeps_the_initial_parameters(covariance_type):
    X = make_data("anisotropic", 2, seed=4)
    init = user_init(X, 3, covariance_type, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # no warning at max_iter=0
        gm = GaussianMixture(3, covariance_type=covariance_type, max_iter=0, **init).fit(X)
    np.testing.assert_array_equal(gm.weights_, init["weights_init"])
    np.testing.assert_array_equal(gm.means_, init["means_init"])
    # Precisions go through their Cholesky factor and back: rounding only.
    np.testing.assert_allclose(gm.precisions_, init["precisions_init"], rtol=1e-12)
    assert gm.n_iter_ == 0
    assert not gm.converged_
    assert gm.lower_bound_ == -np.inf
    assert gm.lower_bounds_ == []


@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_max_iter_zero_initialisation_is_usable(init_params):
    X = make_data("separated", 2, seed=5)
    gm = GaussianMixture(3, init_params=init_params, max_iter=0, random_state=0).fit(X)
    for name in FITTED_ATTRIBUTES:
        assert np.all(np.isfinite(getattr(gm, name)))
    assert gm.weights_.sum() == pytest.approx(1.0)
    # ... and EM continues from it when warm-started.
    gm.set_params(warm_start=True, max_iter=100)
    gm.fit(X)
    assert gm.converged_


# ------------------------------------------------------------------ n_init
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_n_init_keeps_the_best_lower_bound(covariance_type):
    """n_init runs draw their starts one after the other from one RandomState,
    each by its start plan; replaying the starts one by one from a shared
    RandomState and running EM from each finds the same best run."""
    from gaussmix import em
    from gaussmix.covariance import get_covariance_model

    X = make_data("overlapping", 2, seed=6)
    kwargs = dict(n_components=4, covariance_type=covariance_type, init_params="random", max_iter=20)
    best = quiet(GaussianMixture(n_init=5, random_state=np.random.RandomState(3), **kwargs).fit, X)
    shared = np.random.RandomState(3)
    replay = GaussianMixture(**kwargs)
    model = get_covariance_model(covariance_type)
    runs = []
    for start in range(5):
        params = replay._initial_params(model, X, None, shared, {}, start)
        runs.append(
            em.run_em(model, X, None, params, tol=1e-3, max_iter=20, reg_covar=1e-6)
        )
    bounds = [run.lower_bound for run in runs]
    assert len(set(np.round(bounds, 6))) > 1, "the runs should differ for this test to mean anything"
    winner = runs[int(np.argmax(bounds))]
    assert best.lower_bound_ == max(bounds)
    np.testing.assert_array_equal(best.means_, winner.params.means)
    assert best.n_iter_ == winner.n_iter
    assert best.lower_bounds_ == winner.lower_bounds


def test_n_init_is_never_worse_than_one_init():
    X = make_data("overlapping", 3, seed=7)
    one = quiet(GaussianMixture(4, random_state=0, init_params="random").fit, X)
    many = quiet(GaussianMixture(4, random_state=0, init_params="random", n_init=4).fit, X)
    assert many.lower_bound_ >= one.lower_bound_


# ------------------------------------------------------------- convergence
def test_convergence_warning_when_not_converged():
    X = make_data("overlapping", 2, seed=8)
    gm = GaussianMixture(3, max_iter=2, tol=0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge.*increase max_iter") as record:
        gm.fit(X)
    assert not gm.converged_
    assert gm.n_iter_ == 2
    assert gaussmix.ConvergenceWarning is ConvergenceWarning
    assert record[0].filename == __file__


def test_converged_means_the_last_change_is_below_tol():
    X = make_data("separated", 2, seed=9)
    for tol in (1e-1, 1e-3, 1e-8):
        gm = GaussianMixture(3, tol=tol, random_state=0, max_iter=1000).fit(X)
        assert gm.converged_
        assert len(gm.lower_bounds_) == gm.n_iter_
        assert abs(gm.lower_bounds_[-1] - gm.lower_bounds_[-2]) < tol
        changes = np.abs(np.diff(gm.lower_bounds_))
        assert np.all(changes[:-1] >= tol)
        assert gm.lower_bound_ == gm.lower_bounds_[-1]


def test_lower_bound_is_the_mean_log_likelihood_before_the_last_m_step():
    X = make_data("overlapping", 2, seed=10)
    init = user_init(X, 3, "full", seed=2)
    gm = quiet(GaussianMixture(3, max_iter=4, tol=0, **init).fit, X)
    before = quiet(GaussianMixture(3, max_iter=3, tol=0, **init).fit, X)
    assert gm.lower_bound_ == pytest.approx(before.score(X), rel=1e-12)


# ------------------------------------------------------------- fit_predict
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter, tol", [(1, 0.0), (2, 1e-3), (5, 1e-1), (100, 1e-3)])
def test_fit_predict_equals_fit_then_predict(covariance_type, max_iter, tol):
    X = make_data("overlapping", 2, seed=11)
    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=0, max_iter=max_iter, tol=tol)
    labels = quiet(GaussianMixture(**kwargs).fit_predict, X)
    gm = quiet(GaussianMixture(**kwargs).fit, X)
    np.testing.assert_array_equal(labels, gm.predict(X))
    np.testing.assert_array_equal(gm.predict(X), np.argmax(gm.predict_proba(X), axis=1))


# ------------------------------------------------------------- determinism
@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_same_random_state_gives_bit_identical_results(init_params):
    X = make_data("overlapping", 3, seed=12)
    kwargs = dict(n_components=3, init_params=init_params, n_init=2)
    a = quiet(GaussianMixture(random_state=5, **kwargs).fit, X)
    b = quiet(GaussianMixture(random_state=5, **kwargs).fit, X)
    for name in FITTED_ATTRIBUTES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.lower_bounds_ == b.lower_bounds_
    np.testing.assert_array_equal(a.sample(50)[0], b.sample(50)[0])
    c = quiet(GaussianMixture(random_state=6, **kwargs).fit, X)
    assert not np.array_equal(a.sample(50)[0], c.sample(50)[0])


def test_sample_is_reproducible_and_grouped_by_component():
    X = make_data("separated", 2, seed=13)
    gm = GaussianMixture(3, random_state=1).fit(X)
    draws, labels = gm.sample(300)
    again, labels_again = gm.sample(300)
    np.testing.assert_array_equal(draws, again)  # an int seed restarts each call
    np.testing.assert_array_equal(labels, labels_again)
    assert draws.shape == (300, 2) and labels.shape == (300,)
    assert np.all(np.diff(labels) >= 0)
    # Draws of a well separated model are classified to their component.
    np.testing.assert_array_equal(gm.predict(draws), labels)


# ------------------------------------------------- scikit-learn integration
def test_clone_copies_parameters_not_fit():
    X = make_data("separated", 2, seed=14)
    gm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    copy = clone(gm)
    assert copy.get_params() == gm.get_params()
    assert not hasattr(copy, "means_")
    copy.fit(X)
    np.testing.assert_array_equal(copy.means_, gm.means_)


def test_pipeline_with_a_scaler():
    X = make_data("anisotropic", 3, seed=15)
    pipe = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=0)).fit(X)
    scaled = StandardScaler().fit_transform(X)
    alone = GaussianMixture(3, random_state=0).fit(scaled)
    np.testing.assert_array_equal(pipe.predict(X), alone.predict(scaled))
    np.testing.assert_allclose(pipe.score_samples(X), alone.score_samples(scaled), rtol=1e-12)
    assert pipe.score(X) == pytest.approx(alone.score(scaled), rel=1e-12)


def test_grid_search_over_n_components_picks_the_true_number():
    rng = np.random.RandomState(16)
    X = np.vstack([rng.standard_normal((150, 2)) + c for c in ([0, 0], [10, 0], [0, 10])])
    X = X[rng.permutation(len(X))]  # unshuffled K-fold would hold out whole clusters
    search = GridSearchCV(
        GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=3
    ).fit(X)
    assert search.best_params_ == {"n_components": 3}
    assert search.best_estimator_.n_components == 3
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert scores[2] > scores[1] > scores[0]


def test_get_set_params_and_repr():
    gm = GaussianMixture(2, covariance_type="tied")
    assert gm.get_params()["covariance_type"] == "tied"
    gm.set_params(n_components=4, reg_covar=1e-3)
    assert gm.n_components == 4 and gm.reg_covar == 1e-3
    assert "covariance_type='tied'" in repr(gm)


def test_verbose_messages_go_to_the_gaussmix_logger(caplog):
    X = make_data("separated", 2, seed=17)
    with caplog.at_level(logging.INFO, logger="gaussmix"):
        GaussianMixture(3, verbose=2, verbose_interval=1, random_state=0).fit(X)
    messages = [r.getMessage() for r in caplog.records if r.name == "gaussmix"]
    assert messages[0] == "Initialization 0"
    assert any(m.startswith("  Iteration 1\t") and "ll change" in m for m in messages)
    assert "converged" in messages[-1] and "lower bound" in messages[-1]


def run_python(code: str) -> subprocess.CompletedProcess:
    """``code`` run in a fresh interpreter, its output captured (pytest configures logging)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )


def test_verbose_prints_to_stdout_when_logging_is_not_configured():
    """pytest configures logging itself, so this runs in a fresh interpreter."""
    code = (
        "import numpy as np; from gaussmix import GaussianMixture;"
        "X = np.random.RandomState(0).standard_normal((60, 2));"
        "GaussianMixture(2, verbose=1, verbose_interval=1, random_state=0).fit(X)"
    )
    result = run_python(code)
    lines = result.stdout.splitlines()
    assert lines[0] == "Initialization 0"
    assert lines[1] == "  Iteration 1"
    assert lines[-1] == "Initialization converged."


def test_verbose_prints_once_when_logging_is_configured_below_info():
    """``logging.basicConfig()`` adds a handler but keeps WARNING: still shown, once."""
    code = (
        "import logging; logging.basicConfig();"
        "import numpy as np; from gaussmix import GaussianMixture;"
        "X = np.random.RandomState(0).standard_normal((60, 2));"
        "GaussianMixture(2, verbose=1, random_state=0).fit(X);"
        "logging.getLogger('gaussmix').warning('after')"
    )
    result = run_python(code)
    assert result.stdout.splitlines()[0] == "Initialization 0"
    assert result.stdout.splitlines()[-1] == "Initialization converged."
    # Not repeated by the root handler, which still works after the fit.
    assert result.stderr.strip() == "WARNING:gaussmix:after"


def test_verbose_fits_in_threads_each_print_every_message():
    """A fit that ended removed the stdout handler that a later one had joined.

    The fits' verbose contexts, interleaved as threads interleave them: the
    first begins, the second begins, the first ends, the second reports.
    """
    code = (
        "from gaussmix._reporting import logger, verbose_logging;"
        "first, second = verbose_logging(1), verbose_logging(1);"
        "first.__enter__(); second.__enter__(); logger.info('both');"
        "first.__exit__(None, None, None); logger.info('second alone');"
        "second.__exit__(None, None, None); logger.info('none')"
    )
    result = run_python(code)
    assert result.stdout.splitlines() == ["both", "second alone"]


def test_verbose_fits_in_threads_print_all_their_messages():
    code = (
        "import threading, numpy as np; from gaussmix import GaussianMixture;"
        "X = np.random.RandomState(0).standard_normal((3000, 2));"
        "fit = lambda: GaussianMixture(3, verbose=2, verbose_interval=1, tol=0,"
        " max_iter=30, random_state=0).fit(X);"
        "threads = [threading.Thread(target=fit) for _ in range(2)];"
        "[t.start() for t in threads]; [t.join() for t in threads]"
    )
    result = run_python(code)
    lines = result.stdout.splitlines()
    # Per fit: the start, 30 iterations, the end.
    assert lines.count("Initialization 0") == 2
    assert sum(line.startswith("  Iteration ") for line in lines) == 60
    assert sum(line.startswith("Initialization did not converge.") for line in lines) == 2


def test_silent_by_default(capsys):
    X = make_data("separated", 2, seed=18)
    GaussianMixture(3, random_state=0).fit(X).predict(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ------------------------------------------------------ hypothesis invariants
@st.composite
def mixture_problem(draw, max_components=3):
    """Random but non-degenerate data: 20-80 rows per component, continuous."""
    seed = draw(st.integers(0, 2**16))
    n_features = draw(st.integers(1, 3))
    n_components = draw(st.integers(1, max_components))
    covariance_type = draw(st.sampled_from(COVARIANCE_TYPES))
    separation = draw(st.sampled_from([0.5, 2.0, 6.0]))
    rng = np.random.RandomState(seed)
    blocks = []
    for k in range(n_components):
        n = rng.randint(20, 81)
        scale = rng.uniform(0.5, 2.0, size=n_features)
        blocks.append(rng.standard_normal((n, n_features)) * scale + separation * k)
    X = np.vstack(blocks)
    return X, n_components, covariance_type, seed


@settings(max_examples=20, **HYPOTHESIS)
@given(mixture_problem(), st.sampled_from(INIT_METHODS))
def test_responsibilities_sum_to_one(problem, init_params):
    X, n_components, covariance_type, seed = problem
    gm = GaussianMixture(
        n_components, covariance_type=covariance_type, init_params=init_params, random_state=seed, max_iter=10
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", EmptyComponentWarning)
        gm.fit(X)
    rng = np.random.RandomState(seed)
    X_new = np.vstack([X, rng.standard_normal((10, X.shape[1])) * 50])
    proba = gm.predict_proba(X_new)
    assert proba.shape == (len(X_new), n_components)
    assert np.all(proba >= 0) and np.all(proba <= 1)
    # A sum of K <= 3 rounded terms: a few ulps.
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@settings(max_examples=25, **HYPOTHESIS)
@given(mixture_problem(), st.sampled_from(["kmeans", "random"]))
def test_lower_bounds_never_decrease(problem, init_params):
    """EM never lowers the likelihood (reg_covar=0 so the M-step is exact).

    Up to rounding: the mean log-likelihood is a sum of n rounded terms, so
    an increase of less than ~1e-10 relative may come out as a decrease.
    Runs where a component had to be re-seeded are excluded (re-seeding is
    not an EM step), and none is expected on these data.
    """
    X, n_components, covariance_type, seed = problem
    gm = GaussianMixture(
        n_components,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=seed,
        reg_covar=0.0,
        tol=0,
        max_iter=30,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("error", EmptyComponentWarning)
        gm.fit(X)
    bounds = np.array(gm.lower_bounds_)
    slack = 1e-10 * np.maximum(np.abs(bounds[:-1]), 1.0)
    assert np.all(np.diff(bounds) >= -slack), np.diff(bounds).min()


@settings(max_examples=20, **HYPOTHESIS)
@given(mixture_problem(), st.integers(0, 3).map(lambda e: 10.0**e), st.integers(0, 2**16))
def test_translation_equivariance(problem, magnitude, shift_seed):
    X, n_components, covariance_type, seed = problem
    c = np.random.RandomState(shift_seed).uniform(-1, 1, size=X.shape[1]) * magnitude
    init = user_init(X, n_components, covariance_type, seed=seed)
    kwargs = dict(n_components=n_components, covariance_type=covariance_type, max_iter=10, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        base = GaussianMixture(**kwargs, **init).fit(X)
        init["means_init"] = init["means_init"] + c
        moved = GaussianMixture(**kwargs, **init).fit(X + c)
    # X + c is rounded at eps * |c| <= 2e-13 (data scale ~1..20); ten EM steps
    # on these data amplify input perturbations by at most a few hundred.
    atol = 1e-9 * (1 + magnitude)
    np.testing.assert_allclose(moved.means_ - c, base.means_, rtol=0, atol=atol)
    np.testing.assert_allclose(moved.covariances_, base.covariances_, rtol=1e-7, atol=atol)
    np.testing.assert_allclose(moved.weights_, base.weights_, rtol=1e-7, atol=atol)
    np.testing.assert_allclose(moved.lower_bounds_, base.lower_bounds_, rtol=1e-7)


@settings(max_examples=15, **HYPOTHESIS)
@given(mixture_problem(), st.integers(0, 2**16))
def test_row_permutation_invariance(problem, perm_seed):
    X, n_components, covariance_type, seed = problem
    perm = np.random.RandomState(perm_seed).permutation(len(X))
    init = user_init(X, n_components, covariance_type, seed=seed)
    kwargs = dict(n_components=n_components, covariance_type=covariance_type, max_iter=10, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        base = GaussianMixture(**kwargs, **init).fit(X)
        shuffled = GaussianMixture(**kwargs, **init).fit(X[perm])
    # Only the summation order changes: ulps per step, ten steps.
    assert_params_close(shuffled, base, 1e-9)
    np.testing.assert_array_equal(shuffled.predict(X[perm]), base.predict(X)[perm])
