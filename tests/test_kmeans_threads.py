"""How many threads the k-means start runs on: the free cores, read from the machine."""

import contextlib

import numpy as np
import pytest
from sklearn.cluster import KMeans

from gaussmix import _parallel, init


def loadavg(running: int) -> str:
    return f"0.52 0.61 0.70 {running}/123 4567\n"


def test_runnable_tasks_is_the_running_field_of_proc_loadavg():
    assert _parallel._runnable_tasks(loadavg(3)) == 3
    assert _parallel._runnable_tasks("1.00 1.00 1.00 12/800 1\n") == 12


def test_free_cores_are_the_cores_less_the_other_runnable_tasks(monkeypatch):
    monkeypatch.setattr(_parallel, "available_cores", lambda: 4)
    monkeypatch.setattr(_parallel, "_read_loadavg", lambda: loadavg(1))
    assert _parallel.free_cores() == 4  # the caller alone
    monkeypatch.setattr(_parallel, "_read_loadavg", lambda: loadavg(3))
    assert _parallel.free_cores() == 2
    monkeypatch.setattr(_parallel, "_read_loadavg", lambda: loadavg(9))
    assert _parallel.free_cores() == 0


def test_free_cores_take_the_least_of_several_readings(monkeypatch):
    # A task that runs for microseconds shows in some readings only.
    readings = iter([loadavg(2), loadavg(1), loadavg(3), loadavg(2), loadavg(2)])
    monkeypatch.setattr(_parallel, "available_cores", lambda: 2)
    monkeypatch.setattr(_parallel, "_read_loadavg", lambda: next(readings))
    assert _parallel.free_cores() == 2


@pytest.mark.parametrize("failure", [OSError("no /proc"), ValueError("odd text")])
def test_free_cores_are_unknown_where_proc_loadavg_is_not_readable(monkeypatch, failure):
    def unreadable():
        raise failure

    monkeypatch.setattr(_parallel, "_read_loadavg", unreadable)
    assert _parallel.free_cores() is None


def test_free_cores_read_this_machine():
    free = _parallel.free_cores()
    assert free is None or 0 <= free <= _parallel.available_cores()


def patch_machine(monkeypatch, *, cores, free, em_threads=None):
    monkeypatch.setattr(init, "available_cores", lambda: cores)
    monkeypatch.setattr(init, "free_cores", lambda: free)
    monkeypatch.setattr(init, "get_num_threads", lambda: em_threads or cores)


SMALL = init.KMEANS_SERIAL_WORK
LARGE = init.KMEANS_SERIAL_WORK + 1


@pytest.mark.parametrize(
    "cores, free, em_threads, work, expected",
    [
        (2, 2, None, SMALL, None),  # idle: as scikit-learn runs it, on every core
        (2, 1, None, SMALL, 1),  # another task runs: the free core only
        (2, 0, None, SMALL, 1),
        (8, 5, None, SMALL, 5),
        (2, None, None, SMALL, 1),  # unknown: one thread, safe on busy cores
        (2, 0, None, LARGE, None),  # long iterations: every core, whatever the load
        (2, None, None, LARGE, None),
        (8, 8, 3, SMALL, 3),  # never more than gaussmix's own threads
        (2, 2, 1, SMALL, 1),
        (2, 2, 1, LARGE, 1),
        (8, None, 4, LARGE, 4),
    ],
)
def test_kmeans_threads(monkeypatch, cores, free, em_threads, work, expected):
    patch_machine(monkeypatch, cores=cores, free=free, em_threads=em_threads)
    assert init._kmeans_threads(work) == expected


class RecordingController:
    """Stands in for threadpoolctl's controller and records the OpenMP limits asked for."""

    def __init__(self):
        self.limits = []

    @contextlib.contextmanager
    def limit(self, *, limits, user_api):
        self.limits.append((limits, user_api))
        yield


@pytest.mark.parametrize("free, expected_limits", [(2, []), (1, [(1, "openmp")])])
def test_kmeans_start_limits_openmp_only_on_busy_cores(monkeypatch, free, expected_limits):
    patch_machine(monkeypatch, cores=2, free=free)
    controller = RecordingController()
    monkeypatch.setattr(init, "threadpool_controller", lambda: controller)
    X = np.random.default_rng(0).standard_normal((300, 3))
    fitted = init._kmeans(X, 3, np.random.RandomState(4), None)
    assert controller.limits == expected_limits
    # Labels are scikit-learn's, however many threads ran them.
    reference = KMeans(n_clusters=3, n_init=1, random_state=np.random.RandomState(4)).fit(X)
    np.testing.assert_array_equal(fitted.labels_, reference.labels_)
