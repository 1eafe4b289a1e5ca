"""Regression tests for the adversarial audit (issue 13): one test per bug, named after it,
run on every CPU engine (ids ``numpy-generic``, ``numpy-numba``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.special

import softmaxkit as sk

CPU_ENGINES = [
    pytest.param("generic", id="numpy-generic"),
    pytest.param(
        "numba", id="numpy-numba",
        marks=pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed"),
    ),
]


@pytest.mark.parametrize("engine", CPU_ENGINES)
@pytest.mark.parametrize("keepdims", [False, True], ids=["dropdims", "keepdims"])
@pytest.mark.parametrize("axis", [-1, 0, 1, (0, 2), (1, 2)], ids=str)
def test_logsumexp_keeps_the_kept_axes_order_of_transposed_input(engine, keepdims, axis):
    # Item 1: numba returned the kept axes in memory order (0.77 off SciPy).
    x = np.random.default_rng(0).standard_normal((16, 8, 32)).transpose(1, 0, 2)
    got = sk.logsumexp(x, axis=axis, keepdims=keepdims, engine=engine)
    np.testing.assert_allclose(got, scipy.special.logsumexp(x, axis=axis, keepdims=keepdims), rtol=1e-13)
