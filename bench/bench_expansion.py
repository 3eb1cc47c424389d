"""Full-covariance E-step of one chunk: the expanded squares against the whitening.

For each (D, K), separation and dtype: the benchmark's data (``bench_em``)
and parameters after three EM steps from its fixed start, one chunk of the
E-step's size (``em.e_step_chunk_size`` at N = 1e5), BLAS on one thread, on
a worker thread as the E-step's chunks run.  The chunk's whole E-step
(``_kernels.e_step_chunk``: log-densities, responsibilities, statistics) is
timed with the preparation ``FullCovariance.prepare`` makes (the expanded
squares of :mod:`gaussmix._quadratic_forms` where it chooses them) and with
the same preparation without them (every component whitened), alternating,
medians of ``--repeats``; their ratio (whitening / as prepared, above 1: the
expansion faster), how many components the preparation expands, and the
largest relative differences of the chunk's log-likelihood and scatter.

With ``--compiled``, the preparation of a pass of 2^24 rows x features x
components and more (``em.COMPILED_KERNELS_WORK``, numba installed): the
rows' products formed by the compiled kernel and, where K >= 2D, the
components beyond the precision budget expanded too, with their pairs
refined (``refined`` counts them).  The whitening side then forms no
products at all, as before.

Usage::

    python bench/bench_expansion.py                 # about 40 s
    python bench/bench_expansion.py --json bench/results/expansion.json
    python bench/bench_expansion.py --compiled --json bench/results/expansion-compiled.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402  (the benchmark's data, starts and timing)

from gaussmix import GaussianMixture, _kernels, em  # noqa: E402
from gaussmix.covariance import get_covariance_model  # noqa: E402

SHAPES = ((2, 3), (8, 16), (16, 16), (16, 64), (32, 64), (64, 16))
N_SAMPLES = 100_000


def parameters(n_features: int, n_components: int, separation: str):
    """Data and the parameters three EM steps after the benchmark's fixed start."""
    X = bench_em.make_mixture(N_SAMPLES, n_features, n_components,
                              bench_em.SEPARATIONS[separation], 0)
    init = bench_em.initial_parameters(X, n_components, "full", 0, bench_em.WarningTally())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = GaussianMixture(n_components, covariance_type="full", **init, tol=0,
                                 max_iter=3).fit(X)
    return X, fitted._fitted_params()


def measure(X, params, dtype, repeats: int, compiled: bool) -> dict:
    model = get_covariance_model("full")
    n_components, n_features = params.means.shape
    rows = em.e_step_chunk_size(model, params, dtype, N_SAMPLES)
    chunk = np.ascontiguousarray(X[:rows], dtype=dtype)
    centre = _kernels.mixture_centre(params, dtype)
    prepared = model.prepare(params, centre, dtype, compiled=compiled)
    whitened = {key: value for key, value in prepared.items() if key != "coefficients"}
    expanded = refined = 0
    if "coefficients" in prepared:
        expanded = n_components - prepared["whitened"].size
    if "refined" in prepared:
        refined = prepared["refined"]["components"].size

    def step(prep):
        return _kernels.e_step_chunk(model, chunk, None, params, centre, prep)

    times = bench_em.alternating_times(
        {"prepared": lambda: step(prepared), "whitened": lambda: step(whitened)}, repeats
    )
    mine, reference = step(prepared), step(whitened)
    return {
        "rows": rows,
        "expanded": expanded,
        "refined": refined,
        "prepared_s_per_row": statistics.median(times["prepared"]) / rows,
        "whitened_s_per_row": statistics.median(times["whitened"]) / rows,
        "ll_rel_diff": abs(mine.log_likelihood - reference.log_likelihood)
        / abs(reference.log_likelihood),
        "scatter_rel_diff": float(np.abs(mine.scatter - reference.scatter).max()
                                  / np.abs(reference.scatter).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--compiled", action="store_true",
                        help="prepare as a pass large enough for the compiled kernels")
    args = parser.parse_args()
    results = []
    print(f"{'D':>3} {'K':>3} {'sep':>4} {'dtype':>8} {'rows':>6} {'expanded':>8} "
          f"{'refined':>4} {'as prepared':>12} {'whitened':>9} {'ratio':>6} {'LL diff':>8} "
          f"{'scatter':>8}")
    print(f"{'':>41}{'ns/row':>12} {'ns/row':>9}")
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(1) as worker:
        for n_features, n_components in SHAPES:
            for separation in ("separated", "overlapping"):
                X, params = parameters(n_features, n_components, separation)
                for dtype in (np.float64, np.float32):
                    row = worker.submit(measure, X, params, dtype, args.repeats,
                                        args.compiled).result()
                    row.update(d=n_features, k=n_components, sep=separation,
                               dtype=np.dtype(dtype).name)
                    row["ratio"] = row["whitened_s_per_row"] / row["prepared_s_per_row"]
                    results.append(row)
                    print(f"{n_features:>3} {n_components:>3} {bench_em.SEP_SHORT[separation]:>4} "
                          f"{row['dtype']:>8} {row['rows']:>6} {row['expanded']:>4}/{n_components:<3} "
                          f"{row['refined']:>4} "
                          f"{row['prepared_s_per_row'] * 1e9:>12.0f} "
                          f"{row['whitened_s_per_row'] * 1e9:>9.0f} {row['ratio']:>6.2f} "
                          f"{row['ll_rel_diff']:>8.1e} {row['scatter_rel_diff']:>8.1e}", flush=True)
    served = [r["ratio"] for r in results if r["expanded"]]
    if served:
        print(f"\nWhere the expansion serves ({len(served)} of {len(results)} cells): "
              f"median whitening / expansion {statistics.median(served):.2f} "
              f"({min(served):.2f}-{max(served):.2f})")
    if args.json:
        bench_em.dump_json(args.json, {"rows": results})
        print(f"Results written to {args.json}")


if __name__ == "__main__":
    main()
