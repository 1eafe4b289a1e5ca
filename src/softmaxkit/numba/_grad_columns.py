"""Column kernels of the vjps: softmax / log_softmax's backward over the middle axis of a
C-contiguous ``(outer, n, inner)`` array, without a transposed copy of any array.

As the forward's column kernels (:mod:`._columns`): the inner axis is cut into chunks of
``width`` contiguous columns, and every loop runs along a row of a chunk (SIMD lanes across
columns). Pass 1 copies the chunk of both inputs (``s`` or ``logp``, and ``g``) into two
contiguous ``n x width`` tiles kept in cache and, row by row, accumulates each
column's reduction; pass 2 reads the tiles and writes the result. Memory sees each input
read once and the result written once, in runs of ``width`` elements, where the path this
replaced made transposed copies of both inputs and of the result around the row kernels
(each transposed copy slower than the whole kernel; BENCHMARKS.md, "Axis-0 vjp column kernels").

The per-element arithmetic is the row kernels' (:mod:`._grad`), so the results differ from
theirs at most through the order of each column's sum, never in the special cases:

- softmax: ``dot = sum(g * s)`` in float64, in blocks of ``BLOCK`` rows summed in the
  input's dtype and added with Neumaier's compensation (``span_dot``'s contract: the error
  does not grow with the column's length); then ``s * (g - dot)``.
- log_softmax: ``total = sum(g)`` over the entries with ``logp > -inf``, each term in float64
  (``live_sum``'s contract); then ``g - exp(logp) * total``, and 0 where ``logp == -inf`` (a
  fully ``-inf`` column gets 0, never NaN: SPEC §2).
"""

from __future__ import annotations

import numpy as np

from softmaxkit.numba import _columns
from softmaxkit.numba._columns import AHEAD, BLOCK, _add_block, _prefetch_run, chunk_at, reset_sums, tile_of
from softmaxkit.numba._exp import EXACT_FLAGS, exp_small
from softmaxkit.numba._grad import EXP_LIMIT, count_beyond_exp, exp_beyond
from softmaxkit.numba._jit import helper, kernel
from softmaxkit.numba._sums import compensated_total


def width(n: int, itemsize: int) -> int:
    """Columns per chunk: the forward's (:func:`._columns.width`), 1 MiB of each input.

    The two tiles of a chunk then take 2 MiB, more than a core's L2 (1 MiB on the machines of
    BENCHMARKS.md), yet half the width, both tiles in L2, was slower: 1,024 x 8,192 float32,
    one thread, 256 columns 6.8 ms, 128 columns 10.1 ms. Memory reads each input as runs of
    ``width`` elements a row apart (32 KiB here); longer runs cost fewer DRAM row openings.
    """
    return _columns.width(n, itemsize)


@helper(fastmath=EXACT_FLAGS)
def _copy_runs(a, b, o, i, j0, ta, tb):
    """``a[o, i, j0:j0 + w]`` into ``ta`` and ``b[o, i, j0:j0 + w]`` into ``tb``.

    A loop of its own, the row's reduction in the next one (from L1). Fused into one loop
    (five arrays, three of them written) the softmax vjp of 1,024 x 8,192 float32 took 8.9 ms
    against 4.0 ms split, on 2 threads; likely LLVM's limit on runtime overlap checks, past
    which it keeps the scalar loop.
    """
    for j in range(ta.size):
        ta[j] = a[o, i, j0 + np.uint64(j)]
        tb[j] = b[o, i, j0 + np.uint64(j)]


@helper(fastmath=EXACT_FLAGS)
def _load_dots(s, g, o, j0, ts, tg, block, total, carry):
    """Columns ``j0 .. j0 + w`` of ``s[o]`` and ``g[o]`` copied into the tiles ``ts``, ``tg``;
    each column's compensated float64 ``sum(g * s)`` into ``total`` (``block``, ``carry``: scratch)."""
    n, w = ts.shape
    reset_sums(w, block, total, carry)
    for b in range(0, n, BLOCK):
        for i in range(b, min(b + BLOCK, n)):
            if i + AHEAD < n:
                _prefetch_run(s, o, i + AHEAD, j0, w, 0)
                _prefetch_run(g, o, i + AHEAD, j0, w, 0)
            si, gi = ts[i], tg[i]
            _copy_runs(s, g, o, i, j0, si, gi)
            for j in range(w):
                block[j] += gi[j] * si[j]
        _add_block(block, total, carry)
    for j in range(w):
        total[j] = compensated_total(total[j], carry[j])


