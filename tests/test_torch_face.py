"""softmaxkit.torch, the drop-in face: every argument of F.softmax / log_softmax / cross_entropy and
of nn.Softmax / LogSoftmax / CrossEntropyLoss against PyTorch, values and gradients."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

import torch.nn.functional as F  # noqa: E402

import softmaxkit.torch as skt  # noqa: E402

INF = float("inf")


def _pair(*shape: int, seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 3
    return x.clone().requires_grad_(), x.clone().requires_grad_()


def _same_values_and_grads(ours, theirs, x_ours, x_theirs, **tolerance) -> None:
    torch.testing.assert_close(ours, theirs, **tolerance)
    cotangent = torch.randn(ours.shape, generator=torch.Generator().manual_seed(9), dtype=ours.dtype)
    ours.backward(cotangent)
    theirs.backward(cotangent)
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, **tolerance)


@pytest.mark.parametrize(("ours", "theirs"), [(skt.softmax, F.softmax), (skt.log_softmax, F.log_softmax),
                                              (skt.cross_entropy, F.cross_entropy)],
                         ids=["softmax", "log_softmax", "cross_entropy"])
def test_signatures_are_torchs(ours, theirs):
    assert inspect.signature(ours).parameters.keys() == inspect.signature(theirs).parameters.keys()
    for name, p in inspect.signature(theirs).parameters.items():
        assert inspect.signature(ours).parameters[name].default == p.default, name


@pytest.mark.parametrize(("ours", "theirs"), [(skt.Softmax, torch.nn.Softmax),
                                              (skt.LogSoftmax, torch.nn.LogSoftmax),
                                              (skt.CrossEntropyLoss, torch.nn.CrossEntropyLoss)],
                         ids=["Softmax", "LogSoftmax", "CrossEntropyLoss"])
def test_modules_are_torchs(ours, theirs):
    assert issubclass(ours, theirs)
    assert inspect.signature(ours.__init__) == inspect.signature(theirs.__init__)


# --- softmax / log_softmax -----------------------------------------------------------------------

@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize(("shape", "dim"), [((7,), 0), ((7,), -1), ((4, 6), 0), ((4, 6), 1), ((4, 6), -1),
                                            ((3, 4, 5), 1), ((3, 4, 5), -3), ((2, 3, 4, 5), 2)])
def test_softmax_dims_against_torch(log, shape, dim):
    ours_f, theirs_f = (skt.log_softmax, F.log_softmax) if log else (skt.softmax, F.softmax)
    a, b = _pair(*shape)
    _same_values_and_grads(ours_f(a, dim), theirs_f(b, dim=dim), a, b)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("ndim", [0, 1, 2, 3, 4])
def test_implicit_dim_warns_and_chooses_as_torch(log, ndim):
    ours_f, theirs_f = (skt.log_softmax, F.log_softmax) if log else (skt.softmax, F.softmax)
    x = torch.randn([3] * ndim, dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = ours_f(x)
        theirs = theirs_f(x)
    assert [str(w.message) for w in caught[:1]] == [str(w.message) for w in caught[1:]]
    assert caught[0].filename == __file__  # _stacklevel=3 points at the caller, as in PyTorch
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_dtype_argument_casts_first(log, dtype):
    ours_f, theirs_f = (skt.log_softmax, F.log_softmax) if log else (skt.softmax, F.softmax)
    x = torch.randn(5, 9, dtype=torch.float32)
    ours = ours_f(x, 1, dtype=dtype)
    assert ours.dtype == dtype
    theirs = theirs_f(x.to(dtype).float(), 1).to(dtype)  # torch's CPU half kernels also use float32
    torch.testing.assert_close(ours, theirs)


def test_zero_dim_input():
    x = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert skt.softmax(x, 0).item() == F.softmax(x, 0).item() == 1.0
    assert skt.log_softmax(x, -1).item() == F.log_softmax(x, -1).item() == 0.0
    skt.log_softmax(x, 0).backward()
    assert x.grad.item() == 0.0


@pytest.mark.parametrize("dim", [2, -3, 5])
def test_dim_out_of_range_raises_index_error_as_torch(dim):
    x = torch.randn(2, 3)
    with pytest.raises(IndexError):
        F.softmax(x, dim)
    with pytest.raises(IndexError, match="Dimension out of range"):
        skt.softmax(x, dim)


@pytest.mark.parametrize("dim", [1.0, True, torch.tensor(1.0), "1"],
                         ids=["float", "bool", "float-tensor", "str"])
def test_non_int_dim_is_refused(dim):
    with pytest.raises(TypeError, match="dim"):
        skt.softmax(torch.randn(2, 3), dim)


@pytest.mark.parametrize("dim", [np.int64(1), torch.tensor(1), torch.tensor(-1, dtype=torch.int32)],
                         ids=["numpy-int64", "tensor-int64", "tensor-int32"])
def test_dim_as_an_index_is_taken_as_torch_takes_it(dim):
    # Regression: TypeError where PyTorch converts the dim with __index__.
    x = torch.randn(2, 3)
    torch.testing.assert_close(skt.softmax(x, dim), F.softmax(x, dim))
    torch.testing.assert_close(skt.LogSoftmax(dim)(x), torch.nn.LogSoftmax(dim)(x))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: skt.softmax(torch.randn(2, 3, dtype=torch.complex64), 1), "complex"),
    (lambda: skt.log_softmax(torch.randn(2, 3), 1, dtype=torch.complex64), "floating dtype"),
    (lambda: skt.softmax(torch.randn(2, 3), 1, dtype=torch.int64), "floating dtype"),
    (lambda: skt.cross_entropy(torch.randn(2, 3, dtype=torch.complex128), torch.tensor([0, 1])), "complex"),
], ids=["softmax-complex-input", "log_softmax-complex-dtype", "softmax-int-dtype",
        "cross_entropy-complex-input"])
def test_complex_input_and_non_float_dtype_are_refused(call, message):
    # Regression: the imaginary part was dropped (with a warning) and an integer dtype= truncated
    # the logits before taking them as floats; PyTorch raises, and SPEC §2 says TypeError.
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: skt.softmax(np.ones((2, 3)), 1), "input"),
    (lambda: skt.cross_entropy([[1.0, 2.0]], torch.tensor([0])), "input"),
    (lambda: skt.cross_entropy(torch.randn(2, 3), [0, 1]), "target"),
    (lambda: skt.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), [1.0, 1.0, 1.0]), "weight"),
], ids=["softmax-ndarray", "cross_entropy-input-list", "cross_entropy-target-list",
        "cross_entropy-weight-list"])
def test_non_tensor_arguments_raise_type_error(call, argument):
    # Regression: AttributeError ('list' object has no attribute ...); PyTorch raises TypeError.
    with pytest.raises(TypeError, match=f"argument '{argument}' must be Tensor"):
        call()


def test_where_torch_gives_nan_softmaxkit_keeps_the_spec():
    x = torch.tensor([[-INF, -INF], [INF, INF], [INF, 0.0]])
    assert torch.isnan(F.softmax(x, 1)).all()
    torch.testing.assert_close(skt.softmax(x, 1), torch.tensor([[0.0, 0.0], [0.5, 0.5], [1.0, 0.0]]))


def test_integer_input_gives_default_float():
    # torch.softmax refuses integer tensors; softmaxkit takes them as the default float (SPEC §2).
    x = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(skt.softmax(x, 1), F.softmax(x.float(), 1))


def test_implicit_dim_compiles_with_fullgraph_as_torchs():
    # Regression: Dynamo could not trace the deprecation warning (a graph break), where
    # F.softmax(x) compiles with fullgraph=True.
    x = torch.randn(3, 4)
    compiled = torch.compile(lambda t: skt.softmax(t) + skt.LogSoftmax()(t), fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), F.softmax(x, 1) + F.log_softmax(x, 1))


def test_modules_forward_and_repr():
    x = torch.randn(3, 4)
    for ours, theirs in [(skt.Softmax(dim=0), torch.nn.Softmax(dim=0)),
                         (skt.LogSoftmax(dim=1), torch.nn.LogSoftmax(dim=1))]:
        torch.testing.assert_close(ours(x), theirs(x))
        assert repr(ours) == repr(theirs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.testing.assert_close(skt.Softmax()(x), torch.nn.Softmax()(x))
    assert len(caught) == 2


class _ScriptedHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 4)
        self.softmax, self.log_softmax = skt.Softmax(1), skt.LogSoftmax(0)
        self.loss = skt.CrossEntropyLoss(label_smoothing=0.1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return self.softmax(z)[:, 0].sum() + self.log_softmax(z)[0].sum() + self.loss(z, labels)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_modules_inside_a_torchscript_model():
    # Regression: torch.jit.script of a model holding them failed to compile their forward
    # (NotSupportedError in softmaxkit's code); TorchScript now calls it as Python.
    torch.manual_seed(0)
    model = _ScriptedHead()
    x, labels = torch.randn(5, 3, dtype=torch.float64), _labels((5,), 4)
    model.double()
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x, labels), model(x, labels))


# --- cross_entropy -------------------------------------------------------------------------------

def _labels(shape: tuple[int, ...], n: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, n, shape, generator=torch.Generator().manual_seed(seed))


CE_OPTIONS = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"label_smoothing": 0.15},
    {"label_smoothing": 1.0},
    {"weight": "w"},
    {"weight": "w", "label_smoothing": 0.3, "reduction": "mean"},
    {"weight": "w", "reduction": "none", "label_smoothing": 0.1},
    {"ignore_index": 2},
    {"ignore_index": 2, "weight": "w", "label_smoothing": 0.2},
    {"ignore_index": -100, "reduction": "sum"},
]


def _options(options: dict, n: int) -> dict:
    w = torch.rand(n, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.1
    return {k: (w if v == "w" else v) for k, v in options.items()}


def _option_id(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items()) or "default"


@pytest.mark.parametrize("options", CE_OPTIONS, ids=_option_id)
@pytest.mark.parametrize("shape", [(6,), (8, 6), (4, 6, 3), (2, 6, 3, 2)], ids=str)
def test_cross_entropy_class_indices_against_torch(options, shape):
    n = shape[1] if len(shape) > 1 else shape[0]
    label_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    labels = _labels(label_shape, n)
    if len(shape) > 1 and options.get("ignore_index", -100) == -100:
        labels.view(-1)[0] = -100  # the default ignore_index
    kwargs = _options(options, n)
    a, b = _pair(*shape)
    _same_values_and_grads(skt.cross_entropy(a, labels, **kwargs), F.cross_entropy(b, labels, **kwargs), a, b)


@pytest.mark.parametrize("options", [o for o in CE_OPTIONS if "ignore_index" not in o],
                         ids=_option_id)
@pytest.mark.parametrize("shape", [(6,), (8, 6), (4, 6, 3)], ids=str)
def test_cross_entropy_probabilities_against_torch(options, shape):
    n = shape[1] if len(shape) > 1 else shape[0]
    dim = 1 if len(shape) > 1 else 0
    raw = torch.randn(shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    q0 = torch.softmax(raw, dim)
    qa, qb = q0.clone().requires_grad_(), q0.clone().requires_grad_()
    kwargs = _options(options, n)
    a, b = _pair(*shape)
    ours, theirs = skt.cross_entropy(a, qa, **kwargs), F.cross_entropy(b, qb, **kwargs)
    _same_values_and_grads(ours, theirs, a, b)
    torch.testing.assert_close(qa.grad, qb.grad)  # torch differentiates the target too


@pytest.mark.parametrize(("size_average", "reduce"),
                         [(True, None), (False, None), (None, False), (False, True)])
def test_legacy_reduction_flags(size_average, reduce):
    a, b = _pair(5, 4)
    labels = _labels((5,), 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = skt.cross_entropy(a, labels, size_average=size_average, reduce=reduce)
        theirs = F.cross_entropy(b, labels, size_average=size_average, reduce=reduce)
    assert len(caught) == 2 and str(caught[0].message) == str(caught[1].message)
    _same_values_and_grads(ours, theirs, a, b)


def test_cross_entropy_float32_and_positional_arguments():
    a, b = _pair(16, 10, dtype=torch.float32)
    labels = _labels((16,), 10)
    w = torch.rand(10)
    # weight third, then size_average, ignore_index, reduce, reduction, label_smoothing: positionally
    _same_values_and_grads(skt.cross_entropy(a, labels, w, None, 3, None, "sum", 0.05),
                           F.cross_entropy(b, labels, w, None, 3, None, "sum", 0.05), a, b)


def test_cross_entropy_keyword_names():
    x, labels = torch.randn(3, 4), torch.tensor([0, 1, 2])
    torch.testing.assert_close(skt.cross_entropy(input=x, target=labels),
                               F.cross_entropy(input=x, target=labels))


def test_cross_entropy_all_ignored_is_nan_as_torch():
    x, labels = torch.randn(3, 4), torch.full((3,), -100)
    assert torch.isnan(skt.cross_entropy(x, labels)) and torch.isnan(F.cross_entropy(x, labels))


def test_cross_entropy_module_and_state_dict():
    w = torch.rand(5)
    ours = skt.CrossEntropyLoss(weight=w, ignore_index=1, reduction="sum", label_smoothing=0.1)
    theirs = torch.nn.CrossEntropyLoss(weight=w, ignore_index=1, reduction="sum", label_smoothing=0.1)
    assert repr(ours) == repr(theirs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    a, b = _pair(7, 5, dtype=torch.float32)
    labels = _labels((7,), 5)
    _same_values_and_grads(ours(a, labels), theirs(b, labels), a, b)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"reduction": "avg"}, ValueError),
    ({"label_smoothing": 1.5}, ValueError),
    ({"weight": torch.ones(3)}, ValueError),
    ({"target": torch.zeros(4, 2, dtype=torch.long)}, ValueError),
    ({"target": torch.tensor([0, 1, 2, 5])}, ValueError),
    ({"target": torch.tensor([0, 1, 2, -1])}, ValueError),
    ({"target": torch.zeros(4, 6)}, ValueError),
    ({"target": torch.zeros(4, dtype=torch.bool)}, ValueError),
])
def test_cross_entropy_bad_arguments_raise(kwargs, error):
    call = {"input": torch.randn(4, 5), "target": torch.tensor([0, 1, 2, 3]), **kwargs}
    with pytest.raises(error):
        skt.cross_entropy(**call)
    with pytest.raises((ValueError, RuntimeError, IndexError)):  # torch raises too
        F.cross_entropy(**call)


@pytest.mark.parametrize("target_dtype", [torch.float64, torch.float16], ids=str)
def test_probability_targets_of_another_dtype_promote_as_torchs(target_dtype):
    # Regression: float64 probabilities were cast to the float32 logits (a float32 loss);
    # PyTorch's loss has the promoted dtype, the gradient the logits'.
    a, b = _pair(4, 5, dtype=torch.float32)
    q = torch.softmax(torch.randn(4, 5, generator=torch.Generator().manual_seed(2)), 1).to(target_dtype)
    ours, theirs = skt.cross_entropy(a, q, label_smoothing=0.1), F.cross_entropy(b, q, label_smoothing=0.1)
    assert ours.dtype == theirs.dtype
    # PyTorch smooths float16 probabilities in float16; softmaxkit in float32.
    tolerance = {"rtol": 1e-3, "atol": 1e-3} if target_dtype == torch.float16 else {}
    _same_values_and_grads(ours, theirs, a, b, **tolerance)
    assert a.grad.dtype == torch.float32


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"target": torch.full((4, 5), 0.2), "ignore_index": 1}, ValueError),
    ({"ignore_index": 1.5}, TypeError),
], ids=["probabilities-ignore_index", "float-ignore_index"])
def test_ignore_index_that_torch_refuses_is_refused(kwargs, error):
    # Regression: ignored silently (probabilities), truncated to an int (1.5); PyTorch raises.
    call = {"input": torch.randn(4, 5), "target": torch.tensor([0, 1, 2, 3]), **kwargs}
    with pytest.raises((RuntimeError, TypeError)):
        F.cross_entropy(**call)
    with pytest.raises(error, match="ignore_index"):
        skt.cross_entropy(**call)


def test_weight_that_requires_grad_is_refused():
    # Regression: its gradient was silently None; PyTorch raises (not differentiable there).
    w = torch.rand(3, requires_grad=True)
    with pytest.raises(ValueError, match="not differentiable with respect to weight"):
        skt.cross_entropy(torch.randn(2, 3, requires_grad=True), torch.tensor([0, 1]), w)
    with torch.no_grad():
        torch.testing.assert_close(skt.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), w).shape,
                                   torch.Size([]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_cross_entropy_under_cpu_autocast_is_float32_as_torchs(dtype):
    """Regression: under ``torch.autocast("cpu")`` the loss kept the logits' half dtype, where
    PyTorch's cross_entropy (on autocast's float32 list) computes and returns float32; softmax
    and log_softmax are not on the CPU list and keep it, in both."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(6, 5)
    x, labels, w = torch.randn(8, 6), _labels((8,), 5), torch.rand(5, dtype=dtype)
    grads = []
    for ce, sm in [(skt.cross_entropy, skt.log_softmax), (F.cross_entropy, F.log_softmax)]:
        linear.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            z = linear(x).to(dtype)
            loss, logp = ce(z, labels, w), sm(z, 1)
        assert (loss.dtype, logp.dtype) == (torch.float32, dtype)
        loss.backward()
        grads.append((loss, linear.weight.grad.clone()))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-2, rtol=1e-2)


