"""Regression tests for the adversarial audit (issue 13): one test per bug, named after it,
run on every CPU engine (ids ``numpy-generic``, ``numpy-numba``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.special

import softmaxkit as sk

CPU_ENGINES = [
    pytest.param("generic", id="numpy-generic"),
    pytest.param(
        "numba", id="numpy-numba",
        marks=pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed"),
    ),
]


@pytest.mark.parametrize("engine", CPU_ENGINES)
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


@pytest.mark.parametrize("engine", CPU_ENGINES)
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


@pytest.mark.parametrize("engine", CPU_ENGINES)
@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_read_only_out_raises_the_same_value_error_on_every_engine(engine, function):
    # Item 15: numba raised a Numba TypingError, generic NumPy's ValueError.
    x = np.random.default_rng(2).standard_normal((64, 128))
    out = np.zeros_like(x)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=f"^{function}: out is read-only$"):
        getattr(sk, function)(x, out=out, engine=engine)
    assert not out.any()


@pytest.mark.parametrize("engine", CPU_ENGINES)
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
