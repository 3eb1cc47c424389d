"""A small progress bar for the command line, on stderr, without dependencies.

The bar draws itself only on a terminal: redirected to a file or a pipe,
carriage returns would leave a mess of partial lines, so it stays silent.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 28
# Redrawing on every EM iteration of a small fit would cost more than the fit.
_MIN_INTERVAL_S = 0.1


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """``label [#######-----]  12/40  note`` redrawn in place on stderr.

    Parameters
    ----------
    total : int
        The count at which the work is done.
    label : str
        Shown before the bar.
    enabled : bool, optional
        Draw at all; by default only when ``stream`` is a terminal.
    stream : file-like, optional
        Defaults to :data:`sys.stderr` at construction time.
    """

    def __init__(
        self,
        total: int,
        label: str,
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _is_tty(self.stream) if enabled is None else enabled
        self.total = max(int(total), 1)
        self.label = label
        self.count = 0
        self.note = ""
        self._last_draw = 0.0
        self._last_width = 0

    def __enter__(self) -> ProgressBar:
        self._draw(force=True)
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def update(self, count: int, note: str = "") -> None:
        """Move the bar to ``count`` (clipped to the total) and show ``note``."""
        self.count = min(max(int(count), 0), self.total)
        self.note = note
        self._draw(force=self.count == self.total)

    def close(self) -> None:
        """Erase the bar, leaving the line clean for what is printed next."""
        if self.enabled and self._last_width:
            self.stream.write("\r" + " " * self._last_width + "\r")
            self.stream.flush()
            self._last_width = 0

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < _MIN_INTERVAL_S:
            return
        self._last_draw = now
        filled = _WIDTH * self.count // self.total
        bar = "#" * filled + "-" * (_WIDTH - filled)
        digits = len(str(self.total))
        text = f"{self.label} [{bar}] {self.count:>{digits}}/{self.total}"
        if self.note:
            text += f"  {self.note}"
        padding = " " * max(self._last_width - len(text), 0)
        self.stream.write("\r" + text + padding)
        self.stream.flush()
        self._last_width = len(text)
