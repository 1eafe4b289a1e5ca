"""The engine registry: which engine serves which array and which options, and the automatic choice.

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

An engine computes every call the registry hands it: it never passes a call on to another
engine. What it does not compute itself it declares here, as :class:`Gap` entries of its
:class:`EngineSpec` (``logsumexp`` with weights ``b=`` for the Numba engine, say); the choice
then goes on to the next engine in order that covers the call, in one visible step, and the
debug log names the engine that really computes and why the others were passed over.

Two functions serve pieces of rows rather than whole arrays (``ROW_PIECE_FUNCTIONS``): the
Dask engine calls them on each block of a row split across chunks, so such a block runs on
the fastest local engine for its chunk type too. ``softmax_pairs`` gives each row piece's
``(max, sum of exp((x - max) / T))``; ``softmax_from_pairs`` turns a block into its part of
the result from its rows' merged pairs. Engines without them (the CUDA engine) leave such blocks to
the next engine in order that has them.

A new engine is one :class:`EngineSpec` entry below plus its module: the public functions do
not change. Entries are in order of preference; ``engine=None`` takes the first entry that
implements the function, runs the array, is installed, is worth it for this array and covers
the call's options. An explicit ``engine=`` name skips only the "worth it" test: an engine
that cannot run the array or does not cover the options raises ValueError naming those that
can (SPEC §1).

Size thresholds at which the choice changes live here too (``NUMBA_MIN_SIZE``; the size from
which an engine's call uses several threads is that engine's own). Block and tile sizes that
a compiled kernel's algorithm is built on stay beside that kernel (``numba/_rows.SPLIT``,
...): Numba's disk cache keys a kernel on its own module's source, so a constant it reads from
another module could change under a stale cached kernel.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from softmaxkit import generic
from softmaxkit._arrays import is_half, torch_compiling
from softmaxkit.generic._temperature import reciprocal_is_accurate

logger = logging.getLogger("softmaxkit")

ROW_PIECE_FUNCTIONS = frozenset({"softmax_pairs", "softmax_from_pairs"})
"""Functions on pieces of rows (the blocks of a Dask array whose softmax axis is chunked)."""

PRODUCT_FUNCTIONS = frozenset({"softmax_vjp", "softmax_jvp", "log_softmax_vjp"})

ENGINE_FUNCTIONS = (
    frozenset({"softmax", "logsumexp", "cross_entropy"}) | PRODUCT_FUNCTIONS | ROW_PIECE_FUNCTIONS
)

# --- size thresholds ----------------------------------------------------------------------------

NUMBA_MIN_SIZE = 4096
"""Arrays smaller than this go to the generic engine when the engine is chosen automatically,
and take the tiny-array path of :mod:`softmaxkit.generic._tiny` where it applies: below it the
call overhead of a compiled kernel is not repaid. Measured against the Numba engine: at 4,096
elements the tiny path takes 25 µs (float32) / 44 µs (float64) against 64 / 71 µs; the Numba
engine wins from about 16,384 (float64) or 32,768 (float32) elements, earlier on short rows."""


# --- what an engine runs and covers --------------------------------------------------------------

Call = Mapping[str, Any]
"""One engine call by parameter name, exactly as the engine function receives it: ``x`` and
``axes`` (``s``/``g``, ``logp``/``g``, ``logits``/``target``/``axis`` for the products and
cross_entropy), then the keyword arguments (``b``, ``dtype``, ``where``, ...)."""


def _is_array_api(x: Any) -> bool:
    import array_api_compat

    return bool(array_api_compat.is_array_api_obj(x))


def _is_gpu_array(x: Any) -> bool:
    if type(x) is np.ndarray:  # the common case: no need to import the CUDA engine (ms) to say no
        return False
    from softmaxkit.cuda._bridge import is_gpu_array

    return is_gpu_array(x)


def _is_dask_array(x: Any) -> bool:
    import array_api_compat

    return bool(array_api_compat.is_dask_array(x))


def is_torch_tensor(x: Any) -> bool:
    """A PyTorch tensor on a device whose kernels are installed (CPU: Numba; CUDA: CuPy)."""
    torch = sys.modules.get("torch")  # no tensor exists before torch is imported
    if torch is None or not isinstance(x, torch.Tensor):
        return False
    # is_cpu / is_cuda before x.device: building the device object costs more than the rest.
    device = "cpu" if x.is_cpu else "cuda" if x.is_cuda else str(getattr(x.device, "type", ""))
    return _torch_kernels_installed(device)


@functools.cache
def _torch_kernels_installed(device: str) -> bool:
    needs = {"cpu": "numba", "cuda": "cupy"}.get(device)
    return needs is not None and _importable(needs)


def _always(x: Any) -> bool:
    return True


def _is_numpy(x: Any) -> bool:
    import array_api_compat

    return bool(array_api_compat.is_numpy_array(x))


def _numba_worth_it(x: Any) -> bool:
    return int(x.size) >= NUMBA_MIN_SIZE


@functools.cache
def _importable(module: str) -> bool:
    # Cached: find_spec searches sys.path on disk (~100 us), and every automatic choice asks.
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class Gap:
    """Calls of ``functions`` that an engine does not compute itself: those where ``applies``.

    ``what`` completes "does not cover <function> with ..." in the debug log and in the error
    of an explicit ``engine=``.
    """

    functions: frozenset[str]
    what: str
    applies: Callable[[Call], bool]


@dataclass(frozen=True)
class EngineSpec:
    """One engine: its module, what it runs, what it does not cover, what it needs installed."""

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
    gaps: tuple[Gap, ...] = ()
    """Calls of its functions that the engine leaves to the next engine (checked in order)."""

    def missing(self) -> list[str]:
        return [m for m in self.requires if not _importable(m)]

    def load(self) -> ModuleType:
        loaded = sys.modules.get(self.module)  # every call asks: import_module's lookup costs more
        return loaded if loaded is not None else importlib.import_module(self.module)

    def gap(self, function: str, call: Call) -> Gap | None:
        """The first declared gap that this call of ``function`` falls into, if any."""
        for gap in self.gaps:
            if function in gap.functions and gap.applies(call):
                return gap
        return None

    def covers(self, function: str, call: Call) -> bool:
        """Whether the engine computes this call of ``function`` itself (given it runs the array)."""
        return function in self.functions and self.gap(function, call) is None


# --- the gaps of each engine --------------------------------------------------------------------
# Each predicate reads the call by parameter name (see ``Call``). The first array's name
# differs by function; the result dtype is ``dtype`` where the function takes one.

_FIRST = {"cross_entropy": "logits", "log_softmax_vjp": "logp", "softmax_vjp": "s", "softmax_jvp": "s"}


def _first(call: Call, function: str) -> Any:
    return call[_FIRST.get(function, "x")]


def _result_dtype(call: Call) -> Any:
    return call["dtype"] if "dtype" in call else call["x"].dtype


def numba_kernel_dtype(dtype: Any) -> np.dtype | None:
    """The Numba kernels' compute dtype for a result dtype, or None where they do not apply.

    Here rather than in the engine, so that the automatic choice decides without importing
    Numba; float16/bfloat16 compute in float32, and byte-swapped data is copied into the
    native dtype by the engine's layout and swapped back when delivered."""
    if is_half(dtype):
        return np.dtype(np.float32)
    d = np.dtype(dtype).newbyteorder("=")
    return d if d in (np.float32, np.float64) else None


