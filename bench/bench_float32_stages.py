"""Where a full-covariance EM iteration spends its time, float64 against float32.

The float32 target compares gaussmix with its own float64 (``bench_float32.py``
measures the ratio per cell); this script says which stages of one cell keep
the ratio where it is.  It wraps the engine's stage functions with timers
(the E-step's log-densities, the rows' products, the whitening, the refined
pairs, the normalisation, the statistics dense or sparse, the M-step), runs
fixed-start fits (``tol=0``) of both dtypes alternately on one EM thread,
BLAS on one thread, and prints each stage's milliseconds per iteration
(minimum over the repeats) and the float64 / float32 ratio.  Stages nest
(the products and the whitening are inside the log-densities), so the
column does not add up to the total.

Usage::

    python bench/bench_float32_stages.py --n 1e5 --d 16 --k 16 --sep separated
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402  (the benchmark's data and starting parameters)

import gaussmix  # noqa: E402
from gaussmix import _kernels, em, sklearn_models  # noqa: E402

# (module, attribute, label): the stages timed, in the order printed.
STAGES = (
    (sklearn_models.FullCovariance, "prepare", "prepare (per pass)"),
    (sklearn_models.FullCovariance, "log_prob_rows", "log-densities"),
    (sklearn_models, "row_features", "  rows' products"),
    (sklearn_models, "_whitened_log_prob", "  whitening"),
    (sklearn_models, "refine_pairs", "  refined pairs"),
    (_kernels, "normalise_log_prob", "normalisation"),
    (_kernels, "normalise_compiled", "normalisation, compiled"),
    (_kernels, "_drop_negligible", "negligible responsibilities"),
    (_kernels, "_sparse_enough", "density test"),
    (sklearn_models.FullCovariance, "stats_rows", "statistics, dense"),
    (sklearn_models.FullCovariance, "sparse_stats_rows", "statistics, sparse"),
    (_kernels, "_stretch_worst_rows", "re-seeding candidates"),
    (em, "expectation", "E-step in all"),
    (em, "maximization_with_refinement", "M-step"),
)


def install_timers(seconds: defaultdict) -> None:
    """Wrap every stage so that its calls add their wall time to ``seconds[label]``."""
    for owner, name, label in STAGES:
        function = getattr(owner, name)

        def timed(*args, _function=function, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _function(*args, **kwargs)
            finally:
                seconds[_label] += time.perf_counter() - start

        setattr(owner, name, functools.wraps(function)(timed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=bench_em.parse_n, default=100_000)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--sep", choices=tuple(bench_em.SEPARATIONS), default="separated")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats (default 2)")
    parser.add_argument("--iterations", type=int, default=10)
    options = parser.parse_args(argv)

    tally = bench_em.WarningTally()
    X64 = bench_em.make_mixture(options.n, options.d, options.k,
                                bench_em.SEPARATIONS[options.sep], 0)
    init = bench_em.initial_parameters(X64, options.k, "full", 0, tally)
    data = {"float64": X64, "float32": X64.astype("float32")}
    seconds: defaultdict = defaultdict(float)
    install_timers(seconds)
    best: dict = {}
    gaussmix.set_num_threads(1)
    try:
        for repeat in range(options.repeats):
            for dtype in ("float64", "float32")[:: 1 if repeat % 2 == 0 else -1]:
                seconds.clear()
                model = gaussmix.GaussianMixture(
                    options.k, covariance_type="full", tol=0.0,
                    max_iter=options.iterations, **init)
                with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
                    # tol=0 fits end unconverged by design.
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    model.fit(data[dtype])
                    seconds["fit in all"] = time.perf_counter() - start
                for label, value in seconds.items():
                    per_iteration = value / options.iterations
                    best[dtype, label] = min(best.get((dtype, label), per_iteration),
                                             per_iteration)
    finally:
        gaussmix.set_num_threads(None)

    print(f"N={bench_em.fmt_n(options.n)} D={options.d} K={options.k} {options.sep}: "
          f"ms per iteration, one EM thread, BLAS on one thread, min of {options.repeats}")
    print(f"{'stage':<30} {'float64':>9} {'float32':>9} {'ratio':>6}")
    labels = [label for _, _, label in STAGES] + ["fit in all"]
    for label in labels:
        f64, f32 = best.get(("float64", label)), best.get(("float32", label))
        if f64 is None and f32 is None:
            continue
        ratio = f"{f64 / f32:6.2f}" if f64 and f32 else f"{'-':>6}"
        print(f"{label:<30} {(f64 or 0) * 1e3:9.2f} {(f32 or 0) * 1e3:9.2f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
