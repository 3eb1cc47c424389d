"""Numerical solvers behind mclust's constrained M-steps.

Pure functions of the per-component scatter matrices: the alternating
volume/shape iteration of Celeux and Govaert (1995) and the search for a
common orientation (Newton steps on the rotation group, with the MM step of
Browne and McNicholas (2014) as fallback).  No validation: callers pass
finite arrays of matching shapes.
"""

from __future__ import annotations

import numpy as np

# Newton steps for the shared orientation up to this many rotation angles
# (D = 25); the Hessian of more is too large to form every iteration.
_NEWTON_MAX_ANGLES = 300


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


def zero_scatter(values: np.ndarray) -> np.ndarray:
    """Which components have a scatter of exactly zero (one row, or copies of one): (K,).

    ``values`` holds each component's scatter, diagonal or eigenvalues (K, D)
    or matrix (K, D, D).  Such a component's term in the M-step's objective,
    ``n_k log det Sigma_k``, is unbounded below as its volume goes to zero
    and does not depend on its shape or orientation: it has volume zero (a
    varying volume) or any shape (an equal volume, where the identity is
    taken), and leaves the shared parameters to the other components.
    ``reg_covar`` then gives it its covariance, as scikit-learn's models
    give a component of one row.
    """
    return ~np.any(values.reshape(values.shape[0], -1) != 0, axis=1)


def unit_shapes_where_zero(shapes: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """``shapes`` (K, D) or (K, D, D), the identity for the ``zero`` components (in place)."""
    if zero.any():
        shapes[zero] = 1.0 if shapes.ndim == 2 else np.eye(shapes.shape[-1])
    return shapes


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
    # Components of zero scatter keep volume zero and leave the shape to the others.
    shaping = ~zero_scatter(values)
    if not shaping.any():
        return volumes, shape
    for _ in range(max_iter):
        pooled = np.sum(values[shaping] / volumes[shaping, None], axis=0)
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

    Returns the rotation, the largest angle it turns by, and whether the
    objective moved by no more than its rounding (the minimum as far as the
    objective can tell: near it, angles of sqrt(eps) change it by eps, and
    an ill-conditioned Hessian keeps them from settling below ``tol``).
    Returns None when the direction does not descend or no backtracked step
    passes the Armijo test; the caller then takes an MM step instead.
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
            return rotation, step * np.max(np.abs(direction)), new_value >= value - noise
        step *= 0.5
    return None


def shared_axes(covariances: np.ndarray) -> np.ndarray:
    """The principal axes that covariances of one orientation share: (D, D).

    EVE's and VVE's covariances (``reg_covar`` added or not) are
    ``D diag(s_k) D^T`` with one ``D``; so is any combination of them, whose
    eigenvectors are ``D``.  Unequal weights keep two axes that are tied in
    one component apart in the sum.
    """
    weights = np.arange(1, covariances.shape[0] + 1) / np.trace(covariances, axis1=1, axis2=2)
    return _descending_eigh(np.tensordot(weights, covariances, axes=1))[1]


def _common_orientation(
    scatters: np.ndarray, profile, tol: float, max_iter: int, start: np.ndarray | None = None
) -> np.ndarray:
    """Shared orientation of EVE and VVE: minimise ``profile(diag(O^T W_k O))``.

    Starts from the eigenvectors of the pooled scatter and, when given, from
    ``start`` (the orientation of the E-step's parameters), and keeps the
    better end: started there, the search cannot end above the current
    orientation's objective, so EM's likelihood cannot fall.  Each round takes a
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
    pooled = _search_orientation(
        scatters, profile, tol, max_iter, _descending_eigh(np.sum(scatters, axis=0))[1]
    )
    if start is None or scatters.shape[-1] == 1:
        return pooled
    resumed = _search_orientation(scatters, profile, tol, max_iter, start)
    objectives = [profile(_diagonals(_rotate(scatters, o)))[0] for o in (pooled, resumed)]
    # NaN (a diagonal of zero) loses to any number.
    return resumed if objectives[1] < objectives[0] or np.isnan(objectives[0]) else pooled


def _search_orientation(
    scatters: np.ndarray, profile, tol: float, max_iter: int, orientation: np.ndarray
) -> np.ndarray:
    """:func:`_common_orientation`'s descent from one ``orientation``."""
    n_features = scatters.shape[-1]
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
            rotation, moved, settled = newton
            new = orientation @ rotation
            moved = 0.0 if settled else moved
        orientation = new
        if moved <= tol:
            break
    return orientation
