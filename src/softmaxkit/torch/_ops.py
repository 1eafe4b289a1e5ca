"""The softmaxkit operators, registered with PyTorch (``torch.ops.softmaxkit.*``).

=====================================================================================  ======
operator                                                                               grad
=====================================================================================  ======
``softmax(Tensor x, int[] dims, Tensor? mask, float temperature, bool log) -> Tensor``  the vjp ops
``logsumexp(Tensor x, int[] dims, Tensor? mask, bool keepdim) -> Tensor``              softmax op
``softmax_vjp(Tensor s, Tensor g, int[] dims) -> Tensor``                              torch ops
``log_softmax_vjp(Tensor logp, Tensor g, int[] dims) -> Tensor``                       torch ops
``cross_entropy(Tensor logits, Tensor target, Tensor? weight, int dim,                 saved grad
int? ignore_index, float label_smoothing, str reduction, bool want_grad)
-> (Tensor loss, Tensor grad)``
=====================================================================================  ======

Each has a fake implementation (shapes for ``torch.compile`` and meta tensors) and a vmap
rule here, and an autograd formula in :mod:`softmaxkit.torch._autograd`, so that autograd,
``torch.compile(fullgraph=True)``, ``torch.func`` and ``torch.library.opcheck`` work.
Results are contiguous, but for cross_entropy's gradient, which has the strides of
``torch.empty_like(logits)`` (the logits' own when they are dense): only then does autograd
hand it to a leaf as its ``.grad`` without a copy. ``dims`` are sorted non-negative dims;
the callers (the engine, the ``softmaxkit.torch`` face) have checked every argument.

cross_entropy computes its gradient in the forward pass when ``want_grad`` (as Liger-Kernel's
fused loss does) and saves only that, so the loss holds one logits-sized buffer from
forward to backward, against the saved log-probabilities plus a new gradient of
``F.cross_entropy``. The second output is that buffer. On ``loss.backward()`` of a reduced
loss (incoming gradient 1, checked in eager CPU runs only) the backward hands the buffer on
as the gradient; otherwise it scales a copy.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch.library import custom_op

from softmaxkit.torch import _cpu


def _kernels(t: torch.Tensor) -> ModuleType:
    """The implementation for ``t``'s device: the Numba engine on CPU, the CUDA engine on GPUs."""
    if t.is_cpu:  # not t.device.type: building the device object costs more than these
        return _cpu
    if t.is_cuda:
        from softmaxkit.torch import _cuda

        return _cuda
    raise NotImplementedError(f"softmaxkit operators run on CPU and CUDA tensors, not on {t.device.type}")


# --- softmax / log_softmax ---------------------------------------------------------------------

@custom_op("softmaxkit::softmax", mutates_args=(),
           schema="(Tensor x, int[] dims, Tensor? mask, float temperature, bool log) -> Tensor")
def softmax(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
            log: bool) -> torch.Tensor:
    return _kernels(x).softmax(x, list(dims), mask, temperature, log)


@softmax.register_fake
def _(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
      log: bool) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


# --- logsumexp ----------------------------------------------------------------------------------

@custom_op("softmaxkit::logsumexp", mutates_args=(),
           schema="(Tensor x, int[] dims, Tensor? mask, bool keepdim) -> Tensor")
def logsumexp(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, keepdim: bool) -> torch.Tensor:
    return _kernels(x).logsumexp(x, list(dims), mask, keepdim)


@logsumexp.register_fake
def _(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, keepdim: bool) -> torch.Tensor:
    shape = [1 if d in dims else s for d, s in enumerate(x.shape) if keepdim or d not in dims]
    return x.new_empty(shape)


# --- the vector-Jacobian products ---------------------------------------------------------------

