"""How many threads the k-means start runs on: the free cores, read from the machine."""

import contextlib
import os

import numpy as np
import pytest
import threadpoolctl
from sklearn.cluster import KMeans

from gaussmix import _parallel, init, kmeans


def loadavg(running: int) -> str:
    return f"0.52 0.61 0.70 {running}/123 4567\n"


def test_runnable_tasks_is_the_running_field_of_proc_loadavg():
    assert _parallel._runnable_tasks(loadavg(3)) == 3
    assert _parallel._runnable_tasks("1.00 1.00 1.00 12/800 1\n") == 12


@pytest.fixture
def machine(monkeypatch):
    """A 4-CPU machine on which this process has one runnable thread, the caller."""
    monkeypatch.setattr(_parallel, "available_cores", lambda: 4)
    monkeypatch.setattr(_parallel.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(_parallel, "_own_runnable_threads", lambda: 1)
    return monkeypatch


def test_free_cores_are_the_cpus_less_the_other_runnable_tasks(machine):
    machine.setattr(_parallel, "_read_loadavg", lambda: loadavg(1))
    assert _parallel.free_cores() == 4  # the caller alone
    machine.setattr(_parallel, "_read_loadavg", lambda: loadavg(3))
    assert _parallel.free_cores() == 2
    machine.setattr(_parallel, "_read_loadavg", lambda: loadavg(9))
    assert _parallel.free_cores() == 0


def test_free_cores_leave_out_this_process_own_threads(machine):
    # BLAS workers that still spin after a product are this process's own.
    machine.setattr(_parallel, "_read_loadavg", lambda: loadavg(3))
    machine.setattr(_parallel, "_own_runnable_threads", lambda: 3)
    assert _parallel.free_cores() == 4


def test_free_cores_count_the_whole_machine_but_only_the_usable_cores(machine):
    # /proc/loadavg counts every CPU; this process may use two of eight.
    machine.setattr(_parallel, "available_cores", lambda: 2)
    machine.setattr(_parallel.os, "cpu_count", lambda: 8)
    machine.setattr(_parallel, "_read_loadavg", lambda: loadavg(4))
    assert _parallel.free_cores() == 2
    machine.setattr(_parallel, "_read_loadavg", lambda: loadavg(8))
    assert _parallel.free_cores() == 1


def test_free_cores_take_the_least_of_several_readings(machine):
    # A task that runs for microseconds shows in some readings only.
    readings = iter([loadavg(2), loadavg(3), loadavg(2), loadavg(1), loadavg(2)])
    machine.setattr(_parallel, "_read_loadavg", lambda: next(readings))
    assert _parallel.free_cores() == 4


@pytest.mark.parametrize("text", ["", "0.1 0.2 0.3", "a b c x/y 12"])
def test_free_cores_are_unknown_where_proc_loadavg_makes_no_sense(machine, text):
    machine.setattr(_parallel, "_read_loadavg", lambda: text)
    assert _parallel.free_cores() is None


def test_free_cores_are_unknown_without_proc_loadavg(machine):
    def unreadable():
        raise OSError("no /proc here")

    machine.setattr(_parallel, "_read_loadavg", unreadable)
    assert _parallel.free_cores() is None


def test_thread_state_follows_a_command_name_with_spaces_and_parentheses():
    assert _parallel._thread_state("1234 (odd (name) x) S 1 1234 1234 0 -1") == "S"


@pytest.mark.skipif(not os.path.exists("/proc/thread-self/stat"), reason="Linux only")
def test_the_calling_thread_reads_as_running():
    with open("/proc/thread-self/stat", encoding="ascii") as file:
        assert _parallel._thread_state(file.read()) == "R"


def patch_machine(monkeypatch, *, openmp, free, em_threads):
    monkeypatch.setattr(init, "_openmp_threads", lambda: openmp)
    monkeypatch.setattr(init, "free_cores", lambda: free)
    monkeypatch.setattr(init, "get_num_threads", lambda: em_threads)


SMALL = init.KMEANS_SERIAL_WORK
LARGE = init.KMEANS_SERIAL_WORK + 1


@pytest.mark.parametrize(
    "openmp, free, em_threads, work, expected",
    [
        (2, 2, 2, SMALL, None),  # idle: as scikit-learn runs it, on every core
        (2, 1, 2, SMALL, 1),  # another process runs: the free core only
        (2, 0, 2, SMALL, 1),
        (8, 5, 8, SMALL, 5),
        (2, None, 2, SMALL, 1),  # unknown: one thread, safe on busy cores
        (2, 0, 2, LARGE, None),  # long iterations: every core, whatever the load
        (2, None, 2, LARGE, None),
        (8, 8, 3, SMALL, 3),  # never more than gaussmix's own threads
        (2, 2, 1, SMALL, 1),
        (2, 2, 1, LARGE, 1),
        (8, None, 4, LARGE, 4),
        (1, 8, 8, SMALL, None),  # never more than OpenMP is allowed already
        (3, 8, 8, SMALL, None),
        (3, 8, 8, LARGE, None),
        (None, 8, 8, SMALL, None),  # no OpenMP: nothing to limit
    ],
)
def test_kmeans_threads(monkeypatch, openmp, free, em_threads, work, expected):
    patch_machine(monkeypatch, openmp=openmp, free=free, em_threads=em_threads)
    assert init._kmeans_threads(work) == expected


class RecordingController:
    """Stands in for threadpoolctl's controller and records the OpenMP limits asked for."""

    def __init__(self):
        self.limits = []

    @contextlib.contextmanager
    def limit(self, *, limits, user_api):
        self.limits.append((limits, user_api))
        yield


@pytest.mark.parametrize(
    "openmp, free, expected_limits", [(2, 2, []), (2, 1, [(1, "openmp")]), (8, 5, [(5, "openmp")])]
)
def test_kmeans_start_limits_openmp_to_the_free_cores(monkeypatch, openmp, free, expected_limits):
    patch_machine(monkeypatch, openmp=openmp, free=free, em_threads=openmp)
    controller = RecordingController()
    monkeypatch.setattr(init, "threadpool_controller", lambda: controller)
    monkeypatch.setattr(kmeans, "threadpool_controller", lambda: controller)
    X = np.random.default_rng(0).standard_normal((300, 3))
    fitted = init._kmeans(X, 3, np.random.RandomState(4), None)
    assert controller.limits == expected_limits
    reference = KMeans(n_clusters=3, n_init=1, random_state=np.random.RandomState(4)).fit(X)
    np.testing.assert_array_equal(fitted.labels_, reference.labels_)


def test_kmeans_start_keeps_the_users_openmp_limit(monkeypatch):
    # Free cores to spare must not lift a limit the user set.
    monkeypatch.setattr(init, "free_cores", lambda: 3)
    monkeypatch.setattr(init, "get_num_threads", lambda: 3)
    seen = []
    original_fit = KMeans.fit

    def recording_fit(self, *args, **kwargs):
        seen.append(threadpoolctl.threadpool_info())
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(KMeans, "fit", recording_fit)
    X = np.random.default_rng(0).standard_normal((300, 3))
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        init._kmeans(X, 3, np.random.RandomState(4), None)
    openmp = [info["num_threads"] for info in seen[0] if info["user_api"] == "openmp"]
    assert openmp and max(openmp) == 1
