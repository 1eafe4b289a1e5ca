"""sk.sample draws from exactly the filtered softmax (SPEC §6), reproducibly, on every engine.

The frequency tests are chi-square tests at significance 1e-4 on 20,000 draws with fixed
seeds: deterministic (they cannot flake), and a 1 % error in one probability fails them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

import softmaxkit as sk
from backends import Backend, same_library, to_numpy
from sampling_reference import case_params, distribution, rng_for, skip_missing

DRAWS = 20_000
ALPHA = 1e-4

LOGITS = np.array([1.2, -0.3, 2.5, 2.5, 0.7, -np.inf, 1.9, 0.1])
"""Ties at the top (2.5, 2.5), a -inf entry, and spread enough that each filter bites."""

FILTERS = [
    dict(zip(("temperature", "top_k", "top_p", "min_p"), combo, strict=True))
    for combo in itertools.product((1.0, 0.7), (None, 3), (None, 0.8), (None, 0.1))
]


def _chi_square_passes(draws: np.ndarray, expected: np.ndarray) -> None:
    counts = np.bincount(draws.ravel(), minlength=expected.size)
    assert counts[expected == 0].sum() == 0, f"drew excluded classes: {counts}, expected {expected}"
    support = expected > 0
    if support.sum() < 2:
        return
    result = stats.chisquare(counts[support], draws.size * expected[support])
    assert result.pvalue > ALPHA, (counts, draws.size * expected)


def _rows(backend: Backend, row: np.ndarray, copies: int) -> object:
    return backend.asarray(np.tile(row.astype(np.float32 if backend is Backend.JAX else np.float64),
                                   (copies, 1)))


@case_params()
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_frequencies_match_the_filtered_softmax(backend, sampler, filters):
    skip_missing(backend)
    x = _rows(backend, LOGITS, DRAWS)
    draws = sk.sample(x, rng=rng_for(backend, 7), engine=sampler, **filters)
    assert same_library(draws, backend) and tuple(draws.shape) == (DRAWS, 1)
    _chi_square_passes(to_numpy(draws), distribution(LOGITS, **filters))


@case_params()
def test_masks_give_the_distribution_sample_draws_from(backend, sampler):
    skip_missing(backend)
    f = {"temperature": 0.7, "top_k": 5, "top_p": 0.8, "min_p": 0.1}
    x = _rows(backend, LOGITS, DRAWS)
    mask = sk.top_k_mask(x, f["top_k"], engine=sampler)
    mask = sk.top_p_mask(x, f["top_p"], temperature=f["temperature"], where=mask, engine=sampler)
    mask = sk.min_p_mask(x, f["min_p"], temperature=f["temperature"], where=mask, engine=sampler)
    expected = to_numpy(sk.softmax(x, where=mask, temperature=f["temperature"]))[0].astype(np.float64)
    np.testing.assert_allclose(expected, distribution(LOGITS, **f), rtol=1e-5, atol=1e-12)
    draws = sk.sample(x, rng=rng_for(backend, 11), engine=sampler, **f)
    _chi_square_passes(to_numpy(draws), expected / expected.sum())


@case_params()
def test_without_replacement_draws_the_sequential_pairs(backend, sampler):
    """Two draws without replacement: P(i, j) = p_i p_j / (1 - p_i), i != j."""
    skip_missing(backend)
    p = distribution(LOGITS, top_k=4)
    x = _rows(backend, LOGITS, DRAWS)
    draws = to_numpy(sk.sample(x, top_k=4, num_samples=2, replacement=False,
                               rng=rng_for(backend, 3), engine=sampler))
    assert np.all(draws[:, 0] != draws[:, 1])
    n = LOGITS.size
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs = np.where(np.eye(n, dtype=bool), 0.0, p[:, None] * p[None, :] / (1 - p[:, None]))
    _chi_square_passes(draws[:, 0] * n + draws[:, 1], np.nan_to_num(pairs).ravel())


@case_params()
def test_long_rows_draw_across_blocks(backend, sampler):
    """A row longer than the kernels' blocks, its mass spread over entries far apart."""
    skip_missing(backend)
    row = np.full(3000, -np.inf)
    picked = [5, 1023, 1024, 1500, 2999]
    row[picked] = [0.5, 1.0, 1.0, -0.5, 2.0]
    x = _rows(backend, row, DRAWS // 20)
    for filters in ({}, {"top_p": 0.7}, {"min_p": 0.3}):
        draws = sk.sample(x, rng=rng_for(backend, 5), engine=sampler, **filters)
        _chi_square_passes(to_numpy(draws), distribution(row, **filters))
    draws = to_numpy(sk.sample(x, num_samples=5, replacement=False, rng=rng_for(backend, 1),
                               engine=sampler))
    assert np.all(np.sort(draws, axis=1) == picked)


@case_params()
def test_plus_inf_entries_share_the_mass(backend, sampler):
    skip_missing(backend)
    row = np.array([3.0, np.inf, 0.0, np.inf, 100.0])
    draws = to_numpy(sk.sample(_rows(backend, row, DRAWS), rng=rng_for(backend, 2), engine=sampler))
    _chi_square_passes(draws, np.array([0, 0.5, 0, 0.5, 0]))


@case_params()
def test_temperature_zero_is_the_argmax_and_tiny_temperatures_agree(backend, sampler):
    skip_missing(backend)
    row = np.array([0.3, 2.0, 1.999, -5.0])
    x = _rows(backend, row, 50)
    for t in (0.0, 1e-30):
        draws = to_numpy(sk.sample(x, temperature=t, num_samples=3, rng=rng_for(backend, 0), engine=sampler))
        assert np.all(draws == 1)
    # Tied maxima share the mass in the limit T -> 0.
    tied = to_numpy(sk.sample(_rows(backend, np.array([1.0, 4.0, 4.0]), DRAWS), temperature=0.0,
                              rng=rng_for(backend, 4), engine=sampler))
    _chi_square_passes(tied, np.array([0.0, 0.5, 0.5]))


@case_params()
def test_top_p_one_and_large_top_k_keep_every_class(backend, sampler):
    skip_missing(backend)
    row = np.array([0.0, -12.0, 1.0, -3.0])  # -12: probability 4e-6, still kept
    x = _rows(backend, row, 4)
    assert np.all(to_numpy(sk.top_p_mask(x, 1.0, engine=sampler)))
    assert np.all(to_numpy(sk.top_k_mask(x, 4, engine=sampler)))
    assert np.all(to_numpy(sk.top_k_mask(x, 100, engine=sampler)))
    draws = to_numpy(sk.sample(x, top_p=1.0, top_k=10, num_samples=4, replacement=False,
                               rng=rng_for(backend, 0), engine=sampler))
    assert np.all(np.sort(draws, axis=1) == [0, 1, 2, 3])


@case_params()
def test_fixed_seed_reproduces_the_draws(backend, sampler):
    skip_missing(backend)
    x = backend.asarray(np.random.default_rng(0).normal(size=(40, 300)).astype(np.float32))
    kwargs = {"top_k": 30, "top_p": 0.9, "temperature": 0.8, "num_samples": 3, "engine": sampler}
    first = to_numpy(sk.sample(x, rng=rng_for(backend, 9), **kwargs))
    again = to_numpy(sk.sample(x, rng=rng_for(backend, 9), **kwargs))
    other = to_numpy(sk.sample(x, rng=rng_for(backend, 10), **kwargs))
    np.testing.assert_array_equal(first, again)
    assert np.any(first != other)


def test_thread_count_does_not_change_the_draws():
    numba = pytest.importorskip("numba")
    x = np.random.default_rng(1).normal(size=(64, 5000)).astype(np.float32)  # over the parallel size
    results = []
    threads = numba.get_num_threads()
    for t in sorted({1, threads}):
        numba.set_num_threads(t)
        try:
            for filters in ({}, {"top_k": 40, "top_p": 0.9}, {"top_p": 0.5, "min_p": 0.01}):
                results.append((filters, sk.sample(x, rng=3, num_samples=4, engine="numba", **filters)))
        finally:
            numba.set_num_threads(threads)
    for (f1, a), (f2, b) in itertools.combinations(results, 2):
        if f1 == f2:
            np.testing.assert_array_equal(a, b)


def test_engines_agree_on_the_same_uniforms():
    """Both engines map a uniform to the same class (index-order inverse CDF)."""
    pytest.importorskip("numba")
    x = np.random.default_rng(2).normal(size=(30, 2000)) * 2
    for filters in ({}, {"top_k": 20}, {"top_p": 0.6, "temperature": 0.5}, {"min_p": 0.05}):
        a = sk.sample(x, rng=5, num_samples=4, engine="numba", **filters)
        b = sk.sample(x, rng=5, num_samples=4, engine="generic", **filters)
        assert np.mean(a == b) > 0.99  # only a uniform within rounding of a CDF step may differ


def test_per_row_parameters_equal_separate_calls():
    x = np.random.default_rng(3).normal(size=(4, 50))
    params = {"temperature": [0.5, 1.0, 2.0, 0.0], "top_k": [3, 50, 10, 1], "top_p": [0.5, 1.0, 0.9, 0.3],
              "min_p": [0.0, 0.2, 0.05, 0.5]}
    for sampler in ("numba", "generic"):
        k_masks = sk.top_k_mask(x, params["top_k"], engine=sampler)
        p_masks = sk.top_p_mask(x, params["top_p"], temperature=params["temperature"], engine=sampler)
        draws = sk.sample(x, rng=4, num_samples=6, engine=sampler, **params)
        for r in range(4):
            row = {k: v[r] for k, v in params.items()}
            np.testing.assert_array_equal(k_masks[r], sk.top_k_mask(x[r], row["top_k"], engine=sampler))
            np.testing.assert_array_equal(
                p_masks[r], sk.top_p_mask(x[r], row["top_p"], temperature=row["temperature"], engine=sampler))
            t = row["temperature"]
            mask = sk.top_k_mask(x[r], row["top_k"], engine=sampler)
            mask = sk.top_p_mask(x[r], row["top_p"], temperature=t, where=mask, engine=sampler)
            mask = sk.min_p_mask(x[r], row["min_p"], temperature=t, where=mask, engine=sampler)
            assert np.all(mask[draws[r]])


def test_result_shape_follows_axis():
    x = np.random.default_rng(0).normal(size=(3, 7, 5))
    assert sk.sample(x, axis=1, num_samples=4, rng=0).shape == (3, 4, 5)
    assert sk.sample(x[0, :, 0], num_samples=2, rng=0).shape == (2,)
    assert sk.sample(x, rng=0).dtype == np.int64
    moved = sk.sample(np.moveaxis(x, 1, 2), axis=2, num_samples=4, rng=0, top_k=3)
    direct = sk.sample(x, axis=1, num_samples=4, rng=0, top_k=3)
    np.testing.assert_array_equal(moved, np.moveaxis(direct, 1, 2))


@pytest.mark.parametrize("sampler", ["numba", "generic"])
def test_where_excludes_classes(sampler):
    x = np.zeros((DRAWS, 4))
    where = np.array([True, False, True, False])
    draws = sk.sample(x, where=where, rng=1, engine=sampler)
    _chi_square_passes(draws, np.array([0.5, 0, 0.5, 0]))


@pytest.mark.parametrize("sampler", ["numba", "generic"])
def test_rows_without_classes_or_with_nan_are_named(sampler):
    x = np.zeros((4, 3))
    x[1] = -np.inf
    with pytest.raises(ValueError, match=r"rows 1 have no class to draw from"):
        sk.sample(x, rng=0, engine=sampler)
    where = np.ones((4, 3), dtype=bool)
    where[3] = False
    with pytest.raises(ValueError, match=r"rows 3 have no class"):
        sk.sample(np.zeros((4, 3)), where=where, rng=0, engine=sampler)
    x = np.zeros((2, 2, 3))
    x[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"rows \(1, 0\) hold NaN"):
        sk.sample(x, rng=0, engine=sampler)
    with pytest.raises(ValueError, match="hold NaN"):
        sk.top_p_mask(x, 0.5, engine=sampler)
    assert not sk.top_k_mask(np.full((2, 3), -np.inf), 2, engine=sampler).any()  # masks: all False


@pytest.mark.parametrize("sampler", ["numba", "generic"])
def test_too_many_draws_without_replacement(sampler):
    x = np.array([[0.0, 1.0, 2.0, -np.inf], [0.0, 1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"rows 0 have fewer than num_samples=4 classes"):
        sk.sample(x, num_samples=4, replacement=False, rng=0, engine=sampler)
    with pytest.raises(ValueError, match="fewer than num_samples=3"):
        sk.sample(x, top_k=2, num_samples=3, replacement=False, rng=0, engine=sampler)
    assert sk.sample(x, num_samples=4, replacement=True, rng=0, engine=sampler).shape == (2, 4)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"top_k": 0}, ValueError, "top_k must be >= 1"),
    ({"top_k": 2.5}, TypeError, "top_k must be ints"),
    ({"top_p": 0.0}, ValueError, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, ValueError, r"top_p must be in \(0, 1\]"),
    ({"min_p": -0.1}, ValueError, r"min_p must be in \[0, 1\]"),
    ({"temperature": -1.0}, ValueError, "temperature must be finite and >= 0"),
    ({"temperature": np.inf}, ValueError, "temperature must be finite"),
    ({"top_p": [0.5, 0.5, 0.5]}, ValueError, "does not broadcast"),
    ({"num_samples": 0}, ValueError, "num_samples must be an int >= 1"),
    ({"rng": "seed"}, TypeError, "rng must be"),
    ({"engine": "tpu"}, ValueError, "sampling engines: cuda, numba, generic"),
    ({"engine": "cupy"}, ValueError, r"'cuda' cannot run on ndarray .*engines that can: numba, generic"),
    ({"where": np.ones(3, dtype=bool)}, ValueError, "does not broadcast"),
])
def test_bad_arguments_raise(kwargs, error, message):
    with pytest.raises(error, match=message):
        sk.sample(np.zeros((2, 4)), **{"rng": 0, **kwargs})


