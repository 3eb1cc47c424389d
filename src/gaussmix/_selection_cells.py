"""Fitting the cells of a model-selection grid, serially or on worker processes.

A cell is one (covariance model, number of components) fit.  Cells run in
joblib's loky worker processes, each with its share of the cores for EM,
BLAS and OpenMP; a worker cannot show warnings to the caller, so each cell's
warnings travel back with its result.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import clone

from ._parallel import get_num_threads, limited_threads
from .acceleration import supported_acceleration
from .covariance import get_covariance_model, kernel_family
from .estimator import GaussianMixture

# What a cell may raise when its model cannot be fitted (singular covariance,
# fewer samples than components, ...); anything else is a bug and propagates.
_CELL_ERRORS = (ValueError, ArithmeticError)

# A component whose scatter is singular (its rows on a lower-dimensional set:
# one repeated point, a constant feature, fewer distinct rows than features)
# has a covariance of reg_covar alone along that direction, and a
# log-likelihood, so criteria, that grow without bound as reg_covar shrinks:
# such a cell would win on the regularisation, not on the data.  mclust
# reports it as NA; the table records it as a failed cell.  Singular means
# a scatter below this fraction of the data's own variance, feature by
# feature (an exact zero leaves rounding of about 1e-16 of it); features of
# very different scales are each measured against their own.
SINGULAR_SCATTER_RTOL = 1e-12


def _singular_component(gmm: GaussianMixture, X) -> int | None:
    """A component whose covariance is reg_covar alone along some direction, if any."""
    family = kernel_family(get_covariance_model(gmm.covariance_type)).name
    n_features = np.shape(gmm.means_)[1]
    added = np.eye(n_features) if family in ("full", "tied") else 1.0
    covariances = np.asarray(gmm.covariances_, dtype=np.float64) - gmm.reg_covar * added
    variances = np.var(np.asarray(X, dtype=np.float64), axis=0)
    if family == "spherical":
        # One variance pooled over the features: singular only if all are.
        excess = covariances / np.mean(variances) if np.any(variances > 0) else covariances
    elif np.any(variances == 0):
        return 0  # a constant feature: every component is singular along it
    elif family == "diag":
        excess = np.min(covariances / variances, axis=1)
    else:
        scale = 1.0 / np.sqrt(variances)
        matrices = covariances.reshape((-1,) + covariances.shape[-2:])
        excess = np.linalg.eigvalsh(matrices * scale[:, None] * scale[None, :])[:, 0]
    singular = np.flatnonzero(~(excess > SINGULAR_SCATTER_RTOL))
    return int(singular[0]) if singular.size else None

CellCallback = Callable[[int, int, dict], None] | None


def _criteria(gmm: GaussianMixture, X, sample_weight: np.ndarray | None) -> dict[str, float]:
    """Log-likelihood, BIC, AIC and ICL; a sample of weight w counts w times.

    Without weights the formulas are those of ``gmm.bic``, ``gmm.aic`` and
    ``gmm.icl``, evaluated in the same order so that the values are equal.
    """
    log_density = gmm.score_samples(X)
    log_map_resp = np.log(np.max(gmm.predict_proba(X), axis=1))
    if sample_weight is None:
        n_samples = log_density.shape[0]
        log_likelihood = float(np.mean(log_density)) * n_samples
        classification = float(np.sum(log_map_resp, dtype=np.float64))
    else:
        n_samples = float(np.sum(sample_weight))
        log_likelihood = float(np.dot(sample_weight, log_density))
        classification = float(np.dot(sample_weight, log_map_resp))
    n_parameters = gmm._n_parameters()
    bic = -2 * log_likelihood + n_parameters * math.log(n_samples)
    return {
        "log_likelihood": log_likelihood,
        "bic": bic,
        "aic": -2 * log_likelihood + 2 * n_parameters,
        "icl": bic - 2 * classification,
    }


def _fit_cell(
    prototype: GaussianMixture,
    covariance_type: str,
    n_components: int,
    X,
    sample_weight: np.ndarray | None,
) -> tuple[dict[str, Any], GaussianMixture | None]:
    """Fit one cell; a model that cannot be fitted gives a row with its error."""
    n_features = np.shape(X)[1]
    row: dict[str, Any] = {
        "covariance_type": covariance_type,
        "n_components": n_components,
        "log_likelihood": math.nan,
        "n_parameters": get_covariance_model(covariance_type).n_parameters(
            n_components, n_features
        ),
        "bic": math.nan,
        "aic": math.nan,
        "icl": math.nan,
        "converged": False,
        "n_iter": None,
        "error": None,
    }
    gmm = clone(prototype).set_params(
        n_components=n_components, covariance_type=covariance_type
    )
    # SQUAREM serves only the models its jumps keep in themselves; the others
    # of the grid run plain EM.
    gmm.set_params(acceleration=supported_acceleration(
        gmm.acceleration, get_covariance_model(covariance_type)
    ))
    try:
        gmm.fit(X, sample_weight=sample_weight)
        row.update(_criteria(gmm, X, sample_weight))
    except _CELL_ERRORS as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row, None
    singular = _singular_component(gmm, X)
    if singular is not None:
        row.update(bic=math.nan, aic=math.nan, icl=math.nan, error=(
            f"Singular covariance: component {singular}'s rows lie on a lower-dimensional "
            "set (a repeated point, a constant feature, or fewer distinct rows than "
            "features), so its covariance there is reg_covar alone and the criteria "
            "would rise without bound as reg_covar shrinks (mclust: NA)"
        ))
        return row, None
    row["converged"] = bool(gmm.converged_)
    row["n_iter"] = int(gmm.n_iter_)
    return row, gmm


def _cell_input(array: np.ndarray, columns: list | None):
    """The data of a cell: the array, or a DataFrame over it when the user gave one.

    Worker processes receive the array memory-mapped and wrap it again, so
    that the fitted mixtures keep the column names without a copy per cell.
    """
    if columns is None:
        return array
    import pandas as pd

    return pd.DataFrame(array, columns=columns, copy=False)


def _fit_cell_recording_warnings(
    n_threads: int | None,
    prototype: GaussianMixture,
    covariance_type: str,
    n_components: int,
    array: np.ndarray,
    columns: list | None,
    sample_weight: np.ndarray | None,
) -> tuple[dict[str, Any], GaussianMixture | None, list[tuple[type, str]]]:
    """:func:`_fit_cell` on ``n_threads`` threads, returning its warnings too.

    A worker process cannot show warnings to the caller, so every cell's
    warnings travel back with its result and are issued by the caller.
    """
    X = _cell_input(array, columns)
    with limited_threads(n_threads), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row, gmm = _fit_cell(prototype, covariance_type, n_components, X, sample_weight)
    return row, gmm, [(warning.category, str(warning.message)) for warning in caught]


def _indexed_cell(index: int, n_threads: int, *cell) -> tuple[int, tuple]:
    """A cell's outcome with its index, as the workers finish in any order."""
    return index, _fit_cell_recording_warnings(n_threads, *cell)


