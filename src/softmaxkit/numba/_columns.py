"""Column kernels: softmax over the middle axis of a C-contiguous ``(outer, n, inner)`` array.

This is softmax over a non-last axis without a transposed copy. The inner axis is cut into
chunks of ``width`` contiguous columns; a chunk's ``n`` rows of ``width`` elements stay in
cache between its three passes (max; exponentials stored and summed; scale), and every loop
runs along contiguous memory across columns, so it vectorises without reassociation. Column
sums accumulate in float64 (compensated for float64 input), one column at a time in row
order: the result does not depend on the chunking or the number of threads.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small
from softmaxkit.numba._rows import row_softmax
from softmaxkit.numba._sums import shifted


def accumulate(total, carry, value):  # type: ignore[no-untyped-def]
    """Add ``value`` to the float64 pair ``(total, carry)``; returns the new pair."""
    raise NotImplementedError("accumulate is called from jitted code only")


@overload(accumulate, jit_options={"fastmath": EXACT_FLAGS})
def _accumulate_impl(total, carry, value):  # type: ignore[no-untyped-def]
    if value == types.float32:  # 2**29 float32 terms before float64 rounding matters
        return lambda total, carry, value: (total + np.float64(value), carry)

    def neumaier(total, carry, value):  # type: ignore[no-untyped-def]
        t = total + value
        if abs(total) >= abs(value):
            carry += (total - t) + value
        else:
            carry += (value - t) + total
        return t, carry

    return neumaier


@njit(fastmath=EXACT_FLAGS, cache=True)
def _chunk_softmax(x, out, o, j0, w, inv_t, log):  # type: ignore[no-untyped-def]
    n = x.shape[1]
    m = np.full(w, -np.inf, dtype=x.dtype)
    for i in range(n):
        xs = x[o, i][j0:j0 + w]
        for j in range(w):
            v = xs[j]
            m[j] = v if v > m[j] else m[j]
    special = False
    for j in range(w):
        special |= m[j] == np.inf
        m[j] = m[j] if m[j] > -np.inf else 0.0
    total = np.zeros(w, dtype=np.float64)
    carry = np.zeros(w, dtype=np.float64)
    for i in range(n):
        xs = x[o, i][j0:j0 + w]
        os = out[o, i][j0:j0 + w]
        for j in range(w):
            e = exp_small(shifted(xs[j], m[j], inv_t))
            if not log:
                os[j] = e
            total[j], carry[j] = accumulate(total[j], carry[j], e)
    factor = np.empty(w, dtype=x.dtype)
    for j in range(w):
        s = total[j] + carry[j]
        if log:
            factor[j] = math.log(s) if s != 0.0 else 0.0
        else:
            factor[j] = 1.0 / s if s != 0.0 else 1.0
    for i in range(n):
        xs = x[o, i][j0:j0 + w]
        os = out[o, i][j0:j0 + w]
        if log:
            for j in range(w):
                os[j] = (xs[j] - m[j]) * inv_t - factor[j]
        else:
            for j in range(w):
                os[j] *= factor[j]
    if special:  # columns with a +inf: redone one by one (rare)
        for j in range(w):
            if m[j] == np.inf:
                col = x[o, :, j0 + j].copy()
                row_softmax(col, col, inv_t, log)
                out[o, :, j0 + j] = col


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def softmax_columns(x, out, inv_t, log, width):  # type: ignore[no-untyped-def]
    """softmax (or log_softmax) over axis 1 of a C-contiguous 3-d array into ``out``."""
    outer, _, inner = x.shape
    chunks = (inner + width - 1) // width
    for k in prange(outer * chunks):
        o = k // chunks
        j0 = (k - o * chunks) * width
        _chunk_softmax(x, out, o, j0, min(width, inner - j0), inv_t, log)
