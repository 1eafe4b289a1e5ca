"""The gradients over a non-last axis against the row kernels: ``python -m benchmarks.columns``.

For the SPEC §4 shape whose softmax axis is not last (1,024 x 8,192 float32 over axis 0), and
its float64 twin, interleaved medians (ms) of each gradient on NumPy arrays through the main
API (the numba engine):

- ``columns``: over axis 0 of the C-contiguous array (the column kernels, no transposed copy);
- ``rows``: the same over axis 1 of the transposed copy, made beforehand (the row kernels:
  the goal is to be on par with them);
- ``rows + copies``: what the engine did before it had column kernels: transposed copies of
  the inputs, the row kernels, a transposed copy of the result back into the input's order;
- ``copy``: ``np.copyto`` of one array (the ceiling).

The functions: ``softmax_vjp``, ``log_softmax_vjp`` and ``cross_entropy(..., return_grad=True)``.
Autograd on tensors (the same kernels through ``softmaxkit.torch``) is in
``python -m benchmarks.cpu --tensors --ops softmax+backward log_softmax+backward
cross_entropy+backward --shapes 6``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

import numpy as np

import softmaxkit as sk
from softmaxkit import benchmark as suite

FUNCTIONS = ("softmax_vjp", "log_softmax_vjp", "cross_entropy")


def contenders(function: str, x: np.ndarray) -> dict[str, Callable[[], Any]]:
    """The timed calls of ``function`` over axis 0 of the C-contiguous ``x``."""
    sink = np.empty_like(x)
    if function == "cross_entropy":
        labels = np.random.default_rng(1).integers(0, x.shape[0], x.shape[1])
        xt = np.ascontiguousarray(x.T)
        return {
            "columns": lambda: sk.cross_entropy(x, labels, axis=0, return_grad=True),
            "rows": lambda: sk.cross_entropy(xt, labels, axis=1, return_grad=True),
            "rows + copies": lambda: _transposed_back(
                sk.cross_entropy(np.ascontiguousarray(x.T), labels, axis=1, return_grad=True)[1]),
            "copy": lambda: np.copyto(sink, x),
        }
    vjp = getattr(sk, function)
    first = sk.log_softmax(x, axis=0) if function == "log_softmax_vjp" else sk.softmax(x, axis=0)
    g = suite.make_input(suite.Shape(*x.shape, "", dtype=str(x.dtype)), seed=2)
    first_t, g_t = np.ascontiguousarray(first.T), np.ascontiguousarray(g.T)
    return {
        "columns": lambda: vjp(first, g, axis=0),
        "rows": lambda: vjp(first_t, g_t, axis=1),
        "rows + copies": lambda: _transposed_back(
            vjp(np.ascontiguousarray(first.T), np.ascontiguousarray(g.T), axis=1)),
        "copy": lambda: np.copyto(sink, x),
    }


def _transposed_back(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows.T)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.columns", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--quick", action="store_true", help="a tiny shape, 1 repeat: a smoke run")
    args = parser.parse_args(argv)
    suite.set_threads(args.threads)
    base = next(s for s in suite.SHAPES if s.axis == 0)
    shapes = [suite.Shape(base.rows, base.cols, base.why, dtype, axis=0) for dtype in ("float32", "float64")]
    if args.quick:
        shapes, args.repeats = [s.scaled(4096) for s in shapes], 1
    print(f"{args.threads} threads, medians of {args.repeats} (ms); load average before: "
          f"{os.getloadavg()[0]:.2f}")
    print("| function | shape | columns | rows | rows + copies | copy | columns / rows |")
    print("|---|---|---|---|---|---|---|")
    for shape in shapes:
        x = suite.make_input(shape)
        for function in FUNCTIONS:
            t = suite.time_interleaved(contenders(function, x), args.repeats, warmup=1 if args.quick else 2)
            ms = {k: v * 1e3 for k, v in t.items()}
            print(f"| {function} | {shape.label} | {ms['columns']:.2f} | {ms['rows']:.2f} | "
                  f"{ms['rows + copies']:.2f} | {ms['copy']:.2f} | {t['columns'] / t['rows']:.2f} |",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
