"""The numba engine's compile driver: one specialisation per kernel and dtype, ahead-of-use
compiling (``softmaxkit compile``), notices, no writable cache, its thread pool (chunks claimed
by the caller and the workers)."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

numba = pytest.importorskip("numba")
ml_dtypes = pytest.importorskip("ml_dtypes")

import softmaxkit as sk  # noqa: E402
from softmaxkit import numba as sknumba  # noqa: E402
from softmaxkit.numba import _compile, _jit, _rows, _threads  # noqa: E402

DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]


def _every_kind_of_call(dtype: object) -> None:
    """Calls as users make them: layouts, read-only and strided inputs, out=, in place,
    masks, temperature, every function with a kernel."""
    rng = np.random.default_rng(0)
    for shape, axis in [((40, 12), -1), ((40, 300), -1), ((3, _rows.SPLIT + 5), -1), ((300, 40), 0),
                        ((6, 7, 50), 1), ((6, 7, 50), (1, 2))]:
        x = rng.standard_normal(shape).astype(dtype)
        frozen = x.copy()
        frozen.flags.writeable = False
        for a in (x, frozen, x[::-1]):
            sk.softmax(a, axis=axis, engine="numba")
            sk.log_softmax(a, axis=axis, temperature=0.5, engine="numba")
            sk.logsumexp(a, axis=axis, engine="numba")
            sk.softmax(a, axis=axis, where=a > 0, engine="numba")
        sk.softmax(x, axis=axis, out=x.copy(), engine="numba")
        sk.softmax(x.copy(), axis=axis, out=None, engine="numba")
        y = x.copy()
        sk.log_softmax(y, axis=axis, out=y, engine="numba")
    for n in (12, 300):
        logits = rng.standard_normal((50, n)).astype(dtype)
        labels = rng.integers(0, n, 50)
        sk.cross_entropy(logits, labels, return_grad=True, engine="numba")
        sk.cross_entropy(logits, labels, weight=np.ones(n), ignore_index=1, label_smoothing=0.1,
                         reduction="none", engine="numba")
        sk.cross_entropy(np.ascontiguousarray(logits.T), labels, axis=0, return_grad=True, engine="numba")
        s = sk.softmax(logits, engine="numba")
        sk.softmax_vjp(s, s, engine="numba")
        sk.log_softmax_vjp(np.log(s), s, engine="numba")
        sk.softmax_vjp(s, s, axis=0, engine="numba")  # column kernels
        sk.log_softmax_vjp(np.log(s), s.T.copy().T, axis=0, engine="numba")  # g copied into s's layout


def test_compile_all_covers_every_kernel_with_one_specialisation_per_dtype() -> None:
    """After compile_all, no call compiles anything new: every kernel holds exactly the
    specialisations compile_all made (read-only and writeable inputs share one)."""
    sknumba.compile_all()
    for dtype in DTYPES:
        _every_kind_of_call(dtype)
    for kernel in _compile.kernels():
        signatures = kernel.signatures
        assert len(signatures) == _compile.specialisations(kernel), (kernel.py_func.__name__, signatures)


def test_compile_all_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="families"):
        sknumba.compile_all(["softmaxx"])
    with pytest.raises(ValueError, match="dtypes"):
        sknumba.compile_all(["softmax"], ["int8"])
    with pytest.raises(ValueError, match="jobs"):
        sknumba.compile_all(["softmax"], ["float32"], jobs=0)


def test_compile_notice_once(caplog: pytest.LogCaptureFixture) -> None:
    """The first kernel compile of a process is announced at INFO, later ones at DEBUG only;
    compiles of jitted code other than the engine's kernels are not announced."""
    from numba.core import event

    notice = _jit._CompileNotice()
    kernel = _rows.softmax_rows
    start = event.Event("numba:compile", event.EventStatus.START,
                        data={"dispatcher": kernel, "args": (numba.typeof(np.zeros((2, 2), np.float32)),)})
    other = event.Event("numba:compile", event.EventStatus.START,
                        data={"dispatcher": numba.njit(lambda v: v), "args": ()})
    with caplog.at_level(logging.DEBUG, logger="softmaxkit.numba"):
        notice.on_start(other)
        notice.on_start(start)
        notice.on_start(start)
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in records] == [logging.INFO, logging.DEBUG]
    assert "softmax_rows" in records[0][1] and "float32" in records[0][1]
    assert "softmaxkit compile" in records[0][1]


