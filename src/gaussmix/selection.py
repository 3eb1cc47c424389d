"""Model selection in one call, like R's ``mclust::Mclust`` and ``mclustBIC``.

:func:`select_model` fits a :class:`~gaussmix.GaussianMixture` for every
(covariance model, number of components) cell of a grid and ranks the cells
by BIC, AIC or ICL.  Signs follow scikit-learn: lower is better, so each
criterion is minus mclust's (mclust's ``BIC = 2 log L - p log n``).

The cells run concurrently in joblib's loky worker processes, each cell's
EM, BLAS and OpenMP on its share of the cores (one thread each on a 2-core
machine).  Processes rather than threads: much of a small model's EM is
Python (the chunk loop, the iterative M-steps of the constrained models)
that holds the GIL, so threads queue behind each other.  On 2 cores
(medians of interleaved runs; processes, threads, one cell after another):
the 36 cells of the scikit-learn covariance types for K = 1..9 took 0.18 s,
0.34 s and 0.20 s on iris (150 x 4) and 3.0 s, 4.1 s and 7.8 s on 100,000 x 4;
mclust's 14 models took 0.95 s, 2.2 s and 1.5 s on iris and 20 s, 23 s and
34 s on 100,000 x 4.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.utils import check_array

from ._kernels import rows_of_positive_weight
from ._parallel import available_cores
from .covariance import covariance_model_names, get_covariance_model
from .estimator import GaussianMixture
from .mclust_models import MCLUST_MODEL_NAMES
from ._selection_cells import _run_cells
from .validation import check_in_memory, check_sample_weight, check_squares_in_range

__all__ = [
    "ALIASES",
    "CRITERIA",
    "MCLUST_1D_MODEL_NAMES",
    "MCLUST_MODEL_NAMES",
    "SELECTION_MAX_ITER",
    "SELECTION_TOL",
    "TABLE_COLUMNS",
    "SelectionResult",
    "default_covariance_types",
    "select_model",
]


#: mclust's two models for one feature, where the 14 reduce to equal ("E")
#: or variable ("V") variances.
MCLUST_1D_MODEL_NAMES = ("E", "V")

#: Other names of mclust's models: scikit-learn's, and the 1-D ones.
ALIASES = {
    "spherical": "VII",
    "diag": "VVI",
    "tied": "EEE",
    "full": "VVV",
    "E": "EII",
    "V": "VII",
}

CRITERIA = ("bic", "aic", "icl")

TABLE_COLUMNS = (
    "covariance_type",
    "n_components",
    "log_likelihood",
    "n_parameters",
    "bic",
    "aic",
    "icl",
    "converged",
    "n_iter",
    "error",
)



def default_covariance_types(n_features: int | None = None) -> tuple[str, ...]:
    """Covariance models fitted when ``covariance_types`` is None.

    mclust's 14 models, as far as they are registered, then any other
    registered model that is not an alias of one already listed (such as
    ``'full'`` for ``'VVV'``), so that no model is fitted twice.  For one
    feature, mclust's ``'E'`` and ``'V'`` when both are registered, since
    the 14 models reduce to these two.

    Parameters
    ----------
    n_features : int, optional
        The number of features of the data, when known.

    Returns
    -------
    names : tuple of str
    """
    registered = covariance_model_names()
    if n_features == 1 and all(name in registered for name in MCLUST_1D_MODEL_NAMES):
        return MCLUST_1D_MODEL_NAMES
    names = [name for name in MCLUST_MODEL_NAMES if name in registered]
    models = [get_covariance_model(name) for name in names]
    for name in registered:
        model = get_covariance_model(name)
        is_alias = ALIASES.get(name) in registered or any(model is m for m in models)
        if name not in names and not is_alias:
            names.append(name)
            models.append(model)
    return tuple(names)


# ---------------------------------------------------------------- the result
class SelectionResult:
    """Outcome of :func:`select_model`: every cell's criteria and the best model.

    Parameters
    ----------
    table : list of dict
        The rows, as described under Attributes.
    criterion : {'bic', 'aic', 'icl'}
        The criterion that picks the best cell.
    estimators : dict
        The fitted mixtures of the cells that did not fail, keyed by
        ``(covariance_type, n_components)``.

    Attributes
    ----------
    table : list of dict
        One row per (covariance_type, n_components) cell, keys
        ``covariance_type``, ``n_components``, ``log_likelihood`` (total, not
        per sample), ``n_parameters``, ``bic``, ``aic``, ``icl``,
        ``converged``, ``n_iter`` and ``error``.  ``error`` is None, or for a
        cell that could not be fitted the exception as text, with NaN
        criteria, ``converged`` False and ``n_iter`` None.
    criterion : {'bic', 'aic', 'icl'}
        The criterion that chose the best cell.
    best_params_ : dict or None
        ``{'covariance_type': ..., 'n_components': ...}`` of the best cell.
    best_estimator_ : GaussianMixture or None
        The fitted mixture of the best cell; None when every cell failed.
    estimators_ : dict
        The fitted mixture of every cell that did not fail, keyed by
        ``(covariance_type, n_components)``.
    """

    def __init__(
        self,
        table: list[dict[str, Any]],
        criterion: str,
        estimators: dict[tuple[str, int], GaussianMixture],
    ):
        self.table = table
        self.criterion = criterion
        self.estimators_ = estimators
        ranked = self.ranked(criterion)
        if ranked:
            best = ranked[0]
            key = (best["covariance_type"], best["n_components"])
            self.best_params_ = {"covariance_type": key[0], "n_components": key[1]}
            self.best_estimator_ = estimators[key]
        else:
            self.best_params_ = None
            self.best_estimator_ = None

    def __repr__(self) -> str:
        n_failed = sum(row["error"] is not None for row in self.table)
        return (
            f"SelectionResult(criterion={self.criterion!r}, "
            f"best_params_={self.best_params_!r}, n_cells={len(self.table)}, "
            f"n_failed={n_failed})"
        )

    def ranked(self, criterion: str | None = None) -> list[dict[str, Any]]:
        """Rows of the cells that were fitted, best first.

        Parameters
        ----------
        criterion : {'bic', 'aic', 'icl'}, optional
            Defaults to :attr:`criterion`.  Ties keep the table's order.

        Returns
        -------
        rows : list of dict
        """
        criterion = _check_criterion(self.criterion if criterion is None else criterion)
        fitted = [row for row in self.table if not math.isnan(row[criterion])]
        return sorted(fitted, key=lambda row: row[criterion])

    def to_frame(self):
        """The table as a pandas DataFrame, one row per cell.

        Returns
        -------
        frame : pandas.DataFrame
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "SelectionResult.to_frame() needs pandas, which is not installed; "
                "install it (pip install pandas) or use SelectionResult.table, "
                "a list of dicts."
            ) from None
        return pd.DataFrame(self.table, columns=list(TABLE_COLUMNS))

    def plot(self, ax=None, criterion: str | None = None):
        """Draw the criterion against K, one line per covariance model.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; a new figure is made when None.
        criterion : {'bic', 'aic', 'icl'}, optional
            Defaults to :attr:`criterion`.

        Returns
        -------
        ax : matplotlib.axes.Axes
        """
        from .plotting import plot_selection

        return plot_selection(self, ax=ax, criterion=criterion or self.criterion)

    def summary(self, n_top: int = 3) -> str:
        """A short text: the grid, failed cells and the best ``n_top`` cells.

        Parameters
        ----------
        n_top : int, default=3

        Returns
        -------
        text : str
        """
        if not isinstance(n_top, Integral) or isinstance(n_top, bool) or n_top < 0:
            # A negative count sliced the ranking from its end ("Top -2").
            raise ValueError(f"n_top must be an integer >= 0, got {n_top!r}.")
        name = self.criterion.upper()
        types = list(dict.fromkeys(row["covariance_type"] for row in self.table))
        ks = sorted({row["n_components"] for row in self.table})
        n_failed = sum(row["error"] is not None for row in self.table)
        lines = [
            f"{len(self.table)} cells ({len(types)} covariance types x "
            f"{len(ks)} values of K from {ks[0]} to {ks[-1]}), {n_failed} failed.",
            f"Top {n_top} by {name} (lower is better):",
        ]
        ranked = self.ranked()
        if not ranked:
            return "\n".join(lines + ["  none: every cell failed"])
        best_value = ranked[0][self.criterion]
        header = ("rank", "covariance_type", "K", name, "delta", "log_likelihood")
        cells = [
            (
                str(rank),
                row["covariance_type"],
                str(row["n_components"]),
                f"{row[self.criterion]:.4f}",
                f"{row[self.criterion] - best_value:.4f}",
                f"{row['log_likelihood']:.4f}",
            )
            for rank, row in enumerate(ranked[:n_top], start=1)
        ]
        widths = [max(len(text) for text in column) for column in zip(header, *cells)]
        for cells_of_line in (header, *cells):
            line = "  ".join(text.rjust(width) for text, width in zip(cells_of_line, widths))
            lines.append("  " + line)
        return "\n".join(lines)


