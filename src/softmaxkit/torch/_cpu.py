"""The CPU kernels of the softmaxkit operators: the Numba engine on the tensors' own memory.

``t.numpy()`` of a CPU tensor is a view, so the kernels read the tensor where it lies and
write into a tensor allocated here (contiguous, as the operators' fake implementations say).
bfloat16 has no NumPy dtype: its memory is viewed as ``int16`` and then as ml_dtypes'
bfloat16, the type the Numba engine's half-precision kernels recognise.

Contiguous float32/float64 rows without a mask call the row kernels directly: the engine's
argument plumbing (``errstate``, the layout) costs about 8 µs, more than the whole kernel on
a 64 x 10 tensor. Those too small for the threads go further: the kernels by address
(:mod:`softmaxkit.numba._addressed`) take the tensors' data pointers, with no NumPy view
and no NumPy allocation (3.5 µs of a 64 x 10 softmax's 5.7 µs).

Results are allocated by NumPy (:func:`new_result`): huge pages for large ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from softmaxkit import generic
from softmaxkit import numba as engine
from softmaxkit._arrays import cpu_tensor_view
from softmaxkit._rules import mean_gradient_scale
from softmaxkit.numba import reduced_loss, rows_softmax
from softmaxkit.numba._addressed import LONGEST_ROW, cross_entropy_at, labels_at, softmax_at, vjp_at
from softmaxkit.numba._grad import log_softmax_vjp_rows, softmax_vjp_rows
from softmaxkit.numba._jit import readonly
from softmaxkit.numba._memory import empty as new_array
from softmaxkit.numba._threads import PARALLEL_MIN_SIZE, on_torch_team, run

_ROW_KERNEL_SCALARS = {torch.float32: np.float32, torch.float64: np.float64}
"""The dtypes the row kernels compute in, each with its NumPy scalar type (the kernels by
address take their dtype from a scalar argument)."""


def as_numpy(t: torch.Tensor, writable: bool = False) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (bfloat16 as ml_dtypes' bfloat16); read-only
    unless ``writable``. Not ``t.numpy()``: that leaves the caller's tensor unable to grow."""
    return cpu_tensor_view(t, writable)


