"""GPU arrays in and out of the CUDA engine: CuPy as is, PyTorch and JAX through DLPack.

DLPack shares the device memory (zero-copy) and synchronises the producer's stream with the
consumer's (the protocol's ``stream`` argument). CuPy has no bfloat16, so bfloat16 tensors
cross as their 16-bit patterns (int16) and are viewed back on return.

Nothing here imports a backend unless the user's array is of that backend: the registry's
:func:`is_gpu_array` only looks at ``sys.modules`` (through array-api-compat) and attributes.
"""

from __future__ import annotations

import importlib
from typing import Any

import array_api_compat as compat
import numpy as np

BITS_DTYPE = "int16"
"""How a bfloat16 array is carried through CuPy."""


def is_gpu_array(x: Any) -> bool:
    """CuPy arrays, torch CUDA tensors, JAX arrays on GPUs (JAX tracers are not: no memory)."""
    if compat.is_cupy_array(x):
        return True
    if compat.is_torch_array(x):
        return bool(getattr(x, "is_cuda", False))
    if compat.is_jax_array(x):
        try:
            devices = x.devices()
        except (AttributeError, TypeError, RuntimeError):  # tracers raise a TypeError subclass
            return False
        return bool(devices) and all(d.platform in ("gpu", "cuda") for d in devices)
    return False


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for NumPy's, CuPy's, torch's or JAX's float32 (and likewise for every dtype)."""
    if isinstance(dtype, type):  # scalar types: numpy.float32 (also cupy.float32), jax.numpy.float32
        return np.dtype(dtype).name
    return str(dtype).rsplit(".", 1)[-1]


def is_torch(a: Any) -> bool:
    return bool(compat.is_torch_array(a))


def is_jax(a: Any) -> bool:
    return bool(compat.is_jax_array(a))


def torch() -> Any:
    return importlib.import_module("torch")


def device_id(a: Any) -> int:
    """The CUDA device ordinal holding the GPU array ``a``."""
    if is_torch(a):
        return int(a.device.index if a.device.index is not None else torch().cuda.current_device())
    if is_jax(a):
        return int(next(iter(a.devices())).id)
    return int(a.device.id)


def to_device_of(a: Any, like: Any) -> Any:
    """``a`` (a mask, target, weight, cotangent) on ``like``'s GPU in ``like``'s library.

    GPU arrays pass as they are; host arrays (NumPy, torch CPU tensors, ...) are copied to
    the device of ``like`` (inside :func:`softmaxkit.cuda._launch.context`: its stream).
    """
    if a is None or is_gpu_array(a):
        return a
    host = np.asarray(a.detach().cpu().numpy() if is_torch(a) else a)
    if is_torch(like):
        return torch().as_tensor(host, device=like.device)
    if is_jax(like):
        jax = importlib.import_module("jax")
        return jax.device_put(host, next(iter(like.devices())))
    return importlib.import_module("cupy").asarray(host)


def to_cupy(a: Any) -> Any:
    """A CuPy view of ``a``'s memory (bfloat16 as int16 bits); CuPy arrays are returned as is.

    Host arrays are copied to the current device.
    """
    import cupy

    if compat.is_cupy_array(a):
        return a
    if not is_gpu_array(a):
        return cupy.asarray(np.asarray(a.detach().cpu().numpy() if is_torch(a) else a))
    if is_jax(a):
        a.block_until_ready()  # JAX has no stream for CuPy to wait on
    if compat.is_torch_array(a):
        a = a.detach()  # DLPack refuses tensors that require grad; results carry no graph
    if dtype_name(a.dtype) == "bfloat16":
        if compat.is_torch_array(a):
            a = a.view(importlib.import_module("torch").int16)
        else:
            jax = importlib.import_module("jax")
            a = jax.lax.bitcast_convert_type(a, jax.numpy.int16)
    return cupy.from_dlpack(a)


def from_cupy(y: Any, like: Any, dtype: str) -> Any:
    """``y`` as an array of ``like``'s library; ``dtype`` is its logical dtype (bfloat16 for bits)."""
    if compat.is_cupy_array(like):
        return y
    if compat.is_torch_array(like):
        torch = importlib.import_module("torch")
        t = torch.from_dlpack(y)
        return t.view(torch.bfloat16) if dtype == "bfloat16" else t
    jax = importlib.import_module("jax")
    r = jax.dlpack.from_dlpack(y)
    return jax.lax.bitcast_convert_type(r, jax.numpy.bfloat16) if dtype == "bfloat16" else r


def library_dtype(like: Any, name: str) -> Any:
    """The dtype called ``name`` in ``like``'s library (torch.bfloat16, jax.numpy.float16, ...)."""
    if compat.is_torch_array(like):
        return getattr(importlib.import_module("torch"), name)
    if compat.is_jax_array(like):
        return getattr(importlib.import_module("jax.numpy"), name)
    return np.dtype(name)  # CuPy's dtypes are NumPy's


def storage_dtype(dtype: str) -> str:
    """The CuPy dtype that holds arrays of the kernel dtype ``dtype``."""
    return BITS_DTYPE if dtype == "bfloat16" else dtype
