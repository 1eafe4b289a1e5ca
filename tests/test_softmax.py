"""softmax and log_softmax: the seeds' numbers, SPEC §2 on every backend × engine, arguments."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import softmaxkit as sk
from backends import Backend, forced, same_library, to_numpy
from edge_cases import EDGE_CASES, EdgeCase
from tolerance import assert_spec_close

FLOAT_DTYPES = ("float16", "float32", "float64")


def expected_array(values, dtype) -> np.ndarray:
    with np.errstate(over="ignore"):  # -6e38 is -inf in float32, as the kernels must round it
        return np.asarray(values, dtype=np.float64).astype(dtype)


# --- the seeds' worked examples ---------------------------------------------------------------

def test_seed_cat_dog_tiger_none():
    p = sk.softmax([1.25, 2.44, 0.78, 0.12])
    published = [0.19101770813831334, 0.627890718698843, 0.11938650086860875, 0.061705072294234845]
    np.testing.assert_allclose(p, published, rtol=1e-15)
    assert sk.predict(p, labels=["cat", "dog", "tiger", "none"]) == "dog"


@pytest.mark.parametrize(
    ("logits", "rounded"),
    [
        ([3.2, 1.3, 0.2, 0.8], [0.775, 0.116, 0.039, 0.07]),
        ([0.25, 1.23, -0.8], [0.249, 0.664, 0.087]),
        ([2, 4], [0.119, 0.881]),
        ([4, 8], [0.018, 0.982]),
    ],
)
def test_seed_rounded_examples(logits, rounded):
    np.testing.assert_array_equal(np.round(sk.softmax(logits), 3), rounded)


def test_seed_scaling_changes_softmax_but_not_plain_normalisation():
    # softmax([2, 4]) != softmax([4, 8]): unlike divide-by-sum, softmax is not scale invariant.
    assert not np.allclose(sk.softmax([2.0, 4.0]), sk.softmax([4.0, 8.0]))
    np.testing.assert_allclose(sk.softmax([2.0, 4.0]), sk.softmax([4.0, 8.0], temperature=2.0))


def test_seed_batch_softmax_matches_rowwise():
    x = np.array([[1.0, 2.0, 3.0], [1.0, -1.0, 7.0], [2.0, 12.0, 13.0]])
    expected = np.exp(x - x.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(sk.softmax(x), expected, rtol=1e-15)
    np.testing.assert_allclose(sk.softmax(x, axis=0), sk.softmax(x.T).T, rtol=1e-15)


def test_sigmoid_is_two_class_softmax():
    z = np.linspace(-30, 30, 61)
    pairs = np.stack([z, np.zeros_like(z)], axis=-1)
    np.testing.assert_allclose(sk.sigmoid(z), sk.softmax(pairs)[:, 0], rtol=1e-14)


# --- SPEC §2 edge cases on every backend and engine ---------------------------------------------

def _case_input(case: EdgeCase, dtype: str):
    """The case's row next to an ordinary row, so rows are checked for independence."""
    n = len(case.row)
    other = np.arange(n, dtype=np.float64)
    x = expected_array([case.row, other], dtype)
    mask = None if case.where is None else np.array([case.where, [True] * n])
    return x, mask, other


def _spread(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``|x - max|`` per entry over the included ones: the conditioning of SPEC §2's bound."""
    x64 = x.astype(np.float64)
    if mask is not None:
        x64 = np.where(mask, x64, -np.inf)
    if x64.shape[1] == 0:
        return x64
    with np.errstate(invalid="ignore"):
        return np.abs(x64 - np.max(x64, axis=1, keepdims=True))


def _applies(case: EdgeCase, dtype: str) -> bool:
    return not (dtype == "float16" and case.name.startswith("huge"))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_edge_cases(backend: Backend, engine: str, case: EdgeCase, dtype: str, log: bool):
    if not backend.supports(dtype) or not _applies(case, dtype):
        pytest.skip(f"{backend.value} {dtype} {case.name}")
    x_np, mask_np, other = _case_input(case, dtype)
    x = backend.asarray(x_np)
    mask = None if mask_np is None else backend.asarray(mask_np)
    function = sk.log_softmax if log else sk.softmax
    reference = np.log(sk.softmax(other)) if log else sk.softmax(other)
    expected = expected_array([case.log_softmax if log else case.softmax, reference], dtype)
    # The table's values are exact; the references of the ordinary row are rounded to the dtype.
    result = function(x, axis=1, where=mask, engine=engine)
    assert same_library(result, backend)
    assert str(to_numpy(result).dtype) == dtype
    assert_spec_close(result, expected, dtype, log=log, spread=_spread(x_np, mask_np))
    # The same case along the first axis must give the same numbers.
    xt = backend.asarray(np.ascontiguousarray(x_np.T))
    mt = None if mask_np is None else backend.asarray(np.ascontiguousarray(mask_np.T))
    assert_spec_close(function(xt, axis=0, where=mt, engine=engine), expected.T, dtype, log=log,
                      spread=_spread(x_np, mask_np).T)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.name)
