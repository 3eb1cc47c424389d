"""mclust's covariance parameterizations beyond scikit-learn's four.

Celeux & Govaert (1995) write each component covariance as

    Sigma_k = lambda_k D_k A_k D_k^T,

with volume ``lambda_k = det(Sigma_k)^(1/D)``, shape ``A_k`` diagonal with
``det(A_k) = 1`` and orientation ``D_k`` orthogonal.  Holding each factor
equal across components (E), letting it vary (V) or fixing it to the identity
(I) gives mclust's 14 models, named volume-shape-orientation::

    model  Sigma_k                 class / alias         covariances_ shape
    EII    lambda I                EII                   (K,)       all equal
    VII    lambda_k I              "spherical"           (K,)
    EEI    lambda A                EEI                   (K, D)     all rows equal
    VEI    lambda_k A              VEI                   (K, D)
    EVI    lambda A_k              EVI                   (K, D)
    VVI    lambda_k A_k            "diag"                (K, D)
    EEE    lambda D A D^T          "tied"                (D, D)
    VEE    lambda_k D A D^T        VEE                   (K, D, D)
    EVE    lambda D A_k D^T        EVE                   (K, D, D)
    VVE    lambda_k D A_k D^T      VVE                   (K, D, D)
    EEV    lambda D_k A D_k^T      EEV                   (K, D, D)
    VEV    lambda_k D_k A D_k^T    VEV                   (K, D, D)
    EVV    lambda D_k A_k D_k^T    EVV                   (K, D, D)
    VVV    lambda_k D_k A_k D_k^T  "full"                (K, D, D)

The four models scikit-learn already has are the same objects under both
names ("VVV" is "full", "EEE" "tied", "VVI" "diag", "VII" "spherical"), so
fits with either name are identical.  For one-dimensional data mclust calls
its two models "E" (equal variance, registered as :class:`EII`) and "V"
(variable variance, registered as "spherical").

Every new class reuses the E-step kernels of the family whose parameter shape
it shares (spherical for EII, diag for EEI/VEI/EVI, full for the rest) and
replaces only the M-step and the parameter count.  The M-step maximises the
expected complete-data log-likelihood

    sum_k [ -n_k log det Sigma_k - tr(Sigma_k^-1 W_k) ]

over the constraint set, where ``W_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T``
is the weighted scatter around the new means and ``n_k`` the component
weight.  ``reg_covar`` is added to the diagonal of every resulting
covariance afterwards, as scikit-learn does; it therefore cannot rescue a
scatter for which the constrained maximiser does not exist (a needed
determinant or variance that is exactly zero), and such an M-step ends in
the usual ill-defined-covariance error.  The exception is a component whose
scatter is all zero (one row, or copies of one): it takes volume zero, or
the identity shape where volumes are equal, leaves the shared parameters to
the others (:func:`~gaussmix._mclust_numerics.zero_scatter`), and gets
``reg_covar`` as scikit-learn's models give a component of one row.

References
----------
Celeux, G. and Govaert, G. (1995). Gaussian parsimonious clustering models.
Pattern Recognition 28(5), 781-793.

Browne, R. P. and McNicholas, P. D. (2014). Estimating common principal
components in high dimensions. Advances in Data Analysis and
Classification 8(2), 217-226.
"""

from __future__ import annotations

import numpy as np

from ._mclust_numerics import (
    _geometric_mean,
    _descending_eigh,
    _rotate_diagonals,
    _add_reg,
    _finite_or_nan,
    _converged,
    _volume_shape_iteration,
    _rotate,
    _diagonals,
    _eve_profile,
    _vve_profile,
    _common_orientation,
    shared_axes,
    unit_shapes_where_zero,
    zero_scatter,
)
from .covariance import (
    ill_defined_covariance_error,
    register_covariance_alias,
    register_covariance_model,
)
from .sklearn_diagonal_models import DiagCovariance, SphericalCovariance
from .sklearn_models import FullCovariance

__all__ = [
    "EII",
    "EEI",
    "VEI",
    "EVI",
    "VEE",
    "EVE",
    "VVE",
    "EEV",
    "VEV",
    "EVV",
    "MCLUST_MODEL_NAMES",
]

