"""Uncertainty, marginal density, pair grid and EM-trace figures."""

import matplotlib
import numpy as np
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from scipy.stats import multivariate_normal

from gaussmix import GaussianMixture
from gaussmix.demo import make_blobs
from gaussmix.plotting import (
    covariances_2d,
    marginal_log_density,
    plot_density,
    plot_log_likelihood_trace,
    plot_pairs,
    plot_uncertainty,
)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def X():
    # Three correlated features, so marginals over any pair are non-trivial.
    X2, _ = make_blobs(random_state=1)
    rng = np.random.default_rng(1)
    third = 0.8 * X2[:, 0] - 0.5 * X2[:, 1] + rng.normal(size=len(X2))
    return np.column_stack([X2, third])


def full_covariances(gmm):
    """Each component's D x D covariance, written out independently."""
    cov, K = gmm.covariances_, gmm.n_components
    D = gmm.means_.shape[1]
    if gmm.covariance_type == "full":
        return [cov[k] for k in range(K)]
    if gmm.covariance_type == "tied":
        return [cov] * K
    if gmm.covariance_type == "diag":
        return [np.diag(cov[k]) for k in range(K)]
    return [cov[k] * np.eye(D) for k in range(K)]


def exact_marginal_density(gmm, points, features):
    f = list(features)
    return sum(
        w * multivariate_normal(gmm.means_[k, f], c[np.ix_(f, f)]).pdf(points)
        for k, (w, c) in enumerate(zip(gmm.weights_, full_covariances(gmm)))
    )


def save_png(ax_or_fig, path):
    figure = getattr(ax_or_fig, "figure", ax_or_fig)
    figure.savefig(path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    # Not a blank canvas.
    assert np.ptp(image[..., :3]) > 0.5


# -- covariances_2d with features ------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_covariances_2d_features_pick_the_block(X, covariance_type):
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    np.testing.assert_array_equal(covariances_2d(gmm), covariances_2d(gmm, (0, 1)))
    for features in ((0, 2), (2, 1), (1, 0)):
        f = list(features)
        expected = [c[np.ix_(f, f)] for c in full_covariances(gmm)]
        np.testing.assert_allclose(covariances_2d(gmm, features), np.stack(expected))


def test_covariances_2d_rejects_bad_features(X):
    gmm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="out of range"):
        covariances_2d(gmm, (0, 3))
    with pytest.raises(ValueError, match="distinct"):
        covariances_2d(gmm, (1, 1))
    with pytest.raises(ValueError, match="Expected 2"):
        covariances_2d(gmm, (0, 1, 2))


# -- uncertainty -------------------------------------------------------------


@pytest.mark.parametrize("features", [(0, 1), (2, 0)])
def test_plot_uncertainty_sizes(X, features, tmp_path):
    gmm = GaussianMixture(3, random_state=0).fit(X)
    ax = Figure().subplots()
    assert plot_uncertainty(gmm, X, ax=ax, features=features) is ax
    (points,) = [c for c in ax.collections if c.get_gid() == "uncertainty"]
    proba = gmm.predict_proba(X)
    uncertainty = 1 - proba.max(axis=1)
    sizes = points.get_sizes()
    assert uncertainty.max() > 0
    factor = 200.0 / uncertainty.max()
    np.testing.assert_allclose(sizes, factor * uncertainty, rtol=1e-12, atol=1e-12)
    assert sizes.max() == pytest.approx(200.0)
    np.testing.assert_allclose(points.get_offsets(), X[:, list(features)])
    assert np.argmax(sizes) == np.argmax(uncertainty)
    assert sizes.max() > 0
    # Colours follow the predicted component.
    expected = matplotlib.colors.to_rgba_array([f"C{k}" for k in proba.argmax(axis=1)])
    np.testing.assert_allclose(points.get_facecolors()[:, :3], expected[:, :3])
    assert ax.get_xlabel() == f"feature {features[0]}"
    save_png(ax, tmp_path / "uncertainty.png")


