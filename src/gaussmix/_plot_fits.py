"""Plots of fits and model selection: criteria against K and the EM trace.

Each function draws on the Axes it is given, or on a new one, and returns
it; matplotlib is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["plot_criterion", "plot_log_likelihood_trace", "plot_selection"]

_LINESTYLES = ("-", "--", ":", "-.")
_CRITERIA = ("bic", "aic")
_K_COLUMNS = ("n_components", "k")
# One marker per covariance model: colours repeat after ten lines.
_MARKERS = ("o", "s", "^", "v", "D", "<", ">", "p", "h", "X", "P", "d", "8", "H")


def _new_axes():
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    return ax


def _as_columns(table: Any) -> dict[str, list]:
    """Column lists, lower-cased keys, from a dict of columns, rows or a DataFrame.

    Also from a :class:`~gaussmix.SelectionResult` and from the document
    that ``gaussmix select --json`` writes: their ``table``.
    """
    if hasattr(table, "table") and not hasattr(table, "to_dict") and not isinstance(
        table, Mapping
    ):  # a SelectionResult, not a DataFrame with a column named "table"
        table = table.table
    elif isinstance(table, Mapping) and isinstance(table.get("table"), list):
        table = table["table"]
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
    table_or_dict : mapping, sequence of mappings, DataFrame or SelectionResult
        Columns ``n_components`` (or ``k``), and ``bic`` and/or ``aic``
        (any letter case); an optional ``covariance_type`` column gives one
        line per criterion and covariance type.  Either a dict of columns,
        a list of row dicts, a pandas DataFrame, or what holds one as its
        ``table`` (a :class:`~gaussmix.SelectionResult`, the document of
        ``gaussmix select --json``).
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
            if mark_best and np.any(np.isfinite(values)):  # a type may fail everywhere
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
        ``n_components`` and the criterion; or the document that
        ``gaussmix select --json`` writes.
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

    columns = _as_columns(result)
    criterion = str(criterion).lower()
    if criterion not in ("bic", "aic", "icl"):
        # Any other column would be drawn as a criterion, "lower is better".
        raise ValueError(f"criterion must be 'bic', 'aic' or 'icl', got {criterion!r}.")
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

def plot_log_likelihood_trace(gmm, ax=None):
    """The EM trace of the best start: mean log-likelihood per sample by iteration.

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture; ``gmm.lower_bounds_`` holds the trace.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when None.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The trace is a line of gid ``"trace"`` at iterations 1, 2, ...; its
        last point is marked by a scatter of gid ``"convergence"``, a star
        labelled "converged at iteration n" when EM converged, a cross
        labelled "stopped at iteration n (not converged)" otherwise.
    """
    check_is_fitted(gmm)
    from matplotlib.ticker import MaxNLocator

    trace = np.asarray(gmm.lower_bounds_, dtype=np.float64)
    if trace.size == 0:
        raise ValueError("The mixture has no EM trace (lower_bounds_ is empty).")
    iterations = np.arange(1, trace.size + 1)
    converged = bool(getattr(gmm, "converged_", False))
    ax = _new_axes() if ax is None else ax
    ax.plot(iterations, trace, marker="o", markersize=3, color="C0", gid="trace",
            label="mean log-likelihood")
    if converged:
        ax.scatter(iterations[-1], trace[-1], marker="*", s=250, color="C2",
                   edgecolor="black", zorder=3, gid="convergence",
                   label=f"converged at iteration {iterations[-1]}")
    else:
        ax.scatter(iterations[-1], trace[-1], marker="X", s=150, color="C3",
                   edgecolor="black", zorder=3, gid="convergence",
                   label=f"stopped at iteration {iterations[-1]} (not converged)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("mean log-likelihood per sample")
    ax.set_title("EM trace of the best start")
    ax.legend(fontsize="small", loc="lower right")
    return ax
