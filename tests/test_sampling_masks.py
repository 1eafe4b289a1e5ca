"""top_k_mask / top_p_mask / min_p_mask equal a sort-based reference on rows full of ties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import softmaxkit as sk
from sampling_reference import boundary_margin, kept

ENGINES = ["numba", "generic"]

# Few distinct values, so ties are everywhere (also at the k-th place and at the top-p crossing).
values = st.sampled_from([-np.inf, -2.0, -1.0, 0.0, 0.0, 0.5, 1.0, 1.0, 3.0])
rows = st.lists(values, min_size=1, max_size=24).map(lambda v: np.array(v, dtype=np.float64))
temperatures = st.sampled_from([0.0, 0.3, 1.0, 2.5])


def _reference_mask(x, where=None, **filters):
    mask = np.zeros(x.size, dtype=bool)
    mask[kept(x, where, **filters)[0]] = True
    return mask


def _chain(x, sampler, where=None, temperature=1.0, top_k=None, top_p=None, min_p=None):
    mask = where
    if top_k is not None:
        mask = sk.top_k_mask(x, top_k, where=mask, engine=sampler)
    if top_p is not None:
        mask = sk.top_p_mask(x, top_p, temperature=temperature, where=mask, engine=sampler)
    if min_p is not None:
        mask = sk.min_p_mask(x, min_p, temperature=temperature, where=mask, engine=sampler)
    return mask


@pytest.mark.parametrize("sampler", ENGINES)
@settings(max_examples=150, deadline=None)
@given(x=rows, k=st.integers(1, 30), data=st.data())
def test_top_k_mask_matches_the_stable_sort(sampler, x, k, data):
    where = data.draw(st.none() | st.lists(st.booleans(), min_size=x.size, max_size=x.size).map(np.array))
    got = sk.top_k_mask(x, k, where=where, engine=sampler)
    np.testing.assert_array_equal(got, _reference_mask(x, where, top_k=k))


@pytest.mark.parametrize("sampler", ENGINES)
@settings(max_examples=150, deadline=None)
@given(x=rows, t=temperatures, p=st.floats(0.01, 1.0), min_p=st.none() | st.floats(0.0, 1.0),
       k=st.none() | st.integers(1, 30))
def test_filter_chain_matches_the_reference(sampler, x, t, p, min_p, k):
    filters = {"temperature": t, "top_k": k, "top_p": p, "min_p": min_p}
    assume(boundary_margin(x, None, **filters) > 1e-9)  # a crossing within rounding: float64 decides
    got = _chain(x, sampler, **filters)
    np.testing.assert_array_equal(got, _reference_mask(x, **filters))
    if got.any():
        draws = sk.sample(x, rng=0, num_samples=20, engine=sampler, **filters)
        assert np.all(got[draws])


@pytest.mark.parametrize("sampler", ENGINES)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 300), p=st.floats(0.05, 0.999))
def test_long_rows_with_ties(sampler, seed, k, p):
    """Rows longer than the top-k buffer refills and the kernels' blocks, with many ties."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-40, 8, size=(3, 2500)).astype(np.float64) / 4
    x[rng.random(x.shape) < 0.05] = -np.inf
    for r in range(3):
        assume(boundary_margin(x[r], None, 0.7, k, p, None) > 1e-9)
    got_k = sk.top_k_mask(x, k, engine=sampler)
    got = sk.top_p_mask(x, p, temperature=0.7, where=got_k, engine=sampler)
    for r in range(3):
        np.testing.assert_array_equal(got_k[r], _reference_mask(x[r], top_k=k))
        np.testing.assert_array_equal(got[r], _reference_mask(x[r], temperature=0.7, top_k=k, top_p=p))


def test_engines_build_the_same_masks_on_float32_rows():
    x = np.random.default_rng(5).normal(size=(20, 4000)).astype(np.float32)
    for make in (lambda e: sk.top_k_mask(x, 37, engine=e),
                 lambda e: sk.top_p_mask(x, 0.8, temperature=0.6, engine=e),
                 lambda e: sk.min_p_mask(x, 0.02, temperature=1.5, engine=e)):
        np.testing.assert_array_equal(make("numba"), make("generic"))


def test_masks_of_plus_inf_rows_and_the_tie_rule():
    x = np.array([1.0, np.inf, 5.0, np.inf, np.inf])
    for sampler in ENGINES:
        np.testing.assert_array_equal(sk.top_k_mask(x, 2, engine=sampler), [0, 1, 0, 1, 0])
        np.testing.assert_array_equal(sk.top_p_mask(x, 0.5, engine=sampler), [0, 1, 0, 1, 0])
        np.testing.assert_array_equal(sk.top_p_mask(x, 0.3, engine=sampler), [0, 1, 0, 0, 0])
        np.testing.assert_array_equal(sk.min_p_mask(x, 0.5, engine=sampler), [0, 1, 0, 1, 1])
        # top-p crossing exactly at p: the crossing entry is kept, nothing after it.
        np.testing.assert_array_equal(sk.top_p_mask(np.zeros(4), 0.5, engine=sampler), [1, 1, 0, 0])


def test_masks_keep_the_array_library():
    torch = pytest.importorskip("torch")
    x = torch.randn(3, 10)
    m = sk.top_k_mask(x, 3)
    assert isinstance(m, torch.Tensor) and m.dtype == torch.bool and int(m.sum()) == 9
    jnp = pytest.importorskip("jax.numpy")
    mj = sk.top_p_mask(jnp.asarray(x.numpy()), 0.5)
    assert type(mj).__module__.startswith("jax")
    np.testing.assert_array_equal(np.asarray(mj), sk.top_p_mask(x.numpy(), 0.5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chained_masks_are_the_sampled_set_bit_for_bit(dtype):
    """At top-p boundaries placed on prefix masses (where rounding decides), the chain of
    masks still equals the set the kernel samples from: both sum the same numbers in order."""
    pytest.importorskip("numba")
    from softmaxkit.sampling import _kernels
    from softmaxkit.sampling._params import row_params

    rng = np.random.default_rng(8)
    x = (rng.integers(-12, 4, size=(64, 700)) / 3).astype(dtype)
    w = np.exp((np.sort(x, axis=1)[:, ::-1] - x.max(axis=1, keepdims=True)) / 0.7)
    k = 40
    prefix = np.cumsum(w[:, :k], axis=1) / w[:, :k].sum(axis=1, keepdims=True)
    p = np.clip(prefix[np.arange(64), rng.integers(0, k - 1, 64)], 1e-6, 1.0)  # exactly on a prefix
    params = row_params(0.7, k, p, 0.05, (64,), x.shape[1])
    combined = np.empty(x.shape, dtype=bool)
    status = np.empty(64, dtype=np.int8)
    _kernels.filter_rows(x, np.ones((1, 1), dtype=bool), False, params.inv_t, params.top_k, params.top_p,
                         params.min_p, params.buffer_size(x.shape[1]), combined, status, 0, 64)
    chain = _chain(x, "numba", temperature=0.7, top_k=k, top_p=p, min_p=0.05)
    np.testing.assert_array_equal(chain, combined)
    draws = sk.sample(x, temperature=0.7, top_k=k, top_p=p, min_p=0.05, rng=0, num_samples=30)
    assert np.all(np.take_along_axis(chain, draws, axis=1))