def test_no_writable_cache_compiles_without_one() -> None:
    """Regression (issue 13.7): with no writable cache directory anywhere Numba looks, the
    first large call raised ``RuntimeError: cannot cache function 'exp32'``. Now the kernels
    compile without a cache, one warning says so, and ``softmaxkit info`` tells."""
    code = """
import numba.core.caching as caching, numpy as np
def read_only(self):
    raise PermissionError(13, "Read-only file system")
caching._CacheLocator.ensure_cache_path = read_only
import softmaxkit as sk
from softmaxkit.cli import info
x = np.random.default_rng(0).standard_normal((64, 128)).astype(np.float64)
np.testing.assert_allclose(sk.logsumexp(x, axis=1, engine="numba"), sk.logsumexp(x, axis=1, engine="generic"))
sk.logsumexp(x, axis=1, engine="numba")
print(info.numba_cache_line())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("no writable cache directory") == 1, done.stderr
    assert "NUMBA_CACHE_DIR" in done.stderr
    assert "no writable cache directory" in done.stdout


@contextlib.contextmanager
def _doubling_kernel_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A module of one kernel, ``twice(x, start, stop)``, cached in ``tmp_path/__pycache__``:
    ``importlib.reload`` of it is a new process as far as the cache is concerned."""
    (tmp_path / "tiny_kernel.py").write_text(
        "from softmaxkit.numba._jit import kernel\n\n\n"
        "@kernel()\ndef twice(x, start, stop):\n    for i in range(start, stop):\n        x[i] *= 2.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield importlib.import_module("tiny_kernel")
    finally:
        sys.modules.pop("tiny_kernel", None)


def test_unreadable_cache_entry_is_compiled_again(tmp_path, monkeypatch, caplog) -> None:
    """Regression: a corrupt or truncated cache file failed every call of its kernel with
    pickle's UnpicklingError (Numba's loader), until the user found and deleted it. Now the
    entry is removed with a warning, the kernel compiled again and cached afresh."""
    with _doubling_kernel_module(tmp_path, monkeypatch) as module:
        x = np.ones(3)
        module.twice(x, 0, 3)  # compiled and cached
        index = module.twice._cache._cache_file._index_path
        with open(index, "r+b") as f:
            f.write(b"\x00garbage")
        module = importlib.reload(module)  # a new process, as far as the cache is concerned
        with caplog.at_level(logging.WARNING, logger="softmaxkit.numba"):
            module.twice(x, 0, 3)
        np.testing.assert_array_equal(x, [4.0, 4.0, 4.0])
        assert "unreadable" in caplog.text and "twice" in caplog.text
        module = importlib.reload(module)
        module.twice(x, 0, 3)
        assert sum(module.twice.stats.cache_hits.values()) == 1  # cached again, readable


@pytest.mark.skipif(not _jit.CACHE, reason="no writable cache directory: every process compiles")
def test_a_warm_process_loads_kernels_without_refreshing_numba() -> None:
    """Loading a cached kernel starts Numba's runtime only: no registry refresh (which imported
    SciPy for Numba's BLAS check, 0.2-0.3 s of the first call). The kernels loaded so, their
    allocations included (long rows, cross_entropy's gradient), give the right answers."""
    sknumba.compile_all()  # the session's compile already did: this loads
    code = """
import sys
import numpy as np, softmaxkit as sk
rng = np.random.default_rng(0)
for shape in ((300, 1000), (4, 70000)):
    for dtype in (np.float32, np.float64, np.float16):
        x = rng.standard_normal(shape).astype(dtype)
        expected = sk.softmax(x.astype(np.float64), engine="generic")
        np.testing.assert_allclose(sk.softmax(x, engine="numba").astype(np.float64), expected,
                                   rtol=1e-2, atol=1e-6)
x = rng.standard_normal((64, 10)).astype(np.float32)
loss, grad = sk.cross_entropy(x, rng.integers(0, 10, 64), return_grad=True, engine="numba")
assert np.isfinite(loss) and np.allclose(grad.sum(axis=1), 0, atol=1e-6)
print("refreshed" if "numba.np.arraymath" in sys.modules else "not refreshed")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["not", "refreshed"], done.stderr


def test_numba_internals_of_another_shape_leave_numba_its_own_load(tmp_path, monkeypatch, caplog) -> None:
    """Where Numba's private ``_load_overload`` does not take ``(signature, target_context)``, the
    kernels load through Numba's own loader: cached entries are still hits, nothing is called
    unreadable or removed."""
    from numba.core import caching

    # A Numba whose private loader takes one more argument, and whose public one passes it.
    own_private = caching.Cache._load_overload

    def public(self: Any, sig: Any, target_context: Any) -> Any:
        target_context.refresh()
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context, extra=1)

    monkeypatch.setattr(caching.Cache, "_load_overload",
                        lambda self, sig, target_context, *, extra: own_private(self, sig, target_context))
    monkeypatch.setattr(caching.Cache, "load_overload", public)
    with _doubling_kernel_module(tmp_path, monkeypatch) as module:
        x = np.ones(3)
        module.twice(x, 0, 3)  # compiled and cached
        module = importlib.reload(module)
        with caplog.at_level(logging.WARNING, logger="softmaxkit.numba"):
            module.twice(x, 0, 3)
        np.testing.assert_array_equal(x, [4.0, 4.0, 4.0])
        assert sum(module.twice.stats.cache_hits.values()) == 1
        assert "unreadable" not in caplog.text


@pytest.mark.parametrize("option", ["parallel", "forceobj"])
def test_kernels_refuse_options_their_cache_loader_does_not_serve(option: str) -> None:
    with pytest.raises(ValueError, match=option):
        _jit.kernel(**{option: True})


def test_cli_compile_and_info(tmp_path: object) -> None:
    """``softmaxkit compile`` fills an empty cache; ``softmaxkit info`` counts what is there."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "softmaxkit.cli"]
    before = subprocess.run([*command, "info"], capture_output=True, text=True, env=env, timeout=600)
    assert before.returncode == 0, before.stderr
    assert f"numba kernels: 0 of {sum(map(_compile.specialisations, _compile.kernels()))}" in before.stdout
    assert str(tmp_path) in before.stdout
    done = subprocess.run([*command, "compile", "--functions", "logsumexp", "--dtypes", "float64"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "1 of" in done.stdout and str(tmp_path) in done.stdout
    assert "compiling" not in done.stderr  # progress lines only on a terminal
    bad = subprocess.run([*command, "compile", "--jobs", "0"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert bad.returncode == 2 and "--jobs" in bad.stderr


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
def test_run_covers_every_item_once_in_chunks(items: int) -> None:
    ran: list[tuple[str, int, int]] = []
    before = sknumba.get_num_threads()
    try:
        sknumba.set_num_threads(2)
        _threads.run(_recording_kernel(ran), items, 1 << 30)
    finally:
        sknumba.set_num_threads(before)
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


def test_late_worker_leaves_its_chunks_to_the_caller() -> None:
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


def test_a_failing_chunk_stops_the_others_from_claiming_more() -> None:
    events: list[str] = []  # list.append is atomic under the GIL

    def kernel(start: int, stop: int) -> None:
        events.append("start")
        if len(events) == 1:
            events.append("failed")
            raise KeyboardInterrupt  # as Ctrl-C arriving in a thread

    before = sknumba.get_num_threads()
    try:
        sknumba.set_num_threads(2)
        with pytest.raises(KeyboardInterrupt):
            _threads.run(kernel, 1000, 1 << 30)
    finally:
        sknumba.set_num_threads(before)
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


def test_an_exception_in_one_range_reaches_the_caller() -> None:
    calls = []

    def kernel(start: int, stop: int) -> None:
        calls.append((start, stop))
        if start > 0:
            raise RuntimeError("range failed")

    before = sknumba.get_num_threads()
    sknumba.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="range failed"):
            _threads.run(kernel, 10, _threads.PARALLEL_MIN_SIZE)
    finally:
        sknumba.set_num_threads(before)
    assert sorted(calls) == [(0, 5), (5, 10)]


def test_ctrl_c_while_waiting_for_the_workers_waits_for_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a Ctrl-C that landed while the call waited for its workers left them writing
    into the caller's arrays after the call had raised."""
    import time

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


def test_a_second_ctrl_c_does_not_let_a_worker_claim_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C in the caller's own chunk, then another while it waits for the worker: the
    claiming stops at the first (the call's end sets it before it waits, so a second one
    landing anywhere cannot undo it) and no chunk starts after the call has raised."""
    import time

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


def test_a_queued_worker_does_not_keep_the_arrays_alive() -> None:
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


def test_the_call_does_not_wait_for_a_worker_that_never_came() -> None:
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


def test_no_range_outlives_a_call_whose_submit_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: when the pool could not take a range (no thread could be started), the call
    raised while the ranges already submitted went on writing into the caller's arrays."""
    import time

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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a pseudo-terminal")
def test_cli_says_once_on_a_terminal_that_it_compiles(tmp_path: object) -> None:
    """A command that compiles kernels on first use prints one status line on stderr (a
    terminal), so a pause of seconds is explained; a warm cache prints none."""
    import pty
    import threading

    path = f"{tmp_path}/logits.npy"
    np.save(path, np.random.default_rng(0).standard_normal((1000, 10)))
    env = {**os.environ, "NUMBA_CACHE_DIR": f"{tmp_path}/cache"}

    def stderr_of_apply() -> str:
        master, slave = pty.openpty()
        chunks: list[bytes] = []

        def drain() -> None:
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the terminal's other end is closed
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=drain)
        reader.start()
        command = [sys.executable, "-m", "softmaxkit.cli", "apply", path, "-o", f"{tmp_path}/p.npy"]
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=slave, env=env, timeout=600)
        os.close(slave)
        reader.join(timeout=30)
        os.close(master)
        assert done.returncode == 0
        return b"".join(chunks).decode(errors="replace")

    cold = stderr_of_apply()
    assert cold.count("compiling numba kernels") == 1, cold
    assert "softmaxkit compile" in cold
    assert "compiling" not in stderr_of_apply()
