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

``--spin`` prints instead the CPU time this process uses while its main thread sleeps 5, 20
and 100 ms right after torch's call (medians of 5; one with ``--quick``): what torch's OpenMP
workers burn spinning for their next task, on cores our threads would use. ``OMP_WAIT_POLICY=PASSIVE`` in the
environment (read when torch loads its OpenMP runtime) stops the spinning.

``--runner team`` (or ``pool``) prints instead the medians of softmaxkit's call and its vjp (as
autograd's backward calls it: the operator's kernel, without the dispatcher) taking turns with
torch's own two (the suite's interleaved timing, 31 rounds), ours run on torch's OpenMP team
(what the operators do) or on the engine's own pool, for the whole process: run both in
alternating processes. (Switched per call in one process, the two gave muddled figures: each
runner's threads wait or spin beside the other's.)

``--trace`` prints instead, for three calls in each state (back to back, after 50 ms idle,
right after torch's call), each chunk of rows the engine's threads ran: which thread, its rows,
and when it started and ended (ms from the start of the call).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
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


def _trace(ours: Callable[[], Any], theirs: Callable[[], Any], idle: float) -> None:
    """Each chunk of three calls in each state: thread, rows, start and end."""
    from softmaxkit.numba import _threads

    chunks: list[tuple[str, int, int, float, float]] = []
    untraced = _threads.run

    def traced(kernel: Callable[..., Any], items: int, elements: int, *args: Any) -> None:
        began = time.perf_counter()

        def timed(*a: Any) -> None:
            start = time.perf_counter()
            kernel(*a)
            chunks.append((threading.current_thread().name, a[-2], a[-1], (start - began) * 1e3,
                           (time.perf_counter() - began) * 1e3))
        untraced(timed, items, elements, *args)

    users = [m for name, m in list(sys.modules.items())
             if name.startswith("softmaxkit") and getattr(m, "run", None) is untraced]
    for m in users:
        m.run = traced  # type: ignore[attr-defined]
    try:
        for state, before in (("back to back", ours), ("after idle", lambda: time.sleep(idle)),
                              ("after torch", theirs)):
            for _ in range(3):
                before()
                chunks.clear()
                start = time.perf_counter()
                ours()
                total = (time.perf_counter() - start) * 1e3
                in_order = sorted(chunks, key=lambda c: c[3])
                steps = " | ".join(f"{name} {a}-{b} {s:.2f}..{e:.2f}" for name, a, b, s, e in in_order)
                print(f"{state}: {total:.2f} ms: {steps}")
    finally:
        for m in users:
            m.run = untraced  # type: ignore[attr-defined]


def _runners(x: torch.Tensor, log: bool, runner: str, repeats: int) -> None:
    """Our forward and vjp, on torch's OpenMP team or our own pool, taking turns with torch's."""
    from softmaxkit.numba import _threads

    if runner == "pool":
        _threads.torch_openmp_team = lambda: None  # type: ignore[assignment]
    first = torch.log_softmax(x, -1) if log else torch.softmax(x, -1)
    g = torch.randn(x.shape).to(x.dtype)
    from softmaxkit.torch import _autograd

    vjp = _autograd.log_softmax_vjp if log else _autograd.softmax_vjp
    backward = torch._log_softmax_backward_data if log else torch._softmax_backward_data
    functions = {
        "softmaxkit": (lambda: skt.log_softmax(x, -1)) if log else (lambda: skt.softmax(x, -1)),
        "torch": (lambda: torch.log_softmax(x, -1)) if log else (lambda: torch.softmax(x, -1)),
        "softmaxkit vjp": lambda: vjp(first, g, [1]),
        "torch backward": lambda: backward(g, first, -1, x.dtype),
    }
    for f in functions.values():
        f()
    print(f"{'log_softmax' if log else 'softmax'} of {tuple(x.shape)} {x.dtype}, ours on "
          f"{'our pool' if _threads.torch_openmp_team() is None else 'torch' + chr(39) + 's team'}")
    for name, seconds in suite.time_interleaved(functions, repeats=repeats).items():
        print(f"{name}: {seconds * 1e3:.2f} ms")


def _spin(theirs: Callable[[], Any], repeats: int, idle: float) -> None:
    """CPU time of this process while its main thread sleeps right after torch's call."""
    for sleep in (0.005, 0.02, 0.1):
        used = []
        for _ in range(repeats):
            time.sleep(idle)  # torch's workers asleep again before the call
            theirs()
            start = time.process_time()
            time.sleep(sleep)
            used.append((time.process_time() - start) * 1e3)
        print(f"CPU time while sleeping {sleep * 1e3:.0f} ms after torch's call: "
              f"{statistics.median(used):.1f} ms (of {min(used):.1f}-{max(used):.1f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.after_torch", description=__doc__)
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32", "float64"])
    parser.add_argument("--log", action="store_true", help="log_softmax instead of softmax")
    parser.add_argument("--quick", action="store_true", help="a small tensor and few calls: a smoke run")
    parser.add_argument("--trace", action="store_true", help="each chunk of rows: thread, start, end")
    parser.add_argument("--spin", action="store_true", help="CPU time used while sleeping after torch's call")
    parser.add_argument("--runner", choices=["team", "pool"],
                        help="forward and vjp on torch's OpenMP team or on our pool, in turns with torch")
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
    if args.trace:
        _trace(ours, theirs, 0.05)
        return 0
    if args.runner:
        _runners(x, args.log, args.runner, 1 if args.quick else 31)
        return 0
    if args.spin:
        _spin(theirs, *((1, 0.0) if args.quick else (5, 0.2)))
        return 0
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
