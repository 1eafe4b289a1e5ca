"""Blocked reductions over contiguous spans: the vectorised inner loops of every kernel.

A span is summed in blocks of ``BLOCK`` elements. Inside a block the loop runs with
``reassoc`` so LLVM splits the sum over SIMD lanes (a fixed split for the compiled code, so
the result does not depend on threads); the block sums are added in float64 with Neumaier's
compensation (``add_compensated``, compiled without ``reassoc``, which would cancel it). The
error of a sum is then a few ulps whatever its length — the long-row requirement of SPEC §2.

Functions take whole (sliced) arrays and loop from 0: Numba then knows indices are
non-negative and emits no wraparound test, which would stop LLVM from vectorising.
"""

from __future__ import annotations

import numpy as np

from softmaxkit.numba._exp import EXACT_FLAGS, exp32_for_half, exp_small, float_key, key_float
from softmaxkit.numba._jit import helper
from softmaxkit.numba._prefetch import prefetch_bytes

REDUCE_FLAGS = {"reassoc", "contract", "nsz"}
"""Flags of the inner loops: reassociation lets LLVM vectorise the sums (and only the sums)."""

BLOCK = 512


@helper(fastmath=EXACT_FLAGS)
def add_compensated(total, carry, value):
    """Neumaier's step: ``total + carry`` stays the exact sum to within one rounding."""
    t = total + value
    if abs(total) >= abs(value):
        carry += (total - t) + value
    else:
        carry += (value - t) + total
    return t, carry


@helper(fastmath=EXACT_FLAGS)
def shifted(v, shift, inv_t):
    """``(v - shift) * inv_t``, kept exact inside ``reassoc`` loops (no distribution over ``-``)."""
    return (v - shift) * inv_t


@helper(fastmath=EXACT_FLAGS)
def span_max(x):
    """The largest entry of ``x``; ``-inf`` when empty; a NaN may or may not win.

    The max runs over order-preserving integer keys: integer reductions vectorise without
    fast-math flags. Callers never rely on NaN here — a NaN reaches every row's sum.
    """
    key = float_key(x.dtype.type(-np.inf))
    for i in range(x.size):
        k = float_key(x[i])
        key = k if k > key else key
    return key_float(key)


@helper(fastmath=EXACT_FLAGS)
def exp_of_dtype(z):
    """:func:`~softmaxkit.numba._exp.exp_small` as a function value, for the helpers below
    that take their ``exp`` as an argument (Numba compiles them once per function passed)."""
    return exp_small(z)


@helper(fastmath=REDUCE_FLAGS)
def _block_sum_exp(x, shift, inv_t, exp):
    s = x.dtype.type(0.0)
    for i in range(x.size):
        s += exp(shifted(x[i], shift, inv_t))
    return s


@helper(fastmath=REDUCE_FLAGS)
def _block_store_exp(x, out, shift, inv_t, exp):
    s = x.dtype.type(0.0)
    for i in range(x.size):
        e = exp(shifted(x[i], shift, inv_t))
        out[i] = e
        s += e
    return s


@helper(fastmath=REDUCE_FLAGS)
def _block_exp_in_place(x, shift, inv_t, exp):
    s = x.dtype.type(0.0)
    for i in range(x.size):
        e = exp(shifted(x[i], shift, inv_t))
        x[i] = e
        s += e
    return s


@helper(fastmath=EXACT_FLAGS)
def _ahead(next_x, next_out, count, itemsize, b):
    """Prefetch elements ``b .. b + BLOCK`` of the next span (addresses ``next_x`` and, to be
    written, ``next_out``; ``count`` elements) while this span's block ``b`` computes."""
    if b < count:
        nbytes = min(BLOCK, count - b) * itemsize
        offset = np.uint64(b * itemsize)
        prefetch_bytes(next_x + offset, nbytes, 0)
        prefetch_bytes(next_out + offset, nbytes, 1)


NEAR_BYTES = 4096
"""An ``out`` that starts fewer bytes than this after ``x`` is computed in place (:func:`into_place`)."""