def test_plot_uncertainty_of_one_feature_draws_uncertainty_against_it(tmp_path):
    rng = np.random.default_rng(0)
    X1 = np.r_[rng.normal(0.0, 1.0, 300), rng.normal(3.0, 1.0, 300)][:, None]
    gmm = GaussianMixture(2, random_state=0).fit(X1)
    ax = plot_uncertainty(gmm, X1, ax=Figure().subplots())
    uncertainty = 1 - gmm.predict_proba(X1).max(axis=1)
    (points,) = [c for c in ax.collections if c.get_gid() == "uncertainty"]
    np.testing.assert_allclose(points.get_offsets(), np.column_stack([X1[:, 0], uncertainty]))
    np.testing.assert_allclose(points.get_sizes(), 200.0 * uncertainty / uncertainty.max())
    (dots,) = [c for c in ax.collections if c.get_gid() == "points"]
    np.testing.assert_allclose(dots.get_offsets(), np.column_stack([X1[:, 0], 0 * X1[:, 0]]))
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel().startswith("uncertainty")
    # Overlapping components: the most uncertain point lies between the means.
    assert 0.5 < X1[np.argmax(uncertainty), 0] < 2.5
    with pytest.raises(ValueError, match="Expected 1 feature indices"):
        plot_uncertainty(gmm, X1, features=(0, 1))
    save_png(ax, tmp_path / "uncertainty-1d.png")
    # The values as a 1-D array draw the same points, as plot_density takes them.
    flat = plot_uncertainty(gmm, X1[:, 0], ax=Figure().subplots())
    (flat_points,) = [c for c in flat.collections if c.get_gid() == "uncertainty"]
    np.testing.assert_array_equal(flat_points.get_offsets(), points.get_offsets())


def test_plot_uncertainty_scale_and_pyplot(X):
    import matplotlib.pyplot as plt

    gmm = GaussianMixture(2, random_state=0).fit(X)
    ax = plot_uncertainty(gmm, X, size_scale=50.0)
    try:
        (points,) = [c for c in ax.collections if c.get_gid() == "uncertainty"]
        uncertainty = 1 - gmm.predict_proba(X).max(axis=1)
        np.testing.assert_allclose(points.get_sizes(), 50.0 * uncertainty / uncertainty.max())
        # Every point also shows as a dot underneath.
        (dots,) = [c for c in ax.collections if c.get_gid() == "points"]
        np.testing.assert_allclose(dots.get_offsets(), X[:, :2])
    finally:
        plt.close(ax.figure)


# -- density -----------------------------------------------------------------


def density_grid(ax):
    (mesh,) = [c for c in ax.collections if c.get_gid() == "density-grid"]
    assert isinstance(mesh, QuadMesh)
    coords = mesh.get_coordinates()
    values = np.asarray(mesh.get_array()).reshape(coords.shape[:2])
    return coords.reshape(-1, 2), values.ravel()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("features", [(0, 1), (0, 2), (2, 1)])
def test_plot_density_is_the_exact_marginal(X, covariance_type, features):
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    ax = Figure().subplots()
    assert plot_density(gmm, X, ax=ax, features=features, grid_size=40) is ax
    grid, log_density = density_grid(ax)
    assert grid.shape == (40 * 40, 2)
    np.testing.assert_allclose(
        np.exp(log_density), exact_marginal_density(gmm, grid, features), rtol=1e-10
    )
    # The grid spans the data in those features (widened by 5%).
    low, high = X[:, list(features)].min(axis=0), X[:, list(features)].max(axis=0)
    np.testing.assert_allclose(grid.min(axis=0), low - 0.05 * (high - low))
    np.testing.assert_allclose(grid.max(axis=0), high + 0.05 * (high - low))
    # And at a data point away from the grid the helper agrees too.
    point = X[:5, list(features)]
    np.testing.assert_allclose(
        np.exp(marginal_log_density(gmm, point, features)),
        exact_marginal_density(gmm, point, features), rtol=1e-10,
    )


