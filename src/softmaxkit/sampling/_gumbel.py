"""Gumbel-softmax (Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017): a differentiable draw.

``softmax((x + g) / T)`` with ``g = -log(-log(u))`` standard Gumbel noise. Its argmax is an
exact draw from ``softmax(x)`` (the Gumbel-max trick); ``hard=True`` returns that draw as a
one-hot row whose gradient is the soft sample's (the straight-through estimator).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from softmaxkit._arrays import (
    Array,
    as_array,
    check_flag,
    check_temperature,
    device_of,
    is_half,
    namespace,
    result_dtype,
    single_axis,
)
from softmaxkit.sampling._params import as_host, uniforms


def _noise(xp: Any, rng: Any, x: Array) -> Array:
    """Standard Gumbel noise of ``x``'s shape and dtype (float32 or float64), always finite
    above: ``u`` is held below 1, where rounding to the dtype would give ``+inf``."""
    u = uniforms(rng, tuple(int(s) for s in x.shape), x)
    if namespace(u) is not xp:
        u = xp.asarray(as_host(u), device=device_of(x))
    u = xp.astype(u, x.dtype)
    if hasattr(u, "to"):  # a torch generator may live elsewhere than x
        u = u.to(x.device)
    # The largest value below 1: in float32 a u within 2**-25 of 1 rounds to 1 (noise +inf,
    # that class always wins); held there, the noise is at most 16.6 (a true Gumbel draw
    # exceeds that with probability 6e-8).
    below_one = xp.asarray(1.0 - xp.finfo(x.dtype).eps / 2, dtype=x.dtype, device=device_of(x))
    u = xp.where(u < below_one, u, below_one)
    return -xp.log(-xp.log(u))  # u = 0 gives -inf: that class cannot win (probability 2**-53)


def _detached(y: Array) -> Array:
    """``y`` without its gradient: torch's ``detach``, JAX's ``stop_gradient``; NumPy as is."""
    if hasattr(y, "detach"):
        return y.detach()
    if type(y).__module__.startswith("jax"):
        import jax

        return jax.lax.stop_gradient(y)
    return y


def gumbel_softmax(
    logits: Any, /, axis: int = -1, *, temperature: float = 1.0, hard: bool = False, rng: Any = None,
) -> Array:
    """A relaxed one-hot sample from ``softmax(logits)``, differentiable in ``logits``.

    Parameters
    ----------
    logits : array
        Unnormalised log-probabilities; the classes run along ``axis``.
    axis : int
        The class axis.
    temperature : float
        ``T > 0``: small values give nearly one-hot samples (and high-variance gradients).
    hard : bool
        Return the one-hot argmax of the relaxed sample (an exact draw from
        ``softmax(logits)``; ties to the lower index), with the gradient of the relaxed sample:
        ``one_hot - stop_gradient(soft) + soft`` for torch tensors and JAX arrays, as
        ``torch.nn.functional.gumbel_softmax`` does. NumPy arrays get the one-hot rows.
    rng : numpy Generator, int, torch.Generator or JAX key, optional
        The noise's random stream, as in :func:`softmaxkit.sample`.

    Returns
    -------
    array
        The shape and library of ``logits``; rows sum to 1. ``-inf`` logits get 0. Rows
        holding ``+inf`` draw among their ``+inf`` entries; all ``-inf`` rows give all 0 and NaN
        rows all NaN, as :func:`softmaxkit.softmax` does.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> y = sk.gumbel_softmax([[1.0, 2.0, 3.0]], temperature=0.5, rng=0)
    >>> y.round(3)
    array([[0.337, 0.295, 0.367]])
    >>> sk.gumbel_softmax([[1.0, 2.0, 3.0]], hard=True, rng=1)
    array([[0., 1., 0.]])
    """
    from softmaxkit._api import softmax

    x = as_array(logits, "logits")
    xp = namespace(x)
    a = single_axis(axis, x.ndim, "gumbel_softmax")
    dtype = result_dtype(xp, x, None, allow_complex=False, name="gumbel_softmax")
    t = check_temperature(temperature)
    hard = check_flag(hard, "hard")
    # Half-precision logits are perturbed and compared in float32: in float16 a uniform draw
    # rounds to 1 from 1 - 2**-12 up (infinite noise), and the noise of 4,096 classes holds one
    # such draw in most rows, so that class won whatever its logit.
    work = xp.float32 if is_half(dtype) else dtype
    if x.dtype != work:
        x = xp.astype(x, work)
    inf = xp.asarray(np.inf, dtype=x.dtype, device=device_of(x))
    # Gumbel-max in the limit: where a row holds +inf, only its +inf entries can win, at random.
    has_inf = xp.any(x == inf, axis=a, keepdims=True)
    x = xp.where(has_inf, xp.where(x == inf, xp.zeros_like(x), -inf), x)
    soft = softmax(x + _noise(xp, rng, x), axis=a, temperature=t)
    pick = xp.argmax(soft, axis=a, keepdims=True)  # in float32 for halves: no rounded ties
    if soft.dtype != dtype:
        soft = xp.astype(soft, dtype)
    if not hard:
        return soft
    positions = xp.arange(x.shape[a], device=device_of(x))
    positions = xp.reshape(positions, tuple(-1 if d == a else 1 for d in range(x.ndim)))
    one_hot = xp.astype(positions == pick, soft.dtype)
    total = xp.sum(soft, axis=a, keepdims=True)
    one_hot = one_hot * xp.astype(total > 0, soft.dtype)  # all -inf rows stay 0
    one_hot = xp.where(xp.isnan(total), total, one_hot)  # NaN rows stay NaN
    if isinstance(soft, np.ndarray):
        return one_hot
    return one_hot - _detached(soft) + soft
