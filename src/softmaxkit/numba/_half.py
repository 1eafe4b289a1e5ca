"""float16 and bfloat16 rows: converted to float32 inside the kernel, one row at a time.

Numba has no half-precision type on the CPU, and converting a whole array with NumPy costs
two extra passes over memory (NumPy's float32 -> float16 cast is also slow for the subnormal
halves a softmax produces). The rows are read as ``uint16`` bit patterns instead and widened
or rounded with integer operations that LLVM vectorises: the float32 arithmetic is the same
(SPEC §2: halves accumulate in float32), rounding back is to nearest-even like NumPy's cast.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from softmaxkit.numba._exp import EXACT_FLAGS, _f32_bits, _f32_from_bits
from softmaxkit.numba._loss import row_cross_entropy
from softmaxkit.numba._rows import row_softmax

_TWO_112 = np.float32(2.0**112)
_HALF = np.float32(0.5)


@njit(fastmath=EXACT_FLAGS, cache=True)
def half_to_float(h):  # type: ignore[no-untyped-def]
    """IEEE float16 bits to float32, exact (subnormals by one scaling multiply)."""
    em = np.int32(h) & np.int32(0x7FFF)
    sign = (np.int32(h) & np.int32(0x8000)) << np.int32(16)
    bits = _f32_bits(_f32_from_bits(np.int32(em << np.int32(13))) * _TWO_112)
    if em >= 0x7C00:  # inf and NaN keep their payload
        bits = np.int32(0x7F800000) | np.int32(em << np.int32(13))
    return _f32_from_bits(np.int32(bits | sign))


@njit(fastmath=EXACT_FLAGS, cache=True)
def float_to_half(f):  # type: ignore[no-untyped-def]
    """float32 to IEEE float16 bits, rounded to nearest even (F. Giesen's branch-free method)."""
    bits = _f32_bits(f)
    a = bits & np.int32(0x7FFFFFFF)
    sign = (bits >> np.int32(16)) & np.int32(0x8000)
    if a >= 0x47800000:  # 65536 and up: inf, or NaN
        o = np.int32(0x7E00) if a > 0x7F800000 else np.int32(0x7C00)
    elif a < 0x38800000:  # below the smallest normal half: the FPU rounds at 2**-24
        o = np.int32(_f32_bits(_f32_from_bits(a) + _HALF) - np.int32(0x3F000000))
    else:
        odd = (a >> np.int32(13)) & np.int32(1)
        o = np.int32((a - np.int32(0x38000000) + np.int32(0xFFF) + odd) >> np.int32(13))
    return np.uint16(o | sign)


@njit(fastmath=EXACT_FLAGS, cache=True)
def bfloat_to_float(h):  # type: ignore[no-untyped-def]
    return _f32_from_bits(np.int32(np.int32(h) << np.int32(16)))


@njit(fastmath=EXACT_FLAGS, cache=True)
def float_to_bfloat(f):  # type: ignore[no-untyped-def]
    """float32 to bfloat16 bits, rounded to nearest even; NaN stays a (quiet) NaN."""
    bits = _f32_bits(f)
    rounded = (bits + np.int32(0x7FFF) + ((bits >> np.int32(16)) & np.int32(1))) >> np.int32(16)
    if f != f:
        rounded = (bits >> np.int32(16)) | np.int32(0x40)
    return np.uint16(rounded & np.int32(0xFFFF))


@njit(fastmath=EXACT_FLAGS, cache=True)
def _widen(h, f, bf16):  # type: ignore[no-untyped-def]
    if bf16:
        for i in range(h.size):
            f[i] = bfloat_to_float(h[i])
    else:
        for i in range(h.size):
            f[i] = half_to_float(h[i])


@njit(fastmath=EXACT_FLAGS, cache=True)
def _narrow(f, h, bf16):  # type: ignore[no-untyped-def]
    if bf16:
        for i in range(f.size):
            h[i] = float_to_bfloat(f[i])
    else:
        for i in range(f.size):
            h[i] = float_to_half(f[i])


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def softmax_half_rows(x, out, inv_t, log, bf16):  # type: ignore[no-untyped-def]
    """softmax (or log_softmax) over axis 1 of half-precision bits (``uint16``) into ``out``."""
    rows, n = x.shape
    for r in prange(rows):
        row = np.empty(n, dtype=np.float32)
        _widen(x[r], row, bf16)
        row_softmax(row, row, inv_t, log)
        _narrow(row, out[r], bf16)


_CHUNK = 1 << 16


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def widen(h, f, bf16):  # type: ignore[no-untyped-def]
    """1-d half bits ``h`` to float32 ``f`` (NumPy's ``astype(float32)``, in parallel)."""
    for k in prange((h.size + _CHUNK - 1) // _CHUNK):
        _widen(h[k * _CHUNK:(k + 1) * _CHUNK], f[k * _CHUNK:(k + 1) * _CHUNK], bf16)


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def narrow(f, h, bf16):  # type: ignore[no-untyped-def]
    """1-d float32 ``f`` to half bits ``h``, to nearest even (NumPy's cast, in parallel)."""
    for k in prange((f.size + _CHUNK - 1) // _CHUNK):
        _narrow(f[k * _CHUNK:(k + 1) * _CHUNK], h[k * _CHUNK:(k + 1) * _CHUNK], bf16)


def convert(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a.astype(dtype)`` for casts between float32 and a half type of C-contiguous arrays,
    by the kernels above; other casts by NumPy."""
    names = {str(a.dtype), str(dtype)}
    half = names - {"float32"}
    if not (a.flags.c_contiguous and a.dtype.isnative and "float32" in names and len(names) == 2
            and half <= {"float16", "bfloat16"}):
        return a.astype(dtype, order="C", copy=False)
    result = np.empty(a.shape, dtype=dtype)
    bf16 = "bfloat16" in half
    if a.dtype == np.float32:
        narrow(a.reshape(-1), result.view(np.uint16).reshape(-1), bf16)
    else:
        widen(a.view(np.uint16).reshape(-1), result.reshape(-1), bf16)
    return result


@njit(parallel=True, fastmath=EXACT_FLAGS, cache=True)
def cross_entropy_half_rows(x, grad, labels, counted, w, smoothing, scale, want_grad, bf16):  # type: ignore[no-untyped-def]
    """:func:`softmaxkit.numba._loss.cross_entropy_rows` on half-precision bits (``uint16``):
    each row widened into float32, its gradient rounded back, with no float32 copy of the arrays."""
    rows, n = x.shape
    losses = np.empty(rows, dtype=np.float64)
    for r in prange(rows):
        row = np.empty(n, dtype=np.float32)
        g = np.empty(n if want_grad else 0, dtype=np.float32)
        _widen(x[r], row, bf16)
        label = labels[r] if counted[r] else 0
        losses[r] = row_cross_entropy(row, g, label, counted[r], w, smoothing, scale, want_grad)
        if want_grad:
            _narrow(g, grad[r], bf16)
    return losses
