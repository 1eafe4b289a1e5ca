"""The two-class members of the family: sigmoid, log_sigmoid, softplus.

``sigmoid(z)`` is ``softmax([z, 0])[0]``. Each is written on ``exp(-|x|)``, which never
overflows, so every finite input gives a finite, accurate answer.
"""

from __future__ import annotations

from typing import Any

from softmaxkit._arrays import Array, compute_dtype, constant, namespace, quiet_floating_point


@quiet_floating_point
def sigmoid(x: Array, *, dtype: Any) -> Array:
    """``1 / (1 + exp(-x))``, as ``e / (1 + e)`` with ``e = exp(x)`` for negative ``x``."""
    xp = namespace(x)
    xc = xp.astype(x, compute_dtype(xp, dtype))
    e = xp.exp(-xp.abs(xc))
    one = constant(xp, 1.0, xc)
    return xp.astype(xp.where(xc >= 0, one, e) / (one + e), dtype)


@quiet_floating_point
def softplus(x: Array, *, dtype: Any) -> Array:
    """``log(1 + exp(x))``: ``x + log1p(exp(-x))`` for ``x > 0``, ``log1p(exp(x))`` otherwise."""
    xp = namespace(x)
    xc = xp.astype(x, compute_dtype(xp, dtype))
    positive = xc > 0
    # The two branches as selections, not max(x, 0) + log1p(exp(-|x|)) (the same numbers): the
    # kinks of max and |x| at 0 cancel in value but not under automatic differentiation, which
    # gave softplus'(0) = 0 instead of 1/2. Each branch sees only inputs where exp cannot overflow.
    zero = constant(xp, 0.0, xc)
    above, below = xp.where(positive, xc, zero), xp.where(positive, zero, xc)
    return xp.astype(xp.where(positive, above + xp.log1p(xp.exp(-above)), xp.log1p(xp.exp(below))), dtype)


@quiet_floating_point
def log_sigmoid(x: Array, *, dtype: Any) -> Array:
    """``log(sigmoid(x)) = -softplus(-x)``: ``x - log1p(exp(x))`` for ``x < 0``, else ``-log1p(exp(-x))``."""
    xp = namespace(x)
    xc = xp.astype(x, compute_dtype(xp, dtype))
    negative = xc < 0
    zero = constant(xp, 0.0, xc)  # selections, not min(x, 0) - ...: see softplus
    below, above = xp.where(negative, xc, zero), xp.where(negative, zero, xc)
    return xp.astype(xp.where(negative, below - xp.log1p(xp.exp(below)), zero - xp.log1p(xp.exp(-above))),
                     dtype)
