"""sigmoid, log_sigmoid, softplus: mpmath references, extremes, backends."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import softmaxkit as sk
from backends import Backend, same_library, to_numpy

POINTS = [-800.0, -40.0, -5.0, -1e-8, 0.0, 1e-8, 3.0, 40.0, 800.0]


def mp_reference(name: str, x: float) -> float:
    with mpmath.workdps(50):
        v = mpmath.mpf(x)
        softplus = mpmath.log1p(mpmath.exp(v))
        return float({"sigmoid": 1 / (1 + mpmath.exp(-v)), "softplus": softplus,
                      "log_sigmoid": -mpmath.log1p(mpmath.exp(-v))}[name])


@pytest.mark.parametrize("name", ["sigmoid", "log_sigmoid", "softplus"])
def test_mpmath_reference(name):
    got = getattr(sk, name)(np.array(POINTS))
    want = [mp_reference(name, x) for x in POINTS]
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=0)


def test_infinities_and_nan():
    x = np.array([-np.inf, np.inf, np.nan])
    np.testing.assert_array_equal(sk.sigmoid(x), [0.0, 1.0, np.nan])
    np.testing.assert_array_equal(sk.softplus(x), [0.0, np.inf, np.nan])
    np.testing.assert_array_equal(sk.log_sigmoid(x), [-np.inf, 0.0, np.nan])


def test_identities():
    x = np.linspace(-30, 30, 121)
    np.testing.assert_allclose(sk.sigmoid(x) + sk.sigmoid(-x), 1.0, rtol=1e-15)
    np.testing.assert_allclose(sk.softplus(x) - sk.softplus(-x), x, atol=1e-13)
    # np.log(sigmoid) loses relative accuracy near 0 (where ours keeps it): compare absolutely
    np.testing.assert_allclose(sk.log_sigmoid(x), np.log(sk.sigmoid(x)), rtol=4e-16, atol=4e-16)


@pytest.mark.parametrize("name", ["sigmoid", "log_sigmoid", "softplus"])
def test_backends_and_dtypes(backend: Backend, name):
    for dtype in ("float16", "float32", "int32"):
        if not backend.supports(dtype):
            continue
        x_np = np.array([-3, 0, 2], dtype=dtype)
        result = getattr(sk, name)(backend.asarray(x_np))
        assert same_library(result, backend)
        np.testing.assert_allclose(to_numpy(result).astype(np.float64),
                                   getattr(sk, name)(x_np.astype(np.float64)), rtol=1e-3)


def test_out_and_errors():
    x = np.array([0.0, 1.0])
    out = np.empty(2)
    assert sk.sigmoid(x, out=out) is out
    np.testing.assert_allclose(out, [0.5, 0.7310585786300049])
    with pytest.raises(TypeError, match="complex"):
        sk.sigmoid(np.array([1j]))
    with pytest.raises(ValueError, match="shape"):
        sk.softplus(x, out=np.empty(3))
