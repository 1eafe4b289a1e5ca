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
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``."""
    xp = namespace(x)
    xc = xp.astype(x, compute_dtype(xp, dtype))
    zero = constant(xp, 0.0, xc)
    return xp.astype(xp.maximum(xc, zero) + xp.log1p(xp.exp(-xp.abs(xc))), dtype)


@quiet_floating_point
def log_sigmoid(x: Array, *, dtype: Any) -> Array:
    """``log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|))``, i.e. ``-softplus(-x)``."""
    xp = namespace(x)
    xc = xp.astype(x, compute_dtype(xp, dtype))
    zero = constant(xp, 0.0, xc)
    return xp.astype(xp.minimum(xc, zero) - xp.log1p(xp.exp(-xp.abs(xc))), dtype)
