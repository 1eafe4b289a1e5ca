"""Array plumbing shared by the API and the engines: namespaces, axes, dtypes, shapes.

Nothing here computes a softmax; it turns user arguments into checked, normalised values
and moves arrays between the user's layout and the ``(rows, n)`` layout the kernels use.
"""

from __future__ import annotations

import functools
import math
import numbers
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from softmaxkit._numpy_namespace import COMPAT_NAME, NUMPY

Array = Any
"""Any array of a library that implements the Python array API standard."""


def namespace(*arrays: Array) -> Any:
    """The array-API namespace of ``arrays`` (``None`` entries are skipped).

    NumPy's is :data:`softmaxkit._numpy_namespace.NUMPY`: ``array_api_compat.numpy``, imported
    when a call needs more of it than NumPy's own ``isdtype`` and ``any``.
    """
    import array_api_compat

    if len(arrays) == 1 and type(arrays[0]) in _NAMESPACE_BY_TYPE:
        return _NAMESPACE_BY_TYPE[type(arrays[0])]
    xp = array_api_compat.array_namespace(*[a for a in arrays if a is not None])
    if getattr(xp, "__name__", None) == COMPAT_NAME:  # NumPy scalars, subclasses, several arrays
        xp = NUMPY
    if len(arrays) == 1 and ((array_api_compat.is_numpy_array(arrays[0]) and not _is_masked(arrays[0]))
                             or array_api_compat.is_torch_array(arrays[0])):
        # One namespace per class for these (array-api-compat's wrappers): every call asks, and
        # array_namespace costs about half a microsecond, a tenth of a 64 x 10 softmax.
        _NAMESPACE_BY_TYPE[type(arrays[0])] = xp
    return xp


_NAMESPACE_BY_TYPE: dict[type, Any] = {np.ndarray: NUMPY}


def as_array(x: Any, name: str = "x") -> Array:
    """``x`` itself when it is an array; NumPy's view of a list, tuple or Python number."""
    import array_api_compat

    if type(x) in _NAMESPACE_BY_TYPE:  # known array classes first
        return x
    if _is_masked(x):  # never cached above: as_array must see each one
        return unmasked(x, name)
    if array_api_compat.is_array_api_obj(x):
        return x
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be an array or a sequence of numbers: {exc}") from None


def _is_masked(x: Any) -> bool:
    """A NumPy masked array, or a Dask array of masked chunks."""
    masked = sys.modules.get("numpy.ma")  # not imported by NumPy itself: no masked array without it
    if masked is None:
        return False
    import array_api_compat

    return isinstance(x, masked.MaskedArray) or (array_api_compat.is_dask_array(x)
                                                 and isinstance(x._meta, masked.MaskedArray))


def unmasked(x: Any, name: str) -> Any:
    """``x`` itself, or a masked array's data when nothing in it is masked. A mask is never
    dropped silently (NumPy's ``asarray`` and SciPy do): the result would count the masked
    entries. A Dask array of masked chunks is refused whole (its masks are not known yet)."""
    if not _is_masked(x):
        return x
    if isinstance(x, np.ndarray):
        if not np.ma.getmaskarray(x).any():
            return np.asarray(x.data)
        what, filled = "a masked array with masked entries", f"{name}.filled(value)"
    else:
        what, filled = "a Dask array of masked chunks", f"dask.array.ma.filled({name}, value)"
    hint = ("; to leave masked logits out of a softmax, log_softmax or logsumexp instead, pass "
            "the data with where=~mask" if name in ("x", "logits") else "")
    raise TypeError(f"{name} is {what}, and softmaxkit does not read masks: pass {filled}{hint}")


def device_of(x: Array) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


def is_half(dtype: Any) -> bool:
    """float16 or bfloat16 of any library (ml_dtypes' bfloat16 is no NumPy float kind)."""
    if isinstance(dtype, np.dtype):  # str() of a NumPy dtype costs microseconds on every call
        return (dtype.kind == "f" and dtype.itemsize == 2) or dtype.type.__name__ == "bfloat16"
    return str(dtype).rsplit(".", 1)[-1] in ("float16", "bfloat16")


