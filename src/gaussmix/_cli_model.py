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
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np

from ._cli_data import UsageError
from .estimator import GaussianMixture

__all__ = [
    "Preprocessing", "anomaly_threshold", "load_model", "log_likelihood_quantiles",
    "row_log_likelihood", "unnamed",
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
        scale = X.std(axis=0)
        constant = [name for name, s in zip(names, scale) if not s > 0]
        if constant:
            raise UsageError(
                f"cannot standardize constant column(s) {', '.join(map(repr, constant))}; "
                "leave them out with --columns"
            )
        return cls(X.mean(axis=0), scale)

    @classmethod
    def from_metadata(cls, metadata: dict) -> Preprocessing:
        spec = metadata.get("preprocessing") or {}
        if not spec.get("standardize"):
            return cls()
        return cls(np.asarray(spec["center"], float), np.asarray(spec["scale"], float))

    def to_metadata(self) -> dict[str, Any]:
        if self.center is None:
            return {"standardize": False}
        return {"standardize": True, "center": self.center.tolist(), "scale": self.scale.tolist()}

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X if self.center is None else (X - self.center) / self.scale

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
    """The model and its JSON document, or a UsageError saying why not."""
    from .io import load_document

    if not os.path.exists(path):
        raise UsageError(f"no such model file: {path!r}")
    if os.path.isdir(path):
        raise UsageError(f"{path!r} is a directory; give the model file, e.g. {path}/model.json")
    try:
        return load_document(path)
    except ValueError as exc:
        raise UsageError(f"{path!r} is not a valid gaussmix model file: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path!r}: {exc.strerror or exc}") from exc
