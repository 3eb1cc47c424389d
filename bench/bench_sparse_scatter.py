"""Full-covariance statistics of one chunk: the dense products against the compiled sparse kernel.

For each (D, K) and dtype: one chunk of the E-step's size at N = 1e5 of
``bench_em.make_mixture``'s separated data, the parameters of a short fit
on it, and responsibilities

* ``real``: the E-step's own (``normalise_log_prob`` and
  ``_drop_negligible``), whose density is that of the fit;
* ``d=0.05`` ... ``d=1.00``: the real ones with all but a random fraction
  of each component's entries set to zero.

BLAS on one thread, both forms on the same inputs, alternating, medians of
``--repeats``: nanoseconds per row of ``FullCovariance.stats_rows`` (dense:
the first moments, packed or blocked scatter, far components around their
own means) and of ``FullCovariance.sparse_stats_rows`` (the compiled
kernel), their ratio (dense / sparse, above 1: sparse faster), and whether
the E-step's rule (``_kernels._sparse_enough``) picks the sparse form there.

Usage::

    python bench/bench_sparse_scatter.py              # about 1 minute (numba installed)
    python bench/bench_sparse_scatter.py --json bench/results/sparse-scatter.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402

from gaussmix import GaussianMixture, _kernels, em  # noqa: E402
from gaussmix.covariance import get_covariance_model  # noqa: E402
from gaussmix.params import MixtureParams  # noqa: E402

SHAPES = ((16, 16), (64, 16), (16, 64), (8, 32))
DENSITIES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


def _chunk_inputs(n_features: int, n_components: int, seed: int):
    X64 = bench_em.make_mixture(100_000, n_features, n_components,
                                bench_em.SEPARATIONS["separated"], seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = GaussianMixture(n_components, covariance_type="full", max_iter=3,
                                 random_state=seed).fit(X64)
    params = MixtureParams(fitted.weights_, fitted.means_, fitted.covariances_,
                           fitted.precisions_cholesky_)
    return X64, params


def _time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(n_features: int, n_components: int, dtype, repeats: int, seed: int) -> list[dict]:
    model = get_covariance_model("full")
    X64, params = _chunk_inputs(n_features, n_components, seed)
    rows = _kernels.model_chunk_size(model, n_components, n_features, dtype, X64.shape[0])
    X = np.ascontiguousarray(X64[:rows], dtype=dtype)
    centre = _kernels.mixture_centre(params, dtype)
    prep = model.prepare(params, centre, dtype)
    centre = centre.astype(dtype)
    weighted, rows_t = model.log_prob_rows(X, centre, prep)
    _, resp = _kernels.normalise_log_prob(weighted)
    _kernels._drop_negligible(resp)
    rng = np.random.default_rng(seed)
    cases = [("real", resp)]
    for density in DENSITIES:
        kept = rng.uniform(size=resp.shape) < density
        cases.append((f"d={density:.2f}", np.where(kept, np.maximum(resp, 1e-3), 0).astype(dtype)))
    results = []
    offsets = prep["offsets"]
    for name, chunk_resp in cases:
        def dense():
            model.stats_rows(X, centre, chunk_resp, offsets, rows_t)

        def sparse():
            model.sparse_stats_rows(X, centre, chunk_resp, offsets)

        sparse()  # compiles, or loads the cached kernel
        dense_times, sparse_times = [], []
        for repeat in range(repeats):
            for label in (("dense", "sparse") if repeat % 2 == 0 else ("sparse", "dense")):
                if label == "dense":
                    dense_times.append(_time(dense, 1))
                else:
                    sparse_times.append(_time(sparse, 1))
        density = np.count_nonzero(chunk_resp) / chunk_resp.size
        dense_ns = statistics.median(dense_times) * 1e9 / rows
        sparse_ns = statistics.median(sparse_times) * 1e9 / rows
        results.append({
            "d": n_features, "k": n_components, "dtype": np.dtype(dtype).name, "rows": rows,
            "case": name, "density": density, "dense_ns_per_row": dense_ns,
            "sparse_ns_per_row": sparse_ns, "ratio_dense_over_sparse": dense_ns / sparse_ns,
            "rule_picks_sparse": bool(_kernels._sparse_enough(chunk_resp, n_features)),
            "far_components": int(offsets.any(axis=1).sum()),
        })
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args(argv)
    if em.sparse_statistics_for(get_covariance_model("full"), 1 << 40) is None:
        print("The compiled kernel needs numba: pip install 'gaussmix[fast]'.")
        return 1
    print(f"SPARSE_DENSITY = {_kernels.SPARSE_DENSITY} ({_kernels.SPARSE_DENSITY_FEW} below "
          f"{_kernels.SPARSE_FEW_FEATURES} features); ns per row, one BLAS thread, "
          f"medians of {options.repeats} alternating repeats")
    print(f"{'D':>3} {'K':>3} {'dtype':>7} {'rows':>5} {'case':>7} {'dens':>5} {'far':>3} "
          f"{'dense':>8} {'sparse':>8} {'ratio':>6} rule")
    rows = []
    start = time.perf_counter()
    with threadpool_limits(1):
        for (n_features, n_components) in SHAPES:
            for dtype in (np.float64, np.float32):
                for row in measure(n_features, n_components, dtype, options.repeats, options.seed):
                    rows.append(row)
                    print(f"{row['d']:>3} {row['k']:>3} {row['dtype']:>7} {row['rows']:>5} "
                          f"{row['case']:>7} {row['density']:5.2f} {row['far_components']:>3} "
                          f"{row['dense_ns_per_row']:8.1f} {row['sparse_ns_per_row']:8.1f} "
                          f"{row['ratio_dense_over_sparse']:6.2f} "
                          f"{'sparse' if row['rule_picks_sparse'] else 'dense'}", flush=True)
    print(f"Total time {time.perf_counter() - start:.0f} s")
    if options.json is not None:
        bench_em.dump_json(options.json, {"environment": bench_em.environment(), "rows": rows,
                                          "sparse_density": _kernels.SPARSE_DENSITY})
        print(f"Results written to {options.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
