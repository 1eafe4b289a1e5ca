"""SPEC §2: the same input gives bitwise the same output on every call, for any thread count,
and calls from many threads at once are correct."""

from __future__ import annotations

import os
import subprocess
import sys
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
    engine = pytest.importorskip("softmaxkit.numba")
    long = pytest.importorskip("softmaxkit.numba._rows").SPLIT * 3 + 17  # rows cut into blocks
    rng = np.random.default_rng(9)
    cases = [
        (rng.standard_normal((3, long)).astype(np.float32), -1),
        (rng.standard_normal((300, 500)).astype(np.float64), -1),
        (rng.standard_normal((500, 300)).astype(np.float32), 0),
    ]
    before = engine.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):  # more threads than rows in the long-row case, too
            engine.set_num_threads(threads)
            results.append([
                (sk.softmax(x, axis=axis, engine="numba"), sk.log_softmax(x, axis=axis, engine="numba"),
                 sk.logsumexp(x, axis=axis, engine="numba"),
                 sk.cross_entropy(np.moveaxis(x, axis, -1), np.zeros(x.shape[axis - 1], int),
                                  return_grad=True, engine="numba")[1])
                for x, axis in cases
            ])
    finally:
        engine.set_num_threads(before)
    for one, *others in zip(*results, strict=True):
        for other in others:
            for a, b in zip(one, other, strict=True):
                assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_wherever_out_lies_after_x(dtype) -> None:
    """Regression: with ``out`` a few vectors after ``x`` in memory, LLVM's overlap test sent
    the numba row kernel to its scalar loop, which sums in another order: about a third of
    rows of 17 entries gave other bits with ``out`` up to 256 bytes after ``x`` than far from it."""
    pytest.importorskip("numba")
    n = 17  # the shortest rows that take the row kernel (longer ones are not as close in float64)
    for x in np.random.default_rng(17).standard_normal((8, n)).astype(dtype) * 3:
        far = sk.softmax(x[None], engine="numba")
        for gap in (0, 8, 16):  # elements between the end of x and out, in one buffer
            buffer = np.zeros(2 * n + gap, dtype=dtype)
            buffer[:n] = x
            out = buffer[n + gap:].reshape(1, n)
            sk.softmax(buffer[None, :n], out=out, engine="numba")
            assert out.tobytes() == far.tobytes(), gap


def test_sampling_weights_sum_the_same_wherever_the_scratch_lies() -> None:
    """Regression (found by the numba audit): the sampling kernels' weight pass wrote a scratch
    block and summed it in one loop; with the scratch a few vectors after the logits in memory,
    LLVM's overlap test took the scalar loop, which sums in another order, so a draw could
    depend on where the allocator had put the two."""
    numba = pytest.importorskip("numba")
    kernels = pytest.importorskip("softmaxkit.sampling._kernels")

    @numba.njit
    def weights(x, out):  # type: ignore[no-untyped-def]
        return kernels._plain_block_weights(x, 0, x.max(), 1.0, 0.0, out)

    n = 19  # a row shorter than one unrolled vector iteration (256 bytes)
    for x in np.random.default_rng(19).standard_normal((8, n)) * 3:
        far = np.empty(n)
        expected = weights(x, far)
        for gap in (0, 8, 16):  # elements between the end of the logits and the scratch
            buffer = np.zeros(2 * n + gap)
            buffer[:n] = x
            near = buffer[n + gap:]
            assert weights(buffer[:n], near) == expected, gap
            assert near.tobytes() == far.tobytes(), gap


def test_concurrent_calls_from_threads() -> None:
    pytest.importorskip("numba")
    x = np.random.default_rng(10).standard_normal((64, 4096)).astype(np.float32)
    expected = sk.softmax(x, engine="numba")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: sk.softmax(x, engine="numba"), range(8)))
    for r in results:
        assert np.array_equal(r, expected)


