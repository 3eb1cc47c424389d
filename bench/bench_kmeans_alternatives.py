"""Can the default start's k-means give scikit-learn's labels faster?

gaussmix's default start must be scikit-learn's k-means result (parity), and
for 'diag' and 'spherical' covariances that k-means is most of the default
fit (``bench_kmeans_share.py``).  Any faster route must end in the same
labels.  This script measures two such routes against scikit-learn's own
Lloyd k-means, as ``GaussianMixture`` runs it (``KMeans(K, n_init=1,
random_state=seed)``), per cell and alternating, minimum of ``--repeats``:

elkan
    scikit-learn's ``algorithm="elkan"`` (triangle-inequality bounds): the
    same iterations in exact arithmetic.
hamerly
    Hamerly's bounds (one upper and one lower bound per row), vectorised in
    numpy: each iteration recomputes distances only for rows whose bounds
    no longer prove their label, and moves the centre sums by the rows that
    changed.  Seeds, tolerance, stopping rule and the final relabelling are
    scikit-learn's; its k-means++ seeding is called as is.  No empty-cluster
    relocation: a cell where a cluster empties is reported, not timed.

Reported per cell: times, ratio (lloyd / route, above 1 = faster), whether
the labels equal Lloyd's, Lloyd's iterations, and for hamerly the fraction
of rows whose distances were recomputed per iteration.  float64 data from
``bench_em.make_mixture``; BLAS limited to one thread, as in gaussmix's fits.

Usage::

    python bench/bench_kmeans_alternatives.py              # about 3 minutes
    python bench/bench_kmeans_alternatives.py --json bench/results/kmeans-alt.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402

CELLS = [  # (N, D, K, separation)
    (10_000, 16, 16, "overlapping"), (10_000, 64, 16, "overlapping"),
    (10_000, 16, 64, "overlapping"), (100_000, 16, 16, "separated"),
    (100_000, 16, 16, "overlapping"), (100_000, 64, 16, "overlapping"),
    (100_000, 16, 64, "overlapping"),
]  # fmt: skip


def _nearest_two(Xc, sq_norms, centres):
    """Labels, distance to the nearest centre and to the second nearest."""
    distances = np.sum(centres**2, axis=1) - 2.0 * (Xc @ centres.T)
    labels = np.argmin(distances, axis=1)
    rows = np.arange(Xc.shape[0])
    nearest = distances[rows, labels]
    distances[rows, labels] = np.inf
    second = np.min(distances, axis=1)
    return (labels, np.sqrt(np.maximum(nearest + sq_norms, 0.0)),
            np.sqrt(np.maximum(second + sq_norms, 0.0)))


def hamerly_kmeans(X: np.ndarray, k: int, seed: int, max_iter: int = 300, tol: float = 1e-4):
    """Labels of scikit-learn's k-means run, by Hamerly's bounds; (labels, stats) or None.

    None where a cluster empties (scikit-learn relocates it; not reproduced).
    """
    Xc = X - X.mean(axis=0)
    tolerance = np.mean(np.var(Xc, axis=0)) * tol
    sq_norms = np.einsum("ij,ij->i", Xc, Xc)
    centres, _ = kmeans_plusplus(Xc, k, x_squared_norms=sq_norms,
                                 random_state=np.random.RandomState(seed))
    labels, upper, lower = _nearest_two(Xc, sq_norms, centres)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros_like(centres)
    np.add.at(sums, labels, Xc)
    recomputed, changed, strict, n_iter = 0, -1, False, 0
    for n_iter in range(1, max_iter + 1):
        if np.any(counts == 0):
            return None
        new_centres = sums / counts[:, None]
        shift = np.sqrt(np.sum((new_centres - centres) ** 2, axis=1))
        centres = new_centres
        if changed == 0:
            strict = True
            break
        if np.sum(shift**2) <= tolerance:
            break
        upper += shift[labels]
        order = np.argsort(shift)
        lower -= np.where(labels == order[-1], shift[order[-2]], shift[order[-1]])
        gaps = np.sum(centres**2, axis=1)[:, None] - 2.0 * centres @ centres.T
        gaps += np.sum(centres**2, axis=1)[None, :]
        np.fill_diagonal(gaps, np.inf)
        bound = np.maximum(0.5 * np.sqrt(np.maximum(gaps.min(axis=1), 0.0))[labels], lower)
        rows = np.flatnonzero(upper > bound)
        if rows.size:
            diff = Xc[rows] - centres[labels[rows]]
            upper[rows] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            rows = rows[upper[rows] > bound[rows]]
        recomputed += rows.size
        changed = 0
        if rows.size:
            old = labels[rows]
            new, upper[rows], lower[rows] = _nearest_two(Xc[rows], sq_norms[rows], centres)
            labels[rows] = new
            moved = new != old
            changed = int(np.count_nonzero(moved))
            if changed:
                np.add.at(sums, new[moved], Xc[rows[moved]])
                np.subtract.at(sums, old[moved], Xc[rows[moved]])
                counts += (np.bincount(new[moved], minlength=k)
                           - np.bincount(old[moved], minlength=k))
    if not strict:  # as scikit-learn: relabel with the final centres
        labels = _nearest_two(Xc, sq_norms, centres)[0]
    return labels, {"recomputed_per_iter": recomputed / (Xc.shape[0] * n_iter)}


def _timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def measure_cell(n, d, k, sep, seed, repeats) -> dict:
    X = bench_em.make_mixture(n, d, k, bench_em.SEPARATIONS[sep], seed)
    routes = {
        "lloyd": lambda: KMeans(k, n_init=1, random_state=np.random.RandomState(seed)).fit(X),
        "elkan": lambda: KMeans(k, n_init=1, random_state=np.random.RandomState(seed),
                                algorithm="elkan").fit(X),
        "hamerly": lambda: hamerly_kmeans(X, k, seed),
    }
    times = {name: [] for name in routes}
    results = {}
    with threadpool_limits(1, "blas"):
        for repeat in range(repeats):
            names = list(routes) if repeat % 2 == 0 else list(routes)[::-1]
            for name in names:
                seconds, results[name] = _timed(routes[name])
                times[name].append(seconds)
    lloyd = results["lloyd"].labels_
    hamerly = results["hamerly"]
    row = {"n": n, "d": d, "k": k, "sep": sep, "lloyd_n_iter": int(results["lloyd"].n_iter_),
           "times_s": times, "lloyd_s": min(times["lloyd"]), "elkan_s": min(times["elkan"]),
           "elkan_labels_equal": bool(np.array_equal(results["elkan"].labels_, lloyd))}
    row["elkan_speedup"] = row["lloyd_s"] / row["elkan_s"]
    if hamerly is None:
        row.update(hamerly_s=None, hamerly_speedup=None, hamerly_labels_equal=None,
                   hamerly_recomputed=None)
    else:
        row.update(hamerly_s=min(times["hamerly"]),
                   hamerly_speedup=row["lloyd_s"] / min(times["hamerly"]),
                   hamerly_labels_equal=bool(np.array_equal(hamerly[0], lloyd)),
                   hamerly_recomputed=hamerly[1]["recomputed_per_iter"])
    return row


def print_row(r: dict) -> None:
    same = {True: "same", False: "DIFF", None: "-"}
    print(f"{bench_em.fmt_n(r['n']):>5} {r['d']:>3} {r['k']:>3} {bench_em.SEP_SHORT[r['sep']]:>4}"
          f"  {r['lloyd_n_iter']:>4}  {r['lloyd_s']:7.3f}  {r['elkan_s']:7.3f} "
          f"{r['elkan_speedup']:5.2f} {same[r['elkan_labels_equal']]:>5}  "
          f"{bench_em.fmt(r['hamerly_s'], '7.3f'):>7} {bench_em.fmt(r['hamerly_speedup'], '5.2f'):>5} "
          f"{same[r['hamerly_labels_equal']]:>5} {bench_em.fmt(r['hamerly_recomputed'], '6.2f'):>6}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the rows and medians here")
    options = parser.parse_args(argv)
    started = time.perf_counter()
    env = bench_em.environment()
    bench_em.print_environment(env)
    print("    N   D   K  sep  iter  lloyd s  elkan s  x    labels  hamerly s  x  labels  rows/it")
    rows = []
    for cell in CELLS:
        rows.append(measure_cell(*cell, options.seed, options.repeats))
        print_row(rows[-1])
    timed = [r["hamerly_speedup"] for r in rows if r["hamerly_speedup"] is not None]
    summary = {
        "elkan_speedup_median": statistics.median(r["elkan_speedup"] for r in rows),
        "hamerly_speedup_median": statistics.median(timed) if timed else None,
        "labels_equal": {route: sum(bool(r[f"{route}_labels_equal"]) for r in rows)
                         for route in ("elkan", "hamerly")},
        "cells": len(rows),
    }
    print(f"\nMedian speed-up over scikit-learn's Lloyd (x > 1: faster): elkan "
          f"{summary['elkan_speedup_median']:.2f}, hamerly "
          f"{bench_em.fmt(summary['hamerly_speedup_median'], '.2f')}; labels equal to Lloyd's: "
          f"elkan {summary['labels_equal']['elkan']}, hamerly "
          f"{summary['labels_equal']['hamerly']} of {len(rows)} cells")
    return bench_em.finish(started, options.json, env, rows, summary)


if __name__ == "__main__":
    sys.exit(main())
