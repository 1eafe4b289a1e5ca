"""Whether log-probabilities stay inside the domain of the log_softmax vjp kernels' ``exp``.

The kernels' ``exp`` is accurate below 40 (log_softmax never gives more than 0); a vjp of
log-probabilities at or above it, or NaN, goes to the generic engine (the registry's gap, and
the CPU torch operators' own check). The registry asks before the engine is loaded, so this
module imports neither the engine nor its thread pool.
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


@kernel(fastmath=EXACT_FLAGS)
def count_half_beyond_exp(h, bf16):
    """How many of the 1-d float16 (or bfloat16) bits ``h`` are 40 or more, or NaN."""
    limit = np.int32(0x4220 if bf16 else 0x5100)  # 40.0
    inf = np.int32(0x7F80 if bf16 else 0x7C00)
    return _count_half_beyond(h, limit, inf)


def beyond_exp(logp: np.ndarray) -> bool:
    """Whether an entry of ``logp`` is 40 or more, or NaN.

    Half precision by its bits (NumPy's ``max`` of float16 runs 30 times slower than of
    float32, and a torch reduction would leave torch's OpenMP workers spinning on the cores the
    vjp kernel needs next); float32 and float64 by NumPy's vectorised ``max``.
    """
    if logp.size == 0:
        return False
    half = is_half(logp.dtype)
    if half and logp.flags.c_contiguous and logp.dtype.isnative:
        bits = readonly(logp.view(np.uint16).reshape(-1))
        return bool(count_half_beyond_exp(bits, logp.dtype.type.__name__ == "bfloat16"))
    values = logp.astype(np.float32) if half else logp
    with np.errstate(invalid="ignore"):  # a NaN maximum is an answer here
        return not values.max() < EXP_LIMIT
