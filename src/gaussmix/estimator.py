"""``GaussianMixture``: the scikit-learn estimator, as thin glue over the engine."""

from __future__ import annotations

import os
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from . import em
from .acceleration import check_acceleration, iterate_squarem
from .covariance import covariance_model_names, get_covariance_model
from .exceptions import ConvergenceWarning, EmptyComponentWarning
from .init import INIT_METHODS, initial_params
from .datasets import ArrayDataset, Dataset, as_dataset, check_dataset_shape
from .params import MixtureParams
from ._criteria import InformationCriteriaMixin
from ._fitted_mixture import FittedMixtureMixin
from ._partial_fit import PartialFitMixin, rollback_on_error
from ._reporting import FitReporter, verbose_logging
from .validation import (
    check_feature_spans,
    check_sample_weight,
    check_squares_in_range,
    check_user_init,
    weights_near_one,
)

__all__ = ["GaussianMixture"]


def _refuse_wide_features(dataset: Dataset, error: ValueError) -> None:
    """Raise the clearer error of features too wide for their squares, where they caused ``error``.

    Data read block by block (files, Dask) would need a pass of their own
    for it, so every dataset is checked only once a fit has failed,
    typically as non-finite after overflowing.  In-memory arrays were also
    checked before the fit, which refuses them before any overflow warns.
    """
    try:
        extremes = dataset.feature_extremes()
    except (ValueError, OSError):
        return  # the fit's own error says more than a failed check
    try:
        check_feature_spans(*extremes, dataset.dtype)
    except ValueError as wide:
        raise wide from error


