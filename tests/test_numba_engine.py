"""The numba engine against the generic engine (SPEC §2) and against float64 / mpmath truth.

Every case is checked on both engines: numba must give the generic engine's answer (to the
SPEC accuracy bounds, exactly for special values). Shapes cover in-cache rows, rows split
into blocks (longer than ``_rows.SPLIT``), non-last axes (the column kernels), tuple axes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest

numba = pytest.importorskip("numba")
ml_dtypes = pytest.importorskip("ml_dtypes")

import softmaxkit as sk  # noqa: E402
from backends import forced  # noqa: E402
from softmaxkit import generic  # noqa: E402
from softmaxkit import numba as sknumba  # noqa: E402
from softmaxkit._arrays import compute_dtype  # noqa: E402
from softmaxkit.numba import _rows  # noqa: E402
from tolerance import arithmetic_eps, assert_spec_close  # noqa: E402

DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]
LONG = _rows.SPLIT * 3 + 17  # split into blocks, with a ragged last block

# (shape, axis): rows, single long rows, non-last axes, tuples, all axes.
LAYOUTS = [
    ((6, 9), -1),
    ((6, 9), 0),
    ((3, 5, 7), 1),
    ((3, 5, 7), (0, 2)),
    ((3, 5, 7), (1, 2)),
    ((3, 5, 7), None),
    ((2, LONG), -1),
    ((40, 3, 33), 0),
]


def _specials(x: np.ndarray, axis: object) -> np.ndarray:
    """``x`` with the SPEC §2 special rows planted along ``axis`` (if it has room for them)."""
    x = x.copy()
    moved = np.moveaxis(x, -1 if axis is None else np.atleast_1d(axis)[-1], -1)
    flat = moved.reshape(-1, moved.shape[-1]) if moved.ndim > 1 else None
    if flat is not None and flat.shape[0] >= 5 and flat.shape[1] >= 3 and flat.base is not None:
        flat[0, 1] = np.inf  # one +inf
        flat[1, 0] = np.nan  # NaN
        flat[2, :] = -np.inf  # all -inf
        flat[3, ::2] = -np.inf  # some -inf
        flat[4, :2] = np.inf  # two +inf share the mass
    return x


@contextlib.contextmanager
def sknumba_threads(threads: int) -> Iterator[None]:
    """The numba engine on ``threads`` threads inside the block."""
    before = sknumba.get_num_threads()
    sknumba.set_num_threads(threads)
    try:
        yield
    finally:
        sknumba.set_num_threads(before)


def _both(function: str, *args: object, **kwargs: object) -> tuple[object, object]:
    """The Numba engine's result (or, for a gap the registry declares, the engine's that covers
    it) and the generic engine's."""
    f = getattr(sk, function)
    return forced(f, *args, engine="numba", **kwargs), f(*args, engine="generic", **kwargs)


def _assert_same(a: object, b: object, dtype: object, *, log: bool = False, ulps: float = 8) -> None:
    """Same shape, dtype and special values; finite values within ``ulps`` units of the
    arithmetic's eps of the generic engine's. Not SPEC §2's bound (tests/tolerance.py): two
    implementations of the same operations agree far more closely than either meets it."""
    if isinstance(a, tuple):
        for u, v in zip(a, b, strict=True):
            _assert_same(u, v, dtype, log=log, ulps=ulps)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert a.dtype == b.dtype
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(a64), np.isnan(b64))
    np.testing.assert_array_equal(np.isinf(a64) * np.sign(a64), np.isinf(b64) * np.sign(b64))
    fin = np.isfinite(a64)
    out_eps = max(arithmetic_eps(dtype), float(np.finfo(a.dtype).eps) if a.dtype.kind == "f" else 0.0)
    if str(a.dtype) == "bfloat16":
        out_eps = 2.0**-7
    tol = ulps * out_eps * (1 + np.abs(b64[fin])) if log else ulps * out_eps * (np.abs(b64[fin]) + 1e-30)
    assert np.all(np.abs(a64[fin] - b64[fin]) <= tol + (0 if log else ulps * out_eps * 1e-6))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS, ids=str)
@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_softmax_matches_generic(function: str, shape: tuple[int, ...], axis: object, dtype: object) -> None:
    rng = np.random.default_rng(0)
    x = _specials((rng.standard_normal(shape) * 5).astype(dtype), axis)
    log = function == "log_softmax"
    _assert_same(*_both(function, x, axis=axis), dtype, log=log)
    _assert_same(*_both(function, x, axis=axis, temperature=0.3), dtype, log=log)
    mask = rng.random(shape) > 0.3
    _assert_same(*_both(function, x, axis=axis, where=mask), dtype, log=log)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS, ids=str)
def test_logsumexp_matches_generic(shape: tuple[int, ...], axis: object, dtype: object) -> None:
    x = _specials((np.random.default_rng(1).standard_normal(shape) * 5).astype(dtype), axis)
    for keepdims in (False, True):
        _assert_same(*_both("logsumexp", x, axis=axis, keepdims=keepdims), dtype, log=True)
    mask = np.random.default_rng(2).random(shape) > 0.5
    _assert_same(*_both("logsumexp", x, axis=axis, where=mask), dtype, log=True)