def test_edge_cases_logsumexp(backend: Backend, engine: str, case: EdgeCase, dtype: str):
    if not backend.supports(dtype) or not _applies(case, dtype):
        pytest.skip(f"{backend.value} {dtype} {case.name}")
    x_np, mask_np, other = _case_input(case, dtype)
    x = backend.asarray(x_np)
    mask = None if mask_np is None else backend.asarray(mask_np)
    reference = np.log(np.sum(np.exp(other))) if other.size else -np.inf
    expected = expected_array([case.logsumexp, reference], dtype)
    result = sk.logsumexp(x, axis=1, where=mask, engine=engine)
    assert same_library(result, backend)
    assert_spec_close(result, expected, dtype, log=True)


def test_zero_dimensional(backend: Backend, engine: str):
    x = backend.asarray(np.float64(3.5) if backend.has_float64 else np.float32(3.5))
    assert float(to_numpy(sk.softmax(x, engine=engine))) == 1.0
    assert float(to_numpy(sk.log_softmax(x, engine=engine))) == 0.0
    assert float(to_numpy(forced(sk.logsumexp, x, engine=engine))) == 3.5


def test_zero_dimensional_specials():
    assert sk.softmax(np.inf) == 1.0
    assert sk.softmax(-np.inf) == 0.0
    assert np.isnan(sk.softmax(np.nan))


# --- dtypes ------------------------------------------------------------------------------------

def test_integer_and_bool_give_default_float(backend: Backend):
    x = backend.asarray(np.array([[1, 2, 3]], dtype=np.int32))
    result = sk.softmax(x)
    expected_dtype = "float32" if backend in (Backend.TORCH, Backend.JAX) else "float64"
    assert str(to_numpy(result).dtype) == expected_dtype
    np.testing.assert_allclose(to_numpy(result), sk.softmax([[1.0, 2.0, 3.0]]), rtol=1e-6)
    assert str(to_numpy(sk.softmax(backend.asarray(np.array([True, False])))).dtype) == expected_dtype


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_types_keep_dtype_and_accumulate_in_float32(dtype):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    half = np.dtype(getattr(ml_dtypes, dtype) if dtype == "bfloat16" else dtype)
    x = np.linspace(-8, 8, 4099).astype(half)
    p = sk.softmax(x)
    assert p.dtype == half
    exact = sk.softmax(x.astype(np.float64))
    # float32 accumulation leaves only the final rounding to the half type: half an ulp,
    # or the smallest subnormal where the probability underflows.
    finfo = np.finfo(np.float16) if dtype == "float16" else ml_dtypes.finfo(half)
    np.testing.assert_allclose(p.astype(np.float64), exact, rtol=float(finfo.eps),
                               atol=float(finfo.smallest_subnormal))
    assert sk.softmax(x, dtype=np.float32).dtype == np.float32


def test_dtype_argument():
    x = np.array([1.0, 2.0], dtype=np.float32)
    assert sk.softmax(x, dtype=np.float64).dtype == np.float64
    assert sk.log_softmax(x, dtype="float64").dtype == np.float64
    with pytest.raises(TypeError, match="floating"):
        sk.softmax(x, dtype=np.int32)


def test_torch_bfloat16():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-5, 5, 100, dtype=torch.bfloat16)
    p = sk.softmax(x)
    assert p.dtype == torch.bfloat16
    torch.testing.assert_close(p, torch.softmax(x.float(), -1).bfloat16())


