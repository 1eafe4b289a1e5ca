"""Derivatives of softmax and log_softmax: products with the Jacobian, and the Jacobian itself.

With ``s = softmax(x)`` the Jacobian is ``J = diag(s) - s s^T``: symmetric, so the
vector-Jacobian and Jacobian-vector products are the same O(n) formula
``s * (v - sum(v * s))``. Excluded entries (``s == 0``) get exactly 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from softmaxkit._arrays import (
    Array,
    compute_dtype,
    constant,
    device_of,
    namespace,
    quiet_floating_point,
    rows_view,
)
from softmaxkit.generic._softmax import is_unit, softmax_rows


@quiet_floating_point
def softmax_vjp(s: Array, g: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``g^T J`` for ``s = softmax(x)`` over ``axes``: ``s * (g - sum(g * s))``."""
    xp = namespace(s)
    ct = compute_dtype(xp, dtype)
    s_c, g_c = xp.astype(s, ct), xp.astype(g, ct)
    dot = xp.sum(g_c * s_c, axis=axes, keepdims=True)
    return xp.astype(s_c * (g_c - dot), dtype)


def softmax_jvp(s: Array, v: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``J v`` for ``s = softmax(x)``; equal to the vjp because ``J`` is symmetric."""
    return softmax_vjp(s, v, axes, dtype=dtype)


@quiet_floating_point
def log_softmax_vjp(logp: Array, g: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``g^T J`` for ``logp = log_softmax(x)``: ``g - exp(logp) * sum(g)``.

    Entries where ``logp == -inf`` are excluded inputs whose output is the constant ``-inf``:
    their cotangent takes no part in the sum and they receive 0, so a fully masked row gets
    an all-zero gradient (SPEC §2), not ``g``.
    """
    xp = namespace(logp)
    ct = compute_dtype(xp, dtype)
    lp, g_c = xp.astype(logp, ct), xp.astype(g, ct)
    zero = constant(xp, 0.0, lp)
    live = lp != -np.inf
    g_live = xp.where(live, g_c, zero)
    total = xp.sum(g_live, axis=axes, keepdims=True)
    return xp.astype(xp.where(live, g_live - xp.exp(lp) * total, zero), dtype)


@quiet_floating_point
def softmax_jacobian(x: Array, axis: int, *, temperature: float, dtype: Any) -> Array:
    """The dense Jacobian ``(diag(s) - s s^T) / T``, shape ``(..., n, n)`` with the rows of ``axis``.

    The leading dimensions are those of ``x`` without ``axis``, in order.
    """
    xp = namespace(x)
    rows, _ = rows_view(xp, x, (axis,))
    lead = tuple(d for i, d in enumerate(x.shape) if i != axis)
    n = rows.shape[1]
    s = softmax_rows(xp, xp.astype(rows, compute_dtype(xp, dtype)), None, temperature, log=False)
    eye = xp.eye(n, dtype=s.dtype, device=device_of(s))
    jac = s[:, :, None] * eye - s[:, :, None] * s[:, None, :]
    if not is_unit(temperature):
        jac = jac / temperature
    return xp.reshape(xp.astype(jac, dtype), (*lead, n, n))
