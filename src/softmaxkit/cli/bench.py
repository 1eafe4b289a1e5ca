"""``softmaxkit bench``: the SPEC §4 CPU suite on this machine, against the installed peers."""

from __future__ import annotations

import argparse
import json
import os
from types import ModuleType
from typing import TYPE_CHECKING

from softmaxkit.cli import UsageError
from softmaxkit.cli._progress import progress_bar

if TYPE_CHECKING:  # softmaxkit.benchmark is imported when the command runs
    from softmaxkit.benchmark import Record, Shape

QUICK_ELEMENTS = 65_536
"""Elements per shape with ``--quick``: a run of seconds that still exercises every kernel."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="time softmaxkit against PyTorch, SciPy, NumPy and a memory copy",
        description="Run the benchmark suite (SPEC §4): GB/s = 2 x bytes / median time, contenders "
                    "interleaved, and softmaxkit's speed-up over each peer that is installed.",
    )
    p.add_argument("--quick", action="store_true", help="small shapes, 3 repeats: seconds, not minutes")
    p.add_argument("--ops", nargs="+", metavar="OP", help="softmax, log_softmax, cross_entropy (default all)")
    p.add_argument("--shapes", nargs="+", type=int, metavar="I", help="indices into the suite (default all)")
    p.add_argument("--threads", type=int, default=None, help="threads for every contender (default: all)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per contender (median taken)")
    p.add_argument("--json", action="store_true", help="print the records as JSON instead of a table")
    p.add_argument("--plot", metavar="FILE.png", help="also save a bar chart of the speed-ups")
    p.set_defaults(run=run)


def _selection(args: argparse.Namespace, benchmark: ModuleType) -> tuple[list[str], list[Shape]]:
    ops = args.ops or list(benchmark.OPERATIONS)
    unknown = sorted(set(ops) - set(benchmark.OPERATIONS))
    if unknown:
        raise UsageError(f"unknown operation {unknown[0]!r}; choose from {', '.join(benchmark.OPERATIONS)}")
    indices = args.shapes if args.shapes is not None else range(len(benchmark.SHAPES))
    bad = [i for i in indices if not 0 <= i < len(benchmark.SHAPES)]
    if bad:
        raise UsageError(f"shape index {bad[0]} is out of range 0..{len(benchmark.SHAPES) - 1}")
    return ops, [benchmark.SHAPES[i] for i in indices]


def as_json(records: list[Record], benchmark: ModuleType) -> str:
    return json.dumps([
        {"operation": r.operation, "shape": r.shape.label, "rows": r.shape.rows, "cols": r.shape.cols,
         "dtype": r.shape.dtype, "axis": r.shape.axis, "bytes": r.nbytes,
         "seconds": r.seconds, "gbps": {n: r.gbps(n) for n in r.seconds},
         "speedup": {n: r.ratio(n) for n in r.seconds if n != benchmark.BASELINE}}
        for r in records
    ], indent=2)


def plot(records: list[Record], benchmark: ModuleType, path: str) -> None:
    from softmaxkit.cli._plotting import pyplot, save_figure

    plt = pyplot()
    peers = sorted({n for r in records for n in r.seconds} - {benchmark.BASELINE})
    figure, ax = plt.subplots(figsize=(max(6, 0.9 * len(records) + 2), 4), layout="constrained")
    width = 0.8 / max(len(peers), 1)
    for k, peer in enumerate(peers):
        xs = [i + k * width for i, r in enumerate(records) if peer in r.seconds]
        ys = [r.ratio(peer) for r in records if peer in r.seconds]
        ax.bar(xs, ys, width, label=f"vs {peer}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(records))],
                  [f"{r.operation}\n{r.shape.label}" for r in records], rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("softmaxkit speed-up (time ratio)")
    ax.legend(fontsize=8)
    save_figure(figure, path)
    plt.close(figure)


def run(args: argparse.Namespace) -> int:
    from softmaxkit import benchmark

    ops, shapes = _selection(args, benchmark)
    if args.repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if args.plot:
        from softmaxkit.cli._plotting import pyplot

        pyplot()  # fail before minutes of timing if matplotlib is missing
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = usable if args.threads is None else args.threads
    if threads < 1:
        raise UsageError("--threads must be at least 1")
    with progress_bar() as progress:
        task = progress.add_task("benchmarks", total=len(ops) * len(shapes))
        records = benchmark.run(
            ops, shapes, threads=threads, repeats=3 if args.quick else args.repeats, warmup=1,
            quick_elements=QUICK_ELEMENTS if args.quick else None,
            progress=lambda record: progress.advance(task),
        )
    if args.json:
        print(as_json(records, benchmark))
    else:
        print(f"{threads} threads; x PEER = PEER's time / softmaxkit's time (> 1: softmaxkit is faster)")
        print(benchmark.markdown_table(records))
        print()
        print(benchmark.summary(records))
    if args.plot:
        plot(records, benchmark, args.plot)
    return 0
