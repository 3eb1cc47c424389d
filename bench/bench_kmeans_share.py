"""Measure how much of the default fit k-means takes, and the speed-up cap it sets.

gaussmix's default fit, ``GaussianMixture(K, covariance_type=cov,
random_state=seed).fit(X)``, starts from exactly scikit-learn's k-means
labels: :func:`gaussmix.init._kmeans` fits
``sklearn.cluster.KMeans(n_clusters=K, n_init=1, random_state=rs)`` on ``X``
(its own dtype) with ``rs = check_random_state(seed)``, as
``sklearn.mixture.GaussianMixture`` does.  For 'diag' and 'spherical'
covariances an EM iteration is cheap and that k-means dominates both
libraries' fit, so it caps the whole-fit ratio scikit-learn/gaussmix.

For each cell (N, D, K, covariance type, separation, dtype), alternating
``--repeats`` times, in this order, and keeping the minimum of each:

sk
    ``sklearn.mixture.GaussianMixture(...).fit(X)``.
gm
    ``gaussmix.GaussianMixture(...).fit(X)``, the same arguments.
km
    k-means alone, by the very function gaussmix's init calls (which, when
    ``N * D * K <= KMEANS_SERIAL_WORK``, runs it on the cores that are free
    at the time, see ``gaussmix.init._kmeans_threads``; the threads it chose
    are recorded for every repeat).
km_sk
    Only for such small k-means: ``KMeans`` without any OpenMP limit, as
    scikit-learn's own fit runs it (otherwise the same call as ``km``), and
    whether its labels are ``km``'s.

The order of the calls is reversed on every other repeat.  Reported per cell: the fit times and their ratio sk/gm; km, its share of
each fit (km/sk, km/gm); the ceiling sk/km, the highest whole-fit ratio that
an implementation recomputing the same k-means with scikit-learn can reach;
the time outside k-means of each library (gm - km, sk - km) and their ratio;
``n_iter_`` of both fits and of KMeans; and the relative difference of the
final ``lower_bound_``.  The summary gives medians per covariance type and
overall.  Data comes from ``bench_em.make_mixture`` (float32 is the float64
data cast).  ``--blas 1`` (default) wraps every fit in
``threadpool_limits(1, "blas")``.  Warnings are silenced and counted.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import statistics
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402
from bench_em import SEPARATIONS, WarningTally, fmt, make_mixture, rel_diff  # noqa: E402
from gaussmix.init import KMEANS_SERIAL_WORK, _kmeans, _kmeans_threads  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

GRID = {
    "n": (10_000, 100_000),
    "dk": ((2, 3), (16, 16), (64, 16), (16, 64)),
    "cov": ("diag", "spherical"),
    "sep": ("separated", "overlapping"),
    "dtype": ("float64", "float32"),
}
SUMMARY_KEYS = ("ratio_sk_over_gm", "ceiling_sk_over_km", "km_share_of_gm", "rest_ratio")
HEADER = ("     N   D   K  cov        sep  dtype    sk s    gm s  sk/gm    km s  km(sk)  km/sk"
          "  km/gm  sk/km  gm-km s  sk-km s  rest   it sk/gm/km   LL rdiff   km thr  labels")


def positive_ratio(num: float, den: float) -> float | None:
    """``num / den`` when both are positive (noise can make a difference <= 0), else None."""
    return num / den if num > 0 and den > 0 else None


def time_km(X: np.ndarray, k: int, seed: int, serial_as_gm: bool,
            tally: WarningTally) -> tuple[float, KMeans]:
    """Seconds and fitted KMeans: gaussmix's call, or scikit-learn's (no OpenMP limit)."""
    gc.collect()
    with tally.catching("cells", "km" if serial_as_gm else "km_sk"):
        start = time.perf_counter()
        if serial_as_gm:
            km = _kmeans(X, k, np.random.RandomState(seed), None)
        else:
            km = KMeans(n_clusters=k, n_init=1, random_state=np.random.RandomState(seed)).fit(X)
        return time.perf_counter() - start, km


def measure_cell(cell: dict, X: np.ndarray, options, tally: WarningTally) -> dict:
    """Time sk, gm and km (and km_sk) alternately; return one row of results."""
    kwargs = {"n_components": cell["k"], "covariance_type": cell["cov"],
              "random_state": options.seed}
    work = X.shape[0] * X.shape[1] * cell["k"]
    limited = work <= KMEANS_SERIAL_WORK  # where gaussmix may limit k-means' threads
    times: dict[str, list[float]] = {"sk": [], "gm": [], "km": [], "km_sk": []}
    km_threads: list[int | None] = []
    fitted: dict = {}
    calls = ["sk", "gm", "km"] + (["km_sk"] if limited else [])
    with bench_em.blas_context(options.blas):
        for repeat in range(options.repeats):
            for call in calls if repeat % 2 == 0 else calls[::-1]:
                if call in ("sk", "gm"):
                    seconds, fitted[call] = bench_em.timed_fit(call, kwargs, X, tally, "cells")
                else:
                    if call == "km":
                        km_threads.append(_kmeans_threads(work))
                    seconds, fitted[call] = time_km(X, cell["k"], options.seed, call == "km",
                                                    tally)
                times[call].append(seconds)
    sk, gm, km = (min(times[name]) for name in ("sk", "gm", "km"))
    lb_sk, lb_gm = float(fitted["sk"].lower_bound_), float(fitted["gm"].lower_bound_)
    return {
        **cell, "km_limited": limited, "km_threads": km_threads, "times_s": times,
        "sk_fit_s": sk, "gm_fit_s": gm, "km_s": km,
        "km_sk_s": min(times["km_sk"]) if limited else None,
        "km_labels_as_sk": (bool(np.array_equal(fitted["km"].labels_, fitted["km_sk"].labels_))
                            if limited else None),
        "ratio_sk_over_gm": sk / gm, "km_share_of_sk": km / sk, "km_share_of_gm": km / gm,
        "ceiling_sk_over_km": sk / km, "gm_rest_s": gm - km, "sk_rest_s": sk - km,
        "rest_ratio": positive_ratio(sk - km, gm - km),
        "sk_n_iter": int(fitted["sk"].n_iter_), "gm_n_iter": int(fitted["gm"].n_iter_),
        "km_n_iter": int(fitted["km"].n_iter_),
        "sk_lower_bound": lb_sk, "gm_lower_bound": lb_gm, "ll_rel_diff": rel_diff(lb_sk, lb_gm),
        "ll_agree": rel_diff(lb_sk, lb_gm) <= bench_em.LL_TIE_RTOL,
    }


def print_row(r: dict) -> None:
    print(f"{bench_em.fmt_n(r['n']):>6} {r['d']:>3} {r['k']:>3}  {r['cov']:<9} "
          f"{bench_em.SEP_SHORT[r['sep']]:>3}  {r['dtype']:<7} {r['sk_fit_s']:>6.3f}  "
          f"{r['gm_fit_s']:>6.3f}  {r['ratio_sk_over_gm']:>5.2f}  {r['km_s']:>6.3f}  "
          f"{fmt(r['km_sk_s'], '6.3f'):>6}  {r['km_share_of_sk']:>5.2f}  "
          f"{r['km_share_of_gm']:>5.2f}  {r['ceiling_sk_over_km']:>5.2f}  "
          f"{r['gm_rest_s']:>7.3f}  {r['sk_rest_s']:>7.3f}  {fmt(r['rest_ratio'], '5.2f'):>5}  "
          f"{r['sk_n_iter']:>4}/{r['gm_n_iter']}/{r['km_n_iter']:<4}  "
          f"{r['ll_rel_diff']:>8.1e}{'  ' if r['ll_agree'] else ' !'}  "
          f"{','.join('all' if t is None else str(t) for t in r['km_threads']):>7}  "
          f"{ {None: '-', True: 'same', False: 'DIFF'}[r['km_labels_as_sk']]:>6}", flush=True)


def medians(rows: list[dict]) -> dict:
    """Median of each summary quantity over ``rows`` (None values left out)."""
    out = {"cells": len(rows)}
    for key in SUMMARY_KEYS:
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = statistics.median(values) if values else None
    return out


def summarise(rows: list[dict]) -> dict:
    """Medians per covariance type and over all cells, and the LL disagreements."""
    covs = dict.fromkeys(r["cov"] for r in rows)
    groups = {**{cov: [r for r in rows if r["cov"] == cov] for cov in covs}, "all": rows}
    return {"medians": {name: medians(group) for name, group in groups.items()},
            "ll_disagree_cells": sum(not r["ll_agree"] for r in rows),
            "km_labels_differ_cells": sum(r["km_labels_as_sk"] is False for r in rows),
            "km_labels_compared_cells": sum(r["km_labels_as_sk"] is not None for r in rows)}


def print_summary(summary: dict) -> None:
    print("\nMedians            sk/gm  sk/km  km/gm   rest   (ratio sk/gm | ceiling sk/km | "
          "km share of gm fit | (sk-km)/(gm-km))")
    for name, m in summary["medians"].items():
        print(f"  {name:<9} ({m['cells']:>2}) "
              + " ".join(fmt(m[key], "6.2f") for key in SUMMARY_KEYS))
    print(f"Cells whose final lower_bound_ differ by > {bench_em.LL_TIE_RTOL:g} relative: "
          f"{summary['ll_disagree_cells']}")
    print(f"Cells whose k-means labels (km) differ from scikit-learn's own run (km(sk)): "
          f"{summary['km_labels_differ_cells']} of {summary['km_labels_compared_cells']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", nargs="+", type=bench_em.parse_n, help="rows, e.g. 1e4 1e5")
    parser.add_argument("--dk", nargs="+", type=bench_em.parse_dk, help="DxK, e.g. 2x3 16x16")
    parser.add_argument("--cov", nargs="+", choices=bench_em.COVARIANCE_TYPES)
    parser.add_argument("--sep", nargs="+", choices=tuple(SEPARATIONS))
    parser.add_argument("--dtype", nargs="+", choices=("float64", "float32"))
    parser.add_argument("--blas", choices=("1", "default"), default="1",
                        help='BLAS threads during the fits: "1" (default) or "default"')
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="data and fit seed (default 0)")
    parser.add_argument("--json", type=Path, help="output file (default "
                        "bench/results/bench_kmeans_share-<timestamp>.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    grid = {name: tuple(getattr(options, name) or default) for name, default in GRID.items()}
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = options.json or (Path(__file__).resolve().parent / "results"
                            / f"bench_kmeans_share-{stamp}.json")
    started = time.perf_counter()
    env = bench_em.environment()
    bench_em.print_environment(env)
    print(f"Grid: {grid}; BLAS {options.blas}; repeats {options.repeats}; seed {options.seed}; "
          f"gaussmix's k-means on the free cores when N*D*K <= {KMEANS_SERIAL_WORK}")
    print("Times are minima over repeats. km: k-means as gaussmix's init runs it; km(sk): "
          "without any OpenMP limit, as scikit-learn runs it ('-': same call); sk/km: "
          "ceiling; rest: (sk-km)/(gm-km); LL rdiff: final lower_bound_ relative difference "
          "('!' above the tie tolerance); km thr: the OpenMP threads km ran on per repeat "
          "('all': no limit); labels: km's against km(sk)'s\n")
    tally = WarningTally()
    bench_em.warm_up(tally)
    print(HEADER, flush=True)
    rows = []
    for (n, (d, k), sep) in product(grid["n"], grid["dk"], grid["sep"]):
        X64 = make_mixture(n, d, k, SEPARATIONS[sep], options.seed)
        for cov, dtype in product(grid["cov"], grid["dtype"]):
            X = X64 if dtype == "float64" else X64.astype(np.float32)
            cell = {"n": n, "d": d, "k": k, "cov": cov, "sep": sep, "dtype": dtype,
                    "blas": options.blas}
            rows.append(measure_cell(cell, X, options, tally))
            print_row(rows[-1])
    summary = {**summarise(rows), "warnings": tally.as_json(), "warning_examples": tally.examples}
    print_summary(summary)
    print("Warnings (silenced): " + (", ".join(
        f"{w['phase']}/{w['library']}/{w['category']}: {w['count']}"
        for w in summary["warnings"]) or "none"))
    elapsed = time.perf_counter() - started
    print(f"Total time {elapsed:.0f} s")
    bench_em.dump_json(path, {"environment": env,
                      "options": {key: str(value) for key, value in vars(options).items()},
                      "rows": rows, "summary": summary, "total_s": elapsed})
    print(f"Results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
