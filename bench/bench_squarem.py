"""Time to the optimum: plain EM against ``acceleration='squarem'``.

For each cell (rows N, features D, components K, covariance type) and seed,
the data are the overlapping mixture of ``bench_em.py`` (means 1.5 standard
deviations apart, where EM converges slowly).  Both runs start from the same
point, the default k-means start of ``random_state=seed``, and fit twice:

* to the optimum: ``tol`` (default 1e-10) and a high ``max_iter``; the
  table shows passes over the data, seconds, the final mean log-likelihood
  of each, and whether SQUAREM ended at plain EM's optimum: log-likelihoods
  within 1e-6 relative and means within 1e-2 of the data's standard
  deviation.  Plain EM crawls: stopped by a gain of 1e-10 per pass it can
  still be 1e-7 short of the top, with means 1e-3 away; other local optima
  differ by 1e-4 or more in log-likelihood and put means 0.1 to 1 apart;
* at the default ``tol=1e-3``: passes, seconds, and how much higher the
  log-likelihood SQUAREM stops at (it stops when a plain EM step gains less
  than ``tol``, as plain EM does, but from farther along).

Times are the minimum over ``--repeats`` alternating runs (plain, squarem,
plain, ...).  BLAS runs on one thread; EM on all cores.

Usage::

    python bench/bench_squarem.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import SEPARATIONS, make_mixture  # noqa: E402

try:
    import gaussmix  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from gaussmix import GaussianMixture  # noqa: E402
from gaussmix.exceptions import ConvergenceWarning  # noqa: E402

FULL_CELLS = [
    (10_000, 2, 3), (10_000, 16, 4), (10_000, 16, 16),
    (100_000, 2, 3), (100_000, 16, 4),
]
QUICK_CELLS = [(10_000, 2, 3), (10_000, 16, 4)]


def _timed(X, k, cov, seed, acceleration, tol, max_iter, repeats):
    best, model = np.inf, None
    for _ in range(repeats):
        gm = GaussianMixture(
            k, covariance_type=cov, random_state=seed, tol=tol, max_iter=max_iter,
            acceleration=acceleration,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            gm.fit(X)
            best = min(best, time.perf_counter() - start)
        model = gm
    return best, model


def _pair(X, k, cov, seed, tol, max_iter, repeats):
    """Alternating plain and squarem fits; the best time of each."""
    times = {None: np.inf, "squarem": np.inf}
    models = {}
    for _ in range(repeats):
        for acceleration in (None, "squarem"):
            seconds, model = _timed(X, k, cov, seed, acceleration, tol, max_iter, 1)
            times[acceleration] = min(times[acceleration], seconds)
            models[acceleration] = model
    return times, models


def run_cell(n, d, k, cov, seed, tol, max_iter, repeats) -> dict:
    X = make_mixture(n, d, k, SEPARATIONS["overlapping"], 0)
    scale = float(np.sqrt(np.mean(np.var(X, axis=0))))
    row = {"n": n, "d": d, "k": k, "cov": cov, "seed": seed}
    times, models = _pair(X, k, cov, seed, tol, max_iter, repeats)
    plain, fast = models[None], models["squarem"]
    ll_plain, ll_fast = plain.lower_bound_, fast.lower_bound_
    row.update(
        opt_passes_plain=plain.n_iter_, opt_passes_squarem=fast.n_iter_,
        opt_s_plain=times[None], opt_s_squarem=times["squarem"],
        opt_ll_plain=ll_plain, opt_ll_squarem=ll_fast,
        opt_converged=bool(plain.converged_ and fast.converged_),
        opt_mean_diff=float(np.max(np.abs(plain.means_ - fast.means_)) / scale),
    )
    row["same_optimum"] = bool(
        abs(ll_fast - ll_plain) <= 1e-6 * abs(ll_plain) and row["opt_mean_diff"] <= 1e-2
    )
    times, models = _pair(X, k, cov, seed, 1e-3, 1000, repeats)
    plain, fast = models[None], models["squarem"]
    row.update(
        dflt_passes_plain=plain.n_iter_, dflt_passes_squarem=fast.n_iter_,
        dflt_s_plain=times[None], dflt_s_squarem=times["squarem"],
        dflt_ll_gain=float(fast.lower_bound_ - plain.lower_bound_),
    )
    return row


def print_row(r: dict) -> None:
    print(
        f"{r['n']:>7.0e} {r['d']:>3} {r['k']:>3} {r['cov']:>9} {r['seed']:>4} | "
        f"{r['opt_passes_plain']:>6} {r['opt_passes_squarem']:>6} "
        f"{r['opt_s_plain']:>8.2f} {r['opt_s_squarem']:>8.2f} "
        f"{r['opt_s_plain'] / r['opt_s_squarem']:>6.2f} "
        f"{r['opt_ll_squarem'] - r['opt_ll_plain']:>+9.1e} {'yes' if r['same_optimum'] else 'NO':>5} | "
        f"{r['dflt_passes_plain']:>5} {r['dflt_passes_squarem']:>5} "
        f"{r['dflt_s_plain'] / r['dflt_s_squarem']:>6.2f} {r['dflt_ll_gain']:>+9.1e}",
        flush=True,
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="two small cells, one seed")
    parser.add_argument("--cov", nargs="+", default=["full", "diag"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--max-iter", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    cells = QUICK_CELLS if args.quick else FULL_CELLS
    seeds = args.seeds[:1] if args.quick else args.seeds

    print(f"to the optimum: tol={args.tol:g}, max_iter={args.max_iter}; "
          "default: tol=1e-3. Times in seconds; ratio = plain / squarem.")
    print(f"{'N':>7} {'D':>3} {'K':>3} {'cov':>9} {'seed':>4} | "
          f"{'passes':>13} {'seconds':>17} {'ratio':>6} {'dLL':>9} {'same':>5} | "
          f"{'default passes':>11} {'ratio':>6} {'LL gain':>9}")
    rows = []
    with threadpool_limits(1, "blas"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            GaussianMixture(2, max_iter=2).fit(make_mixture(1000, 2, 2, 1.5, 0))
        for (n, d, k) in cells:
            for cov in args.cov:
                for seed in seeds:
                    row = run_cell(n, d, k, cov, seed, args.tol, args.max_iter, args.repeats)
                    print_row(row)
                    rows.append(row)

    same = [r for r in rows if r["same_optimum"]]
    print()
    print(f"same optimum in {len(same)} of {len(rows)} runs "
          f"(both converged in {sum(r['opt_converged'] for r in rows)})")
    if same:
        print("  median time ratio to the optimum (same-optimum runs): "
              f"{statistics.median(r['opt_s_plain'] / r['opt_s_squarem'] for r in same):.2f}; "
              "passes: "
              f"{statistics.median(r['opt_passes_plain'] / r['opt_passes_squarem'] for r in same):.2f}")
    other = [r for r in rows if not r["same_optimum"]]
    if other:
        higher = sum(r["opt_ll_squarem"] > r["opt_ll_plain"] for r in other)
        print(f"  other optimum in {len(other)} runs: squarem's higher in {higher}, lower in "
              f"{len(other) - higher}")
    print("  median time ratio at tol=1e-3: "
          f"{statistics.median(r['dflt_s_plain'] / r['dflt_s_squarem'] for r in rows):.2f}; "
          f"log-likelihood higher or equal in "
          f"{sum(r['dflt_ll_gain'] >= -1e-12 for r in rows)} of {len(rows)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "rows": rows}, indent=1))
        print(f"Results written to {args.json}")


if __name__ == "__main__":
    main()
