"""Full-covariance scatter of one chunk: packed products against feature blocks.

For each (D, K) and dtype, one chunk of the E-step's size for full
covariance (``FullCovariance.chunk_width``, with each form's own
temporaries, so each form runs on the chunks it would get), random rows and
responsibilities, BLAS on one thread, on a worker thread as the E-step's
chunks run (on the main thread glibc returned the blocked form's large
temporaries to the system and took page faults for each, which fits on the
pool's threads were measured not to take): the time of
``_covariance_numerics._packed_scatter`` and of ``_blocked_scatter``,
alternating, medians of ``--repeats`` runs per row, their ratio (blocked /
packed, above 1: packed faster), which form ``packed_scatter_wins`` picks,
the largest relative difference of the two results on the same rows, and
the page faults per call.

Usage::

    python bench/bench_scatter.py                 # about 30 s
    python bench/bench_scatter.py --json bench/results/scatter.json
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_em import alternating_times, dump_json  # noqa: E402

import gaussmix.covariance  # noqa: F401  (registers the models before the numerics import)
from gaussmix import _kernels
from gaussmix._covariance_numerics import (
    _blocked_scatter,
    _packed_scatter,
    feature_blocks,
    packed_pairs,
    packed_scatter_wins,
)
from gaussmix.covariance import get_covariance_model

SHAPES = ((2, 3), (8, 4), (8, 16), (16, 4), (16, 8), (16, 16), (16, 64),
          (32, 8), (32, 16), (32, 64), (64, 16), (64, 64))


def _chunk_rows(n_features: int, n_components: int, dtype, packed: bool) -> int:
    """The E-step's chunk size for full covariance, were this form the one chosen."""
    model = get_covariance_model("full")
    widest = max(stop - start for start, stop in feature_blocks(n_features))
    temporaries = n_components * widest
    if packed:
        temporaries = max(temporaries, packed_pairs(n_features))
    width = temporaries + n_components + n_features
    return _kernels.chunk_size_for(
        n_components, n_features, np.dtype(dtype).itemsize, width, model.chunk_bytes
    )


def measure(n_features: int, n_components: int, dtype, repeats: int) -> dict:
    """Median seconds per row of both forms, each on a chunk of its own size, alternating."""
    rng = np.random.default_rng([n_features, n_components])
    rows = {form: _chunk_rows(n_features, n_components, dtype, form == "packed")
            for form in ("packed", "blocked")}
    n_rows = max(rows.values())
    centred_t = rng.standard_normal((n_features, n_rows)).astype(dtype)
    resp = rng.dirichlet(np.ones(n_components), size=n_rows).T.astype(dtype)
    blocks = feature_blocks(n_features)
    inputs = {
        form: (np.ascontiguousarray(centred_t[:, : rows[form]]),
               np.ascontiguousarray(resp[:, : rows[form]]))
        for form in rows
    }
    forms = {
        "packed": lambda: _packed_scatter(*inputs["packed"]),
        "blocked": lambda: _blocked_scatter(*inputs["blocked"], blocks),
    }
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = alternating_times(forms, repeats)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    common = min(rows.values())
    packed = _packed_scatter(centred_t[:, :common], resp[:, :common])
    blocked = _blocked_scatter(centred_t[:, :common], resp[:, :common], blocks)
    return {
        "d": n_features, "k": n_components, "dtype": np.dtype(dtype).name,
        "packed_rows": rows["packed"], "blocked_rows": rows["blocked"],
        "packed_s_per_row": statistics.median(times["packed"]) / rows["packed"],
        "blocked_s_per_row": statistics.median(times["blocked"]) / rows["blocked"],
        "picked": "packed" if packed_scatter_wins(n_components, n_features) else "blocked",
        "rel_diff": float(np.abs(packed - blocked).max() / np.abs(blocked).max()),
        "page_faults_per_call": faults / (2 * repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print(f"{'D':>3} {'K':>3} {'dtype':>8} {'rows p/b':>11} {'packed ns/row':>14} "
          f"{'blocked ns/row':>15} {'ratio':>6} {'picked':>8} {'rel diff':>9} {'faults':>7}")
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(1) as worker:
        for n_features, n_components in SHAPES:
            for dtype in (np.float64, np.float32):
                row = worker.submit(
                    measure, n_features, n_components, dtype, args.repeats
                ).result()
                row["ratio_blocked_over_packed"] = (
                    row["blocked_s_per_row"] / row["packed_s_per_row"]
                )
                rows.append(row)
                print(f"{row['d']:>3} {row['k']:>3} {row['dtype']:>8} "
                      f"{row['packed_rows']:>5}/{row['blocked_rows']:<5} "
                      f"{row['packed_s_per_row'] * 1e9:>14.0f} {row['blocked_s_per_row'] * 1e9:>15.0f} "
                      f"{row['ratio_blocked_over_packed']:>6.2f} {row['picked']:>8} "
                      f"{row['rel_diff']:>9.1e} {row['page_faults_per_call']:>7.1f}", flush=True)
    wrong = [r for r in rows if (r["ratio_blocked_over_packed"] > 1) != (r["picked"] == "packed")]
    print(f"\nThe rule picks the faster form in {len(rows) - len(wrong)} of {len(rows)} cells"
          + ("" if not wrong else ": not in " + ", ".join(
              f"D={r['d']} K={r['k']} {r['dtype']} ({r['ratio_blocked_over_packed']:.2f})"
              for r in wrong)))
    if args.json:
        dump_json(args.json, {"rows": rows})
        print(f"Results written to {args.json}")


if __name__ == "__main__":
    main()
