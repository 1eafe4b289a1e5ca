"""The classifier part of ``softmaxkit demo``: the seeds' last layer, trained on real data.

``SoftmaxRegression`` learns ``z = W x + b`` on scikit-learn's bundled digits (8x8 images,
no download); the tour prints its accuracy and log-loss, a few test images with their top-3
classes, and what temperature scaling does to the NLL and the calibration error.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

import softmaxkit as sk

SHADES = " .:-=+*#%@"
"""Pixel intensity 0..1 as characters, light to dark."""


@dataclass(frozen=True)
class DigitsExperiment:
    """A model trained on digits, its held-out logits, and the fitted temperature."""

    model: Any
    seconds: float
    images: np.ndarray
    """The test images, 8x8 in [0, 1]."""
    test_logits: np.ndarray
    test_labels: np.ndarray
    """Class indices of the test images."""
    temperature: float
    n_train: int
    n_calibrate: int


@functools.lru_cache(maxsize=1)
def digits_experiment(C: float = 1.0) -> DigitsExperiment:
    """Train on 60% of digits, fit the temperature on 20%, keep 20% to test (fixed split)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixels 0..16 -> [0, 1]: well conditioned, and ready to draw
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, random_state=0,
                                                        stratify=y)
    X_cal, X_test, y_cal, y_test = train_test_split(X_rest, y_rest, test_size=0.5, random_state=0,
                                                    stratify=y_rest)
    with warnings.catch_warnings():  # one L-BFGS step does not converge, and need not
        warnings.simplefilter("ignore")
        # The same fit, one step: kernels compile (seconds on first use) outside the timing.
        sk.SoftmaxRegression(C=C, max_iter=1).fit(X_train, y_train)
    start = time.perf_counter()
    model = sk.SoftmaxRegression(C=C, max_iter=1000).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    index = sk.LabelIndex(model.classes_)
    temperature = sk.fit_temperature(model.decision_function(X_cal), index.encode(y_cal))
    return DigitsExperiment(model, seconds, X_test.reshape(-1, 8, 8),
                            model.decision_function(X_test), index.encode(y_test), temperature,
                            len(y_train), len(y_cal))


def classification_tour(out: Callable[[str], Any] | TextIO) -> None:
    """Print the tour, one line at a time, through ``out`` (a function of a line, or a stream).

    Examples
    --------
    >>> import io
    >>> from softmaxkit.cli.demo_classify import classification_tour
    >>> text = io.StringIO()
    >>> classification_tour(text)
    >>> "test accuracy" in text.getvalue()
    True
    """
    write = out if callable(out) else functools.partial(print, file=out)
    e = digits_experiment()
    model, logits, labels = e.model, e.test_logits, e.test_labels
    probs = sk.softmax(logits)
    n_classes, n_features = model.coef_.shape
    write(f"The digits data: {e.n_train + e.n_calibrate + len(labels)} handwritten digits, 8x8 "
          f"pixels; {e.n_train} to train, {e.n_calibrate} to calibrate, {len(labels)} to test.")
    write(f"SoftmaxRegression (z = W x + b, p = softmax(z); W is {n_classes}x{n_features}) "
          f"trained in {model.n_iter_} L-BFGS iterations, {e.seconds:.2f} s.")
    accuracy = float(np.mean(sk.predict(logits) == labels))
    write(f"test accuracy {100 * accuracy:.1f}%, log-loss {float(sk.cross_entropy(logits, labels)):.4f}")
    write("")
    # Two typical test images and the least confident one.
    shown = [0, 1, int(np.argmin(probs.max(axis=1)))]
    for line in _side_by_side(e.images[shown], labels[shown], probs[shown], model.classes_):
        write(line)
    write("")
    for line in _calibration_report(logits, labels, e.temperature):
        write(line)


def _side_by_side(images: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                  classes: np.ndarray) -> list[str]:
    values, names = sk.top_k(probs, 3, labels=classes)
    width = 2 * images.shape[2]  # two characters per pixel keep the images square
    columns = []
    for image, label, top_values, top_names in zip(images, labels, values, names, strict=True):
        rows = ["".join(2 * SHADES[round(v * (len(SHADES) - 1))] for v in row) for row in image]
        rows = [f"|{row}|" for row in rows]
        rows.append(f"true: {classes[label]}".ljust(width + 2))
        rows += [f"{name!s:>3}  {p:6.1%}".ljust(width + 2) for name, p in zip(top_names, top_values,
                                                                               strict=True)]
        columns.append(rows)
    return ["   ".join(parts).rstrip() for parts in zip(*columns, strict=True)]


def _calibration_report(logits: np.ndarray, labels: np.ndarray, temperature: float) -> list[str]:
    before = (float(sk.cross_entropy(logits, labels)), sk.ece(sk.softmax(logits), labels))
    after = (float(sk.cross_entropy(logits / temperature, labels)),
             sk.ece(sk.softmax(logits / temperature), labels))
    verdict = "overconfident" if temperature > 1 else "underconfident"
    return [
        f"Temperature scaling: T = {temperature:.3f} fitted on the calibration images "
        f"(T {'>' if temperature > 1 else '<'} 1: the model was {verdict}).",
        f"  test NLL {before[0]:.4f} -> {after[0]:.4f},  ECE (15 bins) {before[1]:.4f} -> "
        f"{after[1]:.4f};  predictions unchanged.",
    ]


def reliability_figure() -> Any:
    """The test set's reliability diagrams before and after temperature scaling, side by side."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("the reliability plot needs matplotlib: pip install 'softmaxkit[classify]'"
                          ) from exc
    e = digits_experiment()
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    before, after = figure.subplots(1, 2)
    sk.reliability_diagram(sk.softmax(e.test_logits), e.test_labels, ax=before)
    sk.reliability_diagram(sk.softmax(e.test_logits / e.temperature), e.test_labels, ax=after)
    figure.suptitle("SoftmaxRegression on the digits test images")
    before.set_title(before.get_title().replace("Reliability", "as trained"))
    after.set_title(after.get_title().replace("Reliability", f"temperature {e.temperature:.2f}"))
    return figure


def save_reliability_plot(path: str) -> None:
    """Save :func:`reliability_figure` to ``path`` (.png, .svg or .pdf), as ``demo --plot`` does.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from softmaxkit.cli.demo_classify import save_reliability_plot
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save_reliability_plot(f"{folder}/reliability.png")
    ...     pathlib.Path(folder, "reliability.png").read_bytes()[:4]
    b'\\x89PNG'
    """
    from softmaxkit.cli._plotting import save_figure

    save_figure(reliability_figure(), path)
