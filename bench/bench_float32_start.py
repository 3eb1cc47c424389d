"""float32 default fits: gaussmix's k-means start against scikit-learn's on 1 and 2 threads.

scikit-learn's k-means sums float32 in float32, in an order set by its
OpenMP threads, so on long runs its labels (and the local optimum its
``GaussianMixture`` reaches from them) change with the machine's cores.
gaussmix's compiled k-means works in float64 on the same float32 rows.
For seeds 0..S-1 this fits, on the same float32 data, scikit-learn's
``GaussianMixture`` with its OpenMP threads limited to one and at its
default (two here), and gaussmix's default fit, and prints the mean final
lower bounds and how often each pair differs (beyond 1e-6 relative) and
which side is higher (ties within ``bench_em.LL_TIE_RTOL``): the spread between scikit-learn's own two runs is
the scale against which gaussmix's differences are read.

Usage::

    python bench/bench_float32_start.py                  # 10 seeds, full and diag: about 4 min
    python bench/bench_float32_start.py --seeds 3 --n 2e4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402

def _bound(estimator, X) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(estimator.fit(X).lower_bound_)


def _compare(a: list[float], b: list[float]) -> str:
    higher_a = sum(bench_em.higher(x, y) for x, y in zip(a, b))
    higher_b = sum(bench_em.higher(y, x) for x, y in zip(a, b))
    mean_rel = (statistics.mean(a) - statistics.mean(b)) / abs(statistics.mean(b))
    return (f"first higher {higher_a}, second higher {higher_b}, ties {len(a) - higher_a - higher_b}; "
            f"mean difference {mean_rel:+.2e} relative")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--n", type=float, default=1e5)
    parser.add_argument("--dk", default="16x16", help="features x components")
    parser.add_argument("--cov", nargs="+", default=["full", "diag"])
    options = parser.parse_args(argv)
    d, k = (int(v) for v in options.dk.split("x"))
    n = int(options.n)
    X = bench_em.make_mixture(n, d, k, bench_em.SEPARATIONS["overlapping"], 0).astype(np.float32)
    env = bench_em.environment()
    bench_em.print_environment(env)
    GaussianMixture(2, random_state=0).fit(X[:4096])  # loads numba for the compiled k-means
    started = time.perf_counter()
    for cov in options.cov:
        bounds: dict[str, list[float]] = {"sk1": [], "sk2": [], "gm": []}
        for seed in range(options.seeds):
            with threadpool_limits(1, user_api="openmp"):
                bounds["sk1"].append(_bound(SkGaussianMixture(k, covariance_type=cov, random_state=seed), X))
            bounds["sk2"].append(_bound(SkGaussianMixture(k, covariance_type=cov, random_state=seed), X))
            bounds["gm"].append(_bound(GaussianMixture(k, covariance_type=cov, random_state=seed), X))
        print(f"\nN={n:.0e} D={d} K={k} overlapping float32 {cov}, seeds 0..{options.seeds - 1}: "
              "mean lower_bound_ " + ", ".join(f"{name} {statistics.mean(v):.6f}"
                                                for name, v in bounds.items()))
        print(f"  scikit-learn 1 thread vs 2 threads: {_compare(bounds['sk1'], bounds['sk2'])}")
        print(f"  gaussmix vs scikit-learn 2 threads: {_compare(bounds['gm'], bounds['sk2'])}")
        print(f"  gaussmix vs scikit-learn 1 thread:  {_compare(bounds['gm'], bounds['sk1'])}",
              flush=True)
    print(f"\nTotal time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
