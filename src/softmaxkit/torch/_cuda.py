"""The CUDA kernels of the softmaxkit operators: the CUDA engine (CuPy, NVRTC) on torch's stream.

The tensors cross into CuPy through DLPack (zero-copy) inside a CuPy stream object made from
``torch.cuda.current_stream()`` (:func:`softmaxkit.cuda._launch.external_stream`), so the
kernels run in stream order with the surrounding PyTorch work (no synchronisation; CUDA graphs
and side streams see them where torch's own kernels would be). Results are made contiguous, as
the fake implementations say.

First run on a GPU in session 11 (an H200, torch 2.11, CuPy 14; tests/test_torch_cuda.py runs
where one exists): see BENCHMARKS.md, "GPU".
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from softmaxkit import cuda as engine
from softmaxkit import generic
from softmaxkit.cuda._launch import external_stream


@contextlib.contextmanager
def _torch_stream(t: torch.Tensor) -> Iterator[None]:
    import cupy

    stream = torch.cuda.current_stream(t.device)
    # The device first: CuPy makes the stream object for the current device.
    with cupy.cuda.Device(t.device.index), external_stream(stream.cuda_stream):
        yield


def _plain(t: torch.Tensor) -> torch.Tensor:
    t = t.detach() if t.requires_grad else t
    # A view that negates on read (z.conj().imag) crosses DLPack as its memory, which holds -t.
    return t.resolve_neg() if t.is_neg() else t


def softmax(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
            log: bool) -> torch.Tensor:
    x = _plain(x)
    if x.numel() == 0 or not dims:  # no rows for the kernels: the reference formulas on the tensor
        y = generic.softmax(x, tuple(dims), where=mask, temperature=temperature, dtype=x.dtype, out=None,
                            log=log)
        return y.contiguous()
    with _torch_stream(x):
        y = engine.softmax(x, tuple(dims), where=mask, temperature=temperature, dtype=x.dtype, out=None,
                           log=log)
    return y.contiguous()


def logsumexp(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, keepdim: bool) -> torch.Tensor:
    x = _plain(x)
    compute = generic.logsumexp if x.numel() == 0 or not dims else engine.logsumexp
    with _torch_stream(x):
        y = compute(x, tuple(dims), b=None, keepdims=keepdim, return_sign=False, where=mask, dtype=x.dtype)
    assert isinstance(y, torch.Tensor)  # without return_sign: one array
    return y.contiguous()


def _vjp(first: torch.Tensor, g: torch.Tensor, dims: list[int], log: bool) -> torch.Tensor:
    first, g = _plain(first), _plain(g)
    if first.numel() == 0 or not dims:
        compute = generic.log_softmax_vjp if log else generic.softmax_vjp
    else:
        compute = engine.log_softmax_vjp if log else engine.softmax_vjp
    with _torch_stream(first):
        y = compute(first, g.to(first.dtype), tuple(dims), dtype=first.dtype)
    return y.contiguous()


def softmax_vjp(s: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return _vjp(s, g, dims, log=False)


def log_softmax_vjp(logp: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return _vjp(logp, g, dims, log=True)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, dim: int,
                  ignore_index: int | None, label_smoothing: float, reduction: str,
                  want_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    logits, target = _plain(logits), _plain(target)
    weight = None if weight is None else _plain(weight)
    labels = target.dim() == logits.dim() - 1
    if labels:
        # Out-of-range labels would index outside the logits in the kernel: checked first (one
        # synchronisation, the price of a clear error).
        bad = (target < 0) | (target >= logits.shape[dim])
        if ignore_index is not None:
            bad &= target != ignore_index
        if bool(bad.any()):
            first = target.reshape(-1)[int(bad.reshape(-1).to(torch.uint8).argmax())]
            raise ValueError(f"cross_entropy: label {int(first)} is out of range for "
                             f"{logits.shape[dim]} classes")
    compute = engine.cross_entropy if logits.numel() else generic.cross_entropy
    with _torch_stream(logits):
        result = compute(logits, target, dim, weight=weight, ignore_index=ignore_index if labels else None,
                         label_smoothing=label_smoothing, reduction=reduction, return_grad=want_grad,
                         dtype=logits.dtype)
    if not want_grad:
        return result.contiguous(), logits.new_empty((0,))
    loss, grad = result
    if grad.stride() != logits.stride():  # the strides of torch.empty_like(logits), as the fake says
        grad = torch.empty_like(logits).copy_(grad)
    return loss.contiguous(), grad
