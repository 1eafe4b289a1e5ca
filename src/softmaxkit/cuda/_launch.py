"""Compile the kernels with NVRTC (once per device and kernel) and launch them on the caller's stream.

Every function takes contiguous CuPy arrays in the ``(rows, n)`` layout and a kernel dtype
name (a key of :data:`softmaxkit.cuda._plan.DTYPES`; bfloat16 arrays arrive as their uint16
bits, CuPy having no bfloat16). Which kernels run is :func:`~softmaxkit.cuda._plan.plan_launch`'s
decision; this module only turns a plan into launches.

Streams and lifetimes: :func:`context` makes the input's device current and its library's
stream CuPy's current stream (torch: ``torch.cuda.current_stream``; CuPy: its own), so the
casts, copies, temporaries and kernels of a call are ordered on the one stream the caller
uses. Both allocators (torch's caching allocator, CuPy's pool) hand a freed block out again
only in stream order on the stream it was allocated on, so a temporary whose last reference
drops while a kernel may still read it is safe. JAX has no stream to join: a JAX input is
made ready first and the stream is synchronised before the result goes back.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from softmaxkit.cuda import _bridge, _nvrtc, _plan

_NULL = np.uint64(0)
"""A null pointer argument (CuPy passes a NumPy scalar by value, 8 bytes)."""
_lock = threading.Lock()


def acc_scalar(dtype: str, value: float) -> np.floating:
    """``value`` in the kernels' accumulator type: double for float64, else float."""
    return np.float64(value) if dtype == "float64" else np.float32(value)


def acc_dtype(dtype: str) -> Any:
    return np.float64 if dtype == "float64" else np.float32


@functools.cache
def _function(device_id: int, file: str, name: str) -> tuple[Any, Any]:
    """(module, function) of the kernel ``name`` compiled for device ``device_id``."""
    import cupy
    from cupy_backends.cuda.api import driver

    capability = int(cupy.cuda.Device(device_id).compute_capability)
    program = _nvrtc.cached_program(file, (name,), _nvrtc.arch_option(capability, _nvrtc.supported_archs()))
    with cupy.cuda.Device(device_id):
        module = cupy.cuda.function.Module()
        module.load(program.image)
        function = module.get_function(program.lowered[name])
    # Opt in to the device's whole shared memory once (the smem strategy may use more than 48 KiB).
    # Not for the sampling kernels: they have no dynamic shared memory, and their static tens of
    # KiB plus this opt-in would exceed the device's limit (the driver refuses the attribute).
    if file != _plan.SAMPLING_SOURCE:
        _, shared = device_limits(device_id)
        driver.funcSetAttribute(function.ptr, driver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                shared - _plan.SMEM_STATIC)
    return module, function


def current_device() -> int:
    import cupy

    return int(cupy.cuda.Device().id)


def address(a: Any) -> int:
    """The device address of a CuPy array."""
    return int(a.data.ptr)


def kernel(file: str, name: str) -> Any:
    """The compiled kernel ``name`` (a name expression) of ``kernels/<file>`` on the current device.

    Called as ``kernel(...)((grid,), (block,), args, shared_mem=bytes)``, as CuPy's kernels.
    """
    device = current_device()
    with _lock:  # one compilation per kernel and device
        return _function(device, file, name)[1]


class _StreamHandle:
    """A raw stream handle in the CUDA stream protocol (``__cuda_stream__``), for CuPy."""

    def __init__(self, handle: int) -> None:
        self.handle = handle

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self.handle)


def external_stream(handle: int) -> Any:
    """A CuPy stream object for a stream that another library owns."""
    import cupy

    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is not None:  # CuPy >= 14 (ExternalStream is deprecated there)
        return from_external(_StreamHandle(handle))
    return cupy.cuda.ExternalStream(handle)


def caller_stream(a: Any) -> int | None:
    """The raw handle of the stream the caller of ``a``'s library works on, or None for CuPy's own."""
    if _bridge.is_torch(a):
        torch = _bridge.torch()
        return int(torch.cuda.current_stream(a.device).cuda_stream)
    return None


