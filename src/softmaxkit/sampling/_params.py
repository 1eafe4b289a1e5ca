"""The sampler's arguments: per-row parameters, random streams, and errors naming the rows."""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from softmaxkit._arrays import Array, unmasked
from softmaxkit._jax import is_traced

OK, HAS_NAN, EMPTY, TOO_FEW = 0, 1, 2, 3
"""Row status codes of both engines; :func:`raise_for_status` turns them into errors."""


@dataclass(frozen=True)
class RowParams:
    """One value per row (float64 / int64 NumPy arrays of length ``rows``); filters that are off
    hold their neutral value (``top_k = n``, ``top_p = 1``, ``min_p = 0``)."""

    inv_t: np.ndarray
    """``1 / T``; ``inf`` for ``T = 0`` (the limit: the largest logits share all the mass)."""
    top_k: np.ndarray
    top_p: np.ndarray
    min_p: np.ndarray

    def buffer_size(self, n: int) -> int:
        """Slots of the kernels' top-k buffer: twice the largest k below ``n``, at most ``n``
        (a row whose k reaches its count of entries gathers nothing)."""
        active = self.top_k[self.top_k < n]
        return 1 if not active.size else max(1, min(2 * int(active.max()), n))


def _host_values(value: Any, name: str) -> np.ndarray:
    if is_traced(value):
        raise TypeError(f"{name} cannot be a traced JAX value (inside jax.jit, jax.vmap, ...): the "
                        "sampling functions read their parameters on the host")
    if hasattr(value, "detach"):  # torch: parameters may live on the GPU or need grad
        value = value.detach().cpu()
    value = unmasked(value, name)
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:

        raise TypeError(f"{name} must be a number or an array of numbers: {exc}") from None


def per_row(value: Any, batch: tuple[int, ...], name: str, integral: bool = False) -> np.ndarray:
    """``value`` (a scalar or one value per row, broadcastable to ``batch``) as a flat array."""
    a = _host_values(value, name)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or (
            not integral and np.issubdtype(a.dtype, np.floating))):
        kind = "ints" if integral else "real numbers"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    try:
        a = np.broadcast_to(a, batch)
    except ValueError:
        raise ValueError(f"{name} of shape {a.shape} does not broadcast to the rows' shape {batch}") from None
    return np.ascontiguousarray(a.reshape(-1), dtype=np.int64 if integral else np.float64)


def row_params(temperature: Any, top_k: Any, top_p: Any, min_p: Any, batch: tuple[int, ...],
               n: int) -> RowParams:
    t = per_row(temperature, batch, "temperature")
    if not (np.all(np.isfinite(t)) and np.all(t >= 0)):
        raise ValueError(f"sample: temperature must be finite and >= 0, got {temperature!r}")
    with np.errstate(divide="ignore"):
        inv_t = 1.0 / t
    rows = int(math.prod(batch))
    if top_k is None:
        k = np.full(rows, n, dtype=np.int64)
    else:
        k = per_row(top_k, batch, "top_k", integral=True)
        if np.any(k < 1):
            raise ValueError(f"sample: top_k must be >= 1 (None turns it off), got {top_k!r}")
        k = np.minimum(k, n)
    if top_p is None:
        p = np.ones(rows)
    else:
        p = per_row(top_p, batch, "top_p")
        if not np.all((p > 0) & (p <= 1)):
            raise ValueError(f"sample: top_p must be in (0, 1], got {top_p!r}")
    if min_p is None:
        mp = np.zeros(rows)
    else:
        mp = per_row(min_p, batch, "min_p")
        if not np.all((mp >= 0) & (mp <= 1)):
            raise ValueError(f"sample: min_p must be in [0, 1], got {min_p!r}")
    return RowParams(inv_t, k, p, mp)


def check_count(num_samples: Any) -> int:
    if not isinstance(num_samples, numbers.Integral) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"sample: num_samples must be an int >= 1, got {num_samples!r}")
    return int(num_samples)


def _is_torch_generator(rng: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(rng, torch.Generator)


def _is_jax_key(rng: Any) -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(rng, jax.Array)


def uniforms(rng: Any, shape: tuple[int, ...], like: Array) -> Any:
    """Uniforms in ``[0, 1)`` of ``shape``, drawn up front so no kernel thread draws its own.

    ``rng``: a ``numpy.random.Generator``, an int seed or None (NumPy's generator; for torch
    tensors None means torch's global generator, so ``torch.manual_seed`` applies), a
    ``torch.Generator``, or a JAX PRNG key. Returns a NumPy float64 array, or for a torch
    generator / JAX key an array of that library (float64 where it has it).
    """
    if isinstance(rng, np.random.Generator):
        return rng.random(shape)
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        if rng is None and type(like).__module__.startswith("torch"):
            import torch

            return torch.rand(shape, dtype=torch.float64)
        if rng is not None and rng < 0:
            raise ValueError(f"rng seed must be >= 0, got {rng!r}")
        return np.random.default_rng(int(rng) if rng is not None else None).random(shape)
    if _is_torch_generator(rng):
        import torch

        return torch.rand(shape, generator=rng, dtype=torch.float64, device=rng.device)
    if _is_jax_key(rng):
        import jax

        wide = jax.numpy.float64 if jax.config.read("jax_enable_x64") else jax.numpy.float32
        return jax.random.uniform(rng, shape, dtype=wide)
    raise TypeError(
        "rng must be a numpy.random.Generator, an int seed, None, a torch.Generator or a JAX "
        f"PRNG key, got {type(rng).__name__}"
    )


def as_host(u: Any) -> np.ndarray:
    """Uniforms from any library as a C-contiguous float64 NumPy array."""
    if hasattr(u, "detach"):
        u = u.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(u), dtype=np.float64)


def raise_for_status(status: np.ndarray, batch: tuple[int, ...], name: str, num_samples: int) -> None:
    """A ValueError naming the rows that cannot be sampled (or filtered), if any."""
    few = (f"fewer than num_samples={num_samples} classes with positive probability to draw "
           "without replacement")
    for code, why in (
        (HAS_NAN, "hold NaN"),
        (EMPTY, "have no class to draw from (every entry is -inf or excluded by where)"),
        (TOO_FEW, f"have {few}"),
    ):
        bad = np.flatnonzero(status == code)
        if not bad.size:
            continue
        if not batch:
            raise ValueError(f"{name}: the logits {why}")
        named = [_row_name(int(r), batch) for r in bad[:8]]
        more = f" and {bad.size - 8} more" if bad.size > 8 else ""
        raise ValueError(f"{name}: rows {', '.join(named)}{more} {why}")


def _row_name(r: int, batch: tuple[int, ...]) -> str:
    if len(batch) == 1:
        return str(r)
    return str(tuple(int(i) for i in np.unravel_index(r, batch)))
