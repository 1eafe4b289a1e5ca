"""The seeds' walk-through of softmax, step by step, for any logits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import softmaxkit as sk


def explain(
    logits: Sequence[float] | np.ndarray, labels: Sequence[str], temperature: float = 1.0
) -> list[str]:
    """Lines that walk through ``softmax(logits / temperature)`` as the tutorials do."""
    z = np.asarray(logits, dtype=np.float64)
    width = max(len(name) for name in labels)
    lines = [f"Softmax turns {len(z)} logits into probabilities that sum to 1."]
    if not np.all(np.isfinite(z)):
        probs = sk.softmax(z, temperature=temperature)
        return [*lines, "These logits are not all finite, so softmax takes its limit: NaN makes every "
                "probability NaN; +inf entries share all the mass equally; -inf entries get 0:",
                "     " + ", ".join(f"{n} {p:.4f}" for n, p in zip(labels, probs, strict=True))]
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = z / temperature
        overflows = not np.all(np.isfinite(scaled - scaled.max()))
    if overflows:
        probs = sk.softmax(z, temperature=temperature)
        return [*lines, f"Divided by T = {temperature:g}, these logits (or their differences) overflow "
                "float64, so the steps cannot be shown; softmax computes the limit exactly (an "
                "entry infinitely far below the largest gets 0):",
                "     " + ", ".join(f"{n} {p:.4f}" for n, p in zip(labels, probs, strict=True))]
    step = 1
    if temperature != 1.0:
        lines.append(f"{step}. Divide each logit by the temperature T = {temperature:g}:")
        for name, value, v in zip(labels, z, scaled, strict=True):
            lines.append(f"     {name:<{width}}  {value:g} / {temperature:g} = {_number(v)}")
        step += 1
    z = scaled
    top = float(z.max())
    lines.append(f"{step}. Subtract the largest logit ({_number(top)}) so no exponential can overflow;"
                 " softmax does not change when every logit moves by the same amount:")
    shifted = z - top
    for name, value, s in zip(labels, z, shifted, strict=True):
        lines.append(f"     {name:<{width}}  {_number(value)} - {_number(top)} = {_number(s)}")
    exps = np.exp(shifted)
    lines.append(f"{step + 1}. Exponentiate: every result is positive and the largest is exactly 1:")
    for name, s, e in zip(labels, shifted, exps, strict=True):
        lines.append(f"     {name:<{width}}  exp({_number(s)}) = {e:.4f}")
    total = float(exps.sum())
    lines.append(f"{step + 2}. Add them up: {' + '.join(f'{e:.4f}' for e in exps)} = {total:.4f}")
    lines.append(f"{step + 3}. Divide each exponential by the sum:")
    probs = sk.softmax(np.asarray(logits, dtype=np.float64), temperature=temperature)
    for name, e, p in zip(labels, exps, probs, strict=True):
        lines.append(f"     {name:<{width}}  {e:.4f} / {total:.4f} = {p:.4f}")
    best = int(sk.predict(probs))
    lines.append(f"The probabilities sum to {probs.sum():.4f}; the largest, {labels[best]} "
                 f"({probs[best]:.4f}), is the predicted class.")
    lines.extend(_contrast(np.asarray(logits, dtype=np.float64), labels))
    return lines


def _contrast(z: np.ndarray, labels: Sequence[str]) -> list[str]:
    """Why not just divide by the sum? The tutorials' comparison, on these logits."""
    lines = ["Compare plain normalisation, logit / sum of logits:"]
    with np.errstate(over="ignore"):
        total = float(z.sum())
    if not np.isfinite(total):
        lines.append("     it breaks here: the sum of these logits overflows float64.")
        return lines
    if total == 0 or (z < 0).any():
        lines.append("     it breaks here: with negative logits (or a zero sum) the 'probabilities'"
                     " leave [0, 1] or are undefined.")
        return lines
    plain = z / total
    lines.append("     " + ", ".join(f"{n} {p:.4f}" for n, p in zip(labels, plain, strict=True)))
    with np.errstate(over="ignore"):
        twice = 2 * z
    if np.all(np.isfinite(twice)):  # else doubling overflows: nothing to show
        lines.append("     It ignores scale: logits x2 give the same numbers, while softmax sharpens to "
                     + ", ".join(f"{p:.4f}" for p in sk.softmax(twice)) + ".")
    return lines


def _number(v: float) -> str:
    """Four decimals, as the tutorials print, or four digits where that would be hundreds long."""
    return f"{v:.4f}" if abs(v) < 1e9 else f"{v:.4g}"
