"""The engine's threads: chunks of work items claimed by a team of threads, no Numba threading layer.

Every kernel is compiled with ``nogil=True`` and takes a range ``start, stop`` of its work
items (rows, tiles of rows, column chunks, blocks of a long row). :func:`run` cuts the items
into contiguous chunks, a few per thread; the calling thread and the team's other threads each
claim the next unclaimed chunk until none is left. Claimed rather than dealt out in equal
shares: a thread that starts late (its virtual CPU woken from idle, say) then does less,
instead of the caller waiting for the whole share it would have been dealt.

Which threads: for the CPU implementations of the torch operators (:func:`on_torch_team`),
torch's own OpenMP team (:class:`OpenMPTeam`); for everything else, a small pool of our own.
torch's OpenMP workers spin for their next task for milliseconds after each op (GNU OpenMP's
default wait policy), on the cores our own pool would use: a call right after a torch op ran
its two threads on the one core the spinner left (float16 log_softmax of 8,192 x 1,024, calls
taking turns with torch's: 2.2-2.6 ms on our pool, 1.15 ms back to back). On torch's team
the spinning worker takes the call's chunks at once (1.4-1.6 ms; BENCHMARKS.md, session 10).
Only torch's operators use it: a process that never runs torch's parallel ops never starts its
team, which does not survive a fork. The price is OpenMP's join: the call waits for every
member to arrive, even one that finds nothing left, where the pool's caller does not (slower
when other processes hold the cores, and after an idle spell on a machine whose idle virtual
CPUs are slow to wake).

Three reasons for threads of our own rather than Numba's ``parallel=True``, measured or
reported:

- compile time: ``parallel=True`` (parfors) lowering was most of a cold compile (the first
  8,192 x 1,024 float32 softmax: 6.6 s of CPU with parfors, 3.1 s without; BENCHMARKS.md);
- thread safety: Numba's ``workqueue`` layer (the one it picks without TBB or OpenMP) aborts
  the process when two threads enter a parallel region at once; Python threads have no such
  limit, and OpenMP gives each calling thread a team of its own;
- determinism: a result never depends on the cut or on which thread ran a chunk, because each
  item is computed whole by one thread in a fixed order (a long row's blocks are a fixed
  ``SPLIT``, merged in order).

After ``fork`` the child builds a pool of its own (the parent's threads do not exist there) and
never uses torch's team: GNU OpenMP's team does not survive a fork (torch's own ops hang there).
"""

from __future__ import annotations

import ctypes
import functools
import numbers
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

PARALLEL_MIN_SIZE = 1 << 17
"""Below this many elements the kernels run on the calling thread: waking the pool's threads
costs more than it saves."""


def _default_threads() -> int:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    usable = max(1, usable)
    try:  # the variable numba users already set, read as numba reads it (" 3" is 3)
        limit = int(os.environ.get("NUMBA_NUM_THREADS", ""))
    except ValueError:  # unset, or not a number (numba warns about that itself)
        return usable
    return min(usable, limit) if limit > 0 else usable


_lock = threading.Lock()
_threads = _default_threads()
_pool: _Pool | None = None
_team: OpenMPTeam | None = None
_team_looked_up = False


def get_num_threads() -> int:
    """Threads the numba engine uses for one call (default: the CPUs this process may use,
    at most ``NUMBA_NUM_THREADS`` when that is set)."""
    return _threads


def set_num_threads(threads: int) -> None:
    """Use ``threads`` threads per call from now on (any count gives bitwise the same results)."""
    global _threads, _pool
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    with _lock:
        _threads = int(threads)  # NumPy integers too (os.cpu_count() // 2 from an array, say)
        if _pool is not None:
            # Its threads end; a call in another thread may still hold it and submit to it:
            # that call's caller then claims every chunk itself.
            _pool.retire()
        _pool = None