def test_logsumexp_keeps_tiny_remainders() -> None:
    # log(1 + e**-40) = 4.25e-18: a plain log(sum) rounds it to 0 (SciPy's regression case).
    value = sk.logsumexp(np.array([0.0, -40.0] * 4096), engine="numba")
    assert value == pytest.approx(math.log(4096 * 2) - math.log(2) + math.log1p(math.exp(-40)), rel=1e-15)
    assert sk.logsumexp(np.array([0.0, -40.0]), engine="numba") == pytest.approx(4.248354255291589e-18)


@pytest.mark.parametrize("function", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_degenerate_shapes(function: str, dtype: object) -> None:
    for x, axis in [
        (np.array(2.5, dtype=dtype), None),
        (np.array(-np.inf, dtype=dtype), None),
        (np.array(np.nan, dtype=dtype), None),
        (np.zeros((4, 0), dtype=dtype), -1),
        (np.zeros((0, 4), dtype=dtype), -1),
        (np.zeros((3, 4), dtype=dtype), ()),
    ]:
        a, b = _both(function, x, axis=axis)
        _assert_same(a, b, dtype, log=True)
        assert type(a) is type(b)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [7, 1000, LONG])
def test_cross_entropy_matches_generic(dtype: object, n: int) -> None:
    rng = np.random.default_rng(3)
    rows = {7: 150, 1000: 9}.get(n, 2)  # short rows: several tiles of the tiled kernel, one ragged
    x = _specials((rng.standard_normal((rows, n)) * 3).astype(dtype), -1)
    labels = rng.integers(0, n, rows)
    labels[-1] = -100
    weight = rng.random(n).astype(dtype)
    smoothed = {"weight": weight, "label_smoothing": 0.1}
    for options in ({}, {"weight": weight}, {"label_smoothing": 0.2}, smoothed):
        for reduction in ("mean", "sum", "none"):
            a, b = _both("cross_entropy", x, labels, ignore_index=-100, reduction=reduction,
                         return_grad=True, **options)
            _assert_same(a, b, dtype, log=True, ulps=64)
    everything_ignored = np.full(rows, -100)
    _assert_same(*_both("cross_entropy", x, everything_ignored, ignore_index=-100, return_grad=True),
                 dtype, log=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("shape", "axis"), [((5, 6, 3), 1), ((20, 1100), 0), ((4, 20, 2100), 1)], ids=str)
def test_cross_entropy_other_axis(dtype: object, shape: tuple[int, ...], axis: int) -> None:
    # Over 16 classes on a non-last axis run on column tiles (1100 and 2100 samples span
    # several); fewer run on a transposed copy.
    rng = np.random.default_rng(4)
    x = _specials((rng.standard_normal(shape) * 3).astype(dtype), axis)
    labels = rng.integers(0, shape[axis], tuple(d for i, d in enumerate(shape) if i != axis))
    labels.reshape(-1)[::7] = -100
    for reduction in ("mean", "none"):
        for options in ({}, {"weight": rng.random(shape[axis]), "label_smoothing": 0.1}):
            _assert_same(*_both("cross_entropy", x, labels, axis=axis, ignore_index=-100, return_grad=True,
                                reduction=reduction, **options), dtype, log=True, ulps=64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: f"numpy-numba-{np.dtype(d).name}")
def test_cross_entropy_columns_match_rows(dtype: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """The column kernel (classes on axis 0, no transposed copy): the row kernel's losses and
    gradient on the transposed logits (special samples too: +inf, NaN, all -inf, some -inf),
    the same bits for 1, 2 and 3 threads, and the same loss without the gradient."""
    from softmaxkit.numba import _grad_columns

    rng = np.random.default_rng(24)
    n = 300
    inner = 2 * _grad_columns.width(n, np.dtype(dtype).itemsize) + 9
    x = np.ascontiguousarray(_specials((rng.standard_normal((inner, n)) * 3).astype(dtype), -1).T)
    labels = rng.integers(0, n, inner)
    labels[::11] = -100
    options = {"weight": rng.random(n).astype(dtype), "label_smoothing": 0.15, "ignore_index": -100,
               "reduction": "none", "engine": "numba"}
    kernels: list[str] = []
    run = sknumba.run

    def spy(kernel: object, *args: object) -> None:
        kernels.append(getattr(kernel, "__name__", ""))
        run(kernel, *args)

    monkeypatch.setattr(sknumba, "run", spy)
    loss, grad = sk.cross_entropy(x, labels, axis=0, return_grad=True, **options)
    assert "cross_entropy_columns" in kernels
    monkeypatch.setattr(sknumba, "run", run)
    row_loss, row_grad = sk.cross_entropy(np.ascontiguousarray(x.T), labels, return_grad=True, **options)
    _assert_same((loss, grad), (row_loss, row_grad.T), dtype, log=True, ulps=64)
    _assert_same(sk.cross_entropy(x, labels, axis=0, **options), loss, dtype, log=True, ulps=0)
    for threads in (1, 3):
        with sknumba_threads(threads):
            again = sk.cross_entropy(x, labels, axis=0, return_grad=True, **options)
        np.testing.assert_array_equal(again[0], loss)
        np.testing.assert_array_equal(again[1], grad)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_cross_entropy_of_transposed_logits(axis: int) -> None:
    # Regression: the kernels walk the samples in memory order; labels and per-sample losses
    # must follow that order, not the user's, when the logits are a transposed view.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((7, 5, 6)).astype(np.float32).transpose(2, 0, 1)
    labels = rng.integers(0, x.shape[axis], tuple(d for i, d in enumerate(x.shape) if i != axis))
    for reduction in ("none", "mean"):
        _assert_same(*_both("cross_entropy", x, labels, axis=axis, reduction=reduction, return_grad=True),
                     np.float32, log=True, ulps=64)


# --- pieces of rows (the blocks of a Dask array whose softmax axis is chunked) -----------------

def _axes(axis: object, ndim: int) -> tuple[int, ...]:
    return tuple(range(ndim)) if axis is None else tuple(sorted(np.atleast_1d(axis) % ndim))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS, ids=str)
