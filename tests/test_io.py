"""Model files (gaussmix.io.save/load) and conversion to and from scikit-learn."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SkGaussianMixture

import gaussmix
from gaussmix.covariance import get_covariance_model
from gaussmix import GaussianMixture, from_sklearn, load, save, to_sklearn

TYPES = ["full", "tied", "diag", "spherical", "VEV", "EEI", "EII"]


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    return np.vstack(
        [rng.randn(60, 3) @ rng.randn(3, 3) + 4 * k for k in range(3)]
    )


def _fitted(X, covariance_type="full", dtype=np.float64):
    return GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(
        X.astype(dtype)
    )


def _assert_same_predictions(a, b, X):
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_round_trip_is_exact(X, tmp_path, covariance_type):
    gm = _fitted(X, covariance_type)
    path = tmp_path / "model.json"
    gm.save(path)
    loaded = load(path)
    assert type(loaded) is GaussianMixture
    assert loaded.get_params() == gm.get_params()
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(gm, name))
    assert loaded.converged_ == gm.converged_ and loaded.n_iter_ == gm.n_iter_
    assert loaded.lower_bound_ == gm.lower_bound_
    assert loaded.lower_bounds_ == gm.lower_bounds_
    assert type(loaded.lower_bound_) is type(gm.lower_bound_) is np.float64
    assert {type(b) for b in loaded.lower_bounds_ + gm.lower_bounds_} == {np.float64}
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
        assert getattr(loaded, name).flags.c_contiguous
    assert loaded.n_features_in_ == 3
    _assert_same_predictions(gm, loaded, X)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_float32_round_trip(X, tmp_path, covariance_type):
    gm = _fitted(X, covariance_type, np.float32)
    assert gm.means_.dtype == np.float32
    save(gm, tmp_path / "m.json")
    loaded = load(tmp_path / "m.json")
    assert loaded.means_.dtype == np.float32
    assert loaded.precisions_cholesky_.dtype == np.float32
    _assert_same_predictions(gm, loaded, X.astype(np.float32))


def test_feature_names_round_trip(X, tmp_path):
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    gm = GaussianMixture(2, random_state=0).fit(df)
    save(gm, tmp_path / "m.json")
    loaded = load(tmp_path / "m.json")
    np.testing.assert_array_equal(loaded.feature_names_in_, ["a", "b", "c"])
    _assert_same_predictions(gm, loaded, df)


def test_file_is_plain_json(X, tmp_path):
    gm = _fitted(X, "diag")
    save(gm, tmp_path / "m.json")
    doc = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert doc["format"] == "gaussmix-model" and doc["format_version"] == 1
    assert doc["gaussmix_version"] == gaussmix.__version__
    assert doc["covariance_type"] == "diag" and doc["dtype"] == "float64"
    assert (doc["n_components"], doc["n_features"]) == (3, 3)
    assert doc["feature_names_in"] is None
    assert doc["params"]["random_state"] == 0 and doc["params"]["means_init"] is None
    assert set(doc["training"]) == {"converged", "n_iter", "lower_bound", "lower_bounds"}


def test_non_int_random_state_and_init_arrays_are_null(X, tmp_path):
    gm = GaussianMixture(
        2, random_state=np.random.RandomState(0), means_init=X[:2]
    ).fit(X)
    save(gm, tmp_path / "m.json")
    params = json.loads((tmp_path / "m.json").read_text())["params"]
    assert params["random_state"] is None and params["means_init"] is None
    _assert_same_predictions(gm, load(tmp_path / "m.json"), X)


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(NotFittedError):
        GaussianMixture().save(tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def test_max_iter_zero_round_trip(X, tmp_path):
    gm = GaussianMixture(2, max_iter=0, random_state=0).fit(X)
    save(gm, tmp_path / "m.json")
    loaded = load(tmp_path / "m.json")
    assert loaded.lower_bound_ == -np.inf
    _assert_same_predictions(gm, loaded, X)


@pytest.mark.parametrize("covariance_type", ["E", "V"])
def test_one_feature_round_trip(X, tmp_path, covariance_type):
    gm = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X[:, :1])
    save(gm, tmp_path / "m.json")
    _assert_same_predictions(gm, load(tmp_path / "m.json"), X[:, :1])


# ------------------------------------------------------------- corrupt files
@pytest.fixture
def saved(X, tmp_path):
    path = tmp_path / "m.json"
    save(_fitted(X, "full"), path)
    return path


def _edit(path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _set(key, value):
    def change(doc):
        doc[key] = value

    return change


def _non_pd(doc):
    doc["covariances"][0] = [[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def _flip_weight(doc):
    doc["weights"][0] = -doc["weights"][0]


def _tamper_cholesky(doc):
    doc["precisions_cholesky"][1][0][0] *= 1.001


def _drop_component(doc):
    doc["means"] = doc["means"][:2]


@pytest.mark.parametrize(
    "change, match",
    [
        (_flip_weight, "'weights' has negative values"),
        (lambda d: d["weights"].__setitem__(0, d["weights"][0] + 0.01), "'weights' sum to"),
        (_non_pd, "not positive-definite"),
        (_drop_component, r"'means' has shape \(2, 3\), expected \(3, 3\)"),
        (_set("n_features", 4), "has shape"),
        (_set("format_version", 2), "Unsupported format_version 2"),
        (_set("covariance_type", "XYZ"), "unknown covariance_type 'XYZ'"),
        (_tamper_cholesky, "'precisions_cholesky' is inconsistent"),
        (_set("format", "other"), "Not a gaussmix model file"),
        (lambda d: d.pop("means"), "missing key.*means"),
        (lambda d: d["training"].pop("n_iter"), "missing key.*training.n_iter"),
        (_set("dtype", "float16"), "dtype 'float16'"),
        (lambda d: d["means"][0].__setitem__(0, "1.0"), "must hold only numbers"),
        (_set("feature_names_in", ["a"]), "feature_names_in"),
        (lambda d: d["params"].__setitem__("tol", -1.0), "bad params"),
        # Wrong JSON types raise ValueError too, never TypeError.
        (_set("dtype", ["float64"]), r"dtype \['float64'\]"),
        (lambda d: d["training"].__setitem__("lower_bounds", [[1.0]]), "only numbers"),
        (lambda d: d["training"].__setitem__("lower_bound", [1.0]), "only numbers"),
        (_set("gaussmix_version", 1), "'gaussmix_version' must be a string"),
    ],
)
def test_corrupt_file_is_refused(saved, change, match):
    _edit(saved, change)
    with pytest.raises(ValueError, match=match):
        load(saved)


@pytest.mark.parametrize(
    "old, new, key",
    [
        # Python's reader would keep the second value, another reader the first.
        ('"n_features": 3', '"n_features": 3, "n_features": 2', "n_features"),
        ('"converged": ', '"n_iter": 1, "converged": ', "n_iter"),
    ],
)
def test_a_key_given_twice_is_refused(saved, old, new, key):
    text = saved.read_text()
    assert text.count(old) == 1
    saved.write_text(text.replace(old, new))
    with pytest.raises(ValueError, match=f"key '{key}' appears twice"):
        load(saved)


def test_deeply_nested_json_is_refused(saved):
    saved.write_text('{"format": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="nested too deeply"):
        load(saved)


@pytest.mark.parametrize("tampered", [False, True])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_ill_conditioned_component_does_not_shield_a_tampered_one(
    tmp_path, covariance_type, tampered
):
    """Each component's factor is checked against its own conditioning."""
    rng = np.random.RandomState(3)
    X = np.vstack([rng.randn(200, 3), rng.randn(200, 3) + 6])
    path = tmp_path / "m.json"
    save(GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X), path)
    model = get_covariance_model(covariance_type)

    def change(doc):
        if covariance_type == "full":
            q = np.linalg.qr(rng.randn(3, 3))[0]
            cov = (q * [1.0, 1e-7, 1e-14]) @ q.T  # condition number 1e14
            cov = 0.5 * (cov + cov.T)
        else:
            cov = np.array([1e-300, 1.0, 2.0])
        doc["covariances"][0] = cov.tolist()
        doc["precisions_cholesky"][0] = model.precision_cholesky(cov[None])[0].tolist()
        if tampered:
            second = np.array(doc["precisions_cholesky"][1])
            second.flat[0] *= 3.0
            doc["precisions_cholesky"][1] = second.tolist()

    _edit(path, change)
    if not tampered:
        load(path)  # the ill-conditioned component alone is a valid model
        return
    with pytest.raises(ValueError, match="'precisions_cholesky' is inconsistent"):
        load(path)


