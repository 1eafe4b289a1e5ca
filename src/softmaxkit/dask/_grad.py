"""Products with the Jacobians of softmax and log_softmax, of Dask arrays, lazily.

Each is elementwise work around one row sum. Whole rows: each block on its local engine.
Rows split across chunks are a gap of this engine in the registry: the generic engine's
formula then runs on the Dask arrays themselves, where Dask's own tree sum does the row sums.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from softmaxkit._arrays import Array, quiet_floating_point
from softmaxkit._engines import call_engine
from softmaxkit.dask._blocks import meta


def softmax_vjp(s: Array, g: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``s * (g - sum(g * s))`` over ``axes``: the backward pass of softmax."""
    return _product("softmax_vjp", s, g, axes, dtype)


def softmax_jvp(s: Array, v: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``J v`` for ``s = softmax(x)``; the Jacobian is symmetric, so this is the vjp."""
    return _product("softmax_jvp", s, v, axes, dtype)


def log_softmax_vjp(logp: Array, g: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``g - exp(logp) * sum(g)`` over ``axes``, excluded entries (``logp == -inf``) 0."""
    return _product("log_softmax_vjp", logp, g, axes, dtype)


def _product(function: str, first: Array, g: Array, axes: tuple[int, ...], dtype: Any) -> Array:
    import dask.array as da

    block = partial(_product_block, function=function, axes=axes, dtype=dtype)
    return da.map_blocks(block, first, g.rechunk(first.chunks), meta=meta(first, dtype), token=function)


@quiet_floating_point
def _product_block(first: Array, g: Array, *, function: str, axes: tuple[int, ...], dtype: Any) -> Array:
    return call_engine(function, None, first, g, axes, dtype=dtype)
