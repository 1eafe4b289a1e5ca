"""softmax, log_softmax and logsumexp on any array-API array: the reference definitions.

Every function works on the ``(rows, n)`` layout of :func:`softmaxkit._arrays.rows_view` and
resolves each SPEC §2 case with ``where`` selections rather than branches, so the same code
serves eager and lazy arrays.
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
    reduced_shape,
    rows_view,
)
from softmaxkit._rules import logsumexp_from_parts, split_at_max, store
from softmaxkit._sums import row_sums
from softmaxkit.generic._temperature import scaled_difference


def shifted_rows(
    xp: Any, rows: Array, mask: Array | None, temperature: float, row_max: Array | None = None
) -> Array:
    """``(x - max) / T`` per row, with every special row mapped onto the finite case.

    Excluded entries (masked or ``-inf``) become ``-inf``. A row whose max is ``+inf`` becomes
    0 at its ``+inf`` entries and ``-inf`` elsewhere: softmax's limit shares the mass among
    them equally. A row whose entries are all excluded keeps all ``-inf`` (its sum of
    exponentials is 0). NaN stays NaN and spreads through the row's sum.

    ``row_max`` (shape ``(rows, 1)``), when given, is the maximum of the row's included
    entries found elsewhere: the Dask engine passes the maximum over all chunks of a split row.
    """
    neg_inf = constant(xp, -np.inf, rows)
    zero = constant(xp, 0.0, rows)
    x = rows if mask is None else xp.where(mask, rows, neg_inf)
    if row_max is None:
        row_max = xp.max(x, axis=1, keepdims=True)
    pos_inf_row = row_max == np.inf
    x = xp.where(pos_inf_row, xp.where(x == np.inf, zero, neg_inf), x)
    shift = xp.where(xp.isfinite(row_max), row_max, zero)
    if not isinstance(temperature, float | int):
        # A traced JAX temperature has no value to split into mantissa and exponent, so it
        # divides once; for T > 1 the halves of x and the maximum, whose difference cannot
        # overflow (as in scaled_difference). Temperatures whose reciprocal leaves the dtype's
        # range are never traced by the eager path (_api); under a user's own jax.jit they
        # give NaN (README, JAX section).
        halves = (x * 0.5 - shift * 0.5) / (temperature * 0.5)
        return xp.where(temperature > 1, halves, (x - shift) / temperature)
    return scaled_difference(xp, x, shift, temperature)


def is_unit(temperature: Any) -> bool:
    """Whether ``temperature`` is the Python number 1 (no division); a traced JAX scalar is not."""
    return isinstance(temperature, float | int) and temperature == 1.0


def softmax_rows(xp: Any, rows: Array, mask: Array | None, temperature: float, log: bool) -> Array:
    """softmax (or log_softmax) along axis 1 of a 2-d array in its compute dtype."""
    z = shifted_rows(xp, rows, mask, temperature)
    e = xp.exp(z)
    return _normalised(xp, z, e, row_sums(xp, e, keepdims=True), log)


def _normalised(xp: Any, z: Array, e: Array | None, total: Array, log: bool) -> Array:
    """softmax ``e / total`` or log_softmax ``z - log(total)`` of shifted rows ``z``, ``e = exp(z)``."""
    # total == 0 only for rows with every entry excluded: softmax 0, log_softmax -inf (z is -inf).
    total = xp.where(total == 0, constant(xp, 1.0, total), total)
    if log:
        # Excluded entries are the constant -inf, not z - log(total): under automatic
        # differentiation (JAX, PyTorch) they then pass no gradient back, as SPEC §2 asks.
        # (A row holding NaN stays all NaN: its log(total) is NaN.)
        log_total = xp.log(total)
        excluded = (z == -np.inf) & ~xp.isnan(log_total)
        return xp.where(excluded, constant(xp, -np.inf, z), z - log_total)
    return (xp.exp(z) if e is None else e) / total


@quiet_floating_point
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
    """softmax (``log=False``) or log_softmax (``log=True``) of ``x`` over ``axes``."""
    xp = namespace(x)
    rows, restore = rows_view(xp, x, axes)
    if rows.shape[1] == 0:
        return store(xp, xp.astype(x, dtype), out)
    mask = None if where is None else rows_view(xp, where, axes)[0]
    result = softmax_rows(xp, xp.astype(rows, compute_dtype(xp, dtype)), mask, temperature, log)
    return store(xp, restore(xp.astype(result, dtype)), out)


@quiet_floating_point
def softmax_pairs(x: Array, axes: tuple[int, ...], *, temperature: float) -> tuple[Array, Array]:
    """``(max, sum of exp((x - max) / T))`` of each row's piece in ``x``: a row split elsewhere.

    Both have ``x``'s shape with ``axes`` kept as length 1, in ``x``'s compute dtype. Pieces
    merge as in the online normaliser (the Dask engine's tree reduction). A piece with no
    included entry gives ``(-inf, 0)``; one whose max is ``+inf`` counts its ``+inf`` entries
    (they share the row's mass); NaN reaches the sum (and the max).
    """
    xp = namespace(x)
    rows, _ = rows_view(xp, xp.astype(x, compute_dtype(xp, x.dtype), copy=False), axes)
    shape = reduced_shape(tuple(x.shape), axes, keepdims=True)
    if rows.shape[1] == 0:
        nothing = xp.full(shape, -np.inf, dtype=rows.dtype, device=device_of(x))
        return nothing, xp.zeros_like(nothing)
    row_max = xp.max(rows, axis=1, keepdims=True)
    e = xp.exp(shifted_rows(xp, rows, None, temperature, row_max=row_max))
    return xp.reshape(row_max, shape), xp.reshape(row_sums(xp, e), shape)


@quiet_floating_point
def softmax_from_pairs(
    x: Array, axes: tuple[int, ...], row_max: Array, total: Array, *, temperature: float, dtype: Any,
    log: bool,
) -> Array:
    """The part in ``x`` of softmax (or log_softmax) of rows whose merged pairs are given.

    ``row_max`` and ``total`` are the merged :func:`softmax_pairs` of whole rows (shape of
    ``x`` with ``axes`` kept as length 1): the same steps as :func:`softmax`, with the row's
    max and sum taken over all its pieces.
    """
    xp = namespace(x)
    ct = compute_dtype(xp, dtype)
    rows, restore = rows_view(xp, xp.astype(x, ct, copy=False), axes)
    z = shifted_rows(xp, rows, None, temperature, row_max=xp.reshape(xp.astype(row_max, ct), (-1, 1)))
    result = _normalised(xp, z, None, xp.reshape(xp.astype(total, ct), (-1, 1)), log)
    return restore(xp.astype(result, dtype))


@quiet_floating_point
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
    """``log(sum(b * exp(x)))`` over ``axes`` with SciPy's semantics (``b`` and ``x`` broadcast)."""
    xp = namespace(x)
    rows, _ = rows_view(xp, x, axes)
    rows = xp.astype(rows, compute_dtype(xp, dtype))
    weights = None if b is None else xp.astype(rows_view(xp, b, axes)[0], rows.dtype)
    mask = None if where is None else rows_view(xp, where, axes)[0]
    if xp.isdtype(rows.dtype, "complex floating"):
        value, sign = _logsumexp_complex_rows(xp, rows, weights, mask)
    else:
        value, sign = _logsumexp_real_rows(xp, rows, weights, mask)
    shape = reduced_shape(tuple(x.shape), axes, keepdims)
    if xp.isdtype(value.dtype, "complex floating"):
        if return_sign:  # SciPy: the log of |S| and the complex phase of S
            value = xp.real(value)
        out_dtype = value.dtype if return_sign else dtype
    else:
        if not return_sign:
            value = xp.where(sign < 0, constant(xp, np.nan, value), value)
        out_dtype = dtype
    value = _as_result(xp, xp.reshape(xp.astype(value, out_dtype), shape))
    if not return_sign:
        return value
    return value, _as_result(xp, xp.reshape(xp.astype(sign, dtype), shape))


def _as_result(xp: Any, r: Array) -> Array:
    # NumPy users get a scalar for a full reduction, as from SciPy and np.sum.
    return r[()] if r.ndim == 0 and xp.__name__.endswith("numpy") else r


def _excluded(xp: Any, rows: Array, weights: Array | None, mask: Array | None) -> Array:
    """Rows with masked entries and zero-weight entries set to ``-inf`` (they add nothing)."""
    neg_inf = constant(xp, -np.inf, rows)
    if mask is not None:
        rows = xp.where(mask, rows, neg_inf)
    if weights is not None:
        rows = xp.where(weights == 0, neg_inf, rows)
    return rows


def _logsumexp_real_rows(
    xp: Any, rows: Array, weights: Array | None, mask: Array | None
) -> tuple[Array, Array]:
    """``(log|S|, sign(S))`` per row, ``S = sum(b * exp(x))``, from the row's split at its
    maximum (:func:`softmaxkit._rules.split_at_max`), as in SciPy."""
    rows = _excluded(xp, rows, weights, mask)
    if rows.shape[1] == 0:
        empty = xp.full((rows.shape[0],), -np.inf, dtype=rows.dtype, device=device_of(rows))
        return empty, xp.zeros_like(empty)
    return logsumexp_from_parts(xp, *split_at_max(xp, rows, weights))


def _logsumexp_complex_rows(
    xp: Any, rows: Array, weights: Array | None, mask: Array | None
) -> tuple[Array, Array]:
    """Complex logsumexp: shifted by the largest real part; the log's imaginary part in (-pi, pi]."""
    real_dtype = xp.real(rows).dtype
    rows = _excluded(xp, rows, weights, mask)
    if rows.shape[1] == 0:
        empty = xp.full((rows.shape[0],), -np.inf, dtype=real_dtype, device=device_of(rows))
        return xp.astype(empty, rows.dtype), xp.astype(xp.zeros_like(empty), rows.dtype)
    shift = xp.max(xp.real(rows), axis=1, keepdims=True)
    shift = xp.where(xp.isfinite(shift), shift, constant(xp, 0.0, shift))
    terms = xp.exp(rows - xp.astype(shift, rows.dtype))
    if weights is not None:
        terms = weights * terms
    total = row_sums(xp, terms)
    magnitude = xp.abs(total)
    shift = xp.reshape(shift, (-1,))
    value = xp.log(total) + xp.astype(shift, rows.dtype)
    sign = total / xp.astype(xp.where(magnitude == 0, constant(xp, 1.0, magnitude), magnitude), total.dtype)
    return value, sign

