"""How much work other k-means bounds would leave, simulated beside Hamerly's.

The compiled k-means (``gaussmix.kmeans``) settles rows with Hamerly's two
bounds: per row an upper bound on the distance to its own centre, widened
each iteration by that centre's shift, and one lower bound on the distance
to any other, narrowed by the largest shift of the others.  This script runs
Lloyd's iterations in numpy on ``bench_em``'s data from scikit-learn's
k-means++ seeds, with every distance computed, and counts per iteration what
three bounds would leave to compute:

hamerly
    rows whose widened bounds do not settle them (their own distance is
    recomputed) and, of those, rows still unsettled (compared with every
    centre), as ``gaussmix.kmeans`` runs;
displacement
    the same two bounds, each moved by how far the centres are from where
    they were when the row was last checked (one displacement, not the sum
    of the iterations' shifts);
elkan
    one lower bound per centre (Elkan 2003): distances computed, as a
    fraction of all n x K, leaving aside the pass over the n x K bounds.

Labels are Lloyd's either way; the counts are what differs.

Usage::

    python bench/bench_kmeans_bounds.py                  # three shapes, about 1 min
    python bench/bench_kmeans_bounds.py --n 1e5 --dk 16x16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.cluster._kmeans import _kmeans_plusplus

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_em  # noqa: E402


def _distances(Xc, row_sq, centers):
    return np.sqrt(np.maximum(row_sq[:, None] - 2 * Xc @ centers.T + (centers**2).sum(1), 0))


def _half_gaps(centers):
    gaps = np.sqrt(((centers[:, None] - centers[None]) ** 2).sum(-1))
    np.fill_diagonal(gaps, np.inf)
    return 0.5 * gaps.min(1)


def lloyd_centres(Xc, k, seed, max_iter=300, tol=1e-4):
    """Lloyd's centres at every iteration from scikit-learn's seeds, and the first labels."""
    row_sq = np.einsum("ij,ij->i", Xc, Xc)
    centers, _ = _kmeans_plusplus(Xc, k, row_sq, np.ones(len(Xc)), np.random.RandomState(seed))
    history = [centers]
    threshold = tol * Xc.var(0).mean()
    for _ in range(max_iter):
        labels = _distances(Xc, row_sq, history[-1]).argmin(1)
        new = np.array([Xc[labels == j].mean(0) for j in range(k)])
        history.append(new)
        if ((new - history[-2]) ** 2).sum() <= threshold:
            break
    return history, row_sq


def simulate(Xc, history, row_sq):
    """Mean fractions per iteration: hamerly and displacement (own, compared), elkan."""
    n, k = len(Xc), history[0].shape[0]
    rows = np.arange(n)
    dist = _distances(Xc, row_sq, history[0])
    ordered = np.sort(dist, 1)
    labels = dist.argmin(1)
    upper_h, lower_h = ordered[:, 0].copy(), ordered[:, 1].copy()
    upper_d, lower_d = upper_h.copy(), lower_h.copy()
    checked_u, checked_l = np.zeros(n, int), np.zeros(n, int)
    labels_d = labels.copy()
    lower_e, upper_e, labels_e = dist.copy(), upper_h.copy(), labels.copy()
    counts = []
    for t in range(1, len(history)):
        centers = history[t]
        shift = np.sqrt(((centers - history[t - 1]) ** 2).sum(1))
        dist = _distances(Xc, row_sq, centers)
        ordered = np.sort(dist, 1)
        best = dist.argmin(1)
        gaps = _half_gaps(centers)
        # Hamerly.
        order = np.argsort(shift)
        upper_h += shift[labels]
        lower_h -= np.where(labels == order[-1], shift[order[-2]], shift[order[-1]])
        bound = np.maximum(lower_h, gaps[labels])
        own_h = ~(bound > upper_h)
        upper_h[own_h] = dist[rows[own_h], labels[own_h]]
        compared_h = own_h & ~(bound > upper_h)
        upper_h[compared_h], lower_h[compared_h] = ordered[compared_h, 0], ordered[compared_h, 1]
        labels[compared_h] = best[compared_h]
        # Displacement since each row was last checked.
        moved = np.sqrt(((np.array(history[: t + 1]) - centers) ** 2).sum(-1))  # (t+1, k)
        top = np.sort(moved, 1)
        others = np.where(
            np.arange(k)[None, :] == moved.argmax(1)[:, None], top[:, -2:-1], top[:, -1:]
        )
        upper = upper_d + moved[checked_u, labels_d]
        lower = lower_d - others[checked_l, labels_d]
        bound = np.maximum(lower, gaps[labels_d])
        own_d = ~(bound > upper)
        upper_d[own_d] = dist[rows[own_d], labels_d[own_d]]
        checked_u[own_d] = t
        upper = np.where(own_d, upper_d, upper)
        compared_d = own_d & ~(bound > upper)
        upper_d[compared_d], lower_d[compared_d] = ordered[compared_d, 0], ordered[compared_d, 1]
        labels_d[compared_d] = best[compared_d]
        checked_u[compared_d] = checked_l[compared_d] = t
        # Elkan: one lower bound per centre.
        lower_e -= shift[None, :]
        upper_e += shift[labels_e]
        others_e = lower_e.copy()
        others_e[rows, labels_e] = np.inf
        need = ~(np.maximum(others_e.min(1), gaps[labels_e]) > upper_e)
        upper_e[need] = dist[need, labels_e[need]]
        candidates = need[:, None] & (lower_e < upper_e[:, None])
        candidates[rows, labels_e] = False
        lower_e[candidates] = dist[candidates]
        lower_e[rows, labels_e] = dist[rows, labels_e]
        nearest = np.where(candidates, dist, np.inf).argmin(1)
        better = need & (dist[rows, nearest] < upper_e)
        labels_e = np.where(better, nearest, labels_e)
        upper_e = np.where(better, dist[rows, labels_e], upper_e)
        counts.append((
            own_h.mean(), compared_h.mean(), own_d.mean(), compared_d.mean(),
            (need.sum() + candidates.sum()) / (n * k),
        ))
    assert np.array_equal(labels, labels_d) and np.array_equal(labels, labels_e)
    return np.mean(counts, axis=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=bench_em.parse_n, default=None)
    parser.add_argument("--dk", type=bench_em.parse_dk, nargs="+", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cells = (
        [(args.n or 100_000, d, k) for d, k in args.dk] if args.dk
        else [(args.n or 100_000, 16, 16), (args.n or 30_000, 16, 64), (args.n or 30_000, 64, 16)]
    )
    print("Overlapping clusters (bench_em.make_mixture, separation 1). Mean fraction per iteration:")
    print("       N   D   K  iters   hamerly own  compared   displacement own  compared   elkan distances")
    for n, d, k in cells:
        X = bench_em.make_mixture(n, d, k, 1.0, args.seed)
        Xc = X - X.mean(0)
        history, row_sq = lloyd_centres(Xc, k, args.seed)
        own_h, comp_h, own_d, comp_d, elkan = simulate(Xc, history, row_sq)
        print(
            f"{n:8d} {d:3d} {k:3d} {len(history) - 1:6d}   {own_h:11.3f} {comp_h:9.3f}"
            f"   {own_d:16.3f} {comp_d:9.3f}   {elkan:15.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
