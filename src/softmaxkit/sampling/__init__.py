"""Sampling from the softmax: temperature, top-k, top-p (nucleus), min-p, and Gumbel-softmax.

The filtered distribution
-------------------------
Along ``axis`` each row of logits ``x`` defines one distribution. The filters apply in the
order of Hugging Face transformers' logits processors (``TemperatureLogitsWarper``,
``TopKLogitsWarper``, ``TopPLogitsWarper``, ``MinPLogitsWarper``) and of vLLM's sampler
(temperature, then top-k/top-p, then min-p):

0. *included* entries: those ``where`` allows, other than ``-inf`` (probability 0). Rank them
   by value, largest first; **equal values rank by lower index first** (as
   :func:`softmaxkit.top_k` and :func:`softmaxkit.predict` break ties).
1. temperature ``T``: weights ``w = exp((x - max) / T)``, ``w = 1`` for the maximum. ``T = 0``
   is the limit ``T -> 0``: the largest logits share all the mass (argmax when there is one).
   If the row holds ``+inf``, the ``+inf`` entries share the mass (SPEC §2) whatever ``T``.
2. top-k: the first ``k`` in rank order (exactly ``min(k, count)``; ties at the boundary go
   to the lower index). ``k >= n`` keeps every entry.
3. top-p: of what top-k kept, the shortest rank-order prefix whose weight is at least ``p``
   of the kept weight; the entry that crosses ``p`` is kept. ``top_p = 1`` keeps everything.
4. min-p: of what is left, the entries with ``w >= min_p`` (probability at least ``min_p``
   times the largest probability).

The result is always a prefix of the rank order. ``sample`` draws from ``w`` restricted to it,
which is ``softmax(x, where=mask, temperature=T)`` with ``mask`` the chain
``top_k_mask -> top_p_mask -> min_p_mask`` (each given the previous one as ``where=``).

Rows that hold NaN raise ``ValueError``; rows with nothing included raise ``ValueError`` in
``sample`` (naming the rows) and give all-``False`` masks.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from typing import Any

import numpy as np

from softmaxkit._arrays import (
    Array,
    as_array,
    check_flag,
    check_mask,
    cpu_tensor_view,
    device_of,
    namespace,
    result_dtype,
    single_axis,
)
from softmaxkit._engines import ENGINE_ALIASES, NUMBA_MIN_SIZE, Call, Gap, logger
from softmaxkit._jax import is_traced
from softmaxkit.sampling._gumbel import gumbel_softmax
from softmaxkit.sampling._params import (
    EMPTY,
    OK,
    TOO_FEW,
    RowParams,
    as_host,
    check_count,
    raise_for_status,
    row_params,
    uniforms,
)

__all__ = ["gumbel_softmax", "min_p_mask", "sample", "top_k_mask", "top_p_mask"]

ENGINES = ("cuda", "numba", "generic")
"""Sampling engines in order of preference: ``cuda`` (CuPy arrays, torch CUDA tensors and JAX
GPU arrays, CuPy installed: the kernels of ``cuda/kernels/sampling.cu``, tested on the CPU
harness only), ``numba`` (NumPy arrays and CPU torch tensors of at least ``NUMBA_MIN_SIZE``
elements, through a zero-copy NumPy view) and ``generic`` (any array-API library; sorts each
row)."""

SAMPLING_FUNCTIONS = frozenset({"sample", "top_k_mask", "top_p_mask", "min_p_mask"})


def _beyond_cuda_rows(call: Call) -> bool:
    from softmaxkit.cuda._plan import SAMPLING_MAX_N

    return bool(call["n"] > SAMPLING_MAX_N)


GAPS: dict[str, tuple[Gap, ...]] = {
    "cuda": (Gap(SAMPLING_FUNCTIONS, "rows of 2**31 entries or more", _beyond_cuda_rows),),
}
"""What an engine does not cover (read by the parameter names of ``call``: ``x``, ``n`` the
row length, ``num_samples``, ``replacement``), as in the registry of :mod:`softmaxkit._engines`:
the automatic choice passes over it, an explicit ``engine=`` raises ValueError."""


def _numba_runs(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor) and x.device.type == "cpu"


def _cuda_runs(x: Any) -> bool:
    from softmaxkit.cuda._bridge import is_gpu_array

    return is_gpu_array(x)


RUNS = {"cuda": (_cuda_runs, "cupy"), "numba": (_numba_runs, "numba"), "generic": (lambda x: True, None)}
"""Each engine's array test and the module it needs installed."""


