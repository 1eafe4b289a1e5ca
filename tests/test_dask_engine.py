"""The Dask engine: every SPEC §2 case across chunk boundaries, laziness, a real cluster, files.

The generic engine on NumPy defines the right answers; here the same inputs are split into
chunks in every way that matters (one element per chunk along the softmax axis, masks chunked
unlike ``x``, tuple axes, reduction trees deeper than one level).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import pytest

import softmaxkit as sk
from edge_cases import EDGE_CASES, EdgeCase
from tolerance import assert_spec_close

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")



def _refuse_to_compute(dsk, keys, **kwargs):
    raise AssertionError("Dask computed while the graph was being built")


@contextlib.contextmanager
def no_compute() -> Iterator[None]:
    """Any Dask computation inside fails the test (flox's ``raise_if_dask_computes``)."""
    with dask.config.set(scheduler=_refuse_to_compute):
        yield


def close(actual, expected, dtype: str, log: bool = False, spread=None) -> None:
    """Same shape and dtype; values within SPEC §2's bound of the reference engine's, twice over
    (both are approximations: a sum merged across chunks rounds in another order)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert_spec_close(actual, expected, dtype, log=log, factor=2, spread=spread)


def spread(x: np.ndarray, axis, temperature: float = 1.0) -> np.ndarray:
    """``|x - max| / T`` over the finite entries: the conditioning in SPEC §2's bound."""
    x64 = np.where(np.isfinite(x), x.astype(np.float64), np.nan)
    top = np.max(np.where(np.isnan(x64), -np.inf, x64), axis=axis, keepdims=True)
    with np.errstate(invalid="ignore"):  # rows with nothing finite: no bound needed there
        return np.abs(x64 - top) / temperature


def computed(x):
    """``x`` computed with NumPy's floating-point warnings as errors (pytest's -W error)."""
    with np.errstate(all="raise"):
        return x.compute()


# --- SPEC §2, one element per chunk along the softmax axis --------------------------------------

def _edge_input(case: EdgeCase, dtype: str):
    n = len(case.row)
    with np.errstate(over="ignore"):  # -6e38 rounds to -inf in float32, as the engines must
        x = np.array([case.row, np.arange(n)], dtype=np.float64).astype(dtype)
    mask = None if case.where is None else np.array([case.where, [True] * n])
    return x, mask


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", EDGE_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("function", ["softmax", "log_softmax", "logsumexp"])
def test_edge_cases_across_chunks(case: EdgeCase, dtype: str, function: str):
    if dtype == "float16" and case.name.startswith("huge"):
        pytest.skip("not representable in float16")
    x, mask = _edge_input(case, dtype)
    f = getattr(sk, function)
    kwargs = {"axis": 1} if function == "logsumexp" else {}
    expected = f(x, where=mask, engine="generic", **kwargs)
    for chunks in [(1, 1), (2, 2), (1, max(1, x.shape[1]))]:
        dx = da.from_array(x, chunks=chunks)
        dmask = None if mask is None else da.from_array(mask, chunks=(2, 3))  # unlike x's chunks
        with no_compute():
            result = f(dx, where=dmask, **kwargs)
        assert isinstance(result, da.Array)
        close(computed(result), expected, dtype, log=function != "softmax")
        # The same rows along the first axis.
        dxt = da.from_array(np.ascontiguousarray(x.T), chunks=chunks[::-1])
        dmt = None if mask is None else da.from_array(np.ascontiguousarray(mask.T), chunks=(1, 2))
        transposed = computed(f(dxt, axis=0, where=dmt))
        close(transposed if function == "logsumexp" else transposed.T, expected, dtype,
              log=function != "softmax")


def test_zero_dimensional_and_empty():
    for x in [np.float64(3.5), np.zeros((3, 0)), np.zeros((0, 4), np.float32)]:
        dx = da.from_array(np.asarray(x))
        for f in (sk.softmax, sk.log_softmax):
            close(computed(f(dx)), f(np.asarray(x), engine="generic"), str(np.asarray(x).dtype))
        close(computed(sk.logsumexp(dx, axis=-1)), np.asarray(sk.logsumexp(np.asarray(x), axis=-1)),
              str(np.asarray(x).dtype))


def test_temperature_and_pos_inf_rows_split_in_many_chunks():
    # 16 chunks along the axis: Dask's tree reduction takes two merge levels (split_every=4).
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 64)) * 30
    x[0, [3, 40, 63]] = np.inf  # +inf in three different chunks: mass 1/3 each
    x[1, :] = -np.inf
    x[1, 50] = 2.0              # the only finite entry, in the last chunks
    x[2, 17] = np.nan
    x[3, ::2] = -np.inf
    dx = da.from_array(x, chunks=(2, 4))
    for t in (0.25, 1.0, 7.0):
        for f in (sk.softmax, sk.log_softmax):
            close(computed(f(dx, temperature=t)), f(x, temperature=t, engine="generic"), "float64",
                  log=f is sk.log_softmax)
    assert np.array_equal(computed(sk.softmax(dx))[0, [3, 40, 63]], [1 / 3] * 3)
    # The reduction tree depends on the chunks only: bitwise the same under any scheduler.
    with np.errstate(all="raise"):
        by_threads = sk.log_softmax(dx[3:], temperature=0.5).compute(scheduler="threads")
        in_order = sk.log_softmax(dx[3:], temperature=0.5).compute(scheduler="sync")
    np.testing.assert_array_equal(by_threads, in_order)


