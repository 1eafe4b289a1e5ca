"""The numba engine's threads (``softmaxkit.numba._threads``): chunks claimed by the calling
thread and the others, on our own pool or, once torch is imported, on torch's OpenMP team. The
tests that hold for both run on both (ids ``pool`` and ``torch-team``)."""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("numba")

from softmaxkit import numba as sknumba
from softmaxkit.numba import _threads


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own pool, whether or not torch has been imported by another test."""
    monkeypatch.setattr(_threads, "torch_openmp_team", lambda: None)


def _require_torch_team() -> None:
    pytest.importorskip("torch")
    if _threads.torch_openmp_team() is None:
        pytest.skip("this torch does not run its CPU ops on OpenMP")


@pytest.fixture(params=["pool", "torch-team"])
def runner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each way :func:`_threads.run` runs its chunks, with two threads."""
    if request.param == "pool":
        monkeypatch.setattr(_threads, "torch_openmp_team", lambda: None)
    else:
        _require_torch_team()
    before = sknumba.get_num_threads()
    sknumba.set_num_threads(2)
    try:
        yield request.param
    finally:
        sknumba.set_num_threads(before)


@pytest.mark.parametrize(("value", "expected"),
                         [("1", 1), (" 1 ", 1), ("0", None), ("-2", None), ("abc", None), ("", None),
                          ("100000", None)])
def test_numba_num_threads_is_read_as_numba_reads_it(monkeypatch: pytest.MonkeyPatch, value: str,
                                                      expected: int | None) -> None:
    """Regression: ``NUMBA_NUM_THREADS=" 1"`` (accepted by numba) was ignored. A limit above the
    usable CPUs, or a value that is no positive number, leaves the CPU count."""
    monkeypatch.setenv("NUMBA_NUM_THREADS", value)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    assert _threads._default_threads() == (usable if expected is None else expected)


def test_set_num_threads() -> None:
    before = sknumba.get_num_threads()
    try:
        sknumba.set_num_threads(3)
        assert sknumba.get_num_threads() == 3
        sknumba.set_num_threads(np.int64(2))  # regression: refused as "not a positive int"
        assert sknumba.get_num_threads() == 2 and type(sknumba.get_num_threads()) is int
        for bad in (0, -1, 1.5, True, "2"):
            with pytest.raises(ValueError, match="threads"):
                sknumba.set_num_threads(bad)  # type: ignore[arg-type]
    finally:
        sknumba.set_num_threads(before)


def _recording_kernel(ran: list[tuple[str, int, int]]) -> Callable[[int, int], None]:
    def kernel(start: int, stop: int) -> None:
        ran.append((threading.current_thread().name, start, stop))
    return kernel


@pytest.mark.parametrize("items", [2, 7, 1000])
def test_run_covers_every_item_once_in_chunks(items: int, runner: str) -> None:
    ran: list[tuple[str, int, int]] = []
    _threads.run(_recording_kernel(ran), items, 1 << 30)
    ranges = sorted((start, stop) for _, start, stop in ran)
    assert ranges[0][0] == 0 and ranges[-1][1] == items
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous, no overlap
    assert len(ranges) == min(items, 2 * _threads.CHUNKS_PER_THREAD)


@contextlib.contextmanager
def _only_worker_busy() -> Iterator[tuple[threading.Event, Any]]:
    """Two threads, the pool's only worker busy with another task until the event is set (at
    the latest when the block ends): ``(the event, that task's future)``."""
    released = threading.Event()
    before = sknumba.get_num_threads()
    try:
        sknumba.set_num_threads(2)
        blocker = _threads._get_pool().submit(released.wait, 60)
        yield released, blocker
    finally:
        released.set()
        sknumba.set_num_threads(before)
    assert blocker.result(timeout=60)  # released, not timed out


