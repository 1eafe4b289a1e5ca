"""The types of the public signatures, for type checkers and readers: what goes in, what comes out.

Every function returns an array of the library it was given (SPEC §2), which a ``TypeVar`` says:
``softmax(t)`` with a ``torch.Tensor`` ``t`` is a ``torch.Tensor``. NumPy is the exception
twice over: lists and Python numbers come back as NumPy arrays, and a NumPy array's declared
dtype is not kept (integers give floats, ``dtype=`` converts), so NumPy input is declared to give
``NDArray[Any]`` — and a full NumPy reduction may give a NumPy scalar, as NumPy itself does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["ArrayObject", "ArrayT", "EngineName", "NumPyInput", "NumPyValue", "Reduction"]


class ArrayObject(Protocol):
    """An array of any library: it has a shape and a dtype (PyTorch, JAX, Dask, CuPy, ...)."""

    @property
    def shape(self) -> Any: ...  # Dask shapes may hold NaN, torch's is a torch.Size

    @property
    def dtype(self) -> Any: ...


ArrayT = TypeVar("ArrayT", bound=ArrayObject)

# What is computed as NumPy: NumPy arrays and scalars, (nested) lists and tuples, Python numbers.
# Listed before the ArrayT overloads, so NumPy input matches here first.
NumPyInput = np.ndarray | np.generic | Sequence[Any] | complex

# A NumPy reduction to 0-d can give a NumPy scalar (np.float64), which behaves as a 0-d array.
NumPyValue = NDArray[Any] | np.generic

Reduction = Literal["mean", "sum", "none"]

# The registry's names (engine_names()) and the aliases it accepts; a test keeps them equal.
EngineName = Literal["generic", "numba", "cuda", "cupy", "dask"]
