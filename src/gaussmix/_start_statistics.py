"""Statistics of a starting partition: given responsibilities or hard labels.

The initialisation's first M-step takes them: each component's statistics
accumulated around its own mean (a first pass finds the means), so that
they never cancel.  Hard labels skip the one-hot responsibilities; for
'diag' and 'spherical' they are summed by compiled kernels where numba is
loaded, else by their bit-identical numpy twins.
"""

from __future__ import annotations

import numpy as np

from . import _kernels, _label_sums
from ._compiled import compiled_module
from ._maximization import _shared_scatter
from ._parallel import imap_chunks
from .covariance import CovarianceModel, kernel_family
from .suffstats import SuffStats, sum_stats

__all__ = ["statistics_from_resp", "statistics_from_labels"]


def statistics_from_resp(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    resp: np.ndarray,
    chunk_size: int | None = None,
) -> SuffStats:
    """Statistics for given responsibilities, accumulated around their own means.

    Two passes: the first finds the weighted means, which the second uses as
    the shift so that the scatter never cancels.
    """
    n_components = resp.shape[1]
    if chunk_size is None:
        chunk_size = _kernels.chunk_size_for(n_components, X.shape[1], X.dtype.itemsize)
    chunks = _kernels.iter_chunks(X.shape[0], chunk_size)
    weighted_resp = resp if sample_weight is None else resp * sample_weight[:, None]
    sums = np.zeros((n_components, X.shape[1]), dtype=np.float64)
    totals = np.zeros(n_components, dtype=np.float64)
    for rows in chunks:
        sums += weighted_resp[rows].T.astype(np.float64) @ X[rows].astype(np.float64)
        totals += weighted_resp[rows].sum(axis=0, dtype=np.float64)
    means = sums / np.maximum(totals, np.finfo(np.float64).tiny)[:, None]
    # In the data's dtype, as the centre of an E-step pass (mixture_centre).
    centre = (totals @ means / np.sum(totals)).astype(X.dtype).astype(np.float64)

    def stats(rows: slice) -> SuffStats:
        weights = _kernels.chunk_weights(sample_weight, rows)
        return _kernels.stats_from_resp_chunk(
            model, X[rows], weights, resp[rows], means, centre
        )

    return sum_stats(imap_chunks(stats, chunks))


def statistics_from_labels(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    labels: np.ndarray,
    n_components: int,
) -> SuffStats:
    """Statistics of hard assignments, each component around its own mean.

    The same statistics as :func:`statistics_from_resp` with one-hot
    responsibilities, without forming them: the rows of each component are
    gathered (a block at a time) and only they enter its sums, so the work
    is ``n_samples`` rows once instead of ``n_components`` times.

    Parameters
    ----------
    model : CovarianceModel
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,) or None
    labels : ndarray of shape (n_samples,)
        Component of each row, ``-1`` for rows in no component.
    n_components : int
    """
    family = kernel_family(model).name
    if family in ("diag", "spherical"):
        return _diagonal_statistics_from_labels(
            _label_kernels_for(X, n_components), family, X, sample_weight, labels, n_components
        )
    return _gathered_statistics_from_labels(model, X, sample_weight, labels, n_components)


