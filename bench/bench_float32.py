"""gaussmix float32 against its own float64, and the machine's float32 ceiling.

The speed target for float32 compares gaussmix with itself (full covariance,
D >= 16), so scikit-learn is not fitted here and the grid can include
N = 1e6.  Two measurements, printed as tables and written as JSON:

(a) Per cell (N, D, K, separation, BLAS threads, EM threads): the time per
    EM iteration of a fixed-start fit (``tol=0``; 10 iterations, 5 at
    N >= 1e6) in float64 and in float32, alternating (f64, f32, f64, ...),
    the order reversed on every other repeat, the minimum over the repeats,
    their ratio (f64 / f32, above 1 means
    float32 is faster) and the relative difference of the final
    log-likelihoods.  Data and starting parameters are those of
    ``bench_em.py``; float32 data is the float64 data cast.
(b) The ceiling the hardware sets: float64 / float32 time ratio of GEMMs
    of the shapes an EM iteration runs (and a square one), on one thread
    and on two threads at once (one GEMM stream each, as gaussmix's chunks
    run), medians of alternating repeats.  Where float32 GEMMs scale less
    from one core to two than float64 ones, no kernel built on them reaches
    the one-thread ratio on two threads.

Usage::

    python bench/bench_float32.py                  # the target grid, about 15 min
    python bench/bench_float32.py --n 1e4 --repeats 1 --no-ceiling    # seconds
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402  (the benchmark's data, starting parameters and environment)

import gaussmix  # noqa: E402

GRID = {
    "n": (10_000, 100_000, 1_000_000),
    "dk": ((16, 16), (64, 16), (16, 64)),
    "sep": ("separated", "overlapping"),
    "blas": ("1", "default"),
    "threads": (None,),  # None: gaussmix's default, all cores
}
# GEMMs of a full-covariance iteration at D=16 and 64 (whitening: all
# components' block rows against [1; X^T]; scatter: weighted block rows
# against X), and a square one.
CEILING_SHAPES = {
    "square 512x512x512": ((512, 512), (512, 512)),
    "whiten 128x17x4096": ((128, 17), (17, 4096)),
    "whiten 256x65x2048": ((256, 65), (65, 2048)),
    "scatter 256x4096x64": ((256, 4096), (4096, 64)),
}


def measure_pair(data: dict, init: dict, cell: dict, repeats: int,
                 tally: bench_em.WarningTally) -> dict:
    """Alternate float64 and float32 fits; per-iteration minima and their ratio."""
    n_iter = bench_em.iterations_for(cell["n"], None)
    kwargs = {"n_components": cell["k"], "covariance_type": "full", **init, "tol": 0.0,
              "max_iter": n_iter}
    times = {"float64": [], "float32": []}
    bounds = {}
    gaussmix.set_num_threads(cell["threads"])
    try:
        with bench_em.blas_context(cell["blas"]):
            for repeat in range(repeats):
                for dtype in ("float64", "float32")[:: 1 if repeat % 2 == 0 else -1]:
                    # tol=0 fits end unconverged by design: the tally silences that.
                    seconds, fitted = bench_em.timed_fit("gm", kwargs, data[dtype], tally, dtype)
                    bounds[dtype] = float(fitted.lower_bound_)
                    times[dtype].append(seconds / n_iter)
    finally:
        gaussmix.set_num_threads(None)
    f64, f32 = min(times["float64"]), min(times["float32"])
    return {
        **cell, "em_threads": cell["threads"] or gaussmix.get_num_threads(),
        "f64_s_per_iter": f64, "f32_s_per_iter": f32, "ratio_f64_over_f32": f64 / f32,
        "f64_times": times["float64"], "f32_times": times["float32"],
        "f64_lower_bound": bounds["float64"], "f32_lower_bound": bounds["float32"],
        "ll_rel_diff": bench_em.rel_diff(bounds["float64"], bounds["float32"]),
    }


def run_grid(grid: dict, repeats: int, seed: int) -> list[dict]:
    """Measure every cell of ``grid``, printing each row as soon as it is done."""
    rows = []
    tally = bench_em.WarningTally()
    print(f"{'N':>5} {'D':>3} {'K':>3} {'sep':>4} {'blas':>4} {'thr':>3}  "
          f"{'f64 s/it':>9} {'f32 s/it':>9} {'ratio':>6}  {'LL rel diff':>11}")
    for n, (d, k), sep in product(grid["n"], grid["dk"], grid["sep"]):
        X64 = bench_em.make_mixture(n, d, k, bench_em.SEPARATIONS[sep], seed)
        init = bench_em.initial_parameters(X64, k, "full", seed, tally)
        data = {"float64": X64, "float32": X64.astype(np.float32)}
        for blas, threads in product(grid["blas"], grid["threads"]):
            cell = {"n": n, "d": d, "k": k, "sep": sep, "blas": blas, "threads": threads}
            row = measure_pair(data, init, cell, repeats, tally)
            rows.append(row)
            print(f"{bench_em.fmt_n(n):>5} {d:>3} {k:>3} {bench_em.SEP_SHORT[sep]:>4} "
                  f"{'1' if blas == '1' else 'dflt':>4} {row['em_threads']:>3}  "
                  f"{row['f64_s_per_iter']:9.4f} {row['f32_s_per_iter']:9.4f} "
                  f"{row['ratio_f64_over_f32']:6.2f}  {row['ll_rel_diff']:11.1e}", flush=True)
        del X64, data
    return rows


def _gemm_stream(a: np.ndarray, b: np.ndarray, reps: int) -> None:
    for _ in range(reps):
        a @ b


def gemm_ceiling(repeats: int = 7) -> list[dict]:
    """float64 / float32 GEMM time ratios on one thread and on two at once."""
    pool = ThreadPoolExecutor(2)
    rng = np.random.default_rng(0)
    results = []
    with threadpool_limits(limits=1, user_api="blas"):
        for name, (shape_a, shape_b) in CEILING_SHAPES.items():
            flops = 2 * shape_a[0] * shape_a[1] * shape_b[1]
            reps = max(1, int(1e9 / flops))
            arrays = {dtype: (rng.random(shape_a).astype(dtype), rng.random(shape_b).astype(dtype))
                      for dtype in ("float64", "float32")}
            times = {(dtype, threads): [] for dtype in arrays for threads in (1, 2)}
            for _ in range(repeats):
                for dtype, (a, b) in arrays.items():
                    # The same work, two streams of it: one after the other, then at once.
                    start = time.perf_counter()
                    _gemm_stream(a, b, reps)
                    _gemm_stream(a, b, reps)
                    times[(dtype, 1)].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    list(pool.map(lambda _: _gemm_stream(a, b, reps), range(2)))
                    times[(dtype, 2)].append(time.perf_counter() - start)
            med = {key: statistics.median(values) for key, values in times.items()}
            results.append({
                "shape": name, "gflops_1thread": {
                    dtype: 2 * reps * flops / med[(dtype, 1)] / 1e9 for dtype in arrays},
                "speedup_2threads": {dtype: med[(dtype, 1)] / med[(dtype, 2)] for dtype in arrays},
                "ratio_f64_over_f32_1thread": med[("float64", 1)] / med[("float32", 1)],
                "ratio_f64_over_f32_2threads": med[("float64", 2)] / med[("float32", 2)],
            })
    pool.shutdown()
    return results


def summarise(rows: list[dict]) -> dict:
    """Median ratios: overall, per N, per separation, per EM threads."""
    def med(selected):
        values = [r["ratio_f64_over_f32"] for r in selected]
        return {"cells": len(values), "median": statistics.median(values) if values else None,
                "min": min(values, default=None), "max": max(values, default=None)}

    groups = {"all": rows}
    for key in ("n", "sep", "blas", "em_threads"):
        for value in sorted({r[key] for r in rows}, key=str):
            groups[f"{key}={value}"] = [r for r in rows if r[key] == value]
    return {name: med(group) for name, group in groups.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", nargs="+", type=bench_em.parse_n, help="rows, e.g. 1e4 1e5")
    parser.add_argument("--dk", nargs="+", type=bench_em.parse_dk, help="DxK pairs, e.g. 16x16")
    parser.add_argument("--sep", nargs="+", choices=tuple(bench_em.SEPARATIONS))
    parser.add_argument("--blas", nargs="+", choices=("1", "default"))
    parser.add_argument("--threads", nargs="+", type=int,
                        help="gaussmix EM threads (default: all cores), e.g. 1 2")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-ceiling", action="store_true", help="skip the GEMM ceiling")
    parser.add_argument("--json", type=Path, help="output file (default "
                        "bench/results/bench_float32-<timestamp>.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    grid = dict(GRID)
    for name in ("n", "dk", "sep", "blas", "threads"):
        if getattr(options, name):
            grid[name] = tuple(getattr(options, name))
    started = time.perf_counter()
    env = bench_em.environment()
    bench_em.print_environment(env)
    print("Per cell: seconds per EM iteration of a fixed-start full-covariance fit, min of "
          f"{options.repeats} alternating repeats; ratio = f64 / f32 (>1: float32 faster); "
          "thr = gaussmix EM threads.\n")
    bench_em.warm_up(bench_em.WarningTally())
    rows = run_grid(grid, options.repeats, options.seed)
    summary = summarise(rows)
    print("\nMedian f64 / f32 ratio (min-max):")
    for name, s in summary.items():
        print(f"  {name:>16}: {s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}) over "
              f"{s['cells']} cells")
    ceiling = None if options.no_ceiling else gemm_ceiling()
    if ceiling:
        print("\nGEMM ceiling (BLAS on 1 thread per stream; medians of 7 alternating repeats):")
        for c in ceiling:
            print(f"  {c['shape']:>20}: GFLOP/s f64 {c['gflops_1thread']['float64']:6.1f}, "
                  f"f32 {c['gflops_1thread']['float32']:6.1f}; 2-thread speedup f64 "
                  f"{c['speedup_2threads']['float64']:.2f}, f32 {c['speedup_2threads']['float32']:.2f}"
                  f"; f64/f32 ratio 1 thread {c['ratio_f64_over_f32_1thread']:.2f}, "
                  f"2 threads {c['ratio_f64_over_f32_2threads']:.2f}")
    elapsed = time.perf_counter() - started
    print(f"\nTotal time {elapsed:.0f} s")
    timestamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = options.json or (Path(__file__).resolve().parent / "results"
                            / f"bench_float32-{timestamp}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "environment": env, "grid": {k: [str(v) for v in vs] for k, vs in grid.items()},
        "repeats": options.repeats, "rows": rows, "summary": summary, "gemm_ceiling": ceiling,
        "total_s": elapsed,
    }, indent=1, default=bench_em._json_default))
    print(f"Results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