@functools.cache  # per dtype: every call of the Numba engine asks (4 us uncached)
def _numba_computes_in(dtype: Any) -> bool:
    return numba_kernel_dtype(dtype) is not None


def _numba_dtype_gap(call: Call) -> bool:
    return not _numba_computes_in(_result_dtype(call))


def _product_input(call: Call) -> Any:
    return call["logp"] if "logp" in call else call["s"]


def _empty_product(call: Call) -> bool:
    return int(_product_input(call).size) == 0


TEMPERATURE_FUNCTIONS = frozenset({"softmax"}) | ROW_PIECE_FUNCTIONS


def _temperature_beyond_kernels(accumulator: Callable[[Any], Any]) -> Callable[[Call], bool]:
    """Whether the call's temperature is one whose reciprocal kernels cannot use in their
    accumulator dtype (``T = 1e-300`` or ``1e39`` in float32; issue 13): the generic engine's
    exact steps give those the limits."""

    def applies(call: Call) -> bool:
        # T = 1 needs no dtype: its reciprocal is exact in every one (the common call, cheaply).
        t = call["temperature"]
        return t != 1.0 and not reciprocal_is_accurate(t, accumulator(_result_dtype(call)))

    return applies


def _numba_accumulator(dtype: Any) -> Any:
    return numba_kernel_dtype(dtype)