def _runs(engine: str, x: Any) -> bool:
    test, needs = RUNS[engine]
    return test(x) and (needs is None or importlib.util.find_spec(needs) is not None)


def _gap(engine: str, name: str, call: Call) -> Gap | None:
    return next((g for g in GAPS.get(engine, ()) if name in g.functions and g.applies(call)), None)


def _choose(x: Any, engine: str | None, name: str, call: Call) -> str:
    if engine is None:
        passed = []
        for candidate in ENGINES:
            # Small arrays stay generic, as softmax's do: loading the kernels costs seconds.
            if not _runs(candidate, x) or (candidate == "numba" and math.prod(x.shape) < NUMBA_MIN_SIZE):
                continue
            gap = _gap(candidate, name, call)
            if gap is not None:
                passed.append(f"{candidate} does not cover {gap.what}")
                continue
            logger.debug("%s: engine %r chosen for %s%s", name, candidate, type(x).__name__,
                         f" ({'; '.join(passed)})" if passed else "")
            return candidate
    engine = ENGINE_ALIASES.get(engine, engine) if isinstance(engine, str) else engine
    if engine not in ENGINES:
        raise ValueError(f"{name}: unknown engine {engine!r}; sampling engines: {', '.join(ENGINES)}")
    able = [e for e in ENGINES if _runs(e, x) and _gap(e, name, call) is None]
    if not _runs(engine, x):
        needs = RUNS[engine][1]
        raise ValueError(f"{name}: engine {engine!r} cannot run on {type(x).__name__} (needs "
                         f"{'GPU arrays' if engine == 'cuda' else 'NumPy arrays or CPU torch tensors'}"
                         f" and {needs} installed); engines that can: {', '.join(able)}")
    gap = _gap(engine, name, call)
    if gap is not None:
        raise ValueError(f"{name}: engine {engine!r} does not cover {gap.what}; engines that can: "
                         f"{', '.join(able)}")
    return engine


def _prepared(logits: Any, axis: int, where: Any, name: str) -> tuple[Array, Any, int, Array | None]:
    x = as_array(logits, "logits")
    if is_traced(x) or is_traced(where):
        raise TypeError(f"{name} cannot run inside a JAX transformation (jax.jit, jax.vmap, ...): "
                        "it checks every row on the host (NaN, no class left) before it draws or "
                        "masks; call it on concrete arrays (gumbel_softmax traces)")
    xp = namespace(x)
    a = single_axis(axis, x.ndim, name)
    dtype = result_dtype(xp, x, None, allow_complex=False, name=name)
    if x.dtype != dtype:
        x = xp.astype(x, dtype)
    return x, xp, a, check_mask(xp, where, x)


def _batch(x: Array, a: int) -> tuple[int, ...]:
    return tuple(int(s) for d, s in enumerate(x.shape) if d != a)


def _host_rows(x: Any, a: int) -> np.ndarray:
    """NumPy ``(rows, n)`` float32/float64 C-contiguous rows (a view where the layout allows)."""
    if not isinstance(x, np.ndarray):  # a CPU torch tensor: its NumPy view shares memory
        if str(x.dtype) not in ("torch.float32", "torch.float64"):
            x = x.float()
        x = cpu_tensor_view(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)  # float16 / bfloat16 computed in float32, as softmax does
    moved = np.moveaxis(x, a, -1)
    return np.ascontiguousarray(moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1]))


