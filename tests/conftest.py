"""Shared fixtures: ``backend`` runs a test once per installed array library; the numba
kernels are compiled (or loaded from the cache) once per session, before the first test."""

from __future__ import annotations

import importlib.util
import os

import pytest

from backends import Backend


@pytest.fixture(params=list(Backend), ids=lambda b: b.value)
def backend(request: pytest.FixtureRequest) -> Backend:
    b: Backend = request.param
    if not b.installed:
        pytest.skip(f"{b.module} is not installed")
    return b


@pytest.fixture(scope="session", autouse=True)
def numba_kernels(request: pytest.FixtureRequest) -> None:
    """Every numba kernel compiled once, up front and in parallel (one process per core, two
    at most), when the session runs numba tests: tests then never wait for a compile, and
    command-line tests load the kernels from the cache. A warm cache makes this a load."""
    if importlib.util.find_spec("numba") is None:
        return
    if not any("numba" in item.nodeid for item in request.session.items):
        return
    from softmaxkit.numba import compile_all

    compile_all(jobs=max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)))
