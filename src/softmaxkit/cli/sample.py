"""``softmaxkit sample``: draw classes from the filtered softmax of logits on the command line."""

from __future__ import annotations

import argparse

import numpy as np

import softmaxkit as sk
from softmaxkit.cli.probs import parse_labels, parse_logits


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample", help="draw classes from the softmax of logits (temperature, top-k, top-p, min-p)",
        description="Draw class indices from softmax(logits / T) after the top-k, top-p and min-p "
                    "filters (applied in that order, as Hugging Face transformers and vLLM do). "
                    "Example: softmaxkit sample 2.0 1.0 0.5 -1.0 --top-k 2 -n 10 --seed 0",
    )
    p.add_argument("logits", nargs="+", metavar="LOGIT", help="one number per class")
    p.add_argument("--temperature", "-t", type=float, default=1.0, help="T >= 0 (0: the argmax)")
    p.add_argument("--top-k", type=int, help="keep the k most likely classes")
    p.add_argument("--top-p", type=float, help="keep the smallest set holding probability p")
    p.add_argument("--min-p", type=float, help="keep classes at least min-p times the most likely")
    p.add_argument("-n", "--num-samples", type=int, default=1, help="how many draws (default 1)")
    p.add_argument("--no-replacement", action="store_true", help="distinct classes in the draws")
    p.add_argument("--seed", type=int, help="seed of the random stream (default: fresh entropy)")
    p.add_argument("--labels", help="comma-separated class names: print names instead of indices")
    p.add_argument("--counts", action="store_true",
                   help="print a table of each class's count and its exact filtered probability")
    p.set_defaults(run=run)


def filtered_probabilities(logits: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """The exact distribution the draws come from (the masks' chain, then softmax)."""
    mask = np.ones(logits.shape, dtype=bool)
    if args.top_k is not None:
        mask = sk.top_k_mask(logits, args.top_k, where=mask)
    t = args.temperature
    if args.top_p is not None:
        mask = sk.top_p_mask(logits, args.top_p, temperature=t, where=mask)
    if args.min_p is not None:
        mask = sk.min_p_mask(logits, args.min_p, temperature=t, where=mask)
    if t == 0.0:  # the limit: the largest kept logits share the mass
        top = np.max(np.where(mask, logits, -np.inf))
        mask &= logits == top
        return sk.softmax(np.where(mask, 0.0, -np.inf))
    return sk.softmax(logits, where=mask, temperature=t)


def run(args: argparse.Namespace) -> int:
    logits = parse_logits(args.logits)
    labels = parse_labels(args.labels, len(logits)) if args.labels or args.counts else None
    draws = sk.sample(
        logits, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
        num_samples=args.num_samples, replacement=not args.no_replacement, rng=args.seed,
    )
    if args.counts:
        assert labels is not None
        counts = np.bincount(draws, minlength=len(logits))
        probs = filtered_probabilities(logits, args)
        width = max(5, *(len(name) for name in labels))
        print(f"{'label':<{width}}  {'logit':>10}  {'probability':>11}  {'draws':>7}")
        for name, z, p, c in zip(labels, logits, probs, counts, strict=True):
            print(f"{name:<{width}}  {z:>10.4g}  {p:>11.4f}  {c:>7d}")
        return 0
    print(" ".join(labels[i] for i in draws) if labels else " ".join(str(int(i)) for i in draws))
    return 0