def _host_mask(mask: Any, a: int) -> np.ndarray:
    # A torch mask: a view of CPU memory, or of a host copy of GPU memory.
    m = cpu_tensor_view(mask.detach().cpu()) if hasattr(mask, "detach") else np.asarray(mask)
    moved = np.moveaxis(m, a, -1)
    return np.ascontiguousarray(moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1]))


def _device_rows(xp: Any, x: Array, a: int) -> Array:
    moved = xp.moveaxis(x, a, -1)
    return xp.reshape(moved, (math.prod(moved.shape[:-1]), moved.shape[-1]))


def _column(xp: Any, values: np.ndarray, like: Array) -> Array:
    return xp.reshape(xp.asarray(values, device=device_of(like)), (-1, 1))


def _to_library(xp: Any, values: Any, like: Array) -> Array:
    """``values`` (NumPy, or an array of another library) as an array of ``like``'s library."""
    if namespace(values) is xp:  # a torch generator's CPU uniforms for a CUDA tensor: move them
        return values if device_of(values) == device_of(like) else xp.asarray(values, device=device_of(like))
    return xp.asarray(np.asarray(as_host(values)), device=device_of(like))


def _shaped(xp: Any, flat: Array, batch: tuple[int, ...], a: int, last: int) -> Array:
    """``(rows, last)`` back to the logits' layout with ``axis`` holding ``last`` entries."""
    return xp.moveaxis(xp.reshape(flat, (*batch, last)), -1, a)


def _filtered(name: str, x: Array, xp: Any, a: int, mask: Array | None, params: RowParams,
              engine: str | None) -> Array:
    batch, n = _batch(x, a), int(x.shape[a])
    chosen = _choose(x, engine, name, {"x": x, "n": n, "num_samples": 1, "replacement": True})
    if chosen == "cuda":
        from softmaxkit.cuda import _sampling

        keep, status = _sampling.filter_rows(x, a, mask, params)
        raise_for_status(np.where(status == EMPTY, OK, status), batch, name, 1)
        return keep
    if chosen == "numba":
        from softmaxkit.numba._threads import run
        from softmaxkit.sampling import _kernels

        rows = _host_rows(x, a)
        m = _host_mask(mask, a) if mask is not None else np.ones((1, 1), dtype=np.bool_)
        out = np.empty(rows.shape, dtype=np.bool_)
        status = np.empty(rows.shape[0], dtype=np.int8)
        if rows.size:
            with np.errstate(all="ignore"):
                run(_kernels.filter_rows, rows.shape[0], rows.size, rows, m, mask is not None,
                    params.inv_t, params.top_k, params.top_p, params.min_p, params.buffer_size(n),
                    out, status)
        raise_for_status(np.where(status == EMPTY, OK, status), batch, name, 1)
        result = _shaped(np, out, batch, a, n)
        return result if isinstance(x, np.ndarray) else _to_torch(result, x)
    from softmaxkit.sampling import _generic

    rows = _device_rows(xp, x, a)
    dm = _device_rows(xp, mask, a) if mask is not None else None
    keep, _, status = _generic.sorted_weights(rows, dm, *_device_params(xp, params, rows))
    raise_for_status(np.where(status == EMPTY, OK, status), batch, name, 1)
    return _shaped(xp, keep, batch, a, n)


def _device_params(xp: Any, params: RowParams, like: Array) -> tuple[Array, Array, Array, Array]:
    return (_column(xp, params.inv_t, like), _column(xp, params.top_k, like),
            _column(xp, params.top_p, like), _column(xp, params.min_p, like))


def _to_torch(values: np.ndarray, like: Any) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(values)).to(like.device)


