"""The array-API reference sampler: the filters by one stable sort of each row, then draws.

Readable rather than fast (it sorts every row, as the usual recipe does): it defines the kept
set for any array library (JAX, CUDA tensors, array-api-strict, ...) and is the sort-based
reference the Numba kernels are tested against. Inputs are ``(rows, n)``; per-row
parameters are ``(rows, 1)`` arrays of the same library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from softmaxkit._arrays import Array, constant, device_of, namespace, quiet_floating_point
from softmaxkit.sampling._params import EMPTY, HAS_NAN, OK


def _jax_narrow(xp: Any) -> bool:
    """JAX without x64 has no float64 or int64 (asking for them warns and truncates)."""
    import array_api_compat

    if not array_api_compat.is_jax_namespace(xp):
        return False
    import jax

    return not jax.config.read("jax_enable_x64")


def wide_float(xp: Any, like: Array) -> Any:
    """The dtype of the weights and their sums: float64 where the library has it."""
    return like.dtype if _jax_narrow(xp) else xp.float64


def index_dtype(xp: Any) -> Any:
    """int64, or int32 where the library has nothing wider (JAX without x64)."""
    return xp.int32 if _jax_narrow(xp) else xp.int64


@quiet_floating_point
def sorted_weights(
    x: Array, mask: Array | None, inv_t: Array, top_k: Array, top_p: Array, min_p: Array,
) -> tuple[Array, Array, np.ndarray]:
    """``(keep, weights, status)``: the kept set and the weights ``exp((x - max) / T)`` (0 where
    not kept) in index order, and each row's status code."""
    xp = namespace(x)
    n = x.shape[1]
    included = mask if mask is not None else xp.ones(x.shape, dtype=xp.bool, device=device_of(x))
    nan_rows = xp.any(xp.isnan(x) & included, axis=1)
    neg = constant(xp, -np.inf, x)
    valid = included & (x > neg)
    count = xp.sum(xp.astype(valid, index_dtype(xp)), axis=1)
    status = np.where(np.asarray(_host(nan_rows)), HAS_NAN,
                      np.where(np.asarray(_host(count)) == 0, EMPTY, OK))
    if n == 0:  # no classes: every row EMPTY (an error), and none to rank when there are no rows
        nothing = xp.zeros(x.shape, dtype=xp.bool, device=device_of(x))
        return nothing, xp.zeros(x.shape, dtype=wide_float(xp, x), device=device_of(x)), status
    # Stable and descending: equal values keep index order, so the lower index ranks first.
    order = xp.argsort(xp.where(valid, x, neg), axis=1, descending=True, stable=True)
    sx = xp.take_along_axis(x, order, axis=1)
    svalid = xp.take_along_axis(valid, order, axis=1)
    m = sx[:, :1]
    # 1/T is applied in x's dtype, where it may overflow (float16 from T = 1.5e-5, float32
    # from 3e-39): that is the T -> 0 limit as well, the argmax indicator, and not 0 * inf.
    inv_t = xp.astype(inv_t, x.dtype)
    indicator = (m == constant(xp, np.inf, x)) | (inv_t == constant(xp, np.inf, inv_t))
    safe_t = xp.where(indicator, xp.zeros_like(inv_t), inv_t)
    safe_m = xp.where(indicator | ~svalid[:, :1], xp.zeros_like(m), m)
    z = (sx - safe_m) * safe_t
    wide = wide_float(xp, x)
    w = xp.where(indicator, xp.astype(sx == m, wide), xp.astype(xp.exp(z), wide))
    w = xp.where(svalid, w, xp.zeros_like(w))
    rank = xp.reshape(xp.arange(n, device=device_of(x)), (1, n))
    keep = svalid & (rank < top_k)
    kept_w = xp.where(keep, w, xp.zeros_like(w))
    total = xp.sum(kept_w, axis=1, keepdims=True)
    before = xp.cumulative_sum(kept_w, axis=1) - kept_w
    # The crossing entry is the last whose preceding mass is still short of p: it is kept.
    keep = keep & ((before < xp.astype(top_p, wide) * total) | (top_p >= 1.0))
    keep = keep & (w >= xp.astype(min_p, wide))
    inverse = xp.argsort(order, axis=1)
    keep = xp.take_along_axis(keep, inverse, axis=1)
    weights = xp.where(keep, xp.take_along_axis(w, inverse, axis=1), xp.zeros_like(w))
    return keep, weights, status


def _host(a: Array) -> Any:
    """A small array's values on the host (via DLPack-free conversion every library supports)."""
    if hasattr(a, "cpu"):
        return a.cpu()
    return a


@quiet_floating_point
def draw(weights: Array, u: Array, replacement: bool) -> tuple[Array, np.ndarray]:
    """Indices drawn by inverse CDF, one uniform in ``[0, 1)`` per draw: ``(indices, too_few)``."""
    xp = namespace(weights)
    rows, n = weights.shape
    if rows == 0:  # nothing to draw; with no classes either, the max below would have no identity
        return xp.zeros((0, u.shape[1]), dtype=index_dtype(xp), device=device_of(weights)), np.zeros(0, bool)
    positions = xp.reshape(xp.arange(n, device=device_of(weights)), (1, n))
    zero = xp.zeros_like(weights)
    too_few = np.asarray(_host(xp.sum(xp.astype(weights > zero, index_dtype(xp)), axis=1))) < u.shape[1]
    picks = []
    for d in range(u.shape[1]):
        cdf = xp.cumulative_sum(weights, axis=1)
        target = xp.astype(u[:, d : d + 1], weights.dtype) * cdf[:, -1:]
        first = xp.sum(xp.astype(cdf <= target, index_dtype(xp)), axis=1, keepdims=True)
        # Rounding can leave the target at the total: take the last positive weight then.
        last = xp.max(xp.where(weights > zero, positions, xp.full_like(positions, -1)), axis=1,
                      keepdims=True)
        index = xp.minimum(first, last)
        picks.append(index)
        if not replacement:
            weights = xp.where(positions == index, zero, weights)
    return xp.concat(picks, axis=1), too_few

