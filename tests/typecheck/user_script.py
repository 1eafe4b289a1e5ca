"""softmaxkit as a user's code calls it, for the type checker (``python -m mypy``, see .ci/run).

Each ``assert_type`` says what a call is declared to return, exactly (``Any`` fails too); mypy
fails if the signatures stop saying it. ``main()`` runs the same calls, so tests/test_typing.py
checks that the declarations are true at run time too. ``_misuses`` is never run: each of its
lines is an error the signatures must catch, and mypy's ``warn_unused_ignores`` fails the check
as soon as one of them stops being an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from typing_extensions import assert_type  # typing's from Python 3.11

import softmaxkit as sk
from softmaxkit.labels import LabelIndex

NumPyArray = np.ndarray[tuple[Any, ...], np.dtype[Any]]  # what NumPy input is declared to give
NumPyValue = NumPyArray | np.generic  # ... and a reduction of it (0-d: a NumPy scalar)


def numpy_calls() -> None:
    logits: NDArray[np.float64] = np.array([[3.2, 1.3, 0.2], [0.1, 2.0, 0.3]])
    labels = np.array([0, 1])
    probs = assert_type(sk.softmax(logits, axis=1), NumPyArray)
    from_list = assert_type(sk.log_softmax([1.0, 2.0, 3.0], temperature=2.0, engine="generic"), NumPyArray)
    from_ints = assert_type(sk.softmax(np.arange(3)), NumPyArray)  # not an int64 array: floats
    assert isinstance(probs, np.ndarray) and isinstance(from_list, np.ndarray)
    assert from_ints.dtype == np.float64

    loss = assert_type(sk.cross_entropy(logits, labels, reduction="sum"), NumPyValue)
    assert isinstance(loss, np.ndarray | np.generic) and float(loss) > 0
    pair = assert_type(sk.cross_entropy(logits, labels, return_grad=True), tuple[NumPyValue, NumPyArray])
    loss, grad = pair
    assert isinstance(grad, np.ndarray) and grad.shape == logits.shape and float(loss) > 0

    value, sign = assert_type(sk.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True),
                              tuple[NumPyValue, NumPyValue])
    assert float(sign) == -1.0 and np.isfinite(value)
    total = assert_type(sk.logsumexp(logits, axis=1, keepdims=True), NumPyValue)
    assert total.shape == (2, 1)

    values, names = assert_type(sk.top_k(probs, 2, labels=["cat", "dog", "tiger"]),
                                tuple[NumPyArray, NumPyArray])
    assert isinstance(values, np.ndarray) and names.tolist() == [["cat", "dog"], ["dog", "tiger"]]
    assert sk.predict(logits, labels=np.array(["cat", "dog", "tiger"])).tolist() == ["cat", "dog"]
    jacobian = assert_type(sk.softmax_jacobian(logits), NumPyArray)
    vjp = assert_type(sk.softmax_vjp(probs, np.ones_like(probs), axis=1), NumPyArray)
    assert jacobian.shape == (2, 3, 3) and np.allclose(vjp, 0.0)
    assert assert_type(sk.one_hot([0, 2]), NumPyArray).shape == (2, 3)
    assert sk.sigmoid(logits)[0].shape == (3,)


def torch_calls() -> None:
    logits = torch.tensor([[3.2, 1.3, 0.2], [0.1, 2.0, 0.3]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    probs = assert_type(sk.softmax(logits, axis=1, engine="generic"), torch.Tensor)
    loss, grad = assert_type(sk.cross_entropy(logits, labels, return_grad=True),
                             tuple[torch.Tensor, torch.Tensor])
    value, sign = assert_type(sk.logsumexp(logits, axis=1, return_sign=True),
                              tuple[torch.Tensor, torch.Tensor])
    per_sample = assert_type(sk.cross_entropy(logits, labels, reduction="none"), torch.Tensor)
    indices = assert_type(sk.predict(logits), torch.Tensor)
    values, positions = assert_type(sk.top_k(probs, 1), tuple[torch.Tensor, torch.Tensor])
    backward = assert_type(sk.log_softmax_vjp(sk.log_softmax(logits), torch.ones_like(logits)), torch.Tensor)
    results = (probs, loss, grad, value, sign, per_sample, indices, values, positions, backward)
    assert all(isinstance(r, torch.Tensor) for r in results)
    assert per_sample.shape == (2,) and indices.tolist() == [0, 1] and positions.shape == (2, 1)


def lazy_names() -> None:
    """The names imported on first use have their real types."""
    x = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    y = np.array([0, 1, 0, 0])
    model = assert_type(sk.SoftmaxRegression(C=1.0).fit(x, y), sk.SoftmaxRegression)
    predicted = assert_type(model.predict(x), np.ndarray)
    t = assert_type(sk.fit_temperature(x, y), float)
    error = assert_type(sk.ece(sk.softmax(x / t), y), float)
    index = assert_type(sk.LabelIndex(["cat", "dog"]), LabelIndex)
    assert predicted.shape == (4,) and t > 0 and 0 <= error <= 1 and len(index) == 2


def flag_from_a_variable(flag: bool) -> None:
    """A flag known only at run time: the result is the loss or the pair (declared Any)."""
    result = sk.cross_entropy([[1.0, 2.0]], [1], return_grad=flag)
    assert isinstance(result, tuple) == flag


def _misuses(logits: NDArray[np.float64], labels: NDArray[np.int64], t: torch.Tensor) -> None:
    _pair_as_loss: np.ndarray | np.generic = sk.cross_entropy(logits, labels, return_grad=True)  # type: ignore[assignment]
    _value_as_pair, _ = sk.logsumexp(logits, return_sign=False)  # type: ignore[misc]
    sk.cross_entropy(logits, labels, reduction="average")  # type: ignore[call-overload]
    sk.softmax(logits, engine="fastest")  # type: ignore[call-overload]
    _numpy_from_torch: np.ndarray = sk.softmax(t)  # type: ignore[arg-type]
    sk.SoftmaxRegression(C=1.0).fit(logits)  # type: ignore[call-arg]


def main() -> None:
    numpy_calls()
    torch_calls()
    lazy_names()
    flag_from_a_variable(True)
    flag_from_a_variable(False)


if __name__ == "__main__":
    main()
