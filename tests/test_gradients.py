"""Jacobian, vjp and jvp of softmax and log_softmax against the seed, autograd and the SPEC."""

from __future__ import annotations

import numpy as np
import pytest

import softmaxkit as sk
from backends import Backend, forced, same_library, to_numpy


def seed_softmax_grad(x: np.ndarray) -> np.ndarray:
    """The seed's ``Softmax_grad`` (einsum form), in float64."""
    e = np.exp(x - x.max(1, keepdims=True))
    s = e / e.sum(1, keepdims=True)
    a = np.eye(s.shape[-1])
    return np.einsum("ij,jk->ijk", s, a) - np.einsum("ij,ik->ijk", s, s)


def test_jacobian_matches_seed():
    x = np.random.default_rng(4).normal(size=(5, 6))
    np.testing.assert_allclose(sk.softmax_jacobian(x), seed_softmax_grad(x), rtol=1e-14, atol=1e-17)


def test_jacobian_leading_dims_and_axis():
    x = np.random.default_rng(5).normal(size=(2, 3, 4))
    jac = sk.softmax_jacobian(x, axis=1)
    assert jac.shape == (2, 4, 3, 3)
    np.testing.assert_allclose(jac[1, 2], seed_softmax_grad(x[1, :, 2][None])[0], rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(jac, np.swapaxes(jac, -1, -2))
    np.testing.assert_allclose(jac.sum(-1), 0.0, atol=1e-16)


def test_jacobian_with_temperature_against_torch():
    torch = pytest.importorskip("torch")
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    want = torch.autograd.functional.jacobian(lambda v: torch.softmax(v / 2.5, -1), x)
    np.testing.assert_allclose(sk.softmax_jacobian(x.numpy(), temperature=2.5), want.numpy(), rtol=1e-13)


def test_jacobian_on_backends(backend: Backend):
    x_np = np.array([[1.0, 2.0, 0.5]], dtype=np.float32)
    jac = sk.softmax_jacobian(backend.asarray(x_np))
    assert same_library(jac, backend)
    np.testing.assert_allclose(to_numpy(jac), seed_softmax_grad(x_np.astype(np.float64)), rtol=1e-6,
                               atol=1e-7)


def test_jacobian_needs_a_single_axis():
    with pytest.raises(TypeError, match="single int"):
        sk.softmax_jacobian(np.zeros((2, 2)), axis=(0, 1))


def test_vjp_and_jvp_against_dense_jacobian(backend: Backend, engine: str):
    rng = np.random.default_rng(6)
    x_np = rng.normal(size=(4, 5)).astype(np.float32)
    g_np = rng.normal(size=(4, 5)).astype(np.float32)
    jac = seed_softmax_grad(x_np.astype(np.float64))
    want = np.einsum("ij,ijk->ik", g_np.astype(np.float64), jac)
    s = sk.softmax(backend.asarray(x_np))
    g = backend.asarray(g_np)
    for product in (sk.softmax_vjp, sk.softmax_jvp):
        got = forced(product, s, g, engine=engine)
        assert same_library(got, backend)
        np.testing.assert_allclose(to_numpy(got), want, rtol=1e-5, atol=1e-6)


def test_log_softmax_vjp_against_torch_autograd(engine: str):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x = torch.tensor(rng.normal(size=(3, 6)), requires_grad=True)
    g = torch.tensor(rng.normal(size=(3, 6)))
    torch.log_softmax(x, -1).backward(g)
    logp = sk.log_softmax(x.detach().numpy())
    np.testing.assert_allclose(sk.log_softmax_vjp(logp, g.numpy(), engine=engine), x.grad.numpy(),
                               rtol=1e-12, atol=1e-14)


def test_softmax_vjp_against_torch_autograd_along_axis0():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = torch.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    g = torch.tensor(rng.normal(size=(5, 3)))
    torch.softmax(x, 0).backward(g)
    s = sk.softmax(x.detach().numpy(), axis=0)
    np.testing.assert_allclose(sk.softmax_vjp(s, g.numpy(), axis=0), x.grad.numpy(), rtol=1e-12,
                               atol=1e-14)


def test_gradients_are_zero_at_excluded_entries_and_masked_rows(engine: str):
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    g = np.array([[1.0, 5.0, -2.0], [3.0, 4.0, 5.0]])
    s = sk.softmax(x)
    logp = sk.log_softmax(x)
    vjp = sk.softmax_vjp(s, g, engine=engine)
    lvjp = sk.log_softmax_vjp(logp, g, engine=engine)
    for grad in (vjp, lvjp):
        assert np.all(np.isfinite(grad))
        assert grad[0, 1] == 0.0
        np.testing.assert_array_equal(grad[1], 0.0)
    # the live entries see only the live cotangents
    np.testing.assert_allclose(lvjp[0, [0, 2]], g[0, [0, 2]] - s[0, [0, 2]] * (1.0 - 2.0))


def test_finite_differences():
    rng = np.random.default_rng(9)
    x = rng.normal(size=6)
    g = rng.normal(size=6)
    h = 1e-6
    numeric = np.array([
        (g @ sk.softmax(x + h * e) - g @ sk.softmax(x - h * e)) / (2 * h) for e in np.eye(6)
    ])
    np.testing.assert_allclose(sk.softmax_vjp(sk.softmax(x), g), numeric, rtol=1e-6, atol=1e-9)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        sk.softmax_vjp(np.ones(3) / 3, np.ones(4))
