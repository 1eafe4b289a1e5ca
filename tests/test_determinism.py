"""SPEC §2: the same input gives bitwise the same output on every call, for any thread count,
and calls from many threads at once are correct."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import softmaxkit as sk


def test_deterministic_and_thread_safe():
    rng = np.random.default_rng(12)
    inputs = [rng.normal(size=(64, 257)).astype(np.float32) for _ in range(8)]
    first = [sk.softmax(x) for x in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            again = list(pool.map(sk.softmax, inputs))
            for a, b in zip(first, again, strict=True):
                np.testing.assert_array_equal(a, b)


def test_bitwise_identical_for_any_thread_count() -> None:
    numba = pytest.importorskip("numba")
    long = pytest.importorskip("softmaxkit.numba._rows").SPLIT * 3 + 17  # rows cut into blocks
    rng = np.random.default_rng(9)
    cases = [
        (rng.standard_normal((3, long)).astype(np.float32), -1),
        (rng.standard_normal((300, 500)).astype(np.float64), -1),
        (rng.standard_normal((500, 300)).astype(np.float32), 0),
    ]
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            results.append([
                (sk.softmax(x, axis=axis, engine="numba"), sk.log_softmax(x, axis=axis, engine="numba"),
                 sk.logsumexp(x, axis=axis, engine="numba"),
                 sk.cross_entropy(np.moveaxis(x, axis, -1), np.zeros(x.shape[axis - 1], int),
                                  return_grad=True, engine="numba")[1])
                for x, axis in cases
            ])
    finally:
        numba.set_num_threads(before)
    for one, two in zip(*results, strict=True):
        for a, b in zip(one, two, strict=True):
            assert np.array_equal(a, b, equal_nan=True)


def test_concurrent_calls_from_threads() -> None:
    pytest.importorskip("numba")
    x = np.random.default_rng(10).standard_normal((64, 4096)).astype(np.float32)
    expected = sk.softmax(x, engine="numba")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: sk.softmax(x, engine="numba"), range(8)))
    for r in results:
        assert np.array_equal(r, expected)
