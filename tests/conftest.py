"""Shared parametrization: array libraries (``backend``) and engines (``engine``).

A test that takes ``backend`` runs once per array library of :class:`backends.Backend`. A test
that takes ``backend`` and ``engine`` runs once per pair of a library and an engine of the
registry that runs its arrays, with ids such as ``numpy-numba`` or ``dask-generic``, so that a
failure names its engine and ``-k numba`` selects the Numba engine's cases. A test that takes
``engine`` alone runs on NumPy arrays, once per engine that runs them (ids ``numpy-<engine>``).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from backends import Backend


@functools.cache
def engines_running(backend: Backend) -> tuple[str, ...]:
    """The registry's engines that run this library's arrays (the registry is the one list)."""
    from softmaxkit._engines import ENGINES

    sample = backend.asarray(np.zeros(2, dtype=np.float32))
    return tuple(e.name for e in ENGINES if e.runs(sample))


def _pairs(backends: list[Backend]) -> list[object]:
    from softmaxkit._engines import get_engine

    params: list[object] = []
    for b in backends:
        if not b.installed:
            params.append(pytest.param(b, "generic", id=f"{b.value}-generic",
                                       marks=pytest.mark.skip(reason=f"{b.module} is not installed")))
            continue
        for name in engines_running(b):
            missing = get_engine(name).missing()
            marks = [pytest.mark.skip(reason=f"{name} needs {', '.join(missing)}")] if missing else []
            params.append(pytest.param(b, name, id=f"{b.value}-{name}", marks=marks))
    return params


@pytest.hookimpl(tryfirst=True)  # before the fixtures plugin parametrizes `backend` by itself
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" not in metafunc.fixturenames:
        return
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize(("backend", "engine"), _pairs(list(Backend)))
    else:
        metafunc.parametrize(
            "engine", [pytest.param(p.values[1], id=p.id, marks=p.marks) for p in _pairs([Backend.NUMPY])]
        )


@pytest.fixture(params=list(Backend), ids=lambda b: b.value)
def backend(request: pytest.FixtureRequest) -> Backend:
    b: Backend = request.param
    if not b.installed:
        pytest.skip(f"{b.module} is not installed")
    return b
