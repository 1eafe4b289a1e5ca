"""The registered operators torch.ops.softmaxkit.*: opcheck, gradcheck, SPEC gradients, torch.func,
torch.compile without graph breaks, layouts and dtypes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

import torch.nn.functional as F  # noqa: E402

import softmaxkit as sk  # noqa: E402
import softmaxkit.torch as skt  # noqa: E402
from softmaxkit.torch import _autograd, _ops  # noqa: E402

INF = float("inf")


def _f64(*shape: int, seed: int = 0, requires_grad: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_(requires_grad)


def _samples() -> list[tuple[str, object, tuple]]:
    """(id, operator, arguments): every operator with its options, float64 for gradcheck."""
    mask = torch.rand(3, 5, generator=torch.Generator().manual_seed(1)) > 0.3
    labels = torch.tensor([0, 4, 2])
    probs = torch.softmax(_f64(3, 5, seed=2, requires_grad=False), 1).requires_grad_()
    return [
        ("softmax", _ops.softmax, (_f64(3, 5), [1], None, 1.0, False)),
        ("softmax-dim0-temperature", _ops.softmax, (_f64(3, 5), [0], None, 2.5, False)),
        ("softmax-mask", _ops.softmax, (_f64(3, 5), [1], mask, 1.0, False)),
        ("softmax-dims", _ops.softmax, (_f64(2, 3, 4), [0, 2], None, 1.0, False)),
        ("log_softmax", _ops.softmax, (_f64(3, 5), [1], None, 1.0, True)),
        ("log_softmax-mask-temperature", _ops.softmax, (_f64(3, 5), [1], mask, 0.5, True)),
        ("logsumexp", _ops.logsumexp, (_f64(3, 5), [1], None, False)),
        ("logsumexp-keepdim-mask", _ops.logsumexp, (_f64(3, 5), [0], mask, True)),
        ("logsumexp-all", _ops.logsumexp, (_f64(2, 3, 4), [0, 1, 2], None, False)),
        ("softmax_vjp", _ops.softmax_vjp, (torch.rand(3, 5, dtype=torch.float64, requires_grad=True),
                                           _f64(3, 5, seed=3), [1])),
        ("softmax_vjp-dim0", _ops.softmax_vjp, (torch.rand(3, 5, dtype=torch.float64, requires_grad=True),
                                                _f64(3, 5, seed=3), [0])),
        ("log_softmax_vjp", _ops.log_softmax_vjp, (_f64(3, 5), _f64(3, 5, seed=4), [1])),
        ("log_softmax_vjp-dim0", _ops.log_softmax_vjp, (_f64(3, 5), _f64(3, 5, seed=4), [0])),
        ("softmax_vjp-middle-dim", _ops.softmax_vjp,
         (torch.rand(2, 5, 3, dtype=torch.float64, requires_grad=True), _f64(2, 5, 3, seed=5), [1])),
        ("cross_entropy", _ops.cross_entropy, (_f64(3, 5), labels, None, 1, -100, 0.0, "mean", True)),
        ("cross_entropy-weight-smoothing-sum", _ops.cross_entropy,
         (_f64(3, 5), labels, torch.rand(5, dtype=torch.float64), 1, None, 0.2, "sum", True)),
        ("cross_entropy-none-ignore", _ops.cross_entropy,
         (_f64(3, 5), torch.tensor([0, -100, 2]), None, 1, -100, 0.1, "none", True)),
        ("cross_entropy-kdim", _ops.cross_entropy,
         (_f64(2, 5, 3), torch.tensor([[0, 1, 4], [2, 3, 3]]), None, 1, -100, 0.0, "mean", True)),
        ("cross_entropy-probabilities", _ops.cross_entropy,
         (_f64(3, 5), probs, None, 1, None, 0.1, "mean", True)),
    ]


SAMPLES = _samples()


@pytest.mark.parametrize(("op", "args"), [s[1:] for s in SAMPLES], ids=[s[0] for s in SAMPLES])
def test_opcheck(op, args):
    torch.library.opcheck(op, args)


def _first_output(op):
    if op in (_ops.cross_entropy, _autograd.cross_entropy):
        return lambda *a: op(*a)[0]
    # -inf outputs (masked log_softmax) have no finite differences: they count as 0.
    return lambda *a: torch.nan_to_num(op(*a), neginf=0.0)


@pytest.mark.parametrize(("op", "args"), [s[1:] for s in SAMPLES], ids=[s[0] for s in SAMPLES])
def test_gradcheck_float64(op, args):
    assert torch.autograd.gradcheck(_first_output(op), args)


def test_every_operator_has_a_sample():
    assert {s[1] for s in SAMPLES} == set(_ops.OPERATORS)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_second_derivatives(log):
    x = _f64(3, 5)
    assert torch.autograd.gradgradcheck(lambda t: _autograd.softmax(t, [1], None, 1.5, log), (x,))


# --- forward mode and second derivatives --------------------------------------------------------

_FUNCTIONS = {_ops.softmax: _autograd.softmax, _ops.logsumexp: _autograd.logsumexp,
              _ops.softmax_vjp: _autograd.softmax_vjp, _ops.log_softmax_vjp: _autograd.log_softmax_vjp,
              _ops.cross_entropy: _autograd.cross_entropy}
"""The differentiable function the package calls for each operator (its autograd.Function)."""


@pytest.mark.parametrize(("op", "args"), [s[1:] for s in SAMPLES if "probabilities" not in s[0]],
                         ids=[s[0] for s in SAMPLES if "probabilities" not in s[0]])
# gradcheck's forward mode imports torch's jvp decompositions, which call torch.jit.script.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_gradcheck_forward_mode(op, args):
    """jvp rules of every Function, checked against finite differences (torch.autograd.forward_ad)."""
    assert torch.autograd.gradcheck(_first_output(_FUNCTIONS[op]), args, check_forward_ad=True,
                                    check_backward_ad=False)


def _cross_entropy_cases() -> list[tuple[str, dict]]:
    return [("mean", {}), ("sum-weight", {"reduction": "sum", "weight": torch.rand(5, dtype=torch.float64)}),
            ("none-smoothing-ignore", {"reduction": "none", "label_smoothing": 0.1, "ignore_index": 2})]


@pytest.mark.parametrize("transform", ["jvp", "jacfwd", "hessian"])
@pytest.mark.parametrize("case", [c[1] for c in _cross_entropy_cases()],
                         ids=[c[0] for c in _cross_entropy_cases()])
def test_torch_func_forward_mode_and_hessian_of_cross_entropy(transform, case):
    """Regression: the Hessian of cross_entropy came out 0 under torch.func (the backward handed
    on the gradient from the forward pass, a constant); forward mode was not implemented."""
    x, labels = _f64(4, 5, requires_grad=False), torch.tensor([0, 4, 2, 2])
    ours = lambda a: skt.cross_entropy(a, labels, **case)  # noqa: E731
    ref = lambda a: F.cross_entropy(a, labels, **case)  # noqa: E731
    if transform == "jvp":
        v = _f64(4, 5, seed=7, requires_grad=False)
        torch.testing.assert_close(torch.func.jvp(ours, (x,), (v,)), torch.func.jvp(ref, (x,), (v,)))
    else:
        f = getattr(torch.func, transform)
        torch.testing.assert_close(f(ours)(x), f(ref)(x))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("transform", ["jacfwd", "hessian"])
def test_torch_func_forward_mode_and_hessian_of_softmax(transform, log):
    x = _f64(3, 5, requires_grad=False)
    ours = (lambda a: skt.log_softmax(a, 1)) if log else (lambda a: sk.softmax(a, axis=1, temperature=2.0))
    ref = (lambda a: torch.log_softmax(a, 1)) if log else (lambda a: torch.softmax(a / 2.0, 1))
    if transform == "hessian":
        weights = torch.arange(1.0, 16.0, dtype=torch.float64).reshape(3, 5)
        ours, ref = (lambda a, f=ours: (f(a) * weights).sum()), (lambda a, f=ref: (f(a) * weights).sum())
    f = getattr(torch.func, transform)
    torch.testing.assert_close(f(ours)(x), f(ref)(x))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_forward_mode_tangent_is_zero_at_excluded_entries(log):
    x = _edge_rows().detach()
    v = torch.ones_like(x)
    _, tangent = torch.func.jvp(lambda a: (skt.log_softmax if log else skt.softmax)(a, dim=1), (x,), (v,))
    assert torch.isfinite(tangent).all()
    assert (tangent[1] == 0).all() and tangent[3, 0] == 0
    _, lse_tangent = torch.func.jvp(lambda a: sk.logsumexp(a, axis=1), (x,), (v,))
    torch.testing.assert_close(lse_tangent[[0, 3]], torch.ones(2, dtype=torch.float64))


def test_cross_entropy_double_backward_outside_torch_func_is_refused():
    # The logits are not kept (only the gradient): create_graph cannot differentiate it again.
    x = _f64(3, 5)
    (g,) = torch.autograd.grad(skt.cross_entropy(x, torch.tensor([0, 1, 2])), x, retain_graph=True)
    with pytest.raises(RuntimeError, match=r"double backward.*torch\.func\.hessian"):
        torch.autograd.grad(skt.cross_entropy(x, torch.tensor([0, 1, 2])), x, create_graph=True)
    torch.testing.assert_close(g, torch.autograd.grad(F.cross_entropy(x, torch.tensor([0, 1, 2])), x)[0])


def test_forward_mode_with_respect_to_probability_targets_is_refused():
    x, probs = _f64(3, 5, requires_grad=False), torch.softmax(_f64(3, 5, seed=2, requires_grad=False), 1)
    with pytest.raises(NotImplementedError, match="target"):
        torch.func.jvp(lambda t: skt.cross_entropy(x, t), (probs,), (torch.ones_like(probs),))


# --- SPEC §2 gradients: 0 where excluded, never NaN -----------------------------------------------

def _edge_rows(dtype=torch.float64) -> torch.Tensor:
    return torch.tensor([[1.0, 2.0, 3.0], [-INF, -INF, -INF], [INF, 1.0, INF], [-INF, 0.0, 1.0]],
                        dtype=dtype, requires_grad=True)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_gradient_of_excluded_rows_is_zero(log):
    x = _edge_rows()
    y = (skt.log_softmax if log else skt.softmax)(x, dim=1)
    finite = torch.where(torch.isfinite(y), y, 0.0)
    (finite * torch.arange(1.0, 4.0, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert (x.grad[1] == 0).all()  # all -inf
    assert x.grad[3, 0] == 0  # a -inf entry
    # ordinary rows: torch's gradient
    x_t = x.detach()[[0]].requires_grad_()
    y_t = (torch.log_softmax if log else torch.softmax)(x_t, 1)
    (y_t * torch.arange(1.0, 4.0, dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(x.grad[[0]], x_t.grad)


def test_masked_rows_get_zero_gradient():
    x = _f64(2, 4)
    mask = torch.tensor([[True, False, True, False], [False, False, False, False]])
    for log in (False, True):
        x.grad = None
        y = sk.log_softmax(x, where=mask) if log else sk.softmax(x, where=mask)
        torch.where(mask, y, 0.0).sum().backward() if log else y.sum().backward()
        assert torch.isfinite(x.grad).all()
        assert (x.grad[~mask] == 0).all()


def test_logsumexp_gradient_is_softmax_for_special_rows():
    x = _edge_rows()
    _autograd.logsumexp(x, [1], None, False).backward(torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(x.grad, skt.softmax(x.detach(), dim=1))
    assert (x.grad[1] == 0).all()


def test_cross_entropy_all_ignored_gives_nan_mean_and_zero_gradient():
    x = _f64(3, 4)
    loss = skt.cross_entropy(x, torch.full((3,), -100))
    assert torch.isnan(loss)
    loss.backward()
    assert (x.grad == 0).all()


# --- the fused loss keeps only its gradient -----------------------------------------------------

def test_cross_entropy_saves_only_the_gradient():
    x = _f64(4, 6)
    loss = skt.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    saved = loss.grad_fn.saved_tensors
    assert [tuple(t.shape) for t in saved if t is not None] == [(4, 6)]


def test_cross_entropy_gradient_buffer_becomes_the_leafs_grad():
    x = _f64(4, 6)
    loss, grad = _autograd.cross_entropy(x, torch.tensor([0, 1, 2, 3]), None, 1, -100, 0.0, "mean")
    buffer, expected = grad.data_ptr(), grad.clone()
    del grad
    loss.backward()
    assert x.grad.data_ptr() == buffer  # no copy between the forward's gradient and x.grad
    torch.testing.assert_close(x.grad, expected)


@pytest.mark.parametrize("layout", ["transposed", "middle-dim-first-in-memory"])
def test_cross_entropy_gradient_keeps_the_logits_strides(layout):
    """Regression: logits whose classes are not last in memory (``x.T``, classes on dim 1) got
    a contiguous gradient, a transposed copy of the kernels' result, which AccumulateGrad then
    copied back into the leaf's strides. Now the buffer has the logits' strides and becomes
    the leaf's ``.grad``; opcheck (fake against real strides) and torch's gradient agree."""
    gen = torch.Generator().manual_seed(9)
    if layout == "transposed":
        base = torch.randn(50, 40, generator=gen, dtype=torch.float64)
        x, labels = base.t(), torch.randint(0, 50, (40,), generator=gen)
    else:
        base = torch.randn(7, 3, 5, generator=gen, dtype=torch.float64)  # (classes, d1, batch)
        x, labels = base.permute(2, 0, 1), torch.randint(0, 7, (5, 3), generator=gen)
    leaf = x.detach().requires_grad_()
    loss, grad = _autograd.cross_entropy(leaf, labels, None, 1, -100, 0.1, "mean")
    assert grad.stride() == leaf.stride()
    buffer = grad.data_ptr()
    del grad
    loss.backward()
    assert leaf.grad.data_ptr() == buffer and leaf.grad.stride() == leaf.stride()
    theirs = x.detach().requires_grad_()
    F.cross_entropy(theirs, labels, label_smoothing=0.1).backward()
    torch.testing.assert_close(leaf.grad, theirs.grad)
    torch.library.opcheck(_ops.cross_entropy, (x.detach(), labels, None, 1, -100, 0.1, "mean", True))
    sliced = torch.randn(6, 20, dtype=torch.float64, generator=gen)[:, ::2]  # not dense: contiguous
    _, grad = _ops.cross_entropy(sliced, torch.zeros(6, dtype=torch.long), None, 1, None, 0.0, "sum", True)
    assert grad.stride() == torch.empty_like(sliced).stride()


def test_cross_entropy_backward_twice_with_retained_graph():
    x = _f64(4, 6)
    loss = skt.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    x.grad.mul_(2)  # in place on .grad (clipping does so) must not reach the saved buffer
    loss.backward(retain_graph=True)
    loss.backward()
    torch.testing.assert_close(x.grad, 4 * first)


def test_cross_entropy_autograd_grad_with_retained_graph_is_not_the_saved_buffer():
    # Regression: autograd.grad(..., retain_graph=True) returned the saved buffer itself, so
    # what the caller did to its gradient reached the next backward.
    x = _f64(4, 6)
    loss = skt.cross_entropy(x, torch.tensor([0, 1, 2, 3]))
    (first,) = torch.autograd.grad(loss, x, retain_graph=True)
    expected = first.clone()
    first.zero_()
    (second,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(second, expected)


@pytest.mark.parametrize("function", ["softmax", "log_softmax-dim0", "sk.softmax_vjp", "cross_entropy-mean",
                                      "cross_entropy-none"])
def test_jacobian_vectorized(function):
    # Regression: autograd's batched incoming gradients (jacobian(vectorize=True),
    # is_grads_batched) reached the kernels (no memory: RuntimeError) or float() (aten::item).
    x, labels = _f64(3, 4, requires_grad=False), torch.tensor([0, 3, 1])
    s = torch.softmax(x, 1)
    ours, theirs = {
        "softmax": (lambda a: skt.softmax(a, 1), lambda a: F.softmax(a, 1)),
        "log_softmax-dim0": (lambda a: skt.log_softmax(a, 0), lambda a: F.log_softmax(a, 0)),
        "sk.softmax_vjp": (lambda a: sk.softmax_vjp(s, a), lambda a: s * (a - (a * s).sum(1, keepdim=True))),
        "cross_entropy-mean": (lambda a: skt.cross_entropy(a, labels), lambda a: F.cross_entropy(a, labels)),
        "cross_entropy-none": (lambda a: skt.cross_entropy(a, labels, reduction="none", label_smoothing=0.1),
                               lambda a: F.cross_entropy(a, labels, reduction="none", label_smoothing=0.1)),
    }[function]
    jacobian = torch.autograd.functional.jacobian
    torch.testing.assert_close(jacobian(ours, x, vectorize=True), jacobian(theirs, x))


def test_cross_entropy_gradient_returned_to_the_caller_is_not_the_logits_gradient():
    # Regression: autograd.grad of the loss returned the very tensor return_grad=True had given
    # the caller (the saved buffer, handed on): changing one changed the other.
    import torch._dynamo  # loaded: the eager call registers the public functions with it

    x = _f64(4, 6)
    loss, grad = sk.cross_entropy(x, torch.tensor([0, 1, 2, 3]), return_grad=True)
    (dx,) = torch.autograd.grad(loss, x)
    assert dx.data_ptr() != grad.data_ptr()
    torch.testing.assert_close(dx, grad)
    compiled = torch.compile(lambda z: sk.cross_entropy(z, torch.tensor([0, 1, 2, 3]), return_grad=True),
                             fullgraph=True, backend="eager")
    loss, grad = compiled(x)
    loss.backward()
    torch.testing.assert_close(x.grad, grad)


def test_cross_entropy_backward_scaled_by_incoming_gradient():
    x = _f64(4, 6)
    (3.0 * skt.cross_entropy(x, torch.tensor([0, 1, 2, 3]))).backward()
    x_t = x.detach().requires_grad_()
    (3.0 * F.cross_entropy(x_t, torch.tensor([0, 1, 2, 3]))).backward()
    torch.testing.assert_close(x.grad, x_t.grad)


def test_cross_entropy_without_forward_gradient_refuses_backward():
    x = _f64(2, 3)
    loss, _ = _ops.cross_entropy(x, torch.tensor([0, 1]), None, 1, None, 0.0, "mean", False)
    with pytest.raises(RuntimeError, match="want_grad=False"):
        loss.backward()


# --- torch.func ----------------------------------------------------------------------------------

def test_vmap_of_every_function():
    xs = torch.randn(3, 4, 5)
    labels = torch.randint(0, 5, (3, 4))
    vmap = torch.func.vmap
    torch.testing.assert_close(vmap(lambda x: skt.softmax(x, 1))(xs), torch.softmax(xs, 2))
    torch.testing.assert_close(vmap(lambda x: skt.log_softmax(x, 0))(xs), torch.log_softmax(xs, 1))
    torch.testing.assert_close(vmap(lambda x: sk.logsumexp(x, axis=1))(xs), torch.logsumexp(xs, 2))
    for reduction in ("mean", "none"):
        torch.testing.assert_close(
            vmap(lambda x, t, r=reduction: skt.cross_entropy(x, t, reduction=r))(xs, labels),
            vmap(lambda x, t, r=reduction: F.cross_entropy(x, t, reduction=r))(xs, labels))
    s = torch.softmax(xs, 2)
    torch.testing.assert_close(vmap(lambda a, b: _ops.softmax_vjp(a, b, [1]))(s, xs),
                               sk.softmax_vjp(s, xs, axis=2))


@pytest.mark.parametrize("batch", [0, 3], ids=["empty-batch", "batch-3"])
def test_vmap_of_cross_entropy_main_api_and_empty_batches(batch):
    # Regression: sk.cross_entropy under vmap read the batched labels' memory (RuntimeError: no
    # storage), and the operator's vmap rule stacked no results for an empty batch.
    gen = torch.Generator().manual_seed(5)
    xs, labels = torch.randn(batch, 4, 5, generator=gen), torch.randint(0, 5, (batch, 4), generator=gen)
    vmap = torch.func.vmap
    loss, grad = vmap(lambda x, t: sk.cross_entropy(x, t, label_smoothing=0.1, return_grad=True))(xs, labels)
    assert loss.shape == (batch,) and grad.shape == (batch, 4, 5)
    for i in range(batch):
        torch.testing.assert_close((loss[i], grad[i]), sk.cross_entropy(xs[i], labels[i], label_smoothing=0.1,
                                                                        return_grad=True))
    torch.testing.assert_close(vmap(lambda x, t: skt.cross_entropy(x, t, reduction="none"))(xs, labels),
                               vmap(lambda x, t: F.cross_entropy(x, t, reduction="none"))(xs, labels))
    with pytest.raises(ValueError, match="label 7 is out of range"):
        vmap(sk.cross_entropy)(torch.randn(2, 4, 5), torch.full((2, 4), 7))


def test_grad_and_vmap_of_grad():
    xs = torch.randn(3, 4, 5)
    labels = torch.randint(0, 5, (3, 4))
    func = torch.func
    torch.testing.assert_close(func.vmap(func.grad(lambda x: sk.logsumexp(x)))(xs[:, 0]),
                               torch.softmax(xs[:, 0], 1))
    torch.testing.assert_close(
        func.vmap(func.grad(lambda x, t: skt.cross_entropy(x, t, label_smoothing=0.1)))(xs, labels),
        func.vmap(func.grad(lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1)))(xs, labels))
    torch.testing.assert_close(
        func.grad(lambda x: func.vmap(lambda r: skt.cross_entropy(r, labels[0]))(x).sum())(xs),
        func.grad(lambda x: func.vmap(lambda r: F.cross_entropy(r, labels[0]))(x).sum())(xs))
    torch.testing.assert_close(func.jacrev(lambda x: skt.softmax(x, 0))(xs[0, 0]),
                               func.jacrev(lambda x: torch.softmax(x, 0))(xs[0, 0]))


# --- torch.compile -------------------------------------------------------------------------------

class _Head(torch.nn.Module):
    """A classifier head that uses every face function, the main API on tensors, and every operator."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 5)
        self.loss = skt.CrossEntropyLoss(label_smoothing=0.1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        p = skt.softmax(z, dim=1)
        logp = skt.log_softmax(z, dim=-1)
        terms = [
            self.loss(z, labels),
            skt.cross_entropy(z, p.detach(), reduction="sum") * 1e-3,
            (p * logp).sum() * 1e-3,
            skt.Softmax(dim=1)(z)[:, 0].sum() * 1e-3,
            _autograd.logsumexp(z, [1], None, False).sum() * 1e-3,
            _ops.softmax_vjp(p, logp, [1]).sum() + _ops.log_softmax_vjp(logp, p, [1]).sum(),
        ]
        return torch.stack(terms).sum()


@pytest.mark.parametrize("backend", [
    "aot_eager",
    # PyTorch's own inductor code calls the torch.jit.script_method it deprecates.
    pytest.param("inductor", marks=pytest.mark.filterwarnings(
        "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")),
])
def test_compile_fullgraph_has_no_graph_break(backend):
    # inductor: the operators stay opaque calls in the generated C++/Python code around them.
    torch.manual_seed(0)
    model = _Head()
    x, labels = torch.randn(16, 8), torch.randint(0, 5, (16,))
    eager = model(x, labels)
    eager.backward()
    expected = model.linear.weight.grad.clone()
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    loss = compiled(x, labels)
    loss.backward()
    torch.testing.assert_close(loss, eager)
    torch.testing.assert_close(model.linear.weight.grad, expected)
    # The label check runs inside the compiled graph, on the real labels.
    with pytest.raises(ValueError, match="label 9 is out of range for 5 classes"):
        compiled(x, torch.full((16,), 9))


def _public_api(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Every public function that takes tensors, as a user's model would call them."""
    p = sk.softmax(z)
    logp = sk.log_softmax(z, axis=1)
    return (sk.cross_entropy(z, labels, axis=1, label_smoothing=0.1)
            + sk.log_softmax(z, axis=0).sum() * 1e-3 + sk.logsumexp(z, axis=1).sum() * 1e-3
            + sk.softmax_vjp(p, z, axis=1).sum() + sk.softmax_jvp(p, z).sum()
            + sk.log_softmax_vjp(logp, p, axis=1).sum() + (p * logp).sum() * 1e-3
            + sk.softmax(z, temperature=2.0, where=z > -1.0).sum() * 1e-3)


@pytest.mark.parametrize("backend", [
    "aot_eager",
    pytest.param("inductor", marks=pytest.mark.filterwarnings(
        "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")),
])
def test_compile_fullgraph_of_the_public_api(backend):
    # Once Dynamo is loaded, an eager call registers the public functions with it: the compiled
    # graph holds them as single calls (traced by AOTAutograd down to the operators), with no
    # warning about the argument checks' caches (pytest turns warnings into errors here).
    import torch._dynamo

    torch.manual_seed(0)
    z, labels = torch.randn(16, 5, requires_grad=True), torch.randint(0, 5, (16,))
    eager = _public_api(z, labels)
    eager.backward()
    expected, z.grad = z.grad, None
    compiled = torch.compile(_public_api, fullgraph=True, backend=backend)
    loss = compiled(z, labels)
    loss.backward()
    torch.testing.assert_close(loss, eager)
    torch.testing.assert_close(z.grad, expected)
    with pytest.raises(ValueError, match="label 9 is out of range for 5 classes"):
        compiled(z, torch.full((16,), 9))


def test_compile_fullgraph_as_the_first_call_of_a_process():
    # No eager call first: Dynamo traces the public functions' own code, which must hold no
    # logger call and reach no importlib call (softmaxkit.torch's import loads the engine).
    # dynamic=True: the temperature check took math.isfinite of a symbolic float (regression).
    script = """
import torch, softmaxkit as sk, softmaxkit.torch
dynamic = torch.compile(lambda z: sk.log_softmax(z, axis=0), fullgraph=True, dynamic=True,
                        backend="aot_eager")
for n in (3, 6):
    torch.testing.assert_close(dynamic(torch.ones(4, n)), torch.full((4, n), -1.3862943611198906))
z, labels = torch.randn(16, 5, requires_grad=True), torch.randint(0, 5, (16,))
f = lambda z, t: sk.cross_entropy(z, t, axis=1) + sk.softmax(z).sum() + sk.logsumexp(z, axis=1).sum()
loss = torch.compile(f, fullgraph=True, backend="aot_eager")(z, labels)
loss.backward()
torch.testing.assert_close(loss, f(z, labels))
print("compiled")
"""
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "compiled"


def _traced_model(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (skt.cross_entropy(z, labels, label_smoothing=0.1) + skt.log_softmax(z, 0).sum() * 1e-2
            + sk.logsumexp(z, axis=1).sum() * 1e-2 + skt.softmax(z, 1)[:, 0].sum())


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("example_requires_grad", [False, True], ids=["example-no-grad", "example-grad"])
def test_jit_trace_records_the_operators(example_requires_grad):
    """Regression: eager calls run the kernels without the dispatcher, so torch.jit.trace kept
    the example's results as constants (a traced Softmax gave the example's output for any
    input). The operators are recorded now, and a trace of a call without grad still trains."""
    gen = torch.Generator().manual_seed(4)
    example = torch.randn(3, 4, generator=gen, dtype=torch.float64).requires_grad_(example_requires_grad)
    traced = torch.jit.trace(_traced_model, (example, torch.tensor([0, 1, 3])))
    z, labels = torch.randn(6, 4, generator=gen, dtype=torch.float64), torch.tensor([3, 2, 1, 0, 1, 2])
    ours, theirs = z.clone().requires_grad_(), z.clone().requires_grad_()
    loss = traced(ours, labels)
    loss.backward()
    expected = _traced_model(theirs, labels)
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(ours.grad, theirs.grad)


# --- dtypes and layouts --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64],
                         ids=str)
def test_dtypes_within_the_spec_bound(dtype):
    """SPEC §2's bounds (eps of float32 for the half types, which compute in float32), plus the
    final rounding to the dtype."""
    x = (torch.randn(37, 300, generator=torch.Generator().manual_seed(5)) * 4).to(dtype)
    xd = x.double()
    eps_out = float(torch.finfo(dtype).eps)
    eps = float(torch.finfo(torch.float32 if dtype.itemsize == 2 else dtype).eps)
    reference = torch.softmax(xd, 1)
    spread = 1 + (xd - xd.amax(1, keepdim=True)).abs()
    p = _ops.softmax(x, [1], None, 1.0, False)
    assert p.dtype == dtype
    tiny = float(torch.finfo(dtype).smallest_normal)
    assert ((p.double() - reference).abs() <= (4 * eps * spread + eps_out) * reference + tiny).all()
    logp = _ops.softmax(x, [1], None, 1.0, True)
    ref_log = torch.log_softmax(xd, 1)
    assert ((logp.double() - ref_log).abs() <= (8 * eps + eps_out) * (1 + ref_log.abs())).all()
    labels = torch.randint(0, 300, (37,), generator=torch.Generator().manual_seed(6))
    loss, grad = _ops.cross_entropy(x, labels, None, 1, None, 0.0, "mean", True)
    assert loss.dtype == grad.dtype == dtype
    xg = xd.clone().requires_grad_()
    expected_loss = F.cross_entropy(xg, labels)
    expected_loss.backward()
    expected = float(expected_loss.detach())
    assert abs(float(loss) - expected) <= (8 * eps + eps_out) * (1 + expected)
    assert ((grad.double() - xg.grad).abs() <= (4 * eps * spread + eps_out) * xg.grad.abs() + tiny).all()


def test_non_contiguous_inputs():
    base = torch.randn(6, 10, 4)
    for x, dim in [(base.transpose(0, 2), 1), (base[:, ::2, :], 2), (base.permute(2, 0, 1), 0),
                   (torch.randn(1, 5).expand(3, 5), 1)]:
        torch.testing.assert_close(skt.softmax(x, dim), torch.softmax(x, dim))
        torch.testing.assert_close(skt.log_softmax(x, dim), torch.log_softmax(x, dim))
        xg = x.clone().requires_grad_()
        xt = x.clone().requires_grad_()
        g = torch.randn(x.shape).transpose(0, 1).contiguous().transpose(0, 1)  # strided cotangent
        skt.softmax(xg, dim).backward(g)
        torch.softmax(xt, dim).backward(g)
        torch.testing.assert_close(xg.grad, xt.grad)


def _non_last_dim_case(name: str, dtype: torch.dtype) -> tuple[torch.Tensor, int, torch.Tensor]:
    """(x, dim, cotangent) with ``dim`` not last in memory: the vjps' column kernels."""
    gen = torch.Generator().manual_seed(8)
    base = torch.randn(70, 600, generator=gen, dtype=torch.float64) * 4
    g = torch.randn(70, 600, generator=gen, dtype=torch.float64)
    if name == "dim0":
        x, dim = base, 0
    elif name == "middle":
        x, dim, g = base.reshape(7, 10, 600), 1, g.reshape(7, 10, 600)
    elif name == "transposed":
        x, dim, g = base.t(), 1, g.t()  # the forward's columns; g copied into the rows of s
    elif name == "expanded-cotangent":
        x, dim, g = base, 0, g[:1].expand(70, 600)  # copied once into x's layout
    else:
        raise AssertionError(name)
    return x.to(dtype), dim, g.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=["torch-numba-float32", "torch-numba-float64", "torch-numba-float16",
                              "torch-numba-bfloat16"])
@pytest.mark.parametrize("layout", ["dim0", "middle", "transposed", "expanded-cotangent"])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_backward_along_a_non_last_dim(log, layout, dtype, monkeypatch):
    """The backward of softmax / log_softmax over a dim that is not last in memory (the
    engine's column kernels on the tensors' own memory; half types through float32 copies):
    torch's gradient, and 0 (never NaN) at -inf entries and in an all -inf column, where
    torch's backward gives NaN."""
    import softmaxkit.numba as sknumba
    from softmaxkit.torch import _cpu

    kernels: list[str] = []
    run = sknumba.run

    def spy(kernel, *args):
        kernels.append(kernel.__name__)
        run(kernel, *args)

    for module in (sknumba, _cpu):  # the engine, and the operators' direct row calls
        monkeypatch.setattr(module, "run", spy)
    x, dim, g = _non_last_dim_case(layout, dtype)
    x = x.clone()
    lines = x.movedim(dim, -1)  # a view: the reduced lines last
    lines[..., 0, :] = -INF  # all -inf lines
    lines[..., 1, ::3] = -INF  # some -inf
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = (skt.log_softmax if log else skt.softmax)(ours, dim)
    y.backward(g)
    # The forward's result is contiguous: the backward of a transposed input reduces its rows
    # (half types by their own row kernels).
    half = dtype in (torch.float16, torch.bfloat16)
    kind = "columns" if layout != "transposed" else "half_rows" if half else "rows"
    assert f"{'log_softmax' if log else 'softmax'}_vjp_{kind}" in kernels
    (torch.log_softmax if log else torch.softmax)(theirs, dim).backward(g)
    dead = torch.isneginf(x)
    assert torch.isfinite(ours.grad).all()
    assert (ours.grad[dead] == 0).all()
    # Lines without -inf: torch's gradient. With some: SPEC's (torch's log_softmax backward
    # sums the cotangent of the excluded entries too), the generic engine's on NumPy.
    clean = ~dead.any(dim, keepdim=True).expand_as(x)
    assert clean.any()
    tol = {torch.float32: {"rtol": 1e-4, "atol": 1e-5}, torch.float64: {"rtol": 1e-10, "atol": 1e-12},
           torch.float16: {"rtol": 1e-2, "atol": 1e-2}, torch.bfloat16: {"rtol": 4e-2, "atol": 4e-2}}[dtype]
    torch.testing.assert_close(ours.grad[clean], theirs.grad[clean], **tol)
    # The float64 reference on the same values (half types compute in float32: SPEC §2).
    vjp = sk.log_softmax_vjp if log else sk.softmax_vjp
    expected = vjp(y.detach().double().numpy(), g.double().numpy(), axis=dim, engine="generic")
    torch.testing.assert_close(ours.grad, torch.from_numpy(expected).to(dtype), **tol)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_gradcheck_along_a_non_last_dim(log):
    """gradcheck (float64) through the public functions over dim 0, a middle dim and a
    transposed input: every path of the column kernels, second derivatives through the vjp ops."""
    x = _f64(4, 6)
    assert torch.autograd.gradcheck(lambda t: (sk.log_softmax if log else sk.softmax)(t, axis=0), (x,))
    f = skt.log_softmax if log else skt.softmax
    assert torch.autograd.gradcheck(lambda t: f(t, 1), (_f64(3, 4, 5),))
    assert torch.autograd.gradcheck(lambda t: f(t.t(), 1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: _autograd.softmax(t, [0], None, 1.5, log), (x,))


def test_results_do_not_alias_the_input():
    x = torch.randn(4, 5)
    before = x.clone()
    y = _ops.softmax(x, [1], None, 1.0, False)
    assert y.data_ptr() != x.data_ptr()
    torch.testing.assert_close(x, before, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(4, 5), (1100, 1024)], ids=["small", "4MiB"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_new_results_small_and_large(shape, dtype):
    # Results come from NumPy's allocator (huge pages from 4 MiB): the same values, a new
    # contiguous tensor of the input's dtype, whatever the layout of the input.
    x = torch.randn(*shape).to(dtype)
    for result, expected in [
        (_ops.softmax(x, [1], None, 1.0, False), torch.softmax(x.double(), 1)),
        (_ops.softmax(x, [1], None, 1.0, True), torch.log_softmax(x.double(), 1)),
        (_ops.softmax(x.t(), [0], None, 2.0, False), torch.softmax(x.t().double() / 2.0, 0)),
        (_ops.softmax_vjp(torch.softmax(x, 1), x, [1]), None),
    ]:
        assert result.is_contiguous() and result.dtype == dtype and result.data_ptr() != x.data_ptr()
        if expected is not None:
            torch.testing.assert_close(result, expected.to(dtype))  # the dtype's own tolerance


def _negated_view(*shape: int, seed: int) -> torch.Tensor:
    """A real tensor whose memory holds its negation (PyTorch's neg bit): ``z.conj().imag``."""
    z = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.complex128)
    view = z.conj().imag
    assert view.is_neg()
    return view


@pytest.mark.parametrize("function", ["softmax", "log_softmax-dim0", "sk.logsumexp", "cross_entropy-weight",
                                      "cross_entropy-probabilities", "sk.softmax_vjp"])
def test_negated_views_are_read_as_their_values(function):
    # Regression: the kernels read the memory of a neg-bit view, i.e. -x (silently wrong values).
    x, w = _negated_view(4, 5, seed=1), _negated_view(5, seed=2)
    labels, s = torch.tensor([0, 4, 2, 1]), torch.softmax(x.resolve_neg(), 1)
    calls = {
        "softmax": lambda t, _: skt.softmax(t, 1),
        "log_softmax-dim0": lambda t, _: skt.log_softmax(t, 0),
        "sk.logsumexp": lambda t, _: sk.logsumexp(t, axis=1),
        "cross_entropy-weight": lambda t, v: skt.cross_entropy(t, labels, v, reduction="none"),
        "cross_entropy-probabilities": lambda t, _: skt.cross_entropy(s, t, reduction="none"),
        "sk.softmax_vjp": lambda t, _: sk.softmax_vjp(s, t),
    }
    torch.testing.assert_close(calls[function](x, w), calls[function](x.resolve_neg(), w.resolve_neg()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_inputs_are_left_as_they_were(dtype):
    # The kernels read tensors through NumPy views that leave them unchanged: t.numpy() would
    # mark their storage as shared with NumPy, and torch then refuses to grow it for good.
    x = torch.randn(6, 5).to(dtype).requires_grad_()
    labels, mask = torch.tensor([0, 4, 2, 1, 3, 0]), torch.rand(6, 5) > 0.2
    sk.softmax(x, where=mask).sum().backward()
    skt.log_softmax(x, dim=0).sum().backward()
    skt.cross_entropy(x, labels).backward()
    sk.logsumexp(x, axis=1).sum().backward()
    sk.sample(x.detach(), top_k=3, where=mask, rng=torch.Generator().manual_seed(0))
    for t in (x, labels, mask):
        t.data.resize_(t.numel() + 1)  # raises "Trying to resize storage that is not resizable"


def test_eager_calls_use_the_functions_without_setup_context():
    # Eager calls take the twin of each autograd.Function whose forward takes ctx (PyTorch binds
    # the arguments of the other kind with inspect on every call); torch.func needs the other.
    x = torch.randn(3, 4, requires_grad=True)
    assert type(sk.softmax(x).grad_fn).__name__ == "SoftmaxBackward"
    ours = torch.func.grad(lambda x: sk.softmax(x)[0, 0])(x.detach())
    torch.testing.assert_close(ours, torch.func.grad(lambda x: torch.softmax(x, -1)[0, 0])(x.detach()))


def test_empty_tensors():
    x = torch.zeros(0, 5)
    assert _ops.softmax(x, [1], None, 1.0, False).shape == (0, 5)
    assert _ops.logsumexp(torch.zeros(3, 0), [1], None, False).tolist() == [-INF] * 3
    loss = skt.cross_entropy(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    assert torch.isnan(loss)


@pytest.mark.parametrize("call", [
    lambda x: skt.cross_entropy(x, torch.tensor([0, 1, 2], device="meta")),
    lambda x: skt.cross_entropy(x, torch.tensor([0, 1, 2]), torch.ones(4, device="meta")),
    lambda x: skt.cross_entropy(x.to("meta"), torch.tensor([0, 1, 2])),
    lambda x: sk.cross_entropy(x, torch.softmax(x, 1).to("meta")),
    lambda x: sk.softmax(x, where=(x > 0).to("meta")),
    lambda x: sk.logsumexp(x, axis=1, where=(x > 0).to("meta")),
    lambda x: sk.log_softmax_vjp(x, x.to("meta")),
], ids=["face-target", "face-weight", "face-logits", "cross_entropy-probabilities", "softmax-where",
        "logsumexp-where", "log_softmax_vjp-g"])
def test_tensors_on_another_device_are_refused(call):
    # Regression: the kernels were handed tensors of another device (here meta: "no NumPy view",
    # or a result on meta for meta logits with CPU labels; CUDA with CPU went to DLPack).
    with pytest.raises(ValueError, match="expected all tensors on one device"):
        call(torch.randn(3, 4))


_X, _LABELS = torch.randn(8, 300), torch.randint(0, 300, (8,))


@pytest.mark.parametrize("call", [
    lambda: _ops.cross_entropy(_X, _LABELS[:3], None, 1, -100, 0.0, "mean", True),
    lambda: _ops.cross_entropy(_X, _LABELS.float(), None, 1, -100, 0.0, "mean", True),
    lambda: _ops.cross_entropy(_X, torch.rand(8, 299), None, 1, None, 0.0, "mean", True),
    lambda: _ops.cross_entropy(_X, _LABELS, torch.ones(3), 1, -100, 0.0, "mean", True),
    lambda: _ops.cross_entropy(_X, _LABELS, None, 2, -100, 0.0, "mean", True),
    lambda: _ops.cross_entropy(_X, _LABELS, None, 1, -100, 0.0, "avg", True),
    lambda: _ops.softmax(_X, [2], None, 1.0, False),
    lambda: _ops.softmax(_X, [1, 1], None, 1.0, False),
    lambda: _ops.softmax(_X, [1], torch.ones(300, 8, dtype=torch.bool), 1.0, False),
    lambda: _ops.softmax(_X, [1], None, 0.0, False),
    lambda: _ops.logsumexp(_X, [0, 5], None, False),
    lambda: _ops.softmax_vjp(torch.randn(8, 3000), torch.randn(2, 30), [1]),
    lambda: _ops.log_softmax_vjp(_X, torch.randn(3, 300), [1]),
], ids=["labels-short", "labels-float", "probabilities-shape", "weight-short", "dim", "reduction",
        "dims-range", "dims-repeated", "mask-shape", "temperature", "logsumexp-dims", "softmax_vjp-shape",
        "log_softmax_vjp-shape"])
def test_direct_operator_calls_check_their_arguments(call):
    # Regression: torch.ops.softmaxkit.* trusted their callers; a direct call with labels, a
    # weight or a cotangent too short had the kernels read past the tensor (silent garbage).
    with pytest.raises(ValueError, match="softmaxkit"):
        call()


@pytest.mark.parametrize(("mask", "mask_dim"), [
    (torch.rand(10, generator=torch.Generator().manual_seed(1)) > 0.5, None),
    (torch.rand(6, 1, generator=torch.Generator().manual_seed(2)) > 0.5, None),
    (torch.rand(4, 10, generator=torch.Generator().manual_seed(3)) > 0.5, 0),
    (torch.rand(6, 1, 4, generator=torch.Generator().manual_seed(4)) > 0.5, 2),
], ids=["unbatched-row", "unbatched-column", "batched-row", "batched-column-last"])
def test_vmap_of_the_operators_with_a_broadcast_mask(mask, mask_dim):
    # Regression: the vmap rule expanded an unbatched mask to the batch in front of its own dims,
    # lining the batch up with a dim of x, and the kernels read a mask smaller than x past its end.
    xs = torch.randn(4, 6, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    members = mask if mask_dim is None else mask.movedim(mask_dim, 0)
    for op, dims, shifted in [(_ops.softmax, [1], (1.0, False)), (_ops.logsumexp, [0], (False,))]:
        got = torch.func.vmap(lambda x, m, op=op, dims=dims, rest=shifted: op(x, dims, m, *rest),
                              in_dims=(0, mask_dim))(xs, mask)
        expected = torch.stack([op(xs[i], dims, (members if mask_dim is None else members[i]).expand(6, 10),
                                   *shifted) for i in range(4)])
        torch.testing.assert_close(got, expected)


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors is in prototype stage:UserWarning")
@pytest.mark.parametrize("call", [
    lambda x: skt.softmax(x.to_sparse(), 1),
    lambda x: skt.log_softmax(torch.nested.nested_tensor([x, x[:2]]), -1),
    lambda x: skt.cross_entropy(x, torch.tensor([0, 1, 2]).to_sparse()),
    lambda x: sk.softmax(x.to_sparse()),
    lambda x: sk.cross_entropy(x.to_sparse(), torch.tensor([0, 1, 2])),
], ids=["face-sparse", "face-nested", "face-sparse-target", "sk.softmax-sparse", "sk.cross_entropy-sparse"])
def test_sparse_and_nested_tensors_are_refused(call):
    # Regression: the kernels met them ("Cannot access data pointer of Tensor that doesn't have
    # storage", "NestedTensorImpl doesn't support sizes").
    with pytest.raises(TypeError, match="tensors are not supported"):
        call(torch.randn(3, 4))


def test_unsupported_device_is_refused():
    x = torch.zeros(2, 3, device="meta")
    y = _ops.softmax(x, [1], None, 1.0, False)  # meta tensors take the fake implementation
    assert y.shape == (2, 3) and y.device.type == "meta"
    with pytest.raises(NotImplementedError, match="CPU and CUDA"):
        _ops._kernels(x)


def test_numpy_view_of_bfloat16_is_zero_copy():
    from softmaxkit.torch._cpu import as_numpy

    x = torch.randn(3, 4).to(torch.bfloat16)
    view = as_numpy(x)
    assert view.__array_interface__["data"][0] == x.data_ptr()
    np.testing.assert_array_equal(view.astype(np.float32), x.float().numpy())


# --- the main API on tensors: the torch engine -----------------------------------------------------

def test_main_api_on_tensors_is_differentiable():
    x = _f64(4, 7)
    x_t = x.detach().requires_grad_()
    (sk.log_softmax(x, axis=0, temperature=2.0) * torch.arange(7.0, dtype=torch.float64)).sum().backward()
    (torch.log_softmax(x_t / 2.0, 0) * torch.arange(7.0, dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(x.grad, x_t.grad)
    labels = torch.tensor([0, 6, 3, 2])
    loss, grad = sk.cross_entropy(x.detach(), labels, return_grad=True)
    torch.testing.assert_close(loss, F.cross_entropy(x.detach(), labels))
    x_t.grad = None
    F.cross_entropy(x_t, labels).backward()
    torch.testing.assert_close(grad, x_t.grad)


def test_main_api_result_dtype_on_tensors():
    x = torch.randn(3, 5)
    assert sk.softmax(x, dtype=torch.float64).dtype == torch.float64
    torch.testing.assert_close(sk.softmax(x, dtype=torch.float64), torch.softmax(x.double(), 1))
    assert sk.softmax(x, dtype=torch.bfloat16).dtype == torch.bfloat16  # rounded once, at the end
    torch.testing.assert_close(sk.softmax(x, dtype=torch.bfloat16), torch.softmax(x, 1).bfloat16())
    assert sk.softmax(torch.tensor([[1, 2]])).dtype == torch.float32


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("function", ["softmax", "log_softmax", "logsumexp"])
def test_integer_tensor_to_a_half_dtype_as_numpy(function, dtype):
    # Regression: the torch engine cast integers to the half type before computing (70000 -> inf,
    # softmax [0.5, 0.5]); the NumPy engine computes them in float32 and rounds once (SPEC §2).
    import ml_dtypes

    values = [[70000, 70001, 60000], [3, -2, 0]]
    ours = getattr(sk, function)(torch.tensor(values), dtype=getattr(torch, dtype), axis=1)
    numpy_dtype = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    theirs = getattr(sk, function)(np.array(values), dtype=numpy_dtype, axis=1)
    np.testing.assert_array_equal(ours.float().numpy(), theirs.astype(np.float32))


@pytest.mark.parametrize(("dtype", "expected"), [
    (np.float64, torch.float64), (np.dtype("float16"), torch.float16), (float, torch.float64),
    ("bfloat16", torch.bfloat16)],
                         ids=["numpy-type", "numpy-dtype", "python-float", "name"])
def test_main_api_takes_numpy_dtypes_for_tensors(dtype, expected):
    # Regression: torch's namespace asked np.float64.is_floating_point (AttributeError).
    x = torch.randn(3, 5)
    assert sk.softmax(x, dtype=dtype).dtype == sk.logsumexp(x, axis=1, dtype=dtype).dtype == expected
    with pytest.raises(TypeError, match="floating dtype"):
        sk.log_softmax(x, dtype=np.int32)


def test_logsumexp_options_the_operators_do_not_cover_go_to_generic():
    x = torch.randn(3, 4, dtype=torch.float64)
    b = torch.rand(3, 4, dtype=torch.float64)
    torch.testing.assert_close(sk.logsumexp(x, axis=1, b=b), torch.log((b * x.exp()).sum(1)))
    with pytest.raises(ValueError, match="does not cover logsumexp with weights"):
        sk.logsumexp(x, b=b, engine="torch")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
def test_log_softmax_vjp_beyond_the_kernels_exp_on_tensors(dtype):
    """Log-probabilities of 40 or more (not from log_softmax) leave the kernels' exp: the
    engine's domain check sends them to the generic formulas, whichever layout."""
    from softmaxkit import generic

    logp = torch.full((3, 6), -2.0, dtype=dtype)
    logp[1, 2] = 45.0
    g = torch.linspace(-1.0, 1.0, 18, dtype=dtype).reshape(3, 6)
    expected = generic.log_softmax_vjp(logp.float().numpy(), g.float().numpy(), (1,), dtype=np.float32)
    for lp, gg, axis in ((logp, g, 1), (logp.T.contiguous().T, g, 1), (logp.T, g.T, 0)):
        got = sk.log_softmax_vjp(lp, gg, axis=axis)
        got = got if axis == 1 else got.T
        half = dtype == torch.float16
        torch.testing.assert_close(got.float(), torch.from_numpy(np.asarray(expected)),
                                   rtol=1e-3 if half else 1e-6, atol=1e-2 if half else 1e-5)


def test_a_call_with_default_options_goes_straight_to_the_torch_engine(caplog):
    """sk.softmax / log_softmax on a float tensor with every option at its default skip the
    argument checks and the engine choice (the per-call bar of a 64 x 10 tensor): the same
    bits as through the registry; any other call, dtype or a 0-d tensor takes the full path."""
    import logging

    x = torch.randn(4, 5, dtype=torch.float64)
    with caplog.at_level(logging.DEBUG, logger="softmaxkit"):
        fast = (sk.softmax(x), sk.log_softmax(x, axis=0), sk.softmax(x.half()),
                sk.softmax(x.bfloat16(), axis=None))
    assert caplog.text.count("engine 'torch' chosen for Tensor (default options)") == 4
    full = (sk.softmax(x, engine="torch"), sk.log_softmax(x, axis=0, engine="torch"),
            sk.softmax(x.half(), engine="torch"), sk.softmax(x.bfloat16(), axis=None, engine="torch"))
    for a, b in zip(fast, full, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="softmaxkit"):
        assert sk.softmax(torch.arange(3)).dtype == torch.get_default_dtype()  # integers: the default float
        assert sk.softmax(torch.tensor(2.0)).item() == 1.0  # 0-d
        sk.softmax(x, temperature=2.0)
    assert "default options" not in caplog.text
    with pytest.raises(TypeError, match="complex"):
        sk.softmax(torch.ones(3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="axis"):
        sk.softmax(x, axis=2)
