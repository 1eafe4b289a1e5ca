"""Small CPU tensors: softmax, the vjps and cross_entropy by address (softmaxkit.numba._addressed),
the same bits as the Numba engine's array kernels, and every call they must not take left to the
other path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

import torch.nn.functional as F  # noqa: E402

import softmaxkit as sk  # noqa: E402
import softmaxkit.torch as skt  # noqa: E402
from softmaxkit.numba._addressed import LONGEST_ROW  # noqa: E402
from softmaxkit.numba._threads import PARALLEL_MIN_SIZE  # noqa: E402
from softmaxkit.torch import _cpu, _ops  # noqa: E402

INF = float("inf")
DTYPES = [torch.float32, torch.float64]


@pytest.fixture
def by_address_only(monkeypatch):
    """Fail any call that leaves the kernels by address (the array path of _cpu)."""

    def refuse(*args, **kwargs):
        raise AssertionError("left the path by address")

    monkeypatch.setattr(_cpu, "_softmax", refuse)
    monkeypatch.setattr(_cpu, "_vjp_on_team", refuse)
    monkeypatch.setattr(_cpu, "_cross_entropy", refuse)


@pytest.fixture
def count_by_address(monkeypatch):
    """Counts of the calls of each kernel by address."""
    counts = {"softmax_at": 0, "vjp_at": 0, "cross_entropy_at": 0}
    for name in counts:
        kernel = getattr(_cpu, name)

        def counted(*args, _kernel=kernel, _name=name):
            counts[_name] += 1
            return _kernel(*args)

        monkeypatch.setattr(_cpu, name, counted)
    return counts


def _with_special_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` with rows of SPEC §2's special cases: all -inf, one and two +inf, a NaN, huge values."""
    x = x.clone()
    rows = x.reshape(-1, x.shape[-1])
    if rows.shape[0] >= 5:
        rows[0] = -INF
        rows[1, 0] = INF
        rows[2, :2] = INF
        rows[3, -1] = float("nan")
        rows[4] = rows[4] * 1e30
    return x


def _numpy_engine(x: torch.Tensor, dims: list[int], log: bool) -> np.ndarray:
    f = sk.log_softmax if log else sk.softmax
    return f(x.detach().numpy(), axis=tuple(dims), engine="numba")


SHAPES = [((64, 10), [1]), ((7, 3), [1]), ((33, 300), [1]), ((2, 3, 4), [2]), ((2, 3, 5), [1, 2]),
          ((10,), [0]), ((1, 1), [1]), ((3, LONGEST_ROW), [1])]
SHAPE_IDS = [f"{s}-dims{d}" for s, d in SHAPES]