@custom_op("softmaxkit::softmax_vjp", mutates_args=(), schema="(Tensor s, Tensor g, int[] dims) -> Tensor")
def softmax_vjp(s: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return _kernels(s).softmax_vjp(s, g, list(dims))


@custom_op("softmaxkit::log_softmax_vjp", mutates_args=(),
           schema="(Tensor logp, Tensor g, int[] dims) -> Tensor")
def log_softmax_vjp(logp: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return _kernels(logp).log_softmax_vjp(logp, g, list(dims))


@softmax_vjp.register_fake
def _(s: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return torch.empty_like(s, memory_format=torch.contiguous_format)


@log_softmax_vjp.register_fake
def _(logp: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    return torch.empty_like(logp, memory_format=torch.contiguous_format)


# --- cross_entropy ------------------------------------------------------------------------------

@custom_op("softmaxkit::cross_entropy", mutates_args=(),
           schema="(Tensor logits, Tensor target, Tensor? weight, int dim, int? ignore_index, "
                  "float label_smoothing, str reduction, bool want_grad) -> (Tensor, Tensor)")
def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, dim: int,
                  ignore_index: int | None, label_smoothing: float, reduction: str,
                  want_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _kernels(logits).cross_entropy(logits, target, weight, dim, ignore_index, label_smoothing,
                                          reduction, want_grad)


@cross_entropy.register_fake
def _cross_entropy_fake(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, dim: int,
                        ignore_index: int | None, label_smoothing: float, reduction: str,
                        want_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    shape = [s for d, s in enumerate(logits.shape) if d != dim] if reduction == "none" else []
    return logits.new_empty(shape), torch.empty_like(logits) if want_grad else logits.new_empty((0,))


# --- vmap: batched calls --------------------------------------------------------------------------

def _batch_first(t: torch.Tensor | None, bdim: int | None, size: int) -> torch.Tensor | None:
    if t is None:
        return None
    return t.movedim(bdim, 0) if bdim is not None else t.expand(size, *t.shape)


def _shifted(dims: list[int]) -> list[int]:
    return [d + 1 for d in dims]


def _softmax_vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, dims: list[int],
                  mask: torch.Tensor | None, temperature: float, log: bool) -> tuple[torch.Tensor, int]:
    x_b = _batch_first(x, in_dims[0], info.batch_size)
    mask_b = _batch_first(mask, in_dims[2], info.batch_size)
    return softmax(x_b, _shifted(dims), mask_b, temperature, log), 0


def _logsumexp_vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, dims: list[int],
                    mask: torch.Tensor | None, keepdim: bool) -> tuple[torch.Tensor, int]:
    x_b = _batch_first(x, in_dims[0], info.batch_size)
    mask_b = _batch_first(mask, in_dims[2], info.batch_size)
    return logsumexp(x_b, _shifted(dims), mask_b, keepdim), 0


def _vjp_vmap(op: Any) -> Any:
    def rule(info: Any, in_dims: tuple[Any, ...], first: torch.Tensor, g: torch.Tensor,
             dims: list[int]) -> tuple[torch.Tensor, int]:
        return op(_batch_first(first, in_dims[0], info.batch_size),
                  _batch_first(g, in_dims[1], info.batch_size), _shifted(dims)), 0

    return rule


def _cross_entropy_vmap(info: Any, in_dims: tuple[Any, ...], logits: torch.Tensor, target: torch.Tensor,
                        weight: torch.Tensor | None,
                        *options: Any) -> tuple[tuple[torch.Tensor, ...], tuple[int, int]]:
    # Each batch member has its own reduction (a mean over its own samples): one call each.
    def member(t: torch.Tensor | None, bdim: int | None, i: int) -> torch.Tensor | None:
        return t if t is None or bdim is None else t.select(bdim, i)

    results = [cross_entropy(member(logits, in_dims[0], i), member(target, in_dims[1], i),
                             member(weight, in_dims[2], i), *options) for i in range(info.batch_size)]
    if not results:  # an empty batch: no member to call, the members' shapes from the fake
        shape = [s for d, s in enumerate(logits.shape) if d != in_dims[0]]
        loss, grad = _cross_entropy_fake(logits.new_empty(shape), target, weight, *options)
        return (loss.new_empty((0, *loss.shape)), grad.new_empty((0, *grad.shape))), (0, 0)
    return (torch.stack([r[0] for r in results]), torch.stack([r[1] for r in results])), (0, 0)


torch.library.register_vmap(softmax, _softmax_vmap)
torch.library.register_vmap(logsumexp, _logsumexp_vmap)
torch.library.register_vmap(softmax_vjp, _vjp_vmap(softmax_vjp))
torch.library.register_vmap(log_softmax_vjp, _vjp_vmap(log_softmax_vjp))
torch.library.register_vmap(cross_entropy, _cross_entropy_vmap)

OPERATORS = (softmax, logsumexp, softmax_vjp, log_softmax_vjp, cross_entropy)
"""Every registered operator (the tests run ``opcheck`` and ``gradcheck`` on each)."""
