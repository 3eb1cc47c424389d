"""Matplotlib views of a fitted mixture and of model-selection criteria.

Every function draws on the ``ax`` it is given, or on a new figure when
``ax`` is None, and returns the Axes.  Matplotlib is imported inside the
functions so that ``import gaussmix`` stays light and never picks a backend.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from .covariance import get_covariance_model, kernel_family
from ._plot_fits import _new_axes, plot_criterion, plot_log_likelihood_trace, plot_selection

__all__ = [
    "covariances_2d",
    "marginal_log_density",
    "plot_clusters",
    "plot_criterion",
    "plot_density",
    "plot_log_likelihood_trace",
    "plot_pairs",
    "plot_selection",
    "plot_uncertainty",
]

_LINESTYLES = ("-", "--", ":", "-.")


def covariances_2d(gmm, features: Sequence[int] = (0, 1)) -> np.ndarray:
    """The 2x2 covariance of two features for each component.

    For a Gaussian mixture this is exact: the marginal of a component over
    two features is Gaussian with the mean restricted to those features and
    the covariance restricted to their 2x2 block.

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture with at least two features.
    features : pair of int, default=(0, 1)
        The two feature indices, in the order of the block's rows.

    Returns
    -------
    covariances : ndarray of shape (n_components, 2, 2)
        Built from ``gmm.covariances_`` according to ``gmm.covariance_type``.
    """
    return _covariances_2d(gmm, features, "covariances_2d")


def _covariances_2d(gmm, features: Sequence[int], caller: str) -> np.ndarray:
    """:func:`covariances_2d`, its error on one feature naming ``caller``."""
    check_is_fitted(gmm)
    covariances = np.asarray(gmm.covariances_, dtype=np.float64)
    n_components, n_features = np.shape(gmm.means_)
    if n_features < 2:
        raise ValueError(
            f"{caller} needs at least 2 features, the mixture has {n_features}; "
            "plot_density draws a mixture of one feature, plot_uncertainty its "
            "classification."
        )
    f = list(_check_features(features, n_features, size=2))
    kind = gmm.covariance_type
    # mclust's models store their covariances in the layout of their kernel
    # family, one of scikit-learn's four.
    layout = kernel_family(get_covariance_model(kind)).name
    if layout == "full":
        return covariances[:, f][:, :, f].copy()
    if layout == "tied":
        return np.repeat(covariances[np.ix_(f, f)][None], n_components, axis=0)
    if layout == "diag":
        return np.stack([np.diag(c[f]) for c in covariances])
    if layout == "spherical":
        return covariances[:, None, None] * np.eye(2)
    raise ValueError(f"Cannot plot covariance_type {kind!r}.")


def _quietly(method, X):
    """``method(X)`` without scikit-learn's warning that plain rows lack feature names.

    A plot's points are positional by design (columns in the model's
    order), and the warning would repeat on every plot of a model fitted on
    a DataFrame.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return method(X)


def _plot_points(gmm, X) -> tuple[np.ndarray, object]:
    """``X`` checked as the mixture's ``predict`` checks it: float64 points, and what to predict on.

    A 1-D ``X`` for a mixture of one feature is that feature's values, as
    mclust's plots take them (``predict`` itself wants a column).  Anything
    else ``predict`` would refuse (NaN, the wrong number of features, other
    column names) raises its ValueError here, before any drawing.
    """
    check_is_fitted(gmm)
    if np.ndim(X) == 1 and getattr(gmm, "n_features_in_", None) == 1:
        X = np.asarray(X).reshape(-1, 1)
    checked = _quietly(
        lambda rows: validate_data(gmm, rows, reset=False, dtype=[np.float64, np.float32]), X
    )
    return np.asarray(checked, dtype=np.float64), X


def _check_features(features, n_features: int, size: int | None = None) -> tuple[int, ...]:
    """Feature indices as ints, checked to be in range, distinct and ``size`` many."""
    chosen = tuple(int(i) for i in features)
    if size is not None and len(chosen) != size:
        raise ValueError(f"Expected {size} feature indices, got {len(chosen)}: {chosen}.")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"Feature indices must be distinct, got {chosen}.")
    bad = [i for i in chosen if not 0 <= i < n_features]
    if bad:
        raise ValueError(
            f"Feature indices {bad} are out of range for {n_features} features."
        )
    return chosen