@helper(fastmath=EXACT_FLAGS)
def into_place(x, out):
    """Whether :func:`store_exp` runs its in-place loop on ``out``: when ``out`` is ``x``, or
    starts less than ``NEAR_BYTES`` after it (``x`` is then copied into ``out`` first).

    LLVM guards a loop that reads ``x`` and writes ``out`` with a runtime test, and runs its
    scalar version when ``out`` starts fewer bytes after ``x`` than one vector iteration
    covers (256 here): a possible overlap, for all it knows. The scalar loop sums in another
    order, so the bits depended on where the allocator had put two separate arrays (a
    float32 row of 33 entries with ``out`` 196 bytes after ``x``; the scratch rows of the
    half-precision cross_entropy kernel, allocated one after the other). The in-place loop has
    no such test and gives the bits of the vector loop.
    """
    gap = np.uint64(out.ctypes.data) - np.uint64(x.ctypes.data)  # wraps when out is before x
    if gap == 0:
        return True
    if gap < NEAR_BYTES:
        for i in range(x.size):
            out[i] = x[i]
        return True
    return False


@helper(fastmath=EXACT_FLAGS)
def sum_exp_ahead(x, shift, inv_t, next_x, next_out, count):
    """:func:`sum_exp`, prefetching the next span meanwhile (see :mod:`._prefetch`): ``count``
    elements at ``next_x`` (read next) and ``next_out`` (written next); ``count = 0``: none."""
    total, carry = 0.0, 0.0
    for b in range(0, x.size, BLOCK):
        _ahead(next_x, next_out, count, x.itemsize, b)
        total, carry = add_compensated(
            total, carry, np.float64(_block_sum_exp(x[b:b + BLOCK], shift, inv_t, exp_of_dtype)))
    return total + carry


@helper(fastmath=EXACT_FLAGS)
def sum_exp(x, shift, inv_t):
    """``sum(exp((x - shift) * inv_t))`` in float64 (NaN if a term is NaN).

    The loop of :func:`sum_exp_ahead` without its prefetches, for the kernels that do not
    prefetch: calling that one with nothing to prefetch added its code to their compiles
    (cross_entropy with gradient, empty cache: 0.8 -> 1.4 s of CPU).
    """
    return _sum_exp_with(x, shift, inv_t, exp_of_dtype)


@helper(fastmath=EXACT_FLAGS)
def sum_exp_rounded_to_half(x, shift, inv_t):
    """:func:`sum_exp` of float32 ``x`` whose results are rounded to half precision, with
    :func:`~softmaxkit.numba._exp.exp32_for_half` (exact enough for them, and cheaper)."""
    return _sum_exp_with(x, shift, inv_t, exp32_for_half)


@helper(fastmath=EXACT_FLAGS)
def _sum_exp_with(x, shift, inv_t, exp):
    total, carry = 0.0, 0.0
    for b in range(0, x.size, BLOCK):
        total, carry = add_compensated(
            total, carry, np.float64(_block_sum_exp(x[b:b + BLOCK], shift, inv_t, exp)))
    return total + carry


@helper(fastmath=EXACT_FLAGS)
def store_exp_ahead(x, out, shift, inv_t, next_x, next_out, count):
    """:func:`store_exp`, prefetching the next span meanwhile, as :func:`sum_exp_ahead`."""
    total, carry = 0.0, 0.0
    if into_place(x, out):
        for b in range(0, x.size, BLOCK):
            _ahead(next_x, next_out, count, x.itemsize, b)
            total, carry = add_compensated(
                total, carry, np.float64(_block_exp_in_place(out[b:b + BLOCK], shift, inv_t, exp_of_dtype)))
    else:
        for b in range(0, x.size, BLOCK):
            _ahead(next_x, next_out, count, x.itemsize, b)
            total, carry = add_compensated(total, carry, np.float64(
                _block_store_exp(x[b:b + BLOCK], out[b:b + BLOCK], shift, inv_t, exp_of_dtype)))
    return total + carry


