"""Benchmark gaussmix against scikit-learn's GaussianMixture, side by side.

Every cell of the grid (rows N, features D, components K, covariance type,
separation, dtype, BLAS threads) is measured for both libraries in the same
process, alternating scikit-learn and gaussmix (sk, gm, sk, gm, ...) and
keeping the *minimum* time over the repeats, the least disturbed estimate on
a shared machine:

(a) time per EM iteration from identical initial parameters: scikit-learn is
    fitted once with ``max_iter=1`` on the first 10,000 rows (float64) to get
    weights, means and precisions; both libraries then fit with those as
    ``weights_init/means_init/precisions_init``, ``tol=0`` and ``max_iter=10``
    (5 at N >= 1e6), and the fit time is divided by ``n_iter_``.  The time
    includes what a fit does besides iterating (validation, the final E-step
    for the labels), the same for both.  The final ``lower_bound_`` of each
    and their relative difference are recorded.
(b) time of the whole default fit,
    ``GaussianMixture(K, covariance_type=cov, random_state=seed).fit(X)``
    (k-means initialization included), with ``n_iter_`` and ``lower_bound_``.
(c) peak memory above the input data, in a separate untimed run:
    ``tracemalloc`` is started after X exists (numpy reports its allocations
    to tracemalloc), the default fit runs with ``max_iter=3`` (the per
    iteration temporaries are the same at every iteration, so the peak is
    reached by then), and the peak is read before stopping.
(d) the ratios scikit-learn/gaussmix of (a) and (b), gaussmix/scikit-learn
    of (c): above 1 means gaussmix is faster, below 1 that it uses less memory.

Data: a seeded mixture per (N, D, K, separation).  Weights are Dirichlet(5);
covariances are ``Q diag(lambda) Q^T`` with ``Q`` a random rotation and the
eigenvalues ``lambda`` log-uniform in [1/4, 4] (anisotropic, standard
deviations 0.5 to 2, geometric mean 1); means are normal with a scale such
that the root-mean-square distance between two means is ``c`` standard
deviations: ``c = 10`` for "separated" (clear separation) and ``c = 1.5`` for
"overlapping" (heavy overlap).  Rows are shuffled.  float32 data is the
float64 data cast, so both dtypes fit the same points.

"BLAS 1" runs both libraries under ``threadpool_limits(1, "blas")``; "BLAS
default" leaves BLAS alone.  gaussmix limits BLAS to one thread inside its
own thread pool in both cases, and runs EM on ``GAUSSMIX_NUM_THREADS``
threads (all cores by default).

Beyond the grid: gaussmix float64 vs float32 (full covariance, D >= 16), the
default fit over several seeds, and the fraction of the one-thread dgemm
peak that a gaussmix full-covariance iteration reaches at D=64, K=16.
Both libraries are fitted once, untimed, before the grid (imports, thread
pools).  ConvergenceWarnings are silenced but counted.  ``--quick`` runs
(N, D, K) in {(1e4, 2, 3), (1e5, 2, 3), (1e4, 16, 16)}, overlapping, float64
(and float32 for 'full'), BLAS 1, one repeat.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
import warnings
from collections import Counter
from itertools import product
from pathlib import Path

import numpy as np
import scipy
import sklearn
import threadpoolctl
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

try:
    import gaussmix
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import gaussmix
from gaussmix import GaussianMixture as GmGaussianMixture
from gaussmix._parallel import get_num_threads

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
SEPARATIONS = {"separated": 10.0, "overlapping": 1.5}
SEP_SHORT = {"separated": "sep", "overlapping": "ovl"}
FULL_GRID = {
    "n": (10_000, 100_000, 1_000_000),
    "dk": ((2, 3), (16, 16), (64, 16), (16, 64)),
    "cov": COVARIANCE_TYPES,
    "sep": ("separated", "overlapping"),
    "dtype": ("float64", "float32"),
    "blas": ("1", "default"),
}
# --quick: under 5 minutes on 2 busy cores.  (N=1e5, D=16, K=16) is left out:
# its default fits alone take minutes there.  float32 only for 'full'.
QUICK_GRID = {
    "n": (10_000, 100_000),
    "dk": ((2, 3), (16, 16)),
    "cov": COVARIANCE_TYPES,
    "sep": ("overlapping",),
    "dtype": ("float64", "float32"),
    "blas": ("1",),
}
QUICK_SHAPES = ((10_000, 2, 3), (100_000, 2, 3), (10_000, 16, 16))
QUICK_FLOAT32_COVS = ("full",)
INIT_ROWS = 10_000  # rows of the max_iter=1 fit that gives the shared initial parameters
MEMORY_MAX_ITER = 3
LL_TIE_RTOL = 1e-6  # final log-likelihoods closer than this count as equal
SEEDS_CELL = {"n": 100_000, "d": 16, "k": 16, "sep": "overlapping", "covs": ("full", "diag")}
SEEDS_CELL_QUICK = {**SEEDS_CELL, "n": 10_000}
GEMM_SIZE = 2000
LIBRARIES = {"sk": SkGaussianMixture, "gm": GmGaussianMixture}


# --------------------------------------------------------------------- data
def random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    """A random orthogonal matrix (Haar distributed), shape (d, d)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def make_mixture(n: int, d: int, k: int, separation: float, seed: int) -> np.ndarray:
    """Draw ``n`` shuffled rows of a random anisotropic Gaussian mixture.

    Parameters
    ----------
    n, d, k : int
        Rows, features and components.
    separation : float
        Root-mean-square distance between two means, in standard deviations
        (the covariance eigenvalues have geometric mean 1).
    seed : int
        Seeds a ``numpy.random.Generator``.

    Returns
    -------
    X : ndarray of shape (n, d), float64
    """
    rng = np.random.default_rng([seed, n, d, k, int(separation * 10)])
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(scale=separation / math.sqrt(2 * d), size=(k, d))
    counts = rng.multinomial(n, weights)
    blocks = []
    for mean, count in zip(means, counts):
        scales = np.sqrt(np.exp(rng.uniform(math.log(0.25), math.log(4.0), d)))
        factor = random_rotation(rng, d) * scales  # Q diag(sqrt(lambda))
        blocks.append(mean + rng.standard_normal((count, d)) @ factor.T)
    X = np.concatenate(blocks)
    return X[rng.permutation(n)]


