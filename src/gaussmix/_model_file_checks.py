"""Checks of the pieces of a parsed model file, for :func:`gaussmix.io.from_dict`.

Each function validates one part of the JSON document (keys, numbers,
arrays and their shapes, weights, covariances, the stored precision
factors, parameters, feature names, training record) and raises
:class:`ValueError` naming the problem.  :mod:`gaussmix.io` parses the
text, checks the format and version, and assembles the model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .sklearn_models import FullCovariance, TiedCovariance
from .estimator import GaussianMixture

REQUIRED_KEYS = (
    "format_version", "gaussmix_version", "covariance_type", "n_components",
    "n_features", "dtype", "params", "feature_names_in", "weights", "means",
    "covariances", "precisions_cholesky", "training",
)  # fmt: skip
TRAINING_KEYS = ("converged", "n_iter", "lower_bound", "lower_bounds")
DTYPES = {"float64": np.float64, "float32": np.float32}
_WEIGHT_TOL = {"float64": 1e-8, "float32": 1e-6}
_SYMMETRY_TOL = {"float64": 1e-10, "float32": 1e-5}
_CHOLESKY_RTOL = 1e-6


def _check_keys(doc: dict) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise ValueError(f"Invalid model file: missing key(s) {', '.join(missing)}.")
    training = doc["training"]
    if not isinstance(training, dict):
        raise ValueError("Invalid model file: 'training' must be an object.")
    missing = [k for k in TRAINING_KEYS if k not in training]
    if missing:
        raise ValueError(
            f"Invalid model file: missing key(s) training.{', training.'.join(missing)}."
        )


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise ValueError("Invalid model file: 'metadata' must be an object with string keys.")


def _positive_int(doc: dict, key: str) -> int:
    value = doc[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Invalid model file: {key!r} must be a positive integer.")
    return value


def _check_number(value: Any, key: str) -> None:
    """One JSON number (not a list, a string or a boolean)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Invalid model file: {key!r} must hold only numbers.")


def _check_numbers(value: Any, key: str) -> None:
    """Nested lists whose leaves are JSON numbers."""
    if isinstance(value, list):
        for item in value:
            _check_numbers(item, key)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Invalid model file: {key!r} must hold only numbers.")


def _array(doc: dict, key: str, shape: tuple, dtype: str) -> np.ndarray:
    """``doc[key]`` as a finite array of ``shape`` and ``dtype``."""
    _check_numbers(doc[key], key)
    try:
        array = np.array(doc[key], dtype=np.float64)
    except ValueError:
        raise ValueError(f"Invalid model file: {key!r} is a ragged array.") from None
    except OverflowError:
        # A Python integer beyond float64's range (from_dict; load reads
        # such JSON numbers as infinities).
        raise ValueError(f"Invalid model file: {key!r} has non-finite values.") from None
    if array.shape != shape:
        raise ValueError(
            f"Invalid model file: {key!r} has shape {array.shape}, "
            f"expected {shape} for this covariance_type, n_components and n_features."
        )
    with np.errstate(over="ignore"):
        array = array.astype(DTYPES[dtype])
    if not np.all(np.isfinite(array)):
        raise ValueError(f"Invalid model file: {key!r} has non-finite values.")
    return array


def _check_weights(weights: np.ndarray, dtype: str) -> None:
    if np.any(weights < 0):
        raise ValueError("Invalid model file: 'weights' has negative values.")
    total = float(np.sum(weights, dtype=np.float64))
    if abs(total - 1.0) > _WEIGHT_TOL[dtype]:
        raise ValueError(f"Invalid model file: 'weights' sum to {total!r}, not 1.")


def _check_covariances(model, covariances: np.ndarray, dtype: str) -> None:
    """Symmetric positive-definite matrices, or positive variances."""
    if not isinstance(model, (FullCovariance, TiedCovariance)):
        if np.any(covariances <= 0):
            raise ValueError("Invalid model file: 'covariances' has non-positive variances.")
        return
    matrices = covariances.reshape((-1,) + covariances.shape[-2:]).astype(np.float64)
    variances = np.diagonal(matrices, axis1=1, axis2=2)
    if not np.all(variances > 0):
        raise ValueError("Invalid model file: 'covariances' are not positive-definite.")
    # Symmetry and eigenvalues on the unit-diagonal scale.  Raw eigenvalues
    # are exact to eps of the largest only: features of standard deviations
    # 5e-5 and 2.5e5 (a condition number of 8e16, 2 once scaled) made the
    # smallest negative, and a fitted model's file did not load.  Raw
    # asymmetry against the largest entry let an entry between features of
    # scales 1 and 1e-4 change sign.
    _, scaled = _unit_diagonal(matrices)
    if np.max(np.abs(scaled - np.swapaxes(scaled, 1, 2))) > _SYMMETRY_TOL[dtype]:
        raise ValueError("Invalid model file: 'covariances' are not symmetric.")
    if not np.all(np.linalg.eigvalsh(scaled) > 0):
        raise ValueError("Invalid model file: 'covariances' are not positive-definite.")


