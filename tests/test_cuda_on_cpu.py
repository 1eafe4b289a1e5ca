"""The CUDA kernels run on the CPU (tests/cuda_on_cpu.py), under ASan + UBSan and, for a subset,
ThreadSanitizer, against the generic engine.

Every case goes through :mod:`softmaxkit.cuda._launch` unchanged: the planner picks the
kernels, block and grid for the case's device limits (multiprocessors, shared memory), the
launcher packs the arguments. Each case runs under two schedules of the threads (ascending:
warp 0 runs ahead; descending: the last warp runs first) and the results must be identical
bit for bit, and within SPEC §2's bounds of the float64 reference. Run alone with
``python -m pytest -m cuda_on_cpu``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import softmaxkit as sk
from cuda_on_cpu import (
    HARNESS_MARKS,
    Harness,
    WorkerCrashed,
    build,
    build_all,
    runtime_library,
    storage,
    translation_unit,
)
from edge_cases import EDGE_CASES
from softmaxkit.cuda import _plan

ml_dtypes = pytest.importorskip("ml_dtypes")

pytestmark = HARNESS_MARKS

DTYPES = ("float16", "bfloat16", "float32", "float64")
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
H100 = (132, 227 * 1024)
ONE_SM = (1, 227 * 1024)  # few rows still take the row strategies


@dataclass(frozen=True)
class Case:
    family: str
    dtype: str
    rows: int
    n: int
    limits: tuple[int, int] = H100
    offset: int = 0
    """Bytes from a 16-byte boundary of the inputs (a misaligned view when not 0)."""
    options: tuple[tuple[str, Any], ...] = field(default=())

    def plan(self) -> _plan.Plan:
        return _plan.plan_launch(
            self.family,
            self.dtype,
            self.rows,
            self.n,
            aligned=self.offset == 0,
            sm_count=self.limits[0],
            max_shared_bytes=self.limits[1],
        )

    @property
    def id(self) -> str:
        p = self.plan()
        extra = f"-off{self.offset}" if self.offset else ""
        return f"{self.family}-{self.dtype}-{self.rows}x{self.n}-{p.strategy}{extra}"


def shapes(dtype: str) -> list[tuple[int, int, tuple[int, int], int]]:
    """(rows, n, limits, offset) reaching every strategy, packets and scalar tiles, tails and misalignment."""
    item = np.dtype("float16" if dtype == "bfloat16" else dtype).itemsize
    return [
        (5, 3, H100, 0),  # sub-warp rows, 4 lanes each
        (3, 256, H100, 0),  # a warp per row, 16-byte packets
        (3, 256, H100, item),  # the same rows misaligned: scalar loads
        (2, 1000, H100, 0),  # a warp per row, 32 elements a lane, tail
        (2, 1500, ONE_SM, 0),  # a block per row
        (1, 20_000, ONE_SM, 0),  # shared memory (softmax), split otherwise
        (1, 9_000, H100, 0),  # few long rows: split across blocks, ragged last chunk
    ]


def cases(full: bool) -> list[Case]:
    """The strategy matrix: every dtype, family and shape when ``full``; else (the default
    run, CI) the row strategies in every dtype and the long-row ones in fewer."""
    out = []
    for dtype in DTYPES:
        for rows, n, limits, offset in shapes(dtype):
            for family in ("softmax", "logsumexp", "vjp", "cross_entropy"):
                quick = n <= 2000 or (dtype == "float32" and n == 9_000)
                if full or quick:
                    out.append(Case(family, dtype, rows, n, limits, offset))
    if not full:
        out.append(Case("softmax", "float64", 1, 9_000))  # the split kernels in double
        out.append(Case("softmax", "float64", 1, 9_000, ONE_SM))  # shared memory, 3 chunks
    # More partials than a warp's lanes: the warp merge's strided loop and butterfly.
    for family in ("logsumexp",) + (("softmax", "vjp", "cross_entropy") if full else ()):
        out.append(Case(family, "float32", 1, 33 * 4096, H100))
    return out


EDGE_LENGTHS = {"short": None, "warp": 256, "split": 9_000}
"""Row lengths of the repeated edge rows: the case's own, a warp per row, split across blocks
(lengths the strategy matrix has too, so no kernel instance is built only for these)."""


def edge_cases(full: bool = True) -> list[tuple[Any, str, str]]:
    return [
        (case, dtype, copies)
        for case in EDGE_CASES
        if case.row
        for dtype in DTYPES
        for copies in EDGE_LENGTHS
        if not (dtype == "float16" and case.name.startswith("huge"))
        and (full or copies != "split" or (dtype == "float32" and case.name in QUICK_SPLIT_EDGES))
    ]


QUICK_SPLIT_EDGES = ("all_neg_inf", "three_pos_inf", "nan_and_inf", "masked_nan_ignored")
"""Edge rows split across blocks in the default run: the ones whose partials carry -inf, +inf or NaN."""


def edge_copies(case: Any, copies: str) -> int:
    length = EDGE_LENGTHS[copies]
    return 1 if length is None else length // len(case.row)


def full_run(config: pytest.Config) -> bool:
    """``-m cuda_on_cpu`` selects the whole matrix; the default run takes the quick one."""
    return "cuda_on_cpu" in (config.getoption("markexpr") or "")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    full = full_run(metafunc.config)
    if metafunc.function.__name__ == "test_kernels_match_the_generic_engine":
        metafunc.parametrize("case", cases(full), ids=lambda c: c.id)
    if "tsan_case" in metafunc.fixturenames:
        metafunc.parametrize("tsan_case", tsan_cases(full), ids=lambda c: c.id)
    if "edge" in metafunc.fixturenames:
        chosen = edge_cases(full)
        metafunc.parametrize("edge", chosen, ids=[f"{c.name}-{d}-{k}" for c, d, k in chosen])


def needed_names(full: bool) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    plans = [c.plan() for c in cases(full)]
    for case, dtype, copies in edge_cases(full):
        n = edge_copies(case, copies) * len(case.row)
        for family in ("softmax", "logsumexp"):
            plans.append(
                _plan.plan_launch(
                    family, dtype, 2, n, aligned=True, sm_count=H100[0], max_shared_bytes=H100[1]
                )
            )
    for p in plans:
        names.setdefault(_plan.FAMILIES[p.family].source, set()).update(p.kernels)
    return names


@pytest.fixture(scope="module")
def harness(request):
    h = Harness(build_all(needed_names(full_run(request.config)), "asan"), "asan")
    yield h
    h.close()


# --- inputs and references ----------------------------------------------------------------------


def values(stored: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return stored.view(ml_dtypes.bfloat16).astype(np.float64)
    return stored.astype(np.float64)


def rounded(x64: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(over="ignore"):
        return values(storage(x64, dtype), dtype)


def acc(dtype: str) -> Any:
    return np.float64 if dtype == "float64" else np.float32


def assert_close_probabilities(
    actual: np.ndarray, expected: np.ndarray, dtype: str, spread: np.ndarray
) -> None:
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(
        actual[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)]
    )
    tiny = (
        float(np.finfo(np.float16).smallest_subnormal)
        if dtype == "float16"
        else 2.0**-133
        if dtype == "bfloat16"
        else float(np.finfo(dtype).smallest_subnormal)
    )
    spread = np.broadcast_to(spread, expected.shape)[finite]
    a, e = actual[finite], expected[finite]
    excess = np.abs(a - e) - (4 * EPS[dtype] * (1 + spread) * np.abs(e) + 2 * tiny)
    assert np.all(excess <= 0), float(np.max(excess))


def assert_close_logs(actual: np.ndarray, expected: np.ndarray, dtype: str) -> None:
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(
        actual[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)]
    )
    a, e = actual[finite], expected[finite]
    excess = np.abs(a - e) - 8 * EPS[dtype] * (1 + np.abs(e))
    assert np.all(excess <= 0), float(np.max(excess))


def spread(x64: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        z = (x64 - x64.max(axis=-1, keepdims=True)) / temperature
    return np.where(np.isfinite(z), np.abs(z), 0.0)


def run_both_schedules(harness: Harness, request: dict[str, Any], both: bool = True) -> dict[str, Any]:
    """The request under the ascending and the descending schedule: same bits, or a race.

    ``both=False`` (the longest rows) runs the ascending schedule only.
    """
    first = harness.call({**request, "policy": "ascending", "seed": 1})
    if not both or harness.sanitizer == "tsan":  # real threads: the OS schedules, not the policy
        return first
    second = harness.call({**request, "policy": "descending", "seed": 1})
    for key, value in first.items():
        if isinstance(value, np.ndarray):
            assert value.tobytes() == second[key].tobytes(), f"{key} depends on the thread schedule"
    return first


def softmax_request(
    x64: np.ndarray,
    dtype: str,
    mask: np.ndarray | None,
    temperature: float,
    log: bool,
    limits: tuple[int, int],
    offset: int = 0,
) -> dict[str, Any]:
    x = storage(x64, dtype)
    return {
        "function": "softmax",
        "arrays": {"x": x, "mask": None if mask is None else mask.astype(np.uint8), "y": np.zeros_like(x)},
        "offsets": {"x": offset, "mask": offset // 2},
        "limits": limits,
        "params": {"dtype": dtype, "temperature": temperature, "log": log},
    }


def logsumexp_request(
    x64: np.ndarray, dtype: str, mask: np.ndarray | None, limits: tuple[int, int], offset: int = 0
) -> dict[str, Any]:
    x = storage(x64, dtype)
    return {
        "function": "logsumexp",
        "arrays": {
            "x": x,
            "mask": None if mask is None else mask.astype(np.uint8),
            "out": np.zeros(x.shape[0], x.dtype),
        },
        "offsets": {"x": offset},
        "limits": limits,
        "params": {"dtype": dtype},
    }


# --- the strategy matrix ----------------------------------------------------------------------


def check_softmax(harness: Harness, case: Case, x64: np.ndarray, mask: np.ndarray | None) -> None:
    for log, temperature in ((False, 1.0), (True, 0.7)):
        request = softmax_request(x64, case.dtype, mask, temperature, log, case.limits, case.offset)
        result = run_both_schedules(harness, request, case.n < 100_000)
        assert [name for name, *_ in result["launches"]] == list(case.plan().kernels)
        got = values(result["y"], case.dtype)
        f = sk.log_softmax if log else sk.softmax
        want = rounded(f(x64, temperature=temperature, where=mask, engine="generic"), case.dtype)
        if log:
            assert_close_logs(got, want, case.dtype)
        else:
            masked = x64 if mask is None else np.where(mask, x64, -np.inf)
            assert_close_probabilities(got, want, case.dtype, spread(masked, temperature))


def check_logsumexp(harness: Harness, case: Case, x64: np.ndarray, mask: np.ndarray | None) -> None:
    request = logsumexp_request(x64, case.dtype, mask, case.limits, case.offset)
    result = run_both_schedules(harness, request, case.n < 100_000)
    want = rounded(sk.logsumexp(x64, axis=-1, where=mask, engine="generic"), case.dtype)
    assert_close_logs(values(result["out"], case.dtype), want, case.dtype)


def check_vjp(harness: Harness, case: Case, x64: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    x64 = x64.copy()
    x64[0, : case.n // 2] = -np.inf  # excluded entries: s == 0, logp == -inf
    g64 = rounded(rng.standard_normal(x64.shape), case.dtype)
    tol = 16 * EPS[case.dtype] * np.log2(2 * case.n)
    for log in (False, True):
        first64 = rounded((sk.log_softmax if log else sk.softmax)(x64, engine="generic"), case.dtype)
        first, g = storage(first64, case.dtype), storage(g64, case.dtype)
        request = {
            "function": "vjp",
            "arrays": {"first": first, "g": g, "out": np.zeros_like(first)},
            "offsets": {"first": case.offset, "g": case.offset},
            "limits": case.limits,
            "params": {"dtype": case.dtype, "log": log},
        }
        got = values(run_both_schedules(harness, request, case.n < 100_000)["out"], case.dtype)
        f = sk.log_softmax_vjp if log else sk.softmax_vjp
        want = f(first64, g64, engine="generic")
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))
        if log:
            assert np.all(got[0, : case.n // 2] == 0)


def check_cross_entropy(harness: Harness, case: Case, x64: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    rows, n, dtype = case.rows, case.n, case.dtype
    labels = rng.integers(0, n, rows)
    labels[0] = -100
    weight = rng.random(n) + 0.5
    probs64 = rounded(sk.softmax(rng.standard_normal((rows, n)), engine="generic"), dtype)
    tol = 16 * EPS[dtype] * np.log2(2 * n)
    for target, options in (
        (labels, {"ignore_index": -100}),
        (labels, {"ignore_index": -100, "weight": weight, "label_smoothing": 0.1}),
        (probs64, {"weight": weight, "label_smoothing": 0.2}),
    ):
        smoothing = options.get("label_smoothing", 0.0)
        w = options.get("weight")
        want_loss, want_grad = sk.cross_entropy(
            x64, target, reduction="none", return_grad=True, engine="generic", **options
        )
        for with_grad in (True, False) if n <= 2000 else (True,):  # the loss-only exit: row kernels
            x = storage(x64, dtype)
            request = {
                "function": "cross_entropy",
                "limits": case.limits,
                "arrays": {
                    "x": x,
                    "labels": target.astype(np.int64) if target is labels else None,
                    "probs": storage(target, dtype) if target is probs64 else None,
                    "weight": None if w is None else w.astype(acc(dtype)),
                    "grad": np.zeros_like(x) if with_grad else None,
                },
                "offsets": {"x": case.offset, "probs": case.offset},
                "params": {
                    "dtype": dtype,
                    "ignore_index": options.get("ignore_index"),
                    "smoothing": smoothing,
                    "divisor": 1.0,
                },
            }
            result = run_both_schedules(harness, request, case.n < 100_000)
            np.testing.assert_allclose(result["losses"], want_loss, rtol=tol, atol=tol)
            if with_grad:
                got = values(result["grad"], dtype)
                np.testing.assert_allclose(
                    got, want_grad, rtol=tol, atol=tol * float(np.abs(want_grad).max())
                )


def test_kernels_match_the_generic_engine(harness, case):
    rng = np.random.default_rng(case.rows * 7919 + case.n)
    x64 = rounded(rng.standard_normal((case.rows, case.n)) * 4, case.dtype)
    mask = rng.random(x64.shape) < 0.9
    if case.family == "softmax":
        check_softmax(harness, case, x64, None)
        check_softmax(harness, case, x64, mask)
    elif case.family == "logsumexp":
        check_logsumexp(harness, case, x64, None)
        check_logsumexp(harness, case, x64, mask)
    elif case.family == "vjp":
        check_vjp(harness, case, x64)
    else:
        check_cross_entropy(harness, case, x64)


# --- SPEC §2's table ---------------------------------------------------------------------------


def test_spec_edge_rows(harness, edge):
    case, dtype, copies = edge
    # The case's row repeated (long rows reach the split kernels) beside an ordinary row.
    times, limits = edge_copies(case, copies), H100
    row = np.tile(np.asarray(case.row, dtype=np.float64), times)
    x64 = rounded(np.stack([row, np.linspace(-3, 3, row.size)]), dtype)
    mask = None if case.where is None else np.stack([np.tile(case.where, times), np.ones(row.size, bool)])
    for log in (False, True):
        got = values(
            run_both_schedules(harness, softmax_request(x64, dtype, mask, 1.0, log, limits))["y"], dtype
        )
        f = sk.log_softmax if log else sk.softmax
        want = rounded(f(x64, where=mask, engine="generic"), dtype)
        if log:
            assert_close_logs(got, want, dtype)
        else:
            assert_close_probabilities(got, want, dtype, spread(x64))
        if times == 1:  # the table's own numbers
            table = rounded(np.asarray(case.log_softmax if log else case.softmax), dtype)
            (assert_close_logs if log else lambda a, e, d: assert_close_probabilities(a, e, d, 0 * e))(
                got[0], table, dtype
            )
    lse = values(run_both_schedules(harness, logsumexp_request(x64, dtype, mask, limits))["out"], dtype)
    assert_close_logs(lse, rounded(sk.logsumexp(x64, axis=-1, where=mask, engine="generic"), dtype), dtype)
    if times == 1:
        assert_close_logs(lse[:1], rounded(np.asarray([case.logsumexp]), dtype), dtype)


@pytest.mark.parametrize("full", [False, True], ids=["quick", "full"])
def test_the_cases_reach_every_strategy_and_template(full):
    plans = [c.plan() for c in cases(full)]
    assert {p.strategy for p in plans} == {"warp", "block", "smem", "split"}
    templates = {name.split("<")[0] for p in plans for name in p.kernels}
    expected = {
        k for f in _plan.FAMILIES.values() for k in (f.rows_kernel, *f.split_kernels, f.smem_kernel) if k
    }
    assert templates == expected | {"sk_logsumexp_split_finish"}
    assert any(p.config.vec > 1 for p in plans) and any(p.config.vec == 1 for p in plans)
    assert max(p.splits for p in plans) > 32  # the warp merge loops over more partials than lanes


def test_launch_arguments_are_checked_against_the_kernel_parameters(harness):
    # A mismatch between _launch's arguments and the .cu signature would read garbage on a
    # GPU; the host entry points compare the count and each size with the parameters.
    name = Case("softmax", "float32", 5, 3).plan().kernels[0]
    x, y = np.zeros((5, 3), np.float32), np.zeros((5, 3), np.float32)
    good = [x, np.uint64(0), y, np.int64(5), np.int64(3), np.float32(1.0), np.int32(0)]
    assert harness.call(
        {
            "function": "raw",
            "name": name,
            "grid": 1,
            "block": 128,
            "args": good,
            "policy": "ascending",
            "seed": 1,
            "limits": H100,
            "arrays": {},
            "offsets": {},
            "params": {},
        }
    )["launches"]
    for args, message in (
        (good[:-1], "6 arguments for a kernel of 7 parameters"),
        ([*good[:3], np.int32(5), *good[4:]], "argument 3 has 4 bytes, the parameter 8"),
    ):
        with pytest.raises(RuntimeError, match=message):
            harness.call(
                {
                    "function": "raw",
                    "name": name,
                    "grid": 1,
                    "block": 128,
                    "args": args,
                    "policy": "ascending",
                    "seed": 1,
                    "limits": H100,
                    "arrays": {},
                    "offsets": {},
                    "params": {},
                }
            )


# --- ThreadSanitizer: real threads, the same kernels ----------------------------------------------

TSAN_CASES = [
    Case("softmax", "float32", 5, 100),
    Case("softmax", "float32", 1, 9_000),
    Case("cross_entropy", "float32", 3, 1000),
    Case("vjp", "float64", 1, 9_000),
    Case("logsumexp", "float16", 2, 1500, ONE_SM),
]


def tsan_cases(full: bool) -> list[Case]:
    """A warp-per-row and a split launch by default (real threads are slow); all with ``full``."""
    return TSAN_CASES if full else TSAN_CASES[:2]


@pytest.fixture(scope="module")
def tsan_harness(request):
    if runtime_library("tsan") is None:
        pytest.skip("g++ has no ThreadSanitizer runtime")
    names: dict[str, set[str]] = {}
    for c in tsan_cases(full_run(request.config)):
        names.setdefault(_plan.FAMILIES[c.family].source, set()).update(c.plan().kernels)
    h = Harness(build_all(names, "tsan"), "tsan")
    yield h
    h.close()


def test_no_data_race_under_thread_sanitizer(tsan_harness, tsan_case):
    case = tsan_case
    rng = np.random.default_rng(4)
    x64 = rounded(rng.standard_normal((case.rows, case.n)), case.dtype)
    {
        "softmax": lambda: check_softmax(tsan_harness, case, x64, None),
        "logsumexp": lambda: check_logsumexp(tsan_harness, case, x64, None),
        "vjp": lambda: check_vjp(tsan_harness, case, x64),
        "cross_entropy": lambda: check_cross_entropy(tsan_harness, case, x64),
    }[case.family]()


# --- the harness catches what it is for -------------------------------------------------------------

BLOCK_CASE = Case("softmax", "float32", 3, 1500, ONE_SM)  # a block per row
SPLIT_CASE = Case("softmax", "float32", 1, 9_000)  # 3 blocks per row
MUTATIONS = {
    # sk_group_reduce's first barrier: a warp's next partial overwrites smem while others read it
    "missing_syncthreads": (
        "    __syncthreads();  // the previous reduction may still be reading smem\n",
        "\n",
        BLOCK_CASE,
        "depends on the thread schedule",
    ),
    # split_apply's barrier after warp 0 merged the partials: the other warps read the row's
    # max and total before they are written
    "missing_syncthreads_after_merge": (
        "    __syncthreads();\n    const sk_shift<A> shift(row_max_total[0]);",
        "\n    const sk_shift<A> shift(row_max_total[0]);",
        SPLIT_CASE,
        "depends on the thread schedule",
    ),
    # sk_load_tile's tail guard one packet too far: reads past the row (and the buffer)
    "tail_off_by_one": (
        "        if (live && i < n) {\n            const sk_pack<T, VEC> pk",
        "        if (live && i <= n) {\n            const sk_pack<T, VEC> pk",
        BLOCK_CASE,
        "heap-buffer-overflow",
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_harness_catches_a_broken_kernel(mutation):
    old, new, case, symptom = MUTATIONS[mutation]
    names = list(case.plan().kernels)
    unit = translation_unit("softmax.cu", names)
    assert unit.count(old) == 1
    lib = build("softmax.cu", names, "asan", unit.replace(old, new))
    broken = Harness([lib], "asan")
    rng = np.random.default_rng(5)
    x64 = rounded(rng.standard_normal((case.rows, case.n)), "float32")
    try:
        with pytest.raises((AssertionError, WorkerCrashed), match=symptom):
            check_softmax(broken, case, x64, None)
    finally:
        broken.close()


def test_case_ids_are_unique():
    ids = [c.id for c in cases(True)]
    assert len(ids) == len(set(ids)), [i for i, n in itertools.groupby(sorted(ids)) if len(list(n)) > 1]
