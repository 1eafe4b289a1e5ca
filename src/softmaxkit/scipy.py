"""SciPy's face: ``scipy.special.softmax``, ``log_softmax`` and ``logsumexp``, drop-in.

Changing ``from scipy.special import softmax, log_softmax, logsumexp`` to
``from softmaxkit.scipy import softmax, log_softmax, logsumexp`` is enough: the signatures,
defaults (``axis=None``: the whole array), return types (a NumPy scalar for a 0-d NumPy
result) and dtype rules are SciPy's, and SciPy's own test file for these functions
(``scipy/special/tests/test_logsumexp.py``) passes against them, with and without
``SCIPY_ARRAY_API=1`` (``tests/test_scipy_suite.py``). Arrays of any library that implements
the Python array API standard work (PyTorch, JAX, Dask, CuPy, array-api-strict), as with
SciPy's ``SCIPY_ARRAY_API=1``; other inputs (lists, Python and NumPy scalars) become NumPy
arrays.

The computation is softmaxkit's main API (:func:`softmaxkit.softmax` and its siblings), so
the edge cases keep softmaxkit's answers where SciPy gives NaN or raises; each function's
docstring lists the differences. Importing this module does not import SciPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from softmaxkit import _api
from softmaxkit._arrays import Array

Axis = int | tuple[int, ...] | None

__all__ = ["log_softmax", "logsumexp", "softmax"]


def _input(x: Any) -> Any:
    """SciPy's conversion: arrays stay as they are; anything else becomes a NumPy array."""
    import array_api_compat

    if array_api_compat.is_array_api_obj(x) and not isinstance(x, np.generic):
        return x
    return np.asarray(x)


def _float_dtype_of_integers(x: Array) -> Any:
    """The dtype SciPy's softmax gives integer input: that of ``exp`` in ``x``'s library
    (NumPy: float16 for 8-bit, float32 for 16-bit, float64 for wider integers; PyTorch and JAX:
    the default float). None for other input, or where ``exp`` refuses integers (the main API's
    default float then applies)."""
    import array_api_compat

    xp = array_api_compat.array_namespace(x)
    if not xp.isdtype(x.dtype, "integral"):
        return None
    try:
        return xp.exp(xp.zeros((), dtype=x.dtype, device=array_api_compat.device(x))).dtype
    except TypeError:  # array-api-strict: exp is for floats only
        return None


def _scalar(r: Array) -> Any:
    """A 0-d NumPy result as a NumPy scalar, as SciPy (and NumPy's reductions) return it."""
    return r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r


def softmax(x: Any, axis: Axis = None) -> Any:
    """Compute the softmax function, as :func:`scipy.special.softmax`.

    Parameters
    ----------
    x : array_like
        Input array.
    axis : int or tuple of ints, optional
        Axis to compute values along. Default is None: softmax over the entire array.

    Returns
    -------
    s : ndarray
        An array the same shape as `x`, summing to 1 along the specified axis (a NumPy
        scalar for 0-d NumPy input).

    Notes
    -----
    Differences from SciPy 1.17 (softmaxkit's answers, SPEC §2):

    - all entries ``-inf`` along the axis: all 0 (SciPy: NaN);
    - one or more ``+inf``: the ``+inf`` entries share the mass equally, 0 elsewhere (SciPy: NaN);
    - an empty array gives an empty result (SciPy raises ``ValueError``);
    - boolean input is computed in the default float (SciPy raises ``TypeError`` for NumPy);
      complex input raises ``TypeError`` (SciPy computes a complex softmax);
    - integer input keeps SciPy's result dtype (that of ``exp``: float16 for 8-bit NumPy
      integers) but is computed without SciPy's integer wrap-around of ``x - max(x)``.

    Examples
    --------
    >>> from softmaxkit.scipy import softmax
    >>> softmax([[1.0, 2.0], [3.0, 3.0]])          # axis=None: one distribution over all four
    array([[0.05406459, 0.1469628 ],
           [0.3994863 , 0.3994863 ]])
    >>> softmax([[1.0, 2.0], [3.0, 3.0]], axis=1)
    array([[0.26894142, 0.73105858],
           [0.5       , 0.5       ]])
    >>> softmax([-float("inf"), -float("inf")])     # SciPy: [nan, nan]
    array([0., 0.])
    """
    x = _input(x)
    return _scalar(_api.softmax(x, axis=axis, dtype=_float_dtype_of_integers(x)))


