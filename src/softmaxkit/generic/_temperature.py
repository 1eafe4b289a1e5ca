"""``(x - max) / T`` for any temperature the API accepts, in the input's own dtype.

A temperature is any finite ``T > 0`` of float64, while the arithmetic runs in the input's
dtype. Two shortcuts go wrong at the ends (issue 13):

- ``x * (1 / T)``: ``1 / T`` overflows for ``T`` below ``1 / max`` (``T = 1e-300`` on float32,
  ``5e-324`` on float64), and ``0 * inf`` is NaN at the row's maximum; for a huge ``T`` the
  reciprocal underflows and ``-inf * 0`` is NaN.
- ``(x - max) / T`` with ``T`` cast to the dtype: ``T`` itself overflows or underflows there,
  and ``x - max`` overflows (``3e38 - -3e38`` in float32) before a ``T > 1`` would have
  brought it back into range.

Here ``T = m * 2**k`` (``math.frexp``): the power of two is applied in exact steps within the
dtype's normal range and ``m`` divides once, in the order that cannot overflow or lose bits in
between, so the result is ``(x - max) / T`` rounded about once. For ``T > 1`` the difference
is taken of halves, ``x/2 - max/2``, which cannot overflow (halving is exact wherever the
difference could overflow).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from softmaxkit._arrays import Array


def _exponent_range(xp: Any, dtype: Any) -> tuple[int, int, int]:
    """The dtype's largest and smallest normal binary exponents and its mantissa bits."""
    info = xp.finfo(dtype)
    return (int(math.log2(float(info.max))), int(math.log2(float(info.smallest_normal))),
            round(-math.log2(float(info.eps))) + 1)


def _scale_by_power_of_two(xp: Any, z: Array, e: int) -> Array:
    """``z * 2**e``, in steps each exact within the normal range (``e`` may exceed it)."""
    emax, emin, digits = _exponent_range(xp, z.dtype)
    # Past this every nonzero value has overflowed (or underflowed to 0) anyway.
    e = max(-(emax - emin + digits + 2), min(e, emax - emin + digits + 2))
    while e != 0:
        step = min(e, emax - 1) if e > 0 else max(e, emin + 1)
        z = z * (2.0 ** step)
        e -= step
    return z


def divide_by_temperature(xp: Any, d: Array, temperature: float) -> Array:
    """``d / temperature`` for a float array ``d``, without a spurious overflow, underflow or NaN."""
    if temperature == 1.0:
        return d
    m, k = math.frexp(temperature)  # temperature = m * 2**k, 0.5 <= m < 1
    if k <= 0:
        # T < 1: scale up first (exact until the true quotient overflows, as m < 1 only
        # enlarges it), then divide by m once.
        return _scale_by_power_of_two(xp, d, -k) / m
    # T >= 1: divide by 2m in [1, 2) first (cannot overflow), then scale down; bits lost to
    # subnormal results are below any softmax's resolution.
    return _scale_by_power_of_two(xp, d / (2.0 * m), 1 - k)


def scaled_difference(xp: Any, x: Array, shift: Array, temperature: float) -> Array:
    """``(x - shift) / temperature`` with ``shift >= x`` (a row maximum), as exactly as the
    dtype allows; non-finite values give what ``x - shift`` gives."""
    if temperature > 1.0:
        return divide_by_temperature(xp, x * 0.5 - shift * 0.5, temperature * 0.5)
    return divide_by_temperature(xp, x - shift, temperature)


def reciprocal_is_accurate(temperature: float, dtype: Any) -> bool:
    """Whether kernels may compute ``(x - max) * r`` with ``r = 1 / T`` rounded to ``dtype``
    (NumPy dtype) and stay within SPEC §2's bound for ``softmax``.

    True when ``r`` is a normal number of the dtype, and ``T`` is small enough that an ``x - max``
    overflowing to ``-inf`` is right for softmax: its exact ``exp((x - max) / T)`` is 0 too
    (``|x - max| / T > max / T >= 256``). Kernels must still take the halves of ``x - max`` for
    ``log_softmax`` when ``T > 1`` and the row maximum is huge.
    """
    if temperature == 1.0:  # the common call; its reciprocal is exact in every dtype
        return True
    info = np.finfo(dtype)
    r = 1.0 / temperature
    return float(info.smallest_normal) <= r <= float(info.max) / 2 and temperature <= float(info.max) / 256
