"""Row kernels: softmax / log_softmax / logsumexp over the last axis of a C-contiguous 2-d array.

Rows that fit in cache take three passes over the row (max; ``e = exp(z)`` stored and
summed; scale) so ``exp`` is evaluated once per element and memory sees one read and one
write. Rows larger than ``SPLIT`` are cut into fixed blocks of ``SPLIT`` elements, the same
cut for any thread count: each block yields its ``(max, sum of exp)`` pair (softmax also
stores the block's exponentials), the pairs of a row are merged in order as in the online
normaliser (Milakov & Gimelshein, "Online normalizer calculation for softmax", 2018, at
block granularity), and a second pass writes the result (softmax: rescales the stored block
by ``exp(m_block - m_row) / sum``). ``exp`` still runs once per element. Many such rows are
computed each whole by one thread (:func:`long_rows`), its second pass going backwards
through the blocks the first has just left in cache; a few huge rows are shared out block by
block so that they use every core (:func:`long_row_blocks` .. :func:`long_row_finish`).
Either way the blocks, their pairs and the merge are the same: so are the bits.

Special rows follow the generic engine (SPEC §2): a NaN makes the whole row NaN (it reaches
the sum), a row whose maximum is ``+inf`` is rewritten as 0 at its ``+inf`` entries and
``-inf`` elsewhere, and a row with every entry ``-inf`` sums to 0 and gives 0 / ``-inf``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small
from softmaxkit.numba._jit import helper, kernel, readonly
from softmaxkit.numba._sums import (
    REDUCE_FLAGS,
    add_compensated,
    scale_span,
    shifted,
    span_max,
    store_exp,
    store_exp_ahead,
    store_log,
    sum_exp,
    sum_exp_ahead,
)
from softmaxkit.numba._threads import parts_for, run

SPLIT = 32768
"""Rows longer than this are processed in blocks of this many elements (128 KiB of float32:
a block and its output stay in a core's L2 between the passes over it)."""
PREFETCH_BYTES = 32768
"""Rows of at least this many bytes prefetch the next row during their ``exp`` pass
(:mod:`._prefetch`). Shorter rows are left to the hardware's prefetchers, which follow them:
prefetching rows of 4 KiB made 8,192 x 1,024 float32 log_softmax 3.7 -> 4.1 ms (one thread),
while 1,024 x 32,000 softmax went 13.0 -> 11.0 ms and rows cut in blocks 8.4 -> 7.3 ms."""
OWN_OUT_BYTES = 8192
"""log_softmax rows of at least this many bytes (and under ``PREFETCH_BYTES``) prefetch their
own ``out`` row, to be written, during their ``exp`` pass. softmax writes its row in that
pass, where the arithmetic hides the wait for the lines; log_softmax writes only in its last
pass, which then waits on memory. Measured (BENCHMARKS.md, session 8; 2 threads, into
``out=``): 8,192 x 1,024 float64 5.3-5.6 -> 4.5-4.9 ms; rows of 512 bytes got slower
(65,536 x 128 float32 3.1-3.2 -> 3.4-3.5 ms)."""


@helper(fastmath=EXACT_FLAGS)
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


@helper(fastmath=EXACT_FLAGS)
def settled_row(x):
    """``(row, shift)``: the row with a ``+inf`` maximum rewritten by :func:`limit_row`, and
    the amount to subtract before ``exp`` (its maximum, or 0 when that is not finite)."""
    m = span_max(x)
    if m == np.inf:
        x = limit_row(x)
        m = x.dtype.type(0.0)
    return x, m if m > -np.inf else x.dtype.type(0.0)


@helper(fastmath=EXACT_FLAGS)
def row_softmax_ahead(x, out, inv_t, log, next_x, next_out, count):
    """softmax (or log_softmax) of one row into ``out`` (which may be ``x``), prefetching the
    next row meanwhile: ``count`` elements at the addresses ``next_x`` and ``next_out``
    (``_sums.sum_exp_ahead``; 0: none)."""
    x, shift = settled_row(x)
    if log:
        s = sum_exp_ahead(x, shift, inv_t, next_x, next_out, count)
        lse = math.log(s) if s != 0.0 else 0.0
        store_log(x, out, shift, inv_t, x.dtype.type(lse))
    else:
        s = store_exp_ahead(x, out, shift, inv_t, next_x, next_out, count)
        scale_span(out, x.dtype.type(1.0 / s if s != 0.0 else 1.0))


@helper(fastmath=EXACT_FLAGS)
def row_softmax(x, out, inv_t, log):
    """softmax (or log_softmax) of one row into ``out`` (which may be ``x``): the same
    arithmetic as :func:`row_softmax_ahead`, without prefetches (see ``_sums.sum_exp``)."""
    x, shift = settled_row(x)
    if log:
        s = sum_exp(x, shift, inv_t)
        lse = math.log(s) if s != 0.0 else 0.0
        store_log(x, out, shift, inv_t, x.dtype.type(lse))
    else:
        s = store_exp(x, out, shift, inv_t)
        scale_span(out, x.dtype.type(1.0 / s if s != 0.0 else 1.0))


@helper(fastmath=EXACT_FLAGS)
def row_address(a, r):
    """The address of row ``r`` of a 2-d array."""
    return a.ctypes.data + np.uint64(r * a.strides[0])


@kernel(fastmath=EXACT_FLAGS)
def softmax_rows(x, out, inv_t, log, start, stop):
    """softmax over axis 1 of rows ``start .. stop`` of ``x`` (rows of at most ``SPLIT``).

    Rows of ``PREFETCH_BYTES`` and more prefetch the next row during their ``exp`` pass;
    shorter log_softmax rows of ``OWN_OUT_BYTES`` and more prefetch their own ``out`` row.
    """
    rows_softmax_range(x, out, inv_t, log, start, stop)


@helper(fastmath=EXACT_FLAGS)
def rows_softmax_range(x, out, inv_t, log, start, stop):
    """The body of :func:`softmax_rows`, inlined into each kernel that runs it."""
    n = x.shape[1]
    long = n * x.itemsize >= PREFETCH_BYTES
    own_out = log and n * x.itemsize >= OWN_OUT_BYTES
    for r in range(start, stop):
        # Long rows: the next row. Else log_softmax: this row's out, to be written (its x is in
        # cache already). One call site: the row kernel is inlined once.
        ahead_row = r + 1 if long else r
        ahead = n if (r + 1 < stop if long else own_out) else 0
        row_softmax_ahead(x[r], out[r], inv_t, log, row_address(x, ahead_row), row_address(out, ahead_row),
                          ahead)


@helper(fastmath=EXACT_FLAGS)
def _mask_into(x, mask, out):
    for i in range(x.size):
        out[i] = x[i] if mask[i] else -np.inf


@kernel(fastmath=EXACT_FLAGS)
def mask_rows(x, mask, out, start, stop):
    """``out = where(mask, x, -inf)`` over rows ``start .. stop`` of 2-d arrays (``out`` may be ``x``)."""
    for r in range(start, stop):
        _mask_into(x[r], mask[r], out[r])


@kernel(fastmath=EXACT_FLAGS)
def softmax_masked_rows(x, mask, out, inv_t, log, start, stop):
    """softmax over axis 1 of ``x`` with the entries where ``mask`` is False excluded.

    Each row is masked into its ``out`` row, which the row kernel then transforms in place
    while it is in cache: no temporary the size of ``x`` and no extra pass over memory.
    """
    for r in range(start, stop):
        _mask_into(x[r], mask[r], out[r])
        row_softmax(out[r], out[r], inv_t, log)


@helper(fastmath=EXACT_FLAGS)
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


@helper(fastmath=EXACT_FLAGS)
def block_first_pass(x, out, inv_t, log, r, lo, next_x, next_out, ahead):
    """Pass 1 over the block of row ``r`` that starts at ``lo``: ``(its max, exp(z - block
    max) summed)``; softmax also stores the exponentials, so that pass 2 only rescales and
    exp runs once per element. ``ahead`` elements at ``next_x`` / ``next_out`` (the next
    block) are prefetched meanwhile (:mod:`._prefetch`)."""
    hi = min(lo + SPLIT, x.shape[1])
    block = x[r][lo:hi]
    m = span_max(block)
    shift = m if (m > -np.inf and m < np.inf) else x.dtype.type(0.0)
    # A block holding +inf is not stored: its row is redone from x whole, and with out = x
    # storing would have replaced the +inf entries by exp's clamped finite value.
    if log or m == np.inf:
        return m, sum_exp_ahead(block, shift, inv_t, next_x, next_out, ahead)
    return m, store_exp_ahead(block, out[r][lo:hi], shift, inv_t, next_x, next_out, ahead)


@helper(fastmath=EXACT_FLAGS)
def block_second_pass(x, out, inv_t, log, r, lo, block_max, shift, total):
    """Pass 2 over the block of row ``r`` that starts at ``lo``, once the row's ``(shift,
    total)`` is known: log_softmax from x; softmax rescales the stored block by
    ``exp(block_max - shift) / total``."""
    hi = min(lo + SPLIT, x.shape[1])
    if log:
        lse = math.log(total) if total != 0.0 else 0.0
        store_log(x[r][lo:hi], out[r][lo:hi], x.dtype.type(shift), inv_t, x.dtype.type(lse))
    else:
        mb = np.float64(block_max)
        rescale = math.exp((mb - shift) * inv_t) if -np.inf < mb < np.inf else 1.0
        scale_span(out[r][lo:hi], x.dtype.type(rescale / total if total != 0.0 else rescale))


@kernel(fastmath=EXACT_FLAGS)
def long_rows(x, out, inv_t, log, start, stop):
    """Rows ``start .. stop`` longer than ``SPLIT``, each whole on this thread: pass 1 over its
    blocks, their pairs merged, then pass 2 over the blocks from the last to the first, so
    that it begins with the blocks pass 1 has just left in cache. The same blocks, pairs and
    merge as :func:`long_row_blocks` .. :func:`long_row_finish`, so the same bits."""
    n = x.shape[1]
    nb = (n + SPLIT - 1) // SPLIT
    block_max = np.empty(nb, dtype=x.dtype)
    block_sum = np.empty(nb, dtype=np.float64)
    for r in range(start, stop):
        for b in range(nb):
            lo = b * SPLIT
            # Prefetch the next block of this row, or the first block of the next row.
            r1, lo1 = (r, lo + SPLIT) if b + 1 < nb else (r + 1, 0)
            ahead = min(SPLIT, n - lo1) if r1 < stop else 0
            block_max[b], block_sum[b] = block_first_pass(
                x, out, inv_t, log, r, lo, row_address(x, r1) + np.uint64(lo1 * x.itemsize),
                row_address(out, r1) + np.uint64(lo1 * out.itemsize), ahead)
        m, shift, total = merge_blocks(block_max, block_sum, np.float64(inv_t))
        if m == np.inf:
            row_softmax(x[r], out[r], inv_t, log)
            continue
        for b in range(nb - 1, -1, -1):
            block_second_pass(x, out, inv_t, log, r, b * SPLIT, block_max[b], shift, total)


@kernel(fastmath=EXACT_FLAGS)
def long_row_blocks(x, out, inv_t, log, block_max, block_sum, start, stop):
    """Pass 1 of rows longer than ``SPLIT`` split across threads, blocks ``start .. stop``
    (block ``k`` is block ``k % nb`` of row ``k // nb``): :func:`block_first_pass`."""
    n = x.shape[1]
    nb = (n + SPLIT - 1) // SPLIT
    for k in range(start, stop):
        r = k // nb
        # The next block, prefetched while this one computes.
        r1 = (k + 1) // nb
        lo1 = (k + 1 - r1 * nb) * SPLIT
        ahead = min(SPLIT, n - lo1) if k + 1 < stop else 0
        block_max[k], block_sum[k] = block_first_pass(
            x, out, inv_t, log, r, (k - r * nb) * SPLIT, row_address(x, r1) + np.uint64(lo1 * x.itemsize),
            row_address(out, r1) + np.uint64(lo1 * out.itemsize), ahead)


@kernel(fastmath=EXACT_FLAGS)
def long_row_merge(x, out, inv_t, log, block_max, block_sum, shifts, totals, special):
    """Each row's blocks merged in order (cheap: one pair per block); rows whose max is
    ``+inf`` are computed whole here and marked ``special``."""
    rows, n = x.shape
    nb = (n + SPLIT - 1) // SPLIT
    for r in range(rows):
        m, shifts[r], totals[r] = merge_blocks(block_max[r * nb:(r + 1) * nb],
                                               block_sum[r * nb:(r + 1) * nb], np.float64(inv_t))
        special[r] = m == np.inf
        if special[r]:
            row_softmax(x[r], out[r], inv_t, log)


@kernel(fastmath=EXACT_FLAGS)
def long_row_finish(x, out, inv_t, log, block_max, shifts, totals, special, start, stop):
    """Pass 2, blocks ``start .. stop``: :func:`block_second_pass`."""
    n = x.shape[1]
    nb = (n + SPLIT - 1) // SPLIT
    for k in range(start, stop):
        r = k // nb
        if not special[r]:
            block_second_pass(x, out, inv_t, log, r, (k - r * nb) * SPLIT, block_max[k], shifts[r], totals[r])


@helper(fastmath=REDUCE_FLAGS)
def _count_rest(x, m):
    count = 0
    rest = x.dtype.type(0.0)
    for i in range(x.size):
        at_max = x[i] == m
        count += at_max
        rest += x.dtype.type(0.0) if at_max else exp_small(shifted(x[i], m, x.dtype.type(1.0)))
    return count, rest


@helper(fastmath=EXACT_FLAGS)
def has_nan(x):
    for i in range(x.size):
        if x[i] != x[i]:
            return True
    return False


@helper(fastmath=EXACT_FLAGS)
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


@kernel(fastmath=EXACT_FLAGS)
def logsumexp_rows(x, out, start, stop):
    """:func:`row_logsumexp` of rows ``start .. stop`` of a 2-d array into ``out`` (float64)."""
    for r in range(start, stop):
        out[r] = row_logsumexp(x[r])


def long_rows_softmax(x: np.ndarray, out: np.ndarray, inv_t: Any, log: bool) -> None:
    """Rows longer than ``SPLIT``, cut in blocks of a fixed ``SPLIT`` (module docstring): each
    row whole on one thread when the rows share out evenly over the threads (its second pass
    then reads what the first left in cache), else block by block across the threads."""
    rows, n = x.shape
    threads = parts_for(rows * ((n + SPLIT - 1) // SPLIT), x.size)
    if rows % threads == 0 or rows >= WHOLE_ROWS_PER_THREAD * threads:
        run(long_rows, rows, x.size, x, out, inv_t, log)
    else:
        long_rows_by_blocks(x, out, inv_t, log)


WHOLE_ROWS_PER_THREAD = 4
"""From this many long rows per thread, rows left over after an even share cost little: each
long row is computed whole by one thread. Measured (BENCHMARKS.md, session 8), 2 threads,
into ``out=``: 64 x 262,144 float32 softmax 6.4-6.5 -> 4.4-4.7 ms (52-55 -> 72-76 % of the
copy rate), 4 x 4,194,304 6.2-6.3 -> 5.5-5.6 ms; a single row of 16,777,216 on one thread
7.2 ms against 6.3 ms block by block on two."""


def long_rows_by_blocks(x: np.ndarray, out: np.ndarray, inv_t: Any, log: bool) -> None:
    """Rows longer than ``SPLIT`` block by block, so that a few huge rows use every thread:
    pass 1 over every block, the merge, pass 2 over every block."""
    rows, n = x.shape
    blocks = rows * ((n + SPLIT - 1) // SPLIT)
    block_max = np.empty(blocks, dtype=x.dtype)
    block_sum = np.empty(blocks, dtype=np.float64)
    run(long_row_blocks, blocks, x.size, x, out, inv_t, log, block_max, block_sum)
    shifts, totals = np.empty(rows, dtype=np.float64), np.empty(rows, dtype=np.float64)
    special = np.zeros(rows, dtype=np.bool_)
    long_row_merge(x, out, inv_t, log, readonly(block_max), readonly(block_sum), shifts, totals, special)
    run(long_row_finish, blocks, x.size, x, out, inv_t, log, readonly(block_max), readonly(shifts),
        readonly(totals), readonly(special))
