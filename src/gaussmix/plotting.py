"""Matplotlib views of a fitted mixture and of model-selection criteria.

Every function draws on the ``ax`` it is given, or on a new figure when
``ax`` is None, and returns the Axes.  Matplotlib is imported inside the
functions so that ``import gaussmix`` stays light and never picks a backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["covariances_2d", "plot_clusters", "plot_criterion", "plot_selection"]

_LINESTYLES = ("-", "--", ":", "-.")
_CRITERIA = ("bic", "aic")
_K_COLUMNS = ("n_components", "k")
# One marker per covariance model: colours repeat after ten lines.
_MARKERS = ("o", "s", "^", "v", "D", "<", ">", "p", "h", "X", "P", "d", "8", "H")


def covariances_2d(gmm) -> np.ndarray:
    """The 2x2 covariance of the first two features for each component.

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture with at least two features.

    Returns
    -------
    covariances : ndarray of shape (n_components, 2, 2)
        Built from ``gmm.covariances_`` according to ``gmm.covariance_type``.
    """
    covariances = np.asarray(gmm.covariances_, dtype=np.float64)
    n_components, n_features = np.shape(gmm.means_)
    if n_features < 2:
        raise ValueError(
            f"Plotting clusters needs at least 2 features, the mixture has {n_features}."
        )
    kind = gmm.covariance_type
    if kind == "full":
        return covariances[:, :2, :2].copy()
    if kind == "tied":
        return np.repeat(covariances[None, :2, :2], n_components, axis=0)
    if kind == "diag":
        return np.stack([np.diag(c[:2]) for c in covariances])
    if kind == "spherical":
        return covariances[:, None, None] * np.eye(2)
    raise ValueError(f"Cannot plot covariance_type {kind!r}.")


def _ellipse_geometry(covariance: np.ndarray, n_std: float) -> tuple[float, float, float]:
    """Width, height and angle (degrees) of the ``n_std`` contour of a 2x2 covariance."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    # eigh sorts ascending; the width runs along the major axis.
    major = eigenvectors[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0]))
    # Clip rounding noise so a singular direction gives a flat ellipse, not NaN.
    minor_sd, major_sd = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return 2.0 * n_std * major_sd, 2.0 * n_std * minor_sd, angle


def _feature_labels(gmm) -> tuple[str, str]:
    names = getattr(gmm, "feature_names_in_", None)
    if names is not None:
        return str(names[0]), str(names[1])
    return "feature 0", "feature 1"


def _new_axes():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    return ax


