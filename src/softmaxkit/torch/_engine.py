"""The torch engine: PyTorch tensors (CPU and CUDA) through the registered softmaxkit operators.

Each function has the generic engine's signature (:mod:`softmaxkit.generic`); the public API
has checked the arguments. The operators (:mod:`softmaxkit.torch._ops`) run the Numba
engine's kernels on CPU tensors and the CUDA engine's on GPU tensors, and carry autograd:
``sk.softmax(x)`` of a tensor that requires grad is differentiable, and its backward is the
package's fused vjp kernels. The registry leaves to the generic engine what the operators do
not compute (``logsumexp`` with ``b=``, ``return_sign=True`` or complex input).

A result dtype other than the input's is reached by the cast that loses nothing: a wider
result casts the input first, a narrower one rounds the result (half types compute in
float32 either way, SPEC §2).
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from softmaxkit.torch import _autograd

__all__ = ["cross_entropy", "log_softmax_vjp", "logsumexp", "softmax", "softmax_jvp", "softmax_vjp"]

_PUBLIC_ON_TENSORS = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "softmax_vjp", "softmax_jvp",
                      "log_softmax_vjp")
"""The public functions that reach this engine: what torch.compile writes into its graphs."""

_registered = False


def register_with_dynamo() -> None:
    """Have torch.compile's Dynamo write calls of the public functions into its graph as they
    are, once Dynamo is loaded (this never imports it: that costs 0.7 s).

    AOTAutograd then runs them on fake tensors down to the softmaxkit operators. Traced by
    Dynamo instead, their argument checks go through array-api-compat's cached helpers,
    which Dynamo traces with one warning each (that still happens to the first compiled call
    in a process where no eager call came first: registering while Dynamo traces a graph
    breaks its guards). Called when this module is imported and by eager calls, for a Dynamo
    loaded later.
    """
    global _registered
    if _registered or "torch._dynamo" not in sys.modules:
        return
    _registered = True
    api = sys.modules["softmaxkit._api"]  # loaded: it is what calls this engine (no import cycle)
    for name in _PUBLIC_ON_TENSORS:
        torch.compiler.allow_in_graph(getattr(api, name))


def _register_if_eager() -> None:
    # Every eager call asks: the dict lookup first, it is the cheapest test.
    if "torch._dynamo" in sys.modules and not _registered and not torch.compiler.is_compiling():
        register_with_dynamo()


def _size(dtype: torch.dtype) -> int:
    return torch.finfo(dtype).bits if dtype.is_floating_point else 0


def check_layout(name: str, t: torch.Tensor) -> None:
    """TypeError for sparse and nested tensors: the kernels read dense memory (they met
    "Cannot access data pointer of Tensor that doesn't have storage")."""
    if t.layout is not torch.strided or t.is_nested:
        kind = "nested" if t.is_nested else str(t.layout).rsplit(".", 1)[-1]
        raise TypeError(f"{name}: {kind} tensors are not supported; pass a dense tensor (.to_dense())")


def _staged(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.dtype | None]:
    """``x`` in the dtype to compute in, and the dtype to round the result to afterwards (or None)."""
    check_layout("softmaxkit", x)
    if x.dtype == dtype:
        return x, None
    if _size(x.dtype) > _size(dtype):
        return x, dtype
    if _size(x.dtype) == _size(dtype):  # float16 <-> bfloat16: through float32, rounded once
        return x.float(), dtype
    if _size(dtype) == 16:  # integers to a half type: through float32 too (70000 is no inf)
        return x.float(), dtype
    return x.to(dtype), None


def _finish(y: torch.Tensor, dtype: torch.dtype | None, out: torch.Tensor | None = None) -> torch.Tensor:
    if dtype is not None:
        y = y.to(dtype)
    if out is None:
        return y
    out.copy_(y)
    return out


def softmax(
    x: torch.Tensor, axes: tuple[int, ...], *, where: torch.Tensor | None, temperature: float,
    dtype: Any, out: torch.Tensor | None, log: bool,
) -> torch.Tensor:
    """softmax (``log=False``) or log_softmax (``log=True``) of ``x`` over ``axes``."""
    _register_if_eager()
    xc, rounding = _staged(x, dtype)
    return _finish(_autograd.softmax(xc, list(axes), where, temperature, log), rounding, out)


def logsumexp(
    x: torch.Tensor, axes: tuple[int, ...], *, b: Any, keepdims: bool, return_sign: bool,
    where: torch.Tensor | None, dtype: Any,
) -> torch.Tensor:
    """``log(sum(exp(x)))`` over ``axes`` (the registry sends ``b=`` and ``return_sign`` elsewhere)."""
    _register_if_eager()
    xc, rounding = _staged(x, dtype)
    return _finish(_autograd.logsumexp(xc, list(axes), where, keepdims), rounding)


def _product(op: Any, first: torch.Tensor, g: torch.Tensor, axes: tuple[int, ...],
             dtype: Any) -> torch.Tensor:
    _register_if_eager()
    _autograd.check_devices(op.__name__, first, g)
    fc, rounding = _staged(first, dtype)
    return _finish(op(fc, g.to(fc.dtype), list(axes)), rounding)


def softmax_vjp(s: torch.Tensor, g: torch.Tensor, axes: tuple[int, ...], *, dtype: Any) -> torch.Tensor:
    """``s * (g - sum(g * s))`` over ``axes``."""
    return _product(_autograd.softmax_vjp, s, g, axes, dtype)


def softmax_jvp(s: torch.Tensor, v: torch.Tensor, axes: tuple[int, ...], *, dtype: Any) -> torch.Tensor:
    """``J v``: the vjp, since the softmax Jacobian is symmetric."""
    return _product(_autograd.softmax_vjp, s, v, axes, dtype)


def log_softmax_vjp(logp: torch.Tensor, g: torch.Tensor, axes: tuple[int, ...], *,
                    dtype: Any) -> torch.Tensor:
    """``g - exp(logp) * sum(g)`` over the entries with ``logp > -inf``."""
    return _product(_autograd.log_softmax_vjp, logp, g, axes, dtype)


def cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, axis: int, *, weight: torch.Tensor | None,
    ignore_index: int | None, label_smoothing: float, reduction: str, return_grad: bool, dtype: Any,
) -> Any:
    """The loss (and its gradient) from one fused pass; differentiable through autograd as well."""
    _register_if_eager()
    lc, rounding = _staged(logits, dtype)
    if target.is_floating_point():
        target = target.to(lc.dtype)
    if weight is not None:
        weight = weight.to(lc.dtype)
    want_grad = True if return_grad else None  # None: when autograd will ask for it
    loss, grad = _autograd.cross_entropy(lc, target, weight, axis, ignore_index, label_smoothing, reduction,
                                    want_grad)
    if not return_grad:
        return _finish(loss, rounding)
    if not torch.compiler.is_compiling() and loss.grad_fn is not None:
        # The caller holds the gradient buffer: the backward must not hand it on as the logits'
        # gradient too (autograd.grad would return the caller's own tensor). Compiled graphs
        # never hand it on.
        setattr(loss.grad_fn, "gradient_returned", True)  # noqa: B010 (no such attribute on Node)
    return _finish(loss, rounding), _finish(grad, rounding)


_register_if_eager()