def test_softmax_pairs_match_generic(shape: tuple[int, ...], axis: object, dtype: object) -> None:
    x = _specials((np.random.default_rng(8).standard_normal(shape) * 5).astype(dtype), axis)
    axes = _axes(axis, x.ndim)
    for temperature in (1.0, 0.3):
        pairs = sknumba.softmax_pairs(x, axes, temperature=temperature)
        expected = generic.softmax_pairs(x, axes, temperature=temperature)
        assert pairs[0].dtype == expected[0].dtype == np.dtype(compute_dtype(np, x.dtype))
        np.testing.assert_array_equal(pairs[0], expected[0])  # the max, NaN where the row has one
        _assert_same(pairs[1], expected[1], dtype, ulps=64)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS, ids=str)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_from_pairs_matches_generic(shape: tuple[int, ...], axis: object, dtype: object,
                                            log: bool) -> None:
    x = _specials((np.random.default_rng(9).standard_normal(shape) * 5).astype(dtype), axis)
    axes = _axes(axis, x.ndim)
    for temperature in (1.0, 0.3):
        pairs = generic.softmax_pairs(x, axes, temperature=temperature)
        options = {"temperature": temperature, "dtype": x.dtype, "log": log}
        result = sknumba.softmax_from_pairs(x, axes, *pairs, **options)
        _assert_same(result, generic.softmax_from_pairs(x, axes, *pairs, **options), dtype, log=log)
        # Pairs of the whole rows give the rows' softmax.
        whole = getattr(sk, "log_softmax" if log else "softmax")(x, axis=axis, temperature=temperature,
                                                                   engine="generic")
        _assert_same(result, whole, dtype, log=log)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_pieces_of_special_rows(dtype: object) -> None:
    """SPEC §2 rows whose special entries lie in one piece and not the other."""
    inf, nan = np.inf, np.nan
    x = np.array([
        [1.0, 2.0, -inf, -inf],   # the second piece all -inf: (-inf, 0)
        [-inf, -inf, -inf, -inf],  # no included entry: (-inf, 0) twice, result 0 / -inf
        [3.0, inf, inf, 0.5],     # +inf in both pieces: counted in each
        [5.0, 1.0, 2.0, inf],     # +inf in the second piece only
        [nan, 1.0, 2.0, 3.0],     # NaN in the first piece: the whole row NaN
        [2.0, 1.0, 6e4, -6e4],    # far apart (6e4: float16's range)
    ]).astype(dtype)
    pieces = (x[:, :2], x[:, 2:])
    for piece in pieces:
        pairs = sknumba.softmax_pairs(piece, (1,), temperature=0.5)
        expected = generic.softmax_pairs(piece, (1,), temperature=0.5)
        np.testing.assert_array_equal(pairs[0], expected[0])
        _assert_same(pairs[1], expected[1], dtype)
    for log in (False, True):
        merged = generic.softmax_pairs(x, (1,), temperature=0.5)  # what the Dask merge gives
        options = {"temperature": 0.5, "dtype": x.dtype, "log": log}
        parts = [sknumba.softmax_from_pairs(p, (1,), *merged, **options) for p in pieces]
        expected = getattr(sk, "log_softmax" if log else "softmax")(x, temperature=0.5, engine="generic")
        _assert_same(np.concatenate(parts, axis=1), expected, dtype, log=log)
    first, second = (sknumba.softmax_pairs(p, (1,), temperature=0.5) for p in pieces)
    np.testing.assert_array_equal(second[0][:2, 0], [-inf, -inf])
    np.testing.assert_array_equal(second[1][:2, 0], [0, 0])
    np.testing.assert_array_equal([first[1][2, 0], second[1][2, 0], second[1][3, 0]], [1, 1, 1])
    assert np.isnan(first[0][4, 0]) and np.isnan(first[1][4, 0])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(("shape", "axis"), [((6, 9), -1), ((3, 5, 7), (1, 2)), ((2, LONG), -1), ((6, 9), 0)],
                         ids=str)
def test_vjps_match_generic(shape: tuple[int, ...], axis: object, dtype: object) -> None:
    rng = np.random.default_rng(5)
    x = _specials(rng.standard_normal(shape).astype(dtype), axis)
    g = rng.standard_normal(shape).astype(dtype)
    s = sk.softmax(x, axis=axis, engine="generic")
    logp = sk.log_softmax(x, axis=axis, engine="generic")
    for function, first in (("softmax_vjp", s), ("softmax_jvp", s), ("log_softmax_vjp", logp)):
        _assert_same(*_both(function, first, g, axis=axis), dtype, log=True, ulps=64)