# ------------------------------------------------------------ measurement
class WarningTally:
    """Counts the warnings caught during fits, by phase, library and category."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.examples: dict[str, str] = {}

    @contextlib.contextmanager
    def catching(self, phase: str, library: str):
        """Silence warnings inside the block and count them."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        for warning in caught:
            category = warning.category.__name__
            if issubclass(warning.category, ConvergenceWarning):
                category = "ConvergenceWarning"
            self.counts[(phase, library, category)] += 1
            self.examples.setdefault(category, str(warning.message)[:200])

    def as_json(self) -> list[dict]:
        return [
            {"phase": phase, "library": library, "category": category, "count": count}
            for (phase, library, category), count in sorted(self.counts.items())
        ]


def blas_context(setting: str):
    """``threadpool_limits(1, "blas")`` for "1", nothing for "default"."""
    if setting == "1":
        return threadpool_limits(limits=1, user_api="blas")
    return contextlib.nullcontext()


def timed_fit(library: str, kwargs: dict, X: np.ndarray, tally: WarningTally, phase: str):
    """Fit a fresh estimator of ``library``; return (seconds, fitted estimator)."""
    estimator = LIBRARIES[library](**kwargs)
    gc.collect()
    with tally.catching(phase, library):
        start = time.perf_counter()
        estimator.fit(X)
        seconds = time.perf_counter() - start
    return seconds, estimator


def alternate(kwargs: dict, X: np.ndarray, repeats: int, tally: WarningTally, phase: str):
    """Fit sk, gm, sk, gm, ... ``repeats`` times each.

    Returns
    -------
    result : dict
        Per library: all times, the minimum, and ``n_iter_``,
        ``lower_bound_`` and ``converged_`` of the last fit.
    """
    times: dict[str, list[float]] = {"sk": [], "gm": []}
    fitted = {}
    for _ in range(repeats):
        for library in ("sk", "gm"):
            seconds, fitted[library] = timed_fit(library, kwargs, X, tally, phase)
            times[library].append(seconds)
    return {
        library: {
            "times_s": times[library],
            "time_s": min(times[library]),
            "n_iter": int(fitted[library].n_iter_),
            "lower_bound": float(fitted[library].lower_bound_),
            "converged": bool(fitted[library].converged_),
        }
        for library in ("sk", "gm")
    }


