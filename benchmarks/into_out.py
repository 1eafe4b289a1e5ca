"""softmax and log_softmax into ``out=`` against ``np.copyto``, for A/B runs across commits.

``python -m benchmarks.into_out [--label NAME] [--shapes 8192x1024:float32 ...] [--rounds N]
[--threads N] [--vjps]`` times, for each shape, ``sk.softmax(x, out=o)``, ``sk.log_softmax(x, out=o)`` and
``np.copyto`` (the ceiling) interleaved in every round, and prints the medians (ms) and each
one's share of the copy rate. Inputs as the SPEC §4 suite's (standard normal times 4).
``--vjps`` times the vjps instead, ``sk.softmax_vjp(s, g)`` and ``sk.log_softmax_vjp(lp, g)``
(``s`` and ``lp`` those of the same inputs, ``g`` standard normal), under the same names.

For an A/B of two commits, run it from both trees in alternating processes, e.g. with a
worktree of the old commit in ``/tmp/old``::

    for i in 1 2 3; do
        PYTHONPATH=/tmp/old/src python -m benchmarks.into_out --label old
        python -m benchmarks.into_out --label new
    done
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

import softmaxkit as sk
from softmaxkit.benchmark import time_interleaved

DEFAULT_SHAPES = ("8192x1024:float32", "8192x1024:float64", "64x262144:float32", "4x4194304:float32")


def parse_shape(text: str) -> tuple[int, int, np.dtype]:
    """``"ROWSxCOLS:DTYPE"`` (the dtype optional, float32 by default)."""
    dims, _, dtype = text.partition(":")
    rows, _, cols = dims.partition("x")
    try:
        return int(rows), int(cols), np.dtype(dtype or "float32")
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected ROWSxCOLS[:DTYPE] ({e})") from e


def time_shape(rows: int, cols: int, dtype: np.dtype, rounds: int, vjps: bool = False) -> dict[str, float]:
    """Median seconds of softmax and log_softmax into ``out=`` (or of their vjps) and of the
    copy, interleaved."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, cols)) * 4).astype(dtype)
    out, sink = np.empty_like(x), np.empty_like(x)
    if vjps:
        s, lp, g = sk.softmax(x), sk.log_softmax(x), rng.standard_normal((rows, cols)).astype(dtype)
        calls: dict[str, Callable[[], Any]] = {
            "softmax": lambda: sk.softmax_vjp(s, g), "log_softmax": lambda: sk.log_softmax_vjp(lp, g)}
    else:
        calls = {"softmax": lambda: sk.softmax(x, out=out), "log_softmax": lambda: sk.log_softmax(x, out=out)}
    calls["copy"] = lambda: np.copyto(sink, x)
    return time_interleaved(calls, repeats=rounds, warmup=2)  # the suite's timer (SPEC §4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="", help="printed first (which tree ran)")
    parser.add_argument("--shapes", nargs="+", type=parse_shape,
                        default=[parse_shape(s) for s in DEFAULT_SHAPES])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--vjps", action="store_true", help="the vjps of softmax and log_softmax instead")
    args = parser.parse_args(argv)
    if args.threads is not None:
        from softmaxkit.numba import set_num_threads

        set_num_threads(args.threads)
    print(args.label)
    for rows, cols, dtype in args.shapes:
        t = time_shape(rows, cols, dtype, args.rounds, args.vjps)
        shares = " ".join(f"{name} {t[name] * 1e3:.2f} ms / {t['copy'] / t[name]:.0%}"
                          for name in ("softmax", "log_softmax"))
        print(f"{rows} x {cols} {dtype.name}: {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
