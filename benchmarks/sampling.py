"""Sampling on CPU: ``python -m benchmarks.sampling [--quick] [--threads N] [--repeats R]``.

Issue 17's cases, batch 32 x vocabulary 128,256 float32 logits:

- filtered: temperature 0.7, top-k 50, top-p 0.9, one draw per row. Contenders: softmaxkit on
  the NumPy array and on the CPU tensor; the usual torch recipe (sort the whole vocabulary,
  mask past k, softmax, cumsum, mask past p, softmax, multinomial, gather); and a leaner torch
  recipe that sorts only ``torch.topk``'s 50 survivors.
- plain: temperature 0.7 only. Contender: ``torch.multinomial(torch.softmax(x / T))``.

Every contender runs at the same thread count (torch and Numba both set to ``--threads``);
runs are interleaved, the median of ``--repeats`` after one warm-up is reported, as SPEC §4
asks. Prints a markdown table with milliseconds and softmaxkit's speed-ups.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import softmaxkit as sk

TEMPERATURE, TOP_K, TOP_P = 0.7, 50, 0.9


def torch_sort_recipe(logits: Any, temperature: float, k: int, p: float, generator: Any) -> Any:
    """The common recipe (Hugging Face's TopK + TopP warpers, fused): a full sort per row."""
    import torch

    scaled = logits / temperature
    values, order = torch.sort(scaled, dim=-1, descending=True)
    values[:, k:] = -float("inf")
    probs = torch.softmax(values, dim=-1)
    beyond = (torch.cumsum(probs, dim=-1) - probs) >= p
    values = values.masked_fill(beyond, -float("inf"))
    pick = torch.multinomial(torch.softmax(values, dim=-1), 1, generator=generator)
    return order.gather(-1, pick)


def torch_topk_recipe(logits: Any, temperature: float, k: int, p: float, generator: Any) -> Any:
    """A leaner recipe: ``torch.topk`` first, then top-p over the k survivors only."""
    import torch

    values, index = torch.topk(logits / temperature, k, dim=-1)
    probs = torch.softmax(values, dim=-1)
    beyond = (torch.cumsum(probs, dim=-1) - probs) >= p
    probs = probs.masked_fill(beyond, 0.0)
    pick = torch.multinomial(probs, 1, generator=generator)
    return index.gather(-1, pick)


def torch_plain(logits: Any, temperature: float, generator: Any) -> Any:
    import torch

    return torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1, generator=generator)


def interleaved(contenders: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each contender; one warm-up each, then rounds in turn."""
    for run in contenders.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def run(rows: int, vocab: int, threads: int, repeats: int) -> list[tuple[str, dict[str, float]]]:
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    x = (np.random.default_rng(0).standard_normal((rows, vocab), dtype=np.float32) * 3)
    xt = torch.from_numpy(x)
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    k = min(TOP_K, vocab)
    filtered = interleaved({
        "softmaxkit (NumPy)": lambda: sk.sample(x, temperature=TEMPERATURE, top_k=k, top_p=TOP_P, rng=rng),
        "softmaxkit (tensor)": lambda: sk.sample(xt, temperature=TEMPERATURE, top_k=k, top_p=TOP_P, rng=g),
        "torch sort recipe": lambda: torch_sort_recipe(xt, TEMPERATURE, k, TOP_P, g),
        "torch topk recipe": lambda: torch_topk_recipe(xt, TEMPERATURE, k, TOP_P, g),
    }, repeats)
    plain = interleaved({
        "softmaxkit (NumPy)": lambda: sk.sample(x, temperature=TEMPERATURE, rng=rng),
        "softmaxkit (tensor)": lambda: sk.sample(xt, temperature=TEMPERATURE, rng=g),
        "torch multinomial(softmax)": lambda: torch_plain(xt, TEMPERATURE, g),
    }, repeats)
    return [(f"T {TEMPERATURE}, top-k {k}, top-p {TOP_P}", filtered), (f"T {TEMPERATURE} only", plain)]


def markdown(results: list[tuple[str, dict[str, float]]]) -> str:
    lines = ["| case | contender | ms | softmaxkit (NumPy) speed-up |", "|---|---|---:|---:|"]
    for case, seconds in results:
        ours = seconds["softmaxkit (NumPy)"]
        for name, t in seconds.items():
            ratio = "" if name.startswith("softmaxkit") else f"{t / ours:.1f}x"
            lines.append(f"| {case} | {name} | {t * 1e3:.2f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sampling", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 x 4,096 logits, 1 repeat: a smoke run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rows, vocab = (4, 4096) if args.quick else (32, 128_256)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.processor() or platform.machine()}, {args.threads} threads, {rows} x {vocab:,} "
          f"float32, load average {load:.1f}", file=sys.stderr)
    results = run(rows, vocab, args.threads, 1 if args.quick else args.repeats)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
