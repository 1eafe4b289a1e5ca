"""From probabilities to decisions and back: one-hot codes, argmax, top-k."""

from __future__ import annotations

from typing import Any

import numpy as np

from softmaxkit._arrays import Array, device_of, namespace


def one_hot(labels: Array, num_classes: int, *, dtype: Any) -> Array:
    """``labels`` (integers in ``[0, num_classes)``) as one-hot rows along a new last axis."""
    xp = namespace(labels)
    classes = xp.arange(num_classes, device=device_of(labels))
    return xp.astype(labels[..., None] == classes, dtype)


def predict(x: Array, axis: int) -> Array:
    """The index of the largest entry along ``axis`` (the first one on ties)."""
    xp = namespace(x)
    return xp.argmax(x, axis=axis)


def top_k(x: Array, k: int, axis: int) -> tuple[Array, Array]:
    """The ``k`` largest entries along ``axis``, largest first, and their indices.

    The sort is stable, so equal values keep the order of their indices.
    """
    xp = namespace(x)
    order = xp.argsort(x, axis=axis, descending=True, stable=True)
    values = xp.sort(x, axis=axis, descending=True, stable=True)
    picks = tuple(slice(0, k) if d == axis else slice(None) for d in range(x.ndim))
    return values[picks], order[picks]


def names_of(indices: Array, labels: Any) -> np.ndarray:
    """Class names for class indices: ``labels[indices]`` as a NumPy array (names may be strings)."""
    return np.asarray(labels)[np.asarray(indices)]
