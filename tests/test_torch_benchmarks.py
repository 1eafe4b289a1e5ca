"""Smoke tests of the tensor benchmarks (the suite on CPU tensors, the fused loss's memory), so
that they cannot rot; and the memory promise of the fused loss."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("numba")

from benchmarks import cpu, torch_memory, torch_mlp

from softmaxkit import benchmark as suite


def test_tensor_suite_is_the_cpu_suite_plus_the_per_call_shape() -> None:
    assert suite.TENSOR_SHAPES[:-1] == suite.SHAPES
    assert (suite.TENSOR_SHAPES[-1].rows, suite.TENSOR_SHAPES[-1].cols) == (64, 10)


def test_every_tensor_benchmark_runs_once_on_a_tiny_size() -> None:
    records = suite.run(suite.TENSOR_OPERATIONS, suite.TENSOR_SHAPES, repeats=1, warmup=0,
                        quick_elements=256, tensors=True)
    assert {(r.operation, r.shape.label) for r in records} == {
        (op, s.scaled(256).label) for op in suite.TENSOR_OPERATIONS for s in suite.TENSOR_SHAPES
    }
    for r in records:
        assert {suite.BASELINE, suite.CEILING, "torch", "sk api"} == set(r.seconds)
        assert all(t > 0 for t in r.seconds.values())
    assert "cross_entropy+backward: x torch median" in suite.summary(records)


def test_command_line_tensors_quick(capsys: pytest.CaptureFixture[str]) -> None:
    assert cpu.main(["--tensors", "--quick", "--ops", "softmax+backward", "--shapes", "9"]) == 0
    assert "| softmax+backward | 64 x 10 |" in capsys.readouterr().out


def test_command_line_refuses_tensor_operations_without_tensors() -> None:
    with pytest.raises(SystemExit):
        cpu.main(["--quick", "--ops", "softmax+backward"])


def test_fused_loss_needs_one_logits_sized_buffer() -> None:
    # 64 MiB of logits: glibc maps buffers this large, so the peak resident set is exact.
    # (torch's own figure is printed by the benchmark, not asserted: it is torch's business.)
    ours = torch_memory.measure("softmaxkit", 512, 32_768)
    assert ours["extra_kib"] / ours["buffer_kib"] < 1.25  # the gradient, which becomes x.grad


def test_memory_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert torch_memory.main(["--rows", "64", "--cols", "1000"]) == 0
    assert "| softmaxkit |" in capsys.readouterr().out


def test_training_loop_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    assert torch_mlp.main(["--epochs", "1", "--repeats", "1", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| torch", "| softmaxkit.torch", "| sk api"]
    assert rows[1].endswith("| 1.00 |")  # torch's own time is the unit


def test_per_call_table() -> None:
    record = suite.Record("softmax", suite.TENSOR_SHAPES[-1], 2560,
                          {"softmaxkit": 6e-6, "sk api": 1e-5, "torch": 5e-6, "copy": 1e-6})
    row = suite.per_call_table([record]).splitlines()[-1]
    assert row == "| softmax | 64 x 10 | 6.0 | 10.0 | 5.0 | 1.20 | 2.00 |"
