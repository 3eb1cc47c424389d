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
the usual ill-defined-covariance error.

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

from .covariance import (
    DiagCovariance,
    FullCovariance,
    SphericalCovariance,
    _centred_second_moment,
    ill_defined_covariance_error,
    register_covariance_alias,
    register_covariance_model,
)

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

# Newton steps for the shared orientation up to this many rotation angles
# (D = 25); the Hessian of more is too large to form every iteration.
_NEWTON_MAX_ANGLES = 300

# mclust's model names in mclust's order.
MCLUST_MODEL_NAMES = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip


# ------------------------------------------------------------------ scatter
def _full_scatter(scatter, sum_resp, shift_sum, nk) -> np.ndarray:
    """``W_k`` (K, D, D) from statistics around the shift, as ``full`` forms it."""
    centred = _centred_second_moment(scatter, sum_resp, shift_sum, nk)
    # Symmetrise: the two rank-one corrections round differently.
    return 0.5 * (centred + np.swapaxes(centred, 1, 2))


def _diag_scatter(scatter, sum_resp, shift_sum, nk) -> np.ndarray:
    """Diagonal of ``W_k`` (K, D) from statistics around the shift, as ``diag``."""
    delta = shift_sum / nk[:, None]
    return scatter - 2.0 * shift_sum * delta + sum_resp[:, None] * delta**2


def _spherical_scatter(scatter, sum_resp, shift_sum, nk) -> np.ndarray:
    """Trace of ``W_k`` (K,) from statistics around the shift, as ``spherical``."""
    delta = shift_sum / nk[:, None]
    return (
        scatter
        - 2.0 * np.sum(shift_sum * delta, axis=1)
        + sum_resp * np.sum(delta**2, axis=1)
    )


# ------------------------------------------------------------------ helpers
def _geometric_mean(values: np.ndarray) -> np.ndarray:
    """``prod(values)^(1/D)`` along the last axis, in logs to avoid overflow."""
    with np.errstate(divide="ignore"):
        return np.exp(np.mean(np.log(values), axis=-1))