# mclust's model names in mclust's order.
MCLUST_MODEL_NAMES = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip


# ------------------------------------------------------------ base classes
class _ConstrainedModel:
    """Shared behaviour of the constrained models (a mixin before the kernel family).

    The constraints are enforced by the M-step only: user-supplied
    ``precisions_init`` are checked as for the kernel family (shape and
    positivity), not for the constraint, since the first M-step projects
    onto it anyway.
    """

    #: The iterative M-steps stop when no volume or shape parameter changes
    #: by more than ``tol`` times the largest one, and no orientation angle
    #: or entry by more than ``tol``.
    tol: float = 1e-12
    #: Most inner-loop iterations of the iterative M-steps.
    max_iter: int = 1000
    #: Whether components whose scatter is rounding noise around one
    #: repeated row reach the M-step with a scatter of exactly zero
    #: (:func:`gaussmix._maximization._collapsed_scatter_zeroed`).  Models
    #: of varying volumes give such a component volume zero, and it stays
    #: collapsed; models of one volume give it the others' volume, and its
    #: next scatter, from rows of negligible weight, is no longer rounding
    #: (EVV on half-duplicated rows then fitted a variance of 2e8 where
    #: the M-step without a maximum had raised): they keep the noise, and
    #: the ill-defined error where it has no maximum.
    zeroes_collapsed_scatter: bool = False

    def precision_cholesky(self, covariances):
        if not np.all(np.isfinite(covariances)):
            # NaN marks an M-step without a maximum (see _finite_or_nan).
            raise ill_defined_covariance_error(covariances.dtype, self.name)
        return super().precision_cholesky(covariances)


def _with_scatter(scatters: np.ndarray) -> np.ndarray:
    """The components that choose a shared orientation: all but those of zero scatter.

    All of them where every scatter is zero, so that the search has a start.
    """
    shaping = ~zero_scatter(scatters)
    return shaping if shaping.any() else np.ones_like(shaping)


class _SharedOrientationModel(_ConstrainedModel):
    """EVE and VVE: an M-step that searches one orientation, from a start too.

    Subclasses give :meth:`_estimate`; the M-step given the E-step's
    covariances starts a second search from their shared axes.
    """

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        return self._estimate(scatter, sum_resp, shift_sum, nk, reg_covar, None)

    def estimate_covariances_from(self, scatter, sum_resp, shift_sum, nk, reg_covar, previous):
        start = shared_axes(previous)
        return self._estimate(scatter, sum_resp, shift_sum, nk, reg_covar, start)


# ----------------------------------------------------------- spherical: EII
class EII(_ConstrainedModel, SphericalCovariance):
    """Equal spherical covariances, ``Sigma_k = lambda I`` (mclust's EII; "E" in 1-D).

    Parameters: 1.  M-step (closed form): ``lambda = sum_k tr(W_k) / (n D)``.
    ``covariances_`` has shape (n_components,), all entries equal.
    """

    name = "EII"

    def n_covariance_parameters(self, n_components, n_features):
        return 1

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        traces = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        variance = np.sum(traces) / (np.sum(nk) * shift_sum.shape[1])
        return np.full(nk.shape, variance) + reg_covar


# ------------------------------------------------------- diagonal: EEI VEI EVI
class EEI(_ConstrainedModel, DiagCovariance):
    """Equal diagonal covariances, ``Sigma_k = lambda A`` (mclust's EEI).

    Parameters: D.  M-step (closed form): ``Sigma = diag(sum_k W_k) / n``.
    ``covariances_`` has shape (n_components, n_features), all rows equal.
    """

    name = "EEI"

    def n_covariance_parameters(self, n_components, n_features):
        return n_features

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        diagonals = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        pooled = np.sum(diagonals, axis=0) / np.sum(nk)
        return np.tile(pooled, (nk.shape[0], 1)) + reg_covar


