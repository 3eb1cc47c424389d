"""Every covariance model fits with every initialisation, dtype and weights.

mclust's constrained models need scatter to estimate volumes and shapes; the
one-row-per-component starts ('k-means++', 'random_from_data') leave none, so
their first parameters come from the unconstrained estimate of the same
kernel and the first M-step imposes the constraint.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest

from gaussmix import GaussianMixture
from gaussmix.covariance import covariance_model_names, get_covariance_model, kernel_family
from gaussmix.init import INIT_METHODS

IRIS = np.loadtxt(Path(__file__).parent / "reference" / "iris.csv", delimiter=",", skiprows=1)
ONE_D = ("E", "V")


def fit(name, init, dtype=np.float64, sample_weight=None):
    X = (IRIS[:, :1] if name in ONE_D else IRIS).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = GaussianMixture(3, covariance_type=name, init_params=init, random_state=0)
        return model.fit(X, sample_weight=sample_weight), X


@pytest.mark.parametrize("init", INIT_METHODS)
@pytest.mark.parametrize("name", covariance_model_names())
def test_every_model_fits_from_every_init(name, init):
    model, X = fit(name, init)
    assert np.all(np.isfinite(model.covariances_))
    assert np.isfinite(model.lower_bound_)
    assert model.predict(X).shape == (X.shape[0],)


@pytest.mark.parametrize("name", ["VEI", "EVE", "VEV", "EVV", "EII"])
@pytest.mark.parametrize("init", ["k-means++", "random_from_data"])
def test_float32_and_weights_with_seed_row_starts(name, init):
    weights = np.random.default_rng(0).integers(0, 4, size=IRIS.shape[0]).astype(float)
    model, X = fit(name, init, np.float32, weights)
    assert model.means_.dtype == np.float32
    assert np.all(np.isfinite(model.covariances_))


def test_kernel_family_of_each_model():
    families = {
        name: kernel_family(get_covariance_model(name)).name for name in covariance_model_names()
    }
    assert families["VEV"] == families["VVV"] == "full"
    assert families["EEI"] == families["VVI"] == "diag"
    assert families["EII"] == families["VII"] == "spherical"
    assert families["EEE"] == "tied"