def top_k_mask(logits: Any, k: Any, /, axis: int = -1, *, where: Any = None,
               engine: str | None = None) -> Array:
    """The ``k`` largest logits of each row, as a boolean mask usable as ``where=``.

    Exactly ``min(k, count)`` entries are ``True``, ``count`` being the included entries
    (``where`` allows them, they are not ``-inf``); a tie at the k-th place goes to the lower
    index. ``k`` is an int ``>= 1`` or one per row.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> sk.top_k_mask([1.0, 3.0, 3.0, 2.0], 2)
    array([False,  True,  True, False])
    >>> sk.top_k_mask([2.0, 1.0, 2.0, 2.0], 2)  # ties: the lower indices win
    array([ True, False,  True, False])
    """
    x, xp, a, mask = _prepared(logits, axis, where, "top_k_mask")
    params = row_params(1.0, k, None, None, _batch(x, a), int(x.shape[a]))
    return _filtered("top_k_mask", x, xp, a, mask, params, engine)


def top_p_mask(logits: Any, p: Any, /, axis: int = -1, *, temperature: Any = 1.0, where: Any = None,
               engine: str | None = None) -> Array:
    """The nucleus of each row: the fewest largest entries holding at least ``p`` of the mass.

    The mass is that of ``softmax(logits, where=where, temperature=temperature)``. Entries
    are taken largest first (ties by lower index) until their probability reaches ``p``; the
    entry that crosses ``p`` is included. ``p`` in ``(0, 1]``; ``p = 1`` keeps every included
    entry. When a prefix's mass equals ``p`` to within rounding, float64 arithmetic decides.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> import numpy as np
    >>> x = np.log([0.5, 0.1, 0.3, 0.1])
    >>> sk.top_p_mask(x, 0.7)  # 0.5 is short of 0.7; 0.5 + 0.3 crosses it
    array([ True, False,  True, False])
    >>> sk.top_p_mask(x, 0.85)  # the tied 0.1s: the lower index comes first
    array([ True,  True,  True, False])
    """
    x, xp, a, mask = _prepared(logits, axis, where, "top_p_mask")
    params = row_params(temperature, None, p, None, _batch(x, a), int(x.shape[a]))
    return _filtered("top_p_mask", x, xp, a, mask, params, engine)


def min_p_mask(logits: Any, min_p: Any, /, axis: int = -1, *, temperature: Any = 1.0,
               where: Any = None, engine: str | None = None) -> Array:
    """Entries whose probability is at least ``min_p`` times the row's largest probability.

    That is ``exp((x - max) / T) >= min_p`` over the included entries; ``min_p`` in ``[0, 1]``.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> import numpy as np
    >>> sk.min_p_mask(np.log([0.6, 0.05, 0.3, 0.05]), 0.1)  # keeps p >= 0.06
    array([ True, False,  True, False])
    """
    x, xp, a, mask = _prepared(logits, axis, where, "min_p_mask")
    params = row_params(temperature, None, None, min_p, _batch(x, a), int(x.shape[a]))
    return _filtered("min_p_mask", x, xp, a, mask, params, engine)


