"""Chunk results reduced as they arrive: order, errors and memory."""

import threading
import time

import numpy as np
import pytest

from gaussmix import _kernels, em
from gaussmix._parallel import imap_chunks, limited_threads, map_chunks
from gaussmix.covariance import get_covariance_model
from gaussmix.params import MixtureParams


def test_results_come_in_chunk_order_on_several_threads():
    chunks = [slice(i, i + 1) for i in range(200)]

    def slow_for_even(rows):
        # Uneven work, so that later chunks often finish first.
        if rows.start % 2 == 0:
            sum(range(2000))
        return rows.start, threading.current_thread().name

    with limited_threads(2):
        streamed = list(imap_chunks(slow_for_even, chunks))
        mapped = map_chunks(slow_for_even, chunks)
    assert [start for start, _ in streamed] == list(range(200))
    assert [start for start, _ in mapped] == list(range(200))


@pytest.mark.parametrize("failing", ["chunk seven", "a chunk of the consumer's own"])
def test_an_error_in_a_chunk_reaches_the_consumer(failing):
    def fails(rows):
        time.sleep(0.0005)  # releases the GIL: both threads take chunks
        if failing == "chunk seven":
            failed = rows.start == 7
        else:  # raised at once, not after the chunks before it
            failed = threading.current_thread() is threading.main_thread() and rows.start > 3
        if failed:
            raise ValueError(failing)
        return rows.start

    with limited_threads(2), pytest.raises(ValueError, match=failing):
        list(imap_chunks(fails, [slice(i, i + 1) for i in range(100)]))


def test_imap_chunks_shares_the_chunks_with_the_consumer():
    def sleepy(rows):
        time.sleep(0.001)  # releases the GIL: both threads take chunks
        return rows.start, threading.current_thread().name

    with limited_threads(2):
        streamed = list(imap_chunks(sleepy, [slice(i, i + 1) for i in range(60)]))
    assert [start for start, _ in streamed] == list(range(60))
    names = {name for _, name in streamed}
    assert threading.current_thread().name in names
    assert any(name.startswith("gaussmix") for name in names)


def test_a_consumer_that_stops_early_leaves_no_chunk_running():
    started = []

    def sleepy(rows):
        started.append(rows.start)
        time.sleep(0.001)
        return rows.start

    with limited_threads(2):
        stream = imap_chunks(sleepy, [slice(i, i + 1) for i in range(200)])
        first = [next(stream) for _ in range(5)]
        stream.close()
    count = len(started)
    time.sleep(0.02)
    assert first == list(range(5))
    assert len(started) == count  # nothing started once the stream closed
    assert count <= 5 + 4 * 2 + 1


def test_passes_on_two_user_threads_share_the_pool():
    """Fits run from two threads of the caller's own (joblib, a web server) each finish."""
    def square(rows):
        time.sleep(0.0002)
        return rows.start ** 2

    outcomes = {}

    def run(name):
        outcomes[name] = list(imap_chunks(square, [slice(i, i + 1) for i in range(300)]))

    with limited_threads(2):
        threads = [threading.Thread(target=run, args=(name,)) for name in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert outcomes == {name: [i ** 2 for i in range(300)] for name in "ab"}


def test_a_pass_inside_another_passs_consumer_finishes():
    """The pool's thread is busy with the outer pass, whose window is full."""
    def sleepy(rows):
        time.sleep(0.0002)
        return rows.start

    inner = [slice(i, i + 1) for i in range(20)]
    totals = []
    with limited_threads(2):
        for start in imap_chunks(sleepy, [slice(i, i + 1) for i in range(40)]):
            totals.append(start + sum(imap_chunks(sleepy, inner)) - sum(map_chunks(sleepy, inner)))
    assert totals == list(range(40))


def test_map_chunks_shares_the_chunks_with_the_caller():
    chunks = [slice(i, i + 1) for i in range(60)]

    def sleepy(rows):
        time.sleep(0.001)  # releases the GIL: both threads take chunks
        return rows.start, threading.current_thread().name

    with limited_threads(2):
        mapped = map_chunks(sleepy, chunks)
    assert [start for start, _ in mapped] == list(range(60))
    names = {name for _, name in mapped}
    assert threading.current_thread().name in names
    assert any(name.startswith("gaussmix") for name in names)


@pytest.mark.parametrize("failing", [0, 5])
def test_map_chunks_raises_a_chunk_error_after_every_thread_stopped(failing):
    finished = []

    def fails(rows):
        time.sleep(0.002)
        if rows.start == failing:
            raise ValueError("this chunk")
        finished.append(time.perf_counter())
        return rows.start

    with limited_threads(2), pytest.raises(ValueError, match="this chunk"):
        map_chunks(fails, [slice(i, i + 1) for i in range(40)])
    raised = time.perf_counter()
    time.sleep(0.02)
    # Nothing ran on after the error reached the caller, and the rest was skipped.
    assert all(t <= raised for t in finished)
    assert len(finished) < 39


def test_map_chunks_runs_nothing_when_no_thread_can_start(monkeypatch):
    from gaussmix import _parallel

    class NoThreads:
        def submit(self, *args):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_parallel, "_pool", lambda n_threads: NoThreads())
    ran = []
    with limited_threads(2), pytest.raises(RuntimeError, match="new thread"):
        map_chunks(lambda rows: ran.append(rows), [slice(i, i + 1) for i in range(8)])
    assert ran == []