@pytest.mark.parametrize("covariance_type", ["full", "tied", "spherical", "V"])
def test_plot_density_of_one_feature_draws_the_density_and_its_components(covariance_type,
                                                                          tmp_path):
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    X1 = np.r_[rng.normal(-2.0, 0.7, 400), rng.normal(2.5, 1.3, 600)][:, None]
    gmm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X1)
    ax = plot_density(gmm, X1, ax=Figure().subplots(), grid_size=2000)
    lines = {line.get_gid(): line.get_data() for line in ax.lines}
    grid, density = lines["density"]
    np.testing.assert_allclose(density, np.exp(gmm.score_samples(grid[:, None])), rtol=1e-12)
    shares = sum(lines[f"component-{k}"][1] for k in range(2))
    np.testing.assert_allclose(shares, density, rtol=1e-12)
    # The grid spans the data, widened by 5 %; its integral is the mixture's mass there.
    span = X1.max() - X1.min()
    assert grid[0] == pytest.approx(X1.min() - 0.05 * span)
    assert grid[-1] == pytest.approx(X1.max() + 0.05 * span)
    sds = np.sqrt(np.broadcast_to(np.asarray(gmm.covariances_).reshape(-1), (2,)))
    mass = sum(w * (norm.cdf(grid[-1], m, s) - norm.cdf(grid[0], m, s))
               for w, m, s in zip(gmm.weights_, gmm.means_[:, 0], sds))
    assert np.trapezoid(density, grid) == pytest.approx(mass, abs=1e-5)
    bars = [patch for patch in ax.patches if patch.get_gid() == "histogram"]
    heights = np.array([bar.get_height() for bar in bars])
    widths = np.array([bar.get_width() for bar in bars])
    assert np.sum(heights * widths) == pytest.approx(1.0)
    assert ax.get_ylabel() == "density"
    save_png(ax, tmp_path / "density-1d.png")
    # Without data, the grid spans each mean plus and minus 3 standard deviations.
    grid, _ = {line.get_gid(): line.get_data() for line in plot_density(gmm).lines}["density"]
    assert grid[0] == pytest.approx(np.min(gmm.means_[:, 0] - 3 * sds))
    assert grid[-1] == pytest.approx(np.max(gmm.means_[:, 0] + 3 * sds))


def test_plot_density_maximum_near_heaviest_mean(tmp_path):
    rng = np.random.default_rng(0)
    X = np.vstack([
        rng.normal([0, 0, 0], 0.5, size=(400, 3)),
        rng.normal([6, 5, -4], 1.5, size=(100, 3)),
    ])
    gmm = GaussianMixture(2, random_state=0).fit(X)
    heavy = int(np.argmax(gmm.weights_))
    ax = plot_density(gmm, X, ax=Figure().subplots(), features=(0, 1), levels=8,
                      grid_size=150)
    grid, log_density = density_grid(ax)
    peak = grid[np.argmax(log_density)]
    step = np.ptp(grid, axis=0) / 149
    assert np.all(np.abs(peak - gmm.means_[heavy, :2]) < 0.2 + step)
    (contours,) = [c for c in ax.collections if c.get_gid() == "density"]
    assert isinstance(contours, ContourSet)
    assert len(contours.levels) == 8
    assert contours.levels.max() < log_density.max()
    assert contours.levels.min() > max(log_density.min(), log_density.max() - 15)
    assert "marginal" in ax.get_title()
    save_png(ax, tmp_path / "density.png")


