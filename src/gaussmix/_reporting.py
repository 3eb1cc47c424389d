"""Progress messages of a fit, as scikit-learn's ``verbose`` prints them.

Messages go to the ``"gaussmix"`` logger; when logging is not configured
they are shown on stdout for the duration of the fit, as scikit-learn shows
them.  :func:`fit_progress` also lets a caller follow the EM iterations of
fits in this thread, whatever ``verbose`` is (the command line draws its
progress bar with it).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["FitReporter", "ProgressCallback", "fit_progress", "verbose_logging"]

logger = logging.getLogger("gaussmix")

#: ``callback(event, init, n_iter)``: event is ``"start"`` (n_iter 0),
#: ``"iteration"`` or ``"end"`` (n_iter the start's last iteration).
ProgressCallback = Callable[[str, int, int], None]

# A context variable rather than an estimator parameter: the estimator's
# parameters are scikit-learn's, and a fit in another thread should not
# report to this thread's listener.
_progress_callback: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar(
    "gaussmix_fit_progress", default=None
)


@contextlib.contextmanager
def fit_progress(callback: ProgressCallback) -> Iterator[None]:
    """Call ``callback`` at each start and EM iteration of fits inside the block.

    Parameters
    ----------
    callback : callable
        ``callback(event, init, n_iter)`` with ``event`` one of
        ``"start"`` (a start ``init`` = 0, 1, ... begins; ``n_iter`` is 0),
        ``"iteration"`` (EM iteration ``n_iter`` of start ``init`` is done)
        and ``"end"`` (start ``init`` stopped after ``n_iter`` iterations).
        It runs in the fitting thread and should return quickly.

    Yields
    ------
    None

    Examples
    --------
    >>> import numpy as np
    >>> from gaussmix import GaussianMixture
    >>> from gaussmix._reporting import fit_progress
    >>> events = []
    >>> X = np.random.RandomState(0).randn(50, 2)
    >>> with fit_progress(lambda event, init, n_iter: events.append(event)):
    ...     _ = GaussianMixture(2, random_state=0).fit(X)
    >>> events[0], events[-1]
    ('start', 'end')
    """
    token = _progress_callback.set(callback)
    try:
        yield
    finally:
        _progress_callback.reset(token)


@contextlib.contextmanager
def verbose_logging(verbose: int):
    """Show progress messages on stdout when ``verbose``, unless logging shows them.

    Logging shows them when a handler would receive the ``"gaussmix"``
    logger's INFO records.  A handler alone is not enough: the usual
    ``logging.basicConfig()`` leaves the level at WARNING, and ``verbose``
    would then print nothing at all.  Meanwhile the records stop at this
    logger, so that a handler at a lower level does not show them twice.
    Fits in several threads share one stdout handler, which the last of them
    removes: each removing its own silenced the others' messages.
    """
    if not verbose or not _share_stdout():
        yield
        return
    try:
        yield
    finally:
        _leave_stdout()


class _StdoutHandler:
    """The stdout handler of the fits running with ``verbose``, and what it replaced."""

    def __init__(self) -> None:
        self.handler = logging.StreamHandler(sys.stdout)
        self.handler.setFormatter(logging.Formatter("%(message)s"))
        self.previous_level, self.previous_propagate = logger.level, logger.propagate
        self.users = 0


_stdout_lock = threading.Lock()
_stdout: _StdoutHandler | None = None


def _share_stdout() -> bool:
    """Join (or install) the stdout handler; False where logging already shows INFO."""
    global _stdout
    with _stdout_lock:
        if _stdout is None:
            if logger.hasHandlers() and logger.isEnabledFor(logging.INFO):
                return False
            _stdout = _StdoutHandler()
            logger.addHandler(_stdout.handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        _stdout.users += 1
        return True


def _leave_stdout() -> None:
    global _stdout
    with _stdout_lock:
        _stdout.users -= 1
        if _stdout.users == 0:
            logger.removeHandler(_stdout.handler)
            logger.setLevel(_stdout.previous_level)
            logger.propagate = _stdout.previous_propagate
            _stdout = None


class FitReporter:
    """Reports the starts and iterations of one fit (``verbose`` 1 or 2)."""

    def __init__(self, verbose: int, verbose_interval: int) -> None:
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self._init_time = self._iter_time = 0.0
        self._callback = _progress_callback.get()
        self._init = 0
        self._n_iter = 0

    def init_start(self, init: int) -> None:
        self._init, self._n_iter = init, 0
        if self._callback is not None:
            self._callback("start", init, 0)
        if self.verbose:
            logger.info("Initialization %d", init)
            self._init_time = self._iter_time = time.time()

    def iteration(self, n_iter: int, change: float, lower_bound: float) -> None:
        self._n_iter = n_iter
        if self._callback is not None:
            self._callback("iteration", self._init, n_iter)
        if not self.verbose or n_iter % self.verbose_interval:
            return
        if self.verbose == 1:
            logger.info("  Iteration %d", n_iter)
            return
        now = time.time()
        logger.info(
            "  Iteration %d\t time lapse %.5fs\t ll change %.5f",
            n_iter,
            now - self._iter_time,
            change,
        )
        self._iter_time = now

    def init_end(self, lower_bound: float, converged: bool) -> None:
        if self._callback is not None:
            self._callback("end", self._init, self._n_iter)
        if not self.verbose:
            return
        status = "converged" if converged else "did not converge"
        if self.verbose == 1:
            logger.info("Initialization %s.", status)
            return
        logger.info(
            "Initialization %s. time lapse %.5fs\t lower bound %.5f.",
            status,
            time.time() - self._init_time,
            lower_bound,
        )