@pytest.mark.parametrize("entry", [(0, 0), (0, 1), (1, 2), (2, 2)])
def test_a_tampered_factor_of_a_badly_scaled_covariance_is_refused(tmp_path, entry):
    """One feature of standard deviation 1e-6 makes the condition number
    1e12 but leaves the factors as exact as unit scales do; a tolerance
    from the raw condition number let any entry change (scores off by 3.8,
    39 of 500 labels).  Compared on the unit-diagonal scale, a change of
    1e-3 is refused and the file as fitted loads."""
    rng = np.random.default_rng(0)
    X = np.c_[rng.normal(size=(500, 2)), 1e-6 * rng.normal(size=500)]
    path = tmp_path / "m.json"
    save(GaussianMixture(2, random_state=0, reg_covar=0).fit(X), path)
    load(path)

    def change(doc):
        factor = np.array(doc["precisions_cholesky"][0])
        factor[entry] *= 1.001
        doc["precisions_cholesky"][0] = factor.tolist()

    _edit(path, change)
    with pytest.raises(ValueError, match="'precisions_cholesky' is inconsistent"):
        load(path)


@pytest.mark.parametrize("covariance_type, dtype", [("full", np.float32), ("VVV", np.float32),
                                                   ("EVV", np.float64), ("VVE", np.float64)])