def test_complex_input_is_refused():
    with pytest.raises(TypeError, match="complex"):
        sk.softmax(np.array([1 + 1j, 2.0]))
    with pytest.raises(TypeError, match="complex"):
        sk.log_softmax(np.array([1 + 1j, 2.0]))
    # Regression: with a real dtype= the imaginary parts were dropped (a ComplexWarning at most).
    with pytest.raises(TypeError, match="complex"):
        sk.softmax(np.array([1 + 1j, 2.0]), dtype=np.float64)


def test_strings_are_refused():
    with pytest.raises(TypeError):
        sk.softmax(["a", "b"])


# --- axes ----------------------------------------------------------------------------------------

def test_axis_tuple_and_none(backend: Backend, engine: str):
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(3, 4, 5)).astype(np.float32)
    x = backend.asarray(x_np)
    x64 = x_np.astype(np.float64)
    by_tuple = sk.softmax(x, axis=(1, 2), engine=engine)
    assert_spec_close(by_tuple, sk.softmax(x64.reshape(3, 20)).reshape(3, 4, 5), "float32",
                      spread=np.abs(x64 - x64.max(axis=(1, 2), keepdims=True)))
    assert_spec_close(sk.softmax(x, axis=None, engine=engine), sk.softmax(x64.ravel()).reshape(3, 4, 5),
                      "float32", spread=np.abs(x64 - x64.max()))
    by_other_tuple = np.moveaxis(sk.softmax(np.moveaxis(x64, 1, 0).reshape(4, 15)).reshape(4, 3, 5), 0, 1)
    assert_spec_close(sk.softmax(x, axis=(2, 0), engine=engine), by_other_tuple, "float32",
                      spread=np.abs(x64 - x64.max(axis=(0, 2), keepdims=True)))


@pytest.mark.parametrize("axis", [3, -4, (0, 0), 1.5, "a"])
def test_bad_axis(axis):
    x = np.zeros((2, 3, 4))
    with pytest.raises((ValueError, TypeError), match="axis"):
        sk.softmax(x, axis=axis)


def test_empty_tuple_axis_means_each_element_alone():
    np.testing.assert_array_equal(sk.softmax(np.array([1.0, -np.inf, 3.0]), axis=()), [1.0, 0.0, 1.0])


# --- memory layouts, out=, inputs untouched --------------------------------------------------------

def test_layouts_give_the_same_answer(engine: str):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(6, 10)) * 30
    expected = sk.softmax(base)
    layouts = {
        "fortran": np.asfortranarray(base),
        "strided": np.repeat(base, 2, axis=1)[:, ::2],
        "negative": base[::-1, ::-1][::-1, ::-1],
        "reversed": np.ascontiguousarray(base[:, ::-1])[:, ::-1],
        "byteswapped": base.astype(base.dtype.newbyteorder()),
    }
    for name, x in layouts.items():
        np.testing.assert_allclose(sk.softmax(x, engine=engine), expected, rtol=1e-15, err_msg=name)


def test_input_is_not_modified(backend: Backend, engine: str):
    x_np = np.array([[1.0, np.inf, -np.inf], [np.nan, 0.0, 1.0]], dtype=np.float32)
    x = backend.asarray(x_np)
    for f in (sk.softmax, sk.log_softmax, sk.logsumexp):
        f(x, engine=engine)
    np.testing.assert_array_equal(to_numpy(x), x_np)


def test_out_argument_and_in_place(engine: str):
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    expected = sk.softmax(x)
    out = np.empty_like(x)
    assert sk.softmax(x, out=out, engine=engine) is out
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    y = x.copy()
    assert sk.softmax(y, out=y, engine=engine) is y
    np.testing.assert_allclose(y, expected, rtol=1e-15)
    z = x.copy()
    sk.log_softmax(z, out=z, engine=engine)
    np.testing.assert_allclose(z, np.log(expected), rtol=1e-14)


def test_out_torch_in_place():
    torch = pytest.importorskip("torch")
    x = torch.tensor([[1.0, 2.0, 3.0]])
    expected = torch.softmax(x, -1)
    assert sk.softmax(x, out=x) is x
    torch.testing.assert_close(x, expected)


