"""A softmaxkit call on a CPU tensor, back to back and right after torch's own call.

``python -m benchmarks.after_torch [--dtype float16] [--log] [--quick]`` times
``softmaxkit.torch.softmax`` (or ``log_softmax``) of an 8,192 x 1,024 tensor (medians of 25
calls, 2 threads):

- back to back (each call follows the previous softmaxkit call);
- right after ``torch``'s same call on the same tensor, with gaps of 0, 1, 5, 20 and 100 ms
  between the two, the pair itself preceded by 50 ms of idle time;
- each alone after 50 ms of idle time, and torch's call back to back.

If torch's OpenMP workers, still spinning after its call, were what slows the call that follows,
the time after torch would fall as the gap grows.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

import softmaxkit.torch as skt
from softmaxkit import benchmark as suite

GAPS = (0.0, 0.001, 0.005, 0.02, 0.1)


def _median_ms(f: Callable[[], Any], calls: int, before: Callable[[], Any] = lambda: None) -> float:
    times = []
    for _ in range(calls):
        before()
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.after_torch", description=__doc__)
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32", "float64"])
    parser.add_argument("--log", action="store_true", help="log_softmax instead of softmax")
    parser.add_argument("--quick", action="store_true", help="a small tensor and few calls: a smoke run")
    args = parser.parse_args(argv)
    suite.set_threads(2)
    torch.set_num_threads(2)
    rows, calls, idle = (64, 3, 0.0) if args.quick else (8192, 25, 0.05)
    x = torch.randn(rows, 1024).to(getattr(torch, args.dtype))
    ours = (lambda: skt.log_softmax(x, -1)) if args.log else (lambda: skt.softmax(x, -1))
    theirs = (lambda: torch.log_softmax(x, -1)) if args.log else (lambda: torch.softmax(x, -1))
    for _ in range(3):
        ours()
        theirs()
    print(f"{'log_softmax' if args.log else 'softmax'} of {rows} x 1024 {args.dtype}, 2 threads, "
          f"medians of {calls} calls (ms)")
    print(f"softmaxkit back to back: {_median_ms(ours, calls):.2f}")
    for gap in GAPS:
        def before(gap: float = gap) -> None:
            time.sleep(idle)
            theirs()
            if gap:
                time.sleep(gap)
        print(f"softmaxkit {gap * 1e3:.0f} ms after torch's call: {_median_ms(ours, calls, before):.2f}")
    def rest() -> None:
        time.sleep(idle)

    print(f"softmaxkit alone, after {idle * 1e3:.0f} ms idle: {_median_ms(ours, calls, rest):.2f}")
    print(f"torch alone, after {idle * 1e3:.0f} ms idle: {_median_ms(theirs, calls, rest):.2f}")
    print(f"torch back to back: {_median_ms(theirs, calls):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
