"""Where the time of a numba-engine call goes: ``python -m benchmarks.kernels [--threads N] [--log]``.

For each shape of the SPEC §4 CPU suite, interleaved medians (ms) of:

- ``call``: ``softmax(x, axis=...)`` as the suite times it (a fresh result array);
- ``out=``: the same call writing into a preallocated array (the kernels' own speed);
- ``first touch``: ``np.empty_like(x).fill(0)``, what a fresh result's pages cost before any
  arithmetic (NumPy asks for huge pages from 4 MiB; the kernel zeroes each one on first write);
- ``copy``: ``np.copyto`` into a preallocated array (the suite's ceiling).

The two shares of the copy rate (``copy / call`` and ``copy / out=``) separate the kernels'
speed from the allocation's.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import numpy as np

import softmaxkit as sk
from softmaxkit import benchmark as suite


def contenders(x: np.ndarray, axis: int, log: bool) -> dict[str, Callable[[], Any]]:
    f = sk.log_softmax if log else sk.softmax
    out, sink = np.empty_like(x), np.empty_like(x)
    return {
        "call": lambda: f(x, axis=axis),
        "out=": lambda: f(x, axis=axis, out=out),
        "first touch": lambda: np.empty_like(x).fill(0),
        "copy": lambda: np.copyto(sink, x),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--log", action="store_true", help="log_softmax instead of softmax")
    parser.add_argument("--shapes", nargs="+", type=int, help="indices into the suite (default: all)")
    args = parser.parse_args(argv)
    suite.set_threads(args.threads)
    shapes = suite.SHAPES if args.shapes is None else tuple(suite.SHAPES[i] for i in args.shapes)
    print(f"{'log_softmax' if args.log else 'softmax'}, {args.threads} threads, medians of {args.repeats} "
          f"(ms); load average before: {os.getloadavg()[0]:.2f}")
    print("| shape | MiB | call | out= | first touch | copy | call % of copy | out= % of copy |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        x = suite.make_input(shape)
        t = suite.time_interleaved(contenders(x, shape.axis, args.log), args.repeats, warmup=2)
        ms = {k: v * 1e3 for k, v in t.items()}
        print(f"| {shape.label} | {x.nbytes / 2**20:.0f} | {ms['call']:.2f} | {ms['out=']:.2f} | "
              f"{ms['first touch']:.2f} | {ms['copy']:.2f} | {t['copy'] / t['call']:.0%} | "
              f"{t['copy'] / t['out=']:.0%} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
