"""softmaxkit as a user's code calls it, for the type checker (``python -m mypy``, see .ci/run).

Each declared variable below says what the call is declared to return; mypy fails if the
signatures stop saying it. ``main()`` runs the same calls, so tests/test_typing.py checks that
the declarations are true at run time too. ``_misuses`` is never run: each of its lines is an
error the signatures must catch, and mypy's ``warn_unused_ignores`` fails the check as soon as
one of them stops being an error.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

import softmaxkit as sk
from softmaxkit.labels import LabelIndex


def numpy_calls() -> None:
    logits: NDArray[np.float64] = np.array([[3.2, 1.3, 0.2], [0.1, 2.0, 0.3]])
    labels = np.array([0, 1])
    probs: np.ndarray = sk.softmax(logits, axis=1)
    assert isinstance(probs, np.ndarray)
    from_list: np.ndarray = sk.log_softmax([1.0, 2.0, 3.0], temperature=2.0, engine="generic")
    assert isinstance(from_list, np.ndarray)

    loss = sk.cross_entropy(logits, labels, reduction="sum")
    assert float(loss) > 0
    loss, grad = sk.cross_entropy(logits, labels, return_grad=True)
    grad_shape: tuple[int, ...] = grad.shape
    assert grad_shape == logits.shape and float(loss) > 0

    value, sign = sk.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    assert float(sign) == -1.0 and np.isfinite(value)
    total = sk.logsumexp(logits, axis=1, keepdims=True)
    assert total.shape == (2, 1)

    values, names = sk.top_k(probs, 2, labels=["cat", "dog", "tiger"])
    assert isinstance(values, np.ndarray) and names.tolist() == [["cat", "dog"], ["dog", "tiger"]]
    assert sk.predict(logits, labels=np.array(["cat", "dog", "tiger"])).tolist() == ["cat", "dog"]
    jacobian: np.ndarray = sk.softmax_jacobian(logits)
    vjp = sk.softmax_vjp(probs, np.ones_like(probs), axis=1)
    assert jacobian.shape == (2, 3, 3) and np.allclose(vjp, 0.0)
    assert sk.one_hot([0, 2]).shape == (2, 3)
    assert sk.sigmoid(logits)[0].shape == (3,)


def torch_calls() -> None:
    logits = torch.tensor([[3.2, 1.3, 0.2], [0.1, 2.0, 0.3]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    probs: torch.Tensor = sk.softmax(logits, axis=1, engine="generic")
    assert isinstance(probs, torch.Tensor)
    loss, grad = sk.cross_entropy(logits, labels, return_grad=True)
    first: torch.Tensor = loss
    second: torch.Tensor = grad
    assert isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)
    value, sign = sk.logsumexp(logits, axis=1, return_sign=True)
    assert isinstance(value, torch.Tensor) and isinstance(sign, torch.Tensor)
    per_sample: torch.Tensor = sk.cross_entropy(logits, labels, reduction="none")
    indices: torch.Tensor = sk.predict(logits)
    values, positions = sk.top_k(probs, 1)
    assert per_sample.shape == (2,) and indices.tolist() == [0, 1] and positions.shape == (2, 1)
    assert isinstance(values, torch.Tensor)
    backward: torch.Tensor = sk.log_softmax_vjp(sk.log_softmax(logits), torch.ones_like(logits))
    assert backward.shape == logits.shape


def lazy_names() -> None:
    """The names imported on first use have their real types."""
    x = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    y = np.array([0, 1, 0, 0])
    model = sk.SoftmaxRegression(C=1.0).fit(x, y)
    predicted: np.ndarray = model.predict(x)
    t: float = sk.fit_temperature(x, y)
    error: float = sk.ece(sk.softmax(x / t), y)
    index: LabelIndex = sk.LabelIndex(["cat", "dog"])
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
