"""Kernels on memory given by its address: the small calls on CPU tensors.

A softmax of a 64 x 10 float32 tensor computes for about 1 µs, while viewing the tensors as
NumPy arrays (the array interface, twice) and allocating the result through NumPy cost 3.5 µs
more (BENCHMARKS.md, "Session 11 (lead): small tensors by address"). These kernels take the
tensors' data pointers and shapes as integers instead, and view the memory as arrays inside
the compiled code (``numba.carray``). They run the same inlined bodies as the array kernels
(:func:`~softmaxkit.numba._short_rows.short_rows_softmax` & co.), so the bits are the same,
on the calling thread: only calls too small for the threads take them.

The caller vouches for the memory: C-contiguous ``(rows, n)`` of the dtype of ``like``
(labels: ``rows`` int64), alive for the call, outputs not overlapping the inputs unless
``out`` is ``x`` itself.
"""

from __future__ import annotations

import numpy as np
from numba import carray, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

from softmaxkit.numba._exp import EXACT_FLAGS
from softmaxkit.numba._grad import log_softmax_vjp_range, softmax_vjp_range
from softmaxkit.numba._jit import kernel
from softmaxkit.numba._loss import rows_cross_entropy_range, short_rows_cross_entropy
from softmaxkit.numba._rows import SPLIT, rows_softmax_range
from softmaxkit.numba._short_rows import SHORT_ROWS, short_rows_softmax, tasks

LONGEST_ROW = SPLIT
"""Rows up to this length: longer ones are cut into blocks by the threaded long-row kernels."""


@intrinsic
def _void_pointer(typingctx, address):
    """The integer ``address`` as a ``void *`` (what ``carray`` views)."""

    def codegen(context, builder, signature, arguments):
        return builder.inttoptr(arguments[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


def rows_at(address, rows, n, like):
    """The C-contiguous ``(rows, n)`` array of ``like``'s dtype at ``address`` (jitted code only)."""
    raise NotImplementedError("rows_at is called from jitted code only")


@overload(rows_at, jit_options={"fastmath": EXACT_FLAGS})
def _rows_at(address, rows, n, like):
    dtype = as_dtype(like)

    def view(address, rows, n, like):
        return carray(_void_pointer(address), (rows, n), dtype)

    return view


@kernel(fastmath=EXACT_FLAGS)
def softmax_at(x_address, out_address, rows, n, inv_t, log):
    """softmax (or log_softmax) over the rows of ``x`` into ``out`` (rows of at most
    :data:`LONGEST_ROW`), in ``inv_t``'s dtype."""
    x = rows_at(x_address, rows, n, inv_t)
    out = rows_at(out_address, rows, n, inv_t)
    if n <= SHORT_ROWS:
        short_rows_softmax(x, out, inv_t, log, 0, tasks(rows))
    else:
        rows_softmax_range(x, out, inv_t, log, 0, rows)


@kernel(fastmath=EXACT_FLAGS)
def vjp_at(first_address, g_address, out_address, rows, n, like, log):
    """The softmax vjp (``first`` = softmax) or the log_softmax vjp (``first`` = log_softmax)
    over the rows of ``first`` and ``g`` into ``out``, in ``like``'s dtype."""
    first = rows_at(first_address, rows, n, like)
    g = rows_at(g_address, rows, n, like)
    out = rows_at(out_address, rows, n, like)
    if log:
        log_softmax_vjp_range(first, g, out, 0, rows)
    else:
        softmax_vjp_range(first, g, out, 0, rows)


@kernel(fastmath=EXACT_FLAGS)
def labels_at(labels_address, rows, n, ignore_index, ignoring):
    """``(counted, bad)``: how many of the ``rows`` int64 labels are counted (all, or those
    other than ``ignore_index`` when ``ignoring``), and the row of the first counted label
    outside ``[0, n)`` (-1 if none; counting stops there)."""
    labels = carray(_void_pointer(labels_address), rows, np.int64)
    counted = 0
    for r in range(rows):
        if ignoring and labels[r] == ignore_index:
            continue
        if not 0 <= labels[r] < n:
            return counted, r
        counted += 1
    return counted, -1


@kernel(fastmath=EXACT_FLAGS)
def cross_entropy_at(x_address, grad_address, labels_address, losses, rows, n, ignore_index, ignoring,
                     smoothing, scale, want_grad, like):
    """Cross-entropy of logits ``x`` (classes along the rows) and int64 labels, no class
    weights, each row's float64 loss into ``losses`` and, when ``want_grad``, its gradient times
    ``scale`` into ``grad``. The labels are in range (:func:`labels_at`)."""
    x = rows_at(x_address, rows, n, like)
    grad = rows_at(grad_address, rows, n if want_grad else 0, like)
    labels = carray(_void_pointer(labels_address), rows, np.int64)
    counted = np.empty(rows, dtype=np.bool_)
    for r in range(rows):
        counted[r] = not (ignoring and labels[r] == ignore_index)
    w = np.ones(n, dtype=x.dtype)
    options = (labels, counted, w, smoothing, scale, want_grad)
    if n <= SHORT_ROWS:
        short_rows_cross_entropy(x, grad, losses, *options, 0, tasks(rows))
    else:
        rows_cross_entropy_range(x, grad, losses, *options, 0, rows)
