"""Validation of user-supplied arrays, done once at the public boundary.

Messages name the problem, what was received and how to fix it; where
scikit-learn has a message for the same problem, the wording is kept so that
code matching on it keeps working.
"""

from __future__ import annotations

import math
import os

import numpy as np
from sklearn.utils import check_array

from .covariance import CovarianceModel

__all__ = [
    "check_weights_init",
    "check_user_init",
    "check_means_init",
    "check_precisions_init",
    "check_sample_weight",
    "weights_near_one",
    "check_in_memory",
]

_FLOATS = [np.float64, np.float32]


def _check_shape(param: np.ndarray, shape: tuple[int, ...], name: str) -> None:
    if param.shape != shape:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {shape}, "
            f"but got {param.shape}"
        )


def check_weights_init(weights, n_components: int) -> np.ndarray:
    """Validate ``weights_init``: shape (n_components,), in [0, 1], summing to 1."""
    weights = check_array(weights, dtype=_FLOATS, ensure_2d=False, input_name="weights_init")
    _check_shape(weights, (n_components,), "weights")
    if np.any(weights < 0.0) or np.any(weights > 1.0):
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got "
            f"min value {np.min(weights):.5f}, max value {np.max(weights):.5f}"
        )
    atol = 1e-6 if weights.dtype == np.float32 else 1e-8
    if abs(1.0 - float(np.sum(weights))) > atol:
        raise ValueError(
            "The parameter 'weights' should be normalized, but got "
            f"sum(weights) = {np.sum(weights):.5f}"
        )
    return weights


def check_means_init(means, n_components: int, n_features: int) -> np.ndarray:
    """Validate ``means_init``: finite, shape (n_components, n_features)."""
    means = check_array(means, dtype=_FLOATS, ensure_2d=False, input_name="means_init")
    _check_shape(means, (n_components, n_features), "means")
    return means


def check_precisions_init(
    precisions, model: CovarianceModel, n_components: int, n_features: int
) -> np.ndarray:
    """Validate ``precisions_init`` for ``model``: shape and positive-definiteness."""
    shape = model.parameter_shape(n_components, n_features)
    precisions = check_array(
        precisions,
        dtype=_FLOATS,
        ensure_2d=False,
        allow_nd=len(shape) > 2,
        input_name="precisions_init",
    )
    _check_shape(precisions, shape, f"{model.name} precision")
    model.check_precisions(precisions)
    return precisions


def check_in_memory(X, function: str) -> None:
    """Refuse a file path where ``function`` needs the rows in memory.

    Without this, a path reaches check_array as a string: "could not
    convert string to float".
    """
    if isinstance(X, (str, os.PathLike)):
        raise TypeError(
            f"{function} needs the data in memory, got the path {os.fspath(X)!r}; "
            "load it first (numpy.load, pandas.read_parquet), or fit one model "
            "to the file with GaussianMixture.fit."
        )


