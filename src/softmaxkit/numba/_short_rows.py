"""Short rows (a few dozen entries): vectorised across rows instead of along them.

A row of 10 entries leaves SIMD lanes idle and pays loop set-up three times per row. Here a
tile of ``TILE`` rows is transposed into cache so that every loop runs across ``TILE`` rows at
once — the same arithmetic per row as :func:`softmaxkit.numba._rows.row_softmax` (float64
sums, one ``exp`` per element), in a fixed order per row whatever the thread count. Rows
whose maximum is ``+inf`` are redone by the row kernel, which knows their limit.
"""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small, log_positive
from softmaxkit.numba._jit import helper, kernel
from softmaxkit.numba._rows import row_softmax
from softmaxkit.numba._sums import halves_needed, shifted

SHORT_ROWS = 16
"""Rows up to this length take the tiled kernel."""
TILE = 128
TILES_PER_TASK = 8


@helper(fastmath=EXACT_FLAGS)
def load_tile(x, r0, rows, tile, m, shift):
    """Rows ``r0 .. r0 + rows`` of ``x`` transposed into ``tile``; each row's max into ``m`` and
    its shift (the max when finite, else 0) into ``shift``."""
    n = x.shape[1]
    for j in range(rows):
        # 2-d indexing, not a view of each row: a view takes and drops a reference to the array
        # (two atomic operations), which cost more than the row's arithmetic (1,000,000 x 10
        # float32, one thread: 23 -> 13 ms).
        for i in range(n):
            tile[i, j] = x[r0 + j, i]
    for j in range(rows):
        m[j] = -np.inf
    for i in range(n):
        ti = tile[i]
        for j in range(rows):
            m[j] = ti[j] if ti[j] > m[j] else m[j]
    for j in range(rows):
        shift[j] = m[j] if -np.inf < m[j] < np.inf else 0.0


@helper(fastmath=EXACT_FLAGS)
def _tile_softmax(x, out, r0, rows, inv_t, log, tile, narrow, wide):
    # tile: (n, TILE) scratch; narrow: (3, TILE) in x's dtype; wide: (2, TILE) float64.
    n = x.shape[1]
    m, shift, factor = narrow[0], narrow[1], narrow[2]
    total, lse = wide[0], wide[1]
    load_tile(x, r0, rows, tile, m, shift)
    for j in range(rows):
        total[j] = 0.0
    for i in range(n):
        ti = tile[i]
        for j in range(rows):
            e = exp_small(shifted(ti[j], shift[j], inv_t))
            total[j] += np.float64(e)
            if not log:
                ti[j] = e
    if log:
        log_positive(total[:rows], lse[:rows])  # vectorised: a libm log per row costs more
        for j in range(rows):
            factor[j] = lse[j]
        halves = False
        for j in range(rows):
            halves |= halves_needed(shift[j], inv_t)
        if halves:  # see _sums.store_log: x - max would overflow
            h, t2 = x.dtype.type(0.5), inv_t * x.dtype.type(2.0)
            for i in range(n):
                ti = tile[i]
                for j in range(rows):
                    ti[j] = (ti[j] * h - shift[j] * h) * t2 - factor[j]
        else:
            for i in range(n):
                ti = tile[i]
                for j in range(rows):
                    ti[j] = (ti[j] - shift[j]) * inv_t - factor[j]
    else:
        for j in range(rows):
            s = total[j]
            factor[j] = 1.0 / s if s != 0.0 else 1.0
        for i in range(n):
            ti = tile[i]
            for j in range(rows):
                ti[j] *= factor[j]
    for j in range(rows):
        if m[j] != np.inf:
            for i in range(n):
                out[r0 + j, i] = tile[i, j]
    for j in range(rows):  # after the others: with out = x, these rows are still unread input
        if m[j] == np.inf:
            row_softmax(x[r0 + j], out[r0 + j], inv_t, log)


@register_jitable
def tasks(rows: int) -> int:
    """Work items of the tiled kernels: groups of ``TILES_PER_TASK`` tiles (from Python and jitted code)."""
    step = TILE * TILES_PER_TASK
    return (rows + step - 1) // step


@kernel(fastmath=EXACT_FLAGS)
def softmax_short_rows(x, out, inv_t, log, start, stop):
    """softmax (or log_softmax) over axis 1 of a C-contiguous 2-d array with short rows:
    tasks ``start .. stop`` (:func:`tasks`)."""
    short_rows_softmax(x, out, inv_t, log, start, stop)


@helper(fastmath=EXACT_FLAGS)
def short_rows_softmax(x, out, inv_t, log, start, stop):
    """The body of :func:`softmax_short_rows`, inlined into each kernel that runs it."""
    rows = x.shape[0]
    step = TILE * TILES_PER_TASK
    for k in range(start, stop):
        # Scratch per task, not per tile: an allocation costs as much as a tile's arithmetic.
        tile = np.empty((x.shape[1], TILE), dtype=x.dtype)
        narrow = np.empty((3, TILE), dtype=x.dtype)
        wide = np.empty((2, TILE), dtype=np.float64)
        for r0 in range(k * step, min(rows, (k + 1) * step), TILE):
            _tile_softmax(x, out, r0, min(TILE, rows - r0), inv_t, log, tile, narrow, wide)
