"""Rules of the SPEC that several engines apply, each written once.

Every engine gives the generic engine's answers; where two engines need the same rule on
their own arrays (the Numba engine on NumPy, the CUDA engine on CuPy, the Dask engine on
blocks and across them) they call it from here rather than restating it:

- cross_entropy's ``"mean"`` reduction (PyTorch's): its denominator, 0/0 = NaN when nothing is
  counted, and the zero gradient of such a mean;
- logsumexp's split of each row at its maximum, ``sum(b * e^x) = e^max * (m + rest)``, and the
  log and sign taken from those parts;
- storing a result into ``out=``.

Each function takes the array namespace ``xp`` of its arrays (any array-API library).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from softmaxkit._arrays import Array, constant, device_of
from softmaxkit._sums import row_sums

# --- cross_entropy's "mean" ------------------------------------------------------------------------


def counted_weight(
    xp: Any, labels: Array, weight: Array | None, ignore_index: int | None, dtype: Any
) -> Array:
    """Each class-index sample's share of the ``"mean"`` denominator (PyTorch's rule): the
    weight of its class (1 without ``weight``), 0 if it is ignored."""
    counted = (
        xp.ones(labels.shape, dtype=xp.bool, device=device_of(labels))
        if ignore_index is None else labels != ignore_index
    )
    if weight is None:
        return xp.astype(counted, dtype)
    safe = xp.where(counted, labels, xp.zeros_like(labels))
    picked = xp.reshape(xp.take(xp.astype(weight, dtype), xp.reshape(safe, (-1,)), axis=0), labels.shape)
    return xp.where(counted, picked, xp.zeros_like(picked))


def mean_denominator(
    xp: Any, labels: Array | None, weight: Array | None, ignore_index: int | None, n_samples: int, dtype: Any,
    device: Any,
) -> Array:
    """What the ``"mean"`` reduction divides by, as a 0-d array: the summed weight of the counted
    samples for class-index targets (``labels``), the number of samples for probability
    targets (``labels`` None)."""
    if labels is None:
        return xp.asarray(float(n_samples), dtype=dtype, device=device)
    return xp.sum(counted_weight(xp, labels, weight, ignore_index, dtype))


def mean(total: Array, denominator: Array) -> Array:
    """The ``"mean"`` of summed losses: with nothing counted it is 0/0 = NaN, as in PyTorch
    (callers silence NumPy's warning for it)."""
    return total / denominator


def mean_gradient(xp: Any, grad: Array, denominator: Array) -> Array:
    """The summed losses' gradient turned into the mean's: divided by the denominator, and all
    0 when nothing is counted (the mean is NaN, but no logit moves it). Negative class weights
    may make the denominator negative: it still divides, as in PyTorch (issue 13)."""
    return xp.where(denominator != 0, grad / denominator, constant(xp, 0.0, grad))


def mean_gradient_scale(denominator: float) -> float:
    """:func:`mean_gradient` as the factor a kernel multiplies each gradient by."""
    return 1.0 / denominator if denominator != 0 else 0.0


# --- logsumexp's split at the maximum -------------------------------------------------------------


def split_at_max(xp: Any, rows: Array, weights: Array | None) -> tuple[Array, Array, Array]:
    """``(max, m, rest)`` of each row of ``rows`` (``(r, n)``, ``n > 0``, excluded entries
    already ``-inf``) with ``sum(b * e^x) = e^max * (m + rest)``: ``m`` sums the weights of the
    maximal entries, ``rest`` the other terms scaled by ``e^-max``. Each of shape ``(r,)``.

    Summing the maximal terms apart lets :func:`logsumexp_from_parts` take the log as
    ``max + log|m| + log1p(rest/m)``, accurate when the other terms are tiny next to the max.
    """
    zero = constant(xp, 0.0, rows)
    b = xp.ones_like(rows) if weights is None else weights
    row_max = xp.max(rows, axis=1, keepdims=True)
    at_max = rows == row_max
    m = row_sums(xp, xp.where(at_max, b, zero))
    # Infinite maxima shift by 0 so that no inf - inf arises; their terms are in m anyway.
    shift = xp.where(xp.isfinite(row_max), row_max, zero)
    # The maximal entries are left out of the exp too (not only of the sum): at a +inf maximum
    # exp would be inf, and automatic differentiation would meet 0 * inf.
    rest = row_sums(xp, xp.where(at_max, zero, b * xp.exp(xp.where(at_max, zero, rows - shift))))
    row_max = xp.reshape(row_max, (-1,))
    # Next to a +inf maximum every finite term is 0 (unshifted, they could flip the sign).
    return row_max, m, xp.where(row_max == np.inf, zero, rest)


def logsumexp_from_parts(xp: Any, row_max: Array, m: Array, rest: Array) -> tuple[Array, Array]:
    """``(log|S|, sign(S))`` for ``S = e^max * (m + rest)`` (see :func:`split_at_max`).

    The log is ``max + log|m| + log1p(rest/m)`` (Blanchard, Higham & Higham, "Accurately
    computing the log-sum-exp and softmax functions", IMA J. Numer. Anal. 41(4), 2021), as in
    SciPy. The Dask engine merges the parts of row pieces before calling this.
    """
    zero, one = constant(xp, 0.0, m), constant(xp, 1.0, m)
    m_nonzero = m != 0
    r = rest / xp.where(m_nonzero, m, one)
    sign = xp.where(m_nonzero, xp.sign(r + 1) * xp.sign(m), xp.sign(rest))
    # |1 + r| for r < -1 is -r - 2 + 1: the sum changed sign.
    r = xp.where(r < -1, -r - 2, r)
    total_is_zero = sign == 0
    log_with_m = xp.log(xp.abs(xp.where(m_nonzero, m, one))) + xp.log1p(xp.where(total_is_zero, zero, r))
    log_rest = xp.log(xp.where(rest == 0, one, xp.abs(rest)))
    value = row_max + xp.where(m_nonzero, log_with_m, log_rest)
    nothing = (row_max == -np.inf) | total_is_zero  # log(0)
    value = xp.where(nothing, constant(xp, -np.inf, value), value)
    sign = xp.where(nothing, zero, sign)
    cancelled_inf = (row_max == np.inf) & ~m_nonzero  # weights at +inf sum to 0: inf - inf
    value = xp.where(cancelled_inf, constant(xp, np.nan, value), value)
    sign = xp.where(cancelled_inf, constant(xp, np.nan, sign), sign)
    return value, sign


# --- out= ----------------------------------------------------------------------------------------------


def store(
    xp: Any, result: Array, out: Array | None, cast: Callable[[Array, Any], Array] | None = None
) -> Array:
    """Write ``result`` into ``out`` cast to out's dtype and return ``out``; or return ``result``.

    ``cast(array, dtype)`` defaults to ``xp.astype``; the Numba engine passes its own, which
    converts to and from half types in a kernel.
    """
    if out is None:
        return result
    out[...] = (cast or xp.astype)(result, out.dtype)
    return out
