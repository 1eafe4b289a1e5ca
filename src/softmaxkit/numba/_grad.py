"""Row kernels for the softmax / log_softmax vector-Jacobian products (last axis, contiguous)."""

from __future__ import annotations

import math

import numpy as np

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small
from softmaxkit.numba._jit import helper, kernel
from softmaxkit.numba._sums import REDUCE_FLAGS, span_dot


@helper(fastmath=EXACT_FLAGS)
def scale_difference(s, g, out, dot):
    for i in range(s.size):
        out[i] = s[i] * (g[i] - dot)


@kernel(fastmath=EXACT_FLAGS)
def softmax_vjp_rows(s, g, out, start, stop):
    """``out = s * (g - sum(g * s))`` for rows ``start .. stop``; the sum in float64, blocked
    and compensated."""
    softmax_vjp_range(s, g, out, start, stop)


@helper(fastmath=EXACT_FLAGS)
def softmax_vjp_range(s, g, out, start, stop):
    """The body of :func:`softmax_vjp_rows`, inlined into each kernel that runs it."""
    for r in range(start, stop):
        dot = s.dtype.type(span_dot(g[r], s[r]))
        scale_difference(s[r], g[r], out[r], dot)


@helper(fastmath=REDUCE_FLAGS)
def live_sum(lp, g):
    total = 0.0
    for i in range(lp.size):
        total += 0.0 if lp[i] == -np.inf else np.float64(g[i])
    return total


@helper(fastmath=EXACT_FLAGS)
def live_difference(lp, g, out, total):
    zero = lp.dtype.type(0.0)
    for i in range(lp.size):
        out[i] = zero if lp[i] == -np.inf else g[i] - exp_small(lp[i]) * total


EXP_LIMIT = 40.0
"""``exp_small`` is accurate below this (its domain). Log-probabilities never reach it (they are
at most 0); entries of a vjp's ``lp`` that do are redone with libm's ``exp``."""


@helper(fastmath=REDUCE_FLAGS)
def count_beyond_exp(lp):
    """How many entries of ``lp`` are ``EXP_LIMIT`` or more (NaN is not: ``exp_small`` gives NaN)."""
    c = 0
    for i in range(lp.size):
        c += 1 if lp[i] >= EXP_LIMIT else 0
    return c


@helper(fastmath=EXACT_FLAGS)
def exp_beyond(v):
    """``exp`` of an entry of ``EXP_LIMIT`` or more: libm's, in float64 (``inf`` past its range)."""
    return math.exp(np.float64(v))


@helper(fastmath=EXACT_FLAGS)
def redo_beyond_exp(lp, g, out, total):
    """:func:`live_difference` again at the entries of ``lp`` of ``EXP_LIMIT`` or more, with
    :func:`exp_beyond`. For real log-probabilities this is one vectorised count over a row in
    cache; it replaces a pass of its own over the whole array that sent such inputs elsewhere."""
    if count_beyond_exp(lp) == 0:
        return
    for i in range(lp.size):
        if lp[i] >= EXP_LIMIT:
            out[i] = g[i] - out.dtype.type(exp_beyond(lp[i])) * total


@kernel(fastmath=EXACT_FLAGS)
def log_softmax_vjp_rows(lp, g, out, start, stop):
    """``out = g - exp(lp) * sum(g)`` over entries with ``lp > -inf`` (0 at the others), for any
    ``lp`` (:func:`redo_beyond_exp`)."""
    log_softmax_vjp_range(lp, g, out, start, stop)


@helper(fastmath=EXACT_FLAGS)
def log_softmax_vjp_range(lp, g, out, start, stop):
    """The body of :func:`log_softmax_vjp_rows`, inlined into each kernel that runs it."""
    for r in range(start, stop):
        total = lp.dtype.type(live_sum(lp[r], g[r]))
        live_difference(lp[r], g[r], out[r], total)
        redo_beyond_exp(lp[r], g[r], out[r], total)
