"""The SPEC §4 CPU suite: shapes, contenders, and an interleaved median timer.

Everything that defines the benchmark lives here once — the shapes, the contenders of each
operation, the protocol (interleaved runs, median after warm-up, throughput ``2 * bytes / t``)
— so both front ends import it: ``softmaxkit bench`` and the repo's ``python -m benchmarks.cpu``.
Peers that are not installed (PyTorch, SciPy) are left out of the comparison.
"""

from __future__ import annotations

import functools
import importlib
import random
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import softmaxkit as sk


@dataclass(frozen=True)
class Shape:
    """One suite entry: ``rows x cols`` of ``dtype``, softmax over ``axis``."""

    rows: int
    cols: int
    why: str
    dtype: str = "float32"
    axis: int = -1

    @property
    def label(self) -> str:
        text = f"{self.rows:,} x {self.cols:,}"
        if self.axis != -1:
            text += f", axis={self.axis}"
        if self.dtype != "float32":
            text += f" {self.dtype}"
        return text

    @property
    def nbytes(self) -> int:
        return self.rows * self.cols * np.dtype(self.dtype).itemsize

    def scaled(self, elements: int) -> Shape:
        """The same kind of case with about ``elements`` elements (for quick runs)."""
        if self.rows * self.cols <= elements:
            return self
        cols = min(self.cols, max(1, elements // 4))
        rows = max(1, min(self.rows, elements // cols))
        return Shape(rows, cols, self.why, self.dtype, self.axis)


SHAPES: tuple[Shape, ...] = (
    Shape(1_000_000, 10, "tiny rows (classic classifiers)"),
    Shape(65_536, 128, "small rows"),
    Shape(8_192, 1_024, "mid rows"),
    Shape(1_024, 32_000, "LLM vocabulary"),
    Shape(64, 262_144, "large vocabulary"),
    Shape(4, 4_194_304, "rows larger than cache"),
    Shape(1_024, 8_192, "non-last axis", axis=0),
    Shape(8_192, 1_024, "other dtypes", dtype="float64"),
    Shape(8_192, 1_024, "other dtypes", dtype="float16"),
)
"""SPEC §4's CPU suite."""

OPERATIONS = ("softmax", "log_softmax", "cross_entropy")

TENSOR_SHAPES: tuple[Shape, ...] = (*SHAPES, Shape(64, 10, "per-call cost"))
"""SPEC §4's tensor suite: the CPU suite on torch tensors, plus 64 x 10 for the per-call cost."""

TENSOR_OPERATIONS = (
    "softmax", "log_softmax", "cross_entropy",
    "softmax+backward", "log_softmax+backward", "cross_entropy+backward",
)
"""On CPU tensors: forward, and forward + backward through autograd."""

BASELINE = "softmaxkit"
CEILING = "copy"


def make_input(shape: Shape, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((shape.rows, shape.cols), dtype=np.float32) * 4).astype(shape.dtype)


def _torch_dim(x: np.ndarray, axis: int) -> int:
    return axis % x.ndim


def contenders(operation: str, x: np.ndarray, axis: int) -> dict[str, Callable[[], Any]]:
    """The functions timed for ``operation`` on ``x``: softmaxkit, its peers, and the copy ceiling."""
    torch = _optional("torch")
    scipy_special = _optional("scipy.special")
    dim = _torch_dim(x, axis)
    sink = np.empty_like(x)
    found: dict[str, Callable[[], Any]] = {}
    if operation in ("softmax", "log_softmax"):
        log = operation == "log_softmax"
        found[BASELINE] = lambda: getattr(sk, operation)(x, axis=axis)
        if torch is not None:
            tx = torch.from_numpy(x)
            found["torch"] = lambda: (torch.log_softmax if log else torch.softmax)(tx, dim)
        if scipy_special is not None:
            found["scipy"] = lambda: getattr(scipy_special, operation)(x, axis=axis)
        found["numpy"] = lambda: _numpy_softmax(x, axis, log)
    elif operation == "cross_entropy":
        n_classes = x.shape[axis]
        labels = np.random.default_rng(1).integers(0, n_classes, (x.shape[1 - dim],))
        found[BASELINE] = lambda: sk.cross_entropy(x, labels, axis=axis, return_grad=True)
        if torch is not None:
            t_labels = torch.from_numpy(labels)
            tx = torch.from_numpy(x)
            logits_t = tx if dim == 1 else tx.T  # torch wants the classes on dim 1
            found["torch"] = lambda: _torch_cross_entropy(logits_t, t_labels)
        found["numpy"] = lambda: _numpy_cross_entropy(x, labels, axis)
    else:
        raise ValueError(f"unknown operation {operation!r}; operations: {', '.join(OPERATIONS)}")
    found[CEILING] = lambda: np.copyto(sink, x)
    return found


def tensor_contenders(operation: str, x: np.ndarray, axis: int) -> dict[str, Callable[[], Any]]:
    """The functions timed for ``operation`` on a CPU tensor holding ``x``: the drop-in face
    ``softmaxkit.torch`` (the baseline), the main API on the tensor (``sk api``), torch's own
    ops, and a tensor copy (the ceiling). ``+backward`` adds the backward pass through autograd
    (a fixed cotangent; for cross_entropy ``loss.backward()``)."""
    import torch

    import softmaxkit.torch as skt

    tx = torch.from_numpy(x)
    dim = _torch_dim(x, axis)
    name, backward = operation.removesuffix("+backward"), operation.endswith("+backward")
    if name not in OPERATIONS or operation not in TENSOR_OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; operations: {', '.join(TENSOR_OPERATIONS)}")
    found: dict[str, Callable[[], Any]] = {}
    if name == "cross_entropy":
        labels = torch.from_numpy(np.random.default_rng(1).integers(0, x.shape[dim], x.shape[1 - dim]))
        logits = tx if dim == 1 else tx.T  # the classes on dim 1, as torch wants them
        peers = {BASELINE: lambda z: skt.cross_entropy(z, labels),
                 "sk api": lambda z: sk.cross_entropy(z, labels, axis=1),
                 "torch": lambda z: torch.nn.functional.cross_entropy(z, labels)}
        for key, f in peers.items():
            found[key] = _with_backward(f, logits, None) if backward else functools.partial(f, logits)
    else:
        log = name == "log_softmax"
        rows, cols = x.shape
        cotangent = torch.from_numpy(make_input(Shape(rows, cols, "", dtype=str(x.dtype)), seed=2)) \
            if backward else None
        peers = {BASELINE: lambda z: (skt.log_softmax if log else skt.softmax)(z, dim),
                 "sk api": lambda z: getattr(sk, name)(z, axis=dim),
                 "torch": lambda z: (torch.log_softmax if log else torch.softmax)(z, dim)}
        for key, f in peers.items():
            found[key] = _with_backward(f, tx, cotangent) if backward else functools.partial(f, tx)
    sink = torch.empty_like(tx)
    found[CEILING] = lambda: sink.copy_(tx)
    return found


def _with_backward(f: Callable[[Any], Any], x: Any, cotangent: Any) -> Callable[[], Any]:
    def forward_backward() -> Any:
        leaf = x.detach().requires_grad_(True)
        f(leaf).backward(cotangent)
        return leaf.grad

    return forward_backward


def _optional(module: str) -> Any:
    """The module if it is installed, else None: absent peers are skipped, not faked."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _numpy_softmax(x: np.ndarray, axis: int, log: bool) -> np.ndarray:
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    s = np.sum(e, axis=axis, keepdims=True)
    return z - np.log(s) if log else e / s


def _numpy_cross_entropy(x: np.ndarray, labels: np.ndarray, axis: int) -> tuple[Any, np.ndarray]:
    z = np.moveaxis(x, axis, -1)
    logp = _numpy_softmax(z, -1, log=True)
    picked = np.take_along_axis(logp, labels[:, None], axis=-1)
    grad = np.exp(logp)
    np.put_along_axis(grad, labels[:, None], np.take_along_axis(grad, labels[:, None], axis=-1) - 1, -1)
    return -picked.mean(), np.moveaxis(grad / len(labels), -1, axis)


def _torch_cross_entropy(logits: Any, labels: Any) -> Any:
    import torch

    leaf = logits.detach().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(leaf, labels)
    loss.backward()
    return loss, leaf.grad


def time_interleaved(
    functions: dict[str, Callable[[], Any]], repeats: int = 7, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each function, the functions taking turns in every round.

    A call shorter than :data:`MIN_SAMPLE_SECONDS` is timed over as many calls in a row as
    fill that time (as ``timeit`` does): one 6 µs call is mostly timer and scheduler noise.
    The order of the turns is shuffled from round to round (the same shuffles every run): a
    call that follows another one's large free gets different memory from the allocator
    (pages already mapped, or fresh ones to fault in) than one that follows a copy, and no
    contender should always follow the same one (rotating the order would keep who follows whom).
    """
    calls = {name: 1 for name in functions}
    for _ in range(warmup):
        for name, f in functions.items():
            start = time.perf_counter()
            f()
            once = time.perf_counter() - start
            calls[name] = max(1, min(MAX_CALLS_PER_SAMPLE, int(MIN_SAMPLE_SECONDS / max(once, 1e-9))))
    times: dict[str, list[float]] = {name: [] for name in functions}
    names = list(functions)
    turns = random.Random(0)
    for _ in range(repeats):
        for name in turns.sample(names, len(names)):
            f, n = functions[name], calls[name]
            start = time.perf_counter()
            for _ in range(n):
                f()
            times[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(t) for name, t in times.items()}


MIN_SAMPLE_SECONDS = 2e-3
"""Shortest timed sample: calls faster than this are repeated within one sample."""

MAX_CALLS_PER_SAMPLE = 2000


@dataclass
class Record:
    """One operation on one shape: median seconds and GB/s (``2 * bytes / t``) per contender."""

    operation: str
    shape: Shape
    nbytes: int
    seconds: dict[str, float] = field(default_factory=dict)

    def gbps(self, name: str) -> float:
        return 2 * self.nbytes / self.seconds[name] / 1e9

    def ratio(self, name: str) -> float:
        """How many times faster softmaxkit is than ``name`` (> 1: softmaxkit wins)."""
        return self.seconds[name] / self.seconds[BASELINE]


def set_threads(threads: int) -> None:
    """The same thread count for every contender that threads."""
    torch = _optional("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    if _optional("numba") is not None:  # the numba engine's own pool, not numba's threading layer
        from softmaxkit.numba import set_num_threads

        set_num_threads(threads)


def run(
    operations: Iterable[str] = OPERATIONS, shapes: Iterable[Shape] = SHAPES, *, threads: int = 2,
    repeats: int = 7, warmup: int = 1, quick_elements: int | None = None,
    progress: Callable[[Record], None] | None = None, tensors: bool = False,
) -> list[Record]:
    """Time every contender of every operation on every shape; ``quick_elements`` shrinks shapes.

    ``tensors=True`` times the tensor contenders (:func:`tensor_contenders`) instead.
    """
    set_threads(threads)
    find = tensor_contenders if tensors else contenders
    records = []
    for shape in shapes:
        if quick_elements is not None:
            shape = shape.scaled(quick_elements)
        x = make_input(shape)
        for operation in operations:
            record = Record(operation, shape, x.nbytes)
            record.seconds = time_interleaved(find(operation, x, shape.axis), repeats, warmup)
            records.append(record)
            if progress is not None:
                progress(record)
    return records


def markdown_table(records: list[Record]) -> str:
    """GB/s of every contender, and softmaxkit's speed-up over each peer and share of the copy rate."""
    names = [BASELINE, *sorted({n for r in records for n in r.seconds} - {BASELINE, CEILING}), CEILING]
    peers = [n for n in names if n not in (BASELINE, CEILING)]
    head = (["operation", "shape"] + [f"{n} GB/s" for n in names] + [f"x {p}" for p in peers]
            + ["% of copy"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cells = [r.operation, r.shape.label]
        cells += [f"{r.gbps(n):.2f}" if n in r.seconds else "" for n in names]
        cells += [f"{r.ratio(p):.2f}" if p in r.seconds else "" for p in peers]
        cells.append(f"{100 * r.seconds[CEILING] / r.seconds[BASELINE]:.0f}%")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_call_table(records: list[Record]) -> str:
    """Microseconds per call of every contender, and each peer's time over softmaxkit's."""
    names = [BASELINE, *sorted({n for r in records for n in r.seconds} - {BASELINE, CEILING})]
    head = ["operation", "shape", *(f"{n} µs" for n in names), *(f"{n} / torch" for n in names
                                                                  if n != "torch")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        cells = [r.operation, r.shape.label] + [f"{r.seconds[n] * 1e6:.1f}" if n in r.seconds else ""
                                                for n in names]
        cells += [f"{r.seconds[n] / r.seconds['torch']:.2f}" if n in r.seconds and "torch" in r.seconds
                  else "" for n in names if n != "torch"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(records: list[Record]) -> str:
    """Median speed-ups over the suite per operation and peer, and the worst shape."""
    lines = []
    for operation in dict.fromkeys(r.operation for r in records):
        rows = [r for r in records if r.operation == operation]
        peers = sorted({n for r in rows for n in r.seconds} - {BASELINE, CEILING})
        for peer in peers:
            ratios = [r.ratio(peer) for r in rows if peer in r.seconds]
            worst = min((r for r in rows if peer in r.seconds), key=lambda r: r.ratio(peer))
            lines.append(f"{operation}: x {peer} median {statistics.median(ratios):.2f}, "
                         f"min {worst.ratio(peer):.2f} ({worst.shape.label})")
    return "\n".join(lines)