@pytest.fixture(params=["generic", "numba"])
def local_engine(request, monkeypatch) -> str:
    """The engine of the NumPy blocks: numba for blocks of any size, or generic for all."""
    from softmaxkit import _engines

    if request.param == "numba":
        pytest.importorskip("numba")
    monkeypatch.setattr(_engines, "NUMBA_MIN_SIZE", 0 if request.param == "numba" else 2**62)
    return request.param


def _special_rows(dtype: str):
    """Rows of 24 in chunks of 6, the SPEC §2 cases on and across the chunk boundaries."""
    x = np.random.default_rng(13).normal(size=(9, 24)) * 4
    x[0, [5, 6]] = np.inf    # two +inf, either side of a boundary: 1/2 each
    x[1, :] = -np.inf        # nothing included: every chunk's pair is (-inf, 0)
    x[2, 12:] = -np.inf      # two chunks all -inf beside finite ones
    x[3, 23] = np.nan        # NaN in the last chunk only
    x[4, 17] = np.inf        # one +inf; the chunks without it give 0 (log: -inf)
    x[5, :18] = -np.inf      # the only finite entries in the last chunk
    x[6, 0] = 60.0           # a max far above the other chunks' maxima
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("function", ["softmax", "log_softmax"])
def test_split_rows_give_generic_results_on_each_local_engine(local_engine, function, dtype):
    x = _special_rows(dtype)
    f = getattr(sk, function)
    log = function == "log_softmax"
    for temperature in (1.0, 0.3, 4.0):
        with no_compute():
            result = f(da.from_array(x, chunks=(4, 6)), temperature=temperature)
        close(computed(result), f(x, temperature=temperature, engine="generic"), dtype, log=log,
              spread=spread(x, -1, temperature))
    # The same rows along the first axis, and a tuple of axes split in both.
    xt = np.ascontiguousarray(x.T)
    close(computed(f(da.from_array(xt, chunks=(6, 4)), axis=0, temperature=0.3)),
          f(xt, axis=0, temperature=0.3, engine="generic"), dtype, log=log, spread=spread(xt, 0, 0.3))
    cube = x.reshape(9, 4, 6).transpose(1, 0, 2)
    close(computed(f(da.from_array(cube, chunks=(2, 5, 3)), axis=(0, 2), temperature=0.3)),
          f(cube, axis=(0, 2), temperature=0.3, engine="generic"), dtype, log=log,
          spread=spread(cube, (0, 2), 0.3))


def test_numpy_blocks_of_split_rows_run_on_numba(monkeypatch):
    pytest.importorskip("numba")
    import softmaxkit.numba as numba_engine

    calls = []

    def spy(name):
        original = getattr(numba_engine, name)

        def counted(block, *args, **kwargs):
            calls.append((name, block.shape))
            return original(block, *args, **kwargs)

        return counted

    for name in ("softmax_pairs", "softmax_from_pairs"):
        monkeypatch.setattr(numba_engine, name, spy(name))
    x = np.random.default_rng(14).normal(size=(64, 512)).astype(np.float32)
    with no_compute():
        result = sk.log_softmax(da.from_array(x, chunks=(64, 128)), temperature=2.0)  # blocks of 8,192
    assert calls == []
    close(computed(result), sk.log_softmax(x, temperature=2.0, engine="generic"), "float32", log=True)
    assert sorted(calls) == [("softmax_from_pairs", (64, 128))] * 4 + [("softmax_pairs", (64, 128))] * 4
    calls.clear()
    computed(sk.softmax(da.from_array(x[:8, :64], chunks=(8, 16))))  # tiny blocks: the generic engine
    assert calls == []