def _column_vjp_case(name: str, dtype: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """(s, logp, g, axis) laid out so that the reduced axis is not last in memory (``g`` may be
    laid out otherwise), with -inf entries, an all -inf column, and NaN / inf in ``g``."""
    from softmaxkit.numba import _grad_columns

    rng = np.random.default_rng(21)
    n = 70
    inner = 2 * _grad_columns.width(n, np.dtype(dtype).itemsize) + 5  # two whole chunks, a ragged one
    x = (rng.standard_normal((n, inner)) * 4).astype(dtype)
    x[:, 3] = -np.inf  # an all -inf column: gradient 0, never NaN
    x[::3, 4] = -np.inf  # some -inf entries
    x[0, 6] = np.inf  # +inf: s is the limit (1 there, 0 elsewhere)
    g = rng.standard_normal((n, inner)).astype(dtype)
    g[5, 8] = np.nan
    g[9, 9] = np.inf
    g[9, 11] = -np.inf
    # Softmax over axis 0 (the columns), C-contiguous; each layout rearranges the columns.
    s, logp = (np.ascontiguousarray(f(x, axis=0, engine="generic")) for f in (sk.softmax, sk.log_softmax))
    arrange = {
        "C": (lambda a: a, 0),
        "fortran": (lambda a: np.asfortranarray(a.T), 1),
        "transposed": (lambda a: a.T, 1),  # a view whose reduced axis is first in memory
        "strided": (lambda a: np.repeat(a, 2, axis=1)[:, ::2], 0),  # copied once into a layout
        # (2, n, 8, 5) reduced over axis 1: 40 columns per outer index.
        "middle": (lambda a: np.ascontiguousarray(a[:, :80].reshape(n, 2, 40).transpose(1, 0, 2))
                   .reshape(2, n, 8, 5), 1),
        "g-fortran": (lambda a: a, 0),
        "g-float64": (lambda a: a, 0),
    }
    f, axis = arrange[name]
    g_arranged = np.asfortranarray(g) if name == "g-fortran" else g.astype(np.float64) \
        if name == "g-float64" else f(g)  # g copied into s's layout, s read in place
    return f(s), f(logp), g_arranged, axis


COLUMN_VJP_LAYOUTS = ["C", "fortran", "transposed", "strided", "middle", "g-fortran", "g-float64"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: f"numpy-numba-{np.dtype(d).name}")
@pytest.mark.parametrize("layout_name", COLUMN_VJP_LAYOUTS)
@pytest.mark.parametrize("function", ["softmax_vjp", "log_softmax_vjp"])
def test_column_vjps_match_generic_and_rows(function: str, layout_name: str, dtype: object,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The vjps over an axis that is not last in memory run the column kernels (no transposed
    copy of the first input): the generic engine's result (special values exactly), the row
    kernels' on the transposed copy to the same tolerance (only the order of each column's
    sum differs), 0 for every -inf entry and all -inf column, and the same bits for 1, 2 or
    3 threads."""
    from softmaxkit.numba import _grad_columns

    s, logp, g, axis = _column_vjp_case(layout_name, dtype)
    first = s if function == "softmax_vjp" else logp
    kernels: list[str] = []
    run = sknumba.run

    def spy(kernel: object, *args: object) -> None:
        kernels.append(getattr(kernel, "__name__", ""))
        run(kernel, *args)

    monkeypatch.setattr(sknumba, "run", spy)
    result = getattr(sk, function)(first, g, axis=axis, engine="numba")
    monkeypatch.setattr(sknumba, "run", run)
    column_kernel = getattr(_grad_columns, function + "_columns").__name__
    assert column_kernel in kernels
    expected = getattr(sk, function)(first, g, axis=axis, engine="generic")
    _assert_same(result, expected, dtype, log=True, ulps=64)
    # The row kernels on copies with the reduced axis last.
    moved = (np.ascontiguousarray(np.moveaxis(a, axis, -1)) for a in (first, g))
    rows = np.moveaxis(getattr(sk, function)(*moved, axis=-1, engine="numba"), -1, axis)
    _assert_same(result, rows, dtype, log=True, ulps=64)
    assert np.all(result[np.isneginf(logp)] == 0)  # the all -inf column too: never NaN
    for threads in (1, 3):
        with sknumba_threads(threads):
            np.testing.assert_array_equal(getattr(sk, function)(first, g, axis=axis, engine="numba"), result)


@pytest.mark.parametrize("axis", [-1, 0], ids=["numpy-numba-rows", "numpy-numba-columns"])
def test_vjp_of_an_infinite_cotangent(axis: int) -> None:
    """Regression: an infinite ``g`` made the compensated dot NaN (its carry ``inf - inf``),
    so softmax_vjp gave NaN for the whole row where the generic engine gives ``-inf`` (and
    NaN only at the infinity itself: ``inf - inf``)."""
    rng = np.random.default_rng(23)
    s = sk.softmax(rng.standard_normal((40, 300)), axis=axis)
    g = rng.standard_normal((40, 300))
    g[3, 5] = np.inf
    g[7, 9] = -np.inf
    result = sk.softmax_vjp(s, g, axis=axis, engine="numba")
    _assert_same(result, sk.softmax_vjp(s, g, axis=axis, engine="generic"), np.float64, log=True, ulps=64)
    line, at = (result[3], 5) if axis == -1 else (result[:, 5], 3)
    assert np.isnan(line[at]) and np.all(np.isneginf(np.delete(line, at)))


@pytest.mark.parametrize("function", ["softmax_vjp", "log_softmax_vjp"])
def test_column_vjps_into_out(function: str) -> None:
    """``vjp_into`` (the torch operators' entry): straight into a C-contiguous ``out`` of the
    input's dtype, through a converted copy into a float16 ``out``."""
    rng = np.random.default_rng(22)
    x = (rng.standard_normal((50, 300)) * 3).astype(np.float32)
    x[:, 7] = -np.inf
    g = rng.standard_normal((50, 300)).astype(np.float32)
    first = sk.softmax(x, axis=0) if function == "softmax_vjp" else sk.log_softmax(x, axis=0)
    expected = getattr(sk, function)(first, g, axis=0, engine="generic")
    out = np.full_like(first, np.nan)
    sknumba.vjp_into(first, g, (0,), out, log=function == "log_softmax_vjp")
    _assert_same(out, expected, np.float32, log=True, ulps=64)
    assert np.all(out[:, 7] == 0)
    half = np.full(first.shape, np.nan, np.float16)
    first16, g16 = first.astype(np.float16), g.astype(np.float16)
    sknumba.vjp_into(first16, g16, (0,), half, log=function == "log_softmax_vjp")
    reference = getattr(sk, function)(first16, g16, axis=0, engine="generic")
    np.testing.assert_allclose(half.astype(np.float32), reference.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_results_keep_the_memory_order_of_transposed_inputs() -> None:
    """Regression: results of transposed inputs were made C-contiguous, a transposed copy of
    each (the gradient of a transposed tensor's cross_entropy then cost a second one in
    torch's autograd). They keep the input's memory order, as NumPy's elementwise functions."""
    rng = np.random.default_rng(25)
    x = rng.standard_normal((300, 200)).astype(np.float32)
    labels = rng.integers(0, 300, 200)
    results = [sk.softmax(x.T, axis=1, engine="numba"), sk.softmax_vjp(x.T, x.T, axis=1, engine="numba"),
               sk.cross_entropy(x.T, labels, axis=1, return_grad=True, engine="numba")[1]]
    for result in results:
        assert result.flags.f_contiguous and not result.flags.c_contiguous
    rows = np.ascontiguousarray(x.T)
    _assert_same(results[0], sk.softmax(rows, axis=1, engine="numba"), np.float32)
    expected = sk.cross_entropy(rows, labels, axis=1, return_grad=True, engine="numba")[1]
    _assert_same(results[2], expected, np.float32, log=True, ulps=64)


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_layouts_and_out(function: str) -> None:
    """Views, byte order, read-only input, and ``out=`` (also the input itself) as in generic."""
    rng = np.random.default_rng(6)
    base = rng.standard_normal((40, 60)).astype(np.float32)
    swapped = base.astype(base.dtype.newbyteorder())
    readonly = base.copy()
    readonly.flags.writeable = False
    for x in (base[:, ::2], base[::-1, ::-3], base.T, np.asfortranarray(base), swapped, readonly):
        for axis in (-1, 0, (0, 1)):
            _assert_same(*_both(function, x, axis=axis), np.float32, log=True)
    for out in (np.empty((40, 60), np.float32), np.empty((60, 40), np.float32).T,
                np.empty((40, 60), np.float64), np.empty((40, 60), np.float16)):
        reference = getattr(sk, function)(base, out=out.copy(), engine="generic")
        result = getattr(sk, function)(base, out=out, engine="numba")
        assert result is out
        _assert_same(result, reference, np.float32, log=True)
    for axis in (-1, 0):
        inplace = base.copy()
        expected = getattr(sk, function)(base, axis=axis, engine="generic")
        assert getattr(sk, function)(inplace, axis=axis, out=inplace, engine="numba") is inplace
        _assert_same(inplace, expected, np.float32, log=True)
    transposed = base.copy().T
    expected = getattr(sk, function)(transposed, engine="generic")
    getattr(sk, function)(transposed, out=transposed, engine="numba")
    _assert_same(transposed, expected, np.float32, log=True)
    assert readonly.flags.writeable is False


def test_integer_and_bool_input() -> None:
    _assert_same(*_both("softmax", np.arange(12).reshape(3, 4)), np.float64)
    _assert_same(*_both("log_softmax", np.ones((3, 4), bool), axis=0), np.float64, log=True)


# --- accuracy against truth (SPEC §2 bounds) ------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "axis"), [((64, 1000), -1), ((1, 300_000), -1), ((500, 64), 0),
                                             ((20_000, 40), 0)], ids=str)
def test_accuracy_within_spec_bounds(shape: tuple[int, ...], axis: int, dtype: object) -> None:
    """Each probability within ``4 eps (1 + |x - max|)`` relative, log_softmax within
    ``8 eps (1 + |y|)``, rows of any length (float64 / long double references).

    Subnormal probabilities are left out: they carry fewer bits than any relative bound needs.
    The bound adds ``sum_j p_j |x_j - max|``: rounding ``x_j - max`` perturbs every term of
    the sum, so it limits every probability (the generic engine reaches 4.8 eps on the max
    entry of the float64 axis=0 case without it).
    """
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 20).astype(dtype)
    ref_dtype = np.longdouble if dtype == np.float64 else np.float64
    z = x.astype(ref_dtype) - np.max(x, axis=axis, keepdims=True).astype(ref_dtype)
    lse = np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    p_true = np.exp(z - lse)
    spread = np.abs(z) + np.sum(p_true * np.abs(z), axis=axis, keepdims=True)
    p, y = sk.softmax(x, axis=axis, engine="numba"), sk.log_softmax(x, axis=axis, engine="numba")
    assert_spec_close(p, p_true.astype(np.float64), dtype, spread=spread)
    assert_spec_close(y, (z - lse).astype(np.float64), dtype, log=True)


