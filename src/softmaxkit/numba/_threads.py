"""The engine's threads: chunks of work items claimed by a small pool, no Numba threading layer.

Every kernel is compiled with ``nogil=True`` and takes a range ``start, stop`` of its work
items (rows, tiles of rows, column chunks, blocks of a long row). :func:`run` cuts the items
into contiguous chunks, a few per thread; the calling thread and the pool's workers each claim
the next unclaimed chunk until none is left. Claimed rather than dealt out in equal shares: a
worker that starts late (its core still held by another library's spinning threads, or its
virtual CPU woken from idle) then does less, instead of the caller waiting for the whole share
it would have been dealt, and the call returns once every chunk is done, without waiting for a
worker that has claimed none. Measured (BENCHMARKS.md, sessions 7 and 9): that helped on a
loaded machine and costs nothing back to back; right after a torch op it cannot give back the
core that torch's OpenMP worker holds while it spins (4-8 ms after each op with libgomp's
default ``OMP_WAIT_POLICY``), which our threads share with it. Three reasons for the pool,
measured or reported:

- compile time: ``parallel=True`` (parfors) lowering was most of a cold compile (the first
  8,192 x 1,024 float32 softmax: 6.6 s of CPU with parfors, 3.1 s without; BENCHMARKS.md);
- thread safety: Numba's ``workqueue`` layer (the one it picks without TBB or OpenMP) aborts
  the process when two threads enter a parallel region at once; Python threads have no such limit;
- determinism: a result never depends on the cut or on which thread ran a chunk, because each
  item is computed whole by one thread in a fixed order (a long row's blocks are a fixed
  ``SPLIT``, merged in order).

The pool is rebuilt in a child process after ``fork`` (the parent's threads do not exist there).
"""

from __future__ import annotations

import numbers
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

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
_pool: ThreadPoolExecutor | None = None


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
        # Dropped, not shut down: a call in another thread may hold it and still submit to it.
        # Its idle threads end once the last such call lets it go (ThreadPoolExecutor's
        # workers stop when their executor is collected).
        _pool = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, _threads - 1), thread_name_prefix="softmaxkit")
        return _pool


def _forget_pool() -> None:
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def parts_for(items: int, elements: int) -> int:
    """How many ranges ``items`` work items holding ``elements`` array elements are cut into."""
    if elements < PARALLEL_MIN_SIZE:
        return 1
    return max(1, min(_threads, items))


CHUNKS_PER_THREAD = 4
"""Chunks per thread of a parallel call: enough that a late worker's share can be taken over
in pieces, few enough that the kernel's call overhead (a few µs each) stays small."""

MIN_CHUNK_ELEMENTS = PARALLEL_MIN_SIZE // 2
"""No chunk is cut smaller than this many elements (about 50 µs of float32 work)."""


def run(kernel: Callable[..., Any], items: int, elements: int, *args: Any) -> None:
    """``kernel(*args, start, stop)`` over ``range(items)``, in contiguous chunks that the calling
    thread and the pool's workers claim one at a time until all are done."""
    parts = parts_for(items, elements)
    if parts == 1:
        if items > 0:
            kernel(*args, 0, items)
        return
    chunks = max(parts, min(items, parts * CHUNKS_PER_THREAD, elements // MIN_CHUNK_ELEMENTS))
    claims = _Claims(kernel, args, [items * k // chunks for k in range(chunks + 1)])
    pool = _get_pool()
    futures: list[Future[Any]] = []
    try:
        # Submitted inside the try: a submit that fails (no thread can be started, in a
        # container at its process limit) stops the workers already started from claiming more,
        # and the finally waits for the chunks they are running.
        for _ in range(parts - 1):
            futures.append(pool.submit(_claim_and_run, claims))
        # The caller's own chunks need no count: it runs them before it waits, and an exception
        # (a Ctrl-C, say) leaves them here, whatever line it lands on.
        while (chunk := claims.claim(counted=False)) is not None:
            kernel(*args, *chunk)
    finally:
        claims.end()
        # A worker that has not claimed a chunk yet is not waited for (its core may still be
        # held by another library's spinning threads for milliseconds): it finds none left and
        # ends without touching the caller's arrays, which the call no longer holds for it.
        for future in futures:
            future.cancel()
    if claims.error is not None:
        raise claims.error  # a chunk's exception, in whichever thread it was raised


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
        # An RLock: its re-acquire inside wait() cannot be cut by a Ctrl-C, which with a plain
        # Lock could leave the lock released under a worker that holds it.
        self.changed = threading.Condition()

    def claim(self, counted: bool) -> tuple[int, int] | None:
        """The next chunk's ``(start, stop)``, or None when the call is done or failing."""
        with self.changed:
            if self.stopped or self.next == len(self.bounds) - 1:
                return None
            self.next += 1
            self.running += counted
            return self.bounds[self.next - 1], self.bounds[self.next]

    def finish(self, error: BaseException | None) -> None:
        with self.changed:
            self.running -= 1
            if error is not None and self.error is None:
                self.error, self.stopped = error, True
            if self.running == 0:
                self.changed.notify_all()

    def end(self) -> None:
        """Stop the claiming, wait until no worker runs a chunk, and let go of the call's
        arrays. Even through a Ctrl-C: the chunks write into the caller's arrays, and none may
        go on writing after the call has returned or raised. An interruption is raised once
        the running chunks are done."""
        interruption: BaseException | None = None
        while True:
            try:
                with self.changed:
                    self.stopped = True  # first: a Ctrl-C below must not let more be claimed
                    while self.running:
                        self.changed.wait()
                    self.kernel, self.args = None, ()
                break
            except BaseException as caught:
                interruption = caught
        if interruption is not None:
            raise interruption