def test_plot_density_without_X_spans_three_sd(X, tmp_path):
    import matplotlib.pyplot as plt

    gmm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    ax = plot_density(gmm, features=(1, 2), levels=[-8.0, -6.0, -4.0], grid_size=30)
    try:
        grid, _ = density_grid(ax)
        sd = np.sqrt(gmm.covariances_[:, [1, 2]])
        means = gmm.means_[:, [1, 2]]
        np.testing.assert_allclose(grid.min(axis=0), (means - 3 * sd).min(axis=0))
        np.testing.assert_allclose(grid.max(axis=0), (means + 3 * sd).max(axis=0))
        (contours,) = [c for c in ax.collections if c.get_gid() == "density"]
        np.testing.assert_array_equal(contours.levels, [-8.0, -6.0, -4.0])
        save_png(ax, tmp_path / "density_no_X.png")
    finally:
        plt.close(ax.figure)


# -- pairs -------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_plot_pairs_grid_and_ellipses(X, covariance_type, tmp_path):
    import matplotlib.pyplot as plt

    K, D = 3, X.shape[1]
    gmm = GaussianMixture(K, covariance_type=covariance_type, random_state=0).fit(X)
    axes = plot_pairs(gmm, X)
    try:
        assert axes.shape == (D, D)
        assert len(axes[0, 0].figure.axes) == D * D
        covariances = full_covariances(gmm)
        for i in range(D):
            for j in range(D):
                ax = axes[i, j]
                ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
                if i == j:
                    assert not ellipses
                    # Stacked histograms: the top of the stack counts every point.
                    heights = {}
                    for bar in ax.patches:
                        key = round(bar.get_x(), 9)
                        heights[key] = max(heights.get(key, 0), bar.get_y() + bar.get_height())
                    assert sum(heights.values()) == len(X)
                    continue
                assert len(ellipses) == K
                block = [j, i]  # x is feature j, y is feature i
                for k, ellipse in enumerate(ellipses):
                    assert ellipse.get_gid() == f"component-{k}-2sigma"
                    eigenvalues = np.linalg.eigvalsh(covariances[k][np.ix_(block, block)])
                    np.testing.assert_allclose(
                        sorted([ellipse.width, ellipse.height]),
                        2 * 2 * np.sqrt(eigenvalues), rtol=1e-10,
                    )
                    np.testing.assert_allclose(ellipse.center, gmm.means_[k, block])
        assert axes[D - 1, 0].get_xlabel() == "feature 0"
        assert axes[2, 0].get_ylabel() == "feature 2"
        save_png(axes[0, 0].figure, tmp_path / f"pairs_{covariance_type}.png")
    finally:
        plt.close(axes[0, 0].figure)


def test_plot_pairs_selected_features_on_given_axes(X):
    gmm = GaussianMixture(2, random_state=0).fit(X)
    given = Figure().subplots(2, 2)
    axes = plot_pairs(gmm, X, features=[2, 0], axes=given)
    assert axes.shape == (2, 2) and axes[0, 1] is given[0, 1]
    # Panel (0, 1): x is feature 0, y is feature 2.
    ellipse = [p for p in axes[0, 1].patches if isinstance(p, Ellipse)][0]
    np.testing.assert_allclose(ellipse.center, gmm.means_[0, [0, 2]])
    assert axes[1, 0].get_xlabel() == "feature 2"
    assert axes[0, 0].get_ylabel() == "feature 2"


# -- EM trace ----------------------------------------------------------------


def test_plot_log_likelihood_trace(X, tmp_path):
    gmm = GaussianMixture(3, random_state=0, tol=1e-8).fit(X)
    assert gmm.converged_
    ax = Figure().subplots()
    assert plot_log_likelihood_trace(gmm, ax=ax) is ax
    (line,) = [l for l in ax.get_lines() if l.get_gid() == "trace"]
    np.testing.assert_array_equal(line.get_ydata(), gmm.lower_bounds_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, len(gmm.lower_bounds_) + 1))
    (mark,) = [c for c in ax.collections if c.get_gid() == "convergence"]
    np.testing.assert_allclose(mark.get_offsets(),
                               [[len(gmm.lower_bounds_), gmm.lower_bounds_[-1]]])
    assert mark.get_label() == f"converged at iteration {len(gmm.lower_bounds_)}"
    # EM never decreases the log-likelihood.
    assert np.all(np.diff(line.get_ydata()) >= -1e-10)
    save_png(ax, tmp_path / "trace.png")


