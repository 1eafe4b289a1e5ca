"""Per-call cost of softmaxkit on eager JAX arrays, against JAX's own functions.

``python -m benchmarks.jax_eager`` times, on a 64 x 10 float32 JAX array (a classifier's
logits; the goal of issue 15 is softmax within 3x ``jax.nn.softmax``), each softmaxkit call
and its JAX counterpart in turns: every round runs each contender ``--calls`` times, and the
median over ``--rounds`` rounds is reported in microseconds per call, with the ratio
softmaxkit / JAX (< 1: softmaxkit is cheaper). Results are waited for (``block_until_ready``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def contenders(rows: int, cols: int) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """``{operation: (softmaxkit call, JAX call)}`` on one random float32 array."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import softmaxkit as sk

    x = jnp.asarray(np.random.default_rng(0).standard_normal((rows, cols)), dtype=jnp.float32)
    mask = jnp.asarray(np.random.default_rng(1).random((rows, cols)) < 0.9)
    return {
        "softmax": (lambda: sk.softmax(x), lambda: jax.nn.softmax(x)),
        "log_softmax": (lambda: sk.log_softmax(x), lambda: jax.nn.log_softmax(x)),
        "softmax T=2": (lambda: sk.softmax(x, temperature=2.0), lambda: jax.nn.softmax(x / 2.0)),
        "softmax where=": (lambda: sk.softmax(x, where=mask), lambda: jax.nn.softmax(x, where=mask)),
        "logsumexp axis=1": (lambda: sk.logsumexp(x, axis=1),
                             lambda: jax.scipy.special.logsumexp(x, axis=1)),
    }


def per_call_us(function: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        result = function()
    result.block_until_ready()
    return (time.perf_counter() - start) / calls * 1e6


def run(rows: int, cols: int, calls: int, rounds: int) -> list[tuple[str, float, float]]:
    """``(operation, softmaxkit µs, JAX µs)`` per operation, medians over interleaved rounds."""
    table = contenders(rows, cols)
    for ours, theirs in table.values():  # warm-up: compile both
        per_call_us(ours, 3)
        per_call_us(theirs, 3)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in table}
    for _ in range(rounds):
        for name, (ours, theirs) in table.items():
            times[name][0].append(per_call_us(ours, calls))
            times[name][1].append(per_call_us(theirs, calls))
    return [(name, statistics.median(a), statistics.median(b)) for name, (a, b) in times.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=(64, 10), metavar=("ROWS", "COLS"))
    parser.add_argument("--calls", type=int, default=200, help="calls per contender per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a few calls, one round: a smoke test")
    args = parser.parse_args(argv)
    calls, rounds = (3, 1) if args.quick else (args.calls, args.rounds)
    rows, cols = args.shape
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"eager JAX, {rows} x {cols} float32, median of {rounds} rounds of {calls} calls "
          f"(load average {load:.2f})")
    print("| operation | softmaxkit µs | JAX µs | softmaxkit / JAX |")
    print("|---|---|---|---|")
    for name, ours, theirs in run(rows, cols, calls, rounds):
        print(f"| {name} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
