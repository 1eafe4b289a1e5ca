"""The CUDA engine: CUDA C++ kernels (``kernels/*.cu``) compiled at run time by CuPy's NVRTC.

It runs CuPy arrays, PyTorch CUDA tensors and JAX GPU arrays (zero-copy through DLPack; the
result has the input's type) in float16, bfloat16 (accumulating in float32), float32 and
float64. Each function moves the reduced axes last (:func:`softmaxkit._arrays.rows_view`;
CuPy copies when they were not last already), launches the kernels that
:func:`softmaxkit.cuda._plan.plan_launch` picks for the row length, and moves the result
back. A strided kernel for non-last axes would save that transpose; the copy is the simple,
always-correct choice, and a non-last softmax axis is the rare case.

Options the kernels do not cover are declared in the registry
(:data:`softmaxkit._engines.CUDA_GAPS`), which gives them to the generic engine running on the
same GPU arrays through the array API: ``logsumexp`` with ``b=`` or ``return_sign=True``,
dtypes other than the four above (complex ones included), empty arrays and reductions over
no axis. Such calls never reach this module. Casts to and from bfloat16 happen in the array's own
library (CuPy has no bfloat16).

Everything a call does (casts, copies, kernels, the result's conversion) runs inside
:func:`softmaxkit.cuda._launch.context`: on the input's device and its library's current
stream; NumPy masks, targets and weights are copied to that device first.

Sampling (``sk.sample`` and the sampling masks) has its own kernels, ``kernels/sampling.cu``,
launched by :mod:`softmaxkit.cuda._sampling` when :mod:`softmaxkit.sampling` chooses this engine.

CuPy is imported inside the functions: importing this module imports no GPU library.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from softmaxkit._arrays import (
    Array,
    compute_dtype,
    namespace,
    quiet_floating_point,
    reduced_shape,
    rows_view,
)
from softmaxkit._rules import mean, mean_denominator, store
from softmaxkit.cuda import _bridge, _launch
from softmaxkit.cuda._plan import DTYPES

__all__ = ["cross_entropy", "log_softmax_vjp", "logsumexp", "softmax", "softmax_jvp", "softmax_vjp"]


def _kernel_dtype(xp: Any, dtype: Any, *inputs: Any) -> str:
    """The dtype the kernels compute in, for a result dtype in ``DTYPES`` (the registry's gap).

    The result's dtype when every input has it (half types then accumulate in float32 inside
    the kernels); otherwise the inputs are cast to the result's compute dtype first, which is
    what the generic engine computes in.
    """
    want = _bridge.dtype_name(dtype)
    if want not in DTYPES:  # only a call that bypassed the registry gets here
        raise TypeError(f"the cupy engine does not compute in {want}")
    if {_bridge.dtype_name(a.dtype) for a in inputs if a is not None} == {want}:
        return want
    return _bridge.dtype_name(compute_dtype(xp, dtype))


def _rows(a: Any, axes: tuple[int, ...], dtype: str | None = None) -> tuple[Any, Any]:
    """``a`` (any GPU library) as a contiguous CuPy ``(rows, n)`` array, and the inverse map."""
    import cupy

    if dtype is not None and _bridge.dtype_name(a.dtype) != dtype:
        # Cast in the array's own library: CuPy has no bfloat16 to cast from or to.
        a = namespace(a).astype(a, _bridge.library_dtype(a, dtype))
    c = _bridge.to_cupy(a)
    rows, restore = rows_view(namespace(c), c, axes)
    return cupy.ascontiguousarray(rows), restore


def _mask_rows(where: Any, axes: tuple[int, ...]) -> Any:
    """The mask (any library, or the host) as contiguous uint8 ``(rows, n)`` rows on the current device."""
    import cupy

    if where is None:
        return None
    mask = _bridge.to_cupy(where).astype(cupy.uint8)
    rows, _ = rows_view(namespace(mask), mask, axes)
    return cupy.ascontiguousarray(rows)


def _finish(result: Any, kernel_dtype: str, dtype: Any, like: Any) -> Array:
    """The CuPy ``result`` in the result dtype and ``like``'s array library."""
    want = _bridge.dtype_name(dtype)
    if want == kernel_dtype:
        return _bridge.from_cupy(result, like, want)
    if "bfloat16" not in (want, kernel_dtype):
        return _bridge.from_cupy(result.astype(want), like, want)
    xp = namespace(like)  # CuPy cannot cast to or from bfloat16; the array's library can
    return xp.astype(_bridge.from_cupy(result, like, kernel_dtype), dtype)


def _empty(shape: tuple[int, ...], dtype: str) -> Any:
    import cupy

    return cupy.empty(shape, dtype=_bridge.storage_dtype(dtype))


