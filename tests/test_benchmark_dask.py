"""Smoke test: the Dask out-of-core benchmark runs once on arrays of a few KiB, so it cannot rot."""

from __future__ import annotations

import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")
pytest.importorskip("zarr")
pytest.importorskip("psutil")

from benchmarks import dask_outofcore


def test_quick_run_prints_both_tables(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dask_outofcore.main(["--quick", "--dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "## Peak memory" in printed and "## Throughput" in printed
    assert "| LocalCluster 2 processes x 1 thread |" in printed
    for contender in ("numpy engine, 1 process", "dask, 2 worker process(es), rows in 4 chunks"):
        assert f"| {contender} |" in printed
    assert list(tmp_path.iterdir()) == []  # the scratch folder removed
