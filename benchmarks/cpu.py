"""Run the SPEC §4 CPU suite: ``python -m benchmarks.cpu [--quick] [--threads N] [--ops ...]``.

Prints one markdown table (GB/s of every contender, softmaxkit's speed-up over each peer,
its share of the copy rate) and the median speed-ups, as pasted into BENCHMARKS.md.
``--tensors`` runs the tensor suite instead: CPU torch tensors through ``softmaxkit.torch``
and the main API against torch's own ops, forward and forward + backward, plus 64 x 10.
"""

from __future__ import annotations

import argparse
import platform
import sys

from softmaxkit import benchmark as suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cpu", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 1 repeat: a smoke run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tensors", action="store_true", help="the tensor suite (torch CPU tensors)")
    parser.add_argument("--ops", nargs="+", choices=suite.TENSOR_OPERATIONS,
                        help="default: every operation of the suite")
    parser.add_argument("--shapes", nargs="+", type=int, help="indices into the suite (default: all)")
    args = parser.parse_args(argv)
    every_shape = suite.TENSOR_SHAPES if args.tensors else suite.SHAPES
    shapes = every_shape if args.shapes is None else tuple(every_shape[i] for i in args.shapes)
    operations = args.ops or (suite.TENSOR_OPERATIONS if args.tensors else suite.OPERATIONS)
    if not args.tensors and not set(operations) <= set(suite.OPERATIONS):
        parser.error(f"without --tensors the operations are {', '.join(suite.OPERATIONS)}")
    print(f"# {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"python {platform.python_version()}", file=sys.stderr)
    records = suite.run(
        operations, shapes, threads=args.threads, repeats=1 if args.quick else args.repeats,
        warmup=1, quick_elements=4096 if args.quick else None,
        progress=lambda r: print(f"{r.operation} {r.shape.label}: "
                                 f"{r.gbps(suite.BASELINE):.2f} GB/s", file=sys.stderr),
        tensors=args.tensors,
    )
    print(suite.markdown_table(records))
    print()
    print(suite.summary(records))
    small = [r for r in records if r.nbytes < 1 << 16]
    if small:  # the per-call shapes: time per call says more than GB/s
        print()
        print(suite.per_call_table(small))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
