"""From a user's NumPy array to the C-contiguous layouts the kernels take, and back.

A reduction over consecutive axes of a C-contiguous array is a reduction over the middle axis
of an ``(outer, n, inner)`` view: no copy. Transposed inputs are first viewed in their memory
order (also no copy). Only inputs whose memory order does not allow it (non-consecutive axes,
strided or negatively strided views, byte-swapped or half-precision data) are copied once
into the compute dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from softmaxkit._rules import store
from softmaxkit.numba._half import convert


@dataclass(frozen=True)
class Layout:
    """``x`` as ``(outer, n, inner)`` in the compute dtype, and the permutation to undo."""

    data: np.ndarray
    shape3: tuple[int, int, int]
    perm: tuple[int, ...]
    """``data`` (before reshaping) is ``x.transpose(perm)``."""

    def view3(self, a: np.ndarray) -> np.ndarray:
        return a.reshape(self.shape3)

    def restore(self, result: np.ndarray) -> np.ndarray:
        """A C-contiguous result of ``data``'s shape, in the user's axis order (a view)."""
        if self.perm == tuple(range(len(self.perm))):
            return result
        return result.transpose(tuple(int(i) for i in np.argsort(self.perm)))

    def out_view(self, out: np.ndarray | None) -> np.ndarray | None:
        """``out`` in the kernels' layout when it can be written directly, else None."""
        if out is None or out.dtype != self.data.dtype:
            return None
        view = out.transpose(self.perm)
        if not view.flags.c_contiguous:
            return None
        if np.may_share_memory(view, self.data) and not _same_memory(view, self.data):
            return None  # partial overlap: the kernels would read what they already wrote
        return view


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and a.strides == b.strides


def memory_order(x: np.ndarray) -> tuple[int, ...]:
    """The axes of ``x`` by decreasing stride: ``x.transpose(order)`` is C-contiguous if possible."""
    return tuple(sorted(range(x.ndim), key=lambda d: -abs(x.strides[d])))


def layout(x: np.ndarray, axes: tuple[int, ...], dtype: np.dtype, *, last: bool = False) -> Layout:
    """``x`` as ``(outer, n, inner)`` over ``axes`` in ``dtype``; ``last=True`` forces ``inner == 1``."""
    perm = tuple(range(x.ndim))
    if not x.flags.c_contiguous:
        order = memory_order(x)
        if x.transpose(order).flags.c_contiguous:
            perm = order
    pos = sorted(perm.index(a) for a in axes)
    consecutive = not pos or pos[-1] - pos[0] + 1 == len(pos)
    if not consecutive or (last and pos and pos[-1] != x.ndim - 1):
        kept = [p for p in perm if p not in axes]
        perm = (*kept, *axes)
        pos = list(range(len(kept), x.ndim))
    data = convert(x.transpose(perm), dtype)  # astype(order="C"): keeps 0-d arrays 0-d
    shape = data.shape
    lo, hi = (pos[0], pos[-1] + 1) if pos else (x.ndim, x.ndim)
    shape3 = (math.prod(shape[:lo]), math.prod(shape[lo:hi]), math.prod(shape[hi:]))
    return Layout(data, shape3, perm)


def deliver(result: np.ndarray, dtype: np.dtype, out: np.ndarray | None) -> np.ndarray:
    """``result`` in ``dtype``, stored into ``out`` (cast to its dtype) when given: the rule of
    :func:`softmaxkit._rules.store`, with half types converted by the kernels of ``_half``.

    A result already in ``dtype`` is returned as it is, in the memory order of the input it was
    computed from (:meth:`Layout.restore` gives a transposed view for a transposed input), as
    NumPy's elementwise functions do: made C-contiguous it cost a transposed copy (the gradient
    of 1,024 x 8,192 float32 logits with classes on axis 0 of a transposed tensor: 28 ms, busy machine).
    """
    if result.dtype != dtype:
        result = convert(result, dtype)
    if out is not None and out.dtype == result.dtype:
        out[...] = result
        return out
    return store(np, result, out, cast=convert)