@pytest.mark.parametrize("axes", [(0, 2), (1,), (0, 1, 2), ()])
def test_tuple_axes_and_masks_chunked_unlike_x(axes):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 5, 8)).astype(np.float32) * 10
    x[1, 2, :] = -np.inf
    mask = rng.random((6, 1, 8)) > 0.4  # broadcast along axis 1
    dx = da.from_array(x, chunks=(4, 2, 3))
    dmask = da.from_array(mask, chunks=(5, 1, 2))
    for f in (sk.softmax, sk.log_softmax):
        close(computed(f(dx, axis=axes, where=dmask)), f(x, axis=axes, where=mask, engine="generic"),
              "float32", log=f is sk.log_softmax)
    b = rng.normal(size=(6, 5, 8)).astype(np.float32)
    for keepdims in (False, True):
        value, sign = sk.logsumexp(dx, axis=axes, b=da.from_array(b, chunks=(3, 5, 8)),
                                   where=dmask, keepdims=keepdims, return_sign=True)
        v_ref, s_ref = sk.logsumexp(x, axis=axes, b=b, where=mask, keepdims=keepdims,
                                    return_sign=True, engine="generic")
        close(computed(value), np.asarray(v_ref), "float32", log=True)
        close(computed(sign), np.asarray(s_ref), "float32")


def test_logsumexp_weights_and_cancellation_across_chunks():
    x = np.array([[0.0, 0.0, 1.0, 1.0], [5.0, -np.inf, 5.0, 1.0], [np.inf, 1.0, np.inf, 2.0]])
    b = np.array([[1.0, -1.0, 1.0, -1.0], [1.0, 3.0, -0.5, 0.0], [1.0, 5.0, -1.0, 1.0]])
    dx, db = da.from_array(x, chunks=(3, 1)), da.from_array(b, chunks=(1, 2))
    special = pytest.importorskip("scipy.special")
    value, sign = sk.logsumexp(dx, axis=1, b=db, return_sign=True)
    expected = [special.logsumexp(row, b=w, return_sign=True) for row, w in zip(x, b, strict=True)]
    close(computed(value), np.array([v for v, _ in expected]), "float64")  # -inf, finite, NaN
    close(computed(sign), np.array([s for _, s in expected]), "float64")  # 0, +1, NaN (inf - inf)
    close(computed(sk.logsumexp(dx, axis=1, b=db)), np.array([-np.inf, expected[1][0], np.nan]),
          "float64")


def test_complex_logsumexp_is_lazy_and_matches_generic():
    x = np.array([[1 + 2j, 3 - 1j, 0.5j], [2.0, -1j, 4 + 4j]])
    dx = da.from_array(x, chunks=(1, 2))
    with no_compute():
        value, sign = sk.logsumexp(dx, axis=1, return_sign=True)
    v_ref, s_ref = sk.logsumexp(x, axis=1, return_sign=True, engine="generic")
    np.testing.assert_allclose(computed(value), v_ref, rtol=1e-14)
    np.testing.assert_allclose(computed(sign), s_ref, rtol=1e-14)


def test_whole_rows_are_bitwise_the_local_engines():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 33)) * 50
    dx = da.from_array(x, chunks=(7, 33))
    np.testing.assert_array_equal(computed(sk.softmax(dx)), sk.softmax(x))
    np.testing.assert_array_equal(computed(sk.log_softmax(dx, temperature=3.0)),
                                  sk.log_softmax(x, temperature=3.0))
    np.testing.assert_array_equal(computed(sk.logsumexp(dx, axis=1)), sk.logsumexp(x, axis=1))


def test_dtypes_and_out():
    x16 = np.linspace(-8, 8, 24, dtype=np.float16).reshape(2, 12)
    result = computed(sk.softmax(da.from_array(x16, chunks=(1, 5))))
    assert result.dtype == np.float16
    close(result, sk.softmax(x16, engine="generic"), "float16")
    ints = np.arange(12).reshape(3, 4)
    close(computed(sk.log_softmax(da.from_array(ints, chunks=(2, 2)))), sk.log_softmax(ints), "float64",
          log=True)
    close(computed(sk.softmax(da.from_array(x16, chunks=(1, 5)), dtype="float32")),
          sk.softmax(x16, dtype="float32", engine="generic"), "float32")
    dx = da.from_array(ints.astype(np.float64), chunks=(2, 3))
    out = da.zeros((3, 4), chunks=(3, 2))
    assert sk.softmax(dx, out=out) is out
    close(computed(out), sk.softmax(ints.astype(np.float64)), "float64")


