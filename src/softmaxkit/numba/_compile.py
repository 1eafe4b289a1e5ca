"""Compiling every kernel ahead of use (``softmaxkit compile``), and whether the cache is warm.

Each family below calls the engine on small arrays shaped to reach every kernel it uses, in
every dtype, exactly as user calls do (read-only inputs, the same scalar types), so that the
specialisations compiled here are the ones later calls load from the cache. A test checks
that the families cover every kernel in every dtype.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

DTYPES = ("float32", "float64", "float16", "bfloat16")
"""The dtypes the kernels serve (the half types through the float32 and half kernels)."""


def available_dtypes() -> tuple[str, ...]:
    """:data:`DTYPES` less bfloat16 where ml_dtypes (its NumPy dtype) is not installed."""
    import importlib.util

    return tuple(d for d in DTYPES if d != "bfloat16" or importlib.util.find_spec("ml_dtypes") is not None)


def _dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # a dependency of JAX; arrays of it only exist where it is installed

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _softmax(dtype: np.dtype) -> None:
    from softmaxkit import _api as sk  # the public functions (not the package: no import cycle)
    from softmaxkit.numba._jit import readonly
    from softmaxkit.numba._rows import SPLIT, long_rows_by_blocks

    for n in (8, 64, SPLIT + 1):  # tiled short rows, rows, long rows (whole: few elements)
        x = np.zeros((2, n), dtype)
        sk.softmax(x, engine="numba")
        sk.softmax(x, where=np.ones(n, bool), engine="numba")
    sk.softmax(np.zeros((64, 4), dtype), axis=0, engine="numba")  # column tiles
    for log in (False, True) if dtype in (np.float32, np.float64) else ():
        x = np.zeros((1, SPLIT + 1), dtype)  # long rows block by block (few huge rows choose it)
        long_rows_by_blocks(readonly(x), x, x.dtype.type(1.0), log)
    sk.softmax(np.zeros((64, 4), dtype)[::2], engine="numba")  # a strided input: converted first
    if dtype in (np.float32, np.float64):  # small CPU tensors: by address, as softmaxkit.torch calls it
        from softmaxkit.numba._addressed import softmax_at

        x = np.zeros((2, 8), dtype)
        softmax_at(x.ctypes.data, x.ctypes.data, 2, 8, dtype.type(1.0), False)


def _cross_entropy(dtype: np.dtype) -> None:
    from softmaxkit import _api as sk  # the public functions (not the package: no import cycle)

    for shape in ((4, 8), (4, 64)):  # tiled short rows, rows
        sk.cross_entropy(np.zeros(shape, dtype), np.zeros(4, int), return_grad=True, engine="numba")
    sk.cross_entropy(np.zeros((3, 64, 40), dtype), np.zeros((3, 40), int), axis=1, return_grad=True,
                     engine="numba")  # classes on a middle axis: column tiles
    if dtype in (np.float32, np.float64):  # small CPU tensors: by address, as softmaxkit.torch calls it
        from softmaxkit.numba._addressed import cross_entropy_at, labels_at

        x, labels = np.zeros((4, 8), dtype), np.zeros(4, np.int64)
        labels_at(labels.ctypes.data, 4, 8, 0, False)
        cross_entropy_at(x.ctypes.data, x.ctypes.data, labels.ctypes.data, np.empty(4), 4, 8, 0, False, 0.0,
                         1.0, True, dtype.type(0.0))


def _logsumexp(dtype: np.dtype) -> None:
    from softmaxkit import _api as sk  # the public functions (not the package: no import cycle)

    sk.logsumexp(np.zeros((2, 64), dtype), axis=1, engine="numba")


def _gradients(dtype: np.dtype) -> None:
    from softmaxkit import _api as sk  # the public functions (not the package: no import cycle)

    s = np.full((2, 64), 1 / 64, dtype)
    sk.softmax_vjp(s, s, engine="numba")
    sk.log_softmax_vjp(np.log(s), s, engine="numba")
    columns = np.ascontiguousarray(s.T)  # reduced over axis 0: the column kernels
    sk.softmax_vjp(columns, columns, axis=0, engine="numba")
    sk.log_softmax_vjp(np.log(columns), columns, axis=0, engine="numba")
    if dtype in (np.float32, np.float64):  # small CPU tensors: by address, as softmaxkit.torch calls it
        from softmaxkit.numba._addressed import vjp_at

        vjp_at(s.ctypes.data, s.ctypes.data, s.ctypes.data, 2, 64, dtype.type(0.0), False)


def _pieces(dtype: np.dtype) -> None:
    from softmaxkit._engines import call_engine

    x = np.zeros((2, 64), dtype)
    row_max, total = call_engine("softmax_pairs", "numba", x, (1,), temperature=1.0)
    call_engine("softmax_from_pairs", "numba", x, (1,), row_max, total, temperature=1.0, dtype=dtype,
                log=False)


FAMILIES: dict[str, Callable[[np.dtype], None]] = {
    "softmax": _softmax,  # and log_softmax: the same kernels
    "cross_entropy": _cross_entropy,
    "logsumexp": _logsumexp,
    "gradients": _gradients,
    "pieces": _pieces,  # rows split across Dask chunks
}
"""Kernel families by the functions that use them."""


@dataclass(frozen=True)
class CacheStatus:
    """What :func:`cache_status` found."""

    directory: str | None
    """Where the kernels are cached (None: nowhere writable, compiled in every process)."""
    cached: int
    """Kernel specialisations in the cache for this CPU and these sources."""
    expected: int
    """Specialisations that :func:`compile_all` compiles (every family, every dtype)."""

    @property
    def warm(self) -> bool:
        return self.directory is not None and self.cached >= self.expected


def kernels() -> list[Any]:
    """Every kernel of the engine (the dispatchers called from Python)."""
    from softmaxkit.numba import (
        _addressed,
        _columns,
        _grad,
        _grad_columns,
        _half,
        _jit,
        _loss,
        _loss_columns,
        _pieces,
        _rows,
        _short_rows,
    )

    modules: Iterable[ModuleType] = (
        _rows, _short_rows, _columns, _loss, _loss_columns, _grad, _grad_columns, _pieces, _half, _addressed)
    return [v for m in modules for k, v in vars(m).items() if _jit.is_kernel(v) and v.py_func.__name__ == k]


def specialisations(kernel: Any) -> int:
    """How many specialisations :func:`compile_all` compiles for ``kernel``: one per compute
    dtype (float32, float64), one for the half-precision kernels (their bits are ``uint16``)
    and for ``labels_at`` (it reads int64 labels only)."""
    one = kernel.py_func.__module__.endswith("._half") or kernel.py_func.__name__ == "labels_at"
    return 1 if one else 2


def cache_status() -> CacheStatus:
    """The cache directory and how many kernel specialisations it holds for this machine.

    Reads Numba's cache index files (internal API: any failure counts as not cached).
    """
    from softmaxkit.numba._jit import CACHE_DIR

    all_kernels = kernels()
    expected = sum(specialisations(k) for k in all_kernels)
    cached = 0
    for kernel in all_kernels:
        try:
            cache = kernel._cache
            index = cache._cache_file._load_index()
            codegen = kernel.targetctx.codegen()
            cached += sum(1 for key in index if cache._index_key(key[0], codegen) == key)
        except Exception:  # an unreadable index is a cold cache, not an error
            continue
    return CacheStatus(CACHE_DIR, cached, expected)


def _compile_families(families: tuple[str, ...], dtypes: tuple[str, ...]) -> None:
    for family in families:
        for name in dtypes:
            FAMILIES[family](_dtype(name))


def compile_all(families: Iterable[str] | None = None, dtypes: Iterable[str] | None = None, *,
                jobs: int = 1) -> float:
    """Compile (or load from the cache) the kernels of ``families`` for ``dtypes``; seconds taken.

    With a writable cache, later processes load the kernels instead of compiling them:
    run this once when building a container or a CI image. ``jobs > 1`` compiles families in
    that many processes at once (each writes its kernels to the shared cache); this process
    then loads them.

    Examples
    --------
    >>> from softmaxkit.numba import compile_all
    >>> seconds = compile_all(["logsumexp"], ["float64"])
    """
    from softmaxkit.numba._jit import CACHE, notice

    chosen = tuple(FAMILIES) if families is None else tuple(families)
    names = available_dtypes() if dtypes is None else tuple(dtypes)
    for family in chosen:
        if family not in FAMILIES:
            raise ValueError(f"unknown kernel family {family!r}; families: {', '.join(FAMILIES)}")
    for name in names:
        if name not in DTYPES:
            raise ValueError(f"unknown dtype {name!r}; dtypes: {', '.join(DTYPES)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    notice.announced = True  # compiling was asked for: no notice that it happens
    start = time.perf_counter()
    if jobs > 1 and CACHE and len(chosen) > 1:
        import multiprocessing  # here, not at the top: every first use of the engine imports this module
        from concurrent.futures import ProcessPoolExecutor

        # The largest family alone, the others shared. Families share no kernel but the half
        # conversions (one specialisation each), so no two processes add different entries to
        # one kernel's cache index (concurrent writers of one index can drop each other's).
        groups = [(f,) for f in chosen[:jobs - 1]] + [chosen[jobs - 1:]] if jobs < len(chosen) \
            else [(f,) for f in chosen]
        with ProcessPoolExecutor(len(groups), mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in [pool.submit(_compile_families, g, names) for g in groups]:
                done.result()
    _compile_families(chosen, names)  # loads what the workers cached (compiles it without a cache)
    return time.perf_counter() - start
