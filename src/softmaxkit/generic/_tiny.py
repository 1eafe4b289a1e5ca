"""softmax and log_softmax of small float NumPy arrays without the array-API machinery.

On a 10-element array the arithmetic costs a few microseconds, while resolving the namespace,
normalising axes and choosing an engine costs over a hundred. Calls with only the defaults
(no mask, temperature 1, no dtype or ``out``) on a float32/float64 NumPy array whose rows all
have a finite maximum take this path, when it is smaller than the registry's
:data:`softmaxkit._engines.NUMBA_MIN_SIZE` (the caller checks the size: the registry owns the
threshold). It performs the generic engine's operations in the same order (shift by the row
max, ``exp``, sum, divide or subtract the log), so the results agree with
:func:`softmaxkit.generic.softmax`. Anything else returns ``None`` and takes the full path.
"""

from __future__ import annotations

import math

import numpy as np

# NumPy's native float32/float64 dtypes are singletons: an identity test is the cheapest check,
# and a byte-swapped or otherwise unusual dtype simply takes the full path.
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def tiny_softmax(x: np.ndarray, axis: object, log: bool) -> np.ndarray | None:
    """softmax (or log_softmax) of ``x`` over the int ``axis``, or ``None`` if this path does not apply."""
    dtype = x.dtype
    if (dtype is not _FLOAT64 and dtype is not _FLOAT32) or x.size == 0:
        return None
    if x.ndim == 1 and (axis == -1 or axis == 0) and type(axis) is int:
        row_max = x.max()
        finite = math.isfinite(row_max)
    elif type(axis) is int and -x.ndim <= axis < x.ndim:
        row_max = x.max(axis=axis, keepdims=True)
        finite = bool(np.isfinite(row_max).all())
    else:
        return None
    # ±inf and NaN rows have their own SPEC §2 rules: the generic engine applies them.
    if not finite:
        return None
    with np.errstate(over="ignore"):  # x - max below -float max is -inf, whose exp is 0 anyway
        z = x - row_max
    e = np.exp(z)
    # The row max contributes exp(0) = 1, so the sum is at least 1: no zero division.
    s = e.sum(axis=axis, keepdims=True)
    if log:
        z -= np.log(s)
        return z
    e /= s
    return e
