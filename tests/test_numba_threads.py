"""The numba engine's threads (``softmaxkit.numba._threads``): chunks claimed by the calling
thread and the others, on our own pool or, once torch is imported, on torch's OpenMP team. The
tests that hold for both run on both (ids ``pool`` and ``torch-team``)."""

from __future__ import annotations

import ast
import contextlib
import gc
import itertools
import math
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
from hypothesis import given, settings
from hypothesis import strategies as st

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
        monkeypatch.setattr(_threads._calls, "on_torch_team", 1)  # as inside a torch operator
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
    assert len(ranges) == len(_threads.chunk_bounds(items, 1 << 30, 2)) - 1


@settings(max_examples=300, deadline=None)
@given(items=st.integers(1, 200_000), per_item=st.integers(1, 1 << 16), parts=st.integers(2, 64))
def test_chunks_are_guided(items: int, per_item: int, parts: int) -> None:
    # The calls run() makes: more elements than PARALLEL_MIN_SIZE, at least one item a thread.
    parts = min(parts, items)
    elements = max(items * per_item, _threads.PARALLEL_MIN_SIZE)
    bounds = _threads.chunk_bounds(items, elements, parts)
    sizes = [b - a for a, b in itertools.pairwise(bounds)]
    # Every item once, in order, in chunks that only shrink: a chunk for every thread.
    assert bounds[0] == 0 and bounds[-1] == items and all(s > 0 for s in sizes)
    assert all(a >= b for a, b in itertools.pairwise(sizes)) and len(sizes) >= parts
    # Guided: no chunk takes more than half a thread's share of what is left, or the smallest
    # chunk worth calling a kernel for, so that the last ones are small.
    worth = elements / items  # elements a chunk holds per item
    for start, size in zip(bounds, sizes, strict=False):
        assert size <= max(-(-(items - start) // (2 * parts)), math.ceil(_threads.MIN_CHUNK_ELEMENTS / worth))
    # No chunk but the last below MIN_CHUNK_ELEMENTS' worth, unless that would leave a thread
    # without one.
    for size in sizes[:-1]:
        assert size * worth >= _threads.MIN_CHUNK_ELEMENTS or size >= items // parts


class _Blocker:
    """A task that holds a pool thread until released: ``done`` is set once it ends, and
    ``released_in_time`` says whether it was released before its 60 s ran out."""

    def __init__(self) -> None:
        self.released, self.done = threading.Event(), threading.Event()
        self.released_in_time = False

    def __call__(self) -> None:
        self.released_in_time = self.released.wait(60)
        self.done.set()


@contextlib.contextmanager
def _only_worker_busy() -> Iterator[_Blocker]:
    """Two threads, the pool's only worker busy with another task until it is released (at
    the latest when the block ends)."""
    blocker = _Blocker()
    before = sknumba.get_num_threads()
    try:
        sknumba.set_num_threads(2)
        _threads._get_pool().submit(blocker)
        yield blocker
    finally:
        blocker.released.set()
        sknumba.set_num_threads(before)
    assert blocker.done.wait(60) and blocker.released_in_time


def test_late_worker_leaves_its_chunks_to_the_caller(pool: None) -> None:
    """A worker that cannot start (here: busy with another task) does not hold the call up for
    a share of its own: the calling thread claims every chunk, then the worker finds none."""
    ran: list[tuple[str, int, int]] = []
    record = _recording_kernel(ran)
    with _only_worker_busy() as blocker:
        def kernel(start: int, stop: int) -> None:
            record(start, stop)
            if stop == 1000:
                blocker.released.set()  # the last chunk: let the worker go
        _threads.run(kernel, 1000, 1 << 30)
        assert blocker.done.wait(60) and blocker.released_in_time  # released by the caller
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
    assert len(after) <= 1 and len(events) < len(_threads.chunk_bounds(1000, 1 << 30, 2)) - 1


def _sum_in_a_forked_child(parent: str, child: str) -> float:
    """Run ``parent`` (code) in a fresh interpreter, then ``child`` (an expression) in a child
    it forks, and return the child's value. In a fresh interpreter: forking this one, which has
    imported JAX, warns. A child that hangs is killed, and the test fails."""
    code = f"""
import multiprocessing, numpy as np, softmaxkit as sk
from softmaxkit import numba as engine
from softmaxkit.numba import _threads
engine.set_num_threads(2)
{parent}
def child(queue):
    queue.put(float({child}))
context = multiprocessing.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
process.join(timeout=60)
if process.exitcode is None:
    process.kill()
assert process.exitcode == 0, process.exitcode
print(queue.get(timeout=5))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return float(done.stdout)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_pool_works_after_fork() -> None:
    """A child forked after the pool started has none of its threads: it builds its own
    (the parent's pool object would wait forever for them)."""
    parent = """
x = np.ones((256, 1024), np.float32)
sk.softmax(x, engine="numba")  # the pool is running
assert _threads.parts_for(256, x.size) == 2
"""
    assert _sum_in_a_forked_child(parent, 'sk.softmax(x, engine="numba").sum()') == pytest.approx(256.0)


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

    class InterruptedOnce:
        """The caller's wait for the running chunks (a blocking acquire), cut the first time."""

        def __init__(self) -> None:
            self.lock = threading.Lock()

        def acquire(self, blocking: bool = True) -> bool:
            if blocking and not interrupted:
                interrupted.append(True)
                raise KeyboardInterrupt
            return self.lock.acquire(blocking)

        def release(self) -> None:
            self.lock.release()

    claims_init = _threads._Claims.__init__

    def with_interrupted_wait(self: Any, *args: Any) -> None:
        claims_init(self, *args)
        self.idle = InterruptedOnce()

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
    with _only_worker_busy():
        _assert_no_array_outlives_a_call()


def test_the_call_does_not_wait_for_a_worker_that_never_came(pool: None) -> None:
    """Regression: right after a torch op (its OpenMP threads spinning on the other core) the
    caller ran every chunk itself, then waited another 1.1 ms for the worker to be scheduled
    only to find nothing left. A worker that has claimed nothing is not waited for."""
    ran: list[tuple[str, int, int]] = []
    record = _recording_kernel(ran)
    with _only_worker_busy() as blocker:
        _threads.run(record, 1000, 1 << 30)  # returns while the worker is still held
        assert not blocker.done.is_set()
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


def _assert_no_array_outlives_a_call() -> None:
    a = np.zeros(16)
    alive = weakref.ref(a)
    _threads.run(lambda a, start, stop: None, 1000, 1 << 30, a)
    del a
    gc.collect()
    assert alive() is None


def test_no_array_outlives_the_call(runner: str) -> None:
    _assert_no_array_outlives_a_call()


def test_a_finalizing_interpreter_runs_the_call_on_the_calling_thread(
        runner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread may be started or joined then (a thread of OpenMP's that took the GIL would be
    ended on the spot, and the call would wait for it for ever)."""
    ran: list[tuple[str, int, int]] = []
    monkeypatch.setattr(sys, "is_finalizing", lambda: True)
    _threads.run(_recording_kernel(ran), 1000, 1 << 30)
    assert ran == [(threading.main_thread().name, 0, 1000)]


def test_torch_team_runs_the_chunks_on_torchs_openmp_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a torch operator, the threads besides the caller are torch's OpenMP workers
    (threads Python did not start), not our pool's."""
    _require_torch_team()
    monkeypatch.setattr(_threads._calls, "on_torch_team", 1)
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
    parent = """
import torch
torch.set_num_threads(2)
x = torch.ones((256, 1024))
sk.softmax(x)  # a torch operator: on torch's team
assert _threads.torch_openmp_team() is not None
"""
    # The child sums with NumPy: torch's own parallel ops hang there (the parent ran its team).
    child = "(_threads.torch_openmp_team() is None) * sk.softmax(x).numpy().sum()"
    assert _sum_in_a_forked_child(parent, child) == pytest.approx(256.0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_numpy_calls_leave_torchs_team_unstarted_for_forked_children() -> None:
    """Regression: a call on NumPy arrays in a process that had imported torch started torch's
    OpenMP team, and a child forked afterwards hung in its first torch op. Only torch's
    operators run on that team."""
    pytest.importorskip("torch")
    parent = """
import torch
torch.set_num_threads(2)
sk.softmax(np.ones((256, 1024), np.float32), engine="numba")
"""
    child = "torch.softmax(torch.ones(2048, 1024), -1).sum()"
    assert _sum_in_a_forked_child(parent, child) == pytest.approx(2048.0)


def test_only_torchs_operators_run_on_its_team(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    _require_torch_team()
    import softmaxkit as sk

    on_team: list[int] = []
    team_run = _threads.OpenMPTeam.run

    def recorded(self: Any, claims: Any, threads: int) -> None:
        on_team.append(threads)
        team_run(self, claims, threads)

    monkeypatch.setattr(_threads.OpenMPTeam, "run", recorded)
    before = sknumba.get_num_threads()
    sknumba.set_num_threads(2)
    try:
        x = np.ones((256, 1024), np.float32)
        sk.softmax(x, engine="numba")
        assert not on_team
        sk.softmax(torch.from_numpy(x))
        assert on_team == [2]
    finally:
        sknumba.set_num_threads(before)


def test_no_team_where_the_runtime_cannot_be_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: without ``os.RTLD_NOLOAD`` (Windows) every parallel call raised
    AttributeError once torch was imported. There, and wherever the library is not found, the
    pool runs the calls."""
    torch = pytest.importorskip("torch")
    monkeypatch.delattr(os, "RTLD_NOLOAD", raising=False)
    assert _threads._torch_team(torch) is None
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__file__", "/nonexistent/torch/__init__.py")
    assert _threads._torch_team(torch) is None


_INTERRUPT_AT_EVERY_CHECK = """
import dis, faulthandler, sys, threading, time
import softmaxkit.numba as engine
from softmaxkit.numba import _threads
engine.set_num_threads(2)
if sys.argv[1] == "torch-team":
    import torch
    assert _threads.torch_openmp_team() is not None
    _threads._calls.on_torch_team = 1
ENGINE = (_threads.__file__, threading.__file__)
checks = {}
def signal_checks(code):
    # Where CPython 3.11 runs a pending signal's handler: after a CALL, at RESUME and
    # JUMP_BACKWARD. A Ctrl-C is raised at one of these, in the main thread.
    if code not in checks:
        offsets, after_call = set(), False
        for instruction in dis.get_instructions(code):
            if after_call or instruction.opname in ("RESUME", "JUMP_BACKWARD"):
                offsets.add(instruction.offset)
            after_call = instruction.opname == "CALL"
        checks[code] = offsets
    return checks[code]
def kernel(start, stop):  # the worker's chunks outlast the caller's: the caller waits for them
    time.sleep(0.0002 if threading.current_thread() is threading.main_thread() else 0.0003)
def interrupted_at(target):
    seen = 0
    def tracer(frame, event, arg):
        nonlocal seen
        if frame.f_code.co_filename in ENGINE:
            frame.f_trace_opcodes = True
            if event == "opcode" and frame.f_lasti in signal_checks(frame.f_code):
                if seen == target:
                    sys.settrace(None)
                    raise KeyboardInterrupt
                seen += 1
        return tracer
    sys.settrace(tracer)
    try:
        _threads.run(kernel, 1000, 1 << 30)
        return "returned", seen
    except KeyboardInterrupt:
        return "interrupted", seen
    except BaseException as other:
        return f"{type(other).__name__}: {other}", seen
    finally:
        sys.settrace(None)
_threads.run(kernel, 1000, 1 << 30)  # the threads started (Thread.start is the stdlib's own code)
outcomes = []
while True:
    faulthandler.dump_traceback_later(60, exit=True)  # a hang fails the test, with the stacks
    outcome, seen = interrupted_at(len(outcomes))
    _threads.run(kernel, 1000, 1 << 30)  # and the next call runs
    if outcome == "returned" and seen <= len(outcomes):
        break  # every check point of a call has had its Ctrl-C
    outcomes.append(outcome)
faulthandler.cancel_dump_traceback_later()
print(outcomes)
"""


def test_a_ctrl_c_at_any_point_reaches_the_caller(runner: str) -> None:
    """A Ctrl-C raised at each point of a call where the main thread can take one, in turn:
    each reaches the caller as KeyboardInterrupt, and the next call runs.

    Regression: one landing inside ``threading.Condition``'s Python ``__enter__`` after its
    acquire left the lock held and the other threads blocked for ever (the caller waiting for
    them, deaf to more Ctrl-Cs); one inside ``Condition.wait`` after its release made the call
    raise RuntimeError; one in ``ThreadPoolExecutor.submit`` hung every later call; and on
    torch's team one in the ctypes callback was printed and dropped, or left a chunk counted
    as running for ever."""
    done = subprocess.run([sys.executable, "-c", _INTERRUPT_AT_EVERY_CHECK, runner], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    outcomes = ast.literal_eval(done.stdout)
    assert len(outcomes) > 20 and set(outcomes) == {"interrupted"}, outcomes
    assert "Exception ignored" not in done.stderr
