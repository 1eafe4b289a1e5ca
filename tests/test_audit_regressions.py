"""Regression tests for the adversarial audit (issue 13): one test per bug, named after it,
run on every engine of NumPy arrays (the ``engine`` parameter of conftest: ``numpy-generic``,
``numpy-numba``)."""

from __future__ import annotations

import importlib.util

import ml_dtypes
import numpy as np
import pytest
import scipy.special

import softmaxkit as sk
from backends import forced


@pytest.mark.parametrize("keepdims", [False, True], ids=["dropdims", "keepdims"])
@pytest.mark.parametrize("axis", [-1, 0, 1, (0, 2), (1, 2)], ids=str)
def test_logsumexp_keeps_the_kept_axes_order_of_transposed_input(engine, keepdims, axis):
    # Item 1: numba returned the kept axes in memory order (0.77 off SciPy).
    x = np.random.default_rng(0).standard_normal((16, 8, 32)).transpose(1, 0, 2)
    got = sk.logsumexp(x, axis=axis, keepdims=keepdims, engine=engine)
    np.testing.assert_allclose(got, scipy.special.logsumexp(x, axis=axis, keepdims=keepdims), rtol=1e-13)


def _torch_cross_entropy(logits, labels, **options):
    torch = pytest.importorskip("torch")
    t = torch.tensor(logits, requires_grad=True)
    kwargs = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in options.items()}
    loss = torch.nn.functional.cross_entropy(t, torch.tensor(labels), **kwargs)
    loss.sum().backward()
    return loss.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1], ids=["plain", "smoothed"])
@pytest.mark.parametrize("weight", [[-1.0, -1.0, -1.0], [-2.0, 0.5, 1.0]], ids=["all_negative", "mixed"])
def test_negative_class_weights_follow_torch(engine, reduction, smoothing, weight):
    # Item 4: NaN on numba and a zero gradient on both engines; PyTorch divides by the
    # (negative) summed weight.
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4096, 3))
    labels = rng.integers(0, 3, 4096)
    w = np.asarray(weight)
    loss, grad = sk.cross_entropy(logits, labels, weight=w, label_smoothing=smoothing, reduction=reduction,
                                  return_grad=True, engine=engine)
    want_loss, want_grad = _torch_cross_entropy(logits, labels, weight=w, label_smoothing=smoothing,
                                                reduction=reduction)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    if reduction == "none":  # the gradient of each sample's own loss: torch's of their sum
        np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-18)


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_read_only_out_raises_the_same_value_error_on_every_engine(engine, function):
    # Item 15: numba raised a Numba TypingError, generic NumPy's ValueError.
    x = np.random.default_rng(2).standard_normal((64, 128))
    out = np.zeros_like(x)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=f"^{function}: out is read-only$"):
        getattr(sk, function)(x, out=out, engine=engine)
    assert not out.any()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("n_classes", [5, 0])
def test_cross_entropy_of_an_empty_batch_matches_torch(engine, reduction, n_classes):
    # Item 15: numba raised "cannot reshape array of size 0", generic NumPy's max error (0 classes).
    logits = np.zeros((0, n_classes))
    labels = np.zeros(0, dtype=np.int64)
    loss, grad = sk.cross_entropy(logits, labels, reduction=reduction, return_grad=True, engine=engine)
    want_loss, want_grad = _torch_cross_entropy(logits, labels, reduction=reduction)
    np.testing.assert_array_equal(loss, want_loss)
    assert grad.shape == want_grad.shape == (0, n_classes)


X = np.random.default_rng(3).standard_normal((3, 4))
LABELS = np.array([0, 1, 3])

LOOSE_ARGUMENTS = {
    "softmax_temperature_str": lambda: sk.softmax(X, temperature="2"),
    "softmax_temperature_true": lambda: sk.softmax(X, temperature=True),
    "softmax_temperature_numpy_bool": lambda: sk.softmax(X, temperature=np.True_),
    "softmax_temperature_none": lambda: sk.softmax(X, temperature=None),
    "log_softmax_temperature_bytes": lambda: sk.log_softmax(X, temperature=b"2"),
    "jacobian_temperature_str": lambda: sk.softmax_jacobian(X, temperature="0.5"),
    "label_smoothing_str": lambda: sk.cross_entropy(X, LABELS, label_smoothing="0.1"),
    "label_smoothing_true": lambda: sk.cross_entropy(X, LABELS, label_smoothing=True),
    "ignore_index_true": lambda: sk.cross_entropy(X, LABELS, ignore_index=True),
    "ignore_index_float": lambda: sk.cross_entropy(X, LABELS, ignore_index=1.0),
    "ignore_index_str": lambda: sk.cross_entropy(X, LABELS, ignore_index="1"),
    "return_grad_str": lambda: sk.cross_entropy(X, LABELS, return_grad="no"),
    "return_grad_int": lambda: sk.cross_entropy(X, LABELS, return_grad=1),
    "reduction_not_str": lambda: sk.cross_entropy(X, LABELS, reduction=None),
    "keepdims_str": lambda: sk.logsumexp(X, keepdims="no"),
    "return_sign_int": lambda: sk.logsumexp(X, return_sign=1),
    "one_hot_num_classes_true": lambda: sk.one_hot([0, 0], True),
    "fit_temperature_bounds_str": lambda: sk.fit_temperature(X, LABELS, bounds=("0.1", 10.0)),
    "regression_fit_intercept_str": lambda: sk.SoftmaxRegression(fit_intercept="no").fit(X, LABELS),
    "regression_warm_start_int": lambda: sk.SoftmaxRegression(warm_start=1).fit(X, LABELS),
}