def test_thread_count_changed_during_a_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: set_num_threads shut the pool down while a call in another thread was about
    to submit to it ("cannot schedule new futures after shutdown"). Here the change comes
    between the call's taking the pool and its submitting, where the other thread's came."""
    threads = pytest.importorskip("softmaxkit.numba._threads")
    x = np.random.default_rng(10).standard_normal((64, 4096)).astype(np.float32)
    expected = sk.softmax(x, engine="numba")
    before = threads.get_num_threads()
    take_pool = threads._get_pool

    def taken_then_changed() -> object:
        pool = take_pool()
        threads.set_num_threads(2)
        return pool

    monkeypatch.setattr(threads, "_get_pool", taken_then_changed)
    try:
        threads.set_num_threads(2)
        assert np.array_equal(sk.softmax(x, engine="numba"), expected)
    finally:
        threads.set_num_threads(before)


def test_threads_under_the_workqueue_layer() -> None:
    """Regression (issue 13.8): with Numba's workqueue threading layer (its choice without TBB
    or OpenMP), concurrent calls from threads aborted the process. The engine no longer enters
    a Numba threading layer at all: its kernels release the GIL and run on its own pool."""
    pytest.importorskip("numba")
    code = """
import numpy as np, softmaxkit as sk
from concurrent.futures import ThreadPoolExecutor
from numba.np.ufunc import parallel
rng = np.random.default_rng(0)
x = rng.standard_normal((256, 1024)).astype(np.float32)
labels = rng.integers(0, 1024, 256)
def work(_):
    return (sk.softmax(x, engine="numba"), sk.log_softmax(x, axis=0, engine="numba"),
            sk.logsumexp(x, axis=1, engine="numba"),
            sk.cross_entropy(x, labels, return_grad=True, engine="numba")[1])
first = work(0)
with ThreadPoolExecutor(8) as pool:
    for result in pool.map(work, range(32)):
        assert all(np.array_equal(a, b) for a, b in zip(first, result))
print(parallel._is_initialized)
"""
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"  # no Numba threading layer was started


_COMPILED_OR_CACHED = """
import sys
import numpy as np, softmaxkit as sk
from softmaxkit.numba import _jit
from softmaxkit.numba._rows import SPLIT
rng = np.random.default_rng(21)
rows = (rng.standard_normal((64, 1024)) * 4).astype(np.float32)
long = (rng.standard_normal((2, SPLIT + 5000)) * 4).astype(np.float32)
labels = rng.integers(0, 1024, 64)
g = rng.standard_normal(rows.shape).astype(np.float32)
s = sk.softmax(rows, engine="numba")
results = {
    "softmax": s,
    "log_softmax": sk.log_softmax(rows, engine="numba"),
    "softmax axis 0": sk.softmax(rows.T.copy(), axis=0, engine="numba"),
    "softmax long rows": sk.softmax(long, engine="numba"),
    "logsumexp": sk.logsumexp(rows, axis=1, engine="numba"),
    "cross_entropy grad": sk.cross_entropy(rows, labels, return_grad=True, engine="numba")[1],
    "softmax_vjp": sk.softmax_vjp(s, g, engine="numba"),
    "softmax float64": sk.softmax(rows.astype(np.float64), engine="numba"),
}
np.savez(sys.argv[1], **results)
print(_jit.notice.announced)  # whether this process compiled a kernel
"""


def test_compiled_and_cached_kernels_give_the_same_bits(tmp_path) -> None:
    """Regression: a kernel compiled in the running process gave softmax results up to 4 ulp
    away from the same kernel loaded from Numba's cache by a later process (a helper's call
    bound to the helper's own code in the first, to the kernel's copy in the second; see
    ``numba._jit.helper``). Two processes on one empty cache: the first compiles, the second
    loads; every result must agree bit for bit."""
    pytest.importorskip("numba")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    compiled = []
    for name in ("compiled", "cached"):
        done = subprocess.run([sys.executable, "-c", _COMPILED_OR_CACHED, str(tmp_path / f"{name}.npz")],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        compiled.append(done.stdout.strip())
    assert compiled == ["True", "False"]  # the first process compiled, the second only loaded
    first, second = np.load(tmp_path / "compiled.npz"), np.load(tmp_path / "cached.npz")
    for key in first.files:
        assert np.array_equal(first[key], second[key], equal_nan=True), key
