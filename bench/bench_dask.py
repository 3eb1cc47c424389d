"""gaussmix on a Dask LocalCluster against the in-memory fit, same data, same start.

Data: ``--n`` rows (10,000,000 by default) x 16 features, float64, drawn
from a 16-component mixture (``bench_em.make_mixture``, well separated).
Initial parameters: a ``max_iter=1`` fit on the first 20,000 rows.  Both
fits then run ``--iters`` EM iterations with ``tol=0`` from those
parameters, K = 16, full covariance, through the public
``GaussianMixture.fit``:

- in memory: the numpy array, on all cores of this process;
- Dask: the same rows scattered as blocks to a ``LocalCluster`` of
  ``--workers`` worker processes with one thread each, wrapped as a dask
  array and fitted through :class:`gaussmix.dask_backend.DaskDataset`.
  The nanny's ``MALLOC_TRIM_THRESHOLD_=65536`` is unset for the workers
  (``--keep-malloc-trim`` keeps distributed's default).

With ``--repeats R`` the two fits alternate R times (memory, dask, memory,
...) on the same placed blocks, so that the load of a shared machine
weighs on both.

Printed and written to JSON (``bench/results/bench_dask-<timestamp>.json``):
the time of each iteration of each fit (from one E-step to the next), the
per-iteration overhead of Dask over memory (ratio of the medians, and of the
fastest iterations), the time to place the
blocks on the workers (the first pass), and the largest norm-wise relative
difference of the fitted parameters.  Run from the repository root::

    /work/venv/bin/python bench/bench_dask.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import make_mixture  # noqa: E402

from gaussmix import GaussianMixture  # noqa: E402
from gaussmix._parallel import get_num_threads  # noqa: E402
from gaussmix.datasets import ArrayDataset  # noqa: E402

PARAMS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


def timed(dataset_class):
    """``dataset_class`` recording when each E-step pass starts."""

    class Timed(dataset_class):
        def expectation(self, model, params):
            self.starts.append(time.perf_counter())
            return super().expectation(model, params)

    return Timed


def relative_error(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def run_fit(dataset, init: dict, k: int, iters: int) -> tuple[GaussianMixture, list[float], float]:
    """Fit from ``init``; per-iteration seconds and the whole fit's seconds."""
    dataset.starts = []
    model = GaussianMixture(k, covariance_type="full", tol=0, max_iter=iters, **init)
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tol=0 never converges
        model.fit(dataset)
    end = time.perf_counter()
    marks = dataset.starts + [end]
    return model, list(np.diff(marks)), end - begin


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=1e7)
    parser.add_argument("--d", type=int, default=16)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--block-rows", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep-malloc-trim", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    import distributed

    from gaussmix.dask_backend import DaskDataset

    n = int(args.n)
    t0 = time.perf_counter()
    X = make_mixture(n, args.d, args.k, 10.0, seed=0)
    print(f"data: {n} x {args.d} float64, {X.nbytes / 2**30:.2f} GiB, "
          f"{time.perf_counter() - t0:.1f} s to draw; load average {os.getloadavg()}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = GaussianMixture(args.k, max_iter=1, random_state=0).fit(X[:20_000])
    init = dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_)

    environ = {} if args.keep_malloc_trim else {
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    memory_iters, dask_iters, memory_totals, dask_totals = [], [], [], []
    with dask.config.set(environ), distributed.LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True,
        dashboard_address=None, silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster) as client:
        block_rows = args.block_rows or DaskDataset(da.zeros((1, args.d))).block_rows
        t0 = time.perf_counter()
        # The data start on the workers, as they would when read there.
        futures = client.scatter([X[i:i + block_rows] for i in range(0, n, block_rows)])
        blocks = [da.from_delayed(f, shape=(min(block_rows, n - i), args.d), dtype=X.dtype)
                  for f, i in zip(futures, range(0, n, block_rows))]
        X_dask = da.concatenate(blocks)
        scatter_s = time.perf_counter() - t0
        dataset = timed(DaskDataset)(X_dask, block_rows=block_rows)
        t0 = time.perf_counter()
        dataset._parts()  # compute, check and place the blocks: the first pass
        place_s = time.perf_counter() - t0
        del futures, blocks
        counts = {w: dataset._blocks.owners.count(w) for w in set(dataset._blocks.owners)}
        print(f"dask: {args.workers} workers x 1 thread, {len(dataset._blocks.parts)} blocks "
              f"of {block_rows} rows, blocks per worker {sorted(counts.values())}; scatter "
              f"{scatter_s:.1f} s, place {place_s:.1f} s", flush=True)
        # Alternate the two fits so that changes in the machine's load hit both.
        for repeat in range(args.repeats):
            memory, iters, total = run_fit(timed(ArrayDataset)(X), init, args.k, args.iters)
            memory_iters += iters
            memory_totals.append(total)
            print(f"[{repeat}] in memory ({get_num_threads()} threads): "
                  + " ".join(f"{s:.2f}" for s in iters) + f" s/iter, fit {total:.1f} s",
                  flush=True)
            fitted, iters, total = run_fit(dataset, init, args.k, args.iters)
            dask_iters += iters
            dask_totals.append(total)
            print(f"[{repeat}] dask: " + " ".join(f"{s:.2f}" for s in iters)
                  + f" s/iter, fit {total:.1f} s", flush=True)
        dataset.close()

    memory_median = statistics.median(memory_iters)
    dask_median = statistics.median(dask_iters)
    differences = {name: relative_error(getattr(fitted, name), getattr(memory, name))
                   for name in PARAMS}
    overhead = dask_median / memory_median - 1
    overhead_min = min(dask_iters) / min(memory_iters) - 1
    print()
    print("| fit | s/iter (median) | iterations (s) |")
    print("|---|---|---|")
    print(f"| in memory | {memory_median:.2f} | {' '.join(f'{s:.2f}' for s in memory_iters)} |")
    print(f"| dask | {dask_median:.2f} | {' '.join(f'{s:.2f}' for s in dask_iters)} |")
    print(f"\noverhead of dask per iteration: {100 * overhead:+.1f}% (medians), "
          f"{100 * overhead_min:+.1f}% (fastest iterations)")
    print("max norm-wise relative parameter difference: "
          + ", ".join(f"{k} {v:.2e}" for k, v in differences.items()))
    print(f"lower_bound_: memory {memory.lower_bound_!r}, dask {fitted.lower_bound_!r}")

    result = {
        "n": n, "d": args.d, "k": args.k, "iters": args.iters, "dtype": "float64",
        "workers": args.workers, "block_rows": block_rows, "blocks_per_worker": counts,
        "malloc_trim_threshold": "distributed default (65536)" if args.keep_malloc_trim
        else "unset",
        "repeats": args.repeats, "memory_threads": get_num_threads(),
        "memory_s_per_iter": memory_iters, "dask_s_per_iter": dask_iters,
        "memory_fit_s": memory_totals, "dask_fit_s": dask_totals,
        "scatter_s": scatter_s, "place_s": place_s, "overhead": overhead,
        "overhead_fastest": overhead_min,
        "relative_difference": differences,
        "lower_bound": {"memory": memory.lower_bound_, "dask": fitted.lower_bound_},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg": os.getloadavg(), "python": platform.python_version(),
                    "numpy": np.__version__, "dask": dask.__version__,
                    "distributed": distributed.__version__},
    }
    path = args.json or Path(__file__).resolve().parent / "results" / (
        "bench_dask-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return result


if __name__ == "__main__":  # worker processes import this module: keep the guard
    main()
