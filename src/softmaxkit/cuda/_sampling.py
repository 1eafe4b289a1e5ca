"""``sk.sample`` and the sampling masks on GPU arrays: the kernels of ``kernels/sampling.cu``.

:mod:`softmaxkit.sampling` checks the arguments, turns the filters into per-row parameters
(:class:`~softmaxkit.sampling._params.RowParams`) and draws the uniforms from the caller's
``rng`` exactly as for the other engines, so the same seed and the same uniforms give the
same indices as the Numba kernels. This module only moves the rows, parameters and uniforms
to the device (inside :func:`softmaxkit.cuda._launch.context`: the input's device and the
caller's stream), launches, and returns the result in the input's library with the rows'
status codes on the host. CuPy is imported inside the functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from softmaxkit._arrays import Array, namespace
from softmaxkit.cuda import _bridge, _launch, _mask_rows
from softmaxkit.cuda import _rows as rows_of
from softmaxkit.sampling._params import RowParams, as_host


def _per_row(params: RowParams) -> tuple[Any, Any, Any, Any]:
    import cupy

    return (cupy.asarray(params.inv_t, dtype=cupy.float64), cupy.asarray(params.top_k, dtype=cupy.int64),
            cupy.asarray(params.top_p, dtype=cupy.float64), cupy.asarray(params.min_p, dtype=cupy.float64))


def _uniforms(u: Any) -> Any:
    """The uniforms (NumPy, or the rng's library on any device) as float64 on the current device."""
    import cupy

    device = _bridge.to_cupy(u) if _bridge.is_gpu_array(u) else cupy.asarray(as_host(u))
    return cupy.ascontiguousarray(device.astype(cupy.float64, copy=False))


def sample(x: Array, axis: int, where: Array | None, params: RowParams, u: Any, replacement: bool,
           index_dtype: str) -> tuple[Array, np.ndarray]:
    """``u.shape[1]`` draws per row along ``axis`` (an array of ``x``'s library, ``index_dtype``)
    and each row's status code (NumPy int8)."""
    import cupy

    kd = _bridge.dtype_name(x.dtype)
    count = int(u.shape[1])
    batch = tuple(int(s) for d, s in enumerate(x.shape) if d != axis)
    rows = math.prod(batch)
    with _launch.context(x):
        out = cupy.zeros((rows, count), dtype=cupy.int64)
        status = cupy.zeros(rows, dtype=cupy.int8)
        if rows and x.shape[axis]:
            xr, _ = rows_of(x, (axis,), kd)
            _launch.sample(xr, _mask_rows(where, (axis,)), _per_row(params), _uniforms(u), out, status, kd,
                           replacement)
        picks = cupy.moveaxis(out.reshape(*batch, count), -1, axis).astype(index_dtype)
        return _bridge.from_cupy(picks, x, index_dtype), cupy.asnumpy(status)


def filter_rows(x: Array, axis: int, where: Array | None, params: RowParams) -> tuple[Array, np.ndarray]:
    """The kept set as a boolean array of ``x``'s shape and library, and each row's status code."""
    import cupy

    kd = _bridge.dtype_name(x.dtype)
    with _launch.context(x):
        xr, restore = rows_of(x, (axis,), kd)
        keep = cupy.zeros(xr.shape, dtype=cupy.uint8)
        status = cupy.zeros(xr.shape[0], dtype=cupy.int8)
        if keep.size:
            _launch.sample_filter(xr, _mask_rows(where, (axis,)), _per_row(params), keep, status, kd)
        kept = _bridge.from_cupy(restore(keep), x, "uint8")
        return namespace(x).astype(kept, namespace(x).bool), cupy.asnumpy(status)
