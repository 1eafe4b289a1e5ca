"""The types of the public signatures.

An array of any library goes in and an array of the same library comes out: the public
functions are generic in ``ArrayT``, bound to what every array library's array has (a shape, a
number of dimensions, a dtype), so that ``sk.softmax(tensor)`` is a ``torch.Tensor`` to a type
checker. Python numbers and (nested) lists are taken as NumPy arrays (``ArrayLike`` in, NumPy
out). Reductions (``logsumexp``, the ``"mean"`` and ``"sum"`` of ``cross_entropy``) are typed
``Any``: on NumPy a full reduction gives a NumPy scalar, as SciPy's and ``np.sum`` do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, TypeVar


class ArrayObject(Protocol):
    """What every array library's array has (NumPy, CuPy, PyTorch, JAX, Dask, ...)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def ndim(self) -> int: ...

    @property
    def dtype(self) -> Any: ...


ArrayT = TypeVar("ArrayT", bound=ArrayObject)
"""An array of some library: the result is an array of the same library."""

ArrayLike = float | complex | Sequence[Any]
"""Python numbers and (nested) sequences of them: computed as NumPy arrays."""

Axis = int | Sequence[int] | None
"""An axis, a tuple of axes, or ``None`` for all of them."""

EngineName = Literal["generic", "numba", "cuda", "dask", "cupy"]
"""The registry's engines (``"cupy"``: the CUDA engine's former name, still accepted)."""

Reduction = Literal["mean", "sum", "none"]
"""``cross_entropy``'s reductions."""