def _params(n_components, n_features, rng):
    model = get_covariance_model("full")
    covariances = np.stack([np.eye(n_features)] * n_components)
    return model, MixtureParams(
        np.full(n_components, 1.0 / n_components),
        rng.normal(size=(n_components, n_features)),
        covariances,
        model.precision_cholesky(covariances),
    )


class _Counted:
    """A chunk result that counts the results alive at once."""

    alive = 0
    most = 0
    lock = threading.Lock()

    def __init__(self, value):
        self.value = value
        with _Counted.lock:
            _Counted.alive += 1
            _Counted.most = max(_Counted.most, _Counted.alive)

    def __del__(self):
        with _Counted.lock:
            _Counted.alive -= 1

    @classmethod
    def reset(cls):
        cls.alive = cls.most = 0


@pytest.mark.parametrize("slow_consumer", [False, True])
def test_imap_chunks_holds_a_few_results_however_many_chunks(slow_consumer):
    _Counted.reset()

    def work(rows):
        if rows.start % 3 == 0:
            time.sleep(0.0002)  # uneven chunks: some finish out of order
        return _Counted(rows.start)

    taken = []
    with limited_threads(2):
        for result in imap_chunks(work, [slice(i, i + 1) for i in range(300)]):
            taken.append(result.value)
            del result
            if slow_consumer:
                time.sleep(0.0005)
    assert taken == list(range(300))
    # Claimed ahead of the consumer: at most 4 per thread, and the one it holds.
    assert 1 <= _Counted.most <= 4 * 2 + 1
    assert _Counted.alive == 0


def test_an_e_step_pass_holds_a_few_chunk_results_not_one_per_chunk(monkeypatch):
    rng = np.random.default_rng(0)
    model, params = _params(16, 16, rng)
    X = rng.normal(size=(100_000, 16))
    chunk = 256  # hundreds of chunks, 49 tasks of 8
    _Counted.reset()

    def counted(function, chunks):
        for result in imap_chunks(lambda rows: _Counted(function(rows)), chunks):
            yield result.value

    monkeypatch.setattr(em, "imap_chunks", counted)
    with limited_threads(2):
        stats = em.expectation(model, X, None, params, chunk_size=chunk)
    assert len(em._tasks(X.shape[0], chunk)) > 40
    assert 1 <= _Counted.most <= 4 * 2 + 1
    assert stats.weight_sum == X.shape[0]


def test_statistics_do_not_depend_on_the_number_of_threads():
    rng = np.random.default_rng(1)
    model, params = _params(4, 3, rng)
    X = rng.normal(size=(50_000, 3))
    with limited_threads(1):
        one = em.expectation(model, X, None, params)
    with limited_threads(2):
        two = em.expectation(model, X, None, params)
    np.testing.assert_array_equal(one.scatter, two.scatter)
    assert one.log_likelihood == two.log_likelihood


def test_thread_counts_are_positive_integers_of_any_integer_type(monkeypatch):
    from gaussmix._parallel import get_num_threads, set_num_threads

    try:
        set_num_threads(np.int64(2))
        assert get_num_threads() == 2 and type(get_num_threads()) is int
        for bad in (0, -1, True, 2.0, "2"):
            with pytest.raises(ValueError, match="positive integer or None"):
                set_num_threads(bad)
    finally:
        set_num_threads(None)
    for bad in ("0", "-1", "abc"):
        monkeypatch.setenv("GAUSSMIX_NUM_THREADS", bad)
        with pytest.raises(ValueError, match=f"positive integer, got '{bad}'"):
            get_num_threads()
    monkeypatch.setenv("GAUSSMIX_NUM_THREADS", "3")
    assert get_num_threads() == 3


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_threads, n_samples", [(1, 4000), (2, 40000), (2, 50)])
def test_chunks_run_with_blas_on_one_thread_whatever_the_em_threads(
    monkeypatch, n_threads, n_samples
):
    """One EM thread, or one chunk, too: two BLAS threads on the chunks' products
    were about 18x slower with the other core busy."""
    import threadpoolctl

    from gaussmix import GaussianMixture

    seen = []
    e_step_chunk = _kernels.e_step_chunk

    def recording(*args, **kwargs):
        seen.append({
            info["num_threads"] for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"
        })
        return e_step_chunk(*args, **kwargs)

    monkeypatch.setattr(_kernels, "e_step_chunk", recording)
    X = np.random.default_rng(0).standard_normal((n_samples, 8))
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        with limited_threads(n_threads), threadpoolctl.threadpool_limits(2, user_api="blas"):
            GaussianMixture(2, random_state=0, max_iter=2).fit(X)
    assert seen and all(counts == {1} for counts in seen)
