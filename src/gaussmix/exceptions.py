"""Warnings and errors raised by gaussmix."""

from sklearn.exceptions import ConvergenceWarning

__all__ = ["ConvergenceWarning", "EmptyComponentWarning"]


class EmptyComponentWarning(UserWarning):
    """A mixture component lost all its data and was re-seeded."""
