"""``softmaxkit probs``: the probabilities of a few logits, as a table."""

from __future__ import annotations

import argparse

import numpy as np

import softmaxkit as sk
from softmaxkit.cli import UsageError
from softmaxkit.cli._explain import explain


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "probs", help="softmax of logits given on the command line",
        description="Print each class's logit and probability and mark the predicted class. "
                    "Negative logits work: softmaxkit probs 0.25 1.23 -0.8",
    )
    p.add_argument("logits", nargs="+", metavar="LOGIT", help="one number per class")
    p.add_argument("--labels", help="comma-separated class names, one per logit")
    p.add_argument("--temperature", "-t", type=float, default=1.0, help="divide logits by T (> 0)")
    p.add_argument("--log", action="store_true", help="also show log-probabilities")
    p.add_argument("--explain", action="store_true", help="walk through the computation")
    p.set_defaults(run=run)


def parse_logits(values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        raise UsageError(f"not a number: {bad!r}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_labels(text: str | None, n: int) -> list[str]:
    if text is None:
        return [f"class {i}" for i in range(n)]
    labels = [name.strip() for name in text.split(",")]
    if len(labels) != n:
        raise UsageError(f"{len(labels)} labels for {n} logits")
    return labels


def predicted_class(probs: np.ndarray) -> int | None:
    """The index of the most probable class; None when the probabilities are NaN (a NaN logit)."""
    if np.isnan(probs).any():
        return None
    return int(sk.predict(probs))


def table(logits: np.ndarray, labels: list[str], temperature: float, log: bool) -> list[str]:
    probs = sk.softmax(logits, temperature=temperature)
    best = predicted_class(probs)
    width = max(5, *(len(name) for name in labels))
    header = f"{'label':<{width}}  {'logit':>10}  {'probability':>11}"
    if log:
        header += f"  {'log-prob':>10}"
    rows = [header]
    log_probs = sk.log_softmax(logits, temperature=temperature)
    for i, (name, z, p) in enumerate(zip(labels, logits, probs, strict=True)):
        row = f"{name:<{width}}  {z:>10.4g}  {p:>11.4f}"
        if log:
            row += f"  {log_probs[i]:>10.4f}"
        rows.append(row + ("  <- predicted" if i == best else ""))
    if best is None:
        rows.append("no class is predicted: a NaN logit makes every probability NaN")
    return rows


def run(args: argparse.Namespace) -> int:
    logits = parse_logits(args.logits)
    labels = parse_labels(args.labels, len(logits))
    sk.softmax(logits, temperature=args.temperature)  # bad temperature: one clear error first
    lines = [*explain(logits, labels, args.temperature), ""] if args.explain else []
    print("\n".join(lines + table(logits, labels, args.temperature, args.log)))
    return 0
