"""``softmaxkit.scipy``: SciPy's signatures, defaults, return types and dtype rules.

SciPy's own test file runs against the face in ``tests/test_scipy_suite.py``; these tests
check the conventions directly against ``scipy.special`` and on every array library, and
pin each documented difference (softmaxkit's answer where SciPy gives NaN or raises).
"""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

import softmaxkit as sk
import softmaxkit.scipy as face
from backends import Backend, same_library, to_numpy

special = pytest.importorskip("scipy.special")

NAMES = ("softmax", "log_softmax", "logsumexp")
DTYPES = ("float32", "float64", "int32", "int64", "complex64", "complex128")


@pytest.mark.parametrize("name", NAMES)
def test_signature_is_scipys(name: str):
    ours, theirs = inspect.signature(getattr(face, name)), inspect.signature(getattr(special, name))
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
        (p.name, p.kind, p.default) for p in theirs.parameters.values()
    ]


def test_keywords_and_positional_b_as_in_scipy():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.5, 2.0])
    assert face.logsumexp(a=a, b=b) == face.logsumexp(a, None, b) == special.logsumexp(a, None, b)
    np.testing.assert_allclose(face.softmax(x=a), special.softmax(x=a), rtol=1e-15)
    np.testing.assert_allclose(face.log_softmax(x=a, axis=0), special.log_softmax(x=a, axis=0), rtol=1e-15)


