"""Class labels of any kind (strings, integers, ...) to class indices ``0..K-1`` and back."""

from __future__ import annotations

from typing import Any

import numpy as np

from softmaxkit._api import one_hot

_SHOWN = 5  # how many offending labels an error message names


class LabelIndex:
    """A fixed, ordered set of class labels with the mapping to class indices in both directions.

    Class ``i`` is ``classes[i]``. Softmax outputs, ``cross_entropy`` targets and one-hot codes
    work with indices; ``encode`` turns the labels users have into indices, ``decode`` turns
    predicted indices back into labels.

    Parameters
    ----------
    classes : 1-D array-like
        The labels, each once, in the order of the class indices.

    Attributes
    ----------
    classes : numpy.ndarray
        The labels, as given.

    Examples
    --------
    >>> from softmaxkit import LabelIndex
    >>> index = LabelIndex.from_labels(["dog", "cat", "dog", "tiger"])
    >>> index.classes
    array(['cat', 'dog', 'tiger'], dtype='<U5')
    >>> index.encode(["tiger", "cat"])
    array([2, 0])
    >>> index.decode([1, 1, 0])
    array(['dog', 'dog', 'cat'], dtype='<U5')
    >>> index.encode(["cow"])
    Traceback (most recent call last):
    ...
    ValueError: unknown label 'cow'; the 3 classes are 'cat', 'dog', 'tiger'
    """

    def __init__(self, classes: Any) -> None:
        classes = np.asarray(classes)
        if classes.ndim != 1:
            raise ValueError(f"LabelIndex: classes must be 1-D, got shape {classes.shape}")
        try:
            self._order = np.argsort(classes, kind="stable")
        except TypeError as exc:
            raise TypeError(f"LabelIndex: class labels must be mutually comparable ({exc})") from exc
        self._sorted = classes[self._order]
        repeated = self._sorted[1:][self._sorted[1:] == self._sorted[:-1]]
        if repeated.size:
            raise ValueError(f"LabelIndex: classes must be distinct; repeated: "
                             f"{_listing(np.unique(repeated))}")
        self.classes = classes

    @classmethod
    def from_labels(cls, labels: Any) -> LabelIndex:
        """The index of the distinct labels in ``labels``, sorted (as ``numpy.unique`` sorts them).

        Examples
        --------
        >>> from softmaxkit import LabelIndex
        >>> LabelIndex.from_labels([3, 1, 3, 7])
        LabelIndex([1, 3, 7])
        """
        labels = np.asarray(labels)
        try:
            return cls(np.unique(labels))
        except TypeError as exc:
            raise TypeError(f"LabelIndex: labels must be mutually comparable ({exc})") from exc

    def __len__(self) -> int:
        return int(self.classes.shape[0])

    def __repr__(self) -> str:
        return f"LabelIndex({self.classes.tolist()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelIndex):
            return NotImplemented
        return len(self) == len(other) and bool(np.all(self.classes == other.classes))

    __hash__ = None  # type: ignore[assignment]  # mutable NumPy contents: equal but unhashable

    def encode(self, labels: Any) -> np.ndarray:
        """The class index of each label (any shape); ``ValueError`` names labels not in the index.

        Examples
        --------
        >>> from softmaxkit import LabelIndex
        >>> LabelIndex(["b", "a"]).encode([["a", "b"], ["b", "b"]])
        array([[1, 0],
               [0, 0]])
        """
        labels = np.asarray(labels)
        if not len(self):
            found = np.zeros(labels.shape, dtype=bool)
            position = np.zeros(labels.shape, dtype=np.intp)
        else:
            try:
                position = np.minimum(np.searchsorted(self._sorted, labels), len(self) - 1)
            except TypeError as exc:
                raise ValueError(f"unknown labels of type {labels.dtype}; the {len(self)} classes "
                                 f"are {_listing(self.classes)}") from exc
            found = self._sorted[position] == labels
        if not np.all(found):
            unknown = np.unique(labels[~found])
            noun = "label" if unknown.size == 1 else "labels"
            raise ValueError(f"unknown {noun} {_listing(unknown)}; the {len(self)} classes are "
                             f"{_listing(self.classes)}")
        return self._order[position]

    def decode(self, indices: Any) -> np.ndarray:
        """The label of each class index (any shape); ``ValueError`` for indices out of range.

        Examples
        --------
        >>> from softmaxkit import LabelIndex
        >>> LabelIndex(["cat", "dog"]).decode([[0], [1]])
        array([['cat'],
               ['dog']], dtype='<U3')
        """
        indices = np.asarray(indices)
        if not (np.issubdtype(indices.dtype, np.integer) or indices.size == 0):
            raise TypeError(f"decode: class indices must be integers, got {indices.dtype}")
        indices = indices.astype(np.intp, copy=False)
        bad = (indices < 0) | (indices >= len(self))
        if np.any(bad):
            raise ValueError(f"decode: class index {int(indices[bad][0])} is out of range for "
                             f"{len(self)} classes")
        return self.classes[indices]

    def one_hot(self, labels: Any, *, dtype: Any = float) -> np.ndarray:
        """One-hot rows (a new last axis of length ``len(self)``) for the labels.

        Examples
        --------
        >>> from softmaxkit import LabelIndex
        >>> LabelIndex(["cat", "dog", "tiger"]).one_hot(["dog", "cat"])
        array([[0., 1., 0.],
               [1., 0., 0.]])
        """
        return one_hot(self.encode(labels), len(self), dtype=dtype)


def _listing(values: np.ndarray) -> str:
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:_SHOWN])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOWN else "")
