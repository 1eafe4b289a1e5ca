"""Row sums whose error does not grow with the row (SPEC §2), on any array library.

NumPy sums pairwise only along a contiguous axis: along a strided one (a softmax over axis 0,
or any array-api-strict array, whose layout is hidden) it adds sequentially, and a float32
row of 4 million entries lost 3 digits (issue 13). PyTorch and JAX reduce in trees (cascade
sums) whatever the layout. Elsewhere the row is summed pairwise here, by halving it: the
first half plus the second, until a short row is left. Each entry then passes through about
``log2(n)`` additions, and the work is one elementwise add over the row in total.
"""

from __future__ import annotations

from typing import Any

from softmaxkit._arrays import Array

_LEAF = 16
"""Rows this short are summed by the library as they are."""


def _sums_in_trees(xp: Any, a: Array) -> bool:
    """Whether the library's own sum along axis 1 of the 2-d ``a`` is pairwise already."""
    import array_api_compat

    if array_api_compat.is_numpy_array(a):
        return a.shape[1] <= _LEAF or a.strides[1] == a.itemsize
    return bool(array_api_compat.is_torch_array(a) or array_api_compat.is_jax_array(a))


def row_sums(xp: Any, a: Array, *, keepdims: bool = False) -> Array:
    """``sum(a, axis=1)`` of a 2-d array, with an error of ``O(log n)`` roundings per row."""
    if not _sums_in_trees(xp, a):
        while a.shape[1] > _LEAF:
            n = a.shape[1]
            half = n // 2
            paired = a[:, :half] + a[:, half:2 * half]
            a = paired if n % 2 == 0 else xp.concat([paired, a[:, 2 * half:]], axis=1)
    return xp.sum(a, axis=1, keepdims=keepdims)
