"""``softmaxkit plot``: probabilities as bars, one panel per temperature."""

from __future__ import annotations

import argparse
import sys

import numpy as np

import softmaxkit as sk
from softmaxkit.cli import UsageError
from softmaxkit.cli._plotting import pyplot, save_figure
from softmaxkit.cli.probs import parse_labels, parse_logits, predicted_class


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot", help="bar chart of softmax probabilities (one panel per temperature)",
        description="Draw the probabilities of the logits as bars. With --temperature 0.5,1,2 "
                    "one panel per temperature shows how T sharpens or flattens the distribution.",
    )
    p.add_argument("logits", nargs="+", metavar="LOGIT")
    p.add_argument("-o", "--output", required=True, help="image file (.png, .svg or .pdf)")
    p.add_argument("--labels", help="comma-separated class names")
    p.add_argument("--temperature", "-t", default="1", help="one temperature or a comma-separated list")
    p.set_defaults(run=run)


def parse_temperatures(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--temperature must be numbers separated by commas, got {text!r}") from None
    for t in values:
        sk.softmax([0.0], temperature=t)  # the library's own check and message
    return values


def run(args: argparse.Namespace) -> int:
    logits = parse_logits(args.logits)
    labels = parse_labels(args.labels, len(logits))
    temperatures = parse_temperatures(args.temperature)
    plt = pyplot()
    figure, axes = plt.subplots(1, len(temperatures), figsize=(3.2 * len(temperatures) + 1, 3.4),
                                sharey=True, squeeze=False, layout="constrained")
    for ax, t in zip(axes[0], temperatures, strict=True):
        probs = sk.softmax(logits, temperature=t)
        best = predicted_class(probs)
        colors = ["tab:orange" if i == best else "tab:blue" for i in range(len(probs))]
        bars = ax.bar(np.arange(len(probs)), probs, color=colors)
        ax.bar_label(bars, labels=[f"{p:.2f}" for p in probs], fontsize=8)
        ax.set_xticks(np.arange(len(probs)), labels, rotation=30 if len(labels) > 4 else 0)
        ax.set_ylim(0, 1.08)
        ax.set_title(f"T = {t:g}")
    axes[0][0].set_ylabel("probability")
    figure.suptitle("softmax(logits / T)")
    save_figure(figure, args.output)
    plt.close(figure)
    if sys.stderr.isatty():  # a notice, never mixed into a pipeline's output
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
