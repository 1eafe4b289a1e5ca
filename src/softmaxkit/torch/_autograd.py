"""Autograd of the softmaxkit operators, and the functions the package calls them through.

The backward formulas are registered on the operators (``register_autograd``: autograd of
``torch.ops.softmaxkit.*`` called directly, ``torch.compile``, ``opcheck``) and serve the
``torch.autograd.Function`` classes below as well. The package calls the operators through
:func:`softmax`, :func:`logsumexp`, :func:`softmax_vjp`, :func:`log_softmax_vjp` and
:func:`cross_entropy` here, which take the Function when a gradient is wanted: in PyTorch
2.13 an operator's registered autograd does not work under ``torch.func`` transforms
(``grad``, ``jacrev``, ``vmap`` of ``grad``: "must override the setup_context staticmethod",
pytorch/pytorch#168393), while a Function with ``setup_context`` does. The Function's
forward is the operator itself, so compiled graphs still hold the operator; it is also
cheaper per call than the operator's generated autograd wrapper (64 x 10 softmax forward and
backward, see BENCHMARKS.md).

The formulas give SPEC §2's gradients: exactly 0 at excluded entries (masked, ``-inf``) and
for fully excluded rows, where ``torch.softmax``'s backward gives NaN.
"""

from __future__ import annotations

from typing import Any

import torch

from softmaxkit.torch import _formulas, _ops


def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd, forward-mode AD, or a torch.func transform (whose wrapped tensors may
    not say that they require grad, as inside ``grad(vmap(f))``), may differentiate the call."""
    if _formulas.forward_ad_active():
        return True
    if not torch.is_grad_enabled():
        return False
    for t in tensors:
        if t is not None and t.requires_grad:
            return True
    if torch.compiler.is_compiling() or not torch._C._are_functorch_transforms_active():
        return False
    return any(t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


def _wants_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether to call through the autograd.Function: in eager mode, when a gradient may be
    asked for. A compiled graph holds the operator itself, differentiated by its registered
    formula (Dynamo's tracing of a Function instantiates it, which PyTorch 2.13 deprecates
    with a warning). So does a ``torch.jit.trace`` graph: its sanity check reruns the call
    without grad, and a Function in one run but not the other fails it."""
    return _needs_grad(*tensors) and not torch.compiler.is_compiling() and not _tracing()


def _tracing() -> bool:
    """Whether ``torch.jit.trace`` records the call."""
    return torch._C._get_tracing_state() is not None


def _run(name: str, *args: Any) -> Any:
    """The operator ``name`` on ``args``; in eager mode on plain tensors, the kernel it would run,
    called directly: the dispatcher's round trip costs about 7 µs, as much as the whole kernel
    on a 64 x 10 tensor. Traced, fake, meta or torch.func-wrapped tensors go through the operator;
    so do calls under ``torch.jit.trace``, which records only what reaches the dispatcher (the
    kernel called directly left the first input's result in the trace as a constant)."""
    if (torch.compiler.is_compiling() or not (args[0].is_cpu or args[0].is_cuda)  # meta: the fake
            or _tracing()):
        return getattr(_ops, name)(*args)
    for a in args:
        if isinstance(a, torch.Tensor) and (
                type(a) is not torch.Tensor or torch._C._functorch.is_functorch_wrapped_tensor(a)):
            return getattr(_ops, name)(*args)
    return getattr(_ops._kernels(args[0]), name)(*args)


def check_devices(name: str, first: torch.Tensor, *others: torch.Tensor | None) -> None:
    """ValueError unless ``others`` lie on ``first``'s device: the kernels would read a tensor
    of another device as if it were on theirs (PyTorch raises too)."""
    for t in others:
        if t is not None and (t.is_cpu != first.is_cpu or (not t.is_cpu and t.device != first.device)):
            raise ValueError(f"{name}: expected all tensors on one device, got {first.device} and {t.device}")


def _batched(g: torch.Tensor) -> bool:
    """Whether ``g`` is a batch of incoming gradients (``autograd.grad(is_grads_batched=True)``,
    ``jacobian(vectorize=True)``): PyTorch's legacy vmap, whose tensors have no memory for the
    kernels and no value to read; PyTorch's own ops batch them."""
    return bool(torch._C._functorch.is_legacy_batchedtensor(g))


