"""cross_entropy against PyTorch's F.cross_entropy (+ autograd) for every option."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import softmaxkit as sk
from backends import Backend, same_library, to_numpy

torch = pytest.importorskip("torch")
F = torch.nn.functional

N, C = 7, 5
OPTIONS = list(itertools.product(
    ["mean", "sum", "none"],   # reduction
    [False, True],             # weight
    [None, 2],                 # ignore_index
    [0.0, 0.3],                # label_smoothing
))


def torch_reference(logits, target, *, weight, ignore_index, label_smoothing, reduction):
    z = torch.tensor(logits, requires_grad=True)
    w = None if weight is None else torch.tensor(weight)
    kwargs = {"weight": w, "label_smoothing": label_smoothing, "reduction": reduction}
    if ignore_index is not None:
        kwargs["ignore_index"] = ignore_index
    loss = F.cross_entropy(z, torch.tensor(target), **kwargs)
    loss.sum().backward()
    return loss.detach().numpy(), z.grad.numpy()


@pytest.fixture
def data():
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(N, C)) * 3
    labels = rng.integers(0, C, size=N)
    labels[:3] = [2, 0, 2]  # ignore_index=2 has something to ignore
    weight = rng.uniform(0.2, 2.0, size=C)
    probs = sk.softmax(rng.normal(size=(N, C)))
    return logits, labels, weight, probs


@pytest.mark.parametrize(("reduction", "weighted", "ignore_index", "smoothing"), OPTIONS)
def test_class_indices_match_torch(engine: str, data, reduction, weighted, ignore_index, smoothing):
    logits, labels, weight, _ = data
    w = weight if weighted else None
    want_loss, want_grad = torch_reference(logits, labels, weight=w, ignore_index=ignore_index,
                                           label_smoothing=smoothing, reduction=reduction)
    loss, grad = sk.cross_entropy(logits, labels, weight=w, ignore_index=ignore_index,
                                  label_smoothing=smoothing, reduction=reduction, return_grad=True,
                                  engine=engine)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-15)
    only_loss = sk.cross_entropy(logits, labels, weight=w, ignore_index=ignore_index,
                                 label_smoothing=smoothing, reduction=reduction, engine=engine)
    np.testing.assert_allclose(only_loss, want_loss, rtol=1e-12)
    if reduction != "none":  # regression: the numba engine gave a 0-d array, the others a scalar
        assert isinstance(loss, np.generic) and isinstance(only_loss, np.generic)


@pytest.mark.parametrize(("reduction", "weighted", "smoothing"),
                         list(itertools.product(["mean", "sum", "none"], [False, True], [0.0, 0.2])))
def test_probability_targets_match_torch(data, reduction, weighted, smoothing):
    logits, _, weight, probs = data
    w = weight if weighted else None
    want_loss, want_grad = torch_reference(logits, probs, weight=w, ignore_index=None,
                                           label_smoothing=smoothing, reduction=reduction)
    loss, grad = sk.cross_entropy(logits, probs, weight=w, label_smoothing=smoothing,
                                  reduction=reduction, return_grad=True)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-15)


def test_class_axis_not_last():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(2, C, 3))  # (batch, classes, positions) as in PyTorch
    labels = rng.integers(0, C, size=(2, 3))
    want_loss, want_grad = torch_reference(logits, labels, weight=None, ignore_index=None,
                                           label_smoothing=0.1, reduction="mean")
    loss, grad = sk.cross_entropy(logits, labels, axis=1, label_smoothing=0.1, return_grad=True)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-15)


def test_on_backends(backend: Backend, engine: str):
    logits_np = np.array([[3.2, 1.3, 0.2, 0.8], [0.1, 2.0, 0.3, 0.0]], dtype=np.float32)
    logits = backend.asarray(logits_np)
    labels = backend.asarray(np.array([0, 1]))
    want, want_grad = torch_reference(logits_np, np.array([0, 1]), weight=None, ignore_index=None,
                                      label_smoothing=0.0, reduction="mean")
    loss, grad = sk.cross_entropy(logits, labels, return_grad=True, engine=engine)
    assert same_library(grad, backend)
    np.testing.assert_allclose(to_numpy(loss), want, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(grad), want_grad, rtol=1e-5, atol=1e-7)


def test_gradient_by_finite_differences(data):
    logits, labels, weight, _ = data
    def f(z):
        return sk.cross_entropy(z, labels, weight=weight, label_smoothing=0.1)
    _, grad = sk.cross_entropy(logits, labels, weight=weight, label_smoothing=0.1, return_grad=True)
    h = 1e-6
    numeric = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        step = np.zeros_like(logits)
        step[idx] = h
        numeric[idx] = (f(logits + step) - f(logits - step)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)


def test_loss_is_non_negative_and_zero_for_certain_predictions():
    assert sk.cross_entropy([[100.0, 0.0]], [0]) < 1e-40
    assert sk.cross_entropy([[0.0, 0.0, 0.0]], [1]) == pytest.approx(np.log(3))


def test_everything_ignored():
    loss, grad = sk.cross_entropy(np.zeros((2, 3)), np.array([1, 1]), ignore_index=1, return_grad=True)
    assert np.isnan(loss)  # 0 / 0, as in PyTorch
    np.testing.assert_array_equal(grad, 0.0)


def test_no_classes_every_sample_ignored(engine: str):
    # Regression: with label smoothing the generic engine divided by the 0 classes (ZeroDivisionError).
    logits, labels = np.zeros((3, 0)), np.zeros(3, dtype=int)
    for reduction, want in (("mean", np.nan), ("sum", 0.0), ("none", np.zeros(3))):
        loss, grad = sk.cross_entropy(logits, labels, ignore_index=0, label_smoothing=0.1,
                                      reduction=reduction, return_grad=True, engine=engine)
        np.testing.assert_array_equal(loss, want)
        assert grad.shape == (3, 0)



def test_ignored_labels_beyond_int64(engine: str):
    """Regression: uint64 labels equal to ignore_index = 2**63 were cast to int64 (-2**63) by
    the numba engine, counted, and read out of bounds (a loss of 5e-321 for all ignored)."""
    logits = np.random.default_rng(3).normal(size=(6, 4))
    labels = np.array([2**63, 1, 2**63, 3, 0, 2**63], dtype=np.uint64)
    kept = labels != 2**63
    loss, grad = sk.cross_entropy(logits, labels, ignore_index=2**63, return_grad=True, engine=engine)
    want_loss, want_grad = sk.cross_entropy(logits[kept], labels[kept].astype(np.int64), return_grad=True,
                                            engine="generic")
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(grad[kept], want_grad, rtol=1e-12)
    np.testing.assert_array_equal(grad[~kept], 0.0)
    assert np.isnan(sk.cross_entropy(logits, np.full(6, 2**63, np.uint64), ignore_index=2**63, engine=engine))


def test_infinite_weights_give_nan_gradients(engine: str):
    """As PyTorch: inf / inf. Regression: the numba engine took the mean's scale of 0 (1 / inf)
    for a zero denominator and gave an all-zero gradient."""
    logits, labels = np.random.default_rng(4).normal(size=(5, 3)), np.array([0, 1, 2, 0, 1])
    loss, grad = sk.cross_entropy(logits, labels, weight=np.full(3, np.inf), return_grad=True, engine=engine)
    assert np.isnan(loss) and np.all(np.isnan(grad))

def test_minus_inf_logit_outside_the_target_is_fine():
    loss, grad = sk.cross_entropy(np.array([[0.0, -np.inf, 0.0]]), np.array([0]), return_grad=True)
    assert loss == pytest.approx(np.log(2))
    np.testing.assert_allclose(grad, [[-0.5, 0.0, 0.5]])


@pytest.mark.parametrize("bad", [[0, 5], [-1, 0]])
def test_labels_out_of_range(bad):
    with pytest.raises(ValueError, match="out of range"):
        sk.cross_entropy(np.zeros((2, 5)), np.array(bad))


def test_argument_errors():
    z = np.zeros((2, 3))
    with pytest.raises(TypeError, match="integers"):
        sk.cross_entropy(z, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="fits neither"):
        sk.cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="weight"):
        sk.cross_entropy(z, np.array([0, 1]), weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="label_smoothing"):
        sk.cross_entropy(z, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        sk.cross_entropy(z, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="ignore_index"):
        sk.cross_entropy(z, np.full((2, 3), 1 / 3), ignore_index=0)
    with pytest.raises(TypeError, match="single int"):
        sk.cross_entropy(z, np.array([0, 1]), axis=(0, 1))


def test_mean_rules_are_pytorchs():
    """The rules every engine takes from softmaxkit._rules (regression: 4 copies before)."""
    from softmaxkit import _rules

    labels = np.array([0, 2, -1, 2])
    weight = np.array([1.0, 2.0, 3.0])
    assert float(_rules.mean_denominator(np, labels, weight, -1, 4, np.float64, None)) == 7.0
    assert float(_rules.mean_denominator(np, labels, None, -1, 4, np.float64, None)) == 3.0
    assert float(_rules.mean_denominator(np, None, weight, None, 4, np.float64, None)) == 4.0
    nothing = _rules.mean_denominator(np, np.array([-1, -1]), weight, -1, 2, np.float64, None)
    grad = np.array([[np.inf, -1.0], [np.nan, 2.0]])
    with np.errstate(all="ignore"):  # the engines call these under the same errstate
        assert np.isnan(_rules.mean(np.float64(0.0), nothing))
        np.testing.assert_array_equal(_rules.mean_gradient(np, grad, nothing), np.zeros((2, 2)))
    assert _rules.mean_gradient_scale(0.0) == 0.0 and _rules.mean_gradient_scale(4.0) == 0.25