class VEI(_ConstrainedModel, DiagCovariance):
    """Diagonal covariances of one shape, ``Sigma_k = lambda_k A`` (mclust's VEI).

    Parameters: K + D - 1.  M-step (iterative, Celeux & Govaert 1995):
    alternate ``A = diag(sum_k W_k / lambda_k)`` scaled to ``det(A) = 1`` and
    ``lambda_k = tr(W_k A^-1) / (n_k D)``, from the spherical volumes
    ``tr(W_k) / (n_k D)``, until no parameter changes by more than ``tol``
    (relative) or after ``max_iter`` rounds; the problem is convex in the
    log-parameters, so the limit is the global maximiser.  ``covariances_`` has shape
    (n_components, n_features).
    """

    name = "VEI"
    zeroes_collapsed_scatter = True

    def n_covariance_parameters(self, n_components, n_features):
        return n_components + n_features - 1

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        diagonals = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            volumes, shape = _volume_shape_iteration(diagonals, nk, self.tol, self.max_iter)
            covariances = _finite_or_nan(volumes[:, None] * shape[None, :])
        return covariances + reg_covar


class EVI(_ConstrainedModel, DiagCovariance):
    """Diagonal covariances of one volume, ``Sigma_k = lambda A_k`` (mclust's EVI).

    Parameters: 1 + K (D - 1).  M-step (closed form): ``A_k = diag(W_k)``
    scaled to ``det(A_k) = 1`` and ``lambda = sum_k det(diag W_k)^(1/D) / n``.
    ``covariances_`` has shape (n_components, n_features).
    """

    name = "EVI"

    def n_covariance_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features - 1)

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        diagonals = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            volumes = _geometric_mean(diagonals)
            volume = np.sum(volumes) / np.sum(nk)
            shapes = unit_shapes_where_zero(diagonals / volumes[:, None], zero_scatter(diagonals))
            covariances = _finite_or_nan(volume * shapes)
        return covariances + reg_covar


# ------------------------------------------- full: VEE EVE VVE EEV VEV EVV
class VEE(_ConstrainedModel, FullCovariance):
    """Covariances proportional to one matrix, ``Sigma_k = lambda_k C`` (mclust's VEE).

    ``C = D A D^T`` with ``det(C) = 1``.  Parameters: K + D (D + 1) / 2 - 1.
    M-step (iterative, Celeux & Govaert 1995): alternate
    ``C = sum_k W_k / lambda_k`` scaled to ``det(C) = 1`` and
    ``lambda_k = tr(W_k C^-1) / (n_k D)``, from the spherical volumes
    ``tr(W_k) / (n_k D)``, until no parameter changes by more than ``tol``
    (relative) or after ``max_iter`` rounds.  ``covariances_`` has shape
    (n_components, n_features, n_features).
    """

    name = "VEE"
    zeroes_collapsed_scatter = True

    def n_covariance_parameters(self, n_components, n_features):
        return n_components + n_features * (n_features + 1) // 2 - 1

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        scatters = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            volumes, common = self._iterate(scatters, nk)
            covariances = _finite_or_nan(volumes[:, None, None] * common)
        return _add_reg(covariances, reg_covar)

    def _iterate(self, scatters, nk):
        n_features = scatters.shape[-1]
        # Start from the spherical volumes, positive whenever a scatter is nonzero.
        volumes = np.trace(scatters, axis1=1, axis2=2) / (n_features * nk)
        common = np.eye(n_features)
        # Components of zero scatter keep volume zero and leave C to the others.
        shaping = ~zero_scatter(scatters)
        if not shaping.any():
            return volumes, common
        for _ in range(self.max_iter):
            pooled = np.sum(scatters[shaping] / volumes[shaping, None, None], axis=0)
            if not np.all(np.isfinite(pooled)):
                return np.full_like(volumes, np.nan), common
            sign, log_det = np.linalg.slogdet(pooled)
            if not (sign > 0 and np.isfinite(log_det)):
                return np.full_like(volumes, np.nan), common
            new_common = pooled * np.exp(-log_det / n_features)
            try:
                # A determinant beyond float64's range leaves C non-finite.
                inverse = np.linalg.inv(new_common)
            except np.linalg.LinAlgError:
                return np.full_like(volumes, np.nan), common
            traces = np.einsum("kde,ed->k", scatters, inverse)
            new_volumes = traces / (n_features * nk)
            done = _converged(new_volumes, volumes, self.tol) and _converged(
                new_common, common, self.tol
            )
            volumes, common = new_volumes, new_common
            if done:
                break
        return volumes, common