def _unit_diagonal(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations (n, D) and the matrices (n, D, D) scaled to unit diagonal."""
    deviations = np.sqrt(np.diagonal(matrices, axis1=1, axis2=2))
    return deviations, matrices / deviations[:, :, None] / deviations[:, None, :]


def _check_cholesky(model, covariances: np.ndarray, stored: np.ndarray) -> None:
    """``stored`` agrees with the factors recomputed from ``covariances``.

    Variances' factors are elementwise (1 / sqrt): relative tolerance 1e-6.
    A matrix's Cholesky factor carries rounding error up to about
    ``10 eps cond`` of its largest entry, with ``cond`` that of the matrix
    scaled to unit diagonal: Cholesky's accuracy does not depend on the
    features' scales, and the factor ``U`` of ``Sigma`` is ``S^-1 U_s``
    with ``U_s`` that of the scaled matrix, ``S`` the standard deviations.
    So rows of the factors are compared as ``S U``, each matrix against its
    own condition number: a bound set by the raw condition number (1e12 for
    one feature of standard deviation 1e-6) let any entry of normal size
    change, and one set by the worst matrix would let a tampered
    well-conditioned one through.
    """
    try:
        expected = model.precision_cholesky(covariances.astype(np.float64))
    except ValueError:
        raise ValueError(
            "Invalid model file: 'covariances' are not positive-definite."
        ) from None
    if isinstance(model, (FullCovariance, TiedCovariance)):
        matrices = covariances.astype(np.float64).reshape((-1,) + covariances.shape[-2:])
        deviations, scaled = _unit_diagonal(matrices)
        eps = float(np.finfo(covariances.dtype).eps)
        rtol = np.maximum(_CHOLESKY_RTOL, 10.0 * eps * np.linalg.cond(scaled))
        factors = deviations[:, :, None] * expected.reshape(matrices.shape)
        atol = rtol * np.max(np.abs(factors), axis=(1, 2))
        error = np.abs(deviations[:, :, None] * stored.reshape(matrices.shape) - factors)
        bound = atol[:, None, None] + rtol[:, None, None] * np.abs(factors)
        consistent = bool(np.all(error <= bound))
    else:
        consistent = bool(np.allclose(stored, expected, rtol=_CHOLESKY_RTOL, atol=0.0))
    if not consistent:
        raise ValueError(
            "Invalid model file: 'precisions_cholesky' is inconsistent with 'covariances'."
        )


def _laid_out_as_fitted(covariances: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """``stored`` in the dtype and memory layout (C order) that fitting gives the factors.

    Every covariance model's factors have its covariances' dtype.  The
    layout decides the summation order of the matrix products at
    prediction time, so it must match for bit-identical predictions.
    """
    return np.ascontiguousarray(stored, dtype=covariances.dtype)


def _params(doc: dict, covariance_type: str, n_components: int) -> dict:
    params = doc["params"]
    if not isinstance(params, dict):
        raise ValueError("Invalid model file: 'params' must be an object.")
    unknown = set(params) - set(GaussianMixture().get_params())
    if unknown:
        raise ValueError(f"Invalid model file: unknown params {sorted(unknown)}.")
    given = {"covariance_type": covariance_type, "n_components": n_components}
    for key, value in given.items():
        if params.get(key, value) != value:
            raise ValueError(f"Invalid model file: params[{key!r}] disagrees with {key!r}.")
    return {**params, **given}


def _feature_names(doc: dict, n_features: int) -> np.ndarray | None:
    names = doc["feature_names_in"]
    if names is None:
        return None
    if (
        not isinstance(names, list)
        or len(names) != n_features
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError(
            f"Invalid model file: 'feature_names_in' must be null or {n_features} strings."
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        # Matching columns by name would feed one column twice and drop another.
        raise ValueError(
            f"Invalid model file: 'feature_names_in' names {repeated[0]!r} more than once; "
            "each feature needs a name of its own."
        )
    return np.asarray(names, dtype=object)


def _training(doc: dict) -> dict:
    training = doc["training"]
    converged, n_iter = training["converged"], training["n_iter"]
    bound, bounds = training["lower_bound"], training["lower_bounds"]
    if not isinstance(converged, bool):
        raise ValueError("Invalid model file: 'training.converged' must be a boolean.")
    if not isinstance(n_iter, int) or isinstance(n_iter, bool) or n_iter < 0:
        raise ValueError("Invalid model file: 'training.n_iter' must be an integer >= 0.")
    if bound is not None:
        _check_number(bound, "training.lower_bound")
        if not math.isfinite(bound):
            raise ValueError("Invalid model file: 'training.lower_bound' is not finite.")
    if not isinstance(bounds, list):
        raise ValueError("Invalid model file: 'training.lower_bounds' must be a list.")
    for value in bounds:
        _check_number(value, "training.lower_bounds")
    if not all(math.isfinite(b) for b in bounds):
        raise ValueError("Invalid model file: 'training.lower_bounds' is not finite.")
    return {
        "converged_": converged,
        "n_iter_": n_iter,
        # np.float64, as a fitted model has them.
        "lower_bound_": np.float64(-math.inf if bound is None else bound),
        "lower_bounds_": [np.float64(b) for b in bounds],
    }


def _fitted_arrays(doc: dict, model, k: int, d: int, dtype: str) -> dict:
    """Validated weights, means, covariances and precision factors."""
    shape = model.parameter_shape(k, d)
    weights = _array(doc, "weights", (k,), dtype)
    means = _array(doc, "means", (k, d), dtype)
    covariances = _array(doc, "covariances", shape, dtype)
    precisions_chol = _array(doc, "precisions_cholesky", shape, dtype)
    _check_weights(weights, dtype)
    _check_covariances(model, covariances, dtype)
    _check_cholesky(model, covariances, precisions_chol)
    precisions_chol = _laid_out_as_fitted(covariances, precisions_chol)
    return {
        "weights_": weights,
        "means_": means,
        "covariances_": covariances,
        "precisions_cholesky_": precisions_chol,
        "precisions_": model.precisions_from_cholesky(precisions_chol),
    }
