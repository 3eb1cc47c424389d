"""Statistics of k-means labels (diag): compiled kernels, their numpy twins, the gathered path.

``gaussmix.em.statistics_from_labels`` sums the statistics of hard labels
(the default start's first M-step).  For 'diag' and 'spherical' it takes
the compiled kernels (``gaussmix._label_kernels``) where numba is loaded or
the fit reaches ``kmeans.COMPILED_LOAD_WORK`` rows x features x components,
elsewhere their numpy twins (``gaussmix._label_sums``), which give the same
bits.  Here both run on the same rows and labels for each (N, D, K) and
dtype, with the path the other models take (each component's rows gathered
through the chunk kernels, which 'diag' and 'spherical' took below that
size before the twins), alternating, on a worker thread as in a fit,
medians of ``--repeats`` runs; with the ratios to the compiled kernels,
whether the twins' statistics equal the compiled ones bit for bit, and the
largest relative difference of the gathered path's scatter.  Needs numba.

Usage::

    python bench/bench_label_statistics.py          # about 40 s
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

from gaussmix import _label_kernels, _label_sums, _start_statistics
from gaussmix.covariance import get_covariance_model

CELLS = ((10_000, 16, 16), (100_000, 2, 3), (100_000, 16, 16), (100_000, 64, 16), (100_000, 16, 64))


def measure(n: int, d: int, k: int, dtype, repeats: int) -> dict:
    rng = np.random.default_rng([n, d, k])
    # 1e3 from the origin: each path sums around the components' own means.
    X = (rng.standard_normal((n, d)) + 1e3).astype(dtype)
    labels = rng.integers(0, k, size=n).astype(np.int32)
    model = get_covariance_model("diag")
    paths = {
        "compiled": lambda: _start_statistics._diagonal_statistics_from_labels(
            _label_kernels, "diag", X, None, labels, k
        ),
        "twin": lambda: _start_statistics._diagonal_statistics_from_labels(
            _label_sums, "diag", X, None, labels, k
        ),
        "gathered": lambda: _start_statistics._gathered_statistics_from_labels(model, X, None, labels, k),
    }
    times = alternating_times(paths, repeats)
    compiled, twin, gathered = (paths[name]() for name in ("compiled", "twin", "gathered"))
    return {
        "n": n, "d": d, "k": k, "dtype": np.dtype(dtype).name,
        **{f"{name}_s": statistics.median(times[name]) for name in paths},
        "twin_bit_equal": all(
            np.array_equal(getattr(compiled, field), getattr(twin, field))
            for field in ("sum_resp", "shift", "shift_sum", "scatter")
        ),
        "gathered_scatter_rel_diff": float(
            np.abs(compiled.scatter - gathered.scatter).max() / np.abs(compiled.scatter).max()
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print(f"{'N':>7} {'D':>3} {'K':>3} {'dtype':>8} {'compiled ms':>12} {'twin ms':>8} "
          f"{'gathered ms':>12} {'twin/c':>7} {'gath/c':>7} {'twin bits':>9} {'gath diff':>9}")
    with ThreadPoolExecutor(1) as worker:
        # The kernels' first call in a process loads them (once per dtype).
        for dtype in (np.float64, np.float32):
            worker.submit(measure, 1000, 2, 2, dtype, 1).result()
        for n, d, k in CELLS:
            for dtype in (np.float64, np.float32):
                row = worker.submit(measure, n, d, k, dtype, args.repeats).result()
                row["ratio_twin_over_compiled"] = row["twin_s"] / row["compiled_s"]
                row["ratio_gathered_over_compiled"] = row["gathered_s"] / row["compiled_s"]
                rows.append(row)
                print(f"{n:>7} {d:>3} {k:>3} {row['dtype']:>8} {row['compiled_s'] * 1e3:>12.2f} "
                      f"{row['twin_s'] * 1e3:>8.2f} {row['gathered_s'] * 1e3:>12.2f} "
                      f"{row['ratio_twin_over_compiled']:>7.2f} "
                      f"{row['ratio_gathered_over_compiled']:>7.2f} "
                      f"{'equal' if row['twin_bit_equal'] else 'DIFFER':>9} "
                      f"{row['gathered_scatter_rel_diff']:>9.1e}", flush=True)
    for name in ("twin", "gathered"):
        ratios = [r[f"ratio_{name}_over_compiled"] for r in rows]
        print(f"Median {name} / compiled: {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f}) over {len(rows)} cells")
    print(f"Twins equal to the compiled kernels bit for bit in "
          f"{sum(r['twin_bit_equal'] for r in rows)} of {len(rows)} cells")
    if args.json:
        dump_json(args.json, {"rows": rows})
        print(f"Results written to {args.json}")


if __name__ == "__main__":
    main()
