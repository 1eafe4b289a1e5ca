"""The classifier part of ``softmaxkit demo`` and its ``--plot`` option."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit.cli import UsageError, main
from softmaxkit.cli.demo_classify import classification_tour, digits_experiment, save_reliability_plot

matplotlib.use("Agg")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_tour_reports_accuracy_top3_and_calibration():
    lines: list[str] = []
    classification_tour(lines.append)
    text = "\n".join(lines)
    e = digits_experiment()
    accuracy = np.mean(e.model.predict(e.images.reshape(-1, 64)) == e.model.classes_[e.test_labels])
    assert accuracy > 0.95
    assert f"test accuracy {100 * accuracy:.1f}%" in text
    assert text.count("true: ") == 3
    assert "Temperature scaling: T = " in text and "ECE (15 bins)" in text


def test_tour_writes_to_a_stream():
    stream = io.StringIO()
    classification_tour(stream)
    assert "log-loss" in stream.getvalue()


def test_temperature_scaling_improves_the_held_out_nll_and_ece():
    e = digits_experiment()
    before = sk.softmax(e.test_logits)
    after = sk.softmax(e.test_logits / e.temperature)
    assert sk.cross_entropy(e.test_logits / e.temperature, e.test_labels) < sk.cross_entropy(
        e.test_logits, e.test_labels)
    assert sk.ece(after, e.test_labels) < sk.ece(before, e.test_labels)
    np.testing.assert_array_equal(after.argmax(axis=1), before.argmax(axis=1))


def test_save_reliability_plot(tmp_path):
    path = tmp_path / "reliability.png"
    save_reliability_plot(str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(UsageError, match=r"choose a \.png, \.svg or \.pdf file"):
        save_reliability_plot(str(tmp_path / "reliability.gif"))


def test_demo_command_with_plot(tmp_path, capsys):
    path = tmp_path / "calibration.png"
    assert main(["demo", "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert "== A classifier: softmax as the last layer ==" in out
    assert f"reliability diagram saved to {path}" in out
    assert path.read_bytes()[:8] == PNG_SIGNATURE