@contextlib.contextmanager
def context(a: Any) -> Iterator[None]:
    """Device and stream of the user's array ``a`` for everything done inside (see the module doc)."""
    import cupy

    with contextlib.ExitStack() as stack:
        stack.enter_context(cupy.cuda.Device(_bridge.device_id(a)))
        handle = caller_stream(a)
        if handle is not None:
            stack.enter_context(external_stream(handle))
        yield
        if _bridge.is_jax(a):
            cupy.cuda.get_current_stream().synchronize()


def device_limits(device_id: int) -> tuple[int, int]:
    import cupy

    attributes = cupy.cuda.Device(device_id).attributes
    return attributes["MultiProcessorCount"], attributes.get("MaxSharedMemoryPerBlockOptin", 48 * 1024)


def plan(family: str, dtype: str, rows: int, n: int, arrays: list[Any]) -> _plan.Plan:
    """The launch plan for these arrays on the current device."""
    sm_count, shared = device_limits(current_device())
    aligned = all(a is None or address(a) % _plan.ALIGNMENT == 0 for a in arrays)
    return _plan.plan_launch(family, dtype, rows, n, aligned=aligned, sm_count=sm_count,
                             max_shared_bytes=shared)


def _ptr(a: Any) -> Any:
    return _NULL if a is None else a


def _run(p: _plan.Plan, index: int, grid: int, block: int, args: tuple[Any, ...], shared: int = 0) -> None:
    fn = kernel(_plan.FAMILIES[p.family].source, p.kernels[index])
    fn((grid,), (block,), args, shared_mem=shared)  # on CuPy's current stream: the caller's


def _workspace(p: _plan.Plan, rows: int, per_split: int) -> Any:
    import cupy

    return cupy.empty(rows * p.splits * per_split, dtype=acc_dtype(p.dtype))


def softmax(x: Any, mask: Any, y: Any, dtype: str, temperature: float, log: bool) -> None:
    """softmax or log_softmax of the rows of ``x`` into ``y``; ``mask`` (uint8) may be None."""
    rows, n = x.shape
    p = plan("softmax", dtype, rows, n, [x, y])
    i64, t, log_flag = np.int64, acc_scalar(dtype, temperature), np.int32(log)
    block = p.config.block
    if p.strategy in ("warp", "block", "smem"):
        _run(p, 0, p.grid, block, (x, _ptr(mask), y, i64(rows), i64(n), t, log_flag), p.shared_bytes)
        return
    partials = _workspace(p, rows, 3)
    split = (np.int32(p.splits), i64(p.chunks_per_split))
    _run(p, 0, p.grid, block, (x, _ptr(mask), partials, i64(rows), i64(n), *split, t))
    _run(p, 1, p.grid, block, (x, _ptr(mask), partials, y, i64(rows), i64(n), *split, t, log_flag))


def logsumexp(x: Any, mask: Any, out: Any, dtype: str) -> None:
    """logsumexp of each row of ``x`` into ``out`` (shape ``(rows,)``)."""
    rows, n = x.shape
    p = plan("logsumexp", dtype, rows, n, [x])
    i64 = np.int64
    if p.strategy in ("warp", "block"):
        _run(p, 0, p.grid, p.config.block, (x, _ptr(mask), out, i64(rows), i64(n)))
        return
    partials = _workspace(p, rows, 3)
    _run(p, 0, p.grid, p.config.block, (x, _ptr(mask), partials, i64(rows), i64(n), np.int32(p.splits),
                                        i64(p.chunks_per_split), acc_scalar(dtype, 1.0)))
    _run(p, 1, p.finish_grid, _plan.FINISH_BLOCK, (partials, out, i64(rows), np.int32(p.splits)))


