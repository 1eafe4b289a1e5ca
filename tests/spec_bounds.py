"""SPEC §2's accuracy bounds as one helper: references in extended precision, then the check.

softmax: each probability within ``4 eps (1 + |z_i| + sum_j p_j |z_j|)`` relative, with
``z = (x - max) / T`` (the conditioning of ``exp``; the sum term because rounding ``z_j``
perturbs every term of the normalising sum); probabilities below the dtype's smallest normal
number carry fewer bits than a relative bound needs and are checked absolutely.
log_softmax: within ``8 eps (1 + |y|)`` absolute. eps is that of the input dtype (float32's
for float16 and bfloat16 inputs, which accumulate in float32, plus their own rounding).
"""

from __future__ import annotations

import numpy as np


def reference(x: np.ndarray, axis: int, temperature: float = 1.0,
              where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(z, softmax, log_softmax)`` of finite-maximum rows in long double (float64 inputs) or
    float64 (narrower inputs); excluded entries have ``z = -inf``."""
    ref = np.longdouble if x.dtype == np.float64 else np.float64
    xr = x.astype(ref)
    if where is not None:
        xr = np.where(where, xr, -np.inf)
    top = np.max(xr, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        z = (xr - top) / ref(temperature)
        lse = np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    return z, np.exp(z - lse), z - lse


def eps_of(dtype: np.dtype) -> float:
    return float(np.finfo(np.float32 if np.dtype(dtype).itemsize <= 2 else dtype).eps)


def assert_softmax_within_bound(p: np.ndarray, z: np.ndarray, p_true: np.ndarray, axis: int,
                                dtype: np.dtype) -> None:
    eps = eps_of(dtype)
    p = p.astype(p_true.dtype)
    finite_z = np.where(np.isfinite(z), np.abs(z), 0)
    spread = np.sum(p_true * finite_z, axis=axis, keepdims=True)
    tiny = float(np.finfo(dtype).tiny) if np.dtype(dtype).itemsize > 2 else float(np.finfo(np.float16).tiny)
    own = float(np.finfo(dtype).eps) if np.dtype(dtype).itemsize <= 2 else 0.0  # rounding to a half type
    allowed = (4 * eps * (1 + finite_z + spread) + own) * p_true + tiny
    with np.errstate(invalid="ignore"):
        bad = ~((np.abs(p - p_true) <= allowed) | (np.isnan(p) & np.isnan(p_true)))
    assert not bad.any(), (f"{bad.sum()} probabilities outside SPEC's bound; worst: got "
                           f"{p[bad][:3]}, want {p_true[bad][:3]}")


def assert_log_softmax_within_bound(y: np.ndarray, y_true: np.ndarray, dtype: np.dtype) -> None:
    eps = eps_of(dtype)
    y = y.astype(y_true.dtype)
    same_inf = np.isinf(y_true) & (y == y_true)
    own = float(np.finfo(dtype).eps) if np.dtype(dtype).itemsize <= 2 else 0.0
    top = float(np.finfo(dtype).max)
    # An exact value beyond the dtype's range rounds to -inf (README's table).
    overflowed = (y_true < -top) & (y == -np.inf)
    with np.errstate(invalid="ignore"):
        close = np.abs(y - y_true) <= (8 * eps + own) * (1 + np.abs(y_true))
    bad = ~(same_inf | overflowed | close | (np.isnan(y) & np.isnan(y_true)))
    assert not bad.any(), (f"{bad.sum()} log-probabilities outside SPEC's bound; worst: got "
                           f"{y[bad][:3]}, want {y_true[bad][:3]}")
