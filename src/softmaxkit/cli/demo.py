"""``softmaxkit demo``: the seeds' example explained, then a short tour of the library."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable

import numpy as np

import softmaxkit as sk
from softmaxkit.cli import UsageError
from softmaxkit.cli._explain import explain
from softmaxkit.cli.probs import table

SEED_LOGITS = [1.25, 2.44, 0.78, 0.12]
SEED_LABELS = ["cat", "dog", "tiger", "none"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the softmax walk-through and a tour of the API",
                       description="Explain the tutorials' cat/dog/tiger/none example, then show "
                                   "what else softmaxkit does, on built-in data.")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also save the classifier's reliability diagram, before and after "
                        "temperature scaling (.png, .svg or .pdf; needs softmaxkit[classify])")
    p.set_defaults(run=run)


def _fmt(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=4, suppress_small=True, separator=", ")


def seed_example() -> list[str]:
    logits = np.array(SEED_LOGITS)
    lines = ["An image classifier scored an image for cat, dog, tiger and none:", ""]
    lines += explain(SEED_LOGITS, SEED_LABELS)
    return [*lines, "", *table(logits, SEED_LABELS, 1.0, log=False)]


def stability() -> list[str]:
    z = np.array([1000.0, 1000.5, 999.0])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(z) / np.exp(z).sum()
    return [
        f"softmax({_fmt(z)})",
        f"  naive exp/sum: {_fmt(naive)}   (exp(1000) overflows)",
        f"  softmaxkit:    {_fmt(sk.softmax(z))}",
        f"  log_softmax:   {_fmt(sk.log_softmax(z))}; logsumexp = {float(sk.logsumexp(z)):.4f}",
        f"  edge cases: softmax([-inf, -inf]) = {_fmt(sk.softmax([-np.inf, -np.inf]))}, "
        f"softmax([inf, 1, inf]) = {_fmt(sk.softmax([np.inf, 1.0, np.inf]))}",
    ]


def temperature() -> list[str]:
    z = np.array([3.2, 1.3, 0.2, 0.8])
    return [f"T = {t:<4g} softmax = {_fmt(sk.softmax(z, temperature=t))}" for t in (0.5, 1.0, 2.0, 10.0)]


def batches_and_masks() -> list[str]:
    batch = np.array([[1.25, 2.44, 0.78, 0.12], [3.2, 1.3, 0.2, 0.8]])
    mask = np.array([True, True, False, True])
    return [
        "A batch, one row per image (axis=-1):",
        *("  " + line for line in _fmt(sk.softmax(batch)).splitlines()),
        "Excluding 'tiger' with where=[True, True, False, True]:",
        *("  " + line for line in _fmt(sk.softmax(batch, where=mask)).splitlines()),
        f"Predictions: {sk.predict(batch, labels=SEED_LABELS).tolist()}; top-2 of the first: "
        f"{sk.top_k(sk.softmax(batch[0]), 2, labels=SEED_LABELS)[1].tolist()}",
    ]


def two_classes() -> list[str]:
    z = 1.5
    return [f"sigmoid({z}) = {float(sk.sigmoid(z)):.6f} = softmax([{z}, 0])[0] = "
            f"{float(sk.softmax([z, 0.0])[0]):.6f}"]


def learning() -> list[str]:
    logits = np.array([[1.25, 2.44, 0.78, 0.12], [3.2, 1.3, 0.2, 0.8]])
    labels = np.array([1, 0])
    loss, grad = sk.cross_entropy(logits, labels, return_grad=True)
    s = sk.softmax(logits[0])
    return [
        f"one_hot({labels.tolist()}, 4) = {sk.one_hot(labels, 4).tolist()}",
        f"cross-entropy of the batch against dog, cat: {float(loss):.4f}; its gradient, one pass:",
        *("  " + line for line in _fmt(grad).splitlines()),
        "Jacobian of softmax for the first image (diag(s) - s s^T):",
        *("  " + line for line in _fmt(sk.softmax_jacobian(logits[0])).splitlines()),
        f"vjp without building it: softmax_vjp(s, [1, 0, 0, 0]) = {_fmt(sk.softmax_vjp(s, [1.0, 0, 0, 0]))}",
    ]


def engines() -> list[str]:
    return [f"engines: {', '.join(sk.engine_names())} (engine=None picks the fastest that applies)"]


SECTIONS: list[tuple[str, Callable[[], list[str]]]] = [
    ("The tutorials' example", seed_example),
    ("Numerically stable for any input", stability),
    ("Temperature", temperature),
    ("Batches, masks, predictions", batches_and_masks),
    ("Two classes: sigmoid", two_classes),
    ("Training signals: encodings, loss, gradients", learning),
    ("Engines", engines),
]


def run(args: argparse.Namespace) -> int:
    for title, section in SECTIONS:
        print(f"== {title} ==")
        print("\n".join(section()))
        print()
    print("== A classifier: softmax as the last layer ==")
    if importlib.util.find_spec("sklearn") is None:
        if args.plot:
            raise UsageError("--plot needs scikit-learn and matplotlib: pip install 'softmaxkit[classify]'")
        print("(this part needs scikit-learn: pip install 'softmaxkit[classify]')")
        return 0
    from softmaxkit.cli.demo_classify import classification_tour, save_reliability_plot

    classification_tour(print)
    if args.plot:
        try:
            save_reliability_plot(args.plot)
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        print(f"\nreliability diagram saved to {args.plot}")
    return 0