def check_squares_in_range(X: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
    """Refuse data whose features span more than the square root of their dtype's range.

    Squared deviations that large overflow whatever the centre: the start's
    variances, the statistics and the log-densities would each warn of the
    overflow before the fit failed as non-finite.  Rows of weight zero are
    left out (the fit drops them).
    """
    if X.shape[0] == 0:
        return
    limit = math.sqrt(np.finfo(X.dtype).max)
    # The span of all values, weighted or not, bounds every feature's: two
    # reductions over the whole array settle the usual case.  Per-feature
    # reductions along the rows were 10x slower (N = 1e5, D = 2: 4.9 ms,
    # about 5 % of a full fit).
    if float(X.max()) - float(X.min()) <= limit:
        return
    check_feature_spans(*feature_extremes(X, sample_weight), X.dtype)


def feature_extremes(
    X: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's highest and lowest value over the rows of positive weight (float64).

    With no such rows, ``-inf`` and ``inf``.
    """
    if sample_weight is None or np.all(sample_weight > 0):
        if X.shape[0] == 0:
            return np.full(X.shape[1], -np.inf), np.full(X.shape[1], np.inf)
        highest, lowest = X.max(axis=0), X.min(axis=0)
    else:
        kept = (sample_weight > 0)[:, None]
        highest = np.max(X, axis=0, where=kept, initial=-np.inf)
        lowest = np.min(X, axis=0, where=kept, initial=np.inf)
    return highest.astype(np.float64), lowest.astype(np.float64)


def check_feature_spans(highest: np.ndarray, lowest: np.ndarray, dtype) -> None:
    """Refuse a feature whose span, ``highest - lowest``, exceeds the square root of ``dtype``'s range.

    Parameters
    ----------
    highest, lowest : ndarray of shape (n_features,)
        Each feature's extremes, as :func:`feature_extremes` gives them.
    dtype : numpy dtype
        The data's, float32 or float64.

    Raises
    ------
    ValueError
        Naming the widest such feature, its span and the fix.
    """
    dtype = np.dtype(dtype)
    limit = math.sqrt(np.finfo(dtype).max)
    # Finite data give no NaN: a feature with no rows of positive weight has
    # the span -inf - inf.
    with np.errstate(over="ignore"):
        span = np.asarray(highest, dtype=np.float64) - np.asarray(lowest, dtype=np.float64)
    feature = int(np.argmax(span))
    if not span[feature] > limit:
        return
    also = ", or fit float64 data" if dtype == np.float32 else ""
    raise ValueError(
        f"Feature {feature} of X spans {span[feature]:.3g}, more than the square root "
        f"of {dtype.name}'s range ({limit:.3g}): its squared deviations overflow. "
        "Scale the features first (for example with "
        f"sklearn.preprocessing.StandardScaler){also}."
    )


def weights_near_one(
    sample_weight: np.ndarray | None, dtype=np.float64, n_components: int = 1
) -> np.ndarray | None:
    """Validated weights times the power of two that brings their mean positive value into [1, 2).

    EM is unchanged by a common factor of the weights, and a power of two
    changes no weight's mantissa; but the M-step's floor on component totals
    (``10 * eps``, scikit-learn's for rows of weight one), float32
    products and the weights' sum all assume weights of about one row.
    Weights of 1e-16, or of 1e308, then fit as weights of one.  Criteria
    that count rows (BIC's n) keep the caller's weights.

    Weights spanning more than float64's range cannot all keep about one:
    they stay as given where their sum and their values in ``dtype`` (the
    data's, in which the E-step multiplies) are finite; else the largest is
    brought into [1, 2), and the weights that underflow to zero there, below
    ``2**-1074`` of it, drop their rows, which would add less than the sums'
    rounding.  A ValueError says so if fewer than ``n_components`` rows are
    left.
    """
    if sample_weight is None:
        return None
    largest = float(np.max(sample_weight))
    positive = sample_weight[sample_weight > 0]
    # The mean of w / max cannot overflow where the plain sum would.
    mean = float(np.mean(positive / largest)) * largest
    _, exponent = np.frexp(mean)  # mean = m * 2**exponent, 0.5 <= m < 1
    if exponent == 1:
        return sample_weight
    scaled = np.ldexp(sample_weight, 1 - exponent)
    if np.count_nonzero(scaled) == positive.size and np.all(np.isfinite(scaled)):
        return scaled
    with np.errstate(over="ignore"):
        total = np.sum(sample_weight)
    if np.isfinite(total) and largest <= float(np.finfo(dtype).max):
        return sample_weight
    _, top = np.frexp(largest)
    scaled = np.ldexp(sample_weight, 1 - top)
    n_kept = int(np.count_nonzero(scaled))
    if n_kept < n_components:
        raise ValueError(
            f"sample_weight spans more than float64's range: only {n_kept} rows have "
            f"weights within 2**-1074 of the largest, fewer than n_components = "
            f"{n_components}. Give the rows weights within that range."
        )
    return scaled


def check_sample_weight(sample_weight, n_samples: int, n_components: int) -> np.ndarray | None:
    """Validate ``sample_weight`` as row multiplicities.

    Returns None when ``sample_weight`` is None (every row counts once), or a
    float64 array of shape (n_samples,).
    """
    if sample_weight is None:
        return None
    if np.isscalar(sample_weight):
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    sample_weight = np.asarray(sample_weight)
    if sample_weight.dtype.kind not in "biuf":
        raise TypeError(
            f"sample_weight must be numeric, got an array of dtype {sample_weight.dtype}."
        )
    sample_weight = sample_weight.astype(np.float64)
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight should have shape ({n_samples},), one weight per row "
            f"of X, but got shape {sample_weight.shape}."
        )
    if not np.all(np.isfinite(sample_weight)):
        raise ValueError(
            "sample_weight contains NaN or infinity; every weight must be a finite "
            "number >= 0."
        )
    if np.any(sample_weight < 0):
        raise ValueError(
            f"sample_weight contains negative values (min {sample_weight.min():.5g}); "
            "weights are row multiplicities and must be >= 0."
        )
    n_positive = int(np.count_nonzero(sample_weight))
    if n_positive == 0:
        raise ValueError(
            "sample_weight sums to zero: at least one row needs a positive weight."
        )
    if n_positive < n_components:
        raise ValueError(
            f"Only {n_positive} rows have a positive sample_weight, fewer than "
            f"n_components = {n_components}. Give more rows positive weight or "
            "decrease n_components."
        )
    return sample_weight


def check_user_init(
    model, n_components: int, n_features: int, weights_init, means_init, precisions_init
) -> dict:
    """Validated copies of the user's ``*_init`` arrays, keyed by what they replace.

    Returns
    -------
    user_init : dict
        ``"weights"``, ``"means"`` and ``"precisions"`` for the arrays given.
    """
    checked = {}
    if weights_init is not None:
        checked["weights"] = check_weights_init(weights_init, n_components)
    if means_init is not None:
        checked["means"] = check_means_init(means_init, n_components, n_features)
    if precisions_init is not None:
        checked["precisions"] = check_precisions_init(
            precisions_init, model, n_components, n_features
        )
    return checked