NUMBA_GAPS = (
    Gap(ENGINE_FUNCTIONS, "a dtype other than float16, bfloat16, float32 or float64", _numba_dtype_gap),
    Gap(TEMPERATURE_FUNCTIONS, "a temperature beyond its kernels' range",
        _temperature_beyond_kernels(_numba_accumulator)),
    Gap(frozenset({"logsumexp"}), "weights (b=) or return_sign=True",
        lambda c: c["b"] is not None or bool(c["return_sign"])),
    Gap(frozenset({"cross_entropy"}), "probability targets", lambda c: c["target"].ndim == c["logits"].ndim),
    Gap(PRODUCT_FUNCTIONS, "an empty array", _empty_product),
)


@functools.cache
def _cuda_computes_in(dtype: Any) -> bool:
    from softmaxkit.cuda._bridge import dtype_name
    from softmaxkit.cuda._plan import DTYPES

    return dtype_name(dtype) in DTYPES


def _cuda_dtype_gap(call: Call) -> bool:
    return not _cuda_computes_in(call["dtype"])


def _no_rows(function: str) -> Callable[[Call], bool]:
    def applies(call: Call) -> bool:
        first = _first(call, function)
        return 0 in tuple(first.shape) or (function != "cross_entropy" and not call["axes"])

    return applies


def _cuda_accumulator(dtype: Any) -> Any:
    from softmaxkit.cuda._bridge import dtype_name

    return np.float64 if dtype_name(dtype) == "float64" else np.float32


CUDA_GAPS = (
    Gap(ENGINE_FUNCTIONS, "a dtype other than float16, bfloat16, float32 or float64", _cuda_dtype_gap),
    Gap(TEMPERATURE_FUNCTIONS, "a temperature beyond its kernels' range",
        _temperature_beyond_kernels(_cuda_accumulator)),
    *(Gap(frozenset({f}), "an empty array or no axis to reduce", _no_rows(f))
      for f in sorted(ENGINE_FUNCTIONS - ROW_PIECE_FUNCTIONS)),
    Gap(frozenset({"logsumexp"}), "weights (b=) or return_sign=True",
        lambda c: c["b"] is not None or bool(c["return_sign"])),
)


def _torch_logsumexp_gap(call: Call) -> bool:
    return call["b"] is not None or bool(call["return_sign"]) or call["x"].is_complex() \
        or call["dtype"].is_complex


def _torch_accumulator(dtype: Any) -> Any:
    # The operators compute float64 tensors in float64 and every other float type in float32.
    return np.dtype(np.float64) if str(dtype) == "torch.float64" else np.dtype(np.float32)


TORCH_GAPS = (
    Gap(frozenset({"logsumexp"}), "weights (b=), return_sign=True or complex input", _torch_logsumexp_gap),
    Gap(TEMPERATURE_FUNCTIONS, "a temperature beyond its kernels' range",
        _temperature_beyond_kernels(_torch_accumulator)),
)


def _complex_or_0d(call: Call) -> bool:
    x = call["x"]
    return x.ndim == 0 or np.dtype(call["dtype"]).kind == "c" or np.dtype(x.dtype).kind == "c"


def _rows_split(call: Call) -> bool:
    from softmaxkit.dask._blocks import rows_whole

    return not rows_whole(_product_input(call), call["axes"])


DASK_GAPS = (
    Gap(frozenset({"logsumexp"}), "complex or 0-d input", _complex_or_0d),
    Gap(PRODUCT_FUNCTIONS, "reduced axes split across chunks", _rows_split),
)


ENGINES: tuple[EngineSpec, ...] = (
    EngineSpec(
        name="torch",
        module="softmaxkit.torch._engine",
        summary="PyTorch tensors through the operators torch.ops.softmaxkit.* (Numba kernels on CPU, "
                "CUDA kernels on GPUs): autograd, torch.compile, torch.func",
        functions=ENGINE_FUNCTIONS - ROW_PIECE_FUNCTIONS,
        runs=is_torch_tensor,
        requires=("torch",),
        gaps=TORCH_GAPS,
    ),
    EngineSpec(
        name="cuda",
        module="softmaxkit.cuda",
        summary="CUDA kernels through CuPy: CuPy arrays, torch CUDA tensors, JAX GPU arrays",
        functions=ENGINE_FUNCTIONS - ROW_PIECE_FUNCTIONS,
        runs=_is_gpu_array,
        requires=("cupy",),
        gaps=CUDA_GAPS,
    ),
    EngineSpec(
        name="dask",
        module="softmaxkit.dask",
        summary="lazy Dask arrays, local or on a dask.distributed cluster; the softmax axis may be chunked",
        functions=ENGINE_FUNCTIONS - ROW_PIECE_FUNCTIONS,
        runs=_is_dask_array,
        requires=("dask",),
        gaps=DASK_GAPS,
    ),
    EngineSpec(
        name="numba",
        module="softmaxkit.numba",
        summary="fused multi-threaded CPU kernels for NumPy arrays, SIMD exp",
        functions=ENGINE_FUNCTIONS,
        runs=_is_numpy,
        requires=("numba",),
        worth_it=_numba_worth_it,
        gaps=NUMBA_GAPS,
    ),
    EngineSpec(
        name="generic",
        module="softmaxkit.generic",
        summary="the array-API reference: every array library, every SPEC case",
        functions=ENGINE_FUNCTIONS,
        runs=_is_array_api,
    ),
)