@helper(fastmath=EXACT_FLAGS)
def _chunk_softmax_vjp(s, g, out, o, j0, ts, tg, narrow, wide):
    # narrow: (2, width) in s's dtype; wide: (2, width) float64: scratch of the task.
    n, w = ts.shape
    block, dot = narrow[0, :w], narrow[1, :w]
    total, carry = wide[0, :w], wide[1, :w]
    _load_dots(s, g, o, j0, ts, tg, block, total, carry)
    for j in range(w):
        dot[j] = total[j]  # rounded to s's dtype, as the row kernel's dot
    for i in range(n):
        si, gi = ts[i], tg[i]
        for j in range(w):
            out[o, i, j0 + np.uint64(j)] = si[j] * (gi[j] - dot[j])


@kernel(fastmath=EXACT_FLAGS)
def softmax_vjp_columns(s, g, out, width, start, stop):
    """``out = s * (g - sum(g * s))`` over axis 1 of C-contiguous 3-d arrays: chunks
    ``start .. stop`` of ``width`` columns (chunk ``k`` is ``k % chunks`` of outer index
    ``k // chunks``, as in ``softmax_columns``)."""
    n, inner = s.shape[1], s.shape[2]
    chunks = (inner + width - 1) // width
    s_scratch = np.empty(n * width, dtype=s.dtype)
    g_scratch = np.empty(n * width, dtype=s.dtype)
    narrow = np.empty((2, width), dtype=s.dtype)
    wide = np.empty((2, width), dtype=np.float64)
    for k in range(start, stop):
        o, j0, w = chunk_at(k, chunks, width, inner)
        _chunk_softmax_vjp(s, g, out, o, np.uint64(j0), tile_of(s_scratch, n, w), tile_of(g_scratch, n, w),
                           narrow, wide)


@helper(fastmath=EXACT_FLAGS)
def _load_live_sums(lp, g, o, j0, tl, tg, total):
    """Columns ``j0 .. j0 + w`` of ``lp[o]`` and ``g[o]`` copied into the tiles ``tl``, ``tg``;
    each column's float64 sum of ``g`` over the entries with ``lp > -inf`` into ``total``."""
    n, w = tl.shape
    for j in range(w):
        total[j] = 0.0
    for i in range(n):
        if i + AHEAD < n:
            _prefetch_run(lp, o, i + AHEAD, j0, w, 0)
            _prefetch_run(g, o, i + AHEAD, j0, w, 0)
        li, gi = tl[i], tg[i]
        _copy_runs(lp, g, o, i, j0, li, gi)
        for j in range(w):
            total[j] += 0.0 if li[j] == -np.inf else np.float64(gi[j])


@helper(fastmath=EXACT_FLAGS)
def _chunk_log_softmax_vjp(lp, g, out, o, j0, tl, tg, narrow, wide):
    # narrow: (1, width) in lp's dtype; wide: (1, width) float64: scratch of the task.
    n, w = tl.shape
    total_x, total = narrow[0, :w], wide[0, :w]
    _load_live_sums(lp, g, o, j0, tl, tg, total)
    for j in range(w):
        total_x[j] = total[j]  # rounded to lp's dtype, as the row kernel's total
    zero = lp.dtype.type(0.0)
    for i in range(n):
        li, gi = tl[i], tg[i]
        for j in range(w):
            out[o, i, j0 + np.uint64(j)] = zero if li[j] == -np.inf else gi[j] - exp_small(li[j]) * total_x[j]
        if count_beyond_exp(li) > 0:  # entries outside exp_small's domain: _grad.redo_beyond_exp
            for j in range(w):
                if li[j] >= EXP_LIMIT:
                    out[o, i, j0 + np.uint64(j)] = gi[j] - lp.dtype.type(exp_beyond(li[j])) * total_x[j]


@kernel(fastmath=EXACT_FLAGS)
def log_softmax_vjp_columns(lp, g, out, width, start, stop):
    """``out = g - exp(lp) * sum(g)`` over the entries of axis 1 with ``lp > -inf`` (0 at the
    others) of C-contiguous 3-d arrays: chunks ``start .. stop`` of ``width`` columns. Any
    ``lp``: entries of ``EXP_LIMIT`` or more are redone with libm's ``exp``, as in the rows.
    """
    n, inner = lp.shape[1], lp.shape[2]
    chunks = (inner + width - 1) // width
    l_scratch = np.empty(n * width, dtype=lp.dtype)
    g_scratch = np.empty(n * width, dtype=lp.dtype)
    narrow = np.empty((1, width), dtype=lp.dtype)
    wide = np.empty((1, width), dtype=np.float64)
    for k in range(start, stop):
        o, j0, w = chunk_at(k, chunks, width, inner)
        _chunk_log_softmax_vjp(lp, g, out, o, np.uint64(j0), tile_of(l_scratch, n, w),
                               tile_of(g_scratch, n, w), narrow, wide)
