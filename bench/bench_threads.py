"""gaussmix's E-step on one EM thread and on all, with the machine idle or busy.

The E-step runs its chunks on the calling thread and a pool beside it, with
BLAS on one thread (``gaussmix._parallel``).  This script checks that the
second thread pays on an idle machine and costs little when other
processes want the cores: per cell (N, D, K, covariance, dtype) and load
(idle, or ``--busy`` processes spinning beside the benchmark), the time of
one E-step (``gaussmix.em.expectation``) from a short fit's parameters on
one EM thread and on all, alternating, the minimum over ``--repeats``, and
their ratio (above 1: the threads are faster).  Prints a table and writes
JSON.

Usage::

    python bench/bench_threads.py                 # about 2 minutes
    python bench/bench_threads.py --busy 1 2 --repeats 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402  (the benchmark's data, starting parameters and environment)

import gaussmix  # noqa: E402
from gaussmix import em  # noqa: E402
from gaussmix._parallel import single_threaded_blas  # noqa: E402
from gaussmix.covariance import get_covariance_model  # noqa: E402

CELLS = (
    (10_000, 16, 16, "full"),
    (100_000, 16, 16, "full"),
    (100_000, 64, 16, "full"),
    (100_000, 16, 16, "diag"),
)


def _spin(stop_at: float) -> None:
    while time.perf_counter() < stop_at:
        pass


class Busy:
    """``count`` processes spinning on the cores until the block ends."""

    def __init__(self, count: int):
        self.count = count
        self.processes: list[multiprocessing.Process] = []

    def __enter__(self):
        # A generous deadline: the processes are stopped at the block's end.
        stop_at = time.perf_counter() + 3600
        context = multiprocessing.get_context("spawn")
        self.processes = [context.Process(target=_spin, args=(stop_at,), daemon=True)
                          for _ in range(self.count)]
        for process in self.processes:
            process.start()
        time.sleep(0.5 if self.count else 0.0)  # let them reach their loops
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.terminate()
            process.join()


def measure(cell: tuple, busy: int, repeats: int, seed: int) -> list[dict]:
    """One E-step on one thread and on all, per dtype, alternating; minima."""
    n, d, k, cov = cell
    tally = bench_em.WarningTally()
    X64 = bench_em.make_mixture(n, d, k, bench_em.SEPARATIONS["overlapping"], seed)
    init = bench_em.initial_parameters(X64, k, cov, seed, tally)
    with tally.catching("fixed", "gm"):
        fitted = gaussmix.GaussianMixture(k, covariance_type=cov, **init, tol=0,
                                          max_iter=3).fit(X64)
    params = fitted._fitted_params()
    model = get_covariance_model(cov)
    data = {"float64": X64, "float32": X64.astype(np.float32)}
    all_threads = gaussmix.get_num_threads()

    def e_step(X, threads):
        gaussmix.set_num_threads(threads)
        em.expectation(model, X, None, params)

    calls = {(dtype, threads): (lambda X=X, threads=threads: e_step(X, threads))
             for threads in (1, all_threads) for dtype, X in data.items()}
    try:
        with Busy(busy), single_threaded_blas():
            times = bench_em.alternating_times(calls, repeats)
    finally:
        gaussmix.set_num_threads(None)
    rows = []
    for dtype in data:
        one, many = min(times[(dtype, 1)]), min(times[(dtype, all_threads)])
        rows.append({"n": n, "d": d, "k": k, "cov": cov, "dtype": dtype, "busy": busy,
                     "threads": all_threads, "one_thread_s": one, "all_threads_s": many,
                     "speedup": one / many})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", nargs="+", type=int, default=[0, 1],
                        help="spinning processes beside the benchmark, one run each (default 0 1)")
    parser.add_argument("--repeats", type=int, default=10, help="alternating repeats (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args(argv)
    env = bench_em.environment()
    bench_em.print_environment(env)
    print("\nE-step time, minimum of alternating repeats; speedup = one thread / all threads "
          "(>1: the threads pay).\n")
    print(f"{'busy':>4} {'N':>5} {'D':>3} {'K':>3} {'cov':>5} {'dtype':>8} "
          f"{'1 thread s':>11} {'all s':>9} {'speedup':>8}")
    rows = []
    started = time.perf_counter()
    for busy in options.busy:
        for cell in CELLS:
            for row in measure(cell, busy, options.repeats, options.seed):
                rows.append(row)
                print(f"{busy:>4} {bench_em.fmt_n(row['n']):>5} {row['d']:>3} {row['k']:>3} "
                      f"{row['cov']:>5} {row['dtype']:>8} {row['one_thread_s']:11.4f} "
                      f"{row['all_threads_s']:9.4f} {row['speedup']:8.2f}", flush=True)
    print("\nMedian speedup by load:")
    for busy in options.busy:
        values = [row["speedup"] for row in rows if row["busy"] == busy]
        print(f"  {busy} busy: {float(np.median(values)):.2f} "
              f"({min(values):.2f}-{max(values):.2f}) over {len(values)} cells")
    total = time.perf_counter() - started
    print(f"\nTotal time {total:.0f} s")
    path = options.json or Path(__file__).resolve().parent / "results" / (
        f"bench_threads-{datetime.datetime.now():%Y%m%d-%H%M%S}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": env, "repeats": options.repeats, "rows": rows,
                                "total_s": total}, indent=1, default=bench_em._json_default))
    print(f"Results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