def _gathered_statistics_from_labels(
    model: CovarianceModel, X: np.ndarray, sample_weight, labels, n_components: int
) -> SuffStats:
    """:func:`statistics_from_labels` through the chunk kernels, any model.

    Each component's rows are gathered a chunk at a time: its mean from a
    first pass, then its statistics around that mean from a second.
    """
    n_samples, n_features = X.shape
    # Per-component scatter (full, diag, spherical) is stacked; a shared one
    # (tied) is summed over components.
    one_shape = model.parameter_shape(1, n_features)
    shared = _shared_scatter(model, n_features)
    chunk_size = _kernels.model_chunk_size(model, 1, n_features, X.dtype)
    sum_resp = np.zeros(n_components)
    shift = np.zeros((n_components, n_features))
    shift_sum = np.zeros((n_components, n_features))
    scatters = np.zeros((n_components, *one_shape))
    no_offset = np.zeros((1, n_features), dtype=X.dtype)
    for k, members in _label_sums.component_rows(np.asarray(labels), n_components):
        weights = None if sample_weight is None else sample_weight[members]
        total = members.size if weights is None else float(np.sum(weights, dtype=np.float64))
        if total <= 0:
            continue  # no data: zero statistics, the mean at the origin, as scikit-learn
        # The mean, in float64, from a first pass over the component's rows.
        mean = np.zeros(n_features)
        for start in range(0, members.size, chunk_size):
            rows = X[members[start : start + chunk_size]]
            if weights is None:
                mean += np.sum(rows, axis=0, dtype=np.float64)
            else:
                mean += weights[start : start + chunk_size] @ rows.astype(np.float64, copy=False)
        centre = (mean / total).astype(X.dtype)
        shift[k] = centre
        sum_resp[k] = total
        for start in range(0, members.size, chunk_size):
            rows = X[members[start : start + chunk_size]]
            if weights is None:
                resp = np.ones((1, rows.shape[0]), dtype=X.dtype)
            else:
                resp = weights[None, start : start + chunk_size].astype(X.dtype)
            _, sums, scatter = _kernels._stats(model, rows, centre, resp, no_offset)
            shift_sum[k] += sums[0]
            scatters[k] += scatter
    weight_sum = float(n_samples if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
    return SuffStats(
        sum_resp=sum_resp,
        shift_sum=shift_sum,
        scatter=scatters.sum(axis=0) if shared else scatters.reshape(
            model.parameter_shape(n_components, n_features)
        ),
        shift=shift,
        log_likelihood=0.0,
        weight_sum=weight_sum,
    )


def _label_kernels_for(X: np.ndarray, n_components: int):
    """The kernels that sum the statistics of hard labels for 'diag' and 'spherical'.

    The compiled ones (:mod:`gaussmix._label_kernels`) where numba is
    loaded already, or where the fit is large enough to load it (the size
    at which the compiled k-means does, about 0.5 s to load,
    :data:`gaussmix.kmeans.COMPILED_LOAD_WORK`); elsewhere their numpy twins
    (:mod:`gaussmix._label_sums`).  Both add the same terms in the same
    order, so a fit gives the same bits in any process, whether or not
    numba was loaded before (a model selection's worker processes against
    the parent, for one).
    """
    from .kmeans import COMPILED_LOAD_WORK, _numba_loaded

    if X.shape[0] * X.shape[1] * n_components >= COMPILED_LOAD_WORK or _numba_loaded():
        kernels = _compiled_label_kernels()
        if kernels is not None:
            return kernels
    return _label_sums


def _compiled_label_kernels():
    """The compiled label statistics where numba is installed, else None."""
    return compiled_module("_label_kernels")


def _diagonal_statistics_from_labels(
    kernels, family: str, X: np.ndarray, sample_weight: np.ndarray | None,
    labels: np.ndarray, n_components: int,
) -> SuffStats:
    """:func:`statistics_from_labels` of 'diag' and 'spherical' by ``kernels``.

    ``kernels``: :mod:`gaussmix._label_kernels` or :mod:`gaussmix._label_sums`,
    which sum row by row in float64: each component's mean first, then the
    deviations from that mean (rounded to the data's dtype, as the shift)
    and their squares.
    """
    n_samples, n_features = X.shape
    labels = np.asarray(labels)
    if labels.dtype not in (np.int32, np.int64):
        labels = labels.astype(np.int64)
    weighted = sample_weight is not None
    weights = (
        np.ascontiguousarray(sample_weight, dtype=np.float64) if weighted else np.empty(0)
    )
    totals = np.zeros(n_components)
    sums = np.zeros((n_components, n_features))
    kernels.label_sums(X, labels, weights, weighted, totals, sums)
    has_data = totals > 0
    # Components with no data keep zero statistics and the origin as their
    # mean, as scikit-learn's.
    means = np.divide(sums, totals[:, None], out=np.zeros_like(sums), where=has_data[:, None])
    shift = means.astype(X.dtype).astype(np.float64)
    shift_sum = np.zeros((n_components, n_features))
    scatter = np.zeros((n_components, n_features))
    kernels.label_moments_around(X, labels, weights, weighted, shift, shift_sum, scatter)
    weight_sum = float(n_samples if sample_weight is None else np.sum(sample_weight, dtype=np.float64))
    return SuffStats(
        sum_resp=totals,
        shift_sum=shift_sum,
        scatter=scatter.sum(axis=1) if family == "spherical" else scatter,
        shift=shift,
        log_likelihood=0.0,
        weight_sum=weight_sum,
    )
