"""SIMD-vectorisable ``exp`` for the kernels: range reduction, a polynomial, exponent bits.

PyPI's llvmlite has no SVML, so ``np.exp`` inside a Numba loop is a call to the scalar libm
``exp`` and the loop cannot be vectorised. :func:`exp_small` is written in operations LLVM
vectorises (fused multiply-adds, a float-to-bits view, integer adds and shifts):

1. ``k = round(z / ln 2)`` by the "magic number" trick: adding ``1.5 * 2**p`` rounds to an
   integer in the float unit and leaves ``k`` in the low mantissa bits, so no float-to-int
   conversion is needed (that conversion is undefined in LLVM for NaN).
2. ``r = z - k ln 2`` with ``ln 2`` split in a high part with trailing zero bits and a low
   part (Cody & Waite, "Software Manual for the Elementary Functions", 1980), so
   ``k * ln2_hi`` is exact; ``|r| <= ln(2)/2``.
3. ``exp(r)`` by a polynomial: Cephes' minimax coefficients for float32 (``expf.c``), the
   Taylor series to degree 13 for float64 (its truncation error is below 0.02 ulp there).
4. ``2**k`` built from exponent bits. The scale is ``2**(k + 64)`` times ``2**-64``, so
   results in the subnormal range are rounded once, as a correctly rounded ``exp`` would.

Domain: ``z`` below 40 (softmax only ever needs ``z <= 0``); ``-inf`` gives 0, NaN gives NaN,
inputs under the underflow threshold give 0. Accuracy against a correctly rounded reference,
measured by ``python -m benchmarks.exp_accuracy`` (``tests/test_numba_engine.py`` reruns it
on a stride): float32 at most 1.010 ulp over every float32 in ``[-104, 0]`` (exhaustive,
1.1e9 values; subnormal results included), float64 at most 0.997 ulp over 11 million random
values in ``[-745, 0]``.

These functions are compiled without ``reassoc``: it would let LLVM cancel the magic-number
round trip and merge the two halves of ``ln 2``. Callers may be compiled with it; fast-math
flags live on each LLVM instruction, so inlining keeps these exact.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from softmaxkit.numba._jit import helper

EXACT_FLAGS = {"contract"}
"""Fast-math flags of exact code: only fused multiply-adds (one rounding instead of two)."""


@intrinsic
def _f32_bits(typingctx, f):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _f32_from_bits(typingctx, i):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _f64_bits(typingctx, f):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _f64_from_bits(typingctx, i):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_LOG2E = 1.4426950408889634
_TWO_M64_32 = np.float32(2.0**-64)
_TWO_M64_64 = 2.0**-64

# float32: Cephes expf.c. ln2 = C1 + C2 with C1 = 0.693359375 exact in 9 bits.
_LO32 = np.float32(-104.0)  # exp(-104) < 2**-150: rounds to 0
_HI32 = np.float32(40.0)
_MAGIC32 = np.float32(1.5 * 2.0**23)
_LOG2E32 = np.float32(_LOG2E)
_C1_32 = np.float32(0.693359375)
_C2_32 = np.float32(-2.12194440e-4)
_P0, _P1, _P2, _P3, _P4, _P5 = (
    np.float32(c)
    for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
              1.6666665459e-1, 5.0000001201e-1)
)
_ONE32 = np.float32(1.0)
_BIAS32 = np.int32(127 + 64)
_SHIFT32 = np.int32(23)

# float64: fdlibm's split of ln 2 (ln2_hi has 32 significant bits).
_LO64 = -746.0  # exp(-746) < 2**-1075: rounds to 0
_HI64 = 40.0
_MAGIC64 = 1.5 * 2.0**52
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_TAYLOR = tuple(1.0 / float(np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(2, 14))
_Q2, _Q3, _Q4, _Q5, _Q6, _Q7, _Q8, _Q9, _Q10, _Q11, _Q12, _Q13 = _TAYLOR
_BIAS64 = np.int64(1023 + 64)
_SHIFT64 = np.int64(52)


@helper(fastmath=EXACT_FLAGS)
def _reduce32(z):
    """Steps 1 and 2 of the module docstring for float32: ``(t, r)``, ``t`` holding
    ``k = round(z / ln 2)`` in its low bits and ``r = z - k ln 2``."""
    t = z * _LOG2E32 + _MAGIC32
    k = t - _MAGIC32
    r = z - k * _C1_32
    r = r - k * _C2_32
    return t, r


@helper(fastmath=EXACT_FLAGS)
def _times_two_to_k32(p, t):
    """Step 4: ``p * 2**k``, with ``k`` from the bits of ``t``, rounded once if subnormal."""
    scale = _f32_from_bits(np.int32((_f32_bits(t) + _BIAS32) << _SHIFT32))
    return p * scale * _TWO_M64_32


@helper(fastmath=EXACT_FLAGS)
def exp32(z):
    """``exp(z)`` for float32 ``z < 40`` (see the module docstring)."""
    z = _LO32 if z < _LO32 else z  # NaN fails the test and stays NaN
    z = _HI32 if z > _HI32 else z
    t, r = _reduce32(z)
    p = _P0 * r + _P1
    p = p * r + _P2
    p = p * r + _P3
    p = p * r + _P4
    p = p * r + _P5
    p = p * (r * r) + r + _ONE32
    return _times_two_to_k32(p, t)


@helper(fastmath=EXACT_FLAGS)
def exp64(z):
    """``exp(z)`` for float64 ``z < 40`` (see the module docstring)."""
    z = _LO64 if z < _LO64 else z
    z = _HI64 if z > _HI64 else z
    t = z * _LOG2E + _MAGIC64
    k = t - _MAGIC64
    r = z - k * _LN2_HI
    r = r - k * _LN2_LO
    q = _Q13 * r + _Q12
    q = q * r + _Q11
    q = q * r + _Q10
    q = q * r + _Q9
    q = q * r + _Q8
    q = q * r + _Q7
    q = q * r + _Q6
    q = q * r + _Q5
    q = q * r + _Q4
    q = q * r + _Q3
    q = q * r + _Q2
    p = q * (r * r) + r + 1.0
    scale = _f64_from_bits((_f64_bits(t) + _BIAS64) << _SHIFT64)
    return p * scale * _TWO_M64_64


# Results rounded to half precision: the Taylor series to degree 5 is enough.
_H2, _H3, _H4, _H5 = (np.float32(1.0 / f) for f in (2.0, 6.0, 24.0, 120.0))


@helper(fastmath=EXACT_FLAGS)
def exp32_for_half(z):
    """``exp(z)`` for float32 ``z < 40`` whose result is rounded to float16 or bfloat16.

    :func:`exp32` with the Taylor series to degree 5 in place of the degree-7 polynomial and
    without the upper clamp (the half-precision softmax passes ``z <= 0`` only; from 44 up the
    result is garbage, where exp32 clamps); ``-inf``, NaN and the subnormal scaling as there.
    Relative error at most 3.32e-6 (2**-18.2) where the result is a normal float32, over
    every float32 in ``[-104, 0]`` (``python -m benchmarks.exp_accuracy``; the tests run a
    stride of it): 0.7 % of a float16 result's half ulp, 0.09 % of a bfloat16's. Two fused
    multiply-adds and a clamp fewer per element, where the half-precision softmax spent about
    half its time in ``exp``: 8,192 x 1,024 float16 log_softmax 1.51-1.77 -> 1.16-1.17 ms on
    two threads (BENCHMARKS.md, session 9; with the clamp kept, 1.38-1.52 ms).
    """
    z = _LO32 if z < _LO32 else z
    t, r = _reduce32(z)
    p = _H5 * r + _H4
    p = p * r + _H3
    p = p * r + _H2
    p = p * (r * r) + r + _ONE32
    return _times_two_to_k32(p, t)


# fdlibm's e_log.c: log(1 + f) = f - f^2/2 + s * (f^2/2 + R(s^2)), s = f / (2 + f).
_LG1, _LG2, _LG3, _LG4, _LG5, _LG6, _LG7 = (
    6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
    2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
    1.479819860511658591e-01,
)
_SQRT2_OFFSET = np.int64((0x3FF00000 - 0x3FE6A09E) << 32)
_HALF_SQRT2_BITS = np.int64(0x3FE6A09E << 32)
_MANTISSA64 = np.int64(0x000FFFFFFFFFFFFF)
_ONE_BITS64 = np.int64(0x3FF0000000000000)
_MIN_NORMAL64 = 2.2250738585072014e-308
_TWO_52_BITS = np.int64(0x4330000000000000)
_TWO_52_PLUS_BIAS = 2.0**52 + 1023.0


# error_model="numpy": Python's ZeroDivisionError test on the division would stop LLVM from
# vectorising (the divisor is at least 2 - 0.3 here).
@helper(fastmath=EXACT_FLAGS, error_model="numpy")
def log_normal(v):
    """``log(v)`` for a positive normal finite float64, in operations LLVM vectorises.

    fdlibm's algorithm (Sun Microsystems, ``e_log.c``, error below 1 ulp): ``v = 2**k * m``
    with ``m`` in ``[sqrt(2)/2, sqrt(2))`` from the exponent bits, then a degree-14 odd
    polynomial in ``s = (m - 1) / (m + 1)``. Other inputs give garbage: callers test them
    (:func:`log_positive`).
    """
    # musl's branch-free reduction: offsetting the bits by 1 - sqrt(2)/2 in the high word moves
    # mantissas of sqrt(2) and up into the next binade, so m lands in [sqrt(2)/2, sqrt(2)).
    bits = _f64_bits(v) + _SQRT2_OFFSET
    # The exponent as a float without an int64 -> float64 conversion (AVX2 has none): the
    # field placed in the mantissa of 2**52 reads as 2**52 + field.
    k = _f64_from_bits((bits >> _SHIFT64) | _TWO_52_BITS) - _TWO_52_PLUS_BIAS
    m = _f64_from_bits((bits & _MANTISSA64) + _HALF_SQRT2_BITS)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


@helper(fastmath=EXACT_FLAGS)
def log_positive(values, out):
    """``out = log(values)`` for float64 sums ``>= 0``, with ``log(0)`` taken as 0 (an empty
    or all-excluded row); a vectorised loop, then the rare other inputs by libm."""
    for i in range(values.size):
        out[i] = log_normal(values[i])
    for i in range(values.size):
        v = values[i]
        if not _MIN_NORMAL64 <= v < np.inf:
            out[i] = math.log(v) if v != 0.0 else 0.0


def exp_small(z):
    """``exp`` of a float32 or float64 ``z < 40`` inside jitted code (the dtype picks the kernel)."""
    raise NotImplementedError("exp_small is called from jitted code only")


@overload(exp_small, jit_options={"fastmath": EXACT_FLAGS}, inline="never")
def _exp_small_impl(z):
    if z == types.float32:
        return lambda z: exp32(z)
    if z == types.float64:
        return lambda z: exp64(z)
    return None


def float_key(v):
    """An integer that orders like the float ``v`` (``-0.0`` below ``0.0``; NaN past ``±inf``)."""
    raise NotImplementedError("float_key is called from jitted code only")


def key_float(key):
    """The float whose :func:`float_key` is ``key``."""
    raise NotImplementedError("key_float is called from jitted code only")


# Negative floats order backwards as integers; flipping their 31 (63) magnitude bits fixes
# that, and the map is its own inverse.
@overload(float_key, jit_options={"fastmath": EXACT_FLAGS})
def _float_key_impl(v):
    if v == types.float32:
        return lambda v: np.int32(_f32_bits(v) ^ ((_f32_bits(v) >> np.int32(31)) & np.int32(0x7FFFFFFF)))
    if v == types.float64:
        return lambda v: _f64_bits(v) ^ ((_f64_bits(v) >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF))
    return None


@overload(key_float, jit_options={"fastmath": EXACT_FLAGS})
def _key_float_impl(key):
    if key == types.int32:
        return lambda key: _f32_from_bits(np.int32(key ^ ((key >> np.int32(31)) & np.int32(0x7FFFFFFF))))
    if key == types.int64:
        return lambda key: _f64_from_bits(key ^ ((key >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF)))
    return None