def alternating_times(calls: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each call, run in turn ``repeats`` times, the order reversed every other time."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for repeat in range(repeats):
        order = list(calls) if repeat % 2 == 0 else list(reversed(calls))
        for name in order:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def peak_memory(library: str, kwargs: dict, X: np.ndarray, tally: WarningTally) -> int:
    """Peak bytes allocated during one fit, X excluded (made before tracing)."""
    estimator = LIBRARIES[library](**kwargs)
    gc.collect()
    tracemalloc.start()
    try:
        with tally.catching("memory", library):
            estimator.fit(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak


def initial_parameters(X64: np.ndarray, k: int, cov: str, seed: int, tally) -> dict:
    """Initial weights/means/precisions from a ``max_iter=1`` scikit-learn fit."""
    sub = X64[:INIT_ROWS]
    kwargs = {"n_components": k, "covariance_type": cov, "max_iter": 1, "random_state": seed}
    _, fitted = timed_fit("sk", kwargs, sub, tally, "init")
    return {
        "weights_init": fitted.weights_,
        "means_init": fitted.means_,
        "precisions_init": fitted.precisions_,
    }


def iterations_for(n: int, override: int | None) -> int:
    """EM iterations of the fixed-initialization runs: 10, or 5 at N >= 1e6."""
    if override:
        return override
    return 10 if n < 1_000_000 else 5


def rel_diff(a: float, b: float) -> float:
    """``|a - b| / max(|a|, |b|)`` (0 when both are 0, None when one is missing)."""
    if a is None or b is None:
        return None
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def higher(a: float, b: float) -> bool:
    """``a > b`` by more than ``LL_TIE_RTOL`` relative (closer counts as a tie)."""
    return a > b and rel_diff(a, b) > LL_TIE_RTOL


def ratio(numerator, denominator):
    """``numerator / denominator``, None when either is missing or 0."""
    if not numerator or not denominator:
        return None
    return numerator / denominator


# -------------------------------------------------------------------- cells
def measure_cell(cell: dict, X: np.ndarray, init: dict, options, tally) -> dict:
    """Measure (a), (b), (c) and (d) for one cell; return a flat result row."""
    base = {"n_components": cell["k"], "covariance_type": cell["cov"]}
    n_iter = iterations_for(cell["n"], options.iters)
    with blas_context(cell["blas"]):
        fixed = alternate(
            {**base, **init, "tol": 0.0, "max_iter": n_iter}, X, options.repeats, tally, "fixed"
        )
        memory = {"sk": None, "gm": None}
        if options.fit_max_n is not None and cell["n"] > options.fit_max_n:
            return summarise_cell(cell, fixed, None, memory)
        default = alternate(
            {**base, "random_state": options.seed}, X, options.repeats, tally, "default"
        )
        if not options.no_memory:
            mem_kwargs = {**base, "random_state": options.seed, "max_iter": MEMORY_MAX_ITER}
            for library in ("sk", "gm"):
                memory[library] = peak_memory(library, mem_kwargs, X, tally)
    return summarise_cell(cell, fixed, default, memory)


_NO_FIT = {"time_s": None, "n_iter": None, "converged": None, "lower_bound": None}


def summarise_cell(cell: dict, fixed: dict, default: dict | None, memory: dict) -> dict:
    """Flatten the measurements of one cell into a row with the ratios.

    ``default`` is None where the whole default fit was skipped (``--fit-max-n``).
    """
    if default is None:
        default = {"sk": _NO_FIT, "gm": _NO_FIT}
    per_iter = {lib: fixed[lib]["time_s"] / max(fixed[lib]["n_iter"], 1) for lib in fixed}
    mem_mb = {lib: None if memory[lib] is None else memory[lib] / 2**20 for lib in memory}
    return {
        **cell,
        "sk_s_per_iter": per_iter["sk"],
        "gm_s_per_iter": per_iter["gm"],
        "iter_ratio_sk_over_gm": ratio(per_iter["sk"], per_iter["gm"]),
        "sk_fit_s": default["sk"]["time_s"],
        "gm_fit_s": default["gm"]["time_s"],
        "fit_ratio_sk_over_gm": ratio(default["sk"]["time_s"], default["gm"]["time_s"]),
        "sk_n_iter": default["sk"]["n_iter"],
        "gm_n_iter": default["gm"]["n_iter"],
        "sk_converged": default["sk"]["converged"],
        "gm_converged": default["gm"]["converged"],
        "sk_lower_bound": default["sk"]["lower_bound"],
        "gm_lower_bound": default["gm"]["lower_bound"],
        "fit_ll_rel_diff": rel_diff(default["sk"]["lower_bound"], default["gm"]["lower_bound"]),
        "fixed_sk_lower_bound": fixed["sk"]["lower_bound"],
        "fixed_gm_lower_bound": fixed["gm"]["lower_bound"],
        "fixed_ll_rel_diff": rel_diff(fixed["sk"]["lower_bound"], fixed["gm"]["lower_bound"]),
        "sk_mem_mb": mem_mb["sk"],
        "gm_mem_mb": mem_mb["gm"],
        "mem_ratio_gm_over_sk": ratio(mem_mb["gm"], mem_mb["sk"]),
        "fixed_runs": fixed,
        "default_runs": default,
    }


def iterate_cells(grid: dict, shapes, float32_covs):
    """Yield (shape, sep) groups of cells that share one data set."""
    for (n, d, k), sep in product(shapes, grid["sep"]):
        cells = []
        for cov, dtype, blas in product(grid["cov"], grid["dtype"], grid["blas"]):
            if dtype == "float32" and float32_covs and cov not in float32_covs:
                continue
            cells.append({"n": n, "d": d, "k": k, "cov": cov, "sep": sep,
                          "dtype": dtype, "blas": blas})
        if cells:
            yield (n, d, k, sep), cells


def warm_up(tally: WarningTally) -> None:
    """Fit both libraries once per covariance type and dtype on small data (imports, thread pools).

    First loads the compiled k-means where numba is installed (a one-off
    import of about 0.5 s per process, like scikit-learn's own import), so
    that the fits then load the compiled kernels they use for each dtype
    (tens of milliseconds each, once per process) outside the grid.
    """
    X = make_mixture(10_000, 4, 3, SEPARATIONS["overlapping"], 1)
    from gaussmix import kmeans

    if kmeans.compiled_kmeans_available():
        kmeans.kmeans_labels(X, 3, np.random.RandomState(0), engine="compiled")
    for cov, dtype, library in product(COVARIANCE_TYPES, ("float64", "float32"), LIBRARIES):
        kwargs = {"n_components": 3, "covariance_type": cov, "random_state": 0}
        timed_fit(library, kwargs, X.astype(dtype), tally, "warm-up")


def run_grid(grid: dict, shapes, float32_covs, options, tally, checkpoint) -> list[dict]:
    """Measure every cell, printing each row as soon as it is done.

    ``checkpoint(rows)`` is called after every cell, so that a long run that
    is stopped keeps what it measured.
    """
    rows = []
    warm_up(tally)
    print_table_header()
    for (n, d, k, sep), cells in iterate_cells(grid, shapes, float32_covs):
        X64 = make_mixture(n, d, k, SEPARATIONS[sep], options.seed)
        data = {"float64": X64}
        if any(cell["dtype"] == "float32" for cell in cells):
            data["float32"] = X64.astype(np.float32)
        inits = {}
        for cell in cells:
            if cell["cov"] not in inits:
                inits[cell["cov"]] = initial_parameters(X64, k, cell["cov"], options.seed, tally)
            row = measure_cell(cell, data[cell["dtype"]], inits[cell["cov"]], options, tally)
            rows.append(row)
            print_table_row(row)
            checkpoint(rows)
        del X64, data
    return rows


# ------------------------------------------------------------------ extras
def float32_comparison(rows: list[dict]) -> dict:
    """gaussmix float64 vs float32 time per iteration and LL, full cov, D >= 16."""
    def key(row):
        return (row["n"], row["d"], row["k"], row["cov"], row["sep"], row["blas"])

    f32 = {key(r): r for r in rows if r["dtype"] == "float32"}
    pairs = []
    for row in rows:
        if row["dtype"] != "float64" or row["cov"] != "full" or row["d"] < 16:
            continue
        other = f32.get(key(row))
        if other is None:
            continue
        pairs.append({
            "n": row["n"], "d": row["d"], "k": row["k"], "sep": row["sep"], "blas": row["blas"],
            "gm_f64_s_per_iter": row["gm_s_per_iter"],
            "gm_f32_s_per_iter": other["gm_s_per_iter"],
            "ratio_f64_over_f32": ratio(row["gm_s_per_iter"], other["gm_s_per_iter"]),
            "gm_f64_lower_bound": row["fixed_gm_lower_bound"],
            "gm_f32_lower_bound": other["fixed_gm_lower_bound"],
            "ll_rel_diff": rel_diff(row["fixed_gm_lower_bound"], other["fixed_gm_lower_bound"]),
        })
    return {"pairs": pairs, "median_ratio": median([p["ratio_f64_over_f32"] for p in pairs])}


def seed_comparison(spec: dict, n_seeds: int, blas: str, options, tally) -> list[dict]:
    """Whole default fit over seeds 0..n_seeds-1, both libraries, alternating."""
    X = make_mixture(spec["n"], spec["d"], spec["k"], SEPARATIONS[spec["sep"]], options.seed)
    X = X.astype(spec["dtype"])
    results = []
    for cov in spec["covs"]:
        runs = []
        with blas_context(blas):
            for seed in range(n_seeds):
                kwargs = {"n_components": spec["k"], "covariance_type": cov, "random_state": seed}
                run = alternate(kwargs, X, 1, tally, "seeds")
                runs.append({"seed": seed, **{f"{lib}_{key}": run[lib][key]
                                              for lib in run for key in ("time_s", "n_iter",
                                                                         "lower_bound")}})
                if options.seeds_init:
                    # gaussmix with another start, against the same default sk fit.
                    seconds, other = timed_fit(
                        "gm", {**kwargs, "init_params": options.seeds_init}, X, tally, "seeds"
                    )
                    runs[-1].update(init_time_s=seconds, init_n_iter=int(other.n_iter_),
                                    init_lower_bound=float(other.lower_bound_))
        results.append(summarise_seeds(spec, cov, blas, runs))
        if options.seeds_init:
            results[-1].update(init_params=options.seeds_init, **summarise_other_init(runs))
    return results


def _mean(runs: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in runs)


def _wins(runs: list[dict], winner: str, loser: str) -> int:
    """Seeds where ``winner``'s final lower bound beats ``loser``'s (ties excluded)."""
    return sum(higher(r[f"{winner}_lower_bound"], r[f"{loser}_lower_bound"]) for r in runs)


def _time_ratio(runs: list[dict], fit: str) -> float:
    """Mean over seeds of scikit-learn's time over ``fit``'s."""
    return statistics.fmean(r["sk_time_s"] / r[f"{fit}_time_s"] for r in runs)


def summarise_other_init(runs: list[dict]) -> dict:
    """gaussmix from ``--seeds-init`` against scikit-learn's default fit."""
    return {
        "init_mean_lower_bound": _mean(runs, "init_lower_bound"),
        "init_mean_n_iter": _mean(runs, "init_n_iter"),
        "init_mean_time_ratio_sk_over_gm": _time_ratio(runs, "init"),
        "init_higher_ll": _wins(runs, "init", "sk"),
        "init_lower_ll": _wins(runs, "sk", "init"),
    }


def summarise_seeds(spec: dict, cov: str, blas: str, runs: list[dict]) -> dict:
    """Means over seeds of the lower bounds, iterations and time ratio."""
    return {
        "n": spec["n"], "d": spec["d"], "k": spec["k"], "sep": spec["sep"], "cov": cov,
        "blas": blas, "dtype": spec.get("dtype", "float64"), "seeds": len(runs), "runs": runs,
        "sk_mean_lower_bound": _mean(runs, "sk_lower_bound"),
        "gm_mean_lower_bound": _mean(runs, "gm_lower_bound"),
        "sk_mean_n_iter": _mean(runs, "sk_n_iter"),
        "gm_mean_n_iter": _mean(runs, "gm_n_iter"),
        "mean_time_ratio_sk_over_gm": _time_ratio(runs, "gm"),
        "gm_higher_ll": _wins(runs, "gm", "sk"),
        "sk_higher_ll": _wins(runs, "sk", "gm"),
    }


def dgemm_peak(size: int = GEMM_SIZE, repeats: int = 3) -> float:
    """Best-of-``repeats`` float64 GEMM speed on one BLAS thread, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size)), rng.standard_normal((size, size))
    with threadpool_limits(limits=1, user_api="blas"):
        a @ b  # warm up
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def gemm_fraction(rows: list[dict], peak: float, quick: bool, options, tally) -> dict:
    """Fraction of threads x dgemm peak reached by a full-covariance gaussmix iteration.

    Uses the grid's float64 full rows at D=64, K=16; without any, runs a
    dedicated gaussmix-only fixed-initialization fit (N=1e4 in --quick, else 1e5).
    """
    threads = get_num_threads()
    picked = [r for r in rows if r["cov"] == "full" and r["d"] == 64 and r["k"] == 16
              and r["dtype"] == "float64"]
    source = "grid"
    if not picked:
        picked = [dedicated_gemm_run(10_000 if quick else 100_000, options, tally)]
        source = "dedicated run (overlapping, float64, BLAS 1)"
    entries = []
    for row in picked:
        flops = 4 * row["n"] * row["k"] * row["d"] ** 2
        achieved = flops / row["gm_s_per_iter"] / 1e9
        entries.append({
            "n": row["n"], "d": row["d"], "k": row["k"], "sep": row.get("sep"),
            "blas": row.get("blas"), "gm_s_per_iter": row["gm_s_per_iter"],
            "flops_per_iter": flops, "achieved_gflops": achieved,
            "fraction": achieved / (peak * threads),
        })
    return {
        "formula": "fraction = (4*N*K*D^2 / gm_s_per_iter / 1e9) / (dgemm_peak_1thread * threads)",
        "dgemm_peak_gflops_1thread": peak, "gemm_size": GEMM_SIZE, "threads": threads,
        "source": source, "entries": entries,
    }


def dedicated_gemm_run(n: int, options, tally) -> dict:
    """gaussmix alone, full covariance, D=64, K=16: seconds per fixed-init iteration."""
    d, k = 64, 16
    X = make_mixture(n, d, k, SEPARATIONS["overlapping"], options.seed)
    init = initial_parameters(X, k, "full", options.seed, tally)
    n_iter = iterations_for(n, options.iters)
    kwargs = {"n_components": k, "covariance_type": "full", **init, "tol": 0.0,
              "max_iter": n_iter}
    with blas_context("1"):
        best = min(timed_fit("gm", kwargs, X, tally, "gemm")[0] for _ in range(options.repeats))
    return {"n": n, "d": d, "k": k, "sep": "overlapping", "blas": "1",
            "gm_s_per_iter": best / n_iter}


# ----------------------------------------------------------------- summary
def median(values):
    """Median of the values that are not None (None if there are none)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio_medians(rows: list[dict]) -> dict:
    """Medians of the three ratios, per covariance type and overall."""
    groups = {cov: [r for r in rows if r["cov"] == cov] for cov in COVARIANCE_TYPES}
    groups["all"] = rows
    # The per-iteration targets are stated for float64: the same groups without float32.
    float64 = [r for r in rows if r["dtype"] == "float64"]
    if len(float64) < len(rows):
        groups.update({f"{cov} f64": [r for r in float64 if r["cov"] == cov]
                       for cov in COVARIANCE_TYPES})
        groups["all f64"] = float64
    return {
        name: {
            "cells": len(group),
            "iter_ratio_sk_over_gm": median([r["iter_ratio_sk_over_gm"] for r in group]),
            "fit_ratio_sk_over_gm": median([r["fit_ratio_sk_over_gm"] for r in group]),
            "mem_ratio_gm_over_sk": median([r["mem_ratio_gm_over_sk"] for r in group]),
        }
        for name, group in groups.items()
        if group
    }


# ---------------------------------------------------------------- printing
COLUMNS = (
    ("N", 8), ("D", 3), ("K", 3), ("cov", 9), ("sep", 4), ("dtype", 5), ("blas", 4),
    ("sk s/it", 8), ("gm s/it", 8), ("ratio", 6), ("sk fit s", 8), ("gm fit s", 8),
    ("ratio", 6), ("iter sk/gm", 10), ("LL sk", 10), ("LL gm", 10), ("rel diff", 8),
    ("fixed rel", 9), ("mem sk MB", 9), ("mem gm MB", 9), ("ratio", 6),
)


def fmt_n(n: int) -> str:
    """Rows as '1e4', '2e3', or plainly when not a round power-of-ten multiple."""
    mantissa, exponent = f"{n:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if float(f"{n:.0e}") == n else str(n)


def fmt(value, spec: str) -> str:
    """Format a number, or '-' for None."""
    return "-" if value is None else format(value, spec)


def print_line(cells) -> None:
    print("  ".join(str(c).rjust(w) for c, (_, w) in zip(cells, COLUMNS)), flush=True)


def print_table_header() -> None:
    print_line([name for name, _ in COLUMNS])
    print_line(["-" * width for _, width in COLUMNS])


def iterations_cell(row: dict) -> str:
    """'sk/gm' iterations, '*' marking a fit that did not converge."""
    def one(lib):
        if row[f"{lib}_n_iter"] is None:
            return "-"
        return f"{row[f'{lib}_n_iter']}{'' if row[f'{lib}_converged'] else '*'}"
    return f"{one('sk')}/{one('gm')}"


def print_table_row(row: dict) -> None:
    print_line([
        fmt_n(row["n"]), row["d"], row["k"], row["cov"], SEP_SHORT[row["sep"]],
        "f64" if row["dtype"] == "float64" else "f32", "1" if row["blas"] == "1" else "dflt",
        fmt(row["sk_s_per_iter"], ".4f"), fmt(row["gm_s_per_iter"], ".4f"),
        fmt(row["iter_ratio_sk_over_gm"], ".2f"),
        fmt(row["sk_fit_s"], ".3f"), fmt(row["gm_fit_s"], ".3f"),
        fmt(row["fit_ratio_sk_over_gm"], ".2f"), iterations_cell(row),
        fmt(row["sk_lower_bound"], ".5f"), fmt(row["gm_lower_bound"], ".5f"),
        fmt(row["fit_ll_rel_diff"], ".1e"), fmt(row["fixed_ll_rel_diff"], ".1e"),
        fmt(row["sk_mem_mb"], ".1f"), fmt(row["gm_mem_mb"], ".1f"),
        fmt(row["mem_ratio_gm_over_sk"], ".2f"),
    ])


def print_legend(options, iters_note: str) -> None:
    print(
        "\nColumns: s/it = seconds per EM iteration from identical initial parameters "
        f"(tol=0, {iters_note}); fit s = whole default fit (k-means init); ratio = "
        "sk/gm for times (>1: gaussmix faster), gm/sk for memory (<1: gaussmix smaller); "
        "iter = n_iter_ of the default fits (* = not converged); LL = lower_bound_ of the "
        "default fits; rel diff = |LL sk - LL gm| / max(|LL|); fixed rel = the same for "
        "the fixed-initialization runs; mem = tracemalloc peak above X "
        f"(default fit, max_iter={MEMORY_MAX_ITER}). Times are the min of "
        f"{options.repeats} alternating repeat(s).\n"
    )


def print_summary(summary: dict) -> None:
    print("\nSummary: medians of the ratios (time: sk/gm, >1 = gaussmix faster; "
          "memory: gm/sk, <1 = gaussmix smaller)")
    print(f"  {'group':>13}  {'cells':>5}  {'s/iter':>7}  {'fit':>7}  {'memory':>7}")
    for name, med in summary["ratio_medians"].items():
        values = (med["iter_ratio_sk_over_gm"], med["fit_ratio_sk_over_gm"],
                  med["mem_ratio_gm_over_sk"])
        print(f"  {name:>13}  {med['cells']:>5}  "
              + "  ".join(fmt(v, ".2f").rjust(7) for v in values))
    print_float32(summary["float32"])
    print_seeds(summary["seeds"])
    print_gemm(summary["gemm"])
    print_convergence(summary["convergence"])
    print_warnings(summary["warnings"])


def convergence_counts(rows: list[dict]) -> dict:
    """How many whole default fits of the grid did not converge, per library."""
    rows = [r for r in rows if r["sk_n_iter"] is not None]
    return {
        "cells": len(rows),
        "sk_not_converged": sum(not r["sk_converged"] for r in rows),
        "gm_not_converged": sum(not r["gm_converged"] for r in rows),
        "gm_higher_ll": sum(higher(r["gm_lower_bound"], r["sk_lower_bound"]) for r in rows),
        "sk_higher_ll": sum(higher(r["sk_lower_bound"], r["gm_lower_bound"]) for r in rows),
    }


def print_convergence(counts: dict) -> None:
    print(f"\nWhole default fits of the grid ({counts['cells']} cells): not converged "
          f"(ConvergenceWarning) sk {counts['sk_not_converged']}, gm "
          f"{counts['gm_not_converged']}; higher final LL (by > {LL_TIE_RTOL:g} relative): "
          f"gm {counts['gm_higher_ll']}, sk {counts['sk_higher_ll']}")


def print_float32(result: dict) -> None:
    print("\ngaussmix float64 vs float32 (full covariance, D >= 16, fixed-init runs): "
          "ratio = f64 s/iter / f32 s/iter")
    if not result["pairs"]:
        print("  (no float64/float32 pair of full-covariance cells at D >= 16 in this run)")
    for p in result["pairs"]:
        print(f"  N={fmt_n(p['n'])} D={p['d']} K={p['k']} {p['sep']} BLAS {p['blas']}: "
              f"f64 {p['gm_f64_s_per_iter']:.4f} s/it, f32 {p['gm_f32_s_per_iter']:.4f} s/it, "
              f"ratio {fmt(p['ratio_f64_over_f32'], '.2f')}; LL f64 "
              f"{p['gm_f64_lower_bound']:.6f}, f32 {p['gm_f32_lower_bound']:.6f}, "
              f"rel diff {p['ll_rel_diff']:.1e}")
    if result["median_ratio"] is not None:
        print(f"  median ratio: {result['median_ratio']:.2f}")


def print_seeds(results: list[dict]) -> None:
    if not results:
        print("\nWhole default fit over seeds: skipped")
        return
    for r in results:
        print(f"\nWhole default fit over seeds 0..{r['seeds'] - 1} (N={fmt_n(r['n'])}, "
              f"D={r['d']}, K={r['k']}, {r['sep']}, {r['cov']}, {r.get('dtype', 'float64')}, "
              f"BLAS {r['blas']}):")
        print(f"  mean lower_bound_ sk {r['sk_mean_lower_bound']:.6f}, "
              f"gm {r['gm_mean_lower_bound']:.6f}; higher LL: gm {r['gm_higher_ll']}, "
              f"sk {r['sk_higher_ll']}, ties {r['seeds'] - r['gm_higher_ll'] - r['sk_higher_ll']} "
              f"(within {LL_TIE_RTOL:g} relative)")
        print(f"  mean n_iter_ sk {r['sk_mean_n_iter']:.1f}, gm {r['gm_mean_n_iter']:.1f}; "
              f"mean time ratio sk/gm {r['mean_time_ratio_sk_over_gm']:.2f}")
        if "init_params" in r:
            print(f"  gm init_params={r['init_params']!r}: mean lower_bound_ "
                  f"{r['init_mean_lower_bound']:.6f} (higher than sk {r['init_higher_ll']}, "
                  f"lower {r['init_lower_ll']}), mean n_iter_ {r['init_mean_n_iter']:.1f}, "
                  f"mean time ratio sk/gm {r['init_mean_time_ratio_sk_over_gm']:.2f}")


def print_gemm(result: dict | None) -> None:
    if result is None:
        print("\nFraction of GEMM peak: skipped")
        return
    print(f"\nFraction of GEMM peak: dgemm {result['gemm_size']}^2 on 1 BLAS thread "
          f"(best of 3): {result['dgemm_peak_gflops_1thread']:.1f} GFLOP/s; gaussmix threads: "
          f"{result['threads']}; source: {result['source']}")
    print(f"  {result['formula']}")
    for e in result["entries"]:
        print(f"  N={fmt_n(e['n'])} D={e['d']} K={e['k']} {e['sep']} BLAS {e['blas']}: "
              f"{e['gm_s_per_iter']:.4f} s/it -> {e['achieved_gflops']:.1f} GFLOP/s = "
              f"{100 * e['fraction']:.1f}% of {result['threads']} x "
              f"{result['dgemm_peak_gflops_1thread']:.1f}")


def print_warnings(tally: list[dict]) -> None:
    print("\nWarnings caught (silenced) during fits, by phase/library/category:")
    if not tally:
        print("  none")
    for entry in tally:
        print(f"  {entry['phase']:>8} {entry['library']:>3} {entry['category']}: "
              f"{entry['count']}")
    print("  (phases: default = whole default fits, seeds = seed comparison, fixed/gemm = "
          "tol=0 runs, whose ConvergenceWarnings are expected; init = max_iter=1 init fits; "
          "memory = max_iter=3 memory runs; warm-up = untimed first fits)")


# -------------------------------------------------------------- environment
def environment() -> dict:
    """Versions, BLAS/OpenMP pools, OpenBLAS variables, CPUs and load."""
    pools = [
        {key: info.get(key) for key in ("user_api", "internal_api", "prefix", "version",
                                        "architecture", "num_threads", "threading_layer",
                                        "filepath")}
        for info in threadpoolctl.threadpool_info()
    ]
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__,
        "gaussmix": gaussmix.__version__, "threadpoolctl": threadpoolctl.__version__,
        "cpu_count": os.cpu_count(), "cpu_affinity": affinity,
        "gaussmix_threads": get_num_threads(),
        "env": {name: os.environ.get(name) for name in (
            "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "GAUSSMIX_NUM_THREADS")},
        "threadpools": pools,
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def print_environment(env: dict) -> None:
    print(f"python {env['python']} on {env['platform']}; numpy {env['numpy']}, "
          f"scipy {env['scipy']}, scikit-learn {env['sklearn']}, gaussmix {env['gaussmix']}, "
          f"threadpoolctl {env['threadpoolctl']}")
    print(f"CPUs: {env['cpu_count']} (usable {env['cpu_affinity']}); gaussmix EM threads: "
          f"{env['gaussmix_threads']}; load average at start: {env['loadavg_start']}")
    print("Environment: " + ", ".join(
        f"{k}={'(unset)' if v is None else v}" for k, v in env["env"].items()))
    for pool in env["threadpools"]:
        print(f"  {pool['user_api']}: {pool['internal_api']} {pool['version']} "
              f"arch={pool['architecture']} threads={pool['num_threads']} "
              f"({Path(pool['filepath'] or '').name})")
    print(flush=True)


# --------------------------------------------------------------------- main
def parse_n(text: str) -> int:
    return int(float(text))


def parse_dk(text: str) -> tuple[int, int]:
    d, k = text.lower().replace(",", "x").split("x")
    return int(d), int(k)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small grid, under 5 minutes on 2 cores")
    parser.add_argument("--n", nargs="+", type=parse_n, help="rows, e.g. 1e4 1e5")
    parser.add_argument("--dk", nargs="+", type=parse_dk, help="DxK pairs, e.g. 2x3 16x16")
    parser.add_argument("--cov", nargs="+", choices=COVARIANCE_TYPES)
    parser.add_argument("--sep", nargs="+", choices=tuple(SEPARATIONS))
    parser.add_argument("--dtype", nargs="+", choices=("float64", "float32"))
    parser.add_argument("--blas", nargs="+", choices=("1", "default"))
    parser.add_argument("--repeats", type=int, help="alternating repeats (default 2, quick 1)")
    parser.add_argument("--iters", type=int,
                        help="EM iterations of the fixed-init runs (default 10, 5 at N>=1e6)")
    parser.add_argument("--seeds", type=int,
                        help="seeds of the whole-fit comparison (default 10, quick 5; 0 skips)")
    parser.add_argument("--seeds-n", type=parse_n,
                        help="rows of the whole-fit comparison (default 1e5, quick 1e4)")
    parser.add_argument("--seeds-init",
                        help="also fit gaussmix with this init_params in the seed comparison, "
                             "e.g. kmeans-sample")
    parser.add_argument("--seeds-dtype", choices=("float64", "float32"), default="float64",
                        help="dtype of the seed comparison's data (default float64)")
    parser.add_argument("--fit-max-n", type=parse_n,
                        help="skip the whole default fits (and memory runs) of cells with "
                             "more rows than this; their per-iteration runs still run")
    parser.add_argument("--merge", nargs="+", type=Path, metavar="JSON",
                        help="measure nothing: print the table and summary of the rows of "
                             "these result files together (a cell in a later file replaces "
                             "the same cell in an earlier one), and write them as one file")
    parser.add_argument("--no-gemm", action="store_true", help="skip the GEMM-peak fraction")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--seed", type=int, default=0, help="data and init seed (default 0)")
    parser.add_argument("--json", type=Path,
                        help="output file (default bench/results/bench_em-<timestamp>.json)")
    return parser


def resolve_grid(options):
    """The grid, its (N, D, K) shapes and the covs that get float32, from the options."""
    grid = dict(QUICK_GRID if options.quick else FULL_GRID)
    for name in ("n", "dk", "cov", "sep", "dtype", "blas"):
        if getattr(options, name):
            grid[name] = tuple(getattr(options, name))
    if options.quick and not options.n and not options.dk:
        shapes = QUICK_SHAPES
    else:
        shapes = [(n, d, k) for n, (d, k) in product(grid["n"], grid["dk"])]
    float32_covs = QUICK_FLOAT32_COVS if options.quick and not options.dtype else None
    return grid, shapes, float32_covs


CELL_KEYS = ("n", "d", "k", "cov", "sep", "dtype", "blas")


def grid_summary(rows: list[dict], *, seeds: list, gemm, warnings: list) -> dict:
    """The summary printed and written: the grid's medians and counts, and the extras."""
    return {
        "ratio_medians": ratio_medians(rows), "float32": float32_comparison(rows),
        "seeds": seeds, "gemm": gemm, "convergence": convergence_counts(rows),
        "warnings": warnings,
    }


def merge(options, timestamp: str) -> int:
    """Print and write the rows and extras of several result files as one run."""
    runs = [json.loads(path.read_text()) for path in options.merge]
    # A cell measured again in a later file replaces the earlier measurement.
    cells = {}
    for run in runs:
        for row in run["rows"]:
            cells[tuple(row[key] for key in CELL_KEYS)] = row
    rows = list(cells.values())
    summaries = [run.get("summary") or {} for run in runs]
    gemm = [s["gemm"] for s in summaries if s.get("gemm")]
    summary = grid_summary(
        rows, seeds=[seeds for s in summaries for seeds in s.get("seeds", [])],
        gemm=gemm[-1] if gemm else None,
        warnings=[w for s in summaries for w in s.get("warnings", [])],
    )
    for path, run in zip(options.merge, runs):
        env = run["environment"]
        print(f"{path}: {len(run['rows'])} cells, {run.get('total_s', 0):.0f} s, load "
              f"{env.get('loadavg_start')} -> {env.get('loadavg_end')}, "
              f"OPENBLAS_CORETYPE={env['env'].get('OPENBLAS_CORETYPE')}")
    print()
    print_table_header()
    for row in rows:
        print_table_row(row)
    print_summary(summary)
    write_json(options, timestamp, {
        "merged_from": [str(path) for path in options.merge],
        "environments": [run["environment"] for run in runs],
        "rows": rows, "summary": summary,
        "total_s": sum(run.get("total_s", 0) for run in runs),
    })
    return 0


def main(argv=None) -> int:
    options = build_parser().parse_args(argv)
    timestamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if options.merge:
        return merge(options, timestamp)
    options.repeats = options.repeats or (1 if options.quick else 2)
    n_seeds = options.seeds if options.seeds is not None else (5 if options.quick else 10)
    grid, shapes, float32_covs = resolve_grid(options)
    started = time.perf_counter()
    env = environment()
    print_environment(env)
    print(f"Grid: shapes (N, D, K) {list(shapes)}; cov {list(grid['cov'])}; sep "
          f"{list(grid['sep'])}; dtype {list(grid['dtype'])}"
          f"{' (float32 only for ' + ', '.join(float32_covs) + ')' if float32_covs else ''}; "
          f"BLAS threads {list(grid['blas'])}")
    iters_note = (f"max_iter={options.iters}" if options.iters
                  else "max_iter=10, 5 at N>=1e6")
    print_legend(options, iters_note)

    tally = WarningTally()
    def checkpoint(rows):
        write_json(options, timestamp, {"environment": env, "rows": rows, "partial": True,
                                        "total_s": time.perf_counter() - started}, quiet=True)

    rows = run_grid(grid, shapes, float32_covs, options, tally, checkpoint)
    seeds_blas = "default" if "default" in grid["blas"] else grid["blas"][0]
    seeds_cell = dict(SEEDS_CELL_QUICK if options.quick else SEEDS_CELL)
    if options.seeds_n:
        seeds_cell["n"] = options.seeds_n
    seeds_cell["dtype"] = options.seeds_dtype
    seeds = (seed_comparison(seeds_cell, n_seeds,
                             seeds_blas, options, tally) if n_seeds > 0 else [])
    gemm = (None if options.no_gemm
            else gemm_fraction(rows, dgemm_peak(), options.quick, options, tally))
    summary = grid_summary(rows, seeds=seeds, gemm=gemm, warnings=tally.as_json())
    summary["warning_examples"] = tally.examples
    print_summary(summary)
    elapsed = time.perf_counter() - started
    env["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print(f"\nTotal time {elapsed:.0f} s; load average at end: {env['loadavg_end']}")
    write_json(options, timestamp, {
        "environment": env, "options": {k: str(v) for k, v in vars(options).items()},
        "grid": {**{k: list(v) for k, v in grid.items()}, "shapes": [list(s) for s in shapes],
                 "float32_covs": float32_covs, "separations": SEPARATIONS,
                 "fixed_iterations": iters_note, "init_rows": INIT_ROWS,
                 "memory_max_iter": MEMORY_MAX_ITER},
        "rows": rows, "summary": summary, "total_s": elapsed,
    })
    return 0


def dump_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` as JSON (numpy scalars as numbers), making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_json_default))


def write_json(options, timestamp: str, payload: dict, quiet: bool = False) -> None:
    default = Path(__file__).resolve().parent / "results" / f"bench_em-{timestamp}.json"
    path = options.json or default
    dump_json(path, payload)
    if not quiet:
        print(f"Results written to {path}")


def finish(started: float, path: Path | None, env: dict, rows: list, summary: dict) -> int:
    """Print the run's total time and write its record where asked; the exit status."""
    print(f"Total time {time.perf_counter() - started:.0f} s")
    if path:
        write_record(path, env, rows, summary)
    return 0


def write_record(path: Path, env: dict, rows: list, summary: dict) -> None:
    """A run's rows and summary, dated, with its environment, as JSON at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "environment": env, "rows": rows, "summary": summary,
    }, indent=1, default=_json_default))
    print(f"Results written to {path}")


def _json_default(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