def test_float64_against_mpmath() -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.standard_normal(5000) * 30, [700.0, -700.0, 1e-300, 0.0]])
    xs = [mpmath.mpf(float(v)) for v in x]
    total = mpmath.fsum(mpmath.exp(v) for v in xs)
    expected = np.array([float(mpmath.exp(v) / total) for v in xs])
    logsum = float(mpmath.log(total))
    # SciPy's bar; subnormal results (below 1e-307 here) hold fewer digits than rtol asks.
    np.testing.assert_allclose(sk.softmax(x, engine="numba"), expected, rtol=1e-13, atol=1e-300)
    assert sk.logsumexp(x, engine="numba") == pytest.approx(logsum, rel=1e-15)


def test_exp_ulp_error() -> None:
    """The docstring's figures of ``softmaxkit.numba._exp``: float32 on a stride of every
    value in ``[-104, 0]`` (the full sweep: ``python -m benchmarks.exp_accuracy``), float64
    sampled."""
    exp_accuracy = pytest.importorskip("benchmarks.exp_accuracy")
    err32, _ = exp_accuracy.max_ulp_float32(step=4099)
    err64, _ = exp_accuracy.max_ulp_float64(samples=200_000)
    assert err32 <= 1.01  # the full sweep's maximum: 1.010 ulp
    assert err64 < 1.0


