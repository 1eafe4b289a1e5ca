"""Whether log-probabilities stay inside the domain of the log_softmax vjp kernels' ``exp``.

The kernels' ``exp`` is accurate below 40 (log_softmax never gives more than 0); a vjp of
log-probabilities at or above it, or NaN, goes to the generic engine (the registry's gap, and
the CPU torch operators' own check). The registry asks before the engine is loaded, so this
module imports neither the engine nor its thread pool (the check imports the pool when it runs).
"""

from __future__ import annotations

import numpy as np

from softmaxkit._arrays import is_half
from softmaxkit.numba._exp import EXACT_FLAGS
from softmaxkit.numba._jit import helper, kernel, readonly

EXP_LIMIT = 40.0


@helper(fastmath=EXACT_FLAGS)
def _count_half_beyond(h, limit, inf):
    # Positive halves at or above ``limit`` (+inf and positive NaNs included), and NaNs of
    # either sign: integer tests on the bits, which LLVM vectorises.
    c = 0
    for i in range(h.size):
        b = np.int32(h[i])
        c += 1 if (b < 0x8000 and b >= limit) or (b & 0x7FFF) > inf else 0
    return c


CHUNK = 1 << 16
"""Elements checked at a time by one of the engine's threads."""


@kernel(fastmath=EXACT_FLAGS)
def count_half_beyond_exp(h, bf16, counts, start, stop):
    """How many of the 1-d float16 (or bfloat16) bits ``h`` are 40 or more, or NaN: chunk ``k``
    (``CHUNK`` elements) of chunks ``start .. stop`` into ``counts[k]``."""
    limit = np.int32(0x4220 if bf16 else 0x5100)  # 40.0
    inf = np.int32(0x7F80 if bf16 else 0x7C00)
    for k in range(start, stop):
        counts[k] = _count_half_beyond(h[k * CHUNK:(k + 1) * CHUNK], limit, inf)


def _max_of_chunks(values: np.ndarray, maxima: np.ndarray, start: int, stop: int) -> None:
    """NumPy's ``max`` of chunks ``start .. stop`` of the 1-d ``values`` (NumPy releases the GIL
    in it, so the pool's threads run their chunks at once)."""
    with np.errstate(invalid="ignore"):  # per thread: a NaN maximum is an answer here
        for k in range(start, stop):
            maxima[k] = values[k * CHUNK:(k + 1) * CHUNK].max()


def beyond_exp(logp: np.ndarray) -> bool:
    """Whether an entry of ``logp`` is 40 or more, or NaN.

    One pass on the engine's threads, chunk by chunk (one thread took 0.8 ms of a 2.5 ms float16
    vjp of 8,192 x 1,024; BENCHMARKS.md, session 8). Half precision by its bits (NumPy's ``max``
    of float16 runs 30 times slower than of float32, and a torch reduction would leave torch's
    OpenMP workers spinning on the cores the vjp kernel needs next); float32 and float64 by
    NumPy's vectorised ``max``.
    """
    if logp.size == 0:
        return False
    from softmaxkit.numba._threads import run  # here: the registry imports this module first

    chunks = (logp.size + CHUNK - 1) // CHUNK
    half = is_half(logp.dtype)
    if half and logp.flags.c_contiguous and logp.dtype.isnative:
        bits = readonly(logp.view(np.uint16).reshape(-1))
        counts = np.zeros(chunks, dtype=np.int64)
        run(count_half_beyond_exp, chunks, bits.size, bits, logp.dtype.type.__name__ == "bfloat16", counts)
        return bool(counts.any())
    values = logp.astype(np.float32) if half else logp
    if values.flags.c_contiguous:
        maxima = np.empty(chunks, dtype=values.dtype)
        run(_max_of_chunks, chunks, values.size, values.reshape(-1), maxima)
        values = maxima
    with np.errstate(invalid="ignore"):  # a NaN maximum is an answer here
        return not values.max() < EXP_LIMIT