def plot_clusters(gmm, X, ax=None, n_std: Sequence[float] = (1, 2, 3)):
    """Scatter ``X`` coloured by predicted component, with covariance ellipses.

    Only the first two features are drawn; each component gets one ellipse
    per entry of ``n_std``, the contour at that many standard deviations
    (Mahalanobis distance) from its mean.

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture of any ``covariance_type``.
    X : array-like of shape (n_samples, n_features)
        Points to draw; their colours come from ``gmm.predict(X)``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when None.
    n_std : sequence of float, default=(1, 2, 3)
        Radii of the ellipses, in standard deviations.

    Returns
    -------
    ax : matplotlib.axes.Axes
        Ellipse patches carry the gid ``"component-{k}-{n_std}sigma"``.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    covariances = covariances_2d(gmm)
    labels = gmm.predict(X)
    points = np.asarray(X, dtype=np.float64)[:, :2]
    means = np.asarray(gmm.means_, dtype=np.float64)[:, :2]
    ax = _new_axes() if ax is None else ax
    colors = [f"C{k % 10}" for k in range(len(means))]

    for k, color in enumerate(colors):
        members = points[labels == k]
        ax.scatter(members[:, 0], members[:, 1], s=12, color=color, alpha=0.6,
                   label=f"component {k} (weight {gmm.weights_[k]:.2f})")
        for i, radius in enumerate(n_std):
            width, height, angle = _ellipse_geometry(covariances[k], radius)
            ellipse = Ellipse(means[k], width, height, angle=angle, fill=False,
                              edgecolor=color, linewidth=1.5,
                              linestyle=_LINESTYLES[i % len(_LINESTYLES)])
            ellipse.set_gid(f"component-{k}-{radius:g}sigma")
            ax.add_patch(ellipse)
    ax.scatter(means[:, 0], means[:, 1], marker="x", s=80, color="black", label="means")

    # Proxy handles: one legend entry per sigma level, not per ellipse.
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="grey", linestyle=_LINESTYLES[i % len(_LINESTYLES)],
               label=f"{radius:g} sigma")
        for i, radius in enumerate(n_std)
    ]
    ax.legend(handles=handles, fontsize="small", loc="best")
    xlabel, ylabel = _feature_labels(gmm)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(
        f"{len(means)} components, covariance_type={gmm.covariance_type!r}"
    )
    ax.autoscale_view()
    return ax


def _as_columns(table: Any) -> dict[str, list]:
    """Column lists, lower-cased keys, from a dict of columns, rows or a DataFrame."""
    if hasattr(table, "to_dict") and not isinstance(table, Mapping):
        table = table.to_dict(orient="list")
    if isinstance(table, Mapping):
        return {str(key).lower(): list(values) for key, values in table.items()}
    rows = list(table)
    if not rows or not all(isinstance(row, Mapping) for row in rows):
        raise ValueError("A criterion table must be a dict of columns or a list of row dicts.")
    keys = {str(key).lower(): key for key in rows[0]}
    return {low: [row[key] for row in rows] for low, key in keys.items()}


def plot_criterion(table_or_dict, ax=None, *, mark_best: bool = True):
    """Information criteria (BIC and/or AIC) against the number of components.

    Parameters
    ----------
    table_or_dict : mapping, sequence of mappings or DataFrame
        Columns ``n_components`` (or ``k``), and ``bic`` and/or ``aic``
        (any letter case); an optional ``covariance_type`` column gives one
        line per criterion and covariance type.  Either a dict of columns,
        a list of row dicts or a pandas DataFrame.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when None.
    mark_best : bool, default=True
        Mark each line's minimum with a star and name its K in the legend.

    Returns
    -------
    ax : matplotlib.axes.Axes
        One line per criterion (and covariance type), labelled e.g.
        ``"BIC"`` or ``"BIC (full)"``, followed by the best K when marked.
    """
    from matplotlib.ticker import MaxNLocator

    columns = _as_columns(table_or_dict)
    k_key = next((key for key in _K_COLUMNS if key in columns), None)
    criteria = [name for name in _CRITERIA if name in columns]
    if k_key is None or not criteria:
        raise ValueError(
            "A criterion table needs an 'n_components' (or 'k') column and a "
            f"'bic' and/or 'aic' column; got columns {sorted(columns)}."
        )
    ks = np.asarray(columns[k_key], dtype=np.int64)
    kinds = columns.get("covariance_type")
    groups = [None] if kinds is None else list(dict.fromkeys(kinds))
    ax = _new_axes() if ax is None else ax

    for g, kind in enumerate(groups):
        rows = np.arange(len(ks)) if kind is None else np.flatnonzero(
            [value == kind for value in kinds]
        )
        rows = rows[np.argsort(ks[rows], kind="stable")]
        for c, criterion in enumerate(criteria):
            values = np.asarray(columns[criterion], dtype=np.float64)[rows]
            # With several covariance types colour tells the types apart and
            # line style the criteria; otherwise colour alone tells criteria.
            several = len(groups) > 1
            color = f"C{g % 10}" if several else f"C{c % 10}"
            linestyle = _LINESTYLES[c % len(_LINESTYLES)] if several else "-"
            label = criterion.upper() if kind is None else f"{criterion.upper()} ({kind})"
            if mark_best:
                best = int(np.nanargmin(values))
                label += f", best K = {ks[rows][best]}"
                ax.scatter(ks[rows][best], values[best], marker="*", s=200,
                           color=color, edgecolor="black", zorder=3)
            ax.plot(ks[rows], values, marker="o", color=color, linestyle=linestyle,
                    label=label)

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel("criterion (lower is better)")
    ax.set_title("Model selection")
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_selection(result, ax=None, criterion: str = "bic"):
    """A criterion against K, one line per covariance model, as mclust's ``plot(mclustBIC)``.

    Parameters
    ----------
    result : SelectionResult, or its table
        From :func:`gaussmix.select_model`; a table is a list of row dicts, a
        dict of columns or a DataFrame with columns ``covariance_type``,
        ``n_components`` and the criterion.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when None.
    criterion : {'bic', 'aic', 'icl'}, default='bic'
        The column to draw; lower is better.

    Returns
    -------
    ax : matplotlib.axes.Axes
        One line per covariance model, labelled with its name, in the order
        of the table; a cell that failed (NaN) leaves a gap.  The best cell
        is circled by a scatter of gid ``"best"``.
    """
    from matplotlib.ticker import MaxNLocator

    columns = _as_columns(getattr(result, "table", result))
    criterion = criterion.lower()
    missing = [c for c in ("covariance_type", "n_components", criterion) if c not in columns]
    if missing:
        raise ValueError(
            f"A selection table needs the columns {missing}; got columns {sorted(columns)}."
        )
    ks = np.asarray(columns["n_components"], dtype=np.int64)
    values = np.asarray(columns[criterion], dtype=np.float64)
    kinds = columns["covariance_type"]
    ax = _new_axes() if ax is None else ax

    for g, kind in enumerate(dict.fromkeys(kinds)):
        rows = np.flatnonzero([value == kind for value in kinds])
        rows = rows[np.argsort(ks[rows], kind="stable")]
        ax.plot(ks[rows], values[rows], marker=_MARKERS[g % len(_MARKERS)],
                color=f"C{g % 10}", linestyle="-" if g < 10 else "--", label=str(kind))
    if np.any(np.isfinite(values)):
        best = int(np.nanargmin(values))
        ax.scatter(ks[best], values[best], s=300, facecolors="none", edgecolors="black",
                   linewidths=2, zorder=3, gid="best",
                   label=f"best: {kinds[best]}, K = {ks[best]}")

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_title(f"Model selection by {criterion.upper()}")
    ax.legend(fontsize="small", loc="best", ncol=2 if len(set(kinds)) > 7 else 1)
    return ax