def _ellipse_geometry(covariance: np.ndarray, n_std: float) -> tuple[float, float, float]:
    """Width, height and angle (degrees) of the ``n_std`` contour of a 2x2 covariance."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    # eigh sorts ascending; the width runs along the major axis.
    major = eigenvectors[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0]))
    # Clip rounding noise so a singular direction gives a flat ellipse, not NaN.
    minor_sd, major_sd = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return 2.0 * n_std * major_sd, 2.0 * n_std * minor_sd, angle


def _feature_labels(gmm) -> tuple[str, str]:
    names = getattr(gmm, "feature_names_in_", None)
    if names is not None:
        return str(names[0]), str(names[1])
    return "feature 0", "feature 1"


def plot_clusters(gmm, X, ax=None, n_std: float | Sequence[float] = (1, 2, 3)):
    """Scatter ``X`` coloured by predicted component, with covariance ellipses.

    Only the first two features are drawn; each component gets one ellipse
    per entry of ``n_std``, the contour at that many standard deviations
    (Mahalanobis distance) from its mean.

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture of any ``covariance_type``.
    X : array-like of shape (n_samples, n_features)
        Points to draw; their colours come from ``gmm.predict(X)``.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when None.
    n_std : float or sequence of float, default=(1, 2, 3)
        Radii of the ellipses, in standard deviations (one number: one
        ellipse per component, as :func:`plot_pairs` takes it).

    Returns
    -------
    ax : matplotlib.axes.Axes
        Ellipse patches carry the gid ``"component-{k}-{n_std}sigma"``.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    n_std = tuple(np.atleast_1d(n_std).tolist())

    covariances = _covariances_2d(gmm, (0, 1), "plot_clusters")
    points, X = _plot_points(gmm, X)
    labels = _quietly(gmm.predict, X)
    points = points[:, :2]
    means = np.asarray(gmm.means_, dtype=np.float64)[:, :2]
    ax = _new_axes() if ax is None else ax
    colors = [f"C{k % 10}" for k in range(len(means))]

    for k, color in enumerate(colors):
        members = points[labels == k]
        ax.scatter(members[:, 0], members[:, 1], s=12, color=color, alpha=0.6,
                   label=f"component {k} (weight {gmm.weights_[k]:.2f})")
        for i, radius in enumerate(n_std):
            width, height, angle = _ellipse_geometry(covariances[k], radius)
            ellipse = Ellipse(means[k], width, height, angle=angle, fill=False,
                              edgecolor=color, linewidth=1.5,
                              linestyle=_LINESTYLES[i % len(_LINESTYLES)])
            ellipse.set_gid(f"component-{k}-{radius:g}sigma")
            ax.add_patch(ellipse)
    ax.scatter(means[:, 0], means[:, 1], marker="x", s=80, color="black", label="means")

    # Proxy handles: one legend entry per sigma level, not per ellipse.
    handles, _ = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="grey", linestyle=_LINESTYLES[i % len(_LINESTYLES)],
               label=f"{radius:g} sigma")
        for i, radius in enumerate(n_std)
    ]
    ax.legend(handles=handles, fontsize="small", loc="best")
    xlabel, ylabel = _feature_labels(gmm)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(
        f"{len(means)} components, covariance_type={gmm.covariance_type!r}"
    )
    ax.autoscale_view()
    return ax


def _cycle_colors(n_components: int) -> np.ndarray:
    """RGBA of ``"C{k % 10}"`` for each component: (n_components, 4)."""
    from matplotlib.colors import to_rgba_array

    return to_rgba_array([f"C{k % 10}" for k in range(n_components)])


def _feature_name(gmm, index: int) -> str:
    names = getattr(gmm, "feature_names_in_", None)
    return str(names[index]) if names is not None else f"feature {index}"


