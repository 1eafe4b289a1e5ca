"""softmax, log_softmax and logsumexp of Dask arrays whose reduced axes may span many chunks.

Rows that one chunk holds whole need no reduction: each block is computed by the local engine
of its chunk type (:func:`softmaxkit._engines.call_engine` on the block, so NumPy blocks run
on the Numba engine when it is installed). A row split across chunks takes two steps. Each
chunk yields per-row partial results, Dask's tree reduction merges them, and one blockwise
pass turns each block into its part of the result. For softmax the partial result is the
online normaliser's pair ``(max, sum of exp((x - max) / T))`` (Milakov & Gimelshein, "Online
normalizer calculation for softmax", 2018); its merge is associative, so any reduction tree
gives the same value up to rounding::

    (m1, s1) + (m2, s2) = (m, s1 * e^((m1 - m)/T) + s2 * e^((m2 - m)/T)),   m = max(m1, m2)

A pair whose max equals the merged max keeps its sum unscaled, which settles the rows SPEC §2
singles out without an ``inf - inf``: all ``-inf`` (the sum stays 0), ``+inf`` (the sum counts
the ``+inf`` entries, which share the mass), NaN (the max is NaN and so is every scaled sum).

Both steps of a split row run on the local engine of each block too: the engine contract's
functions for pieces of rows (``softmax_pairs``, ``softmax_from_pairs``), which the generic
engine defines for every array library and the Numba engine compiles for NumPy blocks. Only
the merge of the pairs, a few numbers per row, is array-API code here.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from softmaxkit._arrays import (
    Array,
    compute_dtype,
    constant,
    device_of,
    namespace,
    quiet_floating_point,
    reduced_shape,
    rows_view,
)
from softmaxkit._engines import call_engine
from softmaxkit._rules import logsumexp_from_parts, split_at_max, store
from softmaxkit.dask._blocks import field, gather, meta, rows_whole
from softmaxkit.generic._temperature import scaled_difference


def softmax(
    x: Array,
    axes: tuple[int, ...],
    *,
    where: Array | None,
    temperature: float,
    dtype: Any,
    out: Array | None,
    log: bool,
) -> Array:
    """softmax (``log=False``) or log_softmax (``log=True``) of a Dask array over ``axes``, lazily."""
    import dask.array as da

    xp = namespace(x)
    if math.prod(x.shape) == 0:
        return store(xp, xp.astype(x, dtype), out)
    if rows_whole(x, axes):
        mask = None if where is None else where.rechunk(x.chunks)
        block = partial(_softmax_block, axes=axes, temperature=temperature, dtype=dtype, log=log)
        result = da.map_blocks(block, x, mask, meta=meta(x, dtype), token="softmax-blocks")
        return store(xp, result, out)
    ct = compute_dtype(xp, dtype)
    xc = xp.astype(x, ct)
    if where is not None:
        xc = da.where(where, xc, -np.inf)  # excluded entries are -inf in every step below
    pairs = da.reduction(
        xc,
        partial(_pair_of_chunk, temperature=temperature),
        partial(_merged_pairs, temperature=temperature),
        axis=axes,
        keepdims=True,
        dtype=ct,
        concatenate=False,
        meta=meta(x, ct),
        name="softmax-pairs",
    )
    normalise = partial(_normalised_block, axes=axes, temperature=temperature, dtype=dtype, log=log)
    return store(xp, da.map_blocks(normalise, xc, pairs, meta=meta(x, dtype), token="softmax"), out)


@quiet_floating_point
def _softmax_block(
    block: Array, mask: Array | None, *, axes: tuple[int, ...], temperature: float, dtype: Any, log: bool
) -> Array:
    return call_engine(
        "softmax", None, block, axes, where=mask, temperature=temperature, dtype=dtype, out=None, log=log
    )


@quiet_floating_point
def _pair_of_chunk(
    block: Array, axis: tuple[int, ...], keepdims: bool, temperature: float, computing_meta: bool = False
) -> Any:
    """``(max, sum of exp((x - max) / T))`` of each row's piece in this chunk."""
    if computing_meta:  # Dask probing the result's type with an empty array
        return block
    row_max, total = call_engine("softmax_pairs", None, block, axis, temperature=temperature)
    return {"max": row_max, "sumexp": total}


@quiet_floating_point
def _merged_pairs(
    parts: Any, axis: tuple[int, ...], keepdims: bool, temperature: float
) -> dict[str, Array]:
    maxima, sums = gather(parts, "max", axis), gather(parts, "sumexp", axis)
    xp = namespace(maxima)
    row_max = xp.max(maxima, axis=axis, keepdims=True)
    # A +inf row max leaves the finite pieces exp(-inf) = 0; NaN spreads.
    scaled = xp.where(maxima == row_max, sums,
                      sums * xp.exp(scaled_difference(xp, maxima, row_max, temperature)))
    return {"max": row_max, "sumexp": xp.sum(scaled, axis=axis, keepdims=True)}


@quiet_floating_point
def _normalised_block(
    block: Array, pairs: dict[str, Array], *, axes: tuple[int, ...], temperature: float, dtype: Any,
    log: bool,
) -> Array:
    """This block's part of softmax, from its rows' merged ``(max, sum of exp)``."""
    return call_engine(
        "softmax_from_pairs", None, block, axes, pairs["max"], pairs["sumexp"], temperature=temperature,
        dtype=dtype, log=log,
    )


