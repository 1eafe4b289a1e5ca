"""How each sampling filter reshapes one distribution (docs/sampling_filters.png).

The docs build draws it (the plot directive); ``python docs/figures/sampling_filters.py``
from the repository root writes the PNG that README.md shows (needs matplotlib).
Each panel is the exact distribution ``sk.sample`` draws from — ``softmax(x, where=mask,
temperature=T)`` with the masks of SPEC §6 — over the same 24 logits, sorted for reading.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import softmaxkit as sk

LOGITS = np.sort(np.random.default_rng(17).normal(0.0, 1.3, 24))[::-1] + np.linspace(0.8, 0, 24)


def panels(x: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, kept mask, probabilities) for each filter setting."""
    everything = np.ones(x.size, dtype=bool)
    k = sk.top_k_mask(x, 5)
    p = sk.top_p_mask(x, 0.8)
    m = sk.min_p_mask(x, 0.2)
    chain = sk.top_p_mask(x, 0.9, temperature=0.7, where=sk.top_k_mask(x, 8))
    chain = sk.min_p_mask(x, 0.1, temperature=0.7, where=chain)
    return [
        ("softmax (T = 1)", everything, sk.softmax(x)),
        ("temperature T = 0.5", everything, sk.softmax(x, temperature=0.5)),
        ("temperature T = 2", everything, sk.softmax(x, temperature=2.0)),
        ("top-k, k = 5", k, sk.softmax(x, where=k)),
        ("top-p, p = 0.8 (crossing token kept)", p, sk.softmax(x, where=p)),
        ("min-p, 0.2 × largest", m, sk.softmax(x, where=m)),
        ("T 0.7 → top-k 8 → top-p 0.9 → min-p 0.1", chain, sk.softmax(x, where=chain, temperature=0.7)),
    ]


def draw() -> plt.Figure:
    base = sk.softmax(LOGITS)
    shown = panels(LOGITS)
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 1.55 * len(shown)), sharex=True,
                             layout="constrained")
    positions = np.arange(LOGITS.size)
    for ax, (title, mask, probs) in zip(axes, shown, strict=True):
        ax.bar(positions, base, color="#d9d9d9", width=0.85, label="softmax(x), T = 1")
        ax.bar(positions, probs, color=np.where(mask, "#3b75af", "#d9d9d9"), width=0.5,
               label="distribution sampled")
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylim(0, max(0.45, float(probs.max()) * 1.1))
        ax.tick_params(labelsize=7)
        ax.set_ylabel("p", fontsize=8)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("class (logits sorted, largest first)", fontsize=8)
    return fig


figure = draw()
if __name__ == "__main__" and "sphinx" not in sys.modules:  # the plot directive runs it as main too
    out = Path(__file__).resolve().parent.parent / "sampling_filters.png"
    figure.savefig(out, dpi=110)
    print(out)