def is_real_float(xp: Any, dtype: Any) -> bool:
    # The namespace's answer first (cached per dtype); is_half catches ml_dtypes' bfloat16,
    # which NumPy's namespace does not call floating.
    return _isdtype(xp, dtype, "real floating") or is_half(dtype)


def _isdtype(xp: Any, dtype: Any, kind: str | tuple[str, ...]) -> bool:
    try:
        return _isdtype_cached(xp, dtype, kind)
    except TypeError:  # an unhashable dtype object: ask the namespace each time
        return _isdtype_uncached(xp, dtype, kind)


@functools.lru_cache(maxsize=1024)
def _isdtype_cached(xp: Any, dtype: Any, kind: str | tuple[str, ...]) -> bool:
    # Every call asks this of its input's dtype; array-api-compat's isdtype costs about a
    # microsecond for torch dtypes, a tenth of a 64 x 10 softmax.
    return _isdtype_uncached(xp, dtype, kind)


def _isdtype_uncached(xp: Any, dtype: Any, kind: str | tuple[str, ...]) -> bool:
    try:
        return bool(xp.isdtype(dtype, kind))
    except TypeError:  # dtypes the namespace does not know (e.g. ml_dtypes in NumPy)
        return False


def default_float(xp: Any, x: Array) -> Any:
    info = xp.__array_namespace_info__()
    return info.default_dtypes(device=device_of(x))["real floating"]


def resolve_dtype(xp: Any, dtype: Any) -> Any:
    """A user's ``dtype=`` as a dtype of ``xp`` (names like ``"float32"`` work everywhere)."""
    if isinstance(dtype, str):
        if not hasattr(xp, dtype):
            raise TypeError(f"unknown dtype {dtype!r} for {xp.__name__}")
        return getattr(xp, dtype)
    if xp.__name__.endswith("numpy") and not isinstance(dtype, np.dtype):
        try:
            return np.dtype(dtype)
        except TypeError as exc:
            raise TypeError(f"unknown dtype {dtype!r}: {exc}") from None
    if xp.__name__.endswith("torch"):
        return _torch_dtype(dtype)
    return dtype


def _torch_dtype(dtype: Any) -> Any:
    """A NumPy dtype (or Python type) for a tensor as torch's dtype of that name: torch's
    namespace knows only its own (``isdtype`` raised AttributeError on ``np.float64``)."""
    torch = sys.modules["torch"]  # loaded: the array is a tensor
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError as exc:
        raise TypeError(f"unknown dtype {dtype!r}: {exc}") from None
    if not isinstance(getattr(torch, name, None), torch.dtype):
        raise TypeError(f"unknown dtype {dtype!r} for torch tensors")
    return getattr(torch, name)


def result_dtype(xp: Any, x: Array, dtype: Any, *, allow_complex: bool, name: str) -> Any:
    """The dtype of the result: ``dtype=`` if given, else a float input's own, else the default.

    Integer and boolean input give the namespace's default float (float64 for NumPy).
    """
    if dtype is not None:
        out = resolve_dtype(xp, dtype)
        ok = is_real_float(xp, out) or (allow_complex and _isdtype(xp, out, "complex floating"))
        if not ok:
            raise TypeError(f"{name}: dtype must be a floating dtype, got {out}")
        if not allow_complex and _isdtype(xp, x.dtype, "complex floating"):
            # A real dtype= does not make complex input real (NumPy's cast drops the imaginary parts).
            raise TypeError(f"{name} is not defined for complex input (dtype {x.dtype})")
        return out
    if is_real_float(xp, x.dtype):
        return x.dtype
    if _isdtype(xp, x.dtype, "complex floating"):
        if allow_complex:
            return x.dtype
        raise TypeError(f"{name} is not defined for complex input (dtype {x.dtype})")
    if _isdtype(xp, x.dtype, "integral") or _isdtype(xp, x.dtype, "bool"):
        return default_float(xp, x)
    raise TypeError(f"{name} needs numbers, got dtype {x.dtype}")


