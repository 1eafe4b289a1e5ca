"""A user's script, type-checked by mypy in CI (.ci/run): the public API with NumPy arrays,
torch tensors and Python lists, as a user writes it. ``assert_type`` fails the check when a
declared type is not the one a user would expect. It runs as a test too (tests/test_typing.py).
"""

from __future__ import annotations

from typing import Any, assert_type

import numpy as np
import torch

import softmaxkit as sk

Matrix = np.ndarray[tuple[int, int], np.dtype[np.float64]]
Vector = np.ndarray[tuple[int], np.dtype[np.int64]]


def numpy_calls() -> None:
    x: Matrix = np.linspace(-3.0, 3.0, 12).reshape(3, 4)
    p = sk.softmax(x)
    assert_type(p, Matrix)  # the input's own type
    assert_type(sk.log_softmax(x, axis=0, temperature=2.0, engine="generic"), Matrix)
    assert_type(sk.softmax([1.0, 2.0, 3.0]), np.ndarray)  # lists and numbers: NumPy arrays
    assert_type(sk.sigmoid(x), Matrix)
    value, sign = sk.logsumexp(x, axis=1, b=np.ones_like(x), return_sign=True)
    total: Any = sk.logsumexp(x)
    assert float(total) > float(np.max(value)) - 1e-12 and sign.shape == (3,)
    labels: Vector = np.array([0, 3, 1])
    loss, grad = sk.cross_entropy(x, labels, reduction="sum", return_grad=True)
    assert_type(grad, Matrix)
    only_loss = sk.cross_entropy(x, labels, label_smoothing=0.1)
    assert float(only_loss) > 0 and float(loss) > 0
    assert_type(sk.softmax_vjp(p, np.ones_like(p)), Matrix)
    assert_type(sk.one_hot(labels, 4), Vector)
    values, names = sk.top_k(p, 2, labels=["a", "b", "c", "d"])
    assert values.shape == names.shape == (3, 2)


def torch_calls() -> None:
    t = torch.randn(8, 10)
    probs = sk.softmax(t, temperature=0.5)
    assert_type(probs, torch.Tensor)
    assert_type(sk.log_softmax(t), torch.Tensor)
    loss, grad = sk.cross_entropy(t, torch.zeros(8, dtype=torch.int64), return_grad=True)
    assert_type(grad, torch.Tensor)
    assert_type(sk.log_softmax_vjp(sk.log_softmax(t), torch.ones_like(t)), torch.Tensor)
    assert bool(torch.isfinite(loss).all()) and probs.shape == (8, 10)


def lazily_imported_names() -> None:
    model = sk.SoftmaxRegression(C=1.0)
    X = np.random.default_rng(0).normal(size=(30, 4))
    y = np.arange(30) % 3
    model.fit(X, y)
    temperature = sk.fit_temperature(model.decision_function(X), y)
    assert temperature > 0 and 0 <= sk.ece(model.predict_proba(X), y) <= 1


if __name__ == "__main__":
    numpy_calls()
    torch_calls()
    lazily_imported_names()
