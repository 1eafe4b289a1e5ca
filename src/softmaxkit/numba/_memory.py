"""Memory for large results: a freed result's pages serve the next result of the same size.

A fresh array's pages are zeroed by Linux when they are first written (a page fault each, 2 MiB
at a time for NumPy's huge pages): a 64 MiB float32 softmax spent 4.7 ms on it, more than a
whole copy of the array (3.3 ms; BENCHMARKS.md, "The copy-rate goal and fresh results"). glibc's
``malloc`` keeps freed blocks for reuse only below its ``mmap`` threshold, which stops growing
at 32 MiB; larger blocks go back to Linux when freed, so every call in a loop pays again.

:func:`empty` hands out results of :data:`MIN_BYTES` or more in blocks that come back here when
the last array using them is gone (the holder's ``__del__``; the pages stay mapped), and reuses a
kept block of exactly the size asked for, as PyTorch's caching allocator does on a GPU. At most
:data:`KEEP` blocks of at most :data:`MAX_BYTES` each are kept; :func:`release` lets them go.
The contents of a reused block are garbage, as ``np.empty``'s are.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from typing import Any

import numpy as np

MIN_BYTES = 32 << 20
"""Smaller results come from ``np.empty``: glibc already reuses their freed blocks."""

MAX_BYTES = 256 << 20
"""Larger freed blocks go back to Linux: holding them would hold too much memory."""

KEEP = 2
"""Freed blocks kept at most (the oldest is let go first)."""

_lock = threading.RLock()  # a holder's __del__ may run inside a locked section (a collection)
_kept: deque[np.ndarray] = deque()


class _Holder:
    """Owner of a block while arrays use it: NumPy keeps it as their ``base``."""

    __slots__ = ("__array_interface__", "block")
    __array_interface__: dict[str, Any]
    block: np.ndarray

    def __del__(self) -> None:
        try:
            _keep(self.block)
        except Exception:  # at interpreter shutdown the module may already be torn down
            pass


def _keep(block: np.ndarray) -> None:
    if block.nbytes > MAX_BYTES:
        return
    with _lock:
        _kept.append(block)
        while len(_kept) > KEEP:
            _kept.popleft()


def _take(nbytes: int) -> np.ndarray | None:
    with _lock:
        for i, block in enumerate(_kept):
            if block.nbytes == nbytes:
                del _kept[i]  # by position: remove() would compare arrays with ==
                return block
    return None


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new C-contiguous array, as ``np.empty(shape, dtype)``, in kept memory when it is large."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    block = _take(nbytes)
    if block is None:
        block = np.empty(nbytes, np.uint8)  # NumPy asks Linux for huge pages at this size
    holder = _Holder()
    holder.block = block
    holder.__array_interface__ = {"data": (block.ctypes.data, False), "shape": (nbytes,), "typestr": "|u1",
                                  "version": 3}
    return np.asarray(holder).view(dtype).reshape(shape)


def release() -> None:
    """Let go of the memory kept for later results (``softmaxkit.numba.release_memory``).

    Blocks still used by live arrays are not affected; they are kept again when those arrays
    are freed.
    """
    with _lock:
        _kept.clear()


def _forget_lock() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lock)
