"""``partial_fit``: the estimator's glue to stepwise online EM.

A mixin, so that :mod:`gaussmix.estimator` keeps batch fitting and
inference; the numerics of the stream live in :mod:`gaussmix.online`.
"""

from __future__ import annotations

import contextlib

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from . import em, online
from ._reporting import verbose_logging
from .covariance import get_covariance_model
from .datasets import ArrayDataset, is_dataset_like
from .validation import check_sample_weight, check_squares_in_range, weights_near_one

__all__ = ["PartialFitMixin", "rollback_on_error"]


@contextlib.contextmanager
def rollback_on_error(estimator):
    """Leave the estimator exactly as it was if fitting raises."""
    saved = dict(estimator.__dict__)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise



class PartialFitMixin:
    """``partial_fit`` for :class:`~gaussmix.GaussianMixture`."""

    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the model with one batch of a stream (stepwise online EM).

        The first batch initialises the model as :meth:`fit` would (with
        ``init_params`` and the ``*_init`` arrays) unless the model is
        already fitted (or loaded), in which case the fitted model counts as
        the stream's first batch: its statistics are those that give its
        parameters back.  Each call then runs one E-step on the batch under the
        current parameters, moves the running sufficient statistics towards
        it by ``(learning_offset + t) ** -learning_decay`` and takes the
        M-step (see :mod:`gaussmix.online`).  :meth:`fit` starts a new stream.

        After each call ``n_iter_`` counts the stream's batches,
        ``converged_`` is False, ``lower_bounds_[-1]`` is the last batch's
        mean log-likelihood under the parameters it met, and
        ``lower_bound_`` the running one: every batch's, blended with the
        same step weights as the statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One batch; the first must have at least ``n_components`` rows.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Row multiplicities, see :meth:`fit`.

        Returns
        -------
        self : GaussianMixture
        """
        self._validate_params()
        with rollback_on_error(self), verbose_logging(self.verbose):
            self._partial_fit(X, sample_weight)
        return self

    def _check_stream_continues(self, model, params) -> None:
        """The fitted parameters must be of the model the parameters now describe."""
        shape = model.parameter_shape(self.n_components, params.n_features)
        # Shapes alone cannot tell diag from tied when n_components == n_features,
        # nor models of one layout apart (mclust's VVE stores full matrices):
        # the stream would go on under other constraints.  Aliases (VVV, full)
        # name one model.
        fitted = getattr(self, "_fitted_covariance_type", model.name)
        other_model = get_covariance_model(fitted).name != model.name
        if (params.n_components != self.n_components or params.covariances.shape != shape
                or other_model):
            raise ValueError(
                f"partial_fit continues the fitted model ({params.n_components} components, "
                f"covariances of shape {params.covariances.shape}), but the estimator now "
                f"asks for n_components={self.n_components} and "
                f"covariance_type={self.covariance_type!r}. Call fit to start a new model."
            )

    def _fitted_model_as_first_batch(self, model, params, batch_stats) -> online.OnlineState | None:
        """A model fitted by ``fit`` (or loaded) enters the stream as its first batch.

        Otherwise the first batch would replace it outright (its step size
        is one): two rows would undo a fit to millions.  Its log-likelihood
        is the fit's, or the batch's where the fit ran no iteration.
        """
        bound = getattr(self, "lower_bound_", -np.inf)
        if not np.isfinite(bound):
            bound = batch_stats.mean_log_likelihood
        try:
            stats = online.stats_of_params(model, params, self.reg_covar, bound)
        except NotImplementedError:  # a registered model that cannot say
            return None
        return online.OnlineState(stats, n_steps=1)

    def _partial_fit(self, X, sample_weight) -> None:
        if is_dataset_like(X):
            raise TypeError(
                "partial_fit takes one in-memory batch (an array); fit reads "
                "files and Dask collections block by block."
            )
        state = getattr(self, "_online_state", None)
        fitted = hasattr(self, "means_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=not fitted)
        if fitted and X.dtype != self.means_.dtype:
            with np.errstate(over="ignore"):  # reported below, with its fix
                X = X.astype(self.means_.dtype)
            if not np.all(np.isfinite(X)):
                raise ValueError(
                    f"The batch holds values beyond the range of {self.means_.dtype}, the "
                    "dtype of this stream (set by its first batch or fit). Rescale the "
                    "data, or start a float64 stream."
                )
        # Each batch enters per unit of its weight, so its own scale is free.
        # Only the first batch initialises the components and needs as many
        # rows as they are; a later one may hold a single row, weighted or not.
        n_needed = 1 if fitted else self.n_components
        sample_weight = weights_near_one(
            check_sample_weight(sample_weight, X.shape[0], n_needed), X.dtype, n_needed
        )
        check_squares_in_range(X, sample_weight)
        model = get_covariance_model(self.covariance_type)
        if fitted:
            params = self._fitted_params().astype(np.float64)
            self._check_stream_continues(model, params)
        else:
            if X.shape[0] < self.n_components:
                raise ValueError(
                    f"The first batch given to partial_fit has {X.shape[0]} rows, "
                    f"fewer than n_components={self.n_components}: the model is "
                    "initialised from it. Start the stream with a larger batch."
                )
            user_init = self._checked_user_init(model, X.shape[1])
            params = self._initial_params(
                model, X, sample_weight, check_random_state(self.random_state), user_init
            )
        batch = ArrayDataset(X, sample_weight)
        with batch.passes(model, params):
            batch_stats = batch.expectation(model, params)
        if fitted and state is None:
            state = self._fitted_model_as_first_batch(model, params, batch_stats)
        n_batches = getattr(self, "n_batch_iter_", 0) + 1
        state, new_params, reseeded = online.update(
            model, state, batch_stats, reg_covar=self.reg_covar, dtype=X.dtype,
            learning_decay=self.learning_decay, learning_offset=self.learning_offset,
        )
        self._warn_reseeded(em.EMResult(new_params, 0.0, reseeded=[
            (state.n_steps, k, batch_stats.worst_log_density) for k in reseeded
        ]))
        self._set_fitted(model, new_params, X.dtype)
        self._online_state = state
        self.n_batch_iter_ = self.n_iter_ = n_batches
        self.converged_ = False
        # The running log-likelihood: each batch's, under the parameters it met.
        self.lower_bound_ = np.float64(state.stats.log_likelihood)
        previous = list(self.lower_bounds_) if n_batches > 1 else []
        self.lower_bounds_ = previous + [np.float64(batch_stats.mean_log_likelihood)]