def test_numba_engine_refuses_jax():
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(ValueError, match="engines that can: generic"):
        sk.sample(jnp.zeros((2, 3)), engine="numba")


def test_float16_and_integer_logits():
    x = np.array([[0, 3, 3, 1]], dtype=np.int32)
    assert set(sk.sample(x, top_k=2, num_samples=50, rng=0).ravel()) == {1, 2}
    h = np.array([[0.0, 3.0, 3.0, 1.0]], dtype=np.float16)
    assert set(sk.sample(h, top_k=2, num_samples=50, rng=0).ravel()) == {1, 2}


def test_torch_global_generator_is_used_without_rng():
    torch = pytest.importorskip("torch")
    x = torch.randn(8, 100)
    torch.manual_seed(123)
    a = sk.sample(x, num_samples=3)
    torch.manual_seed(123)
    b = sk.sample(x, num_samples=3)
    assert torch.equal(a, b) and a.dtype == torch.int64


def test_empty_inputs():
    assert sk.sample(np.zeros((0, 5)), rng=0).shape == (0, 1)
    with pytest.raises(ValueError, match="no class to draw from"):
        sk.sample(np.zeros((2, 0)), rng=0)


@pytest.mark.parametrize("sampler", ["generic", "numba"])
@pytest.mark.parametrize(("dtype", "temperature"), [("float16", 1e-5), ("float32", 1e-39)], ids=str)
def test_a_temperature_whose_reciprocal_overflows_the_dtype_is_the_argmax(dtype, temperature, sampler):
    """Regression: the generic engine applied 1/T in the logits' dtype, where it overflowed
    (float16 from T = 1.5e-5): 0 * inf at the maximum made every weight NaN, and ``sample``
    returned -1 and the masks came back empty."""
    x = np.tile(np.array([1.0, 3.0, 2.0], dtype=dtype), (4, 1))
    draws = sk.sample(x, temperature=temperature, num_samples=3, rng=0, engine=sampler)
    np.testing.assert_array_equal(draws, np.ones((4, 3)))
    for mask in (sk.top_p_mask(x, 0.9, temperature=temperature, engine=sampler),
                 sk.min_p_mask(x, 0.5, temperature=temperature, engine=sampler)):
        np.testing.assert_array_equal(mask, np.tile([False, True, False], (4, 1)))