class GaussianMixture(
    FittedMixtureMixin, PartialFitMixin, InformationCriteriaMixin, DensityMixin, BaseEstimator
):
    """Gaussian mixture model fitted by expectation-maximization.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the
    same parameters, attributes and methods with the same meaning, plus
    ``sample_weight`` in :meth:`fit`.  EM runs as a map-reduce over chunks of
    rows: each chunk's E-step returns sufficient statistics accumulated around
    the current means, and the M-step turns their sums into parameters.

    Parameters
    ----------
    n_components : int, default=1
        The number of mixture components.
    covariance_type : str, default='full'
        'full': each component has its own general covariance matrix;
        'tied': all components share one general covariance matrix;
        'diag': each component has its own diagonal covariance matrix;
        'spherical': each component has its own single variance.
        Also any of mclust's 14 parameterizations of
        ``Sigma_k = lambda_k D_k A_k D_k^T`` (volume, orientation, shape):
        'EII', 'VII', 'EEI', 'VEI', 'EVI', 'VVI', 'EEE', 'VEE', 'EVE', 'VVE',
        'EEV', 'VEV', 'EVV', 'VVV', and 'E'/'V' for one feature; 'VVV' is
        'full', 'EEE' 'tied', 'VVI' 'diag' and 'VII' 'spherical'.  See
        :mod:`gaussmix.mclust_models` for the shapes of ``covariances_``.
    tol : float, default=1e-3
        EM stops when the gain in mean log-likelihood per sample is below it.
    reg_covar : float, default=1e-6
        Non-negative regularization added to the diagonal of covariances.
    max_iter : int, default=100
        The number of EM iterations to perform; 0 keeps the initial parameters.
    n_init : int, default=1
        The number of initializations to perform; the best result is kept.
        Starts after the first are diversified (see ``init_params``).
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data', \
            'hierarchical', 'kmeans-sample'}, default='kmeans'
        How the initial responsibilities are drawn.  'hierarchical' is
        mclust's model-based agglomerative clustering (deterministic).
        'kmeans-sample' runs k-means on a random sample of
        ``max(20000, 200 * n_components)`` rows (all rows if fewer) and
        labels every row with its nearest centre: for large ``n_samples``
        it starts much sooner than 'kmeans', from nearly the same point.
        With ``n_init > 1`` the first start uses this method exactly as
        scikit-learn does; later starts add mclust's hierarchical start and
        starts on standardised features (see :func:`gaussmix.init.start_plan`).
    weights_init : array-like of shape (n_components,), default=None
        User-provided initial weights.
    means_init : array-like of shape (n_components, n_features), default=None
        User-provided initial means.
    precisions_init : array-like, default=None
        User-provided initial precisions (inverses of the covariances), of
        the shape of ``precisions_`` for the chosen ``covariance_type``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialization and :meth:`sample`.
    warm_start : bool, default=False
        If True, each :meth:`fit` starts from the previous solution and
        ``n_init`` is ignored after the first fit.
    verbose : int, default=0
        1 reports each initialization and every ``verbose_interval``
        iterations; 2 adds timings and log-likelihood changes.  Messages go
        to the ``"gaussmix"`` logger, or to stdout if logging is not set up.
    verbose_interval : int, default=10
        Number of iterations between progress messages.
    learning_decay : float in (0.5, 1], default=0.7
        :meth:`partial_fit` only: batch ``t`` enters the running statistics
        with weight ``(learning_offset + t) ** -learning_decay`` (stepwise
        EM, see :mod:`gaussmix.online`).  1 averages all batches equally;
        smaller values forget early batches faster.
    learning_offset : float, default=10.0
        :meth:`partial_fit` only: damps the first steps, so that the first
        batches, seen with poor parameters, are averaged rather than
        replaced.
    acceleration : {None, 'squarem'}, default=None
        None runs plain EM, step for step as scikit-learn does.  'squarem'
        extrapolates along pairs of EM steps (SQUAREM, see
        :mod:`gaussmix.acceleration`), keeping a jump only when it does not
        lower the log-likelihood: where clusters overlap it reaches the same
        optimum in fewer passes over the data.  ``n_iter_`` and ``max_iter``
        then count passes.  For 'full', 'tied', 'diag', 'spherical', 'EII'
        and 'EEI' (and their aliases).  :meth:`fit` only; :meth:`partial_fit`
        runs online EM whatever it says.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        The weight of each component.
    means_ : ndarray of shape (n_components, n_features)
        The mean of each component.
    covariances_ : ndarray
        The covariance of each component, shaped by ``covariance_type``::

            (n_components,)                        if 'spherical',
            (n_features, n_features)               if 'tied',
            (n_components, n_features)             if 'diag',
            (n_components, n_features, n_features) if 'full'

    precisions_ : ndarray
        The inverses of the covariances, same shapes.
    precisions_cholesky_ : ndarray
        Upper Cholesky factors ``U`` of the precisions (``precision = U U^T``),
        same shapes.
    converged_ : bool
        Whether the best run of EM converged.
    n_iter_ : int
        Number of EM iterations of the best run (passes over the data with
        ``acceleration='squarem'``).
    lower_bound_ : numpy.float64
        Mean log-likelihood per sample of the best run (float64 for float32
        data too, summed in float64; scikit-learn's is then float32).
    lower_bounds_ : list of numpy.float64
        Mean log-likelihood at each iteration of the best run; with
        ``acceleration='squarem'`` at each pass, where a rejected jump shows
        as a dip that the run did not keep.
    n_batch_iter_ : int
        Number of batches seen by :meth:`partial_fit` since the last
        :meth:`fit` (absent after a plain fit).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when ``X`` had string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from gaussmix import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> gm.means_
    array([[10.,  2.],
           [ 1.,  2.]])
    >>> gm.predict([[0, 0], [12, 3]])
    array([1, 0])
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(covariance_model_names()))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions(set(INIT_METHODS))],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
        "learning_offset": [Interval(Real, 0.0, None, closed="left")],
        "acceleration": [StrOptions({"squarem"}), None],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        learning_decay=0.7,
        learning_offset=10.0,
        acceleration=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.acceleration = acceleration

    # ----------------------------------------------------------------- fitting
    def fit(self, X, y=None, sample_weight=None) -> GaussianMixture:
        """Estimate model parameters with the EM algorithm.

        EM runs ``n_init`` times from different initializations and keeps the
        run of largest mean log-likelihood. Each run stops when the gain is
        below ``tol`` or after ``max_iter`` iterations (with a
        ``ConvergenceWarning`` if the best run did not converge).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, one row per sample.
        y : Ignored
            Not used, present for API consistency by convention.
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities: a row of weight ``w`` counts as ``w`` copies
            of itself, and a row of weight 0 as absent.  Only their ratios
            matter.  A component re-seeded at a row after emptying starts
            with that row's share of the weight (all ``w`` copies of it).

        Returns
        -------
        self : GaussianMixture
            The fitted mixture.
        """
        self._fit(X, sample_weight, want_labels=False)
        return self

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit the model on ``X`` and return the most probable component of each row.

        Equal to ``fit(X).predict(X)`` for any ``max_iter`` and ``tol``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities, see :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._fit(X, sample_weight)

    def _fit(self, X, sample_weight, want_labels: bool = True) -> np.ndarray | None:
        self._validate_params()
        with rollback_on_error(self), verbose_logging(self.verbose):
            return self._fit_validated(X, sample_weight, want_labels)

    def _training_data(self, X, sample_weight) -> Dataset:
        """``X`` as a :class:`~gaussmix.datasets.Dataset`, validated, with its weights."""
        dataset = as_dataset(X)
        if dataset is None:
            X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
            dataset = ArrayDataset(X)
        else:
            check_dataset_shape(dataset, min_samples=2)
            self.n_features_in_ = dataset.n_features
            if dataset.feature_names is not None:
                self.feature_names_in_ = np.asarray(dataset.feature_names, dtype=object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        if dataset.n_samples < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components "
                f"but got n_components = {self.n_components}, "
                f"n_samples = {dataset.n_samples}"
            )
        sample_weight = weights_near_one(
            check_sample_weight(sample_weight, dataset.n_samples, self.n_components),
            dataset.dtype, self.n_components,
        )
        if isinstance(dataset, ArrayDataset):
            check_squares_in_range(dataset.X, sample_weight)
        return dataset if sample_weight is None else dataset.weighted(sample_weight)

    def _fit_validated(self, X, sample_weight, want_labels: bool) -> np.ndarray | None:
        dataset = self._training_data(X, sample_weight)
        model = get_covariance_model(self.covariance_type)
        check_acceleration(self.acceleration, model)
        user_init = self._checked_user_init(model, dataset.n_features)

        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init and self.means_.shape[1] != dataset.n_features:
            raise ValueError(
                f"warm_start=True continues the previous fit, which has "
                f"{self.means_.shape[1]} features, but X has {dataset.n_features}. "
                "Set warm_start=False to fit the new data from scratch."
            )
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)
        init_rows = None
        if do_init and len(user_init) < 3:
            # Starts are computed from these rows: all of an in-memory array,
            # a random sample of data read block by block.
            n_rows = dataset.init_sample_rows or dataset.n_samples
            init_rows = dataset.sample(n_rows, random_state)

        reporter = FitReporter(self.verbose, self.verbose_interval)
        best: em.EMResult | None = None
        failures: list[ValueError] = []
        for init in range(n_init):
            reporter.init_start(init)
            try:
                result = self._run_start(
                    model, dataset, init_rows, random_state, user_init, init, do_init, reporter
                )
            except ValueError as error:
                # A start that collapses a component (possible with
                # reg_covar=0) does not sink the others: keep the best start
                # that worked, and raise only when none did.
                if n_init == 1:
                    _refuse_wide_features(dataset, error)
                    raise
                failures.append(error)
                continue
            self._warn_reseeded(result)
            if self.max_iter == 0:
                # As scikit-learn: with no iterations the last initialization wins.
                result.lower_bound = -np.inf
                best = result
                continue
            reporter.init_end(result.lower_bound, result.converged)
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        if best is None:
            _refuse_wide_features(dataset, failures[-1])
            raise failures[-1]
        if failures:
            warnings.warn(
                f"{len(failures)} of {n_init} initializations failed and were "
                f"skipped ({failures[-1]}); the best of the others is kept.",
                UserWarning,
                stacklevel=4,
            )

        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. "
                "Try different init parameters, or increase max_iter, "
                "tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=4,
            )
        self._set_fitted(model, best.params, dataset.dtype)
        self.converged_ = best.converged
        self.n_iter_ = best.n_iter
        # numpy scalars, as scikit-learn's (its bounds are numpy means); float64
        # whatever the data's dtype, as they are summed.
        self.lower_bound_ = np.float64(best.lower_bound)
        self.lower_bounds_ = [np.float64(bound) for bound in best.lower_bounds]
        # A new batch fit starts a new stream for partial_fit.
        self.__dict__.pop("_online_state", None)
        self.__dict__.pop("n_batch_iter_", None)
        if not want_labels:
            return None
        # Labels from the final parameters, so fit_predict == fit().predict.
        return dataset.infer(model, self._fitted_params(), "labels")

    def _run_start(
        self, model, dataset: Dataset, init_rows, random_state, user_init, init: int,
        do_init: bool, reporter: FitReporter,
    ) -> em.EMResult:
        """EM from start number ``init`` (or from the fitted model, warm)."""
        if do_init:
            # With no iterations nothing picks a best start: keep
            # scikit-learn's starts, whose last one is kept.
            start = init if self.max_iter > 0 else 0
            X_init, weights_init = init_rows if init_rows is not None else (None, None)
            params = self._initial_params(
                model, X_init, weights_init, random_state, user_init, start
            )
            start_bound = -np.inf
        else:
            params = self._fitted_params().astype(np.float64)
            start_bound = self.lower_bound_
        iterate = em.iterate_em if self.acceleration is None else iterate_squarem
        with dataset.passes(model, params):
            return iterate(
                lambda current: dataset.expectation(model, current),
                model,
                params,
                dtype=dataset.dtype,
                tol=self.tol,
                max_iter=self.max_iter,
                reg_covar=self.reg_covar,
                lower_bound=start_bound,
                on_iteration=reporter.iteration,
            )

    def _warn_reseeded(self, result: em.EMResult) -> None:
        for n_iter, k, log_density in result.reseeded:
            warnings.warn(
                f"Component {k} of {self.n_components} had no data left at EM "
                f"iteration {n_iter} and was re-seeded at the worst-explained sample "
                f"(log-density {log_density:.4g}). The data may support fewer "
                "components; consider decreasing n_components.",
                EmptyComponentWarning,
                stacklevel=5,
            )

    def _checked_user_init(self, model, n_features: int) -> dict:
        """Validated copies of the ``*_init`` arrays (the parameters stay untouched)."""
        return check_user_init(
            model, self.n_components, n_features,
            self.weights_init, self.means_init, self.precisions_init,
        )

    def _initial_params(
        self, model, X, sample_weight, random_state, user_init: dict, start: int = 0
    ) -> MixtureParams:
        """Parameters to start EM from (see :func:`gaussmix.init.initial_params`)."""
        return initial_params(
            model, X, sample_weight, random_state, user_init,
            init_params=self.init_params, n_components=self.n_components,
            reg_covar=self.reg_covar, start=start,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to ``path`` as JSON (see :func:`gaussmix.io.save`).

        Parameters
        ----------
        path : str or path-like
            The file to write; :func:`gaussmix.load` reads it back.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the model is not fitted.
        """
        from .io import save

        save(self, path)
