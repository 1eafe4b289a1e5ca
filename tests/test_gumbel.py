"""gumbel_softmax: exact Gumbel-max draws, relaxed samples, straight-through gradients."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import softmaxkit as sk
from backends import Backend, same_library, to_numpy
from sampling_reference import rng_for, skip_missing

BACKENDS = [Backend.NUMPY, Backend.TORCH, Backend.JAX]
LOGITS = np.array([0.5, 2.0, -1.0, 1.0, -np.inf])


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.value)
def test_hard_samples_are_exact_draws_from_the_softmax(backend):
    skip_missing(backend)
    draws = 20_000
    x = backend.asarray(np.tile(LOGITS.astype(np.float32), (draws, 1)))
    hard = sk.gumbel_softmax(x, hard=True, rng=rng_for(backend, 1))
    assert same_library(hard, backend)
    h = to_numpy(hard)
    assert np.all(h.sum(axis=1) == 1) and set(np.unique(h)) <= {0.0, 1.0}
    counts = h.sum(axis=0)
    expected = to_numpy(sk.softmax(LOGITS)) * draws
    assert counts[4] == 0
    assert stats.chisquare(counts[:4], expected[:4]).pvalue > 1e-4


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.value)
def test_soft_samples_are_distributions_and_reproducible(backend):
    skip_missing(backend)
    x = backend.asarray(np.tile(LOGITS.astype(np.float32), (6, 1)))
    a = to_numpy(sk.gumbel_softmax(x, temperature=0.5, rng=rng_for(backend, 3)))
    b = to_numpy(sk.gumbel_softmax(x, temperature=0.5, rng=rng_for(backend, 3)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(a[:, 4] == 0) and np.all(a >= 0)
    assert not np.array_equal(a[0], a[1])  # each row has its own noise


def test_edge_rows():
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, np.nan, 1.0], [np.inf, 3.0, np.inf]])
    soft = sk.gumbel_softmax(x, rng=0)
    hard = sk.gumbel_softmax(x, hard=True, rng=0)
    np.testing.assert_array_equal(soft[0], 0.0)
    np.testing.assert_array_equal(hard[0], 0.0)
    assert np.all(np.isnan(soft[1])) and np.all(np.isnan(hard[1]))
    assert soft[2, 1] == 0 and hard[2, 1] == 0 and hard[2].sum() == 1
    # +inf rows draw among their +inf entries at random (the Gumbel-max limit).
    many = sk.gumbel_softmax(np.tile(x[2], (2000, 1)), hard=True, rng=1)
    assert 800 < many[:, 0].sum() < 1200 and many[:, 1].sum() == 0


def test_arguments():
    with pytest.raises(ValueError, match="temperature must be finite and > 0"):
        sk.gumbel_softmax([1.0, 2.0], temperature=0.0)
    with pytest.raises(TypeError, match="rng must be"):
        sk.gumbel_softmax([1.0, 2.0], rng=1.5)
    with pytest.raises(TypeError, match="hard must be True or False"):  # regression: "no" was true
        sk.gumbel_softmax([1.0, 2.0], hard="no")
    assert sk.gumbel_softmax(np.zeros((2, 3, 4)), axis=1, rng=0).sum(axis=1) == pytest.approx(np.ones((2, 4)))


def test_straight_through_gradient_in_torch():
    torch = pytest.importorskip("torch")
    logits = torch.tensor([[0.3, 1.2, -0.5, 0.9]], requires_grad=True)
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])
    hard = sk.gumbel_softmax(logits, temperature=0.7, hard=True, rng=torch.Generator().manual_seed(4))
    (hard * weights).sum().backward()
    assert torch.equal(hard.detach().sum(-1), torch.ones(1))
    straight = logits.grad.clone()
    logits.grad = None
    soft = sk.gumbel_softmax(logits, temperature=0.7, rng=torch.Generator().manual_seed(4))
    (soft * weights).sum().backward()
    torch.testing.assert_close(straight, logits.grad)
    assert straight.abs().sum() > 0


def test_straight_through_gradient_in_jax():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    logits = jnp.array([[0.3, 1.2, -0.5, 0.9]])
    weights = jnp.array([1.0, -2.0, 0.5, 3.0])
    key = jax.random.key(4)

    def loss(x, hard):
        return (sk.gumbel_softmax(x, temperature=0.7, hard=hard, rng=key) * weights).sum()

    straight = jax.grad(loss)(logits, True)
    np.testing.assert_allclose(np.asarray(straight), np.asarray(jax.grad(loss)(logits, False)), rtol=1e-6)
    assert float(jnp.abs(straight).sum()) > 0
    hard = sk.gumbel_softmax(logits, hard=True, rng=key)
    assert float(hard.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_jit_gives_the_eager_draw_in_jax(hard):
    jax = pytest.importorskip("jax")
    logits = jax.numpy.array([[0.3, 1.2, -0.5, 0.9], [2.0, -1.0, 0.0, 0.5]])
    key = jax.random.key(7)
    eager = sk.gumbel_softmax(logits, temperature=0.5, hard=hard, rng=key)
    traced = jax.jit(lambda x, k: sk.gumbel_softmax(x, temperature=0.5, hard=hard, rng=k))(logits, key)
    np.testing.assert_allclose(np.asarray(traced), np.asarray(eager), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_a_uniform_draw_that_rounds_to_one_does_not_win(dtype, monkeypatch):
    """Regression: the noise was computed in the logits' dtype, where a uniform draw close to 1
    rounds to 1 and gives +inf noise, so that class won whatever its logit (float16: from
    1 - 2**-12 up; 137 of 200 rows of 4,096 classes drew a class of probability 2e-9). With
    every draw that close to 1 the noise is the same everywhere and the largest logit wins."""
    import ml_dtypes

    from softmaxkit.sampling import _gumbel

    monkeypatch.setattr(_gumbel, "uniforms", lambda rng, shape, x: np.full(shape, 1.0 - 1e-12))
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    logits = np.array([[0.0, 5.0, 1.0]], dtype=np_dtype)
    hard = sk.gumbel_softmax(logits, hard=True)
    assert hard.dtype == logits.dtype
    np.testing.assert_array_equal(hard.astype(np.float32), [[0.0, 1.0, 0.0]])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_hard_draws_follow_the_softmax(dtype):
    """The case that found it: class 0 holds all but 2e-9 x 4,095 of the mass in every row."""
    import ml_dtypes

    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    x = np.full((200, 4096), -20.0, np.float32)
    x[:, 0] = 0.0
    draws = sk.gumbel_softmax(x.astype(np_dtype), hard=True, rng=0)
    assert draws.dtype == np_dtype
    assert (draws[:, 0] == 1).sum() >= 199  # expected misses: 200 x 4,095 x 2e-9 = 0.002
