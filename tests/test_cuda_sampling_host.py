"""sk.sample and the sampling masks through the CUDA engine's plumbing, on the CPU.

NumPy stands in for CuPy and the two launchers (``_launch.sample``, ``_launch.sample_filter``)
are replaced by the Numba kernels under the launchers' contract (contiguous ``(rows, n)``
rows in the kernel dtype, per-row parameters, uniforms and outputs of the documented dtypes):
what is checked is everything the engine does around its kernels — the choice, axes, masks,
dtypes, uniforms, the result's shape and errors naming rows. The kernels themselves run on the
CPU harness (tests/test_cuda_sampling_on_cpu.py), and equal the Numba kernels there.
"""

from __future__ import annotations

import contextlib
import sys
import types

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import sampling
from softmaxkit.cuda import _bridge, _launch, _plan
from softmaxkit.sampling import _kernels


def _contract(x, mask, params, dtype):
    assert x.flags.c_contiguous and x.ndim == 2 and x.dtype.name == dtype
    assert mask is None or (mask.dtype == np.uint8 and mask.shape == x.shape and mask.flags.c_contiguous)
    inv_t, top_k, top_p, min_p = params
    assert [a.dtype for a in params] == [np.float64, np.int64, np.float64, np.float64]
    assert all(a.shape == (x.shape[0],) for a in params)
    rows = x.astype(np.float64 if dtype == "float64" else np.float32)
    m = np.ones((1, 1), np.bool_) if mask is None else mask.astype(bool)
    cap = sampling.RowParams(inv_t, top_k, top_p, min_p).buffer_size(x.shape[1])
    return rows, m, mask is not None, cap


def fake_sample(x, mask, params, u, out, status, dtype, replacement):
    rows, m, has_mask, cap = _contract(x, mask, params, dtype)
    assert u.dtype == np.float64 and u.shape == out.shape == (x.shape[0], u.shape[1]) and u.flags.c_contiguous
    assert out.dtype == np.int64 and status.dtype == np.int8 and status.shape == (x.shape[0],)
    with np.errstate(all="ignore"):
        _kernels.sample_rows(rows, m, has_mask, *params, cap, u, replacement, out, status, 0, x.shape[0])


def fake_filter(x, mask, params, keep, status, dtype):
    rows, m, has_mask, cap = _contract(x, mask, params, dtype)
    assert keep.dtype == np.uint8 and keep.shape == x.shape
    out = np.zeros(x.shape, np.bool_)
    with np.errstate(all="ignore"):
        _kernels.filter_rows(rows, m, has_mask, *params, cap, out, status, 0, x.shape[0])
    keep[...] = out


@pytest.fixture
def numpy_gpu(monkeypatch):
    """NumPy arrays taken for GPU arrays by the sampler, the kernels' contracts in Numba."""
    fake = types.ModuleType("cupy")
    fake.ndarray = type("ndarray", (), {})
    for name in ("ascontiguousarray", "asarray", "zeros", "moveaxis", "int8", "int64", "uint8", "float64"):
        setattr(fake, name, getattr(np, name))
    fake.asnumpy = np.asarray
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(_bridge, "from_cupy", lambda y, like, dtype: y)
    monkeypatch.setattr(_launch, "context", lambda a: contextlib.nullcontext())
    monkeypatch.setattr(_launch, "sample", fake_sample)
    monkeypatch.setattr(_launch, "sample_filter", fake_filter)
    monkeypatch.setitem(sampling.RUNS, "cuda", (lambda x: isinstance(x, np.ndarray), None))


X = np.round(np.random.default_rng(0).standard_normal((3, 40, 5)) * 4) / 2  # ties
X[0, :7, 1] = -np.inf
WHERE = np.random.default_rng(1).random((40, 5)) < 0.8