def test_dask_engine_is_chosen_and_results_stay_lazy():
    from softmaxkit._engines import choose_engine

    dx = da.ones((4, 6), chunks=(2, 3))
    assert choose_engine("softmax", dx).__name__ == "softmaxkit.dask"
    assert choose_engine("softmax", np.ones(3)).__name__ != "softmaxkit.dask"
    with pytest.raises(ValueError, match="engine 'dask' cannot run softmax on ndarray"):
        sk.softmax(np.ones(3), engine="dask")
    labels = da.from_array(np.array([0, 5, 2, 1]), chunks=2)
    with no_compute():
        graphs = [
            sk.softmax(dx), sk.log_softmax(dx, where=dx > 0, temperature=2.0), sk.softmax(dx, axis=0),
            sk.logsumexp(dx), sk.logsumexp(dx, axis=1, b=dx, return_sign=True)[1],
            sk.cross_entropy(dx, labels, ignore_index=5, return_grad=True)[1],
            sk.cross_entropy(dx, dx / 6, reduction="sum"), sk.one_hot(labels, 6),
        ]
    assert all(isinstance(g, da.Array) for g in graphs)


@pytest.mark.parametrize("chunks", [(3, 8), (2, 3)], ids=["rows_whole", "rows_split"])
def test_jacobian_products(chunks):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(6, 8)) * 4
    x[2, 1:4] = -np.inf
    g = rng.normal(size=(6, 8))
    s, logp = sk.softmax(x), sk.log_softmax(x)
    dg = da.from_array(g, chunks=(2, 4))
    for function, first in [("softmax_vjp", s), ("softmax_jvp", s), ("log_softmax_vjp", logp)]:
        with no_compute():
            result = getattr(sk, function)(da.from_array(first, chunks=chunks), dg)
        expected = getattr(sk, function)(first, g, engine="generic")
        np.testing.assert_allclose(computed(result), expected, rtol=1e-12, atol=1e-15)
        assert np.all(computed(result)[2, 1:4] == 0)  # excluded entries get exactly 0


# --- cross-entropy ----------------------------------------------------------------------------

@pytest.mark.parametrize("chunks", [(3, 7), (4, 2)], ids=["classes_whole", "classes_split"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "options",
    [{}, {"weight": True}, {"ignore_index": 2}, {"label_smoothing": 0.2, "weight": True},
     {"probabilities": True}, {"probabilities": True, "label_smoothing": 0.1, "weight": True}],
    ids=["plain", "weight", "ignore", "smooth_weight", "probs", "probs_smooth_weight"],
)
def test_cross_entropy_matches_generic(chunks, reduction, options):
    rng = np.random.default_rng(4)
    logits = (rng.normal(size=(10, 7)) * 3).astype(np.float32)
    logits[3, 4] = -np.inf  # an excluded class: 0 * log(0) adds nothing
    options = dict(options)
    if options.pop("probabilities", False):
        target = sk.softmax(rng.normal(size=(10, 7)).astype(np.float32))
        target[3, 4] = 0
        dtarget = da.from_array(target, chunks=(5, 3))
    else:
        target = rng.integers(0, 7, size=10)
        target[3] = 2
        dtarget = da.from_array(target, chunks=4)
    if options.pop("weight", False):
        options["weight"] = rng.random(7).astype(np.float32) + 0.5
    dlogits = da.from_array(logits, chunks=chunks)
    with no_compute():
        loss, grad = sk.cross_entropy(dlogits, dtarget, reduction=reduction, return_grad=True, **options)
    expected_loss, expected_grad = sk.cross_entropy(logits, target, reduction=reduction, return_grad=True,
                                                    engine="generic", **options)
    close(computed(loss), np.asarray(expected_loss), "float32")
    close(computed(grad), expected_grad, "float32")
    alone = sk.cross_entropy(dlogits, dtarget, reduction=reduction, **options)
    close(computed(alone), np.asarray(expected_loss), "float32")


def test_cross_entropy_class_axis_first_and_nothing_counted():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 9))
    labels = np.full(9, -100)
    dlogits = da.from_array(logits, chunks=(2, 4))
    loss, grad = sk.cross_entropy(dlogits, da.from_array(labels, chunks=5), axis=0, ignore_index=-100,
                                  return_grad=True)
    expected_loss, expected_grad = sk.cross_entropy(logits, labels, axis=0, ignore_index=-100,
                                                    return_grad=True, engine="generic")
    assert np.isnan(computed(loss)) and np.isnan(expected_loss)  # mean of nothing: 0/0
    close(computed(grad), expected_grad, "float64")  # ... and a zero gradient


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_without_samples(reduction):
    for target in (np.zeros((0,), dtype=int), np.zeros((0, 5))):
        loss, grad = sk.cross_entropy(da.zeros((0, 5), chunks=(1, 2)), da.from_array(target),
                                      reduction=reduction, return_grad=True)
        expected_loss, expected_grad = sk.cross_entropy(np.zeros((0, 5)), target, reduction=reduction,
                                                        return_grad=True, engine="generic")
        close(computed(loss), np.asarray(expected_loss), "float64")  # mean: NaN, sum: 0
        close(computed(grad), expected_grad, "float64")