def test_exp_for_half_results_error() -> None:
    """``exp32_for_half`` (the half-precision softmax kernels' exp): relative error at most
    3.4e-6 where exp is a normal float32, and below that as much of the smallest normal plus one
    subnormal ulp (far under a bfloat16 subnormal's spacing, 2**-133); exactly 0 for -inf and
    below the clamp, NaN for NaN."""
    from softmaxkit.numba import _exp

    exp_accuracy = pytest.importorskip("benchmarks.exp_accuracy")
    relative, absolute = exp_accuracy.max_error_for_half(step=4099)
    assert 1e-7 < relative <= 3.4e-6  # the full sweep's maximum: see _exp.exp32_for_half
    assert absolute <= 3.4e-6 * 2.0**-126 + 2.0**-149

    @numba.njit
    def special(z):
        return np.array([_exp.exp32_for_half(v) for v in z], np.float32)

    got = special(np.array([-np.inf, -200.0, -104.0, np.nan, 0.0], np.float32))
    assert got[0] == 0.0 and got[1] == 0.0 and got[2] == 0.0 and np.isnan(got[3]) and got[4] == 1.0


# --- determinism, threads, automatic choice --------------------------------------------------


@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_in_place_long_rows_with_pos_inf(function: str) -> None:
    """Regression: in place, a row longer than SPLIT holding +inf had its +inf entries replaced
    by exp's clamped value in the first pass, so the redo of that row shared the mass with a
    finite entry of 50."""
    x = np.zeros((3, LONG), np.float32)
    x[0, 5] = np.inf
    x[0, 9] = 50.0
    x[1, [7, _rows.SPLIT + 3]] = np.inf
    x[2, -1] = 80.0
    expected = getattr(sk, function)(x, engine="generic")
    assert getattr(sk, function)(x, out=x, engine="numba") is x
    _assert_same(x, expected, np.float32, log=function == "log_softmax")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_long_rows_whole_or_by_blocks_give_the_same_bits(function: str, dtype: type,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Long rows go whole to one thread each when they share out evenly or number 4 per thread,
    else block by block across the threads (``_rows.long_rows_softmax``): the same bits either
    way, in place or not, special rows included, whatever the thread count that picked the path."""
    rng = np.random.default_rng(8)
    n = 4 * _rows.SPLIT + 17  # one row is enough work for the pool: ragged blocks too
    x = _specials((rng.standard_normal((9, n)) * 8).astype(dtype), -1)
    x[5, _rows.SPLIT + 1] = 200.0  # a block far above the others
    x.flags.writeable = False  # as the engine hands it to its kernels (one specialisation)
    f = getattr(sk, function)
    by_blocks = np.empty_like(x)
    _rows.long_rows_by_blocks(x, by_blocks, dtype(1.0), function == "log_softmax")
    taken: list[str] = []
    whole, blocks = _rows.long_rows, _rows.long_rows_by_blocks
    monkeypatch.setattr(_rows, "long_rows", lambda *a: (taken.append("whole"), whole(*a))[1])
    monkeypatch.setattr(_rows, "long_rows_by_blocks", lambda *a: (taken.append("blocks"), blocks(*a))[1])
    # (rows, threads): path expected
    cases = {(1, 1): "whole", (1, 2): "blocks", (2, 2): "whole", (2, 3): "blocks", (3, 2): "blocks",
             (3, 3): "whole", (5, 2): "blocks", (6, 3): "whole", (9, 2): "whole", (9, 3): "whole"}
    for (rows, threads), path in cases.items():
        with sknumba_threads(threads):
            taken.clear()
            got = f(x[:rows], engine="numba")
            in_place = x[:rows].copy()
            f(in_place, out=in_place, engine="numba")
        assert taken and set(taken) == {path}, (rows, threads)  # the kernel: once per chunk
        for result in (got, in_place):
            assert np.array_equal(result, by_blocks[:rows], equal_nan=True), (rows, threads)
    _assert_same(by_blocks, f(x, engine="generic"), dtype, log=function == "log_softmax")


@pytest.mark.parametrize("n", [9, 700, LONG], ids=["tiled", "fused", "split"])
@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_masked_rows_in_place_out_and_broadcast(function: str, n: int) -> None:
    """Masked rows are written into the result before the kernel runs on it: in place, into
    ``out``, and with a mask broadcast along the rows, the generic engine's answer."""
    rng = np.random.default_rng(14)
    x = _specials((rng.standard_normal((6, n)) * 4).astype(np.float32), -1)
    f = getattr(sk, function)
    for mask in (rng.random(x.shape) > 0.4, rng.random(n) > 0.4):
        expected = f(x, where=mask, engine="generic")
        _assert_same(f(x, where=mask, engine="numba"), expected, np.float32, log=True)
        out = np.empty_like(x)
        assert f(x, where=mask, out=out, engine="numba") is out
        _assert_same(out, expected, np.float32, log=True)
        inplace = x.copy()
        f(inplace, where=mask, out=inplace, engine="numba")
        _assert_same(inplace, expected, np.float32, log=True)


def test_in_place_and_columns_give_the_row_kernels_bits() -> None:
    """Regression: with ``out`` aliasing the input, LLVM's overlap check sent the sum loop to
    its scalar version (another summation order, 4 eps off on a 500-long float64 column)."""
    # The column kernel sums a column in the row kernel's blocks, but each kernel has its own
    # inlined copy of the block sum, whose lanes LLVM adds in an order of its choosing: the two
    # layouts may differ by a few ulp (each is the same on every call, in every process). The
    # scalar summation order this regression was about was further off (4 eps on the sum).
    x = np.random.default_rng(11).standard_normal((500, 64)) * 20
    rows = sk.softmax(np.ascontiguousarray(x.T), engine="numba").T
    np.testing.assert_array_max_ulp(sk.softmax(x, axis=0, engine="numba"), rows, maxulp=4)
    inplace = np.ascontiguousarray(x.T)
    sk.softmax(inplace, out=inplace, engine="numba")
    np.testing.assert_array_equal(inplace.T, rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_column_chunks(function: str, dtype: object) -> None:
    """The column kernel: ragged last chunk, rows a power of two bytes apart, special columns
    beside ordinary ones in a chunk (they are redone by the row kernel), a temperature, in
    place, and bitwise the same for 1, 2 and 3 threads."""
    from softmaxkit.numba import _columns

    n = 300
    inner = 3 * _columns.width(n, np.dtype(dtype).itemsize) + 8  # three whole chunks and a ragged one
    x = np.random.default_rng(13).standard_normal((n, inner)).astype(dtype) * 4
    x[:, 1:4] = _specials(np.ascontiguousarray(x[:, 1:6].T), -1)[:3].T  # +inf, NaN, all -inf
    x[7, 5], x[9, 5] = np.inf, np.inf  # two +inf share the mass
    x[::2, 6] = -np.inf
    x[:, -1] = x[:, -1] + 2.0**70  # x - max overflows where T > 1 (log_softmax halves it)
    f = getattr(sk, function)
    for temperature in (1.0, 2.5):
        # The row kernel on the transposed copy does the same arithmetic but for the order of
        # the sums; the generic engine divides by T where the kernels multiply by 1/T, which
        # moves a probability by up to |x - max| eps: compared at T = 1 only.
        expected = f(np.ascontiguousarray(x.T), temperature=temperature, engine="numba").T
        if temperature == 1.0:
            _assert_same(expected, f(x, axis=0, engine="generic"), dtype, log=function == "log_softmax")
        results = []
        for threads in (1, 2, 3):
            with sknumba_threads(threads):
                results.append(f(x, axis=0, temperature=temperature, engine="numba"))
        for r in results[1:]:
            np.testing.assert_array_equal(r, results[0])
        _assert_same(results[0], expected, dtype, log=function == "log_softmax")
        inplace = x.copy()
        assert f(inplace, axis=0, temperature=temperature, out=inplace, engine="numba") is inplace
        np.testing.assert_array_equal(inplace, results[0])


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=lambda d: np.dtype(d).name)
def test_half_rows_in_kernel(dtype: object) -> None:
    """Half-precision rows are widened and rounded inside the kernel (to nearest even, as
    NumPy's cast): the generic result to one ulp of the half type, in place and for special rows too."""
    x = _specials((np.random.default_rng(12).standard_normal((300, 700)) * 6).astype(dtype), -1)
    for function in ("softmax", "log_softmax"):
        expected = getattr(sk, function)(x, engine="generic")
        out = np.empty_like(x)
        assert getattr(sk, function)(x, out=out, engine="numba") is out
        inplace = x.copy()
        getattr(sk, function)(inplace, out=inplace, engine="numba")
        for result in (getattr(sk, function)(x, engine="numba"), out, inplace):
            assert result.dtype == x.dtype
            _assert_same(result, expected, dtype, log=True, ulps=1)


@pytest.mark.parametrize("shape", [(37, 5), (300, 700), (3, 40_000), (4, 6, 50)], ids=str)
@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16], ids=lambda d: np.dtype(d).name)
def test_half_vjps_in_kernel_give_the_float32_kernels_bits(dtype: object, shape: tuple[int, ...]) -> None:
    """The vjps of half-precision rows widen and round each row inside the kernel: the bits of
    the float32 kernel on the widened arrays, rounded once (SPEC §2: halves compute in float32),
    with -inf log-probabilities and zero probabilities in the rows."""
    from softmaxkit.numba import _grad

    rng = np.random.default_rng(13)
    x = rng.standard_normal(shape).astype(np.float32) * 4
    x[0, ..., :2] = -np.inf
    logp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    g = rng.standard_normal(shape).astype(dtype)
    beyond_exp = logp.astype(dtype)  # any lp is allowed: entries from EXP_LIMIT up are redone
    beyond_exp[1, ..., :3] = [_grad.EXP_LIMIT, 45.0, np.nan]
    beyond_exp[2, ..., -1] = np.nan  # a NaN alone: no entry to redo
    for name, first, kernel in (("softmax_vjp", np.exp(logp).astype(dtype), _grad.softmax_vjp_rows),
                                ("log_softmax_vjp", logp.astype(dtype), _grad.log_softmax_vjp_rows),
                                ("log_softmax_vjp", beyond_exp, _grad.log_softmax_vjp_rows)):
        widened, g32 = first.astype(np.float32), g.astype(np.float32)
        n = shape[-1]
        expected = np.empty_like(widened)
        sknumba.run(kernel, widened.size // n, widened.size, sknumba.readonly(widened.reshape(-1, n)),
                    sknumba.readonly(g32.reshape(-1, n)), expected.reshape(-1, n))
        result = getattr(sk, name)(first, g, axis=-1, engine="numba")
        assert result.dtype == first.dtype and result.shape == shape
        with np.errstate(over="ignore"):  # exp(45) times a sum: beyond float16, rounded to inf
            rounded = expected.astype(dtype)
        np.testing.assert_array_equal(result.view(np.uint16), rounded.view(np.uint16))


