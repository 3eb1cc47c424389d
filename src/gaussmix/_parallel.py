"""Running chunk kernels on all cores.

The calling thread and a pool of threads take chunks from one counter, so a
core that is busy with other work simply takes fewer chunks.  While they
run, BLAS is limited to one thread: tall-skinny products gain nothing from
BLAS threads and were measured 10-80x slower with two BLAS threads when the
other core was busy.
Results come back in chunk order, so sums are bitwise reproducible whatever
the number of threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import numbers
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = [
    "get_num_threads",
    "set_num_threads",
    "map_chunks",
    "imap_chunks",
    "single_threaded_blas",
    "limited_threads",
    "threadpool_controller",
    "free_cores",
]

T = TypeVar("T")

_num_threads: int | None = None


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _runnable_tasks(loadavg: str) -> int:
    """Tasks runnable now, from the text of ``/proc/loadavg`` (its "running/total" field)."""
    return int(loadavg.split()[3].split("/", 1)[0])


def _read_loadavg() -> str:
    """The text of Linux's ``/proc/loadavg`` (raises OSError elsewhere)."""
    with open("/proc/loadavg", encoding="ascii") as file:
        return file.read()


def _thread_state(stat: str) -> str:
    """A thread's state letter from the text of its ``/proc/.../stat``.

    The state follows the command name, which is in parentheses and may
    itself hold spaces and parentheses.
    """
    return stat[stat.rindex(")") + 2]