def _run_in_processes(cells: list[tuple], n_workers: int, on_done: CellCallback) -> list:
    """The cells on ``n_workers`` loky processes, sharing the cores; results in order."""
    from joblib import Parallel, delayed

    n_threads = max(1, get_num_threads() // n_workers)
    # Cells of most components first, so that no worker is left alone with a
    # long cell at the end; one cell per task, as cells are long enough.
    order = sorted(range(len(cells)), key=lambda i: -cells[i][2])
    # Unordered, so that progress is reported as each cell finishes.
    outcomes = Parallel(
        n_jobs=n_workers, backend="loky", batch_size=1, return_as="generator_unordered"
    )(delayed(_indexed_cell)(i, n_threads, *cells[i]) for i in order)
    results: list = [None] * len(cells)
    for n_done, (i, outcome) in enumerate(outcomes, start=1):
        results[i] = outcome
        if on_done is not None:
            on_done(n_done, len(cells), outcome[0])
    return results


def _run_cells(
    cells: list[tuple], n_workers: int, on_done: CellCallback = None
) -> list[tuple]:
    """``(row, fitted mixture or None)`` for every cell, in the cells' order.

    ``on_done(n_done, n_cells, row)`` is called in this process as each
    cell finishes.
    """
    if n_workers == 1:
        outcomes = []
        for cell in cells:
            outcomes.append(_fit_cell_recording_warnings(None, *cell))
            if on_done is not None:
                on_done(len(outcomes), len(cells), outcomes[-1][0])
    else:
        outcomes = _run_in_processes(cells, n_workers, on_done)
    for row, _, caught in outcomes:
        for category, message in caught:
            cell = f"covariance_type={row['covariance_type']!r}, n_components={row['n_components']}"
            warnings.warn(f"{message} [select_model cell {cell}]", category, stacklevel=3)
    return [(row, gmm) for row, gmm, _ in outcomes]