# ------------------------------------------------------------- the argument checks
def _check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    return criterion


def _check_n_components(n_components) -> list[int]:
    try:
        values = [n_components] if isinstance(n_components, Integral) else list(n_components)
    except TypeError:
        values = []
    # bool is an Integral, but GaussianMixture(True) is refused: so here.
    if not values or not all(
        isinstance(k, Integral) and not isinstance(k, bool) and k >= 1 for k in values
    ):
        raise ValueError(
            "n_components must be a positive integer or a non-empty iterable of "
            f"positive integers, got {n_components!r}."
        )
    return sorted({int(k) for k in values})


def _check_covariance_types(covariance_types, n_features: int) -> list[str]:
    if covariance_types is None:
        return list(default_covariance_types(n_features))
    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    names = list(dict.fromkeys(covariance_types))
    if not names:
        raise ValueError("covariance_types must not be empty.")
    seen: dict[str, str] = {}
    for name in names:
        model = get_covariance_model(name).name  # raises ValueError naming the valid options
        if model in seen:
            # Two rows of identical numbers, the tie broken by their order.
            raise ValueError(
                f"covariance_types names one model twice: {seen[model]!r} and {name!r} are "
                "the same model; give one of them."
            )
        seen[model] = name
    return names


# EM's stopping rule where fits are compared with one another (mclust's
# emControl stops on a relative change of 1e-5, without an iteration cap).
# GaussianMixture's own defaults, scikit-learn's 1e-3 and 100, stop EM tens
# of log-likelihood units short on mclust's reference data, enough to change
# the choice: faithful picked VVE, 2 where mclust picks EEE, 3, and on
# diabetes the hierarchical start picked VVE, 4 where it picks VVV, 3.
SELECTION_TOL = 1e-5
SELECTION_MAX_ITER = 1000


