"""Figures: ellipse geometry per covariance type and the criterion lines."""

import warnings

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from gaussmix import GaussianMixture
from gaussmix.demo import make_blobs
from gaussmix.plotting import covariances_2d, plot_clusters, plot_criterion

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def X():
    # A third feature checks that only the first two are drawn.
    X, _ = make_blobs(random_state=1)
    extra = np.random.default_rng(1).normal(size=(len(X), 1))
    return np.hstack([X, extra])


def expected_2d(gmm):
    """The 2x2 covariances written out independently of the code under test."""
    cov = gmm.covariances_
    K = gmm.n_components
    if gmm.covariance_type == "full":
        return [cov[k][:2, :2] for k in range(K)]
    if gmm.covariance_type == "tied":
        return [cov[:2, :2]] * K
    if gmm.covariance_type == "diag":
        return [np.diag(cov[k][:2]) for k in range(K)]
    return [cov[k] * np.eye(2) for k in range(K)]


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_covariances_2d_follow_covariance_type(X, covariance_type):
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    got = covariances_2d(gmm)
    assert got.shape == (3, 2, 2)
    np.testing.assert_allclose(got, np.stack(expected_2d(gmm)))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_plot_clusters_ellipses(X, covariance_type, tmp_path):
    gmm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    n_std = (1, 2, 3)
    ax = Figure().subplots()
    assert plot_clusters(gmm, X, ax=ax, n_std=n_std) is ax

    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 3 * len(n_std)
    by_gid = {e.get_gid(): e for e in ellipses}
    for k, covariance in enumerate(expected_2d(gmm)):
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        for s in n_std:
            ellipse = by_gid[f"component-{k}-{s}sigma"]
            np.testing.assert_allclose(ellipse.center, gmm.means_[k, :2])
            np.testing.assert_allclose(
                sorted([ellipse.width, ellipse.height]),
                2 * s * np.sqrt(eigenvalues),
                rtol=1e-10,
            )
            # The width lies along the major axis, whichever way it points.
            major = eigenvectors[:, 1]
            theta = np.deg2rad(ellipse.angle)
            assert ellipse.width >= ellipse.height
            assert abs(abs(np.cos(theta) * major[0] + np.sin(theta) * major[1]) - 1) < 1e-8

    # Every point is drawn once, coloured by its predicted component.
    labels = gmm.predict(X)
    point_sets = ax.collections[:3]
    for k, collection in enumerate(point_sets):
        np.testing.assert_allclose(collection.get_offsets(), X[labels == k, :2])
    labels_in_legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels_in_legend[:3] == [
        f"component {k} (weight {w:.2f})" for k, w in enumerate(gmm.weights_)
    ]
    assert {"1 sigma", "2 sigma", "3 sigma", "means"} <= set(labels_in_legend)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("feature 0", "feature 1")

    ax.figure.savefig(tmp_path / "clusters.png")
    assert_png(tmp_path / "clusters.png")


def test_plot_clusters_spherical_ellipses_are_circles(X):
    gmm = GaussianMixture(2, covariance_type="spherical", random_state=0).fit(X)
    ax = plot_clusters(gmm, X, ax=Figure().subplots(), n_std=(2,))
    for k, ellipse in enumerate(ax.patches):
        expected = 2 * 2 * np.sqrt(gmm.covariances_[k])
        np.testing.assert_allclose([ellipse.width, ellipse.height], [expected, expected])


def test_plot_clusters_without_ax_uses_pyplot_and_feature_names(tmp_path):
    pd = pytest.importorskip("pandas")
    import matplotlib.pyplot as plt

    X, _ = make_blobs(random_state=0)
    frame = pd.DataFrame(X, columns=["length", "width"])
    gmm = GaussianMixture(3, random_state=0).fit(frame)
    ax = plot_clusters(gmm, frame)
    try:
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("length", "width")
        assert len(ax.patches) == 9
        ax.figure.savefig(tmp_path / "clusters.png")
        assert_png(tmp_path / "clusters.png")
    finally:
        plt.close(ax.figure)


def test_plot_clusters_needs_two_features():
    X = np.random.default_rng(0).normal(size=(50, 1))
    gmm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="at least 2 features"):
        plot_clusters(gmm, X, ax=Figure().subplots())


TABLE = {
    "n_components": [1, 2, 3, 4],
    "bic": [400.0, 300.0, 250.0, 260.0],
    "aic": [390.0, 280.0, 220.0, 215.0],
}


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


