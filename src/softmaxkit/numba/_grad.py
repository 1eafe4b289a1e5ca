"""Row kernels for the softmax / log_softmax vector-Jacobian products (last axis, contiguous)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from softmaxkit.numba._exp import EXACT_FLAGS, exp_small
from softmaxkit.numba._sums import REDUCE_FLAGS, span_dot


@njit(fastmath=EXACT_FLAGS, cache=True)
def _scale_difference(s, g, out, dot):
    for i in range(s.size):
        out[i] = s[i] * (g[i] - dot)


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def softmax_vjp_rows(s, g, out):
    """``out = s * (g - sum(g * s))`` row by row; the sum in float64, blocked and compensated."""
    for r in prange(s.shape[0]):
        dot = s.dtype.type(span_dot(g[r], s[r]))
        _scale_difference(s[r], g[r], out[r], dot)


@njit(fastmath=REDUCE_FLAGS, cache=True)
def _live_sum(lp, g):
    total = 0.0
    for i in range(lp.size):
        total += 0.0 if lp[i] == -np.inf else np.float64(g[i])
    return total


@njit(fastmath=EXACT_FLAGS, cache=True)
def _live_difference(lp, g, out, total):
    zero = lp.dtype.type(0.0)
    for i in range(lp.size):
        out[i] = zero if lp[i] == -np.inf else g[i] - exp_small(lp[i]) * total


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def log_softmax_vjp_rows(lp, g, out):
    """``out = g - exp(lp) * sum(g)`` over entries with ``lp > -inf`` (0 at the others).

    ``lp`` must be below 40 (log-probabilities are at most 0), the domain of ``exp_small``.
    """
    for r in prange(lp.shape[0]):
        total = lp.dtype.type(_live_sum(lp[r], g[r]))
        _live_difference(lp[r], g[r], out[r], total)