def logsumexp(
    x: Array,
    axes: tuple[int, ...],
    *,
    b: Array | None,
    keepdims: bool,
    return_sign: bool,
    where: Array | None,
    dtype: Any,
) -> Array | tuple[Array, Array]:
    """``log(sum(b * exp(x)))`` of a Dask array over ``axes``, lazily, with SciPy's semantics.

    Complex and 0-d input are not covered (the registry gives them to the generic engine,
    which is lazy on Dask arrays too).
    """
    import dask.array as da

    xp = namespace(x)
    if math.prod(x.shape) == 0:  # an empty sum is 0 (log: -inf, sign 0); or there are no sums
        value = da.full(reduced_shape(tuple(x.shape), axes, keepdims), -np.inf, dtype=dtype)
        return (value, da.zeros_like(value)) if return_sign else value
    kept_chunks = tuple((1,) * len(c) if d in axes else c for d, c in enumerate(x.chunks))
    if rows_whole(x, axes):
        b = None if b is None else b.rechunk(x.chunks)
        mask = None if where is None else where.rechunk(x.chunks)
        block = partial(_logsumexp_block, axes=axes, return_sign=return_sign, dtype=dtype)
        parts = da.map_blocks(block, x, b, mask, chunks=kept_chunks, meta=meta(x, dtype),
                              token="logsumexp-blocks")
    else:
        ct = compute_dtype(xp, dtype)
        xc = xp.astype(x, ct)
        if where is not None:
            xc = da.where(where, xc, -np.inf)
        if b is not None:
            b = xp.astype(b, ct)
            xc = da.where(b == 0, -np.inf, xc)  # zero weight: no term, even for inf or NaN
        parts = da.reduction(
            xc, _logsumexp_parts_of_chunk, _merged_logsumexp_parts, axis=axes, keepdims=True,
            dtype=ct, concatenate=False, meta=meta(x, ct), weights=b, name="logsumexp-parts",
        )
        finish = partial(_logsumexp_finished, return_sign=return_sign, dtype=dtype)
        parts = da.map_blocks(finish, parts, meta=meta(x, dtype), token="logsumexp")
    value = _squeezed(da.map_blocks(field, parts, "value", meta=meta(x, dtype)), axes, keepdims)
    if not return_sign:
        return value
    return value, _squeezed(da.map_blocks(field, parts, "sign", meta=meta(x, dtype)), axes, keepdims)


def _squeezed(r: Array, axes: tuple[int, ...], keepdims: bool) -> Array:
    return r if keepdims else r.reshape(reduced_shape(tuple(r.shape), axes, keepdims=False))


@quiet_floating_point
def _logsumexp_block(
    block: Array, b: Array | None, mask: Array | None, *, axes: tuple[int, ...], return_sign: bool,
    dtype: Any,
) -> dict[str, Array]:
    result = call_engine(
        "logsumexp", None, block, axes, b=b, keepdims=True, return_sign=return_sign, where=mask, dtype=dtype
    )
    value, sign = result if return_sign else (result, None)
    return {"value": value, "sign": sign}


@quiet_floating_point
def _logsumexp_parts_of_chunk(
    block: Array, weights: Array | None = None, axis: tuple[int, ...] = (), keepdims: bool = True,
    computing_meta: bool = False,
) -> Any:
    """``(max, m, rest)`` per row piece (:func:`softmaxkit._rules.split_at_max`); excluded
    entries are already ``-inf``."""
    if computing_meta:
        return block
    xp = namespace(block)
    shape = reduced_shape(tuple(block.shape), axis, keepdims=True)
    rows, _ = rows_view(xp, block, axis)
    if rows.shape[1] == 0:
        nothing = xp.full(shape, -np.inf, dtype=block.dtype, device=device_of(block))
        return {"max": nothing, "m": xp.zeros_like(nothing), "rest": xp.zeros_like(nothing)}
    b = None if weights is None else rows_view(xp, weights, axis)[0]
    row_max, m, rest = split_at_max(xp, rows, b)
    return {"max": xp.reshape(row_max, shape), "m": xp.reshape(m, shape), "rest": xp.reshape(rest, shape)}


@quiet_floating_point
def _merged_logsumexp_parts(parts: Any, axis: tuple[int, ...], keepdims: bool) -> dict[str, Array]:
    """Parts of row pieces merged: pieces whose max is below the row's scale by e^(max_i - max)."""
    maxima, ms, rests = (gather(parts, name, axis) for name in ("max", "m", "rest"))
    xp = namespace(maxima)
    zero = constant(xp, 0.0, ms)
    row_max = xp.max(maxima, axis=axis, keepdims=True)
    same = maxima == row_max
    m = xp.sum(xp.where(same, ms, zero), axis=axis, keepdims=True)
    below = (ms + rests) * xp.exp(maxima - row_max)
    rest = xp.sum(xp.where(same, rests, below), axis=axis, keepdims=True)
    return {"max": row_max, "m": m, "rest": rest}


@quiet_floating_point
def _logsumexp_finished(parts: dict[str, Array], *, return_sign: bool, dtype: Any) -> dict[str, Array]:
    """``(log|S|, sign(S))`` from the merged parts: the generic engine's final step.

    The log is taken as ``max + log|m| + log1p(rest/m)``: accurate when the other terms are
    tiny next to the max (Blanchard, Higham & Higham, IMA J. Numer. Anal. 41(4), 2021).
    """
    row_max, m, rest = parts["max"], parts["m"], parts["rest"]
    xp = namespace(row_max)
    value, sign = logsumexp_from_parts(xp, row_max, m, rest)
    if not return_sign:
        value = xp.where(sign < 0, constant(xp, np.nan, value), value)
    return {"value": xp.astype(value, dtype), "sign": xp.astype(sign, dtype)}