def sample(
    logits: Any, /, axis: int = -1, *, temperature: Any = 1.0, top_k: Any = None, top_p: Any = None,
    min_p: Any = None, where: Any = None, num_samples: int = 1, replacement: bool = True,
    rng: Any = None, engine: str | None = None,
) -> Array:
    """Draw class indices from the (filtered) softmax of ``logits``.

    Parameters
    ----------
    logits : array
        Unnormalised log-probabilities; the classes run along ``axis``.
    axis : int
        The class axis.
    temperature : float or array, optional
        ``T >= 0``, a scalar or one per row; ``T = 0`` draws among the largest logits only.
    top_k : int or array, optional
        Keep the ``k`` most likely classes (ties: lower index); None turns it off.
    top_p : float or array, optional
        Keep the smallest most-likely set holding at least ``p`` of the probability, in
        ``(0, 1]``; the class that crosses ``p`` is kept.
    min_p : float or array, optional
        Keep classes at least ``min_p`` times as likely as the most likely one, in ``[0, 1]``.
    where : boolean array, optional
        Classes that may be drawn at all (broadcast to ``logits``).
    num_samples : int
        Draws per row.
    replacement : bool
        Without replacement, each row's draws are distinct (drawn one after another, each
        from what is left); a row with fewer than ``num_samples`` classes of positive
        probability raises ``ValueError``.
    rng : numpy Generator, int, torch.Generator or JAX key, optional
        The random stream. All uniforms are drawn up front, one per draw, so the result does
        not depend on the number of threads. None: fresh entropy (torch tensors: torch's
        global generator).
    engine : {"cuda", "numba", "generic"}, optional
        Force an engine; by default GPU arrays (CuPy, torch CUDA tensors, JAX on GPUs) use the
        CUDA kernels when CuPy is installed, NumPy arrays and CPU tensors the Numba kernels
        (small ones the generic engine, as :func:`softmaxkit.softmax` does). The CUDA kernels
        are tested on a CPU emulation of the GPU only; they have not run on a GPU yet.

    Returns
    -------
    array of int64
        The logits' shape with ``axis`` holding ``num_samples`` indices, of the same library.

    Notes
    -----
    The filters and their order are defined in :mod:`softmaxkit.sampling`: temperature, top-k,
    top-p, min-p, as Hugging Face transformers and vLLM apply them. Each draw takes one uniform
    ``u`` and returns the first class whose cumulative probability (in index order) exceeds ``u``.

    Examples
    --------
    >>> import softmaxkit as sk
    >>> logits = [[2.0, 1.0, 0.5, -1.0], [0.0, 0.0, 0.0, 9.0]]
    >>> sk.sample(logits, top_k=2, num_samples=5, rng=0)
    array([[0, 0, 0, 0, 1],
           [3, 3, 3, 3, 3]])
    >>> sk.sample(logits, temperature=0.0, rng=0)  # the argmax
    array([[0],
           [3]])
    """
    x, xp, a, mask = _prepared(logits, axis, where, "sample")
    count = check_count(num_samples)
    replacement = check_flag(replacement, "replacement")
    batch, n = _batch(x, a), int(x.shape[a])
    params = row_params(temperature, top_k, top_p, min_p, batch, n)
    rows = int(np.prod(batch, dtype=np.int64))
    u = uniforms(rng, (rows, count), x)
    chosen = _choose(x, engine, "sample", {"x": x, "n": n, "num_samples": count,
                                            "replacement": replacement})
    if chosen == "cuda":
        from softmaxkit.cuda import _bridge, _sampling
        from softmaxkit.sampling._generic import index_dtype

        if rows and not n:
            raise_for_status(np.full(rows, EMPTY), batch, "sample", count)
        picks, status = _sampling.sample(x, a, mask, params, u, replacement,
                                         _bridge.dtype_name(index_dtype(xp)))
        raise_for_status(status, batch, "sample", count)
        return picks
    if chosen == "numba":
        from softmaxkit.numba._threads import run
        from softmaxkit.sampling import _kernels

        host = _host_rows(x, a)
        m = _host_mask(mask, a) if mask is not None else np.ones((1, 1), dtype=np.bool_)
        out = np.zeros((rows, count), dtype=np.int64)
        status = np.zeros(rows, dtype=np.int8)
        if rows and n:
            with np.errstate(all="ignore"):
                run(_kernels.sample_rows, rows, host.size, host, m, mask is not None, params.inv_t,
                    params.top_k, params.top_p, params.min_p, params.buffer_size(n), as_host(u),
                    replacement, out, status)
        elif rows:
            status[:] = EMPTY
        raise_for_status(status, batch, "sample", count)
        result = _shaped(np, out, batch, a, count)
        return result if isinstance(x, np.ndarray) else _to_torch(result, x)
    from softmaxkit.sampling import _generic

    flat = _device_rows(xp, x, a)
    dm = _device_rows(xp, mask, a) if mask is not None else None
    _, weights, status = _generic.sorted_weights(flat, dm, *_device_params(xp, params, flat))
    raise_for_status(status, batch, "sample", count)
    picks, too_few = _generic.draw(weights, _to_library(xp, u, flat), replacement)
    if not replacement:
        raise_for_status(np.where(too_few, TOO_FEW, 0), batch, "sample", count)
    return _shaped(xp, xp.astype(picks, _generic.index_dtype(xp)), batch, a, count)