def test_fits_of_features_on_scales_from_5e_5_to_2_5e5_save_and_load(
    tmp_path, covariance_type, dtype
):
    """Condition numbers of 8e16 (2 to 5 on the unit-diagonal scale): the
    raw eigenvalues are exact to 1e-5 only, and came out negative, so the
    fitted model's file did not load.  It loads, and predicts as fitted."""
    rng = np.random.default_rng(1)
    scales = np.array([1.4, 2.5e5, 5.4e-5, 2.4e5])
    mixing = rng.normal(size=(4, 4)) * 0.3 + np.eye(4)
    X = np.vstack([rng.normal(size=(300, 4)) @ mixing,
                   rng.normal(size=(300, 4)) @ mixing.T + 3]) * scales + 1e3 * scales
    X = X.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = GaussianMixture(3, covariance_type=covariance_type, random_state=1).fit(X)
    path = tmp_path / "m.json"
    save(fitted, path)
    np.testing.assert_array_equal(load(path).predict_proba(X), fitted.predict_proba(X))


def test_load_warns_that_a_standardized_model_expects_transformed_input(X, tmp_path):
    path = tmp_path / "m.json"
    preprocessing = {"standardize": True, "center": [0.0] * 3, "scale": [1.0] * 3}
    save(_fitted(X), path, metadata={"preprocessing": preprocessing})
    with pytest.warns(UserWarning, match="--standardize.*gives wrong results on raw data"):
        load(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, doc = gaussmix.io.load_document(path)  # the caller sees the metadata
    assert doc["metadata"]["preprocessing"] == preprocessing


def test_asymmetric_covariance_is_refused(saved):
    def change(doc):
        doc["covariances"][0][0][1] += 0.5

    _edit(saved, change)
    with pytest.raises(ValueError, match="not symmetric"):
        load(saved)


def test_non_positive_variance_is_refused(X, tmp_path):
    path = tmp_path / "m.json"
    save(_fitted(X, "diag"), path)
    _edit(path, lambda d: d["covariances"][0].__setitem__(1, 0.0))
    with pytest.raises(ValueError, match="non-positive variances"):
        load(path)


def test_truncated_file_is_refused(saved):
    saved.write_text(saved.read_text()[:200])
    with pytest.raises(ValueError, match="invalid JSON"):
        load(saved)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_text_is_refused(saved, constant):
    text = saved.read_text()
    start = text.index('"means": [[') + len('"means": [[')
    end = text.index(",", start)
    saved.write_text(text[:start] + constant + text[end:])
    with pytest.raises(ValueError, match="non-finite value"):
        load(saved)


def test_overflowing_number_is_refused(saved):
    _edit(saved, lambda d: d["means"][0].__setitem__(0, 1e308))
    saved.write_text(saved.read_text().replace("1e+308", "1e999"))
    with pytest.raises(ValueError, match="'means' has non-finite values"):
        load(saved)


def test_repeated_feature_names_are_refused(saved):
    """Matching columns by name would feed one column twice and never another."""
    _edit(saved, lambda d: d.__setitem__("feature_names_in", ["a", "a", "c"]))
    with pytest.raises(ValueError, match="names 'a' more than once"):
        load(saved)


def test_integers_beyond_float64_are_refused_by_the_field(saved):
    doc = gaussmix.io.to_dict(load(saved))
    doc["means"][0][0] = 10**400
    with pytest.raises(ValueError, match="'means' has non-finite values"):
        gaussmix.io.from_dict(doc)
    # Past Python's own 4300-digit limit of int conversion too.
    saved.write_text(saved.read_text().replace('"n_features": 3', '"n_features": ' + "9" * 5000))
    with pytest.raises(ValueError, match="'n_features' must be a positive integer"):
        load(saved)


@pytest.mark.parametrize(
    "content", [b"", b"[1, 2, 3]", b'{"a": 1}', b"\x80\x81 not text", b"hello"]
)
def test_not_a_model_file_is_refused(tmp_path, content):
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="Not a gaussmix model file"):
        load(path)


