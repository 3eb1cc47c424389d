"""The compiled k-means start (``gaussmix.kmeans``) against scikit-learn's.

Two parts, each side by side in one process, alternating, minimum of
``--repeats``:

k-means
    ``KMeans(K, n_init=1, random_state=seed).fit(X)`` (scikit-learn, as its
    ``GaussianMixture`` starts) against ``kmeans_labels(X, K,
    RandomState(seed), engine='compiled')``: times, ratio, whether the labels
    and iterations are the same, whether the compiled run handed over to
    scikit-learn's (a tie that rounding decides), and whether scikit-learn's
    own labels on one OpenMP thread are those of its default (where they
    are not, the order of its sums decides them: float32 runs).
whole default fit
    ``GaussianMixture(K, covariance_type=cov, random_state=seed).fit(X)`` of
    scikit-learn against gaussmix with scikit-learn's k-means
    (``GAUSSMIX_KMEANS=sklearn``) and with its default engine choice (the
    compiled k-means): times, ratios and the final lower bounds' relative
    difference.

Data from ``bench_em.make_mixture`` (float32 cells cast the float64 data).
numba's loading (and, after a new install, its compilation) is paid once,
before the timing; "as gaussmix stands" is then the compiled k-means for
runs of every size (a process that has not loaded numba takes it from
2^25 rows x features x clusters on).

Usage::

    python bench/bench_kmeans_compiled.py --quick      # about 2 minutes
    python bench/bench_kmeans_compiled.py --cov diag spherical   # N = 1e4, 1e5; about 15 minutes
    python bench/bench_kmeans_compiled.py --n 1e6 --dk 16x16 --json bench/results/kmeans-compiled-1e6.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402
from gaussmix.kmeans import kmeans_labels  # noqa: E402

SHAPES = ((2, 3), (16, 16), (64, 16), (16, 64))
QUICK_SHAPES = ((16, 16), (64, 16))


def _sk_kmeans(X, k, seed):
    return KMeans(n_clusters=k, n_init=1, random_state=np.random.RandomState(seed)).fit(X)


def _gm_kmeans(X, k, seed):
    return kmeans_labels(X, k, np.random.RandomState(seed), engine="compiled")


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def kmeans_cell(X, k, seed, repeats) -> dict:
    sk_times, gm_times = [], []
    for _ in range(repeats):
        elapsed, sk = _timed(_sk_kmeans, X, k, seed)
        sk_times.append(elapsed)
        elapsed, gm = _timed(_gm_kmeans, X, k, seed)
        gm_times.append(elapsed)
    # scikit-learn's own labels on one OpenMP thread: where they differ from
    # its default's, rounding (the order of its sums) decides them.
    with threadpool_limits(1, user_api="openmp"):
        sk_one = _sk_kmeans(X, k, seed)
    return {
        "sk_s": min(sk_times), "gm_s": min(gm_times),
        "ratio": min(sk_times) / min(gm_times),
        "labels_equal": bool(np.array_equal(sk.labels_, gm.labels)),
        "sk_threads_agree": bool(np.array_equal(sk.labels_, sk_one.labels_)),
        "n_iter": [int(sk.n_iter_), int(gm.n_iter)],
        "handed_over": gm.handed_over,
        "times_s": {"sk": sk_times, "gm": gm_times},
    }


def _fit(library, engine, X, k, cov, seed):
    estimator = SkGaussianMixture if library == "sk" else GaussianMixture
    if engine is not None:
        os.environ["GAUSSMIX_KMEANS"] = engine
    try:
        return _timed(lambda: estimator(k, covariance_type=cov, random_state=seed).fit(X))
    finally:
        os.environ.pop("GAUSSMIX_KMEANS", None)


def fit_cell(X, k, cov, seed, repeats) -> dict:
    runs = {"sk": [], "gm_sklearn_kmeans": [], "gm_default_kmeans": []}
    fitted = {}
    for _ in range(repeats):
        for name, library, engine in (
            ("sk", "sk", None), ("gm_sklearn_kmeans", "gm", "sklearn"),
            ("gm_default_kmeans", "gm", None),
        ):
            elapsed, fitted[name] = _fit(library, engine, X, k, cov, seed)
            runs[name].append(elapsed)
    best = {name: min(times) for name, times in runs.items()}
    bounds = {name: float(model.lower_bound_) for name, model in fitted.items()}
    return {
        "cov": cov, **{f"{name}_s": value for name, value in best.items()},
        "ratio_sklearn_kmeans": best["sk"] / best["gm_sklearn_kmeans"],
        "ratio_default_kmeans": best["sk"] / best["gm_default_kmeans"],
        "ll_rel_diff": bench_em.rel_diff(bounds["sk"], bounds["gm_default_kmeans"]),
        "n_iter": [int(model.n_iter_) for model in fitted.values()],
        "times_s": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="(16,16) and (64,16), float64, diag and spherical only")
    parser.add_argument("--n", type=float, nargs="+", default=[1e4, 1e5])
    parser.add_argument("--dk", nargs="+", help="shapes as DxK, e.g. 16x16")
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    parser.add_argument("--cov", nargs="+", default=["diag", "spherical", "full"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the rows and medians here")
    options = parser.parse_args(argv)
    shapes = QUICK_SHAPES if options.quick else SHAPES
    if options.dk:
        shapes = tuple(tuple(int(v) for v in dk.split("x")) for dk in options.dk)
    dtypes = ["float64"] if options.quick else options.dtype
    covs = ["diag", "spherical"] if options.quick else options.cov
    started = time.perf_counter()
    env = bench_em.environment()
    bench_em.print_environment(env)
    _gm_kmeans(bench_em.make_mixture(4096, 2, 2, 3.0, 0), 2, 0)  # compile or load the kernels
    print("k-means: sk = scikit-learn's KMeans, gm = compiled; labels: gm's against sk's; "
          "sk1: sk's labels on 1 OpenMP thread against its default's")
    print("fits: sk, gm with scikit-learn's k-means, gm as it stands (the compiled k-means)")
    print("     N   D   K  sep  dtype    km sk s  km gm s  ratio  labels  sk1   iter     "
          "cov        fit sk s  gm(sk km)  gm(dflt)  ratio sk-km  ratio dflt  LL rdiff")
    rows = []
    for n in (int(v) for v in options.n):
        for d, k in shapes:
            for sep, separation in bench_em.SEPARATIONS.items():
                X64 = bench_em.make_mixture(n, d, k, separation, options.seed)
                for dtype in dtypes:
                    X = X64.astype(dtype)
                    row = {"n": n, "d": d, "k": k, "sep": sep, "dtype": dtype,
                           "kmeans": kmeans_cell(X, k, options.seed, options.repeats),
                           "fits": [fit_cell(X, k, cov, options.seed, options.repeats)
                                    for cov in covs]}
                    rows.append(row)
                    km = row["kmeans"]
                    for i, fit in enumerate(row["fits"]):
                        head = (f"{n:6.0e} {d:3d} {k:3d}  {bench_em.SEP_SHORT[sep]}  {dtype:7s} "
                                f"{km['sk_s']:8.3f} {km['gm_s']:8.3f} {km['ratio']:6.2f}  "
                                f"{'same' if km['labels_equal'] else 'DIFF':6s} "
                                f"{'same' if km['sk_threads_agree'] else 'DIFF':5s} "
                                f"{km['n_iter'][0]:3d}/{km['n_iter'][1]:<3d}" if i == 0 else " " * 78)
                        print(f"{head}  {fit['cov']:9s} {fit['sk_s']:8.3f} "
                              f"{fit['gm_sklearn_kmeans_s']:9.3f} {fit['gm_default_kmeans_s']:9.3f} "
                              f"{fit['ratio_sklearn_kmeans']:12.2f} {fit['ratio_default_kmeans']:11.2f}"
                              f"  {fit['ll_rel_diff']:8.1e}", flush=True)
    summary = {"cells": len(rows)}
    for dtype in dtypes:
        part = [r for r in rows if r["dtype"] == dtype]
        summary[dtype] = {
            "kmeans_ratio_median": statistics.median(r["kmeans"]["ratio"] for r in part),
            "labels_equal": sum(r["kmeans"]["labels_equal"] for r in part),
            "sk_threads_differ": sum(not r["kmeans"]["sk_threads_agree"] for r in part),
            "labels_equal_where_sk_threads_agree": sum(
                r["kmeans"]["labels_equal"] for r in part if r["kmeans"]["sk_threads_agree"]),
            "handed_over": sum(r["kmeans"]["handed_over"] is not None for r in part),
            "cells": len(part),
            "fit_ratio_medians": {
                cov: {
                    engine: statistics.median(
                        f[f"ratio_{engine}_kmeans"] for r in part for f in r["fits"]
                        if f["cov"] == cov)
                    for engine in ("sklearn", "default")
                }
                for cov in covs
            },
        }
        result = summary[dtype]
        print(f"\n{dtype}: k-means, scikit-learn's time / compiled, median over "
              f"{result['cells']} cells: {result['kmeans_ratio_median']:.2f}; labels equal in "
              f"{result['labels_equal']}, handed over to scikit-learn in {result['handed_over']}")
        agree = result["cells"] - result["sk_threads_differ"]
        print(f"  scikit-learn's labels on 1 and 2 OpenMP threads differ in "
              f"{result['sk_threads_differ']} cells; in the other {agree}, the compiled labels "
              f"equal them in {result['labels_equal_where_sk_threads_agree']}")
        for cov, medians in result["fit_ratio_medians"].items():
            print(f"  whole default fit, {cov:9s}: scikit-learn / gaussmix median "
                  f"{medians['sklearn']:.2f} with scikit-learn's k-means, "
                  f"{medians['default']:.2f} as gaussmix stands")
    return bench_em.finish(started, options.json, env, rows, summary)


if __name__ == "__main__":
    sys.exit(main())
