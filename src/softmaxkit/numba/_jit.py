"""How the engine is compiled: the kernel and helper decorators, the disk cache, compile notices.

Kernels (:func:`kernel`) are the functions called from Python: they release the GIL (the
pool of :mod:`._threads` runs them at once) and are cached on disk. Helpers (:func:`helper`)
are only called from jitted code and inlined into each kernel that uses them, so they get
neither a Python nor a C wrapper and no cache entry of their own: each of those costs a
compile, and the helpers are most of the functions (8,192 x 1,024 float32 softmax compiled
in 2.6 s of CPU with them, 2.1 s without; BENCHMARKS.md).

Numba compiles a kernel the first time a call needs it (seconds) and, with ``cache=True``,
writes it to a cache directory that later processes load in milliseconds. Numba picks the
first writable of: ``NUMBA_CACHE_DIR``, the ``__pycache__`` beside these sources, the user's
cache directory. When none is writable (a read-only install without a writable home, a
read-only ``NUMBA_CACHE_DIR``), ``cache=True`` makes Numba raise at import; this module finds
that out first, and the kernels are then compiled without a cache (:data:`CACHE` is False),
with one warning.

A compile of a kernel (the functions called from Python, compiled with ``nogil=True``) takes
seconds: the first one in a process is announced with one ``INFO`` record on the
``softmaxkit.numba`` logger (the command line shows it on stderr), the later ones at ``DEBUG``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Callable
from typing import Any

from numba import njit
from numba.core import event
from numba.core.runtime import rtsys

log = logging.getLogger("softmaxkit.numba")


def _probe() -> None:
    """A function of this directory: Numba places its cache as it places the kernels'."""


def _find_cache_dir() -> str | None:
    try:
        dispatcher = njit(cache=True)(_probe)
    except RuntimeError:  # Numba's "cannot cache function ...: no locator available"
        return None
    return str(getattr(getattr(dispatcher, "_cache", None), "_cache_path", "") or "") or None


CACHE_DIR = _find_cache_dir()
"""The directory the kernels are cached in, or None when no candidate is writable."""
CACHE = CACHE_DIR is not None
"""The ``cache=`` option of every kernel."""

if not CACHE:
    log.warning(
        "softmaxkit: no writable cache directory for the numba kernels (NUMBA_CACHE_DIR, the package's "
        "__pycache__ and the user cache directory are read-only or missing): each process compiles the "
        "kernels it uses, seconds per kernel. Set NUMBA_CACHE_DIR to a writable directory to keep them.")


def is_kernel(dispatcher: Any) -> bool:
    """Whether ``dispatcher`` is one of the engine's kernels (called from Python, not inlined)."""
    py_func = getattr(dispatcher, "py_func", None)
    return (getattr(py_func, "__module__", "").startswith("softmaxkit.numba.")
            and bool(getattr(dispatcher, "targetoptions", {}).get("nogil")))


class _CompileNotice(event.Listener):
    """Logs the start of a kernel's compile: the first in the process at INFO, others at DEBUG."""

    def __init__(self) -> None:
        self.announced = False

    def on_start(self, ev: event.Event) -> None:
        dispatcher = ev.data.get("dispatcher")
        if not is_kernel(dispatcher):
            return
        name = dispatcher.py_func.__name__
        dtypes = ", ".join(sorted({str(getattr(a, "dtype", "")) for a in ev.data.get("args", ())} - {""}))
        where = f"cached in {CACHE_DIR}" if CACHE else "not cached: no writable cache directory"
        if self.announced:
            log.debug("compiling numba kernel %s (%s)", name, dtypes)
            return
        self.announced = True
        log.info("softmaxkit: compiling numba kernels on first use (%s for %s; seconds each, %s; "
                 "`softmaxkit compile` compiles them all ahead of time)", name, dtypes, where)

    def on_end(self, ev: event.Event) -> None:
        pass


notice = _CompileNotice()
event.register("numba:compile", notice)