@pytest.mark.parametrize(
    "table",
    [
        TABLE,
        [dict(zip(TABLE, row)) for row in zip(*TABLE.values())],
        {"K": TABLE["n_components"], "BIC": TABLE["bic"], "AIC": TABLE["aic"]},
    ],
    ids=["columns", "rows", "upper-case"],
)
def test_plot_criterion_lines(table, tmp_path):
    ax = Figure().subplots()
    assert plot_criterion(table, ax=ax) is ax
    lines = lines_by_label(ax)
    assert set(lines) == {"BIC, best K = 3", "AIC, best K = 4"}
    for name, line in (("bic", lines["BIC, best K = 3"]), ("aic", lines["AIC, best K = 4"])):
        np.testing.assert_array_equal(line.get_xdata(), TABLE["n_components"])
        np.testing.assert_array_equal(line.get_ydata(), TABLE[name])
    # One star per line, at its minimum.
    stars = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert sorted(stars) == [(3.0, 250.0), (4.0, 215.0)]
    assert ax.get_xlabel() == "number of components K"
    ax.figure.savefig(tmp_path / "criteria.png")
    assert_png(tmp_path / "criteria.png")


def test_plot_criterion_one_line_per_criterion_and_covariance_type():
    pd = pytest.importorskip("pandas")
    rows = []
    for offset, kind in enumerate(("full", "diag")):
        # Rows out of K order: each line must still run from K = 1 up.
        for k in (3, 1, 2):
            rows.append({"n_components": k, "covariance_type": kind,
                         "bic": 100.0 * k + offset, "aic": 90.0 * k + offset})
    ax = plot_criterion(pd.DataFrame(rows), ax=Figure().subplots(), mark_best=False)
    lines = lines_by_label(ax)
    assert set(lines) == {"BIC (full)", "AIC (full)", "BIC (diag)", "AIC (diag)"}
    np.testing.assert_array_equal(lines["BIC (diag)"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["BIC (diag)"].get_ydata(), [101.0, 201.0, 301.0])
    np.testing.assert_array_equal(lines["AIC (full)"].get_ydata(), [90.0, 180.0, 270.0])
    assert not ax.collections
    # Colour tells the covariance types apart, line style the criteria.
    assert lines["BIC (full)"].get_color() == lines["AIC (full)"].get_color()
    assert lines["BIC (full)"].get_color() != lines["BIC (diag)"].get_color()
    assert lines["BIC (full)"].get_linestyle() != lines["AIC (full)"].get_linestyle()


def test_plot_criterion_single_criterion_and_bad_table():
    ax = plot_criterion({"k": [1, 2], "bic": [2.0, 1.0]}, ax=Figure().subplots())
    assert list(lines_by_label(ax)) == ["BIC, best K = 2"]
    with pytest.raises(ValueError, match="'bic' and/or 'aic'"):
        plot_criterion({"n_components": [1, 2], "loglik": [1.0, 2.0]})
    with pytest.raises(ValueError, match="dict of columns"):
        plot_criterion([1, 2, 3])


def test_plot_density_checks_x_as_predict_does():
    # A frame with the model's columns in another order once drew other
    # columns under the model's labels; too few columns drew the wrong ones.
    pd = pytest.importorskip("pandas")
    from gaussmix.plotting import plot_density

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(0, 1, 200), "b": rng.normal(100, 1, 200),
                          "c": rng.normal(-50, 1, 200)})
    model = GaussianMixture(2, random_state=0).fit(frame)
    ax = Figure().subplots()
    with pytest.raises(ValueError, match="same order"):
        plot_density(model, frame[["c", "a", "b"]], ax=ax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an array for a model with names
        with pytest.raises(ValueError, match="3 features"):
            plot_density(model, frame.to_numpy()[:, :2], ax=ax)
    with pytest.raises(ValueError, match="grid_size must be an integer >= 2"):
        plot_density(model, frame, ax=ax, grid_size=1)
    plot_density(model, frame, ax=ax)  # the fitted order draws


def test_plot_clusters_takes_one_radius_as_plot_pairs_does():
    X, _ = make_blobs(random_state=0)
    model = GaussianMixture(3, random_state=0).fit(X)
    ax = plot_clusters(model, X, ax=Figure().subplots(), n_std=2)
    gids = sorted(p.get_gid() for p in ax.patches if isinstance(p, Ellipse))
    assert gids == [f"component-{k}-2sigma" for k in range(3)]
