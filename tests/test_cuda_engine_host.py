"""The CUDA engine's array plumbing, run on the CPU with NumPy standing in for CuPy.

The kernels are replaced by NumPy implementations of their contracts (contiguous ``(rows, n)``
input in the kernel dtype, outputs written in place), so these tests check everything the
engine does around them — axes, dtypes, masks, ``out``, reductions, cross-entropy's
denominators — where no GPU is present. The kernels themselves are checked on a GPU by
tests/test_cuda_engine.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import types

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _engines, cuda, generic
from softmaxkit.cuda import _bridge, _launch


def _check_rows(a, dtype: str) -> None:
    assert a.flags.c_contiguous and a.ndim == 2 and a.dtype.name == dtype, (a.shape, a.dtype, dtype)


def fake_softmax(x, mask, y, dtype, temperature, log):
    _check_rows(x, dtype)
    _check_rows(y, dtype)
    assert mask is None or (mask.dtype == np.uint8 and mask.shape == x.shape and mask.flags.c_contiguous)
    where = None if mask is None else mask.astype(bool)
    y[...] = generic.softmax(x, (1,), where=where, temperature=temperature, dtype=x.dtype, out=None, log=log)


def fake_logsumexp(x, mask, out, dtype):
    _check_rows(x, dtype)
    assert out.shape == (x.shape[0],) and out.dtype == x.dtype
    where = None if mask is None else mask.astype(bool)
    out[...] = generic.logsumexp(x, (1,), b=None, keepdims=False, return_sign=False, where=where,
                                 dtype=x.dtype)


def fake_vjp(first, g, out, dtype, log):
    for a in (first, g, out):
        _check_rows(a, dtype)
    function = generic.log_softmax_vjp if log else generic.softmax_vjp
    out[...] = function(first, g, (1,), dtype=first.dtype)


def fake_cross_entropy(x, labels, probs, weight, ignore_index, smoothing, grad_divisor, grad, dtype):
    _check_rows(x, dtype)
    assert (labels is None) != (probs is None)
    if labels is not None:
        assert labels.dtype == np.int64 and labels.shape == (x.shape[0],)
    else:
        _check_rows(probs, dtype)
    target = labels if probs is None else probs
    losses, raw = generic.cross_entropy(x, target, 1, weight=weight, ignore_index=ignore_index,
                                        label_smoothing=smoothing, reduction="none", return_grad=True,
                                        dtype=x.dtype)
    if grad is not None:
        _check_rows(grad, dtype)
        grad[...] = raw / grad_divisor if grad_divisor > 0 else 0
    return losses.astype(np.float64 if dtype == "float64" else np.float32)


@pytest.fixture
def numpy_gpu(monkeypatch):
    """NumPy in CuPy's place, the kernels' contracts in NumPy, and the engine forced."""
    fake = types.ModuleType("cupy")
    fake.ndarray = type("ndarray", (), {})  # no real array is a "CuPy" one: conversions are visible
    for name in ("ascontiguousarray", "asarray", "empty", "int64", "uint8", "ones", "where", "from_dlpack"):
        setattr(fake, name, getattr(np, name))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(_bridge, "from_cupy", lambda y, like, dtype: y)
    monkeypatch.setattr(_launch, "context", lambda a: contextlib.nullcontext())
    for name, fn in (("softmax", fake_softmax), ("logsumexp", fake_logsumexp), ("vjp", fake_vjp),
                     ("cross_entropy", fake_cross_entropy)):
        monkeypatch.setattr(_launch, name, fn)
    # The registry takes NumPy arrays for GPU ones: the public functions check the arguments,
    # then the registry gives this engine every call it covers and the others to the next engine.
    gpu = dataclasses.replace(_engines.get_engine("cuda"), runs=lambda x: isinstance(x, np.ndarray),
                              requires=())
    monkeypatch.setattr(_engines, "ENGINES", tuple(gpu if e.name == "cuda" else e for e in _engines.ENGINES))


def reference(function: str, *args, **kwargs):
    return getattr(sk, function)(*args, engine="generic", **kwargs)


def through_engine(function: str, *args, **kwargs):
    return getattr(sk, function)(*args, **kwargs)


X = np.random.default_rng(0).standard_normal((3, 4, 5)) * 3


@pytest.mark.parametrize("axis", [-1, 0, 1, (0, 2), None])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_softmax_axes_dtypes_masks(numpy_gpu, axis, dtype, function):
    x = X.astype(dtype)
    where = np.random.default_rng(1).random((4, 5)) < 0.7
    for kw in ({}, {"temperature": 0.5}, {"where": where}, {"dtype": "float64"}):
        want = reference(function, x, axis=axis, **kw)
        got = through_engine(function, x, axis=axis, **kw)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_softmax_out_integer_input_and_empty(numpy_gpu):
    x = X.astype(np.float32)
    out = np.empty_like(x, dtype=np.float64)
    assert through_engine("softmax", x, out=out) is out
    np.testing.assert_array_equal(out, reference("softmax", x).astype(np.float64))
    ints = np.arange(12).reshape(3, 4)
    np.testing.assert_array_equal(through_engine("softmax", ints), reference("softmax", ints))
    assert through_engine("softmax", np.zeros((2, 0))).shape == (2, 0)
    assert through_engine("softmax", np.float64(2.0)) == 1.0


@pytest.mark.parametrize("axis", [-1, 0, (1, 2), None])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_shapes_and_delegation(numpy_gpu, axis, keepdims):
    x = X.astype(np.float32)
    want = reference("logsumexp", x, axis=axis, keepdims=keepdims)
    got = through_engine("logsumexp", x, axis=axis, keepdims=keepdims)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_array_equal(got, want)
    b = np.linspace(-1, 1, 5)
    _, sign = through_engine("logsumexp", x, axis=axis, b=b, return_sign=True)  # the generic engine's
    np.testing.assert_array_equal(sign, reference("logsumexp", x, axis=axis, b=b, return_sign=True)[1])


@pytest.mark.parametrize("function", ["softmax_vjp", "softmax_jvp", "log_softmax_vjp"])
def test_vjps_with_mixed_dtypes(numpy_gpu, function):
    s = sk.softmax(X.astype(np.float32), axis=1, engine="generic")
    g = np.cos(X)  # float64 cotangent with a float32 s: computed in float32, as the generic engine
    for axis in (1, -1, (0, 2)):
        want = reference(function, s, g, axis=axis)
        got = through_engine(function, s, g, axis=axis)
        assert got.dtype == want.dtype
        # The engine casts g to float32 before its row sums, the generic engine within them.
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float32).eps, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("axis", [-1, 1])
def test_cross_entropy_options(numpy_gpu, reduction, axis):
    logits = X.astype(np.float32)  # classes along `axis`: 5 (last) or 4
    n = logits.shape[axis]
    rng = np.random.default_rng(2)
    labels = rng.integers(0, n, np.delete(logits.shape, axis % 3))
    labels.flat[0] = -1
    probs = sk.softmax(rng.standard_normal(logits.shape), axis=axis, engine="generic").astype(np.float32)
    weight = rng.random(n) + 0.5
    cases = [
        (labels, {"ignore_index": -1}),
        (labels, {"ignore_index": -1, "weight": weight, "label_smoothing": 0.2}),
        (probs, {}),
        (probs, {"weight": weight, "label_smoothing": 0.1}),
    ]
    for target, kw in cases:
        options = {"axis": axis, "reduction": reduction, "return_grad": True, **kw}
        want = reference("cross_entropy", logits, target, **options)
        got = through_engine("cross_entropy", logits, target, **options)
        for g, w in zip(got, want, strict=True):
            assert np.shape(g) == np.shape(w) and np.asarray(g).dtype == np.asarray(w).dtype
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


def test_cross_entropy_nothing_counted(numpy_gpu):
    logits = X[0].astype(np.float32)
    loss, grad = through_engine("cross_entropy", logits, np.full(4, -1), ignore_index=-1, return_grad=True)
    assert np.isnan(loss) and not np.any(grad)


# --- device, stream and host inputs (review findings 2 and 3) ----------------------------------------

@pytest.fixture
def inside_context(numpy_gpu, monkeypatch):
    """Fails any cast or copy (``_rows``, ``_mask_rows``) made outside ``_launch.context``."""
    state = {"inside": False, "entered": 0}

    @contextlib.contextmanager
    def context(a):
        state["inside"] = True
        state["entered"] += 1
        try:
            yield
        finally:
            state["inside"] = False

    monkeypatch.setattr(_launch, "context", context)
    for name in ("_rows", "_mask_rows"):
        original = getattr(cuda, name)

        def checked(*args, _original=original, _name=name, **kwargs):
            assert state["inside"], f"{_name} ran outside the input's device and stream"
            return _original(*args, **kwargs)

        monkeypatch.setattr(cuda, name, checked)
    return state


def test_casts_and_copies_run_inside_the_device_context(inside_context):
    x = X.astype(np.float16)
    where = np.random.default_rng(1).random(X.shape) < 0.7
    through_engine("softmax", x, axis=(0, 2), where=where, dtype="float32")
    through_engine("logsumexp", x, axis=1, where=where)
    s = sk.softmax(X.astype(np.float32), axis=1, engine="generic")
    through_engine("softmax_vjp", s, np.cos(X), axis=1)
    through_engine("cross_entropy", x, np.zeros((3, 5), dtype=np.int64), axis=1, weight=np.ones(4),
                   return_grad=True)
    assert inside_context["entered"] >= 4  # every engine call entered it (one per public call or more)


class _Recorder:
    def __init__(self, log, what):
        self.log, self.what = log, what

    def __enter__(self):
        self.log.append(("enter", *self.what))

    def __exit__(self, *exc):
        self.log.append(("exit", *self.what))


def _fake_cupy(log):
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(
        Device=lambda i: _Recorder(log, ("device", i)),
        Stream=types.SimpleNamespace(from_external=lambda s: _Recorder(log, ("stream", s.__cuda_stream__()))),
        get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: log.append(("synchronize",))),
    )
    return fake


def test_torch_input_launches_on_torch_current_stream_of_its_device(monkeypatch):
    torch = pytest.importorskip("torch")
    log = []
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(log))
    seen = []
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(
        current_stream=lambda device: seen.append(device) or types.SimpleNamespace(cuda_stream=0xBEEF)))
    monkeypatch.setattr(_bridge, "torch", lambda: fake_torch)
    monkeypatch.setattr(_bridge, "device_id", lambda a: 1)
    x = torch.zeros(2)
    with _launch.context(x):
        log.append(("work",))
    assert seen == [x.device]
    assert log == [("enter", "device", 1), ("enter", "stream", (0, 0xBEEF)), ("work",),
                   ("exit", "stream", (0, 0xBEEF)), ("exit", "device", 1)]


def test_jax_input_is_synchronised_before_the_result_is_handed_back(monkeypatch):
    jnp = pytest.importorskip("jax.numpy")
    log = []
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(log))
    monkeypatch.setattr(_bridge, "device_id", lambda a: 0)
    with _launch.context(jnp.zeros(2)):
        log.append(("work",))
    assert log == [("enter", "device", 0), ("work",), ("synchronize",), ("exit", "device", 0)]


def test_cupy_input_keeps_cupys_current_stream(monkeypatch):
    log = []
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(log))
    monkeypatch.setattr(_bridge, "device_id", lambda a: 2)
    with _launch.context(np.zeros(2)):  # neither torch nor JAX: CuPy's own stream
        log.append(("work",))
    assert log == [("enter", "device", 2), ("work",), ("exit", "device", 2)]


def test_host_masks_targets_and_weights_go_to_the_inputs_library_and_device():
    torch = pytest.importorskip("torch")
    like = torch.zeros(3, dtype=torch.float64)
    moved = _bridge.to_device_of(np.array([True, False, True]), like)
    assert isinstance(moved, torch.Tensor) and moved.device == like.device and moved.dtype == torch.bool
    assert _bridge.to_device_of(None, like) is None
    jnp = pytest.importorskip("jax.numpy")
    moved = _bridge.to_device_of(torch.tensor([1, 2]), jnp.zeros(2))
    assert type(moved).__module__.startswith("jax") and list(moved.tolist()) == [1, 2]
