"""The CUDA engine on a GPU: every function x dtype x SPEC §2 case against the reference.

Skipped without CuPy or without a CUDA device. On a GPU machine::

    pip install -e '.[test,cuda]'
    python -m pytest tests/test_cuda_engine.py -q

References are the generic engine in float64 on the same input values (NumPy), rounded to
the tested dtype; tolerances are SPEC §2's (relative ``4·eps·(1 + |x - max|)`` for
probabilities, absolute ``8·eps·(1 + |y|)`` for logs), with eps of the tested dtype.
Row lengths are chosen so every launch strategy of :mod:`softmaxkit.cuda._plan` runs.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

import softmaxkit as sk
from edge_cases import EDGE_CASES, EdgeCase
from softmaxkit.cuda import _launch, _plan

cupy = pytest.importorskip("cupy")
try:
    _DEVICES = cupy.cuda.runtime.getDeviceCount()
except cupy.cuda.runtime.CUDARuntimeError:
    _DEVICES = 0
if _DEVICES == 0:
    pytest.skip("no CUDA device", allow_module_level=True)

ml_dtypes = pytest.importorskip("ml_dtypes")

DTYPES = ("float16", "bfloat16", "float32", "float64")
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
# (rows, n): warp (sub-warp, full warp, packets), block, smem, split (few rows, long rows).
SHAPES = [(3, 1), (5, 3), (64, 10), (33, 32), (40, 33), (17, 1000), (9, 1024), (300, 1025),
          (200, 5000), (140, 16384), (140, 32000), (4, 20000), (2, 300_001), (140, 70_000)]


def np_dtype(name: str) -> np.dtype:
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def torch_or_skip():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


def to_gpu(a: np.ndarray, dtype: str):
    """CuPy for the dtypes CuPy has; a torch CUDA tensor for bfloat16."""
    if dtype != "bfloat16":
        return cupy.asarray(a.astype(dtype))
    torch = torch_or_skip()
    return torch.from_numpy(a.astype(np.float32)).cuda().to(torch.bfloat16)


def same_place(x, a: np.ndarray):
    """A mask, labels or weights in ``x``'s library, on its device."""
    return cupy.asarray(a) if isinstance(x, cupy.ndarray) else torch_or_skip().from_numpy(a).cuda()


def to_np(r) -> np.ndarray:
    if isinstance(r, cupy.ndarray):
        return cupy.asnumpy(r).astype(np.float64)
    return r.double().cpu().numpy()


def rounded(values, dtype: str) -> np.ndarray:
    """Float64 values as the tested dtype would store them, back in float64."""
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float64).astype(np_dtype(dtype)).astype(np.float64)


def assert_spec_close(actual, expected, dtype: str, *, log: bool, spread=None) -> None:
    """SPEC §2's accuracy, with ``spread`` = |x - max| per entry (conditioning of exp)."""
    a, e = to_np(actual), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
    np.testing.assert_array_equal(np.isinf(a) * np.sign(a), np.isinf(e) * np.sign(e))
    finite = np.isfinite(e)
    eps = EPS[dtype]
    if log:
        bound = 8 * eps * (1 + np.abs(e))
    else:
        k = 1 + (0 if spread is None else np.abs(spread))
        tiny = float(np.finfo(np.float16).smallest_subnormal) if dtype == "float16" else 0.0
        bound = 4 * eps * k * np.abs(e) + max(tiny, np.finfo(np.float32).tiny if dtype != "float64"
                                              else np.finfo(np.float64).tiny)
    # Only where the reference is finite (inf - inf would be NaN, with NumPy's warning).
    err = np.abs(a[finite] - e[finite])
    assert np.all(err <= bound[finite] + 1e-300), float(np.max(err - bound[finite], initial=0.0))


def reference_softmax(x64: np.ndarray, dtype: str, log: bool, **kw) -> np.ndarray:
    f = sk.log_softmax if log else sk.softmax
    return rounded(f(x64, engine="generic", **kw), dtype)