def softmax(
    x: Array, axes: tuple[int, ...], *, where: Array | None, temperature: float, dtype: Any,
    out: Array | None, log: bool,
) -> Array:
    """softmax (``log=False``) or log_softmax (``log=True``) of ``x`` over ``axes``."""
    xp = namespace(x)
    kd = _kernel_dtype(xp, dtype, x)
    with _launch.context(x):  # the input's device and stream, casts and copies included
        rows, restore = _rows(x, axes, kd)
        y = _empty(rows.shape, kd)
        _launch.softmax(rows, _mask_rows(where, axes), y, kd, temperature, log)
        return store(xp, _finish(restore(y), kd, dtype, x), out)


def logsumexp(
    x: Array, axes: tuple[int, ...], *, b: Array | None, keepdims: bool, return_sign: bool,
    where: Array | None, dtype: Any,
) -> Array | tuple[Array, Array]:
    """``log(sum(exp(x)))`` over ``axes`` (weights and signs are the registry's gaps)."""
    xp = namespace(x)
    kd = _kernel_dtype(xp, dtype, x)
    with _launch.context(x):
        rows, _ = _rows(x, axes, kd)
        value = _empty((rows.shape[0],), kd)
        _launch.logsumexp(rows, _mask_rows(where, axes), value, kd)
        return _finish(value.reshape(reduced_shape(tuple(x.shape), axes, keepdims)), kd, dtype, x)


def _vjp(first: Array, g: Array, axes: tuple[int, ...], dtype: Any, log: bool) -> Array:
    xp = namespace(first)
    kd = _kernel_dtype(xp, dtype, first, g)
    with _launch.context(first):
        first_rows, restore = _rows(first, axes, kd)
        g_rows, _ = _rows(_bridge.to_device_of(g, first), axes, kd)
        out = _empty(first_rows.shape, kd)
        _launch.vjp(first_rows, g_rows, out, kd, log)
        return _finish(restore(out), kd, dtype, first)


def softmax_vjp(s: Array, g: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``g^T J`` for ``s = softmax(x)`` over ``axes``: ``s * (g - sum(g * s))``."""
    return _vjp(s, g, axes, dtype, log=False)


def softmax_jvp(s: Array, v: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``J v`` for ``s = softmax(x)``; equal to the vjp because ``J`` is symmetric."""
    return _vjp(s, v, axes, dtype, log=False)


def log_softmax_vjp(logp: Array, g: Array, axes: tuple[int, ...], *, dtype: Any) -> Array:
    """``g^T J`` for ``logp = log_softmax(x)``: ``g - exp(logp) * sum(g)`` over live entries."""
    return _vjp(logp, g, axes, dtype, log=True)


@quiet_floating_point  # the "mean" of nothing counted is 0/0 = NaN, as the generic engine's
def cross_entropy(
    logits: Array, target: Array, axis: int, *, weight: Array | None, ignore_index: int | None,
    label_smoothing: float, reduction: str, return_grad: bool, dtype: Any,
) -> Array | tuple[Array, Array]:
    """Cross-entropy of ``softmax(logits)`` along ``axis``, and its gradient from the same kernel."""
    import cupy

    xp = namespace(logits)
    labels_given = target.ndim == logits.ndim - 1
    kd = _kernel_dtype(xp, dtype, logits, None if labels_given else target, weight)
    acc = _launch.acc_dtype(kd)
    with _launch.context(logits):
        target, weight = _bridge.to_device_of(target, logits), _bridge.to_device_of(weight, logits)
        rows, restore = _rows(logits, (axis,), kd)
        labels = cupy.ascontiguousarray(_bridge.to_cupy(target).reshape(-1).astype(cupy.int64)) \
            if labels_given else None
        probs = None if labels_given else _rows(target, (axis,), kd)[0]
        w = None if weight is None else cupy.ascontiguousarray(_bridge.to_cupy(
            namespace(weight).astype(weight, _bridge.library_dtype(weight, np.dtype(acc).name))))
        denominator = mean_denominator(namespace(rows), labels, w, ignore_index, rows.shape[0], acc, None)
        divisor = float(denominator) if reduction == "mean" else 1.0
        grad = _empty(rows.shape, kd) if return_grad else None
        losses = _launch.cross_entropy(rows, labels, probs, w, ignore_index, label_smoothing, divisor,
                                       grad, kd)
        lead = tuple(d for i, d in enumerate(logits.shape) if i != axis)
        if reduction == "none":
            loss = losses.reshape(lead)
        elif reduction == "sum":
            loss = losses.sum()
        else:
            loss = mean(losses.sum(), denominator)
        loss = _finish(loss.astype(acc), np.dtype(acc).name, dtype, logits)
        if not return_grad:
            return loss
        return loss, _finish(restore(grad), kd, dtype, logits)
