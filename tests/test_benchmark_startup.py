"""Smoke test of the start-up benchmark (``python -m benchmarks.startup --parts``): its warm
first-call breakdown runs and adds up. No timing is asserted."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("numba")

from benchmarks import startup


def test_parts_of_a_warm_numba_first_call_run_and_add_up() -> None:
    # The session's cache: the kernel is there (conftest compiles every kernel for numba tests).
    parts = startup._child(startup.PARTS, os.environ.get("NUMBA_CACHE_DIR", ""))
    steps = ["import numba", "import softmaxkit.numba", "Numba's runtime", "the call"]
    assert list(parts) == [*steps, "total", "garbage collection within"]
    assert all(len(v) == 2 and v[0] >= 0 and v[1] >= 0 for v in parts.values())
    wall_sum = sum(parts[s][0] for s in steps)
    assert wall_sum == pytest.approx(parts["total"][0], rel=1e-6)
    assert parts["garbage collection within"][0] <= parts["total"][0]