def vjp(first: Any, g: Any, out: Any, dtype: str, log: bool) -> None:
    """softmax_vjp (``first`` = s) or log_softmax_vjp (``first`` = logp) of each row."""
    rows, n = first.shape
    p = plan("vjp", dtype, rows, n, [first, g, out])
    i64, kind = np.int64, np.int32(log)
    if p.strategy in ("warp", "block"):
        _run(p, 0, p.grid, p.config.block, (first, g, out, i64(rows), i64(n), kind))
        return
    partials = _workspace(p, rows, 1)
    split = (np.int32(p.splits), i64(p.chunks_per_split))
    _run(p, 0, p.grid, p.config.block, (first, g, partials, i64(rows), i64(n), *split, kind))
    _run(p, 1, p.grid, p.config.block, (first, g, partials, out, i64(rows), i64(n), *split, kind))


def cross_entropy(
    x: Any, labels: Any, probs: Any, weight: Any, ignore_index: int | None, smoothing: float,
    grad_divisor: float, grad: Any, dtype: str,
) -> Any:
    """Per-row losses (accumulator dtype, shape ``(rows,)``) and, into ``grad`` if given, the gradient.

    ``labels`` (int64, shape ``(rows,)``) or ``probs`` (like ``x``) is the target; ``weight``
    is in the accumulator dtype or None.
    """
    import cupy

    rows, n = x.shape
    p = plan("cross_entropy", dtype, rows, n, [x, probs, grad])
    i64 = np.int64
    target = (
        _ptr(labels), _ptr(probs), _ptr(weight), i64(ignore_index if ignore_index is not None else 0),
        np.int32(ignore_index is not None), acc_scalar(dtype, 1.0 - smoothing),
        acc_scalar(dtype, smoothing / n), np.int32(smoothing != 0.0),
    )
    divisor = acc_scalar(dtype, grad_divisor)
    if p.strategy in ("warp", "block"):
        losses = cupy.empty(rows, dtype=acc_dtype(dtype))
        _run(p, 0, p.grid, p.config.block, (x, *target, divisor, losses, _ptr(grad), i64(rows), i64(n)))
        return losses
    partials = _workspace(p, rows, 4)
    parts = _workspace(p, rows, 1)
    split = (np.int32(p.splits), i64(p.chunks_per_split))
    _run(p, 0, p.grid, p.config.block, (x, *target, partials, i64(rows), i64(n), *split))
    _run(p, 1, p.grid, p.config.block,
         (x, *target, divisor, partials, parts, _ptr(grad), i64(rows), i64(n), *split))
    # Each row's shares added in split order: deterministic.
    return parts.reshape(rows, p.splits).sum(axis=1)


def _sampling_kernel(name: str, dtype: str, n: int) -> tuple[Any, int]:
    block = _plan.sampling_block(n)
    return kernel(_plan.SAMPLING_SOURCE, _plan.sampling_name(name, dtype, block)), block


def sample(x: Any, mask: Any, params: tuple[Any, Any, Any, Any], u: Any, out: Any, status: Any,
           dtype: str, replacement: bool) -> None:
    """Draw ``out.shape[1]`` indices per row of ``x`` into ``out`` (int64), one uniform of ``u``
    (float64, like ``out``) per draw; ``params`` the per-row ``(1 / T, top_k, top_p, min_p)``
    (float64, int64, float64, float64); each row's status code into ``status`` (int8)."""
    rows, n = x.shape
    fn, block = _sampling_kernel("sk_sample_rows", dtype, n)
    i64 = np.int64
    fn((rows,), (block,), (x, _ptr(mask), *params, u, out, status, i64(rows), i64(n), i64(out.shape[1]),
                           np.int32(replacement)))


def sample_filter(x: Any, mask: Any, params: tuple[Any, Any, Any, Any], keep: Any, status: Any,
                  dtype: str) -> None:
    """The kept set of each row of ``x`` as 0/1 bytes into ``keep`` (uint8, like ``x``)."""
    rows, n = x.shape
    fn, block = _sampling_kernel("sk_filter_rows", dtype, n)
    fn((rows,), (block,), (x, _ptr(mask), *params, keep, status, np.int64(rows), np.int64(n)))
