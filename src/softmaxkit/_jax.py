"""JAX specifics: recognising traced values, and compiled calls for eager JAX arrays.

Under ``jax.jit``, ``jax.vmap``, ``jax.grad`` and friends the functions receive tracers:
abstract arrays whose values are unknown. Everything that depends only on shapes and dtypes
(axes, dtype rules, shapes of masks and weights) is checked as usual; checks of values
(label ranges, temperature and label-smoothing ranges) cannot run, and the computation
instead gives NaN where such a value is out of range (see :func:`softmaxkit.cross_entropy`).

An eager call on a concrete JAX array runs its dozens of array operations one by one, each a
separate XLA dispatch (about 2 ms for a 64 × 10 softmax). :func:`compiled` instead traces the
public function once per static configuration with ``jax.jit`` and reuses it: the same code,
the same checks (at trace time), one dispatch per call.

Nothing here imports JAX unless a JAX array was given (JAX is then already imported).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Hashable
from typing import Any


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer: an abstract value inside a JAX transformation."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(value, jax.core.Tracer)


def in_jax_if_traced(x: Any, *values: Any) -> Any:
    """``x`` as a JAX array when one of ``values`` is traced (a NumPy ``x`` with a traced
    temperature, say): NumPy cannot compute with tracers, and under a JAX transformation
    NumPy inputs are constants of the computation anyway."""
    if "jax" not in sys.modules or not any(is_traced(v) for v in values) or is_traced(x) \
            or is_concrete_jax_array(x):
        return x
    import jax.numpy as jnp

    return jnp.asarray(x)


def _traced_scalar(value: Any, name: str) -> Any:
    import jax.numpy as jnp

    if value.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got a traced array of shape {value.shape}")
    if not (jnp.issubdtype(value.dtype, jnp.floating) or jnp.issubdtype(value.dtype, jnp.integer)):
        raise TypeError(f"{name} must be a real number, got a traced {value.dtype}")
    return value


def traced_temperature(t: Any) -> Any:
    """A traced temperature, unchecked: NaN unless finite and > 0, so the result is all NaN."""
    import jax.numpy as jnp

    t = _traced_scalar(t, "temperature")
    return jnp.where(jnp.isfinite(t) & (t > 0), t, jnp.nan)


def traced_fraction(value: Any, name: str) -> Any:
    """A traced value that must lie in [0, 1] (label smoothing), unchecked: NaN outside."""
    import jax.numpy as jnp

    value = _traced_scalar(value, name)
    return jnp.where((value >= 0) & (value <= 1), value, jnp.nan)


def is_concrete_jax_array(x: Any) -> bool:
    """A concrete (eager, non-traced) JAX array; a type check that imports nothing."""
    cls = type(x)
    return cls.__name__ == "ArrayImpl" and cls.__module__.startswith("jaxlib")


@functools.lru_cache(maxsize=256)
def compiled(function: Callable[..., Any], static: tuple[tuple[str, Hashable], ...]) -> Callable[..., Any]:
    """``jax.jit`` of ``function`` with the keyword arguments ``static`` fixed.

    The arrays (and any traced scalar such as a temperature) are passed to the result; each
    distinct ``static`` is traced once (and again by ``jax.jit`` for new shapes or dtypes).
    """
    import jax

    fixed = dict(static)

    def call(*arrays: Any, **traced: Any) -> Any:
        return function(*arrays, **traced, **fixed)

    return jax.jit(call)
