"""Differential fuzzing: every CPU engine against an extended-precision reference (issue 13).

Hypothesis draws arrays of random shapes, dtypes and layouts (transposed, Fortran-ordered,
negatively strided, stepped, read-only), values mixing ordinary logits with ±inf, NaN, the
dtype's largest and subnormal numbers and ties, random axes (ints, tuples, None), masks and
temperatures from 5e-324 to 1e300. Each engine that runs NumPy arrays (conftest's ``engine``
parameter: ``numpy-generic``, ``numpy-numba``), and ``dask`` on a chunked copy, must give
SPEC §2's answer: the edge cases of its table exactly, and elsewhere values within its bound
of a long-double (float64 inputs) or float64 reference (``tolerance``). Every engine must
also put its NaNs and infinities where the generic engine does, and give the generic engine's
very bits at the temperatures the kernels hand over to it.

The example counts keep the whole file to a few tens of seconds once the kernels are compiled.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as sk
from backends import forced
from softmaxkit.generic._temperature import reciprocal_is_accurate
from tolerance import arithmetic_eps, assert_log_softmax_within_bound, assert_softmax_within_bound

FUZZ = settings(max_examples=80, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_DASK = settings(FUZZ, max_examples=25)

DTYPES = [np.float32, np.float64, np.float16]
TEMPERATURES = [1.0, 2.0, 0.5, 1e-3, 1e3, 1e-30, 1e30, 1e-300, 5e-324, 1e39, 1e300]
"""Ordinary ones, and the ends where 1 / T or T itself leaves a dtype's range."""


def _specials(dtype: type) -> list[float]:
    info = np.finfo(dtype)
    return [math.inf, -math.inf, math.nan, float(info.max), -float(info.max), float(info.smallest_normal),
            float(info.smallest_subnormal), -float(info.smallest_subnormal), 0.0, -0.0]


@st.composite
def logit_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(DTYPES))
    width = np.dtype(dtype).itemsize * 8
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9) | st.sampled_from([0, 17, 40]), min_size=ndim,
                                max_size=ndim)))
    ordinary = st.floats(-30, 30, width=width) | st.integers(-3, 3).map(float)  # ties
    anything = st.floats(allow_nan=False, allow_infinity=False, width=width)
    x = draw(hnp.arrays(dtype, shape, elements=ordinary | anything if draw(st.booleans()) else ordinary))
    if x.size:  # a few special values at random places
        for _ in range(draw(st.integers(0, 3))):
            x.flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from(_specials(dtype)))
    return _relaid(draw, x)


def _relaid(draw: st.DrawFn, x: np.ndarray) -> np.ndarray:
    """The same values in another memory layout (the logical array is a transpose of ``x``)."""
    x = x.transpose(draw(st.permutations(range(x.ndim))))
    kind = draw(st.sampled_from(["c", "as_is", "fortran", "flipped", "stepped", "read_only"]))
    if kind == "c":
        return np.ascontiguousarray(x)
    if kind == "fortran":
        return np.asfortranarray(x)
    axis = draw(st.integers(0, x.ndim - 1))
    if kind == "flipped":
        return np.flip(np.flip(x, axis).copy(), axis)  # a view with a negative stride
    if kind == "stepped":
        index = (slice(None),) * axis + (slice(None, None, 2),)
        return np.repeat(x, 2, axis=axis)[index]
    if kind == "read_only":
        x = x.copy()
        x.flags.writeable = False
    return x


def _axes(draw: st.DrawFn, ndim: int) -> int | tuple[int, ...] | None:
    return draw(st.integers(-ndim, ndim - 1) | st.none()
                | st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))