def _own_runnable_threads() -> int:
    """Threads of this process that are runnable now, the caller among them."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii") as file:
                count += _thread_state(file.read()) == "R"
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return max(count, 1)


def _others_runnable() -> int:
    """Tasks of other processes runnable now, from one reading."""
    runnable = _runnable_tasks(_read_loadavg())
    if runnable <= 1:
        return 0  # the caller alone
    # This process's own threads (BLAS workers spin for a while after a
    # product) give way to a parallel section the caller starts.
    return max(0, runnable - _own_runnable_threads())


# Readings per estimate: on an idle machine one reading of /proc/loadavg in
# about ten catches a task that runs for microseconds; the least of five saw
# none 99.7 % of the time, and with one busy process beside the caller saw
# it 98 % of the time (a one-off check, 5000 estimates each).
_LOADAVG_READINGS = 5


def free_cores() -> int | None:
    """Cores that no other process wants right now; None where unknown (not on Linux).

    The machine's CPUs less the runnable tasks of other processes (the
    least of a few readings of ``/proc/loadavg``, which counts the whole
    machine, less this process's runnable threads), at most the cores this
    process may use.  A parallel section with more threads than this shares
    a core, and each of its barriers then waits for a thread that the
    scheduler has set aside.  In a container that sees the host's
    ``/proc/loadavg``, the host's other work counts too.
    """
    try:
        others = _others_runnable()
        for _ in range(_LOADAVG_READINGS - 1):
            if others == 0:
                break
            others = min(others, _others_runnable())
    except (OSError, ValueError, IndexError):
        return None
    return max(0, min(available_cores(), (os.cpu_count() or 1) - others))


def get_num_threads() -> int:
    """Threads used for EM: ``set_num_threads``, else ``GAUSSMIX_NUM_THREADS``, else all cores.

    Returns
    -------
    n_threads : int
        At least 1.

    Raises
    ------
    ValueError
        If ``GAUSSMIX_NUM_THREADS`` is set to something other than a positive integer.
    """
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("GAUSSMIX_NUM_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"GAUSSMIX_NUM_THREADS must be a positive integer, got {env!r}.")
        return value
    return available_cores()


def set_num_threads(n_threads: int | None) -> None:
    """Set the number of threads for EM; None restores the default.

    Results do not depend on it: chunks are summed in order whatever thread
    computed them.

    Parameters
    ----------
    n_threads : int or None
        A positive integer (numpy's integer types too), or None for
        ``GAUSSMIX_NUM_THREADS``, else all available cores.

    Raises
    ------
    ValueError
        If ``n_threads`` is not a positive integer or None.
    """
    global _num_threads
    # Any integer type (numpy's too), but not a bool.
    if n_threads is not None and (
        not isinstance(n_threads, numbers.Integral) or isinstance(n_threads, bool)
        or n_threads < 1
    ):
        raise ValueError(f"n_threads must be a positive integer or None, got {n_threads!r}.")
    _num_threads = None if n_threads is None else int(n_threads)


_controller = None


def threadpool_controller():
    """threadpoolctl's view of the loaded BLAS and OpenMP, found once: the search is slow."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def limited_threads(n_threads: int | None) -> Iterator[None]:
    """EM, BLAS and OpenMP on ``n_threads`` threads meanwhile; None changes nothing."""
    global _num_threads
    if n_threads is None:
        yield
        return
    saved = _num_threads  # None (the default) must stay None
    set_num_threads(n_threads)
    try:
        with threadpool_controller().limit(limits=n_threads):
            yield
    finally:
        _num_threads = saved


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread while chunks run, on EM's threads or on the caller's alone.

    Also on one EM thread (``set_num_threads(1)``, or a single chunk): the
    chunks' tall-skinny products gain nothing from BLAS threads, and with
    the other core busy two of them were about 18x slower (full, D = K =
    16, 10 iterations on one EM thread: N = 1e4, 3.0 s against 0.17 s; N =
    1e5, 15.8 s against 0.89 s).  Entering the limit costs about 5 us.
    """
    with threadpool_controller().limit(limits=1, user_api="blas"):
        yield


# One pool per thread count, kept for the life of the process: starting
# threads for every EM iteration costs more than a small iteration itself.
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(n_threads: int) -> ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(n_threads)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="gaussmix")
            _pools[n_threads] = pool
        return pool


def _started(futures: list) -> list:
    """The pool loops that a thread has taken; the others are cancelled.

    A loop that no pool thread started, the pool being busy with another
    pass (one run inside this pass's consumer, or a fit on another user
    thread), is not waited for: a cancelled future counts as done only once
    a pool thread takes it, after the other pass, which may itself wait for
    this one's caller.
    """
    return [future for future in futures if not future.cancel()]


def map_chunks(
    function: Callable[[slice], T], chunks: Sequence[slice], max_threads: int | None = None
) -> list[T]:
    """``[function(c) for c in chunks]``, on several threads when worthwhile.

    At most ``max_threads`` threads (and :func:`get_num_threads`) take the
    chunks, each the next one from a shared counter.  Called from inside
    one of the pool's own threads (a nested fit), it runs serially instead
    of waiting on a pool it occupies.
    """
    n_threads = min(get_num_threads(), len(chunks))
    if max_threads is not None:
        n_threads = min(n_threads, max_threads)
    if n_threads <= 1 or threading.current_thread().name.startswith("gaussmix"):
        return [function(rows) for rows in chunks]
    # The caller works too, beside n_threads - 1 pool threads, all taking
    # the next chunk from one counter: one thread fewer to wake and no wait
    # for a result handed back (two chunks of a compiled k-means iteration:
    # about 0.3 ms an iteration saved).
    results: list = [None] * len(chunks)
    claimed = itertools.count()
    failed = threading.Event()

    def drain() -> None:
        while not failed.is_set():
            index = next(claimed)  # atomic: itertools.count holds the GIL
            if index >= len(chunks):
                return
            try:
                results[index] = function(chunks[index])
            except BaseException:
                failed.set()
                raise

    futures = []
    try:
        for _ in range(n_threads - 1):
            futures.append(_pool(n_threads - 1).submit(drain))
        drain()
    except BaseException:
        # Includes a failed submit or an interrupt: no chunk is started after.
        failed.set()
        raise
    finally:
        # No worker may still write once the caller returns or raises.
        started = _started(futures)
        try:
            concurrent.futures.wait(started)
        except BaseException:
            failed.set()
            raise
    for future in started:
        future.result()
    return results


class _OrderedChunks:
    """The shared state of :func:`imap_chunks`: the next chunk to claim, results not yet taken.

    Chunks are claimed in order, at most ``window`` ahead of the next result
    the consumer takes, so that a pass holds a handful of chunk results
    whatever its length (and a thread that stalls cannot let the others run
    on unboundedly).
    """

    def __init__(self, function: Callable[[slice], T], chunks: Sequence[slice], window: int):
        self.function = function
        self.chunks = chunks
        self.window = window
        self.condition = threading.Condition()
        self.results: dict[int, tuple[bool, object]] = {}
        self.next_claim = 0
        self.next_taken = 0
        self.stopped = False

    def claimable(self) -> bool:
        return (
            not self.stopped
            and self.next_claim < len(self.chunks)
            and self.next_claim - self.next_taken < self.window
        )

    def run(self, index: int) -> None:
        """Compute chunk ``index`` (claimed by this pool thread) and store its result or error."""
        try:
            outcome = (True, self.function(self.chunks[index]))
        except BaseException as error:  # handed to the consumer, who raises it
            outcome = (False, error)
        with self.condition:
            self.results[index] = outcome
            if not outcome[0]:
                self.stopped = True
            self.condition.notify_all()

    def drain(self) -> None:
        """A pool thread's loop: claim and compute chunks until none is left or the pass stops."""
        while True:
            with self.condition:
                while not self.claimable():
                    if self.stopped or self.next_claim >= len(self.chunks):
                        return
                    self.condition.wait()
                index = self.next_claim
                self.next_claim += 1
            self.run(index)

    def take(self, index: int):
        """Result ``index``; the caller computes claimable chunks while it is not ready."""
        while True:
            with self.condition:
                if index in self.results:
                    self.next_taken = index + 1
                    self.condition.notify_all()  # the window moved on
                    ok, value = self.results.pop(index)
                    break
                if not self.claimable():
                    self.condition.wait()
                    continue
                claimed = self.next_claim
                self.next_claim += 1
            # The caller's own chunk: an error (or an interrupt) is raised at
            # once, without waiting for the chunks before it.
            result = self.function(self.chunks[claimed])
            with self.condition:
                self.results[claimed] = (True, result)
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        with self.condition:
            self.stopped = True
            self.condition.notify_all()


def imap_chunks(function: Callable[[slice], T], chunks: Sequence[slice]) -> Iterator[T]:
    """``function(c)`` for each chunk, yielded in chunk order as they complete.

    The caller works too, beside ``n_threads - 1`` pool threads: while the
    next result is not ready it computes the next unclaimed chunk instead
    of waiting.  Waking a waiting consumer for every chunk costs each pass
    interpreter-lock hand-offs between three threads; without it, E-steps
    of 1e4 rows on two threads ran 6-8 % faster in float32 (D = K = 16:
    3.79 against 3.57 ms, separated 5.23 against 4.83), as fast in float64.  At most a few chunks per
    thread run ahead of the consumer, so a pass over millions of rows
    reduced on the fly (statistics summed as they arrive) holds a handful
    of chunk results instead of one per chunk.
    """
    n_threads = min(get_num_threads(), len(chunks))
    if n_threads <= 1 or threading.current_thread().name.startswith("gaussmix"):
        yield from (function(rows) for rows in chunks)
        return
    state = _OrderedChunks(function, chunks, window=4 * n_threads)
    futures = []
    try:
        for _ in range(n_threads - 1):
            futures.append(_pool(n_threads - 1).submit(state.drain))
        for index in range(len(chunks)):
            yield state.take(index)
    finally:
        # A consumer that stops early (an error in a chunk, a closed
        # generator) starts no chunk after, and no thread writes on.
        state.stop()
        concurrent.futures.wait(_started(futures))
