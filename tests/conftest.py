"""Shared pytest set-up."""

import os

# Figures render off-screen, also in the subprocesses the CLI tests start.
os.environ["MPLBACKEND"] = "Agg"


def pytest_collection_modifyitems(config, items):
    """Leave out tests marked ``slow`` unless a ``-m`` expression picks tests."""
    if config.getoption("markexpr"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