def test_out_errors():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="shape"):
        sk.softmax(x, out=np.empty((3, 2)))
    with pytest.raises(TypeError, match="floating"):
        sk.softmax(x, out=np.empty((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="same library"):
        sk.softmax(x, out=[[0.0] * 3] * 2)


def test_out_with_jax_is_refused():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.zeros(3)
    with pytest.raises(TypeError, match="immutable"):
        sk.softmax(x, out=x)


# --- where, temperature --------------------------------------------------------------------------

def test_where_broadcasts():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = np.array([True, False, True])
    p = sk.softmax(x, where=mask)
    np.testing.assert_allclose(p[:, 1], 0.0, atol=0)
    np.testing.assert_allclose(p[:, [0, 2]], sk.softmax(x[:, [0, 2]]), rtol=1e-15)


@pytest.mark.parametrize("mask_shape", [(3,), (2, 2), (2, 2, 3)])
def test_where_that_does_not_broadcast_raises(mask_shape):
    with pytest.raises(ValueError, match="broadcast"):
        sk.softmax(np.zeros((2, 3)), where=np.ones(mask_shape, dtype=bool)[..., :2]
                   if mask_shape == (3,) else np.ones(mask_shape, dtype=bool))


def test_where_must_be_boolean():
    with pytest.raises(TypeError, match="boolean"):
        sk.softmax(np.zeros(3), where=np.ones(3))


@pytest.mark.parametrize("temperature", [0.25, 1.0, 3.0])
def test_temperature_divides_logits(backend: Backend, engine: str, temperature):
    x_np = np.array([[1.0, 2.0, 5.0], [-3.0, 0.0, 3.0]], dtype=np.float32)
    x = backend.asarray(x_np)
    z = x_np.astype(np.float64) / temperature
    assert_spec_close(sk.softmax(x, temperature=temperature, engine=engine), sk.softmax(z), "float32",
                      spread=np.abs(z - z.max(axis=-1, keepdims=True)))
    assert_spec_close(sk.log_softmax(x, temperature=temperature, engine=engine), sk.log_softmax(z), "float32",
                      log=True)


def test_temperature_does_not_overflow_huge_logits():
    x = np.array([3e38, 1e38], dtype=np.float32)
    np.testing.assert_array_equal(sk.softmax(x, temperature=0.5), [1.0, 0.0])


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.inf, np.nan])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        sk.softmax([1.0, 2.0], temperature=temperature)


def test_temperature_must_be_a_number():
    with pytest.raises(TypeError, match="temperature"):
        sk.softmax([1.0, 2.0], temperature="hot")


# --- accuracy that does not grow with the row length --------------------------------------------

@pytest.mark.parametrize("n", [10, 100_000, 1_000_003])
def test_long_rows_stay_accurate_float32(engine: str, n):
    rng = np.random.default_rng(n)
    x = rng.normal(scale=3.0, size=n).astype(np.float32)
    x64 = x.astype(np.float64)
    spread = np.abs(x64 - x64.max())
    assert_spec_close(sk.softmax(x, engine=engine), sk.softmax(x64), "float32", spread=spread)
    assert_spec_close(sk.log_softmax(x, engine=engine), sk.log_softmax(x64), "float32", log=True)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_byte_swapped_input_and_out(engine: str, dtype: str) -> None:
    """SPEC §2: byte-swapped arrays work, as input and as ``out=``. Regression: the numba engine
    wrote native float16 bits into byte-swapped float16 results (a probability of 32896)."""
    x = np.random.default_rng(5).standard_normal((40, 30)).astype(dtype) * 3
    swapped = x.astype(x.dtype.newbyteorder())
    want = sk.softmax(x.astype(np.float64), engine="generic")
    got = sk.softmax(swapped, engine=engine)
    assert got.dtype == swapped.dtype
    assert_spec_close(got, want, dtype, spread=x - x.max(axis=-1, keepdims=True))
    out = np.empty(x.shape, dtype=np.dtype(np.float16).newbyteorder())
    assert sk.softmax(x, out=out, engine=engine) is out
    assert_spec_close(out, want, "float16", spread=x - x.max(axis=-1, keepdims=True))
    labels = np.arange(40) % 30
    _, grad = sk.cross_entropy(swapped, labels, return_grad=True, engine=engine)
    _, want_grad = sk.cross_entropy(x.astype(np.float64), labels, return_grad=True, engine="generic")
    np.testing.assert_allclose(grad.astype(np.float64), want_grad, atol=1e-3 / 40)


