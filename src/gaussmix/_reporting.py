"""Progress messages of a fit, as scikit-learn's ``verbose`` prints them.

Messages go to the ``"gaussmix"`` logger; when logging is not configured
they are shown on stdout for the duration of the fit, as scikit-learn shows
them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time

__all__ = ["FitReporter", "verbose_logging"]

logger = logging.getLogger("gaussmix")


@contextlib.contextmanager
def verbose_logging(verbose: int):
    """Show progress messages on stdout when ``verbose`` and logging is unset."""
    if not verbose or logger.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


class FitReporter:
    """Reports the starts and iterations of one fit (``verbose`` 1 or 2)."""

    def __init__(self, verbose: int, verbose_interval: int) -> None:
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self._init_time = self._iter_time = 0.0

    def init_start(self, init: int) -> None:
        if self.verbose:
            logger.info("Initialization %d", init)
            self._init_time = self._iter_time = time.time()

    def iteration(self, n_iter: int, change: float, lower_bound: float) -> None:
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