def marginal_log_density(gmm, points, features: Sequence[int] = (0, 1)) -> np.ndarray:
    """Log-density of the mixture's exact 2-D marginal over two features.

    The marginal of a Gaussian mixture over some features is the mixture, with
    the same weights, of the components' marginals: Gaussians with means
    ``means_[:, features]`` and covariances restricted to the 2x2 block
    (:func:`covariances_2d`).  No other feature is held fixed.

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture with at least two features.
    points : array-like of shape (n_points, 2)
        Values of the two chosen features.
    features : pair of int, default=(0, 1)
        The two feature indices.

    Returns
    -------
    log_density : ndarray of shape (n_points,)
    """
    check_is_fitted(gmm)
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    covariances = _covariances_2d(gmm, features, "marginal_log_density")
    means = np.asarray(gmm.means_, dtype=np.float64)[:, list(features)]
    points = np.asarray(points, dtype=np.float64)
    if points.shape == (2,):
        points = points[None]
    if points.ndim != 2 or points.shape[1] != 2:
        # A reshape took any even-sized array (X itself) for other points.
        raise ValueError(
            f"points must have shape (n_points, 2), the values of features "
            f"{tuple(features)}; got shape {points.shape}. Pass X[:, list(features)]."
        )
    if not np.all(np.isfinite(points)):
        raise ValueError("points hold NaN or infinite values; the density needs finite ones.")
    weights = np.asarray(gmm.weights_, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    per_component = np.stack([
        multivariate_normal(mean=means[k], cov=covariances[k], allow_singular=True).logpdf(points)
        .reshape(-1)
        for k in range(len(means))
    ], axis=1)
    return logsumexp(per_component + log_weights, axis=1)


def plot_uncertainty(gmm, X, ax=None, features: Sequence[int] | None = None, *,
                     size_scale: float = 200.0):
    """Points sized by their classification uncertainty, as mclust's uncertainty plot.

    The uncertainty of a point is ``1 - max_k p(k | x)``, from
    ``gmm.predict_proba``: 0 for a point surely in one component, at most
    ``1 - 1/K``.  Each point's marker area (points squared) is its
    uncertainty times the factor ``size_scale / max(uncertainty)`` (times
    ``size_scale`` alone when no point is uncertain), so the most uncertain
    point has area ``size_scale``, larger markers are more uncertain and sure
    points all but vanish; colour is the predicted component.  Every point is
    also drawn as a small grey dot underneath, so that sure points still show.
    Data with one feature are drawn as mclust draws them: the feature on the
    x axis and each point's uncertainty on the y axis (the grey dots at 0).

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture.
    X : array-like of shape (n_samples, n_features)
        Points to classify and draw.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when None.
    features : pair of int, optional
        The two features on the x and y axes; default ``(0, 1)``, or ``(0,)``
        (one index) for data with one feature.
    size_scale : float, default=200.0
        Marker area of the most uncertain point (points squared); the
        others' areas are in proportion to their uncertainty.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The sized points are one scatter, in the order of ``X``, with the
        gid ``"uncertainty"``; the grey dots have the gid ``"points"``.
    """
    from matplotlib.lines import Line2D

    points, X = _plot_points(gmm, X)
    one_feature = points.shape[1] == 1
    if features is None:
        features = (0,) if one_feature else (0, 1)
    chosen = _check_features(features, points.shape[1], size=1 if one_feature else 2)
    proba = _quietly(gmm.predict_proba, X)
    labels = np.argmax(proba, axis=1)
    uncertainty = 1.0 - proba.max(axis=1)
    n_components = proba.shape[1]
    # RGBA rows, not one colour name per point: matplotlib parses names one
    # by one (N = 3e5: 1.94 s against 0.11 s).
    colors = _cycle_colors(n_components)[labels]
    largest = float(uncertainty.max())
    factor = size_scale / largest if largest > 0 else size_scale
    ax = _new_axes() if ax is None else ax
    x = points[:, chosen[0]]
    y = uncertainty if one_feature else points[:, chosen[1]]
    ax.scatter(x, np.zeros_like(x) if one_feature else y, s=4, color="grey", alpha=0.5,
               gid="points")
    ax.scatter(x, y, s=factor * uncertainty, c=colors,
               alpha=0.7, edgecolors="black", linewidths=0.3, gid="uncertainty")
    handles = [
        Line2D([], [], marker="o", linestyle="", color=f"C{k % 10}", label=f"component {k}")
        for k in range(n_components)
    ]
    ax.legend(handles=handles, fontsize="small", loc="best",
              title="size = 1 - max p(k|x)", title_fontsize="small")
    ax.set_xlabel(_feature_name(gmm, chosen[0]))
    ax.set_ylabel("uncertainty, 1 - max p(k|x)" if one_feature else _feature_name(gmm, chosen[1]))
    ax.set_title(f"Classification uncertainty (largest marker: {largest:.3g})")
    return ax


def plot_density(gmm, X=None, ax=None, features: Sequence[int] = (0, 1),
                 levels=10, grid_size: int = 100):
    """Contours of the mixture's log-density over two features.

    With more than two features the density drawn is the exact 2-D marginal
    (:func:`marginal_log_density`): a mixture of the components' marginals,
    whose means are ``means_[:, features]`` and covariances the 2x2 blocks of
    :func:`covariances_2d`.  The other features are integrated out, not held
    at a fixed value.  A mixture of one feature is drawn as mclust draws it:
    its density as a curve, each component's share ``w_k N(x | mu_k,
    sigma_k^2)`` dashed, over a density histogram of ``X`` (``features`` and
    ``levels`` do not apply).

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture.
    X : array-like of shape (n_samples, n_features), optional
        The grid spans the range of its two features, widened by 5% on each
        side, and its points are drawn under the contours.  When None the
        grid spans each component mean plus and minus 3 standard deviations.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made when None.
    features : pair of int, default=(0, 1)
        The two features on the x and y axes.
    levels : int or sequence of float, default=10
        An int draws that many contours of the log-density evenly spaced
        strictly between ``max - 15`` (or the grid's minimum, if higher) and
        the maximum; a sequence gives the log-density levels themselves.
    grid_size : int, default=100
        Grid points along each axis.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The log-density on the grid is also shaded (a Gouraud-shaded mesh of
        gid ``"density-grid"`` whose coordinates are the grid points and whose
        array is the log-density there); the contour set has the gid
        ``"density"``.  For one feature, the curve has the gid ``"density"``,
        the components' curves ``"component-0"``, ``"component-1"``... and
        the histogram's bars ``"histogram"``.
    """
    check_is_fitted(gmm)
    if isinstance(grid_size, bool) or not isinstance(grid_size, Integral) or grid_size < 2:
        raise ValueError(f"grid_size must be an integer >= 2, got {grid_size!r}.")
    n_features = np.shape(gmm.means_)[1]
    if n_features == 1:
        return _plot_density_1d(gmm, X, ax, grid_size)
    fx, fy = _check_features(features, n_features, size=2)
    if X is not None:
        # As predict checks it: a reordered frame drew other columns.
        points = _plot_points(gmm, X)[0][:, [fx, fy]]
        low, high = points.min(axis=0), points.max(axis=0)
        pad = 0.05 * np.where(high > low, high - low, 1.0)
        low, high = low - pad, high + pad
    else:
        points = None
        means = np.asarray(gmm.means_, dtype=np.float64)[:, [fx, fy]]
        sds = np.sqrt(np.clip(np.diagonal(covariances_2d(gmm, (fx, fy)), axis1=1, axis2=2),
                              0.0, None))
        low = (means - 3.0 * sds).min(axis=0)
        high = (means + 3.0 * sds).max(axis=0)
    xs = np.linspace(low[0], high[0], grid_size)
    ys = np.linspace(low[1], high[1], grid_size)
    xx, yy = np.meshgrid(xs, ys)
    zz = marginal_log_density(gmm, np.column_stack([xx.ravel(), yy.ravel()]),
                              (fx, fy)).reshape(xx.shape)

    if np.isscalar(levels):
        top = float(np.max(zz))
        bottom = max(float(np.min(zz)), top - 15.0)
        contour_levels = np.linspace(bottom, top, int(levels) + 2)[1:-1]
    else:
        contour_levels = np.asarray(levels, dtype=np.float64)

    ax = _new_axes() if ax is None else ax
    # A pale shading: the colour map's top is reached well above the maximum.
    bottom_z, top_z = float(np.min(zz)), float(np.max(zz))
    ax.pcolormesh(xx, yy, zz, shading="gouraud", cmap="Blues", vmin=bottom_z,
                  vmax=top_z + 1.5 * (top_z - bottom_z) + 1e-12,
                  gid="density-grid", zorder=0, rasterized=True)
    if points is not None:
        ax.scatter(points[:, 0], points[:, 1], s=6, color="grey", alpha=0.5, zorder=1)
    contours = ax.contour(xx, yy, zz, levels=contour_levels, cmap="viridis", zorder=2)
    contours.set_gid("density")
    ax.clabel(contours, fontsize="x-small", fmt="%.1f")
    ax.set_xlabel(_feature_name(gmm, fx))
    ax.set_ylabel(_feature_name(gmm, fy))
    title = "Mixture log-density"
    if n_features > 2:
        title += " (2-D marginal)"
    ax.set_title(title)
    return ax


def _plot_density_1d(gmm, X, ax, grid_size: int):
    """:func:`plot_density` of a mixture of one feature: curves over a histogram."""
    means = np.asarray(gmm.means_, dtype=np.float64)[:, 0]
    if X is not None:
        points = _plot_points(gmm, X)[0][:, 0]
        low, high = float(points.min()), float(points.max())
        pad = 0.05 * (high - low if high > low else 1.0)
        low, high = low - pad, high + pad
    else:
        points = None
        # One variance per component, or one shared (tied), whatever the model.
        variances = np.broadcast_to(
            np.asarray(gmm.covariances_, dtype=np.float64).reshape(-1), means.shape
        )
        sds = np.sqrt(np.clip(variances, 0.0, None))
        low, high = float((means - 3.0 * sds).min()), float((means + 3.0 * sds).max())
    grid = np.linspace(low, high, grid_size)[:, None]
    # w_k N_k(x) = p(x) p(k | x): the public methods serve every covariance model.
    density = np.exp(_quietly(gmm.score_samples, grid))
    shares = density[:, None] * _quietly(gmm.predict_proba, grid)
    ax = _new_axes() if ax is None else ax
    if points is not None:
        _, _, bars = ax.hist(points, bins="auto", density=True, color="grey", alpha=0.35,
                             zorder=0)
        for bar in bars:
            bar.set_gid("histogram")
    for k in range(shares.shape[1]):
        ax.plot(grid[:, 0], shares[:, k], linestyle="--", color=f"C{k % 10}",
                label=f"component {k}", gid=f"component-{k}", zorder=1)
    ax.plot(grid[:, 0], density, color="black", label="mixture", gid="density", zorder=2)
    ax.legend(fontsize="small", loc="best")
    ax.set_xlabel(_feature_name(gmm, 0))
    ax.set_ylabel("density")
    ax.set_title("Mixture density")
    return ax


def plot_pairs(gmm, X, features: Sequence[int] | None = None, axes=None, *,
               n_std: float = 2.0):
    """A grid of pairwise scatter plots with covariance ellipses, histograms on the diagonal.

    Panel ``(i, j)`` off the diagonal has feature ``features[j]`` on x and
    ``features[i]`` on y: the points coloured by predicted component, and
    per component the ``n_std`` ellipse of its exact 2x2 marginal covariance
    (:func:`covariances_2d`) around its marginal mean.  Diagonal panels are
    histograms of each feature, stacked by predicted component.

    Parameters
    ----------
    gmm : GaussianMixture
        A fitted mixture.
    X : array-like of shape (n_samples, n_features)
        Points to classify and draw.
    features : sequence of int, optional
        The features to show, in order; all of them when None.
    axes : ndarray of matplotlib.axes.Axes of shape (p, p), optional
        Where to draw, ``p = len(features)``; a new figure is made when None.
    n_std : float, default=2.0
        Radius of the ellipses, in standard deviations.

    Returns
    -------
    axes : ndarray of matplotlib.axes.Axes of shape (p, p)
        Ellipse patches carry the gid ``"component-{k}-{n_std}sigma"``.
    """
    from matplotlib.patches import Ellipse

    if not isinstance(n_std, Real):
        raise TypeError(
            f"n_std must be one number (plot_pairs draws one ellipse per component), "
            f"got {n_std!r}; plot_clusters takes several."
        )
    points, X = _plot_points(gmm, X)
    n_features = np.shape(gmm.means_)[1]
    chosen = _check_features(range(n_features) if features is None else features, n_features)
    p = len(chosen)
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(p, p, figsize=(2.6 * p, 2.6 * p), squeeze=False)
    axes = np.asarray(axes, dtype=object)
    if axes.size != p * p:
        raise ValueError(
            f"axes must hold {p} x {p} panels for {p} feature(s), got {axes.size}; "
            "pass features= to show fewer."
        )
    axes = axes.reshape(p, p)
    labels = _quietly(gmm.predict, X)
    means = np.asarray(gmm.means_, dtype=np.float64)
    n_components = len(means)
    colors = [f"C{k % 10}" for k in range(n_components)]

    for i, fi in enumerate(chosen):
        for j, fj in enumerate(chosen):
            ax = axes[i, j]
            if i == j:
                ax.hist([points[labels == k, fi] for k in range(n_components)],
                        bins=20, stacked=True, color=colors, alpha=0.8)
            else:
                covariances = covariances_2d(gmm, (fj, fi))
                for k, color in enumerate(colors):
                    members = points[labels == k]
                    ax.scatter(members[:, fj], members[:, fi], s=6, color=color, alpha=0.5)
                    width, height, angle = _ellipse_geometry(covariances[k], n_std)
                    ellipse = Ellipse((means[k, fj], means[k, fi]), width, height,
                                      angle=angle, fill=False, edgecolor=color,
                                      linewidth=1.5)
                    ellipse.set_gid(f"component-{k}-{n_std:g}sigma")
                    ax.add_patch(ellipse)
                ax.autoscale_view()
            if i == p - 1:
                ax.set_xlabel(_feature_name(gmm, fj))
            if j == 0:
                ax.set_ylabel(_feature_name(gmm, fi))
    figure = axes[0, 0].figure
    figure.suptitle(f"{n_components} components, {n_std:g}-sigma ellipses")
    return axes


