"""Smoke test of ``python -m benchmarks.into_out``: it runs, prints one line per shape, and
refuses a malformed shape. No timing is asserted."""

from __future__ import annotations

import pytest

pytest.importorskip("numba")

from benchmarks import into_out


def test_prints_a_line_per_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert into_out.main(["--label", "tree", "--shapes", "16x40", "3x33000:float64", "--rounds", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "tree"
    assert lines[1].startswith("16 x 40 float32: softmax ") and "log_softmax" in lines[1]
    assert lines[2].startswith("3 x 33000 float64: softmax ")


def test_vjps_print_a_line_per_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert into_out.main(["--vjps", "--shapes", "16x40:float16", "--rounds", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("16 x 40 float16: softmax ")


def test_a_malformed_shape_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        into_out.main(["--shapes", "16by40"])
    assert stop.value.code == 2
    assert "ROWSxCOLS" in capsys.readouterr().err
