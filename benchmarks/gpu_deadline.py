"""A pytest plugin: each test gets ``GPU_TEST_DEADLINE`` seconds (default 120), then the run
stops with every thread's traceback (``faulthandler``), so a hung kernel cannot eat the whole
lent GPU time. The name of each test as it starts, and the tracebacks, go to the file
``GPU_TEST_DEADLINE_LOG`` (default ``gpu_deadline.log``): pytest's output capture would lose
them. Used by benchmarks/gpu_check.sh (``-p gpu_deadline``); no package needed."""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Generator
from typing import IO

import pytest

DEADLINE = float(os.environ.get("GPU_TEST_DEADLINE", "120"))
_log: IO[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _log
    _log = open(os.environ.get("GPU_TEST_DEADLINE_LOG", "gpu_deadline.log"), "a")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _log is not None:
        _log.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    assert _log is not None
    _log.write(f"running {item.nodeid} (deadline {DEADLINE:g} s)\n")
    _log.flush()
    faulthandler.dump_traceback_later(DEADLINE, exit=True, file=_log)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