def _descending_eigh(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (as columns) of symmetric matrices."""
    values, vectors = np.linalg.eigh(matrices)
    return values[..., ::-1], vectors[..., ::-1]


def _rotate_diagonals(orientation: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """``O_k diag(s_k) O_k^T`` for every row of ``scales``; ``O`` shared or per k."""
    scaled = orientation * scales[:, None, :]
    return np.matmul(scaled, np.swapaxes(np.broadcast_to(orientation, scaled.shape), 1, 2))


def _add_reg(covariances: np.ndarray, reg_covar: float) -> np.ndarray:
    """``reg_covar`` on the diagonal of every (D, D) block, or on every variance."""
    if covariances.ndim == 3:
        n_features = covariances.shape[-1]
        covariances[:, np.arange(n_features), np.arange(n_features)] += reg_covar
        return covariances
    return covariances + reg_covar


def _finite_or_nan(covariances: np.ndarray) -> np.ndarray:
    """The covariances, or all-NaN where the constrained maximiser does not exist.

    A zero determinant or variance makes the normalisations divide by zero;
    NaN then reaches :meth:`precision_cholesky`, which raises the usual
    ill-defined-covariance error in the data's dtype.
    """
    if np.all(np.isfinite(covariances)):
        return covariances
    return np.full_like(covariances, np.nan)


def _converged(new: np.ndarray, old: np.ndarray, tol: float) -> bool:
    """Largest change relative to the largest entry below ``tol``."""
    scale = np.max(np.abs(new))
    return bool(np.max(np.abs(new - old)) <= tol * scale)


def _volume_shape_iteration(
    values: np.ndarray, nk: np.ndarray, tol: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray]:
    """Varying volumes, one shared shape: the inner loop of VEI and VEV.

    Minimises ``sum_k [n_k D log lambda_k + sum_j values_kj / (lambda_k a_j)]``
    over ``lambda_k > 0`` and ``a`` with ``prod(a) = 1`` by alternating the two
    closed-form partial minimisers (Celeux & Govaert 1995, models
    ``[lambda_k B]`` and ``[lambda_k D_k A D_k^T]``).  In the logarithms of the
    parameters the objective is convex, so the fixed point is the global
    minimum whatever the start.

    Parameters
    ----------
    values : ndarray of shape (K, D)
        Diagonal scatter (VEI) or descending scatter eigenvalues (VEV).
    nk : ndarray of shape (K,)

    Returns
    -------
    volumes : ndarray of shape (K,)
    shape : ndarray of shape (D,)
    """
    n_features = values.shape[1]
    # Start from the spherical volumes, positive whenever a scatter is nonzero.
    volumes = np.sum(values, axis=1) / (n_features * nk)
    shape = np.ones(n_features)
    for _ in range(max_iter):
        pooled = np.sum(values / volumes[:, None], axis=0)
        new_shape = pooled / _geometric_mean(pooled)
        new_volumes = (values @ (1.0 / new_shape)) / (n_features * nk)
        done = _converged(new_volumes, volumes, tol) and _converged(new_shape, shape, tol)
        volumes, shape = new_volumes, new_shape
        if done or not np.all(np.isfinite(volumes)):
            break
    return volumes, shape


def _polar_minimiser(gradient: np.ndarray) -> np.ndarray:
    """The orthogonal ``Q`` minimising ``tr(gradient^T Q)``: ``-P R^T`` from the SVD."""
    left, _, right_t = np.linalg.svd(gradient)
    return -left @ right_t


def _rotate(scatters: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """``O^T W_k O`` for every k: (K, D, D)."""
    return np.matmul(np.matmul(orientation.T, scatters), orientation)


def _diagonals(matrices: np.ndarray) -> np.ndarray:
    """Diagonals of a stack of matrices, as a writable (K, D) array."""
    return np.diagonal(matrices, axis1=1, axis2=2).copy()


def _eve_profile(diagonals: np.ndarray):
    """EVE's profiled objective ``sum_k det(diag_k)^(1/D)``, its gradient and Hessian.

    With the orientation fixed, the optimal shapes and volume leave
    ``n D log(sum_k G_k / n)`` (``G_k`` the geometric mean of ``diag_k``) plus
    constants, so minimising ``sum_k G_k`` is the orientation problem.
    Derivatives are with respect to the diagonals: (K, D) and (K, D, D).
    """
    n_features = diagonals.shape[1]
    means = _geometric_mean(diagonals)
    grad = means[:, None] / (n_features * diagonals)
    hess = grad[:, :, None] * grad[:, None, :] / means[:, None, None]
    hess -= np.eye(n_features) * (grad / diagonals)[:, None, :]
    return np.sum(means), grad, hess


def _vve_profile(nk: np.ndarray):
    """VVE's profiled objective ``sum_k n_k log det diag_k`` and its derivatives."""

    def profile(diagonals):
        grad = nk[:, None] / diagonals
        hess = np.eye(diagonals.shape[1]) * (-grad / diagonals)[:, None, :]
        return np.sum(nk * np.sum(np.log(diagonals), axis=1)), grad, hess

    return profile


def _orientation_mm_step(
    scatters: np.ndarray, orientation: np.ndarray, weights: np.ndarray, top_eigs: np.ndarray
) -> np.ndarray:
    """Two MM updates of a shared orientation (Browne & McNicholas 2014).

    Both decrease ``g(O) = sum_k tr(W_k O diag(m_k) O^T)`` for fixed diagonal
    weights ``m_k``, the gradient of a concave profile with respect to the
    rotated diagonals, and so decrease the profile itself.  The first
    majorises with ``W_k <= w_k I`` (``w_k`` the largest eigenvalue of
    ``W_k``), the second with ``diag(m_k) <= max(m_k) I``; each leaves a
    concave quadratic in ``O`` whose tangent plane is minimised over
    orthogonal matrices by a polar decomposition.
    """
    # MM 1, in the transposed orientation Q = O^T: sum_k M_k Q (W_k - w_k I).
    q = orientation.T
    rotated = np.matmul(q, scatters) - top_eigs[:, None, None] * q
    orientation = _polar_minimiser(np.sum(weights[:, :, None] * rotated, axis=0)).T
    # MM 2: sum_k W_k O (M_k - max(M_k) I).
    spread = weights - np.max(weights, axis=1, keepdims=True)
    turned = np.matmul(scatters, orientation) * spread[:, None, :]
    return _polar_minimiser(np.sum(turned, axis=0))


def _angle_gradient_hessian(rotated, grad_d, hess_d, rows, cols):
    """Gradient and Hessian of ``f(O expm(S))`` at ``S = 0`` in the angles of ``S``.

    ``S`` is skew-symmetric with ``S[rows, cols] = s``.  To second order the
    rotated diagonals move by ``2 diag(X S)`` and ``diag(S^2 X - S X S)``
    (``X = O^T W_k O``), which the chain rule combines with the derivatives
    ``grad_d`` (K, D) and ``hess_d`` (K, D, D) of the profile.
    """
    n_components, n_features, _ = rotated.shape
    n_angles = rows.size
    x_rc = rotated[:, rows, cols]
    jacobian = np.zeros((n_components, n_features, n_angles))
    jacobian[:, cols, np.arange(n_angles)] = 2.0 * x_rc
    jacobian[:, rows, np.arange(n_angles)] = -2.0 * x_rc
    gradient = np.einsum("kl,klr->r", grad_d, jacobian)
    hessian = np.einsum("klr,klm,kmt->rt", jacobian, hess_d, jacobian)
    # Second-order term sum_l g_l diag(S^2 X - S X S)_l as a bilinear form in
    # the basis E_r = e_a e_b^T - e_b e_a^T (a, b = rows[r], cols[r]).
    a, b = rows[:, None], cols[:, None]
    c, d = rows[None, :], cols[None, :]
    g_a, g_b = grad_d[:, rows, None], grad_d[:, cols, None]
    bc, bd, ac, ad = (b == c), (b == d), (a == c), (a == d)
    x = rotated
    first = g_a * (bc * x[:, d, a] - bd * x[:, c, a]) - g_b * (ac * x[:, d, b] - ad * x[:, c, b])
    second = g_a * (ad * x[:, b, c] - ac * x[:, b, d]) - g_b * (bd * x[:, a, c] - bc * x[:, a, d])
    bilinear = np.sum(first - second, axis=0)
    return gradient, hessian + bilinear + bilinear.T


def _cayley(skew: np.ndarray) -> np.ndarray:
    """``(I - S/2)^-1 (I + S/2)``: orthogonal, and equal to ``expm(S)`` to second order."""
    eye = np.eye(skew.shape[0])
    return np.linalg.solve(eye - 0.5 * skew, eye + 0.5 * skew)


def _newton_rotation(rotated, profile, rows, cols):
    """A Newton step on the rotation group that decreases ``profile``, or None.

    Returns the rotation and the largest angle it turns by, or None when the
    direction does not descend or no backtracked step passes the Armijo test
    (at the minimum, where rounding hides any decrease); the caller then
    takes an MM step instead.
    """
    value, grad_d, hess_d = profile(_diagonals(rotated))
    gradient, hessian = _angle_gradient_hessian(rotated, grad_d, hess_d, rows, cols)
    if not np.all(np.isfinite(hessian)):
        return None
    # Saddle-free Newton: eigenvalues by their magnitude, so that the step
    # descends along negative curvature instead of climbing it.
    values, vectors = np.linalg.eigh(hessian)
    magnitudes = np.maximum(np.abs(values), 1e-8 * np.max(np.abs(values)))
    direction = -vectors @ ((vectors.T @ gradient) / magnitudes)
    slope = gradient @ direction
    if not slope < 0:
        return None
    # Rounding noise of the objective: steps that change it by less are equal.
    noise = 8.0 * np.finfo(float).eps * abs(value)
    step = 1.0
    for _ in range(30):
        skew = np.zeros(hess_d.shape[1:])
        skew[rows, cols] = step * direction
        skew -= skew.T
        rotation = _cayley(skew)
        new_value = profile(_diagonals(_rotate(rotated, rotation)))[0]
        if new_value <= value + 1e-4 * step * slope + noise:
            return rotation, step * np.max(np.abs(direction))
        step *= 0.5
    return None


def _common_orientation(scatters: np.ndarray, profile, tol: float, max_iter: int) -> np.ndarray:
    """Shared orientation of EVE and VVE: minimise ``profile(diag(O^T W_k O))``.

    Starts from the eigenvectors of the pooled scatter.  Each round takes a
    saddle-free Newton step in the rotation angles (Hessian eigenvalues by
    magnitude, Cayley retraction, Armijo backtracking), or when that fails
    the two MM updates of Browne & McNicholas (2014), so every round
    decreases the objective; it stops when no angle or orientation entry
    moves by more than ``tol``, or after ``max_iter`` rounds.  Newton steps
    are used up to ``_NEWTON_MAX_ANGLES`` angles (``D (D - 1) / 2``), beyond
    which the Hessian is too large to form and MM alone runs.  The objective
    is not convex in the orientation: the result is a local minimum, the one
    reached from that start.

    Returns
    -------
    orientation : ndarray of shape (D, D)
        Columns are the common principal axes.
    """
    n_features = scatters.shape[-1]
    orientation = _descending_eigh(np.sum(scatters, axis=0))[1]
    if n_features == 1:
        return orientation
    top_eigs = np.linalg.eigvalsh(scatters)[:, -1]
    rows, cols = np.triu_indices(n_features, 1)
    use_newton = rows.size <= _NEWTON_MAX_ANGLES
    for _ in range(max_iter):
        rotated = _rotate(scatters, orientation)
        if not np.all(_diagonals(rotated) > 0):
            break
        newton = _newton_rotation(rotated, profile, rows, cols) if use_newton else None
        if newton is None:
            weights = profile(_diagonals(rotated))[1]
            new = _orientation_mm_step(scatters, orientation, weights, top_eigs)
            moved = np.max(np.abs(new - orientation))
        else:
            rotation, moved = newton
            new = orientation @ rotation
        orientation = new
        if moved <= tol:
            break
    return orientation


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

    def precision_cholesky(self, covariances):
        if not np.all(np.isfinite(covariances)):
            raise ill_defined_covariance_error(covariances.dtype)
        return super().precision_cholesky(covariances)


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
        traces = _spherical_scatter(scatter, sum_resp, shift_sum, nk)
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
        diagonals = _diag_scatter(scatter, sum_resp, shift_sum, nk)
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

    def n_covariance_parameters(self, n_components, n_features):
        return n_components + n_features - 1

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        diagonals = _diag_scatter(scatter, sum_resp, shift_sum, nk)
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
        diagonals = _diag_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            volumes = _geometric_mean(diagonals)
            volume = np.sum(volumes) / np.sum(nk)
            covariances = _finite_or_nan(volume * diagonals / volumes[:, None])
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

    def n_covariance_parameters(self, n_components, n_features):
        return n_components + n_features * (n_features + 1) // 2 - 1

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        scatters = _full_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            volumes, common = self._iterate(scatters, nk)
            covariances = _finite_or_nan(volumes[:, None, None] * common)
        return _add_reg(covariances, reg_covar)

    def _iterate(self, scatters, nk):
        n_features = scatters.shape[-1]
        # Start from the spherical volumes, positive whenever a scatter is nonzero.
        volumes = np.trace(scatters, axis1=1, axis2=2) / (n_features * nk)
        common = np.eye(n_features)
        for _ in range(self.max_iter):
            pooled = np.sum(scatters / volumes[:, None, None], axis=0)
            if not np.all(np.isfinite(pooled)):
                return np.full_like(volumes, np.nan), common
            sign, log_det = np.linalg.slogdet(pooled)
            if not (sign > 0 and np.isfinite(log_det)):
                return np.full_like(volumes, np.nan), common
            new_common = pooled * np.exp(-log_det / n_features)
            traces = np.einsum("kde,ed->k", scatters, np.linalg.inv(new_common))
            new_volumes = traces / (n_features * nk)
            done = _converged(new_volumes, volumes, self.tol) and _converged(
                new_common, common, self.tol
            )
            volumes, common = new_volumes, new_common
            if done:
                break
        return volumes, common


class EVE(_ConstrainedModel, FullCovariance):
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

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        scatters = _full_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            orientation = _common_orientation(scatters, _eve_profile, self.tol, self.max_iter)
            diagonals = _diagonals(_rotate(scatters, orientation))
            volumes = _geometric_mean(diagonals)
            scales = np.sum(volumes) / np.sum(nk) * diagonals / volumes[:, None]
            covariances = _finite_or_nan(_rotate_diagonals(orientation, scales))
        return _add_reg(covariances, reg_covar)


class VVE(_ConstrainedModel, FullCovariance):
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

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features + n_features * (n_features - 1) // 2

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        scatters = _full_scatter(scatter, sum_resp, shift_sum, nk)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            orientation = _common_orientation(
                scatters, _vve_profile(nk), self.tol, self.max_iter
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
        scatters = _full_scatter(scatter, sum_resp, shift_sum, nk)
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

    def n_covariance_parameters(self, n_components, n_features):
        return (
            n_components
            + n_features
            - 1
            + n_components * n_features * (n_features - 1) // 2
        )

    def estimate_covariances(self, scatter, sum_resp, shift_sum, nk, reg_covar):
        scatters = _full_scatter(scatter, sum_resp, shift_sum, nk)
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
        scatters = _full_scatter(scatter, sum_resp, shift_sum, nk)
        n_features = scatters.shape[-1]
        sign, log_det = np.linalg.slogdet(scatters)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            volumes = np.where(sign > 0, np.exp(log_det / n_features), 0.0)
            volume = np.sum(volumes) / np.sum(nk)
            covariances = _finite_or_nan(volume * scatters / volumes[:, None, None])
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
