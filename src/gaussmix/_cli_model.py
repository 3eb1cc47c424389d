"""What the command line keeps beside a model: preprocessing and training log-likelihoods.

``gaussmix fit`` stores them in the model file's ``metadata`` (see
:func:`gaussmix.io.save`), so that ``gaussmix predict`` needs only that one
file::

    "metadata": {
      "data": {"path": ..., "n_samples": ..., "columns": [...], "header": true, ...},
      "preprocessing": {"standardize": true, "center": [...], "scale": [...]},
      "training_log_likelihood": {"probabilities": [0, 0.001, ..., 1],
                                  "quantiles": [...], "mean": ...}
    }

The mixture itself is fitted to the preprocessed data; log-likelihoods are
reported per row in the units of the original data (the standardisation's
log-Jacobian added), so they do not depend on ``--standardize``.

:func:`load_model` checks these blocks (and ``selection``, which ``gaussmix
info`` shows) before anything uses them, as :func:`gaussmix.io.load` checks
the model: an edited or foreign file is refused with one line naming the
field, never half-used.  Other metadata keys are left alone.
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any

import numpy as np

from ._cli_data import UsageError
from .estimator import GaussianMixture

__all__ = [
    "Preprocessing", "anomaly_threshold", "check_metadata", "load_model",
    "log_likelihood_quantiles", "row_log_likelihood", "unnamed",
]  # fmt: skip

# 1001 quantiles: any quantile of the training log-likelihood is interpolated
# between neighbours 0.001 apart, exact at multiples of 0.001.
_QUANTILE_PROBABILITIES = np.linspace(0.0, 1.0, 1001)


class Preprocessing:
    """The column transform applied before the mixture: identity, or z-scores.

    Parameters
    ----------
    center, scale : ndarray of shape (n_features,), optional
        ``z = (x - center) / scale``; None for no transform.
    """

    def __init__(self, center: np.ndarray | None = None, scale: np.ndarray | None = None):
        self.center = center
        self.scale = scale

    @classmethod
    def standardizing(cls, X: np.ndarray, names: list[str]) -> Preprocessing:
        """z-scores with the columns' mean and standard deviation."""
        centre = X.mean(axis=0)
        # Scaled by each column's largest deviation first: squares of values
        # near 1e200 overflow, and of values near 1e-200 underflow to zero.
        peak = np.max(np.abs(X - centre), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = peak * np.std(np.where(peak > 0, (X - centre) / peak, 0.0), axis=0)
        constant = [name for name, s in zip(names, scale) if not s > 0]
        if constant:
            raise UsageError(
                f"cannot standardize constant column(s) {', '.join(map(repr, constant))}; "
                "leave them out with --columns"
            )
        return cls(centre, scale)

    @classmethod
    def from_metadata(cls, metadata: dict) -> Preprocessing:
        """The transform stored by :meth:`to_metadata`, checked by :func:`check_metadata`."""
        spec = metadata.get("preprocessing") or {}
        if not spec.get("standardize"):
            return cls()
        return cls(np.asarray(spec["center"], float), np.asarray(spec["scale"], float))

    def to_metadata(self) -> dict[str, Any]:
        if self.center is None:
            return {"standardize": False}
        return {"standardize": True, "center": self.center.tolist(), "scale": self.scale.tolist()}

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.center is None:
            return X
        # A scale near 0 can overflow to inf: the caller reports that in one line.
        with np.errstate(over="ignore"):
            return (X - self.center) / self.scale

    @property
    def log_jacobian(self) -> float:
        """Added to a log-density of z to get the log-density of x."""
        return 0.0 if self.scale is None else -float(np.sum(np.log(self.scale)))


def unnamed(model: GaussianMixture) -> GaussianMixture:
    """A shallow copy without feature names, to predict on plain arrays silently.

    scikit-learn warns when a model fitted with feature names is given an
    array without them; the command line has already matched the columns.
    """
    model = copy.copy(model)
    model.__dict__.pop("feature_names_in_", None)
    return model


def row_log_likelihood(model: GaussianMixture, prep: Preprocessing, X: np.ndarray) -> np.ndarray:
    """Per-row log-density of the original data ``X`` under the model."""
    return unnamed(model).score_samples(prep.transform(X)) + prep.log_jacobian


def log_likelihood_quantiles(log_likelihood: np.ndarray) -> dict[str, Any]:
    """The training log-likelihood's distribution, as stored in the model file."""
    return {
        "probabilities": _QUANTILE_PROBABILITIES.tolist(),
        "quantiles": np.quantile(log_likelihood, _QUANTILE_PROBABILITIES).tolist(),
        "mean": float(np.mean(log_likelihood)),
    }


def anomaly_threshold(metadata: dict, q: float, path: str) -> float:
    """The ``q`` quantile of the training per-row log-likelihood."""
    stored = metadata.get("training_log_likelihood")
    if not stored:
        raise UsageError(
            f"{path!r} holds no training log-likelihood quantiles (it was not written by "
            "'gaussmix fit'), which --anomaly-threshold needs; refit it with 'gaussmix fit'"
        )
    return float(np.interp(q, stored["probabilities"], stored["quantiles"]))


def load_model(path: str) -> tuple[GaussianMixture, dict]:
    """The model and its JSON document, its metadata checked, or a UsageError saying why not."""
    from .io import load_document

    if not os.path.exists(path):
        raise UsageError(f"no such model file: {path!r}")
    if os.path.isdir(path):
        raise UsageError(f"{path!r} is a directory; give the model file, e.g. {path}/model.json")
    try:
        model, doc = load_document(path)
    except ValueError as exc:
        raise UsageError(f"{path!r} is not a valid gaussmix model file: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror or exc}") from exc
    check_metadata(doc.get("metadata") or {}, model.means_.shape[1], path)
    return model, doc


# ------------------------------------------------------- metadata checks
class _Invalid(Exception):
    """A field of the metadata and what is wrong with it."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field} {problem}")


def check_metadata(metadata: dict, n_features: int, path: str) -> None:
    """Refuse metadata that the command line cannot use as it wrote it.

    Parameters
    ----------
    metadata : dict
        The model file's ``metadata`` object (``{}`` when it has none).
    n_features : int
        The model's number of features, which per-column fields must match.
    path : str
        The model file, for the message.

    Raises
    ------
    UsageError
        Naming the file and the first bad field: a wrong type, length or
        order, a non-finite number, a scale that is not positive.
    """
    try:
        _check_data(metadata.get("data"), n_features)
        _check_preprocessing(metadata.get("preprocessing"), n_features)
        _check_quantiles(metadata.get("training_log_likelihood"))
        _check_selection(metadata.get("selection"))
    except _Invalid as exc:
        raise UsageError(
            f"{path!r} has invalid metadata: {exc}; write the model again with 'gaussmix fit'"
        ) from None


def _block(value: Any, field: str) -> dict | None:
    """An optional object of the metadata: absent or null gives None."""
    if value is not None and not isinstance(value, dict):
        raise _Invalid(f"'{field}'", f"must be an object, not {type(value).__name__}")
    return value


def _is_finite(value: Any) -> bool:
    """A JSON number that is a finite float: not a bool, NaN, infinity or a huge int."""
    # JSON true and false arrive as bool, a subclass of int: not numbers here.
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer literal beyond float's range
        return False


def _numbers(value: Any, field: str, length: int | None = None) -> np.ndarray:
    """A list of finite numbers, of ``length`` items when given, as floats."""
    what = f"a list of {length} finite numbers" if length else "a list of finite numbers"
    if not isinstance(value, list) or not all(map(_is_finite, value)):
        raise _Invalid(f"'{field}'", f"must be {what}")
    if length is not None and len(value) != length:
        raise _Invalid(f"'{field}'", f"must be {what}, not {len(value)}")
    return np.asarray(value, dtype=float)


def _check_data(data: Any, n_features: int) -> None:
    data = _block(data, "data")
    if data is None:
        return
    if "header" in data and not isinstance(data["header"], bool):
        raise _Invalid("'data.header'", "must be true or false")
    columns = data.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or len(columns) != n_features
        or not all(isinstance(c, str) for c in columns)
    ):  # fmt: skip
        raise _Invalid("'data.columns'", f"must be a list of {n_features} column names")


def _check_preprocessing(spec: Any, n_features: int) -> None:
    spec = _block(spec, "preprocessing")
    if spec is None:
        return
    if not isinstance(spec.get("standardize"), bool):
        raise _Invalid("'preprocessing.standardize'", "must be true or false")
    if not spec["standardize"]:
        return
    _numbers(spec.get("center"), "preprocessing.center", n_features)
    scale = _numbers(spec.get("scale"), "preprocessing.scale", n_features)
    if not np.all(scale > 0):
        raise _Invalid("'preprocessing.scale'", "must hold only numbers > 0")


def _check_quantiles(stored: Any) -> None:
    stored = _block(stored, "training_log_likelihood")
    if stored is None:
        return
    field = "training_log_likelihood"
    probabilities = _numbers(stored.get("probabilities"), f"{field}.probabilities")
    # np.interp needs increasing probabilities; 0 and 1 at the ends cover
    # every quantile that --anomaly-threshold accepts.
    if (len(probabilities) < 2 or np.any(np.diff(probabilities) <= 0)
            or probabilities[0] != 0 or probabilities[-1] != 1):  # fmt: skip
        raise _Invalid(f"'{field}.probabilities'", "must increase from 0 to 1")
    quantiles = _numbers(stored.get("quantiles"), f"{field}.quantiles", len(probabilities))
    if np.any(np.diff(quantiles) < 0):
        raise _Invalid(f"'{field}.quantiles'", "must not decrease")
    if not _is_finite(stored.get("mean")):
        raise _Invalid(f"'{field}.mean'", "must be a finite number")


def _check_selection(selection: Any) -> None:
    selection = _block(selection, "selection")
    if selection is None:
        return
    if not isinstance(selection.get("criterion"), str):
        raise _Invalid("'selection.criterion'", "must be a string such as \"bic\"")
    best = _block(selection.get("best"), "selection.best") or {}
    k = best.get("n_components")
    if not (isinstance(best.get("covariance_type"), str) and isinstance(k, int)
            and not isinstance(k, bool)):  # fmt: skip
        raise _Invalid("'selection.best'", "must name a covariance_type and n_components")