def _mask(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray | None:
    if not draw(st.booleans()):
        return None
    # Full shape, or one that broadcasts (length-1 axes).
    mask_shape = tuple(draw(st.sampled_from([s, 1])) for s in shape)
    return draw(hnp.arrays(np.bool_, mask_shape))


# --- the reference: SPEC §2's rules, finite rows in extended precision ------------------------

def _as_rows(a: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...], list[int]]:
    kept = [d for d in range(a.ndim) if d not in axes]
    moved = np.transpose(a, kept + list(axes))
    n = math.prod(moved.shape[len(kept):])
    return moved.reshape(math.prod(moved.shape[:len(kept)]), n), moved.shape, kept + list(axes)


def _from_rows(r: np.ndarray, moved_shape: tuple[int, ...], perm: list[int]) -> np.ndarray:
    return np.transpose(r.reshape(moved_shape), np.argsort(perm))


def reference_softmax(x: np.ndarray, axes: tuple[int, ...], where: np.ndarray | None,
                      temperature: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, softmax, log_softmax)`` by SPEC §2; ``z`` is ``(x - max) / T`` on ordinary rows
    (0 on the special ones), for the bound."""
    ref = np.longdouble if x.dtype == np.float64 else np.float64
    xr = x.astype(ref)
    if where is not None:
        xr = np.where(np.broadcast_to(where, x.shape), xr, -np.inf)
    rows, moved_shape, perm = _as_rows(xr, axes)
    z = np.zeros_like(rows)
    p = np.zeros_like(rows)
    y = np.full_like(rows, -np.inf)
    with np.errstate(all="ignore"):
        for i, row in enumerate(rows):
            if np.isnan(row).any():
                p[i], y[i] = np.nan, np.nan
            elif (row == np.inf).any():
                k = np.count_nonzero(row == np.inf)
                p[i] = np.where(row == np.inf, 1 / ref(k), 0)
                y[i] = np.where(row == np.inf, -np.log(ref(k)), -np.inf)
            elif (row > -np.inf).any():
                z[i] = (row - row.max()) / ref(temperature)
                lse = np.log(np.sum(np.exp(z[i])))
                y[i] = z[i] - lse
                p[i] = np.exp(y[i])
                z[i] = np.where(np.isfinite(z[i]), z[i], 0)
    return tuple(_from_rows(a, moved_shape, perm) for a in (z, p, y))  # type: ignore[return-value]


def reference_logsumexp(x: np.ndarray, axes: tuple[int, ...], where: np.ndarray | None) -> np.ndarray:
    ref = np.longdouble if x.dtype == np.float64 else np.float64
    xr = x.astype(ref)
    if where is not None:
        xr = np.where(np.broadcast_to(where, x.shape), xr, -np.inf)
    rows, _, _ = _as_rows(xr, axes)
    out = np.empty(rows.shape[0], dtype=ref)
    with np.errstate(all="ignore"):
        for i, row in enumerate(rows):
            top = row.max() if row.size else -np.inf
            if np.isnan(row).any() or not np.isfinite(top):
                out[i] = np.nan if np.isnan(row).any() else top
            else:
                out[i] = top + np.log(np.sum(np.exp(row - top)))
    kept = [x.shape[d] for d in range(x.ndim) if d not in axes]
    return out.reshape(kept)


def _normal_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in ((axis,) if isinstance(axis, int) else axis)))


def _assert_same_specials(got: np.ndarray, generic: np.ndarray, engine: str) -> None:
    got, generic = np.asarray(got, dtype=np.float64), np.asarray(generic, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(generic), err_msg=f"NaNs of {engine}")
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(generic), err_msg=f"+inf of {engine}")


# --- the properties -------------------------------------------------------------------------

@st.composite
def softmax_cases(draw: st.DrawFn) -> tuple[np.ndarray, object, np.ndarray | None, float]:
    x = draw(logit_arrays())
    temperature = draw(st.sampled_from(TEMPERATURES) | st.floats(1e-30, 1e30))
    return x, _axes(draw, x.ndim), _mask(draw, x.shape), temperature


@FUZZ
@given(softmax_cases())
def test_softmax_and_log_softmax_of_every_engine_within_spec_of_the_reference(engine, case):
    x, axis, where, temperature = case
    axes = _normal_axes(axis, x.ndim)
    z, p_true, y_true = reference_softmax(x, axes, where, temperature)
    # Temperatures the kernels leave to the generic engine (registry gaps): its very bits.
    extreme = not reciprocal_is_accurate(temperature, np.float32 if x.dtype.itemsize == 2 else x.dtype)
    for function, check in (("softmax", "p"), ("log_softmax", "y")):
        generic = getattr(sk, function)(x, axis=axis, where=where, temperature=temperature, engine="generic")
        # A temperature beyond an engine's kernels is a registry gap: the automatic choice.
        got = forced(getattr(sk, function), x, axis=axis, where=where, temperature=temperature,
                     engine=engine)
        assert got.dtype == x.dtype and got.shape == x.shape
        if check == "p":
            assert_softmax_within_bound(got, z, p_true, axes, x.dtype)
        else:
            assert_log_softmax_within_bound(got, y_true, x.dtype)
        _assert_same_specials(got, generic, engine)
        if extreme:  # the limits: the same bits on every engine
            np.testing.assert_array_equal(got, generic, err_msg=engine)


@st.composite
def logsumexp_cases(draw: st.DrawFn) -> tuple[np.ndarray, object, np.ndarray | None, bool]:
    x = draw(logit_arrays())
    return x, _axes(draw, x.ndim), _mask(draw, x.shape), draw(st.booleans())


@FUZZ
@given(logsumexp_cases())
def test_logsumexp_of_every_engine_within_spec_of_the_reference(engine, case):
    x, axis, where, keepdims = case
    axes = _normal_axes(axis, x.ndim)
    want = reference_logsumexp(x, axes, where)
    if keepdims:
        want = want.reshape([1 if d in axes else s for d, s in enumerate(x.shape)])
    generic = sk.logsumexp(x, axis=axis, where=where, keepdims=keepdims, engine="generic")
    eps = arithmetic_eps(x.dtype)
    got = np.asarray(forced(sk.logsumexp, x, axis=axis, where=where, keepdims=keepdims, engine=engine))
    assert got.dtype == x.dtype and got.shape == want.shape
    _assert_same_specials(got, generic, engine)
    wide = got.astype(want.dtype)
    top = float(np.finfo(x.dtype).max)
    with np.errstate(invalid="ignore"):
        ok = (np.isnan(want) & np.isnan(wide)) | (wide == want) | (
            np.abs(wide - want) <= (8 * eps + float(np.finfo(x.dtype).eps)) * (1 + np.abs(want))
        ) | ((want > top) & (wide == np.inf))  # beyond the dtype's range: +inf
    assert ok.all(), f"{engine}: got {wide[~ok][:3]}, want {want[~ok][:3]}"


@FUZZ_DASK
@given(softmax_cases(), st.data())
def test_dask_engine_within_spec_of_the_reference(case, data):
    da = pytest.importorskip("dask.array")
    x, axis, where, temperature = case
    if x.size == 0:
        return
    chunks = tuple(data.draw(st.integers(1, max(1, s))) for s in x.shape)  # rows split across chunks
    lazy = da.from_array(np.ascontiguousarray(x), chunks=chunks)
    axes = _normal_axes(axis, x.ndim)
    z, p_true, y_true = reference_softmax(x, axes, where, temperature)
    with np.errstate(over="ignore"):  # see backends.to_numpy
        p = sk.softmax(lazy, axis=axis, where=where, temperature=temperature).compute()
        y = sk.log_softmax(lazy, axis=axis, where=where, temperature=temperature).compute()
        lse = np.asarray(sk.logsumexp(lazy, axis=axis, where=where).compute())
    assert_softmax_within_bound(p, z, p_true, axes, x.dtype)
    assert_log_softmax_within_bound(y, y_true, x.dtype)
    np.testing.assert_array_equal(np.isnan(lse), np.isnan(reference_logsumexp(x, axes, where)))
