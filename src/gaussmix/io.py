"""Model files and conversion to and from scikit-learn.

A fitted :class:`~gaussmix.GaussianMixture` is saved as one UTF-8 JSON file
(no pickle, so loading a file never runs code)::

    {
      "format": "gaussmix-model",
      "format_version": 1,
      "gaussmix_version": "0.1.0",
      "covariance_type": "full",
      "n_components": 2,
      "n_features": 3,
      "dtype": "float64",                  # or "float32"
      "params": {...},                     # constructor parameters (get_params())
      "feature_names_in": ["a", "b", "c"], # or null
      "weights": [...],                    # (n_components,)
      "means": [[...], ...],               # (n_components, n_features)
      "covariances": [...],                # shape of covariances_ for the type
      "precisions_cholesky": [...],        # same shape
      "training": {"converged": true, "n_iter": 12,
                   "lower_bound": -3.1, "lower_bounds": [...]},
      "metadata": {...}                    # optional: a JSON object, or absent
    }

``metadata`` is free-form information about the model that is not a fitted
parameter, for instance how the command line preprocessed the data (see
:func:`save`); :func:`load_document` returns it.  Files without it are
valid, and readers that predate it ignore it.

Arrays are nested lists of numbers.  Floats are written with Python's
``repr``, so float64 values round-trip exactly; float32 arrays are written as
the exact float64 values of their float32 numbers and cast back on load.
NaN and infinity are not valid JSON and are refused.  The ``*_init`` arrays
are written as null, and so is ``random_state`` unless it is an int or None.
``lower_bound`` is null when no EM iteration ran (its value is then -inf).

:func:`load` validates the whole file (format, version, covariance type,
keys given once per object, shapes, finiteness, weights, positive-definite
covariances, and that ``precisions_cholesky`` agrees with the factors
recomputed from ``covariances``, to a relative 1e-6 or the rounding error
that their condition number allows if larger) and raises
:class:`ValueError` naming the first problem found.  The stored
``precisions_cholesky`` is used as is, so a loaded model predicts
bit-identically to the saved one.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from . import covariance as _covariance
from ._model_file_checks import (
    DTYPES,
    _check_keys,
    _check_metadata,
    _feature_names,
    _fitted_arrays,
    _laid_out_as_fitted,
    _params,
    _positive_int,
    _training,
)
from ._fitted_mixture import _upper_precision_factors
from .covariance import covariance_model_names, get_covariance_model
from .estimator import GaussianMixture

__all__ = [
    "FORMAT", "FORMAT_VERSION", "from_dict", "from_sklearn", "kernel_family", "load",
    "load_document", "save", "to_dict", "to_sklearn",
]  # fmt: skip

FORMAT = "gaussmix-model"
FORMAT_VERSION = 1

_INIT_ARRAYS = ("weights_init", "means_init", "precisions_init")


# ------------------------------------------------------------------- saving
def _json_param(name: str, value: Any) -> Any:
    """A constructor parameter as a JSON value (None where it has none)."""
    if name in _INIT_ARRAYS:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Integral):
        return int(value)
    if name == "random_state":
        return None
    if isinstance(value, Real):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return None


def _as_lists(array: np.ndarray) -> list:
    """Nested lists of Python floats (exact float64 values)."""
    return np.asarray(array, dtype=np.float64).tolist()


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def to_dict(model: GaussianMixture, *, metadata: dict | None = None) -> dict:
    """The JSON document of a fitted model (see the module docstring).

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    metadata : dict, optional
        Stored under the ``"metadata"`` key; left out when None.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``model`` is not fitted.
    ValueError
        If ``metadata`` is not a dict, or ``covariance_type`` was changed
        after the fit.
    """
    from . import __version__

    check_is_fitted(model)
    if isinstance(model, GaussianMixture):
        model._check_covariance_type_unchanged()
    names = getattr(model, "feature_names_in_", None)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gaussmix_version": __version__,
        "covariance_type": model.covariance_type,
        "n_components": int(model.means_.shape[0]),
        "n_features": int(model.means_.shape[1]),
        "dtype": np.dtype(model.means_.dtype).name,
        "params": {k: _json_param(k, v) for k, v in model.get_params().items()},
        "feature_names_in": None if names is None else [str(n) for n in names],
        "weights": _as_lists(model.weights_),
        "means": _as_lists(model.means_),
        "covariances": _as_lists(model.covariances_),
        # Upper factors, as fits store them: a lower one set by hand (which
        # inference reads as its precision's upper factor) made a file that
        # load refused as inconsistent with its covariances.
        "precisions_cholesky": _as_lists(_upper_precision_factors(
            get_covariance_model(model.covariance_type), model.precisions_cholesky_
        )),
        "training": {
            "converged": bool(model.converged_),
            "n_iter": int(model.n_iter_),
            "lower_bound": _finite_or_none(model.lower_bound_),
            "lower_bounds": [float(v) for v in getattr(model, "lower_bounds_", [])],
        },
    }
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
            raise ValueError("metadata must be a dict with string keys.")
        doc["metadata"] = metadata
    return doc


def save(
    model: GaussianMixture, path: str | os.PathLike, *, metadata: dict | None = None
) -> None:
    """Write a fitted model to ``path`` as one JSON file.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    path : str or path-like
        The file to write (overwritten if it exists).
    metadata : dict, optional
        Extra information kept with the model, such as the preprocessing
        that its input needs; JSON-serialisable, with finite numbers.
        :func:`load_document` reads it back.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``model`` is not fitted.
    ValueError
        If the model or ``metadata`` holds NaN or infinite values, or
        ``metadata`` is not a dict.
    """
    doc = to_dict(model, metadata=metadata)
    try:
        text = json.dumps(doc, allow_nan=False, ensure_ascii=False)
    except TypeError as exc:
        raise ValueError(f"metadata is not JSON-serialisable ({exc}).") from None
    except ValueError as exc:
        raise ValueError(
            f"Cannot save a model or metadata holding NaN or infinite values ({exc})."
        ) from None
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ------------------------------------------------------------------ loading
def _reject_constant(name: str) -> None:
    raise ValueError(f"Invalid model file: non-finite value {name} (JSON has no NaN/inf).")


def _parse_int(text: str) -> int | float:
    """An integer, or an infinity where no float64 holds it (as JSON's 1e999 reads).

    The checks of each field then refuse it by name, where converting it
    would raise OverflowError.
    """
    digits = text.lstrip("+-")
    # Past 309 digits no float64 holds it; Python refuses to convert more
    # than 4300 digits at all, with advice about its own limit.
    if len(digits) > 400:
        return -math.inf if text.startswith("-") else math.inf
    value = int(text)
    if abs(value) > sys.float_info.max:
        return math.inf if value > 0 else -math.inf
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are all distinct.

    A key given twice has no one meaning: Python's reader keeps the last
    value, others the first, so a file could load as one model here and
    as another elsewhere.
    """
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"Invalid model file: key {key!r} appears twice in one object.")
        obj[key] = value
    return obj