def test_late_worker_leaves_its_chunks_to_the_caller(pool: None) -> None:
    """A worker that cannot start (here: busy with another task) does not hold the call up for
    a share of its own: the calling thread claims every chunk, then the worker finds none."""
    ran: list[tuple[str, int, int]] = []
    record = _recording_kernel(ran)
    with _only_worker_busy() as (released, blocker):
        def kernel(start: int, stop: int) -> None:
            record(start, stop)
            if stop == 1000:
                released.set()  # the last chunk: let the worker go
        _threads.run(kernel, 1000, 1 << 30)
        assert blocker.result(timeout=60)  # released by the caller, not by the timeout
    assert {name for name, _, _ in ran} == {threading.main_thread().name}
    assert sum(stop - start for _, start, stop in ran) == 1000


def test_a_failing_chunk_stops_the_others_from_claiming_more(runner: str) -> None:
    events: list[str] = []  # list.append is atomic under the GIL

    def kernel(start: int, stop: int) -> None:
        events.append("start")
        if len(events) == 1:
            events.append("failed")
            raise KeyboardInterrupt  # as Ctrl-C arriving in a thread

    with pytest.raises(KeyboardInterrupt):
        _threads.run(kernel, 1000, 1 << 30)
    # The other thread may have been between its check and its next chunk; no more than that.
    after = events[events.index("failed") + 1:]
    assert len(after) <= 1 and len(events) < 2 * _threads.CHUNKS_PER_THREAD


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_works_after_fork() -> None:
    """A child forked after the pool started has none of its threads: it builds its own
    (the parent's pool object would wait forever for them). In a fresh interpreter: forking
    this one, which has imported JAX, warns."""
    code = """
import multiprocessing, numpy as np, softmaxkit as sk
from softmaxkit import numba as engine
from softmaxkit.numba import _threads
engine.set_num_threads(2)
x = np.ones((256, 1024), np.float32)
sk.softmax(x, engine="numba")  # the pool is running
assert _threads.parts_for(256, x.size) == 2
def child(queue):
    queue.put(float(sk.softmax(x, engine="numba").sum()))
context = multiprocessing.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
process.join(timeout=300)
assert process.exitcode == 0, process.exitcode
print(queue.get(timeout=5))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(256.0)


def test_an_exception_in_one_range_reaches_the_caller(runner: str) -> None:
    calls = []

    def kernel(start: int, stop: int) -> None:
        calls.append((start, stop))
        if start > 0:
            raise RuntimeError("range failed")

    with pytest.raises(RuntimeError, match="range failed"):
        _threads.run(kernel, 10, _threads.PARALLEL_MIN_SIZE)
    assert sorted(calls) == [(0, 5), (5, 10)]


def test_ctrl_c_while_waiting_for_the_workers_waits_for_them(pool: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a Ctrl-C that landed while the call waited for its workers left them writing
    into the caller's arrays after the call had raised."""

    started: list[int] = []
    finished: list[int] = []

    def kernel(start: int, stop: int) -> None:
        started.append(start)
        # A worker's chunk outlasts the caller's: the caller is waiting for it at the end.
        time.sleep(0.01 if threading.current_thread() is threading.main_thread() else 0.2)
        finished.append(start)

    interrupted_once = _interrupt_the_first_wait(monkeypatch)
    before = sknumba.get_num_threads()
    try:
        sknumba.set_num_threads(2)
        with pytest.raises(KeyboardInterrupt):
            _threads.run(kernel, 1000, 1 << 30)
        assert interrupted_once() and sorted(finished) == sorted(started)
    finally:
        sknumba.set_num_threads(before)


def _interrupt_the_first_wait(monkeypatch: pytest.MonkeyPatch) -> Callable[[], bool]:
    """Make the first wait of a call for its workers raise KeyboardInterrupt (a Ctrl-C landing
    there); returns a function telling whether that happened."""
    interrupted: list[bool] = []

    class InterruptedOnce(threading.Condition):
        def wait(self, timeout: float | None = None) -> bool:
            if not interrupted:
                interrupted.append(True)
                raise KeyboardInterrupt
            return super().wait(timeout)

    claims_init = _threads._Claims.__init__

    def with_interrupted_wait(self: Any, *args: Any) -> None:
        claims_init(self, *args)
        self.changed = InterruptedOnce()

    monkeypatch.setattr(_threads._Claims, "__init__", with_interrupted_wait)
    return lambda: bool(interrupted)


