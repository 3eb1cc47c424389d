"""A self-contained demonstration on generated data: fit, select K, draw.

The figures are drawn on :class:`matplotlib.figure.Figure` objects rendered
by the Agg canvas, so the demo never opens a window and never changes the
pyplot backend of the calling process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .estimator import GaussianMixture

__all__ = ["BLOB_MEANS", "BLOB_COVARIANCES", "BLOB_SIZES", "make_blobs", "run_demo"]

# Three well-separated blobs of different sizes, shapes and orientations.
BLOB_MEANS = np.array([[0.0, 0.0], [8.0, 2.0], [3.0, 8.0]])
BLOB_COVARIANCES = np.array(
    [
        [[2.0, 0.9], [0.9, 1.0]],
        [[0.5, -0.3], [-0.3, 1.2]],
        [[0.4, 0.0], [0.0, 0.4]],
    ]
)
BLOB_SIZES = (120, 100, 80)
K_RANGE = range(1, 7)


def make_blobs(random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate 300 points from the three 2-D Gaussian blobs of the demo.

    Parameters
    ----------
    random_state : int, default=0
        Seed of the :func:`numpy.random.default_rng` generator.

    Returns
    -------
    X : ndarray of shape (300, 2)
        The generated points, shuffled.
    y : ndarray of shape (300,)
        The blob each point was drawn from.
    """
    rng = np.random.default_rng(random_state)
    X = np.vstack(
        [
            rng.multivariate_normal(mean, cov, size)
            for mean, cov, size in zip(BLOB_MEANS, BLOB_COVARIANCES, BLOB_SIZES)
        ]
    )
    y = np.repeat(np.arange(len(BLOB_SIZES)), BLOB_SIZES)
    order = rng.permutation(len(X))
    return X[order], y[order]


def _criteria_table(X: np.ndarray, random_state: int) -> list[dict[str, Any]]:
    table = []
    for k in K_RANGE:
        gmm = GaussianMixture(k, covariance_type="full", random_state=random_state).fit(X)
        table.append(
            {
                "n_components": k,
                "covariance_type": "full",
                "bic": gmm.bic(X),
                "aic": gmm.aic(X),
            }
        )
    return table


def _save(draw, path: Path, figsize: tuple[float, float]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    draw(fig.subplots())
    fig.savefig(path, dpi=100)


def run_demo(out_dir, random_state: int = 0) -> dict[str, Any]:
    """Fit a 3-component mixture to generated blobs and select K by BIC and AIC.

    The data are 300 generated points from three 2-D Gaussian blobs (see
    :func:`make_blobs`).  A ``GaussianMixture(3)`` is fitted to them, BIC
    and AIC are computed for K = 1..6 with full covariances, and two
    figures are written: ``clusters.png`` (points coloured by component with
    1, 2 and 3 sigma ellipses) and ``criteria.png`` (BIC and AIC against K,
    the best K marked).

    Parameters
    ----------
    out_dir : str or path-like
        Directory for the figures; created if missing.
    random_state : int, default=0
        Seeds both the data generator and the fits.

    Returns
    -------
    result : dict
        ``weights`` (n_components,), ``means`` (n_components, 2) and
        ``covariances`` of the fitted 3-component model; ``table``, a list of
        rows ``{"n_components", "covariance_type", "bic", "aic"}``;
        ``best_k`` (by BIC) and ``best_k_aic``; ``n_samples``; and
        ``paths``, a dict with the absolute paths of the ``"clusters"`` and
        ``"criteria"`` PNGs.
    """
    from .plotting import plot_clusters, plot_criterion

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    X, _ = make_blobs(random_state)
    gmm = GaussianMixture(3, random_state=random_state).fit(X)
    table = _criteria_table(X, random_state)

    paths = {"clusters": out_dir / "clusters.png", "criteria": out_dir / "criteria.png"}
    _save(lambda ax: plot_clusters(gmm, X, ax=ax), paths["clusters"], (7.0, 6.0))
    _save(lambda ax: plot_criterion(table, ax=ax), paths["criteria"], (7.0, 4.5))

    def best(criterion: str) -> int:
        return min(table, key=lambda row: row[criterion])["n_components"]

    return {
        "n_samples": len(X),
        "weights": gmm.weights_,
        "means": gmm.means_,
        "covariances": gmm.covariances_,
        "table": table,
        "best_k": best("bic"),
        "best_k_aic": best("aic"),
        "paths": paths,
    }