class EVE(_SharedOrientationModel, FullCovariance):
    """One volume and orientation, varying shapes: ``lambda D A_k D^T`` (mclust's EVE).

    Parameters: 1 + K (D - 1) + D (D - 1) / 2.  M-step (iterative): the
    orientation minimises ``sum_k det(diag(D^T W_k D))^(1/D)``, the
    objective left once shapes and volume are profiled out; it is found from
    the eigenvectors of the pooled scatter by Newton steps on the rotation
    group, with the MM updates of Browne & McNicholas (2014) as fallback,
    until no angle moves by more than ``tol`` or after ``max_iter`` rounds.
    Then in closed form ``A_k = diag(D^T W_k D)`` scaled to ``det(A_k) = 1``
    and ``lambda = sum_k det(diag(D^T W_k D))^(1/D) / n``.  ``covariances_``
    has shape (n_components, n_features, n_features).
    """

    name = "EVE"

    def n_covariance_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features - 1) + n_features * (n_features - 1) // 2

    def _estimate(self, scatter, sum_resp, shift_sum, nk, reg_covar, start):
        scatters = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # Components of zero scatter fit any orientation: the others choose it.
            shaping = _with_scatter(scatters)
            orientation = _common_orientation(
                scatters[shaping], _eve_profile, self.tol, self.max_iter, start
            )
            diagonals = _diagonals(_rotate(scatters, orientation))
            volumes = _geometric_mean(diagonals)
            shapes = unit_shapes_where_zero(diagonals / volumes[:, None], zero_scatter(scatters))
            scales = np.sum(volumes) / np.sum(nk) * shapes
            covariances = _finite_or_nan(_rotate_diagonals(orientation, scales))
        return _add_reg(covariances, reg_covar)


class VVE(_SharedOrientationModel, FullCovariance):
    """One orientation, varying volumes and shapes: ``lambda_k D A_k D^T`` (mclust's VVE).

    The common principal components model.  Parameters:
    K + K (D - 1) + D (D - 1) / 2.  M-step (iterative): the orientation
    minimises ``sum_k n_k log det diag(D^T W_k D)``, the objective left once
    volumes and shapes are profiled out; it is found from the eigenvectors of
    the pooled scatter by Newton steps on the rotation group, with the MM
    updates of Browne & McNicholas (2014) (weights
    ``n_k / diag(D^T W_k D)``, i.e. ``(lambda_k A_k)^-1``) as fallback, until
    no angle moves by more than ``tol`` or after ``max_iter`` rounds.  Then
    ``lambda_k A_k = diag(D^T W_k D) / n_k``.  ``covariances_`` has shape
    (n_components, n_features, n_features).

    Notes
    -----
    mclust 6.0.0 weights its orientation update by ``A_k^-1`` alone, leaving
    out the volumes, so its VVE fits are a fixed point of a different map
    and reach a lower likelihood than this M-step wherever the volumes
    differ.
    """

    name = "VVE"
    zeroes_collapsed_scatter = True

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features + n_features * (n_features - 1) // 2

    def _estimate(self, scatter, sum_resp, shift_sum, nk, reg_covar, start):
        scatters = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            shaping = _with_scatter(scatters)
            orientation = _common_orientation(
                scatters[shaping], _vve_profile(nk[shaping]), self.tol, self.max_iter, start
            )
            scales = _diagonals(_rotate(scatters, orientation)) / nk[:, None]
            covariances = _finite_or_nan(_rotate_diagonals(orientation, scales))
        return _add_reg(covariances, reg_covar)


