"""logsumexp: SciPy's semantics (b, keepdims, return_sign, complex) and its accuracy bar."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import softmaxkit as sk
from backends import Backend, same_library
from tolerance import assert_spec_close

scipy_special = pytest.importorskip("scipy.special")


def mp_logsumexp(values, weights=None) -> float:
    with mpmath.workdps(60):
        weights = [1] * len(values) if weights is None else weights
        total = mpmath.fsum(mpmath.mpf(float(w)) * mpmath.exp(mpmath.mpf(float(v)))
                            for v, w in zip(values, weights, strict=True))
        return float(mpmath.log(total))


@pytest.mark.parametrize(
    "values",
    [
        [1.0, 2.0, 3.0],
        [0.0, -40.0],                # the answer is log1p(e^-40): relative accuracy near 0
        [-1e-10, -1e-10],
        [700.0, 700.0, 1.0],
        [-745.0, -745.0, -750.0],
        [1e-300, -1e-300],
        list(np.linspace(-50, 50, 101)),
    ],
)
def test_mpmath_reference(values):
    expected = mp_logsumexp(values)
    np.testing.assert_allclose(sk.logsumexp(values), expected, rtol=1e-13)


def test_weights_and_signs_match_scipy():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(5, 7)) * 4
    b = rng.normal(size=(5, 7))
    for axis in (None, 0, 1, (0, 1)):
        for keepdims in (False, True):
            got = sk.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True)
            want = scipy_special.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=True)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
            np.testing.assert_array_equal(got[1], want[1])


def test_negative_sum_without_sign_is_nan():
    assert np.isnan(sk.logsumexp([1.0, 2.0], b=[1.0, -1.0]))
    value, sign = sk.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    np.testing.assert_allclose(value, scipy_special.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)[0])
    assert sign == -1.0


def test_exact_cancellation_gives_minus_inf_and_sign_zero():
    value, sign = sk.logsumexp([1.0, 1.0], b=[1.0, -1.0], return_sign=True)
    assert value == -np.inf and sign == 0.0


def test_zero_weight_ignores_infinite_and_nan_entries():
    assert sk.logsumexp([np.inf, 1.0], b=[0.0, 1.0]) == 1.0
    assert sk.logsumexp([np.nan, 1.0], b=[0.0, 1.0]) == 1.0


def test_infinite_weighted_maxima_that_cancel_are_nan():
    assert np.isnan(sk.logsumexp([np.inf, np.inf], b=[1.0, -1.0]))


def test_b_broadcasts_with_x():
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_allclose(sk.logsumexp(a, axis=1, b=np.array([1.0, 2.0, 0.5])),
                               scipy_special.logsumexp(a, axis=1, b=np.array([1.0, 2.0, 0.5])))
    with pytest.raises(ValueError, match="broadcast"):
        sk.logsumexp(a, b=np.ones(4))


def test_complex_input_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 6)) + 1j * rng.normal(size=(4, 6)) * 3
    np.testing.assert_allclose(sk.logsumexp(a, axis=1), scipy_special.logsumexp(a, axis=1), rtol=1e-13)
    got_value, got_sign = sk.logsumexp(a, axis=1, return_sign=True)
    want_value, want_sign = scipy_special.logsumexp(a, axis=1, return_sign=True)
    assert got_value.dtype == np.float64 and got_sign.dtype == np.complex128
    np.testing.assert_allclose(got_value, want_value, rtol=1e-13)
    np.testing.assert_allclose(got_sign, want_sign, rtol=1e-13)


def test_complex_imaginary_part_is_principal():
    value = sk.logsumexp(np.array([0.0 + 3.0j, 0.0 + 3.0j]))
    assert -np.pi < value.imag <= np.pi
    np.testing.assert_allclose(np.exp(value), 2 * np.exp(3.0j), rtol=1e-14)


def test_empty_reduction_is_minus_inf():
    assert sk.logsumexp(np.array([])) == -np.inf
    np.testing.assert_array_equal(sk.logsumexp(np.zeros((3, 0)), axis=1), [-np.inf] * 3)
    np.testing.assert_array_equal(scipy_special.logsumexp(np.zeros((3, 0)), axis=1), [-np.inf] * 3)


def test_default_axis_reduces_everything(backend: Backend, engine: str):
    x_np = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = backend.asarray(x_np)
    result = sk.logsumexp(x, engine=engine)
    assert same_library(result, backend)
    assert_spec_close(result, scipy_special.logsumexp(x_np.astype(np.float64)), "float32", log=True)
    kept = sk.logsumexp(x, axis=0, keepdims=True, engine=engine)
    assert tuple(kept.shape) == (1, 4)


def test_where_excludes_entries():
    a = np.array([[1.0, 50.0, 2.0], [3.0, 4.0, 5.0]])
    mask = np.array([[True, False, True], [True, True, True]])
    want = [scipy_special.logsumexp([1.0, 2.0]), scipy_special.logsumexp([3.0, 4.0, 5.0])]
    np.testing.assert_allclose(sk.logsumexp(a, axis=1, where=mask), want)


def test_float32_result_dtype_and_int_input():
    assert sk.logsumexp(np.ones(3, dtype=np.float32)).dtype == np.float32
    assert sk.logsumexp(np.ones(3, dtype=np.int64)).dtype == np.float64
    assert sk.logsumexp(np.ones(3, dtype=np.float16)).dtype == np.float16


def test_regression_finite_terms_do_not_flip_the_sign_of_an_infinite_sum():
    # They were summed unshifted next to +inf and turned +inf's sign to -1.
    args = ([1.0, 5.0, np.inf],)
    kwargs = {"b": [-1.0, -1.0, 0.5], "return_sign": True}
    assert sk.logsumexp(*args, **kwargs) == scipy_special.logsumexp(*args, **kwargs) == (np.inf, 1.0)
    assert sk.logsumexp([1.0, np.inf], b=[5.0, -1.0], return_sign=True) == (np.inf, -1.0)