def test_a_second_ctrl_c_does_not_let_a_worker_claim_more(pool: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C in the caller's own chunk, then another while it waits for the worker: the
    claiming stops at the first (the call's end sets it before it waits, so a second one
    landing anywhere cannot undo it) and no chunk starts after the call has raised."""

    started: list[int] = []
    late: list[int] = []
    returned = threading.Event()

    def kernel(start: int, stop: int) -> None:
        if returned.is_set():
            late.append(start)
        started.append(start)
        if threading.current_thread() is threading.main_thread():
            raise KeyboardInterrupt  # the first Ctrl-C, in the caller's own chunk
        time.sleep(0.1)

    _interrupt_the_first_wait(monkeypatch)  # the second, while waiting for the worker
    before = sknumba.get_num_threads()
    try:
        sknumba.set_num_threads(2)
        with pytest.raises(KeyboardInterrupt):
            _threads.run(kernel, 1000, 1 << 30)
        returned.set()
        time.sleep(0.5)  # a worker that went on would start its next chunks now
        assert not late and len(started) <= 3
    finally:
        sknumba.set_num_threads(before)


def test_a_queued_worker_does_not_keep_the_arrays_alive(pool: None) -> None:
    """Regression: a worker queued behind other work kept every finished call's arrays alive
    (its task held them) until it ran: 640 MiB for 20 calls on 16 MiB arrays."""
    import gc
    import weakref

    with _only_worker_busy():
        a = np.zeros(16)
        alive = weakref.ref(a)
        _threads.run(lambda a, start, stop: None, 1000, 1 << 30, a)
        del a
        gc.collect()
        assert alive() is None


def test_the_call_does_not_wait_for_a_worker_that_never_came(pool: None) -> None:
    """Regression: right after a torch op (its OpenMP threads spinning on the other core) the
    caller ran every chunk itself, then waited another 1.1 ms for the worker to be scheduled
    only to find nothing left. A worker that has claimed nothing is not waited for."""
    ran: list[tuple[str, int, int]] = []
    record = _recording_kernel(ran)
    with _only_worker_busy() as (_, blocker):
        _threads.run(record, 1000, 1 << 30)  # returns while the worker is still held
        assert not blocker.done()
    assert {name for name, _, _ in ran} == {threading.main_thread().name}
    assert sum(stop - start for _, start, stop in ran) == 1000


def test_no_range_outlives_a_call_whose_submit_fails(pool: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: when the pool could not take a range (no thread could be started), the call
    raised while the ranges already submitted went on writing into the caller's arrays."""

    started: list[int] = []
    finished: list[int] = []

    def kernel(start: int, stop: int) -> None:
        started.append(start)
        time.sleep(0.05)  # still running when the next submit fails
        finished.append(start)

    class FullPool:
        def __init__(self, pool: object) -> None:
            self.pool, self.submitted = pool, 0

        def submit(self, *args: object) -> object:
            self.submitted += 1
            if self.submitted > 1:
                deadline = time.monotonic() + 5
                while not started and time.monotonic() < deadline:
                    time.sleep(0.001)  # the first worker is inside a chunk when this fails
                raise RuntimeError("can't start new thread")
            return self.pool.submit(*args)  # type: ignore[attr-defined]

    before = sknumba.get_num_threads()
    sknumba.set_num_threads(3)
    pool = FullPool(_threads._get_pool())
    monkeypatch.setattr(_threads, "_get_pool", lambda: pool)
    try:
        with pytest.raises(RuntimeError, match="new thread"):
            _threads.run(kernel, 9, _threads.PARALLEL_MIN_SIZE)
        assert started and sorted(finished) == sorted(started)  # all finished before the call returned
        assert len(started) < 3  # and no chunk was claimed after the failure
    finally:
        sknumba.set_num_threads(before)




def test_ctrl_c_in_the_callers_chunk_is_raised_once_the_other_chunks_end(runner: str) -> None:
    """A Ctrl-C in the calling thread's chunk while another thread's chunk runs: the call
    raises it, and only after that chunk has ended (no chunk writes after the call)."""
    running: list[int] = []
    ended: list[int] = []
    worker_started = threading.Event()

    def kernel(start: int, stop: int) -> None:
        if threading.current_thread() is threading.main_thread():
            worker_started.wait(5)
            raise KeyboardInterrupt
        running.append(start)
        worker_started.set()
        time.sleep(0.2)
        ended.append(start)

    with pytest.raises(KeyboardInterrupt):
        _threads.run(kernel, 1000, 1 << 30)
    assert running and sorted(ended) == sorted(running)


def test_no_array_outlives_the_call(runner: str) -> None:
    a = np.zeros(16)
    alive = weakref.ref(a)
    _threads.run(lambda a, start, stop: None, 1000, 1 << 30, a)
    del a
    gc.collect()
    assert alive() is None


def test_a_finalizing_interpreter_runs_the_call_on_the_calling_thread(
        runner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread may be started or joined then (a thread of OpenMP's that took the GIL would be
    ended on the spot, and the call would wait for it for ever)."""
    ran: list[tuple[str, int, int]] = []
    monkeypatch.setattr(sys, "is_finalizing", lambda: True)
    _threads.run(_recording_kernel(ran), 1000, 1 << 30)
    assert ran == [(threading.main_thread().name, 0, 1000)]


def test_torch_team_runs_the_chunks_on_torchs_openmp_threads() -> None:
    """With torch imported, the threads besides the caller are torch's OpenMP workers (threads
    Python did not start), and no pool of our own is started."""
    _require_torch_team()
    ran: list[tuple[str, int, int]] = []
    record = _recording_kernel(ran)

    def kernel(start: int, stop: int) -> None:
        record(start, stop)
        time.sleep(0.02)  # each chunk long enough for the other thread to take one

    before = sknumba.get_num_threads()
    sknumba.set_num_threads(2)  # drops any pool
    try:
        _threads.run(kernel, 1000, 1 << 30)
    finally:
        sknumba.set_num_threads(before)
    names = {name for name, _, _ in ran}
    assert threading.main_thread().name in names
    assert any(name.startswith("Dummy") for name in names), names  # a thread Python did not start
    assert not any(name.startswith("softmaxkit") for name in names)  # none of our pool's


def test_no_team_before_torch_is_imported() -> None:
    code = """
import sys
import numpy as np
import softmaxkit as sk
from softmaxkit.numba import _threads
sk.softmax(np.ones((256, 1024), np.float32), engine="numba")
assert "torch" not in sys.modules and _threads.torch_openmp_team() is None
import torch
assert _threads.torch_openmp_team() is not None or "OpenMP" not in torch.__config__.parallel_info()
"""
    pytest.importorskip("torch")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_uses_a_pool_not_torchs_team() -> None:
    """GNU OpenMP's team does not survive a fork (a parallel region in the child waits for ever
    for the parent's workers): a child forked after a call on torch's team runs on a pool."""
    pytest.importorskip("torch")
    code = """
import multiprocessing, numpy as np, torch, softmaxkit as sk
from softmaxkit import numba as engine
from softmaxkit.numba import _threads
engine.set_num_threads(2)
torch.set_num_threads(2)
x = np.ones((256, 1024), np.float32)
torch.softmax(torch.from_numpy(x), -1)
sk.softmax(x, engine="numba")  # on torch's team
assert _threads.torch_openmp_team() is not None
def child(queue):
    assert _threads.torch_openmp_team() is None
    queue.put(float(sk.softmax(x, engine="numba").sum()))
context = multiprocessing.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
process.join(timeout=300)
assert process.exitcode == 0, process.exitcode
print(queue.get(timeout=5))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(256.0)