@pytest.mark.parametrize("call", LOOSE_ARGUMENTS.values(), ids=LOOSE_ARGUMENTS.keys())
def test_loose_argument_types_raise_type_error(call):
    # Item 16: "2" and True were taken as 2.0 and 1.0, "no" as true.
    with pytest.raises(TypeError, match="must be"):
        call()


@pytest.mark.parametrize("temperature", [2, 2.0, np.float32(2.0), np.int64(2), np.array(2.0)],
                         ids=["int", "float", "float32", "int64", "0d_array"])
def test_real_number_temperatures_are_accepted(temperature):
    np.testing.assert_allclose(sk.softmax(X, temperature=temperature), sk.softmax(X / 2.0), rtol=1e-15)
    assert sk.cross_entropy(X, LABELS, ignore_index=np.int64(1), return_grad=np.True_)[1].shape == X.shape


LAYOUTS = {  # numba's kernels: short-row tiles, rows, split long rows, column tiles
    "short_rows": ((4096, 4), -1),
    "rows": ((64, 128), -1),
    "long_rows": ((2, 40000), -1),
    "columns": ((128, 64), 0),
}


def _log(p):
    with np.errstate(divide="ignore"):
        return np.log(p)


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize(("dtype", "temperature"), [
    (np.float32, 1e-300), (np.float32, 1e-39), (np.float64, 5e-324), (np.float64, 1e-310),
], ids=["float32-1e-300", "float32-1e-39", "float64-5e-324", "float64-1e-310"])
def test_tiny_temperatures_give_the_one_hot_limit(engine, layout, dtype, temperature):
    # Item 3: 1/T overflowed in the kernel's dtype and 0 * inf gave NaN at the maxima.
    shape, axis = layout
    x = np.round(np.random.default_rng(4).standard_normal(shape) * 4).astype(dtype)  # tied maxima
    at_max = x == x.max(axis=axis, keepdims=True)
    want = at_max / at_max.sum(axis=axis, keepdims=True)
    p = forced(sk.softmax, x, axis=axis, temperature=temperature, engine=engine)
    np.testing.assert_allclose(p, want.astype(dtype), rtol=2 * np.finfo(dtype).eps, atol=0)
    logp = forced(sk.log_softmax, x, axis=axis, temperature=temperature, engine=engine)
    np.testing.assert_allclose(logp, _log(want).astype(dtype), rtol=2 * np.finfo(dtype).eps)
    np.testing.assert_array_equal(p, sk.softmax(x, axis=axis, temperature=temperature, engine="generic"))


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize(("dtype", "temperature"), [
    (np.float32, 1e39), (np.float32, 1e300), (np.float64, 1e300),
], ids=["float32-1e39", "float32-1e300", "float64-1e300"])
def test_huge_temperatures_give_the_uniform_limit_over_included_entries(engine, layout, dtype, temperature):
    # Item 3: T = 1e39 overflowed to inf in float32, and -inf / inf gave NaN.
    shape, axis = layout
    x = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    x[(slice(None), 0) if axis == -1 else (0, slice(None))] = -np.inf
    included = np.isfinite(x)
    want = included / included.sum(axis=axis, keepdims=True)
    p = forced(sk.softmax, x, axis=axis, temperature=temperature, engine=engine)
    np.testing.assert_allclose(p, want.astype(dtype), rtol=2 * np.finfo(dtype).eps, atol=0)
    logp = forced(sk.log_softmax, x, axis=axis, temperature=temperature, engine=engine)
    np.testing.assert_allclose(logp, _log(want).astype(dtype), rtol=2 * np.finfo(dtype).eps)
    np.testing.assert_array_equal(p, sk.softmax(x, axis=axis, temperature=temperature, engine="generic"))


