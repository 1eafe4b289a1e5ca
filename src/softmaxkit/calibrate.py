"""Can these probabilities be trusted? Temperature scaling and the expected calibration error.

A classifier is calibrated when, among the samples it gives confidence ``c``, a fraction ``c``
is right. Modern networks tend to be overconfident; dividing the logits by one temperature
``T > 1`` fitted on held-out data fixes most of it without changing any prediction
(Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017).

``fit_temperature`` needs SciPy and ``reliability_diagram`` matplotlib (the ``classify`` extra).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from softmaxkit._api import cross_entropy
from softmaxkit._arrays import check_real, unmasked

_ROW_SUM_TOLERANCE = 1e-3  # loose enough for float16/float32 probabilities


def fit_temperature(logits: Any, labels: Any, *, bounds: tuple[float, float] = (0.01, 100.0)) -> float:
    """The temperature ``T`` for which ``softmax(logits / T)`` has the least negative log-likelihood.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
        Held-out logits (converted to NumPy float64).
    labels : array-like of int, shape (n_samples,)
        The true class index of each sample.
    bounds : (float, float)
        The search interval for ``T``, ``0 < low < high < inf``.

    Returns
    -------
    float
        ``T``: ``> 1`` means the model was overconfident, ``< 1`` underconfident.

    Notes
    -----
    The search is Brent's bounded method over ``log T``. The NLL is convex in ``1 / T``, hence
    has a single minimum along the monotone ``log T`` axis and the search finds it. When every
    sample is already classified correctly the NLL keeps falling as ``T -> 0``; the answer is
    then the lower bound (or a point just above it where the NLL is 0 to rounding) rather
    than a divergent value.

    Examples
    --------
    >>> import numpy as np
    >>> from softmaxkit import fit_temperature, softmax
    >>> logits = np.array([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    >>> labels = np.array([0, 0, 1, 1])  # 3 out of 4 right: 98% confidence is too much
    >>> t = fit_temperature(logits, labels)
    >>> round(t, 3), softmax(logits[0] / t).round(3)
    (3.641, array([0.75, 0.25]))
    """
    try:
        from scipy.optimize import minimize_scalar
    except ImportError as exc:  # say which extra brings it
        raise ModuleNotFoundError(
            f'fit_temperature needs SciPy, in the classify extra: pip install "softmaxkit[classify]" ({exc})',
            name=exc.name,
        ) from exc

    logits = np.asarray(unmasked(logits, "logits"), dtype=np.float64)
    labels = np.asarray(unmasked(labels, "labels"))
    if logits.ndim != 2:
        raise ValueError(f"fit_temperature: logits must have shape (n_samples, n_classes), "
                         f"got {logits.shape}")
    _check_labels(labels, logits, "fit_temperature", "logits")
    if not logits.shape[0]:
        raise ValueError("fit_temperature: there are no samples")
    if not np.all(np.isfinite(logits)):
        raise ValueError("fit_temperature: logits must be finite")
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"fit_temperature: bounds must be a pair (low, high), got {bounds!r}")
    low, high = (check_real(b, "fit_temperature: bounds") for b in bounds)
    if not 0 < low < high < math.inf:
        raise ValueError(f"fit_temperature: bounds must satisfy 0 < low < high < inf, got {bounds!r}")

    def nll(log_t: float) -> float:
        return float(cross_entropy(logits / math.exp(log_t), labels))

    result = minimize_scalar(nll, bounds=(math.log(low), math.log(high)), method="bounded",
                             options={"xatol": 1e-6})
    return math.exp(float(result.x))


def ece(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Expected calibration error: the confidence-accuracy gap averaged over confidence bins.

    Samples are grouped by confidence (the largest probability) into ``n_bins`` equal-width
    bins ``(k / n_bins, (k + 1) / n_bins]``; ``ECE = sum_b (n_b / n) * |accuracy_b - confidence_b|``
    (Naeini, Cooper & Hauskrecht, AAAI 2015; the 15 bins of Guo et al. 2017).

    Parameters
    ----------
    probs : array-like of shape (n_samples, n_classes)
        Predicted probabilities; each row sums to 1.
    labels : array-like of int, shape (n_samples,)
        True class indices.
    n_bins : int
        Number of confidence bins.

    Returns
    -------
    float
        In ``[0, 1]``; 0 is perfectly calibrated.

    Examples
    --------
    >>> from softmaxkit import ece
    >>> probs = [[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]]
    >>> ece(probs, [0, 1, 0, 1], n_bins=10)  # (2 * |0.5 - 0.9| + |1 - 0.6| + |1 - 0.7|) / 4
    0.375
    """
    return _gap(*calibration_bins(probs, labels, n_bins, "ece"))


def calibration_bins(probs: Any, labels: Any, n_bins: int = 15, name: str = "calibration_bins",
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: the sample count, the mean confidence and the accuracy.

    The bins are those of :func:`ece`; empty bins have count 0 and confidence and accuracy 0.

    Examples
    --------
    >>> from softmaxkit.calibrate import calibration_bins
    >>> counts, confidence, accuracy = calibration_bins([[0.9, 0.1], [0.2, 0.8]], [0, 0], n_bins=2)
    >>> counts, confidence, accuracy
    (array([0, 2]), array([0.  , 0.85]), array([0. , 0.5]))
    """
    probs = np.asarray(unmasked(probs, "probs"))
    labels = np.asarray(unmasked(labels, "labels"))
    if probs.ndim != 2 or not probs.shape[1]:
        raise ValueError(f"{name}: probs must have shape (n_samples, n_classes), got {probs.shape}")
    if not np.issubdtype(probs.dtype, np.floating):
        raise TypeError(f"{name}: probs must be floating-point probabilities, got {probs.dtype}")
    _check_labels(labels, probs, name, "probs")
    if not probs.shape[0]:
        raise ValueError(f"{name}: there are no samples")
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise ValueError(f"{name}: n_bins must be an int >= 1, got {n_bins!r}")
    probs = probs.astype(np.float64)
    row_sums = probs.sum(axis=1)
    if (not np.all((probs >= 0) & (probs <= 1))
            or not np.all(np.abs(row_sums - 1) <= _ROW_SUM_TOLERANCE)):
        raise ValueError(f"{name}: each row of probs must be probabilities summing to 1 "
                         "(for logits, pass softmax(logits))")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    # Bin k holds confidences in (edges[k], edges[k + 1]], compared with the same edges the
    # reference implementation (Guo et al.) uses, so that 0.7 is in (0.6, 0.7] for 10 bins.
    # Confidence 0 (only possible for rows that are not distributions) joins bin 0.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    filled = np.maximum(counts, 1)
    return (counts, np.bincount(bins, confidence, n_bins) / filled,
            np.bincount(bins, correct, n_bins) / filled)


def reliability_diagram(probs: Any, labels: Any, n_bins: int = 15, ax: Any = None) -> Any:
    """Draw accuracy against confidence per bin, with the diagonal of perfect calibration.

    Bars below the diagonal mean overconfidence. The title gives the :func:`ece`.

    Parameters
    ----------
    probs, labels, n_bins
        As in :func:`ece`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default on a new figure (made without pyplot, so no window opens).

    Returns
    -------
    matplotlib.figure.Figure
        The figure holding the diagram (``fig.savefig("reliability.png")`` saves it).

    Examples
    --------
    >>> from softmaxkit import reliability_diagram
    >>> fig = reliability_diagram([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], [0, 1, 1], n_bins=5)
    >>> fig.axes[0].get_title()
    'Reliability (ECE 0.200)'
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("reliability_diagram needs matplotlib: pip install 'softmaxkit[classify]' "
                          "(or pip install matplotlib)") from exc
    counts, confidence, accuracy = calibration_bins(probs, labels, n_bins, "reliability_diagram")
    if ax is None:
        ax = Figure(figsize=(4.5, 4.5), layout="constrained").add_subplot()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    filled = counts > 0
    width = 1.0 / n_bins
    ax.bar(edges[:-1][filled], accuracy[filled], width=width, align="edge", color="tab:blue",
           edgecolor="black", linewidth=0.5, label="accuracy")
    # The gap is hatched from accuracy to confidence: above the bar for overconfidence,
    # inside it for underconfidence.
    ax.bar(edges[:-1][filled], (confidence - accuracy)[filled], bottom=accuracy[filled],
           width=width, align="edge", color="none", edgecolor="tab:red", hatch="///",
           linewidth=0.8, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
           title=f"Reliability (ECE {_gap(counts, confidence, accuracy):.3f})")
    ax.legend(loc="upper left", fontsize="small")
    return ax.figure


def _gap(counts: np.ndarray, confidence: np.ndarray, accuracy: np.ndarray) -> float:
    """The ECE from the bins: the count-weighted mean of |accuracy - confidence|."""
    return float(np.sum(counts * np.abs(accuracy - confidence)) / np.sum(counts))


def _check_labels(labels: np.ndarray, scores: np.ndarray, name: str, what: str) -> None:
    if labels.shape != scores.shape[:1]:
        raise ValueError(f"{name}: labels must have shape ({scores.shape[0]},) to match {what} of "
                         f"shape {scores.shape}, got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{name}: labels must be integer class indices, got {labels.dtype} "
                        "(LabelIndex.encode turns other labels into indices)")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        bad = labels[(labels < 0) | (labels >= scores.shape[1])][0]
        raise ValueError(f"{name}: label {int(bad)} is out of range for {scores.shape[1]} classes")