class EEV(_ConstrainedModel, FullCovariance):
    """One volume and shape, varying orientations: ``lambda D_k A D_k^T`` (mclust's EEV).

    Parameters: 1 + (D - 1) + K D (D - 1) / 2.  M-step (closed form, Celeux
    & Govaert 1995): with ``W_k = L_k Omega_k L_k^T`` (eigenvalues
    descending), ``D_k = L_k`` and ``lambda A = sum_k Omega_k / n``.
    ``covariances_`` has shape (n_components, n_features, n_features).
    """

    name = "EEV"

    def n_covariance_parameters(self, n_components, n_features):
        return n_features + n_components * n_features * (n_features - 1) // 2

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        scatters = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        values, vectors = _descending_eigh(scatters)
        pooled = np.sum(values, axis=0) / np.sum(nk)
        scales = np.tile(pooled, (nk.shape[0], 1))
        return _add_reg(_rotate_diagonals(vectors, scales), reg_covar)


class VEV(_ConstrainedModel, FullCovariance):
    """One shape, varying volumes and orientations: ``lambda_k D_k A D_k^T`` (mclust's VEV).

    Parameters: K + (D - 1) + K D (D - 1) / 2.  M-step (iterative, Celeux &
    Govaert 1995): ``D_k`` are the eigenvectors of ``W_k`` (eigenvalues
    ``Omega_k`` descending); then alternate ``A = sum_k Omega_k / lambda_k``
    scaled to ``det(A) = 1`` and ``lambda_k = tr(Omega_k A^-1) / (n_k D)``,
    from the spherical volumes ``tr(W_k) / (n_k D)``, until no parameter
    changes by more than ``tol`` (relative) or after ``max_iter`` rounds
    (convex in the log-parameters: the limit is the global maximiser).  ``covariances_``
    has shape (n_components, n_features, n_features).
    """

    name = "VEV"
    zeroes_collapsed_scatter = True

    def n_covariance_parameters(self, n_components, n_features):
        return (
            n_components
            + n_features
            - 1
            + n_components * n_features * (n_features - 1) // 2
        )

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        scatters = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        values, vectors = _descending_eigh(scatters)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            volumes, shape = _volume_shape_iteration(values, nk, self.tol, self.max_iter)
            scales = _finite_or_nan(volumes[:, None] * shape[None, :])
        return _add_reg(_rotate_diagonals(vectors, scales), reg_covar)


class EVV(_ConstrainedModel, FullCovariance):
    """Covariances of one volume, ``Sigma_k = lambda C_k`` (mclust's EVV).

    ``C_k = D_k A_k D_k^T`` with ``det(C_k) = 1``.  Parameters:
    1 + K (D (D + 1) / 2 - 1).  M-step (closed form, Celeux & Govaert 1995):
    ``C_k = W_k / det(W_k)^(1/D)`` and ``lambda = sum_k det(W_k)^(1/D) / n``.
    ``covariances_`` has shape (n_components, n_features, n_features).
    """

    name = "EVV"

    def n_covariance_parameters(self, n_components, n_features):
        return 1 + n_components * (n_features * (n_features + 1) // 2 - 1)

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        scatters = self.centred_scatter(scatter, sum_resp, shift_sum, nk)
        n_features = scatters.shape[-1]
        sign, log_det = np.linalg.slogdet(scatters)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            volumes = np.where(sign > 0, np.exp(log_det / n_features), 0.0)
            volume = np.sum(volumes) / np.sum(nk)
            shapes = unit_shapes_where_zero(
                scatters / volumes[:, None, None], zero_scatter(scatters)
            )
            covariances = _finite_or_nan(volume * shapes)
        return _add_reg(covariances, reg_covar)


# ------------------------------------------------------------- registration
def _register() -> None:
    """Register the models and aliases, in mclust's order, then "E" and "V"."""
    spherical, diag, tied, full = "spherical", "diag", "tied", "full"
    for entry in (
        EII(), ("VII", spherical), EEI(), VEI(), EVI(), ("VVI", diag), ("EEE", tied),
        VEE(), EVE(), VVE(), EEV(), VEV(), EVV(), ("VVV", full),
        ("E", "EII"), ("V", spherical),
    ):  # fmt: skip
        if isinstance(entry, tuple):
            register_covariance_alias(*entry)
        else:
            register_covariance_model(entry)


_register()