def test_half_conversions_match_numpy() -> None:
    """Both float16 conversion paths (CPU instructions where present, integer operations
    elsewhere) agree with NumPy's casts: every float16 widened, float32 rounded to nearest even."""
    from softmaxkit.numba import _half

    @numba.njit
    def widen_both(bits):
        a = np.empty(bits.size, np.float32)
        b = np.empty(bits.size, np.float32)
        for i in range(bits.size):
            a[i] = _half.half_in(bits[i])
            b[i] = _half.half_to_float(bits[i])
        return a, b

    @numba.njit
    def narrow_both(f):
        a = np.empty(f.size, np.uint16)
        b = np.empty(f.size, np.uint16)
        for i in range(f.size):
            a[i] = _half.half_out(f[i])
            b[i] = _half.float_to_half(f[i])
        return a, b

    every = np.arange(1 << 16, dtype=np.uint16)
    for widened in widen_both(every):
        np.testing.assert_array_equal(widened, every.view(np.float16).astype(np.float32))
    rng = np.random.default_rng(13)
    f = (rng.standard_normal(1 << 20) * 10.0 ** rng.integers(-9, 6, 1 << 20)).astype(np.float32)
    ties = (every.view(np.float16)[:0x7C00].astype(np.float32) * np.float32(1 + 2.0**-11)).astype(np.float32)
    specials = np.array([np.inf, -np.inf, np.nan, 65519.996, 65520.0, 2.0**-25], np.float32)
    f = np.concatenate([f, ties, specials])
    with np.errstate(over="ignore"):
        expected = f.astype(np.float16)
    for narrowed in narrow_both(f):
        np.testing.assert_array_equal(narrowed.view(np.float16), expected)