def with_selection_defaults(gmm_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``gmm_kwargs`` with ``tol`` and ``max_iter`` defaulting to the comparison's own."""
    return {"tol": SELECTION_TOL, "max_iter": SELECTION_MAX_ITER, **gmm_kwargs}


def _prototype(gmm_kwargs: dict[str, Any], **params) -> GaussianMixture:
    """A validated, unfitted estimator holding everything but the grid's two parameters."""
    clash = {"n_components", "covariance_type"} & set(gmm_kwargs)
    if clash:
        raise TypeError(
            f"select_model sets {sorted(clash)} from its grid; pass them as "
            "n_components= and covariance_types= instead."
        )
    prototype = GaussianMixture(**gmm_kwargs, **params)
    # Validate once here: an invalid option would otherwise fail every cell.
    prototype._validate_params()
    return prototype


def _cell_seed(random_state):
    """One seed shared by all cells, so that results do not depend on n_jobs."""
    if random_state is None or isinstance(random_state, Integral):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    raise ValueError(
        f"random_state must be None, an int or a numpy RandomState, got {random_state!r}."
    )


def _n_workers(n_jobs: int | None, n_cells: int) -> int:
    """joblib's convention (-1 is every core), with None meaning every core too."""
    cores = available_cores()
    if n_jobs is None:
        n_jobs = cores
    elif n_jobs < 0:
        n_jobs = max(cores + 1 + n_jobs, 1)
    elif n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None or -1 for every core.")
    return max(1, min(int(n_jobs), n_cells))


# ------------------------------------------------------------------ the entry point
def select_model(
    X,
    n_components: int | Iterable[int] = range(1, 10),
    covariance_types: str | Iterable[str] | None = None,
    criterion: str = "bic",
    n_init: int = 1,
    init_params: str = "kmeans",
    random_state: int | np.random.RandomState | None = None,
    n_jobs: int | None = None,
    sample_weight=None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    **gmm_kwargs,
) -> SelectionResult:
    """Fit every (covariance model, number of components) and pick the best.

    Like R's ``mclust::Mclust``: a :class:`~gaussmix.GaussianMixture` for
    each cell of the grid, ranked by an information criterion.  A cell that
    cannot be fitted (for instance a singular covariance) is recorded in the
    table with its error instead of raising.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Training data.
    n_components : int or iterable of int, default=range(1, 10)
        The numbers of components to try.
    covariance_types : str or iterable of str, default=None
        Covariance models to try.  None tries every registered model once:
        mclust's 14 (``'E'`` and ``'V'`` for one feature), or the
        scikit-learn names where those are not registered (see
        :func:`default_covariance_types`).
    criterion : {'bic', 'aic', 'icl'}, default='bic'
        Chooses the best cell; lower is better.  ICL is BIC plus the
        classification penalty, see :meth:`GaussianMixture.icl`.
    n_init : int, default=1
        Initialisations per cell, as in :class:`GaussianMixture`.
    init_params : str, default='kmeans'
        Initialisation method, as in :class:`GaussianMixture`.
    random_state : int, RandomState instance or None, default=None
        Every cell gets the same seed, so a cell's numbers equal those of
        ``GaussianMixture(K, covariance_type=..., random_state=seed,
        tol=1e-5, max_iter=1000).fit(X)``.  A RandomState instance gives
        one seed drawn from it.
    n_jobs : int, default=None
        Cells fitted concurrently, in worker processes.  None or -1 means
        every available core; 1 fits the cells one after another in this
        process, each with EM's usual threads.  The table does not depend
        on it.
    sample_weight : array-like of shape (n_samples,), default=None
        Row multiplicities, as in :meth:`GaussianMixture.fit`; the criteria
        count a row of weight w as w rows (n is the sum of the weights).
        Unlike the fits, the criteria depend on the weights' scale: weights
        normalised to sum to one would make BIC's penalty vanish, so give
        counts.
    progress : callable, optional
        ``progress(n_done, n_cells, row)``, called in the calling process
        each time a cell has been fitted (in the order they finish when
        ``n_jobs`` > 1), with ``row`` that cell's row of the table; for
        instance to draw a progress bar.
    **gmm_kwargs
        Further :class:`GaussianMixture` parameters (``tol``, ``reg_covar``,
        ``max_iter``, ...), the same for every cell.  ``tol`` defaults to
        1e-5 and ``max_iter`` to 1000 here (:data:`SELECTION_TOL`,
        :data:`SELECTION_MAX_ITER`), not to scikit-learn's 1e-3 and 100:
        the criteria compare log-likelihoods across cells, and EM stopped
        early can pick another model than mclust's.  ``acceleration='squarem'``
        applies to the models that it keeps in themselves (see
        :data:`gaussmix.acceleration.SQUAREM_MODELS`); the others run plain EM.

    Returns
    -------
    result : SelectionResult
        The table of all cells, ``best_estimator_``, ``best_params_``,
        ``plot()`` and ``summary()``.

    Notes
    -----
    mclust reports ``BIC = 2 log L - p log n``, higher is better; here
    ``bic = -2 log L + p log n``, lower is better, so each value is minus
    mclust's, and likewise for ICL.  Warnings of a cell (for instance a
    ``ConvergenceWarning``) are issued once the grid is done, with the cell
    named at the end of the message.

    Examples
    --------
    >>> import numpy as np
    >>> from gaussmix import select_model
    >>> rng = np.random.RandomState(0)
    >>> X = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))])
    >>> result = select_model(X, n_components=range(1, 4),
    ...                       covariance_types=["full", "spherical"], random_state=0)
    >>> result.best_params_["n_components"]
    2
    """
    criterion = _check_criterion(criterion)
    check_in_memory(X, "select_model")
    X_checked = check_array(X, dtype=[np.float64, np.float32], ensure_min_samples=2)
    if sample_weight is not None:
        sample_weight = check_sample_weight(sample_weight, X_checked.shape[0], 1)
        # From the criteria and the singularity check too (its variance would
        # set their scale).
        X_checked, sample_weight = rows_of_positive_weight(X_checked, sample_weight)
    check_squares_in_range(X_checked)
    ks = _check_n_components(n_components)
    types = _check_covariance_types(covariance_types, X_checked.shape[1])
    prototype = _prototype(
        with_selection_defaults(gmm_kwargs),
        n_init=n_init,
        init_params=init_params,
        random_state=_cell_seed(random_state),
    )

    # Column names of pandas and Dask dataframes, which the cells' fits keep.
    frame = (type(X).__module__ or "").split(".")[0] in ("pandas", "dask", "dask_expr")
    columns = list(X.columns) if frame and hasattr(X, "columns") else None
    cells = [
        (prototype, name, k, X_checked, columns, sample_weight) for name in types for k in ks
    ]
    outcomes = _run_cells(cells, _n_workers(n_jobs, len(cells)), progress)
    table = [row for row, _ in outcomes]
    estimators = {
        (row["covariance_type"], row["n_components"]): gmm
        for row, gmm in outcomes
        if gmm is not None
    }
    result = SelectionResult(table, criterion, estimators)
    if result.best_estimator_ is None:
        warnings.warn(
            "No cell of the grid could be fitted; the reasons are in the "
            "'error' column of result.table.",
            UserWarning,
            stacklevel=2,
        )
    return result