_MASKED_CALLS = {
    "softmax": lambda a: sk.softmax(a),
    "log_softmax": lambda a: sk.log_softmax(a, axis=0),
    "logsumexp": lambda a: sk.logsumexp(a, axis=-1),
    "sigmoid": lambda a: sk.sigmoid(a),
    "softmax_jacobian": lambda a: sk.softmax_jacobian(a),
    "softmax_vjp s": lambda a: sk.softmax_vjp(a, np.ones((2, 3))),
    "log_softmax_vjp g": lambda a: sk.log_softmax_vjp(np.full((2, 3), -1.0), a),
    "cross_entropy logits": lambda a: sk.cross_entropy(a, np.array([0, 1])),
    "where": lambda a: sk.softmax(np.ones((2, 3)), where=a > 1),
}


@pytest.mark.parametrize("call", list(_MASKED_CALLS), ids=str)
def test_a_mask_is_never_dropped_silently(call):
    """Regression: a masked array's mask was dropped (as NumPy's asarray and SciPy do), so the
    masked entries counted in the result. With entries masked: a TypeError that names the
    argument and the way to pass it; with none masked: the data, as a plain array."""
    data = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    masked = np.ma.masked_array(data, mask=[[False, False, True], [False, False, False]])
    with pytest.raises(TypeError, match=r"masked array with masked entries.*filled"):
        _MASKED_CALLS[call](masked)
    unmasked = _MASKED_CALLS[call](np.ma.masked_array(data))  # nomask
    expected = _MASKED_CALLS[call](data)
    assert type(unmasked) is type(expected)
    np.testing.assert_array_equal(unmasked, expected)
    nothing_masked = _MASKED_CALLS[call](np.ma.masked_array(data, mask=np.zeros((2, 3), bool)))
    np.testing.assert_array_equal(nothing_masked, expected)


def test_a_masked_array_seen_before_is_still_refused():
    """Regression: the array-namespace cache (one entry per array class) took in the masked
    array class the first time any function asked, and from then on masks were dropped again."""
    from softmaxkit import _arrays

    masked = np.ma.masked_array([1.0, 2.0], mask=[True, False])
    assert _arrays.namespace(masked) is _arrays.namespace(np.zeros(2))
    with pytest.raises(TypeError, match="masked array"):
        sk.softmax(masked)


def test_cross_entropy_refuses_masked_labels():
    with pytest.raises(TypeError, match="target is a masked array"):
        sk.cross_entropy(np.ones((2, 3)), np.ma.masked_array([0, 1], mask=[True, False]))


def test_masks_are_refused_beyond_the_array_functions():
    """Regression: sampling's per-row parameters, the calibration functions and Dask arrays of
    masked chunks still dropped masks silently (each read with np.asarray, or chunk by chunk)."""
    data = np.array([[1.0, 2.0, 30.0], [4.0, 5.0, 6.0]])
    masked = np.ma.masked_array(data, mask=[[False, False, True], [False, False, False]])
    calls = [
        lambda: sk.sample(np.zeros((2, 3)), temperature=np.ma.masked_array([1.0, 2.0], mask=[True, False])),
        lambda: sk.top_k_mask(np.zeros((2, 3)), np.ma.masked_array([1, 2], mask=[False, True])),
    ]
    if importlib.util.find_spec("scipy") is not None:
        from softmaxkit.calibrate import ece, fit_temperature

        calls += [lambda: fit_temperature(masked, [0, 1]), lambda: ece(masked, [0, 1])]
    for call in calls:
        with pytest.raises(TypeError, match="masked array with masked entries"):
            call()
    if importlib.util.find_spec("dask") is not None:
        import dask.array as da

        chunks = da.ma.masked_array(da.from_array(data, chunks=1), mask=masked.mask)
        with pytest.raises(TypeError, match="Dask array of masked chunks"):
            sk.softmax(chunks)


def test_a_temperature_too_large_for_a_float_is_a_value_error():
    """Regression: an int beyond float64 (10**400) raised OverflowError from float()."""
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        sk.softmax([1.0, 2.0], temperature=10**400)
    with pytest.raises(ValueError, match="label_smoothing"):
        sk.cross_entropy(np.zeros((1, 2)), [0], label_smoothing=-(10**400))


def test_one_hot_of_an_empty_list():
    """Regression: [] reads as a float64 array, and one_hot refused it as non-integer labels."""
    assert sk.one_hot([], 3).shape == (0, 3) and sk.one_hot([]).shape == (0, 0)
    with pytest.raises(TypeError, match="integers"):
        sk.one_hot(np.array([], dtype=float), 3)  # an array's own dtype still counts