@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "columns"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bfloat16"],
                         ids=["float32", "float64", "float16", "bfloat16"])
def test_log_softmax_vjp_takes_any_log_probabilities(dtype: object, axis: int) -> None:
    """Entries of 40 or more (never log_softmax's output; the kernels' exp is accurate below 40)
    are redone with libm's exp inside the kernels: the generic engine's answer at any position,
    past float32's exp range, infinite and NaN included. They used to be a gap of the engine,
    found by a pass of its own over the whole array before every call (BENCHMARKS.md, session 8)."""
    dt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    rng = np.random.default_rng(31)
    x = rng.standard_normal((300, 457)).astype(dt)  # work for 2+ threads
    base = sk.log_softmax(x, axis=axis, engine="generic")
    g = rng.standard_normal(base.shape).astype(dt)
    for value in (40.0, 45.0, 88.5, 1e4, np.inf, np.nan, 39.0, -np.inf):
        for position in ((0, 0), (150, 200), (299, 456)):
            x = base.copy()
            x[position] = value
            x[7, 3] = 41.0  # and a second row or column beyond
            got = sk.log_softmax_vjp(x, g, axis=axis, engine="numba")
            expected = sk.log_softmax_vjp(x, g, axis=axis, engine="generic")
            _assert_same(got, expected, dt, log=True, ulps=64)  # as test_vjps_match_generic