def _parse(text: str) -> dict:
    try:
        doc = json.loads(
            text, parse_constant=_reject_constant, parse_int=_parse_int,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"Not a gaussmix model file: invalid JSON ({exc}).") from None
    except RecursionError:
        raise ValueError("Not a gaussmix model file: JSON nested too deeply.") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"Not a gaussmix model file: 'format' is not {FORMAT!r}.")
    return doc


def _check_version(version: Any) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"Invalid model file: bad format_version {version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"Unsupported format_version {version}: this gaussmix reads versions "
            f"up to {FORMAT_VERSION}; upgrade gaussmix to load this file."
        )


def from_dict(doc: dict) -> GaussianMixture:
    """The fitted model of a JSON document; validates it as :func:`load` does."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"Not a gaussmix model file: 'format' is not {FORMAT!r}.")
    _check_version(doc.get("format_version"))
    _check_keys(doc)
    if not isinstance(doc["gaussmix_version"], str):
        raise ValueError("Invalid model file: 'gaussmix_version' must be a string.")
    covariance_type = doc["covariance_type"]
    if not isinstance(covariance_type, str) or covariance_type not in covariance_model_names():
        raise ValueError(f"Invalid model file: unknown covariance_type {covariance_type!r}.")
    k, d = _positive_int(doc, "n_components"), _positive_int(doc, "n_features")
    dtype = doc["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"Invalid model file: dtype {dtype!r} is not float64 or float32.")
    estimator = GaussianMixture(**_params(doc, covariance_type, k))
    try:
        estimator._validate_params()
    except ValueError as exc:
        raise ValueError(f"Invalid model file: bad params ({exc}).") from None
    model = get_covariance_model(covariance_type)
    fitted = {
        **_fitted_arrays(doc, model, k, d, dtype),
        **_training(doc),
        "n_features_in_": d,
        "_fitted_covariance_type": covariance_type,
    }
    names = _feature_names(doc, d)
    if names is not None:
        fitted["feature_names_in_"] = names
    if doc.get("metadata") is not None:
        _check_metadata(doc["metadata"])
    estimator.__dict__.update(fitted)
    return estimator


def load(path: str | os.PathLike) -> GaussianMixture:
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    model : GaussianMixture
        The fitted model; its predictions are bit-identical to the saved one's.

    Raises
    ------
    ValueError
        If the file is not a valid gaussmix model file; the message names the
        problem (invalid JSON, newer format_version, unknown covariance_type,
        wrong shape, non-finite values, bad weights, covariances not
        positive-definite, inconsistent precisions_cholesky, missing keys).

    Warns
    -----
    UserWarning
        If the model was fitted on standardized columns (``gaussmix fit
        --standardize``): it expects input transformed with the centre and
        scale stored in the file, which :func:`load_document` returns.
    """
    model, doc = load_document(path)
    preprocessing = (doc.get("metadata") or {}).get("preprocessing")
    if isinstance(preprocessing, dict) and preprocessing.get("standardize"):
        warnings.warn(
            f"{os.fspath(path)!r} holds a model fitted by 'gaussmix fit --standardize': "
            "it expects each column minus metadata['preprocessing']['center'], divided "
            "by its 'scale', and gives wrong results on raw data. Read them with "
            "gaussmix.io.load_document, or predict with 'gaussmix predict', which "
            "applies them.",
            UserWarning,
            stacklevel=2,
        )
    return model


