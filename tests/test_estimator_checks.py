"""scikit-learn's estimator contract checks (``parametrize_with_checks``)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from gaussmix import GaussianMixture

ESTIMATORS = [
    GaussianMixture(),
    GaussianMixture(n_components=2, covariance_type="tied", random_state=0),
    GaussianMixture(n_components=2, covariance_type="diag", init_params="k-means++"),
    GaussianMixture(n_components=2, covariance_type="spherical", init_params="random"),
    GaussianMixture(n_components=2, acceleration="squarem", random_state=0),
]


def expected_failed_checks(estimator):
    """Checks that cannot hold by design, with the reason.

    The sample-weight equivalence check shuffles the weighted rows, so a
    randomised initialisation draws other rows and EM starts elsewhere; with
    several components the fits then differ by more than rounding.  The
    property itself (integer weights equal repeated rows, zero weight equals
    a dropped row, from a common start) is tested in
    ``test_estimator_weights.py``; with one component the start is unique and
    the check runs here.
    """
    if estimator.n_components > 1:
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "randomised initialisation sees shuffled rows; equivalence from a "
                "common start is tested in test_estimator_weights.py"
            )
        }
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)
