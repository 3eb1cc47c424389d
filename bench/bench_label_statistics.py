"""Initial statistics of k-means labels, diag: the compiled kernels against numpy's path.

``gaussmix.em.statistics_from_labels`` sums the statistics of hard labels
(the default start's first M-step).  For 'diag' and 'spherical' fits of at
least ``kmeans.COMPILED_LOAD_WORK`` rows x features x components it takes
the compiled kernels (``gaussmix._label_kernels``), below that numpy's
path.  Here both paths run on the same rows and labels for each (N, D, K)
and dtype, alternating, on a worker thread as in a fit, medians of
``--repeats`` runs, with their ratio (numpy / compiled) and the largest
relative difference of the scatter.  Needs numba.

Usage::

    python bench/bench_label_statistics.py          # about 30 s
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import alternating_times, dump_json  # noqa: E402

from gaussmix import _label_kernels, em
from gaussmix.covariance import get_covariance_model

CELLS = ((10_000, 16, 16), (100_000, 2, 3), (100_000, 16, 16), (100_000, 64, 16), (100_000, 16, 64))


def measure(n: int, d: int, k: int, dtype, repeats: int) -> dict:
    rng = np.random.default_rng([n, d, k])
    # 1e3 from the origin: each path sums around the components' own means.
    X = (rng.standard_normal((n, d)) + 1e3).astype(dtype)
    labels = rng.integers(0, k, size=n).astype(np.int32)
    model = get_covariance_model("diag")
    paths = {
        "compiled": lambda: em._diagonal_statistics_from_labels(
            _label_kernels, "diag", X, None, labels, k
        ),
        "numpy": lambda: _numpy_path(model, X, labels, k),
    }
    times = alternating_times(paths, repeats)
    compiled, numpy_stats = paths["compiled"](), paths["numpy"]()
    return {
        "n": n, "d": d, "k": k, "dtype": np.dtype(dtype).name,
        "compiled_s": statistics.median(times["compiled"]),
        "numpy_s": statistics.median(times["numpy"]),
        "scatter_rel_diff": float(
            np.abs(compiled.scatter - numpy_stats.scatter).max()
            / np.abs(numpy_stats.scatter).max()
        ),
    }


def _numpy_path(model, X, labels, k):
    original = em._compiled_label_work
    em._compiled_label_work = lambda *args: False
    try:
        return em.statistics_from_labels(model, X, None, labels, k)
    finally:
        em._compiled_label_work = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print(f"{'N':>7} {'D':>3} {'K':>3} {'dtype':>8} {'numpy ms':>9} {'compiled ms':>12} "
          f"{'ratio':>6} {'rel diff':>9}")
    with ThreadPoolExecutor(1) as worker:
        # The kernels' first call in a process loads them (once per dtype).
        for dtype in (np.float64, np.float32):
            worker.submit(measure, 1000, 2, 2, dtype, 1).result()
        for n, d, k in CELLS:
            for dtype in (np.float64, np.float32):
                row = worker.submit(measure, n, d, k, dtype, args.repeats).result()
                row["ratio_numpy_over_compiled"] = row["numpy_s"] / row["compiled_s"]
                rows.append(row)
                print(f"{n:>7} {d:>3} {k:>3} {row['dtype']:>8} {row['numpy_s'] * 1e3:>9.2f} "
                      f"{row['compiled_s'] * 1e3:>12.2f} {row['ratio_numpy_over_compiled']:>6.2f} "
                      f"{row['scatter_rel_diff']:>9.1e}", flush=True)
    ratios = [r["ratio_numpy_over_compiled"] for r in rows]
    print(f"\nMedian numpy / compiled: {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f}) over {len(rows)} cells")
    if args.json:
        dump_json(args.json, {"rows": rows})
        print(f"Results written to {args.json}")


if __name__ == "__main__":
    main()