def as_tensor(a: Any) -> torch.Tensor:
    """A NumPy result (array or scalar) as a contiguous CPU tensor; bfloat16 through its bits."""
    a = np.ascontiguousarray(a) if np.ndim(a) else np.array(a)
    if a.dtype.type.__name__ == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def new_result(like: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """A new C-contiguous CPU tensor of ``like``'s shape and dtype, and a NumPy view of it.

    NumPy allocates it and torch takes the memory over (``torch.from_numpy``): NumPy asks
    Linux for transparent huge pages on arrays of 4 MiB or more, torch's CPU allocator does
    not, and the first writes into fresh memory are page faults. Softmax of a 8,192 x 1,024
    float32 tensor took 10.5 ms into ``torch.empty``'s memory and 3.1 ms into NumPy's
    (BENCHMARKS.md). Large ones reuse the memory of freed results (:mod:`softmaxkit.numba._memory`).
    Like every tensor whose memory NumPy has seen, it cannot be resized.
    """
    numpy_dtype = _NUMPY_DTYPES.get(like.dtype)
    if numpy_dtype is None:  # no kernel computes in it: the engine's own error follows
        result = torch.empty_like(like, memory_format=torch.contiguous_format)
        return result, as_numpy(result, writable=True)
    memory = new_array(tuple(like.shape), numpy_dtype)
    if like.dtype == torch.bfloat16:  # no NumPy dtype for torch: its bits as int16
        return torch.from_numpy(memory.view(np.int16)).view(torch.bfloat16), memory.view(_bfloat16())
    return torch.from_numpy(memory), memory


def _bfloat16() -> Any:
    import ml_dtypes

    return ml_dtypes.bfloat16


_NUMPY_DTYPES = {torch.float16: np.float16, torch.bfloat16: np.int16, torch.float32: np.float32,
                 torch.float64: np.float64}
"""The NumPy dtype that holds each dtype the kernels compute in (bfloat16 by its bits)."""


def _trailing(dims: list[int], ndim: int) -> bool:
    # dims are sorted and distinct: they are the trailing ones when the first of them is.
    return bool(dims) and dims[0] == ndim - len(dims)


def _rows(a: np.ndarray, n_dims: int) -> np.ndarray:
    """A C-contiguous array as a ``(rows, n)`` view over its last ``n_dims`` dims."""
    if a.ndim == 2 and n_dims == 1:
        return a
    return a.reshape(-1, math.prod(a.shape[a.ndim - n_dims:]))


def small_rows(t: torch.Tensor, dims: list[int]) -> tuple[int, int] | None:
    """``(rows, n)`` of ``t`` over ``dims`` when the kernels by address take it: float32 or
    float64, C-contiguous, reduced over its trailing dims, not empty, fewer elements than the
    threads take on (the call runs on the calling thread either way), rows of at most
    ``LONGEST_ROW``, and readable at its address (:func:`_readable`)."""
    size = t.numel()
    if (not 0 < size < PARALLEL_MIN_SIZE or t.dtype not in _ROW_KERNEL_SCALARS or not t.is_contiguous()
            or not _trailing(dims, t.dim()) or not _readable(t)):
        return None
    n = t.shape[-1] if len(dims) == 1 else math.prod(t.shape[dims[0]:])
    return (size // n, n) if n <= LONGEST_ROW else None


def _readable(t: torch.Tensor) -> bool:
    """Whether a contiguous tensor's values lie as they are at ``t.data_ptr()`` in this process's
    memory: a CPU tensor with memory (not freed by ``untyped_storage().resize_(0)``, as FSDP does,
    nor a zero tensor without any) and no negation bit (``z.conj().imag``: its memory holds
    ``-t``). The array path's NumPy view raises its own error for the others."""
    return t.is_cpu and t.data_ptr() != 0 and not t.is_neg()


def _new_rows(t: torch.Tensor) -> torch.Tensor:
    """A new C-contiguous tensor of ``t``'s shape and dtype, with the strides of the operators'
    fake results (``empty_like`` alone keeps ``t``'s strides on dims of size 1)."""
    return torch.empty_like(t, memory_format=torch.contiguous_format)


def softmax(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
            log: bool) -> torch.Tensor:
    """softmax (or log_softmax) of ``x`` over ``dims`` into a new contiguous tensor."""
    shape = None if mask is not None else small_rows(x, dims)
    if shape is None:
        return _softmax(x, dims, mask, temperature, log)
    y = _new_rows(x)
    softmax_at(x.data_ptr(), y.data_ptr(), *shape, _ROW_KERNEL_SCALARS[x.dtype](1.0 / temperature), log)
    return y


@on_torch_team
def _softmax(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
             log: bool) -> torch.Tensor:
    y, out = new_result(x)
    if out.size == 0:
        return y
    xn = as_numpy(x)
    if (mask is None and x.dtype in _ROW_KERNEL_SCALARS and x.is_contiguous()
            and _trailing(dims, x.dim())):
        rows = _rows(xn, len(dims))
        # The engine's row driver: small tensors on the calling thread, large ones in chunks of
        # rows on its pool (the same bits for any thread count).
        rows_softmax(rows, _rows(out, len(dims)), rows.dtype.type(1.0 / temperature), log)
        return y
    engine.softmax(xn, tuple(dims), where=None if mask is None else as_numpy(mask),
                   temperature=temperature, dtype=xn.dtype, out=out, log=log)
    return y


@on_torch_team
def logsumexp(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, keepdim: bool) -> torch.Tensor:
    """``log(sum(exp(x)))`` over ``dims`` (an empty reduction gives ``-inf``)."""
    xn = as_numpy(x)
    result = engine.logsumexp(xn, tuple(dims), b=None, keepdims=keepdim, return_sign=False,
                              where=None if mask is None else as_numpy(mask), dtype=xn.dtype)
    return as_tensor(result)


def _vjp(kernel: Any, first: torch.Tensor, g: torch.Tensor, dims: list[int], log: bool) -> torch.Tensor:
    shape = small_rows(first, dims)
    if shape is None or g.dtype != first.dtype or not g.is_contiguous() or not _readable(g):
        return _vjp_on_team(kernel, first, g, dims, log)
    result = _new_rows(first)
    vjp_at(first.data_ptr(), g.data_ptr(), result.data_ptr(), *shape, _ROW_KERNEL_SCALARS[first.dtype](0.0),
           log)
    return result


@on_torch_team
def _vjp_on_team(kernel: Any, first: torch.Tensor, g: torch.Tensor, dims: list[int],
                 log: bool) -> torch.Tensor:
    if first.numel() == 0:
        return torch.empty(first.shape, dtype=first.dtype)
    first_n = as_numpy(first)
    result, out = new_result(first)
    if first.dtype in _ROW_KERNEL_SCALARS and first.is_contiguous() and _trailing(dims, first.dim()):
        first_rows = _rows(first_n, len(dims))
        # NumPy's copy of a strided g (as loss.sum()'s expanded ones) costs a fifth of torch's.
        g_rows = _rows(np.ascontiguousarray(as_numpy(g), dtype=first_n.dtype), len(dims))
        run(kernel, first_rows.shape[0], first_rows.size, readonly(first_rows), readonly(g_rows),
            _rows(out, len(dims)))
        return result
    # Other dims, layouts and dtypes: the engine on the tensors' own memory, column kernels for
    # dims that are not last in memory. Moving the dims to the end instead cost transposed
    # copies of both inputs and of the result (softmax forward + backward, 1,024 x 8,192
    # float32 over dim 0: 0.54 against 5.9 GB/s; BENCHMARKS.md, "Axis-0 vjp column kernels").
    engine.vjp_into(first_n, as_numpy(g.to(first.dtype)), tuple(dims), out, log=log)
    return result


def softmax_vjp(s: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """``s * (g - sum(g * s))`` over ``dims``."""
    return _vjp(softmax_vjp_rows, s, g, dims, log=False)


def log_softmax_vjp(logp: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """``g - exp(logp) * sum(g)`` over the entries of ``dims`` with ``logp > -inf``, 0 elsewhere."""
    return _vjp(log_softmax_vjp_rows, logp, g, dims, log=True)


def check_labels(target: np.ndarray, n_classes: int, ignore_index: int | None) -> None:
    """ValueError naming the first label outside ``[0, n_classes)`` that is not ignored.

    Done here, on the real labels when the kernel runs, so that a traced or compiled graph
    holds no data-dependent branch: a compiled model raises the same error when it runs.
    """
    bad = (target < 0) | (target >= n_classes)
    if ignore_index is not None:
        bad &= target != ignore_index
    if bad.any():
        first = target.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
        raise ValueError(f"cross_entropy: label {int(first)} is out of range for {n_classes} classes")


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, dim: int,
                  ignore_index: int | None, label_smoothing: float, reduction: str,
                  want_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and, when ``want_grad``, its gradient with respect to ``logits`` from the same pass.

    Class indices run the Numba engine's fused kernels (small ones by address, without
    weights); probability targets (no kernel for them) the generic engine's formulas on the
    NumPy views.
    """
    shape = None if weight is not None else small_rows(logits, [dim])
    if (shape is None or target.dtype != torch.int64 or not target.is_contiguous() or not _readable(target)
            or not _INT64_MIN <= (ignore_index or 0) <= _INT64_MAX):
        return _cross_entropy(logits, target, weight, dim, ignore_index, label_smoothing, reduction,
                              want_grad)
    rows, n = shape
    ignoring = ignore_index is not None
    # A Python int whatever integer type was given: one compiled signature.
    ignored = 0 if ignore_index is None else int(ignore_index)
    counted, bad = labels_at(target.data_ptr(), rows, n, ignored, ignoring)
    if bad >= 0:
        check_labels(as_numpy(target), n, ignore_index)  # raises, naming the label
    # The "mean" divides by the summed weight of the counted samples (_rules.mean_denominator):
    # without class weights, their number.
    denominator = float(counted) if reduction == "mean" else 0.0
    scale = mean_gradient_scale(denominator) if reduction == "mean" else 1.0
    losses = np.empty(rows, dtype=np.float64)
    grad = _new_rows(logits) if want_grad else torch.empty((0,), dtype=logits.dtype)
    cross_entropy_at(logits.data_ptr(), grad.data_ptr() if want_grad else 0, target.data_ptr(), losses,
                     rows, n, ignored, ignoring, float(label_smoothing), scale, want_grad,
                     _ROW_KERNEL_SCALARS[logits.dtype](0.0))
    if want_grad and reduction == "mean" and denominator == 0.0:
        grad.zero_()  # the kernels' 0 * inf or 0 * NaN: _rules.mean_gradient's zero, exactly
    loss = reduced_loss(losses, reduction, denominator, _NUMPY_DTYPES[logits.dtype])
    return as_tensor(loss.reshape(target.shape) if reduction == "none" else loss), grad


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@on_torch_team
def _cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, dim: int,
                   ignore_index: int | None, label_smoothing: float, reduction: str,
                   want_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    ln, tn = as_numpy(logits), as_numpy(target)
    wn = None if weight is None else as_numpy(weight.to(logits.dtype))
    labels = target.dim() == logits.dim() - 1
    if labels:
        check_labels(tn, logits.shape[dim], ignore_index)
    compute = engine.cross_entropy if labels and logits.numel() else generic.cross_entropy
    result = compute(ln, tn, dim, weight=wn, ignore_index=ignore_index if labels else None,
                     label_smoothing=label_smoothing, reduction=reduction, return_grad=want_grad,
                     dtype=ln.dtype)
    if not want_grad:
        return as_tensor(result), torch.empty((0,), dtype=logits.dtype)
    loss, grad = result
    return as_tensor(loss), strided_like(logits, grad)


def strided_like(like: torch.Tensor, a: np.ndarray) -> torch.Tensor:
    """``a`` (``like``'s shape) as a tensor with the strides of ``torch.empty_like(like)``,
    as the operator's fake says: the engine's own result when its strides already are those
    (a dense ``like``, the result in its memory order), else a copy.

    The gradient of logits whose classes are not last in memory (``x.T`` of a C-contiguous
    ``x``, classes on dim 1) comes out of the column kernels in the logits' memory order;
    made contiguous it cost a transposed copy here and another in autograd's AccumulateGrad,
    which gives a leaf's ``.grad`` the leaf's strides (1,024 x 8,192 float32: BENCHMARKS.md,
    "Axis-0 vjp column kernels").
    """
    if a.strides == tuple(s * a.itemsize for s in like.stride()) and all(s >= 0 for s in a.strides):
        if a.dtype.type.__name__ == "bfloat16":
            return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(a)
    return torch.empty_like(like).copy_(as_tensor(a))
