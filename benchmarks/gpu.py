"""SPEC §4's GPU suite: softmaxkit's CUDA engine vs torch vs the seed's CuPy code vs a copy.

One command on a CUDA machine (``pip install -e '.[cuda]'`` plus a CUDA build of torch)::

    python benchmarks/gpu.py                       # softmax, every suite shape
    python benchmarks/gpu.py --op log_softmax --op cross_entropy --repeat 11
    python benchmarks/gpu.py --list                # the shapes and launch plans, no GPU needed

Protocol (SPEC §4): every contender runs on the same device array, interleaved, timed by
CUDA events around each call, median of ``--repeat`` (>= 7) runs after ``--warmup`` runs.
Throughput is ``2 * bytes(x) / time`` (one read, one write); the ceiling is a
device-to-device copy of the same bytes. Ratios are softmaxkit's speed over each contender's.

``--op sample`` is issue 17's case instead of the suite: 32 x 128,256 float32 logits,
temperature 0.7, top-k 50, top-p 0.9, one draw per row; ``sk.sample`` (uniforms drawn on the
host from a NumPy generator, as a user's call does) against the torch recipes of
``benchmarks/sampling.py`` on the GPU (a full sort per row; ``torch.topk`` first). Its GB/s
count one read of the logits (``bytes(x) / time``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from softmaxkit.benchmark import SHAPES as CPU_SHAPES
from softmaxkit.benchmark import Shape

OPERATIONS = ("softmax", "log_softmax", "cross_entropy", "sample")
OURS, TORCH, SEED, COPY = "softmaxkit", "torch", "seed_cupy", "copy"
TORCH_TOPK = "torch_topk"
FACE = "softmaxkit.torch"
"""The drop-in face on the torch tensor sharing the array's memory (forward + backward for the loss)."""


SHAPES: tuple[Shape, ...] = (*CPU_SHAPES, Shape(16_384, 131_072, "GPU only: 8 GiB of float32"))
"""SPEC §4: the CPU suite plus 16,384 x 131,072."""

SAMPLING_SHAPE = Shape(32, 128_256, "issue 17: a batch of 32 over Llama 3's vocabulary")
"""The one shape of ``--op sample`` (the CPU benchmark's, benchmarks/sampling.py)."""


@dataclass(frozen=True)
class Result:
    operation: str
    shape: str
    contender: str
    median_ms: float
    gb_per_s: float


def throughput(nbytes: int, seconds: float) -> float:
    """GB/s of one read and one write of ``nbytes``."""
    return 2 * nbytes / seconds / 1e9


def ratios(results: Sequence[Result]) -> dict[str, float]:
    """softmaxkit's speed over each other contender's (> 1: softmaxkit is faster)."""
    ours = next(r.median_ms for r in results if r.contender == OURS)
    return {r.contender: r.median_ms / ours for r in results if r.contender != OURS}


def table(results: Sequence[Result]) -> str:
    """A markdown table: one row per (operation, shape), GB/s per contender, ratios."""
    contenders = list(dict.fromkeys(r.contender for r in results))
    head = ["op", "shape", *(f"{c} GB/s" for c in contenders), "vs torch", "vs seed", "face vs torch",
            "of copy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.operation, r.shape), []).append(r)
    for (op, shape), group in groups.items():
        speed = {r.contender: r.gb_per_s for r in group}
        ratio = ratios(group)
        cells = [op, shape, *(f"{speed[c]:.0f}" if c in speed else "-" for c in contenders)]
        cells += [f"{ratio[c]:.2f}x" if c in ratio else "-" for c in (TORCH, SEED)]
        cells.append(f"{speed[FACE] / speed[TORCH]:.2f}x" if FACE in speed and TORCH in speed else "-")
        cells.append(f"{100 * ratio[COPY]:.0f}%" if COPY in ratio else "-")  # copy time / ours
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="SPEC §4 GPU benchmark of softmaxkit's CUDA engine")
    parser.add_argument("--op", action="append", choices=OPERATIONS, dest="ops",
                        help="operation to time (repeatable; default softmax)")
    parser.add_argument("--shape", action="append", type=int, dest="shapes", metavar="INDEX",
                        help=f"suite entries by index 0-{len(SHAPES) - 1} (repeatable; default all)")
    parser.add_argument("--repeat", type=int, default=9, help="timed runs per contender (>= 7)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--list", action="store_true", help="print shapes and launch plans, then exit")
    args = parser.parse_args(argv)
    if args.repeat < 7:
        parser.error("--repeat must be at least 7 (SPEC §4)")
    args.ops = args.ops or ["softmax"]
    args.shapes = [SHAPES[i] for i in args.shapes] if args.shapes else list(SHAPES)
    return args


