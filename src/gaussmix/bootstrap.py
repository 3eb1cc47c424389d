"""Bootstrap likelihood-ratio test for the number of components.

The test of McLachlan (1987), as R's ``mclust::mclustBootstrapLRT``: for
each ``K``, the statistic ``LRTS = -2 (log L_K - log L_{K+1})`` on the data
is compared with its distribution under the fitted ``K``-component model,
approximated by fitting ``K`` and ``K + 1`` components to samples of the
same size drawn from that model.  The p-value is
``(1 + #{bootstrap LRTS >= observed LRTS}) / (B + 1)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np

from .estimator import GaussianMixture
from .selection import with_selection_defaults
from .validation import check_in_memory
from .exceptions import ConvergenceWarning, EmptyComponentWarning

__all__ = ["BootstrapLRTResult", "bootstrap_lrt"]

#: Draws of a bootstrap sample before a replicate is recorded as failed.
MAX_REDRAWS = 3

_FIT_ERRORS = (ValueError, np.linalg.LinAlgError)
_SEED_BOUND = 2**31 - 1


@dataclass(frozen=True)
class BootstrapLRTResult:
    """Outcome of :func:`bootstrap_lrt`.

    Attributes
    ----------
    covariance_type : str
        Covariance model of every fit.
    n_bootstrap : int
        Bootstrap replicates requested per test.
    level : float
        Significance level.
    table : list of dict
        One row per test of ``K`` against ``K + 1`` components, with keys
        ``n_components`` (``K``), ``lrts`` (observed statistic),
        ``p_value``, ``boot_lrts`` (ndarray of the statistic on each
        replicate, NaN where a replicate failed) and ``n_failed``.
    n_components_ : int
        Smallest ``K`` whose test against ``K + 1`` is not significant at
        ``level``; one more than the last ``K`` tested when every test is.
    """

    covariance_type: str
    n_bootstrap: int
    level: float
    table: list[dict[str, Any]] = field(repr=False)
    n_components_: int

    def __str__(self) -> str:
        lines = [
            f"Bootstrap LRT for the number of components "
            f"({self.covariance_type}, {self.n_bootstrap} replicates, "
            f"level {self.level:g})",
            f"{'K':>3} {'vs':>4} {'LRTS':>12} {'p-value':>9} {'failed':>7}",
        ]
        for row in self.table:
            k = row["n_components"]
            lines.append(
                f"{k:>3} {k + 1:>4} {row['lrts']:>12.4f} "
                f"{row['p_value']:>9.4f} {row['n_failed']:>7}"
            )
        lines.append(f"Selected number of components: {self.n_components_}")
        return "\n".join(lines)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(_SEED_BOUND))


def _fit(X: np.ndarray, k: int, seed: int, options: dict) -> GaussianMixture:
    return GaussianMixture(n_components=k, random_state=seed, **options).fit(X)


def _log_likelihood(model: GaussianMixture, X: np.ndarray) -> float:
    return float(model.score(X)) * X.shape[0]


def _lrts(loglik_k: float, loglik_k1: float) -> float:
    # EM can stop at a K + 1 fit worse than the K fit; the statistic of the
    # nested models is nonnegative, so such a shortfall counts as zero.
    return max(-2.0 * (loglik_k - loglik_k1), 0.0)


def _replicate(
    model: GaussianMixture, k: int, n: int, rng: np.random.Generator, options: dict
) -> float:
    """LRTS on one bootstrap sample; NaN when every draw fails to fit."""
    for _ in range(MAX_REDRAWS):
        model.set_params(random_state=_seed(rng))
        Xb, _ = model.sample(n)
        seeds = _seed(rng), _seed(rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", EmptyComponentWarning)
                fits = [_fit(Xb, k + j, seeds[j], options) for j in (0, 1)]
        except _FIT_ERRORS:
            continue
        return _lrts(*(_log_likelihood(fit, Xb) for fit in fits))
    return float("nan")


def _p_value(observed: float, boot: np.ndarray) -> float:
    done = boot[np.isfinite(boot)]
    return (1.0 + np.count_nonzero(done >= observed)) / (done.size + 1.0)


def _check(max_components: int, n_bootstrap: int, level: float) -> None:
    for name, value in (("max_components", max_components), ("n_bootstrap", n_bootstrap)):
        # int(inf) raises OverflowError, int("4") passes, int(nan) ValueError.
        if not isinstance(value, (Integral, float, np.floating)) or isinstance(value, bool) or (
            not isinstance(value, Integral) and not math.isfinite(value)
        ):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if int(max_components) != max_components or max_components < 2:
        raise ValueError(
            f"max_components must be an integer >= 2, got {max_components!r}"
        )
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive integer, got {n_bootstrap!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if 1.0 / (n_bootstrap + 1.0) > level:
        # The p-value is at least 1 / (B + 1): no test could ever reject.
        warnings.warn(
            f"With n_bootstrap={n_bootstrap} the smallest possible p-value is "
            f"{1.0 / (n_bootstrap + 1.0):.3g}, above level={level}: no test can "
            f"reject K, so n_components_ will be 1. Use n_bootstrap >= "
            f"{math.ceil(1.0 / level - 1.0)}.",
            UserWarning,
            stacklevel=3,
        )


def bootstrap_lrt(
    X: Any,
    covariance_type: str = "VVV",
    max_components: int = 4,
    n_bootstrap: int = 99,
    level: float = 0.05,
    n_init: int = 1,
    random_state: int | np.random.Generator | None = None,
    *,
    sequential: bool = False,
    **gmm_kwargs: Any,
) -> BootstrapLRTResult:
    """Bootstrap likelihood-ratio tests of K against K + 1 components.

    For each ``K = 1, ..., max_components - 1`` the data are fitted with
    ``K`` and ``K + 1`` components and ``LRTS = -2 (log L_K - log L_{K+1})``
    is computed.  ``n_bootstrap`` samples of the data's size are drawn from
    the fitted ``K``-component model with its ``sample`` method (its
    ``random_state`` set to an integer taken from the generator before each
    draw); ``K`` and ``K + 1`` components are fitted to each, giving the
    bootstrap LRTS.
    The p-value is ``(1 + m) / (B + 1)``, ``m`` the number of bootstrap
    values at least the observed one and ``B`` the replicates that fitted.

    A ``K + 1`` fit whose log-likelihood falls below the ``K`` fit (a local
    optimum of EM) gives a statistic of zero: LRTS is taken as
    ``max(LRTS, 0)``, the statistic of nested models being nonnegative.
    A bootstrap sample on which a fit raises ``ValueError`` (or
    ``LinAlgError``) is redrawn up to :data:`MAX_REDRAWS` times in all; a
    replicate that still fails is recorded as NaN, counted in
    ``n_failed`` and left out of the p-value.  Errors fitting the data
    itself propagate.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Data; a 1-D array is one feature.
    covariance_type : str, default="VVV"
        Any covariance model of :class:`GaussianMixture`, including
        mclust's names.
    max_components : int, default=4
        Largest number of components fitted; tests run for
        ``K < max_components``.
    n_bootstrap : int, default=99
        Bootstrap replicates per test.
    level : float, default=0.05
        Significance level that selects ``n_components_``.
    n_init : int, default=1
        ``n_init`` of every fit.
    random_state : int, Generator or None, default=None
        Seeds a :func:`numpy.random.default_rng`; every fit and every
        bootstrap draw takes an integer seed from it in a fixed order, so
        an integer gives reproducible results.
    sequential : bool, default=False
        Stop after the first test that is not significant, as mclust does
        without ``maxG``.
    **gmm_kwargs
        Further parameters of :class:`GaussianMixture` (``tol``,
        ``reg_covar``, ``max_iter``, ``init_params``, ...).  ``tol`` and
        ``max_iter`` default to :func:`~gaussmix.select_model`'s, 1e-5 and
        1000: a ``K + 1`` fit stopped early can score below the ``K`` fit.

    Returns
    -------
    BootstrapLRTResult

    References
    ----------
    McLachlan, G. J. (1987). On bootstrapping the likelihood ratio test
    statistic for the number of components in a normal mixture.
    Applied Statistics, 36, 318-324.
    """
    _check(max_components, n_bootstrap, level)
    # Whole-number floats (5.0) pass the check; range() needs ints.
    max_components, n_bootstrap = int(max_components), int(n_bootstrap)
    if "sample_weight" in gmm_kwargs:
        raise TypeError(
            "bootstrap_lrt does not take sample_weight: its bootstrap samples "
            "are drawn from the fitted mixture, of the data's size in rows."
        )
    if "n_components" in gmm_kwargs:
        raise TypeError(
            "bootstrap_lrt sets n_components itself, 1 to max_components; give "
            "max_components instead."
        )
    check_in_memory(X, "bootstrap_lrt")
    X = np.asarray(X, dtype=np.float64)
    X = X.reshape(-1, 1) if X.ndim == 1 else X
    rng = np.random.default_rng(random_state)
    options = dict(with_selection_defaults(gmm_kwargs), covariance_type=covariance_type,
                   n_init=n_init)
    fits = {1: _fit(X, 1, _seed(rng), options)}
    table, selected = [], max_components
    for k in range(1, max_components):
        fits[k + 1] = _fit(X, k + 1, _seed(rng), options)
        row = _test(X, fits[k], fits[k + 1], k, n_bootstrap, rng, options)
        table.append(row)
        if row["p_value"] > level:
            selected = min(selected, k)
            if sequential:
                break
    return BootstrapLRTResult(covariance_type, int(n_bootstrap), level, table, selected)


def _test(
    X: np.ndarray,
    fit_k: GaussianMixture,
    fit_k1: GaussianMixture,
    k: int,
    n_bootstrap: int,
    rng: np.random.Generator,
    options: dict,
) -> dict[str, Any]:
    """One row of the table: K against K + 1 components."""
    observed = _lrts(_log_likelihood(fit_k, X), _log_likelihood(fit_k1, X))
    boot = np.array(
        [_replicate(fit_k, k, X.shape[0], rng, options) for _ in range(n_bootstrap)]
    )
    return {
        "n_components": k,
        "lrts": observed,
        "p_value": _p_value(observed, boot),
        "boot_lrts": boot,
        "n_failed": int(np.count_nonzero(np.isnan(boot))),
    }