def _save(ctx: Any, *tensors: torch.Tensor | None) -> None:
    """Keep ``tensors`` for the backward and the jvp alike: under torch.func, two different
    sets would leave the saved tensors' batch dimensions of one of them wrong."""
    ctx.save_for_backward(*tensors)
    ctx.save_for_forward(*tensors)


def _eager_twin(function: type[torch.autograd.Function]) -> type[torch.autograd.Function]:
    """``function`` with the forward that takes ``ctx`` (and calls its ``setup_context``).

    PyTorch binds every call of a Function that defines ``setup_context`` to the forward's
    signature with ``inspect`` (about 23 µs of a 64 x 10 softmax's 66 µs forward and
    backward); the form with ``ctx`` skips that, but torch.func transforms need
    ``setup_context``. :func:`_apply` picks the twin when no transform is active.
    """

    def forward(ctx: Any, *args: Any) -> Any:
        output = function.forward(*args)
        function.setup_context(ctx, args, output)
        return output

    # Named for what users see as grad_fn in eager mode: <SoftmaxBackward>, <CrossEntropyBackward>.
    return type(function.__name__.lstrip("_"), (torch.autograd.Function,),
                {"forward": staticmethod(forward), "backward": staticmethod(function.backward),
                 "jvp": staticmethod(function.jvp),
                 "__doc__": f"{function.__name__} for eager calls outside torch.func transforms."})


def _apply(function: type[torch.autograd.Function], *args: Any) -> Any:
    """``function.apply(*args)``, by its eager twin when no torch.func transform is active."""
    if torch._C._are_functorch_transforms_active():
        return function.apply(*args)
    return _EAGER[function].apply(*args)


# --- softmax / log_softmax ---------------------------------------------------------------------

def _softmax_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    _, ctx.dims, _, ctx.temperature, ctx.log = inputs
    _save(ctx, output)


def _softmax_jvp(ctx: Any, x_t: torch.Tensor | None, *_: Any) -> torch.Tensor:
    (y,) = ctx.saved_tensors
    if x_t is None:
        return torch.zeros_like(y)
    y_t = _formulas.log_softmax_jvp(y, x_t, ctx.dims) if ctx.log else softmax_vjp(y, x_t, ctx.dims)
    return y_t / ctx.temperature if ctx.temperature != 1.0 else y_t


def _softmax_backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
    (y,) = ctx.saved_tensors
    if torch.is_grad_enabled() or _batched(g):
        # create_graph, or a torch.func transform: the vjp will be differentiated (hessian).
        # PyTorch's own ops, whose derivatives PyTorch knows in both modes (forward mode
        # through a Function under vmap trips on a missing tangent in PyTorch 2.13).
        vjp = _formulas.log_softmax_vjp if ctx.log else _formulas.softmax_vjp
    else:
        vjp = log_softmax_vjp if ctx.log else softmax_vjp
    dx = vjp(y, g, ctx.dims)
    if ctx.temperature != 1.0:
        dx = dx / ctx.temperature
    return dx, None, None, None, None


class _Softmax(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, temperature: float,
                log: bool) -> torch.Tensor:
        return _run("softmax", x, dims, mask, temperature, log)

    setup_context = staticmethod(_softmax_setup)
    backward = staticmethod(_softmax_backward)
    jvp = staticmethod(_softmax_jvp)


def softmax(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None = None, temperature: float = 1.0,
            log: bool = False) -> torch.Tensor:
    """softmax (or log_softmax) of ``x`` over ``dims`` (sorted, non-negative), differentiable."""
    if mask is not None:
        check_devices("softmax", x, mask)
    if _wants_grad(x):
        return _apply(_Softmax, x, dims, mask, temperature, log)
    return _run("softmax", x, dims, mask, temperature, log)


# --- logsumexp ----------------------------------------------------------------------------------

def _logsumexp_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, ctx.dims, mask, ctx.keepdim = inputs
    _save(ctx, x, mask)


def _logsumexp_jvp(ctx: Any, x_t: torch.Tensor | None, *_: Any) -> torch.Tensor:
    x, mask = ctx.saved_tensors
    p = softmax(x, ctx.dims, mask, 1.0, False)
    if x_t is None:
        x_t = torch.zeros_like(x)
    return _formulas.weighted_sum(p, x_t, ctx.dims, ctx.keepdim)