def kernel(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``njit`` for a kernel: GIL released, cached on disk where a cache directory is writable.

    Kernels run on the engine's own threads in nopython code: no ``parallel=`` nor object
    mode, whose cached results the cache's loader (:func:`_unrefreshed_load`) is not known to
    load safely without Numba's refresh."""
    if options.get("parallel") or options.get("forceobj"):
        raise ValueError("engine kernels are nopython code run on the engine's threads: "
                         "no parallel= or forceobj=")
    jit = njit(nogil=True, cache=CACHE, **options)

    def decorate(function: Callable[..., Any]) -> Any:
        dispatcher = jit(function)
        _recompile_unreadable_entries(dispatcher)
        return dispatcher

    return decorate


def _recompile_unreadable_entries(dispatcher: Any) -> None:
    """A cache entry of ``dispatcher`` that cannot be read (a truncated or corrupt file) is
    removed and compiled again, with a warning, instead of failing every call: Numba's own
    loader raises pickle's errors, and its saver then fails on the same index file.

    Reaches into Numba's cache (``_cache``, its index path): without them nothing changes.
    """
    cache: Any = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "load_overload", None)
    index = getattr(getattr(cache, "_cache_file", None), "_index_path", None)
    if load is None or index is None:
        return

    load_unrefreshed = _unrefreshed_load(cache)

    def load_overload(signature: Any, target_context: Any) -> Any:
        try:
            if load_unrefreshed is None:
                return load(signature, target_context)
            return load_unrefreshed(signature, target_context)
        except Exception as exc:  # whatever an unreadable file makes pickle or Numba raise
            log.warning("softmaxkit: the numba cache entry of %s is unreadable (%s: %s); removed %s and "
                        "compiling the kernel again", dispatcher.py_func.__name__, type(exc).__name__, exc,
                        index)
            with contextlib.suppress(OSError):
                os.remove(index)
            return None

    cache.load_overload = load_overload


def _unrefreshed_load(cache: Any) -> Callable[[Any, Any], Any] | None:
    """Numba's cache load without the target-context refresh that starts it, or None where
    Numba's internals (``_load_overload``, ``_guard_against_spurious_io_errors``) are not the
    ones this was written against: then Numba's own load serves.

    The refresh starts Numba's runtime (the allocator kernels call) and installs every typing
    and lowering registry, importing SciPy for a BLAS check on the way: 0.2-0.3 s of a warm
    process's first call (BENCHMARKS.md, session 8). A cached kernel is machine code that needs
    the runtime only. A compile still refreshes the context first (Numba's compiler does).
    Kernels are nopython code without ``parallel=`` (:func:`kernel`): the results of those two
    are the ones a refresh might matter for.
    """
    load = getattr(cache, "_load_overload", None)
    io_guard = getattr(cache, "_guard_against_spurious_io_errors", None)
    if load is None or io_guard is None:
        return None
    try:
        inspect.signature(load).bind(None, None)
        inspect.signature(io_guard).bind()
    except (TypeError, ValueError):
        return None

    def load_unrefreshed(signature: Any, target_context: Any) -> Any:
        rtsys.initialize(target_context)
        with io_guard():
            return load(signature, target_context)
        return None  # the guard swallowed a spurious I/O error: compile instead

    return load_unrefreshed


def helper(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``njit`` for a function called from jitted code only: no wrappers, no cache entry, and
    inlined by LLVM into every kernel that calls it (``forceinline``: LLVM's ``alwaysinline``).

    Inlining is what keeps results the same across processes (SPEC: determinism). Numba links
    a copy of each helper into the kernel's module, where it is optimised a second time; a
    copy left as a call is a weak symbol. The process that compiles a kernel binds that call to
    the helper's own, once-optimised code, already loaded; a process that loads the kernel from
    the cache has only the kernel's copy. The two copies of a ``reassoc`` sum added their lanes
    in another order, and softmax results differed by up to 4 ulp between the two processes.
    Inlined, the kernel's code is all its own in both. (Numba's ``inline="always"`` inlines
    earlier, into the caller's Numba IR, where the helper's fast-math flags are lost: its sums
    stopped vectorising, 8,192 x 1,024 softmax 2.3 -> 11.7 ms.)
    """
    return njit(forceinline=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, **options)


def readonly(a: Any) -> Any:
    """A read-only view of the array ``a``: kernels are compiled for read-only inputs only, so a
    writeable and a read-only input share one compiled specialisation instead of two."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view
