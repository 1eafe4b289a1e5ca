"""The engine registry, light imports, determinism and thread safety."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import softmaxkit as sk
from softmaxkit import _engines

HEAVY = ("numba", "cupy", "dask", "torch", "jax", "scipy", "sklearn", "matplotlib", "zarr", "llvmlite")


def test_import_is_light():
    code = textwrap.dedent(f"""
        import sys, softmaxkit
        softmaxkit.softmax([1.0, 2.0])
        softmaxkit.cross_entropy([[1.0, 2.0]], [0])
        loaded = [m for m in {HEAVY!r} if m in sys.modules]
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_lists_engines_in_one_place():
    assert sk.engine_names() == [e.name for e in _engines.ENGINES]
    assert "generic" in sk.engine_names()
    for spec in _engines.ENGINES:
        assert spec.functions <= _engines.ENGINE_FUNCTIONS
        module = spec.load() if not spec.missing() else None
        for function in spec.functions if module else ():
            assert callable(getattr(module, function)), (spec.name, function)


def test_automatic_choice_is_logged(caplog):
    with caplog.at_level("DEBUG", logger="softmaxkit"):
        sk.softmax(np.zeros(3))
    assert "engine" in caplog.text


def test_engine_that_cannot_run_names_those_that_can():
    class NotAnArray:
        pass

    with pytest.raises(ValueError, match="engines that can"):
        _engines.choose_engine("softmax", NotAnArray(), "generic")


def test_engine_must_be_a_name():
    with pytest.raises(TypeError, match="engine"):
        sk.softmax([1.0], engine=3)


def test_deterministic_and_thread_safe():
    rng = np.random.default_rng(12)
    inputs = [rng.normal(size=(64, 257)).astype(np.float32) for _ in range(8)]
    first = [sk.softmax(x) for x in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            again = list(pool.map(sk.softmax, inputs))
            for a, b in zip(first, again, strict=True):
                np.testing.assert_array_equal(a, b)
