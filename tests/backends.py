"""The array libraries every function is checked on, and conversions to and from them.

``Backend.X.asarray(np_array)`` builds an input of that library; ``to_numpy(result)`` brings
any result back for comparison; ``same_library`` checks the result's array type.
"""

from __future__ import annotations

import enum
import importlib.util
from typing import Any

import numpy as np


class Backend(enum.Enum):
    NUMPY = "numpy"
    NUMPY_READONLY = "numpy_readonly"
    ARRAY_API_STRICT = "array_api_strict"
    TORCH = "torch"
    DASK = "dask"
    JAX = "jax"

    @property
    def module(self) -> str:
        return {"numpy_readonly": "numpy", "dask": "dask.array"}.get(self.value, self.value)

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module.split(".")[0]) is not None

    @property
    def has_float64(self) -> bool:
        return self is not Backend.JAX

    def asarray(self, a: Any) -> Any:
        a = np.asarray(a)
        if self is Backend.NUMPY:
            return a.copy()
        if self is Backend.NUMPY_READONLY:
            a = a.copy()
            a.flags.writeable = False
            return a
        if self is Backend.ARRAY_API_STRICT:
            import array_api_strict

            return array_api_strict.asarray(a)
        if self is Backend.TORCH:
            import torch

            return torch.from_numpy(a.copy())
        if self is Backend.DASK:
            import dask.array as da

            return da.from_array(a, chunks=tuple(max(1, (s + 1) // 2) for s in a.shape) or ())
        if self is Backend.JAX:
            import jax.numpy as jnp

            return jnp.asarray(a)
        raise AssertionError(self)

    def supports(self, dtype: Any) -> bool:
        """Whether the library holds arrays of this NumPy dtype."""
        name = np.dtype(dtype).name
        if self is Backend.JAX and name == "float64":
            return False
        if self is Backend.ARRAY_API_STRICT and name == "float16":
            return False
        return True


def to_numpy(x: Any) -> np.ndarray:
    """Any library's array (or scalar) as a NumPy array."""
    import array_api_compat

    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_dask_array(x):
        # x - max overflowing to -inf is the correctly rounded answer; on Dask the NumPy
        # warning about it surfaces at compute time, outside the kernels' errstate.
        with np.errstate(over="ignore"):
            return np.asarray(x.compute())
    if type(x).__module__.startswith("array_api_strict"):
        import array_api_strict

        return np.from_dlpack(array_api_strict.asarray(x, copy=True))
    return np.asarray(x)


def same_library(result: Any, backend: Backend) -> bool:
    import array_api_compat

    checks = {
        Backend.NUMPY: array_api_compat.is_numpy_array,
        Backend.NUMPY_READONLY: array_api_compat.is_numpy_array,
        Backend.ARRAY_API_STRICT: lambda r: type(r).__module__.startswith("array_api_strict"),
        Backend.TORCH: array_api_compat.is_torch_array,
        Backend.DASK: array_api_compat.is_dask_array,
        Backend.JAX: array_api_compat.is_jax_array,
    }
    return bool(checks[backend](result)) or (
        backend in (Backend.NUMPY, Backend.NUMPY_READONLY) and np.isscalar(result)
    )



def forced(function: Any, *args: Any, engine: str, **kwargs: Any) -> Any:
    """``function(*args, engine=engine, **kwargs)``; where the registry declares the call a gap
    of ``engine`` (forcing it raises ValueError naming the engines that can), the result of the
    engine the automatic choice gives the call instead."""
    try:
        return function(*args, engine=engine, **kwargs)
    except ValueError as exc:
        if f"engine {engine!r} does not cover" not in str(exc) or "engines that can: " not in str(exc):
            raise
    return function(*args, **kwargs)