def test_plot_log_likelihood_trace_not_converged(X):
    with pytest.warns(Warning):
        gmm = GaussianMixture(3, random_state=0, max_iter=2, tol=0).fit(X)
    assert not gmm.converged_
    ax = plot_log_likelihood_trace(gmm, ax=Figure().subplots())
    (mark,) = [c for c in ax.collections if c.get_gid() == "convergence"]
    assert mark.get_label() == "stopped at iteration 2 (not converged)"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), gmm.lower_bounds_)


def test_plot_uncertainty_one_component_has_no_uncertain_point(X):
    gmm = GaussianMixture(1, random_state=0).fit(X)
    ax = plot_uncertainty(gmm, X, ax=Figure().subplots())
    (points,) = [c for c in ax.collections if c.get_gid() == "uncertainty"]
    np.testing.assert_allclose(points.get_sizes(), 0.0, atol=1e-12)


def test_plot_uncertainty_overlap_biggest_marker_between_components(tmp_path):
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal([0, 0], 1.0, size=(200, 2)),
                   rng.normal([2.5, 0], 1.0, size=(200, 2))])
    gmm = GaussianMixture(2, random_state=0).fit(X)
    ax = plot_uncertainty(gmm, X, ax=Figure().subplots())
    (points,) = [c for c in ax.collections if c.get_gid() == "uncertainty"]
    biggest = points.get_offsets()[np.argmax(points.get_sizes())]
    # The most uncertain point lies near the boundary between the two means.
    low, high = np.sort(gmm.means_[:, 0])
    assert low < biggest[0] < high
    save_png(ax, tmp_path / "uncertainty_overlap.png")


@pytest.mark.parametrize(
    "name, family", [("EII", "spherical"), ("EEI", "diag"), ("VEV", "full"), ("EEE", "tied")]
)
def test_mclust_models_plot_like_their_kernel_family(name, family):
    # Four components in four dimensions: the diag and tied layouts have the
    # same shape, so only the model's family can tell them apart.
    from gaussmix.plotting import covariances_2d

    X = np.random.default_rng(0).normal(size=(300, 4))
    reference = GaussianMixture(4, covariance_type=family, random_state=0).fit(X)
    relabelled = GaussianMixture(4, covariance_type=name)
    relabelled.means_ = reference.means_
    relabelled.covariances_ = reference.covariances_
    np.testing.assert_array_equal(
        covariances_2d(relabelled, (0, 2)), covariances_2d(reference, (0, 2))
    )


@pytest.mark.parametrize("draw", ["plot_clusters", "plot_density", "plot_pairs"])
def test_plots_of_an_unfitted_model_raise_not_fitted(draw):
    from sklearn.exceptions import NotFittedError

    from gaussmix import plotting

    with pytest.raises(NotFittedError):
        getattr(plotting, draw)(GaussianMixture(2), np.zeros((10, 2)))
    with pytest.raises(NotFittedError):
        plotting.plot_log_likelihood_trace(GaussianMixture(2))


@pytest.mark.parametrize(
    "draw", ["plot_clusters", "plot_uncertainty", "plot_density", "plot_pairs"]
)
def test_plots_check_points_as_predict_does(X, draw):
    """Points that predict refuses are refused before drawing, with its message."""
    from gaussmix import plotting

    gmm = GaussianMixture(2, random_state=0).fit(X)
    with_nan = X[:20].copy()
    with_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        getattr(plotting, draw)(gmm, with_nan)
    with pytest.raises(ValueError, match=f"expecting {X.shape[1]} features"):
        getattr(plotting, draw)(gmm, X[:20, :2])
    with pytest.raises(ValueError, match="Expected 2D array"):
        getattr(plotting, draw)(gmm, X[:20, 0])


