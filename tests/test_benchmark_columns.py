"""Smoke test: the column-kernel benchmark runs once on a tiny size, so it cannot rot."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from benchmarks import columns


def test_quick_run_prints_every_function_and_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    from softmaxkit.numba import get_num_threads, set_num_threads

    threads = get_num_threads()
    try:
        assert columns.main(["--quick", "--threads", "1"]) == 0
    finally:
        set_num_threads(threads)
    out = capsys.readouterr().out
    for function in columns.FUNCTIONS:
        assert out.count(f"| {function} |") == 2  # float32 and float64


def test_contenders_compute_the_same_gradient() -> None:
    """The three ways of computing each gradient agree (else the comparison would be unfair)."""
    x = np.random.default_rng(0).standard_normal((40, 300)).astype(np.float32)
    for function in columns.FUNCTIONS:
        found = columns.contenders(function, x)
        results = [found[k]() for k in ("columns", "rows", "rows + copies")]
        grads = [r[1] if isinstance(r, tuple) else r for r in results]
        np.testing.assert_allclose(grads[0], grads[1].T, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grads[0], grads[2], rtol=1e-5, atol=1e-6)