@helper(fastmath=EXACT_FLAGS)
def store_exp(x, out, shift, inv_t):
    """Write ``exp((x - shift) * inv_t)`` into ``out``; return their float64 sum.

    ``out`` may be ``x`` itself. That case has its own loop: with two names for one array,
    LLVM's overlap check would route the loop to its scalar version, summing in another
    order — slower, and the sum of a block would lose its lane-wise split (see
    :func:`into_place`). The loop of :func:`store_exp_ahead` without its prefetches (see
    :func:`sum_exp`).
    """
    return _store_exp_with(x, out, shift, inv_t, exp_of_dtype)


@helper(fastmath=EXACT_FLAGS)
def store_exp_rounded_to_half(x, out, shift, inv_t):
    """:func:`store_exp` of float32 ``x`` whose results are rounded to half precision, as
    :func:`sum_exp_rounded_to_half`."""
    return _store_exp_with(x, out, shift, inv_t, exp32_for_half)


@helper(fastmath=EXACT_FLAGS)
def _store_exp_with(x, out, shift, inv_t, exp):
    total, carry = 0.0, 0.0
    if into_place(x, out):
        for b in range(0, x.size, BLOCK):
            total, carry = add_compensated(
                total, carry, np.float64(_block_exp_in_place(out[b:b + BLOCK], shift, inv_t, exp)))
        return total + carry
    for b in range(0, x.size, BLOCK):
        total, carry = add_compensated(
            total, carry, np.float64(_block_store_exp(x[b:b + BLOCK], out[b:b + BLOCK], shift, inv_t, exp)))
    return total + carry


@helper(fastmath=REDUCE_FLAGS)
def _block_dot(x, y):
    s = x.dtype.type(0.0)
    for i in range(x.size):
        s += x[i] * y[i]
    return s


@helper(fastmath=EXACT_FLAGS)
def compensated_total(total, carry):
    """``total + carry``, or ``total`` itself when it is infinite or NaN: an infinite term
    makes Neumaier's carry ``inf - inf = NaN``, while the sum is the infinity (the plain
    sum's answer, and the generic engine's)."""
    return total + carry if total - total == 0.0 else total


@helper(fastmath=EXACT_FLAGS)
def span_dot(x, y):
    """``sum(x * y)`` in float64, blocked and compensated (an infinite sum stays infinite)."""
    total, carry = 0.0, 0.0
    for b in range(0, x.size, BLOCK):
        total, carry = add_compensated(total, carry, np.float64(_block_dot(x[b:b + BLOCK], y[b:b + BLOCK])))
    return compensated_total(total, carry)


@helper(fastmath=EXACT_FLAGS)
def scale_span(out, factor):
    """``out *= factor``."""
    for i in range(out.size):
        out[i] *= factor


HUGE_SHIFT = 2.0**64
"""Below this row maximum ``x - max`` cannot overflow in float32 (that needs a max of 2**103)
nor in float64."""


@helper(fastmath=EXACT_FLAGS)
def halves_needed(shift, inv_t):
    """Whether ``x - shift`` may overflow to ``-inf`` where ``(x - shift) * inv_t`` is finite:
    a huge row maximum and ``T > 1``. Then ``(x/2 - shift/2) * (2 inv_t)`` is computed instead
    (the same bits wherever ``x - shift`` is finite: halving is exact there)."""
    return inv_t < 1.0 and shift > HUGE_SHIFT


@helper(fastmath=EXACT_FLAGS)
def store_log(x, out, shift, inv_t, lse):
    """``out = (x - shift) * inv_t - lse`` (log_softmax's last pass); ``out`` may be ``x``.

    In place has its own loop, as in :func:`store_exp`: LLVM's overlap check would otherwise
    send it to the scalar loop (measured: 6.3 ms instead of 5.6 ms on 8,192 x 1,024 float32).
    """
    if halves_needed(shift, inv_t):
        h, t2 = x.dtype.type(0.5), inv_t * x.dtype.type(2.0)
        sh = shift * h
        for i in range(x.size):
            out[i] = (x[i] * h - sh) * t2 - lse
        return
    if x.ctypes.data == out.ctypes.data:
        for i in range(out.size):
            out[i] = (out[i] - shift) * inv_t - lse
        return
    for i in range(x.size):
        out[i] = (x[i] - shift) * inv_t - lse