class _Pool:
    """``size`` daemon threads, started as tasks come, each taking tasks from one queue.

    A ``queue.SimpleQueue``: its ``put`` and ``get`` are single C calls, so a Ctrl-C cannot
    land inside them. ``ThreadPoolExecutor.submit`` runs Python code under a semaphore's lock:
    a Ctrl-C landing there left the lock held, and every later call hung.
    """

    def __init__(self, size: int) -> None:
        self._tasks: queue.SimpleQueue[Callable[[], Any] | None] = queue.SimpleQueue()
        self._size = size
        self._started = 0
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], Any]) -> None:
        """Run ``task`` on one of the threads (RuntimeError if none could be started)."""
        with self._lock:
            if self._started < self._size:  # a thread more for each task until there are size
                threading.Thread(target=self._work, name=f"softmaxkit-{self._started}", daemon=True).start()
                self._started += 1
        self._tasks.put(task)

    def retire(self) -> None:
        """Let the threads end once they are idle."""
        for _ in range(self._size):
            self._tasks.put(None)

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            task()


def _get_pool() -> _Pool:
    global _pool
    with _lock:
        if _pool is None:
            _pool = _Pool(max(1, _threads - 1))
        return _pool


def _forget_pool() -> None:
    global _pool, _lock, _team, _team_looked_up
    _pool, _lock = None, threading.Lock()
    _team, _team_looked_up = None, True  # torch's team is not used in a forked child (above)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def parts_for(items: int, elements: int) -> int:
    """How many ranges ``items`` work items holding ``elements`` array elements are cut into."""
    if elements < PARALLEL_MIN_SIZE:
        return 1
    return max(1, min(_threads, items))


MIN_CHUNK_ELEMENTS = PARALLEL_MIN_SIZE // 2
"""No chunk is cut smaller than this many elements (about 50 µs of float32 work), but to give
every thread one."""


