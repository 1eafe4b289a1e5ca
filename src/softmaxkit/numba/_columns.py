"""Column kernels: softmax over the middle axis of a C-contiguous ``(outer, n, inner)`` array.

This is softmax over a non-last axis without a transposed copy of the array. The inner axis
is cut into chunks of ``width`` contiguous columns; each chunk is transposed into a small
tile that stays in cache (``width x n``), the row kernel runs on the tile's rows, and the
tile is written back. Memory sees one read and one write, along contiguous runs of
``width`` elements; the result of a column is the row kernel's, whatever the chunking or the
number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from softmaxkit.numba._exp import EXACT_FLAGS
from softmaxkit.numba._rows import row_softmax


@njit(fastmath=EXACT_FLAGS, cache=True)
def _chunk_softmax(x, out, o, j0, w, inv_t, log):
    n = x.shape[1]
    # Padded rows: a tile row stride of a power of two (4 KiB for n = 1024 float32) maps the
    # transposing stores onto one L1 set; 16 extra elements spread them.
    tile = np.empty((w, n + 16), dtype=x.dtype)
    for i in range(n):
        xs = x[o, i][j0:j0 + w]
        for j in range(w):
            tile[j, i] = xs[j]
    for j in range(w):
        row = tile[j][:n]
        row_softmax(row, row, inv_t, log)
    for i in range(n):
        os = out[o, i][j0:j0 + w]
        for j in range(w):
            os[j] = tile[j, i]


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def softmax_columns(x, out, inv_t, log, width):
    """softmax (or log_softmax) over axis 1 of a C-contiguous 3-d array into ``out``."""
    outer, _, inner = x.shape
    chunks = (inner + width - 1) // width
    for k in prange(outer * chunks):
        o = k // chunks
        j0 = (k - o * chunks) * width
        _chunk_softmax(x, out, o, j0, min(width, inner - j0), inv_t, log)
