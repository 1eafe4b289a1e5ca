"""Fused cross-entropy with the classes on the middle axis of a C-contiguous ``(outer, n, inner)``
array: loss and gradient of every sample ``(o, j)`` without transposing anything.

As the column kernels of softmax (:mod:`._columns`) and of the vjps (:mod:`._grad_columns`):
a chunk of ``width`` contiguous columns (samples) is copied, not transposed, into a contiguous
``n x width`` tile kept in L2, and every loop runs along a row of the tile (one class of
``width`` samples: SIMD lanes across samples). The passes are those of the row kernel
(:func:`._loss.row_cross_entropy`), each sample with its own maximum and float64 sums: the
maximum while copying; ``exp(z - max)`` into a second tile, summed in blocks of ``BLOCK``
classes with Neumaier's compensation; the loss; the gradient written from the second tile.
Memory sees the logits read once and the gradient written once, in runs of ``width``.

The kernel this replaced transposed each chunk into rows of a tile and back (scattered
stores, 32 samples a chunk): 1,024 x 8,192 float32 over axis 0 took three times the row
kernel on the transposed logits (BENCHMARKS.md, "Axis-0 vjp column kernels"). Samples whose
maximum is ``+inf`` are computed by the row kernel on a copy of their column (its limit).
"""

from __future__ import annotations

import numpy as np

from softmaxkit.numba._columns import BLOCK, _add_block, _load_chunk, _sum_exp, chunk_at, reset_sums, tile_of
from softmaxkit.numba._exp import EXACT_FLAGS, exp_small, log_positive
from softmaxkit.numba._jit import helper, kernel
from softmaxkit.numba._loss import gradient_factors, row_cross_entropy, smoothing_losses
from softmaxkit.numba._sums import shifted


@helper(fastmath=EXACT_FLAGS)
def _store_exp(tile, e, shift, block, total, carry):
    """``e = exp(tile - shift)`` (per column's shift) and each column's float64 sum of it."""
    n, w = tile.shape
    one = tile.dtype.type(1.0)
    reset_sums(w, block, total, carry)
    for b in range(0, n, BLOCK):
        for i in range(b, min(b + BLOCK, n)):
            ti, ei = tile[i], e[i]
            for j in range(w):
                v = exp_small(shifted(ti[j], shift[j], one))
                ei[j] = v
                block[j] += v
        _add_block(block, total, carry)
    for j in range(w):
        total[j] += carry[j]  # the terms are at most 1 (or NaN): the sum is finite or NaN


@helper(fastmath=EXACT_FLAGS)
def _chunk_cross_entropy(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, o, j0,
                         tile, e, narrow, wide):
    # narrow: (5, width) in x's dtype; wide: (6, width) float64: scratch of the task.
    n, width = tile.shape
    inner = x.shape[2]
    t = x.dtype.type
    m, shift, block, f, sm = narrow[0, :width], narrow[1, :width], narrow[2, :width], narrow[3, :width], \
        narrow[4, :width]
    total, carry, lse, hot, smooth, weighted = wide[0, :width], wide[1, :width], wide[2, :width], \
        wide[3, :width], wide[4, :width], wide[5, :width]
    _load_chunk(x, o, j0, tile, m, shift)
    if want_grad:
        _store_exp(tile, e, shift, block, total, carry)
    else:
        _sum_exp(tile, t(1.0), shift, block, total, carry, False)
    log_positive(total, lse)
    r0 = o * inner + np.int64(j0)  # (an int64 plus a uint64 would be a float64)
    for j in range(width):
        r = r0 + j
        hot[j] = (1.0 - smoothing) * np.float64(w[labels[r]]) if counted[r] else 0.0
        smooth[j] = smoothing / n if counted[r] else 0.0
        loss = 0.0
        if hot[j] != 0.0:
            loss -= hot[j] * ((np.float64(tile[labels[r], j]) - np.float64(shift[j])) - lse[j])
        losses[r] = loss
    if smoothing != 0.0:
        smoothing_losses(tile, w, shift, lse, smooth, weighted, losses, r0, width)
    if want_grad:
        gradient_factors(hot, smooth, total, w, f, sm, width)
        sc = t(scale)
        for i in range(n):
            ei, wi = e[i], w[i]
            for j in range(width):
                grad[o, i, j0 + np.uint64(j)] = (f[j] * ei[j] - sm[j] * wi) * sc
        for j in range(width):
            r = r0 + j
            if counted[r]:
                grad[o, labels[r], j0 + np.uint64(j)] -= t(hot[j] * scale)
    for j in range(width):  # samples whose max is +inf: the row kernel knows their limit
        if m[j] == np.inf:
            r = r0 + j
            column = np.empty(n, dtype=x.dtype)
            g_column = np.empty(n if want_grad else 0, dtype=x.dtype)
            for i in range(n):
                column[i] = tile[i, j]
            label = labels[r] if counted[r] else 0
            losses[r] = row_cross_entropy(column, g_column, label, counted[r], w, smoothing, scale, want_grad)
            if want_grad:
                for i in range(n):
                    grad[o, i, j0 + np.uint64(j)] = g_column[i]


@kernel(fastmath=EXACT_FLAGS)
def cross_entropy_columns(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, width,
                          start, stop):
    """:func:`._loss.cross_entropy_rows` with the classes on axis 1 of a C-contiguous 3-d array:
    chunks ``start .. stop`` of ``width`` columns, as in ``softmax_columns``.

    Sample ``(o, j)`` is row ``o * inner + j`` of ``labels``, ``counted`` and ``losses``;
    ``grad`` has ``x``'s shape (or any shape when ``want_grad`` is false: it is not touched).
    ``labels`` of samples that are not ``counted`` are never read (they may be out of range).
    """
    n, inner = x.shape[1], x.shape[2]
    chunks = (inner + width - 1) // width
    x_scratch = np.empty(n * width, dtype=x.dtype)
    e_scratch = np.empty(n * width, dtype=x.dtype)
    narrow = np.empty((5, width), dtype=x.dtype)
    wide = np.empty((6, width), dtype=np.float64)
    for k in range(start, stop):
        o, j0, cols = chunk_at(k, chunks, width, inner)  # (w is the class weights)
        _chunk_cross_entropy(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, o,
                             np.uint64(j0), tile_of(x_scratch, n, cols), tile_of(e_scratch, n, cols),
                             narrow, wide)
