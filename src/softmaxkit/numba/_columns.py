"""Column kernels: softmax over the middle axis of a C-contiguous ``(outer, n, inner)`` array.

This is softmax over a non-last axis without a transposed copy of the array, and without
transposing in cache either: the inner axis is cut into chunks of ``width`` contiguous columns;
a chunk is copied (not transposed) into a contiguous ``n x width`` tile that stays in L2, and
every loop runs along a row of the tile (SIMD lanes across columns) — the three passes of the
row kernel (max, while copying; ``exp`` stored and summed; scale, while writing the result),
each column with its own maximum and float64 sum. Memory sees one read and one write, in runs
of ``width`` elements.

The sums run down each column in blocks of ``BLOCK`` rows, each block summed in the input's
dtype (as the row kernel sums its SIMD lanes) and added in float64 with Neumaier's
compensation: the error does not grow with the column's length, and the order is fixed per
column whatever the chunking or the number of threads (the bits may differ from the row
kernel's by a few ulps; both are within SPEC §2). Summing each term in float64 instead cost
0.43 ns per float32 element against 0.24. The transposing version this replaced cost five
times the row kernel on 1,024 x 8,192 float32, this one 1.4 times (BENCHMARKS.md). Columns
whose maximum is ``+inf`` are computed by the row kernel on a copy.
"""

from __future__ import annotations

import numpy as np

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small, log_positive
from softmaxkit.numba._jit import helper, kernel
from softmaxkit.numba._prefetch import prefetch_bytes
from softmaxkit.numba._rows import row_softmax
from softmaxkit.numba._sums import halves_needed, shifted

BLOCK = 8
"""Rows of a column summed plainly (in the input's dtype) before the compensated addition."""
CHUNK_BYTES = 1024 * 1024
"""Bytes of one chunk of ``x`` (``n`` rows of ``width`` columns): its tile stays in L2."""


AHEAD = 4
"""Rows of a chunk prefetched ahead of the copy into the tile."""


@helper(fastmath=EXACT_FLAGS)
def _prefetch_run(a, o, i, j0, w, write):
    """Prefetch ``a[o, i, j0:j0 + w]`` of a C-contiguous 3-d array (``write``: a literal 0 or 1).

    The runs of a chunk are a row apart (32 KiB for 8,192 float32 columns), too far for the
    hardware's prefetchers to follow: the copy of a chunk into its tile waited on memory
    (1,024 x 8,192 float32, one thread, 256 columns: 2.3 ms for that pass, 1.6 ms prefetched).
    """
    start = a.ctypes.data + np.uint64((o * a.shape[1] + i) * a.strides[1]) + j0 * np.uint64(a.itemsize)
    prefetch_bytes(start, w * a.itemsize, write)


def width(n: int, itemsize: int) -> int:
    """Columns per chunk: a multiple of 16 (whole SIMD vectors), 16 to 512."""
    w = CHUNK_BYTES // max(1, n * itemsize)
    return int(min(512, max(16, w - w % 16)))


@helper(fastmath=EXACT_FLAGS)
def _load_chunk(x, o, j0, tile, m, shift):
    """Columns ``j0 .. j0 + w`` of ``x[o]`` copied into the contiguous ``tile`` (``n x w``);
    each column's max into ``m`` and its shift (the max when finite, else 0) into ``shift``."""
    n, w = tile.shape
    for j in range(w):
        m[j] = -np.inf
    for i in range(n):
        if i + AHEAD < n:
            _prefetch_run(x, o, i + AHEAD, j0, w, 0)
        t = tile[i]
        for j in range(w):
            v = x[o, i, j0 + np.uint64(j)]
            t[j] = v
            m[j] = v if v > m[j] else m[j]  # a NaN never wins: it reaches the sum
    for j in range(w):
        shift[j] = m[j] if -np.inf < m[j] < np.inf else 0.0


@helper(fastmath=EXACT_FLAGS)
def chunk_at(k, chunks, width, inner):
    """Chunk ``k`` of a column kernel's tasks: its outer index, its first column and its width
    (``chunks`` chunks of ``width`` columns per outer index; the last may be narrower)."""
    o = k // chunks
    j0 = (k - o * chunks) * width
    return o, j0, min(width, inner - j0)


@helper(fastmath=EXACT_FLAGS)
def tile_of(scratch, n, w):
    """The first ``n * w`` elements of a task's scratch as a contiguous ``n x w`` tile (a
    narrower last chunk views less of the same scratch: one allocation per task)."""
    return scratch[:n * w].reshape((n, w))


@helper(fastmath=EXACT_FLAGS)
def reset_sums(w, block, total, carry):
    """Zero the first ``w`` columns' block sums, totals and compensations."""
    for j in range(w):
        block[j] = 0.0
        total[j] = 0.0
        carry[j] = 0.0