def test_negative_label_smoothing_is_refused():
    # PyTorch 2.13 accepts it (a target with negative mass); SPEC §1 says [0, 1].
    with pytest.raises(ValueError, match="label_smoothing"):
        skt.cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), label_smoothing=-0.1)


def test_cross_entropy_zero_dim_input_is_refused():
    with pytest.raises(ValueError, match="at least one dim"):
        skt.cross_entropy(torch.tensor(1.0), torch.tensor(0))


# --- a training run: the same losses as F.cross_entropy -------------------------------------------

def _train(loss_fn, epochs: int = 5) -> list[float]:
    """The losses of the digits training run that ``python -m benchmarks.torch_mlp`` times."""
    pytest.importorskip("sklearn")
    from benchmarks import torch_mlp

    losses: list[float] = []

    def recorded(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(z, t)
        losses.append(float(loss.detach()))
        return loss

    torch_mlp.train(recorded, *torch_mlp.digits(), epochs)
    return losses


def test_digits_mlp_trains_as_with_torch():
    ours = _train(lambda z, t: skt.cross_entropy(z, t, label_smoothing=0.05))
    theirs = _train(lambda z, t: F.cross_entropy(z, t, label_smoothing=0.05))
    assert len(ours) == len(theirs) == 5 * 15
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 1e-6
    assert ours[-1] < ours[0] / 4  # it learns
