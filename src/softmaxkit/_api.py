"""The public functions: check the arguments, pick an engine, call it. Nothing numeric here.

Every function accepts an array of any library that implements the Python array API
standard (NumPy, CuPy, PyTorch, JAX, Dask, array-api-strict, ...) and returns one of the same
library; lists and Python numbers are taken as NumPy arrays. The ``@overload`` stubs above a
function say the same to type checkers: NumPy input first, then any other array type
(``ArrayT``), and the ``Literal`` flags that turn the result into a pair (softmaxkit._typing).
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any, Literal, get_args, overload

import numpy as np
from numpy.typing import NDArray

from softmaxkit import generic
from softmaxkit._arrays import (
    Array,
    as_array,
    check_flag,
    check_index,
    check_labels,
    check_mask,
    check_out,
    check_real,
    check_temperature,
    device_of,
    in_namespace_of,
    namespace,
    normalize_axes,
    promoted_dtype,
    reduced_shape,
    resolve_dtype,
    result_dtype,
    single_axis,
    torch_compiling,
)
from softmaxkit._engines import (
    NUMBA_MIN_SIZE,
    call_engine,
    choose_engine,
    get_engine,
    is_torch_tensor,
    logger,
    numba_kernel_dtype,
)
from softmaxkit._jax import (
    compiled,
    in_jax_if_traced,
    is_concrete_jax_array,
    is_traced,
    traced_fraction,
    traced_temperature,
)
from softmaxkit._rules import store
from softmaxkit._typing import ArrayT, Axis, ClassNames, EngineName, NumPyInput, NumPyValue, Reduction
from softmaxkit.generic._temperature import reciprocal_is_accurate
from softmaxkit.generic._tiny import tiny_softmax


def _softmax_family(
    name: str, x: Any, axis: Axis, where: Any, temperature: Any, dtype: Any, out: Any,
    engine: str | None, log: bool,
) -> Array:
    if (
        type(x) is np.ndarray and where is None and type(temperature) is float
        and temperature == 1.0 and dtype is None and out is None and engine is None
        and x.size < NUMBA_MIN_SIZE
    ):
        # The common call on a small array: skip the argument plumbing that would cost more
        # than the arithmetic (SPEC §3: the generic engine serves tiny arrays).
        result = tiny_softmax(x, axis, log)
        if result is not None:
            logger.debug("%s: engine 'generic' (small-array path) chosen for ndarray", name)
            return result
    if (
        where is None and type(temperature) is float and temperature == 1.0 and dtype is None
        and out is None and engine is None
    ):
        result = _eager_tensor_softmax(name, x, axis, log)
        if result is not None:
            return result
    if out is None and engine is None and is_concrete_jax_array(x):
        result = _eager_jax_softmax(name, x, axis, where, temperature, dtype, log)
        if result is not None:
            return result
    x = in_jax_if_traced(as_array(x), temperature, where)
    xp = namespace(x)
    axes = normalize_axes(axis, x.ndim)
    out_dtype = result_dtype(xp, x, dtype, allow_complex=False, name=name)
    shape = tuple(x.shape)  # a torch.Size to tuple costs a quarter of a microsecond
    mask = check_mask(xp, where, x)
    t = _temperature(temperature)
    check_out(xp, out, shape, name)
    return call_engine(
        "softmax", engine, x, axes, where=mask, temperature=t, dtype=out_dtype, out=out, log=log
    )


def _eager_tensor_softmax(name: str, x: Any, axis: Axis, log: bool) -> Array | None:
    """softmax of an eager floating tensor with every option at its default, handed to the
    torch engine: the registry's choice for it, made without the checks and the choice, which
    cost more than the kernel on a 64 x 10 tensor (SPEC §3's small-call bar). None when it does
    not apply (no such tensor, no kernels for its device, another dtype, 0-d, a traced call)."""
    torch = sys.modules.get("torch")  # no tensor exists before torch is imported
    if (
        torch is None or type(x) is not torch.Tensor or not is_torch_tensor(x) or x.ndim == 0
        or x.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
        or torch_compiling()
    ):
        return None
    axes = normalize_axes(axis, x.ndim)
    logger.debug("%s: engine 'torch' chosen for Tensor (default options)", name)
    engine = _TORCH_ENGINE.load()
    return engine.softmax(x, axes, where=None, temperature=1.0, dtype=x.dtype, out=None, log=log)


_TORCH_ENGINE = get_engine("torch")


def _temperature(temperature: Any) -> Any:
    """A checked Python float; a traced temperature cannot be checked and becomes NaN if out of range."""
    if is_traced(temperature):
        return traced_temperature(temperature)
    return check_temperature(temperature)


_GENERIC_SERVES: dict[tuple[str, Any], bool] = {}


def _generic_engine_serves(function: str, x: Any) -> bool:
    """Whether the automatic engine choice for the JAX array ``x`` is the generic one (XLA then
    runs it, compiled). JAX arrays on a GPU go to the ``cuda`` engine where it is installed;
    the choice depends only on where the array lives, so it is made once per placement."""
    try:
        key = (function, x.sharding)
        served = _GENERIC_SERVES.get(key)
    except TypeError:  # an unhashable sharding: decide for this call only
        return choose_engine(function, x).__name__ == "softmaxkit.generic"
    if served is None:
        served = _GENERIC_SERVES[key] = choose_engine(function, x).__name__ == "softmaxkit.generic"
    return served


def _eager_jax_softmax(
    name: str, x: Any, axis: Axis, where: Any, temperature: Any, dtype: Any, log: bool
) -> Array | None:
    """softmax of an eager JAX array as one compiled call (softmaxkit._jax); None if it does not apply."""
    if (
        is_traced(temperature) or not (where is None or is_concrete_jax_array(where))
        or not _generic_engine_serves("softmax", x)
    ):
        return None
    t = check_temperature(temperature)
    accumulator = numba_kernel_dtype(x.dtype if dtype is None else dtype) or np.dtype(np.float32)
    if not reciprocal_is_accurate(t, accumulator):
        # T = 1e-300 in float32: the generic engine's exact power-of-two steps give the limits
        # op by op, but XLA folds those steps into one overflowing constant under jax.jit.
        return None
    # T = 1 stays a constant (no division is traced); any other T is an argument, so that a
    # sweep over temperatures reuses one compiled function.
    traced_t = t != 1.0
    static = (("axis", axis), ("dtype", dtype)) if traced_t else (
        ("axis", axis), ("dtype", dtype), ("temperature", 1.0))
    try:
        call = compiled(log_softmax if log else softmax, static)
    except TypeError:  # an unhashable axis (a list) or dtype: the ordinary path takes it
        return None
    logger.debug("%s: engine 'generic' (compiled by jax.jit) chosen for %s", name, type(x).__name__)
    return call(x, where=where, temperature=t) if traced_t else call(x, where=where)


@overload
def softmax(
    x: NumPyInput, /, axis: Axis = ..., *, where: Any = ..., temperature: float = ...,
    dtype: Any = ..., out: Any = ..., engine: EngineName | None = ...,
) -> NDArray[Any]: ...
@overload
def softmax(
    x: ArrayT, /, axis: Axis = ..., *, where: Any = ..., temperature: float = ...,
    dtype: Any = ..., out: Any = ..., engine: EngineName | None = ...,
) -> ArrayT: ...
def softmax(
    x: Any, /, axis: Axis = -1, *, where: Any = None, temperature: float = 1.0,
    dtype: Any = None, out: Any = None, engine: EngineName | None = None,
) -> Any:
    """Softmax along ``axis``: ``exp(x / T) / sum(exp(x / T))``, computed without overflow.

    Parameters
    ----------
    x : array
        Logits. Integer and boolean input is computed in the default float dtype.
    axis : int, tuple of ints or None
        The axis (or axes) whose entries form one distribution; ``None`` means all axes.
    where : boolean array, optional
        Entries that take part, broadcastable to ``x``. Excluded entries get probability 0;
        a row with nothing included is all 0.
    temperature : float
        ``T > 0``: larger flattens the distribution, smaller sharpens it. It may be a traced
        JAX scalar (and differentiated); a traced value that is not finite and > 0 cannot be
        checked and makes the result NaN.
    dtype : dtype, optional
        The result's dtype (float16 and bfloat16 are computed in float32).
    out : array, optional
        Where to write the result; may be ``x`` itself.
    engine : {"generic", ...}, optional
        Force an engine; by default the fastest one that applies is chosen.

    Returns
    -------
    array
        Probabilities of the same shape and array type as ``x``, summing to 1 along ``axis``.

    Notes
    -----
    The row maximum is subtracted first, so any finite input (``1e38`` in float32 too) gives
    finite probabilities. ``-inf`` entries get exactly 0; if a row holds ``+inf`` its mass is
    shared equally among the ``+inf`` entries (the limit); a NaN makes the whole row NaN.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.softmax([1.25, 2.44, 0.78, 0.12])
    array([0.19101771, 0.62789072, 0.1193865 , 0.06170507])
    >>> sk.softmax([1000.0, 1000.0, -float("inf")])
    array([0.5, 0.5, 0. ])
    >>> sk.softmax([2.0, 4.0], temperature=2.0)
    array([0.26894142, 0.73105858])
    """
    return _softmax_family("softmax", x, axis, where, temperature, dtype, out, engine, log=False)


@overload
def log_softmax(
    x: NumPyInput, /, axis: Axis = ..., *, where: Any = ..., temperature: float = ...,
    dtype: Any = ..., out: Any = ..., engine: EngineName | None = ...,
) -> NDArray[Any]: ...
@overload
def log_softmax(
    x: ArrayT, /, axis: Axis = ..., *, where: Any = ..., temperature: float = ...,
    dtype: Any = ..., out: Any = ..., engine: EngineName | None = ...,
) -> ArrayT: ...
def log_softmax(
    x: Any, /, axis: Axis = -1, *, where: Any = None, temperature: float = 1.0,
    dtype: Any = None, out: Any = None, engine: EngineName | None = None,
) -> Any:
    """Logarithm of :func:`softmax`, computed directly: ``z - log(sum(exp(z)))``, ``z = (x - max) / T``.

    Takes the same arguments as :func:`softmax`. Excluded and ``-inf`` entries give ``-inf``;
    a row with ``k`` entries at ``+inf`` gives ``-log(k)`` there. Accurate where ``softmax``
    underflows to 0.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.log_softmax([1000.0, 1.0])
    array([   0., -999.])
    >>> sk.log_softmax([[0.0, 0.0], [1.0, 3.0]], axis=1)
    array([[-0.69314718, -0.69314718],
           [-2.12692801, -0.12692801]])
    """
    return _softmax_family("log_softmax", x, axis, where, temperature, dtype, out, engine, log=True)


@overload
def logsumexp(
    x: NumPyInput, /, axis: Axis = ..., *, b: Any = ..., keepdims: bool = ...,
    return_sign: Literal[False] = ..., where: Any = ..., dtype: Any = ..., engine: EngineName | None = ...,
) -> NumPyValue: ...
@overload
def logsumexp(
    x: ArrayT, /, axis: Axis = ..., *, b: Any = ..., keepdims: bool = ...,
    return_sign: Literal[False] = ..., where: Any = ..., dtype: Any = ..., engine: EngineName | None = ...,
) -> ArrayT: ...
@overload
def logsumexp(
    x: NumPyInput, /, axis: Axis = ..., *, b: Any = ..., keepdims: bool = ...,
    return_sign: Literal[True], where: Any = ..., dtype: Any = ..., engine: EngineName | None = ...,
) -> tuple[NumPyValue, NumPyValue]: ...
@overload
def logsumexp(
    x: ArrayT, /, axis: Axis = ..., *, b: Any = ..., keepdims: bool = ...,
    return_sign: Literal[True], where: Any = ..., dtype: Any = ..., engine: EngineName | None = ...,
) -> tuple[ArrayT, ArrayT]: ...
@overload
def logsumexp(
    x: Any, /, axis: Axis = ..., *, b: Any = ..., keepdims: bool = ...,
    return_sign: bool, where: Any = ..., dtype: Any = ..., engine: EngineName | None = ...,
) -> Any: ...
def logsumexp(
    x: Any, /, axis: Axis = None, *, b: Any = None, keepdims: bool = False,
    return_sign: bool = False, where: Any = None, dtype: Any = None, engine: EngineName | None = None,
) -> Any:
    """``log(sum(b * exp(x)))`` over ``axis``, with SciPy's semantics.

    Parameters
    ----------
    x : array
        Real or complex input.
    axis : int, tuple of ints or None
        Axes to reduce; ``None`` (the default, as in SciPy) reduces all.
    b : array, optional
        Weights broadcast with ``x``; they may be negative. An entry with ``b == 0`` adds
        nothing, even where ``x`` is infinite or NaN.
    keepdims : bool
        Keep the reduced axes with length 1.
    return_sign : bool
        Also return the sign of the sum (``+1, 0, -1``; a unit complex number for complex
        input). Without it a negative sum gives NaN.
    where : boolean array, optional
        Entries that take part; excluded ones add nothing.
    dtype, engine
        As in :func:`softmax`.

    Returns
    -------
    array or (array, array)
        ``log|sum|``, and the sign if asked. An empty or fully excluded reduction gives
        ``-inf`` (sign 0).

    Examples
    --------
    >>> import softmaxkit as sk
    >>> float(sk.logsumexp([1.0, 2.0, 3.0]))
    3.40760596444438
    >>> value, sign = sk.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    >>> float(value), float(sign)
    (1.5413248546129181, -1.0)
    >>> float(sk.logsumexp([0.0, -40.0]))  # log1p(e**-40), not rounded to 0
    4.248354255291589e-18
    """
    if engine is None and is_concrete_jax_array(x) and all(
        a is None or is_concrete_jax_array(a) for a in (b, where)
    ) and _generic_engine_serves("logsumexp", x):
        static = (("axis", axis), ("keepdims", keepdims), ("return_sign", return_sign), ("dtype", dtype))
        try:
            call = compiled(logsumexp, static)
        except TypeError:  # an unhashable argument: the ordinary path takes it
            pass
        else:
            logger.debug("logsumexp: engine 'generic' (compiled by jax.jit) chosen for %s", type(x).__name__)
            return call(x, b=b, where=where)
    x = in_jax_if_traced(as_array(x), b, where)
    xp = namespace(x)
    if b is not None:
        b = as_array(b, "b")
        if namespace(b) is not xp:
            b = xp.asarray(b)
        try:
            x, b = xp.broadcast_arrays(x, b)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"b of shape {tuple(b.shape)} does not broadcast with x of shape "
                             f"{tuple(x.shape)}") from exc
    axes = normalize_axes(axis, x.ndim)
    if dtype is None and b is not None:
        for numbers_only in (x, b):
            result_dtype(xp, numbers_only, None, allow_complex=True, name="logsumexp")
        dtype = promoted_dtype(xp, x, b)  # SciPy's rule: x and b promoted together
    out_dtype = result_dtype(xp, x, dtype, allow_complex=True, name="logsumexp")
    if b is not None and xp.isdtype(b.dtype, "complex floating") and not xp.isdtype(
        out_dtype, "complex floating"
    ):  # a real dtype= does not discard the imaginary parts of complex weights
        out_dtype = xp.result_type(out_dtype, b.dtype)
    mask = check_mask(xp, where, x)
    return call_engine(
        "logsumexp", engine, x, axes, b=b, keepdims=check_flag(keepdims, "keepdims"),
        return_sign=check_flag(return_sign, "return_sign"), where=mask,
        dtype=out_dtype,
    )


def _elementwise(function: Any, name: str, x: Any, dtype: Any, out: Any) -> Array:
    x = as_array(x)
    xp = namespace(x)
    out_dtype = result_dtype(xp, x, dtype, allow_complex=False, name=name)
    check_out(xp, out, tuple(x.shape), name)
    return store(xp, function(x, dtype=out_dtype), out)


@overload
def sigmoid(x: NumPyInput, /, *, dtype: Any = ..., out: Any = ...) -> NDArray[Any]: ...
@overload
def sigmoid(x: ArrayT, /, *, dtype: Any = ..., out: Any = ...) -> ArrayT: ...
def sigmoid(x: Any, /, *, dtype: Any = None, out: Any = None) -> Any:
    """The logistic function ``1 / (1 + exp(-x))``: softmax of ``[x, 0]``, the two-class case.

    Never overflows; ``sigmoid(-inf) = 0``, ``sigmoid(inf) = 1``.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.sigmoid([-800.0, 0.0, 2.0])
    array([0.        , 0.5       , 0.88079708])
    >>> float(sk.softmax([2.0, 0.0])[0])
    0.8807970779778823
    """
    return _elementwise(generic.sigmoid, "sigmoid", x, dtype, out)


@overload
def log_sigmoid(x: NumPyInput, /, *, dtype: Any = ..., out: Any = ...) -> NDArray[Any]: ...
@overload
def log_sigmoid(x: ArrayT, /, *, dtype: Any = ..., out: Any = ...) -> ArrayT: ...
def log_sigmoid(x: Any, /, *, dtype: Any = None, out: Any = None) -> Any:
    """``log(sigmoid(x))``, accurate for large negative ``x`` (where it is about ``x``).

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.log_sigmoid([-800.0, 0.0, 40.0])
    array([-8.00000000e+02, -6.93147181e-01, -4.24835426e-18])
    """
    return _elementwise(generic.log_sigmoid, "log_sigmoid", x, dtype, out)


@overload
def softplus(x: NumPyInput, /, *, dtype: Any = ..., out: Any = ...) -> NDArray[Any]: ...
@overload
def softplus(x: ArrayT, /, *, dtype: Any = ..., out: Any = ...) -> ArrayT: ...
def softplus(x: Any, /, *, dtype: Any = None, out: Any = None) -> Any:
    """``log(1 + exp(x))``, the smooth ReLU; ``softplus(x) - softplus(-x) = x``.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.softplus([-40.0, 0.0, 800.0])
    array([4.24835426e-18, 6.93147181e-01, 8.00000000e+02])
    """
    return _elementwise(generic.softplus, "softplus", x, dtype, out)


@overload
def softmax_jacobian(x: NumPyInput, /, axis: int = ..., *, temperature: float = ...) -> NDArray[Any]: ...
@overload
def softmax_jacobian(x: ArrayT, /, axis: int = ..., *, temperature: float = ...) -> ArrayT: ...
def softmax_jacobian(x: Any, /, axis: int = -1, *, temperature: float = 1.0) -> Any:
    """The Jacobian of ``softmax(x, axis)``: ``(diag(s) - s s^T) / T``, shape ``(..., n, n)``.

    The leading dimensions are those of ``x`` without ``axis``. Costs O(n²) memory per row;
    use :func:`softmax_vjp` / :func:`softmax_jvp` to apply it without building it.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.softmax_jacobian([0.0, 0.0])
    array([[ 0.25, -0.25],
           [-0.25,  0.25]])
    >>> sk.softmax_jacobian([[1.0, 2.0, 3.0]] * 4).shape
    (4, 3, 3)
    """
    x = in_jax_if_traced(as_array(x), temperature)
    xp = namespace(x)
    a = single_axis(axis, x.ndim, "softmax_jacobian")
    out_dtype = result_dtype(xp, x, None, allow_complex=False, name="softmax_jacobian")
    t = _temperature(temperature)
    return generic.softmax_jacobian(x, a, temperature=t, dtype=out_dtype)


def _product(function: str, first: Any, g: Any, axis: Axis, engine: EngineName | None) -> Array:
    first = in_jax_if_traced(as_array(first, "s"), g)
    xp = namespace(first)
    g = as_array(g, "g")
    if namespace(g) is not xp:
        g = xp.asarray(g)
    if tuple(g.shape) != tuple(first.shape):
        raise ValueError(f"{function}: g has shape {tuple(g.shape)}, expected {tuple(first.shape)}")
    axes = normalize_axes(axis, first.ndim)
    out_dtype = result_dtype(xp, first, None, allow_complex=False, name=function)
    return call_engine(function, engine, first, g, axes, dtype=out_dtype)


@overload
def softmax_vjp(
    s: NumPyInput, g: Any, /, axis: Axis = ..., *, engine: EngineName | None = ...
) -> NDArray[Any]: ...
@overload
def softmax_vjp(s: ArrayT, g: Any, /, axis: Axis = ..., *, engine: EngineName | None = ...) -> ArrayT: ...
def softmax_vjp(s: Any, g: Any, /, axis: Axis = -1, *, engine: EngineName | None = None) -> Any:
    """Vector-Jacobian product of softmax: ``s * (g - sum(g * s))`` with ``s = softmax(x)``.

    O(n) per row; the Jacobian is never built. This is the backward pass of softmax.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> s = sk.softmax([1.0, 2.0, 3.0])
    >>> sk.softmax_vjp(s, [1.0, 0.0, 0.0])
    array([ 0.08192507, -0.02203304, -0.05989202])
    """
    return _product("softmax_vjp", s, g, axis, engine)


@overload
def softmax_jvp(
    s: NumPyInput, v: Any, /, axis: Axis = ..., *, engine: EngineName | None = ...
) -> NDArray[Any]: ...
@overload
def softmax_jvp(s: ArrayT, v: Any, /, axis: Axis = ..., *, engine: EngineName | None = ...) -> ArrayT: ...
def softmax_jvp(s: Any, v: Any, /, axis: Axis = -1, *, engine: EngineName | None = None) -> Any:
    """Jacobian-vector product of softmax, ``J v``; equals the vjp since ``J`` is symmetric.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> s = sk.softmax([1.0, 2.0, 3.0])
    >>> sk.softmax_jvp(s, [1.0, 1.0, 1.0])  # shifting all logits changes nothing
    array([0., 0., 0.])
    """
    return _product("softmax_jvp", s, v, axis, engine)


@overload
def log_softmax_vjp(
    logp: NumPyInput, g: Any, /, axis: Axis = ..., *, engine: EngineName | None = ...
) -> NDArray[Any]: ...
@overload
def log_softmax_vjp(
    logp: ArrayT, g: Any, /, axis: Axis = ..., *, engine: EngineName | None = ...
) -> ArrayT: ...
def log_softmax_vjp(logp: Any, g: Any, /, axis: Axis = -1, *, engine: EngineName | None = None) -> Any:
    """Vector-Jacobian product of log_softmax: ``g - exp(logp) * sum(g)``.

    Entries with ``logp == -inf`` (excluded inputs) get 0 and their ``g`` takes no part.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> logp = sk.log_softmax([0.0, 0.0])
    >>> sk.log_softmax_vjp(logp, [1.0, 0.0])
    array([ 0.5, -0.5])
    """
    return _product("log_softmax_vjp", logp, g, axis, engine)


_REDUCTIONS: tuple[Reduction, ...] = get_args(Reduction)


@overload
def cross_entropy(
    logits: NumPyInput, target: Any, /, axis: int = ..., *, weight: Any = ...,
    ignore_index: int | None = ..., label_smoothing: float = ..., reduction: Reduction = ...,
    return_grad: Literal[False] = ..., engine: EngineName | None = ...,
) -> NumPyValue: ...
@overload
def cross_entropy(
    logits: ArrayT, target: Any, /, axis: int = ..., *, weight: Any = ...,
    ignore_index: int | None = ..., label_smoothing: float = ..., reduction: Reduction = ...,
    return_grad: Literal[False] = ..., engine: EngineName | None = ...,
) -> ArrayT: ...
@overload
def cross_entropy(
    logits: NumPyInput, target: Any, /, axis: int = ..., *, weight: Any = ...,
    ignore_index: int | None = ..., label_smoothing: float = ..., reduction: Reduction = ...,
    return_grad: Literal[True], engine: EngineName | None = ...,
) -> tuple[NumPyValue, NDArray[Any]]: ...
@overload
def cross_entropy(
    logits: ArrayT, target: Any, /, axis: int = ..., *, weight: Any = ...,
    ignore_index: int | None = ..., label_smoothing: float = ..., reduction: Reduction = ...,
    return_grad: Literal[True], engine: EngineName | None = ...,
) -> tuple[ArrayT, ArrayT]: ...
@overload
def cross_entropy(
    logits: Any, target: Any, /, axis: int = ..., *, weight: Any = ...,
    ignore_index: int | None = ..., label_smoothing: float = ..., reduction: Reduction = ...,
    return_grad: bool, engine: EngineName | None = ...,
) -> Any: ...
def cross_entropy(
    logits: Any, target: Any, /, axis: int = -1, *, weight: Any = None,
    ignore_index: int | None = None, label_smoothing: float = 0.0, reduction: Reduction = "mean",
    return_grad: bool = False, engine: EngineName | None = None,
) -> Any:
    """Cross-entropy between ``softmax(logits)`` and a target, as PyTorch's ``F.cross_entropy``.

    Parameters
    ----------
    logits : array
        Unnormalised scores; the classes run along ``axis``.
    target : array
        Class indices (integers, the shape of ``logits`` without ``axis``), or class
        probabilities (the shape of ``logits``).
    axis : int
        The class axis.
    weight : array of shape (n_classes,), optional
        Per-class weights, also applied inside the smoothing term.
    ignore_index : int, optional
        Class-index targets equal to it count for nothing: not in the loss, not in the mean's
        denominator, not in the gradient.
    label_smoothing : float in [0, 1]
        Mixes the target with the uniform distribution.
    reduction : {"mean", "sum", "none"}
        ``"mean"`` divides by the summed weight of the counted samples (class indices) or by
        the number of samples (probabilities), as PyTorch does; with nothing counted it is NaN.
        ``"none"`` returns each sample's loss.
    return_grad : bool
        Also return the gradient with respect to ``logits`` from the same pass,
        ``(softmax - target) * scale`` (for ``"none"``: of each sample's own loss).
    engine : str, optional
        Force an engine.

    Returns
    -------
    array or (array, array)
        The loss, and ``dloss/dlogits`` if asked.

    Notes
    -----
    Labels out of range raise ``ValueError``. Inside a JAX transformation (``jax.jit``,
    ``jax.vmap``, ``jax.grad``, ...) traced labels have no values to check: an out-of-range
    one gives NaN as its sample's loss and gradient (and so a NaN mean or sum). A traced
    ``label_smoothing`` outside [0, 1] gives NaN. ``weight`` and ``label_smoothing`` may be
    traced and differentiated.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> logits = [[3.2, 1.3, 0.2, 0.8], [0.1, 2.0, 0.3, 0.0]]
    >>> float(sk.cross_entropy(logits, [0, 1]))  # as torch.nn.functional.cross_entropy
    0.31915957438958975
    >>> loss, grad = sk.cross_entropy(logits, [0, 1], return_grad=True)
    >>> grad.round(4)
    array([[-0.1124,  0.058 ,  0.0193,  0.0352],
           [ 0.051 , -0.1593,  0.0622,  0.0461]])
    """
    logits = in_jax_if_traced(as_array(logits, "logits"), target, weight, label_smoothing)
    xp = namespace(logits)
    if ignore_index is not None:
        ignore_index = check_index(ignore_index, "cross_entropy: ignore_index")
    smoothing = (traced_fraction(label_smoothing, "label_smoothing") if is_traced(label_smoothing)
                 else check_real(label_smoothing, "cross_entropy: label_smoothing"))
    want_grad = check_flag(return_grad, "cross_entropy: return_grad")
    if not isinstance(reduction, str):
        raise TypeError(f"cross_entropy: reduction must be a string, got {reduction!r}")
    given = as_array(target, "target")
    target = given if namespace(given) is xp else in_namespace_of(xp, given, logits)
    a = single_axis(axis, logits.ndim, "cross_entropy")
    out_dtype = result_dtype(xp, logits, None, allow_complex=False, name="cross_entropy")
    n_classes = logits.shape[a]
    class_shape = reduced_shape(tuple(logits.shape), (a,), keepdims=False)
    if tuple(target.shape) == class_shape and target.ndim == logits.ndim - 1:
        if not xp.isdtype(target.dtype, "integral"):
            raise TypeError(f"cross_entropy: class-index targets must be integers, got {target.dtype}")
        # Checked in the library they come in: NumPy labels of Dask logits at once.
        checked = check_labels(given, n_classes, ignore_index, "cross_entropy")
        if checked is not given:
            target = checked
    elif tuple(target.shape) == tuple(logits.shape):
        if not xp.isdtype(target.dtype, "real floating"):
            raise TypeError(f"cross_entropy: probability targets must be floats, got {target.dtype}")
        if ignore_index is not None:
            raise ValueError("cross_entropy: ignore_index applies to class-index targets only")
    else:
        raise ValueError(
            f"cross_entropy: target of shape {tuple(target.shape)} fits neither class indices "
            f"{class_shape} nor probabilities {tuple(logits.shape)}"
        )
    if weight is not None:
        weight = as_array(weight, "weight")
        if namespace(weight) is not xp:
            weight = in_namespace_of(xp, weight, logits)
        if tuple(weight.shape) != (n_classes,):
            raise ValueError(f"cross_entropy: weight must have shape ({n_classes},), "
                             f"got {tuple(weight.shape)}")
    if not is_traced(label_smoothing) and not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return call_engine(
        "cross_entropy", engine, logits, target, a, weight=weight, ignore_index=ignore_index,
        label_smoothing=smoothing, reduction=reduction, return_grad=want_grad, dtype=out_dtype,
    )


@overload
def one_hot(labels: NumPyInput, num_classes: int | None = ..., *, dtype: Any = ...) -> NDArray[Any]: ...
@overload
def one_hot(labels: ArrayT, num_classes: int | None = ..., *, dtype: Any = ...) -> ArrayT: ...
def one_hot(labels: Any, num_classes: int | None = None, *, dtype: Any = float) -> Any:
    """Class indices as one-hot rows along a new last axis.

    Parameters
    ----------
    labels : array of int
        Class indices in ``[0, num_classes)``, any shape.
    num_classes : int, optional
        Defaults to ``max(labels) + 1``.
    dtype : dtype
        ``float`` (the default) means the array library's default float, ``int`` its default
        integer, ``bool`` booleans.

    Notes
    -----
    Labels out of range raise ``ValueError``. Traced JAX labels (inside ``jax.jit``, ...) are
    not checked: ``num_classes`` must be given, and an out-of-range label gives an all-zero
    row, as ``jax.nn.one_hot`` does.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.one_hot([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]])
    """
    given = labels
    labels = as_array(labels, "labels")
    xp = namespace(labels)
    if labels is not given and not math.prod(labels.shape):  # [] reads as float64: no labels
        labels = xp.astype(labels, xp.int64)
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"one_hot: labels must be integers, got {labels.dtype}")
    if num_classes is None:
        if is_traced(labels):
            raise TypeError("one_hot: num_classes must be given for traced labels (inside jax.jit, "
                            "jax.vmap, ...): the result's shape cannot depend on their values")
        num_classes = int(xp.max(labels)) + 1 if math.prod(labels.shape) else 0
    num_classes = check_index(num_classes, "one_hot: num_classes")
    if num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be a non-negative int, got {num_classes!r}")
    labels = check_labels(labels, int(num_classes), None, "one_hot")
    info = xp.__array_namespace_info__().default_dtypes(device=device_of(labels))
    resolved = {float: info["real floating"], int: info["integral"], bool: xp.bool}.get(dtype)
    return generic.one_hot(labels, int(num_classes), dtype=resolved or resolve_dtype(xp, dtype))


def _as_names(indices: Array, labels: ClassNames | None, n_classes: int) -> Any:
    if labels is None:
        return indices
    if is_traced(indices):
        raise TypeError("labels= gives a NumPy array of names, which cannot be built inside a JAX "
                        "transformation; map the indices to names outside it")
    if len(labels) != n_classes:
        raise ValueError(f"labels has {len(labels)} names for {n_classes} classes")
    return generic.names_of(indices, labels)


@overload
def predict(x: NumPyInput, /, axis: int = ..., *, labels: None = ...) -> NumPyValue: ...
@overload
def predict(x: ArrayT, /, axis: int = ..., *, labels: None = ...) -> ArrayT: ...
@overload
def predict(x: Any, /, axis: int = ..., *, labels: ClassNames) -> NumPyValue: ...
def predict(x: Any, /, axis: int = -1, *, labels: ClassNames | None = None) -> Any:
    """The predicted class along ``axis``: the index of the largest logit or probability.

    With ``labels`` (one name per class) the names are returned, as a NumPy array.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.predict([[1.25, 2.44, 0.78, 0.12]], labels=["cat", "dog", "tiger", "none"])
    array(['dog'], dtype='<U5')
    """
    x = as_array(x)
    xp = namespace(x)
    a = single_axis(axis, x.ndim, "predict")
    if x.shape[a] == 0:
        raise ValueError("predict: there are no classes along the axis")
    result_dtype(xp, x, None, allow_complex=False, name="predict")
    return _as_names(generic.predict(x, a), labels, x.shape[a])


@overload
def top_k(
    x: NumPyInput, /, k: int, axis: int = ..., *, labels: ClassNames | None = ...
) -> tuple[NDArray[Any], NDArray[Any]]: ...
@overload
def top_k(x: ArrayT, /, k: int, axis: int = ..., *, labels: None = ...) -> tuple[ArrayT, ArrayT]: ...
@overload
def top_k(x: ArrayT, /, k: int, axis: int = ..., *, labels: ClassNames) -> tuple[ArrayT, NDArray[Any]]: ...
def top_k(x: Any, /, k: int, axis: int = -1, *, labels: ClassNames | None = None) -> tuple[Any, Any]:
    """The ``k`` largest entries along ``axis``, largest first: ``(values, indices)``.

    Ties keep index order. With ``labels`` the indices are replaced by names.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> p = sk.softmax([3.2, 1.3, 0.2, 0.8])
    >>> values, names = sk.top_k(p, 2, labels=["cat", "dog", "tiger", "none"])
    >>> values.round(3), names
    (array([0.775, 0.116]), array(['cat', 'dog'], dtype='<U5'))
    """
    x = as_array(x)
    xp = namespace(x)
    a = single_axis(axis, x.ndim, "top_k")
    result_dtype(xp, x, None, allow_complex=False, name="top_k")
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 1 <= k <= x.shape[a]:
        raise ValueError(f"top_k: k must be an int in [1, {x.shape[a]}], got {k!r}")
    values, indices = generic.top_k(x, int(k), a)
    return values, _as_names(indices, labels, x.shape[a])