def plans(shape: Shape, sm_count: int = 132, max_shared_bytes: int = 227 * 1024) -> str:
    """The CUDA engine's launch plan for ``shape`` (an H100's figures unless given)."""
    from softmaxkit.cuda import _plan

    rows, n = (shape.cols, shape.rows) if shape.axis == 0 else (shape.rows, shape.cols)
    p = _plan.plan_launch("softmax", shape.dtype, rows, n, aligned=True, sm_count=sm_count,
                          max_shared_bytes=max_shared_bytes)
    split = f", {p.splits} splits" if p.strategy == "split" else ""
    return f"{p.strategy}: {', '.join(p.kernels)} x {p.grid} blocks{split}"


def sampling_plan(shape: Shape) -> str:
    """The sampling kernel and grid for ``shape`` (one block per row)."""
    from softmaxkit.cuda import _plan

    block = _plan.sampling_block(shape.cols)
    return f"{_plan.sampling_name('sk_sample_rows', shape.dtype, block)} x {shape.rows} blocks"


# --- contenders (need a GPU) -------------------------------------------------------------------------

def seed_softmax_cupy(x: Any) -> Any:
    """The seed's ``Softmax_cupy`` (002): max, exp of the shifted array, sum, divide."""
    import cupy as cp

    max_x = cp.amax(x, 1).reshape(x.shape[0], 1)
    e_x = cp.exp(x - max_x)
    return e_x / e_x.sum(axis=1).reshape((-1, 1))


def seed_log_softmax_cupy(x: Any) -> Any:
    """The seed's approach for log_softmax: the same temporaries, then a log."""
    import cupy as cp

    shifted = x - cp.amax(x, 1).reshape(x.shape[0], 1)
    return shifted - cp.log(cp.exp(shifted).sum(axis=1)).reshape((-1, 1))