FILTERS = {"temperature": 0.7, "top_k": 6, "top_p": 0.9, "min_p": 0.02}


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_sample_equals_the_numba_engine(numpy_gpu, axis, dtype):
    x = X.astype(dtype)
    # Along axis 0 a row is X[:, i, j]: WHERE (broadcast along it) would exclude whole rows.
    where = np.ones_like(WHERE) if axis == 0 else WHERE
    without = {"num_samples": 2, "replacement": False, "top_k": 4}
    for kw in ({}, FILTERS, {**FILTERS, "where": where}, without):
        got = sk.sample(x, axis=axis, rng=5, engine="cuda", **kw)
        want = sk.sample(x, axis=axis, rng=5, engine="numba", **kw)
        assert got.dtype == np.int64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("axis", [-1, 1])
def test_masks_equal_the_numba_engine(numpy_gpu, axis):
    for f, arg, kw in ((sk.top_k_mask, 3, {}), (sk.top_p_mask, 0.8, {"temperature": 0.5}),
                       (sk.min_p_mask, 0.1, {"where": WHERE})):
        got = f(X, arg, axis=axis, engine="cuda", **kw)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, f(X, arg, axis=axis, engine="numba", **kw))


def test_gpu_arrays_choose_the_cuda_engine(numpy_gpu, monkeypatch, caplog):
    import logging

    with caplog.at_level(logging.DEBUG, logger="softmaxkit"):
        sk.sample(X, rng=0)
        sk.top_k_mask(X, 2)
    assert "sample: engine 'cuda' chosen" in caplog.text and "top_k_mask: engine 'cuda' chosen" in caplog.text
    # A gap: the automatic choice passes over the engine and says why; engine="cuda" refuses.
    monkeypatch.setattr(_plan, "SAMPLING_MAX_N", 4)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="softmaxkit"):
        np.testing.assert_array_equal(sk.sample(X, rng=0), sk.sample(X, rng=0, engine="numba"))
    assert "cuda does not cover rows of 2**31 entries or more" in caplog.text
    with pytest.raises(ValueError, match=r"'cuda' does not cover rows of 2\*\*31 .*engines that can: numba"):
        sk.sample(X, rng=0, engine="cuda")


def test_rows_that_cannot_be_sampled_are_named(numpy_gpu):
    x = np.zeros((3, 4))
    x[1] = -np.inf
    x[2, 2] = np.nan
    with pytest.raises(ValueError, match="rows 1 have no class"):
        sk.sample(x[:2], rng=0, engine="cuda")
    with pytest.raises(ValueError, match="rows 2 hold NaN"):
        sk.sample(x, rng=0, engine="cuda")
    with pytest.raises(ValueError, match="rows 0 have fewer than num_samples=5"):
        sk.sample(x[:1], num_samples=5, replacement=False, rng=0, engine="cuda")
    with pytest.raises(ValueError, match="no class"):
        sk.sample(np.zeros((2, 0)), rng=0, engine="cuda")
    assert sk.sample(np.zeros((0, 4)), num_samples=2, rng=0, engine="cuda").shape == (0, 2)
    one_row = sk.sample(X[0, 0], num_samples=6, rng=2, engine="cuda")  # 1-d logits: no batch axes
    np.testing.assert_array_equal(one_row, sk.sample(X[0, 0], num_samples=6, rng=2, engine="numba"))
    assert one_row.shape == (6,)
    np.testing.assert_array_equal(sk.top_k_mask(x[:2], 1, engine="cuda"), [[1, 0, 0, 0], [0, 0, 0, 0]])


def test_cuda_engine_refuses_host_arrays():
    with pytest.raises(ValueError, match=r"'cuda' cannot run on ndarray .*engines that can: numba, generic"):
        sk.top_p_mask(np.zeros((2, 3)), 0.5, engine="cuda")


def test_the_plan_picks_blocks_the_compile_test_builds():
    assert [_plan.sampling_block(n) for n in (1, 8192, 8193, 128_256, 10**9)] == [128, 128, 256, 512, 512]
    names = set(_plan.sampling_names("float32"))
    assert names >= {"sk_sample_rows<float, 512>", "sk_filter_rows<float, 128>"}
