"""Temperature scaling, expected calibration error, reliability diagrams."""

from __future__ import annotations

import itertools
import sys

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from softmaxkit import ece, fit_temperature, reliability_diagram, softmax
from softmaxkit.calibrate import calibration_bins

matplotlib.use("Agg")


def _sample_labels(probs, rng):
    """One class per row, drawn from that row's distribution."""
    return (rng.random((probs.shape[0], 1)) > np.cumsum(probs, axis=1)).sum(axis=1)


@pytest.mark.parametrize("true_temperature", [0.5, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_temperature):
    # Labels are drawn from softmax(z); the model reports z * T, so softmax(reported / T) is
    # the true distribution and the NLL's minimiser converges to T.
    rng = np.random.default_rng(0)
    z = rng.normal(scale=2.0, size=(20_000, 10))
    labels = _sample_labels(softmax(z), rng)
    fitted = fit_temperature(z * true_temperature, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.03)


def test_fit_temperature_is_bounded_on_separable_data():
    # Every sample right: the NLL falls all the way to T -> 0 and the answer is the lower bound,
    # or just above it where the NLL (about exp(-margin / T)) is 0 to rounding.
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0], [-1.0, 0.0, 0.5]])
    labels = np.array([0, 1, 2])
    assert 0.01 <= fit_temperature(logits, labels) < 0.015
    assert fit_temperature(logits, labels, bounds=(0.2, 5.0)) == pytest.approx(0.2, rel=1e-4)


def test_fit_temperature_takes_the_upper_bound_when_logits_say_nothing_useful():
    # Logits that point away from the truth: the best temperature flattens them completely.
    logits = np.array([[3.0, 0.0], [0.0, 3.0]])
    assert fit_temperature(logits, [1, 0], bounds=(0.1, 50.0)) == pytest.approx(50.0, rel=1e-4)


def test_fit_temperature_minimises_the_nll():
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(500, 4))
    labels = rng.integers(0, 4, 500)
    labels[:250] = logits[:250].argmax(axis=1)
    t = fit_temperature(logits, labels)

    def nll(temperature):
        logp = np.log(softmax(logits / temperature))
        return -np.mean(logp[np.arange(len(labels)), labels])

    assert nll(t) <= min(nll(t * 0.99), nll(t * 1.01))


@pytest.mark.parametrize(
    ("logits", "labels", "kwargs", "error", "message"),
    [
        ([1.0, 2.0], [0], {}, ValueError, r"shape \(n_samples, n_classes\)"),
        ([[1.0, 2.0]], [0, 1], {}, ValueError, r"labels must have shape \(1,\)"),
        ([[1.0, 2.0]], [2], {}, ValueError, "label 2 is out of range for 2 classes"),
        ([[1.0, 2.0]], [0.5], {}, TypeError, "integer class indices"),
        ([[1.0, np.nan]], [0], {}, ValueError, "must be finite"),
        ([[1.0, 2.0]], [0], {"bounds": (0.0, 1.0)}, ValueError, "0 < low < high < inf"),
        ([[1.0, 2.0]], [0], {"bounds": (2.0, 1.0)}, ValueError, "0 < low < high < inf"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), {}, ValueError, "no samples"),
    ],
)
def test_fit_temperature_errors(logits, labels, kwargs, error, message):
    with pytest.raises(error, match=message):
        fit_temperature(logits, np.asarray(labels), **kwargs)


def test_ece_by_hand():
    probs = np.array([
        [0.95, 0.05, 0.00],  # confidence 0.95, right   -> bin (0.9, 1.0]
        [0.85, 0.10, 0.05],  # 0.85, wrong              -> bin (0.8, 0.9]
        [0.10, 0.82, 0.08],  # 0.82, right              -> bin (0.8, 0.9]
        [0.30, 0.30, 0.40],  # 0.40, wrong              -> bin (0.3, 0.4]
    ])
    labels = np.array([0, 1, 1, 0])
    # bins: (0.9,1]: |1 - 0.95| = 0.05, n=1; (0.8,0.9]: |0.5 - 0.835| = 0.335, n=2;
    # (0.3,0.4]: |0 - 0.4| = 0.4, n=1  ->  (0.05 + 2 * 0.335 + 0.4) / 4 = 0.28
    assert ece(probs, labels, n_bins=10) == pytest.approx(0.28, abs=1e-12)
    # One bin: |accuracy - mean confidence| = |0.5 - 0.755|.
    assert ece(probs, labels, n_bins=1) == pytest.approx(0.255, abs=1e-12)


