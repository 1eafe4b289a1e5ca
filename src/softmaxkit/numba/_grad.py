"""Row kernels for the softmax / log_softmax vector-Jacobian products (last axis, contiguous)."""

from __future__ import annotations

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


@kernel(fastmath=EXACT_FLAGS)
def log_softmax_vjp_rows(lp, g, out, start, stop):
    """``out = g - exp(lp) * sum(g)`` over entries with ``lp > -inf`` (0 at the others).

    ``lp`` must be below 40 (log-probabilities are at most 0), the domain of ``exp_small``.
    """
    for r in range(start, stop):
        total = lp.dtype.type(live_sum(lp[r], g[r]))
        live_difference(lp[r], g[r], out[r], total)