# --------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_from_sklearn_round_trip(X, covariance_type):
    sk = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    gm = from_sklearn(sk)
    assert type(gm) is GaussianMixture
    assert gm.covariance_type == covariance_type
    np.testing.assert_allclose(gm.predict_proba(X), sk.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(gm.score_samples(X), sk.score_samples(X), rtol=1e-12)
    np.testing.assert_array_equal(gm.predict(X), sk.predict(X))
    back = to_sklearn(gm)
    np.testing.assert_array_equal(back.score_samples(X), sk.score_samples(X))


@pytest.mark.parametrize(
    "covariance_type, family",
    [("full", "full"), ("tied", "tied"), ("diag", "diag"), ("spherical", "spherical"),
     ("VEV", "full"), ("EEE", "tied"), ("EEI", "diag"), ("EII", "spherical")],
)  # fmt: skip
def test_to_sklearn(X, covariance_type, family):
    gm = _fitted(X, covariance_type)
    sk = to_sklearn(gm)
    assert type(sk) is SkGaussianMixture and sk.covariance_type == family
    np.testing.assert_allclose(sk.predict_proba(X), gm.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sk.score_samples(X), gm.score_samples(X), rtol=1e-12)
    np.testing.assert_array_equal(sk.predict(X), gm.predict(X))
    again = from_sklearn(sk)
    np.testing.assert_allclose(again.score_samples(X), gm.score_samples(X), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "VEE", "EVE", "EEV", "diag"])
def test_to_and_from_sklearn_predicts_bit_identically(X, covariance_type):
    """The factors come back in the layout fitting gives them: the same sums, in order."""
    gm = _fitted(X, covariance_type)
    again = from_sklearn(to_sklearn(gm))
    np.testing.assert_array_equal(again.predict_proba(X), gm.predict_proba(X))
    np.testing.assert_array_equal(again.score_samples(X), gm.score_samples(X))