@pytest.mark.parametrize("shape, dims", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_by_address_has_the_engines_bits(shape, dims, dtype, log, by_address_only):
    x = _with_special_rows(torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(dtype))
    y = _ops.softmax(x, dims, None, 1.0, log)
    assert y.dtype == dtype and y.is_contiguous() and y.data_ptr() != x.data_ptr()
    np.testing.assert_array_equal(y.numpy(), _numpy_engine(x, dims, log))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_temperature_by_address(dtype, by_address_only):
    x = torch.randn(64, 10, generator=torch.Generator().manual_seed(1)).to(dtype)
    y = _ops.softmax(x, [1], None, 0.25, False)
    np.testing.assert_array_equal(y.numpy(), sk.softmax(x.numpy(), temperature=0.25, engine="numba"))


@pytest.mark.parametrize("shape, dims", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("log", [False, True], ids=["softmax_vjp", "log_softmax_vjp"])
def test_vjps_by_address_have_the_engines_bits(shape, dims, dtype, log, by_address_only):
    x = _with_special_rows(torch.randn(*shape, generator=torch.Generator().manual_seed(2)).to(dtype))
    first = _ops.softmax(x, dims, None, 1.0, log)
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(3)).to(dtype)
    dx = (_ops.log_softmax_vjp if log else _ops.softmax_vjp)(first, g, dims)
    engine_vjp = sk.log_softmax_vjp if log else sk.softmax_vjp
    expected = engine_vjp(first.numpy(), g.numpy(), axis=tuple(dims), engine="numba")
    assert dx.dtype == dtype and dx.is_contiguous()
    np.testing.assert_array_equal(dx.numpy(), expected)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_autograd_on_a_small_tensor_runs_by_address(log, count_by_address):
    # The 64 x 10 forward + backward of issue 11's per-call goal: both calls by address, and
    # SPEC §2's gradient of a row of all -inf (0, where torch's is NaN).
    x = torch.randn(64, 10, generator=torch.Generator().manual_seed(4))
    x[0] = -INF
    leaf = x.requires_grad_()
    (skt.log_softmax if log else skt.softmax)(leaf, 1).backward(torch.ones(64, 10))
    assert count_by_address == {"softmax_at": 1, "vjp_at": 1, "cross_entropy_at": 0}
    assert torch.equal(leaf.grad[0], torch.zeros(10))
    reference = x.detach()[1:].double().requires_grad_()
    reference_output = (torch.log_softmax if log else torch.softmax)(reference, 1)
    reference_output.backward(torch.ones(63, 10, dtype=torch.float64))
    torch.testing.assert_close(leaf.grad[1:], reference.grad.float())


def _negated_view(*shape: int) -> torch.Tensor:
    """A contiguous real tensor whose memory holds its negation (PyTorch's neg bit)."""
    view = torch._neg_view(torch.randn(*shape, generator=torch.Generator().manual_seed(5)))
    assert view.is_neg() and view.is_contiguous()
    return view


# Calls the kernels by address must leave to the array path: (name, x, dims, mask, g).
_x = torch.randn(6, 10, generator=torch.Generator().manual_seed(6))
LEFT_TO_THE_ARRAY_PATH = {
    "mask": (_x, [1], _x > 0, None),
    "float16": (_x.half(), [1], None, None),
    "bfloat16": (_x.bfloat16(), [1], None, None),
    "transposed": (_x.t(), [1], None, None),
    "strided": (_x[::2], [1], None, None),
    "not-the-last-dim": (_x, [0], None, None),
    "negated-view": (_negated_view(6, 10), [1], None, None),
    "empty": (torch.empty(0, 10), [1], None, None),
    "parallel-size": (torch.randn(PARALLEL_MIN_SIZE // 64, 64), [1], None, None),
    "rows-longer-than-the-blocks": (torch.randn(2, LONGEST_ROW + 1), [1], None, None),
    "cotangent-expanded": (_x, [1], None, torch.ones(1, 10).expand(6, 10)),
    "cotangent-transposed": (_x, [1], None, torch.randn(10, 6).t()),
    "cotangent-float64": (_x, [1], None, torch.randn(6, 10, dtype=torch.float64)),
    "cotangent-negated-view": (_x, [1], None, _negated_view(6, 10)),
}


@pytest.mark.parametrize("case", list(LEFT_TO_THE_ARRAY_PATH))
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_calls_the_kernels_by_address_do_not_take(case, log, count_by_address):
    # _cpu's entry points themselves: the dispatcher would resolve a negated view first.
    x, dims, mask, g = LEFT_TO_THE_ARRAY_PATH[case]
    y = _cpu.softmax(x, dims, mask, 1.0, log)
    expected = _numpy_engine(x.resolve_neg().float(), dims, log) if mask is None else None
    if expected is not None and x.dtype in DTYPES:
        np.testing.assert_array_equal(y.numpy(), expected)
    if g is None:
        assert count_by_address["softmax_at"] == 0
        return
    dx = (_cpu.log_softmax_vjp if log else _cpu.softmax_vjp)(y, g, dims)
    engine_vjp = sk.log_softmax_vjp if log else sk.softmax_vjp
    expected_dx = engine_vjp(y.numpy(), np.ascontiguousarray(g.resolve_neg().to(y.dtype).numpy()),
                             axis=tuple(dims), engine="numba")
    np.testing.assert_array_equal(dx.numpy(), expected_dx)
    assert count_by_address == {"softmax_at": 1, "vjp_at": 0, "cross_entropy_at": 0}


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 40), n=st.integers(1, 70), dtype=st.sampled_from(DTYPES), log=st.booleans(),
       temperature=st.sampled_from([1.0, 0.5, 3.0]), seed=st.integers(0, 2**16))
def test_any_small_shape_by_address_has_the_engines_bits(rows, n, dtype, log, temperature, seed):
    x = (torch.randn(rows, n, generator=torch.Generator().manual_seed(seed)) * 20).to(dtype)
    y = _ops.softmax(x, [1], None, temperature, log)
    f = sk.log_softmax if log else sk.softmax
    np.testing.assert_array_equal(y.numpy(), f(x.numpy(), temperature=temperature, engine="numba"))
    g = torch.randn(rows, n, generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    dx = (_ops.log_softmax_vjp if log else _ops.softmax_vjp)(y, g, [1])
    engine_vjp = sk.log_softmax_vjp if log else sk.softmax_vjp
    np.testing.assert_array_equal(dx.numpy(), engine_vjp(y.numpy(), g.numpy(), engine="numba"))


# --- cross_entropy ---------------------------------------------------------------------------------

def _engine_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int | None,
                          smoothing: float, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    return sk.cross_entropy(logits.numpy(), labels.numpy(), axis=1, ignore_index=ignore_index,
                            label_smoothing=smoothing, reduction=reduction, return_grad=True, engine="numba")


@pytest.mark.parametrize("n", [10, 300], ids=["short-rows", "rows"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_index", [None, -100, 3], ids=["no-ignore", "ignore=-100", "ignore=3"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2], ids=["no-smoothing", "smoothing"])
def test_cross_entropy_by_address_has_the_engines_bits(n, dtype, reduction, ignore_index, smoothing,
                                                        by_address_only):
    rng = torch.Generator().manual_seed(7)
    logits = _with_special_rows(torch.randn(40, n, generator=rng).to(dtype) * 3)
    labels = torch.randint(0, n, (40,), generator=rng)
    labels[::7] = -100 if ignore_index == -100 else labels[::7]
    expected_loss, expected_grad = _engine_cross_entropy(logits, labels, ignore_index, smoothing, reduction)
    for want_grad in (True, False):
        options = (ignore_index, smoothing, reduction, want_grad)
        loss, grad = _ops.cross_entropy(logits, labels, None, 1, *options)
        assert loss.dtype == dtype
        np.testing.assert_array_equal(loss.numpy(), expected_loss)
        if want_grad:
            assert grad.shape == logits.shape and grad.is_contiguous()
            np.testing.assert_array_equal(grad.numpy(), expected_grad)
        else:
            assert grad.numel() == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cross_entropy_by_address_with_nothing_counted(dtype, by_address_only):
    # SPEC / PyTorch: the mean of no sample is NaN, its gradient 0 (even at infinite and NaN logits).
    logits = torch.randn(5, 4).to(dtype)
    logits[0, 1], logits[1, 2] = INF, float("nan")
    labels = torch.full((5,), -100)
    loss, grad = _ops.cross_entropy(logits, labels, None, 1, -100, 0.0, "mean", True)
    assert torch.isnan(loss) and torch.equal(grad, torch.zeros_like(logits))
    reference = F.cross_entropy(logits.double().clone().requires_grad_(), labels)
    assert torch.isnan(reference)


@pytest.mark.parametrize("label", [-1, 10, 2**40], ids=["negative", "n", "huge"])
def test_cross_entropy_by_address_names_a_label_out_of_range(label, by_address_only, monkeypatch):
    # The error of the array path (check_labels), raised before anything is computed.
    labels = torch.tensor([0, 1, label, 2])
    monkeypatch.setattr(_cpu, "cross_entropy_at", lambda *args: pytest.fail("computed"))
    with pytest.raises(ValueError, match=f"label {label} is out of range for 10 classes"):
        _ops.cross_entropy(torch.randn(4, 10), labels, None, 1, -100, 0.0, "mean", True)


def test_cross_entropy_by_address_ignores_an_ignored_label_out_of_range(by_address_only):
    labels = torch.tensor([0, -7, 2])
    loss, _ = _ops.cross_entropy(torch.randn(3, 10), labels, None, 1, -7, 0.0, "sum", True)
    assert torch.isfinite(loss)


def test_cross_entropy_fwd_bwd_on_a_small_tensor_runs_by_address(count_by_address):
    x = torch.randn(64, 10, generator=torch.Generator().manual_seed(8), requires_grad=True)
    labels = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(9))
    loss = skt.cross_entropy(x, labels, label_smoothing=0.1)
    loss.backward()
    assert count_by_address == {"softmax_at": 0, "vjp_at": 0, "cross_entropy_at": 1}
    reference = x.detach().double().requires_grad_()
    expected = F.cross_entropy(reference, labels, label_smoothing=0.1)
    expected.backward()
    torch.testing.assert_close(loss.double(), expected.detach())
    torch.testing.assert_close(x.grad, reference.grad.float())


_logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(10))
_labels = torch.tensor([0, 3, 9, 1, 2, 2])
# Calls cross_entropy by address must leave to the array path: (logits, target, weight, dim, ignore_index).
CROSS_ENTROPY_LEFT_TO_THE_ARRAY_PATH = {
    "weight": (_logits, _labels, torch.rand(10), 1, None),
    "int32-labels": (_logits, _labels.int(), None, 1, None),
    "uint8-labels": (_logits, _labels.to(torch.uint8), None, 1, None),
    "strided-labels": (_logits, torch.stack([_labels, _labels], 1)[:, 0], None, 1, None),
    "negated-labels": (_logits, torch._neg_view(-_labels), None, 1, None),
    "transposed-logits": (_logits.t().contiguous().t(), _labels, None, 1, None),
    "classes-on-dim-0": (_logits.t().contiguous(), _labels, None, 0, None),
    "classes-on-a-middle-dim": (torch.randn(2, 10, 3), torch.randint(0, 10, (2, 3)), None, 1, None),
    "float16": (_logits.half(), _labels, None, 1, None),
    "probabilities": (_logits, torch.softmax(torch.randn(6, 10), 1), None, 1, None),
    "ignore-index-beyond-int64": (_logits, _labels, None, 1, 2**64),
    "empty-batch": (torch.empty(0, 10), torch.empty(0, dtype=torch.int64), None, 1, None),
    "parallel-size": (torch.randn(PARALLEL_MIN_SIZE // 64, 64),
                      torch.zeros(PARALLEL_MIN_SIZE // 64, dtype=torch.int64), None, 1, None),
}


@pytest.mark.parametrize("case", list(CROSS_ENTROPY_LEFT_TO_THE_ARRAY_PATH))
def test_cross_entropy_calls_the_kernel_by_address_does_not_take(case, count_by_address):
    logits, target, weight, dim, ignore_index = CROSS_ENTROPY_LEFT_TO_THE_ARRAY_PATH[case]
    loss, grad = _cpu.cross_entropy(logits, target, weight, dim, ignore_index, 0.0, "sum", True)
    assert count_by_address["cross_entropy_at"] == 0
    reference = logits.double().movedim(dim, 1).requires_grad_()  # torch's classes: dim 1
    labels = target.resolve_neg()
    expected = F.cross_entropy(reference, labels if labels.is_floating_point() else labels.long(),
                               weight=None if weight is None else weight.double(), reduction="sum")
    expected.backward()
    torch.testing.assert_close(loss.double(), expected.detach(), rtol=2e-3, atol=1e-5)
    torch.testing.assert_close(grad.double().movedim(dim, 1), reference.grad, rtol=2e-3, atol=1e-5)


# --- review findings: what the kernels by address must never read ------------------------------------

_NO_MEMORY_CASES = '''
import torch
import softmaxkit.torch as skt
from softmaxkit.torch import _cpu

def freed(t):
    t.untyped_storage().resize_(0)  # as FSDP frees a parameter's memory
    return t

s = torch.softmax(torch.randn(4, 6), 1)
cases = {
    "softmax-freed": lambda: skt.softmax(freed(torch.randn(4, 6)), 1),
    "softmax-zerotensor": lambda: skt.softmax(torch._efficientzerotensor((4, 6)), 1),
    "vjp-freed-first": lambda: _cpu.softmax_vjp(freed(s.clone()), torch.randn(4, 6), [1]),
    "vjp-freed-cotangent": lambda: _cpu.log_softmax_vjp(s, freed(torch.randn(4, 6)), [1]),
    "vjp-zerotensor-cotangent": lambda: _cpu.softmax_vjp(s, torch._efficientzerotensor((4, 6)), [1]),
    "vjp-meta-cotangent": lambda: _cpu.softmax_vjp(s, torch.empty(4, 6, device="meta"), [1]),
    "cross_entropy-freed-logits": lambda: skt.cross_entropy(freed(torch.randn(4, 6)), torch.arange(4)),
    "cross_entropy-freed-labels": lambda: skt.cross_entropy(torch.randn(4, 6), freed(torch.arange(4))),
    "cross_entropy-meta-labels": lambda: _cpu.cross_entropy(
        torch.randn(4, 6), torch.zeros(4, dtype=torch.int64, device="meta"), None, 1, None, 0.0, "sum", True),
}
for name, call in cases.items():
    try:
        call()
    except Exception as error:
        print(name, "raised", type(error).__name__, flush=True)
    else:
        print(name, "returned", flush=True)
'''


def test_tensors_without_memory_here_are_refused_not_read():
    # Regression (review): a freed storage, a zero tensor or a meta cotangent reached the kernels
    # by address, which read address 0 and crashed the process (the array path raises instead).
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _NO_MEMORY_CASES], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr[-2000:])
    lines = done.stdout.splitlines()
    assert len(lines) == 9 and all(" raised " in line for line in lines), lines


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_by_address_overflows_to_inf_without_a_warning(reduction, by_address_only):
    # Regression (review): the float64 losses cast to float32 warned ("overflow encountered in
    # cast") on the address path; the engine's calls are silent, as torch's.
    import warnings

    logits = torch.tensor([[3e38, -3e38]] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, _ = _ops.cross_entropy(logits, torch.tensor([1, 1]), None, 1, None, 0.0, reduction, True)
    assert torch.isinf(loss).all()


def test_results_by_address_have_the_fakes_strides(by_address_only):
    # Regression (review): empty_like kept the input's strides on dims of size 1, where the
    # operators' fake results (and torch.compile's graphs) say C-contiguous strides.
    x = torch.randn(1, 4).t()  # (4, 1), contiguous, strides (1, 4)
    labels = torch.zeros(4, dtype=torch.int64)
    results = [_ops.softmax(x, [1], None, 1.0, False), _ops.softmax_vjp(x.clone(), x, [1]),
               _ops.cross_entropy(x, labels, None, 1, None, 0.0, "mean", True)[1]]
    for result in results:
        assert result.stride() == (1, 1)