@pytest.mark.parametrize("sampler", ["generic", "numba"])
@pytest.mark.parametrize("replacement", [True, False], ids=["with", "without"])
def test_no_rows_and_no_classes_draw_nothing(sampler, replacement):
    """Regression: the generic engine raised NumPy's "zero-size array to reduction operation"
    for a (0, 0) array; with no rows there is nothing to draw, as for (0, 3)."""
    for shape in ((0, 0), (0, 3)):
        draws = sk.sample(np.zeros(shape), num_samples=2, replacement=replacement, rng=0, engine=sampler)
        assert draws.shape == (0, 2) and draws.dtype == np.int64


def test_replacement_is_a_boolean():
    """Regression: replacement="no" was taken as true (any object was passed through bool())."""
    with pytest.raises(TypeError, match="replacement must be True or False"):
        sk.sample(np.zeros(3), num_samples=2, replacement="no", rng=0)
    assert sorted(sk.sample(np.zeros(3), num_samples=3, replacement=np.bool_(False), rng=0)) == [0, 1, 2]


def test_jax_transformations_get_a_clear_error():
    """Regression: under jax.jit the sampling functions failed deep inside with JAX's
    TracerArrayConversionError (they check rows and read parameters on the host)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    x = jnp.zeros((2, 3))
    with pytest.raises(TypeError, match="cannot run inside a JAX transformation"):
        jax.jit(lambda x: sk.sample(x, rng=jax.random.key(0)))(x)
    with pytest.raises(TypeError, match="cannot run inside a JAX transformation"):
        jax.jit(lambda x: sk.top_k_mask(x, 2))(x)
    with pytest.raises(TypeError, match="temperature cannot be a traced JAX value"):
        jax.jit(lambda t: sk.top_p_mask(np.zeros((2, 3)), 0.5, temperature=t))(1.0)
    assert sk.sample(x, rng=jax.random.key(0)).shape == (2, 1)  # eager calls still work


def test_array_api_strict_with_no_rows_and_no_classes():
    """Regression: array-api-strict refused the slice of the first ranked entry of a (0, 0)
    array (out-of-bounds stops are not in the standard)."""
    xps = pytest.importorskip("array_api_strict")
    assert sk.sample(xps.zeros((0, 0)), num_samples=2, rng=0).shape == (0, 2)
    assert sk.top_p_mask(xps.zeros((0, 0)), 0.5).shape == (0, 0)
