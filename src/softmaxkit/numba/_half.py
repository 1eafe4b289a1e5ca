"""float16 and bfloat16 rows: converted to float32 inside the kernel, one row at a time.

Numba has no half-precision type on the CPU, and converting a whole array with NumPy costs
two extra passes over memory (NumPy's float32 -> float16 cast is also slow for the subnormal
halves a softmax produces). The rows are read as ``uint16`` bit patterns instead and widened
or rounded inside the kernel: the float32 arithmetic is the same (SPEC §2: halves accumulate
in float32), rounding back is to nearest-even like NumPy's cast.

float16 is converted by LLVM's own ``fpext`` / ``fptrunc`` on CPUs that have the instructions
(x86-64 with F16C, ARMv8): on 8,192 x 1,024 float16, one thread, softmax took 10.0 ms with
them against 12.5 ms with the integer conversions below, log_softmax 9.6 against 12.8 ms.
Elsewhere, and for bfloat16 (no instruction on these CPUs), integer operations that LLVM
vectorises do the same conversions exactly.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from softmaxkit._arrays import is_half
from softmaxkit.numba import _threads as threads
from softmaxkit.numba._exp import EXACT_FLAGS, _f32_bits, _f32_from_bits, exp_small, float_key, key_float
from softmaxkit.numba._grad import EXP_LIMIT, exp_beyond
from softmaxkit.numba._jit import helper, kernel, readonly
from softmaxkit.numba._loss import row_cross_entropy
from softmaxkit.numba._rows import limit_row
from softmaxkit.numba._sums import (
    REDUCE_FLAGS,
    halves_needed,
    span_dot,
    store_exp_rounded_to_half,
    store_log,
    sum_exp_rounded_to_half,
)


def _converts_half_in_hardware() -> bool:
    """Whether LLVM compiles half <-> float conversions to instructions for this process's CPU.

    Without them it would call compiler-rt helpers that Numba's JIT does not link. A CPU
    named through ``NUMBA_CPU_NAME`` (portable caches) is not probed: the integer path serves.
    """
    from llvmlite import binding

    if getattr(numba.config, "CPU_NAME", None) is not None:  # set from the environment at import
        return False
    triple = binding.get_process_triple()
    if triple.startswith(("aarch64", "arm64")):
        return True
    return triple.startswith("x86_64") and bool(binding.get_host_cpu_features().get("f16c", False))


HARDWARE_HALF = _converts_half_in_hardware()
"""float16 conversions by CPU instructions (a compile-time constant of the kernels below)."""


@intrinsic
def _fpext_half(typingctx, h):
    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.uint16), codegen


@intrinsic
def _fptrunc_half(typingctx, f):
    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(types.float32), codegen


_TWO_112 = np.float32(2.0**112)
_HALF = np.float32(0.5)


@helper(fastmath=EXACT_FLAGS)
def half_to_float(h):
    """IEEE float16 bits to float32, exact (subnormals by one scaling multiply)."""
    em = np.int32(h) & np.int32(0x7FFF)
    sign = (np.int32(h) & np.int32(0x8000)) << np.int32(16)
    bits = _f32_bits(_f32_from_bits(np.int32(em << np.int32(13))) * _TWO_112)
    if em >= 0x7C00:  # inf and NaN keep their payload
        bits = np.int32(0x7F800000) | np.int32(em << np.int32(13))
    return _f32_from_bits(np.int32(bits | sign))


@helper(fastmath=EXACT_FLAGS)
def float_to_half(f):
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


@helper(fastmath=EXACT_FLAGS)
def bfloat_to_float(h):
    return _f32_from_bits(np.int32(np.int32(h) << np.int32(16)))


@helper(fastmath=EXACT_FLAGS)
def float_to_bfloat(f):
    """float32 to bfloat16 bits, rounded to nearest even; NaN stays a (quiet) NaN."""
    bits = _f32_bits(f)
    rounded = (bits + np.int32(0x7FFF) + ((bits >> np.int32(16)) & np.int32(1))) >> np.int32(16)
    if f != f:
        rounded = (bits >> np.int32(16)) | np.int32(0x40)
    return np.uint16(rounded & np.int32(0xFFFF))


@helper(fastmath=EXACT_FLAGS)
def half_in(h):
    """float16 bits to float32, exact: the instruction where there is one."""
    return _fpext_half(h) if HARDWARE_HALF else half_to_float(h)


@helper(fastmath=EXACT_FLAGS)
def half_out(f):
    """float32 to float16 bits, to nearest even: the instruction where there is one."""
    return _fptrunc_half(f) if HARDWARE_HALF else float_to_half(f)


@helper(fastmath=EXACT_FLAGS)
def _widen(h, f, bf16):
    if bf16:
        for i in range(h.size):
            f[i] = bfloat_to_float(h[i])
    else:
        for i in range(h.size):
            f[i] = half_in(h[i])


@helper(fastmath=EXACT_FLAGS)
def _widen_max(h, f, bf16):
    """:func:`_widen`, returning the largest value (a NaN may or may not win, as in
    ``_sums.span_max``, whose integer keys it shares): one pass over the row instead of two."""
    key = float_key(np.float32(-np.inf))
    if bf16:
        for i in range(h.size):
            v = bfloat_to_float(h[i])
            f[i] = v
            k = float_key(v)
            key = k if k > key else key
    else:
        for i in range(h.size):
            v = half_in(h[i])
            f[i] = v
            k = float_key(v)
            key = k if k > key else key
    return key_float(key)


@helper(fastmath=EXACT_FLAGS)
def _narrow(f, h, bf16):
    if bf16:
        for i in range(f.size):
            h[i] = float_to_bfloat(f[i])
    else:
        for i in range(f.size):
            h[i] = half_out(f[i])


@helper(fastmath=EXACT_FLAGS)
def _narrow_scaled(f, h, factor, bf16):
    if bf16:
        for i in range(f.size):
            h[i] = float_to_bfloat(f[i] * factor)
    else:
        for i in range(f.size):
            h[i] = half_out(f[i] * factor)


@helper(fastmath=EXACT_FLAGS)
def _narrow_log(f, h, shift, inv_t, lse, bf16):
    if bf16:
        for i in range(f.size):
            h[i] = float_to_bfloat((f[i] - shift) * inv_t - lse)
    else:
        for i in range(f.size):
            h[i] = half_out((f[i] - shift) * inv_t - lse)


_ROWS_PER_TASK = 16


def tasks(rows: int) -> int:
    """Work items of the half-precision row kernels: groups of ``_ROWS_PER_TASK`` rows."""
    return (rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK


@kernel(fastmath=EXACT_FLAGS)
def softmax_half_rows(x, out, inv_t, log, bf16, start, stop):
    """softmax (or log_softmax) over axis 1 of half-precision bits (``uint16``) into ``out``.

    The float32 arithmetic of :func:`~softmaxkit.numba._rows.row_softmax`, with its last pass
    (scale, or subtract the log of the sum) fused into the rounding to half precision: one
    pass over the row fewer (float16 log_softmax on 8,192 x 1,024: 6.5 ms -> see BENCHMARKS.md).
    Its ``exp`` is :func:`~softmaxkit.numba._exp.exp32_for_half`: the results are rounded to
    half precision, and the float32 kernel's ``exp`` was half the time. Tasks ``start .. stop``
    (:func:`tasks`).
    """
    rows, n = x.shape
    # Scratch per call, not per task: 512 allocations cost 0.3 ms of a 8,192 x 1,024 float16
    # log_softmax vjp's 3.0 ms on one thread (BENCHMARKS.md, session 11).
    scratch = np.empty(n, dtype=np.float32)
    for c in range(start, stop):
        for r in range(c * _ROWS_PER_TASK, min(rows, (c + 1) * _ROWS_PER_TASK)):
            row, shift = scratch, _widen_max(x[r], scratch, bf16)  # _rows.settled_row, fused
            if shift == np.inf:
                row, shift = limit_row(scratch), np.float32(0.0)
            elif shift == -np.inf:
                shift = np.float32(0.0)
            if log:
                s = sum_exp_rounded_to_half(row, shift, inv_t)
                lse = np.float32(math.log(s) if s != 0.0 else 0.0)
                if halves_needed(shift, inv_t):  # x - shift would overflow: _sums.store_log halves it
                    store_log(row, row, shift, inv_t, lse)
                    _narrow(row, out[r], bf16)
                else:
                    _narrow_log(row, out[r], shift, inv_t, lse, bf16)
            else:
                s = store_exp_rounded_to_half(row, row, shift, inv_t)
                _narrow_scaled(row, out[r], np.float32(1.0 / s if s != 0.0 else 1.0), bf16)


_CHUNK = 1 << 16


@kernel(fastmath=EXACT_FLAGS)
def widen(h, f, bf16, start, stop):
    """1-d half bits ``h`` to float32 ``f`` (NumPy's ``astype(float32)``): chunks ``start .. stop``."""
    for k in range(start, stop):
        _widen(h[k * _CHUNK:(k + 1) * _CHUNK], f[k * _CHUNK:(k + 1) * _CHUNK], bf16)


@kernel(fastmath=EXACT_FLAGS)
def narrow(f, h, bf16, start, stop):
    """1-d float32 ``f`` to half bits ``h``, to nearest even (NumPy's cast): chunks ``start .. stop``."""
    for k in range(start, stop):
        _narrow(f[k * _CHUNK:(k + 1) * _CHUNK], h[k * _CHUNK:(k + 1) * _CHUNK], bf16)


def convert(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``a.astype(dtype)`` for casts between float32 and a half type of C-contiguous arrays,
    by the kernels above; other casts by NumPy."""
    dtype = np.dtype(dtype)
    if a.dtype == dtype and a.flags.c_contiguous:
        return a
    half_in, half_out = is_half(a.dtype), is_half(dtype)
    other = dtype if half_in else a.dtype
    if not (a.flags.c_contiguous and a.dtype.isnative and dtype.isnative and half_in != half_out
            and other == np.float32):  # the kernels write native bits: byte-swapped halves by NumPy
        return a.astype(dtype, order="C", copy=False)
    result = np.empty(a.shape, dtype=dtype)
    bf16 = (a.dtype if half_in else dtype).type.__name__ == "bfloat16"
    chunks = (a.size + _CHUNK - 1) // _CHUNK
    if a.dtype == np.float32:
        threads.run(narrow, chunks, a.size, readonly(a.reshape(-1)), result.view(np.uint16).reshape(-1), bf16)
    else:
        threads.run(widen, chunks, a.size, readonly(a.view(np.uint16).reshape(-1)), result.reshape(-1), bf16)
    return result


@kernel(fastmath=EXACT_FLAGS)
def cross_entropy_half_rows(x, grad, losses, labels, counted, w, smoothing, scale, want_grad, bf16,
                            start, stop):
    """:func:`softmaxkit.numba._loss.cross_entropy_rows` on half-precision bits (``uint16``):
    each row widened into float32, its gradient rounded back, with no float32 copy of the arrays.
    Tasks ``start .. stop`` (:func:`tasks`)."""
    rows, n = x.shape
    # Scratch per call, as in softmax_half_rows; the gradient row before the logits row, so
    # that store_exp never finds it just after them (a copy per row: _sums.into_place).
    scratch = np.empty(2 * n, dtype=np.float32)
    g, row = scratch[:n if want_grad else 0], scratch[n:]
    for c in range(start, stop):
        for r in range(c * _ROWS_PER_TASK, min(rows, (c + 1) * _ROWS_PER_TASK)):
            _widen(x[r], row, bf16)
            label = labels[r] if counted[r] else 0
            losses[r] = row_cross_entropy(row, g, label, counted[r], w, smoothing, scale, want_grad)
            if want_grad:
                _narrow(g, grad[r], bf16)


@helper(fastmath=EXACT_FLAGS)
def _narrow_scale_difference(s, g, dot, h, bf16):
    """``h = s * (g - dot)`` rounded to half precision: ``_grad.scale_difference`` and the
    rounding in one pass (the same float32 products, so the same bits)."""
    if bf16:
        for i in range(s.size):
            h[i] = float_to_bfloat(s[i] * (g[i] - dot))
    else:
        for i in range(s.size):
            h[i] = half_out(s[i] * (g[i] - dot))


@helper(fastmath=EXACT_FLAGS)
def _narrow_live_difference(lp, g, total, h, bf16):
    """``_grad.live_difference`` rounded to half precision in the same pass."""
    zero = np.float32(0.0)
    if bf16:
        for i in range(lp.size):
            h[i] = float_to_bfloat(zero if lp[i] == -np.inf else g[i] - exp_small(lp[i]) * total)
    else:
        for i in range(lp.size):
            h[i] = half_out(zero if lp[i] == -np.inf else g[i] - exp_small(lp[i]) * total)


@kernel(fastmath=EXACT_FLAGS)
def softmax_vjp_half_rows(s, g, out, bf16, start, stop):
    """:func:`softmaxkit.numba._grad.softmax_vjp_rows` on half-precision bits (``uint16``):
    each row of ``s`` and ``g`` widened into float32, the product rounded back as it is
    computed, with no float32 copy of the arrays (the same float32 arithmetic, so the same
    bits). Tasks ``start .. stop`` (:func:`tasks`)."""
    rows, n = s.shape
    sf = np.empty(n, dtype=np.float32)  # per call, as in softmax_half_rows
    gf = np.empty(n, dtype=np.float32)
    for c in range(start, stop):
        first, last = c * _ROWS_PER_TASK, min(rows, (c + 1) * _ROWS_PER_TASK)
        if bf16:  # the format as a constant: see log_softmax_vjp_half_rows
            _softmax_vjp_half_task(s, g, out, sf, gf, first, last, True)
        else:
            _softmax_vjp_half_task(s, g, out, sf, gf, first, last, False)


@helper(fastmath=EXACT_FLAGS)
def _softmax_vjp_half_task(s, g, out, sf, gf, first, last, bf16):
    for r in range(first, last):
        _widen(s[r], sf, bf16)
        _widen(g[r], gf, bf16)
        _narrow_scale_difference(sf, gf, np.float32(span_dot(gf, sf)), out[r], bf16)


@helper(fastmath=EXACT_FLAGS)
def _narrow_beyond_exp(lp, g, total, h, bf16):
    """``_grad.redo_beyond_exp`` on widened rows, rounded to half precision."""
    for i in range(lp.size):
        if lp[i] >= EXP_LIMIT:
            v = g[i] - np.float32(exp_beyond(lp[i])) * total
            h[i] = float_to_bfloat(v) if bf16 else half_out(v)


@helper(fastmath=REDUCE_FLAGS)
def _widen_live_sum(h, lp, f, bf16):
    """:func:`_widen` of ``h`` into ``f``, returning ``_grad.live_sum(lp, f)``: one pass over the
    row instead of two. Reassociated (vectorised) as ``live_sum`` is; for float16 that changes
    nothing, since a float64 sum of float16 values is exact in any order (their bits span at
    most 40 places; even 8,192 of them fit float64's 53)."""
    total = 0.0
    if bf16:
        for i in range(h.size):
            v = bfloat_to_float(h[i])
            f[i] = v
            total += 0.0 if lp[i] == -np.inf else np.float64(v)
    else:
        for i in range(h.size):
            v = half_in(h[i])
            f[i] = v
            total += 0.0 if lp[i] == -np.inf else np.float64(v)
    return total


@helper(fastmath=EXACT_FLAGS)
def _log_softmax_vjp_half_task(lp, g, out, lf, gf, first, last, bf16):
    for r in range(first, last):
        top = _widen_max(lp[r], lf, bf16)
        total = np.float32(_widen_live_sum(g[r], lf, gf, bf16))
        _narrow_live_difference(lf, gf, total, out[r], bf16)
        if not top < EXP_LIMIT:  # NaN included: the redo tests each entry itself
            _narrow_beyond_exp(lf, gf, total, out[r], bf16)


@kernel(fastmath=EXACT_FLAGS)
def log_softmax_vjp_half_rows(lp, g, out, bf16, start, stop):
    """:func:`softmaxkit.numba._grad.log_softmax_vjp_rows` on half-precision bits, as
    :func:`softmax_vjp_half_rows`, for any ``lp`` (``_grad.redo_beyond_exp``). Three passes
    over each row: ``lp`` widened with its maximum (whether any entry needs the redo), ``g``
    widened with its live sum, then the difference rounded back. The format is passed to the
    rows as a constant, so that LLVM specialises them for it (a flag tested inside the loops
    kept them slower). 8,192 x 1,024 float16 on one thread: 3.3 -> 2.8 ms, with both changes."""
    rows, n = lp.shape
    lf = np.empty(n, dtype=np.float32)  # per call, as in softmax_half_rows
    gf = np.empty(n, dtype=np.float32)
    for c in range(start, stop):
        first, last = c * _ROWS_PER_TASK, min(rows, (c + 1) * _ROWS_PER_TASK)
        if bf16:
            _log_softmax_vjp_half_task(lp, g, out, lf, gf, first, last, True)
        else:
            _log_softmax_vjp_half_task(lp, g, out, lf, gf, first, last, False)
