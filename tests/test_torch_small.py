"""Small CPU tensors: softmax and the vjps by address (softmaxkit.numba._addressed), the same bits
as the Numba engine's array kernels, and every call they must not take left to the other path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("numba")

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


@pytest.fixture
def count_by_address(monkeypatch):
    """Counts of the calls of each kernel by address."""
    counts = {"softmax_at": 0, "vjp_at": 0}
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


@pytest.mark.parametrize("shape, dims", SHAPES, ids=[f"{s}-dims{d}" for s, d in SHAPES])
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


@pytest.mark.parametrize("shape, dims", SHAPES, ids=[f"{s}-dims{d}" for s, d in SHAPES])
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
    assert count_by_address == {"softmax_at": 1, "vjp_at": 1}
    assert torch.equal(leaf.grad[0], torch.zeros(10))
    reference = x.detach()[1:].double().requires_grad_()
    (torch.log_softmax if log else torch.softmax)(reference, 1).backward(torch.ones(63, 10, dtype=torch.float64))
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
    assert count_by_address == {"softmax_at": 1, "vjp_at": 0}


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