def test_plot_criterion_with_a_type_that_failed_everywhere():
    """A column of NaN (every cell of one type failed) is drawn empty, not an error."""
    from gaussmix.plotting import plot_criterion

    table = {
        "covariance_type": ["full", "full", "VEV", "VEV"],
        "n_components": [1, 2, 1, 2],
        "bic": [10.0, 8.0, np.nan, np.nan],
    }
    ax = plot_criterion(table)
    assert any("best K = 2" in text.get_text() for text in ax.get_legend().get_texts())


def test_plots_of_a_dataframe_fit_take_plain_rows_without_warnings():
    import warnings

    pd = pytest.importorskip("pandas")
    from gaussmix import plotting

    X, _ = make_blobs(random_state=0)
    gm = GaussianMixture(3, random_state=0).fit(pd.DataFrame(X, columns=["a", "b"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plotting.plot_clusters(gm, X)
        plotting.plot_uncertainty(gm, X)
        plotting.plot_pairs(gm, X)


def test_marginal_log_density_takes_points_of_two_values_only(X):
    """A reshape to (-1, 2) took the whole X (300 x 3 is not even; 300 x 4
    is) for 600 other points."""
    gmm = GaussianMixture(3, random_state=0).fit(X)
    pairs = X[:5, [0, 2]]
    expected = np.log(exact_marginal_density(gmm, pairs, (0, 2)))
    np.testing.assert_allclose(marginal_log_density(gmm, pairs, (0, 2)), expected, rtol=1e-12)
    np.testing.assert_allclose(marginal_log_density(gmm, pairs[0], (0, 2)), expected[:1],
                               rtol=1e-12)
    four = np.column_stack([X, X[:, 0]])
    for points in (X, four, X[:4, 0]):
        with pytest.raises(ValueError, match=r"points must have shape \(n_points, 2\)"):
            marginal_log_density(gmm, points)
    with pytest.raises(ValueError, match="NaN or infinite"):
        marginal_log_density(gmm, [[0.0, np.nan]])


def test_one_feature_errors_name_the_function_called():
    X1 = np.random.default_rng(0).normal(size=(50, 1))
    gmm = GaussianMixture(2, random_state=0).fit(X1)
    for function, name in ((covariances_2d, "covariances_2d"),
                           (lambda g: marginal_log_density(g, [[0.0, 0.0]]),
                            "marginal_log_density")):
        with pytest.raises(ValueError, match=rf"^{name} needs at least 2 features"):
            function(gmm)


def test_plot_pairs_refuses_several_radii_and_a_grid_of_the_wrong_size(X):
    gmm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(TypeError, match="n_std must be one number"):
        plot_pairs(gmm, X, n_std=[1, 2])
    with pytest.raises(ValueError, match="axes must hold 3 x 3 panels"):
        plot_pairs(gmm, X, axes=Figure().subplots(2, 2))


def test_selection_plots_take_the_result_and_the_cli_document_and_only_criteria(X):
    import json

    from gaussmix import select_model
    from gaussmix.plotting import plot_criterion, plot_selection

    result = select_model(X, [1, 2], ["full", "diag"], random_state=0, n_jobs=1)
    document = json.loads(json.dumps({"table": result.table, "best": result.best_params_}))
    for source in (result, document):
        ax = plot_selection(source, ax=Figure().subplots())
        assert {line.get_label() for line in ax.get_lines()} == {"full", "diag"}
        ax = plot_criterion(source, ax=Figure().subplots())
        assert len(ax.get_lines()) == 2 * 2  # BIC and AIC per covariance type
    with pytest.raises(ValueError, match="criterion must be 'bic', 'aic' or 'icl'"):
        plot_selection(result, criterion="log_likelihood")