def test_label_range_errors():
    logits = da.from_array(np.zeros((4, 3)), chunks=(2, 2))
    # Labels already in memory are checked at once, as on every engine.
    with pytest.raises(ValueError, match="label 3 is out of range for 3 classes"):
        sk.cross_entropy(logits, np.array([0, 1, 3, 2]))
    # Dask labels are only known when computed: the graph builds, compute() raises.
    with no_compute():
        loss = sk.cross_entropy(logits, da.from_array(np.array([0, 1, 2, -1]), chunks=2))
    with pytest.raises(ValueError, match="label -1 is out of range for 3 classes"):
        loss.compute()
    fine = sk.cross_entropy(logits, da.from_array(np.array([0, 7, 2, 1]), chunks=2), ignore_index=7)
    assert np.isclose(computed(fine), np.log(3))
    with pytest.raises(ValueError, match="label 4 is out of range"):
        sk.one_hot(da.from_array(np.array([0, 4]), chunks=1), 3).compute()


# --- a real cluster ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
        yield cluster


def test_on_a_local_cluster_of_two_processes(cluster):
    from distributed import Client

    rng = np.random.default_rng(6)
    x = rng.normal(size=(64, 96)).astype(np.float32) * 20
    x[5, :] = -np.inf
    x[9, 50] = np.inf
    labels = rng.integers(0, 96, size=64)
    dx = da.from_array(x, chunks=(16, 24))
    with Client(cluster) as client:
        p, lp = client.compute([sk.softmax(dx), sk.log_softmax(dx, temperature=0.5)], sync=True)
        close(p, sk.softmax(x, engine="generic"), "float32")
        close(lp, sk.log_softmax(x, temperature=0.5, engine="generic"), "float32", log=True)
        loss = client.compute(sk.cross_entropy(dx, da.from_array(labels, chunks=16)), sync=True)
        close(loss, np.asarray(sk.cross_entropy(x, labels, engine="generic")), "float32")
        bad = sk.cross_entropy(dx, da.from_array(np.where(labels == labels[0], 96, labels), chunks=16))
        with pytest.raises(ValueError, match="label 96 is out of range"):
            client.compute(bad, sync=True)


# --- files, out of core ------------------------------------------------------------------------

def _reference(x, function="softmax", **kwargs):
    return np.asarray(getattr(sk, function)(x, engine="generic", **kwargs))


def _read(path):
    import zarr

    return np.load(path) if path.suffix == ".npy" else zarr.open_array(str(path), mode="r")[...]


def _save(path, x, chunks=None):
    if path.suffix == ".npy":
        np.save(path, x)
    else:
        da.from_array(x, chunks=chunks or x.shape).to_zarr(str(path))


