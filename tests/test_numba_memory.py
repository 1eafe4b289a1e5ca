"""Memory for large results (``softmaxkit.numba._memory``): a freed result's memory serves the
next result of its size; memory an array still uses is never handed out again.

The size threshold is lowered for these tests, so that small arrays take the path."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("numba")
ml_dtypes = pytest.importorskip("ml_dtypes")

import softmaxkit as sk  # noqa: E402
from softmaxkit import numba as sknumba  # noqa: E402
from softmaxkit.numba import _memory  # noqa: E402


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_memory, "MIN_BYTES", 1 << 12)
    monkeypatch.setattr(_memory, "MAX_BYTES", 1 << 20)
    sknumba.release_memory()
    yield
    sknumba.release_memory()


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _input(seed: int, shape: tuple[int, ...] = (64, 100), dtype: object = np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_a_freed_result_serves_the_next_one(function: str) -> None:
    f = getattr(sk, function)
    first = f(_input(0), engine="numba")
    address = _address(first)
    del first
    x = _input(1)
    second = f(x, engine="numba")
    assert _address(second) == address
    np.testing.assert_array_equal(second, f(x.copy(), engine="numba"))


def test_memory_in_use_is_never_handed_out_again() -> None:
    first = sk.softmax(_input(0), engine="numba")
    kept = first.copy()
    view = first[::2]  # a view keeps the memory too
    del first
    second = sk.log_softmax(_input(1), engine="numba")
    assert _address(second) != _address(view)
    second[...] = 7.0
    np.testing.assert_array_equal(view, kept[::2])


def test_few_blocks_are_kept_and_release_lets_them_go() -> None:
    for rows in (20, 30, 40, 50):  # four sizes, freed at once
        sk.softmax(_input(rows, (rows, 100)), engine="numba")
    assert len(_memory._kept) == _memory.KEEP
    sknumba.release_memory()
    assert len(_memory._kept) == 0


def test_large_blocks_are_not_kept() -> None:
    sk.softmax(_input(0, (8, (1 << 20) // 4 + 1024)), engine="numba")  # over MAX_BYTES
    assert len(_memory._kept) == 0


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64], ids=str)
def test_kept_memory_takes_any_dtype(dtype: object) -> None:
    freed = sk.softmax(_input(0, dtype=np.float32), engine="numba")  # 25,600 bytes
    address = _address(freed)
    del freed
    x = _input(2, (64, 200 if np.dtype(dtype).itemsize == 2 else 50), dtype)
    y = sk.softmax(x, engine="numba")
    assert _address(y) == address
    assert y.dtype == np.dtype(dtype) and y.shape == x.shape and y.flags.c_contiguous and y.flags.writeable
    reference = sk.softmax(x.astype(np.float32), engine="generic")
    np.testing.assert_allclose(y.astype(np.float32), reference, rtol=1e-2, atol=1e-3)


def test_results_from_many_threads_at_once_stay_separate() -> None:
    inputs = [_input(seed, (32, 64)) for seed in range(8)]
    expected = [sk.softmax(x, engine="generic") for x in inputs]
    failures: list[str] = []

    def work(k: int) -> None:
        for _ in range(30):
            results = [sk.softmax(inputs[(k + j) % 8], engine="numba") for j in range(3)]
            for j, y in enumerate(results):
                if not np.allclose(y, expected[(k + j) % 8], rtol=1e-5, atol=1e-7):
                    failures.append(f"thread {k}, input {(k + j) % 8}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_tensor_results_reuse_freed_memory() -> None:
    torch = pytest.importorskip("torch")
    import softmaxkit.torch as skt

    # Large enough for the array path: smaller tensors take the kernels by address, whose
    # results torch allocates (they are far below MIN_BYTES outside this file's fixture).
    from softmaxkit.numba._threads import PARALLEL_MIN_SIZE

    x = torch.from_numpy(_input(0, (PARALLEL_MIN_SIZE // 128, 128)))
    first = skt.softmax(x, dim=1)
    address = first.data_ptr()
    del first
    second = skt.softmax(x, dim=1)
    assert second.data_ptr() == address
    torch.testing.assert_close(second, torch.softmax(x, dim=1))