def log_softmax(x: Any, axis: Axis = None) -> Any:
    """Compute the logarithm of the softmax function, as :func:`scipy.special.log_softmax`.

    Parameters
    ----------
    x : array_like
        Input array.
    axis : int or tuple of ints, optional
        Axis to compute values along. Default is None: over the entire array.

    Returns
    -------
    s : ndarray or scalar
        An array the same shape as `x`; its exponential sums to 1 along the axis. A NumPy
        scalar for 0-d NumPy input.

    Notes
    -----
    Differences from SciPy 1.17 (softmaxkit's answers, SPEC §2):

    - all entries ``-inf`` along the axis: all ``-inf`` (SciPy: NaN);
    - ``k`` entries at ``+inf``: ``-log(k)`` there, ``-inf`` elsewhere (SciPy: NaN);
    - an empty array gives an empty result (SciPy raises ``ValueError``);
    - boolean input is computed in the default float; complex input raises ``TypeError``;
    - integer input keeps SciPy's result dtype (that of ``exp``) without its integer
      wrap-around of ``x - max(x)``.

    Examples
    --------
    >>> from softmaxkit.scipy import log_softmax
    >>> log_softmax([1000.0, 1.0])
    array([   0., -999.])
    >>> float(log_softmax(1.0))
    0.0
    >>> log_softmax([float("inf"), float("inf"), 0.0])   # SciPy: [nan, nan, nan]
    array([-0.69314718, -0.69314718,        -inf])
    """
    x = _input(x)
    return _scalar(_api.log_softmax(x, axis=axis, dtype=_float_dtype_of_integers(x)))


def logsumexp(
    a: Any, axis: Axis = None, b: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    """Compute the log of the sum of exponentials of input elements, as :func:`scipy.special.logsumexp`.

    Parameters
    ----------
    a : array_like
        Input array (real or complex).
    axis : None or int or tuple of ints, optional
        Axis or axes over which the sum is taken. By default all elements are summed.
    b : array_like, optional
        Scaling factor for ``exp(a)``, broadcastable with `a`; may be negative. An entry with
        ``b == 0`` adds nothing, even where `a` is infinite or NaN.
    keepdims : bool, optional
        Leave the reduced axes in the result as dimensions of size one.
    return_sign : bool, optional
        Return ``(res, sgn)``: the log of the absolute value of the sum and its sign
        (+1, 0, -1, or a complex phase for complex input). If False, a negative sum gives NaN.

    Returns
    -------
    res : ndarray
        ``log(sum(b * exp(a)))``; a NumPy scalar for a 0-d NumPy result. The dtype is that of
        `a` and `b` promoted together, integers giving the default float (SciPy's rule).
    sgn : ndarray
        The sign, only if ``return_sign`` is True.

    Notes
    -----
    softmaxkit's logsumexp has SciPy's semantics for every case of its test file: ``-inf``
    for an empty reduction, ``+inf`` with a ``+inf`` entry, NaN with a NaN (of nonzero
    weight), sign 0 for an exact cancellation. Differences from SciPy 1.17:

    - entries with ``b == 0`` add nothing even when every entry is such and ``a`` holds NaN:
      ``logsumexp([nan], b=[0])`` is ``-inf`` with sign 0 (SciPy: NaN, its fallback for
      non-finite results computes ``log(0 * nan)``);
    - an empty array of two or more dimensions with ``axis=None`` gives ``-inf`` (SciPy
      raises ``IndexError``).

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit.scipy import logsumexp
    >>> logsumexp(np.arange(10))
    np.float64(9.45862974442671)
    >>> logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    (np.float64(1.5413248546129181), np.float64(-1.0))
    >>> logsumexp(np.ones((2, 3)), axis=1, keepdims=True)
    array([[2.09861229],
           [2.09861229]])
    """
    a = _input(a)
    b = None if b is None else _input(b)
    result = _api.logsumexp(a, axis=axis, b=b, keepdims=bool(keepdims), return_sign=bool(return_sign))
    if return_sign:
        value, sign = result
        return _scalar(value), _scalar(sign)
    return _scalar(result)
