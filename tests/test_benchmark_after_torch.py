"""Smoke test: the back-to-back / after-torch benchmark runs once on a tiny tensor, so it cannot rot."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

pytest.importorskip("torch")
pytest.importorskip("numba")

from benchmarks import after_torch


@pytest.fixture(autouse=True)
def threads_restored() -> Iterator[None]:
    """The benchmark sets both libraries to 2 threads; the other tests get theirs back."""
    import torch

    from softmaxkit.numba import get_num_threads, set_num_threads

    threads, torch_threads = get_num_threads(), torch.get_num_threads()
    try:
        yield
    finally:
        set_num_threads(threads)
        torch.set_num_threads(torch_threads)


def test_quick_run_prints_every_gap(capsys: pytest.CaptureFixture[str]) -> None:
    assert after_torch.main(["--quick", "--log"]) == 0
    out = capsys.readouterr().out
    assert "softmaxkit back to back:" in out and "torch back to back:" in out
    assert out.count("alone, after") == 2
    assert out.count("after torch's call:") == len(after_torch.GAPS)


def test_trace_prints_every_chunk(capsys: pytest.CaptureFixture[str]) -> None:
    from softmaxkit.numba import _threads

    untraced = _threads.run
    assert after_torch.main(["--trace"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Every call's chunk 0 is listed, by whichever thread claimed it (on torch's team its
    # spinning worker may claim first: the assertion named the calling thread and was flaky).
    assert len(lines) == 9 and all(re.search(r"(: |\| )\S+ 0-\d+ ", line) for line in lines), lines
    assert _threads.run is untraced  # the engine's own run again


def test_spin_prints_the_cpu_time_after_torch(capsys: pytest.CaptureFixture[str]) -> None:
    assert after_torch.main(["--quick", "--spin"]) == 0
    assert capsys.readouterr().out.count("CPU time while sleeping") == 3


@pytest.mark.parametrize("runner", ["team", "pool"])
def test_runner_prints_ours_and_torchs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                       runner: str) -> None:
    from softmaxkit.numba import _threads

    monkeypatch.setattr(_threads, "torch_openmp_team", _threads.torch_openmp_team)  # put back after
    assert after_torch.main(["--quick", "--runner", runner]) == 0
    out = capsys.readouterr().out
    assert ("our pool" in out) == (runner == "pool")
    assert all(f"{name}: " in out for name in ("softmaxkit", "torch", "softmaxkit vjp", "torch backward"))