def promoted_dtype(xp: Any, x: Array, b: Array) -> Any:
    """The dtype of ``x`` and ``b`` promoted together, never integral: ``logsumexp(x, b=b)``'s.

    SciPy's rule: the library's own promotion with a Python float (integers give the default
    float); where the library refuses to mix integers and floats (array-api-strict), the
    floats present promoted with the default float.
    """
    try:
        return xp.result_type(x.dtype, b.dtype, 1.0)
    except TypeError:
        kinds = ("real floating", "complex floating")
        floats = [d for d in (x.dtype, b.dtype) if is_half(d) or _isdtype(xp, d, kinds)]
        return xp.result_type(*floats, default_float(xp, x))


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """Half types accumulate in float32 (SPEC §2); every other float computes in itself."""
    return xp.float32 if is_half(dtype) else dtype


def normalize_axes(axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """``axis`` (int, tuple of ints, or None for all) as sorted non-negative ints.

    A 0-d array has no axes: ``-1``, ``0`` and ``None`` all mean "the one element".
    """
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int and -ndim <= axis < ndim:  # the common call, without the checks below
        return (axis % ndim,)
    try:
        items: tuple[Any, ...] = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    except TypeError:
        raise TypeError(f"{name} must be an int, a tuple of ints or None, got {axis!r}") from None
    if ndim == 0:
        if all(isinstance(a, numbers.Integral) and a in (0, -1) for a in items):
            return ()
        raise ValueError(f"{name} {axis!r} is out of bounds for a 0-d array")
    axes: list[int] = []
    for item in items:
        if not isinstance(item, numbers.Integral) or isinstance(item, bool):
            raise TypeError(f"{name} must be an int, a tuple of ints or None, got {axis!r}")
        a = int(item)
        if not -ndim <= a < ndim:
            raise ValueError(f"{name} {a} is out of bounds for an array of dimension {ndim}")
        axes.append(a % ndim)
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axis in {name} {axis!r}")
    return tuple(sorted(axes))


def single_axis(axis: Any, ndim: int, name: str) -> int:
    """An ``axis`` that must name exactly one axis (functions whose result gains or keeps it)."""
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{name}: axis must be a single int, got {axis!r}")
    if ndim == 0:
        raise ValueError(f"{name} needs at least one dimension")
    (a,) = normalize_axes(axis, ndim)
    return a


def broadcast_shape(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to ``target`` without enlarging it."""
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(shape[::-1], target[::-1], strict=False))


def check_mask(xp: Any, where: Any, x: Array) -> Array | None:
    """``where`` as a boolean array of ``xp`` of exactly ``x``'s shape (broadcast), on ``x``'s
    device, or None."""
    if where is None:
        return None
    mask = as_array(where, "where")
    if not _isdtype(namespace(mask), mask.dtype, "bool"):
        raise TypeError(f"where must be a boolean mask, got dtype {mask.dtype}")
    shape = tuple(x.shape)  # a torch.Size to tuple costs a quarter of a microsecond
    if not broadcast_shape(tuple(mask.shape), shape):
        raise ValueError(f"where of shape {tuple(mask.shape)} does not broadcast to x's shape {shape}")
    if namespace(mask) is not xp:
        mask = in_namespace_of(xp, np.asarray(mask), x)
    return xp.broadcast_to(mask, shape)


def in_namespace_of(xp: Any, value: Any, like: Array) -> Array:
    """``value``, an array of another library (a NumPy mask, labels or weights), as an array of
    ``xp`` on ``like``'s device: the kernels read it where they read ``like`` (a GPU tensor's
    mask on that GPU, not in host memory)."""
    return xp.asarray(value, device=device_of(like))


def check_real(value: Any, name: str) -> float:
    """``value`` as a float if it is a real number (a Python or NumPy number, or a 0-d real
    array); strings and booleans raise TypeError rather than being converted."""
    if type(value) is float:  # the common call, without the checks below
        return value
    is_real = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if not is_real and getattr(value, "ndim", None) == 0 and hasattr(value, "dtype"):
        # A 0-d array of any library (a NumPy, torch or JAX scalar array): its dtype's name.
        is_real = str(value.dtype).rsplit(".", 1)[-1].startswith(("float", "int", "uint", "bfloat"))
    if not is_real:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float64 (10**400): as large as a float can say
        return math.inf if value > 0 else -math.inf


def check_flag(value: Any, name: str) -> bool:
    """A boolean option: ``True``/``False`` (or NumPy's booleans) only, so that a string such
    as ``"no"`` is not silently true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_index(value: Any, name: str) -> int:
    """An integer option (booleans are not integers here)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


def check_temperature(temperature: Any) -> float:
    t = check_real(temperature, "temperature")
    # Comparisons, not math.isfinite: under torch.compile(dynamic=True) t may be a symbolic
    # float, which Dynamo can compare but not pass to math functions. NaN fails both.
    if not 0 < t < math.inf:
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    return t


def check_out(xp: Any, out: Any, shape: tuple[int, ...], name: str) -> None:
    if out is None:
        return
    import array_api_compat

    if array_api_compat.is_jax_array(out):
        raise TypeError(f"{name}: JAX arrays are immutable, out= cannot be used with them")
    if not array_api_compat.is_array_api_obj(out) or namespace(out) is not xp:
        raise TypeError(f"{name}: out must be an array of the same library as x, got {type(out)}")
    if tuple(out.shape) != shape:
        raise ValueError(f"{name}: out has shape {tuple(out.shape)}, the result has shape {shape}")
    if isinstance(out, np.ndarray) and not out.flags.writeable:
        # Checked here so that every engine refuses it alike, before any work.
        raise ValueError(f"{name}: out is read-only")
    if not is_real_float(xp, out.dtype):
        raise TypeError(f"{name}: out must have a floating dtype, got {out.dtype}")


def check_labels(labels: Array, n_classes: int, ignore_index: int | None, name: str) -> Array:
    """Raise ValueError naming the first label outside ``[0, n_classes)`` (ignored ones pass).

    Returns the labels. Reading a Dask array's labels would compute them, so for a Dask array
    the returned labels are checked block by block when computed: ``compute()`` raises.
    Traced JAX labels (inside ``jax.jit``, ``jax.vmap``, ...) have no values to check: they
    are returned unchecked, and the engines give NaN for an out-of-range label instead. Torch
    tensors being compiled (``torch.compile``) are returned unchecked too: reading them would
    break the graph, and the torch engine checks the labels when its kernel runs, raising the
    same error from the compiled graph; so are tensors inside ``torch.func`` transforms
    (``vmap``), whose values only the kernel of each batch member sees.
    """
    import array_api_compat

    from softmaxkit._jax import is_concrete_jax_array, is_traced

    if ignore_index is not None and not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"{name}: ignore_index must be an int, got {ignore_index!r}")
    if array_api_compat.is_dask_array(labels):
        import dask.array as da
        from dask.array.utils import meta_from_array

        check = functools.partial(check_labels, n_classes=n_classes, ignore_index=ignore_index, name=name)
        return da.map_blocks(check, labels, dtype=labels.dtype, token="checked-labels",
                             meta=meta_from_array(labels, ndim=labels.ndim, dtype=labels.dtype))
    if is_traced(labels) or (array_api_compat.is_torch_array(labels)
                             and (torch_compiling() or _torch_transformed(labels))):
        return labels
    if is_concrete_jax_array(labels):
        # Checked on the host: inside a JAX trace, operations on a closed-over concrete array
        # are traced too, and their result could not be read.
        check_labels(np.asarray(labels), n_classes, ignore_index, name)
        return labels
    if array_api_compat.is_torch_array(labels) and labels.is_cpu and type(labels).__name__ == "Tensor":
        # NumPy reads a CPU tensor's memory in place: half the time of torch's small ops.
        check_labels(cpu_tensor_view(labels), n_classes, ignore_index, name)
        return labels
    xp = namespace(labels)
    bad = (labels < 0) | (labels >= n_classes)
    if ignore_index is not None:
        bad = bad & (labels != ignore_index)
    if bool(xp.any(bad)):
        flat_bad = xp.reshape(bad, (-1,))
        first = xp.reshape(labels, (-1,))[int(xp.argmax(xp.astype(flat_bad, xp.int8)))]
        raise ValueError(f"{name}: label {int(first)} is out of range for {n_classes} classes")
    return labels


class _TensorMemory:
    """A CPU tensor's memory as NumPy's array interface describes it; it keeps the tensor alive."""

    __slots__ = ("__array_interface__", "tensor")
    __array_interface__: dict[str, Any]
    tensor: Any


_TENSOR_TYPESTR = {
    "torch.float16": "<f2", "torch.bfloat16": "<u2", "torch.float32": "<f4", "torch.float64": "<f8",
    "torch.int8": "|i1", "torch.uint8": "|u1", "torch.int16": "<i2", "torch.int32": "<i4",
    "torch.int64": "<i8", "torch.bool": "|b1", "torch.complex64": "<c8", "torch.complex128": "<c16",
}
_typestr_of_dtype: dict[Any, str] = {}  # the same, keyed by the torch dtype objects met so far


def cpu_tensor_view(t: Any, writable: bool = False) -> np.ndarray:
    """A NumPy view of a CPU tensor's memory, without ``t.numpy()`` (bfloat16 as ml_dtypes').

    ``t.numpy()`` marks the tensor's storage as shared with NumPy, which torch then refuses
    to grow for good (``t.resize_`` raises): a lasting change to the caller's tensor. The array
    interface shares the memory and changes nothing; the view is read-only unless ``writable``.
    """
    typestr = _typestr_of_dtype.get(t.dtype)
    if typestr is None:
        typestr = _TENSOR_TYPESTR.get(str(t.dtype))
        if typestr is None:
            raise TypeError(f"no NumPy view of a {t.dtype} tensor")
        _typestr_of_dtype[t.dtype] = typestr
    if not t.is_cpu:
        raise TypeError(f"no NumPy view of a tensor on {t.device}")
    if t.is_neg():  # a view that negates on read (z.conj().imag): its memory holds -t
        t = t.resolve_neg()
    if t.numel() == 0:
        view = np.empty(tuple(t.shape), typestr)
    else:
        memory = _TensorMemory()  # built inline: this runs on every call, twice for a softmax
        memory.tensor = t
        strides = None if t.is_contiguous() else tuple(s * t.element_size() for s in t.stride())
        memory.__array_interface__ = {"data": (t.data_ptr(), not writable), "shape": t.shape,
                                      "strides": strides, "typestr": typestr, "version": 3}
        view = np.asarray(memory)
    if typestr == "<u2":  # bfloat16's bits
        import ml_dtypes

        return view.view(ml_dtypes.bfloat16)
    return view


def _torch_transformed(t: Any) -> bool:
    """Whether a tensor is wrapped by a ``torch.func`` transform (it has no memory to read)."""
    return bool(sys.modules["torch"]._C._functorch.is_functorch_wrapped_tensor(t))


def torch_compiling() -> bool:
    """Whether ``torch.compile`` is tracing the current call (imports nothing)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.compiler.is_compiling()


def rows_view(xp: Any, x: Array, axes: tuple[int, ...]) -> tuple[Array, Callable[[Array], Array]]:
    """``x`` as a 2-d ``(rows, n)`` array whose rows run over ``axes``, and the inverse map.

    The reduced axes are moved last and flattened: the kernels then see one layout, the
    sums run along contiguous memory (NumPy's pairwise summation applies there, so the
    error does not grow with the row length), and tuple axes cost nothing extra.
    """
    kept = [d for d in range(x.ndim) if d not in axes]
    perm = kept + list(axes)
    moved = x if perm == list(range(x.ndim)) else xp.permute_dims(x, tuple(perm))
    moved_shape = tuple(moved.shape)
    n_rows = math.prod(moved_shape[: len(kept)])
    n = math.prod(moved_shape[len(kept) :])
    rows = xp.reshape(moved, (n_rows, n))
    inverse = tuple(int(i) for i in np.argsort(perm))

    def restore(r: Array) -> Array:
        r = xp.reshape(r, moved_shape)
        return r if perm == list(range(x.ndim)) else xp.permute_dims(r, inverse)

    return rows, restore


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if d in axes else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in axes)


def constant(xp: Any, value: float, like: Array) -> Array:
    """A 0-d array of ``like``'s dtype and device (some namespaces refuse Python scalars)."""
    return xp.asarray(value, dtype=like.dtype, device=device_of(like))


def quiet_floating_point(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function`` with NumPy's floating-point warnings off.

    The kernels settle every inf/NaN case explicitly (SPEC §2), and an overflow of
    ``x - max`` to ``-inf`` is the correctly rounded result, so the warnings are noise.
    """

    @functools.wraps(function)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)

    return quiet
