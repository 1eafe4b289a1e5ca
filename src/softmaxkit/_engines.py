"""The engine registry: which engine serves which array, and the automatic choice.

The engine contract
-------------------
An engine is a module that defines some of the functions named in ``ENGINE_FUNCTIONS``, each
with exactly the signature of the generic engine's function of that name
(:mod:`softmaxkit.generic`). The public functions in :mod:`softmaxkit._api` have already
checked every argument when they call an engine: axes are a sorted tuple of non-negative ints,
``dtype`` is the resolved result dtype, masks are boolean arrays of ``x``'s shape, temperature
is a finite positive float, labels are in range. The engine computes, honouring every case of
SPEC §2 bit for bit as the generic engine defines them, and returns an array of the input's
array type (writing into ``out`` when given).

Two functions serve pieces of rows rather than whole arrays (``ROW_PIECE_FUNCTIONS``): the
Dask engine calls them on each block of a row split across chunks, so such a block runs on
the fastest local engine for its chunk type too. ``softmax_pairs`` gives each row piece's
``(max, sum of exp((x - max) / T))``; ``softmax_from_pairs`` turns a block into its part of
the result from its rows' merged pairs. Engines without them (CuPy's) leave such blocks to
the next engine in order that has them.

A new engine is one :class:`EngineSpec` entry below plus its module: the public functions do
not change. Entries are in order of preference; ``engine=None`` takes the first entry that
implements the function, runs the array, is installed, and says it is worth it for this array.
The choice is logged at debug level on the ``softmaxkit`` logger.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

logger = logging.getLogger("softmaxkit")

ROW_PIECE_FUNCTIONS = frozenset({"softmax_pairs", "softmax_from_pairs"})
"""Functions on pieces of rows (the blocks of a Dask array whose softmax axis is chunked)."""

ENGINE_FUNCTIONS = frozenset(
    {"softmax", "logsumexp", "softmax_vjp", "softmax_jvp", "log_softmax_vjp", "cross_entropy"}
) | ROW_PIECE_FUNCTIONS


def _is_array_api(x: Any) -> bool:
    import array_api_compat

    return bool(array_api_compat.is_array_api_obj(x))


def _is_gpu_array(x: Any) -> bool:
    from softmaxkit.cuda._bridge import is_gpu_array

    return is_gpu_array(x)


def _is_dask_array(x: Any) -> bool:
    import array_api_compat

    return bool(array_api_compat.is_dask_array(x))


def _is_torch_tensor(x: Any) -> bool:
    """A PyTorch tensor on a device whose kernels are installed (CPU: Numba; CUDA: CuPy)."""
    import array_api_compat

    if not array_api_compat.is_torch_array(x):
        return False
    device = getattr(getattr(x, "device", None), "type", None)
    needs = {"cpu": "numba", "cuda": "cupy"}.get(device)
    return needs is not None and _importable(needs)


def _always(x: Any) -> bool:
    return True


def _is_numpy(x: Any) -> bool:
    import array_api_compat

    return bool(array_api_compat.is_numpy_array(x))


NUMBA_MIN_SIZE = 4096
"""Arrays smaller than this go to the generic engine when the engine is chosen automatically:
below it the call overhead of a compiled kernel is not repaid (measured in BENCHMARKS.md)."""


def _numba_worth_it(x: Any) -> bool:
    return int(x.size) >= NUMBA_MIN_SIZE


@functools.cache
def _importable(module: str) -> bool:
    # Cached: find_spec searches sys.path on disk (~100 us), and every automatic choice asks.
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class EngineSpec:
    """One engine: its module, what it runs, and what it needs installed."""

    name: str
    module: str
    summary: str
    functions: frozenset[str]
    runs: Callable[[Any], bool]
    """Whether the engine can compute on this array (a type check; imports no backend)."""
    requires: tuple[str, ...] = ()
    """Modules that must be importable for the engine to work."""
    worth_it: Callable[[Any], bool] = field(default=_always)
    """Automatic choice only: whether this engine pays off for this array (e.g. not tiny ones)."""

    def missing(self) -> list[str]:
        return [m for m in self.requires if not _importable(m)]

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


ENGINES: tuple[EngineSpec, ...] = (
    EngineSpec(
        name="torch",
        module="softmaxkit.torch._engine",
        summary="PyTorch tensors through the operators torch.ops.softmaxkit.* (Numba kernels on CPU, "
                "CUDA kernels on GPUs): autograd, torch.compile, torch.func",
        functions=ENGINE_FUNCTIONS - ROW_PIECE_FUNCTIONS,
        runs=_is_torch_tensor,
        requires=("torch",),
    ),
    EngineSpec(
        name="cupy",
        module="softmaxkit.cuda",
        summary="CUDA kernels through CuPy: CuPy arrays, torch CUDA tensors, JAX GPU arrays",
        functions=ENGINE_FUNCTIONS - ROW_PIECE_FUNCTIONS,
        runs=_is_gpu_array,
        requires=("cupy",),
    ),
    EngineSpec(
        name="dask",
        module="softmaxkit.dask",
        summary="lazy Dask arrays, local or on a dask.distributed cluster; the softmax axis may be chunked",
        functions=ENGINE_FUNCTIONS - ROW_PIECE_FUNCTIONS,
        runs=_is_dask_array,
        requires=("dask",),
    ),
    EngineSpec(
        name="numba",
        module="softmaxkit.numba",
        summary="fused multi-threaded CPU kernels for NumPy arrays, SIMD exp",
        functions=ENGINE_FUNCTIONS,
        runs=_is_numpy,
        requires=("numba",),
        worth_it=_numba_worth_it,
    ),
    EngineSpec(
        name="generic",
        module="softmaxkit.generic",
        summary="the array-API reference: every array library, every SPEC case",
        functions=ENGINE_FUNCTIONS,
        runs=_is_array_api,
    ),
)


def engine_names() -> list[str]:
    return [e.name for e in ENGINES]


def get_engine(name: str) -> EngineSpec:
    for spec in ENGINES:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown engine {name!r}; engines: {', '.join(engine_names())}")


def _can_run(spec: EngineSpec, function: str, x: Any) -> bool:
    return function in spec.functions and spec.runs(x) and not spec.missing()


def choose_engine(function: str, x: Any, engine: str | None = None) -> ModuleType:
    """The engine module that computes ``function`` on ``x`` (``engine`` forces one by name)."""
    if engine is None:
        for spec in ENGINES:
            if _can_run(spec, function, x) and spec.worth_it(x):
                logger.debug("%s: engine %r chosen for %s", function, spec.name, type(x).__name__)
                return spec.load()
        raise TypeError(f"{function}: no engine can compute on {type(x).__name__}")
    if not isinstance(engine, str):
        raise TypeError(f"engine must be a name or None, got {engine!r}")
    spec = get_engine(engine)
    if not _can_run(spec, function, x):
        able = [s.name for s in ENGINES if _can_run(s, function, x)]
        why = f"needs {', '.join(spec.missing())} installed" if spec.missing() else "does not apply"
        raise ValueError(
            f"engine {engine!r} cannot run {function} on {type(x).__name__} ({why}); "
            f"engines that can: {', '.join(able) or 'none'}"
        )
    return spec.load()
