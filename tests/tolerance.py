"""SPEC §2's accuracy bound, written once: every test that checks values against a reference
uses :func:`assert_spec_close`.

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