@pytest.mark.parametrize(
    "formats", [(".npy", ".npy"), (".npy", ".zarr"), (".zarr", ".zarr"), (".zarr", ".npy")]
)
def test_apply_chunked_between_formats(tmp_path, formats):
    pytest.importorskip("zarr")
    from softmaxkit.dask import apply_chunked

    rng = np.random.default_rng(7)
    x = (rng.normal(size=(30, 40)) * 5).astype(np.float32)
    x[2, :] = -np.inf
    source, target = tmp_path / f"x{formats[0]}", tmp_path / f"p{formats[1]}"
    _save(source, x, chunks=(8, 10))  # zarr: the softmax axis in 4 chunks
    calls = []
    assert apply_chunked(source, target, chunks=None if formats[0] == ".zarr" else (8, 10),
                         progress=lambda done, total: calls.append((done, total))) == target
    close(_read(target), _reference(x), "float32")
    assert calls == [(i, 16) for i in range(1, 17)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, target.name])


def test_apply_chunked_log_temperature_and_logsumexp(tmp_path):
    pytest.importorskip("zarr")
    from softmaxkit.dask import apply_chunked

    x = np.random.default_rng(8).normal(size=(12, 6, 10))
    np.save(tmp_path / "x.npy", x)
    apply_chunked(tmp_path / "x.npy", tmp_path / "lp.zarr", axis=(0, 2), log=True, temperature=2.0,
                  chunks=(5, 6, 4))
    expected = _reference(x, "log_softmax", axis=(0, 2), temperature=2.0)
    close(_read(tmp_path / "lp.zarr"), expected, "float64", log=True)
    apply_chunked(tmp_path / "x.npy", tmp_path / "lse.npy", function="logsumexp", axis=1, chunks=(5, 3, 10))
    close(_read(tmp_path / "lse.npy"), _reference(x, "logsumexp", axis=1), "float64", log=True)
    with pytest.raises(ValueError, match="function must be one of"):
        apply_chunked(tmp_path / "x.npy", tmp_path / "y.npy", function="sigmoid")
    with pytest.raises(ValueError, match=r"expected a \.npy file or a zarr store"):
        apply_chunked(tmp_path / "x.npy", tmp_path / "y.csv")


def test_apply_chunked_irregular_blocks_into_zarr(tmp_path):
    pytest.importorskip("zarr")
    from softmaxkit.dask import apply_chunked

    x = np.random.default_rng(11).normal(size=(20, 9))
    np.save(tmp_path / "x.npy", x)
    # Blocks of unequal sizes are regrouped so that no two tasks share a zarr chunk.
    apply_chunked(tmp_path / "x.npy", tmp_path / "p.zarr", chunks=((3, 10, 7), (2, 4, 3)))
    close(_read(tmp_path / "p.zarr"), _reference(x), "float64")


def test_apply_chunked_refuses_pickles(tmp_path):
    from softmaxkit.dask import apply_chunked

    np.save(tmp_path / "objects.npy", np.array([1.0, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"objects\.npy"):
        apply_chunked(tmp_path / "objects.npy", tmp_path / "p.npy")
    assert not (tmp_path / "p.npy").exists()


@pytest.mark.parametrize("suffix", [".npy", ".zarr"])
@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_interrupted_write_leaves_existing_output_untouched(tmp_path, suffix, interruption):
    pytest.importorskip("zarr")
    from softmaxkit.dask import apply_chunked

    x = np.random.default_rng(9).normal(size=(40, 8))
    np.save(tmp_path / "x.npy", x)
    target = tmp_path / f"p{suffix}"
    before = np.full((2, 2), 7.0)
    _save(target, before)

    def stop_after_first_block(done, total):
        if done == 1:
            raise interruption("stop")

    with pytest.raises(interruption):
        apply_chunked(tmp_path / "x.npy", target, chunks=(5, 8), progress=stop_after_first_block)
    np.testing.assert_array_equal(_read(target), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p" + suffix, "x.npy"]  # no temporary left
    apply_chunked(tmp_path / "x.npy", target, chunks=(5, 8))  # a complete run replaces it
    close(_read(target), _reference(x), "float64")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p" + suffix, "x.npy"]


def test_apply_chunked_on_a_cluster(tmp_path, cluster):
    pytest.importorskip("zarr")
    from softmaxkit.dask import apply_chunked

    x = np.random.default_rng(10).normal(size=(64, 32)).astype(np.float32)
    _save(tmp_path / "x.zarr", x, chunks=(16, 8))
    calls = []
    apply_chunked(tmp_path / "x.zarr", tmp_path / "p.npy", scheduler=cluster.scheduler_address,
                  progress=lambda done, total: calls.append(done))
    close(_read(tmp_path / "p.npy"), _reference(x), "float32")
    assert calls == list(range(1, 17))