@helper(fastmath=EXACT_FLAGS)
def _add_block(block, total, carry):
    """Neumaier's step (``_sums.add_compensated``) on every column, the block sums reset."""
    for j in range(block.size):
        v = np.float64(block[j])
        t = total[j] + v
        big = abs(total[j]) >= abs(v)
        carry[j] += ((total[j] - t) + v) if big else ((v - t) + total[j])
        total[j] = t
        block[j] = 0.0


@helper(fastmath=EXACT_FLAGS)
def _sum_exp(tile, inv_t, shift, block, total, carry, store):
    """Each column's float64 ``sum(exp((tile - shift) * inv_t))`` into ``total`` (``block``
    and ``carry`` are scratch); the exponentials replace the tile's values when ``store``."""
    n, w = tile.shape
    reset_sums(w, block, total, carry)
    for b in range(0, n, BLOCK):
        for i in range(b, min(b + BLOCK, n)):
            t = tile[i]
            if store:
                for j in range(w):
                    e = exp_small(shifted(t[j], shift[j], inv_t))
                    t[j] = e
                    block[j] += e
            else:
                for j in range(w):
                    block[j] += exp_small(shifted(t[j], shift[j], inv_t))
        _add_block(block, total, carry)
    for j in range(w):
        total[j] += carry[j]


@helper(fastmath=EXACT_FLAGS)
def _chunk_softmax(x, out, o, j0, tile, inv_t, log, narrow, wide):
    # Columns j0 .. j0 + w of x[o], through the contiguous tile (n x w). Rows of x are often
    # a power of two bytes apart (32 KiB for 8,192 float32): a chunk read in place maps onto a
    # few cache sets and is evicted between the passes; the tile is not (1,024 x 8,192
    # float32, one thread, 256 columns: 8.6 ms in place, 7.6 ms through the tile). Column indices are
    # unsigned: Numba then adds no test for negative indices, which stops vectorisation.
    # narrow: (5, width) in x's dtype; wide: (4, width) float64: scratch of the task.
    n, w = tile.shape
    m, shift, factor, half, lse_x = narrow[0, :w], narrow[1, :w], narrow[2, :w], narrow[3, :w], narrow[4, :w]
    block, total, carry, lse = narrow[5, :w], wide[1, :w], wide[2, :w], wide[3, :w]
    _load_chunk(x, o, j0, tile, m, shift)
    special = 0
    for j in range(w):
        special += m[j] == np.inf
    limits = np.empty((special, n), dtype=x.dtype)
    if special:
        s = 0
        for j in range(w):
            if m[j] == np.inf:
                for i in range(n):
                    limits[s, i] = tile[i, j]
                row_softmax(limits[s], limits[s], inv_t, log)
                s += 1
    if log:
        _sum_exp(tile, inv_t, shift, block, total, carry, False)
        log_positive(total, lse)  # vectorised: a libm log per column costs more
        # See _sums.store_log: halving (exact where x - shift is finite) avoids an overflow of
        # x - shift; a factor of 1 leaves the other columns' bits as they were.
        for j in range(w):
            halves = halves_needed(shift[j], inv_t)
            half[j] = 0.5 if halves else 1.0
            factor[j] = inv_t * x.dtype.type(2.0) if halves else inv_t
            shift[j] *= half[j]
            lse_x[j] = lse[j]
        for i in range(n):
            t = tile[i]
            for j in range(w):
                out[o, i, j0 + np.uint64(j)] = (t[j] * half[j] - shift[j]) * factor[j] - lse_x[j]
    else:
        _sum_exp(tile, inv_t, shift, block, total, carry, True)
        for j in range(w):
            s = total[j]
            factor[j] = 1.0 / s if s != 0.0 else 1.0
        for i in range(n):
            t = tile[i]
            for j in range(w):
                out[o, i, j0 + np.uint64(j)] = t[j] * factor[j]
    if special:
        s = 0
        for j in range(w):
            if m[j] == np.inf:
                for i in range(n):
                    out[o, i, j0 + np.uint64(j)] = limits[s, i]
                s += 1


@kernel(fastmath=EXACT_FLAGS)
def softmax_columns(x, out, inv_t, log, width, start, stop):
    """softmax (or log_softmax) over axis 1 of a C-contiguous 3-d array into ``out`` (which
    may be ``x``): chunks ``start .. stop`` of ``width`` columns (chunk ``k`` is ``k % chunks``
    of outer index ``k // chunks``)."""
    n, inner = x.shape[1], x.shape[2]
    chunks = (inner + width - 1) // width
    scratch = np.empty(n * width, dtype=x.dtype)
    narrow = np.empty((6, width), dtype=x.dtype)
    wide = np.empty((4, width), dtype=np.float64)
    for k in range(start, stop):
        o, j0, w = chunk_at(k, chunks, width, inner)
        _chunk_softmax(x, out, o, np.uint64(j0), tile_of(scratch, n, w), inv_t, log, narrow, wide)