def random_rows(rows: int, n: int, dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rounded(rng.standard_normal((rows, n)) * 4, dtype)


def spread(x64: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """``|x - max| / T``, the conditioning of each probability; 0 where it is not finite."""
    with np.errstate(invalid="ignore", over="ignore"):
        z = (x64 - x64.max(axis=axis, keepdims=True)) / temperature
    return np.where(np.isfinite(z), np.abs(z), 0.0)


# --- SPEC §2 edge cases ------------------------------------------------------------------------

def _applies(case: EdgeCase, dtype: str) -> bool:
    return not (dtype in ("float16",) and case.name.startswith("huge"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("n_copies", [1, 40, 5000], ids=["short", "mid", "long"])
def test_edge_cases(case: EdgeCase, dtype: str, log: bool, n_copies: int):
    # The case's row repeated (so long rows exercise every strategy) next to an ordinary row.
    if not _applies(case, dtype) or not case.row:
        pytest.skip("not representable" if case.row else "empty rows: see test_empty")
    row = np.tile(np.asarray(case.row, dtype=np.float64), n_copies)
    x64 = np.stack([row, np.linspace(-3, 3, row.size)])
    x64 = rounded(x64, dtype)
    where = None if case.where is None else np.stack([np.tile(case.where, n_copies), np.ones(row.size, bool)])
    x = to_gpu(x64, dtype)
    mask = None if where is None else same_place(x, where)
    f = sk.log_softmax if log else sk.softmax
    result = f(x, where=mask, engine="cupy")
    assert type(result) is type(x) and str(result.dtype).endswith(dtype)
    assert_spec_close(result, reference_softmax(x64, dtype, log, where=where), dtype, log=log,
                      spread=spread(x64))
    if n_copies == 1:  # the table's own numbers
        table = rounded(case.log_softmax if log else case.softmax, dtype)
        assert_spec_close(result[:1], table[None, :], dtype, log=log)
    lse = sk.logsumexp(x, axis=-1, where=mask, engine="cupy")
    assert_spec_close(lse, rounded(sk.logsumexp(x64, axis=-1, where=where, engine="generic"), dtype),
                      dtype, log=True)


def test_empty_and_zero_dimensional():
    """Gaps of the CUDA engine in the registry: the generic engine computes them on the GPU."""
    x = cupy.zeros((3, 0), dtype=cupy.float32)
    with pytest.raises(ValueError, match="engine 'cuda' does not cover softmax with an empty array"):
        sk.softmax(x, engine="cuda")
    assert sk.softmax(x).shape == (3, 0)
    np.testing.assert_array_equal(cupy.asnumpy(sk.logsumexp(x, axis=1)), [-np.inf] * 3)
    assert float(sk.softmax(cupy.asarray(2.5))) == 1.0
    assert float(sk.logsumexp(cupy.asarray(2.5))) == 2.5


# --- every strategy against the reference ----------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "n"), SHAPES)
def test_softmax_family_every_strategy(rows, n, dtype):
    x64 = random_rows(rows, n, dtype)
    x = to_gpu(x64, dtype)
    rng = np.random.default_rng(1)
    where = rng.random((rows, n)) < 0.9
    mask = same_place(x, where)
    for log in (False, True):
        f = sk.log_softmax if log else sk.softmax
        for t in (1.0, 0.7):
            expected = reference_softmax(x64, dtype, log, temperature=t)
            assert_spec_close(f(x, temperature=t, engine="cupy"), expected, dtype, log=log,
                              spread=spread(x64, temperature=t))
        masked = np.where(where, x64, -np.inf)
        assert_spec_close(f(x, where=mask, engine="cupy"), reference_softmax(x64, dtype, log, where=where),
                          dtype, log=log, spread=spread(masked))
    assert_spec_close(sk.logsumexp(x, axis=1, engine="cupy"),
                      rounded(sk.logsumexp(x64, axis=1, engine="generic"), dtype), dtype, log=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "n"), SHAPES)
def test_vjps_every_strategy(rows, n, dtype):
    x64 = random_rows(rows, n, dtype)
    x64[0, : n // 2] = -np.inf  # excluded entries: s == 0, logp == -inf
    g64 = random_rows(rows, n, dtype, seed=2)
    s64 = rounded(sk.softmax(x64), dtype)
    lp64 = rounded(sk.log_softmax(x64), dtype)
    s, lp, g = to_gpu(s64, dtype), to_gpu(lp64, dtype), to_gpu(g64, dtype)
    # The row sums (sum(g * s), sum(g)) are reduced in trees here and pairwise by the reference:
    # each is off by up to log2(n) roundings of its terms, which make at most max|g|. A bound
    # without that term failed on the first GPU run for 1 of 80,000 entries (4 x 20,000
    # float64: 2.1e-13 against 1.4e-13).
    scale = np.abs(g64).max() * (1 + n * EPS[dtype]) * 4 * EPS[dtype] * (1 + math.ceil(math.log2(n)) / 4)
    for function, first, first64 in ((sk.softmax_vjp, s, s64), (sk.softmax_jvp, s, s64),
                                     (sk.log_softmax_vjp, lp, lp64)):
        expected = function(first64, g64, engine="generic")
        actual = to_np(function(first, g, engine="cupy"))
        np.testing.assert_allclose(actual, expected, rtol=16 * EPS[dtype], atol=scale * 8)
        if function is sk.log_softmax_vjp:
            assert np.all(actual[0, : n // 2] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "n"), [s for s in SHAPES if 1 < s[1] and s[0] * s[1] < 2_000_000])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_every_strategy(rows, n, dtype, reduction):
    x64 = random_rows(rows, n, dtype)
    rng = np.random.default_rng(3)
    labels64 = rng.integers(0, n, rows)
    labels64[0] = -100
    weight64 = rng.random(n) + 0.5
    probs64 = rounded(sk.softmax(rng.standard_normal((rows, n))), dtype)
    x = to_gpu(x64, dtype)
    labels, weight = same_place(x, labels64), same_place(x, weight64)
    probs = to_gpu(probs64, dtype)
    cases = [
        (labels, labels64, {"ignore_index": -100}),
        (labels, labels64, {"ignore_index": -100, "weight": (weight, weight64), "label_smoothing": 0.1}),
        (probs, probs64, {}),
        (probs, probs64, {"weight": (weight, weight64), "label_smoothing": 0.2}),
    ]
    for target, target64, options in cases:
        w, w64 = options.pop("weight", (None, None))
        loss, grad = sk.cross_entropy(x, target, weight=w, reduction=reduction, return_grad=True,
                                      engine="cupy", **options)
        eloss, egrad = sk.cross_entropy(x64, target64, weight=w64, reduction=reduction, return_grad=True,
                                        engine="generic", **options)
        tol = 16 * EPS[dtype] * np.log2(2 * n)  # sums over n classes, in another order
        np.testing.assert_allclose(to_np(loss), eloss, rtol=tol, atol=tol)
        np.testing.assert_allclose(to_np(grad), egrad, rtol=tol, atol=tol * np.abs(egrad).max())
        only_loss = sk.cross_entropy(x, target, weight=w, reduction=reduction, engine="cupy", **options)
        np.testing.assert_array_equal(to_np(only_loss), to_np(loss))


def test_cross_entropy_everything_ignored_is_nan_with_zero_gradient():
    x = cupy.asarray(np.random.default_rng(0).standard_normal((4, 50)), dtype=cupy.float32)
    labels = cupy.full(4, -100)
    loss, grad = sk.cross_entropy(x, labels, ignore_index=-100, return_grad=True, engine="cupy")
    assert np.isnan(float(loss)) and not cupy.any(grad)


# --- axes, out, determinism, accuracy ---------------------------------------------------------------

def test_non_last_and_tuple_axes():
    x64 = random_rows(6, 35, "float32").reshape(6, 5, 7)
    x = cupy.asarray(x64.astype(np.float32))
    for axis in (0, 1, (0, 2), None):
        for f in (sk.softmax, sk.log_softmax):
            np.testing.assert_allclose(cupy.asnumpy(f(x, axis=axis, engine="cupy")),
                                       f(x64, axis=axis, engine="generic"), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cupy.asnumpy(sk.logsumexp(x, axis=axis, keepdims=True, engine="cupy")),
                                   sk.logsumexp(x64, axis=axis, keepdims=True), rtol=1e-6)
    noncontiguous = x[:, ::2, ::-1]
    np.testing.assert_allclose(cupy.asnumpy(sk.softmax(noncontiguous, axis=1, engine="cupy")),
                               sk.softmax(x64[:, ::2, ::-1], axis=1), rtol=1e-5, atol=1e-7)


def test_out_and_in_place():
    x = cupy.asarray(random_rows(64, 1000, "float32"), dtype=cupy.float32)
    expected = cupy.asnumpy(sk.softmax(x, engine="cupy"))
    out = cupy.empty_like(x)
    assert sk.softmax(x, out=out, engine="cupy") is out
    np.testing.assert_array_equal(cupy.asnumpy(out), expected)
    assert sk.softmax(x, out=x, engine="cupy") is x
    np.testing.assert_array_equal(cupy.asnumpy(x), expected)


def test_dtype_argument_and_integer_input():
    x = cupy.asarray([[1, 2, 3]], dtype=cupy.int32)
    assert sk.softmax(x, engine="cupy").dtype == cupy.float64
    y = cupy.asarray([[1.0, 2.0]], dtype=cupy.float32)
    assert sk.softmax(y, dtype="float64", engine="cupy").dtype == cupy.float64
    assert sk.softmax(y, dtype="float16", engine="cupy").dtype == cupy.float16


@pytest.mark.parametrize(("rows", "n"), [(64, 1000), (140, 32000), (4, 300_001)])
def test_deterministic(rows, n):
    x = cupy.asarray(random_rows(rows, n, "float32"), dtype=cupy.float32)
    first = sk.softmax(x, engine="cupy")
    for _ in range(3):
        cupy.testing.assert_array_equal(sk.softmax(x, engine="cupy"), first)
    lse = sk.logsumexp(x, axis=1, engine="cupy")
    cupy.testing.assert_array_equal(sk.logsumexp(x, axis=1, engine="cupy"), lse)


def test_long_row_error_does_not_grow():
    n = 4_194_304
    x64 = np.random.default_rng(5).standard_normal((1, n))
    x = cupy.asarray(x64, dtype=cupy.float32)
    p = cupy.asnumpy(sk.softmax(x, engine="cupy")).astype(np.float64)
    x32 = x64.astype(np.float32).astype(np.float64)
    exact = sk.softmax(x32)
    assert np.max(np.abs(p - exact) / exact) < 8 * EPS["float32"] * (1 + np.max(np.abs(spread(x32))))
    assert abs(p.sum() - 1) < 1e-5


def test_every_compiled_strategy_was_planned():
    # The shapes above reach every strategy on this device (a guard for SHAPES).
    device = cupy.cuda.Device()
    sm, shared = _launch.device_limits(device.id)
    seen = {_plan.plan_launch("softmax", "float32", r, n, aligned=True, sm_count=sm,
                              max_shared_bytes=shared).strategy for r, n in SHAPES}
    assert seen == {"warp", "block", "smem", "split"}


# --- other array libraries ---------------------------------------------------------------------------

def test_torch_cuda_round_trip_is_automatic_and_zero_copy(caplog):
    torch = torch_or_skip()
    x = torch.randn(128, 1000, device="cuda")
    with caplog.at_level(logging.DEBUG, logger="softmaxkit"):
        p = sk.softmax(x)
    # Tensors on any device go to the torch engine (issue 11): its operators run this engine's
    # kernels on CUDA tensors, on torch's stream (tests/test_torch_cuda.py).
    assert "engine 'torch'" in caplog.text
    assert isinstance(p, torch.Tensor) and p.is_cuda and p.device == x.device
    torch.testing.assert_close(p, torch.softmax(x, -1), rtol=1e-5, atol=1e-7)
    assert cupy.from_dlpack(x).data.ptr == x.data_ptr()  # the input is shared, not copied
    out = torch.empty_like(x)
    assert sk.log_softmax(x, out=out) is out
    torch.testing.assert_close(out, torch.log_softmax(x, -1), rtol=1e-5, atol=1e-5)
    xb = x.to(torch.bfloat16)
    pb = sk.softmax(xb)
    assert pb.dtype == torch.bfloat16
    torch.testing.assert_close(pb, torch.softmax(xb.float(), -1).bfloat16())
    labels = torch.randint(0, 1000, (128,), device="cuda")
    loss, grad = sk.cross_entropy(x, labels, return_grad=True)
    xr = x.clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(xr, labels)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, xr.grad, rtol=1e-5, atol=1e-7)


def test_jax_gpu_round_trip():
    jax = pytest.importorskip("jax")
    try:
        gpu = jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("jax has no GPU")
    x = jax.device_put(jax.numpy.asarray(random_rows(32, 500, "float32"), dtype=jax.numpy.float32), gpu)
    p = sk.softmax(x)
    assert isinstance(p, jax.Array) and p.devices() == {gpu}
    np.testing.assert_allclose(np.asarray(p), np.asarray(jax.nn.softmax(x, axis=-1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(sk.logsumexp(x, axis=1)),
                               np.asarray(jax.scipy.special.logsumexp(x, axis=1)), rtol=1e-6)


# --- review findings: flush-to-zero, streams, devices, host inputs --------------------------------------

@pytest.mark.parametrize("n", [2, 3000, 300_001], ids=["warp", "block", "split"])
def test_subnormal_probabilities_are_not_flushed_to_zero(n):
    # Regression: CuPy's RawModule compiled with -ftz=true, so exp(-100) = 3.7e-44 (a float32
    # subnormal) came out as 0 against SPEC §2's relative bound. One entry holds the mass: with
    # half of them at 0 (the first version), a long row's sum made the others' probability
    # exp(-100) / (n / 2), below float32's smallest subnormal, and 0 was right (first GPU run).
    x64 = np.full((1, n), -100.0)
    x64[0, 0] = 0.0
    p = cupy.asnumpy(sk.softmax(cupy.asarray(x64, dtype=cupy.float32), engine="cupy")).astype(np.float64)
    want = sk.softmax(x64, engine="generic")
    tiny = 2.0**-126
    assert np.all(p[0, 1::2] > 0)
    np.testing.assert_allclose(p[0, 1::2], want[0, 1::2], rtol=0, atol=2.0**-149 * 2)
    assert want[0, 1] < tiny


def test_torch_side_stream_orders_inputs_temporaries_and_outputs():
    torch = torch_or_skip()
    side = torch.cuda.Stream()
    src = torch.randn(64, 5000, device="cuda")
    labels = torch.randint(0, 5000, (64,), device="cuda")
    torch.cuda.synchronize()
    with torch.cuda.stream(side):
        x = torch.empty_like(src)
        if hasattr(torch.cuda, "_sleep"):
            torch.cuda._sleep(50_000_000)  # the copy lands late: another stream would read garbage
        x.copy_(src)
        p = sk.softmax(x.bfloat16())  # a cast temporary (bfloat16 bits) lives on this stream only
        loss, _ = sk.cross_entropy(x, labels, return_grad=True)
        lp = sk.log_softmax(x)
    side.synchronize()
    torch.testing.assert_close(p, torch.softmax(src.bfloat16().float(), -1).bfloat16())
    torch.testing.assert_close(lp, torch.log_softmax(src, -1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(src, labels), rtol=1e-5, atol=1e-6)


def test_numpy_where_target_weight_with_torch_cuda_input():
    torch = torch_or_skip()
    x = torch.randn(8, 300, device="cuda", dtype=torch.float64)
    where = np.random.default_rng(0).random((8, 300)) < 0.8
    got = sk.softmax(x, where=where)
    want = sk.softmax(x, where=torch.from_numpy(where).cuda())
    torch.testing.assert_close(got, want)
    labels, weight = np.arange(8) * 3, np.linspace(0.5, 2.0, 300)
    loss = sk.cross_entropy(x, labels, weight=weight)
    ref = torch.nn.functional.cross_entropy(x, torch.from_numpy(labels).cuda(),
                                            weight=torch.from_numpy(weight).cuda())
    torch.testing.assert_close(loss, ref)
    probs = np.full((8, 300), 1 / 300)
    on_device = torch.from_numpy(probs).cuda()
    torch.testing.assert_close(sk.cross_entropy(x, probs), sk.cross_entropy(x, on_device))


def test_second_device_input_stays_on_its_device():
    if _DEVICES < 2:
        pytest.skip("one CUDA device")
    with cupy.cuda.Device(1):
        x = cupy.asarray(random_rows(16, 700, "float16"), dtype=cupy.float16)
    with cupy.cuda.Device(0):  # the current device is not the input's: casts and kernels follow x
        p = sk.softmax(x, dtype="float32", engine="cupy")
    assert p.device.id == 1
    np.testing.assert_allclose(cupy.asnumpy(p), sk.softmax(cupy.asnumpy(x).astype(np.float64)), rtol=1e-5,
                               atol=1e-7)


@pytest.mark.parametrize("n", [33 * 4096, 200 * 4096])
def test_split_merge_is_deterministic_with_many_partials(n):
    x = cupy.asarray(random_rows(1, n, "float32"), dtype=cupy.float32)
    first = sk.logsumexp(x, axis=1, engine="cupy")
    p = sk.softmax(x, engine="cupy")
    cupy.testing.assert_array_equal(sk.logsumexp(x, axis=1, engine="cupy"), first)
    cupy.testing.assert_array_equal(sk.softmax(x, engine="cupy"), p)
    x64 = cupy.asnumpy(x).astype(np.float64)
    want = float(sk.logsumexp(x64, axis=1)[0])
    assert abs(float(first[0]) - want) < 8 * EPS["float32"] * (1 + abs(want))


# --- sampling (kernels/sampling.cu; on the CPU they run in tests/test_cuda_sampling_on_cpu.py) -------

SAMPLE_FILTERS = [{}, {"temperature": 0.7, "top_k": 50, "top_p": 0.9}, {"top_p": 0.8, "min_p": 0.05},
                  {"temperature": 0.0}, {"top_k": 3, "num_samples": 3, "replacement": False}]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rows", "n"), [(7, 37), (5, 3000), (3, 20_000), (2, 128_256)])
def test_sample_draws_what_the_host_draws_with_the_same_seed(rows, n, dtype):
    # The generic engine as the host reference: it draws what the Numba kernels draw from the
    # same uniforms (tests/test_sampling.py) and needs no compilation on a fresh machine.
    x64 = np.round(random_rows(rows, n, dtype, seed=n) * 2) / 2  # ties
    x64 = rounded(x64, dtype)
    host = x64.astype(np.float64 if dtype == "float64" else np.float32)
    x = to_gpu(x64, dtype)
    for f in SAMPLE_FILTERS:
        got = sk.sample(x, rng=3, engine="cuda", **f)
        want = sk.sample(host, rng=3, engine="generic", **f)
        np.testing.assert_array_equal(to_np(got).astype(np.int64), want)
        np.testing.assert_array_equal(to_np(sk.sample(x, rng=3, engine="cuda", **f)), to_np(got))
    for mask, k in ((sk.top_k_mask, 5), (sk.top_p_mask, 0.9), (sk.min_p_mask, 0.1)):
        got_mask = mask(x, k, engine="cuda")
        got_mask = cupy.asnumpy(got_mask) if isinstance(got_mask, cupy.ndarray) else got_mask.cpu().numpy()
        np.testing.assert_array_equal(got_mask, mask(host, k, engine="generic"))


def test_sample_on_torch_is_automatic_and_on_the_callers_stream():
    torch = torch_or_skip()
    x = torch.from_numpy(random_rows(4, 1000, "float32")).cuda()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = sk.sample(x, top_k=10, num_samples=4, rng=torch.Generator(device="cuda").manual_seed(0))
    stream.synchronize()
    assert got.device == x.device and got.dtype == torch.int64 and got.shape == (4, 4)
    keep = sk.top_k_mask(x, 10).cpu().numpy()
    assert np.take_along_axis(keep, got.cpu().numpy(), axis=1).all()
