"""SPEC §2's accuracy bound, written once: every test that checks values against a reference
uses :func:`assert_spec_close`, or, entry by entry against an extended-precision reference of
``(x - max) / T`` (the differential fuzz test), :func:`assert_softmax_within_bound` and
:func:`assert_log_softmax_within_bound`.

Against a reference computed from the same input values in float64 or finer (mpmath, or the
generic engine on float64 input):

- a probability ``p_i`` within ``4·eps·(1 + |x_i − max|)`` relative — the conditioning of
  ``exp`` — where ``spread`` gives ``|x_i − max|`` (0 when not given);
- a logarithm ``y`` (log_softmax, logsumexp) within ``8·eps·(1 + |y|)`` absolute;

``eps`` is that of the arithmetic: the input dtype's, float32's for float16 and bfloat16. A
result stored in a half type is also rounded to it: one unit of its last place is added.
Special values (NaN, ±inf) must sit at the same places, and an exact 0 of the reference must be
matched within the output's smallest subnormal.

``factor`` widens the bound where a test compares two approximations (2: each side meets the
bound) or a quantity the SPEC bounds only through its ingredients (gradients); each use says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends import to_numpy


def arithmetic_eps(dtype: Any) -> float:
    """The eps SPEC §2 holds an engine to: float32's for the half types."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    return float(np.finfo(np.float64 if name == "float64" else np.float32).eps)


def _stored_eps(dtype: Any) -> float:
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    return {"float16": 2.0**-10, "bfloat16": 2.0**-7}.get(name, 0.0)


def spec_bound(
    expected: np.ndarray, dtype: Any, *, log: bool, spread: Any = None, factor: float = 1.0
) -> np.ndarray:
    """The largest error SPEC §2 allows at each finite entry of ``expected`` (float64)."""
    e = np.abs(np.where(np.isfinite(expected), expected, 0.0))
    eps = arithmetic_eps(dtype)
    if log:
        bound = 8 * eps * (1 + e)
    else:
        k = 1.0 if spread is None else 1 + np.nan_to_num(np.abs(np.asarray(spread, dtype=np.float64)),
                                                       nan=0.0, posinf=0.0)
        bound = 4 * eps * k * e
    return factor * bound + _stored_eps(dtype) * e


def assert_spec_close(
    actual: Any, expected: Any, dtype: Any, *, log: bool = False, spread: Any = None, factor: float = 1.0
) -> None:
    """``actual`` (any array library) within SPEC §2's bound of ``expected``: see the module."""
    a = to_numpy(actual).astype(np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, (a.shape, e.shape)
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg="NaN at other places")
    np.testing.assert_array_equal(np.isinf(a) * np.sign(a), np.isinf(e) * np.sign(e),
                                  err_msg="infinities at other places")
    finite = np.isfinite(e)
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    subnormal = float(np.finfo(np.float32 if name == "bfloat16" else name).smallest_subnormal)
    bound = spec_bound(e, dtype, log=log, spread=spread, factor=factor) + (0.0 if log else subnormal)
    error, bound = np.abs(a[finite] - e[finite]), bound[finite]
    ok = error <= bound
    assert np.all(ok), (
        f"{np.count_nonzero(~ok)} entries beyond SPEC §2's bound; worst error {error[~ok].max():.3g} "
        f"against a bound of {bound[~ok][np.argmax(error[~ok])]:.3g}"
    )


# --- against extended-precision references, entry by entry (the differential fuzz test) -------
# softmax: each probability within ``4 eps (1 + |z_i| + sum_j p_j |z_j|)`` relative, with
# ``z = (x - max) / T`` (the sum term because rounding ``z_j`` perturbs every term of the
# normalising sum); probabilities below the dtype's smallest normal number carry fewer bits than
# a relative bound needs and are held to that number absolutely. log_softmax: ``8 eps (1 + |y|)``;
# an exact value beyond the dtype's range may round to -inf. NaN must match NaN.


def softmax_reference(x: np.ndarray, axis: int, temperature: float = 1.0,
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


def assert_softmax_within_bound(p: np.ndarray, z: np.ndarray, p_true: np.ndarray, axis: int,
                                dtype: np.dtype) -> None:
    eps = arithmetic_eps(dtype)
    p = p.astype(p_true.dtype)
    finite_z = np.where(np.isfinite(z), np.abs(z), 0)
    spread = np.sum(p_true * finite_z, axis=axis, keepdims=True)
    tiny = float(np.finfo(dtype).tiny) if np.dtype(dtype).itemsize > 2 else float(np.finfo(np.float16).tiny)
    own = _stored_eps(dtype)  # rounding to a half type
    allowed = (4 * eps * (1 + finite_z + spread) + own) * p_true + tiny
    with np.errstate(invalid="ignore"):
        bad = ~((np.abs(p - p_true) <= allowed) | (np.isnan(p) & np.isnan(p_true)))
    assert not bad.any(), (f"{bad.sum()} probabilities outside SPEC's bound; worst: got "
                           f"{p[bad][:3]}, want {p_true[bad][:3]}")


def assert_log_softmax_within_bound(y: np.ndarray, y_true: np.ndarray, dtype: np.dtype) -> None:
    eps = arithmetic_eps(dtype)
    y = y.astype(y_true.dtype)
    same_inf = np.isinf(y_true) & (y == y_true)
    own = _stored_eps(dtype)
    top = float(np.finfo(dtype).max)
    # An exact value beyond the dtype's range rounds to -inf (README's table).
    overflowed = (y_true < -top) & (y == -np.inf)
    with np.errstate(invalid="ignore"):
        close = np.abs(y - y_true) <= (8 * eps + own) * (1 + np.abs(y_true))
    bad = ~(same_inf | overflowed | close | (np.isnan(y) & np.isnan(y_true)))
    assert not bad.any(), (f"{bad.sum()} log-probabilities outside SPEC's bound; worst: got "
                           f"{y[bad][:3]}, want {y_true[bad][:3]}")
