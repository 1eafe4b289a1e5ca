"""The public types: the user-style script that CI type-checks (tests/typecheck/user_script.py,
``python -m mypy`` in .ci/run) also runs, and the declared names match the registry's."""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path

import pytest

import softmaxkit as sk
from softmaxkit import _engines, _typing


def test_user_script_runs():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    path = Path(__file__).parent / "typecheck" / "user_script.py"
    spec = importlib.util.spec_from_file_location("user_script", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.numpy_calls()
    script.torch_calls()
    script.lazily_imported_names()


def test_engine_names_in_the_signature_are_the_registrys():
    declared = set(typing.get_args(_typing.EngineName))
    assert declared == set(sk.engine_names()) | set(_engines.ENGINE_ALIASES)


def test_reductions_in_the_signature_are_the_ones_checked():
    from softmaxkit._api import _REDUCTIONS

    assert set(typing.get_args(_typing.Reduction)) == set(_REDUCTIONS)