def _logsumexp_backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
    # d logsumexp / dx = softmax(x): its kernels settle the -inf, +inf and masked rows.
    x, mask = ctx.saved_tensors
    if not ctx.keepdim:
        for d in ctx.dims:
            g = g.unsqueeze(d)
    return softmax(x, ctx.dims, mask, 1.0, False) * g, None, None, None


class _LogSumExp(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None, keepdim: bool) -> torch.Tensor:
        return _run("logsumexp", x, dims, mask, keepdim)

    setup_context = staticmethod(_logsumexp_setup)
    backward = staticmethod(_logsumexp_backward)
    jvp = staticmethod(_logsumexp_jvp)


def logsumexp(x: torch.Tensor, dims: list[int], mask: torch.Tensor | None = None,
              keepdim: bool = False) -> torch.Tensor:
    """``log(sum(exp(x)))`` over ``dims``, differentiable (its gradient is ``softmax(x)``)."""
    if mask is not None:
        check_devices("logsumexp", x, mask)
    if _wants_grad(x):
        return _apply(_LogSumExp, x, dims, mask, keepdim)
    return _run("logsumexp", x, dims, mask, keepdim)


# --- the vector-Jacobian products ---------------------------------------------------------------

def _vjp_setup(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    first, g, ctx.dims = inputs
    _save(ctx, first, g)


def _softmax_vjp_jvp(ctx: Any, s_t: torch.Tensor | None, g_t: torch.Tensor | None, _: Any) -> torch.Tensor:
    # Linear in g (its tangent goes through the vjp itself), bilinear in s.
    s, g = ctx.saved_tensors
    out = torch.zeros_like(s) if g_t is None else softmax_vjp(s, g_t, ctx.dims)
    return out if s_t is None else out + _formulas.softmax_vjp_tangent(s, g, s_t, ctx.dims)


def _log_softmax_vjp_jvp(ctx: Any, logp_t: torch.Tensor | None, g_t: torch.Tensor | None,
                         _: Any) -> torch.Tensor:
    logp, g = ctx.saved_tensors
    out = torch.zeros_like(logp) if g_t is None else log_softmax_vjp(logp, g_t, ctx.dims)
    return out if logp_t is None else out + _formulas.log_softmax_vjp_tangent(logp, g, logp_t, ctx.dims)


def _softmax_vjp_backward(ctx: Any, d: torch.Tensor) -> tuple[Any, ...]:
    # out = s * (g - <g, s>): d/dg is the vjp itself (J is symmetric); d/ds by the product rule.
    s, g = ctx.saved_tensors
    dot = (g * s).sum(ctx.dims, keepdim=True)
    ds = d * (g - dot) - g * (d * s).sum(ctx.dims, keepdim=True)
    return ds, (_formulas.softmax_vjp if _batched(d) else softmax_vjp)(s, d, ctx.dims), None


def _log_softmax_vjp_backward(ctx: Any, d: torch.Tensor) -> tuple[Any, ...]:
    # out = live * (g - p * G) with p = exp(logp), G = sum(live * g); live = logp > -inf.
    logp, g = ctx.saved_tensors
    live = logp != float("-inf")
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    p = torch.where(live, logp.exp(), zero)
    total = torch.where(live, g, zero).sum(ctx.dims, keepdim=True)
    d_live = torch.where(live, d, zero)
    dg = torch.where(live, d_live - (d_live * p).sum(ctx.dims, keepdim=True), zero)
    return -d_live * p * total, dg, None


class _SoftmaxVjp(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(s: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
        return _run("softmax_vjp", s, g, dims)

    setup_context = staticmethod(_vjp_setup)
    backward = staticmethod(_softmax_vjp_backward)
    jvp = staticmethod(_softmax_vjp_jvp)


class _LogSoftmaxVjp(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(logp: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
        return _run("log_softmax_vjp", logp, g, dims)

    setup_context = staticmethod(_vjp_setup)
    backward = staticmethod(_log_softmax_vjp_backward)
    jvp = staticmethod(_log_softmax_vjp_jvp)


def softmax_vjp(s: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """``s * (g - sum(g * s))`` over ``dims``, differentiable (second derivatives of softmax)."""
    if _wants_grad(s, g):
        return _apply(_SoftmaxVjp, s, g, dims)
    return _run("softmax_vjp", s, g, dims)


def log_softmax_vjp(logp: torch.Tensor, g: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """``g - exp(logp) * sum(g)`` over the live entries of ``dims``, differentiable."""
    if _wants_grad(logp, g):
        return _apply(_LogSoftmaxVjp, logp, g, dims)
    return _run("log_softmax_vjp", logp, g, dims)


# --- cross_entropy ------------------------------------------------------------------------------

def _cross_entropy_setup(ctx: Any, inputs: tuple[Any, ...],
                         output: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, target, weight, ctx.dim, ctx.ignore_index, ctx.smoothing, ctx.reduction, ctx.want_grad = inputs
    ctx.mark_non_differentiable(output[1])
    # Else autograd would fill a logits-sized tensor of zeros as the gradient of that output.
    ctx.set_materialize_grads(False)
    # Probability targets may require grad too (PyTorch differentiates them): their gradient
    # needs the log-probabilities, recomputed in the backward from the logits. Under a
    # torch.func transform or forward-mode AD the gradient may be differentiated in turn
    # (hessian, jacfwd of jacrev): it is then recomputed from the logits as well. Otherwise
    # only the gradient is kept, not the logits (the memory of the fused loss).
    ctx.target_grad = ctx.needs_input_grad[1]
    keep = ctx.target_grad or _second_order_possible()
    _save(ctx, output[1], *((logits, target, weight) if keep else (None, None, None)))


def _second_order_possible() -> bool:
    return torch._C._are_functorch_transforms_active() or _formulas.forward_ad_active()


def _cross_entropy_jvp(ctx: Any, logits_t: torch.Tensor | None, target_t: torch.Tensor | None,
                       *_: Any) -> tuple[torch.Tensor, None]:
    # The loss is differentiable in the logits by the gradient the forward pass computed.
    grad = ctx.saved_tensors[0]
    if target_t is not None:
        raise NotImplementedError("softmaxkit cross_entropy: forward-mode AD with respect to the "
                                  "target is not supported (reverse mode is)")
    if not ctx.want_grad:
        raise RuntimeError("softmaxkit::cross_entropy was called with want_grad=False: "
                           "its gradient was not computed in the forward pass")
    if logits_t is None:
        logits_t = torch.zeros_like(grad)
    if ctx.reduction == "none":
        return (grad * logits_t).sum(ctx.dim), None
    return (grad * logits_t).sum(), None


def _cross_entropy_backward(ctx: Any, g_loss: torch.Tensor, _: Any) -> tuple[Any, ...]:
    grad, logits, target, weight = ctx.saved_tensors
    if g_loss is None:  # the loss took no part in what is differentiated
        return (None,) * 8
    d_target = _target_grad(ctx, logits, weight, g_loss) if ctx.target_grad else None
    rest = (None,) * 6
    if not ctx.needs_input_grad[0]:
        return None, d_target, *rest
    if torch.is_grad_enabled():
        # create_graph (or a torch.func transform): the gradient will be differentiated, and
        # the one from the forward pass is a constant: the generic engine's torch ops instead.
        grad = _differentiable_gradient(ctx, logits, target, weight)
        return grad * (g_loss.unsqueeze(ctx.dim) if ctx.reduction == "none" else g_loss), d_target, *rest
    if not ctx.want_grad:
        raise RuntimeError("softmaxkit::cross_entropy was called with want_grad=False: "
                           "its gradient was not computed in the forward pass")
    if ctx.reduction == "none":
        g_loss = g_loss.unsqueeze(ctx.dim)
    elif (_plain(grad) and not grad.is_cuda and not _graph_kept() and not _batched(g_loss)
          and not getattr(ctx, "gradient_returned", False) and float(g_loss) == 1.0):
        # loss.backward(): the saved buffer is the gradient, handed on without a copy, once:
        # the graph releases it. Under retain_graph it is not handed on (autograd.grad would
        # return the buffer itself, and what the caller did to it would reach the next backward),
        # nor when sk.cross_entropy(..., return_grad=True) returned it to the caller.
        return grad, d_target, *rest
    return grad * g_loss, d_target, *rest


def _graph_kept() -> bool:
    """Whether the running backward keeps the graph (``retain_graph=True``)."""
    return bool(torch._C._autograd._get_current_graph_task_keep_graph())


def _differentiable_gradient(ctx: Any, logits: torch.Tensor | None, target: torch.Tensor | None,
                             weight: torch.Tensor | None) -> torch.Tensor:
    """d loss / d logits as a function of the logits that autograd can differentiate again."""
    if logits is None or target is None:
        raise RuntimeError(
            "softmaxkit cross_entropy: double backward (create_graph=True) is not supported, since "
            "the gradient is computed in the forward pass and kept instead of the logits; "
            "torch.func.hessian / jacfwd(jacrev(...)) are supported, as is F.cross_entropy")
    from softmaxkit import generic

    labels = target.dim() == logits.dim() - 1
    _, grad = generic.cross_entropy(
        logits, target, ctx.dim, weight=weight, ignore_index=ctx.ignore_index if labels else None,
        label_smoothing=ctx.smoothing, reduction=ctx.reduction, return_grad=True, dtype=logits.dtype)
    return grad


def _target_grad(ctx: Any, logits: torch.Tensor, weight: torch.Tensor | None,
                 g_loss: torch.Tensor) -> torch.Tensor:
    """d loss / d target for probability targets: ``-(1 - smoothing) * weight * logp``, scaled."""
    shape = [1] * logits.dim()
    shape[ctx.dim] = logits.shape[ctx.dim]
    d = softmax(logits, [ctx.dim], None, 1.0, True) * -(1.0 - ctx.smoothing)
    if weight is not None:
        d = d * weight.reshape(shape)
    if ctx.reduction == "none":
        return d * g_loss.unsqueeze(ctx.dim)
    if ctx.reduction == "mean":
        g_loss = g_loss / (logits.numel() // max(1, logits.shape[ctx.dim]))
    return d * g_loss


def _plain(t: torch.Tensor) -> bool:
    """An eager tensor: not being compiled, no tracing subclass (fake, functional) and no
    torch.func wrapper, so reading its value is no data-dependent branch of a traced graph."""
    if torch.compiler.is_compiling():
        return False
    return type(t) is torch.Tensor and not torch._C._functorch.is_functorch_wrapped_tensor(t)


class _CrossEntropy(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, dim: int,
                ignore_index: int | None, label_smoothing: float, reduction: str,
                want_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return _run("cross_entropy", logits, target, weight, dim, ignore_index, label_smoothing, reduction,
                                  want_grad)

    setup_context = staticmethod(_cross_entropy_setup)
    backward = staticmethod(_cross_entropy_backward)
    jvp = staticmethod(_cross_entropy_jvp)


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, dim: int,
                  ignore_index: int | None, label_smoothing: float, reduction: str,
                  want_grad: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, grad)``; ``grad`` is computed (and kept for the backward) when ``want_grad``,
    by default when autograd will ask for it."""
    check_devices("cross_entropy", logits, target, weight)
    if weight is not None and weight.requires_grad and torch.is_grad_enabled():
        # Else the weight's gradient would be silently None.
        raise ValueError("cross_entropy is not differentiable with respect to weight (nor is "
                         "PyTorch's): pass weight.detach()")
    if want_grad is None:
        # A jit trace keeps the flag as a constant of its graph: the traced module may train later.
        want_grad = _needs_grad(logits) or _tracing()
    if _wants_grad(logits, target):
        return _apply(_CrossEntropy, logits, target, weight, dim, ignore_index, label_smoothing, reduction,
                                   want_grad)
    return _run("cross_entropy", logits, target, weight, dim, ignore_index, label_smoothing, reduction,
                              want_grad)

_EAGER: dict[type[torch.autograd.Function], type[torch.autograd.Function]] = {
    f: _eager_twin(f) for f in (_Softmax, _LogSumExp, _SoftmaxVjp, _LogSoftmaxVjp, _CrossEntropy)}

_ops.softmax.register_autograd(_softmax_backward, setup_context=_softmax_setup)
_ops.logsumexp.register_autograd(_logsumexp_backward, setup_context=_logsumexp_setup)
_ops.softmax_vjp.register_autograd(_softmax_vjp_backward, setup_context=_vjp_setup)
_ops.log_softmax_vjp.register_autograd(_log_softmax_vjp_backward, setup_context=_vjp_setup)
_ops.cross_entropy.register_autograd(_cross_entropy_backward, setup_context=_cross_entropy_setup)
