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

import math
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


# --- the arguments of a direct call ----------------------------------------------------------------
# The package's own calls pass checked arguments (and mostly reach the kernels without the
# dispatcher); a direct call of torch.ops.softmaxkit.* is checked here, before the kernels
# read past the end of a tensor of the wrong shape.

def _check_dims(x: torch.Tensor, dims: list[int]) -> None:
    if list(dims) != sorted(set(dims)) or not all(0 <= d < x.dim() for d in dims):
        raise ValueError(f"softmaxkit: dims must be sorted, distinct dims of a {x.dim()}-d tensor, "
                         f"got {dims}")


def _full_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
    """``mask`` broadcast to ``x``'s shape (a view), as the kernels read it."""
    if mask is None or mask.shape == x.shape:
        return mask
    if mask.dtype != torch.bool or mask.dim() > x.dim() or any(
            m not in (1, s) for m, s in zip(reversed(mask.shape), reversed(x.shape), strict=False)):
        raise ValueError(f"softmaxkit: the mask must be boolean and broadcast to {tuple(x.shape)}, got "
                         f"{mask.dtype} of shape {tuple(mask.shape)}")
    return mask.expand(x.shape)


def _check_same_shape(first: torch.Tensor, g: torch.Tensor) -> None:
    if g.shape != first.shape:
        raise ValueError(f"softmaxkit: the cotangent has shape {tuple(g.shape)}, "
                         f"expected {tuple(first.shape)}")


def _check_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, dim: int,
                         label_smoothing: float, reduction: str) -> None:
    if not 0 <= dim < logits.dim():
        raise ValueError(f"softmaxkit::cross_entropy: dim {dim} of a {logits.dim()}-d tensor")
    labels = tuple(s for d, s in enumerate(logits.shape) if d != dim)
    if not ((target.shape == logits.shape and target.is_floating_point())
            or (tuple(target.shape) == labels and not target.is_floating_point())):
        raise ValueError(f"softmaxkit::cross_entropy: target must be class indices of shape {labels} or "
                         f"probabilities of shape {tuple(logits.shape)}, got {target.dtype} of shape "
                         f"{tuple(target.shape)}")
    if weight is not None and tuple(weight.shape) != (logits.shape[dim],):
        raise ValueError(f"softmaxkit::cross_entropy: weight must have shape ({logits.shape[dim]},), "
                         f"got {tuple(weight.shape)}")
    if reduction not in ("mean", "sum", "none") or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"softmaxkit::cross_entropy: reduction {reduction!r} or label_smoothing "
                         f"{label_smoothing} out of their domains")


# --- softmax / log_softmax ---------------------------------------------------------------------

@custom_op("softmaxkit::softmax", mutates_args=(),
           schema="(Tensor x, int[] dims, Tensor? mask, float temperature, bool log) -> Tensor")
def softmax(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
            log: bool) -> torch.Tensor:
    _check_dims(x, dims)
    if not 0.0 < temperature < math.inf:
        raise ValueError(f"softmaxkit::softmax: temperature must be finite and > 0, got {temperature}")
    return _kernels(x).softmax(x, list(dims), _full_mask(x, mask), temperature, log)


@softmax.register_fake
def _(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
      log: bool) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


# --- logsumexp ----------------------------------------------------------------------------------

@custom_op("softmaxkit::logsumexp", mutates_args=(),
           schema="(Tensor x, int[] dims, Tensor? mask, bool keepdim) -> Tensor")
def logsumexp(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, keepdim: bool) -> torch.Tensor:
    _check_dims(x, dims)
    return _kernels(x).logsumexp(x, list(dims), _full_mask(x, mask), keepdim)


@logsumexp.register_fake
def _(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, keepdim: bool) -> torch.Tensor:
    shape = [1 if d in dims else s for d, s in enumerate(x.shape) if keepdim or d not in dims]
    return x.new_empty(shape)


# --- the vector-Jacobian products ---------------------------------------------------------------

@custom_op("softmaxkit::softmax_vjp", mutates_args=(), schema="(Tensor s, Tensor g, int[] dims) -> Tensor")
def softmax_vjp(s: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    _check_dims(s, dims)
    _check_same_shape(s, g)
    return _kernels(s).softmax_vjp(s, g, list(dims))


@custom_op("softmaxkit::log_softmax_vjp", mutates_args=(),
           schema="(Tensor logp, Tensor g, int[] dims) -> Tensor")
def log_softmax_vjp(logp: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    _check_dims(logp, dims)
    _check_same_shape(logp, g)
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
    _check_cross_entropy(logits, target, weight, dim, label_smoothing, reduction)
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


def _batched_mask(mask: torch.Tensor | None, bdim: int | None, batched_ndim: int) -> torch.Tensor | None:
    """The mask for the batched x (``batched_ndim`` dims, batch first): an unbatched one
    broadcasts as it is; a batched one gets its batch dim first and, if it has fewer dims than
    a member of x, the missing ones after it (expanded to the batch instead, a mask of fewer
    dims lined its batch dim up with a dim of x)."""
    if mask is None or bdim is None:
        return mask
    m = mask.movedim(bdim, 0)
    return m.reshape(m.shape[0], *[1] * (batched_ndim - m.dim()), *m.shape[1:])


def _batched_ndim(x: torch.Tensor, bdim: int | None) -> int:
    return x.dim() + (bdim is None)


def _softmax_vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, dims: list[int],
                  mask: torch.Tensor | None, temperature: float, log: bool) -> tuple[torch.Tensor, int]:
    x_b = _batch_first(x, in_dims[0], info.batch_size)
    mask_b = _batched_mask(mask, in_dims[2], _batched_ndim(x, in_dims[0]))
    return softmax(x_b, _shifted(dims), mask_b, temperature, log), 0


def _logsumexp_vmap(info: Any, in_dims: tuple[Any, ...], x: torch.Tensor, dims: list[int],
                    mask: torch.Tensor | None, keepdim: bool) -> tuple[torch.Tensor, int]:
    x_b = _batch_first(x, in_dims[0], info.batch_size)
    mask_b = _batched_mask(mask, in_dims[2], _batched_ndim(x, in_dims[0]))
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
