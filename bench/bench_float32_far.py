"""float32 against float64 when components lie far from the mixture's centre.

Components whose means lie beyond ``far_threshold`` (about 9 standard
deviations for float32) cannot share the centre-expanded products without
losing float32's precision.  This measures what that costs: per-iteration
time of fixed-start fits (``tol=0``, 20 iterations, minimum of alternating
repeats) in float64 and float32, and the final log-likelihoods' relative
difference, on mixtures whose means are ``spread`` * N(0, 1) per feature
with unit-variance components (``spread`` 3 puts most components of D = 16
beyond float32's threshold, 0.3 none).

Usage::

    python bench/bench_float32_far.py                   # about 1 minute
    python bench/bench_float32_far.py --json bench/results/float32-far.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402


def mixture(n: int, d: int, k: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * spread
    return means[rng.integers(0, k, n)] + rng.normal(size=(n, d))


def per_iteration(X, k, cov, start):
    """Seconds per iteration of one fixed-start fit, and its final lower bound."""
    model = GaussianMixture(k, covariance_type=cov, max_iter=20, tol=0, **start)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    return (time.perf_counter() - started) / model.n_iter_, float(model.lower_bound_)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", nargs="+", type=bench_em.parse_n, default=[40_000, 100_000])
    parser.add_argument("--cov", nargs="+", default=["diag", "spherical", "full"])
    parser.add_argument("--spread", nargs="+", type=float, default=[3.0, 0.3])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    options = parser.parse_args(argv)
    started = time.perf_counter()
    env = bench_em.environment()
    bench_em.print_environment(env)
    d = k = 16
    print("     N  cov        spread  far f32  f64 ms/it  f32 ms/it  f64/f32  LL rel diff")
    rows = []
    for n, cov, spread in ((n, c, s) for n in options.n for c in options.cov for s in options.spread):
        X = mixture(n, d, k, spread, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            first = GaussianMixture(k, covariance_type=cov, max_iter=1, random_state=0).fit(X)
        start = {"weights_init": first.weights_, "means_init": first.means_,
                 "precisions_init": first.precisions_}
        centre = first.weights_ @ first.means_
        whitened = (first.means_ - centre) ** 2 * (
            first.precisions_ if cov == "diag" else
            first.precisions_[:, None] if cov == "spherical" else
            np.diagonal(first.precisions_, axis1=1, axis2=2))
        far = int(np.sum(whitened.sum(axis=1) > 1e-5 / np.finfo(np.float32).eps))
        results = {"float64": [], "float32": []}
        for repeat in range(options.repeats):
            for dtype in ("float64", "float32") if repeat % 2 == 0 else ("float32", "float64"):
                results[dtype].append(per_iteration(X.astype(dtype), k, cov, start))
        f64 = min(t for t, _ in results["float64"])
        f32 = min(t for t, _ in results["float32"])
        ll64, ll32 = results["float64"][0][1], results["float32"][0][1]
        row = {"n": n, "cov": cov, "spread": spread, "far_components_float32": far,
               "float64_s_per_iter": f64, "float32_s_per_iter": f32, "ratio": f64 / f32,
               "ll_rel_diff": bench_em.rel_diff(ll64, ll32)}
        rows.append(row)
        print(f"{n:6.0e}  {cov:9s} {spread:6.1f}  {far:7d}  {f64 * 1e3:9.2f}  {f32 * 1e3:9.2f}"
              f"  {row['ratio']:7.2f}  {row['ll_rel_diff']:11.1e}", flush=True)
    summary = {
        f"{cov} spread {spread}": statistics.median(
            r["ratio"] for r in rows if r["cov"] == cov and r["spread"] == spread)
        for cov in options.cov for spread in options.spread
    }
    print("\nMedian float64 / float32 time per iteration:")
    for name, value in summary.items():
        print(f"  {name}: {value:.2f}")
    return bench_em.finish(started, options.json, env, rows, summary)


if __name__ == "__main__":
    sys.exit(main())
