"""The types of the public signatures, for type checkers and readers: what goes in, what comes out.

Every function returns an array of the library it was given (SPEC §2), which a ``TypeVar`` says:
``softmax(t)`` with a ``torch.Tensor`` ``t`` is a ``torch.Tensor``. NumPy is the exception
twice over: lists and Python numbers come back as NumPy arrays, and a NumPy array's declared
dtype is not kept (integers give floats, ``dtype=`` converts), so NumPy input is declared to give
``NDArray[Any]`` — or, for reductions, ``NDArray[Any] | np.generic``: NumPy's 0-d results
are often NumPy scalars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ArrayLike", "ArrayObject", "ArrayT", "Axis", "ClassNames", "EngineName", "NumPyInput", "NumPyValue",
    "Reduction",
]


class ArrayObject(Protocol):
    """An array of any library: it has a shape and a dtype (PyTorch, JAX, Dask, CuPy, ...)."""

    @property
    def shape(self) -> Any: ...  # Dask shapes may hold NaN, torch's is a torch.Size

    @property
    def ndim(self) -> int: ...

    @property
    def dtype(self) -> Any: ...


ArrayT = TypeVar("ArrayT", bound=ArrayObject)

# Python numbers and (nested) lists and tuples of them: computed as NumPy arrays.
ArrayLike = complex | Sequence[Any]

# What is computed as NumPy and declared to give NumPy arrays: NumPy arrays and scalars too.
# The overloads list it before ArrayT, so a NumPy array matches here first.
NumPyInput = np.ndarray | np.generic | ArrayLike

# Reductions of NumPy input (logsumexp, the loss, predict) often end at 0-d, where NumPy gives a
# NumPy scalar (np.float64): said here, so a checker asks before indexing. Elementwise functions
# give a scalar only for 0-d input; they are declared NDArray, since a union would make every
# indexing of their result an error (a scalar has a 0-d array's shape, dtype and float()).
NumPyValue = NDArray[Any] | np.generic

# One name per class (predict, top_k): a list, a tuple or a NumPy array of names.
ClassNames = Sequence[Any] | NDArray[Any]

# An axis, a tuple of axes, or None for all of them.
Axis = int | Sequence[int] | None

Reduction = Literal["mean", "sum", "none"]

# The registry's names (engine_names()) and the aliases it accepts; a test keeps them equal.
EngineName = Literal["generic", "numba", "cuda", "cupy", "dask"]
