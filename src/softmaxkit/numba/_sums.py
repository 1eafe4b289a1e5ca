"""Blocked reductions over contiguous spans: the vectorised inner loops of every kernel.

A span is summed in blocks of ``BLOCK`` elements. Inside a block the loop runs with
``reassoc`` so LLVM splits the sum over SIMD lanes (a fixed split for the compiled code, so
the result does not depend on threads); the block sums are added in float64 with Neumaier's
compensation (``add_compensated``, compiled without ``reassoc``, which would cancel it). The
error of a sum is then a few ulps whatever its length — the long-row requirement of SPEC §2.

Loops index slices from 0: Numba then knows indices are non-negative and emits no
wraparound test, which would stop LLVM from vectorising.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small, float_key, key_float

REDUCE_FLAGS = {"reassoc", "contract", "nsz"}
"""Flags of the inner loops: reassociation lets LLVM vectorise the sums (and only the sums)."""

BLOCK = 512


@njit(fastmath=EXACT_FLAGS, cache=True)
def add_compensated(total, carry, value):  # type: ignore[no-untyped-def]
    """Neumaier's step: ``total + carry`` stays the exact sum to within one rounding."""
    t = total + value
    if abs(total) >= abs(value):
        carry += (total - t) + value
    else:
        carry += (value - t) + total
    return t, carry


@njit(fastmath=EXACT_FLAGS, cache=True)
def shifted(v, shift, inv_t):  # type: ignore[no-untyped-def]
    """``(v - shift) * inv_t``, kept exact inside ``reassoc`` loops (no distribution over ``-``)."""
    return (v - shift) * inv_t


@njit(fastmath=EXACT_FLAGS, cache=True)
def span_max(x, lo, hi):  # type: ignore[no-untyped-def]
    """The largest of ``x[lo:hi]``; ``-inf`` when empty; a NaN may or may not win.

    The max runs over order-preserving integer keys: integer reductions vectorise without
    fast-math flags. Callers never rely on NaN here — a NaN reaches every row's sum.
    """
    xs = x[lo:hi]
    key = float_key(x.dtype.type(-np.inf))
    for i in range(xs.size):
        k = float_key(xs[i])
        key = k if k > key else key
    return key_float(key)


@njit(fastmath=REDUCE_FLAGS, cache=True)
def _block_sum_exp(x, lo, hi, shift, inv_t):  # type: ignore[no-untyped-def]
    xs = x[lo:hi]
    s = x.dtype.type(0.0)
    for i in range(xs.size):
        s += exp_small(shifted(xs[i], shift, inv_t))
    return s


@njit(fastmath=REDUCE_FLAGS, cache=True)
def _block_store_exp(x, out, lo, hi, shift, inv_t):  # type: ignore[no-untyped-def]
    xs, os = x[lo:hi], out[lo:hi]
    s = x.dtype.type(0.0)
    for i in range(xs.size):
        e = exp_small(shifted(xs[i], shift, inv_t))
        os[i] = e
        s += e
    return s


@njit(fastmath=EXACT_FLAGS, cache=True)
def sum_exp(x, lo, hi, shift, inv_t):  # type: ignore[no-untyped-def]
    """``sum(exp((x[lo:hi] - shift) * inv_t))`` in float64 (NaN if a term is NaN)."""
    total, carry = 0.0, 0.0
    for b in range(lo, hi, BLOCK):
        total, carry = add_compensated(
            total, carry, np.float64(_block_sum_exp(x, b, min(b + BLOCK, hi), shift, inv_t)))
    return total + carry


@njit(fastmath=EXACT_FLAGS, cache=True)
def store_exp(x, out, lo, hi, shift, inv_t):  # type: ignore[no-untyped-def]
    """Write ``exp((x - shift) * inv_t)`` into ``out[lo:hi]``; return their float64 sum."""
    total, carry = 0.0, 0.0
    for b in range(lo, hi, BLOCK):
        total, carry = add_compensated(
            total, carry, np.float64(_block_store_exp(x, out, b, min(b + BLOCK, hi), shift, inv_t)))
    return total + carry


@njit(fastmath=REDUCE_FLAGS, cache=True)
def _block_sum(x, lo, hi):  # type: ignore[no-untyped-def]
    xs = x[lo:hi]
    s = x.dtype.type(0.0)
    for i in range(xs.size):
        s += xs[i]
    return s


@njit(fastmath=REDUCE_FLAGS, cache=True)
def _block_dot(x, y, lo, hi):  # type: ignore[no-untyped-def]
    xs, ys = x[lo:hi], y[lo:hi]
    s = x.dtype.type(0.0)
    for i in range(xs.size):
        s += xs[i] * ys[i]
    return s


@njit(fastmath=EXACT_FLAGS, cache=True)
def span_dot(x, y, lo, hi):  # type: ignore[no-untyped-def]
    """``sum(x[lo:hi] * y[lo:hi])`` in float64, blocked and compensated."""
    total, carry = 0.0, 0.0
    for b in range(lo, hi, BLOCK):
        total, carry = add_compensated(total, carry, np.float64(_block_dot(x, y, b, min(b + BLOCK, hi))))
    return total + carry


@njit(fastmath=EXACT_FLAGS, cache=True)
def span_sum(x, lo, hi):  # type: ignore[no-untyped-def]
    """``sum(x[lo:hi])`` in float64, blocked and compensated."""
    total, carry = 0.0, 0.0
    for b in range(lo, hi, BLOCK):
        total, carry = add_compensated(total, carry, np.float64(_block_sum(x, b, min(b + BLOCK, hi))))
    return total + carry


@njit(fastmath=EXACT_FLAGS, cache=True)
def scale_span(out, lo, hi, factor):  # type: ignore[no-untyped-def]
    """``out[lo:hi] *= factor``."""
    os = out[lo:hi]
    for i in range(os.size):
        os[i] *= factor


@njit(fastmath=EXACT_FLAGS, cache=True)
def store_log(x, out, lo, hi, shift, inv_t, lse):  # type: ignore[no-untyped-def]
    """``out[lo:hi] = (x - shift) * inv_t - lse`` (log_softmax's last pass)."""
    xs, os = x[lo:hi], out[lo:hi]
    for i in range(xs.size):
        os[i] = (xs[i] - shift) * inv_t - lse


@njit(fastmath=EXACT_FLAGS, cache=True)
def store_scaled_exp(x, out, lo, hi, shift, inv_t, factor):  # type: ignore[no-untyped-def]
    """``out[lo:hi] = exp((x - shift) * inv_t) * factor`` (softmax's last pass over long rows)."""
    xs, os = x[lo:hi], out[lo:hi]
    for i in range(xs.size):
        os[i] = exp_small(shifted(xs[i], shift, inv_t)) * factor
