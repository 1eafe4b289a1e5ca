"""The GPU benchmark's CPU side: its suite, arguments, arithmetic and report (no GPU needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).parents[1] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu():
    spec = importlib.util.spec_from_file_location("benchmarks_gpu", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_suite_is_spec_section_4(gpu):
    entries = {(s.rows, s.cols, s.dtype, s.axis) for s in gpu.SHAPES}
    spec = {(1_000_000, 10, "float32", -1), (65_536, 128, "float32", -1), (8_192, 1_024, "float32", -1),
            (1_024, 32_000, "float32", -1), (64, 262_144, "float32", -1), (4, 4_194_304, "float32", -1),
            (1_024, 8_192, "float32", 0), (8_192, 1_024, "float64", -1), (8_192, 1_024, "float16", -1),
            (16_384, 131_072, "float32", -1)}
    assert entries == spec
    assert gpu.SHAPES[-1].nbytes == 8 * 2**30


def test_arguments(gpu):
    args = gpu.parse_args([])
    assert args.ops == ["softmax"] and args.shapes == list(gpu.SHAPES) and args.repeat >= 7
    args = gpu.parse_args(["--op", "log_softmax", "--op", "cross_entropy", "--shape", "0", "--shape", "9"])
    assert args.ops == ["log_softmax", "cross_entropy"]
    assert [s.cols for s in args.shapes] == [10, 131_072]
    with pytest.raises(SystemExit):
        gpu.parse_args(["--repeat", "3"])
    with pytest.raises(SystemExit):
        gpu.parse_args(["--op", "sigmoid"])


def test_throughput_and_report(gpu):
    assert gpu.throughput(10**9, 1.0) == 2.0
    r = [gpu.Result("softmax", "8,192 x 1,024", name, ms, gpu.throughput(8192 * 1024 * 4, ms / 1e3))
         for name, ms in (("softmaxkit", 1.0), ("torch", 1.5), ("seed_cupy", 4.0), ("copy", 0.9))]
    assert gpu.ratios(r) == {"torch": 1.5, "seed_cupy": 4.0, "copy": 0.9}
    text = gpu.table(r)
    assert "| softmax | 8,192 x 1,024 | 67 | 45 | 17 | 75 | 1.50x | 4.00x | - | 90% |" in text
    face = gpu.Result("softmax", "8,192 x 1,024", gpu.FACE, 1.2, gpu.throughput(8192 * 1024 * 4, 1.2e-3))
    assert "| 1.25x | 90% |" in gpu.table([*r, face])  # the face on tensors against torch's own


def test_list_shows_every_shape_with_its_plan(gpu, capsys):
    assert gpu.main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(gpu.SHAPES)
    assert "warp" in lines[0] and "smem" in lines[3] and "split" in lines[-1]
    assert "sk_softmax_rows<float, 32, 128, 4, 8>" in lines[6]  # axis=0: 8,192 rows of 1,024


def test_sample_is_issue_17s_case(gpu, capsys):
    args = gpu.parse_args(["--op", "sample"])
    assert args.ops == ["sample"]
    assert gpu.shapes_of("sample", args.shapes) == [gpu.SAMPLING_SHAPE]
    shape = gpu.SAMPLING_SHAPE
    assert (shape.rows, shape.cols, shape.dtype) == (32, 128_256, "float32")
    assert gpu.shapes_of("softmax", args.shapes) == list(gpu.SHAPES)
    cpu = gpu._cpu_sampling_benchmark()  # the torch recipes it times on the GPU
    assert (cpu.TEMPERATURE, cpu.TOP_K, cpu.TOP_P) == (0.7, 50, 0.9)
    assert gpu.main(["--list", "--op", "sample"]) == 0
    assert "sample: 32 x 128,256" in capsys.readouterr().out.splitlines()[-1]
    assert "sk_sample_rows<float, 512> x 32 blocks" in gpu.sampling_plan(gpu.SAMPLING_SHAPE)
