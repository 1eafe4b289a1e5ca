"""Smoke test: every benchmark of the CPU suite runs once on a tiny size, so none can rot."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("scipy")

from benchmarks import cpu

from softmaxkit import benchmark as suite


def test_suite_shapes_are_spec_section_4() -> None:
    assert [(s.rows, s.cols, s.dtype, s.axis) for s in suite.SHAPES] == [
        (1_000_000, 10, "float32", -1), (65_536, 128, "float32", -1), (8_192, 1_024, "float32", -1),
        (1_024, 32_000, "float32", -1), (64, 262_144, "float32", -1), (4, 4_194_304, "float32", -1),
        (1_024, 8_192, "float32", 0), (8_192, 1_024, "float64", -1), (8_192, 1_024, "float16", -1),
    ]


def test_every_benchmark_runs_once_on_a_tiny_size() -> None:
    records = suite.run(repeats=1, warmup=0, quick_elements=256)
    assert {(r.operation, r.shape.label) for r in records} == {
        (op, s.scaled(256).label) for op in suite.OPERATIONS for s in suite.SHAPES
    }
    for r in records:
        assert {suite.BASELINE, suite.CEILING, "torch"} <= set(r.seconds)
        assert all(t > 0 for t in r.seconds.values())
        assert r.gbps(suite.BASELINE) > 0
    table = suite.markdown_table(records)
    assert table.count("\n") == len(records) + 1
    assert "x torch" in table
    assert "softmax: x torch median" in suite.summary(records)


def test_command_line_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert cpu.main(["--quick", "--ops", "softmax", "--shapes", "0", "6"]) == 0
    printed = capsys.readouterr().out
    assert "| softmax |" in printed
    assert "% of copy" in printed


def test_interleaved_turns_are_shuffled_and_short_calls_repeat(monkeypatch):
    from softmaxkit import benchmark

    order: list[str] = []
    functions = {name: (lambda name=name: order.append(name)) for name in "abc"}
    medians = benchmark.time_interleaved(functions, repeats=3, warmup=1)
    assert set(medians) == {"a", "b", "c"} and all(t > 0 for t in medians.values())
    assert len(order) > 3 + 9 * 10  # each call is far under 2 ms: repeated within a sample
    monkeypatch.setattr(benchmark, "MIN_SAMPLE_SECONDS", 0.0)  # one call per sample
    order.clear()
    benchmark.time_interleaved(functions, repeats=12, warmup=1)
    rounds = [order[i:i + 3] for i in range(3, len(order), 3)]
    assert len(rounds) == 12 and all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 3  # shuffled: not one fixed (or rotated) order
