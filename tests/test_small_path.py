"""The NumPy fast path for small arrays: same answers as the generic engine, SPEC §2 intact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import softmaxkit as sk
import softmaxkit._api as api
from edge_cases import EDGE_CASES
from softmaxkit._engines import NUMBA_MIN_SIZE

FUNCTIONS = [sk.softmax, sk.log_softmax]


@pytest.fixture
def no_engine(monkeypatch):
    """Fail any call that reaches the engine choice, i.e. leaves the fast path."""

    def refuse(*args, **kwargs):
        raise AssertionError("left the fast path")

    monkeypatch.setattr(api, "call_engine", refuse)


@st.composite
def small_arrays(draw):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    elements = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8)
    x = draw(hnp.arrays(dtype, shape, elements=elements))
    return x, draw(st.integers(-x.ndim, x.ndim - 1))


@given(small_arrays())
def test_agrees_with_generic_engine(case):
    x, axis = case
    rtol = 8 * np.finfo(x.dtype).eps
    for function in FUNCTIONS:
        fast = function(x, axis=axis)
        assert fast.dtype == x.dtype and fast.shape == x.shape
        np.testing.assert_allclose(fast, function(x, axis=axis, engine="generic"), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((10,), -1), ((10,), 0), ((4, 7), 0), ((4, 7), 1), ((2, 3, 5), -2)])
def test_small_calls_take_the_fast_path(no_engine, dtype, shape, axis):
    x = np.linspace(-3, 4, num=int(np.prod(shape)), dtype=dtype).reshape(shape)
    p = sk.softmax(x, axis=axis)
    np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.exp(sk.log_softmax(x, axis=axis)), p, rtol=1e-5)


@pytest.mark.parametrize(
    "x, kwargs",
    [
        (np.ones(NUMBA_MIN_SIZE), {}),  # at the size limit: an engine
        (np.ones(10, dtype=np.float16), {}),  # half types widen to float32
        (np.arange(10), {}),  # integers
        (np.ones(10, dtype=">f8"), {}),  # byte-swapped
        (np.ones((2, 5)), {"axis": (0, 1)}),
        (np.ones((2, 5)), {"axis": None}),
        (np.ones(10), {"temperature": 2.0}),
        (np.ones(10), {"where": np.ones(10, dtype=bool)}),
        (np.ones(10), {"dtype": np.float32}),
        (np.ones(10), {"engine": "generic"}),
        (np.float64(3.0), {}),
        (np.ones(()), {}),
        (np.ones((0, 3)), {}),
        (np.array([1.0, np.inf]), {}),
        (np.array([1.0, np.nan]), {}),
        (np.array([-np.inf, -np.inf]), {}),
    ],
)
def test_other_calls_take_the_full_path(no_engine, x, kwargs):
    with pytest.raises(AssertionError, match="left the fast path"):
        sk.softmax(x, **kwargs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.name)
def test_edge_cases_as_generic(dtype, case):
    if case.where is not None:
        pytest.skip("masks take the full path")
    x = np.array([case.row, case.row[::-1]], dtype=dtype)
    for function in FUNCTIONS:
        np.testing.assert_array_equal(function(x), function(x, engine="generic"))


def test_spread_beyond_the_float_range_gives_no_warning():
    # x - max overflows to -inf: probability 0, no RuntimeWarning (pytest runs with -W error).
    x = np.array([-3e38, 3e38], dtype=np.float32)
    np.testing.assert_array_equal(sk.softmax(x), [0.0, 1.0])
    np.testing.assert_array_equal(sk.log_softmax(x), [-np.inf, 0.0])


def test_input_untouched_and_read_only_input_accepted():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    x.flags.writeable = False
    before = x.copy()
    p = sk.softmax(x)
    assert p is not x and p.flags.writeable
    np.testing.assert_array_equal(x, before)
