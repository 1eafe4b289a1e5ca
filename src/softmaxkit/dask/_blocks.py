"""What every Dask function here shares: block layout checks, meta arrays, merging partial results.

Partial results of a tree reduction travel as dicts of arrays (as in Dask's own ``mean``): a
dict-valued Dask array is never computed by the user, only read by the next blockwise step.
"""

from __future__ import annotations

from typing import Any

from softmaxkit._arrays import Array, namespace


def rows_whole(x: Array, axes: tuple[int, ...]) -> bool:
    """Whether each block holds whole rows: no reduced axis is split across chunks."""
    return all(len(x.chunks[a]) == 1 for a in axes)


def meta(x: Array, dtype: Any, ndim: int | None = None) -> Any:
    """An empty array of ``x``'s chunk type (NumPy, CuPy, ...): what Dask needs to skip probing."""
    from dask.array.utils import meta_from_array

    return meta_from_array(x, ndim=x.ndim if ndim is None else ndim, dtype=dtype)


def gather(parts: Any, field: str, axes: tuple[int, ...]) -> Array:
    """One field of the partial results handed to a combine step, concatenated along ``axes``.

    With ``concatenate=False`` Dask nests the partial results in one list level per reduced
    axis, in axis order.
    """
    if not isinstance(parts, list):
        return parts[field]
    pieces = [gather(p, field, axes[1:]) for p in parts]
    return namespace(*pieces).concat(pieces, axis=axes[0]) if len(pieces) > 1 else pieces[0]


def field(parts: dict[str, Array], name: str) -> Array:
    return parts[name]
