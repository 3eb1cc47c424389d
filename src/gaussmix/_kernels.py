"""Pure numerical kernels on one chunk of rows.

Arrays in, arrays out: no validation, no random numbers, no I/O.  Callers
guarantee finite inputs of matching shapes and a floating dtype.
"""

from __future__ import annotations

import math

import numpy as np

from .covariance import CovarianceModel
from .params import MixtureParams
from .suffstats import SuffStats

__all__ = [
    "chunk_size_for",
    "iter_chunks",
    "weighted_log_prob",
    "logsumexp_rows",
    "e_step_chunk",
    "stats_from_resp_chunk",
]

LOG_2PI = math.log(2.0 * math.pi)

# Bytes of the (n_components, rows, n_features) difference block that a chunk
# may take; keeps the working set of one chunk inside the L2/L3 caches.
_CHUNK_BYTES = 1 << 21


def chunk_size_for(n_components: int, n_features: int, itemsize: int = 8) -> int:
    """Rows per chunk so that one chunk's temporaries stay cache-sized."""
    rows = _CHUNK_BYTES // max(1, n_components * n_features * itemsize)
    return int(min(max(rows, 256), 1 << 16))


def iter_chunks(n_samples: int, chunk_size: int):
    """Yield consecutive row slices covering ``range(n_samples)``."""
    for start in range(0, n_samples, chunk_size):
        yield slice(start, min(start + chunk_size, n_samples))


def _differences(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``X - centres[k]`` for every k, shape (n_components, n_samples, n_features)."""
    return X[None, :, :] - centres.astype(X.dtype, copy=False)[:, None, :]


def weighted_log_prob(
    model: CovarianceModel, X: np.ndarray, params: MixtureParams
) -> tuple[np.ndarray, np.ndarray]:
    """``log w_k + log N(x | mu_k, Sigma_k)`` for one chunk.

    Returns
    -------
    weighted : ndarray of shape (n_samples, n_components)
    diff : ndarray of shape (n_components, n_samples, n_features)
        ``x - mu_k``, returned so the M-step statistics can reuse it.
    """
    dtype = X.dtype
    n_features = X.shape[1]
    precisions_chol = params.precisions_cholesky.astype(dtype, copy=False)
    diff = _differences(X, params.means)
    maha = model.mahalanobis(diff, precisions_chol)
    log_det = model.log_det_cholesky(precisions_chol, params.n_components, n_features)
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights).astype(dtype, copy=False)
    weighted = -0.5 * (n_features * LOG_2PI + maha) + (log_det + log_weights)
    return weighted.astype(dtype, copy=False), diff


def logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """Row-wise ``log(sum(exp(a)))`` that neither overflows nor underflows."""
    row_max = np.max(a, axis=1)
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    with np.errstate(under="ignore"):
        total = np.sum(np.exp(a - row_max[:, None]), axis=1)
    with np.errstate(divide="ignore"):
        return np.log(total) + row_max


def _accumulate(
    model: CovarianceModel, diff: np.ndarray, resp: np.ndarray, shift: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zeroth, first (around shift) and model-specific second-order sums, float64."""
    sum_resp = resp.sum(axis=0, dtype=np.float64)
    shift_sum = np.einsum("kn,knd->kd", resp.T, diff).astype(np.float64)
    scatter = np.asarray(model.scatter(diff, resp), dtype=np.float64)
    return sum_resp, shift_sum, scatter


def e_step_chunk(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    params: MixtureParams,
) -> SuffStats:
    """E-step on one chunk, returned as sufficient statistics around the means."""
    weighted, diff = weighted_log_prob(model, X, params)
    log_density = logsumexp_rows(weighted)
    with np.errstate(under="ignore"):
        resp = np.exp(weighted - log_density[:, None])
    if sample_weight is None:
        weighted_resp = resp
        log_likelihood = float(np.sum(log_density, dtype=np.float64))
        weight_sum = float(X.shape[0])
        candidates = log_density
    else:
        weighted_resp = resp * sample_weight[:, None].astype(resp.dtype, copy=False)
        log_likelihood = float(np.dot(sample_weight, log_density.astype(np.float64)))
        weight_sum = float(np.sum(sample_weight, dtype=np.float64))
        candidates = np.where(sample_weight > 0, log_density, np.inf)
    sum_resp, shift_sum, scatter = _accumulate(model, diff, weighted_resp, params.means)
    worst = int(np.argmin(candidates))
    return SuffStats(
        sum_resp=sum_resp,
        shift_sum=shift_sum,
        scatter=scatter,
        shift=params.means,
        log_likelihood=log_likelihood,
        weight_sum=weight_sum,
        worst_log_density=float(candidates[worst]),
        worst_sample=np.array(X[worst], dtype=np.float64),
    )


def stats_from_resp_chunk(
    model: CovarianceModel,
    X: np.ndarray,
    sample_weight: np.ndarray | None,
    resp: np.ndarray,
    shift: np.ndarray,
) -> SuffStats:
    """Statistics of one chunk from given responsibilities (initialisation)."""
    resp = resp.astype(X.dtype, copy=False)
    if sample_weight is not None:
        resp = resp * sample_weight[:, None].astype(X.dtype, copy=False)
        weight_sum = float(np.sum(sample_weight, dtype=np.float64))
    else:
        weight_sum = float(X.shape[0])
    diff = _differences(X, shift)
    sum_resp, shift_sum, scatter = _accumulate(model, diff, resp, shift)
    return SuffStats(
        sum_resp=sum_resp,
        shift_sum=shift_sum,
        scatter=scatter,
        shift=shift,
        log_likelihood=0.0,
        weight_sum=weight_sum,
    )