def test_to_sklearn_maps_hierarchical_init(X):
    gm = GaussianMixture(2, init_params="hierarchical").fit(X)
    assert to_sklearn(gm).init_params == "kmeans"


def test_conversion_requires_fitted_models():
    with pytest.raises(NotFittedError):
        to_sklearn(GaussianMixture())
    with pytest.raises(NotFittedError):
        from_sklearn(SkGaussianMixture())


def test_metadata_round_trips_and_is_validated(X, tmp_path):
    from gaussmix.io import load_document

    gm = _fitted(X)
    path = tmp_path / "model.json"
    metadata = {"preprocessing": {"center": [1.0, 2.0, 3.0]}, "note": "x"}
    save(gm, path, metadata=metadata)
    loaded, doc = load_document(path)
    assert doc["metadata"] == metadata
    _assert_same_predictions(gm, loaded, X)
    # Files without metadata stay valid and load_document reports none.
    save(gm, path)
    assert "metadata" not in load_document(path)[1]
    with pytest.raises(ValueError, match="metadata must be a dict"):
        save(gm, path, metadata=[1, 2])
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save(gm, path, metadata={"a": object()})
    with pytest.raises(ValueError, match="non-finite|NaN"):
        save(gm, path, metadata={"a": float("nan")})
    doc = json.loads(path.read_text())
    doc["metadata"] = "text"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="'metadata' must be an object"):
        load(path)


def test_from_sklearn_refuses_a_covariance_type_changed_after_fitting(X):
    sk = SkGaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
    sk.set_params(covariance_type="full")
    with pytest.raises(ValueError, match=r"covariances_ have shape \(2, 3\), not the "
                                         r"\(2, 3, 3\) of its covariance_type='full'"):
        from_sklearn(sk)


def test_from_sklearn_takes_scikit_learns_gaussian_mixture_only():
    from sklearn.mixture import BayesianGaussianMixture

    X = np.random.default_rng(0).normal(size=(100, 2))
    bayesian = BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    with pytest.raises(TypeError, match="expects a fitted sklearn.mixture.GaussianMixture, "
                                        "got BayesianGaussianMixture"):
        from_sklearn(bayesian)


def test_a_lower_triangular_factor_set_by_hand_saves_as_its_upper_factor(tmp_path):
    """Inference reads it as its precision's upper factor; the file holds that
    factor, so that load takes it and predicts the same bits."""
    rng = np.random.default_rng(0)
    covariances = np.stack([np.eye(3) + 0.3, np.eye(3) * 2 + 0.1])
    gm = GaussianMixture(2)
    gm.weights_, gm.means_ = np.array([0.5, 0.5]), rng.normal(size=(2, 3))
    gm.covariances_ = covariances
    gm.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(covariances))
    gm.converged_, gm.n_iter_, gm.lower_bound_, gm.n_features_in_ = True, 1, 0.0, 3
    path = tmp_path / "m.json"
    save(gm, path)
    X = rng.normal(size=(10, 3))
    np.testing.assert_array_equal(load(path).score_samples(X), gm.score_samples(X))


def test_an_entry_of_a_badly_scaled_covariance_with_its_sign_flipped_is_refused(tmp_path):
    """Asymmetry against the largest entry (1e8) let the entry between
    features of scales 1 and 1e-4 change sign; on the unit-diagonal scale it
    is a correlation of 1e-3 against -1e-3."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(500, 3))
    A[:, 2] = 0.5 * A[:, 0] + 0.5 * A[:, 2]
    path = tmp_path / "m.json"
    save(GaussianMixture(2, random_state=0).fit(A * [1e4, 1.0, 1e-4]), path)

    def change(doc):
        cov = np.array(doc["covariances"][0])
        cov[1, 2] *= -1.0
        doc["covariances"][0] = cov.tolist()

    _edit(path, change)
    with pytest.raises(ValueError, match="'covariances' are not symmetric"):
        load(path)