def test_tiny_temperatures_resolve_subnormal_differences(engine):
    # The limit is not taken blindly: (0 - 1e-45) / 1e-40 is -1.4e-5, not -inf.
    x = np.tile(np.array([0.0, -1e-45, -1.0, -2e-45], dtype=np.float32), (2048, 1))
    z = (x.astype(np.float64) - 0.0) / 1e-40
    want = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(forced(sk.softmax, x, temperature=1e-40, engine=engine), want, rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
@pytest.mark.parametrize(("dtype", "huge", "temperature"), [
    (np.float32, 3e38, 100.0), (np.float32, 3e38, 2.5), (np.float64, 1e308, 10.0),
    (ml_dtypes.bfloat16, 3e38, 2.5),
], ids=["float32-T100", "float32-T2.5", "float64-T10", "bfloat16-T2.5"])
def test_log_softmax_with_temperature_does_not_overflow_x_minus_max(engine, layout, dtype, huge, temperature):
    # Item 5: x - max overflowed to -inf before the division by T (the exact -6e36 is finite).
    # bfloat16 (float32's range): the numba engine's half-precision row kernel gave -inf too.
    shape, axis = layout
    x = np.zeros(shape, dtype=dtype)
    row = (slice(None), slice(0, 2)) if axis == -1 else (slice(0, 2), slice(None))
    pair = np.array([huge, -huge], dtype=dtype)
    x[row] = pair if axis == -1 else pair[:, None]
    logp = forced(sk.log_softmax, x, axis=axis, temperature=temperature, engine=engine)
    got = logp[:, 1] if axis == -1 else logp[1, :]
    want = -2 * (float(pair[0]) / temperature)
    eps = float(ml_dtypes.finfo(dtype).eps)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=4 * eps)
    p = forced(sk.softmax, x, axis=axis, temperature=temperature, engine=engine)
    np.testing.assert_allclose(p.astype(np.float64).sum(axis=axis), 1.0, rtol=4 * eps)


STRIDED_BACKENDS = [pytest.param("numpy", id="numpy-generic"),
                    pytest.param("array_api_strict", id="array_api_strict-generic")]


@pytest.mark.parametrize("library", STRIDED_BACKENDS)
def test_generic_float32_error_does_not_grow_with_strided_rows(library):
    # Item 2: NumPy sums a strided axis sequentially: 3e-3 relative error (~6,000x SPEC's bound)
    # on a (4,000,000 x 2) float32 softmax along axis 0.
    from tolerance import assert_log_softmax_within_bound, assert_softmax_within_bound, softmax_reference

    x = np.random.default_rng(6).standard_normal((2_000_000, 2)).astype(np.float32)
    z, p_true, y_true = softmax_reference(x, axis=0)
    if library == "numpy":
        to_numpy, a = np.asarray, x
    else:
        xps = pytest.importorskip("array_api_strict")
        to_numpy, a = (lambda r: np.from_dlpack(xps.asarray(r, copy=True))), xps.asarray(x)
    assert_softmax_within_bound(to_numpy(sk.softmax(a, axis=0, engine="generic")), z, p_true, 0, x.dtype)
    assert_log_softmax_within_bound(to_numpy(sk.log_softmax(a, axis=0, engine="generic")), y_true, x.dtype)
    lse = to_numpy(sk.logsumexp(a, axis=0, engine="generic")).astype(np.float64)
    want = scipy.special.logsumexp(x.astype(np.float64), axis=0)
    np.testing.assert_allclose(lse, want, rtol=8 * np.finfo(np.float32).eps)


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")
def test_numba_declares_temperatures_beyond_its_kernels_a_gap():
    # Item 3: the automatic choice takes such a temperature to the generic engine (the same bits);
    # forcing numba names the engines that can.
    x = np.random.default_rng(8).standard_normal((64, 128)).astype(np.float32)
    want = sk.softmax(x, temperature=1e-300, engine="generic")
    assert np.array_equal(sk.softmax(x, temperature=1e-300), want)
    with pytest.raises(ValueError, match="temperature beyond its kernels' range; engines that can: generic"):
        sk.softmax(x, temperature=1e-300, engine="numba")


@pytest.mark.parametrize("temperature", [1e-300, 1e39, 100.0])
def test_temperatures_at_the_ends_on_every_array_library(backend, temperature):
    # Items 3 and 5 through the generic engine of each library (torch, JAX, Dask, array-api-strict).
    from backends import to_numpy

    x = np.array([[1.0, 3.0, 3.0, -np.inf], [3e38, -3e38, 0.0, 1.0]], dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        z = (x.astype(np.float64) - x.max(axis=1, keepdims=True)) / temperature
        z = np.where(np.isneginf(x), -np.inf, z)
        want = z - scipy.special.logsumexp(z, axis=1, keepdims=True)
        want = want.astype(np.float32).astype(np.float64)  # -2e300 is -inf in float32
    for function, expected in ((sk.softmax, np.exp(want)), (sk.log_softmax, want)):
        got = to_numpy(function(backend.asarray(x), temperature=temperature)).astype(np.float64)
        np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(np.float32).eps, atol=1e-45)
