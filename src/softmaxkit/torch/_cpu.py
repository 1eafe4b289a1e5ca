"""The CPU kernels of the softmaxkit operators: the Numba engine on the tensors' own memory.

``t.numpy()`` of a CPU tensor is a view, so the kernels read the tensor where it lies and
write into a tensor allocated here (contiguous, as the operators' fake implementations say).
bfloat16 has no NumPy dtype: its memory is viewed as ``int16`` and then as ml_dtypes'
bfloat16, the type the Numba engine's half-precision kernels recognise.

Contiguous float32/float64 rows without a mask call the row kernels directly: the engine's
argument plumbing (``errstate``, the layout) costs about 8 µs, more than the whole kernel on
a 64 x 10 tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from softmaxkit import generic
from softmaxkit import numba as engine
from softmaxkit.numba import rows_softmax
from softmaxkit.numba._grad import log_softmax_vjp_rows, softmax_vjp_rows
from softmaxkit.numba._threads import readonly, run

_ROW_KERNEL_DTYPES = (torch.float32, torch.float64)


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory (bfloat16 as ml_dtypes' bfloat16)."""
    if t.requires_grad:
        t = t.detach()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def as_tensor(a: Any) -> torch.Tensor:
    """A NumPy result (array or scalar) as a contiguous CPU tensor; bfloat16 through its bits."""
    a = np.ascontiguousarray(a) if np.ndim(a) else np.array(a)
    if a.dtype.type.__name__ == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _trailing(dims: list[int], ndim: int) -> bool:
    return bool(dims) and dims == list(range(ndim - len(dims), ndim))


def _rows(t: torch.Tensor, n_dims: int) -> np.ndarray:
    """A contiguous tensor as a ``(rows, n)`` NumPy view over its last ``n_dims`` dims."""
    n = 1
    for size in t.shape[t.dim() - n_dims:]:
        n *= size
    return as_numpy(t).reshape(-1, n)


def softmax(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
            log: bool) -> torch.Tensor:
    """softmax (or log_softmax) of ``x`` over ``dims`` into a new contiguous tensor."""
    y = torch.empty(x.shape, dtype=x.dtype)
    if x.numel() == 0:
        return y
    if (mask is None and x.dtype in _ROW_KERNEL_DTYPES and x.is_contiguous()
            and _trailing(dims, x.dim())):
        rows, out = _rows(x, len(dims)), _rows(y, len(dims))
        # The engine's row driver: small tensors on the calling thread, large ones over fixed
        # ranges of rows on its pool (the same bits for any thread count).
        rows_softmax(rows, out, rows.dtype.type(1.0 / temperature), log)
        return y
    xn = as_numpy(x)
    engine.softmax(xn, tuple(dims), where=None if mask is None else as_numpy(mask),
                   temperature=temperature, dtype=xn.dtype, out=as_numpy(y), log=log)
    return y


def logsumexp(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, keepdim: bool) -> torch.Tensor:
    """``log(sum(exp(x)))`` over ``dims`` (an empty reduction gives ``-inf``)."""
    xn = as_numpy(x)
    result = engine.logsumexp(xn, tuple(dims), b=None, keepdims=keepdim, return_sign=False,
                              where=None if mask is None else as_numpy(mask), dtype=xn.dtype)
    return as_tensor(result)


def _vjp(kernel: Any, first: torch.Tensor, g: torch.Tensor, dims: list[int], log: bool) -> torch.Tensor:
    if first.numel() == 0:
        return torch.empty(first.shape, dtype=first.dtype)
    if not _trailing(dims, first.dim()):
        # The kernels reduce trailing dims: move them there (a copy, as the engine would make).
        ends = list(range(first.dim() - len(dims), first.dim()))
        moved = _vjp(kernel, first.movedim(dims, ends).contiguous(), g.movedim(dims, ends), ends, log)
        return moved.movedim(ends, dims).contiguous()
    if first.dtype in _ROW_KERNEL_DTYPES and first.is_contiguous() and not (log and _beyond_exp(first)):
        g = g.to(first.dtype).contiguous()
        out = torch.empty(first.shape, dtype=first.dtype)
        first_rows = _rows(first, len(dims))
        run(kernel, first_rows.shape[0], first_rows.size, readonly(first_rows),
            readonly(_rows(g, len(dims))), _rows(out, len(dims)))
        return out
    fn, gn = as_numpy(first), as_numpy(g.to(first.dtype))
    if log and _beyond_exp(first):
        # The kernels' exp is accurate below 40 only; log_softmax never gives more than 0.
        return as_tensor(generic.log_softmax_vjp(fn, gn, tuple(dims), dtype=fn.dtype))
    vjp = engine.log_softmax_vjp if log else engine.softmax_vjp
    return as_tensor(vjp(fn, gn, tuple(dims), dtype=fn.dtype))


def _beyond_exp(logp: torch.Tensor) -> bool:
    return not bool(logp.max() < 40)


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

    Class indices run the Numba engine's fused kernels; probability targets (no kernel for
    them) the generic engine's formulas on the NumPy views.
    """
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
    return as_tensor(loss), as_tensor(grad)
