"""The CUDA sampling kernels (kernels/sampling.cu) run on the CPU (tests/cuda_on_cpu.py) under
ASan + UBSan, through the engine's launcher: given the same uniforms they draw what the Numba
kernels draw, keep what the Numba kernels keep, and their frequencies pass the chi-square test
against the enumerated filtered distribution.

Each launch runs under two schedules of the threads (ascending and descending) and must give
the same bytes. Rows mix ties (values on a grid of 0.5), -inf entries, where= masks, +inf,
NaN and empty rows, with one parameter set per row so one launch covers every filter
combination; row lengths below and above the block size, not multiples of the warp size.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from scipy import stats

from cuda_on_cpu import (
    HARNESS_MARKS,
    Harness,
    WorkerCrashed,
    build,
    runtime_library,
    storage,
    translation_unit,
)
from sampling_reference import distribution
from softmaxkit.cuda import _plan
from softmaxkit.sampling import _kernels
from softmaxkit.sampling._params import EMPTY, HAS_NAN, OK, TOO_FEW, RowParams, row_params

ml_dtypes = pytest.importorskip("ml_dtypes")

pytestmark = HARNESS_MARKS

DTYPES = ("float32", "float64", "float16", "bfloat16")
LENGTHS = (5, 37, 300, 1000)
"""Fewer entries than the 128 threads, more, none a multiple of 32."""
CASES = [("float32", 5), ("float32", 37), ("float32", 300), ("float32", 1000), ("float64", 37),
         ("float64", 300), ("float16", 300), ("bfloat16", 37)]
"""(dtype, row length) of the default run. The fibers make each launch slow (every barrier
switches every thread), so the matrix is sparse: each dtype, each length, not each pair;
``python -m pytest -m cuda_on_cpu`` runs every pair under both schedules."""
BOTH_SCHEDULES = {("float32", 300), ("float64", 37)}
"""Cases of the default run under the descending schedule too (the others: ascending only)."""


def full_run(config: pytest.Config) -> bool:
    return "cuda_on_cpu" in (config.getoption("markexpr") or "")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.function.__name__ == "test_draws_and_masks_equal_the_numba_kernels":
        full = full_run(metafunc.config)
        cases = list(itertools.product(DTYPES, LENGTHS)) if full else CASES
        params = [(d, n, full or (d, n) in BOTH_SCHEDULES) for d, n in cases]
        metafunc.parametrize(("dtype", "n", "both"), params, ids=[f"{d}-{n}" for d, n in cases])


LONG = 9_000
"""A 256-thread block."""
LONGEST = 140_000
"""A 512-thread block with more than 255 entries a thread: the packed 8-bit digit counts of
the threshold searches are emptied into their counters mid-row."""
H100 = (132, 227 * 1024)

FILTERS = [
    dict(zip(("temperature", "top_k", "top_p", "min_p"), combo, strict=True))
    for combo in itertools.product((1.0, 0.7), (None, 3), (None, 0.8), (None, 0.1))
]
"""Every filter combination (as tests/test_sampling.py's frequency tests)."""


def instances() -> dict[str, set[str]]:
    names = set()
    for dtype, n in [*itertools.product(DTYPES, LENGTHS), ("float32", LONG), ("float32", LONGEST)]:
        names |= {_plan.sampling_name(k, dtype, _plan.sampling_block(n)) for k in _plan.SAMPLING_KERNELS}
    return {_plan.SAMPLING_SOURCE: names}


@pytest.fixture(scope="module")
def harness():
    libs = [build(_plan.SAMPLING_SOURCE, sorted(names), "asan") for names in instances().values()]
    h = Harness(libs, "asan")
    yield h
    h.close()


def as_numba_rows(x64: np.ndarray, dtype: str) -> np.ndarray:
    """The rows the Numba kernels get for ``dtype``: float16/bfloat16 computed in float32."""
    if dtype == "bfloat16":
        return x64.astype(ml_dtypes.bfloat16).astype(np.float32)
    return x64.astype(dtype).astype(np.float64 if dtype == "float64" else np.float32)


def _request(function: str, x64: np.ndarray, dtype: str, mask: np.ndarray | None, p: RowParams,
             extra: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    rows = x64.shape[0]
    return {
        "function": function,
        "arrays": {
            "x": storage(x64, dtype),
            "mask": None if mask is None else mask.astype(np.uint8),
            "inv_t": p.inv_t, "top_k": p.top_k, "top_p": p.top_p, "min_p": p.min_p,
            "status": np.full(rows, -1, np.int8),
            **extra,
        },
        "offsets": {},
        "limits": H100,
        "params": {"dtype": dtype, **params},
    }


def run_schedules(harness: Harness, request: dict[str, Any], both: bool) -> dict[str, Any]:
    first = harness.call({**request, "policy": "ascending", "seed": 1})
    if not both:
        return first
    second = harness.call({**request, "policy": "descending", "seed": 1})
    for key in ("out", "status"):
        assert first[key].tobytes() == second[key].tobytes(), f"{key} depends on the thread schedule"
    return first


def cuda_sample(harness: Harness, x64: np.ndarray, dtype: str, mask: np.ndarray | None, p: RowParams,
                u: np.ndarray, replacement: bool, both: bool = False) -> tuple[np.ndarray, np.ndarray]:
    out = np.full(u.shape, -7, np.int64)
    request = _request("sample", x64, dtype, mask, p, {"u": u, "out": out}, {"replacement": replacement})
    result = run_schedules(harness, request, both)
    assert [name for name, *_ in result["launches"]] == [
        _plan.sampling_name("sk_sample_rows", dtype, _plan.sampling_block(x64.shape[1]))
    ]
    return result["out"], result["status"]


def cuda_filter(harness: Harness, x64: np.ndarray, dtype: str, mask: np.ndarray | None,
                p: RowParams, both: bool = False) -> tuple[np.ndarray, np.ndarray]:
    out = np.full(x64.shape, 7, np.uint8)
    result = run_schedules(harness, _request("sample_filter", x64, dtype, mask, p, {"out": out}, {}), both)
    return result["out"].astype(bool), result["status"]


def numba_sample(x64: np.ndarray, dtype: str, mask: np.ndarray | None, p: RowParams, u: np.ndarray,
                 replacement: bool) -> tuple[np.ndarray, np.ndarray]:
    rows = as_numba_rows(x64, dtype)
    m = mask if mask is not None else np.ones((1, 1), np.bool_)
    out = np.zeros(u.shape, np.int64)
    status = np.zeros(rows.shape[0], np.int8)
    with np.errstate(all="ignore"):
        _kernels.sample_rows(rows, m, mask is not None, p.inv_t, p.top_k, p.top_p, p.min_p,
                             p.buffer_size(rows.shape[1]), u, replacement, out, status, 0, rows.shape[0])
    return out, status


def numba_filter(x64: np.ndarray, dtype: str, mask: np.ndarray | None,
                 p: RowParams) -> tuple[np.ndarray, np.ndarray]:
    rows = as_numba_rows(x64, dtype)
    m = mask if mask is not None else np.ones((1, 1), np.bool_)
    out = np.zeros(rows.shape, np.bool_)
    status = np.zeros(rows.shape[0], np.int8)
    with np.errstate(all="ignore"):
        _kernels.filter_rows(rows, m, mask is not None, p.inv_t, p.top_k, p.top_p, p.min_p,
                             p.buffer_size(rows.shape[1]), out, status, 0, rows.shape[0])
    return out, status


PER_ROW = [  # (temperature, top_k, top_p, min_p) of each row; None is "off"
    (1.0, None, None, None),
    (0.7, 5, None, None),
    (1.3, None, 0.8, None),
    (1.0, None, None, 0.1),
    (0.7, 10, 0.9, None),
    (0.5, 3, 0.5, 0.2),
    (1.0, 1, None, None),  # one class: too few to draw 3 without replacement
    (0.0, None, None, None),  # the argmax (ties share it)
    (0.9, 40, 0.95, 0.05),  # +inf entries (tied_rows' special rows from here on)
    (1.0, None, None, None),  # nothing included
    (2.0, None, 0.3, 0.01),  # NaN
]


def per_row_params(n: int) -> RowParams:
    t, k, p, mp = zip(*PER_ROW, strict=True)
    return row_params(np.array(t), np.array([n if v is None else v for v in k]),
                      np.array([1.0 if v is None else v for v in p]),
                      np.array([0.0 if v is None else v for v in mp]), (len(PER_ROW),), n)


def tied_rows(n: int, dtype: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One row per PER_ROW entry with ties, -inf entries and a where= mask; its last rows are
    special: +inf entries, everything excluded, NaN (masked off in one spot, kept in another)."""
    rng = np.random.default_rng(seed)
    spread = 3.0 if dtype in ("float16", "bfloat16") else 6.0
    x = np.round(rng.standard_normal((len(PER_ROW), n)) * spread) / 2  # a grid: many ties
    x[rng.random(x.shape) < 0.1] = -np.inf
    x[:, 0] = 0.5
    mask = rng.random(x.shape) < 0.85
    mask[:, 0] = True
    x[-3, : max(1, n // 3) : 2] = np.inf
    x[-2] = -np.inf
    if n > 2:
        x[-1, 1] = np.nan
        mask[-1, 1] = True
        x[3, 2] = np.nan
        mask[3, 2] = False  # a NaN where= excludes does not count
    return x, mask


def _ok_rows_agree(got: np.ndarray, got_status: np.ndarray, want: np.ndarray,
                   want_status: np.ndarray) -> None:
    np.testing.assert_array_equal(got_status, want_status)
    ok = want_status == OK
    np.testing.assert_array_equal(got[ok], want[ok])


def test_draws_and_masks_equal_the_numba_kernels(harness, dtype, n, both):
    x, mask = tied_rows(n, dtype, seed=n)
    p = per_row_params(n)
    for where in (None, mask) if (dtype, n) == ("float32", 300) else (mask,):
        keep, status = cuda_filter(harness, x, dtype, where, p, both)
        want_keep, want_status = numba_filter(x, dtype, where, p)
        _ok_rows_agree(keep, status, want_keep, want_status)
        assert not keep[status != OK].any()
        u = np.random.default_rng(n + 1).random((len(PER_ROW), 9))
        draws, status = cuda_sample(harness, x, dtype, where, p, u, True, both)
        want, want_status = numba_sample(x, dtype, where, p, u, True)
        _ok_rows_agree(draws, status, want, want_status)
        ok = status == OK
        assert np.take_along_axis(keep[ok], draws[ok], axis=1).all()  # draws are from the kept set
        assert list(status[-3:]) == [OK, EMPTY, HAS_NAN if n > 2 else EMPTY]
        count = min(3, n)
        u = np.random.default_rng(n + 2).random((len(PER_ROW), count))
        draws, status = cuda_sample(harness, x, dtype, where, p, u, False, both)
        want, want_status = numba_sample(x, dtype, where, p, u, False)
        _ok_rows_agree(draws, status, want, want_status)
        ok = status == OK
        assert all(len(set(r)) == count for r in draws[ok])
        assert status[6] == TOO_FEW


LONG_ROWS = [  # (temperature, top_k, top_p, min_p): the candidate list and the row's thresholds
    (0.7, 50, 0.9, None),  # top-k gathered into the list, top-p over it
    (1.0, 1024, 0.5, 0.01),  # the longest list (SK_LIST in sampling.cu)
    (1.0, 2000, 0.95, 0.001),  # past the list: top-p by the threshold search over the row
    (1.3, None, 0.8, None),  # top-p alone over the row
]


def test_long_rows_take_a_larger_block(harness):
    x, mask = tied_rows(LONG, "float32", seed=3)
    x, mask = x[: len(LONG_ROWS)], mask[: len(LONG_ROWS)]
    t, k, p_, mp = zip(*LONG_ROWS, strict=True)
    p = row_params(np.array(t), np.array([LONG if v is None else v for v in k]), np.array(p_),
                   np.array([0.0 if v is None else v for v in mp]), (len(LONG_ROWS),), LONG)
    assert _plan.sampling_block(LONG) == 256
    keep, status = cuda_filter(harness, x, "float32", mask, p)
    _ok_rows_agree(keep, status, *numba_filter(x, "float32", mask, p))
    assert (status == OK).all() and 0 < keep[2].sum() <= 2000
    u = np.random.default_rng(4).random((len(LONG_ROWS), 5))
    for replacement in (True, False):
        draws, status = cuda_sample(harness, x, "float32", mask, p, u, replacement)
        _ok_rows_agree(draws, status, *numba_sample(x, "float32", mask, p, u, replacement))
        assert (status == OK).all()


def test_rows_longer_than_255_entries_a_thread(harness):
    # Values in [1, 1.5] share their sign and exponent: every thread counts all its 273
    # entries into one digit bin for the first passes, which would wrap an 8-bit field (and
    # pick the wrong digit) without the flush every 255 entries.
    rng = np.random.default_rng(12)
    x = 1 + np.round(rng.random((2, LONGEST)) * 8) / 16
    p = row_params(np.array([0.7, 1.0]), np.array([50, 3000]), np.array([0.9, 0.6]), np.array([0.0, 0.0]),
                   (2,), LONGEST)
    assert _plan.sampling_block(LONGEST) == 512 and LONGEST / 512 > 255
    keep, status = cuda_filter(harness, x, "float32", None, p)
    _ok_rows_agree(keep, status, *numba_filter(x, "float32", None, p))
    assert keep[0].sum() <= 50 and 0 < keep[1].sum() <= 3000
    u = np.random.default_rng(13).random((2, 4))
    draws, status = cuda_sample(harness, x, "float32", None, p, u, True)
    _ok_rows_agree(draws, status, *numba_sample(x, "float32", None, p, u, True))


LOGITS = np.array([1.2, -0.3, 2.5, 2.5, 0.7, -np.inf, 1.9, 0.1])
DRAWS = 20_000


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_frequencies_match_the_filtered_softmax(harness, dtype):
    # One row per filter combination, 20,000 draws each, chi-square at significance 1e-4.
    x = np.tile(LOGITS, (len(FILTERS), 1))
    n = x.shape[1]
    p = row_params(np.array([f["temperature"] for f in FILTERS]),
                   np.array([n if f["top_k"] is None else f["top_k"] for f in FILTERS]),
                   np.array([1.0 if f["top_p"] is None else f["top_p"] for f in FILTERS]),
                   np.array([0.0 if f["min_p"] is None else f["min_p"] for f in FILTERS]), (len(FILTERS),), n)
    u = np.random.default_rng(7).random((len(FILTERS), DRAWS))
    draws, status = cuda_sample(harness, x, dtype, None, p, u, True)
    assert (status == OK).all()
    for row, f in zip(draws, FILTERS, strict=True):
        expected = distribution(LOGITS, **f)
        counts = np.bincount(row, minlength=n)
        assert counts[expected == 0].sum() == 0, (f, counts)
        support = expected > 0
        if support.sum() >= 2:
            assert stats.chisquare(counts[support], DRAWS * expected[support]).pvalue > 1e-4, (f, counts)


def test_without_replacement_draws_distinct_classes_in_sequence(harness):
    # Two draws without replacement from 3 classes: the pairs' frequencies are the sequential
    # probabilities p_i * p_j / (1 - p_i).
    logits = np.log(np.array([0.5, 0.3, 0.2]))
    rows = 400
    x = np.tile(logits, (rows, 1))
    p = row_params(1.0, None, None, None, (rows,), 3)
    u = np.random.default_rng(11).random((rows, 2))
    draws, status = cuda_sample(harness, x, "float64", None, p, u, False)
    assert (status == OK).all() and (draws[:, 0] != draws[:, 1]).all()
    probs = np.exp(logits)
    expected = np.array([[0 if i == j else probs[i] * probs[j] / (1 - probs[i]) for j in range(3)]
                         for i in range(3)]).ravel()
    counts = np.bincount(draws[:, 0] * 3 + draws[:, 1], minlength=9)
    support = expected > 0
    assert counts[~support].sum() == 0
    assert stats.chisquare(counts[support], rows * expected[support]).pvalue > 1e-4


def test_negative_zero_ties_with_zero(harness):
    # -0.0 == 0.0: a tie, so top_k = 1 keeps the lower index whichever zero comes first.
    x = np.array([[-0.0, 0.0, -1.0], [0.0, -0.0, -1.0]])
    p = row_params(1.0, 1, None, None, (2,), 3)
    keep, status = cuda_filter(harness, x, "float32", None, p)
    assert (status == OK).all()
    np.testing.assert_array_equal(keep, [[True, False, False], [True, False, False]])


def test_harness_catches_a_missing_barrier():
    # Without the barrier between the warp sums and thread 0's prefix over them, the draws
    # read prefixes that thread 0 has not written yet under one of the schedules.
    names = [_plan.sampling_name(k, "float32", 128) for k in _plan.SAMPLING_KERNELS]
    unit = translation_unit(_plan.SAMPLING_SOURCE, names)
    old = "        __syncthreads();\n        if (threadIdx.x == 0) {\n            double before"
    assert unit.count(old) == 1
    broken = Harness([build(_plan.SAMPLING_SOURCE, names, "asan", unit.replace(old, old.split("\n", 1)[1]))],
                     "asan")
    x, mask = tied_rows(300, "float32", seed=300)
    u = np.random.default_rng(1).random((len(PER_ROW), 9))
    try:
        with pytest.raises((AssertionError, WorkerCrashed), match="depends on the thread schedule"):
            cuda_sample(broken, x, "float32", mask, per_row_params(300), u, True, both=True)
    finally:
        broken.close()


def test_no_data_race_under_thread_sanitizer():
    # Real threads (std::thread per CUDA thread) under ThreadSanitizer: a missing barrier
    # between a shared-memory write and another thread's read is a report, whatever the timing.
    # Regression: thread 0 zeroed the candidates it drew without replacement while the other
    # threads still counted the positive ones (the fibers, switching only at barriers, hid it).
    if runtime_library("tsan") is None:
        pytest.skip("g++ has no ThreadSanitizer runtime")
    names = sorted(_plan.sampling_name(k, "float32", 128) for k in _plan.SAMPLING_KERNELS)
    tsan = Harness([build(_plan.SAMPLING_SOURCE, names, "tsan")], "tsan")
    rows = [1, 2, 4, 5]  # the candidate list (top-k), the row's threshold search (top-p alone)
    x, mask = tied_rows(300, "float32", seed=8)
    full = per_row_params(300)
    p = RowParams(full.inv_t[rows], full.top_k[rows], full.top_p[rows], full.min_p[rows])
    x, mask = x[rows], mask[rows]
    u = np.random.default_rng(9).random((len(rows), 3))
    try:
        keep, status = cuda_filter(tsan, x, "float32", mask, p)
        _ok_rows_agree(keep, status, *numba_filter(x, "float32", mask, p))
        for replacement in (True, False):
            draws, status = cuda_sample(tsan, x, "float32", mask, p, u, replacement)
            _ok_rows_agree(draws, status, *numba_sample(x, "float32", mask, p, u, replacement))
    finally:
        tsan.close()