def chunk_bounds(items: int, elements: int, parts: int) -> list[int]:
    """Where the chunks of a call on ``parts`` threads begin and end: each chunk is a
    ``1 / (2 * parts)`` share of the items not yet cut (OpenMP's guided schedule), and none is
    smaller than :data:`MIN_CHUNK_ELEMENTS` elements' worth (the kernel's call costs a few µs).

    Large chunks first keep the calls few; small ones last let the threads end together. With
    four equal chunks per thread, the calling thread, slower by a third in that call, ended
    0.3 ms after the other in a 1.5 ms float16 log_softmax of 8,192 x 1,024 (BENCHMARKS.md,
    session 11). Results do not depend on the cut: each item is computed alone.
    """
    smallest = max(1, min(-(-items * MIN_CHUNK_ELEMENTS // elements), items // parts))
    bounds = [0]
    while bounds[-1] < items:
        left = items - bounds[-1]
        bounds.append(bounds[-1] + min(left, max(smallest, -(-left // (2 * parts)))))
    return bounds


def run(kernel: Callable[..., Any], items: int, elements: int, *args: Any) -> None:
    """``kernel(*args, start, stop)`` over ``range(items)``, in contiguous chunks that the calling
    thread and the team's other threads claim one at a time until all are done."""
    parts = parts_for(items, elements)
    if parts == 1 or sys.is_finalizing():  # finalizing: no thread may be started or joined
        if items > 0:
            kernel(*args, 0, items)
        return
    claims = _Claims(kernel, args, chunk_bounds(items, elements, parts))
    team = torch_openmp_team() if _calls.on_torch_team else None
    if team is not None:
        team.run(claims, parts)
    else:
        _run_on_pool(claims, parts)
    if claims.error is not None:
        raise claims.error  # a chunk's exception, in whichever thread it was raised


def _run_on_pool(claims: _Claims, parts: int) -> None:
    """The chunks run by the calling thread and ``parts - 1`` of the pool's workers."""
    pool = _get_pool()
    try:
        # Submitted inside the try: a submit that fails (no thread can be started, in a
        # container at its process limit) stops the workers already started from claiming more,
        # and the finally waits for the chunks they are running.
        for _ in range(parts - 1):
            pool.submit(functools.partial(_claim_and_run, claims))
        claims.run_callers_share()
    finally:
        # A worker that has not claimed a chunk yet is not waited for (its core may still be
        # held by another library's spinning threads for milliseconds): it finds none left and
        # ends without touching the caller's arrays, which the call no longer holds for it.
        claims.end()


def _claim_and_run(claims: _Claims) -> None:
    """A worker's part of a call: chunks claimed until none is left, each counted while it runs."""
    while (chunk := claims.claim(counted=True)) is not None:
        error = None
        try:
            claims.kernel(*claims.args, *chunk)
        except BaseException as caught:
            error = caught
        finally:
            claims.finish(error)  # an error stops the claiming: the call fails
        if error is not None:
            return


class _Claims:
    """The chunks of one call: the next one to claim, how many the workers are running, the
    first failure.

    The call returns once every chunk has been run, not once every worker has come: a worker
    woken late (measured right after a torch op: 1.1 ms after the caller had done every chunk
    itself) finds nothing left to claim and ends without touching the caller's arrays. Those
    are dropped from here when the call ends, so that a queued worker does not keep them alive.
    """

    def __init__(self, kernel: Callable[..., Any], args: tuple[Any, ...], bounds: list[int]) -> None:
        self.kernel: Any = kernel
        self.args: tuple[Any, ...] = args
        self.bounds = bounds
        self.next = 0
        self.running = 0
        self.stopped = False
        self.error: BaseException | None = None
        # Only C-level lock operations, so that a Ctrl-C (it lands after a call returns, in the
        # main thread) cannot leave a lock held: ``with self.lock`` is the lock's own enter and
        # exit, where Condition's Python __enter__ could be cut after its acquire (the other
        # threads then blocked for ever), and Condition.wait after its release.
        self.lock = threading.Lock()
        self.idle = threading.Lock()  # held by a caller waiting for the running chunks
        self.waiting = False

    def claim(self, counted: bool) -> tuple[int, int] | None:
        """The next chunk's ``(start, stop)``, or None when the call is done or failing."""
        with self.lock:
            if self.stopped or self.next == len(self.bounds) - 1:
                return None
            self.next += 1
            self.running += counted
            return self.bounds[self.next - 1], self.bounds[self.next]

    def run_callers_share(self) -> None:
        """The calling thread's part: chunks claimed until none is left. They need no count:
        the caller runs them before it waits, and an exception (a Ctrl-C, say) leaves them
        here, whatever line it lands on."""
        while (chunk := self.claim(counted=False)) is not None:
            self.kernel(*self.args, *chunk)

    def finish(self, error: BaseException | None) -> None:
        with self.lock:
            self.running -= 1
            if error is not None and self.error is None:
                self.error, self.stopped = error, True
            if self.running == 0 and self.waiting:
                self.waiting = False
                self.idle.release()  # the caller's wait ends

    def stop(self, error: BaseException) -> None:
        """Fail the call with ``error``: no more chunks are claimed."""
        with self.lock:
            if self.error is None:
                self.error = error
            self.stopped = True

    def end(self, join: Callable[[], None] | None = None) -> None:
        """Stop the claiming, wait until no worker runs a chunk, run ``join`` (the team's end),
        and let go of the call's arrays. Even through a Ctrl-C: the chunks write into the
        caller's arrays, and none may go on writing after the call has returned or raised. An
        interruption is raised once the running chunks are done (``join`` must then be safe to
        run again)."""
        interruption: BaseException | None = None
        while True:
            try:
                with self.lock:
                    self.stopped = True  # first: a Ctrl-C below must not let more be claimed
                    running = self.running
                    if running and not self.waiting:
                        self.idle.acquire(blocking=False)  # free here: the last finish frees it
                        self.waiting = True
                if running:
                    self.idle.acquire()  # until the last running chunk's finish releases it
                    continue  # (checked again under the lock: an interruption may have come)
                if join is not None:
                    join()
                self.kernel, self.args = None, ()
                break
            except BaseException as caught:
                interruption = caught
        if interruption is not None:
            raise interruption


class OpenMPTeam:
    """An OpenMP runtime's team of threads running a call's chunks.

    ``GOMP_parallel_start`` (GNU OpenMP's entry point, which LLVM's and Intel's runtimes export
    too) sets the team's other threads running :func:`_team_member` through a ctypes callback
    and returns at once; the calling thread then claims chunks in its own Python code, as with
    the pool, so that a Ctrl-C (raised in the main thread only) lands there as usual and never
    in a callback, where ctypes would print it and drop it. ``GOMP_parallel_end`` waits for the
    other threads, so no chunk runs after the call. A member takes the GIL only to claim a chunk:
    the kernels release it.
    """

    MEMBER = ctypes.CFUNCTYPE(None, ctypes.py_object)

    def __init__(self, runtime: Any) -> None:
        self._start = runtime.GOMP_parallel_start
        self._start.argtypes = [self.MEMBER, ctypes.py_object, ctypes.c_uint]
        self._start.restype = None
        self._end = runtime.GOMP_parallel_end
        self._end.argtypes, self._end.restype = [], None
        self._level = runtime.omp_get_level  # how many parallel regions this thread is inside
        self._level.argtypes, self._level.restype = [], ctypes.c_int
        self._member = self.MEMBER(_team_member)  # held here: the runtime calls it from its threads

    def run(self, claims: _Claims, threads: int) -> None:
        outside = self._level()

        def join() -> None:
            # Only if the region was opened, and once: a Ctrl-C may land between any two lines.
            if self._level() > outside:
                self._end()

        try:
            self._start(self._member, claims, threads)
            claims.run_callers_share()
        finally:
            claims.end(join)


def _team_member(claims: _Claims) -> None:
    """Another thread's part of a call on the team (never the main thread: no Ctrl-C here)."""
    try:
        _claim_and_run(claims)
    except BaseException as caught:  # outside a chunk (the chunks' own are kept by _claim_and_run)
        claims.stop(caught)


def _torch_team(torch: Any) -> OpenMPTeam | None:
    """torch's OpenMP team: the runtime's functions looked up through ``libtorch_cpu`` (so in
    the runtime torch itself links, whichever that is), where torch's CPU ops run on OpenMP.
    None wherever that cannot be done as on Linux (no ``RTLD_NOLOAD`` on Windows, another
    library name on macOS, a runtime without GNU's interface): the pool then."""
    no_load = getattr(os, "RTLD_NOLOAD", None)
    if no_load is None or "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    library = os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")
    try:
        loaded = ctypes.CDLL(library, mode=no_load)  # never a second copy
        return OpenMPTeam(loaded)  # its symbols looked up in torch's own dependencies
    except (OSError, AttributeError):
        return None


def torch_openmp_team() -> OpenMPTeam | None:
    """torch's OpenMP team once torch is imported, in the process that imported it (looked up
    once); None before that, without OpenMP, and in a forked child."""
    global _team, _team_looked_up
    if _team_looked_up or "torch" not in sys.modules:
        return _team
    with _lock:
        if not _team_looked_up:
            torch = sys.modules["torch"]
            if not hasattr(torch, "__config__"):  # torch still being imported by another thread
                return None
            _team, _team_looked_up = _torch_team(torch), True
    return _team


class _Calls(threading.local):
    on_torch_team = 0
    """How many :func:`on_torch_team` functions this thread is inside."""


_calls = _Calls()

_Function = TypeVar("_Function", bound=Callable[..., Any])


def on_torch_team(compute: _Function) -> _Function:
    """``compute`` with the parallel calls it makes run on torch's OpenMP team (the CPU
    implementations of the torch operators): only there, where torch's own ops run too, so that
    a process that never runs torch's parallel ops never starts its team (GNU OpenMP's team
    does not survive a fork, and a forked child's torch ops would then hang)."""

    @functools.wraps(compute)
    def computed(*args: Any, **kwargs: Any) -> Any:
        _calls.on_torch_team += 1
        try:
            return compute(*args, **kwargs)
        finally:
            _calls.on_torch_team -= 1

    return cast(_Function, computed)
