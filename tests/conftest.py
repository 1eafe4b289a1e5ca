"""Shared fixtures: ``backend`` runs a test once per installed array library."""

from __future__ import annotations

import pytest

from backends import Backend


@pytest.fixture(params=list(Backend), ids=lambda b: b.value)
def backend(request: pytest.FixtureRequest) -> Backend:
    b: Backend = request.param
    if not b.installed:
        pytest.skip(f"{b.module} is not installed")
    return b
