"""A small training run on CPU tensors: the digits MLP trained with each cross_entropy.

``python -m benchmarks.torch_mlp [--epochs E] [--repeats R] [--threads T]``

The model and loop of ``tests/test_torch_face.py`` (64-32-10 MLP, SGD with momentum, batches
of 128, label smoothing 0.05, the same seed for every contender): ``torch`` trains with
``F.cross_entropy``, ``softmaxkit.torch`` with the drop-in face, ``sk api`` with
``sk.cross_entropy(..., axis=1)`` on the tensors. Every contender runs the same number of
steps; the runs take turns, median of ``--repeats`` after one warm-up run each. With 64 x 10
logits per step, the loss is a small part of each step: this measures the per-call cost of
the loss inside a real loop, not the kernels' throughput.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any


def digits() -> tuple[Any, Any]:
    import torch
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)


def train(loss_fn: Callable[[Any, Any], Any], X: Any, y: Any, epochs: int) -> float:
    """Seconds to train the MLP for ``epochs`` epochs with ``loss_fn`` (the training run that
    ``tests/test_torch_face.py`` compares with ``F.cross_entropy``, loss by loss)."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    start = time.perf_counter()
    for _ in range(epochs):
        for first in range(0, len(X), 128):
            opt.zero_grad()
            loss = loss_fn(model(X[first:first + 128]), y[first:first + 128])
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def contenders() -> dict[str, Callable[[Any, Any], Any]]:
    import torch.nn.functional as F

    import softmaxkit as sk
    import softmaxkit.torch as skt

    return {
        "torch": lambda z, t: F.cross_entropy(z, t, label_smoothing=0.05),
        "softmaxkit.torch": lambda z, t: skt.cross_entropy(z, t, label_smoothing=0.05),
        "sk api": lambda z, t: sk.cross_entropy(z, t, axis=1, label_smoothing=0.05),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    X, y = digits()
    runs = contenders()
    for f in runs.values():  # warm-up: kernels loaded, torch's first-call work done
        train(f, X, y, 1)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, f in runs.items():
            times[name].append(train(f, X, y, args.epochs))
    steps = args.epochs * -(-len(X) // 128)
    base = statistics.median(times["torch"])
    print(f"digits MLP, {args.epochs} epochs ({steps} steps), {args.threads} threads, "
          f"median of {args.repeats}")
    print("| loss | seconds | µs per step | x torch's time |")
    print("|---|---|---|---|")
    for name, t in times.items():
        m = statistics.median(t)
        print(f"| {name} | {m:.3f} | {m / steps * 1e6:.0f} | {m / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
