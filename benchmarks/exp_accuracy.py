"""Measure the numba engine's ``exp`` against a correctly rounded reference, in ulps.

``python -m benchmarks.exp_accuracy`` runs the exhaustive float32 check (every float32 in
``[-104, 0]``, about 1.1e9 values), the same sweep of ``exp32_for_half`` (relative error of
normal results, absolute error of subnormal ones) and a sampled float64 check (long double
reference); ``tests/test_numba_engine.py`` runs the same functions on a stride of the float32
range.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from numba import njit

from softmaxkit.numba._exp import _f32_bits, _f32_from_bits, exp32, exp32_for_half, exp64
from softmaxkit.numba._threads import run

F32_START = 0x80000000  # -0.0
F32_STOP = 0xC2D00000 + 1  # -104.0, the lower clamp: below it everything rounds to 0


@njit(nogil=True, cache=True)
def _max_ulp_f32(start, stop, step, span, worst, where, c0, c1):  # type: ignore[no-untyped-def]
    for c in range(c0, c1):  # chunks c0 .. c1 of span bit patterns, on softmaxkit's thread pool
        lo = start + c * span
        hi = min(lo + span, stop)
        for bits in range(lo, hi, step):
            x = _f32_from_bits(np.int32(np.uint32(bits)))
            ref = math.exp(np.float64(x))
            r32 = np.float32(ref)
            ulp = np.float64(_f32_from_bits(np.int32(_f32_bits(r32) + 1))) - np.float64(r32)
            err = abs(np.float64(exp32(x)) - ref) / ulp
            if err > worst[c]:
                worst[c] = err
                where[c] = bits


def max_ulp_float32(step: int = 1) -> tuple[float, float]:
    """Largest error of ``exp32`` in ulps over every ``step``-th float32 in ``[-104, 0]``, and where."""
    chunks = 256
    worst, where = np.zeros(chunks), np.zeros(chunks, dtype=np.int64)
    span = (F32_STOP - F32_START + step * chunks - 1) // (step * chunks) * step
    run(_max_ulp_f32, chunks, (F32_STOP - F32_START) // step, F32_START, F32_STOP, step, span, worst, where)
    i = int(np.argmax(worst))
    at = np.array([where[i]], dtype=np.uint32).view(np.float32)[0]
    return float(worst[i]), float(at)


@njit(nogil=True, cache=True)
def _max_error_for_half(start, stop, step, span, relative, absolute, c0, c1):  # type: ignore[no-untyped-def]
    for c in range(c0, c1):  # as _max_ulp_f32
        lo = start + c * span
        hi = min(lo + span, stop)
        for bits in range(lo, hi, step):
            x = _f32_from_bits(np.int32(np.uint32(bits)))
            ref = math.exp(np.float64(x))
            err = abs(np.float64(exp32_for_half(x)) - ref)
            if ref >= 2.0**-126:
                relative[c] = max(relative[c], err / ref)
            else:
                absolute[c] = max(absolute[c], err)


def max_error_for_half(step: int = 1) -> tuple[float, float]:
    """Largest relative error of ``exp32_for_half`` over every ``step``-th float32 in
    ``[-104, 0]`` whose exp is a normal float32, and largest absolute error where it is not."""
    chunks = 256
    relative, absolute = np.zeros(chunks), np.zeros(chunks)
    span = (F32_STOP - F32_START + step * chunks - 1) // (step * chunks) * step
    run(_max_error_for_half, chunks, (F32_STOP - F32_START) // step, F32_START, F32_STOP, step, span,
        relative, absolute)
    return float(relative.max()), float(absolute.max())


@njit(cache=True)
def _exp64_all(x):  # type: ignore[no-untyped-def]
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = exp64(x[i])
    return out


def max_ulp_float64(samples: int = 1_000_000, seed: int = 0) -> tuple[float, float]:
    """Largest error of ``exp64`` in ulps over random float64 in ``[-745, 0]`` (long double reference)."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([-rng.random(samples) * 745.0, -rng.random(samples // 10) * 1e-3])
    ref = np.exp(x.astype(np.longdouble))
    ulp = np.spacing(ref.astype(np.float64))
    err = np.abs(_exp64_all(x).astype(np.longdouble) - ref) / ulp
    i = int(np.argmax(err))
    return float(err[i]), float(x[i])


def main() -> int:
    start = time.perf_counter()
    err32, at32 = max_ulp_float32(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print(f"float32, every value in [-104, 0]: max {err32:.3f} ulp at x = {at32!r} "
          f"({time.perf_counter() - start:.0f} s)")
    start = time.perf_counter()
    relative, absolute = max_error_for_half(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print(f"exp32_for_half, every value in [-104, 0]: relative error at most {relative:.3g} "
          f"(2**{math.log2(relative):.1f}) for normal results, absolute {absolute:.3g} below "
          f"({time.perf_counter() - start:.0f} s)")
    err64, at64 = max_ulp_float64(10_000_000)
    print(f"float64, 11,000,000 samples in [-745, 0]: max {err64:.3f} ulp at x = {at64!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