def _cpu_sampling_benchmark() -> Any:
    """benchmarks/sampling.py (its torch recipes and parameters), loaded by path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("sampling.py")
    spec = importlib.util.spec_from_file_location("benchmarks_sampling", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sampling_contenders(x: Any) -> dict[str, Callable[[], Any]]:
    """``sk.sample`` and the torch recipes on the CuPy logits ``x`` (torch shares its memory)."""
    import numpy as np

    import softmaxkit as sk

    cpu = _cpu_sampling_benchmark()
    t, k, p = cpu.TEMPERATURE, cpu.TOP_K, cpu.TOP_P
    rng = np.random.default_rng(0)
    calls: dict[str, Callable[[], Any]] = {
        OURS: lambda: sk.sample(x, temperature=t, top_k=k, top_p=p, rng=rng, engine="cuda"),
    }
    torch = _torch_cuda()
    if torch is not None:
        xt = torch.from_dlpack(x)
        generator = torch.Generator(device=xt.device).manual_seed(0)
        calls[TORCH] = lambda: cpu.torch_sort_recipe(xt, t, k, p, generator)
        calls[TORCH_TOPK] = lambda: cpu.torch_topk_recipe(xt, t, k, p, generator)
    return calls


def contenders(operation: str, x: Any, axis: int) -> dict[str, Callable[[], Any]]:
    """The timed calls of ``operation`` on the CuPy array ``x`` (torch shares its memory)."""
    import cupy

    import softmaxkit as sk

    if operation == "sample":
        return sampling_contenders(x)
    out = cupy.empty_like(x)
    nbytes = x.nbytes
    calls: dict[str, Callable[[], Any]] = {}
    torch = _torch_cuda()
    xt = torch.from_dlpack(x) if torch is not None else None
    if operation in ("softmax", "log_softmax"):
        ours = sk.log_softmax if operation == "log_softmax" else sk.softmax
        seed = seed_log_softmax_cupy if operation == "log_softmax" else seed_softmax_cupy
        calls[OURS] = lambda: ours(x, axis=axis, engine="cupy")
        if xt is not None:
            theirs = torch.log_softmax if operation == "log_softmax" else torch.softmax
            calls[TORCH] = lambda: theirs(xt, dim=axis)
            face = getattr(_face(), operation)
            calls[FACE] = lambda: face(xt, dim=axis)
        calls[SEED] = (lambda: seed(x.T).T) if axis == 0 else (lambda: seed(x))
    else:
        labels = cupy.random.default_rng(0).integers(0, x.shape[-1], x.shape[0])
        calls[OURS] = lambda: sk.cross_entropy(x, labels, return_grad=True, engine="cupy")
        if xt is not None:
            lt = torch.from_dlpack(labels)

            def torch_forward_backward() -> Any:
                logits = xt.detach().requires_grad_()
                torch.nn.functional.cross_entropy(logits, lt).backward()
                return logits.grad

            calls[TORCH] = torch_forward_backward

            def face_forward_backward() -> Any:
                logits = xt.detach().requires_grad_()
                _face().cross_entropy(logits, lt).backward()
                return logits.grad

            calls[FACE] = face_forward_backward
    calls[COPY] = lambda: out.data.copy_from_device_async(x.data, nbytes)
    return calls


def _face() -> Any:
    import softmaxkit.torch

    return softmaxkit.torch


def _torch_cuda() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def time_interleaved(calls: dict[str, Callable[[], Any]], repeat: int, warmup: int) -> dict[str, float]:
    """Median milliseconds per contender, CUDA events around each call, contenders interleaved."""
    import cupy

    for _ in range(warmup):
        for call in calls.values():
            call()
    device = cupy.cuda.Device()
    times: dict[str, list[float]] = {name: [] for name in calls}
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    for _ in range(repeat):
        for name, call in calls.items():
            # CuPy and torch both launch on the legacy default stream here, so the events
            # bracket either library's kernels; host-side overhead counts where it idles the GPU.
            device.synchronize()
            start.record()
            call()
            end.record()
            end.synchronize()
            times[name].append(cupy.cuda.get_elapsed_time(start, end))
    return {name: statistics.median(t) for name, t in times.items()}


def shapes_of(operation: str, shapes: Sequence[Shape]) -> list[Shape]:
    """The suite's shapes, or issue 17's one shape for ``sample``."""
    return [SAMPLING_SHAPE] if operation == "sample" else list(shapes)


def run(args: argparse.Namespace) -> list[Result]:
    import cupy

    results = []
    for operation in args.ops:
        for shape in shapes_of(operation, args.shapes):
            rng = cupy.random.default_rng(0)
            x = (rng.standard_normal((shape.rows, shape.cols), dtype=cupy.float32) * 4).astype(shape.dtype)
            medians = time_interleaved(contenders(operation, x, shape.axis), args.repeat, args.warmup)
            nbytes = x.nbytes // 2 if operation == "sample" else x.nbytes  # sampling writes no array
            for name, ms in medians.items():
                results.append(Result(operation, shape.label, name, ms, throughput(nbytes, ms / 1e3)))
            del x
            cupy.get_default_memory_pool().free_all_blocks()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for i, shape in enumerate(args.shapes):
            print(f"{i}: {shape.label} ({shape.why}): {plans(shape)}")
        if "sample" in args.ops:
            print(f"sample: {SAMPLING_SHAPE.label} ({SAMPLING_SHAPE.why}): {sampling_plan(SAMPLING_SHAPE)}")
        return 0
    import cupy

    device = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    results = run(args)
    print(f"device: {device}; median of {args.repeat} after {args.warmup} warm-up runs\n")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "results": [asdict(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
