"""Validation of user input: every bad input fails early with a message
naming the problem, and a failed fit leaves the estimator as it was."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from gaussmix import GaussianMixture

from _helpers import COVARIANCE_TYPES, FITTED_ATTRIBUTES, make_data

X = make_data("separated", 2, n_per_component=20, seed=0)
N_SAMPLES, N_FEATURES = X.shape


def with_value(value, row=3, col=1):
    bad = X.copy()
    bad[row, col] = value
    return bad


# --------------------------------------------------------------------- X
@pytest.mark.parametrize(
    "bad_X, match",
    [
        (with_value(np.nan), "Input X contains NaN"),
        (with_value(np.inf), "Input X contains infinity"),
        (with_value(-np.inf), "Input X contains infinity"),
        (X[:, 0], "Expected 2D array, got 1D array"),
        (X.reshape(N_SAMPLES, 1, N_FEATURES), "Found array with dim 3"),
        (X[:1], "minimum of 2 is required"),
        (np.empty((0, 2)), "0 sample"),
        (np.empty((10, 0)), "0 feature"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), "could not convert|dtype"),
    ],
    ids=["nan", "inf", "-inf", "1d", "3d", "one-row", "no-rows", "no-features", "strings"],
)
def test_bad_X_is_refused(bad_X, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(1).fit(bad_X)


def test_fewer_samples_than_components():
    with pytest.raises(ValueError, match="Expected n_samples >= n_components.*n_components = 5.*n_samples = 4"):
        GaussianMixture(5).fit(X[:4])


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_input_is_a_type_error(fmt):
    sparse_X = sp.random(30, 3, density=0.5, format=fmt, random_state=0)
    with pytest.raises(TypeError, match="Sparse data was passed.*dense data is required"):
        GaussianMixture(2).fit(sparse_X)
    fitted = GaussianMixture(2, random_state=0).fit(sparse_X.toarray())
    for method in ("predict", "predict_proba", "score_samples", "score"):
        with pytest.raises(TypeError, match="Sparse data"):
            getattr(fitted, method)(sparse_X)


# ------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_components=0), "'n_components' parameter .* must be an int in the range \\[1, inf\\)"),
        (dict(n_components=-2), "'n_components' parameter"),
        (dict(n_components=1.5), "'n_components' parameter"),
        (dict(covariance_type="bogus"), "'covariance_type' parameter .* must be a str among"),
        (dict(init_params="bogus"), "'init_params' parameter .* must be a str among"),
        (dict(tol=-1e-3), "'tol' parameter .* range \\[0.0, inf\\)"),
        (dict(reg_covar=-1e-6), "'reg_covar' parameter .* range \\[0.0, inf\\)"),
        (dict(max_iter=-1), "'max_iter' parameter"),
        (dict(n_init=0), "'n_init' parameter"),
        (dict(verbose_interval=0), "'verbose_interval' parameter"),
    ],
)
def test_invalid_hyper_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**{"n_components": 2, **params}).fit(X)


def test_covariance_type_message_lists_the_options():
    with pytest.raises(ValueError) as info:
        GaussianMixture(2, covariance_type="ful").fit(X)
    for name in COVARIANCE_TYPES:
        assert repr(name) in str(info.value)


# -------------------------------------------------------------- *_init
@pytest.mark.parametrize(
    "weights, match",
    [
        ([0.2, 0.3, 0.5], "'weights' should have the shape of \\(2,\\), but got \\(3,\\)"),
        ([[0.5, 0.5]], "'weights' should have the shape of \\(2,\\)"),
        ([0.2, 0.3], "'weights' should be normalized, but got sum\\(weights\\) = 0.50000"),
        ([0.7, 0.7], "should be normalized"),
        ([np.nan, 1.0], "weights_init contains NaN"),
    ],
)
def test_bad_weights_init(weights, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, weights_init=weights).fit(X)


def test_weights_init_out_of_range_reports_min_and_max_the_right_way_round():
    with pytest.raises(
        ValueError,
        match="'weights' should be in the range \\[0, 1\\], but got min value -0.20000, max value 1.20000",
    ):
        GaussianMixture(2, weights_init=[-0.2, 1.2]).fit(X)


@pytest.mark.parametrize(
    "means, match",
    [
        (np.zeros((3, 2)), "'means' should have the shape of \\(2, 2\\), but got \\(3, 2\\)"),
        (np.zeros((2, 3)), "'means' should have the shape of \\(2, 2\\), but got \\(2, 3\\)"),
        (np.zeros(4), "'means' should have the shape of \\(2, 2\\), but got \\(4,\\)"),
        ([[0.0, np.nan], [1.0, 1.0]], "means_init contains NaN"),
        ([[0.0, np.inf], [1.0, 1.0]], "means_init contains infinity"),
    ],
)
def test_bad_means_init(means, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, means_init=means).fit(X)


GOOD_PRECISIONS = {
    "full": np.stack([np.eye(2)] * 2),
    "tied": np.eye(2),
    "diag": np.ones((2, 2)),
    "spherical": np.ones(2),
}
WRONG_SHAPES = {
    "full": np.stack([np.eye(2)] * 3),
    "tied": np.eye(3),
    "diag": np.ones((2, 3)),
    "spherical": np.ones(3),
}
NOT_POSITIVE_DEFINITE = {
    "full": np.stack([np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]])]),
    "tied": np.array([[1.0, 2.0], [2.0, 1.0]]),
    "diag": np.array([[1.0, 1.0], [1.0, -1.0]]),
    "spherical": np.array([1.0, 0.0]),
}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_init_of_the_wrong_shape(covariance_type):
    expected = GOOD_PRECISIONS[covariance_type].shape
    got = WRONG_SHAPES[covariance_type].shape
    match = (
        f"'{covariance_type} precision' should have the shape of "
        f"{expected}, but got {got}".replace("(", "\\(").replace(")", "\\)")
    )
    with pytest.raises(ValueError, match=match):
        GaussianMixture(
            2, covariance_type=covariance_type, precisions_init=WRONG_SHAPES[covariance_type]
        ).fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_init_not_positive_definite(covariance_type):
    match = {
        "full": "'full precision' should be symmetric, positive-definite",
        "tied": "'tied precision' should be symmetric, positive-definite",
        "diag": "'diag precision' should be positive",
        "spherical": "'spherical precision' should be positive",
    }[covariance_type]
    with pytest.raises(ValueError, match=match):
        GaussianMixture(
            2,
            covariance_type=covariance_type,
            precisions_init=NOT_POSITIVE_DEFINITE[covariance_type],
        ).fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_precisions_init_not_symmetric(covariance_type):
    asym = np.array([[2.0, 1.0], [0.0, 2.0]])
    precisions = asym if covariance_type == "tied" else np.stack([np.eye(2), asym])
    with pytest.raises(ValueError, match="should be symmetric, positive-definite"):
        GaussianMixture(2, covariance_type=covariance_type, precisions_init=precisions).fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_valid_precisions_init_is_accepted_and_not_modified(covariance_type):
    precisions = GOOD_PRECISIONS[covariance_type].copy()
    gm = GaussianMixture(
        2, covariance_type=covariance_type, precisions_init=precisions, max_iter=0
    ).fit(X)
    np.testing.assert_array_equal(precisions, GOOD_PRECISIONS[covariance_type])
    np.testing.assert_allclose(gm.precisions_, precisions, rtol=1e-14)


# ----------------------------------------------------------- sample_weight
@pytest.mark.parametrize(
    "sample_weight, error, match",
    [
        (-np.ones(N_SAMPLES), ValueError, "sample_weight contains negative values"),
        (np.r_[np.nan, np.ones(N_SAMPLES - 1)], ValueError, "sample_weight contains NaN or infinity"),
        (np.r_[np.inf, np.ones(N_SAMPLES - 1)], ValueError, "sample_weight contains NaN or infinity"),
        (np.zeros(N_SAMPLES), ValueError, "sample_weight sums to zero"),
        (np.ones(N_SAMPLES - 1), ValueError, f"sample_weight should have shape \\({N_SAMPLES},\\).*got shape \\({N_SAMPLES - 1},\\)"),
        (np.ones(N_SAMPLES + 1), ValueError, "sample_weight should have shape"),
        (np.ones((N_SAMPLES, 1)), ValueError, "sample_weight should have shape"),
        (np.r_[1.0, np.zeros(N_SAMPLES - 1)], ValueError, "Only 1 rows have a positive sample_weight, fewer than n_components = 2"),
        (np.array(["a"] * N_SAMPLES), TypeError, "sample_weight must be numeric"),
    ],
    ids=["negative", "nan", "inf", "all-zero", "short", "long", "2d", "too-few-positive", "strings"],
)
def test_bad_sample_weight(sample_weight, error, match):
    with pytest.raises(error, match=match):
        GaussianMixture(2).fit(X, sample_weight=sample_weight)


# ------------------------------------------------------------- not fitted
@pytest.mark.parametrize("method", ["predict", "predict_proba", "score", "score_samples", "bic", "aic"])
def test_inference_before_fit_is_not_fitted_error(method):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(GaussianMixture(2), method)(X)


def test_sample_before_fit_is_not_fitted_error():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        GaussianMixture(2).sample(3)


@pytest.mark.parametrize("n", [0, -1])
def test_sample_needs_a_positive_count(n):
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'.*at least one sample"):
        gm.sample(n)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score", "score_samples"])
@pytest.mark.parametrize("n_features", [1, 3])
def test_inference_with_another_number_of_features(method, n_features):
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match=f"X has {n_features} features, but GaussianMixture is expecting 2 features"):
        getattr(gm, method)(np.ones((4, n_features)))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
def test_inference_with_nan_is_refused(method):
    gm = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        getattr(gm, method)(with_value(np.nan))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score", "score_samples"])
def test_inference_refuses_strings_as_scikit_learn_does(method):
    """Text read by mistake is an error, not numbers parsed from it."""
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    text = X.astype(str)
    for estimator in (SklearnGaussianMixture, GaussianMixture):
        fitted = estimator(2, random_state=0).fit(X)
        with pytest.raises(ValueError, match="dtype='numeric' is not compatible"):
            getattr(fitted, method)(text)


@pytest.mark.parametrize(
    "rows", [X.astype(np.int64), X.astype(np.float16), X.astype(bool), X.astype(object)],
    ids=["int", "float16", "bool", "object"],
)
def test_inference_on_other_numeric_dtypes_equals_that_on_float64(rows):
    gm = GaussianMixture(2, random_state=0).fit(X)
    as_float = rows.astype(np.float64)
    np.testing.assert_array_equal(gm.score_samples(rows), gm.score_samples(as_float))
    np.testing.assert_array_equal(gm.predict_proba(rows), gm.predict_proba(as_float))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predict_proba_is_rows_first_and_c_ordered(covariance_type, dtype):
    rows = X.astype(dtype)
    proba = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(rows).predict_proba(rows)
    assert proba.shape == (N_SAMPLES, 2)
    assert proba.flags.c_contiguous


# ---------------------------------------------------------------- rollback
FAILING_FITS = [
    pytest.param(dict(X=with_value(np.nan)), id="nan-X"),
    pytest.param(dict(X=np.ones((5, 3)), sample_weight=-np.ones(5)), id="negative-weight"),
    pytest.param(dict(X=X, params=dict(means_init=np.zeros((3, 2)))), id="bad-means-init"),
    pytest.param(
        dict(X=np.ones((20, 2)), params=dict(reg_covar=0.0, n_components=1)),
        id="singular-covariance-in-em",
    ),
]


@pytest.mark.parametrize("case", FAILING_FITS)
def test_failed_fit_on_a_fresh_estimator_leaves_it_unfitted(case):
    gm = GaussianMixture(2, random_state=0)
    gm.set_params(**case.get("params", {}))
    params_before = gm.get_params()
    with pytest.raises(ValueError):
        gm.fit(case["X"], sample_weight=case.get("sample_weight"))
    for name in FITTED_ATTRIBUTES + ("converged_", "n_iter_", "lower_bound_", "n_features_in_"):
        assert not hasattr(gm, name), name
    with pytest.raises(NotFittedError):
        check_is_fitted(gm)
    assert gm.get_params() == params_before


@pytest.mark.parametrize("case", FAILING_FITS)
def test_failed_fit_on_a_fitted_estimator_keeps_the_previous_fit(case):
    gm = GaussianMixture(2, random_state=0).fit(X)
    before = {name: np.copy(value) for name, value in vars(gm).items() if name.endswith("_")}
    held = {name: value for name, value in vars(gm).items() if name.endswith("_")}
    predictions = gm.predict(X)
    gm.set_params(**case.get("params", {}))
    with pytest.raises(ValueError):
        gm.fit(case["X"], sample_weight=case.get("sample_weight"))
    after = {name: value for name, value in vars(gm).items() if name.endswith("_")}
    assert after.keys() == before.keys()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
        # The very same objects, not recomputed copies.
        assert after[name] is held[name]
    gm.set_params(n_components=2, reg_covar=1e-6, means_init=None)
    np.testing.assert_array_equal(gm.predict(X), predictions)


def test_failed_fit_with_warm_start_keeps_the_previous_fit():
    gm = GaussianMixture(2, random_state=0, warm_start=True, max_iter=3).fit(X)
    means = gm.means_.copy()
    with pytest.raises(ValueError):
        gm.fit(with_value(np.nan))
    np.testing.assert_array_equal(gm.means_, means)


def test_warm_start_on_data_of_another_width_names_the_fix():
    gm = GaussianMixture(2, random_state=0, warm_start=True, max_iter=3).fit(X)
    means = gm.means_.copy()
    wider = np.hstack([X, X[:, :1]])
    with pytest.raises(ValueError, match=r"2 features, but X has 3.*warm_start=False"):
        gm.fit(wider)
    np.testing.assert_array_equal(gm.means_, means)
    assert gm.n_features_in_ == 2
    gm.set_params(warm_start=False).fit(wider)
    assert gm.means_.shape == (2, 3)


# ------------------------------------------------------------------ pandas
def test_dataframe_input_sets_feature_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["height", "weight"])
    gm = GaussianMixture(2, random_state=0).fit(df)
    np.testing.assert_array_equal(gm.feature_names_in_, ["height", "weight"])
    assert gm.n_features_in_ == 2
    reference = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_array_equal(gm.means_, reference.means_)
    np.testing.assert_array_equal(gm.predict(df), reference.predict(X))


def test_dataframe_with_other_column_names_is_refused():
    pd = pytest.importorskip("pandas")
    gm = GaussianMixture(2, random_state=0).fit(pd.DataFrame(X, columns=["a", "b"]))
    with pytest.raises(ValueError, match="feature names"):
        gm.predict(pd.DataFrame(X, columns=["b", "c"]))


def test_array_input_has_no_feature_names():
    gm = GaussianMixture(2, random_state=0).fit(X)
    assert not hasattr(gm, "feature_names_in_")
    assert gm.n_features_in_ == 2


def test_list_input_is_accepted():
    gm = GaussianMixture(2, random_state=0).fit(X.tolist())
    reference = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_array_equal(gm.means_, reference.means_)
    np.testing.assert_array_equal(gm.predict(X.tolist()), reference.predict(X))


def test_input_arrays_are_not_modified():
    X_in = X.copy()
    w = np.arange(N_SAMPLES, dtype=float) % 3
    w_in = w.copy()
    means_init = X[:2].copy()
    gm = GaussianMixture(2, random_state=0, means_init=means_init).fit(X_in, sample_weight=w_in)
    gm.predict_proba(X_in)
    np.testing.assert_array_equal(X_in, X)
    np.testing.assert_array_equal(w_in, w)
    np.testing.assert_array_equal(gm.means_init, X[:2])


@pytest.mark.parametrize("layout", ["fortran", "strided", "read-only"])
def test_memory_layout_does_not_change_the_fit(layout):
    wide = make_data("separated", 4, n_per_component=20, seed=1)
    contiguous = np.ascontiguousarray(wide[:, ::2])
    if layout == "fortran":
        X_in = np.asfortranarray(contiguous)
    elif layout == "strided":
        X_in = wide[:, ::2]
    else:
        X_in = contiguous.copy()
        X_in.setflags(write=False)
    for covariance_type in COVARIANCE_TYPES:
        ours = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X_in)
        ref = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(contiguous)
        # Same numbers; a BLAS call may block a non-contiguous operand
        # differently, so allow rounding.
        for name in FITTED_ATTRIBUTES:
            np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(ours.predict(X_in), ref.predict(contiguous))


def test_covariance_type_changed_after_the_fit_is_named_by_every_reader():
    """The attributes stay of the fitted layout: predict failed in broadcasting,
    bic divided by zero and save wrote a file that load refused."""
    import gaussmix.io

    X = np.random.default_rng(0).normal(size=(60, 2))
    gm = GaussianMixture(2, random_state=0).fit(X).set_params(covariance_type="diag")
    for read in (gm.predict, gm.score_samples, gm.bic, lambda rows: gaussmix.io.to_dict(gm)):
        with pytest.raises(ValueError, match="fitted with covariance_type='full'"):
            read(X)
    # An alias of the fitted type reads it as it is.
    np.testing.assert_array_equal(gm.set_params(covariance_type="VVV").predict(X),
                                  gm.set_params(covariance_type="full").predict(X))


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e160), (np.float32, 1e25)])
def test_features_whose_squares_overflow_are_refused_before_any_warning(dtype, scale):
    X = (make_data("separated", 2, seed=3) * scale).astype(dtype)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"spans .* square root of .*StandardScaler"):
            GaussianMixture(2, random_state=0).fit(X)


@pytest.mark.parametrize("entry", ["partial_fit", "select_model"])
def test_streams_and_model_selection_refuse_overflowing_squares_too(entry):
    import warnings

    from gaussmix import select_model

    X = make_data("separated", 2, seed=3) * 1e160
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"spans .* square root"):
            if entry == "partial_fit":
                GaussianMixture(2, random_state=0).partial_fit(X)
            else:
                select_model(X, n_components=[1, 2], covariance_types=["full"])


def test_the_square_range_check_leaves_out_rows_of_weight_zero_and_takes_the_limit():
    from gaussmix.validation import check_squares_in_range

    X = np.array([[0.0, 1.0], [1e160, 2.0], [3.0, 4.0]])
    check_squares_in_range(X, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="Feature 0 of X spans 1e\\+160"):
        check_squares_in_range(X, None)
    limit = np.sqrt(np.finfo(np.float64).max)
    check_squares_in_range(np.array([[0.0], [limit]]))
    with pytest.raises(ValueError, match="Feature 0"):
        check_squares_in_range(np.array([[-limit], [limit]]))


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e160), (np.float32, 1e25)])
@pytest.mark.parametrize("n_init", [1, 2])
def test_a_file_fit_that_fails_on_overflowing_squares_names_the_feature(
    tmp_path, dtype, scale, n_init
):
    # Files are checked only once the fit has failed (a pass of their own
    # otherwise); the error then names the feature, as for arrays.
    import warnings

    X = make_data("separated", 2, seed=3).astype(dtype)
    X[:, 1] *= scale
    np.save(tmp_path / "wide.npy", X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overflow itself, and the start's
        with pytest.raises(ValueError, match=r"Feature 1 of X spans .* square root") as caught:
            GaussianMixture(2, n_init=n_init, random_state=0).fit(str(tmp_path / "wide.npy"))
    assert "non-finite" in str(caught.value.__cause__)


def test_a_file_fit_that_fails_otherwise_keeps_its_own_error(tmp_path):
    X = np.ones((50, 2))
    np.save(tmp_path / "flat.npy", X)
    with pytest.raises(ValueError) as from_memory:
        GaussianMixture(1, reg_covar=0.0).fit(X)
    with pytest.raises(ValueError) as from_file:
        GaussianMixture(1, reg_covar=0.0).fit(str(tmp_path / "flat.npy"))
    assert "spans" not in str(from_file.value)
    assert str(from_file.value) == str(from_memory.value)


def test_feature_extremes_of_blocks_equal_those_of_the_array():
    from gaussmix.datasets import ArrayDataset, BlockDataset, combined_extremes
    from gaussmix.sources import reader_for_memmap
    from gaussmix.validation import check_feature_spans, feature_extremes

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 3)) * [1.0, 1e3, 1e-3]
    weights = rng.uniform(size=1000)
    weights[X[:, 0].argmax()] = 0.0  # the largest value of feature 0 is left out
    expected = (X[weights > 0].max(axis=0), X[weights > 0].min(axis=0))
    blocks = BlockDataset(reader_for_memmap(X), weights, block_rows=64)
    for dataset in (ArrayDataset(X, weights), blocks):
        highest, lowest = dataset.feature_extremes()
        np.testing.assert_array_equal(highest, expected[0])
        np.testing.assert_array_equal(lowest, expected[1])
    # No row of positive weight: nothing spans anything.
    highest, lowest = feature_extremes(X, np.zeros(1000))
    assert np.all(highest == -np.inf) and np.all(lowest == np.inf)
    check_feature_spans(highest, lowest, np.float64)
    with pytest.raises(ValueError, match="No rows"):
        combined_extremes([])
    limit32 = float(np.sqrt(np.finfo(np.float32).max))
    check_feature_spans(np.array([limit32]), np.array([0.0]), np.float32)
    with pytest.raises(ValueError, match="Feature 0 .* float32's range .* or fit float64 data"):
        check_feature_spans(np.array([limit32]), np.array([-limit32]), np.float32)
