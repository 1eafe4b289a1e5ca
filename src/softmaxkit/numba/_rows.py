"""Row kernels: softmax / log_softmax / logsumexp over the last axis of a C-contiguous 2-d array.

Rows that fit in cache take three passes over the row (max; ``e = exp(z)`` stored and
summed; scale) so ``exp`` is evaluated once per element and memory sees one read and one
write. Rows larger than ``SPLIT`` are cut into fixed blocks of ``SPLIT`` elements, the same
cut for any thread count: each block yields its ``(max, sum of exp)`` pair (softmax also
stores the block's exponentials), the pairs of a row are merged in order as in the online
normaliser (Milakov & Gimelshein, "Online normalizer calculation for softmax", 2018, at
block granularity), and a second parallel pass writes the result (softmax: rescales the
stored block by ``exp(m_block - m_row) / sum``). ``exp`` still runs once per element, and a
few huge rows use every core.

Special rows follow the generic engine (SPEC §2): a NaN makes the whole row NaN (it reaches
the sum), a row whose maximum is ``+inf`` is rewritten as 0 at its ``+inf`` entries and
``-inf`` elsewhere, and a row with every entry ``-inf`` sums to 0 and gives 0 / ``-inf``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small
from softmaxkit.numba._sums import (
    REDUCE_FLAGS,
    add_compensated,
    scale_span,
    shifted,
    span_max,
    store_exp,
    store_log,
    sum_exp,
)

SPLIT = 32768
"""Rows longer than this are processed in blocks of this many elements (128 KiB of float32:
a block and its output stay in a core's L2 between the passes over it)."""


@njit(fastmath=EXACT_FLAGS, cache=True)
def limit_row(x):
    """A row whose maximum is ``+inf``: 0 at the ``+inf`` entries, ``-inf`` elsewhere (NaN: all NaN)."""
    z = np.empty_like(x)
    nan = False
    for i in range(x.size):
        v = x[i]
        nan |= v != v
        z[i] = 0.0 if v == np.inf else -np.inf
    if nan:
        z[:] = np.nan
    return z


@njit(fastmath=EXACT_FLAGS, cache=True)
def settled_row(x):
    """``(row, shift)``: the row with a ``+inf`` maximum rewritten by :func:`limit_row`, and
    the amount to subtract before ``exp`` (its maximum, or 0 when that is not finite)."""
    m = span_max(x)
    if m == np.inf:
        x = limit_row(x)
        m = x.dtype.type(0.0)
    return x, m if m > -np.inf else x.dtype.type(0.0)


@njit(fastmath=EXACT_FLAGS, cache=True)
def row_softmax(x, out, inv_t, log):
    """softmax (or log_softmax) of one row into ``out`` (which may be ``x``)."""
    x, shift = settled_row(x)
    if log:
        s = sum_exp(x, shift, inv_t)
        lse = math.log(s) if s != 0.0 else 0.0
        store_log(x, out, shift, inv_t, x.dtype.type(lse))
    else:
        s = store_exp(x, out, shift, inv_t)
        scale_span(out, x.dtype.type(1.0 / s if s != 0.0 else 1.0))


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def softmax_rows(x, out, inv_t, log):
    """softmax over axis 1 of ``x`` (rows of any length; long ones go to the split kernel)."""
    if x.shape[1] > SPLIT:
        _softmax_long_rows(x, out, inv_t, log)
        return
    for r in prange(x.shape[0]):
        row_softmax(x[r], out[r], inv_t, log)


@njit(fastmath=EXACT_FLAGS, cache=True)
def _mask_into(x, mask, out):
    for i in range(x.size):
        out[i] = x[i] if mask[i] else -np.inf


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def mask_rows(x, mask, out):
    """``out = where(mask, x, -inf)`` over 2-d arrays (``out`` may be ``x``)."""
    for r in prange(x.shape[0]):
        _mask_into(x[r], mask[r], out[r])


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def softmax_masked_rows(x, mask, out, inv_t, log):
    """softmax over axis 1 of ``x`` with the entries where ``mask`` is False excluded.

    Each row is masked into its ``out`` row, which the row kernel then transforms in place
    while it is in cache: no temporary the size of ``x`` and no extra pass over memory.
    """
    for r in prange(x.shape[0]):
        _mask_into(x[r], mask[r], out[r])
        row_softmax(out[r], out[r], inv_t, log)


@njit(fastmath=EXACT_FLAGS, cache=True)
def merge_blocks(block_max, block_sum, inv_t):
    """One row's ``(shift, sum of exp((x - shift) * inv_t))`` from its blocks' pairs, in order.

    A block's sum is relative to its own shift (its max, or 0 when that is ``-inf``).
    """
    m = -np.inf
    for b in range(block_max.size):
        m = max(m, np.float64(block_max[b]))
    shift = m if m > -np.inf else 0.0
    total, carry = 0.0, 0.0
    for b in range(block_max.size):
        mb = np.float64(block_max[b])
        if mb == -np.inf:  # adds 0, or NaN when the block held NaN
            term = block_sum[b]
        else:
            term = block_sum[b] * math.exp((mb - shift) * inv_t)
        total, carry = add_compensated(total, carry, term)
    return m, shift, total + carry


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def _softmax_long_rows(x, out, inv_t, log):
    rows, n = x.shape
    nb = (n + SPLIT - 1) // SPLIT
    block_max = np.empty(rows * nb, dtype=x.dtype)
    block_sum = np.empty(rows * nb, dtype=np.float64)
    # Pass 1, per block: its max, and exp(z - block max) summed (softmax: also stored, so
    # that pass 2 only rescales and exp runs once per element).
    for k in prange(rows * nb):
        r = k // nb
        lo = (k - r * nb) * SPLIT
        hi = min(lo + SPLIT, n)
        block = x[r][lo:hi]
        m = span_max(block)
        block_max[k] = m
        shift = m if (m > -np.inf and m < np.inf) else x.dtype.type(0.0)
        # A block holding +inf is not stored: its row is redone from x below, and with out = x
        # storing would have replaced the +inf entries by exp's clamped finite value.
        if log or m == np.inf:
            block_sum[k] = sum_exp(block, shift, inv_t)
        else:
            block_sum[k] = store_exp(block, out[r][lo:hi], shift, inv_t)
    # Merge each row's blocks in order (cheap: one pair per block).
    shifts = np.empty(rows, dtype=np.float64)
    totals = np.empty(rows, dtype=np.float64)
    special = np.zeros(rows, dtype=np.bool_)
    for r in range(rows):
        m, shifts[r], totals[r] = merge_blocks(block_max[r * nb:(r + 1) * nb],
                                               block_sum[r * nb:(r + 1) * nb], np.float64(inv_t))
        if m == np.inf:
            special[r] = True
            row_softmax(x[r], out[r], inv_t, log)
    # Pass 2: log_softmax from x; softmax rescales each stored block by exp(m_b - M) / S.
    for k in prange(rows * nb):
        r = k // nb
        if special[r]:
            continue
        lo = (k - r * nb) * SPLIT
        hi = min(lo + SPLIT, n)
        s = totals[r]
        if log:
            lse = math.log(s) if s != 0.0 else 0.0
            store_log(x[r][lo:hi], out[r][lo:hi], x.dtype.type(shifts[r]), inv_t, x.dtype.type(lse))
        else:
            mb = np.float64(block_max[k])
            rescale = math.exp((mb - shifts[r]) * inv_t) if -np.inf < mb < np.inf else 1.0
            scale_span(out[r][lo:hi], x.dtype.type(rescale / s if s != 0.0 else rescale))


@njit(fastmath=REDUCE_FLAGS, cache=True)
def _count_rest(x, m):
    count = 0
    rest = x.dtype.type(0.0)
    for i in range(x.size):
        at_max = x[i] == m
        count += at_max
        rest += x.dtype.type(0.0) if at_max else exp_small(shifted(x[i], m, x.dtype.type(1.0)))
    return count, rest


@njit(fastmath=EXACT_FLAGS, cache=True)
def has_nan(x):
    for i in range(x.size):
        if x[i] != x[i]:
            return True
    return False


@njit(fastmath=EXACT_FLAGS, cache=True)
def row_logsumexp(x):
    """``log(sum(exp(x)))`` of one row in float64, as ``max + log(k) + log1p(rest / k)``.

    ``k`` counts the entries equal to the max and ``rest`` sums the others' exponentials, so
    a sum barely above ``k`` keeps its digits (Blanchard, Higham & Higham, 2021; SciPy).
    """
    n = x.size
    m = span_max(x)
    if not (-np.inf < m < np.inf):  # nothing finite decides: NaN if any, else the max itself
        return np.nan if has_nan(x) else np.float64(m)
    count, rest, carry = 0, 0.0, 0.0
    for b in range(0, n, 512):
        c, s = _count_rest(x[b:b + 512], m)
        count += c
        rest, carry = add_compensated(rest, carry, np.float64(s))
    rest += carry
    return np.float64(m) + (math.log(count) + math.log1p(rest / count))


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def logsumexp_rows(x):
    """:func:`row_logsumexp` of every row of a 2-d array, in float64."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for r in prange(x.shape[0]):
        out[r] = row_logsumexp(x[r])
    return out
