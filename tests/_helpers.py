"""Shared data generators and comparisons for the gaussmix core tests.

Imported by the test modules as ``from _helpers import ...`` (``tests/`` has no
``__init__.py``, so pytest puts it on ``sys.path``).
"""

from __future__ import annotations

import numpy as np

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")
DATA_KINDS = ("separated", "overlapping", "anisotropic")
FITTED_ATTRIBUTES = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_",
    "precisions_cholesky_",
)


def make_data(kind: str, n_features: int, n_per_component: int = 100, seed: int = 0):
    """Three Gaussian clusters of ``n_per_component`` rows each.

    ``separated``: unit clusters 8 apart along the first axis; ``overlapping``:
    the same 1 apart; ``anisotropic``: random linear maps per cluster with
    scales 0.3, 1 and 3 (per-feature scales when ``n_features == 1``).
    """
    rng = np.random.RandomState(seed)
    centres = np.zeros((3, n_features))
    if kind == "separated":
        centres[:, 0] = [-8.0, 0.0, 8.0]
    elif kind == "overlapping":
        centres[:, 0] = [-1.0, 0.0, 1.0]
    elif kind == "anisotropic":
        centres[:, 0] = [-10.0, 0.0, 10.0]
    else:  # pragma: no cover - programming error in a test
        raise ValueError(kind)
    blocks = []
    for k, scale in enumerate((0.3, 1.0, 3.0)):
        z = rng.standard_normal((n_per_component, n_features))
        if kind == "anisotropic":
            transform = rng.standard_normal((n_features, n_features))
            transform += 2.0 * np.eye(n_features)
            z = scale * z @ transform
        blocks.append(z + centres[k])
    X = np.vstack(blocks)
    return X[rng.permutation(len(X))]


def spd_matrix(rng: np.random.RandomState, n_features: int, scale: float = 1.0):
    """A well-conditioned symmetric positive-definite matrix."""
    a = rng.standard_normal((n_features, n_features))
    return scale * (a @ a.T / n_features + np.eye(n_features))


def user_init(X: np.ndarray, n_components: int, covariance_type: str, seed: int = 0):
    """``weights_init``, ``means_init``, ``precisions_init`` for a fit of ``X``.

    Means are distinct rows of ``X``; precisions are those of the whole data
    set (per feature for 'diag', averaged for 'spherical'), so EM starts from
    a reasonable, non-degenerate point.
    """
    rng = np.random.RandomState(seed)
    n_features = X.shape[1]
    rows = rng.choice(X.shape[0], size=n_components, replace=False)
    means = X[rows].astype(np.float64)
    weights = np.full(n_components, 1.0 / n_components)
    cov = np.atleast_2d(np.cov(X.T)) + 1e-3 * np.eye(n_features)
    if covariance_type == "full":
        precisions = np.stack([np.linalg.inv(cov)] * n_components)
    elif covariance_type == "tied":
        precisions = np.linalg.inv(cov)
    elif covariance_type == "diag":
        precisions = np.tile(1.0 / np.diag(cov), (n_components, 1))
    else:
        precisions = np.full(n_components, 1.0 / np.mean(np.diag(cov)))
    return dict(weights_init=weights, means_init=means, precisions_init=precisions)


def full_covariances(covariances, covariance_type: str, n_components: int, n_features: int):
    """Expand covariance parameters of any type to shape (K, D, D)."""
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features)).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return np.stack([c * np.eye(n_features) for c in covariances])


def relative_error(actual, expected) -> float:
    """``max|actual - expected| / max|expected|``: a norm-wise relative error.

    Norm-wise rather than element-wise, because element-wise relative error is
    meaningless for entries that are zero up to rounding (off-diagonal
    covariances of independent features, precision-Cholesky zeros).
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.max(np.abs(expected)) if expected.size else 0.0
    err = np.max(np.abs(actual - expected)) if expected.size else 0.0
    if scale == 0.0:
        return float(err)
    return float(err / scale)


def assert_params_close(a, b, rtol: float, attributes=FITTED_ATTRIBUTES) -> None:
    """Every fitted attribute of ``a`` within ``rtol`` (norm-wise) of ``b``'s."""
    for name in attributes:
        err = relative_error(getattr(a, name), getattr(b, name))
        assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol:.1g}"


def sort_components(estimator):
    """Component order sorting the means by their first feature (then second)."""
    means = np.asarray(estimator.means_, dtype=np.float64)
    return np.lexsort(means.T[::-1])


def component_params(estimator, order=None):
    """(weights, means, full covariances) of a fitted mixture, in ``order``."""
    n_components, n_features = estimator.means_.shape
    if order is None:
        order = np.arange(n_components)
    covs = full_covariances(
        estimator.covariances_, estimator.covariance_type, n_components, n_features
    )
    return (
        np.asarray(estimator.weights_, dtype=np.float64)[order],
        np.asarray(estimator.means_, dtype=np.float64)[order],
        covs[order],
    )


def per_component(estimator, name):
    """Attribute ``name`` with a leading component axis (tied: one shared)."""
    value = np.asarray(getattr(estimator, name), dtype=np.float64)
    if estimator.covariance_type == "tied" and name in (
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
    ):
        return np.broadcast_to(value, (estimator.n_components,) + value.shape)
    return value


def assert_same_mixture(a, b, rtol: float) -> None:
    """Same fitted parameters up to a relabelling of the components."""
    order_a, order_b = sort_components(a), sort_components(b)
    for name in FITTED_ATTRIBUTES:
        err = relative_error(per_component(a, name)[order_a], per_component(b, name)[order_b])
        assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol:.1g}"


def count_calls(monkeypatch, owner, name):
    """Replace ``owner.name`` by a wrapper that records its calls; the record."""
    calls = []
    original = getattr(owner, name)

    def spy(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(owner, name, spy)
    return calls