def _ece_by_loops(probs, labels, n_bins):
    """Guo et al.'s reference: bins (lower, upper] on the same edges, one loop per bin."""
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lower, upper in itertools.pairwise(edges):
        inside = (confidence > lower) & (confidence <= upper)
        if inside.any():
            gap = np.mean(predicted[inside] == labels[inside]) - np.mean(confidence[inside])
            total += inside.mean() * abs(gap)
    return total


@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_ece_matches_the_reference_loop(n_bins):
    rng = np.random.default_rng(2)
    probs = softmax(rng.normal(scale=2.0, size=(1000, 5)))
    labels = rng.integers(0, 5, 1000)
    assert ece(probs, labels, n_bins) == pytest.approx(_ece_by_loops(probs, labels, n_bins), abs=1e-12)


def test_ece_bin_edges_are_exact():
    # Regression: ceil(0.7 * 10) is 8 in floating point, which put 0.7 in (0.7, 0.8].
    counts, _, _ = calibration_bins([[0.7, 0.3], [0.3, 0.7]], [0, 1], n_bins=10)
    assert counts.tolist() == [0, 0, 0, 0, 0, 0, 2, 0, 0, 0]


def test_ece_of_calibrated_probabilities_is_small_and_of_confident_mistakes_large():
    rng = np.random.default_rng(3)
    probs = softmax(rng.normal(scale=2.0, size=(50_000, 4)))
    labels = _sample_labels(probs, rng)
    assert ece(probs, labels) < 0.01
    assert ece(probs, (probs.argmax(axis=1) + 1) % 4) == pytest.approx(probs.max(axis=1).mean())


@pytest.mark.parametrize(
    ("probs", "labels", "n_bins", "error", "message"),
    [
        ([[2.0, -1.0]], [0], 15, ValueError, "pass softmax"),
        ([[0.2, 0.2]], [0], 15, ValueError, "summing to 1"),
        ([0.5, 0.5], [0], 15, ValueError, "shape"),
        ([[1, 0]], [0], 15, TypeError, "floating-point"),
        ([[0.5, 0.5]], [0], 0, ValueError, "n_bins must be an int >= 1"),
        ([[0.5, 0.5]], [0], 2.5, ValueError, "n_bins must be an int >= 1"),
        ([[0.5, 0.5]], [-1], 15, ValueError, "label -1 is out of range"),
    ],
)
def test_ece_errors(probs, labels, n_bins, error, message):
    with pytest.raises(error, match=message):
        ece(np.asarray(probs), np.asarray(labels), n_bins)


def test_reliability_diagram_returns_the_figure():
    rng = np.random.default_rng(4)
    probs = softmax(rng.normal(scale=2.0, size=(300, 3)))
    labels = rng.integers(0, 3, 300)
    figure = reliability_diagram(probs, labels, n_bins=10)
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    counts, _, accuracy = calibration_bins(probs, labels, n_bins=10)
    accuracy_bars = ax.containers[0]
    assert len(accuracy_bars) == np.count_nonzero(counts)
    np.testing.assert_allclose([bar.get_height() for bar in accuracy_bars], accuracy[counts > 0])
    assert f"{ece(probs, labels, n_bins=10):.3f}" in ax.get_title()


def test_reliability_diagram_draws_on_a_given_axes():
    figure = Figure()
    ax = figure.add_subplot()
    assert reliability_diagram([[0.9, 0.1], [0.4, 0.6]], [0, 0], ax=ax) is figure
    assert len(ax.patches) > 0


def test_reliability_diagram_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'softmaxkit\[classify\]'"):
        reliability_diagram([[0.9, 0.1]], [0])


def test_fit_temperature_without_scipy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "softmaxkit\[classify\]"'):
        fit_temperature([[2.0, 0.0], [0.0, 2.0]], [0, 1])