def test_axis_none_is_the_default():
    x = np.array([[1.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(face.softmax(x), special.softmax(x), rtol=1e-15)
    assert face.softmax(x).sum() == pytest.approx(1.0)
    # The main API's default is the last axis, as in PyTorch and JAX.
    np.testing.assert_allclose(sk.softmax(x), special.softmax(x, axis=-1), rtol=1e-15)


@pytest.mark.parametrize(("call", "expected"), [
    (lambda: face.softmax(1000), 1.0),
    (lambda: face.log_softmax(1.0), 0.0),
    (lambda: face.logsumexp([1000, 1000]), 1000 + np.log(2)),
    (lambda: face.logsumexp(np.ones((2, 3)), axis=(0, 1)), 1 + np.log(6)),
    (lambda: face.logsumexp(np.float32(2.0)), 2.0),
])
def test_zero_d_numpy_results_are_numpy_scalars(call, expected):
    result = call()
    assert isinstance(result, np.generic) and not isinstance(result, np.ndarray)
    assert result == pytest.approx(expected)


def test_return_sign_gives_two_numpy_scalars():
    value, sign = face.logsumexp([1.0, 1.0, 1.0], b=[1.0, -1.0, -1.0], return_sign=True)
    assert isinstance(value, np.float64) and isinstance(sign, np.float64)
    assert (value, sign) == pytest.approx(special.logsumexp([1.0] * 3, b=[1.0, -1.0, -1.0], return_sign=True))
    kept = face.logsumexp(np.ones(3), keepdims=True)
    assert isinstance(kept, np.ndarray) and kept.shape == (1,)


@pytest.mark.parametrize(("dtype_a", "dtype_b"), list(itertools.product(DTYPES, DTYPES)))
def test_logsumexp_dtype_of_a_and_b_is_scipys(dtype_a: str, dtype_b: str):
    a, b = np.array([2, 1], dtype=dtype_a), np.array([1, 3], dtype=dtype_b)
    ours, theirs = face.logsumexp(a, b=b), special.logsumexp(a, b=b)
    assert ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, rtol=1e-5 if "32" in dtype_a + dtype_b else 1e-13)


@pytest.mark.parametrize(("dtype_a", "dtype_b", "expected"), [
    ("float64", "float32", "float64"),  # was float32 (issue 13, item 6)
    ("float32", "float64", "float64"),
    ("float32", "int64", "float64"),  # NumPy's promotion, as SciPy
    ("int64", "int64", "float64"),
    ("float32", "complex64", "complex64"),
])
def test_main_api_logsumexp_promotes_a_and_b_together(dtype_a: str, dtype_b: str, expected: str):
    a, b = np.array([2.0, 1.0], dtype=dtype_a), np.array([1, 3], dtype=dtype_b)
    assert sk.logsumexp(a, b=b).dtype == np.dtype(expected)
    if "complex" not in dtype_b:
        assert sk.logsumexp(a, b=b, dtype="float32").dtype == np.float32  # dtype= still decides


def test_main_api_logsumexp_promotion_on_libraries(backend: Backend):
    if not backend.has_float64:
        pytest.skip("the library holds no float64 here")
    a = backend.asarray(np.array([2.0, 1.0]))
    b = backend.asarray(np.array([1.0, 3.0], dtype=np.float32))
    result = sk.logsumexp(a, b=b)
    assert same_library(result, backend) and to_numpy(result).dtype == np.float64


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("shape", "axis"), [((7,), None), ((3, 4), None), ((3, 4), 0), ((3, 4), 1),
                                             ((2, 3, 4), (0, 2)), ((2, 3, 4), -1)])
def test_finite_inputs_agree_with_scipy(name: str, shape: tuple[int, ...], axis):
    x = np.random.default_rng(sum(shape)).normal(scale=30, size=shape)
    np.testing.assert_allclose(getattr(face, name)(x, axis=axis), getattr(special, name)(x, axis=axis),
                               rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("name", NAMES)
def test_array_libraries_in_their_own_type_out(name: str, backend: Backend):
    x_np = np.array([[1.0, 2.0, 0.5], [3.0, -1.0, 0.0]], dtype=np.float32)
    result = getattr(face, name)(backend.asarray(x_np), axis=1)
    assert same_library(result, backend)
    np.testing.assert_allclose(to_numpy(result), getattr(special, name)(x_np, axis=1), rtol=1e-6)


# --- the documented differences from SciPy: softmaxkit's SPEC answers -------------------------


def test_all_minus_inf_gives_zeros_and_minus_inf_not_nan():
    row = [-np.inf, -np.inf]
    np.testing.assert_array_equal(face.softmax(row), [0.0, 0.0])
    np.testing.assert_array_equal(face.log_softmax(row), [-np.inf, -np.inf])
    assert face.logsumexp(row) == -np.inf


def test_plus_inf_entries_share_the_mass():
    row = [np.inf, np.inf, 0.0]
    np.testing.assert_array_equal(face.softmax(row), [0.5, 0.5, 0.0])
    np.testing.assert_allclose(face.log_softmax(row), [-np.log(2), -np.log(2), -np.inf])
    assert face.logsumexp(row) == np.inf


def test_empty_input_gives_an_empty_result():
    assert face.softmax(np.zeros((0,))).shape == (0,)
    assert face.log_softmax(np.zeros((2, 0)), axis=1).shape == (2, 0)
    assert face.logsumexp(np.zeros((0,))) == -np.inf


def test_boolean_input_is_a_float_and_complex_softmax_is_refused():
    np.testing.assert_allclose(face.softmax(np.array([True, False])), special.softmax([1.0, 0.0]))
    with pytest.raises(TypeError, match="complex"):
        face.softmax(np.array([1j, 2.0]))


def test_zero_weight_nan_adds_nothing_and_empty_2d_reduces_to_minus_inf():
    assert face.logsumexp([np.nan], b=[0.0]) == -np.inf
    assert face.logsumexp([np.nan], b=[0.0], return_sign=True) == (-np.inf, 0.0)
    assert face.logsumexp(np.zeros((2, 0))) == -np.inf


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64", "float16", "float32"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_dtype_of_integers_is_scipys(name: str, dtype: str):
    x = np.array([[1, 2], [3, 4]], dtype=dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # SciPy: uint8 x - max(x) wraps around
        theirs = getattr(special, name)(x)
    ours = getattr(face, name)(x)
    assert ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, getattr(special, name)(x.astype(np.float64)), rtol=2e-3)
