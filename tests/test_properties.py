"""Hypothesis properties and mpmath references that hold for every engine (``engine``: each
engine that runs NumPy arrays, ids ``numpy-<engine>``)."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as sk
from tolerance import assert_spec_close

settings.register_profile("softmaxkit", deadline=None, max_examples=60)
settings.load_profile("softmaxkit")

finite64 = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
moderate = st.floats(-300, 300, allow_nan=False, allow_infinity=False)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7)
rows = hnp.arrays(np.float64, shapes, elements=finite64)
moderate_rows = hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 9)), elements=moderate)


@given(rows)
def test_sums_to_one_and_is_finite(engine: str, x):
    p = sk.softmax(x, engine=engine)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-13)
    assert np.all(np.isfinite(sk.logsumexp(x, axis=-1, engine=engine)))


@given(moderate_rows, st.floats(-1e3, 1e3, allow_nan=False))
def test_translation_invariance(engine: str, x, shift):
    np.testing.assert_allclose(sk.softmax(x + shift, engine=engine), sk.softmax(x, engine=engine),
                               rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(sk.logsumexp(x + shift, axis=-1, engine=engine),
                               sk.logsumexp(x, axis=-1, engine=engine) + shift, rtol=1e-12, atol=1e-9)


@given(moderate_rows)
def test_log_softmax_is_x_minus_logsumexp(engine: str, x):
    want = x - sk.logsumexp(x, axis=-1, keepdims=True)
    np.testing.assert_allclose(sk.log_softmax(x, engine=engine), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.exp(sk.log_softmax(x, engine=engine)), sk.softmax(x, engine=engine),
                               rtol=1e-12, atol=1e-300)


@given(moderate_rows)
def test_jacobian_symmetric_with_zero_row_sums(x):
    jac = sk.softmax_jacobian(x)
    np.testing.assert_allclose(jac, np.swapaxes(jac, -1, -2), atol=0)
    np.testing.assert_allclose(jac.sum(-1), 0.0, atol=1e-15)


@given(moderate_rows, st.data())
def test_vjp_and_jvp_match_dense_jacobian(engine: str, x, data):
    g = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-10, 10)))
    jac = sk.softmax_jacobian(x)
    s = sk.softmax(x)
    want = np.einsum("...i,...ij->...j", g, jac)
    np.testing.assert_allclose(sk.softmax_vjp(s, g, engine=engine), want, atol=1e-13)
    np.testing.assert_allclose(sk.softmax_jvp(s, g, engine=engine), np.einsum("...ij,...j->...i", jac, g),
                               atol=1e-13)


@given(moderate_rows, st.data(), st.floats(0, 1))
def test_cross_entropy_non_negative_and_gradient_rows_sum_to_zero(engine: str, x, data, smoothing):
    labels = data.draw(hnp.arrays(np.int64, x.shape[:1], elements=st.integers(0, x.shape[1] - 1)))
    loss, grad = sk.cross_entropy(x, labels, label_smoothing=smoothing, reduction="none",
                                  return_grad=True, engine=engine)
    assert np.all(loss >= -1e-12)
    np.testing.assert_allclose(grad.sum(axis=-1), 0.0, atol=1e-12)


@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 40)),
                  elements=st.floats(-1e4, 1e4, width=32)))
def test_float32_within_spec_bound_of_float64(engine: str, x):
    x64 = x.astype(np.float64)
    assert_spec_close(sk.softmax(x, engine=engine), sk.softmax(x64), "float32",
                      spread=np.abs(x64 - x64.max(axis=-1, keepdims=True)))


# --- mpmath references at SciPy's rtol=1e-13 ---------------------------------------------------

def mp_softmax(row):
    with mpmath.workdps(60):
        values = [mpmath.mpf(float(v)) for v in row]
        top = max(values)
        exps = [mpmath.exp(v - top) for v in values]
        total = mpmath.fsum(exps)
        return [float(e / total) for e in exps], [float(v - top - mpmath.log(total)) for v in values]


@pytest.mark.parametrize("row", [
    [1.25, 2.44, 0.78, 0.12],
    [1000.0, 1.0],
    [-1000.0, -1000.5, -1001.0],
    [1e-10, 2e-10, -3e-10],
    [700.0, 709.0, 710.0],
    list(np.linspace(-20, 20, 41)),
    [3.0, 3.0, 3.0],
])
def test_mpmath_reference(engine: str, row):
    want_p, want_logp = mp_softmax(row)
    x = np.asarray(row)
    np.testing.assert_allclose(sk.softmax(x, engine=engine), want_p, rtol=1e-13)
    np.testing.assert_allclose(sk.log_softmax(x, engine=engine), want_logp, rtol=1e-13)