def load_document(path: str | os.PathLike) -> tuple[GaussianMixture, dict]:
    """Read a model file, returning the model and the whole JSON document.

    The document holds what the model object does not: ``format_version``,
    ``gaussmix_version`` and the optional ``metadata`` given to :func:`save`.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    model : GaussianMixture
        The fitted model, as :func:`load` returns it.
    document : dict
        The parsed JSON document, validated as :func:`load` validates it.

    Raises
    ------
    ValueError
        If the file is not a valid gaussmix model file (see :func:`load`).
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ValueError("Not a gaussmix model file: not UTF-8 text.") from None
    doc = _parse(text)
    return from_dict(doc), doc


# --------------------------------------------------------------- scikit-learn
_FITTED = (
    "weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
    "converged_", "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_",
    "feature_names_in_",
)  # fmt: skip


def kernel_family(covariance_type: str) -> str:
    """scikit-learn's covariance_type of the kernel family of a gaussmix model."""
    return _covariance.kernel_family(get_covariance_model(covariance_type)).name


def _copy_fitted(source, target) -> None:
    for name in _FITTED:
        if hasattr(source, name):
            value = getattr(source, name)
            setattr(target, name, value.copy() if hasattr(value, "copy") else value)


def to_sklearn(model: GaussianMixture):
    """The fitted :class:`sklearn.mixture.GaussianMixture` equal to ``model``.

    The four scikit-learn covariance types convert directly.  mclust models
    convert to their kernel family, whose ``covariances_`` have the same
    shape: full-family models (VEE, EVE, VVE, EEV, VEV, EVV) to 'full',
    diagonal ones (EEI, VEI, EVI) to 'diag', spherical ones (EII, 'E') to
    'spherical' and tied to 'tied'.  The fitted parameters are the same, so
    the predictions agree; refitting the result no longer keeps the mclust
    constraint.  ``init_params='hierarchical'`` becomes 'kmeans'.

    Parameters
    ----------
    model : GaussianMixture
        A fitted gaussmix model.

    Returns
    -------
    sk_model : sklearn.mixture.GaussianMixture
    """
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    check_is_fitted(model)
    # Parameters scikit-learn does not have (partial_fit's schedule) stay behind.
    sk_names = SkGaussianMixture().get_params()
    params = {k: v for k, v in model.get_params().items() if k in sk_names}
    params["covariance_type"] = kernel_family(model.covariance_type)
    if params["init_params"] not in SkGaussianMixture._parameter_constraints[
        "init_params"
    ][0].options:
        params["init_params"] = "kmeans"
    sk_model = SkGaussianMixture(**params)
    _copy_fitted(model, sk_model)
    return sk_model


def from_sklearn(sk_model) -> GaussianMixture:
    """The fitted gaussmix model equal to a fitted scikit-learn GaussianMixture.

    Parameters
    ----------
    sk_model : sklearn.mixture.GaussianMixture
        A fitted model.

    Returns
    -------
    model : GaussianMixture
    """
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    if type(sk_model) is not SkGaussianMixture:
        raise TypeError(
            "from_sklearn expects a fitted sklearn.mixture.GaussianMixture, got "
            f"{type(sk_model).__name__}."
        )
    check_is_fitted(sk_model)
    n_components, n_features = np.shape(sk_model.means_)
    expected = get_covariance_model(sk_model.covariance_type).parameter_shape(
        n_components, n_features
    )
    if np.shape(sk_model.covariances_) != tuple(expected):
        raise ValueError(
            f"The scikit-learn model's covariances_ have shape "
            f"{np.shape(sk_model.covariances_)}, not the {tuple(expected)} of its "
            f"covariance_type={sk_model.covariance_type!r}: the parameter was changed after "
            "fitting. Set it back, or refit the model."
        )
    model = GaussianMixture(**sk_model.get_params())
    _copy_fitted(sk_model, model)
    model._fitted_covariance_type = model.covariance_type
    # In the dtype and layout that fitting gives the factors: predictions
    # are bit-identical only so.
    model.precisions_cholesky_ = _laid_out_as_fitted(
        np.asarray(model.covariances_), np.asarray(model.precisions_cholesky_)
    )
    return model
