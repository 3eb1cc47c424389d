"""Accuracy of partial_fit (stepwise online EM) against the full-batch fit.

For each data set, a full-batch fit run to convergence (tol=1e-10) is the
reference; it and the streams start from the same parameters (k-means on
the first batch), so that the figures measure online against batch EM
rather than two initialisations' local optima.  A stream then feeds the same rows, shuffled, in batches, pass
after pass; after chosen passes the table shows the gap in mean
log-likelihood per sample and the largest difference of the means (after
matching components), and the same for an IID stream of fresh draws against
the generating parameters.

Usage::

    python bench/bench_partial_fit.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment

from gaussmix import GaussianMixture


def make_mixture(rng, n_components, n_features, separation):
    means = rng.normal(scale=separation, size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features)) / np.sqrt(n_features)
    covariances = factors @ np.swapaxes(factors, 1, 2) + 0.5 * np.eye(n_features)
    weights = rng.dirichlet(np.full(n_components, 5.0))
    return weights, means, covariances


def draw(rng, mixture, n):
    weights, means, covariances = mixture
    labels = rng.choice(len(weights), size=n, p=weights)
    X = np.empty((n, means.shape[1]))
    for k in range(len(weights)):
        rows = labels == k
        X[rows] = rng.multivariate_normal(means[k], covariances[k], size=rows.sum())
    return X


def mean_gap(a, b):
    """Largest |a_k - b_pi(k)| after the matching that minimises it."""
    cost = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


def run_case(name, n_components, n_features, n_samples, n_batches, passes, seed):
    rng = np.random.default_rng(seed)
    mixture = make_mixture(rng, n_components, n_features, separation=4.0)
    X = draw(rng, mixture, n_samples)
    order = rng.permutation(n_samples)
    # Both start from the same point, k-means on the stream's first batch:
    # the comparison measures online against batch EM, not two inits' optima.
    first = X[order[: n_samples // n_batches]]
    seed = GaussianMixture(n_components, max_iter=0, random_state=0).fit(first)
    start_params = dict(
        weights_init=seed.weights_, means_init=seed.means_, precisions_init=seed.precisions_
    )
    start = time.perf_counter()
    full = GaussianMixture(n_components, tol=1e-10, max_iter=2000, **start_params).fit(X)
    full_time = time.perf_counter() - start
    stream = GaussianMixture(n_components, **start_params)
    rows = []
    start = time.perf_counter()
    for n_pass in range(1, max(passes) + 1):
        if n_pass > 1:
            order = rng.permutation(n_samples)
        for batch in np.array_split(X[order], n_batches):
            stream.partial_fit(batch)
        if n_pass in passes:
            same_passes = GaussianMixture(
                n_components, tol=0.0, max_iter=n_pass, **start_params
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                same_passes.fit(X)
            rows.append({
                "batch_em_same_passes_gap": float(full.score(X) - same_passes.score(X)),
                "case": name, "pass": n_pass,
                "loglik_gap": float(full.score(X) - stream.score(X)),
                "max_mean_diff": mean_gap(stream.means_, full.means_),
                "seconds": time.perf_counter() - start,
            })
    iid = GaussianMixture(n_components, **start_params)
    batch_rows = n_samples // n_batches
    for _ in range(n_batches * max(passes)):
        iid.partial_fit(draw(rng, mixture, batch_rows))
    truth_full = mean_gap(full.means_, mixture[1])
    truth_iid = mean_gap(iid.means_, mixture[1])
    return rows, {
        "case": name, "full_fit_seconds": full_time,
        "full_fit_mean_error_vs_truth": truth_full,
        "iid_stream_draws": batch_rows * n_batches * max(passes),
        "iid_stream_mean_error_vs_truth": truth_iid,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    cases = [
        ("D=2 K=3 N=2e4, 20 batches", 3, 2, 20_000, 20, (1, 5, 20), 0),
        ("D=16 K=16 N=1e5, 50 batches", 16, 16, 100_000, 50, (1, 5, 20), 1),
    ]
    table, iid = [], []
    for case in cases:
        rows, summary = run_case(*case)
        table += rows
        iid.append(summary)
    print("Gap to the converged full-batch fit, per sample, after n passes over the data:")
    print(f"{'case':30} {'pass':>4} {'partial_fit':>12} {'batch EM':>12} "
          f"{'max |mean diff|':>16} {'s':>7}")
    for row in table:
        print(f"{row['case']:30} {row['pass']:>4} {row['loglik_gap']:>12.3e} "
              f"{row['batch_em_same_passes_gap']:>12.3e} "
              f"{row['max_mean_diff']:>16.3e} {row['seconds']:>7.1f}")
    print()
    for row in iid:
        print(f"{row['case']}: IID stream of {row['iid_stream_draws']} draws, max mean error "
              f"vs truth {row['iid_stream_mean_error_vs_truth']:.3e} (full-batch fit on the "
              f"N rows: {row['full_fit_mean_error_vs_truth']:.3e})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"passes": table, "iid": iid}, handle, indent=2)


if __name__ == "__main__":
    main()
