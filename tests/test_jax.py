"""Every public array function under jax.jit, jax.vmap, jax.grad, jax.jvp and jax.checkpoint.

Each case of ``CASES`` is a function of JAX arrays built on one public function; its answer
under each transformation is compared with the eager NumPy answer of the same call, and its
gradient with the gradient softmaxkit itself states (``softmax_vjp``, ``cross_entropy(...,
return_grad=True)``, ...) or, where none is stated, with JAX's gradient of a plain formula.
No traced computation may call back to the host (``jax.make_jaxpr`` shows no callback).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import softmaxkit as sk

jax = pytest.importorskip("jax")
jnp = jax.numpy

NOT_ARRAY_FUNCTIONS = {
    "LabelIndex": "a class that maps label names (strings) to indices on the host",
    "SoftmaxRegression": "a scikit-learn estimator, fitted by SciPy's L-BFGS on NumPy arrays",
    "ece": "a calibration statistic of NumPy arrays, returned as a Python float",
    "fit_temperature": "a SciPy scalar optimisation returning a Python float",
    "reliability_diagram": "draws a matplotlib figure",
    "engine_names": "takes no array",
    # Sampling names each fully excluded or NaN row in a ValueError, which needs the values:
    # it runs eagerly on JAX arrays (tests/test_sampling.py), not under jax.jit (SPEC §6 gap).
    "sample": "eager only: rows that cannot be sampled are named in a ValueError",
    "gumbel_softmax": "random (a JAX key, not NumPy's stream): no eager NumPy answer to equal; "
                      "jit and jax.grad are tested in tests/test_gumbel.py",
    "top_k_mask": "eager only: the masks share sample's row checks",
    "top_p_mask": "eager only: the masks share sample's row checks",
    "min_p_mask": "eager only: the masks share sample's row checks",
}
"""Public names that are not functions of arrays, and why they are not traced."""

RNG = np.random.default_rng(20261129)
NEG_INF = -np.inf


def _logits() -> np.ndarray:
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    x[1, 2] = NEG_INF  # an excluded entry
    x[2, :] = NEG_INF  # a fully excluded row
    return x


X = _logits()
X_FINITE = RNG.standard_normal((4, 5)).astype(np.float32)
MASK = np.ones((4, 5), dtype=bool)
MASK[3, 1] = MASK[3, 4] = False
G = RNG.standard_normal((4, 5)).astype(np.float32)
LABELS = np.array([0, 3, 1, 4])
WEIGHT = np.array([1.0, 0.5, 2.0, 1.5, 0.25], dtype=np.float32)
PROBS = np.asarray(sk.softmax(X_FINITE * 0.5))
B = np.abs(RNG.standard_normal((4, 5))).astype(np.float32) + 0.1


@dataclass(frozen=True)
class Case:
    """``function(*arrays)`` built on one public function; ``grad`` gives the expected
    gradient of ``sum(function(*arrays) * cotangent)`` with respect to ``arrays[0]``
    (None: not differentiable)."""

    name: str
    function: Callable[..., Any]
    arrays: tuple[np.ndarray, ...]
    grad: Callable[..., np.ndarray] | None = None


def _vjp_of_log_softmax_in_g(logp: np.ndarray, c: np.ndarray) -> np.ndarray:
    live = logp != NEG_INF
    p = np.exp(logp)
    return np.where(live, c - np.sum(np.where(live, c * p, 0), axis=-1, keepdims=True), 0)


CASES = [
    Case("softmax", lambda x: sk.softmax(x), (X,), lambda c, x: sk.softmax_vjp(sk.softmax(x), c)),
    Case("softmax", lambda x: sk.softmax(x, axis=0, where=MASK, temperature=2.0), (X_FINITE,),
         lambda c, x: sk.softmax_vjp(sk.softmax(x, axis=0, where=MASK, temperature=2.0), c, axis=0) / 2.0),
    Case("log_softmax", lambda x: sk.log_softmax(x), (X,),
         lambda c, x: sk.log_softmax_vjp(sk.log_softmax(x), c)),
    Case("log_softmax", lambda x, m: sk.log_softmax(x, where=m), (X_FINITE, MASK),
         lambda c, x, m: sk.log_softmax_vjp(sk.log_softmax(x, where=m), c)),
    Case("logsumexp", lambda x: sk.logsumexp(x, axis=1), (X,),
         lambda c, x: c[:, None] * sk.softmax(x, axis=1)),
    Case("logsumexp", lambda x, b: sk.logsumexp(x, axis=0, b=b), (X_FINITE, B),
         lambda c, x, b: c[None, :] * b * np.exp(x - sk.logsumexp(x, axis=0, b=b, keepdims=True))),
    Case("sigmoid", lambda x: sk.sigmoid(x), (X_FINITE,),
         lambda c, x: c * sk.sigmoid(x) * sk.sigmoid(-x)),
    Case("log_sigmoid", lambda x: sk.log_sigmoid(x), (X_FINITE,), lambda c, x: c * sk.sigmoid(-x)),
    Case("softplus", lambda x: sk.softplus(x), (X_FINITE,), lambda c, x: c * sk.sigmoid(x)),
    Case("softmax_jacobian", lambda x: sk.softmax_jacobian(x), (X_FINITE,),
         lambda c, x: np.asarray(jax.grad(lambda v: jnp.sum(
             jax.vmap(jax.jacobian(jax.nn.softmax))(v) * c))(jnp.asarray(x)))),
    Case("softmax_vjp", lambda g, s: sk.softmax_vjp(s, g), (G, PROBS),
         lambda c, g, s: sk.softmax_vjp(s, c)),  # the Jacobian is symmetric
    Case("softmax_jvp", lambda v, s: sk.softmax_jvp(s, v), (G, PROBS), lambda c, v, s: sk.softmax_jvp(s, c)),
    Case("log_softmax_vjp", lambda g, lp: sk.log_softmax_vjp(lp, g), (G, np.asarray(sk.log_softmax(X))),
         lambda c, g, lp: _vjp_of_log_softmax_in_g(lp, c)),
    Case("cross_entropy", lambda x, t: sk.cross_entropy(x, t), (X_FINITE, LABELS),
         lambda c, x, t: c * sk.cross_entropy(x, t, return_grad=True)[1]),
    Case("cross_entropy",
         lambda x, t: sk.cross_entropy(x, t, weight=WEIGHT, label_smoothing=0.1, ignore_index=3),
         (X_FINITE, LABELS),
         lambda c, x, t: c * sk.cross_entropy(x, t, weight=WEIGHT, label_smoothing=0.1, ignore_index=3,
                                              return_grad=True)[1]),
    Case("cross_entropy", lambda x, p: sk.cross_entropy(x, p, reduction="none"), (X_FINITE, PROBS),
         lambda c, x, p: c[:, None] * sk.cross_entropy(x, p, reduction="none", return_grad=True)[1]),
    Case("one_hot", lambda t: sk.one_hot(t, 5), (LABELS,)),
    Case("predict", lambda x: sk.predict(x), (X_FINITE,)),
    Case("top_k", lambda x: sk.top_k(x, 2)[0], (X_FINITE,),
         lambda c, x: _scatter_top_k(c, x, 2)),
    Case("top_k", lambda x: sk.top_k(x, 3, axis=0)[1], (X_FINITE,)),
]


def _scatter_top_k(c: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros_like(x)
    np.put_along_axis(out, np.asarray(sk.top_k(x, k)[1]), c, axis=-1)
    return out


IDS = [f"{c.name}-{i}" for i, c in enumerate(CASES)]


def _np(result: Any) -> Any:
    return tuple(map(np.asarray, result)) if isinstance(result, tuple) else np.asarray(result)


def _close(actual: Any, desired: Any) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(desired, dtype=np.float64),
                               rtol=2e-5, atol=2e-6, equal_nan=True)


def test_every_public_array_function_has_a_case():
    covered = {c.name for c in CASES}
    missing = set(sk.__all__) - covered - set(NOT_ARRAY_FUNCTIONS)
    assert not missing, f"add a Case to tests/test_jax.py (or a reason to NOT_ARRAY_FUNCTIONS) for {missing}"
    assert covered | set(NOT_ARRAY_FUNCTIONS) <= set(sk.__all__)
    assert not covered & set(NOT_ARRAY_FUNCTIONS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jit_matches_eager_numpy(case: Case):
    want = case.function(*case.arrays)
    got = jax.jit(case.function)(*map(jnp.asarray, case.arrays))
    assert isinstance(got, jax.Array)
    _close(got, want)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_vmap_matches_eager_numpy_per_sample(case: Case):
    # A batch of three inputs: the first array shifted and scaled, the others repeated.
    first = case.arrays[0]
    variants = [first, first + 1, first * 2] if first.dtype.kind == "f" else [first, first[::-1], first]
    batched = [jnp.asarray(np.stack(variants))] + [jnp.asarray(np.stack([a] * 3)) for a in case.arrays[1:]]
    got = jax.vmap(case.function)(*batched)
    for i, v in enumerate(variants):
        _close(got[i], case.function(v, *case.arrays[1:]))


def _differentiable() -> list[Any]:
    return [pytest.param(c, id=i) for c, i in zip(CASES, IDS, strict=True) if c.grad is not None]


def _cotangent(case: Case) -> np.ndarray:
    shape = np.shape(case.function(*case.arrays))
    return np.random.default_rng(7).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("case", _differentiable())
@pytest.mark.parametrize("transform", ["grad", "jit-grad", "checkpoint-grad"])
def test_grad_matches_stated_gradient(case: Case, transform: str):
    c = _cotangent(case)
    rest = tuple(map(jnp.asarray, case.arrays[1:]))
    function = jax.checkpoint(case.function) if transform == "checkpoint-grad" else case.function

    def loss(first: Any) -> Any:
        return jnp.sum(function(first, *rest) * c)

    grad = jax.grad(loss)
    got = (jax.jit(grad) if transform == "jit-grad" else grad)(jnp.asarray(case.arrays[0]))
    assert np.all(np.isfinite(np.asarray(got)))
    _close(got, case.grad(c, *case.arrays))


@pytest.mark.parametrize("case", _differentiable())
def test_jvp_is_the_transpose_of_the_stated_gradient(case: Case):
    # <J v, c> = <v, J^T c>: the forward-mode tangent against the stated reverse-mode gradient.
    c = _cotangent(case)
    v = np.random.default_rng(8).standard_normal(case.arrays[0].shape).astype(np.float32)
    rest = tuple(map(jnp.asarray, case.arrays[1:]))
    _, tangent = jax.jvp(lambda first: case.function(first, *rest), (jnp.asarray(case.arrays[0]),),
                         (jnp.asarray(v),))
    grad = case.grad(c, *case.arrays)
    np.testing.assert_allclose(float(jnp.sum(tangent * c)), float(np.sum(v * grad)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_no_host_callback_in_the_traced_computation(case: Case):
    jaxpr = jax.make_jaxpr(case.function)(*map(jnp.asarray, case.arrays))
    assert "callback" not in str(jaxpr)


def test_jvp_is_softmax_jvp():
    v = jnp.asarray(G)
    value, tangent = jax.jvp(lambda x: sk.softmax(x), (jnp.asarray(X),), (v,))
    _close(value, sk.softmax(X))
    _close(tangent, sk.softmax_jvp(sk.softmax(X), G))


def test_jacobian_of_softmax_is_softmax_jacobian():
    x = X_FINITE[0]
    _close(jax.jacfwd(lambda v: sk.softmax(v))(jnp.asarray(x)), sk.softmax_jacobian(x))
    _close(jax.jacrev(lambda v: sk.softmax(v, temperature=3.0))(jnp.asarray(x)),
           sk.softmax_jacobian(x, temperature=3.0))


# --- gradients at excluded entries (SPEC §2: exactly 0) -----------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_gradient_is_zero_at_minus_inf_and_masked_entries(name: str):
    function = getattr(sk, name)
    mask = jnp.asarray(MASK)
    kwargs = {"axis": 1} if name == "logsumexp" else {}

    def loss(x: Any) -> Any:
        y = function(x, where=mask, **kwargs)
        weights = G if y.ndim == 2 else G[:, 0]
        return jnp.sum(jnp.where(jnp.isfinite(y), y, 0.0) * weights)

    grad = np.asarray(jax.grad(loss)(jnp.asarray(X)))
    assert np.all(np.isfinite(grad))
    excluded = np.isneginf(X) | ~MASK
    assert np.all(grad[excluded] == 0)
    assert np.all(grad[2] == 0)  # the fully excluded row


def test_gradient_of_an_excluded_log_softmax_output_is_zero():
    # log_softmax is the constant -inf there: selecting it passes no gradient back.
    grad = jax.grad(lambda x: sk.log_softmax(x)[1, 2] + sk.log_softmax(x)[2, 0])(jnp.asarray(X))
    assert np.all(np.asarray(grad) == 0)


def test_cross_entropy_gradient_is_finite_with_minus_inf_logits_outside_the_target():
    x = X_FINITE.copy()
    x[0, 4] = x[1, 0] = NEG_INF
    grad = np.asarray(jax.grad(lambda v: sk.cross_entropy(v, LABELS, label_smoothing=0.0))(jnp.asarray(x)))
    assert grad[0, 4] == 0 and grad[1, 0] == 0
    _close(grad, sk.cross_entropy(x, LABELS, return_grad=True)[1])


def test_cross_entropy_weight_gradient_has_no_nan_from_zero_times_minus_inf():
    x = X_FINITE.copy()
    x[0, 4] = NEG_INF
    grad = jax.grad(lambda w: sk.cross_entropy(jnp.asarray(x), LABELS, weight=w))(jnp.asarray(WEIGHT))
    assert np.all(np.isfinite(np.asarray(grad)))


# --- values that cannot be checked under tracing ----------------------------------------------


def test_traced_temperature_matches_eager_and_its_gradient_matches_jax_nn():
    x = jnp.asarray(X_FINITE)
    got = jax.jit(lambda v, t: sk.softmax(v, temperature=t))(x, 2.5)
    _close(got, sk.softmax(X_FINITE, temperature=2.5))
    grad = jax.grad(lambda t: sk.log_softmax(x, temperature=t)[0, 1])(2.5)
    want = jax.grad(lambda t: jax.nn.log_softmax(x / t)[0, 1])(2.5)
    np.testing.assert_allclose(float(grad), float(want), rtol=1e-5)


def test_traced_temperature_with_a_numpy_input():
    grad = jax.grad(lambda t: sk.softmax(X_FINITE, temperature=t)[0, 0])(2.0)
    want = jax.grad(lambda t: jax.nn.softmax(jnp.asarray(X_FINITE) / t)[0, 0])(2.0)
    np.testing.assert_allclose(float(grad), float(want), rtol=1e-5)


@pytest.mark.parametrize("t", [0.0, -1.0, np.inf, np.nan])
def test_traced_invalid_temperature_gives_nan(t: float):
    result = jax.jit(lambda v, t: sk.softmax(v, temperature=t))(jnp.asarray(X_FINITE), t)
    assert np.all(np.isnan(np.asarray(result)))
    with pytest.raises(ValueError, match="temperature"):
        sk.softmax(jnp.asarray(X_FINITE), temperature=t)


def test_traced_temperature_must_be_a_real_scalar():
    with pytest.raises(ValueError, match="scalar"):
        jax.jit(lambda v, t: sk.softmax(v, temperature=t))(jnp.asarray(X_FINITE), jnp.ones(2))
    with pytest.raises(TypeError, match="real number"):
        jax.jit(lambda v, t: sk.softmax(v, temperature=t))(jnp.asarray(X_FINITE), True)


def test_traced_out_of_range_label_gives_nan_for_its_sample():
    labels = jnp.asarray([0, 7, 1, -2])
    per_sample = jax.jit(lambda v, t: sk.cross_entropy(v, t, reduction="none"))(jnp.asarray(X_FINITE), labels)
    per_sample = np.asarray(per_sample)
    assert np.isnan(per_sample[[1, 3]]).all() and np.isfinite(per_sample[[0, 2]]).all()
    _close(per_sample[[0, 2]], sk.cross_entropy(X_FINITE, LABELS, reduction="none")[[0, 2]])
    mean, grad = jax.jit(lambda v, t: sk.cross_entropy(v, t, return_grad=True))(jnp.asarray(X_FINITE), labels)
    assert np.isnan(float(mean)) and np.isnan(np.asarray(grad)[1]).all()
    # An ignored label is not out of range, traced or not.
    ignored = jax.jit(lambda v, t: sk.cross_entropy(v, t, ignore_index=-2))(jnp.asarray(X_FINITE),
                                                                              jnp.asarray([0, 3, 1, -2]))
    _close(ignored, sk.cross_entropy(X_FINITE, [0, 3, 1, -2], ignore_index=-2))


def test_concrete_labels_are_still_checked():
    with pytest.raises(ValueError, match="out of range"):
        sk.cross_entropy(jnp.asarray(X_FINITE), jnp.asarray([0, 7, 1, 2]))
    # Concrete labels closed over by a traced function are checked while tracing.
    with pytest.raises(ValueError, match="out of range"):
        jax.jit(lambda v: sk.cross_entropy(v, np.array([0, 7, 1, 2])))(jnp.asarray(X_FINITE))


def test_traced_label_smoothing_and_weight():
    x, t = jnp.asarray(X_FINITE), jnp.asarray(LABELS)
    got = jax.jit(lambda s, w: sk.cross_entropy(x, t, label_smoothing=s, weight=w))(0.2, jnp.asarray(WEIGHT))
    _close(got, sk.cross_entropy(X_FINITE, LABELS, label_smoothing=0.2, weight=WEIGHT))

    def reference(s: Any, w: Any) -> Any:  # PyTorch's formula in plain JAX
        logp = jax.nn.log_softmax(x)
        q = (1 - s) * jax.nn.one_hot(t, 5) + s / 5
        return -jnp.sum(w * q * logp) / jnp.sum(w[t])

    for argnum in (0, 1):
        got = jax.grad(lambda s, w: sk.cross_entropy(x, t, label_smoothing=s, weight=w), argnum)(
            0.2, jnp.asarray(WEIGHT))
        _close(got, jax.grad(reference, argnum)(0.2, jnp.asarray(WEIGHT)))
    for bad in (-0.1, 1.5):
        assert np.isnan(float(jax.jit(lambda s: sk.cross_entropy(x, t, label_smoothing=s))(bad)))


def test_one_hot_under_jit():
    got = jax.jit(lambda t: sk.one_hot(t, 4))(jnp.asarray([0, 3, 9, -1]))
    _close(got, [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])  # out of range: a zero row
    with pytest.raises(TypeError, match="num_classes must be given"):
        jax.jit(lambda t: sk.one_hot(t))(jnp.asarray([0, 1]))


def test_names_are_refused_under_tracing():
    with pytest.raises(TypeError, match="outside it"):
        jax.jit(lambda v: sk.predict(v, labels=list("abcde")))(jnp.asarray(X_FINITE))
    with pytest.raises(TypeError, match="outside it"):
        jax.jit(lambda v: sk.top_k(v, 2, labels=list("abcde")))(jnp.asarray(X_FINITE))


# --- eager calls: one compiled function per configuration --------------------------------------


@pytest.mark.parametrize("function", [sk.softmax, sk.log_softmax])
@pytest.mark.parametrize("options", [{}, {"axis": 0}, {"axis": None, "temperature": 0.5},
                                     {"where": MASK}, {"dtype": "float16"}], ids=str)
def test_eager_compiled_call_matches_the_generic_engine(function: Any, options: dict[str, Any]):
    kwargs = {k: (jnp.asarray(v) if k == "where" else v) for k, v in options.items()}
    got = function(jnp.asarray(X), **kwargs)
    want = function(jnp.asarray(X), engine="generic", **kwargs)  # a named engine: the uncompiled path
    assert isinstance(got, jax.Array) and got.dtype == want.dtype
    _close(got, want)


def test_eager_temperature_sweep_compiles_once():
    from softmaxkit._jax import compiled

    x = jnp.asarray(RNG.standard_normal((3, 7)).astype(np.float32))
    sk.softmax(x, temperature=1.5)
    before = compiled.cache_info()
    for t in (0.5, 2.0, 3.0):
        _close(sk.softmax(x, temperature=t), sk.softmax(np.asarray(x), temperature=t))
    after = compiled.cache_info()
    assert after.misses == before.misses and after.hits == before.hits + 3


def test_eager_compiled_call_raises_the_usual_errors():
    x = jnp.asarray(X_FINITE)
    with pytest.raises(ValueError, match="out of bounds"):
        sk.softmax(x, axis=2)
    with pytest.raises(ValueError, match="temperature"):
        sk.softmax(x, temperature=0.0)
    with pytest.raises(ValueError, match="does not broadcast"):
        sk.softmax(x, where=jnp.ones((3, 5), dtype=bool))


@pytest.mark.parametrize("name", ["softmax_vjp", "logsumexp-b", "softmax-where"])
def test_traced_second_argument_with_a_numpy_first(name: str):
    # Under a transformation NumPy inputs are constants: the traced argument decides.
    cases = {
        "softmax_vjp": (lambda g: sk.softmax_vjp(PROBS, g), G),
        "logsumexp-b": (lambda b: sk.logsumexp(X_FINITE, axis=1, b=b), B),
        "softmax-where": (lambda m: sk.softmax(X_FINITE, where=m), MASK),
    }
    function, other = cases[name]
    want = function(other)
    got = jax.jit(function)(jnp.asarray(other))
    assert isinstance(got, jax.Array)
    _close(got, want)


@pytest.mark.parametrize("name", ["sigmoid", "log_sigmoid", "softplus"])
def test_two_class_gradients_at_zero_and_the_extremes(name: str):
    # Regression: max(x, 0) + log1p(exp(-|x|)) has kinks at 0 whose derivatives do not cancel
    # under automatic differentiation: softplus'(0) came out 0 and log_sigmoid'(0) 1, not 1/2.
    x = np.array([-np.inf, -800.0, -1.0, 0.0, 1.0, 800.0, np.inf], dtype=np.float32)
    s = np.asarray(sk.sigmoid(x.astype(np.float64)))  # exact at these points
    want = {"sigmoid": s * (1 - s), "log_sigmoid": 1 - s, "softplus": s}[name]
    got = jax.vmap(jax.grad(getattr(sk, name)))(jnp.asarray(x))
    _close(got, want)


def test_logsumexp_gradient_is_finite_next_to_plus_inf():
    # Regression: exp(inf) of the +inf maximum was left in an unselected branch: 0 * inf = NaN
    # reached the gradient even where the +inf result itself was masked out.
    x = jnp.asarray([[np.inf, 0.0, np.inf], [1.0, 2.0, 3.0]])
    grad = jax.grad(lambda v: jnp.sum(jnp.where(jnp.arange(2) == 1, sk.logsumexp(v, axis=1), 0.0)))(x)
    _close(grad, [[0, 0, 0], sk.softmax([1.0, 2.0, 3.0])])
