"""The Numba engine: fused, multi-threaded CPU kernels for NumPy arrays.

Each function has the generic engine's signature (:mod:`softmaxkit.generic`) and gives its
answers for every case of SPEC §2. The kernels (``_rows``, ``_loss``, ``_grad``, their
column versions ``_columns``, ``_loss_columns``, ``_grad_columns`` for reduced axes that are
not last in memory, and ``_pieces`` for the pieces of rows split across Dask chunks) compute
float32 and float64; float16 and bfloat16 go through float32. What the
kernels do not cover (other dtypes, weighted ``b=`` or signed logsumexp, probability targets
in cross_entropy) is declared in
the registry (:data:`softmaxkit._engines.NUMBA_GAPS`): such calls never reach this module.

Kernels are compiled on first use (only those the call needs, with a notice on the
``softmaxkit.numba`` logger) and cached on disk, so later processes load them instead of
compiling; :func:`compile_all` (``softmaxkit compile``) compiles them all ahead of use, and
without a writable cache directory they are compiled in each process (:mod:`._jit`). They
release the GIL and run over chunks of rows claimed by the threads of a small pool
(:mod:`softmaxkit.numba._threads`), not in Numba's threading layers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from softmaxkit._arrays import is_half, reduced_shape
from softmaxkit._engines import numba_kernel_dtype as kernel_dtype
from softmaxkit._rules import mean, mean_denominator, mean_gradient_scale
from softmaxkit.numba import _columns, _grad_columns, _half, _memory, _rows, _short_rows
from softmaxkit.numba._columns import softmax_columns
from softmaxkit.numba._compile import cache_status, compile_all
from softmaxkit.numba._grad import log_softmax_vjp_rows, softmax_vjp_rows
from softmaxkit.numba._grad_columns import log_softmax_vjp_columns, softmax_vjp_columns
from softmaxkit.numba._half import (
    cross_entropy_half_rows,
    log_softmax_vjp_half_rows,
    softmax_half_rows,
    softmax_vjp_half_rows,
)
from softmaxkit.numba._jit import readonly
from softmaxkit.numba._layout import deliver, layout
from softmaxkit.numba._loss import cross_entropy_rows, cross_entropy_short_rows
from softmaxkit.numba._loss_columns import cross_entropy_columns
from softmaxkit.numba._memory import release as release_memory
from softmaxkit.numba._pieces import softmax_from_pair_rows, softmax_pair_rows
from softmaxkit.numba._rows import SPLIT, logsumexp_rows, mask_rows, softmax_masked_rows, softmax_rows
from softmaxkit.numba._short_rows import SHORT_ROWS, softmax_short_rows
from softmaxkit.numba._threads import get_num_threads, run, set_num_threads

__all__ = [
    "cache_status", "compile_all", "cross_entropy", "get_num_threads", "log_softmax_vjp", "logsumexp",
    "release_memory", "set_num_threads", "softmax", "softmax_from_pairs", "softmax_jvp", "softmax_pairs",
    "softmax_vjp",
]

def _engine_call(function: Callable[..., Any]) -> Callable[..., Any]:
    """NumPy's floating-point warnings off: every case is settled explicitly, as in generic."""

    @functools.wraps(function)
    def call(x: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return function(x, *args, **kwargs)

    return call


def rows_softmax(x: np.ndarray, out: np.ndarray, inv_t: Any, log: bool) -> None:
    """softmax (or log_softmax) over axis 1 of a C-contiguous 2-d ``x`` into ``out`` (may be
    ``x``): the kernel for the row length, run over chunks of rows on the pool."""
    rows, n = x.shape
    x = readonly(x)
    if n <= SHORT_ROWS:
        run(softmax_short_rows, _short_rows.tasks(rows), x.size, x, out, inv_t, log)
    elif n <= SPLIT:
        run(softmax_rows, rows, x.size, x, out, inv_t, log)
    else:
        _rows.long_rows_softmax(x, out, inv_t, log)


def _covered_dtype(dtype: Any) -> np.dtype:
    """The kernels' dtype for a result dtype the registry lets through (``NUMBA_GAPS``)."""
    cdt = kernel_dtype(dtype)
    if cdt is None:  # only a call that bypassed the registry gets here
        raise TypeError(f"the numba engine does not compute in {dtype}")
    return cdt


def _masked(x: np.ndarray, where: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.where(where, x.astype(dtype, copy=False), np.array(-np.inf, dtype=dtype))


@_engine_call
def softmax(
    x: np.ndarray, axes: tuple[int, ...], *, where: np.ndarray | None, temperature: float,
    dtype: Any, out: np.ndarray | None, log: bool,
) -> np.ndarray:
    """softmax (``log=False``) or log_softmax (``log=True``) of ``x`` over ``axes``."""
    cdt = _covered_dtype(dtype)
    if where is None and _half_rows(x, axes, dtype, out):
        return _softmax_half(x, len(axes), temperature, dtype, out, log)
    if where is not None and _plain_rows(x, axes, dtype, out):
        return _softmax_masked(x, where, len(axes), temperature, out, log)
    source = x if where is None else _masked(x, where, cdt)
    lay = layout(source, axes, cdt)
    outer, n, inner = lay.shape3
    if inner > 1 and n > SPLIT:  # column tiles would not fit in cache: long rows instead
        lay = layout(source, axes, cdt, last=True)
        outer, n, inner = lay.shape3
    if n == 0:
        return deliver(np.asarray(x), np.dtype(dtype), out)
    direct = lay.out_view(out) if np.dtype(dtype) == cdt else None
    result = direct if direct is not None else _memory.empty(lay.data.shape, cdt)
    inv_t = cdt.type(1.0 / temperature)
    if inner == 1:
        rows_softmax(lay.data.reshape(outer, n), result.reshape(outer, n), inv_t, log)
    else:
        width = _columns.width(n, cdt.itemsize)
        run(softmax_columns, outer * -(-inner // width), lay.data.size, readonly(lay.view3(lay.data)),
            lay.view3(result), inv_t, log, width)
    if out is not None and direct is not None:  # direct is a view of out: the result is out itself
        return out
    return deliver(lay.restore(result), np.dtype(dtype), out)


def _rows_in_place(x: np.ndarray, axes: tuple[int, ...], dtype: Any, out: np.ndarray | None) -> bool:
    """Whether ``x`` (C-contiguous, reduced over trailing axes) can go to a row kernel that
    writes ``dtype`` straight into ``out`` (C-contiguous, ``x`` itself or not overlapping it)."""
    if not (x.dtype == dtype and x.dtype.isnative and x.flags.c_contiguous
            and x.size > 0 and axes and axes == tuple(range(x.ndim - len(axes), x.ndim))):
        return False
    if out is None:
        return True
    return bool(out.dtype == dtype and out.flags.c_contiguous and (
        not np.may_share_memory(out, x) or out.__array_interface__["data"] == x.__array_interface__["data"]))


def _half_rows(x: np.ndarray, axes: tuple[int, ...], dtype: Any, out: np.ndarray | None) -> bool:
    """Whether the half-precision row kernel applies: half in, same half out, trailing axes."""
    return is_half(dtype) and _rows_in_place(x, axes, dtype, out)


def _plain_rows(x: np.ndarray, axes: tuple[int, ...], dtype: Any, out: np.ndarray | None) -> bool:
    """Whether the float32/float64 row kernels can write the result straight into ``out``."""
    return kernel_dtype(dtype) == np.dtype(dtype) and _rows_in_place(x, axes, dtype, out)


def _softmax_masked(x: np.ndarray, where: np.ndarray, n_axes: int, temperature: float,
                    out: np.ndarray | None, log: bool) -> np.ndarray:
    """Masked softmax of trailing axes with the excluded entries written as ``-inf`` into the
    result itself, not into a temporary copy of ``x`` (a C-contiguous copy of a broadcast
    mask is a quarter of a float32 ``x`` at most)."""
    n = math.prod(x.shape[x.ndim - n_axes:])
    target = _memory.empty(x.shape, x.dtype) if out is None else out
    rows, result = x.reshape(-1, n), target.reshape(-1, n)
    mask = np.ascontiguousarray(where).reshape(-1, n)
    inv_t = x.dtype.type(1.0 / temperature)
    rows, mask = readonly(rows), readonly(mask)
    if SHORT_ROWS < n <= SPLIT:
        run(softmax_masked_rows, rows.shape[0], rows.size, rows, mask, result, inv_t, log)
    else:  # short rows go to the tiled kernel, long ones to the split kernel: mask first
        run(mask_rows, rows.shape[0], rows.size, rows, mask, result)
        rows_softmax(result, result, inv_t, log)
    return target


def _softmax_half(x: np.ndarray, n_axes: int, temperature: float, dtype: Any, out: np.ndarray | None,
                  log: bool) -> np.ndarray:
    n = math.prod(x.shape[x.ndim - n_axes:])
    target = _memory.empty(x.shape, dtype) if out is None else out
    bits = readonly(x.view(np.uint16).reshape(-1, n))
    run(softmax_half_rows, _half.tasks(bits.shape[0]), bits.size, bits, target.view(np.uint16).reshape(-1, n),
        np.float32(1.0 / temperature), log, str(np.dtype(dtype)) == "bfloat16")
    return target


@_engine_call
def softmax_pairs(
    x: np.ndarray, axes: tuple[int, ...], *, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(max, sum of exp((x - max) / T))`` of each row's piece in ``x``, axes kept as length 1."""
    cdt = _covered_dtype(x.dtype)
    lay = layout(x, axes, cdt, last=True)
    outer, n, _ = lay.shape3
    row_max, total = np.empty(outer, dtype=cdt), np.empty(outer, dtype=np.float64)
    run(softmax_pair_rows, outer, lay.data.size, readonly(lay.data.reshape(outer, n)),
        cdt.type(1.0 / temperature), row_max, total)
    kept = tuple(1 if p in axes else size for p, size in zip(lay.perm, lay.data.shape, strict=True))
    return lay.restore(row_max.reshape(kept)), lay.restore(total.astype(cdt).reshape(kept))


@_engine_call
def softmax_from_pairs(
    x: np.ndarray, axes: tuple[int, ...], row_max: np.ndarray, total: np.ndarray, *, temperature: float,
    dtype: Any, log: bool,
) -> np.ndarray:
    """The part in ``x`` of softmax (or log_softmax) of rows whose merged pairs are given."""
    cdt = _covered_dtype(dtype)
    lay = layout(x, axes, cdt, last=True)
    outer, n, _ = lay.shape3
    # The pairs in the layout's row order: the kept axes in the order of lay.perm.
    max_rows, total_rows = (np.ascontiguousarray(np.asarray(a).transpose(lay.perm), dtype=cdt).reshape(outer)
                            for a in (row_max, total))
    result = np.empty(lay.data.shape, dtype=cdt)
    run(softmax_from_pair_rows, outer, lay.data.size, readonly(lay.data.reshape(outer, n)),
        result.reshape(outer, n), readonly(max_rows), readonly(total_rows), cdt.type(1.0 / temperature), log)
    return deliver(lay.restore(result), np.dtype(dtype), None)


@_engine_call
def logsumexp(
    x: np.ndarray, axes: tuple[int, ...], *, b: np.ndarray | None, keepdims: bool,
    return_sign: bool, where: np.ndarray | None, dtype: Any,
) -> Any:
    """``log(sum(exp(x)))`` over ``axes`` (``b`` is None and ``return_sign`` False: the registry's gaps)."""
    cdt = _covered_dtype(dtype)
    source = x if where is None else _masked(x, where, cdt)
    lay = layout(source, axes, cdt, last=True)
    outer, n, _ = lay.shape3
    values = np.empty(outer, dtype=np.float64)
    run(logsumexp_rows, outer, lay.data.size, readonly(lay.data.reshape(outer, n)), values)
    # The rows come in the layout's order of the kept axes (memory order), not the user's.
    kept = [p for p in lay.perm if p not in axes]
    values = values.reshape([x.shape[p] for p in kept]).transpose(np.argsort(kept))
    result = values.astype(dtype).reshape(reduced_shape(tuple(x.shape), axes, keepdims))
    return result[()] if result.ndim == 0 else result


@_engine_call
def cross_entropy(
    logits: np.ndarray, target: np.ndarray, axis: int, *, weight: np.ndarray | None,
    ignore_index: int | None, label_smoothing: float, reduction: str, return_grad: bool,
    dtype: Any,
) -> Any:
    """Cross-entropy (and its gradient) of class-index targets (probability targets: a gap)."""
    cdt = _covered_dtype(dtype)
    half = _half_rows(logits, (axis,), dtype, None)
    lay = None if half else layout(logits, (axis,), cdt)  # None exactly when half
    if lay is not None and lay.shape3[2] > 1 and not SHORT_ROWS < lay.shape3[1] <= SPLIT:
        # Column tiles would not fit in cache, or there are so few classes that the row kernel
        # for short rows on a transposed copy is faster (15,000 x 10 in Fortran order: 2.8 ms
        # on column tiles).
        lay = layout(logits, (axis,), cdt, last=True)
    n_classes = logits.shape[axis]
    outer, n, inner = lay.shape3 if lay is not None else (logits.size // n_classes, n_classes, 1)
    rows = outer * inner
    # The kernels see the samples in the layout's axis order, which may not be the user's.
    sample_axes = [p if p < axis else p - 1 for p in (lay.perm if lay else range(logits.ndim)) if p != axis]
    given = np.ascontiguousarray(target.transpose(sample_axes)).reshape(-1)
    # Compared with ignore_index in their own dtype: an ignored label need not fit in int64
    # (uint64 2**63 became -2**63, counted, and read out of bounds). The kernels read counted ones only.
    counted = (given != ignore_index) if ignore_index is not None else np.ones(rows, dtype=np.bool_)
    labels = given.astype(np.int64, copy=False)
    w = np.ones(n, dtype=cdt) if weight is None else np.ascontiguousarray(weight, dtype=cdt)
    scale = 1.0
    if reduction == "mean":
        denominator = float(mean_denominator(np, given, None if weight is None else w, ignore_index, rows,
                                             np.float64, None))
        scale = mean_gradient_scale(denominator)
    options = (readonly(labels), readonly(counted), readonly(w), float(label_smoothing), scale,
               bool(return_grad))
    grad_n = n if return_grad else 0  # explicit: reshape(0, -1) cannot infer it for an empty batch
    losses = np.empty(rows, dtype=np.float64)
    if lay is None:
        # float16 / bfloat16 rows widened one at a time inside the kernel: no float32 copies.
        grad = _memory.empty(logits.shape if return_grad else (rows, 0), dtype)
        bits = readonly(logits.view(np.uint16).reshape(rows, n))
        run(cross_entropy_half_rows, _half.tasks(rows), bits.size, bits,
            grad.view(np.uint16).reshape(rows, grad_n), losses, *options, str(np.dtype(dtype)) == "bfloat16")
    elif inner > 1:
        # Classes on a non-last axis: column tiles in cache (_loss_columns), no transposed copy.
        grad = _memory.empty(lay.data.shape if return_grad else (0, 0, 0), cdt)
        width = _grad_columns.width(n, cdt.itemsize)  # two tiles a chunk, as the vjps'
        run(cross_entropy_columns, outer * -(-inner // width), lay.data.size, readonly(lay.view3(lay.data)),
            lay.view3(grad) if return_grad else grad, losses, *options, width)
    else:
        grad = _memory.empty(lay.data.shape if return_grad else (rows, 0), cdt)
        x2 = readonly(lay.data.reshape(rows, n))
        if n <= SHORT_ROWS:
            run(cross_entropy_short_rows, _short_rows.tasks(rows), x2.size, x2, grad.reshape(rows, grad_n),
                losses, *options)
        else:
            run(cross_entropy_rows, rows, x2.size, x2, grad.reshape(rows, grad_n), losses, *options)
    loss = reduced_loss(losses, reduction, denominator if reduction == "mean" else 0.0, dtype)
    if reduction == "none":
        lead = tuple(target.shape[a] for a in sample_axes)
        loss = loss.reshape(lead).transpose(np.argsort(sample_axes))
    if not return_grad:
        return loss
    if reduction == "mean" and denominator == 0.0:  # not an infinite one: its scale is 0 too
        grad[...] = 0.0  # the kernels' 0 * inf or 0 * NaN: _rules.mean_gradient's zero, exactly
    if lay is None:
        return loss, grad
    return loss, deliver(lay.restore(grad), np.dtype(dtype), None)


def reduced_loss(losses: np.ndarray, reduction: str, denominator: float, dtype: Any) -> Any:
    """The loss of the rows' float64 ``losses`` in ``dtype``: each row's (``"none"``), or their
    sum or ``"mean"`` (over ``denominator``) as a NumPy scalar, as NumPy's reductions and the
    generic engine give. Without NumPy's warnings, as every engine call: a mean of nothing
    counted is 0/0 = NaN (PyTorch's), a loss beyond float32 becomes inf in the cast."""
    with np.errstate(all="ignore"):
        if reduction == "none":
            return losses.astype(dtype)
        if reduction == "sum":
            return np.asarray(np.sum(losses), dtype=dtype)[()]
        return np.asarray(mean(np.sum(losses), np.float64(denominator)), dtype=dtype)[()]


_HALF_VJP = {softmax_vjp_rows: softmax_vjp_half_rows, log_softmax_vjp_rows: log_softmax_vjp_half_rows}
"""The half-precision kernel of each vjp row kernel."""
_COLUMN_VJP = {softmax_vjp_rows: softmax_vjp_columns, log_softmax_vjp_rows: log_softmax_vjp_columns}
"""The column kernel of each vjp row kernel (reduced axes not last in memory)."""


def _product(kernel: Any, first: np.ndarray, g: np.ndarray, axes: tuple[int, ...], dtype: Any,
             out: np.ndarray | None = None) -> Any:
    """The vjp whose row kernel is ``kernel`` (its half-precision and column versions where
    they apply), into ``out`` when given."""
    if _half_rows(first, axes, dtype, out) and g.dtype == first.dtype:
        # float16 / bfloat16 rows widened one at a time inside the kernel: no float32 copies.
        bits = first.view(np.uint16).reshape(-1, math.prod(first.shape[first.ndim - len(axes):]))
        rows = bits.shape[0]
        g_bits = np.ascontiguousarray(g).view(np.uint16).reshape(bits.shape)
        result = _memory.empty(first.shape, first.dtype) if out is None else out
        run(_HALF_VJP[kernel], _half.tasks(rows), bits.size, readonly(bits), readonly(g_bits),
            result.view(np.uint16).reshape(bits.shape), str(np.dtype(dtype)) == "bfloat16")
        return result
    cdt = _covered_dtype(dtype)
    lay = layout(first, axes, cdt)
    if lay.shape3[2] > 1 and lay.shape3[1] > SPLIT:  # column tiles would not fit in cache: rows
        lay = layout(first, axes, cdt, last=True)
    outer, n, inner = lay.shape3
    # g in first's layout: a view when it already is (the common case), else its only copy.
    g_data = np.ascontiguousarray(g.transpose(lay.perm), dtype=cdt)
    direct = lay.out_view(out) if np.dtype(dtype) == cdt else None
    result = direct if direct is not None else _memory.empty(lay.data.shape, cdt)
    if inner == 1:
        run(kernel, outer, lay.data.size, readonly(lay.data.reshape(outer, n)),
            readonly(g_data.reshape(outer, n)), result.reshape(outer, n))
    else:
        width = _grad_columns.width(n, cdt.itemsize)
        run(_COLUMN_VJP[kernel], outer * -(-inner // width), lay.data.size, readonly(lay.view3(lay.data)),
            readonly(lay.view3(g_data)), lay.view3(result), width)
    if out is not None and direct is not None:  # direct is a view of out: the result is out itself
        return out
    return deliver(lay.restore(result), np.dtype(dtype), out)


def vjp_into(first: np.ndarray, g: np.ndarray, axes: tuple[int, ...], out: np.ndarray, *, log: bool) -> None:
    """softmax_vjp (``first`` = s) or log_softmax_vjp (``first`` = logp) over any ``axes``
    into ``out`` (``first``'s shape, not overlapping the inputs), in ``out``'s dtype: for the
    torch operators, whose results are new tensors."""
    with np.errstate(all="ignore"):
        _product(log_softmax_vjp_rows if log else softmax_vjp_rows, first, g, axes, out.dtype, out)


@_engine_call
def softmax_vjp(s: np.ndarray, g: np.ndarray, axes: tuple[int, ...], *, dtype: Any) -> Any:
    """``s * (g - sum(g * s))`` over trailing axes of a non-empty ``s``."""
    return _product(softmax_vjp_rows, s, g, axes, dtype)


def softmax_jvp(s: np.ndarray, v: np.ndarray, axes: tuple[int, ...], *, dtype: Any) -> Any:
    """``J v``: the vjp, since the softmax Jacobian is symmetric."""
    return softmax_vjp(s, v, axes, dtype=dtype)


@_engine_call
def log_softmax_vjp(logp: np.ndarray, g: np.ndarray, axes: tuple[int, ...], *, dtype: Any) -> Any:
    """``g - exp(logp) * sum(g)`` over trailing axes of a non-empty ``logp`` (any values: the
    kernels redo entries beyond their ``exp``'s domain with libm's, ``_grad.redo_beyond_exp``)."""
    return _product(log_softmax_vjp_rows, logp, g, axes, dtype)
