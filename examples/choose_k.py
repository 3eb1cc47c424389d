"""Choosing the number of components and the covariance type with BIC.

As in scikit-learn's classic example "Gaussian Mixture Model Selection": a
mixture is fitted for every K = 1..6 and each of the four covariance types
(``spherical``, ``tied``, ``diag``, ``full``), and the Bayesian information
criterion ``-2 log L + p log n`` (lower is better) weighs the fit against the
number of parameters.  The data are generated from three 2-D Gaussians of
different sizes, shapes and orientations, so BIC should pick K = 3 with
``full`` covariances; AIC, whose penalty does not grow with n, is shown
beside it and tends to allow more components.

The same question is then put to :func:`gaussmix.select_model` over mclust's
14 covariance models, which can find a more parsimonious model than ``full``
when the data allow it: here two of the three clusters are round, so any
orientation suits them and a model with one common orientation (``VVE``)
fits as well with fewer parameters.

Run: ``python examples/choose_k.py [--out DIR]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gaussmix import select_model  # noqa: E402
from gaussmix.plotting import plot_clusters  # noqa: E402

COVARIANCE_TYPES = ("spherical", "tied", "diag", "full")
TRUE_K = 3


def make_data(n: int, rng: np.random.Generator) -> np.ndarray:
    """Three clusters: a round one, a stretched tilted one, a small tight one."""
    round_ = rng.normal(0.0, 1.0, size=(n // 2, 2))
    tilted = rng.normal(0.0, 1.0, size=(n // 3, 2)) @ np.array([[2.0, 0.9], [0.0, 0.5]]) \
        + [6.0, 5.0]
    tight = rng.normal(0.0, 0.4, size=(n - n // 2 - n // 3, 2)) + [-1.0, 6.0]
    return np.vstack([round_, tilted, tight])


def main(out: str | Path = "examples/output", n_samples: int = 600, max_k: int = 6,
         with_mclust: bool = True, random_state: int = 0) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    X = make_data(n_samples, np.random.default_rng(random_state))
    ks = np.arange(1, max_k + 1)

    # select_model fits the whole grid at once, cells in parallel processes;
    # it is the same as a GaussianMixture(k, covariance_type=..., tol=1e-5,
    # max_iter=1000) per cell (EM run further than scikit-learn's defaults).
    # A few starts per cell: with one, a local optimum at some K can make
    # the BIC curve jagged and the choice depend on the seed.
    grid = select_model(X, n_components=ks, covariance_types=COVARIANCE_TYPES,
                        n_init=3, random_state=random_state)
    cell = {(row["covariance_type"], row["n_components"]): row for row in grid.table}
    bic = np.array([[cell[kind, k]["bic"] for k in ks] for kind in COVARIANCE_TYPES])
    aic = np.array([[cell[kind, k]["aic"] for k in ks] for kind in COVARIANCE_TYPES])
    i, j = np.unravel_index(np.argmin(bic), bic.shape)
    best_kind, best_k = COVARIANCE_TYPES[i], int(ks[j])
    best_model = grid.estimators_[best_kind, best_k]
    aic_i, aic_j = np.unravel_index(np.argmin(aic), aic.shape)

    fig, (bars, clusters) = plt.subplots(1, 2, figsize=(12, 5))
    width = 0.2
    for t, kind in enumerate(COVARIANCE_TYPES):
        bars.bar(ks + (t - 1.5) * width, bic[t], width, label=kind, color=f"C{t}")
    bars.set_ylim(bic.min() - 0.05 * np.ptp(bic), bic.max() + 0.02 * np.ptp(bic))
    bars.text(best_k + (i - 1.5) * width, bic[i, j], "*",
              ha="center", va="bottom", fontsize=22)
    bars.set_xticks(ks)
    bars.set_xlabel("number of components K")
    bars.set_ylabel("BIC (lower is better)")
    bars.set_title(f"BIC per model; best (*): K = {best_k}, {best_kind!r}")
    bars.legend(title="covariance_type")
    plot_clusters(best_model, X, ax=clusters)
    clusters.set_title(f"Winning model: K = {best_k}, covariance_type={best_kind!r}")
    fig.tight_layout()
    figure_path = out / "choose_k.png"
    fig.savefig(figure_path, dpi=72)
    plt.close(fig)

    print(f"{n_samples} points from {TRUE_K} generated Gaussian clusters.")
    print("BIC (rows: covariance type, columns: K = " + ", ".join(map(str, ks)) + ")")
    for t, kind in enumerate(COVARIANCE_TYPES):
        print(f"  {kind:9s} " + " ".join(f"{v:8.1f}" for v in bic[t]))
    print(f"Best by BIC: K = {best_k}, covariance_type={best_kind!r} "
          f"(BIC {bic[i, j]:.1f})")
    print(f"Best by AIC: K = {int(ks[aic_j])}, "
          f"covariance_type={COVARIANCE_TYPES[aic_i]!r} (AIC {aic[aic_i, aic_j]:.1f})")
    result = {"bic": bic, "aic": aic, "ks": ks, "best_k": best_k,
              "best_covariance_type": best_kind, "true_k": TRUE_K,
              "best_model": best_model, "X": X, "figure_path": figure_path}

    if with_mclust:
        # Equal volumes, shapes or orientations save parameters; BIC may
        # prefer such a model to 'full' when the clusters share them.
        selection = select_model(X, n_components=ks, random_state=random_state)
        print("mclust's 14 models with select_model:")
        print(selection.summary())
        result["mclust_best"] = selection.best_params_
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="examples/output", help="directory for the pictures")
    args = parser.parse_args()
    main(args.out)