ENGINE_ALIASES = {"cupy": "cuda"}
"""Former names, still accepted by ``engine=``: the CUDA engine was called "cupy" (after the
library that launches its kernels) before it was named after what it is."""


def engine_names() -> list[str]:
    return [e.name for e in ENGINES]


def get_engine(name: str) -> EngineSpec:
    name = ENGINE_ALIASES.get(name, name)
    for spec in ENGINES:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown engine {name!r}; engines: {', '.join(engine_names())}")


def _can_run(spec: EngineSpec, function: str, x: Any) -> bool:
    return function in spec.functions and spec.runs(x) and not spec.missing()


def _positional(function: str) -> tuple[str, ...]:
    """The names of the generic engine's positional parameters of ``function`` (the contract)."""
    parameters = inspect.signature(getattr(generic, function)).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)


POSITIONAL = {function: _positional(function) for function in sorted(ENGINE_FUNCTIONS)}
"""Each engine function's positional parameters, read once at import: a call inside a graph
that torch.compile traces must not reach ``inspect`` (Dynamo refuses to trace it)."""


def as_call(function: str, args: tuple[Any, ...], options: Mapping[str, Any]) -> dict[str, Any]:
    """The engine call ``function(*args, **options)`` by parameter name."""
    call = dict(zip(POSITIONAL[function], args, strict=True))
    call.update(options)
    return call


def _debug(message: str, *args: Any) -> None:
    """A debug record of the choice, except inside a graph that torch.compile traces: Dynamo
    refuses calls to a logger, and the compiled graph holds no choice to report anyway."""
    if not torch_compiling():
        logger.debug(message, *args)


def choose_engine(function: str, x: Any, engine: str | None = None, call: Call | None = None) -> ModuleType:
    """The engine module that computes ``function`` on ``x`` with the options in ``call``.

    ``engine`` forces one by name. ``call`` (see :func:`as_call`) lets the engines' gaps see
    the options; without it the choice considers the array alone.
    """
    passed = []
    if engine is None:
        for spec in ENGINES:
            if not (_can_run(spec, function, x) and spec.worth_it(x)):
                continue
            gap = None if call is None else spec.gap(function, call)
            if gap is not None:
                passed.append(f"{spec.name} does not cover {gap.what}")
                continue
            _debug("%s: engine %r chosen for %s%s", function, spec.name, type(x).__name__,
                   f" ({'; '.join(passed)})" if passed else "")
            return spec.load()
        raise TypeError(f"{function}: no engine can compute on {type(x).__name__}")
    if not isinstance(engine, str):
        raise TypeError(f"engine must be a name or None, got {engine!r}")
    spec = get_engine(engine)
    if _can_run(spec, function, x):
        gap = None if call is None else spec.gap(function, call)
        if gap is None:
            _debug("%s: engine %r forced for %s", function, spec.name, type(x).__name__)
            return spec.load()
        why = f"does not cover {function} with {gap.what}"
    else:
        why = f"needs {', '.join(spec.missing())} installed" if spec.missing() else "does not apply"
        why = f"cannot run {function} on {type(x).__name__} ({why})"
    able = [s.name for s in ENGINES
            if _can_run(s, function, x) and (call is None or s.covers(function, call))]
    raise ValueError(f"engine {engine!r} {why}; engines that can: {', '.join(able) or 'none'}")


def call_engine(function: str, engine: str | None, *args: Any, **options: Any) -> Any:
    """Run ``function(*args, **options)`` on the engine chosen for it (``args[0]`` is the array).

    The one way the public functions and the Dask engine's blocks reach an engine: the choice
    sees every option the engine will receive.
    """
    module = choose_engine(function, args[0], engine, as_call(function, args, options))
    return getattr(module, function)(*args, **options)
